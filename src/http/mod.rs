//! The HTTP layer, by API family: `native` (keygate's own routes) and `hoop` (hoop's gateway
//! API, also served under `/api`). A family picks its error dialect and its authentication
//! scheme; everything it answers, the router's own 404 and 405 included, comes out in them.

mod agentex;
pub mod auth;
mod client;
pub mod console;
mod cors;
pub mod dialect;
pub mod extract;
mod hoop;
pub mod idempotency;
mod json_syntax;
mod native;

pub use native::metrics::unauthenticated as metrics_router;
pub mod ops_manager;
pub mod pagination;
mod rotation;
mod usage;

use std::collections::btree_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use url::Url;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OneOfBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::audit::RefusalRecorder;
use crate::domain::connections::GatewayListeners;
use crate::domain::secret::{future_expiry_in, now};
use crate::error::Error;
use crate::http::dialect::ErrorReport;
use crate::limiter::FailureLimiter;
use crate::secrets::SecretKind;
use crate::secrets::scanning::ScanningKeys;
use crate::secrets::server_key::Keyring;
use crate::storage::Store;
use crate::verify::Verifier;
use auth::{AuthScheme, Bearer, FamilyAuth};
use dialect::Dialect;

/// What every handler can reach: one shared allocation, so that a clone (axum makes one for
/// each layer and extractor that takes the state, several per request) is one atomic
/// increment rather than one per part, each part's count a cache line the cores fight over.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Services {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    /// Writes refused credentials to the audit trail, off the request path.
    pub refusals: RefusalRecorder,
    /// Seals what cannot be stored as a digest; authenticates server-issued nonces.
    pub server_key: Arc<Keyring>,
    /// The gateway's public gRPC address, from which agent DSNs are built.
    pub grpc_url: Arc<Url>,
    /// keygate's public base URL, when configured: where webhook URLs point.
    pub public_url: Option<Arc<str>>,
    /// Where clients reach the gateway's listeners, as configured; the database holds those
    /// set through the API since.
    pub gateway: Arc<GatewayListeners>,
    /// Organization `default`: its admins are the operators.
    pub operator_org_id: Uuid,
    /// Failed `POST /verify` answers, per calling API key.
    pub verify_limiter: Arc<FailureLimiter>,
    /// Failed authentications, per client address.
    pub auth_limiter: Arc<FailureLimiter>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[IpNet]>,
    /// How long `Idempotency-Key` answers are replayed, and claims held.
    pub idempotency: idempotency::IdempotencyPolicy,
    /// How long web console sessions last, and how their cookie is marked.
    pub console: console::SessionPolicy,
    /// What this instance has counted, for `GET /metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// GitHub's secret scanning keys, when configured: alerts signed with them are acted on.
    pub scanning_keys: Option<Arc<ScanningKeys>>,
}

impl AppState {
    /// The expiry of a new secret of `kind` in organization `org_id`: the requested one (refused
    /// when past, or later than the organization's policy allows for the kind), else the
    /// policy's longest lifetime for the kind, else none. `field` names the request's field.
    pub async fn new_expiry(
        &self,
        org_id: Uuid,
        kind: SecretKind,
        field: &'static str,
        requested: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let requested = future_expiry_in(field, requested)?;
        let policy = self.store.org_policy(org_id).await?;
        policy.new_expiry(kind, field, requested, now())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate",
        description = "Control plane of an access gateway: mints, stores as digests and verifies the \
                       secrets of four API families, each in its own routes and error dialect: hoop \
                       agent keys (DSNs); MongoDB Ops Manager projects, programmatic API key pairs \
                       (HTTP Digest) and agent API keys, also under `/api/public/v1.0`; Agentex \
                       agent API keys and webhook signing secrets; and hoop machine identities with \
                       a native credential per connection. hoop routes are also served under \
                       `/api`. keygate's own API keys, organizations and audit trail manage them, \
                       and one `POST /verify` answers for every kind of secret."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Agents", description = "hoop agent keys in DSN form"),
        (name = "Connections", description = "What the gateway fronts, and where clients reach it"),
        (name = "Machine identities", description = "Non-human identities with a native credential per connection"),
        (name = "Verification", description = "The data plane's question: is this secret valid, and whose is it?"),
        (name = "Secret scanning", description = "Leaked secrets reported by GitHub secret scanning, signed by GitHub"),
        (name = "API keys", description = "Bearer credentials of this API"),
        (name = "Organizations", description = "Tenants; managed by the operators"),
        (name = "Audit", description = "Who changed what, from where, in which request; refused credentials"),
        (name = "Server", description = "Health and server information"),
        (name = "Agent APIKeys", description = "Agentex agent API keys and webhook signing secrets, under Agentex's own tag name"),
        (name = "Ops Manager", description = "MongoDB Ops Manager's public API: projects, programmatic API keys (HTTP Digest) and agent API keys; also under `/api/public/v1.0`"),
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
        components.add_security_scheme(
            "digest",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Digest)),
        );
    }
}

