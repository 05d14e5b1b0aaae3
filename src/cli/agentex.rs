//! Agentex's resource: per-agent API keys (bearer keys, and webhook signing secrets).

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use super::client::{Call, Paging};
use super::output::Shape;
use super::{Answer, ListArgs, Plan, RotateArgs, ToPlan};

const KEY: Shape = Shape {
    env_prefix: "KEYGATE_AGENTEX_KEY",
    env_names: &[("api_key", "")],
    columns: &[
        "id",
        "name",
        "agent_id",
        "api_key_type",
        "expires_at",
        "last_used_at",
    ],
};

/// `internal` and `external` are bearer keys; `github` and `slack` are webhook signing secrets.
#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Internal,
    External,
    Github,
    Slack,
}

/// The agent a key belongs to, by id or by name.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AgentRef {
    /// The agent's id.
    #[arg(long)]
    agent_id: Option<String>,
    /// The agent's name.
    #[arg(long)]
    agent_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyVerb {
    /// Create an agent's API key and print it, once.
    Create {
        /// The key's name (for a webhook's signing secret, what it signs for, e.g. the
        /// repository `octo-org/hello-world`).
        name: String,
        #[command(flatten)]
        agent: AgentRef,
        /// The key's type (default: external).
        #[arg(long = "type", value_enum)]
        kind: Option<KeyType>,
        /// When a bearer key stops working (RFC 3339); signing secrets take none.
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List an agent's API keys.
    List {
        #[command(flatten)]
        agent: AgentRef,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show an API key (never the key itself).
    Get {
        /// The key's id.
        id: String,
    },
    /// Issue a new key in place of this one and print it, once.
    Rotate {
        /// The key's id.
        id: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Delete an API key.
    Delete {
        /// The key's id.
        id: String,
    },
}

impl ToPlan for KeyVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            KeyVerb::Create {
                name,
                agent,
                kind,
                expires_at,
            } => {
                let call = Call::new(Method::POST, ["agent_api_keys"]).body(json!({
                    "name": name,
                    "agent_id": agent.agent_id,
                    "agent_name": agent.agent_name,
                    "api_key_type": kind.unwrap_or(KeyType::External),
                    "expires_at": expires_at,
                }));
                (call, Answer::Minted("the agent's API key"))
            }
            KeyVerb::List { agent, list } => (
                Call::new(Method::GET, ["agent_api_keys"])
                    .query("agent_id", agent.agent_id)
                    .query("agent_name", agent.agent_name),
                list.answer(Paging::PageNumber),
            ),
            KeyVerb::Get { id } => (Call::new(Method::GET, ["agent_api_keys", &id]), Answer::One),
            KeyVerb::Rotate { id, rotate } => (
                Call::new(Method::POST, ["agent_api_keys", &id, "rotate"]).body(rotate.body()),
                Answer::Minted("the agent's new API key"),
            ),
            KeyVerb::Delete { id } => (
                Call::new(Method::DELETE, ["agent_api_keys", &id]),
                Answer::Deleted(format!("API key {id}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &KEY,
            answer,
        })
    }
}
