//! The `keygate` command-line client, run as a built binary against a real server: each exit
//! code, JSON and text output, `--output env` sourced by a shell, page walks in every family's
//! shape, and a create whose answer is lost retried to the same secret.
//!
//! Every run checks that nothing it printed to stderr holds a secret or the token it used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{
    BOOTSTRAP_TOKEN, Backend, TestApp, assert_no_secret_logged, minted_secrets_in, on_both_backends,
};

/// What a run of the binary came to.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", self.stdout))
    }

    fn success(self) -> Outcome {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }
}

/// `keygate ARGS` aimed at `url` with `token` in `KEYGATE_TOKEN`.
struct Run {
    command: Command,
    token: Option<String>,
}

fn keygate(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("KEYGATE_")) {
        command.env_remove(name);
    }
    command.env("KEYGATE_URL", url).args(args);
    if let Some(token) = token {
        command.env("KEYGATE_TOKEN", token);
    }
    Run {
        command,
        token: token.map(str::to_owned),
    }
}

/// `keygate ARGS` against `app` as its bootstrap admin.
fn admin(app: &TestApp, args: &[&str]) -> Run {
    keygate(&app.base, Some(BOOTSTRAP_TOKEN), args)
}

impl Run {
    fn stdin(mut self, input: &str) -> Run {
        self.command.write_stdin(input.to_owned());
        self
    }

    async fn outcome(mut self) -> Outcome {
        let output = tokio::task::spawn_blocking(move || self.command.output().unwrap())
            .await
            .unwrap();
        let outcome = Outcome {
            code: output.status.code().expect("killed by a signal"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        assert_eq!(minted_secrets_in(&outcome.stderr), Vec::<String>::new());
        if let Some(token) = &self.token {
            assert!(
                !outcome.stderr.contains(token.as_str()),
                "{}",
                outcome.stderr
            );
            assert!(
                !outcome.stdout.contains(token.as_str()),
                "{}",
                outcome.stdout
            );
        }
        outcome
    }
}

async fn agents_are_created_listed_rotated_and_deleted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = admin(&app, &["agents", "create", "edge-1", "--mode", "embedded"])
        .outcome()
        .await
        .success();
    // stdout is not a terminal: JSON unless told otherwise.
    let dsn = created.json()["token"].as_str().unwrap().to_owned();
    assert!(
        dsn.starts_with("grpc://edge-1:xagt-") && dsn.ends_with("mode=embedded"),
        "{dsn}"
    );
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);
    assert_eq!(app.verify(BOOTSTRAP_TOKEN, &dsn).await.1["code"], "valid");

    let shown = admin(&app, &["agents", "get", "edge-1"])
        .outcome()
        .await
        .success();
    assert_eq!(shown.json()["name"], "edge-1");
    assert!(
        minted_secrets_in(&shown.stdout).is_empty(),
        "{}",
        shown.stdout
    );
    // The client options are taken before the command as well as after it.
    let unreachable = "http://127.0.0.1:9";
    for args in [
        &["agents", "list", "-o", "text", "--url", &app.base][..],
        &["--url", &app.base, "--output", "text", "agents", "list"],
        &["-o", "text", "--url", &app.base, "agents", "list"],
    ] {
        let listed = keygate(unreachable, Some(BOOTSTRAP_TOKEN), args)
            .outcome()
            .await
            .success();
        assert!(
            listed.stdout.starts_with("NAME "),
            "{args:?}: {}",
            listed.stdout
        );
        assert!(listed.stdout.contains("edge-1") && listed.stdout.contains("embedded"));
    }
    let listed = keygate(
        unreachable,
        None,
        &[
            "--token",
            BOOTSTRAP_TOKEN,
            "--url",
            &app.base,
            "agents",
            "list",
        ],
    )
    .outcome()
    .await
    .success();
    assert_eq!(listed.json()[0]["name"], "edge-1");

