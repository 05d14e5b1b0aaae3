//! Ops Manager's public API: projects, programmatic key pairs over HTTP Digest (spoken by curl,
//! by Python and by a client written here from RFC 7616), agent API keys, and Ops Manager's
//! error shape, `pretty` and `envelope`.

mod idempotency;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use keygate::secrets::server_key::ServerKey;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, execute_sql, on_both_backends, read,
};

on_both_backends!(
    a_project_is_found_by_name,
    the_service_version_is_answered_without_credentials,
    the_opsmanager_client_from_pypi_reads_projects_and_agent_keys,
    ops_managers_documented_curl_digest_request_returns_the_documented_document,
    the_python_client_creates_and_lists_agent_keys,
    an_independent_client_speaks_md5_and_sha_256_with_and_without_sessions,
    a_post_without_credentials_is_challenged_before_its_body_is_read,
    a_replayed_nonce_count_is_refused_and_a_new_count_accepted,
    a_wrong_private_key_or_unknown_public_key_is_refused_and_counted,
    a_right_answer_to_an_expired_nonce_is_stale_and_a_wrong_one_is_not,
    bearer_api_keys_act_with_their_organization_role,
    a_read_only_key_lists_but_may_not_create,
    project_roles_are_granted_and_taken_per_project,
    another_organizations_project_is_not_in_group,
    every_error_is_in_ops_managers_shape_with_its_code,
    a_key_pair_sealed_under_another_server_key_is_an_unexpected_error,
    agent_keys_are_shown_once_and_masked_everywhere_else,
    verify_names_the_project_and_organization_of_an_agent_key,
    pretty_and_envelope_shape_every_answer,
    access_lists_refuse_keys_used_from_elsewhere,
    the_created_ip_is_the_forwarded_client_only_behind_trusted_proxies,
    projects_are_named_uniquely_and_deleting_one_deletes_its_keys,
    key_pairs_are_listed_masked_updated_and_deleted_at_once,
    the_ops_manager_org_list_lives_under_its_base_path,
    ops_manager_secrets_never_reach_logs_errors_lists_or_the_database,
);

pub(crate) const BASE: &str = "/api/public/v1.0";
const REALM: &str = "MMS Public API";
/// The server key of the servers whose nonces the tests forge.
const SERVER_KEY: [u8; 32] = [7; 32];

pub(crate) struct KeyPair {
    pub(crate) id: String,
    pub(crate) public: String,
    pub(crate) private: String,
}

/// The Ops Manager id of the bootstrap admin's organization (`default`).
pub(crate) async fn org_id(app: &TestApp, token: &str) -> String {
    let (status, orgs) = app.get(&format!("{BASE}/orgs"), token).await;
    assert_eq!(status, StatusCode::OK, "{orgs}");
    orgs["results"][0]["id"].as_str().unwrap().to_owned()
}

/// A key pair of organization `default` with `roles`, made by the bootstrap admin.
pub(crate) async fn key_pair(app: &TestApp, roles: Value) -> KeyPair {
    key_pair_of(app, ADMIN, roles).await
}

async fn key_pair_of(app: &TestApp, admin: &str, roles: Value) -> KeyPair {
    let org = org_id(app, admin).await;
    let body = json!({"desc": "test key", "roles": roles});
    let (status, created) = app
        .post(&format!("{BASE}/orgs/{org}/apiKeys"), admin, body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    KeyPair {
        id: created["id"].as_str().unwrap().into(),
        public: created["publicKey"].as_str().unwrap().into(),
        private: created["privateKey"].as_str().unwrap().into(),
    }
}

/// A project of the organization `admin` belongs to; its id.
async fn project_of(app: &TestApp, admin: &str, name: &str) -> String {
    let (status, created) = app
        .post(&format!("{BASE}/groups"), admin, json!({"name": name}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().into()
}

pub(crate) async fn project(app: &TestApp, name: &str) -> String {
    project_of(app, ADMIN, name).await
}

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = app.request(method, path, token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

/// The version call Ops Manager's clients make without credentials, as a health check.
async fn the_service_version_is_answered_without_credentials(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, version) = app.get_anonymous("/api/private/unauth/version").await;
    assert_eq!(status, StatusCode::OK, "{version}");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    // Any other route of Ops Manager's private API is unknown in Ops Manager's words.
    for path in ["/api/private/unauth/nothing", "/api/private/v1.0/groups"] {
        let (status, refused) = app.get_anonymous(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            (&refused["error"], &refused["reason"]),
            (&json!(404), &json!("Not Found")),
            "{path}: {refused}"
        );
    }
}

/// The `opsmanager` clients' `get_by_name`: `GET /groups/byName/{GROUP-NAME}`.
async fn a_project_is_found_by_name(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, created) = app
        .post("/groups", ADMIN, json!({"name": "production east"}))
        .await;
    for base in ["", "/api/public/v1.0"] {
        let path = format!("{base}/groups/byName/production%20east");
        let (status, found) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found, created);
        let (status, body) = app
            .get(&format!("{base}/groups/byName/staging"), ADMIN)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "GROUP_NAME_NOT_FOUND");
    }
    // Ids keep their own route.
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/groups/{id}"), ADMIN).await.1, created);
}

