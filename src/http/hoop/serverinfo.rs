//! `GET /serverinfo`: what a client needs to know about this server; no secrets.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::http::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerInfo {
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// The gateway's gRPC address that agent DSNs point at.
    #[schema(example = "grpc://127.0.0.1:8010")]
    pub grpc_url: String,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Version, gateway gRPC URL and database kind.
#[utoipa::path(get, path = "/serverinfo", tag = "Server", responses((status = 200, body = ServerInfo)))]
pub async fn serverinfo(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        grpc_url: state.grpc_url.as_str().trim_end_matches('/').to_owned(),
        database: state.store.kind(),
    })
}
