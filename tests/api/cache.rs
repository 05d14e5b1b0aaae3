//! The verification cache answers as the database would: every lifecycle change is seen by the
//! very next request on the same instance, and on another instance sharing the Postgres database
//! as soon as its notification arrives.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_revoked_api_key_is_refused_on_the_next_request,
    a_deleted_agent_is_not_found_on_the_next_verify,
    a_key_rotated_without_grace_is_revoked_on_the_next_verify,
    a_key_rotated_with_grace_works_until_the_grace_ends,
    an_expiring_key_is_refused_right_after_expiry_though_cached,
);

/// Verifies twice, so that the second answer (and any later one) may come from the cache.
async fn verify_warm(app: &TestApp, token: &str, key: &str) -> serde_json::Value {
    app.verify(token, key).await;
    app.verify(token, key).await.1
}

async fn a_revoked_api_key_is_refused_on_the_next_request(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "cached caller", "role": "member"});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let dsn = app.create_agent("cached-caller-target").await;
    assert_eq!(verify_warm(&app, key, &dsn).await["code"], "valid");
    let (status, _) = app.delete(&format!("/apikeys/{id}"), ADMIN).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.verify(key, &dsn).await.0, StatusCode::UNAUTHORIZED);
}

async fn a_deleted_agent_is_not_found_on_the_next_verify(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("cached-doomed").await;
    assert_eq!(verify_warm(&app, ADMIN, &dsn).await["code"], "valid");
    assert_eq!(
        app.delete("/agents/cached-doomed", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.verify(ADMIN, &dsn).await.1["code"], "not_found");
}

async fn a_key_rotated_without_grace_is_revoked_on_the_next_verify(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("cached-rotor").await;
    assert_eq!(verify_warm(&app, ADMIN, &old).await["code"], "valid");
    let (status, body) = app
        .post("/agents/cached-rotor/rotate", ADMIN, json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "revoked");
    let new = body["token"].as_str().unwrap();
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "valid");
}

async fn a_key_rotated_with_grace_works_until_the_grace_ends(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("cached-graceful").await;
    assert_eq!(verify_warm(&app, ADMIN, &old).await["code"], "valid");
    let body = json!({"grace_period_seconds": 1});
    let (status, _) = app
        .post("/agents/cached-graceful/rotate", ADMIN, body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let during = verify_warm(&app, ADMIN, &old).await;
    assert_eq!(during["code"], "valid", "within the grace period");
    let end: chrono::DateTime<chrono::Utc> =
        during["expires_at"].as_str().unwrap().parse().unwrap();
    sleep_until(end).await;
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "expired");
}

async fn an_expiring_key_is_refused_right_after_expiry_though_cached(backend: Backend) {
    let app = TestApp::start(backend).await;
    let end = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let body = json!({"name": "cached-brief", "expires_at": end.to_rfc3339()});
    let (status, created) = app.post("/agents", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dsn = created["token"].as_str().unwrap();
    assert_eq!(verify_warm(&app, ADMIN, dsn).await["code"], "valid");
    sleep_until(end).await;
    assert_eq!(app.verify(ADMIN, dsn).await.1["code"], "expired");
}

/// Sleeps until just past `end`, by the test's own clock (the server shares it).
async fn sleep_until(end: chrono::DateTime<chrono::Utc>) {
    let left = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
}

/// Two instances on one Postgres database: a revocation through one is refused by the other,
/// whose cache held the key, within the notification's delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_revocation_through_one_instance_is_refused_by_another() {
    let first = TestApp::start(Backend::Postgres).await;
    let url = first.config.database_url.clone();
    // Started on the first's database: only the first creates and drops it.
    let second = TestApp::start_with(Backend::Sqlite, |config| config.database_url = url).await;
    let dsn = first.create_agent("shared").await;
    assert_eq!(verify_warm(&second, ADMIN, &dsn).await["code"], "valid");
    assert_eq!(
        first.delete("/agents/shared", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let code = second.verify(ADMIN, &dsn).await.1["code"].clone();
        if code == "not_found" {
            break;
        }
        assert!(Instant::now() < deadline, "still {code} after 2 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
