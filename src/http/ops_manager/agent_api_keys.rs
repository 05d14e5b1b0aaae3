//! `POST`, `GET /groups/{PROJECT-ID}/agentapikeys`,
//! `DELETE /groups/{PROJECT-ID}/agentapikeys/{AGENT-API-KEY-ID}` and keygate's
//! `POST …/{AGENT-API-KEY-ID}/rotate` and `GET …/{AGENT-API-KEY-ID}/usage`: the keys a
//! project's MongoDB agents authenticate with.
//! The key is shown once, in the create or rotate response; lists mask it.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::access::{InProject, ProjectOwner, ProjectReader};
use super::{Deleted, PageNum, Paging, UsageResults};
use crate::domain::ops_manager::{NewProjectAgentKey, ObjectId, ProjectAgentKey, masked};
use crate::domain::secret::{OwnerRef, SecretMeta};
use crate::error::Error;
use crate::http::AppState;
use crate::http::client::client_address;
use crate::http::dialect::OpsManagerError;
use crate::http::extract::{Json, Path, Query};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Linked, PageParams};
use crate::http::rotation::{RotateRequest, Rotating};
use crate::http::usage::UsageParams;
use crate::secrets::SecretKind;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentApiKey {
    /// Label for this agent API key, up to 1,000 characters.
    #[schema(value_type = String, required = true, example = "Agent API Key for this project")]
    pub desc: Option<String>,
    /// keygate extension: when the key stops working (RFC 3339, in the future). Absent: never.
    #[serde(rename = "expiresAt")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Ops Manager's agent API key document.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct AgentApiKeyView {
    #[serde(rename = "_id")]
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080adc")]
    pub id: ObjectId,
    /// `PUBLIC_API` for keys made through this API.
    #[serde(rename = "createdBy")]
    #[schema(example = "PUBLIC_API")]
    pub created_by: String,
    /// The address of the client that made the key.
    #[serde(rename = "createdIpAddr")]
    pub created_ip_addr: String,
    /// Epoch milliseconds.
    #[serde(rename = "createdTime")]
    #[schema(example = 1520458807291i64)]
    pub created_time: i64,
    /// The id of the API key that made it.
    #[serde(rename = "createdUserId")]
    pub created_user_id: String,
    pub desc: String,
    /// The key itself in the create response only; elsewhere asterisks and its last four
    /// characters.
    #[schema(example = "****************************************************8b87")]
    pub key: String,
    /// keygate extension: when the key stops working; absent when it never does.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl AgentApiKeyView {
    fn new(
        key: ProjectAgentKey,
        shown: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> AgentApiKeyView {
        AgentApiKeyView {
            id: key.object_id,
            created_by: key.created_by,
            created_ip_addr: key.created_ip,
            created_time: key.created_at.timestamp_millis(),
            created_user_id: key.created_user_id,
            desc: key.desc,
            key: shown,
            expires_at,
        }
    }
}

impl From<(ProjectAgentKey, SecretMeta)> for AgentApiKeyView {
    fn from((key, secret): (ProjectAgentKey, SecretMeta)) -> AgentApiKeyView {
        let shown = masked(SecretKind::ProjectAgentKey, &secret.hint);
        AgentApiKeyView::new(key, shown, secret.expires_at)
    }
}

/// The client's address as failed attempts count it: behind trusted proxies, the forwarded one.
pub struct ClientAddress(String);

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let address = client_address(parts, &state.trusted_proxies)
            .map_or_else(String::new, |ip| ip.to_canonical().to_string());
        Ok(ClientAddress(address))
    }
}

/// Create One Agent API Key (project owners). Answered 200, as Ops Manager documents it.
#[utoipa::path(
    post,
    path = "/groups/{PROJECT-ID}/agentapikeys",
    tag = "Ops Manager",
    params(("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters")),
    request_body = CreateAgentApiKey,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AgentApiKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<CreateAgentApiKey>,
) -> Result<Response, Error> {
    let InProject {
        caller, project, ..
    } = access;
    let desc = Error::required("desc", body.desc)?;
    let actor = caller.actor.clone();
    let expires_at = state
        .new_expiry(
            caller.org_id,
            SecretKind::ProjectAgentKey,
            "expiresAt",
            body.expires_at,
        )
        .await?;
    let (new, plain) = NewProjectAgentKey::mint(&project, desc, expires_at, address, actor)?;
    let change = caller.change(
        "project_agent_key.created",
        "project_agent_key",
        new.key.object_id,
    );
    let view = AgentApiKeyView::new(
        new.key.clone(),
        plain.expose().to_owned(),
        new.secret.expires_at,
    );
    // `false`: the project went away meanwhile, and nothing was created.
    let answer = Answer::json(&state, StatusCode::OK, move |created: &bool| {
        created
            .then(|| view.clone())
            .ok_or_else(super::errors::group_not_found)
    });
    let created = state.store.create_project_agent_key(&new, &change).await?;
    let answer = answer.respond(&created)?;
    change.log();
    Ok(answer)
}

