//! hoop connections — `POST/GET /connections`, `GET/PUT/DELETE /connections/{name}` — and the
//! gateway listeners clients reach them through: `GET /gateway/listeners`, and
//! `PUT/DELETE /gateway/listeners/{protocol}` for the operators. Errors are hoop's
//! `{"message": ...}`.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::connections::{
    Connection, ConnectionSpec, ConnectionType, GatewayListeners, Listener, NewConnection,
    Protocol, UpstreamSecret, parse_attributes, parse_host, parse_name, parse_subtype,
};
use crate::domain::org::{Role, parse_label};
use crate::domain::secret::now;
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller, Operator};
use crate::http::dialect::HoopError;
use crate::http::extract::{Json, Path, Query, not_null, some_free_map};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Linked, PageParams};
use crate::secrets::server_key::Keyring;

/// A connection as hoop's clients send it; fields this gateway does not model (access modes,
/// reviews, …) are ignored, as hoop ignores what it does not know. The upstream's credentials
/// (`secret`) are kept, sealed.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConnectionRequest {
    /// Unique name in the organization: 3 to 254 letters, digits or `_`, with single `-` or
    /// `.` between them. On update, the connection's own name or absent.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = true, min_length = 1, example = "prod-postgres")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = ConnectionType, required = true)]
    pub connection_type: Option<String>,
    /// The protocol: `postgres`, `mysql`, `mssql`, `mongodb`, `ssh`, `rdp`, `tcp`,
    /// `httpproxy`, `kubernetes`, `aws-ssm`, or another, whose credentials are a bare secret.
    #[schema(value_type = String, required = true, min_length = 1, example = "postgres")]
    pub subtype: Option<String>,
    /// The id or name of the agent that serves it.
    #[schema(value_type = String, required = true, min_length = 1, example = "default")]
    pub agent_id: Option<String>,
    /// Machine identities carrying one of these attributes get a credential for it.
    #[schema(example = json!(["env:prod"]))]
    pub attributes: Option<Vec<String>>,
    /// The upstream's database, where it has one.
    #[schema(example = "app")]
    pub database_name: Option<String>,
    /// The upstream's credentials for the gateway's agent, as hoop's clients send them
    /// (`envvar:HOST`, `envvar:PASS`, … to text, which hoop's clients base64-encode): kept
    /// sealed under the server key, shown back only to admins, never logged. Up to 64 entries.
    /// On `PUT`, absent keeps those stored; given, replaces them.
    #[schema(value_type = HashMap<String, String>, required = false, example = json!({"envvar:HOST": "MTAuMC4wLjU=", "envvar:PASS": "czNjcjN0"}))]
    #[serde(default, deserialize_with = "some_free_map")]
    pub secret: Option<BTreeMap<String, String>>,
}

/// What `PUT` takes: the same document, `name` optional.
pub type ConnectionUpdate = super::Update<ConnectionRequest>;

