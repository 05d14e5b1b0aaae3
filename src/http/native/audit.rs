//! `GET /audit`: the organization's audit trail, filtered and paged by an opaque cursor over
//! (time, id), so pages neither repeat nor skip events while new ones are recorded.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::audit::{AuditEvent, AuditQuery};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Caller, Overseer};
use crate::http::dialect::NativeError;
use crate::http::extract::Query;
use crate::http::pagination::{Items, page_request};

/// Which events, and from where in the trail.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// The kind of resource changed, e.g. `agent`, `api_key`, `connection`, `project`.
    pub resource_kind: Option<String>,
    /// The resource's id (a UUID, an Ops Manager id, or a listener's protocol).
    pub resource_id: Option<String>,
    /// Who acted: an API key's id or a key pair's public key.
    pub actor: Option<String>,
    /// What happened, e.g. `agent.created`, `api_key.revoked`, `authentication.refused`.
    pub action: Option<String>,
    /// Events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Events per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The audit trail of the caller's organization (admins and auditors): every change with who
/// made it, from where and in which request, and, for operators, every refused credential.
/// Never a secret.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "Audit",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Items<AuditEvent>),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Overseer>,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<Items<AuditEvent>>, Error> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let query = AuditQuery {
        org_id: caller.org_id,
        // Refused credentials name no organization: only the operators see them.
        include_unscoped: caller.operator,
        resource_kind: params.resource_kind,
        resource_id: params.resource_id,
        actor: params.actor,
        action: params.action,
        since: params.since,
        until: params.until,
        page,
    };
    let events = state.store.list_audit_events(&query).await?;
    Ok(axum::Json(Items::from_page(events)))
}
