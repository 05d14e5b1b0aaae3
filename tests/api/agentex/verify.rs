//! Agentex bearer keys at `POST /verify`: whose they are, of which type, never of another type,
//! and not a moment after they are deleted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{agent, created_key};
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    minted_keys_verify_and_say_whose_they_are,
    chosen_keys_verify_as_their_headers_carry_them,
    key_types_are_not_interchangeable,
    a_deleted_key_stops_verifying_at_once,
    other_organizations_keys_are_not_found,
);

const CHOSEN: &str = "chosen-bearer-key:9fK2-xQ7_mZ41LpA0vRt";

async fn verify(app: &TestApp, body: Value) -> Value {
    let (status, verdict) = app.post("/verify", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    verdict
}

fn not_found() -> Value {
    json!({"valid": false, "code": "not_found", "kind": "agentex_key"})
}

async fn minted_keys_verify_and_say_whose_they_are(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    let created = created_key(&app, json!({"agent_name": "edge-1", "name": "ci"})).await;
    let key = created["api_key"].as_str().unwrap();
    for presented in [
        key.to_owned(),
        format!("AgentKey {key}"),
        format!("agentkey {key}"),
    ] {
        let verdict = verify(&app, json!({"key": presented})).await;
        assert_eq!(verdict["valid"], true, "{presented}");
        assert_eq!(verdict["kind"], "agentex_key");
        assert_eq!(
            verdict["agent_api_key"],
            json!({"id": created["id"], "name": "ci", "api_key_type": "external", "agent_id": agent_id, "agent_name": "edge-1"})
        );
        assert!(verdict.get("agent").is_none(), "not a hoop agent key");
    }
    // The last checksum character, changed (to one it is not already).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let garbled = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(
        verify(&app, json!({"key": garbled})).await,
        json!({"valid": false, "code": "malformed", "kind": null})
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // several usage flushes
    let path = format!("/agent_api_keys/{}", created["id"].as_str().unwrap());
    assert!(app.get(&path, ADMIN).await.1["last_used_at"].is_string());
}

async fn chosen_keys_verify_as_their_headers_carry_them(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let body = json!({"agent_name": "edge-1", "name": "ci", "api_key_type": "internal", "api_key": CHOSEN});
    created_key(&app, body).await;
    for request in [
        json!({"key": CHOSEN, "agent_api_key_type": "internal"}),
        json!({"key": format!("AgentKey {CHOSEN}")}),
        json!({"key": format!("AgentKey {CHOSEN}"), "agent_api_key_type": "internal"}),
    ] {
        let verdict = verify(&app, request.clone()).await;
        assert_eq!(verdict["valid"], true, "{request}");
        assert_eq!(verdict["agent_api_key"]["api_key_type"], "internal");
    }
    assert_eq!(
        verify(&app, json!({"key": CHOSEN})).await,
        json!({"valid": false, "code": "malformed", "kind": null}),
        "a bare key with no prefix must say it is an Agentex key"
    );
    assert_eq!(
        verify(
            &app,
            json!({"key": "AgentKey not-a-key-of-anyone-0123456789abcdef"})
        )
        .await,
        not_found()
    );
}

async fn key_types_are_not_interchangeable(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let internal = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "acp", "api_key_type": "internal"}),
    )
    .await;
    let internal = internal["api_key"].as_str().unwrap();
    let external = created_key(&app, json!({"agent_name": "edge-1", "name": "ci"})).await;
    let external = external["api_key"].as_str().unwrap();
    for (key, wrong) in [(internal, "external"), (external, "internal")] {
        let verdict = verify(&app, json!({"key": key, "agent_api_key_type": wrong})).await;
        assert_eq!(verdict, not_found(), "{wrong}");
        let right = if wrong == "external" {
            "internal"
        } else {
            "external"
        };
        let verdict = verify(&app, json!({"key": key, "agent_api_key_type": right})).await;
        assert_eq!(verdict["valid"], true);
    }

    let github = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo/repo", "api_key_type": "github"}),
    )
    .await;
    let github = github["api_key"].as_str().unwrap();
    let slack_secret = "8f742231b10e8888abcd99aaabbb85a5";
    let slack = json!({"agent_name": "edge-1", "name": "A0123", "api_key_type": "slack", "api_key": slack_secret});
    created_key(&app, slack).await;
    for request in [
        json!({"key": github}),
        json!({"key": format!("AgentKey {github}")}),
        json!({"key": github, "agent_api_key_type": "external"}),
    ] {
        let verdict = verify(&app, request.clone()).await;
        assert_eq!(verdict["valid"], false, "{request}");
        assert_eq!(verdict["code"], "not_found", "{request}");
    }
    for request in [
        json!({"key": format!("AgentKey {slack_secret}")}),
        json!({"key": slack_secret, "agent_api_key_type": "internal"}),
    ] {
        assert_eq!(
            verify(&app, request.clone()).await,
            not_found(),
            "{request}"
        );
    }
    let dsn = app.create_agent("hoop-only").await;
    let hoop_key = dsn
        .split_once("hoop-only:")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0;
    let (_, verdict) = app
        .post(
            "/verify",
            ADMIN,
            json!({"key": hoop_key, "agent_api_key_type": "external"}),
        )
        .await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "not_found", "kind": "agent_key"}),
        "a hoop agent key is no Agentex key"
    );
    let (status, refused) = app
        .post(
            "/verify",
            ADMIN,
            json!({"key": github, "agent_api_key_type": "github"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["errors"][0]["field"], "agent_api_key_type");
}

async fn a_deleted_key_stops_verifying_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    for round in 0..5 {
        let name = format!("key {round}");
        let created = created_key(&app, json!({"agent_name": "edge-1", "name": name})).await;
        let key = created["api_key"].as_str().unwrap();
        assert_eq!(verify(&app, json!({"key": key})).await["valid"], true);
        let path = format!("/agent_api_keys/{}", created["id"].as_str().unwrap());
        assert_eq!(app.delete(&path, ADMIN).await.0, StatusCode::OK);
        assert_eq!(
            verify(&app, json!({"key": key})).await,
            not_found(),
            "round {round}: the very next check refuses it"
        );
    }
}

async fn other_organizations_keys_are_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let body = json!({"agent_name": "edge-1", "name": "ci", "api_key": CHOSEN});
    let created = created_key(&app, body).await;
    let (_, other_admin) = app.create_org("elsewhere").await;
    for request in [
        json!({"key": format!("AgentKey {CHOSEN}")}),
        json!({"key": CHOSEN, "agent_api_key_type": "external"}),
    ] {
        let (status, verdict) = app.post("/verify", &other_admin, request).await;
        assert_eq!((status, verdict), (StatusCode::OK, not_found()));
    }
    let path = format!("/agent_api_keys/{}", created["id"].as_str().unwrap());
    assert_eq!(app.get(&path, &other_admin).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, &other_admin).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&path, ADMIN).await.0, StatusCode::OK);
}
