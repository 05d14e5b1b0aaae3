//! What keygate counts for Prometheus. Each running instance has its own registry (two
//! instances in one process, as in the tests, count apart), rendered as Prometheus's text
//! format or as OpenMetrics, whichever the scraper asks for. Labels are bounded: a family, a
//! route template, a kind of secret, an outcome — never a key, a name or a path as sent.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::leak::LeakAction;
use crate::domain::secret::now;
use crate::secrets::SecretKind;
use crate::storage::Store;
use crate::storage::pool::PoolUsage;

/// The content types of the two formats.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeakLabels {
    kind: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStateLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    family: &'static str,
    route: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    family: &'static str,
    route: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 50 µs to about 3.3 s, doubling: a cached verify takes tens of
/// microseconds, a write on a busy database hundreds of milliseconds.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// What the verification cache and the database pool say of themselves when scraped: read
/// from the counters they keep, so that counting costs the hot path an atomic add at most.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: u64,
    /// Cache generations ended by this instance's own writes.
    pub invalidations_local: u64,
    /// Cache generations ended by other instances' writes, heard through `NOTIFY`.
    pub invalidations_heard: u64,
    /// The cache is not used while other instances' changes may go unheard.
    pub cache_bypassed: bool,
    /// Times the change listener lost its connection, and listened again after a loss.
    pub listener_losses: u64,
    pub listener_reconnects: u64,
    /// Whether the change listener is listening now; `None` where there is none (SQLite).
    pub listener_up: Option<bool>,
    pub pool: PoolUsage,
    /// Requests refused by the failure limiters: of `POST /verify` callers, of credentials.
    pub verify_limiter_refusals: u64,
    pub auth_limiter_refusals: u64,
    /// Refused credentials for the audit trail: queued, written, dropped (queue full).
    pub audit_queued: u64,
    pub audit_written: u64,
    pub audit_dropped: u64,
}

/// Where a [`Sample`] comes from (the verifier and the store, joined by the server).
pub trait Sampled: Send + Sync + 'static {
    fn sample(&self) -> Sample;
}

/// Encodes a fresh [`Sample`] on each scrape.
struct SampleCollector(Arc<dyn Sampled>);

impl std::fmt::Debug for SampleCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleCollector")
    }
}

