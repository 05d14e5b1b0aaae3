//! Signing in (an API key, pasted once, exchanged for a session) and out.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Deserialize;
use zeroize::Zeroizing;

use std::time::Duration;

use super::{
    BASE, COOKIE, Console, PageError, Session, SessionPolicy, page, read_form, token_hash,
};
use crate::domain::secret::now;
use crate::error::Error;
use crate::http::auth::{Principal, authenticate};

#[derive(Template)]
#[template(path = "sign_in.html", config = "src/http/console/askama.toml")]
struct SignIn {
    error: Option<String>,
    /// Why the browser was sent here.
    notice: Option<&'static str>,
    /// How long an unused session lasts, in words.
    idle: String,
    /// How long any session lasts, in words.
    lifetime: String,
}

impl SignIn {
    fn new(policy: &SessionPolicy, error: Option<String>, notice: Option<&'static str>) -> SignIn {
        SignIn {
            error,
            notice,
            idle: in_words(policy.idle),
            lifetime: in_words(policy.lifetime),
        }
    }
}

/// A session timeout as the sign-in page tells it.
fn in_words(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = match seconds {
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

pub(super) async fn form(State(console): State<Console>) -> Response {
    page(
        StatusCode::OK,
        &SignIn::new(&console.state.console, None, None),
    )
}

/// Where a request without a working session goes: a page asks to sign in; a form is refused,
/// since what it asked must not happen unseen after signing in again.
pub(super) fn signed_out(policy: &SessionPolicy, post: bool) -> Response {
    if post {
        let ended = "Your session has ended, so nothing was changed. Sign in again.";
        let sign_in = SignIn::new(policy, Some(ended.to_owned()), None);
        return page(StatusCode::UNAUTHORIZED, &sign_in);
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    // The cookie, if any, names a session that no longer works.
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, false));
    response
}

#[derive(Deserialize)]
struct SignInForm {
    key: String,
}

/// Exchanges the pasted API key for a session. The key is checked the way the API checks a
/// bearer credential, so a wrong one counts against the client's address in the same limiter
/// and is audited.
pub(super) async fn sign_in(State(console): State<Console>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::http::extract::BODY_LIMIT).await else {
        return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
            .into_response();
    };
    match start_session(&console, parts, &body).await {
        Ok(response) => response,
        Err((status, message)) => page(
            status,
            &SignIn::new(&console.state.console, Some(message), None),
        ),
    }
}

async fn start_session(
    console: &Console,
    parts: Parts,
    body: &Bytes,
) -> Result<Response, (StatusCode, String)> {
    let form: SignInForm = read_form(body).map_err(|err| (err.status, err.message))?;
    let key = form.key.trim();
    let refused = || {
        (
            StatusCode::UNAUTHORIZED,
            "This API key does not work: it is wrong, revoked or expired.".to_owned(),
        )
    };
    if key.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "Paste an API key.".to_owned()));
    }
    let Ok(mut authorization) = HeaderValue::from_str(&format!("Bearer {key}")) else {
        return Err(refused());
    };
    authorization.set_sensitive(true);
    let mut parts = parts;
    parts.headers.insert(header::AUTHORIZATION, authorization);
    let principal = authenticate(&parts, &console.state).await;
    parts.headers.remove(header::AUTHORIZATION);
    let secret_id = match principal {
        Ok(Principal::ApiKey { secret_id, .. }) => secret_id,
        Ok(Principal::ProgrammaticKey(_)) | Err(Error::Unauthenticated) => return Err(refused()),
        Err(Error::RateLimited { retry_after_secs }) => {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins from your address; try again in {retry_after_secs} s."
                ),
            ));
        }
        Err(err) => return Err((err.status(), err.to_string())),
    };
    let mut token = Zeroizing::new([0u8; 32]);
    if OsRng.try_fill_bytes(token.as_mut_slice()).is_err() {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_owned(),
        ));
    }
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(token.as_slice()));
    let store = &console.state.store;
    let policy = console.state.console;
    let at = now();
    let since = |limit| at - chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
    // Sessions that ran out are deleted here, when new ones begin, rather than by a timer.
    let purged = store
        .purge_console_sessions(since(policy.idle), since(policy.lifetime))
        .await;
    let created = store
        .create_console_session(&token_hash(&token), secret_id, at)
        .await;
    if let Some(err) = purged.err().or(created.err()) {
        return Err((err.status(), err.to_string()));
    }
    let secure = policy.secure_cookie || super::forwarded_over_tls(&parts, &console.state);
    let mut response = Redirect::to("/console/overview").into_response();
    let max_age = policy.lifetime.as_secs();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&token, max_age, secure));
    Ok(response)
}

/// The session cookie: only for the console's paths, never to scripts, never sent with a
/// request another site starts.
fn cookie(token: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let mut value = HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path={BASE}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a session token is base64url");
    value.set_sensitive(true);
    value
}

/// Ends the session server-side, for every tab that shares it.
pub(super) async fn sign_out(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    if let Err(err) = console
        .state
        .store
        .delete_console_session(&session.token_hash)
        .await
    {
        return err.into_response();
    }
    let signed_out = SignIn::new(&console.state.console, None, Some("You have signed out."));
    let mut response = page(StatusCode::OK, &signed_out);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, false));
    response
}
