//! keygate: the control plane of an access gateway. It mints the secrets that agents, CI jobs
//! and services use, and answers the data plane's question "is this secret valid, and whose?".

pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod key_rotation;
pub mod limiter;
pub mod metrics;
pub mod secrets;
pub mod storage;
pub mod telemetry;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, Services};
use crate::limiter::FailureLimiter;
use crate::metrics::{Metrics, Sample, Sampled};
use crate::secrets::server_key::{IfMissing, Keyring};
use crate::storage::Store;
use crate::verify::Verifier;

/// Cases each property test of the parsers runs: enough to reach the odd corners of each
/// input format, few enough to keep `cargo test` quick.
#[cfg(test)]
const PROPERTY_CASES: u32 = 2_000;

pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database (applying migrations), refuses server keys that cannot open its sealed
/// values, bootstraps an empty database, and builds the state.
pub async fn prepare(config: &Config) -> Result<AppState, StartupError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {} (KEYGATE_DATA_DIR, --data-dir, e.g. \
                 /var/lib/keygate): {e}",
            config.data_dir.display()
        )
    })?;
    // The database first: a start that cannot reach it leaves no generated key behind.
    let store = storage::connect(&config.database_url(), config.database_max_connections).await?;
    let server_key = Keyring::load(
        config.secret_key.as_deref(),
        &config.previous_secret_keys,
        &config.data_dir,
        IfMissing::Generate,
    )?;
    bootstrap::check_server_key(store.as_ref(), &server_key).await?;
    let operator_org = bootstrap::bootstrap(
        store.as_ref(),
        &config.data_dir,
        config.bootstrap_token.as_deref(),
    )
    .await?;
    let scanning_keys = config.scanning_keys()?.map(Arc::new);
    let verifier = Arc::new(Verifier::new(store.clone(), config.verify_cache_capacity));
    let verify_limiter = Arc::new(FailureLimiter::new(config.verify_failures_per_minute));
    let auth_limiter = Arc::new(FailureLimiter::new(config.auth_failures_per_minute));
    let refusals = audit::RefusalRecorder::spawn(store.clone());
    let sampled = Arc::new(Instance {
        verifier: verifier.clone(),
        store: store.clone(),
        verify_limiter: verify_limiter.clone(),
        auth_limiter: auth_limiter.clone(),
        refusals: refusals.clone(),
    });
    Ok(AppState::new(Services {
        verifier,
        metrics: Arc::new(Metrics::new(sampled)),
        refusals,
        server_key: Arc::new(server_key),
        store,
        grpc_url: Arc::new(config.grpc_url.clone()),
        public_url: config.public_url.clone().map(Arc::from),
        gateway: Arc::new(config.gateway()),
        operator_org_id: operator_org.id,
        verify_limiter,
        auth_limiter,
        trusted_proxies: config.trusted_proxies.clone().into(),
        idempotency: config.idempotency(),
        console: config.console(),
        scanning_keys,
    }))
}

/// The parts of one instance that keep their own counts, as its metrics read them when
/// scraped.
struct Instance {
    verifier: Arc<Verifier>,
    store: Arc<dyn Store>,
    verify_limiter: Arc<FailureLimiter>,
    auth_limiter: Arc<FailureLimiter>,
    refusals: audit::RefusalRecorder,
}

impl Sampled for Instance {
    fn sample(&self) -> Sample {
        let (cache, changes) = self.verifier.cache_counts();
        let refusals = self.refusals.counts();
        Sample {
            cache_hits: cache.hits,
            cache_misses: cache.misses,
            cache_entries: cache.entries,
            invalidations_local: changes.local,
            invalidations_heard: changes.notified,
            cache_bypassed: changes.bypassed,
            listener_losses: changes.losses,
            listener_reconnects: changes.reconnects,
            listener_up: (self.store.kind() == "postgres").then_some(!changes.bypassed),
            pool: self.store.pool_usage(),
            verify_limiter_refusals: self.verify_limiter.refusals(),
            auth_limiter_refusals: self.auth_limiter.refusals(),
            audit_queued: refusals.queued.load(Relaxed),
            audit_written: refusals.written.load(Relaxed),
            audit_dropped: refusals.dropped.load(Relaxed),
        }
    }
}

