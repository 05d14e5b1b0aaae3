//! `POST /agent_api_keys` mints (or takes) an agent's API key and shows it once, as keygate's
//! `POST /agent_api_keys/{id}/rotate` does a bearer key's successor; list, get and delete, by
//! id or by (agent, type, name), never show it again; `GET /agent_api_keys/{id}/usage` counts
//! its uses per hour.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::find_agent;
use super::model::Json;
use crate::domain::agentex::{
    AgentApiKey, AgentApiKeyType, AgentRef, KeySpec, NewAgentApiKey, Page, all_of, no_such_item,
    parse_key_name, stored_secret,
};
use crate::domain::policy::takes_expiry;
use crate::domain::secret::{OwnerRef, SecretMeta};
use crate::error::{Error, Location};
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller};
use crate::http::dialect::{FastApiError, FastApiValidationError};
use crate::http::extract::{Path, Query};
use crate::http::idempotency::Answer;
use crate::http::rotation::{RotateRequest, Rotating};
use crate::http::usage::{UsageParams, UsageView};
use crate::secrets::PlainSecret;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateAPIKeyRequest)]
pub struct CreateApiKeyRequest {
    /// The UUID of the agent
    pub agent_id: Option<String>,
    /// The name of the agent - if not provided, the agent_id must be set.
    pub agent_name: Option<String>,
    /// The name of the agent's API key: for a github key the repository's `full_name`, for a
    /// slack key the app's `api_app_id`.
    #[schema(value_type = String, required = true, example = "octo-org/hello-world")]
    pub name: Option<String>,
    /// The type of the agent API key (external by default).
    #[schema(value_type = AgentApiKeyType, required = false, default = "external")]
    pub api_key_type: Option<AgentApiKeyType>,
    /// Optionally provide the API key value - if not set, one will be generated (required for
    /// slack: the Slack app's signing secret). It must be 32 to 512 printable ASCII characters
    /// without spaces, hard to guess (at least 10^19 guesses by the zxcvbn estimate, which
    /// random values reach and repeated words, keyboard walks and dictionary words with digits
    /// do not), not start with a prefix of keygate's own secrets, and not be in use already.
    pub api_key: Option<String>,
    /// keygate extension: when a bearer key stops working (RFC 3339, in the future). Absent:
    /// never. Webhook signing secrets (github, slack) take none.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new agent API key; `api_key` is shown only in this response.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreateAPIKeyResponse)]
pub struct CreatedApiKey {
    /// The unique identifier of the agent API key.
    pub id: Uuid,
    /// The UUID of the agent
    pub agent_id: Uuid,
    /// When the agent API key was created
    pub created_at: DateTime<Utc>,
    /// The name of the agent API key.
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    /// The value of the newly created API key.
    #[schema(example = "agx_key_…")]
    pub api_key: String,
    /// keygate extension: when the key stops working; absent when it never does, so Agentex's
    /// clients see their documented body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An agent API key as read back: never the key itself.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AgentAPIKey)]
pub struct AgentApiKeyView {
    /// The unique identifier of the agent API key.
    pub id: Uuid,
    /// The UUID of the agent
    pub agent_id: Uuid,
    /// When the agent API key was created
    pub created_at: DateTime<Utc>,
    /// The name of the agent API key.
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    /// keygate extension: when the key last verified (written in batches).
    pub last_used_at: Option<DateTime<Utc>>,
    /// keygate extension: when the key stops working; absent when it never does, so Agentex's
    /// clients see their documented body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<(AgentApiKey, SecretMeta)> for AgentApiKeyView {
    fn from((key, secret): (AgentApiKey, SecretMeta)) -> AgentApiKeyView {
        AgentApiKeyView {
            id: key.id,
            agent_id: key.agent_id,
            created_at: key.created_at,
            name: key.name,
            api_key_type: key.api_key_type,
            last_used_at: secret.last_used_at,
            expires_at: secret.expires_at,
        }
    }
}

/// Which agent's keys, and which page of them.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The UUID of the agent (or give `agent_name`).
    pub agent_id: Option<String>,
    /// The name of the agent (or give `agent_id`).
    pub agent_name: Option<String>,
    /// Keys per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<String>,
    /// Which page, from 1.
    #[param(value_type = Option<u64>, minimum = 1, default = 1)]
    pub page_number: Option<String>,
}

/// The agent and type a named key belongs to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamedParams {
    /// The UUID of the agent (or give `agent_name`).
    pub agent_id: Option<String>,
    /// The name of the agent (or give `agent_id`).
    pub agent_name: Option<String>,
    /// The key's type (external by default).
    pub api_key_type: Option<AgentApiKeyType>,
}

