//! API keys: the bearer credentials of keygate's own API, and the bootstrap of an empty database.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, forbid_in_logs, on_both_backends,
};

on_both_backends!(
    admins_create_keys_that_are_shown_once,
    a_created_key_authenticates_with_its_role,
    revocation_takes_effect_on_the_next_request,
    revoking_an_unknown_or_foreign_key_is_404,
    rotation_replaces_the_key_with_an_optional_grace_period,
    expired_keys_no_longer_authenticate,
    bad_input_is_4xx_in_the_native_dialect,
    failed_authentications_are_bounded_per_client,
    behind_a_trusted_proxy_failures_count_per_forwarded_client,
    bootstrap_writes_a_token_file_when_none_is_configured,
    a_bootstrap_token_given_to_a_database_with_data_is_ignored_with_a_warning,
);

async fn admins_create_keys_that_are_shown_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, created) = app
        .post("/apikeys", ADMIN, json!({"name": "ci", "role": "member"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("kgk_"));
    assert_eq!(
        (created["name"].clone(), created["role"].clone()),
        (json!("ci"), json!("member"))
    );
    let (status, listed) = app.get("/apikeys", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !listed.to_string().contains(key),
        "a key leaked into the list"
    );
    assert!(
        !listed.to_string().contains(ADMIN),
        "the bootstrap key leaked into the list"
    );
    let ci = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap();
    assert_eq!(ci["hint"], format!("kgk_…{}", &key[key.len() - 4..]));
    assert!(ci.get("key").is_none());
    assert_eq!(ci["revoked_at"], Value::Null);
}

async fn a_created_key_authenticates_with_its_role(backend: Backend) {
    let app = TestApp::start(backend).await;
    let member = app.create_api_key("member").await;
    let (status, _) = app.get("/apikeys", &member).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = app
        .post(
            "/apikeys",
            &member,
            json!({"name": "escalate", "role": "admin"}),
        )
        .await;
    assert_eq!(
        (status, err["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
    let admin = app.create_api_key("admin").await;
    let (status, _) = app
        .post(
            "/apikeys",
            &admin,
            json!({"name": "by-second-admin", "role": "auditor"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn revocation_takes_effect_on_the_next_request(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, created) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "short-lived", "role": "admin"}),
        )
        .await;
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    assert_eq!(app.get("/agents", key).await.0, StatusCode::OK);
    let (status, body) = app.delete(&format!("/apikeys/{id}"), ADMIN).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, err) = app.get("/agents", key).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "missing or invalid credentials"})
        )
    );
    let (_, listed) = app.get("/apikeys", ADMIN).await;
    let revoked = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(revoked["revoked_at"].is_string());
    // Revoking twice is harmless.
    assert_eq!(
        app.delete(&format!("/apikeys/{id}"), ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
}

async fn revoking_an_unknown_or_foreign_key_is_404(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, other_admin) = app.create_org("elsewhere").await;
    let (_, theirs) = app.get("/apikeys", &other_admin).await;
    let their_id = theirs["items"][0]["id"].as_str().unwrap();
    for path in [
        format!("/apikeys/{their_id}"),
        format!("/apikeys/{}", uuid::Uuid::new_v4()),
        "/apikeys/not-a-uuid".into(),
    ] {
        let (status, err) = app.delete(&path, ADMIN).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            err,
            json!({"code": "not_found", "message": "API key not found"})
        );
    }
    assert_eq!(
        app.get("/apikeys", &other_admin).await.0,
        StatusCode::OK,
        "their key still works"
    );
}

