//! Ops Manager: the organization's projects with their agent API keys (list, create and rotate
//! with the key shown once, delete), and its programmatic API key pairs (list, create with the
//! private key shown once, delete).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Chrome, Confirm, Console, Form, PageError, PageNumber, Rotation, Session, ShownOnce, page,
    path_segment, query, when,
};

/// Items per page.
const PAGE: u64 = 20;

/// An Ops Manager list page.
#[derive(Deserialize)]
struct Results<T> {
    results: Vec<T>,
    #[serde(rename = "totalCount")]
    total_count: u64,
}

/// `path` with Ops Manager's paging for page `number`.
fn paged(path: &str, number: u64) -> String {
    format!(
        "{path}?{}",
        query(&[
            ("itemsPerPage", &PAGE.to_string()),
            ("pageNum", &number.to_string())
        ])
    )
}

/// The console's address of the page after `number`, when there is one.
fn next_page<T>(results: &Results<T>, number: u64, at: &str) -> Option<String> {
    (results.total_count > number * PAGE).then(|| format!("{at}?page={}", number + 1))
}

#[derive(Template)]
#[template(path = "projects.html", config = "src/http/console/askama.toml")]
struct Projects {
    chrome: Chrome,
    projects: Vec<ProjectRow>,
    next: Option<String>,
    error: Option<String>,
}

struct ProjectRow {
    id: String,
    name: String,
    created: String,
}

#[derive(Deserialize)]
struct ListedProject {
    id: String,
    name: String,
    created: DateTime<Utc>,
}

pub(super) async fn projects(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<PageNumber>,
) -> Response {
    render_projects(&console, &session, at.page.unwrap_or(1), None).await
}

