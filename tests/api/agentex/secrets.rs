//! Where Agentex secrets never go: logs, error bodies, reads, and the database in plain text.
//! A signing secret's ciphertext opens only in its own row.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{agent, create_key, created_key};
use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, execute_sql, on_both_backends, read,
};

on_both_backends!(
    agentex_secrets_never_reach_logs_errors_or_reads,
    signing_secrets_are_encrypted_at_rest,
    a_sealed_secret_copied_to_another_row_does_not_open,
);

const CHOSEN_BEARER: &str = "chosen-bearer-secret:Qm4-Zt81_xLp09AvRw";
const CHOSEN_GITHUB: &str = "chosen-github-secret:Hs72-Kq05_nBv31EyTu";
const SLACK: &str = "5d3e0c1f9a8b7c6d5e4f3a2b1c0d9e8f";

async fn agentex_secrets_never_reach_logs_errors_or_reads(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let mut secrets: Vec<String> = vec![CHOSEN_BEARER.into(), CHOSEN_GITHUB.into(), SLACK.into()];
    for body in [
        json!({"agent_name": "edge-1", "name": "minted"}),
        json!({"agent_name": "edge-1", "name": "acp", "api_key_type": "internal"}),
        json!({"agent_name": "edge-1", "name": "octo/minted", "api_key_type": "github"}),
        json!({"agent_name": "edge-1", "name": "chosen", "api_key": CHOSEN_BEARER}),
        json!({"agent_name": "edge-1", "name": "octo/chosen", "api_key_type": "github", "api_key": CHOSEN_GITHUB}),
        json!({"agent_name": "edge-1", "name": "A0123", "api_key_type": "slack", "api_key": SLACK}),
    ] {
        let created = created_key(&app, body).await;
        secrets.push(created["api_key"].as_str().unwrap().to_owned());
    }

    // Use every secret rightly and wrongly, and paste it into every wrong place.
    let mut answers = Vec::new();
    for secret in &secrets {
        for request in [
            json!({"key": secret}),
            json!({"key": format!("AgentKey {secret}")}),
            json!({"key": secret, "agent_api_key_type": "internal"}),
        ] {
            answers.push(app.post("/verify", ADMIN, request).await);
        }
        for body in [
            json!({"agent_name": secret, "name": "x"}),
            json!({"agent_id": secret, "name": "x"}),
            json!({"agent_name": "edge-1", "name": "x", "api_key_type": secret}),
            json!({"agent_name": "edge-1", "name": "x", (secret.clone()): 1}),
            json!({"agent_name": "edge-1", "name": "chosen", "api_key": secret}),
            json!({"agent_name": "edge-1", "name": [secret]}),
        ] {
            answers.push(create_key(&app, body).await);
        }
        // Query strings, unlike paths, are never logged: secrets pasted there must not come back.
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for path in [
            format!("/agent_api_keys?agent_name={encoded}"),
            format!("/agent_api_keys?agent_id={encoded}"),
            format!("/agent_api_keys?agent_name=edge-1&limit={encoded}&page_number={encoded}"),
            format!("/agent_api_keys/name/x?agent_name=edge-1&api_key_type={encoded}"),
        ] {
            answers.push(app.get(&path, ADMIN).await);
        }
        let signature = json!({
            "agent_name": "edge-1", "source": "github", "body_base64": secret,
            "headers": {"x-hub-signature-256": format!("sha256={secret}")},
        });
        answers.push(
            app.post("/agent_api_keys/verify-signature", ADMIN, signature)
                .await,
        );
        let raw = format!("{{\"agent_name\": \"edge-1\", \"name\": \"x\", \"api_key\": \"{secret}");
        let response = app
            .request(Method::POST, "/agent_api_keys", Some(ADMIN))
            .body(raw)
            .send()
            .await
            .unwrap();
        answers.push(read(response).await);
    }
    assert!(
        answers.iter().any(|(status, _)| status.is_client_error()),
        "the wrong uses were refused"
    );
    let (_, listed) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    answers.push((StatusCode::OK, listed));
    let logs = captured_logs();
    assert!(
        logs.contains("/agent_api_keys"),
        "the request logs were captured"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
        // Agentex's 404 names the agent asked for; a chosen secret that is also a possible agent
        // name comes back there, to the caller who sent it (minted secrets never do).
        let agent_asked_for =
            json!({"detail": format!("Item with name '{secret}' does not exist.")});
        for (status, body) in &answers {
            assert!(
                !body.to_string().contains(secret.as_str()) || *body == agent_asked_for,
                "a secret came back: {status} {body}"
            );
            if *body == agent_asked_for {
                assert!(
                    !secret.starts_with("agx_"),
                    "a minted secret is never echoed"
                );
            }
        }
    }
}