/// Get All Agent API Keys for One Project: a bare array, oldest first, each key masked, a page
/// at a time.
#[utoipa::path(
    get,
    path = "/groups/{PROJECT-ID}/agentapikeys",
    tag = "Ops Manager",
    params(("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"), PageParams),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Vec<AgentApiKeyView>, headers(("Link" = String, description = "`<…?limit=n&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: InProject<ProjectReader>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> Result<Linked<AgentApiKeyView>, Error> {
    let page = params.request()?;
    let keys = state
        .store
        .list_project_agent_keys(access.project.id, &page)
        .await?;
    Ok(Linked::from_page(keys, &uri, page.limit))
}

/// keygate extension, Get One Agent API Key's Usage: how often the key was verified valid, per
/// hour, over the last `hours` (its rotated keys' uses included).
#[utoipa::path(
    get,
    path = "/groups/{PROJECT-ID}/agentapikeys/{AGENT-API-KEY-ID}/usage",
    tag = "Ops Manager",
    params(
        ("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"),
        ("AGENT-API-KEY-ID" = String, Path, description = "The agent API key's `_id`"),
        UsageParams,
        PageNum,
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UsageResults),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    access: InProject<ProjectReader>,
    Path(path): Path<AgentApiKeyPath>,
    Query(params): Query<UsageParams>,
    paging: Paging,
) -> Result<axum::Json<UsageResults>, Error> {
    let window = params.window()?;
    let InProject {
        caller, project, ..
    } = access;
    let (key, _) = find(&state, caller.org_id, project.id, path.id()?).await?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let usage = state.store.owner_usage(owner, &window).await?;
    Ok(axum::Json(UsageResults::new(usage, &paging)))
}

#[derive(Deserialize)]
pub struct AgentApiKeyPath {
    #[serde(rename = "AGENT-API-KEY-ID")]
    pub key: String,
}

impl AgentApiKeyPath {
    /// The key's id: text that cannot be one names no key.
    fn id(&self) -> Result<ObjectId, Error> {
        ObjectId::parse(&self.key).ok_or(Error::NotFound("agent API key"))
    }
}

/// The project's agent API key `id`, with its current secret.
async fn find(
    state: &AppState,
    org_id: uuid::Uuid,
    project_id: ObjectId,
    id: ObjectId,
) -> Result<(ProjectAgentKey, SecretMeta), Error> {
    state
        .store
        .find_project_agent_key(org_id, project_id, id)
        .await?
        .ok_or(Error::NotFound("agent API key"))
}

/// Delete One Agent API Key (project owners): it stops working at once. 200 with `{}`, as Ops
/// Manager answers; 404 when the project has no such key.
#[utoipa::path(
    delete,
    path = "/groups/{PROJECT-ID}/agentapikeys/{AGENT-API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"),
        ("AGENT-API-KEY-ID" = String, Path, description = "The agent API key's `_id`"),
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
    Path(path): Path<AgentApiKeyPath>,
) -> Result<Deleted, Error> {
    let InProject {
        caller, project, ..
    } = access;
    let id = path.id()?;
    let change = caller.change("project_agent_key.deleted", "project_agent_key", id);
    if !state
        .store
        .delete_project_agent_key(caller.org_id, project.id, id, &change)
        .await?
    {
        return Err(Error::NotFound("agent API key"));
    }
    change.log();
    Ok(Deleted {})
}

/// keygate extension, Rotate One Agent API Key (project owners): a new key, shown once, in the
/// body every rotation takes. The old key stops now, or after the grace period (never past its
/// own expiry); the new one keeps the old one's expiry unless `expires_at` is given.
#[utoipa::path(
    post,
    path = "/groups/{PROJECT-ID}/agentapikeys/{AGENT-API-KEY-ID}/rotate",
    tag = "Ops Manager",
    params(
        ("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"),
        ("AGENT-API-KEY-ID" = String, Path, description = "The agent API key's `_id`"),
    ),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AgentApiKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
        (status = 409, description = "A concurrent rotation won", body = OpsManagerError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
    Path(path): Path<AgentApiKeyPath>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let InProject {
        caller, project, ..
    } = access;
    let id = path.id()?;
    let (key, secret) = find(&state, caller.org_id, project.id, id).await?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let change = caller.change("project_agent_key.rotated", "project_agent_key", id);
    let rotating = Rotating::only(SecretKind::ProjectAgentKey, owner, secret.id);
    let answer = body
        .unwrap_or_default()
        .rotate(&state, rotating, &change, StatusCode::OK, move |rotated| {
            let shown = rotated.plain.expose().to_owned();
            Ok(AgentApiKeyView::new(key.clone(), shown, rotated.expires_at))
        })
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("agent API key"),
            err => err,
        })?;
    change.log();
    Ok(answer)
}
