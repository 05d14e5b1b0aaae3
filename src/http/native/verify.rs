//! `POST /verify`: the data plane asks whether a presented secret is valid, and whose it is.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::agent::AgentMode;
use crate::domain::agentex::{AgentApiKeyType, agent_key_credential};
use crate::domain::connections::ConnectionType;
use crate::domain::ops_manager::ObjectId;
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Caller, User};
use crate::http::dialect::NativeError;
use crate::http::extract::Json;
use crate::verify::{Code, Outcome, Owner};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    /// The presented secret: an agent's whole DSN or its bare key, or a machine credential.
    #[schema(value_type = String, required = true, example = "grpc://default:xagt-…@127.0.0.1:8010?mode=standard")]
    pub key: Option<String>,
    /// For a machine credential, the connection it was presented to, when the proxy knows it:
    /// a credential issued for another connection is refused (`connection_mismatch`).
    #[schema(example = "prod-postgres")]
    pub connection: Option<String>,
    /// Verify `key` as an Agentex agent API key of this type (`internal` or `external`),
    /// whether minted or chosen at its creation; a key of another type is `not_found`. A `key`
    /// given as `AgentKey <key>` (the `Authorization` header's value) is verified as an Agentex
    /// key of either type; a bare `x-agent-api-key` value needs this field unless it was
    /// minted (`agx_key_…`).
    pub agent_api_key_type: Option<AgentApiKeyType>,
    /// The address of the end client that presented `key`, when the data plane knows it: failed
    /// answers are then limited per end client (within the calling key), so one client guessing
    /// never throttles the gateway's answers for the others. Without it they count against the
    /// calling key.
    #[schema(value_type = Option<String>, example = "198.51.100.7")]
    pub client_ip: Option<std::net::IpAddr>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: Code,
    /// The kind of secret, when its prefix names one (`agent_key`, `project_agent_key`,
    /// `machine_credential`, …).
    pub kind: Option<&'static str>,
    /// The stored secret's id, when it was found in the caller's organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whose it is, for a valid agent key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<VerifiedAgent>,
    /// Whose it is, for a valid Ops Manager agent API key: its project and organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_agent_key: Option<VerifiedProjectAgentKey>,
    /// Whose it is, for a valid machine credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_identity: Option<VerifiedIdentity>,
    /// The connection a valid machine credential was issued for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<VerifiedConnection>,
    /// Whose it is, for a valid Agentex agent API key: the key, its type and its agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_api_key: Option<VerifiedAgentApiKey>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedAgent {
    pub id: Uuid,
    pub name: String,
    pub mode: AgentMode,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedProjectAgentKey {
    /// The key's `_id`.
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080adc")]
    pub id: ObjectId,
    /// The project (Ops Manager group) the agent belongs to.
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080ae6")]
    pub project_id: ObjectId,
    /// The organization's id as Ops Manager clients know it.
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080ab1")]
    pub ops_manager_org_id: ObjectId,
    pub desc: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedIdentity {
    pub id: Uuid,
    pub name: String,
    pub attributes: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedConnection {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub connection_type: ConnectionType,
    pub subtype: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedAgentApiKey {
    pub id: Uuid,
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    pub agent_id: Uuid,
    pub agent_name: String,
}

impl From<Outcome> for VerifyResponse {
    /// Whose the secret is is told only when it is valid.
    fn from(outcome: Outcome) -> VerifyResponse {
        let valid = outcome.code == Code::Valid;
        let found = outcome.found.filter(|_| valid);
        let agent = match found.as_ref().map(|(_, owner)| owner) {
            Some(Owner::Agent(agent)) => Some(VerifiedAgent {
                id: agent.id,
                name: agent.name.clone(),
                mode: agent.mode,
            }),
            _ => None,
        };
        let project_agent_key = match found.as_ref().map(|(_, owner)| owner) {
            Some(Owner::ProjectAgentKey(key)) => Some(VerifiedProjectAgentKey {
                id: key.object_id,
                project_id: key.project_id,
                ops_manager_org_id: ObjectId::of_org(key.org_id),
                desc: key.desc.clone(),
            }),
            _ => None,
        };
        let holder = match found.as_ref().map(|(_, owner)| owner) {
            Some(Owner::MachineCredential(holder)) => Some(holder),
            _ => None,
        };
        let agent_api_key = match found.as_ref().map(|(_, owner)| owner) {
            Some(Owner::AgentApiKey(key)) => Some(VerifiedAgentApiKey {
                id: key.id,
                name: key.name.clone(),
                api_key_type: key.api_key_type,
                agent_id: key.agent_id,
                agent_name: key.agent_name.clone(),
            }),
            _ => None,
        };
        VerifyResponse {
            valid,
            code: outcome.code,
            kind: outcome.kind.map(|kind| kind.as_str()),
            secret_id: found.as_ref().map(|(state, _)| state.id),
            org_id: found.as_ref().map(|(_, owner)| owner.org_id()),
            expires_at: found.as_ref().and_then(|(state, _)| state.expires_at),
            agent,
            project_agent_key,
            machine_identity: holder.map(|holder| VerifiedIdentity {
                id: holder.identity_id,
                name: holder.identity_name.clone(),
                attributes: holder.attributes.clone(),
            }),
            connection: holder.map(|holder| VerifiedConnection {
                id: holder.connection.id,
                name: holder.connection.name.clone(),
                connection_type: holder.connection.connection_type,
                subtype: holder.connection.subtype.clone(),
            }),
            agent_api_key,
        }
    }
}

/// Verifies a secret of the caller's organization. Every well-formed request is answered 200 with
/// `valid` and a `code`; failed answers count against the caller, and past the limit 429.
#[utoipa::path(
    post,
    path = "/verify",
    tag = "Verification",
    request_body = VerifyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = VerifyResponse),
        (status = 400, body = NativeError), (status = 401, body = NativeError),
        (status = 403, body = NativeError), (status = 422, body = NativeError),
        (status = 429, body = NativeError),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller<User>,
    Json(body): Json<VerifyRequest>,
) -> Result<axum::Json<VerifyResponse>, Error> {
    let limiter_key = match body.client_ip {
        Some(ip) => format!("{}/{}", caller.api_key_id, ip.to_canonical()),
        None => caller.api_key_id.to_string(),
    };
    state.verify_limiter.check(&limiter_key)?;
    let presented = Error::required("key", body.key)?;
    let expected = body.agent_api_key_type;
    if expected.is_some_and(AgentApiKeyType::is_signing) {
        let message = "github and slack keys sign webhooks: check them with POST /agent_api_keys/verify-signature";
        return Err(Error::invalid("agent_api_key_type", message));
    }
    let agentex_key = agent_key_credential(&presented).or(expected.map(|_| presented.as_str()));
    let started = std::time::Instant::now();
    let outcome = match agentex_key {
        Some(key) => {
            state
                .verifier
                .verify_agent_api_key(key, expected, caller.org_id)
                .await?
        }
        None => {
            state
                .verifier
                .verify_presented(&presented, body.connection.as_deref(), caller.org_id)
                .await?
        }
    };
    state.metrics.verified(
        outcome.kind_label(),
        outcome.code.as_str(),
        started.elapsed(),
    );
    if outcome.code != Code::Valid {
        state.verify_limiter.failed(&limiter_key);
    }
    Ok(axum::Json(outcome.into()))
}
