//! `POST /orgs` and `GET /orgs`: organizations, managed by the operators (admins of `default`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api_keys::CreatedApiKey;
use crate::domain::org::{NewApiKey, Org, Role, parse_label};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Caller, Operator};
use crate::http::dialect::NativeError;
use crate::http::extract::{Json, Query};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Items, PageParams};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Unique name, 1 to 128 characters.
    #[schema(value_type = String, required = true, example = "acme")]
    pub name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Org> for OrgView {
    fn from(org: Org) -> OrgView {
        OrgView {
            id: org.id,
            name: org.name,
            created_at: org.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedOrg {
    pub org: OrgView,
    /// The organization's first admin API key; `key` is shown only here.
    pub api_key: CreatedApiKey,
}

/// Creates an organization and its first admin API key (operators only).
#[utoipa::path(
    post,
    path = "/orgs",
    tag = "Organizations",
    request_body = CreateOrg,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedOrg),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 409, body = NativeError),
        (status = 422, body = NativeError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    Json(body): Json<CreateOrg>,
) -> Result<Response, Error> {
    let name = parse_label("name", Error::required("name", body.name)?)?;
    let org = Org::new(name);
    let (admin, plain) = NewApiKey::mint(org.id, "admin".into(), Role::Admin, None);
    let change = caller.change("org.created", "org", org.id);
    let created = CreatedOrg {
        org: org.clone().into(),
        api_key: CreatedApiKey::new(&admin, &plain),
    };
    let answer = Answer::ready(&state, StatusCode::CREATED, &created)?;
    state.store.create_org(&org, &admin, &change).await?;
    change.log();
    answer.respond(&())
}

/// Lists every organization (operators only).
#[utoipa::path(
    get,
    path = "/orgs",
    tag = "Organizations",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Items<OrgView>),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller<Operator>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Items<OrgView>>, Error> {
    let orgs = state.store.list_orgs(&params.request()?).await?;
    Ok(axum::Json(Items::from_page(orgs)))
}