/// An API family: its routes, the dialect its errors are rendered in, how its clients
/// authenticate, the base path its original clients use, where the routes are served too, and
/// any other path prefix whose unknown routes are the family's. A new family is one more entry
/// here and a module of its own.
struct Family {
    routes: OpenApiRouter<AppState>,
    dialect: Dialect,
    auth: Arc<dyn AuthScheme>,
    compat_base: Option<&'static str>,
    unknown_under: Option<&'static str>,
}

fn families() -> [Family; 5] {
    [
        Family {
            routes: native::routes(),
            dialect: Dialect::Native,
            auth: Arc::new(Bearer),
            compat_base: None,
            unknown_under: None,
        },
        Family {
            routes: hoop::routes(),
            dialect: Dialect::Hoop,
            auth: Arc::new(Bearer),
            compat_base: Some("/api"),
            unknown_under: None,
        },
        Family {
            routes: ops_manager::routes(),
            dialect: Dialect::OpsManager,
            auth: Arc::new(ops_manager::digest::Digest),
            compat_base: Some(ops_manager::BASE),
            unknown_under: None,
        },
        // Ops Manager routes whose root path keygate's own routes hold (`GET /orgs`): served
        // only under Ops Manager's base path; and its private API, of which keygate serves the
        // version call.
        Family {
            routes: ops_manager::base_only_routes(),
            dialect: Dialect::OpsManager,
            auth: Arc::new(ops_manager::digest::Digest),
            compat_base: None,
            unknown_under: Some(ops_manager::PRIVATE_BASE),
        },
        Family {
            routes: agentex::routes(),
            dialect: Dialect::FastApi,
            auth: Arc::new(Bearer),
            compat_base: None,
            unknown_under: None,
        },
    ]
}

impl Family {
    /// The family's routes with its documentation completed by the statuses every route of it
    /// can answer.
    fn split(self) -> (Router<AppState>, utoipa::openapi::OpenApi, FamilyContext) {
        let (routes, mut api) = self.routes.split_for_parts();
        document_common_statuses(&mut api, self.dialect.schema_name());
        let context = FamilyContext {
            dialect: self.dialect,
            auth: self.auth,
        };
        (routes, api, context)
    }
}

/// The OpenAPI document, generated from the handlers (canonical paths only).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    for family in families() {
        api.merge(family.split().1);
    }
    api
}