impl Collector for SampleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = self.0.sample();
        let counters = [
            (
                "verify_cache_hits",
                "Verifications answered from the cache",
                sample.cache_hits,
            ),
            (
                "verify_cache_misses",
                "Verifications that read the database",
                sample.cache_misses,
            ),
            (
                "verify_cache_invalidations_local",
                "Cache generations ended by this instance's writes",
                sample.invalidations_local,
            ),
            (
                "verify_cache_invalidations_heard",
                "Cache generations ended by other instances' writes, heard through NOTIFY",
                sample.invalidations_heard,
            ),
            (
                "change_listener_losses",
                "Times the change listener lost its database connection",
                sample.listener_losses,
            ),
            (
                "change_listener_reconnects",
                "Times the change listener listened again after a loss",
                sample.listener_reconnects,
            ),
            (
                "db_pool_waits",
                "Queries and transactions that found no idle connection and waited for one",
                sample.pool.waits.waited.load(Relaxed),
            ),
            (
                "verify_limiter_refusals",
                "POST /verify answers refused (429) after too many failed verifications",
                sample.verify_limiter_refusals,
            ),
            (
                "auth_limiter_refusals",
                "Requests refused (429) after too many failed authentications",
                sample.auth_limiter_refusals,
            ),
            (
                "audit_refusals_queued",
                "Refused credentials queued for the audit trail",
                sample.audit_queued,
            ),
            (
                "audit_refusals_written",
                "Refused credentials written to the audit trail",
                sample.audit_written,
            ),
            (
                "audit_refusals_dropped",
                "Refused credentials dropped because the audit queue was full",
                sample.audit_dropped,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let listener_up = sample.listener_up.map(|up| {
            (
                "change_listener_up",
                "1 while the change listener hears other instances' changes",
                u64::from(up),
            )
        });
        let gauges = [
            (
                "verify_cache_entries",
                "Secrets held in the verification cache",
                sample.cache_entries,
            ),
            (
                "verify_cache_bypassed",
                "1 while the cache is bypassed (other instances' changes may go unheard)",
                u64::from(sample.cache_bypassed),
            ),
            (
                "db_pool_connections",
                "Database connections open",
                sample.pool.open,
            ),
            (
                "db_pool_idle_connections",
                "Database connections idle",
                sample.pool.idle,
            ),
            (
                "db_pool_waiting",
                "Queries and transactions waiting for a connection now",
                sample.pool.waits.waiting.load(Relaxed),
            ),
        ];
        for (name, help, value) in gauges.into_iter().chain(listener_up) {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let acquire = &sample.pool.waits.acquire_seconds;
        acquire.encode(encoder.encode_descriptor(
            "db_pool_acquire_duration_seconds",
            "Time to get a database connection from the pool",
            None,
            acquire.metric_type(),
        )?)?;
        Ok(())
    }
}

pub struct Metrics {
    registry: Registry,
    verifications: Family<VerificationLabels, Counter>,
    verification_seconds: Histograms<KindLabels>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
    idempotency_keys: Family<OutcomeLabels, Counter>,
    secrets: Family<KindStateLabels, Gauge>,
    secrets_expiring_soon: Family<KindLabels, Gauge>,
    secrets_leaked: Family<LeakLabels, Counter>,
}

/// How many working secrets of one kind there are, all organizations together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretTally {
    pub active: u64,
    pub in_grace: u64,
    pub expiring_soon: u64,
}

impl Metrics {
    /// Metrics of an instance whose cache and pool `sampled` reports on.
    pub fn new(sampled: Arc<dyn Sampled>) -> Metrics {
        let mut registry = Registry::with_prefix("keygate");
        registry.register_collector(Box::new(SampleCollector(sampled)));
        let verifications = Family::default();
        registry.register(
            "verifications",
            "Secrets verified, by kind and outcome (valid, revoked, expired, not_found, …)",
            verifications.clone(),
        );
        let verification_seconds = Histograms::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "verification_duration_seconds",
            "Time to verify a secret, by kind",
            verification_seconds.clone(),
        );
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by API family, route template and status class",
            requests.clone(),
        );
        let request_seconds = Histograms::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by API family and route template",
            request_seconds.clone(),
        );
        let idempotency_keys = Family::default();
        registry.register(
            "idempotency_keys",
            "Requests sent with an Idempotency-Key: claimed (run), replayed, or refused because \
             the key was in_progress or reused with another request",
            idempotency_keys.clone(),
        );
        let secrets = Family::default();
        registry.register(
            "secrets",
            "Working secrets by kind and state (active, in_grace: replaced but still accepted), \
             counted from the database every minute",
            secrets.clone(),
        );
        let secrets_expiring_soon = Family::default();
        registry.register(
            "secrets_expiring_soon",
            "Active secrets that expire within 7 days, by kind, counted every minute",
            secrets_expiring_soon.clone(),
        );
        let secrets_leaked = Family::default();
        registry.register(
            "secrets_leaked",
            "Working secrets reported leaked by GitHub secret scanning, by kind and what was \
             done (rotated, revoked, notified)",
            secrets_leaked.clone(),
        );
        Metrics {
            registry,
            secrets_leaked,
            idempotency_keys,
            secrets,
            secrets_expiring_soon,
            verifications,
            verification_seconds,
            requests,
            request_seconds,
        }
    }

    /// A verification of a secret of `kind` (`unknown` when it could not be told) that ended
    /// with `outcome`, in `took`.
    pub fn verified(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.verifications
            .get_or_create(&VerificationLabels { kind, outcome })
            .inc();
        self.verification_seconds
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// An answer of `family` on `route` (the route's template, `unmatched` for none) with
    /// `status`, in `took`.
    pub fn served(&self, family: &'static str, route: String, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = RequestLabels {
            family,
            route,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        // The route moves on to the latency's labels: one allocation per request, not two.
        self.request_seconds
            .get_or_create(&RouteLabels {
                family,
                route: labels.route,
            })
            .observe(took.as_secs_f64());
    }

    /// A working secret of `kind` reported leaked, and what was done about it.
    pub fn leaked(&self, kind: SecretKind, action: LeakAction) {
        self.secrets_leaked
            .get_or_create(&LeakLabels {
                kind: kind.as_str(),
                action: action.as_str(),
            })
            .inc();
    }

    /// A request with an `Idempotency-Key` that was `outcome` (`claimed`, `replayed`,
    /// `in_progress`, `reused`).
    pub fn idempotency_key(&self, outcome: &'static str) {
        self.idempotency_keys
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The latest count of secrets of each kind; a kind missing from `tallies` has none.
    pub fn secrets_counted(&self, tallies: impl Fn(SecretKind) -> SecretTally) {
        for kind in SecretKind::ALL {
            let tally = tallies(kind);
            let kind = kind.as_str();
            let gauge = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
            for (state, count) in [("active", tally.active), ("in_grace", tally.in_grace)] {
                self.secrets
                    .get_or_create(&KindStateLabels { kind, state })
                    .set(gauge(count));
            }
            self.secrets_expiring_soon
                .get_or_create(&KindLabels { kind })
                .set(gauge(tally.expiring_soon));
        }
    }

    /// Everything counted so far, as OpenMetrics or as Prometheus's text format.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut text = String::new();
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        };
        // Writing into a String cannot fail, and every label value is plain text.
        written.expect("metrics encode into a string");
        text
    }
}

