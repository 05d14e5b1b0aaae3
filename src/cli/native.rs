//! keygate's own resources: API keys, verification, the audit trail.

use std::io::Read;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use super::agentex::KeyType;
use super::client::{Call, Paging};
use super::output::Shape;
use super::{Answer, ListArgs, Plan, RotateArgs, ToPlan};

const API_KEY: Shape = Shape {
    env_prefix: "KEYGATE_API_KEY",
    env_names: &[("key", "")],
    columns: &[
        "id",
        "name",
        "role",
        "hint",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ],
};

const ORG: Shape = Shape {
    env_prefix: "KEYGATE_ORG",
    env_names: &[("org", ""), ("key", "")],
    columns: &["id", "name", "created_at"],
};

const POLICY: Shape = Shape {
    env_prefix: "KEYGATE_POLICY",
    env_names: &[],
    columns: &[],
};

const VERDICT: Shape = Shape {
    env_prefix: "KEYGATE_VERIFY",
    env_names: &[],
    columns: &[],
};

const AUDIT_EVENT: Shape = Shape {
    env_prefix: "KEYGATE_AUDIT",
    env_names: &[],
    columns: &[
        "at",
        "action",
        "resource_kind",
        "resource_id",
        "actor",
        "outcome",
        "client",
    ],
};

#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Auditor,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyVerb {
    /// Create an API key with a role and print it, once.
    Create {
        /// The key's name, to tell it apart in lists.
        name: String,
        /// What the key may do: admin (everything in its organization), member (read, and
        /// use what it is granted, such as verify) or auditor (read only).
        #[arg(long, value_enum)]
        role: Role,
        /// When the key stops working (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List the organization's API keys (never the keys themselves).
    List(ListArgs),
    /// Issue a new key in place of this one and print it, once.
    Rotate {
        /// The API key's id.
        id: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Revoke an API key.
    Delete {
        /// The API key's id.
        id: String,
    },
}

impl ToPlan for ApiKeyVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            ApiKeyVerb::Create {
                name,
                role,
                expires_at,
            } => (
                Call::new(Method::POST, ["apikeys"]).body(json!({
                    "name": name,
                    "role": role,
                    "expires_at": expires_at,
                })),
                Answer::Minted("the API key"),
            ),
            ApiKeyVerb::List(list) => (
                Call::new(Method::GET, ["apikeys"]),
                list.answer(Paging::Cursor),
            ),
            ApiKeyVerb::Rotate { id, rotate } => (
                Call::new(Method::POST, ["apikeys", &id, "rotate"]).body(rotate.body()),
                Answer::Minted("the new API key"),
            ),
            ApiKeyVerb::Delete { id } => (
                Call::new(Method::DELETE, ["apikeys", &id]),
                Answer::Deleted(format!("API key {id}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &API_KEY,
            answer,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum OrgVerb {
    /// Create an organization and print its first admin API key, once (operators only).
    Create {
        /// The organization's name.
        name: String,
    },
    /// List organizations (operators only).
    List(ListArgs),
}

impl ToPlan for OrgVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            OrgVerb::Create { name } => (
                Call::new(Method::POST, ["orgs"]).body(json!({ "name": name })),
                Answer::Minted("the organization's first admin API key"),
            ),
            OrgVerb::List(list) => (
                Call::new(Method::GET, ["orgs"]),
                list.answer(Paging::Cursor),
            ),
        };
        Ok(Plan {
            call,
            shape: &ORG,
            answer,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyVerb {
    /// Show the organization's longest lifetime per kind of secret.
    Get,
    /// Replace the policy: each KIND=SECONDS caps that kind's new secrets; kinds not named are
    /// uncapped. Kinds: agent_key, api_key, project_agent_key, programmatic_key, agentex_key,
    /// machine_credential.
    Set {
        /// A kind's longest lifetime, e.g. agent_key=2592000 (repeatable).
        #[arg(value_name = "KIND=SECONDS", value_parser = parse_lifetime)]
        lifetimes: Vec<(String, u64)>,
        /// What is done with secrets reported leaked: revoke or notify (unchanged when left
        /// out).
        #[arg(long, value_parser = ["revoke", "notify"])]
        leak_response: Option<String>,
    },
}

fn parse_lifetime(value: &str) -> Result<(String, u64), String> {
    let (kind, seconds) = value
        .split_once('=')
        .ok_or("expected KIND=SECONDS, e.g. agent_key=2592000")?;
    let seconds = seconds
        .parse()
        .map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
    Ok((kind.to_owned(), seconds))
}

impl ToPlan for PolicyVerb {
    fn plan(self) -> Result<Plan, String> {
        let call = match self {
            PolicyVerb::Get => Call::new(Method::GET, ["orgs", "policy"]),
            PolicyVerb::Set {
                lifetimes,
                leak_response,
            } => {
                let lifetimes: serde_json::Map<String, serde_json::Value> = lifetimes
                    .into_iter()
                    .map(|(kind, seconds)| (kind, seconds.into()))
                    .collect();
                let mut body = json!({ "max_lifetime_seconds": lifetimes });
                if let Some(leak_response) = leak_response {
                    body["leak_response"] = leak_response.into();
                }
                Call::new(Method::PUT, ["orgs", "policy"]).body(body)
            }
        };
        Ok(Plan {
            call,
            shape: &POLICY,
            answer: Answer::One,
        })
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The secret, or `-` to read it from stdin (an argument shows in process listings).
    key: String,
    /// The connection a machine credential is presented for.
    #[arg(long)]
    connection: Option<String>,
    /// The type an Agentex key is expected to have.
    #[arg(long, value_enum)]
    agentex_type: Option<KeyType>,
    /// The end client's address, for per-client limits.
    #[arg(long)]
    client_ip: Option<String>,
}

impl ToPlan for VerifyArgs {
    fn plan(self) -> Result<Plan, String> {
        let key = if self.key == "-" {
            let mut key = String::new();
            std::io::stdin()
                .read_to_string(&mut key)
                .map_err(|err| format!("cannot read the secret from stdin: {err}"))?;
            key.trim().to_owned()
        } else {
            self.key
        };
        let body = json!({
            "key": key,
            "connection": self.connection,
            "agent_api_key_type": self.agentex_type,
            "client_ip": self.client_ip,
        });
        Ok(Plan {
            call: Call::new(Method::POST, ["verify"]).body(body),
            shape: &VERDICT,
            answer: Answer::Verdict,
        })
    }
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kind of resource changed, e.g. agent, api_key, connection, project.
    #[arg(long)]
    resource_kind: Option<String>,
    /// The resource's id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Who acted: an API key's id or a key pair's public key.
    #[arg(long)]
    actor: Option<String>,
    /// What happened, e.g. agent.created, authentication.refused.
    #[arg(long)]
    action: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
    since: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
    until: Option<DateTime<Utc>>,
    /// Most events to print.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
}

impl ToPlan for AuditArgs {
    fn plan(self) -> Result<Plan, String> {
        let call = Call::new(Method::GET, ["audit"])
            .query("resource_kind", self.resource_kind)
            .query("resource_id", self.resource_id)
            .query("actor", self.actor)
            .query("action", self.action)
            .query("since", self.since.map(|time| time.to_rfc3339()))
            .query("until", self.until.map(|time| time.to_rfc3339()));
        Ok(Plan {
            call,
            shape: &AUDIT_EVENT,
            answer: Answer::List {
                paging: Paging::Cursor,
                limit: Some(self.limit as usize),
                page_size: None,
            },
        })
    }
}
