//! One lifecycle for every key kind: an expiry on create (a past one refused in the family's
//! dialect), `expired` at verification once it passes, and a rotation whose grace period is
//! longer than the key's remaining life, which ends at the original expiry.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, on_both_backends};
use crate::ops_manager::{BASE, DigestClient, KeyPair, key_pair, org_id};

on_both_backends!(
    a_past_expiry_is_refused_in_each_familys_dialect,
    keys_of_every_kind_verify_as_expired_once_their_expiry_passes,
    a_grace_longer_than_the_remaining_life_ends_at_the_original_expiry,
    an_organization_policy_caps_the_lifetime_of_every_kind,
    a_rotation_never_outlives_the_policy,
    only_admins_set_a_policy_and_only_a_sound_one,
    a_key_pair_rotated_with_grace_signs_in_with_either_private_key_until_the_grace_ends,
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

const HOUR: i64 = 3600;

/// Sets the default organization's policy: every kind that expires lives at most an hour.
async fn an_hour_for_every_kind(app: &TestApp) {
    let kinds = [
        "agent_key",
        "api_key",
        "project_agent_key",
        "programmatic_key",
        "machine_credential",
        "agentex_key",
    ];
    let lifetimes: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|kind| (kind.to_string(), json!(HOUR)))
        .collect();
    let body = json!({ "max_lifetime_seconds": lifetimes });
    let response = app
        .request(Method::PUT, "/orgs/policy", Some(ADMIN))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, policy) = crate::common::read(response).await;
    let mut expected = body;
    // The leak policy keeps its default.
    expected["leak_response"] = json!("revoke");
    assert_eq!((status, policy), (StatusCode::OK, expected));
}

/// Asserts that `value` is an expiry about an hour from now.
fn about_an_hour_away(value: &Value) {
    let left = (timestamp(value) - Utc::now()).num_seconds();
    assert!(
        (HOUR - 60..=HOUR).contains(&left),
        "{value} is {left} s away"
    );
}

