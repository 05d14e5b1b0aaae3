//! What a rotation keeps, and the organization's last admin key (revoking it, and two admins
//! revoking each other at once). Lifecycle changes racing on every kind of secret are in
//! `reliability/races.rs`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    rotation_keeps_the_expiry_unless_a_new_one_is_given,
    the_last_working_admin_key_cannot_be_revoked,
);

async fn rotation_keeps_the_expiry_unless_a_new_one_is_given(backend: Backend) {
    let app = TestApp::start(backend).await;
    let expiry = "2999-01-01T00:00:00Z";
    let (status, _) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "expiring", "expires_at": expiry}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, rotated) = app.post("/agents/expiring/rotate", ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, verdict) = app.verify(ADMIN, rotated["token"].as_str().unwrap()).await;
    assert_eq!(verdict["expires_at"], expiry, "the expiry carries over");

    let later = "2999-06-01T00:00:00Z";
    let (_, rotated) = app
        .post(
            "/agents/expiring/rotate",
            ADMIN,
            json!({"expires_at": later}),
        )
        .await;
    let (_, verdict) = app.verify(ADMIN, rotated["token"].as_str().unwrap()).await;
    assert_eq!(verdict["expires_at"], later, "a new expiry replaces it");

    let (_, key) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "ci", "role": "member", "expires_at": expiry}),
        )
        .await;
    let path = format!("/apikeys/{}/rotate", key["id"].as_str().unwrap());
    let (status, rotated) = app
        .post(&path, ADMIN, json!({"grace_period_seconds": 60}))
        .await;
    assert_eq!(
        (status, &rotated["expires_at"]),
        (StatusCode::CREATED, &json!(expiry))
    );
}

async fn the_last_working_admin_key_cannot_be_revoked(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let bootstrap = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, err) = app.delete(&format!("/apikeys/{bootstrap}"), ADMIN).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("last working admin key")
    );
    assert_eq!(
        app.get("/agents", ADMIN).await.0,
        StatusCode::OK,
        "still working"
    );

    let (_, second) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "second admin", "role": "admin"}),
        )
        .await;
    let second_key = second["key"].as_str().unwrap();
    let second_path = format!("/apikeys/{}", second["id"].as_str().unwrap());
    // Both revoked at once, each by the other: exactly one succeeds. The other is refused as
    // the last admin key (409), or, when the first revocation commits before it authenticates,
    // its own key no longer works (401). Either way one admin key always remains.
    let bootstrap_path = format!("/apikeys/{bootstrap}");
    let ((first, _), (other, _)) = tokio::join!(
        app.delete(&bootstrap_path, second_key),
        app.delete(&second_path, ADMIN),
    );
    let mut statuses = [first, other];
    statuses.sort();
    assert_eq!(statuses[0], StatusCode::NO_CONTENT, "{statuses:?}");
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::CONFLICT].contains(&statuses[1]),
        "{statuses:?}"
    );
    let mut still_working = 0;
    for key in [ADMIN, second_key] {
        if app
            .request(Method::GET, "/apikeys", Some(key))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
        {
            still_working += 1;
        }
    }
    assert_eq!(still_working, 1, "exactly one admin key is left working");
}
