//! Agentex's API keys of one agent: list, create (the key shown once), rotate, delete after a
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
    Chrome, Confirm, Console, Form, PageError, PageNumber, Rotation, Session, ShownOnce, page,
    path_segment, query, when,
};

/// Keys per page.
const PAGE: usize = 20;

#[derive(Template)]
#[template(path = "agentex.html", config = "src/http/console/askama.toml")]
struct AgentexKeys {
    chrome: Chrome,
    agent: String,
    /// The agent's name as a path segment.
    segment: String,
    keys: Vec<KeyRow>,
    next: Option<String>,
    error: Option<String>,
}

struct KeyRow {
    id: String,
    name: String,
    kind: String,
    created: String,
    expires: String,
    last_used: String,
}

#[derive(Deserialize)]
struct Listed {
    id: uuid::Uuid,
    name: String,
    api_key_type: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Minted {
    name: String,
    api_key: String,
}

pub(super) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(agent): Path<String>,
    Query(at): Query<PageNumber>,
) -> Response {
    render(&console, &session, &agent, at.page.unwrap_or(1), None).await
}

async fn render(
    console: &Console,
    session: &Session,
    agent: &str,
    page_number: u64,
    error: Option<PageError>,
) -> Response {
    let path = format!(
        "/agent_api_keys?{}",
        query(&[
            ("agent_name", agent),
            ("limit", &PAGE.to_string()),
            ("page_number", &page_number.to_string()),
        ])
    );
    let answer = console.api(session, Method::GET, &path, None).await;
    let listed: Vec<Listed> = match answer.json() {
        Ok(listed) => listed,
        Err(err) => return err.into_response(),
    };
    let segment = path_segment(agent);
    let next = (listed.len() == PAGE)
        .then(|| format!("/console/agents/{segment}/keys?page={}", page_number + 1));
    let keys = listed
        .into_iter()
        .map(|key| KeyRow {
            id: key.id.to_string(),
            name: key.name,
            kind: key.api_key_type,
            created: when(&Some(key.created_at)),
            expires: when(&key.expires_at),
            last_used: when(&key.last_used_at),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &AgentexKeys {
            chrome: session.chrome("agents"),
            agent: agent.to_owned(),
            segment,
            keys,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    name: String,
    api_key_type: String,
}

/// Mints the key and shows it, once, in this answer.
pub(super) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(agent): Path<String>,
    Form(form): Form<CreateForm>,
) -> Response {
    let request = json!({
        "agent_name": agent,
        "name": form.name,
        "api_key_type": form.api_key_type,
    });
    let answer = console
        .api(&session, Method::POST, "/agent_api_keys", Some(request))
        .await;
    shown_once(
        &console,
        &session,
        &agent,
        answer.json::<Minted>(),
        "created",
    )
    .await
}

/// The minted key, or the list with the API's refusal.
async fn shown_once(
    console: &Console,
    session: &Session,
    agent: &str,
    minted: Result<Minted, PageError>,
    done: &str,
) -> Response {
    match minted {
        Ok(minted) => ShownOnce {
            chrome: session.chrome("agents"),
            title: format!("Agentex key {} of agent {agent} {done}", minted.name),
            what: "Agentex API key",
            secret: minted.api_key,
            back: "/console/agents",
        }
        .into_response(),
        Err(err) => render(console, session, agent, 1, Some(err)).await,
    }
}

pub(super) async fn rotate(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((agent, id)): Path<(String, String)>,
    Form(form): Form<Rotation>,
) -> Response {
    let path = format!("/agent_api_keys/{}/rotate", path_segment(&id));
    let rotated = console.rotate::<Minted>(&session, &path, &form).await;
    shown_once(&console, &session, &agent, rotated, "rotated").await
}

pub(super) async fn confirm_delete(
    Extension(session): Extension<Session>,
    Path((agent, id)): Path<(String, String)>,
) -> Response {
    let segment = path_segment(&agent);
    Confirm {
        chrome: session.chrome("agents"),
        title: format!("Delete this Agentex key of agent {agent}?"),
        message: format!("Key {id} stops working at once. This cannot be undone."),
        action: format!(
            "/console/agents/{segment}/keys/{}/delete",
            path_segment(&id)
        ),
        button: "Delete key",
        back: "/console/agents",
    }
    .into_response()
}

pub(super) async fn delete(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((agent, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/agent_api_keys/{}", path_segment(&id));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => {
            Redirect::to(&format!("/console/agents/{}/keys", path_segment(&agent))).into_response()
        }
        Err(err) => render(&console, &session, &agent, 1, Some(err)).await,
    }
}