/// Every byte the database keeps for `table`, as text (Postgres) or the whole file with its
/// write-ahead log (SQLite).
async fn stored_bytes(app: &TestApp, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = app.config.data_dir.join(format!("keygate.db{suffix}"));
                bytes.extend(std::fs::read(path).unwrap_or_default());
            }
            bytes
        }
        Backend::Postgres => {
            let url = app.config.database_url();
            let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let mut bytes = Vec::new();
            for table in ["agent_api_keys", "secrets", "owners", "sealed_secrets"] {
                let sql = format!("SELECT t::text FROM {table} t");
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                rows.into_iter()
                    .for_each(|(row,)| bytes.extend(row.into_bytes()));
            }
            let sealed: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT sealed FROM sealed_secrets")
                .fetch_all(&mut db)
                .await
                .unwrap();
            assert!(!sealed.is_empty(), "the signing secrets are kept, sealed");
            sealed.into_iter().for_each(|(row,)| bytes.extend(row));
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn signing_secrets_are_encrypted_at_rest(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let minted = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo/minted", "api_key_type": "github"}),
    )
    .await;
    let minted = minted["api_key"].as_str().unwrap().to_owned();
    for body in [
        json!({"agent_name": "edge-1", "name": "octo/chosen", "api_key_type": "github", "api_key": CHOSEN_GITHUB}),
        json!({"agent_name": "edge-1", "name": "A0123", "api_key_type": "slack", "api_key": SLACK}),
        json!({"agent_name": "edge-1", "name": "chosen", "api_key": CHOSEN_BEARER}),
    ] {
        created_key(&app, body).await;
    }
    let stored = stored_bytes(&app, backend).await;
    assert!(contains(&stored, b"octo/chosen"), "the rows were read");
    for secret in [minted.as_str(), CHOSEN_GITHUB, SLACK, CHOSEN_BEARER] {
        assert!(
            !contains(&stored, secret.as_bytes()),
            "{secret} is stored in plain text"
        );
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !contains(&stored, hex.as_bytes()),
            "{secret} is stored as hex"
        );
    }
}

async fn a_sealed_secret_copied_to_another_row_does_not_open(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    for (name, secret) in [
        ("octo/first", CHOSEN_GITHUB),
        ("octo/second", CHOSEN_BEARER),
    ] {
        let body = json!({"agent_name": "edge-1", "name": name, "api_key_type": "github", "api_key": secret});
        created_key(&app, body).await;
    }
    let copy = "UPDATE sealed_secrets SET sealed =
                  (SELECT x.sealed FROM sealed_secrets x
                   JOIN secrets s ON s.id = x.secret_id
                   JOIN agent_api_keys k ON k.id = s.owner_id WHERE k.name = 'octo/first')
                WHERE secret_id =
                  (SELECT s.id FROM secrets s
                   JOIN agent_api_keys k ON k.id = s.owner_id WHERE k.name = 'octo/second')";
    execute_sql(&app, copy).await;
    let body = r#"{"repository":{"full_name":"octo/second"}}"#;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(CHOSEN_GITHUB.as_bytes()).unwrap();
    hmac::Mac::update(&mut mac, body.as_bytes());
    let hex: String = hmac::Mac::finalize(mac)
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let request = json!({
        "agent_name": "edge-1", "source": "github",
        "headers": {"x-hub-signature-256": format!("sha256={hex}")},
        "body_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, body),
    });
    let (status, answer) = app
        .post("/agent_api_keys/verify-signature", ADMIN, request)
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"detail": "internal error"})
        ),
        "the first key's ciphertext does not open as the second key's"
    );
    assert!(captured_logs().contains("does not open with server key"));
}
