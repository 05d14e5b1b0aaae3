//! hoop connections and machine identities: the connections the gateway fronts (list, create,
//! delete), and the identities holding one credential per connection (list, create and rotate
//! with the credentials shown once, per connection; delete).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Chrome, Confirm, Console, Cursor, Form, PageError, Rotation, Session, page, path_segment, when,
};

#[derive(Template)]
#[template(path = "connections.html", config = "src/http/console/askama.toml")]
struct Connections {
    chrome: Chrome,
    connections: Vec<ConnectionRow>,
    next: Option<String>,
    error: Option<String>,
}

struct ConnectionRow {
    name: String,
    segment: String,
    kind: String,
    agent: String,
    database: String,
    attributes: String,
    created: String,
}

#[derive(Deserialize)]
struct ListedConnection {
    name: String,
    #[serde(rename = "type")]
    connection_type: String,
    subtype: String,
    agent_id: Option<uuid::Uuid>,
    attributes: Vec<String>,
    database_name: Option<String>,
    created_at: DateTime<Utc>,
}

pub(super) async fn connections(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<Cursor>,
) -> Response {
    render_connections(&console, &session, at.cursor.as_deref(), None).await
}

async fn render_connections(
    console: &Console,
    session: &Session,
    cursor: Option<&str>,
    error: Option<PageError>,
) -> Response {
    let listed = console.linked_page::<ListedConnection>(
        session,
        "/connections",
        "/console/connections",
        cursor,
    );
    let (listed, next) = match listed.await {
        Ok(page) => page,
        Err(err) => return err.into_response(),
    };
    let connections = listed
        .into_iter()
        .map(|connection| ConnectionRow {
            segment: path_segment(&connection.name),
            name: connection.name,
            kind: format!("{} / {}", connection.connection_type, connection.subtype),
            agent: connection
                .agent_id
                .map_or_else(|| "—".to_owned(), |id| id.to_string()),
            database: connection.database_name.unwrap_or_else(|| "—".to_owned()),
            attributes: connection.attributes.join(", "),
            created: when(&Some(connection.created_at)),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &Connections {
            chrome: session.chrome("connections"),
            connections,
            next,
            error: error.map(|err| err.message),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ConnectionForm {
    name: String,
    #[serde(rename = "type")]
    connection_type: String,
    subtype: String,
    agent: String,
    #[serde(default)]
    database_name: String,
    #[serde(default)]
    attributes: String,
}

/// A comma-separated form field as a list, without empty entries.
fn list_field(field: &str) -> Vec<&str> {
    field
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

pub(super) async fn create_connection(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<ConnectionForm>,
) -> Response {
    let mut request = json!({
        "name": form.name,
        "type": form.connection_type,
        "subtype": form.subtype,
        "agent_id": form.agent,
        "attributes": list_field(&form.attributes),
    });
    if !form.database_name.trim().is_empty() {
        request["database_name"] = json!(form.database_name.trim());
    }
    let answer = console
        .api(&session, Method::POST, "/connections", Some(request))
        .await;
    match answer.ok() {
        Ok(()) => Redirect::to("/console/connections").into_response(),
        Err(err) => render_connections(&console, &session, None, Some(err)).await,
    }
}

pub(super) async fn confirm_delete_connection(
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    Confirm {
        chrome: session.chrome("connections"),
        title: format!("Delete connection {name}?"),
        message: "Every machine credential issued for it stops working at once. This cannot be \
                  undone."
            .to_owned(),
        action: format!("/console/connections/{}/delete", path_segment(&name)),
        button: "Delete connection",
        back: "/console/connections",
    }
    .into_response()
}

pub(super) async fn delete_connection(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/connections/{}", path_segment(&name));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => Redirect::to("/console/connections").into_response(),
        Err(err) => render_connections(&console, &session, None, Some(err)).await,
    }
}

#[derive(Template)]
#[template(path = "identities.html", config = "src/http/console/askama.toml")]
struct Identities {
    chrome: Chrome,
    identities: Vec<IdentityRow>,
    next: Option<String>,
    error: Option<String>,
}

struct IdentityRow {
    name: String,
    segment: String,
    attributes: String,
    expires: String,
    credentials: Vec<CredentialRow>,
}

struct CredentialRow {
    connection: String,
    segment: String,
    hint: String,
    reached_by: String,
    expires: String,
    last_used: String,
}

#[derive(Deserialize)]
struct ListedIdentity {
    name: String,
    attributes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    credentials: Vec<ListedCredential>,
}

#[derive(Deserialize)]
struct ListedCredential {
    connection_name: String,
    reached_by: String,
    hint: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

pub(super) async fn identities(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(at): Query<Cursor>,
) -> Response {
    render_identities(&console, &session, at.cursor.as_deref(), None).await
}

async fn render_identities(
    console: &Console,
    session: &Session,
    cursor: Option<&str>,
    error: Option<PageError>,
) -> Response {
    let listed = console.linked_page::<ListedIdentity>(
        session,
        "/machineidentities",
        "/console/identities",
        cursor,
    );
    let (listed, next) = match listed.await {
        Ok(page) => page,
        Err(err) => return err.into_response(),
    };
    let identities = listed
        .into_iter()
        .map(|identity| IdentityRow {
            segment: path_segment(&identity.name),
            name: identity.name,
            attributes: identity.attributes.join(", "),
            expires: when(&identity.expires_at),
            credentials: identity
                .credentials
                .into_iter()
                .map(|credential| CredentialRow {
                    segment: path_segment(&credential.connection_name),
                    connection: credential.connection_name,
                    hint: credential.hint,
                    reached_by: credential.reached_by,
                    expires: when(&credential.expires_at),
                    last_used: when(&credential.last_used_at),
                })
                .collect(),
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |err| err.status);
    page(
        status,
        &Identities {
            chrome: session.chrome("identities"),
            identities,
            next,
            error: error.map(|err| err.message),
        },
    )
}

/// Credentials just issued, shown in the answer that issued them and never again.
#[derive(Template)]
#[template(path = "credentials.html", config = "src/http/console/askama.toml")]
struct Issued {
    chrome: Chrome,
    title: String,
    credentials: Vec<CredentialBlock>,
}

/// One connection's credential: its fields as the API gives them.
struct CredentialBlock {
    connection: String,
    fields: Vec<(String, String)>,
}

impl CredentialBlock {
    fn of(credential: &Map<String, Value>) -> CredentialBlock {
        let fields = credential
            .iter()
            .filter(|(name, _)| name.as_str() != "connection_name")
            .filter_map(|(name, value)| {
                let value = match value {
                    Value::String(text) => text.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((name.clone(), value))
            })
            .collect();
        CredentialBlock {
            connection: credential["connection_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            fields,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct IdentityForm {
    name: String,
    #[serde(default)]
    connection_names: String,
    #[serde(default)]
    attributes: String,
    #[serde(default)]
    ttl: String,
}

pub(super) async fn create_identity(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<IdentityForm>,
) -> Response {
    let mut request = json!({
        "name": form.name,
        "connection_names": list_field(&form.connection_names),
        "attributes": list_field(&form.attributes),
    });
    if !form.ttl.trim().is_empty() {
        match form.ttl.trim().parse::<u64>() {
            Ok(ttl) => request["ttl"] = json!(ttl),
            Err(_) => {
                let err = PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The lifetime is a whole number of seconds.",
                );
                return render_identities(&console, &session, None, Some(err)).await;
            }
        }
    }
    let answer = console
        .api(&session, Method::POST, "/machineidentities", Some(request))
        .await;
    match answer.json::<Value>() {
        Ok(issued) => {
            let credentials = issued["credentials"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .map(CredentialBlock::of)
                .collect();
            let issued = Issued {
                chrome: session.chrome("identities"),
                title: format!("Machine identity {} created", form.name),
                credentials,
            };
            page(StatusCode::OK, &issued)
        }
        Err(err) => render_identities(&console, &session, None, Some(err)).await,
    }
}

pub(super) async fn rotate_credential(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((name, connection)): Path<(String, String)>,
    Form(form): Form<Rotation>,
) -> Response {
    let path = format!(
        "/machineidentities/{}/credentials/{}/rotate",
        path_segment(&name),
        path_segment(&connection)
    );
    match console
        .rotate::<Map<String, Value>>(&session, &path, &form)
        .await
    {
        Ok(credential) => {
            let issued = Issued {
                chrome: session.chrome("identities"),
                title: format!("Credential of {name} for {connection} rotated"),
                credentials: vec![CredentialBlock::of(&credential)],
            };
            page(StatusCode::OK, &issued)
        }
        Err(err) => render_identities(&console, &session, None, Some(err)).await,
    }
}

pub(super) async fn confirm_delete_identity(
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    Confirm {
        chrome: session.chrome("identities"),
        title: format!("Delete machine identity {name}?"),
        message: "Every credential it holds stops working at once. This cannot be undone."
            .to_owned(),
        action: format!("/console/identities/{}/delete", path_segment(&name)),
        button: "Delete identity",
        back: "/console/identities",
    }
    .into_response()
}

pub(super) async fn delete_identity(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/machineidentities/{}", path_segment(&name));
    let answer = console.api(&session, Method::DELETE, &path, None).await;
    match answer.ok() {
        Ok(()) => Redirect::to("/console/identities").into_response(),
        Err(err) => render_identities(&console, &session, None, Some(err)).await,
    }
}
