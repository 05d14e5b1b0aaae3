//! `POST /verify`: the data plane's question, answered for the caller's organization only.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_valid_dsn_says_whose_it_is,
    a_bare_key_is_accepted_too,
    garbled_secrets_are_malformed_without_a_lookup,
    unknown_keys_are_not_found,
    a_dsn_whose_user_is_not_the_agent_is_a_name_mismatch,
    other_organizations_secrets_are_not_found,
    api_keys_are_not_answered_for,
    auditors_may_not_verify_and_members_may,
    a_missing_key_field_is_400,
    failed_attempts_are_bounded_per_caller,
    failed_attempts_are_bounded_per_end_client_when_the_data_plane_names_it,
    last_used_at_is_recorded_in_batches,
    usage_in_memory_is_written_at_shutdown,
);

fn bare_key(dsn: &str) -> String {
    let userinfo = dsn.split_once("://").unwrap().1.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_owned()
}

async fn a_valid_dsn_says_whose_it_is(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, created) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "edge", "mode": "embedded"}),
        )
        .await;
    let dsn = created["token"].as_str().unwrap();
    let (_, agent) = app.get("/agents/edge", ADMIN).await;
    let (status, verdict) = app.verify(ADMIN, dsn).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["code"], "valid");
    assert_eq!(verdict["kind"], "agent_key");
    assert_eq!(
        verdict["agent"],
        json!({"id": agent["id"], "name": "edge", "mode": "embedded"})
    );
    assert!(verdict["org_id"].is_string());
    assert!(verdict["secret_id"].is_string());
}

async fn a_bare_key_is_accepted_too(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("barekey").await;
    let (_, verdict) = app.verify(ADMIN, &bare_key(&dsn)).await;
    assert_eq!(
        (verdict["valid"].clone(), verdict["agent"]["name"].clone()),
        (json!(true), json!("barekey"))
    );
}

async fn garbled_secrets_are_malformed_without_a_lookup(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("garbled").await;
    let key = bare_key(&dsn);
    let flipped = {
        let mut bytes = key.clone().into_bytes();
        bytes[12] = if bytes[12] == b'x' { b'y' } else { b'x' };
        String::from_utf8(bytes).unwrap()
    };
    for presented in [
        "",
        "hello",
        "xagt-short",
        flipped.as_str(),
        &dsn.replace(&key, &flipped),
        &key[..key.len() - 1],
    ] {
        let (status, verdict) = app.verify(ADMIN, presented).await;
        assert_eq!(status, StatusCode::OK, "{presented}");
        assert_eq!(
            verdict,
            json!({"valid": false, "code": "malformed", "kind": null}),
            "{presented}"
        );
    }
}

async fn unknown_keys_are_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    let other = TestApp::start(backend).await;
    // Well-formed (right prefix and checksum) but minted by another server.
    let foreign = other.create_agent("foreign").await;
    let (_, verdict) = app.verify(ADMIN, &foreign).await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "not_found", "kind": "agent_key"})
    );
}

async fn a_dsn_whose_user_is_not_the_agent_is_a_name_mismatch(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("honest").await;
    let (_, verdict) = app
        .verify(ADMIN, &dsn.replace("://honest:", "://impostor:"))
        .await;
    assert_eq!(
        (verdict["valid"].clone(), verdict["code"].clone()),
        (json!(false), json!("name_mismatch"))
    );
    assert!(
        verdict.get("agent").is_none(),
        "an invalid answer says nothing of the owner"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // several usage flushes
    let (_, agent) = app.get("/agents/honest", ADMIN).await;
    assert_eq!(
        agent["key"]["last_used_at"],
        json!(null),
        "a refused DSN is not a use"
    );
}

async fn other_organizations_secrets_are_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("private").await;
    let (_, other_admin) = app.create_org("tenant-b").await;
    let (_, verdict) = app.verify(&other_admin, &dsn).await;
    assert_eq!(verdict["code"], "not_found");
    assert_eq!(app.verify(ADMIN, &dsn).await.1["code"], "valid");
}

