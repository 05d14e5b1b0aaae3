//! `GET /api/public/v1.0/orgs` and `GET /api/public/v1.0/orgs/{ORG-ID}`: the caller's
//! organization, so clients learn their `ORG-ID`.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::access::{Anyone, InOrg, OpsCaller};
use super::{PageNum, Paging, Results};
use crate::domain::ops_manager::ObjectId;
use crate::error::Error;
use crate::http::AppState;
use crate::http::dialect::OpsManagerError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpsManagerOrg {
    /// The organization's id in Ops Manager's form (24 hex characters).
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080ab1")]
    pub id: ObjectId,
    pub name: String,
    #[schema(value_type = Vec<Object>)]
    pub links: [(); 0],
}

/// `?name=`: only the organization of that name.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ByName {
    pub name: Option<String>,
}

/// The caller's organization in Ops Manager's shape.
async fn own_org(state: &AppState, caller: &OpsCaller) -> Result<OpsManagerOrg, Error> {
    let org = state
        .store
        .find_org(caller.org_id)
        .await?
        .ok_or_else(|| Error::internal("the caller's organization is gone"))?;
    Ok(OpsManagerOrg {
        id: caller.org_object_id(),
        name: org.name,
        links: [],
    })
}

/// Get All Organizations: the one the caller belongs to (with `?name=`, if it has that name).
/// At the root, `GET /orgs` is keygate's own (operators); Ops Manager's clients use this path.
#[utoipa::path(
    get,
    path = "/api/public/v1.0/orgs",
    tag = "Ops Manager",
    params(ByName, PageNum),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<OpsManagerOrg>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Query(filter): Query<ByName>,
    paging: Paging,
) -> Result<axum::Json<Results<OpsManagerOrg>>, Error> {
    let org = own_org(&state, &access.caller).await?;
    let found = filter.name.is_none_or(|name| name == org.name);
    Ok(axum::Json(paging.of(Vec::from_iter(found.then_some(org)))))
}

/// Get One Organization: the caller's own.
#[utoipa::path(
    get,
    path = "/api/public/v1.0/orgs/{ORG-ID}",
    tag = "Ops Manager",
    params(("ORG-ID" = String, Path, description = "The caller's organization")),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = OpsManagerOrg),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
) -> Result<axum::Json<OpsManagerOrg>, Error> {
    Ok(axum::Json(own_org(&state, &access.caller).await?))
}
