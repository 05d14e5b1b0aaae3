//! keygate's API keys and their roles: list, create and rotate (the key shown once), revoke
//! after a confirmation.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{
    Chrome, Confirm, Console, Cursor, Form, PAGE, PageError, Rotation, Session, ShownOnce, page,
    path_segment, query, when,
};

#[derive(Template)]
#[template(path = "api_keys.html", config = "src/http/console/askama.toml")]
struct ApiKeys {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    next: Option<String>,
    error: Option<String>,
}

struct KeyRow {
    id: String,
    name: String,
    role: String,
    hint: String,
    created: String,
    expires: String,
    last_used: String,
    /// Revoked, or expired: nothing left to revoke.
    revoked: bool,
    /// The signed-in key itself.
    own: bool,
}

/// A page of keys as the API lists them.
#[derive(Deserialize)]
struct Listed {
    items: Vec<ListedKey>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ListedKey {
    id: uuid::Uuid,
    name: String,
    role: String,
    hint: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Minted {
    name: String,
    key: String,
}

pub(super) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<Cursor>,
) -> Response {
    render(&console, &session, at.cursor.as_deref(), None).await
}

async fn render(
    console: &Console,
    session: &Session,
    cursor: Option<&str>,
    error: Option<PageError>,
) -> Response {
    let path = format!(
        "/apikeys?{}",
        query(&[("limit", PAGE), ("cursor", cursor.unwrap_or_default())])
    );
    let answer = console.api(session, Method::GET, &path, None).await;
    let listed: Listed = match answer.json() {
        Ok(listed) => listed,
        Err(err) => return err.into_response(),
    };
    let at = Utc::now();
    let keys = listed
        .items
        .into_iter()
        .map(|key| KeyRow {
            id: key.id.to_string(),
            own: key.id == session.api_key.id,
            revoked: key.revoked_at.is_some() || key.expires_at.is_some_and(|end| end <= at),
            name: key.name,
            role: key.role,
            hint: key.hint,
            created: when(&Some(key.created_at)),
            expires: when(&key.expires_at),
            last_used: when(&key.last_used_at),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    let next = listed
        .next_cursor
        .map(|cursor| format!("/console/apikeys?{}", query(&[("cursor", &cursor)])));
    page(
        status,
        &ApiKeys {
            chrome: session.chrome("apikeys"),
            keys,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    name: String,
    role: String,
}

/// Creates the key and shows it, once, in this answer.
pub(super) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<CreateForm>,
) -> Response {
    let request = json!({ "name": form.name, "role": form.role });
    let answer = console
        .api(&session, Method::POST, "/apikeys", Some(request))
        .await;
    match answer.json::<Minted>() {
        Ok(minted) => ShownOnce {
            chrome: session.chrome("apikeys"),
            title: format!("API key {} created", form.name),
            what: "API key",
            secret: minted.key,
            back: "/console/apikeys",
        }
        .into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}

/// Rotates the key and shows the new one, once.
pub(super) async fn rotate(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Rotation>,
) -> Response {
    let path = format!("/apikeys/{}/rotate", path_segment(&id));
    match console.rotate::<Minted>(&session, &path, &form).await {
        Ok(minted) => ShownOnce {
            chrome: session.chrome("apikeys"),
            title: format!("API key {} rotated", minted.name),
            what: "new API key",
            secret: minted.key,
            back: "/console/apikeys",
        }
        .into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}

pub(super) async fn confirm_revoke(
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    Confirm {
        chrome: session.chrome("apikeys"),
        title: "Revoke this API key?".to_owned(),
        message: format!(
            "API key {id} stops working at once, and every console session signed in with it \
             ends. This cannot be undone."
        ),
        action: format!("/console/apikeys/{}/revoke", path_segment(&id)),
        button: "Revoke key",
        back: "/console/apikeys",
    }
    .into_response()
}

pub(super) async fn revoke(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/apikeys/{}", path_segment(&id));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => Redirect::to("/console/apikeys").into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}
