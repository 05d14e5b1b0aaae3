//! GitHub secret scanning's partner alerts: signed by a key pair made here, standing in for
//! GitHub's, and read from a `KEYGATE_GITHUB_SCANNING_KEYS` file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::secrets::{PlainSecret, SecretKind};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, assert_no_secret_logged, on_both_backends,
};

on_both_backends!(
    a_signed_alert_revokes_live_secrets_once_and_labels_every_token,
    unsigned_tampered_and_unknown_key_alerts_are_refused,
    a_notify_organization_keeps_its_secret_and_sees_the_report,
);

pub const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// A P-256 key pair made for the test, and the keys file that lists its public half.
pub struct GitHub {
    pub key: SigningKey,
    _dir: tempfile::TempDir,
    pub keys_file: std::path::PathBuf,
}

impl GitHub {
    pub fn new() -> GitHub {
        let key = random_key();
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("secret_scanning.json");
        let document = json!({"public_keys": [
            {"key_identifier": "retired", "key": public_pem(&random_key()), "is_current": false},
            {"key_identifier": KEY_ID, "key": public_pem(&key), "is_current": true},
        ]});
        std::fs::write(&keys_file, document.to_string()).unwrap();
        GitHub {
            key,
            _dir: dir,
            keys_file,
        }
    }

    pub async fn start(&self, backend: Backend) -> TestApp {
        let path = self.keys_file.clone();
        TestApp::start_with(backend, |config| config.github_scanning_keys = Some(path)).await
    }

    pub fn sign(&self, body: &[u8]) -> String {
        sign_with(&self.key, body)
    }
}

fn random_key() -> SigningKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SigningKey::from_slice(&bytes).unwrap()
}

fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn sign_with(key: &SigningKey, body: &[u8]) -> String {
    let signature: DerSignature = key.sign(body);
    STANDARD.encode(signature.as_bytes())
}