async fn an_organization_policy_caps_the_lifetime_of_every_kind(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app).await;
    let agent_id = agentex_agent(&app).await;
    an_hour_for_every_kind(&app).await;
    let member = app.create_api_key("member").await;
    let (status, policy) = app.get("/orgs/policy", &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["max_lifetime_seconds"]["agent_key"], HOUR);

    // Without an expiry, each kind gets the longest the policy allows.
    app.create_agent("capped").await;
    let (_, agent) = app.get("/agents/capped", ADMIN).await;
    about_an_hour_away(&agent["key"]["expires_at"]);
    let (_, key) = app
        .post("/apikeys", ADMIN, json!({"name": "ci", "role": "member"}))
        .await;
    about_an_hour_away(&key["expires_at"]);
    let agent_keys = format!("{BASE}/groups/{project}/agentapikeys");
    let (status, om_key) = app
        .post(&agent_keys, ADMIN, json!({"desc": "capped"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{om_key}");
    about_an_hour_away(&om_key["expiresAt"]);
    let body = json!({"agent_id": agent_id, "name": "capped"});
    let (_, agentex_key) = app.post("/agent_api_keys", ADMIN, body).await;
    about_an_hour_away(&agentex_key["expires_at"]);
    let (status, identity) = app
        .post("/machineidentities", ADMIN, json!({"name": "capped"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    about_an_hour_away(&identity["expires_at"]);
    // A webhook signing secret never expires, policy or not.
    let body = json!({
        "agent_id": agent_id, "name": "octo-org/hello-world", "api_key_type": "github",
    });
    let (status, signing) = app.post("/agent_api_keys", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{signing}");

    // A longer one is refused, in each family's dialect.
    let later = in_seconds(2 * HOUR);
    let (status, err) = app
        .post(
            &agent_keys,
            ADMIN,
            json!({"desc": "long", "expiresAt": later}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["parameters"], json!(["expiresAt"]));
    let org = org_id(&app, ADMIN).await;
    let body = json!({"desc": "long", "roles": ["ORG_MEMBER"], "expiresAt": later});
    let (status, err) = app
        .post(&format!("{BASE}/orgs/{org}/apiKeys"), ADMIN, body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["parameters"], json!(["expiresAt"]));
    let body = json!({"agent_id": agent_id, "name": "long", "expires_at": later});
    let (status, err) = app.post("/agent_api_keys", ADMIN, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "expires_at"]));
    for (path, body) in [
        (
            "/apikeys",
            json!({"name": "long", "role": "member", "expires_at": later}),
        ),
        ("/agents", json!({"name": "long", "expires_at": later})),
        (
            "/machineidentities",
            json!({"name": "long", "ttl": 2 * HOUR}),
        ),
    ] {
        let (status, err) = app.post(path, ADMIN, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {err}");
        assert!(err.to_string().contains("policy"), "{path}: {err}");
    }
    // A machine identity's later expiry is held to the policy too.
    let put = |body: Value| {
        let request = app.request(Method::PUT, "/machineidentities/capped", Some(ADMIN));
        let request = request.json(&body);
        async move { crate::common::read(request.send().await.unwrap()).await }
    };
    let (status, err) = put(json!({"ttl": 2 * HOUR})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err.to_string().contains("policy"), "{err}");
    let (status, updated) = put(json!({"ttl": 600})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
}

async fn a_rotation_never_outlives_the_policy(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("old").await;
    let (_, agent) = app.get("/agents/old", ADMIN).await;
    assert_eq!(
        agent["key"]["expires_at"],
        Value::Null,
        "made before the policy"
    );
    an_hour_for_every_kind(&app).await;
    let (_, agent) = app.get("/agents/old", ADMIN).await;
    assert_eq!(
        agent["key"]["expires_at"],
        Value::Null,
        "issued keys keep their expiry"
    );

    let (status, rotated) = app.post("/agents/old/rotate", ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (_, agent) = app.get("/agents/old", ADMIN).await;
    about_an_hour_away(&agent["key"]["expires_at"]);

    let body = json!({"expires_at": in_seconds(2 * HOUR)});
    let (status, err) = app.post("/agents/old/rotate", ADMIN, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let soon = in_seconds(600);
    let (status, _) = app
        .post("/agents/old/rotate", ADMIN, json!({"expires_at": soon}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, agent) = app.get("/agents/old", ADMIN).await;
    assert_eq!(
        timestamp(&agent["key"]["expires_at"]),
        soon,
        "a shorter life stands"
    );
}

async fn only_admins_set_a_policy_and_only_a_sound_one(backend: Backend) {
    let app = TestApp::start(backend).await;
    let put = |token: String, body: Value| {
        let request = app
            .request(Method::PUT, "/orgs/policy", Some(&token))
            .json(&body);
        async move { crate::common::read(request.send().await.unwrap()).await }
    };
    let member = app.create_api_key("member").await;
    let sound = json!({"max_lifetime_seconds": {"agent_key": HOUR}});
    assert_eq!(put(member, sound.clone()).await.0, StatusCode::FORBIDDEN);
    for unsound in [
        json!({"max_lifetime_seconds": {"agent_keys": HOUR}}),
        json!({"max_lifetime_seconds": {"agentex_signing_secret": HOUR}}),
        json!({"max_lifetime_seconds": {"agent_key": 0}}),
        json!({"max_lifetime_seconds": {"agent_key": -1}}),
        json!({"max_lifetime_seconds": {"agent_key": 400_000_000}}),
        json!({"lifetimes": {}}),
        json!({"max_lifetime_seconds": {}, "leak_response": "ignore"}),
    ] {
        let (status, err) = put(ADMIN.to_owned(), unsound.clone()).await;
        assert!(status.is_client_error(), "{unsound}: {status}");
        assert!(err["errors"].is_array(), "{unsound}: {err}");
    }
    assert_eq!(
        app.get("/orgs/policy", ADMIN).await.1,
        json!({"max_lifetime_seconds": {}, "leak_response": "revoke"})
    );
    let mut stored = sound.clone();
    stored["leak_response"] = json!("revoke");
    assert_eq!(put(ADMIN.to_owned(), sound).await, (StatusCode::OK, stored));
    let (_, events) = app.get("/audit?action=org.policy_updated", ADMIN).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    // Clearing the policy lifts every bound.
    let empty = json!({"max_lifetime_seconds": {}, "leak_response": "revoke"});
    assert_eq!(
        put(ADMIN.to_owned(), empty.clone()).await,
        (StatusCode::OK, empty)
    );
    app.create_agent("unbounded").await;
    let (_, agent) = app.get("/agents/unbounded", ADMIN).await;
    assert_eq!(agent["key"]["expires_at"], Value::Null);
}

async fn a_key_pair_rotated_with_grace_signs_in_with_either_private_key_until_the_grace_ends(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let old = key_pair(&app, json!(["ORG_OWNER"])).await;
    let org = org_id(&app, ADMIN).await;
    let path = format!("{BASE}/orgs/{org}/apiKeys/{}", old.id);
    let signs_in = |key: &KeyPair| {
        let client = DigestClient::new(&app, key);
        let path = format!("{BASE}/orgs/{org}/apiKeys");
        async move { client.send(Method::GET, &path, None).await.0 }
    };
    assert_eq!(signs_in(&old).await, StatusCode::OK);

    let expires_at = in_seconds(HOUR);
    let body = json!({"grace_period_seconds": LIFE_SECONDS, "expires_at": expires_at});
    let (status, rotated) = app.post(&format!("{path}/rotate"), ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(
        rotated["publicKey"],
        old.public.as_str(),
        "the same user name"
    );
    assert_eq!(timestamp(&rotated["expiresAt"]), expires_at);
    let new = KeyPair {
        id: old.id.clone(),
        public: old.public.clone(),
        private: rotated["privateKey"].as_str().unwrap().to_owned(),
    };
    assert_ne!(new.private, old.private);
    assert!(new.private.starts_with("mdbpk_"), "shown in full, once");
    assert_eq!(signs_in(&new).await, StatusCode::OK);
    assert_eq!(
        signs_in(&old).await,
        StatusCode::OK,
        "within the grace period"
    );

    let (_, listed) = app.get(&path, ADMIN).await;
    assert_eq!(timestamp(&listed["expiresAt"]), expires_at);
    assert!(
        !listed.to_string().contains(&new.private),
        "masked once shown"
    );

    let deadline = tokio::time::Instant::now() + WAIT;
    while signs_in(&old).await != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old key outlived its grace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(signs_in(&new).await, StatusCode::OK);

    // Without grace the old private key stops at once.
    let (status, again) = app.post(&format!("{path}/rotate"), ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(signs_in(&new).await, StatusCode::UNAUTHORIZED);
    let newest = KeyPair {
        private: again["privateKey"].as_str().unwrap().to_owned(),
        ..new
    };
    assert_eq!(signs_in(&newest).await, StatusCode::OK);
    assert_eq!(
        timestamp(&again["expiresAt"]),
        expires_at,
        "the expiry carries over"
    );

    let logs = captured_logs();
    for private in [&old.private, &newest.private] {
        assert!(
            !logs.contains(private.as_str()),
            "a private key reached the logs"
        );
    }
}