async fn expired_keys_no_longer_authenticate(backend: Backend) {
    let app = TestApp::start(backend).await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let body = json!({"name": "brief", "role": "member", "expires_at": expires_at});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(app.get("/agents", key).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(app.get("/agents", key).await.0, StatusCode::UNAUTHORIZED);
}

async fn bad_input_is_4xx_in_the_native_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cases = [
        (
            json!({"role": "member"}),
            StatusCode::BAD_REQUEST,
            "name: missing required field",
        ),
        (
            json!({"name": "x"}),
            StatusCode::BAD_REQUEST,
            "role: missing required field",
        ),
        (
            json!({"name": "  ", "role": "member"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: it must contain between 1 and 128 characters",
        ),
        (
            json!({"name": "x", "role": "member", "expires_at": "1999-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at: it must be in the future",
        ),
    ];
    for (body, status, message) in cases {
        let (got, err) = app.post("/apikeys", ADMIN, body.clone()).await;
        assert_eq!(
            (got, err["message"].as_str().unwrap()),
            (status, message),
            "{body}"
        );
    }
    let (status, err) = app
        .post("/apikeys", ADMIN, json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(
        (
            status,
            &err["code"],
            &err["errors"][0]["field"],
            &err["errors"][0]["reason"]
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("invalid"),
            &json!("role"),
            &json!("invalid")
        ),
        "an unknown role is a value breaking a rule: {err}"
    );
    let (status, err) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "x", "role": "member", "extra": 1}),
        )
        .await;
    assert_eq!(
        (status, &err["code"], &err["errors"][0]["reason"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("bad_request"),
            &json!("unknown")
        ),
        "{err}"
    );
}

async fn failed_authentications_are_bounded_per_client(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/agents", "wrong-token").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get("/agents", ADMIN).await.0,
        StatusCode::OK,
        "a valid key is never locked out by failures from its address"
    );
    let (status, err) = app.get("/agents", "wrong-token").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "further guesses from the limited client are refused"
    );
    assert_eq!(
        err["message"].as_str().unwrap().split(',').next(),
        Some("too many failed attempts")
    );
}

async fn bootstrap_writes_a_token_file_when_none_is_configured(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.bootstrap_token = None).await;
    let path = app.config.data_dir.join("bootstrap-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(token.starts_with("kgk_"));
    assert_eq!(app.get("/apikeys", &token).await.0, StatusCode::OK);
    assert_eq!(app.get("/apikeys", ADMIN).await.0, StatusCode::UNAUTHORIZED);
    assert!(
        !crate::common::captured_logs().contains(&token),
        "the generated token was logged"
    );
}

async fn a_bootstrap_token_given_to_a_database_with_data_is_ignored_with_a_warning(
    backend: Backend,
) {
    const ANOTHER: &str = "another-token-for-the-same-database";
    forbid_in_logs(ANOTHER);
    let mut app = TestApp::start(backend).await;
    app.config.bootstrap_token = Some(ANOTHER.into());
    let logged_before = captured_logs().len();
    app.restart().await;
    assert_eq!(app.get("/apikeys", ADMIN).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/apikeys", ANOTHER).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(!app.config.data_dir.join("bootstrap-token").exists());
    let logs = captured_logs();
    assert!(
        logs[logged_before..]
            .lines()
            .any(|line| line.contains("WARN")
                && line.contains("KEYGATE_BOOTSTRAP_TOKEN")
                && line.contains("empty database")),
        "no warning that the token was not used"
    );
    assert!(!logs.contains(ANOTHER), "the token was logged");
}

async fn rotation_replaces_the_key_with_an_optional_grace_period(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, created) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "rotating", "role": "member"}),
        )
        .await;
    let (first, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let path = format!("/apikeys/{id}/rotate");

    let (status, rotated) = app
        .post(&path, ADMIN, json!({"grace_period_seconds": 60}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = rotated["key"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(
        (rotated["id"].as_str(), rotated["role"].as_str()),
        (Some(id), Some("member"))
    );
    assert_eq!(
        app.get("/agents", first).await.0,
        StatusCode::OK,
        "within the grace period"
    );
    assert_eq!(app.get("/agents", second).await.0, StatusCode::OK);

    let (_, rotated) = app.post(&path, ADMIN, json!({})).await;
    let third = rotated["key"].as_str().unwrap();
    assert_eq!(
        app.get("/agents", second).await.0,
        StatusCode::UNAUTHORIZED,
        "no grace: it stops now"
    );
    assert_eq!(app.get("/agents", third).await.0, StatusCode::OK);
    assert_eq!(
        app.post(&path, third, json!({})).await.0,
        StatusCode::FORBIDDEN,
        "members cannot rotate"
    );

    assert_eq!(
        app.delete(&format!("/apikeys/{id}"), ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/agents", first).await.0,
        StatusCode::UNAUTHORIZED,
        "revocation ends the grace too"
    );
    let (status, err) = app.post(&path, ADMIN, json!({})).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("the key is revoked and cannot be rotated")
        )
    );
}

async fn behind_a_trusted_proxy_failures_count_per_forwarded_client(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        config.auth_failures_per_minute = 3;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let as_client = |client: &str, token: &str| {
        app.request(reqwest::Method::GET, "/agents", Some(token))
            .header("x-forwarded-for", client)
            .send()
    };
    for _ in 0..3 {
        let response = as_client("198.51.100.1", "wrong-token").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = as_client("198.51.100.1", "wrong-token").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = as_client("198.51.100.2", "wrong-token").await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::UNAUTHORIZED,
        "another client behind the same proxy is not limited"
    );
    let valid = as_client("198.51.100.1", ADMIN).await.unwrap();
    assert_eq!(valid.status(), StatusCode::OK, "a valid key always passes");
}
