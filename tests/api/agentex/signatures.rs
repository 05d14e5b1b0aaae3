//! `POST /agent_api_keys/verify-signature`: GitHub and Slack deliveries are valid when signed
//! with the agent's key the delivery names, and refused when the body, the secret or (Slack)
//! the timestamp is wrong. Signatures come from outside the server's code: GitHub's are
//! constants computed with Python's `hmac`; Slack's are made by a signer in this file that is
//! first checked against Slack's documented example.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{agent, created_key, refused};
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    github_deliveries_verify_with_the_repositorys_key,
    slack_deliveries_verify_with_the_apps_key_within_300_seconds,
    keygates_own_signature_rules_are_value_errors,
    a_deleted_signing_key_stops_verifying_at_once,
    a_rotated_signing_secret_checks_deliveries_signed_with_either_until_the_grace_ends,
);

const GITHUB_SECRET: &str = "gh-webhook-secret:Zx81-aQ_7Tq0PLm93kdW";
const OTHER_SECRET: &str = "another-webhook-secret:Jf27-pQ_8Rz1LKx45mn";
const GITHUB_BODY: &str = r#"{"action":"opened","repository":{"full_name":"octo-org/hello-world"},"zen":"Hello, World!"}"#;
/// `hmac.new(GITHUB_SECRET, GITHUB_BODY, hashlib.sha256).hexdigest()`
const GITHUB_SIGNATURE: &str = "211377f210b9b7330bd63986f6814939e4c24b4cda65c92c3bae07352bc74412";
/// The same body signed with `OTHER_SECRET`.
const OTHER_SIGNATURE: &str = "e20e69738e2be2962f983e3f07a72d0cd74a4927cc08a0b0561e1d1263c8cf66";

async fn check(app: &TestApp, agent: &str, source: &str, headers: Value, body: &str) -> Value {
    let request = json!({
        "agent_name": agent, "source": source, "headers": headers,
        "body_base64": STANDARD.encode(body),
    });
    let (status, verdict) = app
        .post("/agent_api_keys/verify-signature", ADMIN, request)
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    verdict
}

fn code(verdict: &Value) -> &str {
    verdict["code"].as_str().unwrap()
}

