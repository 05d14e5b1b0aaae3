//! CORS for a web frontend: off by default; with `KEYGATE_CORS_ORIGINS`, a preflight from a
//! listed origin is answered, one from any other origin is not, and credentials never are.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::common::{Backend, TestApp, on_both_backends};

on_both_backends!(
    cors_is_off_by_default,
    a_preflight_from_an_allowed_origin_gets_the_cors_headers,
    a_preflight_from_another_origin_gets_none,
    a_wildcard_allows_any_origin_without_credentials,
);

const CONSOLE: &str = "https://console.example.com";

async fn start(backend: Backend, origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|origin| (*origin).to_owned()).collect();
    TestApp::start_with(backend, |config| config.cors_origins = origins).await
}

/// A browser's preflight for a create with an idempotency key.
async fn preflight(app: &TestApp, origin: &str) -> (StatusCode, HeaderMap) {
    let response = app
        .request(Method::OPTIONS, "/agents", None)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .to_str()
        .unwrap()
}

async fn cors_is_off_by_default(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, headers) = preflight(&app, CONSOLE).await;
    assert!(
        !headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{headers:?}"
    );
}

async fn a_preflight_from_an_allowed_origin_gets_the_cors_headers(backend: Backend) {
    let app = start(backend, &[CONSOLE, "http://localhost:3000"]).await;
    let (status, headers) = preflight(&app, CONSOLE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "access-control-allow-origin"), CONSOLE);
    assert!(header(&headers, "access-control-allow-methods").contains("POST"));
    let allowed = header(&headers, "access-control-allow-headers");
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(headers.get("access-control-allow-credentials").is_none());

    // The actual request: the page may read the headers it needs.
    let response = app
        .request(Method::GET, "/healthz", None)
        .header("origin", CONSOLE)
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), CONSOLE);
    let exposed = header(headers, "access-control-expose-headers").to_ascii_lowercase();
    for name in ["link", "x-request-id", "retry-after", "www-authenticate"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

async fn a_preflight_from_another_origin_gets_none(backend: Backend) {
    let app = start(backend, &[CONSOLE]).await;
    for origin in [
        "https://evil.example.com",
        "https://console.example.com.evil.example",
    ] {
        let (_, headers) = preflight(&app, origin).await;
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "{origin}: {headers:?}"
        );
    }
}

async fn a_wildcard_allows_any_origin_without_credentials(backend: Backend) {
    let app = start(backend, &["*"]).await;
    let (status, headers) = preflight(&app, "https://anywhere.example").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    assert!(headers.get("access-control-allow-credentials").is_none());
}
