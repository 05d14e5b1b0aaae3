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
    let mut through_proxy = url::Url::parse(&url).unwrap();
    let upstream = format!(
        "{}:{}",
        through_proxy.host_str().unwrap(),
        through_proxy.port().unwrap_or(5432)
    );
    let proxy = FreezingProxy::start(upstream).await;
    through_proxy.set_port(Some(proxy.port)).unwrap();

    let changes = std::sync::Arc::new(Changes::default());
    let liveness = Liveness {
        heartbeat: Duration::from_millis(100),
        silence: Duration::from_millis(600),
    };
    let listener = notify::follow(
        through_proxy.as_str(),
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
/// made afterwards pass as usual.
struct FreezingProxy {
    port: u16,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FreezingProxy {
    async fn start(upstream: String) -> FreezingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let current = epoch.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
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
        FreezingProxy { port, epoch }
    }

    fn freeze(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
