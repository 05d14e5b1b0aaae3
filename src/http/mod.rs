//! The HTTP layer, by API family: `native` (keygate's own routes) and `hoop` (hoop's gateway
//! API, also served under `/api`). Each family renders errors in its own dialect.

mod client;
pub mod dialect;
pub mod extract;
mod hoop;
mod native;
mod rotation;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use url::Url;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::error::Error;
use crate::limiter::FailureLimiter;
use crate::storage::Store;
use crate::verify::Verifier;
use dialect::{Dialect, render_errors};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    /// The gateway's public gRPC address, from which agent DSNs are built.
    pub grpc_url: Arc<Url>,
    /// Organization `default`: its admins are the operators.
    pub operator_org_id: Uuid,
    /// Failed `POST /verify` answers, per calling API key.
    pub verify_limiter: Arc<FailureLimiter>,
    /// Failed authentications, per client address.
    pub auth_limiter: Arc<FailureLimiter>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[IpNet]>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate",
        description = "Control plane of an access gateway: mints and verifies agent keys and API keys. \
                       hoop routes are also served under `/api`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Agents", description = "hoop agent keys in DSN form"),
        (name = "Verification", description = "The data plane's question: is this secret valid, and whose is it?"),
        (name = "API keys", description = "Bearer credentials of this API"),
        (name = "Organizations", description = "Tenants; managed by the operators"),
        (name = "Server", description = "Health and server information"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// An API family: its routes, the dialect its errors are rendered in, and the base path its
/// original clients use, where the routes are served as well.
struct Family {
    routes: OpenApiRouter<AppState>,
    dialect: Dialect,
    compat_base: Option<&'static str>,
}

fn families() -> [Family; 2] {
    [
        Family {
            routes: native::routes(),
            dialect: Dialect::Native,
            compat_base: None,
        },
        Family {
            routes: hoop::routes(),
            dialect: Dialect::Hoop,
            compat_base: Some("/api"),
        },
    ]
}

/// The OpenAPI document, generated from the handlers (canonical paths only).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    for family in families() {
        api.merge(family.routes.into_openapi());
    }
    api
}

/// The complete application: routes, documentation, and the request pipeline.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let mut app = Router::new();
    let mut api = ApiDoc::openapi();
    for Family {
        routes,
        dialect,
        compat_base,
    } in families()
    {
        let (routes, family_api) = routes.split_for_parts();
        api.merge(family_api);
        // The timeout sits inside the dialect layer so that its 408 is rendered like any error.
        let routes = routes
            .layer(from_fn_with_state(request_timeout, enforce_timeout))
            .layer(from_fn_with_state(dialect, render_errors));
        if let Some(base) = compat_base {
            app = app.nest(base, routes.clone());
        }
        app = app.merge(routes);
    }
    let request_id = HeaderName::from_static("x-request-id");
    app.merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(|| async { Error::NotFound("route") })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(
            // Outermost first: assign the id, log with it, then echo it on the response.
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
        .with_state(state)
}

/// Answers 408 when a request, body upload included, outlasts `limit`. Dropping the handler's
/// future rolls back any transaction it had open.
async fn enforce_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout(limit.as_secs()).into_response(),
    }
}

/// Method, path and request id only: never headers (credentials) nor the query string.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
}

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
