//! `POST /agent_api_keys/webhook-trigger`, the official SDK's `webhooks.create_webhook_trigger`:
//! registers a webhook source's signing secret as an agent API key of that type and answers the
//! ready-to-paste forward URL with the secret, shown once.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api_keys::create_key;
use super::model::Json;
use crate::domain::agentex::{
    AgentApiKeyType, AgentRef, KeySpec, all_of, forward_route, parse_agent_name, parse_public_url,
};
use crate::error::{Error, Location};
use crate::http::AppState;
use crate::http::auth::{Admin, Caller};
use crate::http::dialect::{FastApiError, FastApiValidationError};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTriggerRequest {
    /// The agent the webhook drives.
    #[schema(value_type = String, required = true, example = "support-bot")]
    pub agent_name: Option<String>,
    /// Subpath the agent's own route handles, e.g. `github-pr/<config-id>`. Appended to
    /// `/agents/forward/name/{agent_name}/` to form the webhook URL.
    #[schema(value_type = String, required = true, example = "github-pr/cfg-1")]
    pub forward_path: Option<String>,
    /// Signature-lookup key: the repository's `full_name` (github) or the app's `api_app_id`
    /// (slack) that the forward ingress matches the incoming webhook against.
    #[schema(value_type = String, required = true, example = "octo-org/hello-world")]
    pub name: Option<String>,
    /// Public base URL for the returned `webhook_url`; keygate's `KEYGATE_PUBLIC_URL` when
    /// absent.
    pub base_url: Option<String>,
    /// Signing secret. For GitHub, omit to generate one, or give an existing webhook secret;
    /// for Slack it is required: the Slack app's signing secret. A chosen secret follows the
    /// rules of a chosen `api_key`.
    pub secret: Option<String>,
    /// Webhook source whose signature is verified (github by default).
    #[schema(value_type = Option<AgentApiKeyType>, default = "github")]
    pub source: Option<AgentApiKeyType>,
}

/// The trigger: where to send deliveries, and the secret to sign them with, shown only here.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreateWebhookTriggerResponse)]
pub struct WebhookTrigger {
    /// The agent the webhook drives.
    pub agent_name: String,
    /// The created agent API key's id.
    pub key_id: Uuid,
    /// Signature-lookup key (repository `full_name` / `api_app_id`).
    pub name: String,
    /// The signing secret: paste it into the source's webhook configuration.
    pub secret: String,
    pub source: AgentApiKeyType,
    /// The forward path to POST webhooks to.
    #[schema(example = "/agents/forward/name/support-bot/github-pr/cfg-1")]
    pub webhook_path: String,
    /// The full webhook URL to paste into the source; null when no base URL is known.
    pub webhook_url: Option<String>,
}

/// Create Webhook Trigger
///
/// Wires a webhook trigger in one call: registers the source's signature-verification key
/// (github or slack) for the agent and answers the forward webhook URL plus the signing secret
/// (shown once). Deliveries to that URL are checked with `verify-signature` against this key.
#[utoipa::path(
    post,
    path = "/agent_api_keys/webhook-trigger",
    tag = "Agent APIKeys",
    operation_id = "create_webhook_trigger_agent_api_keys_webhook_trigger_post",
    request_body = WebhookTriggerRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = WebhookTrigger),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such agent", body = FastApiError),
        (status = 409, description = "The agent has a key of this source and name", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn create_webhook_trigger(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<WebhookTriggerRequest>,
) -> Result<Response, Error> {
    let source = body.source.unwrap_or(AgentApiKeyType::Github);
    let agent_name = Error::required("agent_name", body.agent_name)
        .and_then(|name| parse_agent_name(&name, Location::Body));
    let spec = KeySpec::parse(body.name, Some(source), ("secret", body.secret));
    let forward_path = Error::required("forward_path", body.forward_path);
    let base_url = body
        .base_url
        .map(|url| parse_public_url(&url).map_err(|rule| Error::invalid("base_url", rule)))
        .transpose();
    let (agent_name, (spec, (forward_path, base_url))) =
        all_of(agent_name, all_of(spec, all_of(forward_path, base_url)))?;
    let webhook_path = forward_route(&agent_name, &forward_path)?;
    let base_url = base_url.or_else(|| state.public_url.as_deref().map(str::to_owned));
    let webhook_url = base_url.map(|base| format!("{base}{webhook_path}"));
    let shown_name = agent_name.as_str().to_owned();
    let agent = AgentRef::Name(agent_name);
    create_key(&state, &caller, &agent, spec, None, |key, plain| {
        WebhookTrigger {
            agent_name: shown_name,
            key_id: key.id,
            name: key.name.clone(),
            secret: plain.expose().to_owned(),
            source: key.api_key_type,
            webhook_path,
            webhook_url,
        }
    })
    .await
}
