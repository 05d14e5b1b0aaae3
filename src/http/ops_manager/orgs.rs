//! `GET /api/public/v1.0/orgs`: the caller's organization, so clients learn their `ORG-ID`.

use axum::extract::State;
use serde::Serialize;

use super::Results;
use super::access::{Anyone, InOrg};
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

/// Get All Organizations: the one the caller belongs to. At the root, `GET /orgs` is keygate's
/// own (operators); Ops Manager's clients use this path.
#[utoipa::path(
    get,
    path = "/api/public/v1.0/orgs",
    tag = "Ops Manager",
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<OpsManagerOrg>),
        (status = 401, body = OpsManagerError), (status = 403, body = OpsManagerError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
) -> Result<axum::Json<Results<OpsManagerOrg>>, Error> {
    let caller = access.caller;
    let org = state
        .store
        .list_orgs()
        .await?
        .into_iter()
        .find(|org| org.id == caller.org_id)
        .ok_or_else(|| Error::internal("the caller's organization is gone"))?;
    let view = OpsManagerOrg {
        id: caller.org_object_id(),
        name: org.name,
        links: [],
    };
    Ok(axum::Json(vec![view].into()))
}