/// The `opsmanager` client (0.5.3, from PyPI) with a key pair over HTTP Digest: projects by
/// list, id and name, a project's agent keys, and the unauthenticated version call, decoded by
/// the client itself.
async fn the_opsmanager_client_from_pypi_reads_projects_and_agent_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "client side").await;
    let agent_keys = format!("{BASE}/groups/{project}/agentapikeys");
    let (status, key) = app
        .post(&agent_keys, ADMIN, json!({"desc": "rack 7"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let python = tokio::task::spawn_blocking(|| crate::common::python_with(&["opsmanager==0.5.3"]))
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/opsmanager_client.py");
    let mut command = std::process::Command::new(python);
    command.arg(script).arg(app.url("")).args([
        &owner.public,
        &owner.private,
        &project,
        "client side",
    ]);
    let output = run(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["by_id"]["id"], project.as_str(), "{seen}");
    assert_eq!(seen["by_name"]["id"], project.as_str(), "{seen}");
    assert_eq!(seen["by_name"]["name"], "client side", "{seen}");
    let listed = seen["projects"].as_array().unwrap();
    assert!(listed.iter().any(|p| p["id"] == project.as_str()), "{seen}");
    let keys = seen["agent_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{seen}");
    assert_eq!(keys[0]["desc"], "rack 7", "{seen}");
    assert_ne!(keys[0]["key"], key["key"], "masked in the list");
    assert_eq!(
        seen["version"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{seen}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(owner.private.as_str()) && !stderr.contains(owner.private.as_str()));
}

/// Asserts Ops Manager's error document.
fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["error"], expected.as_u16(), "{body}");
    assert_eq!(
        body["reason"],
        expected.canonical_reason().unwrap(),
        "{body}"
    );
    assert!(
        body["detail"].is_string() && body["parameters"].is_array(),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");
}

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hex(self, data: &str) -> String {
        let digest = match self {
            Algorithm::Md5 => md5::Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A Digest client written from RFC 7616, section 3.4, independently of the server's code.
pub(crate) struct DigestClient<'a> {
    app: &'a TestApp,
    user: String,
    password: String,
    algorithm: Algorithm,
    session: bool,
}

impl<'a> DigestClient<'a> {
    pub(crate) fn new(app: &'a TestApp, key: &KeyPair) -> DigestClient<'a> {
        DigestClient {
            app,
            user: key.public.clone(),
            password: key.private.clone(),
            algorithm: Algorithm::Md5,
            session: false,
        }
    }

    /// The nonce of the challenge a request without credentials gets.
    async fn nonce(&self, method: Method, path: &str) -> String {
        let response = self.app.request(method, path, None).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        nonce_of(challenge)
    }

    fn authorization(&self, method: &Method, uri: &str, nonce: &str, nc: u32) -> String {
        let h = |data: &str| self.algorithm.hex(data);
        let cnonce = format!("{:016x}", rand_u64());
        let mut ha1 = h(&format!("{}:{REALM}:{}", self.user, self.password));
        if self.session {
            ha1 = h(&format!("{ha1}:{nonce}:{cnonce}"));
        }
        let ha2 = h(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        let algorithm = match (self.algorithm, self.session) {
            (Algorithm::Md5, false) => "MD5",
            (Algorithm::Md5, true) => "MD5-sess",
            (Algorithm::Sha256, false) => "SHA-256",
            (Algorithm::Sha256, true) => "SHA-256-sess",
        };
        format!(
            r#"Digest username="{}", realm="{REALM}", nonce="{nonce}", uri="{uri}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#,
            self.user
        )
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        nonce: &str,
        nc: u32,
    ) -> reqwest::Response {
        let authorization = self.authorization(&method, path, nonce, nc);
        let request = self
            .app
            .request(method, path, None)
            .header("authorization", authorization);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// A request with a fresh nonce, as a client does it: challenged first, then answered.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let nonce = self.nonce(method.clone(), path).await;
        read(self.send_with(method, path, body.as_ref(), &nonce, 1).await).await
    }
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
}

fn nonce_of(challenge: &str) -> String {
    let shape = regex::Regex::new(
        r#"^Digest realm="MMS Public API", domain="", nonce="([A-Za-z0-9_-]+)", algorithm=MD5, qop="auth", stale=(true|false)$"#,
    )
    .unwrap();
    let captures = shape
        .captures(challenge)
        .unwrap_or_else(|| panic!("not Ops Manager's challenge: {challenge}"));
    captures[1].to_owned()
}

/// A nonce as the server issues it, but `seconds_ago`: the issue time and random bytes under an
/// HMAC of the server key.
fn nonce_issued(seconds_ago: i64) -> String {
    let key = ServerKey::from_bytes(&SERVER_KEY);
    let mut bytes = (Utc::now().timestamp() - seconds_ago)
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(&rand_u64().to_be_bytes());
    let tag = key.mac(&[b"keygate digest nonce:".as_slice(), &bytes].concat());
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn start_with_known_server_key(backend: Backend) -> TestApp {
    TestApp::start_with(backend, |config| {
        config.secret_key = Some(STANDARD.encode(SERVER_KEY));
    })
    .await
}

/// Runs a client process off the runtime's workers, which serve the test server meanwhile.
async fn run(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("cannot run a client: {err}"))
}

/// curl's output with `--include`: each response's status line, headers and body.
fn responses(output: &str) -> Vec<(u16, String, String)> {
    let mut found = Vec::new();
    let mut rest = output;
    while let Some(start) = rest.find("HTTP/1.1 ") {
        let response = &rest[start..];
        let (head, after) = response.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let end = after.find("HTTP/1.1 ").unwrap_or(after.len());
        found.push((status, head.to_owned(), after[..end].to_owned()));
        rest = &after[end..];
    }
    found
}

async fn ops_managers_documented_curl_digest_request_returns_the_documented_document(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "seed").await;
    let user = format!("{}:{}", owner.public, owner.private);
    let url = app.url(&format!("{BASE}/groups/{project}/agentapikeys?pretty=true"));
    // Ops Manager's documented example request, word for word but for the host.
    let mut command = std::process::Command::new("curl");
    command
        .args(["--user", &user, "--digest"])
        .args(["--header", "Accept: application/json"])
        .args(["--header", "Content-Type: application/json"])
        .args(["--include", "--silent", "--show-error"])
        .args(["--request", "POST", &url])
        .args([
            "--data",
            "\n      {\n        \"desc\": \"Agent API Key for this project\"\n      }",
        ]);
    let output = run(command).await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers = responses(&stdout);
    assert_eq!(answers.len(), 2, "a challenge, then the answer: {stdout}");
    let (status, head, _) = &answers[0];
    assert_eq!(*status, 401);
    let challenge = head
        .lines()
        .find_map(|line| line.strip_prefix("www-authenticate: "))
        .unwrap();
    assert!(challenge.ends_with("stale=false"));
    nonce_of(challenge);
    let (status, head, body) = &answers[1];
    assert_eq!(*status, 200, "{stdout}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        body.starts_with("{\n  \"_id\" : \""),
        "pretty-printed as Ops Manager does: {body}"
    );
    let document: Value = serde_json::from_str(body).unwrap();
    let fields: Vec<&str> = document
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "_id",
            "createdBy",
            "createdIpAddr",
            "createdTime",
            "createdUserId",
            "desc",
            "key"
        ]
    );
    assert!(
        regex::Regex::new("^[0-9a-f]{24}$")
            .unwrap()
            .is_match(document["_id"].as_str().unwrap())
    );
    assert_eq!(document["createdBy"], "PUBLIC_API");
    assert_eq!(document["createdIpAddr"], "127.0.0.1");
    let created = document["createdTime"]
        .as_i64()
        .expect("epoch milliseconds");
    assert!((Utc::now().timestamp_millis() - created).abs() < 60_000);
    assert_eq!(document["createdUserId"], owner.id);
    assert_eq!(document["desc"], "Agent API Key for this project");
    let key = document["key"].as_str().unwrap();
    assert!(key.starts_with("mdbak_"), "{key}");

    // The same key, listed by curl: masked.
    let mut listed = std::process::Command::new("curl");
    listed
        .args(["--user", &user, "--digest", "--silent"])
        .arg(app.url(&format!("{BASE}/groups/{project}/agentapikeys")));
    let listed = run(listed).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let masked = listed[0]["key"].as_str().unwrap();
    assert_eq!(masked.len(), key.len());
    assert!(masked.ends_with(&key[key.len() - 4..]) && masked.starts_with("****"));
}

async fn the_python_client_creates_and_lists_agent_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "python").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/ops_manager_digest_client.py"
    );
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .arg(app.url(BASE))
        .args([&owner.public, &owner.private, &project]);
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["created"][0], 200, "{result}");
    let key = result["created"][1]["key"].as_str().unwrap();
    assert!(key.starts_with("mdbak_"));
    assert_eq!(result["listed"][0], 200, "{result}");
    let listed = &result["listed"][1][0];
    assert_eq!(listed["desc"], "made by the Python client");
    assert_ne!(listed["key"], key, "masked in the list");
}

