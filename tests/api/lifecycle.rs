//! Lifecycle operations on one resource arriving together: each is one transaction that locks
//! the owner first, so they run one after the other, revocation always wins, and none answers
//! 5xx. Also: what a rotation keeps, and the organization's last admin key.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_revocation_racing_a_rotation_always_wins,
    deleting_an_agent_while_it_is_rotated_never_fails_and_ends_every_key,
    rotation_keeps_the_expiry_unless_a_new_one_is_given,
    the_last_working_admin_key_cannot_be_revoked,
);

const ROUNDS: usize = 20;

async fn a_revocation_racing_a_rotation_always_wins(backend: Backend) {
    // Every round presents two revoked keys: more failures than the default per-minute budget.
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 10_000).await;
    for round in 0..ROUNDS {
        let body = json!({"name": format!("raced {round}"), "role": "member"});
        let (status, created) = app.post("/apikeys", ADMIN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let (id, old) = (
            created["id"].as_str().unwrap(),
            created["key"].as_str().unwrap(),
        );
        let rotate_path = format!("/apikeys/{id}/rotate");
        let revoke_path = format!("/apikeys/{id}");
        let ((rotated, successor), (revoked, _)) = tokio::join!(
            app.post(&rotate_path, ADMIN, json!({"grace_period_seconds": 600})),
            app.delete(&revoke_path, ADMIN),
        );
        assert!(
            rotated == StatusCode::CREATED || rotated == StatusCode::CONFLICT,
            "rotation answered {rotated}"
        );
        assert_eq!(revoked, StatusCode::NO_CONTENT, "round {round}");
        assert_eq!(
            app.get("/agents", old).await.0,
            StatusCode::UNAUTHORIZED,
            "round {round}: the old key, even in its grace period, is revoked"
        );
        if let Some(new) = successor["key"].as_str() {
            assert_eq!(
                app.get("/agents", new).await.0,
                StatusCode::UNAUTHORIZED,
                "round {round}: the successor is revoked too"
            );
        }
    }
}

async fn deleting_an_agent_while_it_is_rotated_never_fails_and_ends_every_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    for round in 0..ROUNDS {
        let name = format!("raced-{round}");
        let old = app.create_agent(&name).await;
        let rotate_path = format!("/agents/{name}/rotate");
        let delete_path = format!("/agents/{name}");
        let ((rotated, successor), (deleted, _)) = tokio::join!(
            app.post(&rotate_path, ADMIN, json!({"grace_period_seconds": 600})),
            app.delete(&delete_path, ADMIN),
        );
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::CONFLICT,
                StatusCode::NOT_FOUND
            ]
            .contains(&rotated),
            "round {round}: rotation answered {rotated}"
        );
        assert_eq!(deleted, StatusCode::NO_CONTENT, "round {round}");
        let mut keys = vec![old];
        keys.extend(successor["token"].as_str().map(str::to_owned));
        for dsn in &keys {
            assert_eq!(
                app.verify(ADMIN, dsn).await.1["code"],
                "not_found",
                "round {round}: no key of a deleted agent verifies"
            );
        }
    }
}

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
