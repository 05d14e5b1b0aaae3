//! hoop agents: `POST /agents` mints an agent key in DSN form; list, get, delete and rotate
//! complete the family. Errors are hoop's `{"message": ...}`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::agent::{Agent, AgentMode, AgentName, NewAgent};
use crate::domain::secret::{NewSecret, OwnerRef, SecretMeta};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller};
use crate::http::dialect::HoopError;
use crate::http::extract::{Json, Path, Query};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Linked, PageParams};
use crate::http::rotation::{RotateRequest, Rotating};
use crate::http::usage::{UsageParams, UsageView};
use crate::secrets::agent_key::build_dsn;
use crate::secrets::{PlainSecret, SecretKind};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AgentRequest {
    /// Unique name of the resource
    #[schema(value_type = String, required = true, min_length = 1, example = "default")]
    pub name: Option<String>,
    /// Mode of execution of the agent: `standard` (default, a standalone process) or `embedded`
    /// (run close to another process or application).
    #[schema(value_type = Option<AgentMode>, default = "standard", example = "standard")]
    pub mode: Option<String>,
    /// keygate extension: when the key stops working (in the future); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentCreateResponse {
    /// The key in DSN form: `grpc|grpcs://<name>:<key>@<hostname>:<port>?mode=standard|embedded`.
    /// Shown only here.
    #[schema(
        example = "grpc://default:xagt-zKQQA9PAjCVJ4O8VlE2QZScNEbfmFisg_OerkI21NEg…@127.0.0.1:8010?mode=standard"
    )]
    pub token: String,
}

/// An agent as listed: its current key's metadata, never the key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub mode: AgentMode,
    pub created_at: DateTime<Utc>,
    pub key: AgentKeyView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentKeyView {
    /// The key's prefix and last four characters.
    #[schema(example = "xagt-…3fQk")]
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<(Agent, SecretMeta)> for AgentView {
    fn from((agent, key): (Agent, SecretMeta)) -> AgentView {
        AgentView {
            id: agent.id,
            name: agent.name,
            mode: agent.mode,
            created_at: agent.created_at,
            key: AgentKeyView {
                hint: key.hint,
                created_at: key.created_at,
                expires_at: key.expires_at,
                last_used_at: key.last_used_at,
            },
        }
    }
}

/// Create Agent Key: an agent key in DSN form,
/// `grpc(s)://<name>:<key>@<grpc-host>:<grpc-port>?mode=standard|embedded`.
#[utoipa::path(
    post,
    path = "/agents",
    tag = "Agents",
    request_body = AgentRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = AgentCreateResponse),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 409, description = "Conflict", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<AgentRequest>,
) -> Result<Response, Error> {
    // hoop treats an empty name as a missing one (400), not as a rule violation (422).
    let name = Error::required("name", body.name.filter(|name| !name.is_empty()))?;
    let name = AgentName::parse(&name)?;
    let mode = AgentMode::parse(body.mode.as_deref())?;
    let expires_at = state
        .new_expiry(
            caller.org_id,
            SecretKind::AgentKey,
            "expires_at",
            body.expires_at,
        )
        .await?;
    let plain = PlainSecret::mint(SecretKind::AgentKey);
    let agent = NewAgent {
        id: Uuid::now_v7(),
        org_id: caller.org_id,
        name,
        mode,
        secret: NewSecret::from_plain(SecretKind::AgentKey, &plain, expires_at),
    };
    let change = caller.change("agent.created", "agent", agent.id);
    let token = build_dsn(
        &state.grpc_url,
        agent.name.as_str(),
        plain.expose(),
        mode.as_str(),
    );
    let answer = Answer::json(&state, StatusCode::CREATED, move |_: &()| {
        Ok(AgentCreateResponse {
            token: token.clone(),
        })
    });
    state.store.create_agent(&agent, &change).await?;
    change.log();
    answer.respond(&())
}

