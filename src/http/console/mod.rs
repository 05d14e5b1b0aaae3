//! The web console at `/console/`: server-rendered pages (askama templates compiled into the
//! binary), one stylesheet and one small script, served by keygate itself.
//!
//! The console is a frontend of the API, not a second implementation of it: a page handler reads
//! its form and sends the matching API request in-process to the API router ([`Console::api`]),
//! as the signed-in API key, with the end client's address and request id; validation, roles,
//! audit and error messages are the API's.
//!
//! A browser signs in by pasting an API key once ([`sign_in`]); it gets a random session token in
//! an `HttpOnly`, `SameSite=Strict` cookie, whose SHA-256 digest is kept in `console_sessions`.
//! Every page request looks the session up with the API key secret it signed in with
//! ([`require_session`]): an idle, too old or signed-out session, or one whose secret no longer
//! works (revoked, expired, rotated away without grace or past its grace period, deleted),
//! sends the browser to sign in. Every
//! POST must come from the console's own origin and carry the session's CSRF token, an HMAC of
//! the session token under the server key.

mod agentex;
mod agents;
mod api_keys;
mod audit;
mod chart;
mod connections;
mod ops_manager;
mod overview;
mod sign_in;
mod verify;

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode, request::Parts};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_http::request_id::RequestId;
use uuid::Uuid;

use super::AppState;
use super::auth::{Authenticated, Principal};
use super::dialect::ErrorReport;
use crate::domain::org::{ApiKey, Role};
use crate::domain::secret::now;
use crate::storage::ConsoleSession;

/// The session cookie's name.
const COOKIE: &str = "keygate_session";
/// Where the session cookie is sent, and everything the console serves.
const BASE: &str = "/console";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Rows on a page of a list paged by cursor.
const PAGE: &str = "20";

const STYLESHEET: &str = include_str!("static/console.css");
const SCRIPT: &str = include_str!("static/console.js");

/// How long console sessions last, and whether their cookie is marked `Secure` regardless of
/// how the request arrived.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub lifetime: Duration,
    /// Always mark the cookie `Secure`: the operator serves the console over TLS, whatever the
    /// request says.
    pub secure_cookie: bool,
}

/// What the console's handlers reach: the server's state, and the API router they call.
#[derive(Clone)]
struct Console {
    state: AppState,
    api: Router,
}

/// The console's routes, calling `api` in-process.
pub fn routes(state: AppState, api: Router) -> Router {
    let console = Console { state, api };
    let signed_in = Router::new()
        .route("/console/", get(overview::overview))
        .route("/console/overview", get(overview::overview))
        .route("/console/agents/{name}/usage", get(overview::agent))
        .route("/console/apikeys/{id}/usage", get(overview::api_key))
        .route("/console/identities/{name}/usage", get(overview::identity))
        .route(
            "/console/agents/{name}/keys/{id}/usage",
            get(overview::agentex_key),
        )
        .route("/console/keypairs/{id}/usage", get(overview::key_pair))
        .route(
            "/console/projects/{id}/agentapikeys/{key}/usage",
            get(overview::project_agent_key),
        )
        .route("/console/agents", get(agents::list).post(agents::create))
        .route("/console/agents/{name}/rotate", post(agents::rotate))
        .route(
            "/console/agents/{name}/delete",
            get(agents::confirm_delete).post(agents::delete),
        )
        .route(
            "/console/apikeys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/console/apikeys/{id}/rotate", post(api_keys::rotate))
        .route(
            "/console/apikeys/{id}/revoke",
            get(api_keys::confirm_revoke).post(api_keys::revoke),
        )
        .route(
            "/console/agents/{name}/keys",
            get(agentex::list).post(agentex::create),
        )
        .route(
            "/console/agents/{name}/keys/{id}/rotate",
            post(agentex::rotate),
        )
        .route(
            "/console/agents/{name}/keys/{id}/delete",
            get(agentex::confirm_delete).post(agentex::delete),
        )
        .route(
            "/console/connections",
            get(connections::connections).post(connections::create_connection),
        )
        .route(
            "/console/connections/{name}/delete",
            get(connections::confirm_delete_connection).post(connections::delete_connection),
        )
        .route(
            "/console/identities",
            get(connections::identities).post(connections::create_identity),
        )
        .route(
            "/console/identities/{name}/credentials/{connection}/rotate",
            post(connections::rotate_credential),
        )
        .route(
            "/console/identities/{name}/delete",
            get(connections::confirm_delete_identity).post(connections::delete_identity),
        )
        .route(
            "/console/projects",
            get(ops_manager::projects).post(ops_manager::create_project),
        )
        .route("/console/projects/{id}", get(ops_manager::project))
        .route(
            "/console/projects/{id}/agentapikeys",
            post(ops_manager::create_agent_key),
        )
        .route(
            "/console/projects/{id}/agentapikeys/{key}/rotate",
            post(ops_manager::rotate_agent_key),
        )
        .route(
            "/console/projects/{id}/agentapikeys/{key}/delete",
            get(ops_manager::confirm_delete_agent_key).post(ops_manager::delete_agent_key),
        )
        .route(
            "/console/keypairs",
            get(ops_manager::key_pairs).post(ops_manager::create_key_pair),
        )
        .route(
            "/console/keypairs/{id}/rotate",
            post(ops_manager::rotate_key_pair),
        )
        .route(
            "/console/keypairs/{id}/delete",
            get(ops_manager::confirm_delete_key_pair).post(ops_manager::delete_key_pair),
        )
        .route("/console/audit", get(audit::list))
        .route("/console/verify", get(verify::form).post(verify::verify))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route_layer(from_fn_with_state(console.clone(), require_session));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::sign_in),
        )
        .route("/console/static/{file}", get(static_file))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .merge(signed_in)
        .layer(from_fn(same_origin_posts))
        .layer(from_fn(html_errors))
        .layer(from_fn(security_headers))
        .layer(DefaultBodyLimit::max(super::extract::BODY_LIMIT))
        .with_state(console)
}

