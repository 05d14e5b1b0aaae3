//! `GET /audit`: the organization's audit trail, filtered and paged by an opaque cursor over
//! (time, id), so pages neither repeat nor skip events while new ones are recorded.

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::audit::{AuditEvent, AuditQuery};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Caller, Overseer};
use crate::http::dialect::NativeError;
use crate::http::extract::Query;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

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

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
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
        (status = 200, body = AuditPage),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Overseer>,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>, Error> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid_query(
            "limit",
            format!("it must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
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
        after,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut items = state.store.list_audit_events(&query).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

fn encode_cursor(event: &AuditEvent) -> String {
    let position = format!("{}|{}", event.at.to_rfc3339(), event.id);
    URL_SAFE_NO_PAD.encode(position)
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Error> {
    let refused = || Error::invalid_query("cursor", "it is not a cursor this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let (at, id) = text.split_once('|').ok_or_else(refused)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| refused())?;
    let id = Uuid::parse_str(id).map_err(|_| refused())?;
    Ok((at.with_timezone(&Utc), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_position_it_was_made_from() {
        let event = AuditEvent {
            id: Uuid::now_v7(),
            at: Utc::now(),
            org_id: None,
            actor_kind: None,
            actor: None,
            action: "agent.created".into(),
            resource_kind: None,
            resource_id: None,
            client: None,
            request_id: None,
            outcome: "success".into(),
        };
        assert_eq!(
            decode_cursor(&encode_cursor(&event)).unwrap(),
            (event.at, event.id)
        );
        assert!(decode_cursor("not-a-cursor").is_err());
    }
}
