//! Scale Agentex's agent API keys (`/agent_api_keys`), with FastAPI's error shapes: keys are
//! created, listed, read and deleted by agent, webhook triggers register a source's signing
//! secret in one call, and the data plane checks webhook signatures made with the github and
//! slack keys. Bearer keys are checked by `POST /verify`.

mod api_keys;
mod model;
mod signatures;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::idempotency::honoured;
use crate::domain::agent::Agent;
use crate::domain::agentex::AgentRef;
use crate::error::Error;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_keys::list))
        .merge(honoured(
            OpenApiRouter::new()
                .routes(routes!(api_keys::create))
                .routes(routes!(api_keys::rotate))
                .routes(routes!(webhooks::create_webhook_trigger)),
        ))
        .routes(routes!(api_keys::get, api_keys::delete))
        .routes(routes!(api_keys::usage))
        .routes(routes!(api_keys::get_by_name, api_keys::delete_by_name))
        .routes(routes!(signatures::verify_signature))
}

/// The agent of the caller's organization a request names; Agentex's 404 when there is none.
async fn find_agent(state: &AppState, org_id: Uuid, agent: &AgentRef) -> Result<Agent, Error> {
    let found = match agent {
        AgentRef::Id(id) => state.store.find_agent_by_id(org_id, *id).await?,
        AgentRef::Name(name) => {
            state
                .store
                .find_agent_by_name(org_id, name.as_str())
                .await?
        }
    };
    found.map(|(agent, _)| agent).ok_or_else(|| agent.missing())
}
