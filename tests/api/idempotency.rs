//! `Idempotency-Key` on create and rotate routes, on SQLite and Postgres: a retry replays the
//! original answer, secret included, and creates nothing; another request with the key is 422;
//! concurrent retries create one resource; answers survive a restart, are kept only sealed, and
//! are purged after the window; every family honours the key in its dialect.

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, Database, TestApp, on_both_backends, read};

on_both_backends!(
    a_retry_replays_the_same_secret_and_creates_nothing,
    the_same_key_with_another_body_is_422,
    concurrent_retries_create_exactly_one_resource,
    an_answer_is_replayed_after_a_restart,
    another_callers_same_key_is_independent,
    a_refused_request_keeps_nothing_and_its_retry_runs,
    a_running_claim_is_409_and_an_abandoned_one_is_taken_over,
    stored_answers_hold_no_secret_in_plain,
    answers_are_purged_after_the_window,
    a_malformed_key_is_refused_in_the_dialect,
    every_family_honours_the_key,
    a_machine_identity_whose_answer_was_lost_is_answered_to_the_retry,
    an_api_key_whose_answer_was_lost_is_answered_to_the_retry,
    an_ops_manager_agent_key_whose_answer_was_lost_is_answered_to_the_retry,
    an_agentex_key_whose_answer_was_lost_is_answered_to_the_retry,
);

/// What an answer came to: status, whether it was a replay, body.
struct Answer {
    status: StatusCode,
    replayed: bool,
    body: Value,
}

async fn post(app: &TestApp, path: &str, token: &str, key: &str, body: Value) -> Answer {
    let response = app
        .request(Method::POST, path, Some(token))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let (status, body) = read(response).await;
    Answer {
        status,
        replayed,
        body,
    }
}

