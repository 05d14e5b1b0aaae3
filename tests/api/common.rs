//! Test harness: starts the real server on `127.0.0.1:0` against a fresh database and speaks
//! HTTP to it. Every behaviour test runs on SQLite and on Postgres (a fresh database per test,
//! dropped afterwards). The Postgres variants are `#[ignore]`d, so a run without a Postgres
//! server reports them as ignored rather than passed: run them with
//! `KEYGATE_TEST_POSTGRES_URL=… cargo test -- --include-ignored`.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use clap::Parser;
use keygate::config::Config;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Names the Postgres server the Postgres suite uses, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_ENV: &str = "KEYGATE_TEST_POSTGRES_URL";

/// The admin key of organization `default` in every test server.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn(Backend)` as a SQLite test and a Postgres test; the Postgres one
/// fails, rather than passes, when it is run without its server.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Everything every test server has logged, to prove that no secret is ever written there.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Secrets keygate would accept (prefix, shape and checksum) found anywhere in the captured logs,
/// and chosen secrets ([`forbid_in_logs`]) found there: a leak either way.
static LEAKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secrets keygate did not mint (the bootstrap token, an Agentex key chosen by its caller) that
/// must never be logged either.
static CHOSEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds a secret chosen by a test to those the log scan looks for.
pub fn forbid_in_logs(secret: &str) {
    CHOSEN.lock().unwrap().push(secret.to_owned());
}

/// Every secret keygate could have minted (prefix, shape and checksum) that `text` holds.
pub fn minted_secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for kind in keygate::secrets::SecretKind::ALL {
        for (at, _) in text.match_indices(kind.prefix()) {
            let candidate = text.get(at..at + kind.minted_len()).unwrap_or_default();
            if keygate::secrets::PlainSecret::parse(candidate).is_ok() {
                found.push(candidate.to_owned());
            }
        }
    }
    found
}

/// Every minted or chosen secret that `text` holds.
fn secrets_in(text: &str) -> Vec<String> {
    let mut found = minted_secrets_in(text);
    let chosen = CHOSEN.lock().unwrap();
    found.extend(
        chosen
            .iter()
            .filter(|secret| text.contains(secret.as_str()))
            .cloned(),
    );
    found
}

/// Fails the test when any secret has reached the logs so far, from any test server.
pub fn assert_no_secret_logged() {
    let leaked = LEAKED.lock().unwrap();
    assert!(
        leaked.is_empty(),
        "{} secret(s) reached the logs, e.g. one of {} characters",
        leaked.len(),
        leaked[0].len()
    );
}

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let leaks = secrets_in(&String::from_utf8_lossy(buf));
        if !leaks.is_empty() {
            LEAKED.lock().unwrap().extend(leaks);
        }
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        forbid_in_logs(BOOTSTRAP_TOKEN);
        // The most verbose level, every crate (the test client's included), so that a leak
        // at any level anywhere is caught.
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(|| LogSink)
            .init();
    });
}

