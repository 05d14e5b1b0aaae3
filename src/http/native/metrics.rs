//! `GET /metrics`: what this instance has counted, for Prometheus to scrape.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use crate::http::AppState;
use crate::http::auth::{Caller, Operator};
use crate::http::dialect::NativeError;
use crate::metrics::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};

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
        state.metrics.render(openmetrics),
    )
}
