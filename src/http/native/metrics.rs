//! `GET /metrics`: what this instance has counted, for Prometheus to scrape.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;
use crate::http::auth::{Caller, Operator};
use crate::http::dialect::NativeError;
use crate::metrics::{Metrics, OPENMETRICS_TEXT, PROMETHEUS_TEXT};

/// Metrics in Prometheus's text format, or OpenMetrics when the scraper accepts it (Prometheus
/// asks for it first). For the operators: an admin API key of organization `default`, which
/// Prometheus sends with its scrape config's `authorization`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Server",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 403, description = "Not an operator", body = NativeError),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    _caller: Caller<Operator>,
    headers: HeaderMap,
) -> impl IntoResponse {
    render(&state.metrics, &headers)
}

/// The router of the separate metrics listener (`KEYGATE_METRICS_LISTEN`): `GET /metrics`
/// without credentials, and nothing else. Whoever reaches that address may read the counts;
/// the operator chose who that is by where they bound it.
pub fn unauthenticated(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move { render(&metrics, &headers) }),
    )
}

fn render(metrics: &Metrics, headers: &HeaderMap) -> impl IntoResponse + use<> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        metrics.render(openmetrics),
    )
}