/// A running keygate with its own database.
pub struct TestApp {
    pub base: String,
    pub config: Config,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    postgres_db: Option<String>,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` has adjusted its configuration.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        capture_logs();
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse_from([
            "keygate",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "--bootstrap-token",
            BOOTSTRAP_TOKEN,
            "--usage-flush-ms",
            "50",
        ]);
        let postgres_db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let (name, url) = create_postgres_database().await;
                config.database_url = Some(url);
                Some(name)
            }
        };
        tweak(&mut config);
        let mut app = TestApp {
            base: String::new(),
            config,
            // Idle connections are dropped before a server with the shortest request timeout
            // (1 s) closes them as idle, so a request never goes out on a closing connection.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_millis(500))
                .build()
                .unwrap(),
            stop: None,
            server: None,
            postgres_db,
            _data_dir: data_dir,
        };
        app.launch().await;
        app
    }

    /// Another instance on this one's database (only this one creates and drops it), with a
    /// data directory of its own, after `tweak` has adjusted its configuration.
    pub async fn start_beside(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let url = self.config.database_url();
        TestApp::start_with(Backend::Sqlite, |config| {
            config.database_url = Some(url);
            tweak(config);
        })
        .await
    }

    async fn launch(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        self.server = Some(tokio::spawn(async move {
            keygate::run(listener, &config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server failed");
        }));
        self.stop = Some(stop);
        // `run` prepares the database before accepting; wait until it answers.
        for _ in 0..200 {
            if self.client.get(self.url("/healthz")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the test server did not start");
    }

    /// Stops the server gracefully (flushing usage) and starts it again on the same database.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.launch().await;
    }

    /// Sends the shutdown signal (as SIGTERM would) without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn shutdown(&mut self) {
        self.signal_shutdown();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A GET without credentials.
    pub async fn get_anonymous(&self, path: &str) -> (StatusCode, Value) {
        read(self.request(Method::GET, path, None).send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(
            self.request(Method::GET, path, Some(token))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        read(
            self.request(Method::POST, path, Some(token))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(
            self.request(Method::DELETE, path, Some(token))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Starts a POST as the bootstrap admin over a raw connection, sending only the first `sent`
    /// bytes of `body`: a request that is in flight until [`Upload::finish`].
    pub async fn start_upload(&self, path: &str, body: &[u8], sent: usize) -> Upload {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {BOOTSTRAP_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = TcpStream::connect(self.base.trim_start_matches("http://"))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..sent]).await.unwrap();
        Upload(stream)
    }

    /// Creates an agent as the bootstrap admin and returns its DSN.
    pub async fn create_agent(&self, name: &str) -> String {
        let (status, body) = self
            .post(
                "/agents",
                BOOTSTRAP_TOKEN,
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates an organization and returns (org id, its admin key).
    pub async fn create_org(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/orgs",
                BOOTSTRAP_TOKEN,
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["org"]["id"].as_str().unwrap().into(),
            body["api_key"]["key"].as_str().unwrap().into(),
        )
    }

    /// Creates an API key with `role` in the bootstrap admin's organization; returns the key.
    pub async fn create_api_key(&self, role: &str) -> String {
        let body = serde_json::json!({ "name": format!("{role} key"), "role": role });
        let (status, body) = self.post("/apikeys", BOOTSTRAP_TOKEN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"].as_str().unwrap().into()
    }

    pub async fn verify(&self, token: &str, key: &str) -> (StatusCode, Value) {
        self.post("/verify", token, serde_json::json!({ "key": key }))
            .await
    }
}

/// A connection straight to the test server's database, as an operator (or an older keygate)
/// would make one.
pub enum Database {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Database {
    pub async fn open(app: &TestApp) -> Database {
        use sqlx::Connection;
        let url = app.config.database_url();
        if url.starts_with("sqlite") {
            Database::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap())
        } else {
            Database::Postgres(sqlx::PgConnection::connect(&url).await.unwrap())
        }
    }

    /// Runs `sql`; how many rows it changed.
    pub async fn execute(&mut self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Database::Sqlite(db) => sqlx::query(sql).execute(db).await.unwrap().rows_affected(),
            Database::Postgres(db) => sqlx::query(sql).execute(db).await.unwrap().rows_affected(),
        }
    }

    /// The one byte string `sql` selects.
    pub async fn bytes(&mut self, sql: &str) -> Vec<u8> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Database::Sqlite(db) => sqlx::query_scalar(sql).fetch_one(db).await.unwrap(),
            Database::Postgres(db) => sqlx::query_scalar(sql).fetch_one(db).await.unwrap(),
        }
    }

    /// The one number `sql` selects.
    pub async fn count(&mut self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Database::Sqlite(db) => sqlx::query_scalar(sql).fetch_one(db).await.unwrap(),
            Database::Postgres(db) => sqlx::query_scalar(sql).fetch_one(db).await.unwrap(),
        }
    }
}

/// Runs `sql` straight on the test server's database; returns how many rows it changed.
pub async fn execute_sql(app: &TestApp, sql: &str) -> u64 {
    Database::open(app).await.execute(sql).await
}

/// A Python with `requirements` (pinned `name==version`) installed from PyPI, in a virtual
/// environment under the target directory made once and kept: the originals' own client
/// libraries, run as their users run them. Panics (the test fails, never passes) when PyPI
/// cannot be reached.
pub fn python_with(requirements: &[&str]) -> std::path::PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let name = requirements.join("+").replace(['=', '<', '>'], "-");
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{name}"));
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if !ready.exists() {
        let run = |command: &mut std::process::Command| {
            let output = command.output().expect("python3 runs");
            assert!(
                output.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements));
        std::fs::write(&ready, requirements.join("\n")).unwrap();
    }
    python
}

/// A request whose body is still being sent.
pub struct Upload(TcpStream);

impl Upload {
    /// Sends the `rest` of the body (the server may already have answered) and returns the raw
    /// HTTP response.
    pub async fn finish(&mut self, rest: &[u8]) -> String {
        let _ = self.0.write_all(rest).await;
        let mut response = String::new();
        self.0.read_to_string(&mut response).await.unwrap();
        response
    }
}

/// Every operation of the served document: (method, path template, operation).
pub async fn operations(app: &TestApp) -> Vec<(Method, String, Value)> {
    let (_, doc) = app.get_anonymous("/openapi.json").await;
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            found.push((method, path.clone(), operation.clone()));
        }
    }
    assert!(found.len() >= 10, "the document lists the routes");
    found
}

/// Status and JSON body (`Null` when the body is empty; a string for a text answer).
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/plain"));
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else if text {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_secret_logged();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(name) = self.postgres_db.take() {
            drop_postgres_database_now(name);
        }
    }
}

/// [`drop_postgres_database`] from outside async context (`Drop`): a short-lived runtime on its
/// own thread.
pub fn drop_postgres_database_now(name: String) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(drop_postgres_database(&name));
    })
    .join()
    .unwrap();
}

/// A connection to the test Postgres server's administrative database.
pub async fn admin_connection() -> sqlx::PgConnection {
    let url = postgres_url().expect("the Postgres suite needs its URL");
    <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("cannot reach Postgres at {POSTGRES_ENV}: {err}"))
}

/// Drops a database [`create_postgres_database`] made, whoever is still connected to it. A
/// failure leaves the database behind rather than failing the test (this also runs in `Drop`,
/// perhaps while a failed test unwinds).
pub async fn drop_postgres_database(name: &str) {
    let mut admin = admin_connection().await;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let _ = sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(sql)).await;
}

/// A fresh database on the test Postgres server: (name, URL).
pub async fn create_postgres_database() -> (String, String) {
    let name = format!("keygate_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = admin_connection().await;
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")),
    )
    .await
    .unwrap();
    let mut url = url::Url::parse(&postgres_url().unwrap()).unwrap();
    url.set_path(&name);
    (name, url.to_string())
}