/// The operator's way back into an organization that has lost its admin keys: mints a new
/// admin API key for `org_name` straight in the database and returns it, to be printed once.
pub async fn recover_admin_key(
    config: &Config,
    org_name: &str,
) -> Result<secrets::PlainSecret, StartupError> {
    let store = storage::connect(&config.database_url(), 1).await?;
    let org = store
        .find_org_by_name(org_name)
        .await?
        .ok_or_else(|| format!("there is no organization named {org_name:?}"))?;
    let (record, plain) =
        domain::org::NewApiKey::mint(org.id, "recovery".into(), domain::org::Role::Admin, None);
    let change =
        domain::audit::AuditContext::host(org.id).change("api_key.recovered", "api_key", record.id);
    store.create_api_key(&record, &change).await?;
    change.log();
    Ok(plain)
}

/// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (up to [`http::SHUTDOWN_GRACE`]) and writes the usage and refused credentials still in
/// memory.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let state = prepare(config).await?;
    let verifier = state.verifier.clone();
    let refusals = state.refusals.clone();
    let (stop_flusher, flusher_stopped) = tokio::sync::watch::channel(false);
    let flusher = verifier.clone().spawn_usage_flusher(
        Duration::from_millis(config.usage_flush_ms.max(10)),
        flusher_stopped,
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        database = state.store.kind(),
        grpc_url = %config.grpc_url,
        "keygate listening"
    );
    let idempotency_purger =
        http::idempotency::spawn_purger(state.store.clone(), state.idempotency.window);
    let audit_purger = audit::spawn_purger(state.store.clone(), config.audit_retention_days);
    let secret_tally = metrics::spawn_secret_tally(state.metrics.clone(), state.store.clone());
    let request_timeout = Duration::from_secs(config.request_timeout_secs.max(1));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                format!("cannot listen on {addr} (KEYGATE_METRICS_LISTEN, --metrics-listen): {e}")
            })?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening, without credentials");
            let mut stop = stop_rx.clone();
            let app = http::metrics_router(state.metrics.clone());
            Some(tokio::spawn(serve_until(
                listener,
                app,
                request_timeout,
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    let app = http::router(state, request_timeout, &config.cors_origins);
    let server = serve_until(listener, app, request_timeout, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stopped = stop_rx.clone();
    let grace_expired = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(http::SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        result = server => result,
        () = grace_expired => {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
            Ok(())
        }
    };
    // However serving ended, the usage still in memory is written: the periodic flusher
    // finishes the flush it may be in, then one last flush takes what came after it.
    idempotency_purger.abort();
    audit_purger.abort();
    secret_tally.abort();
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    let _ = stop_flusher.send(true);
    let _ = flusher.await;
    verifier.flush_usage().await;
    refusals.finish().await;
    tracing::info!("keygate stopped");
    Ok(served?)
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for the connections to
/// finish their requests. A request's head must arrive within `head_timeout`: axum's own server
/// sets no such deadline, so a client trickling header bytes would hold its connection (and a
/// file descriptor) for ever; the body is bounded by the router's request timeout.
async fn serve_until<S, B>(
    listener: TcpListener,
    app: S,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes, Error = axum::Error> + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // keep serving the others.
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(client));
                request.map(axum::body::Body::new)
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// Binds the configured address and serves until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        format!(
            "cannot listen on {} (KEYGATE_LISTEN, --listen, e.g. 127.0.0.1:8019 for another \
                 port): {e}",
            config.listen
        )
    })?;
    run(listener, &config, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
