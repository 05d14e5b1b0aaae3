//! `Idempotency-Key` with HTTP Digest: the key pair is authenticated once per request (a nonce
//! count is single-use), and its retry with a fresh nonce replays the agent key.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{BASE, DigestClient, key_pair, project};
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, read};

on_both_backends!(a_digest_retry_with_an_idempotency_key_replays_the_agent_key);

async fn a_digest_retry_with_an_idempotency_key_replays_the_agent_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "p1").await;
    let client = DigestClient::new(&app, &owner);
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let nonce = client.nonce(Method::POST, &path).await;
        let response = app
            .request(Method::POST, &path, None)
            .header(
                "authorization",
                client.authorization(&Method::POST, &path, &nonce, 1),
            )
            .header("idempotency-key", "agent-key-1")
            .json(&json!({"desc": "ci"}))
            .send()
            .await
            .unwrap();
        answers.push(read(response).await);
    }
    assert_eq!(answers[0].0, StatusCode::OK, "{}", answers[0].1);
    assert_eq!(answers[1], answers[0], "the same agent key, shown again");
    let (_, listed) = app.get(&path, ADMIN).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}
