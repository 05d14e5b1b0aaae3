//! hoop agents: list, create (the DSN shown once), rotate with a grace period, delete after a
//! confirmation.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{
    Chrome, Confirm, Console, Cursor, Form, PageError, Rotation, Session, ShownOnce, page,
    path_segment, when,
};

#[derive(Template)]
#[template(path = "agents.html", config = "src/http/console/askama.toml")]
struct Agents {
    chrome: Chrome,
    agents: Vec<AgentRow>,
    /// The next page's address.
    next: Option<String>,
    /// Why the last form was refused.
    error: Option<String>,
}

struct AgentRow {
    name: String,
    /// The name as a path segment.
    segment: String,
    mode: String,
    hint: String,
    created: String,
    expires: String,
    last_used: String,
}

/// An agent as the API lists it.
#[derive(Deserialize)]
struct Listed {
    name: String,
    mode: String,
    created_at: DateTime<Utc>,
    key: ListedKey,
}

#[derive(Deserialize)]
struct ListedKey {
    hint: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

/// A DSN as the API mints it.
#[derive(Deserialize)]
struct Minted {
    token: String,
}

pub(super) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<Cursor>,
) -> Response {
    render(&console, &session, at.cursor.as_deref(), None).await
}

/// The list (its first page, or the one after `cursor`), with `error` above the forms.
async fn render(
    console: &Console,
    session: &Session,
    cursor: Option<&str>,
    error: Option<PageError>,
) -> Response {
    let listed = console.linked_page::<Listed>(session, "/agents", "/console/agents", cursor);
    let (listed, next) = match listed.await {
        Ok(page) => page,
        Err(err) => return err.into_response(),
    };
    let agents = listed
        .into_iter()
        .map(|agent| AgentRow {
            segment: path_segment(&agent.name),
            name: agent.name,
            mode: agent.mode,
            hint: agent.key.hint,
            created: when(&Some(agent.created_at)),
            expires: when(&agent.key.expires_at),
            last_used: when(&agent.key.last_used_at),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &Agents {
            chrome: session.chrome("agents"),
            agents,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    name: String,
    mode: String,
}

/// Creates the agent and shows its DSN, once, in this answer.
pub(super) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<CreateForm>,
) -> Response {
    let request = json!({ "name": form.name, "mode": form.mode });
    let answer = console
        .api(&session, Method::POST, "/agents", Some(request))
        .await;
    match answer.json::<Minted>() {
        Ok(minted) => ShownOnce {
            chrome: session.chrome("agents"),
            title: format!("Agent {} created", form.name),
            what: "DSN",
            secret: minted.token,
            back: "/console/agents",
        }
        .into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}

/// Rotates the agent's key and shows the new DSN, once.
pub(super) async fn rotate(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<Rotation>,
) -> Response {
    let path = format!("/agents/{}/rotate", path_segment(&name));
    match console.rotate::<Minted>(&session, &path, &form).await {
        Ok(minted) => ShownOnce {
            chrome: session.chrome("agents"),
            title: format!("Agent {name}'s key rotated"),
            what: "new DSN",
            secret: minted.token,
            back: "/console/agents",
        }
        .into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}

/// Asks before deleting.
pub(super) async fn confirm_delete(
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    Confirm {
        chrome: session.chrome("agents"),
        title: format!("Delete agent {name}?"),
        message: "Its keys stop working at once. This cannot be undone.".to_owned(),
        action: format!("/console/agents/{}/delete", path_segment(&name)),
        button: "Delete agent",
        back: "/console/agents",
    }
    .into_response()
}

pub(super) async fn delete(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/agents/{}", path_segment(&name));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => Redirect::to("/console/agents").into_response(),
        Err(err) => render(&console, &session, None, Some(err)).await,
    }
}