async fn agent_count(app: &TestApp) -> usize {
    let (status, agents) = app.get("/agents", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{agents}");
    agents.as_array().unwrap().len()
}

impl Database {
    async fn count_keys(&mut self) -> i64 {
        self.count("SELECT COUNT(*) FROM idempotency_keys").await
    }

    /// Every column of every stored key, as bytes.
    async fn stored_bytes(&mut self) -> Vec<u8> {
        let sql = "SELECT idempotency_key, request_digest, sealed_response, sealed_key_id
                   FROM idempotency_keys";
        let rows: Vec<StoredRow> = match self {
            Database::Sqlite(db) => sqlx::query_as(sql).fetch_all(db).await.unwrap(),
            Database::Postgres(db) => sqlx::query_as(sql).fetch_all(db).await.unwrap(),
        };
        assert!(!rows.is_empty());
        let mut bytes = Vec::new();
        for (key, digest, sealed, key_id) in rows {
            assert!(sealed.as_ref().is_some_and(|s| !s.is_empty()), "sealed");
            bytes.extend(key.into_bytes());
            bytes.extend(digest);
            bytes.extend(sealed.unwrap_or_default());
            bytes.extend(key_id.unwrap_or_default().into_bytes());
        }
        bytes
    }
}

/// Key, request digest, sealed response and sealing key id.
type StoredRow = (String, Vec<u8>, Option<Vec<u8>>, Option<String>);

/// A timestamp literal both databases read as the server writes it.
fn at(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

async fn a_retry_replays_the_same_secret_and_creates_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "edge-1"});
    let first = post(&app, "/agents", ADMIN, "create-edge-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!first.replayed);
    // Served under `/api` too: the same route, so the same request.
    for path in ["/agents", "/api/agents"] {
        let retry = post(&app, path, ADMIN, "create-edge-1", body.clone()).await;
        assert_eq!(retry.status, StatusCode::CREATED);
        assert!(retry.replayed);
        assert_eq!(retry.body, first.body, "the same DSN, secret included");
    }
    assert_eq!(agent_count(&app).await, 1);
    let member = app.create_api_key("member").await;
    let (_, verdict) = app
        .verify(&member, first.body["token"].as_str().unwrap())
        .await;
    assert_eq!(verdict["code"], "valid", "{verdict}");

    // Without the header, the same body is a new request (a conflict on the name).
    let (status, _) = app.post("/agents", ADMIN, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn the_same_key_with_another_body_is_422(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = post(
        &app,
        "/apikeys",
        ADMIN,
        "k1",
        json!({"name": "ci", "role": "member"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let other = post(
        &app,
        "/apikeys",
        ADMIN,
        "k1",
        json!({"name": "ci", "role": "admin"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        other.body["code"], "idempotency_key_reused",
        "{}",
        other.body
    );
    // Another route is another request too.
    let elsewhere = post(&app, "/agents", ADMIN, "k1", json!({"name": "edge-ci"})).await;
    assert_eq!(elsewhere.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        elsewhere
            .body
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["message"],
        "hoop's dialect: {}",
        elsewhere.body
    );
    assert_eq!(agent_count(&app).await, 0);
}

async fn concurrent_retries_create_exactly_one_resource(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "raced"});
    let answers = futures::future::join_all(
        (0..16).map(|_| post(&app, "/agents", ADMIN, "one-agent", body.clone())),
    )
    .await;
    let created: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => assert_eq!(answer.body, created[0].body),
            StatusCode::CONFLICT => assert!(answer.body["message"].is_string()),
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert_eq!(
        created.iter().filter(|answer| !answer.replayed).count(),
        1,
        "exactly one ran"
    );
    assert_eq!(agent_count(&app).await, 1);
    let retry = post(&app, "/agents", ADMIN, "one-agent", body).await;
    assert!(retry.replayed);
    assert_eq!(retry.body, created[0].body);
}

async fn an_answer_is_replayed_after_a_restart(backend: Backend) {
    let mut app = TestApp::start(backend).await;
    app.create_agent("edge-1").await;
    let rotated = post(&app, "/agents/edge-1/rotate", ADMIN, "rotate-1", json!({})).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    app.restart().await;
    let retry = post(&app, "/agents/edge-1/rotate", ADMIN, "rotate-1", json!({})).await;
    assert!(retry.replayed);
    assert_eq!((retry.status, &retry.body), (rotated.status, &rotated.body));
    let member = app.create_api_key("member").await;
    let (_, verdict) = app
        .verify(&member, rotated.body["token"].as_str().unwrap())
        .await;
    assert_eq!(
        verdict["code"], "valid",
        "the replayed DSN is the current one: {verdict}"
    );
}

async fn another_callers_same_key_is_independent(backend: Backend) {
    let app = TestApp::start(backend).await;
    let other_admin = app.create_api_key("admin").await;
    let mine = post(&app, "/agents", ADMIN, "shared", json!({"name": "edge-a"})).await;
    let theirs = post(
        &app,
        "/agents",
        &other_admin,
        "shared",
        json!({"name": "edge-b"}),
    )
    .await;
    assert_eq!(mine.status, StatusCode::CREATED);
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    assert!(!theirs.replayed);
    assert_ne!(mine.body, theirs.body);
    assert_eq!(agent_count(&app).await, 2);
}

async fn a_refused_request_keeps_nothing_and_its_retry_runs(backend: Backend) {
    let app = TestApp::start(backend).await;
    let refused = post(
        &app,
        "/agents",
        ADMIN,
        "fix-me",
        json!({"name": "no spaces here"}),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    // Errors are not kept: the corrected request runs under the same key.
    let fixed = post(&app, "/agents", ADMIN, "fix-me", json!({"name": "fixed"})).await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);
    assert!(!fixed.replayed);
    let member = app.create_api_key("member").await;
    let forbidden = post(
        &app,
        "/agents",
        &member,
        "as-member",
        json!({"name": "edge-m"}),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(Database::open(&app).await.count_keys().await, 1);
}

async fn a_running_claim_is_409_and_an_abandoned_one_is_taken_over(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "edge-1"});
    let first = post(&app, "/agents", ADMIN, "crash", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // As if that request were still running on another instance (any uuid names the claim).
    let mut db = Database::open(&app).await;
    let claim = |until: String| {
        format!(
            "UPDATE idempotency_keys SET sealed_response = NULL, sealed_key_id = NULL,
             claim_id = principal_id, locked_until = '{until}'"
        )
    };
    assert_eq!(
        db.execute(&claim(at(chrono::Duration::minutes(1)))).await,
        1
    );
    let running = post(&app, "/agents", ADMIN, "crash", body.clone()).await;
    assert_eq!(running.status, StatusCode::CONFLICT, "{}", running.body);
    assert_eq!(
        running.body["message"]
            .as_str()
            .map(|m| m.contains("in progress")),
        Some(true)
    );
    assert_eq!(
        db.execute(&claim(at(-chrono::Duration::seconds(1)))).await,
        1
    );
    // Its server died: the retry runs again (here the agent exists, so hoop says so).
    let taken_over = post(&app, "/agents", ADMIN, "crash", body).await;
    assert_eq!(taken_over.status, StatusCode::CONFLICT);
    assert_eq!(db.count_keys().await, 0, "a refused retry keeps nothing");
}

async fn stored_answers_hold_no_secret_in_plain(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = post(
        &app,
        "/apikeys",
        ADMIN,
        "sealed",
        json!({"name": "ci", "role": "member"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.body["key"].as_str().unwrap().to_owned();
    let stored = Database::open(&app).await.stored_bytes().await;
    assert!(!contains(&stored, secret.as_bytes()));
    if backend == Backend::Sqlite {
        // Everything SQLite keeps on disk, the write-ahead log included.
        for file in ["keygate.db", "keygate.db-wal"] {
            let path = app.config.data_dir.join(file);
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(!contains(&bytes, secret.as_bytes()), "{}", path.display());
            }
        }
    }
    let retry = post(
        &app,
        "/apikeys",
        ADMIN,
        "sealed",
        json!({"name": "ci", "role": "member"}),
    )
    .await;
    assert_eq!(retry.body["key"], secret.as_str());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn answers_are_purged_after_the_window(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.idempotency_window_secs = 1).await;
    let first = post(
        &app,
        "/agents",
        ADMIN,
        "short-lived",
        json!({"name": "edge-a"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let mut db = Database::open(&app).await;
    assert_eq!(db.count_keys().await, 1);
    // An answer older than the window is gone, purged by the background task.
    let mut purged = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if db.count_keys().await == 0 {
            purged = true;
            break;
        }
    }
    assert!(purged, "not purged within 5 s of a 1 s window");
    let again = post(
        &app,
        "/agents",
        ADMIN,
        "short-lived",
        json!({"name": "edge-b"}),
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a new request: {}",
        again.body
    );
    assert!(!again.replayed);
}

async fn a_malformed_key_is_refused_in_the_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let too_long = "k".repeat(256);
    for key in [too_long.as_str(), "tab\there"] {
        let native = post(
            &app,
            "/apikeys",
            ADMIN,
            key,
            json!({"name": "x", "role": "member"}),
        )
        .await;
        assert_eq!(
            native.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            native.body
        );
        assert_eq!(
            native.body["errors"][0]["location"], "header",
            "{}",
            native.body
        );
        assert_eq!(native.body["errors"][0]["field"], "Idempotency-Key");
        let agentex = post(&app, "/agent_api_keys", ADMIN, key, json!({"name": "x"})).await;
        assert_eq!(agentex.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            agentex.body["detail"][0]["loc"],
            json!(["header", "Idempotency-Key"]),
            "{}",
            agentex.body
        );
    }
    let ops = post(&app, "/groups", ADMIN, &too_long, json!({"name": "proj"})).await;
    assert_eq!(ops.status, StatusCode::BAD_REQUEST);
    assert_eq!(ops.body["errorCode"], "INVALID_ATTRIBUTE", "{}", ops.body);
    assert_eq!(Database::open(&app).await.count_keys().await, 0);
}

async fn every_family_honours_the_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("edge-1").await;

    // Native: an organization, and an API key's rotation.
    assert_replayed(&app, "/orgs", json!({"name": "acme"}), StatusCode::CREATED).await;
    let (_, member) = app
        .post("/apikeys", ADMIN, json!({"name": "m", "role": "member"}))
        .await;
    let path = format!("/apikeys/{}/rotate", member["id"].as_str().unwrap());
    let rotated = assert_replayed(&app, &path, json!({}), StatusCode::CREATED).await;
    let (status, _) = app.get("/apikeys", rotated["key"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the replayed key is the working one"
    );

    // Ops Manager: a project and an agent key (200), its errors in Ops Manager's shape.
    let project =
        assert_replayed(&app, "/groups", json!({"name": "p1"}), StatusCode::CREATED).await;
    let project = project["id"].as_str().unwrap();
    let agent_keys = format!("/api/public/v1.0/groups/{project}/agentapikeys");
    let key = assert_replayed(&app, &agent_keys, json!({"desc": "ci"}), StatusCode::OK).await;
    assert!(key["key"].as_str().unwrap().starts_with("mdbak_"), "{key}");
    assert_eq!(
        app.get(&agent_keys, ADMIN)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let reused = post(
        &app,
        &agent_keys,
        ADMIN,
        "key-for:/groups",
        json!({"desc": "ci"}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reused.body["errorCode"], "IDEMPOTENCY_KEY_REUSED",
        "{}",
        reused.body
    );

    // Agentex: an agent API key (200), its errors in FastAPI's shape.
    let body = json!({"agent_name": "edge-1", "name": "ci"});
    assert_replayed(&app, "/agent_api_keys", body, StatusCode::OK).await;
    let listed = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await.1;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let reused = post(
        &app,
        "/agent_api_keys",
        ADMIN,
        "key-for:/groups",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reused.body["detail"].is_string(), "{}", reused.body);

    // hoop: a machine identity.
    let body = json!({"name": "ci-bot", "connection_names": []});
    assert_replayed(&app, "/api/machineidentities", body, StatusCode::CREATED).await;
}

/// Sends `body` to `path` with `key`, makes the server lose the answer, and retries with the
/// same key until the first attempt's claim has ended; the retry's answer.
///
/// On Postgres the request is held where its change meets its answer: another transaction
/// holds the row of its idempotency claim (and, until that is in place, the secrets table, so
/// the change cannot pass first) until the server's request timeout (1 s) ends the request,
/// then deletes the claim. A change committed apart from its answer would now be found by the
/// retry as "already exists", or made twice. On SQLite, another writer holds the database
/// instead.
async fn retried_after_a_lost_answer(app: &TestApp, path: &str, key: &str, body: Value) -> Answer {
    assert_eq!(
        app.config.request_timeout_secs, 1,
        "start the app with a 1 s timeout"
    );
    use sqlx::Connection;
    let url = app.config.database_url();
    let send = || {
        let (client, url) = (reqwest::Client::new(), app.url(path));
        let (key, body) = (key.to_owned(), body.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ADMIN)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    if url.starts_with("postgres") {
        let mut secrets = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut claims = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut gate = secrets.begin().await.unwrap();
        sqlx::query("LOCK TABLE secrets IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *gate)
            .await
            .unwrap();
        let first = send();
        wait_for_claim(app, key).await;
        let mut hold = claims.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM idempotency_keys WHERE idempotency_key = '{key}' FOR UPDATE"
        )))
        .execute(&mut *hold)
        .await
        .unwrap();
        gate.commit().await.unwrap();
        let status = first.await.unwrap();
        assert!(
            !status.is_success(),
            "the first answer got through: {status}"
        );
        // The claim is gone as a dead server's would be once its lease ran out: only an answer
        // written with the change can be found by the retry.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM idempotency_keys WHERE idempotency_key = '{key}'"
        )))
        .execute(&mut *hold)
        .await
        .unwrap();
        hold.commit().await.unwrap();
    } else {
        let first = send();
        wait_for_claim(app, key).await;
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let hold = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        first.await.unwrap();
        hold.commit().await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let retry = post(app, path, ADMIN, key, body.clone()).await;
        let in_progress =
            retry.status == StatusCode::CONFLICT && retry.body.to_string().contains("in progress");
        if !in_progress || std::time::Instant::now() > deadline {
            return retry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the request has claimed `key`.
async fn wait_for_claim(app: &TestApp, key: &str) {
    let mut db = Database::open(app).await;
    let claimed = format!("SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = '{key}'");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.count(&claimed).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never claimed its key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn with_a_short_timeout(backend: Backend) -> TestApp {
    TestApp::start_with(backend, |config| config.request_timeout_secs = 1).await
}

async fn a_machine_identity_whose_answer_was_lost_is_answered_to_the_retry(backend: Backend) {
    let app = with_a_short_timeout(backend).await;
    app.create_agent("edge-1").await;
    let connection = json!({"name": "prod-pg", "type": "database", "subtype": "postgres",
        "agent_id": "edge-1", "database_name": "app"});
    assert_eq!(
        app.post("/connections", ADMIN, connection).await.0,
        StatusCode::CREATED
    );
    let body = json!({"name": "ci-bot", "connection_names": ["prod-pg"]});
    let retry = retried_after_a_lost_answer(&app, "/machineidentities", "lost-mi", body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let credential = retry.body["credentials"][0]["username"].as_str().unwrap();
    let (_, verified) = app
        .post(
            "/verify",
            ADMIN,
            json!({"key": credential, "connection": "prod-pg"}),
        )
        .await;
    assert_eq!(verified["code"], "valid", "{verified}");
    let (_, listed) = app.get("/machineidentities", ADMIN).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

async fn an_api_key_whose_answer_was_lost_is_answered_to_the_retry(backend: Backend) {
    let app = with_a_short_timeout(backend).await;
    let body = json!({"name": "ci", "role": "member"});
    let retry = retried_after_a_lost_answer(&app, "/apikeys", "lost-key", body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let (status, _) = app
        .get("/apikeys", retry.body["key"].as_str().unwrap())
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the key shown is the one that works"
    );
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let named_ci = keys["items"].as_array().unwrap().iter();
    assert_eq!(
        named_ci.filter(|key| key["name"] == "ci").count(),
        1,
        "{keys}"
    );
}

async fn an_ops_manager_agent_key_whose_answer_was_lost_is_answered_to_the_retry(backend: Backend) {
    let app = with_a_short_timeout(backend).await;
    let (_, project) = app.post("/groups", ADMIN, json!({"name": "p1"})).await;
    let path = format!("/groups/{}/agentapikeys", project["id"].as_str().unwrap());
    let retry = retried_after_a_lost_answer(&app, &path, "lost-om", json!({"desc": "ci"})).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    let key = retry.body["key"].as_str().unwrap();
    let (_, verified) = app.verify(ADMIN, key).await;
    assert_eq!(verified["code"], "valid", "{verified}");
    let (_, listed) = app.get(&path, ADMIN).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

async fn an_agentex_key_whose_answer_was_lost_is_answered_to_the_retry(backend: Backend) {
    let app = with_a_short_timeout(backend).await;
    app.create_agent("edge-1").await;
    let body = json!({"agent_name": "edge-1", "name": "ci"});
    let retry = retried_after_a_lost_answer(&app, "/agent_api_keys", "lost-agx", body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    let key = retry.body["api_key"].as_str().unwrap();
    let (_, verified) = app.verify(ADMIN, key).await;
    assert_eq!(verified["code"], "valid", "{verified}");
    let listed = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await.1;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

/// Sends `body` to `path` twice with one key: the second answer is a replay of the first.
async fn assert_replayed(app: &TestApp, path: &str, body: Value, status: StatusCode) -> Value {
    let key = format!("key-for:{path}");
    let first = post(app, path, ADMIN, &key, body.clone()).await;
    assert_eq!(first.status, status, "{path}: {}", first.body);
    let retry = post(app, path, ADMIN, &key, body).await;
    assert!(retry.replayed, "{path}");
    assert_eq!((retry.status, &retry.body), (status, &first.body), "{path}");
    first.body
}