async fn an_independent_client_speaks_md5_and_sha_256_with_and_without_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "algorithms").await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    for (algorithm, session) in [
        (Algorithm::Md5, false),
        (Algorithm::Md5, true),
        (Algorithm::Sha256, false),
        (Algorithm::Sha256, true),
    ] {
        let client = DigestClient {
            algorithm,
            session,
            ..DigestClient::new(&app, &owner)
        };
        let (status, created) = client
            .send(Method::POST, &path, Some(json!({"desc": "rfc client"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        let (status, listed) = client
            .send(Method::GET, &format!("{path}?pretty=false"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
    }
    // The root paths are the same operations.
    let client = DigestClient::new(&app, &owner);
    let (status, listed) = client
        .send(
            Method::GET,
            &format!("/groups/{project}/agentapikeys"),
            None,
        )
        .await;
    assert_eq!(
        (status, listed.as_array().unwrap().len()),
        (StatusCode::OK, 4)
    );
}

async fn a_post_without_credentials_is_challenged_before_its_body_is_read(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "empty-body").await;
    for body in ["", "not json at all"] {
        let response = app
            .request(
                Method::POST,
                &format!("{BASE}/groups/{project}/agentapikeys"),
                None,
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{body:?}");
        nonce_of(response.headers()["www-authenticate"].to_str().unwrap());
        // The unread body may still be on its way: the client must answer on a new connection.
        let closes = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap());
        assert_eq!(closes, (!body.is_empty()).then_some("close"), "{body:?}");
        let (status, error) = read(response).await;
        assert_error(
            status,
            &error,
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
        );
    }
}

async fn a_replayed_nonce_count_is_refused_and_a_new_count_accepted(backend: Backend) {
    let app = start_with_known_server_key(backend).await;
    let database_url = app.config.database_url();
    // Another instance on the same database with the same server key.
    let twin = TestApp::start_with(backend, |config| {
        config.secret_key = Some(STANDARD.encode(SERVER_KEY));
        config.database_url = Some(database_url);
    })
    .await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "replay").await;
    let client = DigestClient::new(&app, &owner);
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let nonce = client.nonce(Method::GET, &path).await;
    let authorization = client.authorization(&Method::GET, &path, &nonce, 1);
    let replay = |server: &TestApp| {
        server
            .request(Method::GET, &path, None)
            .header("authorization", authorization.clone())
            .send()
    };
    assert_eq!(replay(&app).await.unwrap().status(), StatusCode::OK);
    for server in [&app, &twin] {
        let replayed = replay(server).await.unwrap();
        assert_eq!(
            replayed.status(),
            StatusCode::UNAUTHORIZED,
            "the same request again"
        );
        let challenge = replayed.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.ends_with("stale=false"), "{challenge}");
    }
    // The next count of the nonce is a new request, as clients reuse a nonce; any instance
    // accepts a nonce another issued.
    let twin_client = DigestClient::new(&twin, &owner);
    let next = twin_client
        .send_with(Method::GET, &path, None, &nonce, 2)
        .await;
    assert_eq!(next.status(), StatusCode::OK);
    let again = client.send_with(Method::GET, &path, None, &nonce, 2).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

async fn a_wrong_private_key_or_unknown_public_key_is_refused_and_counted(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 3).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let path = format!("{BASE}/groups");
    let wrong_password = DigestClient {
        password: format!("{}x", owner.private),
        ..DigestClient::new(&app, &owner)
    };
    let unknown_user = DigestClient {
        user: "nobodyyy".into(),
        ..DigestClient::new(&app, &owner)
    };
    for client in [&wrong_password, &unknown_user] {
        let nonce = client.nonce(Method::GET, &path).await;
        let response = client.send_with(Method::GET, &path, None, &nonce, 1).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.ends_with("stale=false"), "{challenge}");
        assert_ne!(
            nonce_of(&challenge),
            nonce,
            "every challenge has a fresh nonce"
        );
        let (status, error) = read(response).await;
        assert_error(
            status,
            &error,
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
        );
    }
    let nonce = wrong_password.nonce(Method::GET, &path).await;
    let third = wrong_password
        .send_with(Method::GET, &path, None, &nonce, 1)
        .await;
    assert_eq!(third.status(), StatusCode::UNAUTHORIZED);
    let limited = wrong_password
        .send_with(Method::GET, &path, None, &nonce, 2)
        .await;
    let (status, error) = read(limited).await;
    assert_error(
        status,
        &error,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
    );
    // A working credential always passes.
    let (status, _) = DigestClient::new(&app, &owner)
        .send(Method::GET, &path, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_right_answer_to_an_expired_nonce_is_stale_and_a_wrong_one_is_not(backend: Backend) {
    let app = start_with_known_server_key(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let client = DigestClient::new(&app, &owner);
    let path = format!("{BASE}/groups");
    let fresh = client
        .send_with(Method::GET, &path, None, &nonce_issued(60), 1)
        .await;
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "a nonce of a minute ago is fine"
    );
    let expired = nonce_issued(301);
    let stale = client
        .send_with(Method::GET, &path, None, &expired, 1)
        .await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let challenge = stale.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.ends_with("stale=true"), "{challenge}");
    let (status, error) = read(stale).await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "USER_UNAUTHORIZED",
    );
    // The client retries with the nonce of the stale challenge, without asking its user.
    let retried = client
        .send_with(Method::GET, &path, None, &nonce_of(&challenge), 1)
        .await;
    assert_eq!(retried.status(), StatusCode::OK);
    let wrong = DigestClient {
        password: "wrong".into(),
        ..DigestClient::new(&app, &owner)
    };
    let refused = wrong.send_with(Method::GET, &path, None, &expired, 1).await;
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.ends_with("stale=false"),
        "a wrong key is not stale: {challenge}"
    );
    let forged = client
        .send_with(
            Method::GET,
            &path,
            None,
            "AAAAAGsFv9n1If0dLYdw2tzxih1UVXHUxY",
            1,
        )
        .await;
    assert_eq!(
        forged.status(),
        StatusCode::UNAUTHORIZED,
        "a nonce the server did not issue"
    );
}

