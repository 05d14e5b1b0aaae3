//! One lifecycle for every key kind: an expiry on create (a past one refused in the family's
//! dialect), `expired` at verification once it passes, and a rotation whose grace period is
//! longer than the key's remaining life, which ends at the original expiry.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};
use crate::ops_manager::{BASE, DigestClient, KeyPair, org_id};

on_both_backends!(
    a_past_expiry_is_refused_in_each_familys_dialect,
    keys_of_every_kind_verify_as_expired_once_their_expiry_passes,
    a_grace_longer_than_the_remaining_life_ends_at_the_original_expiry,
);

/// How far ahead the short-lived keys expire; verification is polled for at most [`WAIT`].
const LIFE_SECONDS: i64 = 2;
const WAIT: Duration = Duration::from_secs(15);

/// Whole seconds, so the expiry reads back exactly on both databases.
fn in_seconds(seconds: i64) -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::seconds(seconds)).trunc_subsecs(0)
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

/// Waits until `/verify` answers `expected` for `key`; panics after [`WAIT`].
async fn eventually(app: &TestApp, key: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, verdict) = app.verify(ADMIN, key).await;
        if verdict["code"] == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {verdict} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn project(app: &TestApp) -> String {
    let (status, created) = app
        .post(
            &format!("{BASE}/groups"),
            ADMIN,
            json!({"name": "expiring"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().into()
}

async fn agentex_agent(app: &TestApp) -> String {
    app.create_agent("expiring").await;
    let (_, agent) = app.get("/agents/expiring", ADMIN).await;
    agent["id"].as_str().unwrap().to_owned()
}

async fn a_past_expiry_is_refused_in_each_familys_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let past = "2020-01-01T00:00:00Z";
    let project = project(&app).await;
    let (status, err) = app
        .post(
            &format!("{BASE}/groups/{project}/agentapikeys"),
            ADMIN,
            json!({"desc": "late", "expiresAt": past}),
        )
        .await;
    // Ops Manager answers every invalid attribute with 400, naming it.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["errorCode"], "INVALID_ATTRIBUTE");
    assert_eq!(err["parameters"], json!(["expiresAt"]));

    let org = org_id(&app, ADMIN).await;
    let body = json!({"desc": "late", "roles": ["ORG_MEMBER"], "expiresAt": past});
    let (status, err) = app
        .post(&format!("{BASE}/orgs/{org}/apiKeys"), ADMIN, body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["parameters"], json!(["expiresAt"]));

    let agent_id = agentex_agent(&app).await;
    let (status, err) = app
        .post(
            "/agent_api_keys",
            ADMIN,
            json!({"agent_id": agent_id, "name": "late", "expires_at": past}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "expires_at"]));
    // A webhook signing secret takes no expiry at all.
    let body = json!({
        "agent_id": agent_id, "name": "octo-org/hello-world", "api_key_type": "github",
        "expires_at": in_seconds(3600),
    });
    let (status, err) = app.post("/agent_api_keys", ADMIN, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");

    for (path, body) in [
        (
            "/apikeys",
            json!({"name": "late", "role": "member", "expires_at": past}),
        ),
        ("/agents", json!({"name": "late", "expires_at": past})),
    ] {
        let (status, err) = app.post(path, ADMIN, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {err}");
    }
}

async fn keys_of_every_kind_verify_as_expired_once_their_expiry_passes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let expires_at = in_seconds(LIFE_SECONDS);
    let project = project(&app).await;
    let (status, om_key) = app
        .post(
            &format!("{BASE}/groups/{project}/agentapikeys"),
            ADMIN,
            json!({"desc": "short", "expiresAt": expires_at}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{om_key}");
    assert_eq!(timestamp(&om_key["expiresAt"]), expires_at);

    let agent_id = agentex_agent(&app).await;
    let (status, agentex_key) = app
        .post(
            "/agent_api_keys",
            ADMIN,
            json!({"agent_id": agent_id, "name": "short", "expires_at": expires_at}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{agentex_key}");
    assert_eq!(timestamp(&agentex_key["expires_at"]), expires_at);

    let org = org_id(&app, ADMIN).await;
    let body = json!({"desc": "short", "roles": ["ORG_OWNER"], "expiresAt": expires_at});
    let (status, pair) = app
        .post(&format!("{BASE}/orgs/{org}/apiKeys"), ADMIN, body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pair}");
    let pair = KeyPair {
        id: pair["id"].as_str().unwrap().into(),
        public: pair["publicKey"].as_str().unwrap().into(),
        private: pair["privateKey"].as_str().unwrap().into(),
    };
    let digest = DigestClient::new(&app, &pair);
    let list = format!("{BASE}/groups/{project}/agentapikeys");
    let (status, _) = digest.send(Method::GET, &list, None).await;
    assert_eq!(status, StatusCode::OK, "the pair works before its expiry");

    let om_key = om_key["key"].as_str().unwrap();
    let agentex_key = agentex_key["api_key"].as_str().unwrap();
    for key in [om_key, agentex_key] {
        assert_eq!(app.verify(ADMIN, key).await.1["code"], "valid");
    }
    for key in [om_key, agentex_key] {
        eventually(&app, key, "expired").await;
    }
    let (status, err) = digest.send(Method::GET, &list, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
}

/// Rotates with an hour of grace a key that has [`LIFE_SECONDS`] left, at `rotate_path`; the
/// new key's expiry is read from the answer at `expiry_field`.
async fn rotate_past_its_life(
    app: &TestApp,
    old: &str,
    expires_at: DateTime<Utc>,
    rotate_path: &str,
    key_field: &str,
    expiry_field: &str,
) {
    let (status, rotated) = app
        .post(rotate_path, ADMIN, json!({"grace_period_seconds": 3600}))
        .await;
    assert!(status.is_success(), "{rotate_path}: {rotated}");
    assert_eq!(timestamp(&rotated[expiry_field]), expires_at, "inherited");
    let new = rotated[key_field].as_str().unwrap();
    let (_, verdict) = app.verify(ADMIN, old).await;
    assert_eq!(verdict["code"], "valid", "within the grace period");
    assert_eq!(
        timestamp(&verdict["expires_at"]),
        expires_at,
        "grace capped"
    );
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "valid");
    eventually(app, old, "expired").await;
    eventually(app, new, "expired").await;
}

async fn a_grace_longer_than_the_remaining_life_ends_at_the_original_expiry(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Longer than the others: four keys are made and rotated before it passes.
    let expires_at = in_seconds(LIFE_SECONDS + 4);

    let project = project(&app).await;
    let (_, om_key) = app
        .post(
            &format!("{BASE}/groups/{project}/agentapikeys"),
            ADMIN,
            json!({"desc": "rotated", "expiresAt": expires_at}),
        )
        .await;
    let id = om_key["_id"].as_str().unwrap();

    let agent_id = agentex_agent(&app).await;
    let (_, agentex_key) = app
        .post(
            "/agent_api_keys",
            ADMIN,
            json!({"agent_id": agent_id, "name": "rotated", "expires_at": expires_at}),
        )
        .await;
    let agentex_id = agentex_key["id"].as_str().unwrap();

    let (_, agent) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "rotated", "expires_at": expires_at}),
        )
        .await;
    let (_, api_key) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "rotated", "role": "member", "expires_at": expires_at}),
        )
        .await;
    let api_key_path = format!("/apikeys/{}/rotate", api_key["id"].as_str().unwrap());

    // keygate's own API keys are not answered for at /verify: the rotation tells the expiry.
    let (status, rotated) = app
        .post(&api_key_path, ADMIN, json!({"grace_period_seconds": 3600}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(timestamp(&rotated["expires_at"]), expires_at, "inherited");
    // A hoop agent's rotation answers a DSN only: its old key's verdict carries the cap.
    let old_dsn = agent["token"].as_str().unwrap();
    let (status, _) = app
        .post(
            "/agents/rotated/rotate",
            ADMIN,
            json!({"grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, verdict) = app.verify(ADMIN, old_dsn).await;
    assert_eq!(
        timestamp(&verdict["expires_at"]),
        expires_at,
        "grace capped"
    );

    let om_path = format!("{BASE}/groups/{project}/agentapikeys/{id}/rotate");
    let agentex_path = format!("/agent_api_keys/{agentex_id}/rotate");
    tokio::join!(
        rotate_past_its_life(
            &app,
            om_key["key"].as_str().unwrap(),
            expires_at,
            &om_path,
            "key",
            "expiresAt",
        ),
        rotate_past_its_life(
            &app,
            agentex_key["api_key"].as_str().unwrap(),
            expires_at,
            &agentex_path,
            "api_key",
            "expires_at",
        ),
    );
    eventually(&app, old_dsn, "expired").await;
}
