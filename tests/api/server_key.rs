//! The server key's life and the backups that outlive it, on SQLite and Postgres: a rotation
//! to a new key while two instances serve (`keygate server-key rotate` and `status`, run as the
//! built binary), and `keygate backup` / `keygate restore` into a fresh database that a fresh
//! instance serves with the same key, and refuses to serve with another.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use keygate::config::Config;
use keygate::secrets::server_key::ServerKey;
use keygate::storage::sealed::{Resealed, SealedTable};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, create_postgres_database, drop_postgres_database,
    on_both_backends, read,
};
use crate::connections::{create_connection, put};
use crate::ops_manager::{BASE, DigestClient, KeyPair, key_pair, project};

on_both_backends!(
    digest_and_signatures_work_before_during_and_after_a_rotation_on_two_instances,
    a_value_rewritten_during_a_rotation_is_kept,
    a_backup_restores_every_secret_under_its_key_and_refuses_another,
);

/// A server key as `KEYGATE_SECRET_KEY` takes it, and its id.
fn server_key(byte: u8) -> (String, String) {
    let id = ServerKey::from_bytes(&[byte; 32]).id().to_owned();
    (STANDARD.encode([byte; 32]), id)
}

/// `keygate ARGS` run as an operator runs it on the server's host: with `config`'s database
/// settings and server keys in the environment, and nothing else of the test's.
async fn host(config: &Config, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("KEYGATE_")) {
        command.env_remove(name);
    }
    command
        .args(args)
        .env("KEYGATE_DATA_DIR", &config.data_dir)
        .env("KEYGATE_DATABASE_URL", config.database_url());
    if let Some(key) = &config.secret_key {
        command.env("KEYGATE_SECRET_KEY", key);
    }
    if !config.previous_secret_keys.is_empty() {
        command.env(
            "KEYGATE_PREVIOUS_SECRET_KEYS",
            config.previous_secret_keys.join(","),
        );
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `keygate server-key status`: (key id, current, values sealed) per key.
async fn status(config: &Config) -> Vec<(String, bool, i64)> {
    let (ok, stdout, stderr) = host(config, &["server-key", "status"]).await;
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "key",
            "id",
            "current",
            "sealed_secrets",
            "idempotency_keys",
            "connections",
            "total"
        ]
    );
    lines
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.len(), 6, "{line}");
            (
                words[0].to_owned(),
                words[1] == "yes",
                words[5].parse().unwrap(),
            )
        })
        .collect()
}

