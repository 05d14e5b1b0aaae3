//! The benchmark's ceiling: a bare axum server, built with keygate's own dependency versions,
//! answering `GET /healthz` with the same JSON as keygate. `bench/run.sh` measures keygate
//! against it.
//!
//! `cargo run --release --example bare_axum -- 127.0.0.1:8198`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8198".to_owned());
    let app = Router::new().route(
        "/healthz",
        get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("cannot bind the listen address");
    axum::serve(listener, app).await.expect("server failed");
}
