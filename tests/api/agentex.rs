//! Agentex's agent API keys over HTTP, on SQLite and Postgres: the `/agent_api_keys` routes and
//! their FastAPI error bodies, bearer keys at `POST /verify`, webhook signatures, and where the
//! secrets never go.

mod api_keys;
mod fastapi;
mod secrets;
mod signatures;
mod triggers;
mod verify;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, TestApp};

/// `POST /agent_api_keys` as the bootstrap admin.
async fn create_key(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/agent_api_keys", ADMIN, body).await
}

/// Creates a key that must succeed and returns its response.
pub(crate) async fn created_key(app: &TestApp, body: Value) -> Value {
    let (status, created) = create_key(app, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}

/// A hoop agent named `name`, and its id.
pub(crate) async fn agent(app: &TestApp, name: &str) -> String {
    app.create_agent(name).await;
    let (_, agent) = app.get(&format!("/agents/{name}"), ADMIN).await;
    agent["id"].as_str().unwrap().to_owned()
}

/// The body FastAPI gives one refused field.
fn refused(loc: Value, msg: &str, kind: &str) -> Value {
    json!({"detail": [{"loc": loc, "msg": msg, "type": kind}]})
}