/// Sends `body` with the given key id and signature headers.
pub async fn alert(
    app: &TestApp,
    body: &[u8],
    key_id: Option<&str>,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app
        .request(Method::POST, "/secret-scanning/github", None)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(key_id) = key_id {
        request = request.header("Github-Public-Key-Identifier", key_id);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn token(token: &str, kind: &str) -> Value {
    json!({
        "token": token,
        "type": kind,
        "url": "https://github.com/octo/repo/blob/abc123/.env#L3",
        "source": "content",
    })
}

fn labels(feedback: &Value) -> Vec<&str> {
    feedback
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["label"].as_str().unwrap())
        .collect()
}

async fn leak_events(app: &TestApp) -> usize {
    let (status, events) = app.get("/audit?action=secret.leaked", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let items = events["items"].as_array().unwrap();
    for event in items {
        assert_eq!(
            (&event["actor_kind"], &event["resource_kind"]),
            (&json!("github"), &json!("secret"))
        );
    }
    items.len()
}

async fn a_signed_alert_revokes_live_secrets_once_and_labels_every_token(backend: Backend) {
    let github = GitHub::new();
    let app = github.start(backend).await;
    let dsn = app.create_agent("edge-1").await;
    let agent_key = keygate::secrets::agent_key::parse_dsn(&dsn).unwrap().key;
    let member = app.create_api_key("member").await;
    let revoked = app.create_api_key("member").await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let revoked_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["hint"] == format!("kgk_…{}", &revoked[revoked.len() - 4..]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app.delete(&format!("/apikeys/{revoked_id}"), ADMIN).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let foreign = PlainSecret::mint(SecretKind::ApiKey);

    let batch = json!([
        token(&agent_key, "keygate_agent_key"),
        token(&member, "keygate_api_key"),
        token(&revoked, "keygate_api_key"),
        token(foreign.expose(), "keygate_api_key"),
        token("ghp_notakeygatesecretatall0123456789", "keygate_api_key"),
    ])
    .to_string();
    let (status, feedback) = alert(
        &app,
        batch.as_bytes(),
        Some(KEY_ID),
        Some(&github.sign(batch.as_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{feedback}");
    assert_eq!(
        labels(&feedback),
        [
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    assert_eq!(feedback[0]["token_raw"], json!(agent_key));
    assert_eq!(feedback[1]["token_type"], json!("keygate_api_key"));

    // The leaked secrets no longer work.
    let (_, verdict) = app.verify(ADMIN, &agent_key).await;
    assert_eq!(verdict["code"], json!("revoked"), "{verdict}");
    let (status, _) = app.get("/apikeys", &member).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(leak_events(&app).await, 2);
    // The agent was rotated, not revoked: its next step is an ordinary rotation.
    let (status, rotated) = app.post("/agents/edge-1/rotate", ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");

    // The same alert again revokes nothing more and records nothing more.
    let (status, again) = alert(
        &app,
        batch.as_bytes(),
        Some(KEY_ID),
        Some(&github.sign(batch.as_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(labels(&again), ["false_positive"; 5]);
    assert_eq!(leak_events(&app).await, 2);

    let metrics = app
        .request(Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"keygate_secrets_leaked_total{kind="agent_key",action="rotated"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"keygate_secrets_leaked_total{kind="api_key",action="rotated"} 1"#));
    assert_no_secret_logged();
}

async fn unsigned_tampered_and_unknown_key_alerts_are_refused(backend: Backend) {
    let github = GitHub::new();
    let app = github.start(backend).await;
    let member = app.create_api_key("member").await;
    let body = json!([token(&member, "keygate_api_key")]).to_string();
    let signature = github.sign(body.as_bytes());
    let tampered = body.replace("content", "commit");
    let impostor = sign_with(&random_key(), body.as_bytes());
    let cases: [(&[u8], Option<&str>, Option<&str>); 7] = [
        (body.as_bytes(), None, None),
        (body.as_bytes(), Some(KEY_ID), None),
        (body.as_bytes(), None, Some(&signature)),
        (tampered.as_bytes(), Some(KEY_ID), Some(&signature)),
        (body.as_bytes(), Some("retired"), Some(&signature)),
        (body.as_bytes(), Some("no-such-key"), Some(&signature)),
        (body.as_bytes(), Some(KEY_ID), Some(&impostor)),
    ];
    for (i, (body, key_id, signature)) in cases.into_iter().enumerate() {
        let (status, answer) = alert(&app, body, key_id, signature).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "case {i}: {answer}");
        assert!(!answer.to_string().contains(&member));
    }
    let (status, garbled) = alert(&app, body.as_bytes(), Some(KEY_ID), Some("not base64!")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{garbled}");
    // Nothing was revoked, and every refusal is in the audit trail like a wrong credential.
    let (status, _) = app.get("/apikeys", &member).await;
    assert_eq!(status, StatusCode::OK);
    let refusals = || async {
        let (_, refused) = app.get("/audit?action=authentication.refused", ADMIN).await;
        refused["items"].as_array().unwrap().len()
    };
    // Refusals are written off the request path, moments later.
    let mut seen = refusals().await;
    for _ in 0..100 {
        if seen >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        seen = refusals().await;
    }
    assert_eq!(seen, 8);
    assert_eq!(leak_events(&app).await, 0);
    assert_no_secret_logged();
}

async fn a_notify_organization_keeps_its_secret_and_sees_the_report(backend: Backend) {
    let github = GitHub::new();
    let app = github.start(backend).await;
    let (status, policy) = app
        .request(Method::PUT, "/orgs/policy", Some(ADMIN))
        .json(&json!({"max_lifetime_seconds": {}, "leak_response": "notify"}))
        .send()
        .await
        .map(|response| response.status())
        .map(|status| (status, ()))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{policy:?}");
    let (_, policy) = app.get("/orgs/policy", ADMIN).await;
    assert_eq!(policy["leak_response"], json!("notify"));
    // A client that sets only lifetimes (as clients did before the leak policy) keeps it.
    let (status, policy) = crate::common::read(
        app.request(Method::PUT, "/orgs/policy", Some(ADMIN))
            .json(&json!({"max_lifetime_seconds": {"agent_key": 86400}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["leak_response"], json!("notify"));
    let member = app.create_api_key("member").await;
    let body = json!([token(&member, "keygate_api_key")]).to_string();
    for _ in 0..2 {
        let (status, feedback) = alert(
            &app,
            body.as_bytes(),
            Some(KEY_ID),
            Some(&github.sign(body.as_bytes())),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{feedback}");
        assert_eq!(labels(&feedback), ["true_positive"]);
    }
    // Still working, reported once, and shown on the overview with where it was found.
    let (status, _) = app.get("/apikeys", &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(leak_events(&app).await, 1);
    let (_, overview) = app.get("/overview", &member).await;
    let leaked = &overview["leaked"][0];
    assert_eq!(leaked["action"], json!("notified"));
    assert_eq!(leaked["kind"], json!("api_key"));
    assert_eq!(
        leaked["url"],
        json!("https://github.com/octo/repo/blob/abc123/.env#L3")
    );
    assert_eq!(
        leaked["hint"],
        json!(format!("kgk_…{}", &member[member.len() - 4..]))
    );
    assert_no_secret_logged();
}
