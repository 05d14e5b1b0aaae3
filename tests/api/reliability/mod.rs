//! The reliability campaign: what holds under concurrency, racing lifecycle changes, database
//! faults, crashes, hostile clients and every role, each test printing its figures
//! (`figures: …` lines, gathered into docs/RELIABILITY.md).

mod authorization;
mod concurrency;
mod crash;
mod database_faults;
mod hostile;
mod races;

use md5::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, create_postgres_database,
    drop_postgres_database_now, minted_secrets_in, read,
};

/// Ops Manager's base path.
const OPS: &str = "/api/public/v1.0";

/// One resource of each kind in an organization, made by its admin, named after a tag.
pub struct Estate {
    pub agent: String,
    pub connection: String,
    pub identity: String,
    pub agentex_key_name: String,
    pub agentex_key: String,
    pub ops_org: String,
    pub project: String,
    pub project_name: String,
    pub project_key: String,
    pub key_pair: String,
    pub api_key: String,
}

impl Estate {
    pub async fn build(app: &TestApp, admin: &str, tag: &str) -> Estate {
        let created = |path: &str, body: Value| {
            let path = path.to_owned();
            async move {
                let (status, answer) = send(app, Method::POST, &path, admin, Some(body)).await;
                assert!(status.is_success(), "{path}: {status} {answer}");
                answer
            }
        };
        let (agent, connection) = (format!("{tag}-agent"), format!("{tag}-pg"));
        let (identity, agentex_key_name) = (format!("{tag}-identity"), format!("{tag}-key"));
        created("/agents", json!({"name": agent})).await;
        created(
            "/connections",
            json!({"name": connection, "type": "database", "subtype": "postgres",
                   "agent_id": agent}),
        )
        .await;
        created(
            "/machineidentities",
            json!({"name": identity, "connection_names": [connection]}),
        )
        .await;
        let agentex_key = created(
            "/agent_api_keys",
            json!({"agent_name": agent, "name": agentex_key_name}),
        )
        .await;
        let (_, orgs) = send(app, Method::GET, &format!("{OPS}/orgs"), admin, None).await;
        let ops_org = orgs["results"][0]["id"].as_str().unwrap().to_owned();
        let project_name = format!("{tag}-project");
        let project = created("/groups", json!({"name": project_name})).await;
        let project = project["id"].as_str().unwrap().to_owned();
        let project_key = created(
            &format!("/groups/{project}/agentapikeys"),
            json!({"desc": tag}),
        )
        .await;
        let key_pair = created(
            &format!("/orgs/{ops_org}/apiKeys"),
            json!({"desc": tag, "roles": ["ORG_MEMBER"]}),
        )
        .await;
        let api_key = created("/apikeys", json!({"name": tag, "role": "member"})).await;
        Estate {
            agent,
            connection,
            identity,
            agentex_key_name,
            agentex_key: agentex_key["id"].as_str().unwrap().into(),
            ops_org,
            project,
            project_name,
            project_key: project_key["_id"].as_str().unwrap().into(),
            key_pair: key_pair["id"].as_str().unwrap().into(),
            api_key: api_key["id"].as_str().unwrap().into(),
        }
    }

    /// `template` (an OpenAPI path) with each parameter naming this estate's resource.
    pub fn path(&self, template: &str) -> String {
        let by_name = format!(
            "/agent_api_keys/name/{}?agent_name={}",
            self.agentex_key_name, self.agent
        );
        template
            .replace("{nameOrId}", &self.agent)
            .replace("{connection}", &self.connection)
            .replace("{ORG-ID}", &self.ops_org)
            .replace("{PROJECT-ID}", &self.project)
            .replace("{GROUP-NAME}", &self.project_name)
            .replace("{AGENT-API-KEY-ID}", &self.project_key)
            .replace("{API-KEY-ID}", &self.key_pair)
            .replace("{ACCESS-LIST-ENTRY}", "192.0.2.7")
            .replace("{protocol}", "postgres")
            .replace(
                "/connections/{name}",
                &format!("/connections/{}", self.connection),
            )
            .replace(
                "/machineidentities/{name}",
                &format!("/machineidentities/{}", self.identity),
            )
            .replace("/agent_api_keys/name/{name}", &by_name)
            .replace("/apikeys/{id}", &format!("/apikeys/{}", self.api_key))
            .replace(
                "/agent_api_keys/{id}",
                &format!("/agent_api_keys/{}", self.agentex_key),
            )
    }

    /// What would reveal this estate to an outsider: its names and ids.
    pub fn identifiers(&self) -> Vec<&str> {
        vec![
            &self.agent,
            &self.connection,
            &self.identity,
            &self.agentex_key_name,
            &self.agentex_key,
            &self.ops_org,
            &self.project,
            &self.project_name,
            &self.project_key,
            &self.key_pair,
            &self.api_key,
        ]
    }
}

pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = app.request(method, path, Some(token));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

/// How many items a list answer holds, in any family's shape.
pub fn count(list: &Value) -> usize {
    let items = list
        .get("items")
        .or_else(|| list.get("results"))
        .unwrap_or(list);
    items.as_array().map_or(0, Vec::len)
}