/// The headers every console response carries; pages are never cached (they may show a
/// secret), the static files are cached for a day.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Renders the router's and extractors' own refusals — a query that cannot be read, a method a
/// page does not take, a body too large — as console pages rather than plain text.
async fn html_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !status.is_client_error() || is_html {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "This page does not take that kind of request.",
        StatusCode::PAYLOAD_TOO_LARGE => "The form is too large.",
        _ => "The address or the form could not be read.",
    };
    PageError::new(status, message).into_response()
}

/// Refuses a POST that a browser says comes from another site: by `Sec-Fetch-Site` where the
/// browser sends it, else by an `Origin` naming another host. No other site may submit the
/// console's forms, sign-in included.
async fn same_origin_posts(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && cross_site(request.headers()) {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was refused.",
        )
        .into_response();
    }
    next.run(request).await
}

fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site != "same-origin" && site != "none";
    }
    // Under `Referrer-Policy: no-referrer` a browser sends `Origin: null` with the console's
    // own forms, so only an origin naming another host tells.
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    origin_host.is_none() || origin_host.as_deref() != host
}

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return not_found().await,
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    PageError::new(StatusCode::NOT_FOUND, "There is no such page.").into_response()
}

/// Whether the browser reached keygate over TLS, as a trusted proxy in front of it says with
/// `X-Forwarded-Proto: https`.
fn forwarded_over_tls(parts: &Parts, state: &AppState) -> bool {
    super::client::from_trusted_proxy(parts, &state.trusted_proxies)
        && parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A signed-in browser's session, as [`require_session`] found it, with what an API request on
/// its behalf carries from the browser's request.
#[derive(Clone)]
struct Session {
    token_hash: [u8; 32],
    api_key: ApiKey,
    /// The API key secret the session signed in with.
    secret_id: Uuid,
    csrf: String,
    client: Forwarded,
}

/// What identifies the end client of a request, copied to the API requests made for it: the
/// connection's address, `X-Forwarded-For` (read against the trusted proxies as usual) and
/// the request id.
#[derive(Clone)]
struct Forwarded {
    connect_info: Option<ConnectInfo<SocketAddr>>,
    forwarded_for: Vec<HeaderValue>,
    request_id: Option<RequestId>,
}

impl Forwarded {
    fn of(parts: &Parts) -> Forwarded {
        Forwarded {
            connect_info: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
            forwarded_for: parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .cloned()
                .collect(),
            request_id: parts.extensions.get::<RequestId>().cloned(),
        }
    }

    /// Puts the end client's identity on a request made for it.
    fn apply<B>(&self, request: &mut axum::http::Request<B>) {
        if let Some(info) = self.connect_info {
            request.extensions_mut().insert(info);
        }
        if let Some(id) = &self.request_id {
            request.extensions_mut().insert(id.clone());
        }
        for value in &self.forwarded_for {
            request
                .headers_mut()
                .append("x-forwarded-for", value.clone());
        }
    }
}

impl Session {
    /// Admins may change things; members and auditors only look (the API agrees).
    fn admin(&self) -> bool {
        self.api_key.role == Role::Admin
    }

    /// What every page around its content shows.
    fn chrome(&self, current: &'static str) -> Chrome {
        Chrome {
            key_name: self.api_key.name.clone(),
            role: self.api_key.role.as_str(),
            csrf: self.csrf.clone(),
            current,
            admin: self.admin(),
            overseer: self.api_key.role != Role::Member,
            user: self.api_key.role != Role::Auditor,
        }
    }
}

/// The frame of every signed-in page: who is signed in, the navigation their role allows, and
/// the CSRF token its forms carry.
struct Chrome {
    key_name: String,
    role: &'static str,
    csrf: String,
    /// The navigation entry of this page.
    current: &'static str,
    /// May create, rotate, delete and revoke.
    admin: bool,
    /// May read the audit trail.
    overseer: bool,
    /// May use the verification tester.
    user: bool,
}

/// The session token's digest: what the database keeps.
fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What binds the session token to its CSRF token under the server key.
fn csrf_input(token_hash: &[u8; 32]) -> Vec<u8> {
    [b"keygate console csrf\0".as_slice(), token_hash].concat()
}

/// The session's cookie value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE && !value.is_empty()).then_some(value))
}

