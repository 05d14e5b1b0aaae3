//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers, as the URL asks).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::error::Error;
use crate::http::AppState;
use crate::http::dialect::NativeError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "Server", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers and, when the database URL asks for a writable server
/// (`target_session_attrs=read-write` or `primary`), a connection is on one: during a failover it
/// is not ready until the new primary is. 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Server",
    responses((status = 200, body = Health), (status = 503, body = NativeError))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Error> {
    state.store.ping().await.map_err(|_| Error::Unavailable)?;
    Ok(Json(Health { status: "ready" }))
}