async fn render_projects(
    console: &Console,
    session: &Session,
    number: u64,
    error: Option<PageError>,
) -> Response {
    let answer = console
        .api(session, Method::GET, &paged("/groups", number), None)
        .await;
    let listed: Results<ListedProject> = match answer.json() {
        Ok(listed) => listed,
        Err(err) => return err.into_response(),
    };
    let next = next_page(&listed, number, "/console/projects");
    let projects = listed
        .results
        .into_iter()
        .map(|project| ProjectRow {
            id: project.id,
            name: project.name,
            created: when(&Some(project.created)),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &Projects {
            chrome: session.chrome("projects"),
            projects,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ProjectForm {
    name: String,
}

pub(super) async fn create_project(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<ProjectForm>,
) -> Response {
    let request = json!({ "name": form.name });
    let answer = console
        .api(&session, Method::POST, "/groups", Some(request))
        .await;
    match answer.json::<ListedProject>() {
        Ok(project) => Redirect::to(&format!("/console/projects/{}", path_segment(&project.id)))
            .into_response(),
        Err(err) => render_projects(&console, &session, 1, Some(err)).await,
    }
}

#[derive(Template)]
#[template(path = "project.html", config = "src/http/console/askama.toml")]
struct Project {
    chrome: Chrome,
    id: String,
    name: String,
    keys: Vec<AgentKeyRow>,
    error: Option<String>,
}

/// A masked key as Ops Manager shows it (asterisks, then its last four characters) made
/// narrow enough for a table: `…` and the last four.
fn hint(masked: &str) -> String {
    format!("…{}", masked.trim_start_matches('*'))
}

struct AgentKeyRow {
    id: String,
    desc: String,
    masked: String,
    created: String,
    expires: String,
}

#[derive(Deserialize)]
struct ListedAgentKey {
    #[serde(rename = "_id")]
    id: String,
    desc: String,
    key: String,
    #[serde(rename = "createdTime")]
    created_time: i64,
    #[serde(rename = "expiresAt")]
    expires_at: Option<DateTime<Utc>>,
}

pub(super) async fn project(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    render_project(&console, &session, &id, None).await
}

async fn render_project(
    console: &Console,
    session: &Session,
    id: &str,
    error: Option<PageError>,
) -> Response {
    let segment = path_segment(id);
    let found = console
        .api(session, Method::GET, &format!("/groups/{segment}"), None)
        .await;
    let project: ListedProject = match found.json() {
        Ok(project) => project,
        Err(err) => return err.into_response(),
    };
    let path = format!("/groups/{segment}/agentapikeys");
    let answer = console.api(session, Method::GET, &path, None).await;
    let listed: Vec<ListedAgentKey> = match answer.json() {
        Ok(listed) => listed,
        Err(err) => return err.into_response(),
    };
    let keys = listed
        .into_iter()
        .map(|key| AgentKeyRow {
            id: key.id,
            desc: key.desc,
            masked: hint(&key.key),
            created: when(&DateTime::from_timestamp_millis(key.created_time)),
            expires: when(&key.expires_at),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &Project {
            chrome: session.chrome("projects"),
            id: project.id,
            name: project.name,
            keys,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct AgentKeyForm {
    desc: String,
}

/// The agent key Ops Manager just minted, shown once, or the project with the refusal.
async fn shown_once(
    console: &Console,
    session: &Session,
    project: &str,
    answer: Result<ListedAgentKey, PageError>,
    done: &str,
) -> Response {
    match answer {
        Ok(key) => ShownOnce {
            chrome: session.chrome("projects"),
            title: format!("Agent API key {} {done}", key.desc),
            what: "agent API key",
            secret: key.key,
            back: "/console/projects",
        }
        .into_response(),
        Err(err) => render_project(console, session, project, Some(err)).await,
    }
}

pub(super) async fn create_agent_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(project): Path<String>,
    Form(form): Form<AgentKeyForm>,
) -> Response {
    let path = format!("/groups/{}/agentapikeys", path_segment(&project));
    let answer = console
        .api(
            &session,
            Method::POST,
            &path,
            Some(json!({ "desc": form.desc })),
        )
        .await;
    shown_once(&console, &session, &project, answer.json(), "created").await
}

pub(super) async fn rotate_agent_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((project, key)): Path<(String, String)>,
    Form(form): Form<Rotation>,
) -> Response {
    let path = format!(
        "/groups/{}/agentapikeys/{}/rotate",
        path_segment(&project),
        path_segment(&key)
    );
    let rotated = console.rotate(&session, &path, &form).await;
    shown_once(&console, &session, &project, rotated, "rotated").await
}

pub(super) async fn confirm_delete_agent_key(
    Extension(session): Extension<Session>,
    Path((project, key)): Path<(String, String)>,
) -> Response {
    let project = path_segment(&project);
    Confirm {
        chrome: session.chrome("projects"),
        title: "Delete this agent API key?".to_owned(),
        message: format!("Agent API key {key} stops working at once. This cannot be undone."),
        action: format!(
            "/console/projects/{project}/agentapikeys/{}/delete",
            path_segment(&key)
        ),
        button: "Delete key",
        back: "/console/projects",
    }
    .into_response()
}

pub(super) async fn delete_agent_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((project, key)): Path<(String, String)>,
) -> Response {
    let segment = path_segment(&project);
    let path = format!("/groups/{segment}/agentapikeys/{}", path_segment(&key));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => Redirect::to(&format!("/console/projects/{segment}")).into_response(),
        Err(err) => render_project(&console, &session, &project, Some(err)).await,
    }
}

#[derive(Template)]
#[template(path = "key_pairs.html", config = "src/http/console/askama.toml")]
struct KeyPairs {
    chrome: Chrome,
    pairs: Vec<PairRow>,
    next: Option<String>,
    error: Option<String>,
}

struct PairRow {
    id: String,
    desc: String,
    public_key: String,
    masked: String,
    roles: String,
    expires: String,
}

#[derive(Deserialize)]
struct ListedPair {
    id: String,
    desc: String,
    #[serde(rename = "publicKey")]
    public_key: String,
    #[serde(rename = "privateKey")]
    private_key: String,
    #[serde(rename = "expiresAt")]
    expires_at: Option<DateTime<Utc>>,
    roles: Vec<Value>,
}

/// The caller's organization's Ops Manager id, under which its key pairs are.
pub(super) async fn org_id(console: &Console, session: &Session) -> Result<String, PageError> {
    let answer = console
        .api(session, Method::GET, "/api/public/v1.0/orgs", None)
        .await;
    let orgs: Results<Value> = answer.json()?;
    orgs.results
        .first()
        .and_then(|org| org["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "The organization was not found."))
}

pub(super) async fn key_pairs(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<PageNumber>,
) -> Response {
    render_key_pairs(&console, &session, at.page.unwrap_or(1), None).await
}

async fn render_key_pairs(
    console: &Console,
    session: &Session,
    number: u64,
    error: Option<PageError>,
) -> Response {
    let listed = match org_id(console, session).await {
        Ok(org) => {
            let path = paged(&format!("/orgs/{}/apiKeys", path_segment(&org)), number);
            console.api(session, Method::GET, &path, None).await.json()
        }
        Err(err) => Err(err),
    };
    let listed: Results<ListedPair> = match listed {
        Ok(listed) => listed,
        Err(err) => return err.into_response(),
    };
    let next = next_page(&listed, number, "/console/keypairs");
    let pairs = listed
        .results
        .into_iter()
        .map(|pair| PairRow {
            id: pair.id,
            desc: pair.desc,
            public_key: pair.public_key,
            masked: hint(&pair.private_key),
            roles: pair
                .roles
                .iter()
                .filter_map(|role| role["roleName"].as_str())
                .collect::<Vec<_>>()
                .join(", "),
            expires: when(&pair.expires_at),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &KeyPairs {
            chrome: session.chrome("keypairs"),
            pairs,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct PairForm {
    desc: String,
    role: String,
}

pub(super) async fn create_key_pair(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<PairForm>,
) -> Response {
    let created = match org_id(&console, &session).await {
        Ok(org) => {
            let path = format!("/orgs/{}/apiKeys", path_segment(&org));
            let request = json!({ "desc": form.desc, "roles": [form.role] });
            let answer = console
                .api(&session, Method::POST, &path, Some(request))
                .await;
            answer.json::<ListedPair>()
        }
        Err(err) => Err(err),
    };
    pair_shown_once(&console, &session, created, "created").await
}

/// A new private key for the same public key; the old one keeps working for the grace period.
pub(super) async fn rotate_key_pair(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Rotation>,
) -> Response {
    let rotated = match org_id(&console, &session).await {
        Ok(org) => {
            let path = format!(
                "/orgs/{}/apiKeys/{}/rotate",
                path_segment(&org),
                path_segment(&id)
            );
            console.rotate(&session, &path, &form).await
        }
        Err(err) => Err(err),
    };
    pair_shown_once(&console, &session, rotated, "rotated").await
}

/// The private key Ops Manager just minted, shown once, or the key pairs with the refusal.
async fn pair_shown_once(
    console: &Console,
    session: &Session,
    answer: Result<ListedPair, PageError>,
    done: &str,
) -> Response {
    match answer {
        Ok(pair) => ShownOnce {
            chrome: session.chrome("keypairs"),
            title: format!(
                "Key pair {} {done}: public key {}",
                pair.desc, pair.public_key
            ),
            what: "private key",
            secret: pair.private_key,
            back: "/console/keypairs",
        }
        .into_response(),
        Err(err) => render_key_pairs(console, session, 1, Some(err)).await,
    }
}

pub(super) async fn confirm_delete_key_pair(
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    Confirm {
        chrome: session.chrome("keypairs"),
        title: "Delete this key pair?".to_owned(),
        message: format!("Key pair {id} stops working at once. This cannot be undone."),
        action: format!("/console/keypairs/{}/delete", path_segment(&id)),
        button: "Delete key pair",
        back: "/console/keypairs",
    }
    .into_response()
}

pub(super) async fn delete_key_pair(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let deleted = match org_id(&console, &session).await {
        Ok(org) => {
            let path = format!("/orgs/{}/apiKeys/{}", path_segment(&org), path_segment(&id));
            console
                .api(&session, Method::DELETE, &path, None)
                .await
                .ok()
        }
        Err(err) => Err(err),
    };
    match deleted {
        Ok(()) => Redirect::to("/console/keypairs").into_response(),
        Err(err) => render_key_pairs(&console, &session, 1, Some(err)).await,
    }
}