/// List Agents: a bare array by name, as hoop returns it, a page at a time; keys are never
/// included.
#[utoipa::path(
    get,
    path = "/agents",
    tag = "Agents",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<AgentView>, headers(("Link" = String, description = "`<…?limit=n&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> Result<Linked<AgentView>, Error> {
    let page = params.request()?;
    let agents = state.store.list_agents(caller.org_id, &page).await?;
    Ok(Linked::from_page(agents, &uri, page.limit))
}

/// Get Agent by name or id.
#[utoipa::path(
    get,
    path = "/agents/{nameOrId}",
    tag = "Agents",
    params(("nameOrId" = String, Path, description = "The agent's name or id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AgentView),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name_or_id): Path<String>,
) -> Result<axum::Json<AgentView>, Error> {
    Ok(axum::Json(find(&state, &caller, &name_or_id).await?.into()))
}

/// Delete Agent: its keys stop working at once. 404 when there is no such agent.
#[utoipa::path(
    delete,
    path = "/agents/{nameOrId}",
    tag = "Agents",
    params(("nameOrId" = String, Path, description = "The agent's name or id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name_or_id): Path<String>,
) -> Result<StatusCode, Error> {
    let (agent, _) = find(&state, &caller, &name_or_id).await?;
    let change = caller.change("agent.deleted", "agent", agent.id);
    if state
        .store
        .delete_agent(caller.org_id, agent.id, &change)
        .await?
    {
        change.log();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("agent"))
    }
}

/// Rotate Agent Key: a new DSN, shown once. The old key stops now, or after the grace period;
/// the new one keeps the old one's expiry unless `expires_at` is given.
#[utoipa::path(
    post,
    path = "/agents/{nameOrId}/rotate",
    tag = "Agents",
    params(("nameOrId" = String, Path, description = "The agent's name or id")),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Rotated", body = AgentCreateResponse),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
        (status = 409, description = "A concurrent rotation won", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name_or_id): Path<String>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let (agent, key) = find(&state, &caller, &name_or_id).await?;
    let owner = OwnerRef {
        org_id: agent.org_id,
        id: agent.id,
    };
    let change = caller.change("agent.rotated", "agent", agent.id);
    let rotating = Rotating::only(SecretKind::AgentKey, owner, key.id);
    let grpc_url = state.grpc_url.clone();
    let answer = body
        .unwrap_or_default()
        .rotate(
            &state,
            rotating,
            &change,
            StatusCode::CREATED,
            move |rotated| {
                let token = build_dsn(
                    &grpc_url,
                    &agent.name,
                    rotated.plain.expose(),
                    agent.mode.as_str(),
                );
                Ok(AgentCreateResponse { token })
            },
        )
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("agent"),
            err => err,
        })?;
    change.log();
    Ok(answer)
}

/// keygate extension, Get Agent Usage: how often the agent's keys were used, per hour, over
/// the last `hours` (its rotated keys' uses included).
#[utoipa::path(
    get,
    path = "/agents/{nameOrId}/usage",
    tag = "Agents",
    params(("nameOrId" = String, Path, description = "The agent's name or id"), UsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UsageView),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name_or_id): Path<String>,
    Query(params): Query<UsageParams>,
) -> Result<axum::Json<UsageView>, Error> {
    let window = params.window()?;
    let (agent, _) = find(&state, &caller, &name_or_id).await?;
    let owner = OwnerRef {
        org_id: agent.org_id,
        id: agent.id,
    };
    Ok(axum::Json(
        state.store.owner_usage(owner, &window).await?.into(),
    ))
}

/// An agent of the caller's organization by id, else by name (a name may look like a UUID).
async fn find<R>(
    state: &AppState,
    caller: &Caller<R>,
    name_or_id: &str,
) -> Result<(Agent, SecretMeta), Error> {
    if let Ok(id) = Uuid::parse_str(name_or_id)
        && let Some(agent) = state.store.find_agent_by_id(caller.org_id, id).await?
    {
        return Ok(agent);
    }
    state
        .store
        .find_agent_by_name(caller.org_id, name_or_id)
        .await?
        .ok_or(Error::NotFound("agent"))
}