/// Prints one line of figures for docs/RELIABILITY.md.
pub fn figures(family: &str, backend: crate::common::Backend, line: std::fmt::Arguments) {
    println!("figures: {family} [{backend:?}] {line}");
}

/// A request authenticated by HTTP Digest (MD5, `qop=auth`) with a key pair, after asking for
/// a fresh challenge.
pub async fn send_digest(
    app: &TestApp,
    method: Method,
    path: &str,
    (public, private): (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let challenge = app
        .request(method.clone(), path, None)
        .send()
        .await
        .unwrap();
    let Some(header) = challenge.headers().get("www-authenticate") else {
        return read(challenge).await;
    };
    let header = header.to_str().unwrap().to_owned();
    let Some(nonce) = header
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
    else {
        return read(challenge).await;
    };
    let md5 = |text: String| hex::encode(md5::Md5::digest(text.as_bytes()));
    let ha1 = md5(format!("{public}:MMS Public API:{private}"));
    let ha2 = md5(format!("{method}:{path}"));
    let response = md5(format!("{ha1}:{nonce}:00000001:keygate-tests:auth:{ha2}"));
    let authorization = format!(
        "Digest username=\"{public}\", realm=\"MMS Public API\", nonce=\"{nonce}\", \
         uri=\"{path}\", response=\"{response}\", cnonce=\"keygate-tests\", nc=00000001, qop=auth"
    );
    let request = app
        .request(method, path, None)
        .header("authorization", authorization);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

/// Counts rows with `sql` (a `SELECT COUNT(*)`) in the database at `url`, SQLite or Postgres.
pub async fn count_rows(url: &str, sql: &'static str) -> i64 {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    }
}

/// The real keygate binary on a port of its own, logging at the most verbose level to a file:
/// a server that can be killed, and restarted on the same database.
pub struct KeygateProcess {
    child: std::sync::Mutex<Option<Child>>,
    port: u16,
    database_url: String,
    postgres_db: Option<String>,
    client: reqwest::Client,
    data_dir: tempfile::TempDir,
}

impl KeygateProcess {
    /// Starts on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> KeygateProcess {
        let (postgres_db, url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (name, url) = create_postgres_database().await;
                (Some(name), Some(url))
            }
        };
        let mut process = Self::start_on(url).await;
        process.postgres_db = postgres_db;
        process
    }

    /// Starts on the database at `url` (a SQLite file in its data directory without one).
    pub async fn start_on(url: Option<String>) -> KeygateProcess {
        let data_dir = tempfile::tempdir().unwrap();
        let database_url = url.unwrap_or_else(|| {
            format!("sqlite://{}", data_dir.path().join("keygate.db").display())
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut process = KeygateProcess {
            child: std::sync::Mutex::new(None),
            port,
            database_url,
            postgres_db: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            data_dir,
        };
        process.restart().await;
        process
    }

    /// Starts the binary (again) and waits until it answers.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("keygate.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keygate"))
            .env_clear()
            .args([
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
            ])
            .arg(self.data_dir.path())
            .args([
                "--database-url",
                &self.database_url,
                "--bootstrap-token",
                ADMIN,
            ])
            .args(["--log", "trace"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        *self.child.lock().unwrap() = Some(child);
        for _ in 0..400 {
            if self.client.get(self.url("/healthz")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("keygate did not start");
    }

    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone()
    }

    /// A request as the bootstrap admin; `None` when the server did not answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<StatusCode> {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.ok()?;
        let status = response.status();
        // The answer may be cut by a kill: a status without its body is no acknowledgement.
        response.bytes().await.ok().map(|_| status)
    }

    /// Creates agent `agent` and a connection it serves for each (name, subtype).
    pub async fn create_connections(&self, agent: &str, connections: &[(&str, &str)]) {
        let created = Some(StatusCode::CREATED);
        let body = json!({ "name": agent });
        assert_eq!(
            self.send(Method::POST, "/agents", Some(body)).await,
            created
        );
        for (name, subtype) in connections {
            let body = json!({"name": name, "type": "database", "subtype": subtype,
                              "agent_id": agent});
            assert_eq!(
                self.send(Method::POST, "/connections", Some(body)).await,
                created
            );
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// Everything the process logged, at the most verbose level, holds no secret it minted.
    pub fn assert_logs_hold_no_secret(&self) {
        let logs = std::fs::read_to_string(self.data_dir.path().join("keygate.log")).unwrap();
        // Filtered at trace; debug is the most verbose level anything here emits.
        assert!(
            logs.contains("DEBUG"),
            "the logs were written at the most verbose level"
        );
        assert!(
            minted_secrets_in(&logs).is_empty(),
            "a secret reached the logs"
        );
        assert!(
            !logs.contains(ADMIN),
            "the bootstrap token reached the logs"
        );
    }
}

impl Drop for KeygateProcess {
    fn drop(&mut self) {
        self.kill();
        if let Some(name) = self.postgres_db.take() {
            drop_postgres_database_now(name);
        }
    }
}
