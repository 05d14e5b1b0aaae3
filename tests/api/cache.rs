//! The verification cache answers as the database would: every lifecycle change is seen by the
//! very next request on the same instance, and on another instance sharing the Postgres database
//! as soon as its notification arrives.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_revoked_api_key_is_refused_on_the_next_request,
    a_deleted_agent_is_not_found_on_the_next_verify,
    a_key_rotated_without_grace_is_revoked_on_the_next_verify,
    a_key_rotated_with_grace_works_until_the_grace_ends,
    an_expiring_key_is_refused_right_after_expiry_though_cached,
);

/// Verifies twice, so that the second answer (and any later one) may come from the cache.
async fn verify_warm(app: &TestApp, token: &str, key: &str) -> serde_json::Value {
    app.verify(token, key).await;
    app.verify(token, key).await.1
}

async fn a_revoked_api_key_is_refused_on_the_next_request(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "cached caller", "role": "member"});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let dsn = app.create_agent("cached-caller-target").await;
    assert_eq!(verify_warm(&app, key, &dsn).await["code"], "valid");
    let (status, _) = app.delete(&format!("/apikeys/{id}"), ADMIN).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.verify(key, &dsn).await.0, StatusCode::UNAUTHORIZED);
}

async fn a_deleted_agent_is_not_found_on_the_next_verify(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("cached-doomed").await;
    assert_eq!(verify_warm(&app, ADMIN, &dsn).await["code"], "valid");
    assert_eq!(
        app.delete("/agents/cached-doomed", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.verify(ADMIN, &dsn).await.1["code"], "not_found");
}

async fn a_key_rotated_without_grace_is_revoked_on_the_next_verify(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("cached-rotor").await;
    assert_eq!(verify_warm(&app, ADMIN, &old).await["code"], "valid");
    let (status, body) = app
        .post("/agents/cached-rotor/rotate", ADMIN, json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "revoked");
    let new = body["token"].as_str().unwrap();
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "valid");
}

async fn a_key_rotated_with_grace_works_until_the_grace_ends(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("cached-graceful").await;
    assert_eq!(verify_warm(&app, ADMIN, &old).await["code"], "valid");
    let body = json!({"grace_period_seconds": 1});
    let (status, _) = app
        .post("/agents/cached-graceful/rotate", ADMIN, body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let during = verify_warm(&app, ADMIN, &old).await;
    assert_eq!(during["code"], "valid", "within the grace period");
    let end: chrono::DateTime<chrono::Utc> =
        during["expires_at"].as_str().unwrap().parse().unwrap();
    sleep_until(end).await;
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "expired");
}

