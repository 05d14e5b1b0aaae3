//! Cross-origin requests from a web frontend: which origins may call the API from a browser
//! (`KEYGATE_CORS_ORIGINS`, none by default), and what their pages may send and read.
//!
//! Credentials (cookies, TLS client certificates) are never allowed, whatever the origins:
//! keygate's callers authenticate with an `Authorization` header the page sets itself, so a
//! browser never needs to attach ambient credentials, and `*` stays safe.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::idempotency;

/// The CORS layer for `origins` (serialized origins, or `*` for any); `None` when empty.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allowed = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    let request_id = HeaderName::from_static("x-request-id");
    Some(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                idempotency::HEADER,
                request_id.clone(),
            ])
            .expose_headers([
                header::LINK,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                request_id,
                idempotency::REPLAYED,
                super::SHOULD_RETRY,
            ])
            // Browsers cap it lower (Chromium at 2 h); an hour spares most preflights.
            .max_age(Duration::from_secs(3600)),
    )
}