/// Every operation of the document, to be amended.
pub fn operations_mut(
    api: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// Statuses any route may answer besides its own: 408 (request timeout) and 503 (database
/// unavailable or busy) everywhere but the database-free probes; 413 where there is a body;
/// 401 and 429 (failed authentications from the address) where credentials are required; 409
/// and 422 where `Idempotency-Key` is honoured.
fn document_common_statuses(api: &mut utoipa::openapi::OpenApi, error_schema: &str) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(error_schema))),
            )
            .build()
    };
    for operation in operations_mut(api) {
        let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let mut statuses = vec![("408", "The request took too long")];
        if authenticated {
            statuses.push(("401", "Missing or invalid credentials"));
            statuses.push(("429", "Too many failed attempts; see Retry-After"));
            statuses.push(("503", "The database is unavailable or busy; retry"));
        }
        if operation.request_body.is_some() {
            statuses.push(("400", "The request body cannot be read (not UTF-8 text)"));
            statuses.push(("413", "The request body is too large"));
        }
        for (status, description) in statuses {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| error(description).into());
        }
        if idempotency::is_honoured(operation) {
            let statuses = [
                (
                    "409",
                    "A request with this Idempotency-Key is still in progress (Retry-After)",
                ),
                (
                    "422",
                    "This Idempotency-Key was used with a different request",
                ),
            ];
            // The route may answer these statuses for its own reasons too, perhaps in
            // another shape (Agentex's 422 lists fields): say both.
            for (status, description) in statuses {
                match operation.responses.responses.entry(status.to_owned()) {
                    Entry::Occupied(mut documented) => {
                        if let RefOr::T(response) = documented.get_mut() {
                            response.description = match response.description.as_str() {
                                "" => description.to_owned(),
                                own => format!("{own}; or: {description}"),
                            };
                            if let Some(RefOr::T(content)) =
                                response.content.get_mut("application/json")
                                && let Some(own) = content.schema.take()
                            {
                                let ours = RefOr::Ref(Ref::from_schema_name(error_schema));
                                content.schema = Some(if own == ours {
                                    own
                                } else {
                                    OneOfBuilder::new().item(own).item(ours).into()
                                });
                            }
                        }
                    }
                    Entry::Vacant(vacant) => {
                        vacant.insert(error(description).into());
                    }
                }
            }
        }
    }
}

/// What a family's middleware needs: how to render errors and how callers authenticate.
#[derive(Clone)]
struct FamilyContext {
    dialect: Dialect,
    auth: Arc<dyn AuthScheme>,
}

/// Middleware around each family's routes: gives extractors the family's authentication
/// scheme, answers 408 when the request (its body upload included) outlasts `timeout`, renders
/// every error in its dialect (the 408 too), challenges a 401 in its scheme, and lets the
/// dialect finish the answer (Ops Manager's `pretty` and `envelope`). One layer for all of it:
/// each route layer costs every request a boxed service and a boxed future.
async fn in_family(
    State((family, timeout, state)): State<(FamilyContext, Duration, AppState)>,
    mut request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().map(str::to_owned);
    let sent_a_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length != "0");
    request
        .extensions_mut()
        .insert(FamilyAuth(family.auth.clone()));
    // The route's template, never the path as sent: the label set stays bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".into(), |path| path.as_str().to_owned());
    let started = std::time::Instant::now();
    // Dropping the handler's future on timeout rolls back any transaction it had open.
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout(timeout.as_secs()).into_response(),
    };
    let mut response = family.dialect.rerender(response);
    if response.status() == StatusCode::UNAUTHORIZED {
        let stale = response
            .extensions()
            .get::<ErrorReport>()
            .is_some_and(|report| report.code == Error::StaleNonce.code());
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            family.auth.challenge(&state, stale),
        );
        // A challenged request's body is never read, so the server may close the connection
        // before the client has sent it all; saying so keeps the client from sending its
        // answer to the challenge on a connection about to close.
        if sent_a_body {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    let response = family.dialect.finish(query.as_deref(), response).await;
    let family_name = family.dialect.family();
    let status = response.status().as_u16();
    state
        .metrics
        .served(family_name, route, status, started.elapsed());
    response
}

/// The header Stainless-generated SDKs (Agentex's among them) read before retrying, so they
/// retry only what a retry can fix.
pub const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Tells clients whether repeating a refused request can succeed: `true` for a timeout, a rate
/// limit, an unavailable database, and a conflict that names its `Retry-After` (the same
/// idempotency key still in flight); `false` for what only a changed request can fix. Server
/// errors are left to the client's own policy. Every API answer passes here, the router's own
/// 404 and 405 included.
fn with_retry_advice(mut response: Response) -> Response {
    advise_retry(&mut response);
    response
}

