//! What keygate counts for Prometheus. Each running instance has its own registry (two
//! instances in one process, as in the tests, count apart), rendered as Prometheus's text
//! format or as OpenMetrics, whichever the scraper asks for. Labels are bounded: a family, a
//! route template, a kind of secret, an outcome — never a key, a name or a path as sent.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content types of the two formats.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
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

pub struct Metrics {
    registry: Registry,
    verifications: Family<VerificationLabels, Counter>,
    verification_seconds: Histograms<KindLabels>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("keygate");
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
        Metrics {
            registry,
            verifications,
            verification_seconds,
            requests,
            request_seconds,
        }
    }
}

impl Metrics {
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
    pub fn served(&self, family: &'static str, route: &str, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let route = route.to_owned();
        self.request_seconds
            .get_or_create(&RouteLabels {
                family,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                family,
                route,
                status,
            })
            .inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_in_both_formats() {
        let metrics = Metrics::default();
        metrics.verified("agent_key", "valid", Duration::from_micros(80));
        metrics.served("hoop", "/agents/{nameOrId}", 404, Duration::from_millis(2));
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
        assert!(!text.contains("# EOF"), "{text}");
        let open = metrics.render(true);
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
