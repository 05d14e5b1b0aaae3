//! `POST /agent_api_keys/verify-signature`: the data plane asks whether a GitHub or Slack
//! webhook delivery for an agent was signed with one of the agent's keys. Answered like
//! `POST /verify`: 200 with `valid` and a `code` for every readable request; failures count
//! against the caller's limit.

use std::collections::HashMap;

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::find_agent;
use super::model::Json;
use crate::domain::agent::Agent;
use crate::domain::agentex::webhook::{SignatureCode, WebhookSource};
use crate::domain::agentex::{AgentRef, all_of, parse_key_name};
use crate::error::{Error, Location};
use crate::http::AppState;
use crate::http::auth::{Caller, User};
use crate::http::dialect::{FastApiError, FastApiValidationError};
use crate::http::extract::some_free_map;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySignatureRequest {
    /// The UUID of the agent the delivery is for (or give `agent_name`).
    pub agent_id: Option<String>,
    /// The name of the agent the delivery is for (or give `agent_id`).
    pub agent_name: Option<String>,
    #[schema(value_type = WebhookSource, required = true)]
    pub source: Option<WebhookSource>,
    /// The delivery's headers as received, names in any case: `x-hub-signature-256` (GitHub),
    /// `x-slack-signature` and `x-slack-request-timestamp` (Slack).
    #[schema(value_type = HashMap<String, String>, required = true)]
    #[serde(default, deserialize_with = "some_free_map")]
    pub headers: Option<HashMap<String, String>>,
    /// The delivery's raw body, in standard base64.
    #[schema(value_type = String, required = true, example = "eyJyZXBvc2l0b3J5Ijp7fX0=")]
    pub body_base64: Option<String>,
}

/// Whether the delivery was signed with the agent's key it names.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignatureVerdict {
    pub valid: bool,
    pub code: SignatureCode,
    pub agent_id: Uuid,
    /// The key name the delivery gives: the repository's `full_name` (GitHub) or the app's
    /// `api_app_id` (Slack).
    pub key_name: Option<String>,
    /// The key that made the signature, when it is valid.
    pub api_key_id: Option<Uuid>,
}

/// Verify a webhook signature
///
/// GitHub's `x-hub-signature-256` is checked with the agent's github key named by the
/// repository's `full_name`; Slack's `x-slack-signature` with its slack key named by the
/// `api_app_id`, within 300 s of `x-slack-request-timestamp`. Each readable request is answered
/// 200 with `valid` and a `code`.
#[utoipa::path(
    post,
    path = "/agent_api_keys/verify-signature",
    tag = "Agent APIKeys",
    request_body = VerifySignatureRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = SignatureVerdict),
        (status = 403, description = "Forbidden", body = FastApiError),
        (status = 404, description = "No such agent", body = FastApiError),
        (status = 422, description = "Validation Error", body = FastApiValidationError),
    )
)]
pub async fn verify_signature(
    State(state): State<AppState>,
    caller: Caller<User>,
    Json(body): Json<VerifySignatureRequest>,
) -> Result<axum::Json<SignatureVerdict>, Error> {
    let limiter_key = caller.api_key_id.to_string();
    state.verify_limiter.check(&limiter_key)?;
    let payload = Error::required("body_base64", body.body_base64).and_then(|encoded| {
        STANDARD
            .decode(encoded)
            .map_err(|_| Error::invalid("body_base64", "it must be base64"))
    });
    let ((agent_ref, source), (headers, payload)) = all_of(
        all_of(
            AgentRef::parse(body.agent_id, body.agent_name, Location::Body),
            Error::required("source", body.source),
        ),
        all_of(Error::required("headers", body.headers), payload),
    )?;
    let agent = find_agent(&state, caller.org_id, &agent_ref).await?;
    let verdict = check(&state, &agent, source, &headers, &payload).await?;
    if !verdict.valid {
        state.verify_limiter.failed(&limiter_key);
    }
    Ok(axum::Json(verdict))
}

/// Checks the delivery against the agent's key of `source` that the delivery names.
async fn check(
    state: &AppState,
    agent: &Agent,
    source: WebhookSource,
    headers: &HashMap<String, String>,
    payload: &[u8],
) -> Result<SignatureVerdict, Error> {
    let verdict = |code, key_name, api_key_id| SignatureVerdict {
        valid: code == SignatureCode::Valid,
        code,
        agent_id: agent.id,
        key_name,
        api_key_id,
    };
    let signature = match source.signature(headers, Utc::now().timestamp()) {
        Ok(signature) => signature,
        Err(code) => return Ok(verdict(code, None, None)),
    };
    let Some(name) = source.key_name(payload) else {
        return Ok(verdict(SignatureCode::Malformed, None, None));
    };
    // A name no key can have is looked up nowhere (and a NUL never reaches the database).
    let found = match parse_key_name(name.clone(), Location::Body) {
        Ok(name) => {
            state
                .store
                .find_agent_api_key_by_name(agent.org_id, agent.id, source.key_type(), &name)
                .await?
        }
        Err(_) => None,
    };
    let Some((key, _)) = found else {
        return Ok(verdict(SignatureCode::NoKey, Some(name), None));
    };
    // The current signing secret, or one rotated away whose grace has not ended.
    for signing in state.store.live_sealed_secrets(key.id).await? {
        let signing_secret = key.signing_secret(&signing.sealed, &state.server_key)?;
        if signature.is_made_with(&signing_secret, payload) {
            state.verifier.record_use(signing.secret.id);
            return Ok(verdict(SignatureCode::Valid, Some(name), Some(key.id)));
        }
    }
    Ok(verdict(SignatureCode::Mismatch, Some(name), None))
}