fn advise_retry(response: &mut Response) {
    let status = response.status();
    let retry = match status {
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE => true,
        StatusCode::CONFLICT => response.headers().contains_key(header::RETRY_AFTER),
        status if status.is_client_error() => false,
        _ => return,
    };
    let value = HeaderValue::from_static(if retry { "true" } else { "false" });
    response.headers_mut().insert(SHOULD_RETRY, value);
}

async fn no_such_route() -> Error {
    Error::NotFound("route")
}

/// The complete application: routes, documentation, and the request pipeline.
///
/// The layers every request crosses wrap the router as one concrete service, not through
/// `Router::layer`: axum applies a router's layer to each route separately and boxes the
/// result, so each such layer would cost every request a clone of a boxed service and a boxed
/// future.
pub fn router(
    state: AppState,
    request_timeout: Duration,
    cors_origins: &[String],
) -> impl tower::Service<
    Request,
    Response = axum::http::Response<
        impl axum::body::HttpBody<Data = axum::body::Bytes, Error = axum::Error> + Send + 'static,
    >,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    let mut app = Router::new();
    let mut api = ApiDoc::openapi();
    for family in families() {
        let (compat_base, unknown_under) = (family.compat_base, family.unknown_under);
        let (routes, family_api, context) = family.split();
        api.merge(family_api);
        let context = (context, request_timeout, state.clone());
        let wrap =
            |routes: Router<AppState>| routes.layer(from_fn_with_state(context.clone(), in_family));
        // Under its own base path every unknown route is the family's too.
        if let Some(base) = compat_base {
            app = app.nest(base, wrap(routes.clone().fallback(no_such_route)));
        }
        if let Some(prefix) = unknown_under {
            app = app.nest(prefix, wrap(Router::new().fallback(no_such_route)));
        }
        app = app.merge(wrap(routes));
    }
    let api: Router = app
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(no_such_route)
        .with_state(state.clone());
    // The console calls the API in-process: inside the request id and trace layers, which its
    // own request has already passed.
    let app = api.clone().merge(console::routes(state.clone(), api));
    let request_id = HeaderName::from_static("x-request-id");
    tower::ServiceBuilder::new()
        // Outermost first: assign the id, log with it, then echo it on the response.
        .layer(SetRequestIdLayer::new(request_id.clone(), NewRequestId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // A line per request at the default level cost more than a cached verify.
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        // Outside the routes, so that a preflight is answered whatever its path and method.
        .option_layer(cors::layer(cors_origins))
        .map_response(with_retry_advice)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        // Route layers are built before the state exists; the idempotency layer finds it here.
        .layer(Extension(state))
        .service(app)
}

/// Method, path, request id and trace id only: never headers (credentials) nor the query
/// string. The span joins its caller's trace (W3C `traceparent`). Values are recorded with
/// `Display`: the log layer formats a span's fields when it is made, for every request, and
/// `Debug` would escape the request id character by character.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    crate::telemetry::request_span(request.headers(), |trace_id| {
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
            trace_id = trace_id.map(tracing::field::display),
        )
    })
}

/// A request's `x-request-id`: a random (v4) UUID, written without an intermediate `String`.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        let id = Uuid::new_v4().hyphenated().encode_lower(&mut text);
        Some(RequestId::new(HeaderValue::from_str(id).ok()?))
    }
}

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn advice(status: StatusCode, retry_after: bool) -> Option<HeaderValue> {
        let mut response = status.into_response();
        if retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        advise_retry(&mut response);
        response.headers().get(SHOULD_RETRY).cloned()
    }

    #[test]
    fn only_what_waiting_can_fix_is_worth_a_retry() {
        let yes = Some(HeaderValue::from_static("true"));
        let no = Some(HeaderValue::from_static("false"));
        for status in [
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(advice(status, true), yes, "{status}");
        }
        // The same idempotency key still in flight: its answer comes.
        assert_eq!(advice(StatusCode::CONFLICT, true), yes);
        for status in [
            StatusCode::CONFLICT,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::UNPROCESSABLE_ENTITY,
        ] {
            assert_eq!(advice(status, false), no, "{status}");
        }
        for status in [StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR] {
            assert_eq!(advice(status, false), None, "{status}");
        }
    }
}