/// `keygate server-key rotate ARGS`: its stdout.
async fn rotate(config: &Config, args: &[&str]) -> String {
    let args: Vec<&str> = ["server-key", "rotate"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    let (ok, stdout, stderr) = host(config, &args).await;
    assert!(ok, "{stderr}");
    stdout
}

/// An Agentex GitHub signing key of a new agent: (agent name, repository, signing secret).
struct SigningKey {
    agent: String,
    repository: String,
    secret: String,
}

async fn signing_key(app: &TestApp, n: usize) -> SigningKey {
    let agent = format!("edge-{n}");
    app.create_agent(&agent).await;
    let repository = format!("octo-org/repo-{n}");
    let body = json!({"agent_name": agent, "name": repository, "api_key_type": "github"});
    let (status, created) = app.post("/agent_api_keys", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    SigningKey {
        agent,
        repository,
        secret: created["api_key"].as_str().unwrap().to_owned(),
    }
}

/// A delivery signed with the key's secret, as GitHub signs it, checks on `app`.
async fn assert_signature_checks(app: &TestApp, key: &SigningKey) {
    let body = json!({"action": "opened", "repository": {"full_name": key.repository}}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let request = json!({
        "agent_name": key.agent, "source": "github",
        "headers": {"X-Hub-Signature-256": format!("sha256={signature}"), "X-GitHub-Event": "issues"},
        "body_base64": STANDARD.encode(&body),
    });
    let (status, verdict) = app
        .post("/agent_api_keys/verify-signature", ADMIN, request)
        .await;
    assert_eq!(
        (status, &verdict["code"]),
        (StatusCode::OK, &json!("valid")),
        "{verdict}"
    );
}

/// The key pair authenticates by Digest on `app`.
async fn assert_digest_authenticates(app: &TestApp, pair: &KeyPair) {
    let (status, groups) = DigestClient::new(app, pair)
        .send(Method::GET, &format!("{BASE}/groups"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{groups}");
}

async fn assert_all_work(apps: &[&TestApp], pairs: &[KeyPair], signing: &[SigningKey]) {
    for app in apps {
        for pair in pairs {
            assert_digest_authenticates(app, pair).await;
        }
        for key in signing {
            assert_signature_checks(app, key).await;
        }
    }
}

/// Why `config` does not start, as `keygate serve` prints it.
async fn refusal(config: &Config) -> String {
    match keygate::prepare(config).await {
        Ok(_) => panic!("an instance started with server keys the database does not take"),
        Err(err) => keygate::error::with_causes(err.as_ref()),
    }
}

/// Instances move to a new key one at a time (the new key first added to every ring, then made
/// current, the old one kept in the ring), `keygate server-key rotate` re-seals half the
/// values, then the rest, and the old key leaves the rings: through it all, two instances
/// authenticate every key pair by Digest and check every signing secret's signatures.
async fn digest_and_signatures_work_before_during_and_after_a_rotation_on_two_instances(
    backend: Backend,
) {
    let (old, old_id) = server_key(11);
    let (new, new_id) = server_key(12);
    let mut first = TestApp::start_with(backend, |config| {
        config.secret_key = Some(old.clone());
    })
    .await;
    let mut second = first
        .start_beside(|config| config.secret_key = Some(old.clone()))
        .await;
    let mut pairs = Vec::new();
    let mut signing = Vec::new();
    for n in 0..3 {
        pairs.push(key_pair(&first, json!(["ORG_OWNER"])).await);
        signing.push(signing_key(&second, n).await);
    }
    assert_all_work(&[&first, &second], &pairs, &signing).await;
    assert_eq!(status(&first.config).await, [(old_id.clone(), true, 6)]);

    // The new key joins every ring, then becomes current on one instance after the other.
    second.config.previous_secret_keys = vec![new.clone()];
    second.restart().await;
    first.config.secret_key = Some(new.clone());
    first.config.previous_secret_keys = vec![old.clone()];
    first.restart().await;
    pairs.push(key_pair(&first, json!(["ORG_OWNER"])).await);
    assert_all_work(&[&first, &second], &pairs, &signing).await;
    second.config.secret_key = Some(new.clone());
    second.config.previous_secret_keys = vec![old.clone()];
    second.restart().await;
    signing.push(signing_key(&second, 3).await);
    assert_eq!(
        status(&first.config).await,
        [(new_id.clone(), true, 2), (old_id.clone(), false, 6)],
        "new values are sealed under the new key"
    );

    // Half-way: an interrupted rotation (here, one stopped by its limit) leaves both kinds.
    let done = rotate(&first.config, &["--limit", "3", "--batch-size", "2"]).await;
    assert!(
        done.contains("3 values re-sealed")
            && done.contains(&format!("3 values remain under older keys: {old_id} (3)")),
        "{done}"
    );
    assert_eq!(
        status(&second.config).await,
        [(new_id.clone(), true, 5), (old_id.clone(), false, 3)]
    );
    assert_all_work(&[&first, &second], &pairs, &signing).await;
    let mut without_old = first.config.clone();
    without_old.previous_secret_keys.clear();
    let refused = refusal(&without_old).await;
    assert!(
        refused.contains(&format!("server key id {old_id} (3 values)"))
            && refused.contains("KEYGATE_PREVIOUS_SECRET_KEYS"),
        "{refused}"
    );
    assert!(!refused.contains(&old) && !refused.contains(&new));

    // The rest, resumed where it stopped; a run with nothing left to do does nothing.
    let done = rotate(&second.config, &[]).await;
    assert!(
        done.contains("3 values re-sealed") && done.contains("0 values remain under older keys"),
        "{done}"
    );
    assert!(
        rotate(&second.config, &[])
            .await
            .contains("0 values re-sealed")
    );
    assert_eq!(
        status(&first.config).await,
        [(new_id.clone(), true, 8), (old_id.clone(), false, 0)]
    );
    assert_all_work(&[&first, &second], &pairs, &signing).await;

    // The old key leaves the rings.
    for app in [&mut first, &mut second] {
        app.config.previous_secret_keys.clear();
        app.restart().await;
    }
    assert_all_work(&[&first, &second], &pairs, &signing).await;
    // An instance still holding only the old key is told which key it lacks.
    let mut stale = first.config.clone();
    stale.secret_key = Some(old.clone());
    let refused = refusal(&stale).await;
    assert!(
        refused.contains(&format!("server key id {new_id}")),
        "{refused}"
    );
}

/// A value a request rewrites between a rotation's reading and its writing (here, a
/// connection's secret replaced through an instance that still seals under the old key) is
/// kept, not overwritten with the older one.
async fn a_value_rewritten_during_a_rotation_is_kept(backend: Backend) {
    let (old, _) = server_key(13);
    let (_, new_id) = server_key(14);
    let app = TestApp::start_with(backend, |config| {
        config.secret_key = Some(old.clone());
    })
    .await;
    let first_secret = json!({"envvar:PASS": "Zmlyc3Qtc2VjcmV0LXZhbHVl"});
    create_connection(&app, "pg-rw", "postgres", json!({"secret": first_secret})).await;

    let store = keygate::storage::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let read = store
        .sealed_values(SealedTable::Connections, &new_id, None, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    let second_secret = json!({"envvar:PASS": "c2Vjb25kLXNlY3JldC12YWx1ZQ=="});
    let body = json!({"type": "database", "subtype": "postgres", "agent_id": "default", "secret": second_secret});
    let (status, _) = put(&app, "/connections/pg-rw", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK);

    let ring = keygate::secrets::server_key::Keyring::new(
        ServerKey::from_bytes(&[14; 32]),
        std::slice::from_ref(&old),
    )
    .unwrap();
    let stale: Vec<Resealed> = read
        .into_iter()
        .map(|value| Resealed {
            new: ring.seal(
                &ring.open(&value.sealed, &value.associated).unwrap(),
                &value.associated,
            ),
            old: value.sealed,
            place: value.place,
        })
        .collect();
    assert_eq!(store.reseal(&stale).await.unwrap(), 0, "nothing replaced");
    let (_, connection) = app.get("/connections/pg-rw", ADMIN).await;
    assert_eq!(connection["secret"], second_secret);
}

/// One secret of every kind, an idempotent creation and the audit trail of it all are backed
/// up while the server runs, restored into a fresh database, and served by a fresh instance
/// with the same server key as they were; with another key the restored database is refused.
/// The backup holds no trace of the key.
async fn a_backup_restores_every_secret_under_its_key_and_refuses_another(backend: Backend) {
    let (key, key_id) = server_key(21);
    let app = TestApp::start_with(backend, |config| {
        config.secret_key = Some(key.clone());
    })
    .await;
    let member = app.create_api_key("member").await;
    let dsn = app.create_agent("edge-1").await;
    let upstream = json!({"envvar:PASS": "dXBzdHJlYW0tcGFzc3dvcmQ="});
    create_connection(&app, "pg-main", "postgres", json!({"secret": upstream})).await;
    let (status, identity) = app
        .post(
            "/machineidentities",
            ADMIN,
            json!({"name": "ci-runner", "connection_names": ["pg-main"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    let machine = identity["credentials"][0]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    let pair = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "backups").await;
    let (status, agent_key) = app
        .post(
            &format!("{BASE}/groups/{project}/agentapikeys"),
            ADMIN,
            json!({"desc": "rack 7"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{agent_key}");
    let (status, agentex) = app
        .post(
            "/agent_api_keys",
            ADMIN,
            json!({"agent_name": "edge-1", "name": "ci", "api_key_type": "internal"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{agentex}");
    let signing = signing_key(&app, 2).await;
    let idempotent = |app: &TestApp| {
        app.request(Method::POST, "/agents", Some(ADMIN))
            .header("idempotency-key", "provision-edge-9")
            .json(&json!({"name": "edge-9"}))
    };
    let (status, first_answer) = read(idempotent(&app).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{first_answer}");
    let (_, audit) = app.get("/audit?limit=200", ADMIN).await;
    assert!(audit["items"].as_array().unwrap().len() >= 10, "{audit}");
    // What `POST /verify` answers for; the API key authenticates (below).
    let secrets = [
        dsn.as_str(),
        machine.as_str(),
        agent_key["key"].as_str().unwrap(),
        agentex["api_key"].as_str().unwrap(),
    ];

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("keygate.backup");
    let (ok, _, stderr) = host(&app.config, &["backup", "--to", backup.to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("holds no server key"), "{stderr}");
    let written = std::fs::read(&backup).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for needle in [key.as_bytes(), &[21u8; 32][..]] {
        assert!(
            !written.windows(needle.len()).any(|window| window == needle),
            "the backup holds the server key"
        );
    }
    let (again, _, stderr) = host(&app.config, &["backup", "--to", backup.to_str().unwrap()]).await;
    assert!(!again && stderr.contains("exists already"), "{stderr}");

    // A fresh data directory, or a fresh Postgres database.
    let restored_dir = tempfile::tempdir().unwrap();
    let mut target = app.config.clone();
    target.data_dir = restored_dir.path().join("data");
    let postgres_db = match backend {
        Backend::Sqlite => {
            target.database_url = None;
            None
        }
        Backend::Postgres => {
            let (name, url) = create_postgres_database().await;
            target.database_url = Some(url);
            Some(name)
        }
    };
    let restore = ["restore", "--from", backup.to_str().unwrap()];
    let (ok, stdout, stderr) = host(&target, &restore).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("(id {key_id})")) && stdout.contains(&key_id),
        "{stderr}{stdout}"
    );
    let (again, _, stderr) = host(&target, &restore).await;
    assert!(
        !again && (stderr.contains("exists already") || stderr.contains("has tables already")),
        "{stderr}"
    );

    // Another key: refused, saying why.
    let mut other = target.clone();
    other.database_url = Some(target.database_url());
    other.secret_key = Some(server_key(22).0);
    let refused = refusal(&other).await;
    assert!(
        refused.contains(&format!("server key id {key_id}"))
            && refused.contains("KEYGATE_SECRET_KEY"),
        "{refused}"
    );
    assert!(
        !refused.contains(&key) && !refused.contains('\n'),
        "{refused}"
    );

    // The same key: everything as it was.
    let url = target.database_url();
    let restored = TestApp::start_with(Backend::Sqlite, |config| {
        config.database_url = Some(url);
        config.secret_key = Some(key.clone());
    })
    .await;
    let (_, restored_audit) = restored.get("/audit?limit=200", ADMIN).await;
    assert_eq!(restored_audit, audit, "the audit trail");
    for secret in secrets {
        let (status, verdict) = restored.verify(ADMIN, secret).await;
        assert_eq!(
            (status, &verdict["code"]),
            (StatusCode::OK, &json!("valid")),
            "{verdict}"
        );
    }
    let (_, verdict) = restored
        .post(
            "/verify",
            ADMIN,
            json!({"key": machine, "connection": "pg-main"}),
        )
        .await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
    assert_digest_authenticates(&restored, &pair).await;
    assert_signature_checks(&restored, &signing).await;
    let (_, connection) = restored.get("/connections/pg-main", ADMIN).await;
    assert_eq!(
        connection["secret"], upstream,
        "the connection's sealed secret"
    );
    let (status, member_view) = restored.get("/agents", &member).await;
    assert_eq!(status, StatusCode::OK, "{member_view}");
    let replay = idempotent(&restored).send().await.unwrap();
    assert!(replay.headers().get("idempotent-replayed").is_some());
    let (status, replayed): (StatusCode, Value) = read(replay).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, first_answer));

    drop(restored);
    if let Some(name) = postgres_db {
        drop_postgres_database(&name).await;
    }
}