async fn github_deliveries_verify_with_the_repositorys_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    agent(&app, "edge-2").await;
    let key = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo-org/hello-world", "api_key_type": "github", "api_key": GITHUB_SECRET}),
    )
    .await;
    let signed = |hex: &str| json!({"X-Hub-Signature-256": format!("sha256={hex}"), "X-GitHub-Event": "issues"});

    let verdict = check(
        &app,
        "edge-1",
        "github",
        signed(GITHUB_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(
        verdict,
        json!({"valid": true, "code": "valid", "agent_id": agent_id, "key_name": "octo-org/hello-world", "api_key_id": key["id"]})
    );
    let form = format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(GITHUB_BODY.as_bytes()).collect::<String>()
    );
    let verdict = check(&app, "edge-1", "github", signed(GITHUB_SIGNATURE), &form).await;
    assert_eq!(code(&verdict), "mismatch", "the form body is another body");

    let tampered = GITHUB_BODY.replace("opened", "closed");
    let verdict = check(
        &app,
        "edge-1",
        "github",
        signed(GITHUB_SIGNATURE),
        &tampered,
    )
    .await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "mismatch", "agent_id": agent_id, "key_name": "octo-org/hello-world", "api_key_id": null})
    );
    let verdict = check(
        &app,
        "edge-1",
        "github",
        signed(OTHER_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(code(&verdict), "mismatch", "signed with another secret");
    let verdict = check(
        &app,
        "edge-2",
        "github",
        signed(GITHUB_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(
        code(&verdict),
        "no_key",
        "another agent has no key for the repository"
    );
    let theirs = json!({"agent_name": "edge-2", "name": "octo-org/hello-world", "api_key_type": "github", "api_key": OTHER_SECRET});
    created_key(&app, theirs).await;
    let verdict = check(
        &app,
        "edge-2",
        "github",
        signed(GITHUB_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(code(&verdict), "mismatch", "each agent's key is its own");
    let verdict = check(
        &app,
        "edge-2",
        "github",
        signed(OTHER_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(code(&verdict), "valid");
    let other_repo = GITHUB_BODY.replace("hello-world", "goodbye-world");
    let verdict = check(
        &app,
        "edge-1",
        "github",
        signed(GITHUB_SIGNATURE),
        &other_repo,
    )
    .await;
    assert_eq!(
        (code(&verdict), &verdict["key_name"]),
        ("no_key", &json!("octo-org/goodbye-world"))
    );
    let verdict = check(
        &app,
        "edge-1",
        "slack",
        signed(GITHUB_SIGNATURE),
        GITHUB_BODY,
    )
    .await;
    assert_eq!(
        code(&verdict),
        "missing_signature",
        "a github key never signs for slack"
    );
    for (headers, expected) in [
        (json!({}), "missing_signature"),
        (
            json!({"x-hub-signature-256": GITHUB_SIGNATURE}),
            "malformed",
        ),
        (json!({"x-hub-signature-256": "sha256=abc"}), "malformed"),
        (
            json!({"x-hub-signature": format!("sha1={GITHUB_SIGNATURE}")}),
            "missing_signature",
        ),
    ] {
        let verdict = check(&app, "edge-1", "github", headers.clone(), GITHUB_BODY).await;
        assert_eq!(code(&verdict), expected, "{headers}");
    }
    let verdict = check(
        &app,
        "edge-1",
        "github",
        signed(GITHUB_SIGNATURE),
        "Hello, World!",
    )
    .await;
    assert_eq!(code(&verdict), "malformed", "the body names no repository");

    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // several usage flushes
    let (_, read) = app
        .get(
            &format!("/agent_api_keys/{}", key["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    assert!(read["last_used_at"].is_string(), "{read}");
}

/// Slack's signature of `body` at `timestamp` with `secret`, made here, apart from the server.
fn slack_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

async fn slack_deliveries_verify_with_the_apps_key_within_300_seconds(backend: Backend) {
    // Slack's documented example request.
    assert_eq!(
        slack_signature(
            "8f742231b10e8888abcd99yyyzzz85a5",
            "1531420618",
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        ),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "the test's signer agrees with Slack's documentation"
    );
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let secret = "8f742231b10e8888abcd99aaabbb85a5";
    let key = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "A0123ABCD", "api_key_type": "slack", "api_key": secret}),
    )
    .await;
    let body = r#"{"token":"x","team_id":"T1","api_app_id":"A0123ABCD","type":"event_callback","event":{"type":"app_mention"}}"#;
    let now = chrono::Utc::now().timestamp();
    let signed = |secret: &str, at: i64, body: &str| {
        let timestamp = at.to_string();
        json!({
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(secret, &timestamp, body),
        })
    };
    for at in [now, now - 290, now + 290] {
        let verdict = check(&app, "edge-1", "slack", signed(secret, at, body), body).await;
        assert_eq!(
            (code(&verdict), &verdict["api_key_id"]),
            ("valid", &key["id"]),
            "{at}"
        );
    }
    for at in [now - 310, now + 310, 1_531_420_618] {
        let verdict = check(&app, "edge-1", "slack", signed(secret, at, body), body).await;
        assert_eq!(code(&verdict), "stale", "{at}");
    }
    let verdict = check(
        &app,
        "edge-1",
        "slack",
        signed(secret, now, body),
        &body.replace("app_mention", "message"),
    )
    .await;
    assert_eq!(code(&verdict), "mismatch", "another body");
    let verdict = check(
        &app,
        "edge-1",
        "slack",
        signed("8f742231b10e8888abcd99aaabbb85a6", now, body),
        body,
    )
    .await;
    assert_eq!(code(&verdict), "mismatch", "another secret");
    let mut moved = signed(secret, now, body);
    moved["X-Slack-Request-Timestamp"] = json!((now + 1).to_string());
    let verdict = check(&app, "edge-1", "slack", moved, body).await;
    assert_eq!(code(&verdict), "mismatch", "the timestamp is signed too");
    let command = "command=%2Fdeploy&text=prod&api_app_id=A0123ABCD";
    let verdict = check(
        &app,
        "edge-1",
        "slack",
        signed(secret, now, command),
        command,
    )
    .await;
    assert_eq!(code(&verdict), "valid", "a slash command's form body");
    let headers = json!({"x-slack-signature": slack_signature(secret, &now.to_string(), body)});
    let verdict = check(&app, "edge-1", "slack", headers, body).await;
    assert_eq!(code(&verdict), "missing_signature", "no timestamp");
}

async fn keygates_own_signature_rules_are_value_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let path = "/agent_api_keys/verify-signature";
    let valid =
        json!({"agent_name": "edge-1", "source": "github", "headers": {}, "body_base64": ""});
    let mut not_base64 = valid.clone();
    not_base64["body_base64"] = json!("not base64!");
    assert_eq!(
        app.post(path, ADMIN, not_base64).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                json!(["body", "body_base64"]),
                "Value error, it must be base64",
                "value_error",
            )
        )
    );
    let mut unknown = valid.clone();
    unknown["agent_name"] = json!("nobody");
    assert_eq!(
        app.post(path, ADMIN, unknown).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Item with name 'nobody' does not exist."})
        )
    );
    let auditor = app.create_api_key("auditor").await;
    assert_eq!(
        app.post(path, &auditor, valid).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn a_deleted_signing_key_stops_verifying_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo-org/hello-world", "api_key_type": "github", "api_key": GITHUB_SECRET}),
    )
    .await;
    let headers = json!({"x-hub-signature-256": format!("sha256={GITHUB_SIGNATURE}")});
    let verdict = check(&app, "edge-1", "github", headers.clone(), GITHUB_BODY).await;
    assert_eq!(code(&verdict), "valid");
    let by_name =
        "/agent_api_keys/name/octo-org%2Fhello-world?agent_name=edge-1&api_key_type=github";
    assert_eq!(app.delete(by_name, ADMIN).await.0, StatusCode::OK);
    let verdict = check(&app, "edge-1", "github", headers, GITHUB_BODY).await;
    assert_eq!(code(&verdict), "no_key");
}

async fn a_rotated_signing_secret_checks_deliveries_signed_with_either_until_the_grace_ends(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let key = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo-org/hello-world", "api_key_type": "github", "api_key": GITHUB_SECRET}),
    )
    .await;
    let path = format!("/agent_api_keys/{}/rotate", key["id"].as_str().unwrap());
    let signed = |hex: String| json!({"X-Hub-Signature-256": format!("sha256={hex}")});
    let signature = |secret: &str| {
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes()).unwrap();
        hmac::Mac::update(&mut mac, GITHUB_BODY.as_bytes());
        let bytes = hmac::Mac::finalize(mac).into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(signature(GITHUB_SECRET), GITHUB_SIGNATURE);

    let (status, err) = app
        .post(&path, ADMIN, json!({"expires_at": "2100-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, rotated) = app
        .post(&path, ADMIN, json!({"grace_period_seconds": 2}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["api_key"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("agx_whsec_"), "shown once, in full");
    assert_eq!(rotated["id"], key["id"], "the same key, a new secret");

    let by_new = signed(signature(&new_secret));
    let by_old = signed(GITHUB_SIGNATURE.to_owned());
    assert_eq!(
        code(&check(&app, "edge-1", "github", by_new.clone(), GITHUB_BODY).await),
        "valid"
    );
    assert_eq!(
        code(&check(&app, "edge-1", "github", by_old.clone(), GITHUB_BODY).await),
        "valid",
        "within the grace period"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while code(&check(&app, "edge-1", "github", by_old.clone(), GITHUB_BODY).await) != "mismatch" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old secret outlived its grace"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        code(&check(&app, "edge-1", "github", by_new, GITHUB_BODY).await),
        "valid"
    );
    assert!(!crate::common::captured_logs().contains(&new_secret));
}
