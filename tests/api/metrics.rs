//! `GET /metrics`: what an instance counted, for Prometheus — verifications by kind and
//! outcome, HTTP answers by family, route template and status class — in Prometheus's text
//! format or OpenMetrics, to the operators only, and accepted by Prometheus's own `promtool`.

use reqwest::{Method, StatusCode, header};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    verifications_and_answers_are_counted_by_bounded_labels,
    refusals_replays_and_the_audit_queue_are_counted,
    only_the_operators_read_the_metrics,
    a_metrics_listener_serves_the_metrics_alone_without_credentials,
    the_pool_and_the_change_listener_report_on_themselves,
    a_real_prometheus_scrapes_keygate_with_the_documented_config,
    the_dashboard_and_the_alerts_ask_for_series_keygate_exports,
    secrets_are_counted_by_kind_and_state_from_the_database,
);

/// The metrics as `token` reads them, asking for `accept`: status, content type and text.
async fn scrape(app: &TestApp, token: &str, accept: &str) -> (StatusCode, String, String) {
    let response = app
        .request(Method::GET, "/metrics", Some(token))
        .header(header::ACCEPT, accept)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// What `promtool check metrics` (Prometheus's own linter, Debian's `prometheus` package)
/// says of `text`; `.ci/run` installs it.
fn promtool_check(text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

async fn verifications_and_answers_are_counted_by_bounded_labels(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("edge-1").await;
    let member = app.create_api_key("member").await;
    assert_eq!(app.verify(&member, &dsn).await.1["code"], "valid");
    let guess = "xagt-00000000000000000000000000000000000000000000";
    app.verify(&member, guess).await;
    let (status, _) = app.get("/agents/no-such-agent", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, content_type, text) = scrape(&app, ADMIN, "text/plain").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        r#"keygate_verifications_total{kind="agent_key",outcome="valid"} 1"#,
        r#"keygate_http_requests_total{family="keygate",route="/verify",status="2xx"} 2"#,
        r#"keygate_http_requests_total{family="hoop",route="/agents/{nameOrId}",status="4xx"} 1"#,
        r#"keygate_verification_duration_seconds_count{kind="agent_key"} "#,
        // The agent's creation ended a cache generation; both verifications missed the cache
        // (the first read the database, the guess is never cached).
        "keygate_verify_cache_invalidations_local_total ",
        "keygate_verify_cache_misses_total ",
        "keygate_verify_cache_bypassed 0",
        "keygate_db_pool_connections ",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    // The guess is counted by what it was found to be, never by what was sent.
    assert!(
        !text.contains(guess) && !text.contains("no-such-agent"),
        "{text}"
    );
    assert!(
        text.contains(r#"outcome="malformed"} 1"#) || text.contains(r#"outcome="not_found"} 1"#),
        "{text}"
    );
    // A second verify of the same key is answered from the cache.
    app.verify(&member, &dsn).await;
    let (_, _, again) = scrape(&app, ADMIN, "text/plain").await;
    let hits = |text: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix("keygate_verify_cache_hits_total "))
            .and_then(|count| count.parse::<u64>().ok())
            .unwrap()
    };
    assert!(hits(&again) > hits(&text), "{again}");
    let checked = promtool_check(&text);
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let (status, content_type, open) = scrape(
        &app,
        ADMIN,
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
}

/// The value of the sample `name` (with its labels, if any) in Prometheus's text format.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

async fn refusals_replays_and_the_audit_queue_are_counted(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.verify_failures_per_minute = 1).await;
    let member = app.create_api_key("member").await;
    let guess = "xagt-00000000000000000000000000000000000000000000";
    app.verify(&member, guess).await;
    assert_eq!(
        app.verify(&member, guess).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let create = || {
        app.request(Method::POST, "/agents", Some(ADMIN))
            .header("Idempotency-Key", "metrics-1")
            .json(&serde_json::json!({"name": "edge-1"}))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    let refused = app
        .request(Method::GET, "/agents", Some("kgk_not-a-key-at-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // The refusal is written off the request path.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (_, _, text) = scrape(&app, ADMIN, "text/plain").await;
    assert_eq!(value(&text, "keygate_verify_limiter_refusals_total"), 1.0);
    assert_eq!(
        value(
            &text,
            r#"keygate_idempotency_keys_total{outcome="claimed"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"keygate_idempotency_keys_total{outcome="replayed"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "keygate_audit_refusals_queued_total"), 1.0);
    assert_eq!(value(&text, "keygate_audit_refusals_written_total"), 1.0);
    assert_eq!(value(&text, "keygate_audit_refusals_dropped_total"), 0.0);
}

async fn the_pool_and_the_change_listener_report_on_themselves(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.database_max_connections = 1).await;
    let member = app.create_api_key("member").await;
    // Twenty reads at once on one connection: all but the first wait for it.
    let reads = (0..20).map(|_| app.get("/agents", &member));
    for (status, body) in futures::future::join_all(reads).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (_, _, text) = scrape(&app, ADMIN, "text/plain").await;
    assert_eq!(value(&text, "keygate_db_pool_connections"), 1.0, "{text}");
    assert!(value(&text, "keygate_db_pool_waits_total") >= 1.0, "{text}");
    // Only background work (the usage flusher, the audit queue) may be waiting at scrape time.
    assert!(value(&text, "keygate_db_pool_waiting") <= 2.0, "{text}");
    let acquired = value(&text, "keygate_db_pool_acquire_duration_seconds_count");
    assert!(acquired >= 21.0, "every read took a connection: {text}");
    assert_eq!(
        value(
            &text,
            r#"keygate_db_pool_acquire_duration_seconds_bucket{le="+Inf"}"#
        ),
        acquired
    );
    assert_eq!(
        value(&text, "keygate_change_listener_reconnects_total"),
        0.0
    );
    // Only Postgres has a listener for other instances' changes; SQLite has no other instance.
    match backend {
        Backend::Postgres => assert_eq!(value(&text, "keygate_change_listener_up"), 1.0),
        Backend::Sqlite => assert!(!text.contains("keygate_change_listener_up"), "{text}"),
    }
}

async fn only_the_operators_read_the_metrics(backend: Backend) {
    let app = TestApp::start(backend).await;
    let member = app.create_api_key("member").await;
    let (_, tenant_admin) = app.create_org("acme").await;
    for token in [member.as_str(), tenant_admin.as_str()] {
        assert_eq!(scrape(&app, token, "*/*").await.0, StatusCode::FORBIDDEN);
    }
    let anonymous = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// The operator who binds `KEYGATE_METRICS_LISTEN` lets whoever reaches that address read
/// the metrics, and nothing else; the API listener still asks for an operator's key.
async fn a_metrics_listener_serves_the_metrics_alone_without_credentials(backend: Backend) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let app = TestApp::start_with(backend, |config| config.metrics_listen = Some(addr)).await;
    let dsn = app.create_agent("edge-1").await;
    app.verify(ADMIN, &dsn).await;

    let client = reqwest::Client::new();
    let scraped = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert_eq!(
        value(
            &text,
            r#"keygate_verifications_total{kind="agent_key",outcome="valid"}"#
        ),
        1.0
    );
    for path in ["/agents", "/healthz", "/verify"] {
        let elsewhere = client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let anonymous = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// Every query of the Grafana dashboard and of the alerting rules is PromQL that Prometheus
/// accepts (`promtool check rules`, the dashboard's queries made recording rules with
/// Grafana's variables filled in) and names only series a running keygate exports.
async fn the_dashboard_and_the_alerts_ask_for_series_keygate_exports(backend: Backend) {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/observability");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{docs}/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap())
        .map(|target| {
            target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
        })
        .collect();
    assert!(queries.len() >= 16, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("dashboard.yml");
    let recorded: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(
            |(i, expr)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}),
        )
        .collect();
    // JSON is YAML: the rules file needs no YAML writer.
    let groups = serde_json::json!({"groups": [{"name": "dashboard", "rules": recorded}]});
    std::fs::write(&rules, groups.to_string()).unwrap();
    let checked = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .arg(format!("{docs}/alerts.yml"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // After one of each thing counted, every series asked for is in the scrape.
    let app = TestApp::start(backend).await;
    let created = app
        .request(Method::POST, "/agents", Some(ADMIN))
        .header("Idempotency-Key", "dashboard-1")
        .json(&serde_json::json!({ "name": "edge-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let dsn = created.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.verify(ADMIN, &dsn).await;
    let (_, _, text) = scrape(&app, ADMIN, "text/plain").await;
    let alerts = std::fs::read_to_string(format!("{docs}/alerts.yml")).unwrap();
    let named = regex::Regex::new(r"keygate_[a-z_]+").unwrap();
    let exported = |name: &str| {
        text.lines().any(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
    };
    for query in queries.iter().map(String::as_str).chain([alerts.as_str()]) {
        for name in named.find_iter(query).map(|m| m.as_str()) {
            // The change listener exists on Postgres only.
            if backend == Backend::Sqlite && name.starts_with("keygate_change_listener_up") {
                continue;
            }
            assert!(
                exported(name),
                "{name} is asked for but not exported:\n{text}"
            );
        }
    }
}

/// The secrets are counted from the database, not from what one instance saw: an instance
/// started on a database that already holds keys reports them (the count is taken at start and
/// every minute, never per scrape).
async fn secrets_are_counted_by_kind_and_state_from_the_database(backend: Backend) {
    let first = TestApp::start(backend).await;
    first.create_agent("steady").await;
    first.create_agent("rotated").await;
    let soon = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let (status, body) = first
        .post(
            "/agents",
            ADMIN,
            serde_json::json!({ "name": "short-lived", "expires_at": soon }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = first
        .post(
            "/agents/rotated/rotate",
            ADMIN,
            serde_json::json!({ "grace_period_seconds": 3600 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let second = TestApp::start_with(Backend::Sqlite, |config| {
        config.database_url = first.config.database_url.clone();
        config.data_dir = first.config.data_dir.clone();
    })
    .await;
    let agents = r#"keygate_secrets{kind="agent_key",state="active"}"#;
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&second, ADMIN, "text/plain").await.2;
        if text.contains(agents) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(value(&text, agents), 3.0, "{text}");
    assert_eq!(
        value(
            &text,
            r#"keygate_secrets{kind="agent_key",state="in_grace"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&text, r#"keygate_secrets_expiring_soon{kind="agent_key"}"#),
        1.0
    );
    // The bootstrap admin key of `default`.
    assert_eq!(
        value(&text, r#"keygate_secrets{kind="api_key",state="active"}"#),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"keygate_secrets{kind="machine_credential",state="active"}"#
        ),
        0.0
    );
}

/// Asks the Prometheus at `base` for `query`: the first result's value, once it has one.
async fn prometheus_value(base: &str, query: &str) -> Option<f64> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// Debian's Prometheus, with the scrape config and alerting rules of `docs/observability/`
/// (scraping every second, the operator's key in a file), scrapes a running keygate; its
/// query API then sees the verification counter, and its rate, move.
async fn a_real_prometheus_scrapes_keygate_with_the_documented_config(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("edge-1").await;
    let member = app.create_api_key("member").await;
    app.verify(&member, &dsn).await;

    let dir = tempfile::tempdir().unwrap();
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/observability");
    let token = dir.path().join("keygate-token");
    std::fs::write(&token, ADMIN).unwrap();
    std::fs::copy(format!("{docs}/alerts.yml"), dir.path().join("alerts.yml")).unwrap();
    let target = app.url("").trim_start_matches("http://").to_owned();
    let config = std::fs::read_to_string(format!("{docs}/prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("/etc/prometheus/keygate-token", token.to_str().unwrap())
        .replace(
            r#"["keygate-1:8009", "keygate-2:8009"]"#,
            &format!(r#"["{target}"]"#),
        );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let checked = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _prometheus = Running(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus runs (Debian's prometheus package)"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let valid = r#"keygate_verifications_total{job="keygate",outcome="valid"}"#;
    let seen = |wanted: f64, query: &'static str| {
        let base = base.clone();
        async move {
            for _ in 0..100 {
                if prometheus_value(&base, query)
                    .await
                    .is_some_and(|v| v >= wanted)
                {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            false
        }
    };
    assert!(
        seen(1.0, valid).await,
        "Prometheus never scraped the first verification"
    );
    for _ in 0..5 {
        app.verify(&member, &dsn).await;
    }
    assert!(
        seen(6.0, valid).await,
        "Prometheus never saw the counter move"
    );
    let rate = r#"rate(keygate_verifications_total{job="keygate",outcome="valid"}[1m])"#;
    assert!(seen(f64::MIN_POSITIVE, rate).await, "no rate");
}

/// A process stopped when the test ends, whichever way it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
