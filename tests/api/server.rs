//! The server around the key kinds: health, server info, request ids, limits, OpenAPI.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use keygate::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, execute_sql, on_both_backends};

on_both_backends!(
    health_and_readiness_answer,
    shutdown_lets_in_flight_requests_finish,
    slow_requests_are_408_in_the_routes_dialect,
    serverinfo_names_version_grpc_url_and_database_without_secrets,
    every_response_carries_a_request_id,
    oversized_bodies_are_413_in_the_routes_dialect,
    unknown_routes_are_404,
    served_openapi_matches_the_committed_copy,
    swagger_ui_is_served_from_the_binary,
    an_instance_whose_server_key_differs_from_the_databases_does_not_start,
    a_database_sealed_before_key_checks_takes_only_its_sealing_key,
    instances_starting_together_with_different_keys_agree_on_one,
    refusals_say_whether_a_retry_can_succeed,
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = app.get_anonymous("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app.get_anonymous("/readyz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
}

async fn shutdown_lets_in_flight_requests_finish(backend: Backend) {
    let mut app = TestApp::start(backend).await;
    let body = br#"{"name": "in-flight"}"#;
    let mut upload = app.start_upload("/agents", body, 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    app.signal_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let response = upload.finish(&body[5..]).await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    app.restart().await; // waits for the stopped server, then starts on the same database
    assert_eq!(app.get("/agents/in-flight", ADMIN).await.0, StatusCode::OK);
}

async fn slow_requests_are_408_in_the_routes_dialect(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.request_timeout_secs = 1).await;
    let body = br#"{"name": "too-slow"}"#;
    let mut upload = app.start_upload("/api/agents", body, 5).await;
    let response = upload.finish(b"").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.ends_with(r#"{"message":"the request took longer than 1 s"}"#),
        "{response}"
    );
    assert_eq!(
        app.get("/agents", ADMIN).await.1,
        json!([]),
        "nothing was written"
    );
}

/// Readiness follows the database: with the Postgres database gone, `/readyz` is 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn readiness_is_503_when_the_database_is_unreachable() {
    let app = TestApp::start(Backend::Postgres).await;
    let database = url::Url::parse(app.config.database_url.as_ref().unwrap())
        .unwrap()
        .path()[1..]
        .to_owned();
    let mut admin = crate::common::admin_connection().await;
    let drop = format!("DROP DATABASE \"{database}\" WITH (FORCE)");
    sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(drop))
        .await
        .unwrap();
    let (status, body) = app.get_anonymous("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"code": "unavailable", "message": "the database is unavailable"})
    );
    let (status, _) = app.get_anonymous("/healthz").await;
    assert_eq!(status, StatusCode::OK, "the process itself is still up");
}

async fn serverinfo_names_version_grpc_url_and_database_without_secrets(backend: Backend) {
    let app = TestApp::start(backend).await;
    for path in ["/serverinfo", "/api/serverinfo"] {
        let (status, info) = app.get_anonymous(path).await;
        assert_eq!(status, StatusCode::OK);
        let database = if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        };
        assert_eq!(
            info,
            json!({"version": env!("CARGO_PKG_VERSION"), "grpc_url": "grpc://127.0.0.1:8010", "database": database})
        );
    }
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::start(backend).await;
    let generated = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let honoured = app
        .request(Method::GET, "/agents", None)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(honoured.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(honoured.headers()["x-request-id"], "trace-me-42");
    assert!(
        crate::common::captured_logs().contains("trace-me-42"),
        "the request id is in the request logs"
    );
}

