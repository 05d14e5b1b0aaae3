//! `POST /apikeys`, `GET /apikeys`, `DELETE /apikeys/{id}`, `POST /apikeys/{id}/rotate` and
//! `GET /apikeys/{id}/usage`: the bearer credentials of this API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::org::{ApiKey, NewApiKey, Role, parse_label};
use crate::domain::secret::{OwnerRef, SecretMeta, now};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller};
use crate::http::dialect::NativeError;
use crate::http::extract::{Json, Path, Query};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Items, PageParams};
use crate::http::rotation::{RotateRequest, Rotated, Rotating};
use crate::http::usage::{UsageParams, UsageView};
use crate::secrets::{PlainSecret, SecretKind};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1 to 128 characters.
    #[schema(value_type = String, required = true, example = "gateway data plane")]
    pub name: Option<String>,
    #[schema(value_type = Role, required = true)]
    pub role: Option<Role>,
    /// When the key stops working (in the future); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key; `key` is shown only in this response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Send as `Authorization: Bearer <key>`.
    #[schema(example = "kgk_…")]
    pub key: String,
}

impl CreatedApiKey {
    pub fn new(record: &NewApiKey, plain: &PlainSecret) -> CreatedApiKey {
        CreatedApiKey {
            id: record.id,
            name: record.name.clone(),
            role: record.role,
            created_at: record.secret.created_at,
            expires_at: record.secret.expires_at,
            key: plain.expose().to_owned(),
        }
    }

    fn rotated(key: ApiKey, rotated: &Rotated) -> CreatedApiKey {
        CreatedApiKey {
            id: key.id,
            name: key.name,
            role: key.role,
            created_at: rotated.created_at,
            expires_at: rotated.expires_at,
            key: rotated.plain.expose().to_owned(),
        }
    }
}

/// An API key as listed: never the key itself, only its hint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The key's prefix and last four characters.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<(ApiKey, SecretMeta)> for ApiKeyView {
    fn from((key, secret): (ApiKey, SecretMeta)) -> ApiKeyView {
        ApiKeyView {
            id: key.id,
            name: key.name,
            role: key.role,
            hint: secret.hint,
            created_at: secret.created_at,
            expires_at: secret.expires_at,
            revoked_at: secret.revoked_at,
            last_used_at: secret.last_used_at,
        }
    }
}

/// Creates an API key in the caller's organization (admins only).
#[utoipa::path(
    post,
    path = "/apikeys",
    tag = "API keys",
    request_body = CreateApiKey,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<CreateApiKey>,
) -> Result<Response, Error> {
    let name = parse_label("name", Error::required("name", body.name)?)?;
    let role = Error::required("role", body.role)?;
    let expires_at = state
        .new_expiry(
            caller.org_id,
            SecretKind::ApiKey,
            "expires_at",
            body.expires_at,
        )
        .await?;
    let (record, plain) = NewApiKey::mint(caller.org_id, name, role, expires_at);
    let change = caller.change("api_key.created", "api_key", record.id);
    let created = CreatedApiKey::new(&record, &plain);
    let answer = Answer::ready(&state, StatusCode::CREATED, &created)?;
    state.store.create_api_key(&record, &change).await?;
    change.log();
    answer.respond(&())
}

/// Lists the API keys of the caller's organization, revoked ones included.
#[utoipa::path(
    get,
    path = "/apikeys",
    tag = "API keys",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Items<ApiKeyView>),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 422, body = NativeError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Items<ApiKeyView>>, Error> {
    let keys = state
        .store
        .list_api_keys(caller.org_id, &params.request()?)
        .await?;
    Ok(axum::Json(Items::from_page(keys)))
}

/// Revokes an API key and every secret it still has (a rotated-away one in its grace period
/// too); it fails from the next request on (admins only). The organization's last working
/// admin key cannot be revoked: 409.
#[utoipa::path(
    delete,
    path = "/apikeys/{id}",
    tag = "API keys",
    params(("id" = Uuid, Path, description = "API key id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = NativeError), (status = 403, body = NativeError), (status = 404, body = NativeError),
        (status = 409, description = "The organization's last working admin key", body = NativeError),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::NotFound("API key"))?;
    let change = caller.change("api_key.revoked", "api_key", id);
    if state
        .store
        .revoke_api_key(caller.org_id, id, now(), &change)
        .await?
    {
        change.log();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("API key"))
    }
}

/// Replaces an API key's secret with a new one, shown once; the old one stops now or after
/// `grace_period_seconds` (admins only). The new key keeps the old one's expiry unless
/// `expires_at` is given. A revoked key cannot be rotated.
#[utoipa::path(
    post,
    path = "/apikeys/{id}/rotate",
    tag = "API keys",
    params(("id" = Uuid, Path, description = "API key id")),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 404, body = NativeError),
        (status = 409, description = "The key is revoked, or a concurrent rotation won", body = NativeError),
        (status = 422, body = NativeError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::NotFound("API key"))?;
    let (key, secret) = state
        .store
        .find_api_key(caller.org_id, id)
        .await?
        .ok_or(Error::NotFound("API key"))?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let change = caller.change("api_key.rotated", "api_key", key.id);
    let rotating = Rotating::only(SecretKind::ApiKey, owner, secret.id);
    let answer = body
        .unwrap_or_default()
        .rotate(
            &state,
            rotating,
            &change,
            StatusCode::CREATED,
            move |rotated| Ok(CreatedApiKey::rotated(key.clone(), rotated)),
        )
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("API key"),
            err => err,
        })?;
    change.log();
    Ok(answer)
}

/// How often an API key was used to authenticate, per hour, over the last `hours` (its rotated
/// secrets' uses included).
#[utoipa::path(
    get,
    path = "/apikeys/{id}/usage",
    tag = "API keys",
    params(("id" = Uuid, Path, description = "API key id"), UsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UsageView),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 404, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(id): Path<String>,
    Query(params): Query<UsageParams>,
) -> Result<axum::Json<UsageView>, Error> {
    let window = params.window()?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::NotFound("API key"))?;
    let (key, _) = state
        .store
        .find_api_key(caller.org_id, id)
        .await?
        .ok_or(Error::NotFound("API key"))?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    Ok(axum::Json(
        state.store.owner_usage(owner, &window).await?.into(),
    ))
}