/// Create Api Key
///
/// A key for the agent named by `agent_id` or `agent_name`, minted unless `api_key` is given.
/// A github or slack key is a webhook signing secret, stored sealed under the server key; the
/// others are bearer keys, stored as digests.
#[utoipa::path(
    post,
    path = "/agent_api_keys",
    tag = "Agent APIKeys",
    operation_id = "create_api_key_agent_api_keys_post",
    request_body = CreateApiKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = CreatedApiKey),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such agent", body = FastApiError),
        (status = 409, description = "The agent has a key of this type and name", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<Response, Error> {
    let (agent_ref, spec) = all_of(
        AgentRef::parse(body.agent_id, body.agent_name, Location::Body),
        KeySpec::parse(body.name, body.api_key_type, ("api_key", body.api_key)),
    )?;
    if body.expires_at.is_some() && spec.api_key_type.is_signing() {
        // Webhook senders keep signing with the secret they hold; an expiry would only break them.
        return Err(Error::invalid(
            "expires_at",
            "webhook signing secrets do not expire",
        ));
    }
    let kind = spec.api_key_type.secret_kind();
    let expires_at = if takes_expiry(kind) {
        let requested = body.expires_at;
        state
            .new_expiry(caller.org_id, kind, "expires_at", requested)
            .await?
    } else {
        None
    };
    create_key(
        &state,
        &caller,
        &agent_ref,
        spec,
        expires_at,
        |key, plain| CreatedApiKey {
            id: key.id,
            agent_id: key.agent_id,
            created_at: key.secret.created_at,
            name: key.name.clone(),
            api_key_type: key.api_key_type,
            api_key: plain.expose().to_owned(),
            expires_at: key.secret.expires_at,
        },
    )
    .await
}

/// Creates a key of the agent `agent_ref` names, as `spec` says, recording the change; answers
/// 200 with `shown`, made from the new key and its plain value.
pub(super) async fn create_key<R: Serialize>(
    state: &AppState,
    caller: &Caller<Admin>,
    agent_ref: &AgentRef,
    spec: KeySpec,
    expires_at: Option<DateTime<Utc>>,
    shown: impl FnOnce(&NewAgentApiKey, &PlainSecret) -> R,
) -> Result<Response, Error> {
    let agent = find_agent(state, caller.org_id, agent_ref).await?;
    let (key, plain) = NewAgentApiKey::new(&agent, spec, expires_at, &state.server_key);
    let change = caller.change("agent_api_key.created", "agent_api_key", key.id);
    let answer = Answer::ready(state, StatusCode::OK, &shown(&key, &plain))?;
    state
        .store
        .create_agent_api_key(&key, &change)
        .await
        .map_err(|err| match err {
            Error::AlreadyExists => {
                Error::Conflict("the agent already has an API key of this type with this name")
            }
            Error::NotFound(_) => agent_ref.missing(),
            err => err,
        })?;
    change.log();
    answer.respond(&())
}

/// List API keys for an agent ID
///
/// A bare array, oldest first, one page of them.
#[utoipa::path(
    get,
    path = "/agent_api_keys",
    tag = "Agent APIKeys",
    operation_id = "list_agent_api_keys_agent_api_keys_get",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = Vec<AgentApiKeyView>),
        (status = 404, description = "No such agent", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<AgentApiKeyView>>, Error> {
    let (agent_ref, page) = all_of(
        AgentRef::parse(params.agent_id, params.agent_name, Location::Query),
        Page::parse(params.limit, params.page_number),
    )?;
    let agent = find_agent(&state, caller.org_id, &agent_ref).await?;
    let keys = state
        .store
        .list_agent_api_keys(caller.org_id, agent.id, page)
        .await?;
    Ok(axum::Json(keys.into_iter().map(Into::into).collect()))
}

/// Return the API key by ID
#[utoipa::path(
    get,
    path = "/agent_api_keys/{id}",
    tag = "Agent APIKeys",
    operation_id = "get_agent_api_key_agent_api_keys__id__get",
    params(("id" = Uuid, Path, description = "The agent API key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = AgentApiKeyView),
        (status = 404, description = "No such key", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentApiKeyView>, Error> {
    Ok(axum::Json(
        find_key(&state, caller.org_id, &id).await?.into(),
    ))
}

/// Delete API key by ID
///
/// The key stops verifying at once.
#[utoipa::path(
    delete,
    path = "/agent_api_keys/{id}",
    tag = "Agent APIKeys",
    operation_id = "delete_agent_api_key_agent_api_keys__id__delete",
    params(("id" = Uuid, Path, description = "The agent API key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = String,
         example = json!("Agent API key with ID 0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27 deleted")),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such key", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
) -> Result<axum::Json<String>, Error> {
    let (key, _) = find_key(&state, caller.org_id, &id).await?;
    delete_found(&state, &caller, &key, || no_such_item("id", &id)).await?;
    Ok(axum::Json(format!("Agent API key with ID {id} deleted")))
}

/// keygate extension, Return the API key's usage
///
/// How often the key was used, per hour, over the last `hours`: bearer keys by verification,
/// github and slack keys by the webhook signatures checked with them (rotated secrets'
/// uses included).
#[utoipa::path(
    get,
    path = "/agent_api_keys/{id}/usage",
    tag = "Agent APIKeys",
    operation_id = "get_agent_api_key_usage_agent_api_keys__id__usage_get",
    params(("id" = Uuid, Path, description = "The agent API key's id"), UsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UsageView),
        (status = 404, description = "No such key", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(id): Path<String>,
    Query(params): Query<UsageParams>,
) -> Result<axum::Json<UsageView>, Error> {
    let window = params.window()?;
    let (key, _) = find_key(&state, caller.org_id, &id).await?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    Ok(axum::Json(
        state.store.owner_usage(owner, &window).await?.into(),
    ))
}

/// Return named API key for the agent ID
#[utoipa::path(
    get,
    path = "/agent_api_keys/name/{name}",
    tag = "Agent APIKeys",
    operation_id = "get_agent_api_key_by_name_agent_api_keys_name__name__get",
    params(("name" = String, Path, description = "The key's name"), NamedParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = AgentApiKeyView),
        (status = 404, description = "No such agent or key", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn get_by_name(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name): Path<String>,
    Query(params): Query<NamedParams>,
) -> Result<axum::Json<AgentApiKeyView>, Error> {
    let key = find_named(&state, caller.org_id, name, params).await?;
    Ok(axum::Json(key.into()))
}

/// Delete API key by name
///
/// The key stops verifying at once.
#[utoipa::path(
    delete,
    path = "/agent_api_keys/name/{name}",
    tag = "Agent APIKeys",
    operation_id = "delete_agent_api_key_by_name_agent_api_keys_name__name__delete",
    params(("name" = String, Path, description = "The key's name"), NamedParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = String,
         example = json!("Agent api_key 'octo-org/hello-world' deleted")),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such agent or key", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn delete_by_name(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
    Query(params): Query<NamedParams>,
) -> Result<axum::Json<String>, Error> {
    let (key, _) = find_named(&state, caller.org_id, name, params).await?;
    delete_found(&state, &caller, &key, || {
        missing_named(&key.name, key.agent_id)
    })
    .await?;
    Ok(axum::Json(format!("Agent api_key '{}' deleted", key.name)))
}

/// keygate extension, Rotate API key: a new value, shown once. The old one stops now, or after
/// the grace period (never past its own expiry): a webhook signing secret then checks
/// deliveries signed with either while the sender switches. A bearer key's new value keeps the
/// old one's expiry unless `expires_at` is given; signing secrets never expire.
#[utoipa::path(
    post,
    path = "/agent_api_keys/{id}/rotate",
    tag = "Agent APIKeys",
    operation_id = "rotate_agent_api_key_agent_api_keys__id__rotate_post",
    params(("id" = Uuid, Path, description = "The agent API key's id")),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = CreatedApiKey),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such key", body = FastApiError),
        (status = 409, description = "A concurrent rotation won", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let (key, secret) = find_key(&state, caller.org_id, &id).await?;
    let body = body.unwrap_or_default();
    if body.expires_at.is_some() && key.api_key_type.is_signing() {
        return Err(Error::invalid(
            "expires_at",
            "webhook signing secrets do not expire",
        ));
    }
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let stored = |plain: &PlainSecret, expires_at| {
        stored_secret(
            key.id,
            key.agent_id,
            key.api_key_type,
            plain,
            expires_at,
            &state.server_key,
        )
    };
    let change = caller.change("agent_api_key.rotated", "agent_api_key", key.id);
    let rotating = Rotating::only(key.api_key_type.secret_kind(), owner, secret.id);
    let shown = key.clone();
    let answer = body
        .rotate_to(
            &state,
            rotating,
            &change,
            stored,
            StatusCode::OK,
            move |rotated| {
                Ok(CreatedApiKey {
                    id: shown.id,
                    agent_id: shown.agent_id,
                    created_at: rotated.created_at,
                    name: shown.name.clone(),
                    api_key_type: shown.api_key_type,
                    api_key: rotated.plain.expose().to_owned(),
                    expires_at: rotated.expires_at,
                })
            },
        )
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => no_such_item("id", &id),
            err => err,
        })?;
    change.log();
    Ok(answer)
}

