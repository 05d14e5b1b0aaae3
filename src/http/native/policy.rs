//! `GET` and `PUT /orgs/policy`: the caller's organization's policy, the longest lifetime it
//! allows each kind of secret, and what is done with its secrets reported leaked. Creations then get at most that lifetime (the longest, when they
//! ask for none) and rotations never outlive it; secrets issued before keep their expiry.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
};

use crate::domain::leak::LeakResponse;
use crate::domain::policy::{MAX_LIFETIME_SECONDS, OrgPolicy, expiring_kinds};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller};
use crate::http::dialect::NativeError;
use crate::http::extract::{Json, free_map};

/// The longest lifetime, in seconds, of each kind of secret the organization issues; kinds not
/// named are unbounded.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// By kind, as `POST /verify` names them: `agent_key`, `api_key`, `project_agent_key`,
    /// `programmatic_key`, `machine_credential`, `agentex_key`.
    #[schema(schema_with = lifetimes_schema, example = json!({"agent_key": 7776000, "api_key": 31536000}))]
    #[serde(deserialize_with = "free_map")]
    pub max_lifetime_seconds: BTreeMap<String, u64>,
    /// What is done with the organization's secrets GitHub secret scanning reports leaked:
    /// `revoke` them at once (the default), or `notify` (record them and show them on the
    /// console's overview, for a person to act on). Left out of a `PUT`, it stays as it was:
    /// clients that set only lifetimes (written before it existed) do not reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_response: Option<LeakResponse>,
}

/// One optional lifetime per kind of secret that expires, each 1 s to ten years.
fn lifetimes_schema() -> Object {
    let lifetime = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(MAX_LIFETIME_SECONDS as f64))
        .build();
    expiring_kinds()
        .into_iter()
        .fold(ObjectBuilder::new(), |object, kind| {
            object.property(kind, lifetime.clone())
        })
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
}

impl From<OrgPolicy> for PolicyDocument {
    fn from(policy: OrgPolicy) -> PolicyDocument {
        PolicyDocument {
            max_lifetime_seconds: policy
                .max_lifetime_seconds
                .into_iter()
                .map(|(kind, seconds)| (kind.as_str().to_owned(), seconds))
                .collect(),
            leak_response: Some(policy.leak_response),
        }
    }
}

/// The organization's policy (every role may read it, to know the lifetimes it will get).
#[utoipa::path(
    get,
    path = "/orgs/policy",
    tag = "Organizations",
    security(("bearer" = [])),
    responses((status = 200, body = PolicyDocument), (status = 401, body = NativeError))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
) -> Result<axum::Json<PolicyDocument>, Error> {
    let policy = state.store.org_policy(caller.org_id).await?;
    Ok(axum::Json(policy.into()))
}

/// Replaces the organization's policy (admins).
#[utoipa::path(
    put,
    path = "/orgs/policy",
    tag = "Organizations",
    request_body = PolicyDocument,
    security(("bearer" = [])),
    responses(
        (status = 200, body = PolicyDocument),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<PolicyDocument>,
) -> Result<axum::Json<PolicyDocument>, Error> {
    let leak_response = match body.leak_response {
        Some(chosen) => chosen,
        None => state.store.org_policy(caller.org_id).await?.leak_response,
    };
    let policy = OrgPolicy {
        leak_response,
        ..OrgPolicy::parse(body.max_lifetime_seconds)?
    };
    let change = caller.change("org.policy_updated", "org", caller.org_id);
    if !state
        .store
        .set_org_policy(caller.org_id, &policy, &change)
        .await?
    {
        return Err(Error::internal("the caller's organization is gone"));
    }
    change.log();
    Ok(axum::Json(policy.into()))
}