    let rotated = admin(&app, &["agents", "rotate", "edge-1", "--grace-period", "0"])
        .outcome()
        .await
        .success();
    let new_dsn = rotated.json()["token"].as_str().unwrap().to_owned();
    assert_ne!(new_dsn, dsn);
    assert_eq!(app.verify(BOOTSTRAP_TOKEN, &dsn).await.1["valid"], false);
    assert_eq!(
        app.verify(BOOTSTRAP_TOKEN, &new_dsn).await.1["code"],
        "valid"
    );

    // A replay of the same Idempotency-Key is the same DSN, and not said to be shown once.
    let create = [
        "agents",
        "create",
        "edge-2",
        "--idempotency-key",
        "ci-run-7",
    ];
    let first = admin(&app, &create).outcome().await.success();
    let again = admin(&app, &create).outcome().await.success();
    assert_eq!(first.json()["token"], again.json()["token"]);
    assert!(first.stderr.contains("shown once"), "{}", first.stderr);
    assert!(
        !again.stderr.contains("shown once") && again.stderr.contains("replayed"),
        "{}",
        again.stderr
    );

    let deleted = admin(&app, &["agents", "delete", "edge-1"])
        .outcome()
        .await
        .success();
    assert_eq!(deleted.stdout, "");
    assert_eq!(
        app.verify(BOOTSTRAP_TOKEN, &new_dsn).await.1["valid"],
        false
    );
    assert_no_secret_logged();
}

async fn each_outcome_has_its_exit_code(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 2).await;
    let code = |run: Run| async { run.outcome().await.code };

    // Usage: an unknown flag, a missing argument, env output of a list.
    assert_eq!(code(admin(&app, &["agents", "create"])).await, 2);
    assert_eq!(code(admin(&app, &["agents", "list", "--bogus"])).await, 2);
    assert_eq!(code(admin(&app, &["agents", "list", "-o", "env"])).await, 2);
    // Refused as invalid by the server.
    let refused = admin(&app, &["agents", "create", "no spaces allowed"])
        .outcome()
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("HTTP 4"), "{}", refused.stderr);
    // Not found.
    assert_eq!(code(admin(&app, &["agents", "get", "ghost"])).await, 3);
    assert_eq!(code(admin(&app, &["agents", "delete", "ghost"])).await, 3);
    // Conflict: the name is taken (a second invocation, so a new idempotency key).
    admin(&app, &["agents", "create", "taken"])
        .outcome()
        .await
        .success();
    let conflict = admin(&app, &["agents", "create", "taken"]).outcome().await;
    assert_eq!(conflict.code, 4, "{}", conflict.stderr);
    // Not allowed: an auditor may not create.
    let auditor = app.create_api_key("auditor").await;
    let forbidden = keygate(&app.base, Some(&auditor), &["agents", "create", "nope"]).outcome();
    assert_eq!(forbidden.await.code, 5);
    // Not authenticated: no token, then a wrong one until the limiter answers 429.
    let no_token = keygate(&app.base, None, &["agents", "list"])
        .outcome()
        .await;
    assert_eq!(no_token.code, 5, "{}", no_token.stderr);
    assert!(
        no_token.stderr.contains("no token: set KEYGATE_TOKEN"),
        "said before asking: {}",
        no_token.stderr
    );
    let wrong = "kgk_not-a-real-key-but-long-enough-0123456789";
    let refused = || {
        keygate(
            &app.base,
            Some(wrong),
            &["agents", "list", "--retries", "0"],
        )
    };
    assert_eq!(code(refused()).await, 5);
    assert_eq!(code(refused()).await, 5);
    let limited = refused().outcome().await;
    assert_eq!(limited.code, 6, "{}", limited.stderr);
    // Unreachable: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = keygate(
        &url,
        Some(BOOTSTRAP_TOKEN),
        &["agents", "list", "--retries", "1"],
    )
    .outcome()
    .await;
    assert_eq!(unreachable.code, 7, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("retrying"),
        "{}",
        unreachable.stderr
    );
    assert!(
        unreachable.stderr.contains(&format!("cannot reach {url}/")),
        "names the server it tried: {}",
        unreachable.stderr
    );
    // verify: 0 for a valid secret, 8 for any other.
    let dsn = app.create_agent("verified").await;
    let valid = admin(&app, &["verify", "-"])
        .stdin(&dsn)
        .outcome()
        .await
        .success();
    assert_eq!(valid.json()["code"], "valid");
    let invalid = admin(&app, &["verify", "xagt-nothing"]).outcome().await;
    assert_eq!(
        (invalid.code, invalid.json()["valid"].clone()),
        (8, json!(false))
    );
    assert_no_secret_logged();
}

