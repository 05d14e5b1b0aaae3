//! `GET /overview`: the organization at a glance, as the console's first page draws it — how
//! `POST /verify` answered per minute over the last hour and per hour over the last week, its
//! secrets by kind and state, the keys expiring soon, the busiest keys, the secrets reported
//! leaked and, for the operators,
//! the latest refused credentials.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::audit::AuditEvent;
use crate::domain::leak::LeakedSecret;
use crate::domain::secret::now;
use crate::domain::usage::{
    EXPIRING_SOON_DAYS, ExpiringSecret, Granularity, OutcomeBucket, OwnerUses, SecretCount, Window,
};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::dialect::NativeError;

/// Rows of each list of the overview: the soonest expiries, the busiest keys, the latest
/// refusals.
const LISTED: u32 = 10;

/// The organization at a glance. Counts are written every few seconds
/// (`KEYGATE_USAGE_FLUSH_MS`), so the last seconds may not show yet.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub generated_at: DateTime<Utc>,
    /// `POST /verify` answers to this organization's callers, per minute over the last hour.
    pub last_hour: Vec<OutcomeCounts>,
    /// The same per hour over the last 7 days.
    pub last_week: Vec<OutcomeCounts>,
    /// Working secrets by kind: active, in their grace period after a rotation, and active
    /// ones expiring within 7 days.
    pub secrets: Vec<KindCounts>,
    /// The keys whose current secret expires soonest (within 7 days), the soonest first.
    pub expiring: Vec<ExpiringKey>,
    /// The keys used most over the last 7 days, the most used first.
    pub top_keys: Vec<KeyUses>,
    /// The organization's secrets GitHub secret scanning reported leaked, the latest first:
    /// where each was found and what was done.
    pub leaked: Vec<LeakedSecret>,
    /// The latest refused credentials, the newest first: only for the operators (an admin of
    /// `default`), since a refused credential belongs to no organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Vec<AuditEvent>>,
}

/// Answers in one bucket (a minute or an hour), by outcome; outcomes with none are left out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutcomeCounts {
    pub start: DateTime<Utc>,
    #[schema(example = json!({"valid": 40, "not_found": 2}))]
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KindCounts {
    #[schema(example = "agent_key")]
    pub kind: &'static str,
    pub active: u64,
    pub in_grace: u64,
    pub expiring_soon: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExpiringKey {
    /// The agent, API key, machine identity or Agentex key (its id), or Ops Manager key.
    pub owner_id: uuid::Uuid,
    #[schema(example = "agent_key")]
    pub kind: &'static str,
    /// Its name (an Ops Manager key's description).
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyUses {
    pub owner_id: uuid::Uuid,
    #[schema(example = "agent_key")]
    pub kind: &'static str,
    pub name: String,
    /// Uses over the last 7 days.
    pub uses: u64,
}

/// The caller's organization at a glance (any role).
#[utoipa::path(
    get,
    path = "/overview",
    tag = "Usage",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Overview),
        (status = 401, body = NativeError),
    )
)]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Overview>, Error> {
    let now = now();
    let org = Some(caller.org_id);
    let store = state.store.as_ref();
    let minutes = Window::last(Granularity::Minute, 60, now);
    let week = Window::last(Granularity::Hour, 24 * EXPIRING_SOON_DAYS as u32, now);
    let refusals = async {
        match caller.operator {
            true => store.latest_refusals(LISTED).await.map(Some),
            false => Ok(None),
        }
    };
    let (last_hour, last_week, secrets, expiring, top_keys, leaked, refused) = tokio::try_join!(
        store.verification_outcomes(org, &minutes),
        store.verification_outcomes(org, &week),
        store.secret_counts(org, now),
        store.expiring_secrets(org, now, LISTED),
        store.top_owners(org, &week, LISTED),
        store.latest_leaks(caller.org_id, LISTED),
        refusals,
    )?;
    Ok(axum::Json(Overview {
        generated_at: now,
        last_hour: buckets(&minutes, last_hour),
        last_week: buckets(&week, last_week),
        secrets: secrets.into_iter().map(KindCounts::from).collect(),
        expiring: expiring.into_iter().map(ExpiringKey::from).collect(),
        top_keys: top_keys.into_iter().map(KeyUses::from).collect(),
        leaked,
        refused,
    }))
}

/// Every bucket of `window`, with the outcomes counted in it: a chart has a bar for each.
fn buckets(window: &Window, counted: Vec<OutcomeBucket>) -> Vec<OutcomeCounts> {
    let mut buckets: Vec<OutcomeCounts> = window
        .starts()
        .map(|start| OutcomeCounts {
            start,
            outcomes: BTreeMap::new(),
        })
        .collect();
    for count in counted {
        if let Some(i) = window.index_of(count.start) {
            *buckets[i].outcomes.entry(count.outcome).or_default() += count.count;
        }
    }
    buckets
}

impl From<SecretCount> for KindCounts {
    fn from(count: SecretCount) -> KindCounts {
        KindCounts {
            kind: count.kind.as_str(),
            active: count.active,
            in_grace: count.in_grace,
            expiring_soon: count.expiring_soon,
        }
    }
}

impl From<ExpiringSecret> for ExpiringKey {
    fn from(secret: ExpiringSecret) -> ExpiringKey {
        ExpiringKey {
            owner_id: secret.owner_id,
            kind: secret.kind.as_str(),
            name: secret.name,
            expires_at: secret.expires_at,
        }
    }
}

impl From<OwnerUses> for KeyUses {
    fn from(owner: OwnerUses) -> KeyUses {
        KeyUses {
            owner_id: owner.owner_id,
            kind: owner.kind.as_str(),
            name: owner.name,
            uses: owner.uses,
        }
    }
}