async fn bearer_api_keys_act_with_their_organization_role(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "bearer").await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let member = app.create_api_key("member").await;
    let (status, _) = app.get(&path, &member).await;
    assert_eq!(status, StatusCode::OK, "members read every project");
    let (status, error) = app.post(&path, &member, json!({"desc": "no"})).await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "USER_UNAUTHORIZED",
    );
    let (status, created) = app.post(&path, ADMIN, json!({"desc": "yes"})).await;
    assert_eq!(status, StatusCode::OK, "admins own every project");
    assert!(uuid::Uuid::parse_str(created["createdUserId"].as_str().unwrap()).is_ok());
    let (status, error) = app.get(&path, "kgk_not-a-key").await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "USER_UNAUTHORIZED",
    );
}

async fn a_read_only_key_lists_but_may_not_create(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "read-only").await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let org_reader = key_pair(&app, json!(["ORG_READ_ONLY"])).await;
    let group_reader = key_pair(&app, json!(["ORG_MEMBER"])).await;
    let org = org_id(&app, ADMIN).await;
    let assign = format!("{BASE}/groups/{project}/apiKeys/{}", group_reader.id);
    let roles = json!({"roles": ["GROUP_READ_ONLY"]});
    let (status, _) = send(&app, Method::PATCH, &assign, Some(ADMIN), Some(roles)).await;
    assert_eq!(status, StatusCode::OK);
    for reader in [&org_reader, &group_reader] {
        let client = DigestClient::new(&app, reader);
        let (status, listed) = client.send(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let (status, error) = client
            .send(Method::POST, &path, Some(json!({"desc": "x"})))
            .await;
        assert_error(
            status,
            &error,
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
        );
        let (status, error) = client
            .send(
                Method::POST,
                &format!("{BASE}/orgs/{org}/apiKeys"),
                Some(json!({"desc": "x", "roles": ["ORG_OWNER"]})),
            )
            .await;
        assert_error(
            status,
            &error,
            StatusCode::UNAUTHORIZED,
            "USER_UNAUTHORIZED",
        );
    }
    let (_, listed) = app.get(&path, ADMIN).await;
    assert_eq!(listed, json!([]), "nothing was created");
}