/// Whether a session found now has run out, idle or old.
fn expired(session: &ConsoleSession, policy: &SessionPolicy) -> bool {
    let at = now();
    let older_than = |since, limit: Duration| {
        chrono::Duration::from_std(limit).is_ok_and(|limit| at - since >= limit)
    };
    older_than(session.last_seen_at, policy.idle) || older_than(session.created_at, policy.lifetime)
}

/// Finds the request's session and, for a POST, checks its CSRF token; otherwise sends the
/// browser to sign in (a GET) or refuses (a POST), changing nothing.
async fn require_session(State(console): State<Console>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let store = &console.state.store;
    let hash = session_cookie(&parts.headers).map(token_hash);
    let found = match hash {
        Some(hash) => match store.find_console_session(&hash).await {
            Ok(found) => found.map(|session| (hash, session)),
            Err(err) => return err.into_response(),
        },
        None => None,
    };
    let at = now();
    let session = match found {
        Some((hash, session)) => {
            // The secret signed in with, not the key's current one: rotating a leaked key
            // without grace (or the grace period ending) ends the sessions it opened.
            let key_works = session.secret.revoked_at.is_none()
                && session.secret.expires_at.is_none_or(|expires| expires > at);
            if key_works && !expired(&session, &console.state.console) {
                Some((hash, session))
            } else {
                if let Err(err) = store.delete_console_session(&hash).await {
                    return err.into_response();
                }
                None
            }
        }
        None => None,
    };
    let Some((hash, session)) = session else {
        return sign_in::signed_out(&console.state.console, parts.method == Method::POST);
    };
    let csrf = URL_SAFE_NO_PAD.encode(console.state.server_key.mac(&csrf_input(&hash)));
    let body = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, super::extract::BODY_LIMIT).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
                    .into_response();
            }
        };
        let sent = form_field(&bytes, "csrf")
            .and_then(|token| URL_SAFE_NO_PAD.decode(token).ok())
            .is_some_and(|tag| {
                console
                    .state
                    .server_key
                    .verify_mac(&csrf_input(&hash), &tag)
            });
        if !sent {
            return PageError::new(
                StatusCode::FORBIDDEN,
                "This form is out of date or was not sent by the console; nothing was changed. \
                 Go back, reload the page and try again.",
            )
            .into_response();
        }
        Body::from(bytes)
    } else {
        body
    };
    if let Err(err) = store.touch_console_session(&hash, at).await {
        return err.into_response();
    }
    let client = Forwarded::of(&parts);
    parts.extensions.insert(Session {
        token_hash: hash,
        api_key: session.api_key,
        secret_id: session.secret.id,
        csrf,
        client,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// The value of the urlencoded form's field `name`.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.into_owned())
}

/// A POST's urlencoded form; one that cannot be read is answered with a 400 page.
struct Form<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Form<T>, Response> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        read_form(&body)
            .map(Form)
            .map_err(IntoResponse::into_response)
    }
}

/// The form a POST sent, or a 400 page.
fn read_form<T: DeserializeOwned>(body: &Bytes) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "The form could not be read; reload the page and try again.",
        )
    })
}

/// The API's answer to an in-process request.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
    /// The API's error, when it refused.
    error: Option<ErrorReport>,
}

