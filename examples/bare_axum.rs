//! The benchmark's ceiling: a bare axum server, built with keygate's own dependency versions,
//! answering `GET /healthz` with the same JSON as keygate, and `POST /verify` with the work no
//! verification can skip: read `{"key": …}`, one SHA-256 of the key, a JSON answer.
//! `bench/run.sh` measures keygate against it. It allocates with keygate's allocator, so that
//! the ratio measures what keygate does per request, not which allocator it links.
//!
//! `cargo run --release --example bare_axum -- 127.0.0.1:8198`

use axum::Router;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Presented {
    key: String,
}

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8198".to_owned());
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/verify",
            post(|axum::Json(presented): axum::Json<Presented>| async move {
                let digest = Sha256::digest(presented.key.as_bytes());
                axum::Json(serde_json::json!({
                    "valid": digest[0] != 0 || digest[1] != 0,
                    "code": "valid",
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("cannot bind the listen address");
    axum::serve(listener, app).await.expect("server failed");
}