impl ConnectionRequest {
    /// The name given, if any, and what the connection `id` is, its secret sealed for it.
    fn parse(
        self,
        id: Uuid,
        server_key: &Keyring,
    ) -> Result<(Option<String>, ConnectionSpec), Error> {
        // hoop treats an empty name as a missing one (400), not as a rule violation (422).
        let name = self
            .name
            .filter(|name| !name.is_empty())
            .map(|name| parse_name(&name))
            .transpose()?;
        let connection_type = Error::required("type", self.connection_type)?;
        let subtype = Error::required("subtype", self.subtype)?;
        let agent = Error::required("agent_id", self.agent_id.filter(|id| !id.is_empty()))?;
        let spec = ConnectionSpec {
            connection_type: ConnectionType::parse(&connection_type)?,
            subtype: parse_subtype(&subtype)?,
            agent,
            attributes: parse_attributes("attributes", self.attributes.unwrap_or_default())?,
            database_name: self
                .database_name
                .map(|name| parse_label("database_name", name))
                .transpose()?,
            secret: self
                .secret
                .map(UpstreamSecret::parse)
                .transpose()?
                .map(|secret| secret.seal(id, server_key)),
        };
        Ok((name, spec))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub connection_type: ConnectionType,
    pub subtype: String,
    /// `null` once the agent that served it has been deleted.
    pub agent_id: Option<Uuid>,
    pub attributes: Vec<String>,
    pub database_name: Option<String>,
    /// The upstream's credentials as given: only to admins, and only in the answer to a
    /// create, an update or a read of this one connection (never in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub secret: Option<BTreeMap<String, String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Connection> for ConnectionView {
    fn from(connection: Connection) -> ConnectionView {
        ConnectionView {
            id: connection.id,
            name: connection.name,
            connection_type: connection.connection_type,
            subtype: connection.subtype,
            agent_id: connection.agent_id,
            attributes: connection.attributes,
            database_name: connection.database_name,
            secret: None,
            created_at: connection.created_at,
            updated_at: connection.updated_at,
        }
    }
}

impl ConnectionView {
    /// The connection as a caller in `role` may see it: with its upstream secret for an admin.
    fn shown_to(
        connection: Connection,
        role: Role,
        server_key: &Keyring,
    ) -> Result<ConnectionView, Error> {
        let secret = match &connection.secret {
            Some(sealed) if role == Role::Admin => {
                let opened = UpstreamSecret::open(sealed, connection.id, server_key)?;
                Some(opened.expose().clone())
            }
            _ => None,
        };
        Ok(ConnectionView {
            secret,
            ..connection.into()
        })
    }
}

/// Create Connection.
#[utoipa::path(
    post,
    path = "/connections",
    tag = "Connections",
    request_body = ConnectionRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = ConnectionView),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 409, description = "Conflict", body = HoopError),
        (status = 422, description = "Unprocessable Entity; also an unknown agent", body = HoopError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<ConnectionRequest>,
) -> Result<Response, Error> {
    let id = Uuid::now_v7();
    let (name, spec) = body.parse(id, &state.server_key)?;
    let connection = NewConnection {
        id,
        org_id: caller.org_id,
        name: Error::required("name", name)?,
        spec,
        created_at: now(),
    };
    let change = caller.change("connection.created", "connection", connection.id);
    let server_key = state.server_key.clone();
    let answer = Answer::json(&state, StatusCode::CREATED, move |created: &Connection| {
        ConnectionView::shown_to(created.clone(), Role::Admin, &server_key)
    });
    let created = state.store.create_connection(&connection, &change).await?;
    change.log();
    answer.respond(&created)
}

/// List Connections: a bare array by name, a page at a time.
#[utoipa::path(
    get,
    path = "/connections",
    tag = "Connections",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<ConnectionView>, headers(("Link" = String, description = "`<…?limit=n&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, body = HoopError), (status = 422, body = HoopError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> Result<Linked<ConnectionView>, Error> {
    let page = params.request()?;
    let connections = state.store.list_connections(caller.org_id, &page).await?;
    Ok(Linked::from_page(connections, &uri, page.limit))
}

/// Get Connection.
#[utoipa::path(
    get,
    path = "/connections/{name}",
    tag = "Connections",
    params(("name" = String, Path, description = "The connection's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ConnectionView),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name): Path<String>,
) -> Result<axum::Json<ConnectionView>, Error> {
    let connection = find(&state, &caller, &name).await?;
    ConnectionView::shown_to(connection, caller.role, &state.server_key).map(axum::Json)
}

/// Update Connection: replaces its type, subtype, agent, attributes and database. Machine
/// identities that reached it only through an attribute it no longer carries lose their
/// credential for it at once.
#[utoipa::path(
    put,
    path = "/connections/{name}",
    tag = "Connections",
    params(("name" = String, Path, description = "The connection's name")),
    request_body = ConnectionUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
        (status = 422, description = "Unprocessable Entity; also an unknown agent or a new name", body = HoopError),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
    Json(body): Json<ConnectionRequest>,
) -> Result<axum::Json<ConnectionView>, Error> {
    if body.name.as_ref().is_some_and(|given| *given != name) {
        return Err(Error::invalid("name", "a connection cannot be renamed"));
    }
    let existing = find(&state, &caller, &name).await?;
    let (_, spec) = body.parse(existing.id, &state.server_key)?;
    let change = caller.change("connection.updated", "connection", existing.id);
    let updated = state
        .store
        .update_connection(caller.org_id, &name, &spec, now(), &change)
        .await?
        .ok_or(Error::NotFound("connection"))?;
    change.log();
    ConnectionView::shown_to(updated, caller.role, &state.server_key).map(axum::Json)
}

/// Delete Connection: every machine credential issued for it stops working at once. 404 when
/// there is no such connection.
#[utoipa::path(
    delete,
    path = "/connections/{name}",
    tag = "Connections",
    params(("name" = String, Path, description = "The connection's name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    let connection = find(&state, &caller, &name).await?;
    let change = caller.change("connection.deleted", "connection", connection.id);
    if state
        .store
        .delete_connection(caller.org_id, &name, now(), &change)
        .await?
    {
        change.log();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("connection"))
    }
}

/// The listeners credentials are issued for: the configured ones, with those set through the
/// API in their place.
pub async fn gateway_listeners(state: &AppState) -> Result<GatewayListeners, Error> {
    let overrides = state.store.gateway_listener_overrides().await?;
    Ok(state.gateway.overridden(overrides))
}

/// Where clients reach one of the gateway's proxies.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListenerView {
    pub protocol: Protocol,
    #[schema(example = "127.0.0.1")]
    pub host: String,
    #[schema(example = 15432)]
    pub port: u16,
    /// Whether the listener terminates TLS (`sslmode=require`, `https://`, …).
    pub tls: bool,
    /// `configuration` (flags and environment) or `api` (set with `PUT`).
    #[schema(example = "configuration")]
    pub source: &'static str,
}