async fn an_expiring_key_is_refused_right_after_expiry_though_cached(backend: Backend) {
    let app = TestApp::start(backend).await;
    let end = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let body = json!({"name": "cached-brief", "expires_at": end.to_rfc3339()});
    let (status, created) = app.post("/agents", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dsn = created["token"].as_str().unwrap();
    assert_eq!(verify_warm(&app, ADMIN, dsn).await["code"], "valid");
    sleep_until(end).await;
    assert_eq!(app.verify(ADMIN, dsn).await.1["code"], "expired");
}

/// Sleeps until just past `end`, by the test's own clock (the server shares it).
async fn sleep_until(end: chrono::DateTime<chrono::Utc>) {
    let left = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
}

/// Two instances on one Postgres database: a revocation through one is refused by the other,
/// whose cache held the key, within the notification's delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_revocation_through_one_instance_is_refused_by_another() {
    let first = TestApp::start(Backend::Postgres).await;
    let url = first.config.database_url.clone();
    // Started on the first's database (only the first creates and drops it) with its data
    // directory's server key.
    let second = TestApp::start_with(Backend::Sqlite, |config| {
        config.database_url = url;
        config.data_dir = first.config.data_dir.clone();
    })
    .await;
    let dsn = first.create_agent("shared").await;
    assert_eq!(verify_warm(&second, ADMIN, &dsn).await["code"], "valid");
    assert_eq!(
        first.delete("/agents/shared", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let code = second.verify(ADMIN, &dsn).await.1["code"].clone();
        if code == "not_found" {
            break;
        }
        assert!(Instant::now() < deadline, "still {code} after 2 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each instance's metrics say where the change came from: made here, or heard.
    assert!(counted(&second, "keygate_verify_cache_invalidations_heard_total").await >= 1);
    assert_eq!(
        counted(&second, "keygate_verify_cache_invalidations_local_total").await,
        0
    );
    assert!(counted(&first, "keygate_verify_cache_invalidations_local_total").await >= 1);
}

/// The counter `name` of `app`'s metrics.
async fn counted(app: &TestApp, name: &str) -> u64 {
    let (_, text) = app.get("/metrics", ADMIN).await;
    let text = text.as_str().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// A listener whose connection went silent — the database's end vanished without a reset, so
/// the socket simply never reads again — notices by its own heartbeat, bypasses the cache while
/// it reconnects, and forgets everything cached before: the changes it missed cannot be served
/// stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_listener_whose_connection_went_silent_reconnects_and_forgets_the_cache() {
    use keygate::storage::notify::{self, CHANNEL, Changes, Liveness};

    let (name, url) = crate::common::create_postgres_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let proxy = FreezingProxy::start(upstream_of(&url)).await;
    let through_proxy = proxied(&url, proxy.port, "keygate-silent-listener");

    let changes = std::sync::Arc::new(Changes::default());
    let liveness = Liveness {
        heartbeat: Duration::from_millis(100),
        silence: Duration::from_millis(600),
    };
    let listener = notify::follow(
        hosts(&through_proxy),
        pool.clone(),
        changes.clone(),
        liveness,
    )
    .await
    .unwrap();
    let notify_change = || {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
    };

    let before = changes.generation().unwrap();
    notify_change().await.unwrap();
    let heard = generation_after(&changes, before).await;

    proxy.freeze();
    // This change is never delivered on the silent connection; the reconnect makes up for it.
    notify_change().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        changes.generation(),
        Some(heard),
        "the silence is not noticed yet"
    );
    let reconnected = generation_after(&changes, heard).await;

    // And the new connection hears changes again.
    notify_change().await.unwrap();
    generation_after(&changes, reconnected).await;

    listener.abort();
    pool.close().await;
    crate::common::drop_postgres_database(&name).await;
}

/// A listener whose backend was ended (`pg_terminate_backend`) bypasses the cache from the
/// moment the loss shows until its new `LISTEN` is in place, however long the new connection
/// takes to open, and then forgets everything cached before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_listener_whose_backend_was_killed_bypasses_the_cache_until_it_listens_again() {
    use keygate::storage::notify::{self, CHANNEL, Changes, Liveness};

    let (name, url) = crate::common::create_postgres_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let proxy = FreezingProxy::start(upstream_of(&url)).await;
    let through_proxy = proxied(&url, proxy.port, "keygate-killed-listener");
    let changes = std::sync::Arc::new(Changes::default());
    // The heartbeat is not what notices here: the loss itself must.
    let liveness = Liveness {
        heartbeat: Duration::from_secs(5),
        silence: Duration::from_secs(30),
    };
    let listener = notify::follow(
        hosts(&through_proxy),
        pool.clone(),
        changes.clone(),
        liveness,
    )
    .await
    .unwrap();
    let before = changes.generation().unwrap();

    proxy.stall_connects(Duration::from_secs(2));
    end_listener_backend(&pool, "keygate-killed-listener").await;
    let lost = Instant::now();
    while changes.generation().is_some() {
        assert!(
            lost.elapsed() < Duration::from_secs(1),
            "the cache was still trusted 1 s after the listener's backend ended"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(changes.generation(), None, "trusted before listening again");
    let back = generation_after(&changes, before).await;
    assert!(
        lost.elapsed() >= Duration::from_secs(2),
        "listening again took no time"
    );

    // The new connection hears changes.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&pool)
        .await
        .unwrap();
    generation_after(&changes, back).await;

    listener.abort();
    pool.close().await;
    crate::common::drop_postgres_database(&name).await;
}

/// Two instances on one Postgres: while the second's change listener is gone — its backend
/// ended, and its new connection quick or seconds slow to open — a secret deleted through the
/// first is never answered `valid` by the second, whose cache held it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: set KEYGATE_TEST_POSTGRES_URL and pass --include-ignored"]
async fn a_secret_deleted_while_another_instance_reconnects_its_listener_is_never_valid_there() {
    for stall in [Duration::ZERO, Duration::from_secs(3)] {
        let first = TestApp::start(Backend::Postgres).await;
        let url = first.config.database_url.clone().unwrap();
        let proxy = FreezingProxy::start(upstream_of(&url)).await;
        let through_proxy = proxied(&url, proxy.port, "keygate-second");
        let second = TestApp::start_with(Backend::Sqlite, |config| {
            config.database_url = Some(through_proxy);
            config.data_dir = first.config.data_dir.clone();
            // Asked again and again, the deleted agent's not_found answers must not be limited.
            config.verify_failures_per_minute = 10_000;
        })
        .await;
        let dsn = first.create_agent("shared").await;
        assert_eq!(verify_warm(&second, ADMIN, &dsn).await["code"], "valid");

        proxy.stall_connects(stall);
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        end_listener_backend(&pool, "keygate-second").await;
        // The loss reaches the second instance as its socket closes; give that a moment, as a
        // real deletion would take (the request itself takes longer).
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            first.delete("/agents/shared", ADMIN).await.0,
            StatusCode::NO_CONTENT
        );
        let until = Instant::now() + stall + Duration::from_millis(500);
        while Instant::now() < until {
            let (status, answer) = second.verify(ADMIN, &dsn).await;
            assert_ne!(
                answer["code"], "valid",
                "stall {stall:?}: a deleted agent answered valid ({status})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(second.verify(ADMIN, &dsn).await.1["code"], "not_found");
        pool.close().await;
    }
}

/// `host:port` of a database URL.
fn upstream_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

/// `url` through the proxy on `port`, its connections named `application_name`.
fn proxied(url: &str, port: u16, application_name: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_port(Some(port)).unwrap();
    url.query_pairs_mut()
        .append_pair("application_name", application_name);
    url.into()
}

/// Ends the one `LISTEN` backend of the connections named `application_name`, and waits until
/// it is gone.
async fn end_listener_backend(pool: &sqlx::PgPool, application_name: &str) {
    let pids: Vec<(i32,)> = sqlx::query_as(
        "SELECT pid FROM pg_stat_activity
         WHERE application_name = $1 AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .bind(application_name)
    .fetch_all(pool)
    .await
    .unwrap();
    let [(pid,)] = pids[..] else {
        panic!("{} listener backends of {application_name}", pids.len());
    };
    let (ended,): (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(ended);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the backend did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (at most 5 s) for a generation newer than `before`, and returns it.
async fn generation_after(changes: &keygate::storage::notify::Changes, before: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match changes.generation() {
            Some(now) if now > before => return now,
            _ => assert!(Instant::now() < deadline, "no new generation after 5 s"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy whose connections can be made to go silent: after `freeze`, the connections it
/// carried stay open but pass nothing, as when a peer vanishes without a reset; connections
/// made afterwards pass as usual. After `stall_connects`, each new connection waits that long
/// before it reaches the database, as behind a proxy slow to connect.
struct FreezingProxy {
    port: u16,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stall_millis: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FreezingProxy {
    async fn start(upstream: String) -> FreezingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stall_millis = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let current = epoch.clone();
        let stall = stall_millis.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let stall = Duration::from_millis(stall.load(Ordering::SeqCst));
                tokio::time::sleep(stall).await;
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let born = current.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)]
                {
                    let current = current.clone();
                    tokio::spawn(async move {
                        let mut buffer = vec![0; 16 * 1024];
                        while let Ok(read) = from.read(&mut buffer).await {
                            if read == 0 || current.load(Ordering::SeqCst) != born {
                                // Silent from now on: hold both ends open, pass nothing.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buffer[..read]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy {
            port,
            epoch,
            stall_millis,
        }
    }

    fn stall_connects(&self, stall: Duration) {
        let millis = u64::try_from(stall.as_millis()).unwrap();
        self.stall_millis
            .store(millis, std::sync::atomic::Ordering::SeqCst);
    }

    fn freeze(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The servers of `url`, for a listener of a test's own.
fn hosts(url: &str) -> std::sync::Arc<keygate::storage::hosts::Hosts> {
    std::sync::Arc::new(keygate::storage::hosts::Hosts::parse(url).unwrap())
}