/// `--output env` lines as both of their readers read them: GitHub Actions' `$GITHUB_ENV`
/// (the value is everything after the first `=`, as is) and bash's `source`. Fails unless the
/// two agree on every variable.
fn read_env_lines(lines: &str) -> BTreeMap<String, String> {
    let github: BTreeMap<String, String> = lines
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').expect("a NAME=value line");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keygate.env");
    std::fs::write(&file, lines).unwrap();
    let names: Vec<&str> = github.keys().map(String::as_str).collect();
    let script = format!(
        "source \"$1\" && for name in {}; do printf '%s\\0' \"${{!name}}\"; done",
        names.join(" ")
    );
    let sourced = std::process::Command::new("bash")
        .args(["-c", &script, "bash", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{sourced:?}");
    let sourced = String::from_utf8(sourced.stdout).unwrap();
    let sourced: Vec<&str> = sourced.split_terminator('\0').collect();
    let github_values: Vec<&str> = github.values().map(String::as_str).collect();
    assert_eq!(
        sourced, github_values,
        "bash and $GITHUB_ENV differ:\n{lines}"
    );
    github
}

async fn env_output_is_sourced_by_a_shell(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = admin(&app, &["agents", "create", "ci-agent", "--output", "env"])
        .outcome()
        .await
        .success();
    let dsn = &read_env_lines(&created.stdout)["KEYGATE_AGENT_DSN"];
    assert!(
        dsn.starts_with("grpc://ci-agent:xagt-"),
        "{}",
        created.stdout
    );
    assert_eq!(app.verify(BOOTSTRAP_TOKEN, dsn).await.1["code"], "valid");

    // A machine identity's credentials are named by connection, each with its secret in
    // `…_SECRET`, wherever its protocol carries it: the user name for postgres (whose password
    // is the proxy's fixed one, so not shown as a `…_PASSWORD`), the password for ssh.
    for (name, subtype) in [
        ("pg-prod", "postgres"),
        ("bastion", "ssh"),
        ("mongo", "mongodb"),
    ] {
        let connection = admin(
            &app,
            &[
                "connections",
                "create",
                name,
                "--type",
                "database",
                "--subtype",
                subtype,
                "--agent-id",
                "ci-agent",
                "--database-name",
                "app",
            ],
        )
        .outcome()
        .await
        .success();
        assert_eq!(connection.json()["name"], name);
    }
    let identity = admin(
        &app,
        &[
            "machine-identities",
            "create",
            "ci-bot",
            "--description",
            "the CI's own",
            "--connection",
            "pg-prod",
            "--connection",
            "bastion",
            "--connection",
            "mongo",
            "-o",
            "env",
        ],
    )
    .outcome()
    .await
    .success();
    let env = read_env_lines(&identity.stdout);
    let secret = |connection: &str| {
        let prefix = format!("KEYGATE_MACHINE_IDENTITY_{connection}_");
        let secret = env[&format!("{prefix}SECRET")].clone();
        assert!(secret.starts_with("kgmi_"), "{}", identity.stdout);
        secret
    };
    let postgres = secret("PG_PROD");
    assert_eq!(env["KEYGATE_MACHINE_IDENTITY_PG_PROD_USERNAME"], postgres);
    assert!(!env.contains_key("KEYGATE_MACHINE_IDENTITY_PG_PROD_PASSWORD"));
    let ssh = secret("BASTION");
    assert_eq!(env["KEYGATE_MACHINE_IDENTITY_BASTION_PASSWORD"], ssh);
    assert_eq!(env["KEYGATE_MACHINE_IDENTITY_BASTION_USERNAME"], "bastion");
    // What only quotes could carry is left out, and named (never shown) on stderr.
    secret("MONGO");
    for left_out in [
        "KEYGATE_MACHINE_IDENTITY_DESCRIPTION",
        "KEYGATE_MACHINE_IDENTITY_MONGO_CONNECTION_STRING",
        "KEYGATE_MACHINE_IDENTITY_BASTION_COMMAND",
    ] {
        assert!(!env.contains_key(left_out), "{}", identity.stdout);
        assert!(identity.stderr.contains(left_out), "{}", identity.stderr);
    }
    for (connection, secret) in [("pg-prod", &postgres), ("bastion", &ssh)] {
        let verdict = app
            .post(
                "/verify",
                BOOTSTRAP_TOKEN,
                json!({ "key": secret, "connection": connection }),
            )
            .await
            .1;
        assert_eq!(verdict["code"], "valid", "{verdict}");
    }

    let rotated = admin(
        &app,
        &[
            "machine-identities",
            "rotate",
            "ci-bot",
            "pg-prod",
            "-o",
            "env",
        ],
    )
    .outcome()
    .await
    .success();
    let rotated = read_env_lines(&rotated.stdout);
    assert!(rotated["KEYGATE_CREDENTIAL_SECRET"].starts_with("kgmi_"));
    assert_ne!(rotated["KEYGATE_CREDENTIAL_SECRET"], postgres);
    assert_no_secret_logged();
}

/// A create whose answer the network loses after the server made it: the client's retry
/// carries the same Idempotency-Key, and prints the secret the server minted the first time.
async fn a_lost_answer_is_retried_to_the_same_secret(backend: Backend) {
    let app = TestApp::start(backend).await;
    let proxy = AnswerDropper::start(&app.base).await;
    let created = keygate(
        &proxy.url,
        Some(BOOTSTRAP_TOKEN),
        &["agents", "create", "lossy"],
    )
    .outcome()
    .await
    .success();
    assert!(created.stderr.contains("retrying"), "{}", created.stderr);
    let dropped: Value = serde_json::from_str(&proxy.dropped_body()).unwrap();
    assert_eq!(created.json()["token"], dropped["token"]);
    let listed = admin(&app, &["agents", "list"]).outcome().await.success();
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        1,
        "{}",
        listed.stdout
    );

    // A CI job re-run with the same --idempotency-key gets the first run's secret back.
    let rerun = |name: &str| {
        admin(
            &app,
            &[
                "agents",
                "create",
                name,
                "--idempotency-key",
                "ci-run-42-agent",
            ],
        )
    };
    let first = rerun("rerun").outcome().await.success().json();
    let second = rerun("rerun").outcome().await.success().json();
    assert_eq!(first["token"], second["token"]);

    // A deletion whose answer is lost: the retry finds it gone, which is what was asked.
    let proxy = AnswerDropper::start(&app.base).await;
    let deleted = keygate(
        &proxy.url,
        Some(BOOTSTRAP_TOKEN),
        &["agents", "delete", "lossy"],
    )
    .outcome()
    .await
    .success();
    assert!(
        deleted.stderr.contains("already gone"),
        "{}",
        deleted.stderr
    );
    assert_no_secret_logged();
}

/// 503 and 429 are retried as often as `--retries` says, then reported by their exit codes.
#[tokio::test]
async fn a_failing_server_is_retried_a_bounded_number_of_times() {
    for (status, exit) in [("503 Service Unavailable", 7), ("429 Too Many Requests", 6)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answered = Arc::new(Mutex::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let count = count.clone();
                tokio::spawn(async move {
                    while read_message(&mut client).await.is_some() {
                        *count.lock().unwrap() += 1;
                        let answer = format!(
                            "HTTP/1.1 {status}\r\nretry-after: 0\r\ncontent-type: application/json\r\n\
                             content-length: 19\r\n\r\n{{\"message\":\"later\"}}"
                        );
                        client.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        let run = keygate(
            &url,
            Some(BOOTSTRAP_TOKEN),
            &["agents", "create", "x", "--retries", "2"],
        );
        let outcome = run.outcome().await;
        assert_eq!(outcome.code, exit, "{}", outcome.stderr);
        assert!(outcome.stderr.contains("later"), "{}", outcome.stderr);
        assert_eq!(*answered.lock().unwrap(), 3, "{status}");
    }
}

async fn every_family_is_served(backend: Backend) {
    let app = TestApp::start(backend).await;
    // keygate API keys, read from a token file.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{BOOTSTRAP_TOKEN}\n")).unwrap();
    let from_file = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--token-file", token_file.to_str().unwrap()]);
        keygate(&app.base, None, &args)
    };
    let key = from_file(&["api-keys", "create", "deployer", "--role", "admin"])
        .outcome()
        .await
        .success()
        .json();
    let deployer = key["key"].as_str().unwrap().to_owned();
    let agent = keygate(
        &app.base,
        Some(&deployer),
        &["agents", "create", "by-deployer"],
    );
    agent.outcome().await.success();

    // Ops Manager: a project and its agent API key.
    let project = admin(&app, &["projects", "create", "billing"])
        .outcome()
        .await
        .success();
    let project_id = project.json()["id"].as_str().unwrap().to_owned();
    let agent_key = admin(
        &app,
        &[
            "project-agent-keys",
            "create",
            "--project",
            &project_id,
            "--desc",
            "rack 7",
        ],
    )
    .outcome()
    .await
    .success()
    .json();
    let verdict = app
        .verify(BOOTSTRAP_TOKEN, agent_key["key"].as_str().unwrap())
        .await
        .1;
    assert_eq!(verdict["code"], "valid", "{verdict}");

    // Agentex: a bearer key for an agent.
    app.create_agent("support-bot").await;
    let agentex = admin(
        &app,
        &[
            "agentex-keys",
            "create",
            "webhook",
            "--agent-name",
            "support-bot",
            "--type",
            "internal",
        ],
    )
    .outcome()
    .await
    .success()
    .json();
    let verdict = app
        .verify(BOOTSTRAP_TOKEN, agentex["api_key"].as_str().unwrap())
        .await
        .1;
    assert_eq!(verdict["code"], "valid", "{verdict}");

    // The audit trail names what was done, filtered as the API filters.
    let audit = admin(&app, &["audit", "--action", "project.created"])
        .outcome()
        .await
        .success();
    let events = audit.json();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["resource_id"], project_id.as_str());

    // Each family's pages are walked to the end, one item per request.
    admin(&app, &["projects", "create", "search"])
        .outcome()
        .await
        .success();
    let second_key = [
        "project-agent-keys",
        "create",
        "--project",
        &project_id,
        "--desc",
        "rack 8",
    ];
    admin(&app, &second_key).outcome().await.success();
    admin(
        &app,
        &[
            "agentex-keys",
            "create",
            "ci",
            "--agent-name",
            "support-bot",
        ],
    )
    .outcome()
    .await
    .success();
    for list in [
        vec!["api-keys", "list"],
        vec!["agents", "list"],
        vec!["projects", "list"],
        vec!["agentex-keys", "list", "--agent-name", "support-bot"],
        vec!["project-agent-keys", "list", "--project", &project_id],
    ] {
        let at_once = admin(&app, &list).outcome().await.success().json();
        let by_one = [list.as_slice(), &["--page-size", "1"]].concat();
        let by_one = admin(&app, &by_one).outcome().await.success().json();
        // Compared by id: a listing key's `last_used_at` moves between the two walks.
        let ids = |items: Value| -> Vec<Value> {
            let items = items.as_array().unwrap().iter();
            items
                .map(|item| item.get("id").unwrap_or(&item["_id"]).clone())
                .collect()
        };
        let at_once = ids(at_once);
        assert!(at_once.len() >= 2, "{list:?}: {at_once:?}");
        assert_eq!(ids(by_one), at_once, "{list:?}");
    }
    assert_no_secret_logged();
}

async fn operators_govern_orgs_policy_and_key_pairs(backend: Backend) {
    let app = TestApp::start(backend).await;
    // A new organization's first admin key, exported for the next step.
    let org = admin(&app, &["orgs", "create", "acme", "-o", "env"])
        .outcome()
        .await
        .success();
    let line = org
        .stdout
        .lines()
        .find(|line| line.starts_with("KEYGATE_ORG_API_KEY="));
    let acme_admin = line.unwrap().split_once('=').unwrap().1.to_owned();
    let agents = keygate(&app.base, Some(&acme_admin), &["agents", "list"])
        .outcome()
        .await;
    assert_eq!(agents.success().json(), json!([]));
    let orgs = admin(&app, &["orgs", "list"])
        .outcome()
        .await
        .success()
        .json();
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .any(|org| org["name"] == "acme"),
        "{orgs}"
    );

    // A policy caps the lifetime of new agent keys.
    let set = keygate(
        &app.base,
        Some(&acme_admin),
        &["policy", "set", "agent_key=3600"],
    );
    set.outcome().await.success();
    let policy = keygate(&app.base, Some(&acme_admin), &["policy", "get"])
        .outcome()
        .await;
    assert_eq!(
        policy.success().json()["max_lifetime_seconds"]["agent_key"],
        3600
    );
    let created = keygate(
        &app.base,
        Some(&acme_admin),
        &["agents", "create", "capped"],
    );
    let dsn = created.outcome().await.success().json()["token"].clone();
    let verdict = app.verify(&acme_admin, dsn.as_str().unwrap()).await.1;
    assert!(verdict["expires_at"].is_string(), "{verdict}");
    let bad = keygate(
        &app.base,
        Some(&acme_admin),
        &["policy", "set", "agent_key"],
    )
    .outcome();
    assert_eq!(bad.await.code, 2);

    // Ops Manager key pairs: created, listed masked, rotated, deleted.
    let project = admin(&app, &["projects", "create", "ops"])
        .outcome()
        .await
        .success()
        .json();
    let org_id = project["orgId"].as_str().unwrap();
    let pair = admin(
        &app,
        &[
            "key-pairs",
            "create",
            "--org",
            org_id,
            "--desc",
            "automation",
            "--role",
            "ORG_MEMBER",
        ],
    )
    .outcome()
    .await
    .success()
    .json();
    let (id, private) = (pair["id"].as_str().unwrap(), pair["privateKey"].clone());
    let listed = admin(&app, &["key-pairs", "list", "--org", org_id])
        .outcome()
        .await;
    let listed = listed.success().json();
    assert_eq!(listed[0]["id"], id);
    assert_ne!(listed[0]["privateKey"], private);
    let rotated = admin(&app, &["key-pairs", "rotate", "--org", org_id, id])
        .outcome()
        .await;
    let rotated = rotated.success().json();
    assert_eq!(rotated["publicKey"], pair["publicKey"]);
    assert_ne!(rotated["privateKey"], private);
    admin(&app, &["key-pairs", "delete", "--org", org_id, id])
        .outcome()
        .await
        .success();
    let gone = admin(&app, &["key-pairs", "get", "--org", org_id, id])
        .outcome()
        .await;
    assert_eq!(gone.code, 3);
    assert_no_secret_logged();
}

on_both_backends!(
    agents_are_created_listed_rotated_and_deleted,
    operators_govern_orgs_policy_and_key_pairs,
    each_outcome_has_its_exit_code,
    env_output_is_sourced_by_a_shell,
    a_lost_answer_is_retried_to_the_same_secret,
    every_family_is_served,
);

#[tokio::test]
async fn completions_and_the_manual_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish"] {
        let script = keygate("http://unused", None, &["completions", shell])
            .outcome()
            .await;
        let script = script.success().stdout;
        assert!(script.contains("machine-identities") && script.contains("idempotency-key"));
    }
    // Every page a page refers to is written.
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    keygate("http://unused", None, &["man", man1.to_str().unwrap()])
        .outcome()
        .await
        .success();
    let page = |name: &str| std::fs::read_to_string(man1.join(format!("{name}.1")));
    let top = page("keygate").unwrap();
    assert!(
        top.contains(".TH keygate") && top.contains("\\-\\-url"),
        "{top}"
    );
    let mut referred = 0;
    for entry in std::fs::read_dir(&man1).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (at, _) in text.match_indices("(1)") {
            let name = text[..at]
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap();
            let name = name.replace("\\-", "-");
            assert!(
                page(&name).is_ok(),
                "{name}(1) is referred to but not written"
            );
            referred += 1;
        }
    }
    assert!(referred > 10, "{referred}");
    assert!(
        page("keygate-agents-create")
            .unwrap()
            .contains("\\-\\-mode")
    );
    assert!(page("keygate-agents-help").is_err());

    let help = keygate("http://unused", None, &["--help"])
        .outcome()
        .await
        .success()
        .stdout;
    assert!(
        help.contains("Exit codes:") && help.contains("8  verify"),
        "{help}"
    );
    for option in ["--url <URL>", "--token <TOKEN>", "--output <OUTPUT>"] {
        assert!(help.contains(option), "{option} is not in:\n{help}");
    }
    // The operator's commands on the server's database.
    for command in ["admin-key", "server-key", "backup", "restore"] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command} is not in:\n{help}"
        );
    }
    let server_key = keygate("http://unused", None, &["server-key", "--help"])
        .outcome()
        .await
        .success()
        .stdout;
    for verb in ["status", "rotate"] {
        assert!(
            server_key
                .lines()
                .any(|line| line.trim_start().starts_with(verb)),
            "{verb} is not in:\n{server_key}"
        );
    }
    assert!(
        page("keygate-server-key-rotate")
            .unwrap()
            .contains("\\-\\-limit")
    );
}

/// A TCP proxy that forwards the first request to the server, reads the whole answer, and
/// closes the client's connection without it; later connections pass through.
struct AnswerDropper {
    url: String,
    dropped: Arc<Mutex<String>>,
}

impl AnswerDropper {
    async fn start(upstream: &str) -> AnswerDropper {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let dropped = Arc::new(Mutex::new(String::new()));
        let record = dropped.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let mut server = TcpStream::connect(&upstream).await.unwrap();
                if std::mem::take(&mut first) {
                    let request = read_message(&mut client).await.unwrap();
                    server.write_all(&request).await.unwrap();
                    let answer = read_message(&mut server).await.unwrap();
                    let answer = String::from_utf8(answer).unwrap();
                    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
                    *record.lock().unwrap() = body;
                    drop(client);
                } else {
                    tokio::spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            }
        });
        AnswerDropper { url, dropped }
    }

    fn dropped_body(&self) -> String {
        self.dropped.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 message with a `Content-Length` body (what both keygate and the client send);
/// `None` when the connection closes first.
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        message.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&message).to_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |length| length.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return Some(message);
            }
        }
    }
}