/// How often the secrets are counted for [`Metrics::secrets_counted`]: a grouped scan of the
/// working secrets, too much for every scrape of every instance, and counts of keys change
/// slowly.
const SECRET_TALLY_EVERY: Duration = Duration::from_secs(60);

/// Counts the secrets by kind and state now and then every [`SECRET_TALLY_EVERY`]; a failed
/// count leaves the last one in place (and says so in the log).
pub fn spawn_secret_tally(
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SECRET_TALLY_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match store.secret_counts(None, now()).await {
                Ok(counts) => metrics.secrets_counted(|kind| {
                    counts.iter().filter(|count| count.kind == kind).fold(
                        SecretTally::default(),
                        |sum, count| SecretTally {
                            active: sum.active + count.active,
                            in_grace: sum.in_grace + count.in_grace,
                            expiring_soon: sum.expiring_soon + count.expiring_soon,
                        },
                    )
                }),
                Err(err) => {
                    tracing::warn!(error = %err, "could not count the secrets for the metrics")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Sampled for Fixed {
        fn sample(&self) -> Sample {
            Sample {
                cache_hits: 7,
                cache_bypassed: true,
                ..Sample::default()
            }
        }
    }

    #[test]
    fn counts_render_in_both_formats() {
        let metrics = Metrics::new(Arc::new(Fixed));
        metrics.verified("agent_key", "valid", Duration::from_micros(80));
        metrics.served(
            "hoop",
            "/agents/{nameOrId}".into(),
            404,
            Duration::from_millis(2),
        );
        let text = metrics.render(false);
        assert!(
            text.contains(r#"keygate_verifications_total{kind="agent_key",outcome="valid"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"keygate_http_requests_total{family="hoop",route="/agents/{nameOrId}",status="4xx"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("keygate_verify_cache_hits_total 7"), "{text}");
        assert!(text.contains("keygate_verify_cache_bypassed 1"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        let open = metrics.render(true);
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