impl Answer {
    /// The answer's JSON body, when it succeeded; else the API's words.
    fn json<T: DeserializeOwned>(&self) -> Result<T, PageError> {
        if let Some(error) = &self.error {
            return Err(PageError::from_api(error));
        }
        serde_json::from_slice(&self.body).map_err(|err| {
            tracing::error!(error = %err, "the console could not read an API answer");
            PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
    }

    /// Success, or the API's words.
    fn ok(&self) -> Result<(), PageError> {
        match &self.error {
            Some(error) => Err(PageError::from_api(error)),
            None => Ok(()),
        }
    }
}

impl Console {
    /// Sends `method path` with `body` (JSON) to the API as the session's API key, on behalf of
    /// the browser's request.
    async fn api(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(body)
            .expect("a path the console built is a valid URI");
        session.client.apply(&mut request);
        // What the server's outer layers give every request: the state, for the idempotency
        // layer.
        request.extensions_mut().insert(self.state.clone());
        request
            .extensions_mut()
            .insert(Authenticated(Principal::ApiKey {
                key: session.api_key.clone(),
                secret_id: session.secret_id,
            }));
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Answer {
            error: parts.extensions.get::<ErrorReport>().cloned(),
            headers: parts.headers,
            body,
        }
    }
}

impl Console {
    /// Rotates the secret at `path` (the API's rotate route) with the form's grace period, and
    /// reads the new secret from the answer.
    async fn rotate<T: DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
        form: &Rotation,
    ) -> Result<T, PageError> {
        let request = serde_json::json!({ "grace_period_seconds": form.grace()? });
        let answer = self.api(session, Method::POST, path, Some(request)).await;
        answer.json()
    }
}

/// A rotation form: how long the old secret keeps working.
#[derive(serde::Deserialize)]
struct Rotation {
    grace_period_seconds: String,
}

impl Rotation {
    /// The grace period in seconds; none when the field is empty.
    fn grace(&self) -> Result<u64, PageError> {
        let field = self.grace_period_seconds.trim();
        if field.is_empty() {
            return Ok(0);
        }
        field.parse().map_err(|_| {
            PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The grace period is a whole number of seconds.",
            )
        })
    }
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `segment` for a path: every byte outside the unreserved set percent-encoded.
fn path_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, UNRESERVED).to_string()
}

/// `(name, value)` pairs as a query string.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    query.finish()
}

/// A timestamp as pages show it.
fn when(at: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(
        || "—".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A rendered page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page telling what went wrong, in words.
#[derive(Debug, Template)]
#[template(path = "error.html", config = "src/http/console/askama.toml")]
struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// The API's refusal, in its words: the message, and each refused field's.
    fn from_api(report: &ErrorReport) -> PageError {
        let mut message = report.message.clone();
        for field in report.fields.iter().skip(1) {
            message.push_str("; ");
            message.push_str(&field.to_string());
        }
        if !message.ends_with('.') {
            message.push('.');
        }
        let mut first = message.chars();
        let message: String = first
            .next()
            .map(|c| c.to_uppercase().chain(first).collect())
            .unwrap_or_default();
        PageError::new(report.status, message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        page(self.status, &self)
    }
}

/// `?cursor=`: which page of a list.
#[derive(serde::Deserialize)]
struct Cursor {
    cursor: Option<String>,
}

/// `?page=`: which page of a list paged by number (Agentex, Ops Manager), from 1.
#[derive(serde::Deserialize)]
struct PageNumber {
    page: Option<u64>,
}

impl Console {
    /// A page of a hoop list (`api_path`, e.g. `/agents`) after `cursor`, with the console's
    /// link (`console_path?cursor=…`) to the next page when the API's `Link` names one.
    async fn linked_page<T: DeserializeOwned>(
        &self,
        session: &Session,
        api_path: &str,
        console_path: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>), PageError> {
        let page = [("limit", PAGE), ("cursor", cursor.unwrap_or_default())];
        let path = format!("{api_path}?{}", query(&page));
        let answer = self.api(session, Method::GET, &path, None).await;
        let items = answer.json()?;
        let next = link_cursor(&answer.headers)
            .map(|cursor| format!("{console_path}?{}", query(&[("cursor", &cursor)])));
        Ok((items, next))
    }
}

/// The cursor of a hoop list's `Link: <…cursor=…>; rel="next"`.
fn link_cursor(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(header::LINK)?.to_str().ok()?;
    let target = link.strip_prefix('<')?.split_once('>')?.0;
    let (_, query) = target.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "cursor")
        .map(|(_, cursor)| cursor.into_owned())
}

/// A freshly minted secret, shown in the answer to the form that minted it and never again.
#[derive(Template)]
#[template(path = "shown_once.html", config = "src/http/console/askama.toml")]
struct ShownOnce {
    chrome: Chrome,
    title: String,
    /// What the secret is, e.g. "DSN".
    what: &'static str,
    secret: String,
    /// The list to go back to.
    back: &'static str,
}

impl IntoResponse for ShownOnce {
    fn into_response(self) -> Response {
        page(StatusCode::OK, &self)
    }
}

/// A confirmation step before something that cannot be undone.
#[derive(Template)]
#[template(path = "confirm.html", config = "src/http/console/askama.toml")]
struct Confirm {
    chrome: Chrome,
    title: String,
    message: String,
    /// Where the confirming form posts.
    action: String,
    button: &'static str,
    back: &'static str,
}

impl IntoResponse for Confirm {
    fn into_response(self) -> Response {
        page(StatusCode::OK, &self)
    }
}
