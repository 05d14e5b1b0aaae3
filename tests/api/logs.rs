//! Secrets are shown once: never logged, never in an error, never in a list. Every test server's
//! logs are captured at the most verbose level and scanned for any secret (common.rs); this test
//! checks that the scan works, and that errors and lists hold none either.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, minted_secrets_in, on_both_backends,
    read,
};

on_both_backends!(minted_secrets_never_reach_logs_errors_or_lists);

async fn minted_secrets_never_reach_logs_errors_or_lists(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("logged").await;
    let (_, rotated) = app
        .post(
            "/agents/logged/rotate",
            ADMIN,
            json!({"grace_period_seconds": 60}),
        )
        .await;
    let rotated = rotated["token"].as_str().unwrap().to_owned();
    let api_key = app.create_api_key("member").await;
    let (_, org_key) = app.create_org("logs-org").await;
    let secrets = [
        dsn.clone(),
        rotated.clone(),
        api_key.clone(),
        org_key.clone(),
        ADMIN.to_owned(),
    ];

    // Use every secret, rightly and wrongly, including pasted into the wrong fields.
    app.verify(&api_key, &dsn).await;
    app.verify(&api_key, &rotated).await;
    app.verify(&api_key, &dsn.replace("://logged:", "://other:"))
        .await;
    let mut error_bodies = Vec::new();
    for body in [
        json!({"name": dsn}),
        json!({"name": "fine-name", "mode": rotated}),
        json!({"name": 1, "mode": api_key}),
        json!({"name": "fine-name", "expires_at": org_key}),
    ] {
        let (status, err) = app.post("/agents", ADMIN, body).await;
        assert!(status.is_client_error());
        error_bodies.push(err.to_string());
    }
    for body in [
        json!({"name": "x", "role": org_key}),
        json!({"name": "x", "role": "member", (api_key.clone()): 1}),
    ] {
        let (status, err) = app.post("/apikeys", ADMIN, body).await;
        assert!(status.is_client_error());
        error_bodies.push(err.to_string());
    }
    let (status, err) = app.post("/verify", &api_key, json!({"key": [dsn]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    error_bodies.push(err.to_string());
    let raw = format!("{{\"name\": \"{api_key}");
    let (_, err) = read(
        app.request(Method::POST, "/agents", Some(ADMIN))
            .body(raw)
            .send()
            .await
            .unwrap(),
    )
    .await;
    error_bodies.push(err.to_string());
    let (_, agents) = app.get("/agents", ADMIN).await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;

    let logs = captured_logs();
    assert!(logs.contains("/verify"), "the request logs were captured");
    assert!(logs.contains("keygate::audit"), "changes are audited");
    assert_eq!(
        minted_secrets_in(&format!("token={api_key}.")).concat(),
        api_key,
        "the log scan recognises a minted secret"
    );
    for secret in &secrets {
        let key = secret
            .rsplit_once(':')
            .map_or(secret.as_str(), |(_, rest)| rest.split('@').next().unwrap());
        for needle in [secret.as_str(), key] {
            assert!(
                !agents.to_string().contains(needle) && !keys.to_string().contains(needle),
                "a secret was listed"
            );
            for err in &error_bodies {
                assert!(
                    !err.contains(needle),
                    "a secret came back in an error: {err}"
                );
            }
        }
    }
}