async fn project_roles_are_granted_and_taken_per_project(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mine = project(&app, "granted").await;
    let other = project(&app, "not-granted").await;
    let member = key_pair(&app, json!(["ORG_MEMBER"])).await;
    let client = DigestClient::new(&app, &member);
    let create = |project: &str| format!("{BASE}/groups/{project}/agentapikeys");
    let (status, error) = client
        .send(Method::POST, &create(&mine), Some(json!({"desc": "x"})))
        .await;
    assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
    let assign = format!("{BASE}/groups/{mine}/apiKeys/{}", member.id);
    let (status, assigned) = send(
        &app,
        Method::PATCH,
        &assign,
        Some(ADMIN),
        Some(json!({"roles": ["GROUP_OWNER"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert!(
        assigned["roles"]
            .as_array()
            .unwrap()
            .contains(&json!({"groupId": mine, "roleName": "GROUP_OWNER"})),
        "{assigned}"
    );
    let (status, _) = client
        .send(Method::POST, &create(&mine), Some(json!({"desc": "x"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = client
        .send(Method::POST, &create(&other), Some(json!({"desc": "x"})))
        .await;
    assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
    let (status, visible) = client
        .send(Method::GET, &format!("{BASE}/groups"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        visible["totalCount"], 1,
        "only the granted project: {visible}"
    );
    let (_, in_project) = app
        .get(&format!("{BASE}/groups/{mine}/apiKeys"), ADMIN)
        .await;
    assert_eq!(in_project["results"][0]["id"], member.id.as_str());
    let (status, body) = send(&app, Method::DELETE, &assign, Some(ADMIN), None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, error) = client.send(Method::GET, &create(&mine), None).await;
    assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
    let (_, in_project) = app
        .get(&format!("{BASE}/groups/{mine}/apiKeys"), ADMIN)
        .await;
    assert_eq!(in_project["totalCount"], 0);
    for roles in [json!(["ORG_OWNER"]), json!([]), json!(["GROUP_BOSS"])] {
        let (status, error) = send(
            &app,
            Method::PATCH,
            &assign,
            Some(ADMIN),
            Some(json!({"roles": roles})),
        )
        .await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE");
    }
}

async fn another_organizations_project_is_not_in_group(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, other_admin) = app.create_org("elsewhere").await;
    let theirs = project_of(&app, &other_admin, "theirs").await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let client = DigestClient::new(&app, &owner);
    let path = format!("{BASE}/groups/{theirs}/agentapikeys");
    for (method, body) in [
        (Method::POST, Some(json!({"desc": "x"}))),
        (Method::GET, None),
    ] {
        let (status, error) = client.send(method.clone(), &path, body.clone()).await;
        assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
        let (status, error) = send(&app, method, &path, Some(ADMIN), body).await;
        assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
    }
    let (status, error) = client
        .send(Method::DELETE, &format!("{BASE}/groups/{theirs}"), None)
        .await;
    assert_error(status, &error, StatusCode::UNAUTHORIZED, "NOT_IN_GROUP");
    let their_org = org_id(&app, &other_admin).await;
    let (status, error) = client
        .send(
            Method::GET,
            &format!("{BASE}/orgs/{their_org}/apiKeys"),
            None,
        )
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "ORG_NOT_FOUND");
    let (_, listed) = app.get(&path, &other_admin).await;
    assert_eq!(listed, json!([]), "nothing was created in their project");
}

async fn every_error_is_in_ops_managers_shape_with_its_code(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "errors").await;
    let org = org_id(&app, ADMIN).await;
    let keys = format!("{BASE}/groups/{project}/agentapikeys");
    let raw = |body: &'static str| {
        app.request(Method::POST, &keys, Some(ADMIN))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, error) = read(raw("{\"desc\": ").await.unwrap()).await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_JSON");
    for body in [
        json!({"desc": "x", "zebra": 1}),
        json!({"desc": 5}),
        json!({"desc": "d".repeat(1001)}),
        json!({"desc": "tab\tinside"}),
    ] {
        let (status, error) = app.post(&keys, ADMIN, body.clone()).await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE");
        assert!(
            !error.to_string().contains("zebra"),
            "the unknown name is not repeated"
        );
    }
    let (status, error) = app
        .post(&keys, ADMIN, json!({"desc": "d".repeat(1000)}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "1,000 characters are allowed: {error}"
    );
    let (status, error) = app.post(&keys, ADMIN, json!({})).await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "MISSING_ATTRIBUTE");
    assert_eq!(error["parameters"], json!(["desc"]));
    let (status, error) = app
        .get(
            &format!("{BASE}/groups/{}/agentapikeys", "0".repeat(24)),
            ADMIN,
        )
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "GROUP_NOT_FOUND");
    for bad in [
        "abc",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "0123456789abcdef012345678",
    ] {
        let (status, error) = app
            .get(&format!("{BASE}/groups/{bad}/agentapikeys"), ADMIN)
            .await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_GROUP_ID");
    }
    let (status, error) = app.get_anonymous(&keys).await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "USER_UNAUTHORIZED",
    );
    let (status, error) = app
        .get(&format!("{BASE}/orgs/{}/apiKeys", "0".repeat(24)), ADMIN)
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "ORG_NOT_FOUND");
    let (status, error) = app
        .get(&format!("{BASE}/orgs/not-an-id/apiKeys"), ADMIN)
        .await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_ORG_ID");
    let (status, error) = app
        .post(&format!("{BASE}/groups"), ADMIN, json!({"name": "errors"}))
        .await;
    assert_error(status, &error, StatusCode::CONFLICT, "GROUP_ALREADY_EXISTS");
    let (status, error) = app
        .delete(&format!("{keys}/{}", "0".repeat(24)), ADMIN)
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (status, error) = app
        .get(&format!("{BASE}/orgs/{org}/apiKeys/nope"), ADMIN)
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (status, error) = app.get(&format!("{BASE}/no/such/route"), ADMIN).await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (status, error) = send(&app, Method::PUT, &keys, Some(ADMIN), None).await;
    assert_error(
        status,
        &error,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
    let (status, error) = app
        .post(
            &format!("{BASE}/orgs/{org}/apiKeys"),
            ADMIN,
            json!({"desc": "x", "roles": ["ORG_OWNER", "GROUP_OWNER"]}),
        )
        .await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE");
    assert_eq!(error["parameters"], json!(["roles.1"]));
    let (status, error) = app
        .post(
            &format!("{BASE}/orgs/{org}/apiKeys"),
            ADMIN,
            json!({"roles": ["ORG_OWNER"]}),
        )
        .await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "MISSING_ATTRIBUTE");
    // NOT_IN_GROUP, IP_ADDRESS_NOT_ON_WHITELIST, RATE_LIMITED and UNEXPECTED_ERROR have tests
    // of their own.
}

async fn a_key_pair_sealed_under_another_server_key_is_an_unexpected_error(backend: Backend) {
    let app = start_with_known_server_key(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    // An instance with another key does not start; a row sealed under a key this one does
    // not hold is still refused when it is read.
    execute_sql(&app, "UPDATE sealed_secrets SET sealed_key_id = '00000000'").await;
    let (status, error) = DigestClient::new(&app, &owner)
        .send(Method::GET, &format!("{BASE}/groups"), None)
        .await;
    assert_error(
        status,
        &error,
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNEXPECTED_ERROR",
    );
    assert_eq!(error["detail"], "internal error");
    assert!(captured_logs().contains("sealed under another server key"));
}

async fn agent_keys_are_shown_once_and_masked_everywhere_else(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "masking").await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let (_, first) = app.post(&path, ADMIN, json!({"desc": "first"})).await;
    let (_, second) = app.post(&path, ADMIN, json!({"desc": ""})).await;
    let (status, listed) = app.get(&path, ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "a bare array");
    for (created, shown) in [(&first, &listed[0]), (&second, &listed[1])] {
        let key = created["key"].as_str().unwrap();
        let mut expected = created.clone();
        expected["key"] = json!(format!(
            "{}{}",
            "*".repeat(key.len() - 4),
            &key[key.len() - 4..]
        ));
        assert_eq!(shown, &expected);
    }
    let id = first["_id"].as_str().unwrap();
    let response = app
        .request(Method::DELETE, &format!("{path}/{id}"), Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "Ops Manager's clients decode every answer as JSON"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    let (status, error) = app.delete(&format!("{path}/{id}"), ADMIN).await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (_, listed) = app.get(&path, ADMIN).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

async fn verify_names_the_project_and_organization_of_an_agent_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "verified").await;
    let org = org_id(&app, ADMIN).await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let (_, created) = app.post(&path, ADMIN, json!({"desc": "edge"})).await;
    let key = created["key"].as_str().unwrap();
    let (status, verdict) = app.verify(ADMIN, key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (verdict["valid"].clone(), verdict["kind"].clone()),
        (json!(true), json!("project_agent_key"))
    );
    assert_eq!(
        verdict["project_agent_key"],
        json!({"id": created["_id"], "project_id": project, "ops_manager_org_id": org, "desc": "edge"})
    );
    let (_, other_admin) = app.create_org("not-theirs").await;
    assert_eq!(app.verify(&other_admin, key).await.1["code"], "not_found");
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let (_, verdict) = app.verify(ADMIN, &owner.private).await;
    assert_eq!(
        verdict["code"], "not_found",
        "key pairs are not answered for: {verdict}"
    );
    app.delete(
        &format!("{path}/{}", created["_id"].as_str().unwrap()),
        ADMIN,
    )
    .await;
    assert_eq!(
        app.verify(ADMIN, key).await.1["code"],
        "not_found",
        "deleted at once"
    );
}

async fn pretty_and_envelope_shape_every_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    let project = project(&app, "shapes").await;
    let path = format!("{BASE}/groups/{project}/agentapikeys");
    let text = |method: Method, query: &str, body: Option<Value>| {
        let request = app.request(method, &format!("{path}{query}"), Some(ADMIN));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, created) = text(
        Method::POST,
        "?envelope=true",
        Some(json!({"desc": "wrapped"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the status stays");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["status"], 200);
    assert_eq!(created["content"]["desc"], "wrapped");
    let (_, listed) = text(Method::GET, "?pretty=true", None).await;
    assert!(
        listed.starts_with("[ {\n") || listed.starts_with("[\n  {\n"),
        "{listed}"
    );
    assert!(listed.contains("\"desc\" : \"wrapped\""), "{listed}");
    let (_, both) = text(Method::GET, "?pretty=true&envelope=true", None).await;
    assert!(both.contains("\"status\" : 200"), "{both}");
    let both: Value = serde_json::from_str(&both).unwrap();
    assert!(both["content"].is_array());
    let (status, error) = text(Method::POST, "?envelope=true&pretty=true", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error.contains("\"errorCode\" : \"MISSING_ATTRIBUTE\""),
        "{error}"
    );
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["status"], 400);
    assert_eq!(error["content"]["errorCode"], "MISSING_ATTRIBUTE");
    let id = created["content"]["_id"].as_str().unwrap();
    let response = app
        .request(
            Method::DELETE,
            &format!("{path}/{id}?envelope=true"),
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": 200, "content": {}})
    );
    let anonymous = app
        .request(Method::GET, &format!("{path}?envelope=true"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "a Digest client still sees its 401"
    );
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["content"]["errorCode"],
        "USER_UNAUTHORIZED"
    );
}

async fn access_lists_refuse_keys_used_from_elsewhere(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let org = org_id(&app, ADMIN).await;
    let list = format!("{BASE}/orgs/{org}/apiKeys/{}/accessList", owner.id);
    let client = DigestClient::new(&app, &owner);
    let groups = format!("{BASE}/groups");
    assert_eq!(
        client.send(Method::GET, &groups, None).await.0,
        StatusCode::OK,
        "an empty list allows any address"
    );
    let (status, added) = app
        .post(
            &list,
            ADMIN,
            json!([{"cidrBlock": "10.1.2.3/8"}, {"ipAddress": "192.0.2.7"}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["totalCount"], 2);
    let entries: Vec<&str> = added["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cidrBlock"].as_str().unwrap())
        .collect();
    assert!(
        entries.contains(&"10.0.0.0/8") && entries.contains(&"192.0.2.7/32"),
        "{added}"
    );
    let (status, error) = client.send(Method::GET, &groups, None).await;
    assert_error(
        status,
        &error,
        StatusCode::FORBIDDEN,
        "IP_ADDRESS_NOT_ON_WHITELIST",
    );
    let (_, listed) = app.get(&list, ADMIN).await;
    assert_eq!(listed["totalCount"], 2, "bearer keys are not bound by it");
    let (status, _) = app
        .post(&list, ADMIN, json!([{"ipAddress": "127.0.0.1"}]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        client.send(Method::GET, &groups, None).await.0,
        StatusCode::OK
    );
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{list}/127.0.0.1"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, _) = client.send(Method::GET, &groups, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for entry in ["10.0.0.0%2F8", "192.0.2.7"] {
        let (status, _) = send(
            &app,
            Method::DELETE,
            &format!("{list}/{entry}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{entry}");
    }
    let (status, error) = send(
        &app,
        Method::DELETE,
        &format!("{list}/192.0.2.7"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    assert_eq!(
        client.send(Method::GET, &groups, None).await.0,
        StatusCode::OK,
        "empty again"
    );
    for bad in [
        json!([{"ipAddress": "10.0.0.0/8"}]),
        json!([{"cidrBlock": "nonsense"}]),
        json!([{}]),
        json!([]),
    ] {
        let (status, error) = app.post(&list, ADMIN, bad.clone()).await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE");
    }
}

async fn the_created_ip_is_the_forwarded_client_only_behind_trusted_proxies(backend: Backend) {
    for trusted in [false, true] {
        let app = TestApp::start_with(backend, |config| {
            if trusted {
                config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            }
        })
        .await;
        let project = project(&app, "forwarded").await;
        let response = app
            .request(
                Method::POST,
                &format!("{BASE}/groups/{project}/agentapikeys"),
                Some(ADMIN),
            )
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"desc": "behind a proxy"}))
            .send()
            .await
            .unwrap();
        let (_, created) = read(response).await;
        let expected = if trusted { "203.0.113.9" } else { "127.0.0.1" };
        assert_eq!(created["createdIpAddr"], expected);
    }
}

async fn projects_are_named_uniquely_and_deleting_one_deletes_its_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    let org = org_id(&app, ADMIN).await;
    let id = project(&app, "lifecycle").await;
    let (status, shown) = app.get(&format!("{BASE}/groups/{id}"), ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (shown["name"].clone(), shown["orgId"].clone()),
        (json!("lifecycle"), json!(org))
    );
    let (_, other_admin) = app.create_org("same-names").await;
    project_of(&app, &other_admin, "lifecycle").await;
    let (status, _) = app
        .post(
            &format!("{BASE}/groups"),
            ADMIN,
            json!({"name": "with org", "orgId": org}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, error) = app
        .post(
            &format!("{BASE}/groups"),
            ADMIN,
            json!({"name": "elsewhere", "orgId": "0".repeat(24)}),
        )
        .await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "ORG_NOT_FOUND");
    let (_, listed) = app.get(&format!("{BASE}/groups"), ADMIN).await;
    assert_eq!(listed["totalCount"], 2, "{listed}");
    // How clients find a project by name.
    let (status, by_name) = app
        .get(&format!("{BASE}/orgs/{org}/groups?name=lifecycle"), ADMIN)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            by_name["totalCount"].clone(),
            by_name["results"][0]["id"].clone()
        ),
        (json!(1), json!(id))
    );
    let path = format!("{BASE}/groups/{id}/agentapikeys");
    let (_, created) = app.post(&path, ADMIN, json!({"desc": "doomed"})).await;
    let key = created["key"].as_str().unwrap();
    let member = key_pair(&app, json!(["ORG_MEMBER"])).await;
    send(
        &app,
        Method::PATCH,
        &format!("{BASE}/groups/{id}/apiKeys/{}", member.id),
        Some(ADMIN),
        Some(json!({"roles": ["GROUP_OWNER"]})),
    )
    .await;
    let (status, body) = app.delete(&format!("{BASE}/groups/{id}"), ADMIN).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        app.verify(ADMIN, key).await.1["code"],
        "not_found",
        "its keys went with it"
    );
    let (status, error) = app.get(&path, ADMIN).await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "GROUP_NOT_FOUND");
    let (_, member_key) = app
        .get(&format!("{BASE}/orgs/{org}/apiKeys/{}", member.id), ADMIN)
        .await;
    assert_eq!(
        member_key["roles"],
        json!([{"orgId": org, "roleName": "ORG_MEMBER"}]),
        "its roles there too"
    );
    let (status, _) = app
        .post(
            &format!("{BASE}/groups"),
            ADMIN,
            json!({"name": "lifecycle"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "the name is free again");
}

async fn key_pairs_are_listed_masked_updated_and_deleted_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let org = org_id(&app, ADMIN).await;
    let owner = key_pair(&app, json!(["ORG_OWNER", "ORG_OWNER"])).await;
    assert_eq!(owner.public.len(), 8);
    assert!(owner.private.starts_with("mdbpk_"));
    let keys = format!("{BASE}/orgs/{org}/apiKeys");
    let (_, listed) = app.get(&keys, ADMIN).await;
    assert_eq!(listed["totalCount"], 1);
    let shown = &listed["results"][0];
    let private = &owner.private;
    assert_eq!(
        shown["privateKey"],
        format!(
            "{}{}",
            "*".repeat(private.len() - 4),
            &private[private.len() - 4..]
        )
    );
    assert_eq!(
        shown["roles"],
        json!([{"orgId": org, "roleName": "ORG_OWNER"}]),
        "a role given twice is held once"
    );
    let one = format!("{keys}/{}", owner.id);
    let (status, updated) = send(
        &app,
        Method::PATCH,
        &one,
        Some(ADMIN),
        Some(json!({"desc": "renamed", "roles": ["ORG_READ_ONLY"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            updated["desc"].clone(),
            updated["roles"][0]["roleName"].clone()
        ),
        (json!("renamed"), json!("ORG_READ_ONLY"))
    );
    let client = DigestClient::new(&app, &owner);
    let (status, _) = client
        .send(
            Method::POST,
            &format!("{BASE}/groups"),
            Some(json!({"name": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "read only now");
    let (status, got) = client.send(Method::GET, &one, None).await;
    assert_eq!(
        (status, got["desc"].clone()),
        (StatusCode::OK, json!("renamed"))
    );
    let (status, body) = app.delete(&one, ADMIN).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, error) = client
        .send(Method::GET, &format!("{BASE}/groups"), None)
        .await;
    assert_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "USER_UNAUTHORIZED",
    );
    let (status, error) = app.get(&one, ADMIN).await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}

async fn the_ops_manager_org_list_lives_under_its_base_path(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, native) = app.get("/orgs", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        native["items"].is_array(),
        "the root is keygate's operator listing: {native}"
    );
    let (status, ops) = app.get(&format!("{BASE}/orgs"), ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let id = ops["results"][0]["id"].as_str().unwrap();
    assert_eq!(
        ops,
        json!({
            "results": [{"id": id, "name": "default", "links": []}],
            "totalCount": 1,
            "links": [{"href": app.url(&format!("{BASE}/orgs?pageNum=1&itemsPerPage=100")), "rel": "self"}],
        })
    );
    let (_, tenant_admin) = app.create_org("tenant").await;
    let owner = key_pair_of(&app, &tenant_admin, json!(["ORG_MEMBER"])).await;
    let (status, theirs) = DigestClient::new(&app, &owner)
        .send(Method::GET, &format!("{BASE}/orgs"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        theirs["results"][0]["name"], "tenant",
        "each caller sees its own organization"
    );
    assert_ne!(theirs["results"][0]["id"], id);
}

async fn ops_manager_secrets_never_reach_logs_errors_lists_or_the_database(backend: Backend) {
    let app = TestApp::start(backend).await;
    let org = org_id(&app, ADMIN).await;
    let owner = key_pair(&app, json!(["ORG_OWNER"])).await;
    let project = project(&app, "leaks").await;
    let agent_keys = format!("{BASE}/groups/{project}/agentapikeys");
    let client = DigestClient::new(&app, &owner);
    let (_, created) = client
        .send(Method::POST, &agent_keys, Some(json!({"desc": "agent"})))
        .await;
    let agent_key = created["key"].as_str().unwrap().to_owned();
    let secrets = [owner.private.clone(), agent_key.clone()];

    let mut answers = Vec::new();
    for body in [
        json!({"desc": [agent_key]}),
        json!({"desc": "x", (owner.private.clone()): 1}),
        json!({"desc": 7, "key": agent_key}),
    ] {
        let (status, error) = client.send(Method::POST, &agent_keys, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        answers.push(error.to_string());
    }
    let keys = format!("{BASE}/orgs/{org}/apiKeys");
    for body in [
        json!({"desc": "x", "roles": [owner.private]}),
        json!({"desc": agent_key.repeat(6), "roles": ["ORG_OWNER"]}),
    ] {
        let (status, error) = app.post(&keys, ADMIN, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        answers.push(error.to_string());
    }
    let (_, error) = app
        .post(
            &format!("{BASE}/groups"),
            ADMIN,
            json!({"name": agent_key.repeat(2)}),
        )
        .await;
    answers.push(error.to_string());
    let impostor = DigestClient {
        user: owner.private.clone(),
        ..DigestClient::new(&app, &owner)
    };
    let (_, error) = impostor.send(Method::GET, &agent_keys, None).await;
    answers.push(error.to_string());
    let raw = format!("{{\"desc\": \"{agent_key}");
    let (_, error) = read(
        app.request(Method::POST, &agent_keys, Some(ADMIN))
            .body(raw)
            .send()
            .await
            .unwrap(),
    )
    .await;
    answers.push(error.to_string());
    for path in [
        agent_keys.clone(),
        keys.clone(),
        format!("{keys}/{}", owner.id),
        format!("{BASE}/groups/{project}/apiKeys"),
    ] {
        let (status, listed) = app
            .get(&format!("{path}?pretty=true&envelope=true"), ADMIN)
            .await;
        assert_eq!(status, StatusCode::OK);
        answers.push(listed.to_string());
    }

    let logs = captured_logs();
    assert!(
        logs.contains("project_agent_key.created"),
        "changes are audited"
    );
    let ha1 = Algorithm::Md5.hex(&format!("{}:{REALM}:{}", owner.public, owner.private));
    for secret in secrets.iter().chain([&ha1]) {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "a secret came back: {answer}"
            );
        }
    }

    // What the database keeps of the key pair: no private key, no HA1 in the clear.
    let url = app.config.database_url();
    let stored: Vec<Vec<u8>> = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT sealed FROM sealed_secrets")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT sealed FROM sealed_secrets")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert!(
        !stored.is_empty(),
        "the key pairs' HA1 values are kept sealed"
    );
    let ha1_bytes =
        md5::Md5::digest(format!("{}:{REALM}:{}", owner.public, owner.private).as_bytes());
    for sealed in stored {
        assert!(!sealed.windows(16).any(|window| window == &ha1_bytes[..]));
        assert!(
            !sealed
                .windows(20)
                .any(|window| window == &owner.private.as_bytes()[..20])
        );
    }
}