/// A key of the caller's organization by id; a non-UUID id is refused without being repeated.
/// Deletes a key found by id or by name, recording the change; `gone` is the answer when a
/// concurrent delete removed it between the lookup and the delete.
async fn delete_found(
    state: &AppState,
    caller: &Caller<Admin>,
    key: &AgentApiKey,
    gone: impl FnOnce() -> Error,
) -> Result<(), Error> {
    let change = caller.change("agent_api_key.deleted", "agent_api_key", key.id);
    if !state
        .store
        .delete_agent_api_key(caller.org_id, key.id, &change)
        .await?
    {
        return Err(gone());
    }
    change.log();
    Ok(())
}

async fn find_key(
    state: &AppState,
    org_id: Uuid,
    id: &str,
) -> Result<(AgentApiKey, SecretMeta), Error> {
    let uuid = Uuid::parse_str(id).map_err(|_| Error::invalid_path("id", "it must be a UUID"))?;
    state
        .store
        .find_agent_api_key(org_id, uuid)
        .await?
        .ok_or_else(|| no_such_item("id", id))
}

/// A key by its name, its agent and its type (external unless given).
async fn find_named(
    state: &AppState,
    org_id: Uuid,
    name: String,
    params: NamedParams,
) -> Result<(AgentApiKey, SecretMeta), Error> {
    let (name, agent_ref) = all_of(
        parse_key_name(name, Location::Path),
        AgentRef::parse(params.agent_id, params.agent_name, Location::Query),
    )?;
    let agent = find_agent(state, org_id, &agent_ref).await?;
    let api_key_type = params.api_key_type.unwrap_or_default();
    state
        .store
        .find_agent_api_key_by_name(org_id, agent.id, api_key_type, &name)
        .await?
        .ok_or_else(|| missing_named(&name, agent.id))
}

/// Agentex's 404 for a key name the agent does not have.
fn missing_named(name: &str, agent_id: Uuid) -> Error {
    Error::NoSuchItem(format!(
        "Agent api_key '{name}' not found for agent ID {agent_id}"
    ))
}