async fn api_keys_are_not_answered_for(backend: Backend) {
    let app = TestApp::start(backend).await;
    let member = app.create_api_key("member").await;
    let (_, verdict) = app.verify(ADMIN, &member).await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "not_found", "kind": "api_key"})
    );
}

async fn auditors_may_not_verify_and_members_may(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("checked").await;
    let auditor = app.create_api_key("auditor").await;
    let member = app.create_api_key("member").await;
    let (status, err) = app.verify(&auditor, &dsn).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["code"], "forbidden");
    assert_eq!(app.verify(&member, &dsn).await.1["valid"], true);
    let (status, err) = app
        .post("/verify", "kgk_nonsense", json!({"key": dsn}))
        .await;
    assert_eq!(
        (status, err["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthenticated"))
    );
}

async fn a_missing_key_field_is_400(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, err) = app.post("/verify", ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err,
        json!({
            "code": "bad_request",
            "message": "key: missing required field",
            "errors": [{"location": "body", "field": "key", "reason": "missing", "message": "missing required field"}],
        })
    );
}

async fn failed_attempts_are_bounded_per_caller(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.verify_failures_per_minute = 3).await;
    let dsn = app.create_agent("target").await;
    let member = app.create_api_key("member").await;
    for _ in 0..3 {
        assert_eq!(app.verify(&member, "xagt-guess").await.0, StatusCode::OK);
    }
    let response = app
        .request(reqwest::Method::POST, "/verify", Some(&member))
        .json(&json!({"key": dsn}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after));
    let (status, err) = crate::common::read(response).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a right guess is refused past the limit"
    );
    assert_eq!(err["code"], "rate_limited");
    // Another caller is not affected, and successes never count.
    for _ in 0..5 {
        assert_eq!(app.verify(ADMIN, &dsn).await.1["valid"], true);
    }
}

async fn last_used_at_is_recorded_in_batches(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("used").await;
    assert_eq!(
        app.get("/agents/used", ADMIN).await.1["key"]["last_used_at"],
        json!(null)
    );
    app.verify(ADMIN, &dsn).await;
    for _ in 0..100 {
        if app.get("/agents/used", ADMIN).await.1["key"]["last_used_at"].is_string() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("last_used_at was never written");
}

async fn usage_in_memory_is_written_at_shutdown(backend: Backend) {
    let mut app = TestApp::start_with(backend, |config| config.usage_flush_ms = 3_600_000).await;
    let dsn = app.create_agent("late-writer").await;
    app.verify(ADMIN, &dsn).await;
    assert_eq!(
        app.get("/agents/late-writer", ADMIN).await.1["key"]["last_used_at"],
        json!(null)
    );
    app.restart().await;
    assert!(app.get("/agents/late-writer", ADMIN).await.1["key"]["last_used_at"].is_string());
}

async fn failed_attempts_are_bounded_per_end_client_when_the_data_plane_names_it(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.verify_failures_per_minute = 3).await;
    let dsn = app.create_agent("shared-gateway").await;
    let from = |client: &str, key: &str| json!({"key": key, "client_ip": client});
    let guess = "xagt-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000";
    for _ in 0..3 {
        let (status, _) = app
            .post("/verify", ADMIN, from("198.51.100.7", guess))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, err) = app
        .post("/verify", ADMIN, from("198.51.100.7", guess))
        .await;
    assert_eq!(
        (status, &err["code"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate_limited"))
    );
    let (status, verdict) = app.post("/verify", ADMIN, from("198.51.100.8", &dsn)).await;
    assert_eq!(
        (status, &verdict["valid"]),
        (StatusCode::OK, &json!(true)),
        "another end client behind the same gateway is answered"
    );
    assert_eq!(
        app.verify(ADMIN, &dsn).await.1["valid"],
        true,
        "and so is the key itself"
    );
    let (status, err) = app
        .post(
            "/verify",
            ADMIN,
            json!({"key": dsn, "client_ip": "not-an-address"}),
        )
        .await;
    assert!(status.is_client_error(), "{err}");
}