impl ListenerView {
    fn new(protocol: Protocol, listener: &Listener, from_api: bool) -> ListenerView {
        ListenerView {
            protocol,
            host: listener.host.clone(),
            port: listener.port,
            tls: listener.tls,
            source: if from_api { "api" } else { "configuration" },
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerRequest {
    /// A DNS name or an IP address.
    #[schema(value_type = String, required = true, example = "gw.example.com")]
    pub host: Option<String>,
    #[schema(value_type = u16, required = true, example = 5432)]
    pub port: Option<u16>,
    /// Whether the listener terminates TLS; `false` when absent.
    pub tls: Option<bool>,
}

/// List Gateway Listeners: where clients reach each protocol's proxy, as credentials name it;
/// `api` is the public API URL of aws-ssm credentials.
#[utoipa::path(
    get,
    path = "/gateway/listeners",
    tag = "Connections",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ListenerView>))
)]
pub async fn list_listeners(
    State(state): State<AppState>,
    _caller: Caller<Anyone>,
) -> Result<axum::Json<Vec<ListenerView>>, Error> {
    let overrides = state.store.gateway_listener_overrides().await?;
    let from_api: HashSet<Protocol> = overrides.iter().map(|(protocol, _)| *protocol).collect();
    let listeners = state.gateway.overridden(overrides);
    Ok(axum::Json(
        Protocol::ALL
            .into_iter()
            .map(|protocol| {
                ListenerView::new(
                    protocol,
                    listeners.get(protocol),
                    from_api.contains(&protocol),
                )
            })
            .collect(),
    ))
}

/// Set Gateway Listener (operators): credentials issued from now on name this address;
/// those issued before keep theirs.
#[utoipa::path(
    put,
    path = "/gateway/listeners/{protocol}",
    tag = "Connections",
    params(("protocol" = Protocol, Path, description = "The listener's protocol")),
    request_body = ListenerRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ListenerView),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "No such protocol", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn set_listener(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    Path(protocol): Path<String>,
    Json(body): Json<ListenerRequest>,
) -> Result<axum::Json<ListenerView>, Error> {
    let protocol = listener_protocol(&protocol)?;
    let host = Error::required("host", body.host)?;
    let port = Error::required("port", body.port)?;
    if port == 0 {
        return Err(Error::invalid("port", "it must be between 1 and 65535"));
    }
    let listener = Listener {
        host: parse_host(&host).map_err(|message| Error::invalid("host", message))?,
        port,
        tls: body.tls.unwrap_or(false),
    };
    // A listener is named by its protocol: it has no id.
    let change = caller.change(
        "gateway_listener.set",
        "gateway_listener",
        protocol.as_str(),
    );
    state
        .store
        .set_gateway_listener(protocol, &listener, now(), &change)
        .await?;
    change.log();
    Ok(axum::Json(ListenerView::new(protocol, &listener, true)))
}

/// Reset Gateway Listener (operators): back to the configured address.
#[utoipa::path(
    delete,
    path = "/gateway/listeners/{protocol}",
    tag = "Connections",
    params(("protocol" = Protocol, Path, description = "The listener's protocol")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Reset to the configured listener"),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "No such protocol", body = HoopError),
    )
)]
pub async fn reset_listener(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    Path(protocol): Path<String>,
) -> Result<StatusCode, Error> {
    let protocol = listener_protocol(&protocol)?;
    let change = caller.change(
        "gateway_listener.reset",
        "gateway_listener",
        protocol.as_str(),
    );
    state
        .store
        .reset_gateway_listener(protocol, &change)
        .await?;
    change.log();
    Ok(StatusCode::NO_CONTENT)
}

async fn find<R>(state: &AppState, caller: &Caller<R>, name: &str) -> Result<Connection, Error> {
    state
        .store
        .find_connection(caller.org_id, name)
        .await?
        .ok_or(Error::NotFound("connection"))
}

fn listener_protocol(value: &str) -> Result<Protocol, Error> {
    value
        .parse()
        .map_err(|_| Error::NotFound("gateway listener"))
}