async fn oversized_bodies_are_413_in_the_routes_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let huge = json!({"name": "a".repeat(70 * 1024)});
    let (status, body) = app.post("/agents", ADMIN, huge.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({"message": "request body is larger than 65536 bytes"})
    );
    let (status, body) = app
        .post("/verify", ADMIN, json!({"key": "x".repeat(70 * 1024)}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(
        app.get("/agents", ADMIN).await.1,
        json!([]),
        "nothing was written"
    );
}

async fn unknown_routes_are_404(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = app.get("/no/such/route", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "not_found", "message": "route not found"})
    );
    let response = app
        .request(Method::PUT, "/agents", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

const COMMITTED_OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Set `KEYGATE_UPDATE_OPENAPI=1` to rewrite the committed copy after changing a handler.
async fn served_openapi_matches_the_committed_copy(backend: Backend) {
    let app = TestApp::start(backend).await;
    let served: Value = app
        .request(Method::GET, "/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated = serde_json::to_string_pretty(&keygate::http::openapi()).unwrap() + "\n";
    if std::env::var_os("KEYGATE_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED_OPENAPI, &generated).unwrap();
    }
    let committed =
        std::fs::read_to_string(COMMITTED_OPENAPI).expect("openapi/openapi.json is committed");
    assert_eq!(
        committed, generated,
        "openapi/openapi.json is stale: rerun with KEYGATE_UPDATE_OPENAPI=1"
    );
    assert_eq!(served, serde_json::from_str::<Value>(&committed).unwrap());
    for path in [
        "/agents",
        "/agents/{nameOrId}",
        "/agents/{nameOrId}/rotate",
        "/verify",
        "/apikeys",
        "/orgs",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }
}

async fn swagger_ui_is_served_from_the_binary(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app
        .request(Method::GET, "/docs/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.text().await.unwrap().contains("swagger"),
        "the Swagger UI page"
    );
}

/// A configuration for another instance on `app`'s database with the server key `key`
/// (`None`: the key generated in a data directory of its own).
fn beside(app: &TestApp, key: Option<&str>, data_dir: &std::path::Path) -> Config {
    let mut config = app.config.clone();
    config.database_url = Some(app.config.database_url());
    config.data_dir = data_dir.to_owned();
    config.secret_key = key.map(str::to_owned);
    config
}

/// Why `config` does not start, as `keygate serve` prints it.
async fn refusal(config: &Config) -> String {
    match keygate::prepare(config).await {
        Ok(_) => panic!("an instance started with a server key the database does not take"),
        Err(err) => keygate::error::with_causes(err.as_ref()),
    }
}

fn assert_names_the_setting_only(refusal: &str, keys: &[&str]) {
    assert!(refusal.contains("KEYGATE_SECRET_KEY"), "{refusal}");
    assert!(!refusal.contains('\n'), "one line: {refusal}");
    for key in keys {
        assert!(!refusal.contains(key), "key material in: {refusal}");
    }
}

async fn an_instance_whose_server_key_differs_from_the_databases_does_not_start(backend: Backend) {
    let first_key = STANDARD.encode([1u8; 32]);
    let app = TestApp::start_with(backend, |config| {
        config.secret_key = Some(first_key.clone())
    })
    .await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = STANDARD.encode([2u8; 32]);
    let chosen = refusal(&beside(&app, Some(&other_key), other_dir.path())).await;
    assert_names_the_setting_only(&chosen, &[&first_key, &other_key]);
    let generated = refusal(&beside(&app, None, other_dir.path())).await;
    let generated_key = std::fs::read_to_string(other_dir.path().join("secret-key")).unwrap();
    assert_names_the_setting_only(&generated, &[&first_key, generated_key.trim()]);

    let twin = keygate::prepare(&beside(&app, Some(&first_key), other_dir.path())).await;
    assert!(twin.is_ok(), "the same key starts");
}

/// A database that a keygate from before check values sealed values in (migration 0013 leaves
/// it without a check value): the key that sealed them is taken, and recorded; another is
/// refused, before and after.
async fn a_database_sealed_before_key_checks_takes_only_its_sealing_key(backend: Backend) {
    let sealing_key = STANDARD.encode([3u8; 32]);
    let app = TestApp::start_with(backend, |config| {
        config.secret_key = Some(sealing_key.clone())
    })
    .await;
    app.create_agent("edge-1").await;
    let body = json!({"agent_name": "edge-1", "name": "octo/repo", "api_key_type": "github"});
    let (status, created) = app.post("/agent_api_keys", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    execute_sql(&app, "DELETE FROM server_key_checks").await;

    let other_dir = tempfile::tempdir().unwrap();
    let wrong_key = STANDARD.encode([4u8; 32]);
    let refused = refusal(&beside(&app, Some(&wrong_key), other_dir.path())).await;
    assert_names_the_setting_only(&refused, &[&sealing_key, &wrong_key]);
    let right = keygate::prepare(&beside(&app, Some(&sealing_key), other_dir.path())).await;
    assert!(right.is_ok(), "the key that sealed the database starts");
    let refused = refusal(&beside(&app, Some(&wrong_key), other_dir.path())).await;
    assert_names_the_setting_only(&refused, &[&sealing_key, &wrong_key]);
}

/// Two instances with different keys starting together on a new database: the key recorded
/// first stands, and the other instance does not start.
async fn instances_starting_together_with_different_keys_agree_on_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (postgres_db, url) = crate::storage::empty_database(backend, &dir).await;
    // The migrations run once, before the race under test.
    drop(keygate::storage::connect(&url, 1).await.unwrap());
    let starts = [5u8, 6].map(|byte| {
        let mut config = Config::parse_from([
            "keygate",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--bootstrap-token",
            ADMIN,
        ]);
        config.database_url = Some(url.clone());
        config.secret_key = Some(STANDARD.encode([byte; 32]));
        tokio::spawn(async move {
            keygate::prepare(&config)
                .await
                .map(drop)
                .map_err(|err| keygate::error::with_causes(err.as_ref()))
        })
    });
    let mut refusals = Vec::new();
    for start in starts {
        refusals.extend(start.await.unwrap().err());
    }
    assert_eq!(refusals.len(), 1, "exactly one of the two keys is taken");
    assert_names_the_setting_only(&refusals[0], &[]);
    crate::storage::drop_database(postgres_db).await;
}

/// `keygate --help` (and each subcommand's) started with secret settings in the environment
/// names the variables but never shows their values.
#[test]
fn help_never_shows_secret_environment_values() {
    let secrets = [
        (
            "KEYGATE_DATABASE_URL",
            "postgres://keygate:hunter2@db/keygate?password=hunter2",
        ),
        (
            "KEYGATE_BOOTSTRAP_TOKEN",
            "bootstrap-token-hunter3-0123456789abcdef",
        ),
        (
            "KEYGATE_SECRET_KEY",
            "aHVudGVyNC1odW50ZXI0LWh1bnRlcjQtaHVudGVyNDQ=",
        ),
        (
            "KEYGATE_PREVIOUS_SECRET_KEYS",
            "aHVudGVyNS1odW50ZXI1LWh1bnRlcjUtaHVudGVyNTU=",
        ),
    ];
    for args in [
        &["--help"][..],
        &["-h"],
        &["serve", "--help"],
        &["admin-key", "--help"],
        &["server-key", "rotate", "--help"],
        &["server-key", "status", "--help"],
        &["backup", "--help"],
        &["restore", "--help"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .envs(secrets)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("KEYGATE_DATABASE_URL"), "{args:?}: {help}");
        for needle in ["hunter2", "hunter3", secrets[2].1, secrets[3].1] {
            assert!(!help.contains(needle), "{args:?} shows a secret:\n{help}");
        }
    }
}

/// Every family tells retrying clients (Stainless SDKs read `x-should-retry`) whether the same
/// request can succeed later: not a conflict, a refused field or a missing resource; yes a rate
/// limit. A success carries no advice.
async fn refusals_say_whether_a_retry_can_succeed(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.verify_failures_per_minute = 1).await;
    let advice = |method: Method, path: &str, body: Option<Value>| {
        let request = app.request(method, path, Some(ADMIN));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let advice = response
                .headers()
                .get("x-should-retry")
                .map(|value| value.to_str().unwrap().to_owned());
            (response.status(), advice)
        }
    };
    let no = |status| (status, Some("false".to_owned()));
    let yes = |status| (status, Some("true".to_owned()));

    let agent = json!({"name": "edge-1"});
    assert_eq!(
        advice(Method::POST, "/agents", Some(agent.clone())).await,
        (StatusCode::CREATED, None)
    );
    assert_eq!(
        advice(Method::POST, "/agents", Some(agent)).await,
        no(StatusCode::CONFLICT)
    );
    assert_eq!(
        advice(Method::POST, "/apikeys", Some(json!({}))).await,
        no(StatusCode::BAD_REQUEST)
    );
    let project = json!({"name": "p1"});
    assert_eq!(
        advice(Method::POST, "/groups", Some(project.clone()))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        advice(Method::POST, "/api/public/v1.0/groups", Some(project)).await,
        no(StatusCode::CONFLICT)
    );
    let key = json!({"agent_name": "edge-1", "name": "ci"});
    assert_eq!(
        advice(Method::POST, "/agent_api_keys", Some(key.clone()))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        advice(Method::POST, "/agent_api_keys", Some(key)).await,
        no(StatusCode::CONFLICT)
    );
    let unknown = "/agent_api_keys/01a24255-0e47-730d-b3ff-bf8ff8e2f75c";
    assert_eq!(
        advice(Method::GET, unknown, None).await,
        no(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        advice(Method::POST, "/agent_api_keys", Some(json!({"name": 5}))).await,
        no(StatusCode::UNPROCESSABLE_ENTITY)
    );
    // A route no family serves, and a method a route does not take.
    assert_eq!(
        advice(Method::GET, "/no-such-route", None).await,
        no(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        advice(Method::PATCH, "/healthz", None).await,
        no(StatusCode::METHOD_NOT_ALLOWED)
    );
    // Past the failure limit, waiting is the remedy.
    let guess = json!({"key": "xagt-not-a-real-key"});
    advice(Method::POST, "/verify", Some(guess.clone())).await;
    assert_eq!(
        advice(Method::POST, "/verify", Some(guess)).await,
        yes(StatusCode::TOO_MANY_REQUESTS)
    );
}

/// `keygate` started as a first-time user starts it: no `KEYGATE_*` from the test's own
/// environment, a data directory of its own, any free port; `env` on top. What it printed
/// on stdout and stderr, once it stopped (each case here fails before serving).
fn first_run(env: &[(&str, &str)]) -> (i32, String, String) {
    first_run_in(tempfile::tempdir().unwrap().path(), env)
}

/// [`first_run`] with the data directory `data_dir`, to look at what the run left there.
fn first_run_in(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("KEYGATE_")) {
        command.env_remove(name);
    }
    let output = command
        .env("KEYGATE_DATA_DIR", data_dir)
        .env("KEYGATE_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().expect("killed by a signal"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Every setting refused at start-up is named both ways, environment variable and flag, with
/// an example of what it takes; a secret's value is never echoed.
#[test]
fn a_refused_setting_names_its_variable_its_flag_and_an_example() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("data");
    for (variable, value) in [
        ("KEYGATE_LISTEN", "8009"),
        ("KEYGATE_DATA_DIR", under_a_file.to_str().unwrap()),
        ("KEYGATE_DATABASE_URL", "mysql://db/keygate"),
        ("KEYGATE_GRPC_URL", "https://gw.example.com"),
        ("KEYGATE_PUBLIC_URL", "ftp://keygate.example.com"),
        ("KEYGATE_DATABASE_MAX_CONNECTIONS", "many"),
        ("KEYGATE_BOOTSTRAP_TOKEN", "short-hunter2"),
        ("KEYGATE_SECRET_KEY", "hunter2"),
        ("KEYGATE_LOG", "info,["),
        ("KEYGATE_LOG_FORMAT", "xml"),
        ("KEYGATE_VERIFY_FAILURES_PER_MINUTE", "lots"),
        ("KEYGATE_AUTH_FAILURES_PER_MINUTE", "-1"),
        ("KEYGATE_REQUEST_TIMEOUT_SECS", "30s"),
        ("KEYGATE_TRUSTED_PROXIES", "the-load-balancer"),
        ("KEYGATE_USAGE_FLUSH_MS", "5s"),
        ("KEYGATE_AUDIT_RETENTION_DAYS", "forever"),
        ("KEYGATE_VERIFY_CACHE_CAPACITY", "big"),
        ("KEYGATE_GATEWAY_HOST", "gw example"),
        ("KEYGATE_GATEWAY_LISTENERS", "postgres"),
        ("KEYGATE_GATEWAY_TLS", "smtp"),
        ("KEYGATE_IDEMPOTENCY_WINDOW_SECS", "0"),
        ("KEYGATE_CORS_ORIGINS", "console.example.com"),
        ("KEYGATE_CONSOLE_IDLE_TIMEOUT_SECS", "0"),
        ("KEYGATE_CONSOLE_SESSION_LIFETIME_SECS", "12h"),
        ("KEYGATE_CONSOLE_SECURE_COOKIE", "maybe"),
    ] {
        let (code, stdout, stderr) = first_run(&[(variable, value)]);
        assert_ne!(code, 0, "{variable}={value} was taken");
        let flag = format!(
            "--{}",
            variable["KEYGATE_".len()..]
                .to_lowercase()
                .replace('_', "-")
        );
        for needed in [variable, flag.as_str(), "e.g."] {
            assert!(
                stderr.contains(needed),
                "{variable}={value}: {needed} is not in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(!stdout.contains(variable), "said once: {stdout}");
    }
}

/// A Postgres that cannot be reached is named by host and port, with why: refused, or no
/// answer. Said once, whether the log is for people (a line on stderr) or for a collector (a
/// JSON event on stdout, the log).
#[test]
fn an_unreachable_postgres_is_named_with_why_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing = closed.local_addr().unwrap();
    drop(closed);
    // Takes connections into its backlog and never answers: the Postgres handshake waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_at = silent.local_addr().unwrap();
    // Each silent start takes the whole connect timeout, twice: once in a format is enough.
    for (at, why, formats) in [
        (refusing, "connection refused", &["human", "json"][..]),
        (silent_at, "timed out", &["json"]),
    ] {
        let url = format!("postgres://keygate:hunter2@{at}/keygate");
        let expected = format!("cannot reach Postgres at {at}: {why}");
        for &format in formats {
            let data_dir = tempfile::tempdir().unwrap();
            let (code, stdout, stderr) = first_run_in(
                data_dir.path(),
                &[
                    ("KEYGATE_DATABASE_URL", &url),
                    ("KEYGATE_LOG_FORMAT", format),
                ],
            );
            assert_eq!(code, 1, "{stderr}");
            // Nothing is generated for a database that was never reached.
            assert!(!data_dir.path().join("secret-key").exists());
            let said = format!("{stdout}{stderr}");
            assert_eq!(said.matches(&expected).count(), 1, "{format}: {said}");
            assert!(!said.contains("hunter2"), "{said}");
            if format == "json" {
                assert_eq!(stderr, "");
            } else {
                assert!(
                    stderr.starts_with(&format!("keygate: {expected}")),
                    "{stderr}"
                );
                assert_eq!(stderr.lines().count(), 1, "{stderr}");
            }
        }
    }
    drop(silent);
}

/// A Postgres without the named database says so plainly: no sqlx wording, no server source
/// line ("at line 948").
#[test]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
fn a_missing_postgres_database_is_named_plainly() {
    let mut url =
        url::Url::parse(&crate::common::postgres_url().expect("KEYGATE_TEST_POSTGRES_URL"))
            .unwrap();
    url.set_path("/keygate_never_created");
    let (code, stdout, stderr) = first_run(&[("KEYGATE_DATABASE_URL", url.as_str())]);
    assert_eq!(code, 1, "{stderr}");
    let at = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    );
    assert!(
        stderr.starts_with(&format!(
            "keygate: Postgres at {at} has no database \"keygate_never_created\": create it"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("at line"), "{stderr}");
    assert!(
        !stdout.contains("keygate_never_created"),
        "said once: {stdout}"
    );
}
