//! Ops Manager's resources: projects and their agent API keys.

use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use super::client::{Call, Paging};
use super::output::Shape;
use super::{Answer, ListArgs, Plan, RotateArgs, ToPlan};

const PROJECT: Shape = Shape {
    env_prefix: "KEYGATE_PROJECT",
    env_names: &[],
    columns: &["id", "name", "orgId", "created"],
};

const AGENT_KEY: Shape = Shape {
    env_prefix: "KEYGATE_PROJECT_AGENT_KEY",
    env_names: &[("key", "")],
    columns: &["_id", "desc", "key", "createdTime", "expiresAt"],
};

const KEY_PAIR: Shape = Shape {
    env_prefix: "KEYGATE_KEY_PAIR",
    env_names: &[],
    columns: &[
        "id",
        "desc",
        "publicKey",
        "privateKey",
        "roles",
        "expiresAt",
    ],
};

#[derive(Debug, Subcommand)]
pub enum ProjectVerb {
    /// Create a project.
    Create {
        /// The project's name.
        name: String,
        /// The organization's id (default: the caller's).
        #[arg(long)]
        org_id: Option<String>,
    },
    /// List projects.
    List(ListArgs),
    /// Show a project.
    Get {
        /// The project's id.
        id: String,
    },
    /// Delete a project and its agent API keys.
    Delete {
        /// The project's id.
        id: String,
    },
}

impl ToPlan for ProjectVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            ProjectVerb::Create { name, org_id } => (
                Call::new(Method::POST, ["groups"]).body(json!({ "name": name, "orgId": org_id })),
                Answer::One,
            ),
            ProjectVerb::List(list) => (
                Call::new(Method::GET, ["groups"]),
                list.answer(Paging::Documents),
            ),
            ProjectVerb::Get { id } => (Call::new(Method::GET, ["groups", &id]), Answer::One),
            ProjectVerb::Delete { id } => (
                Call::new(Method::DELETE, ["groups", &id]),
                Answer::Deleted(format!("project {id}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &PROJECT,
            answer,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum AgentKeyVerb {
    /// Create an agent API key for a project and print it, once.
    Create {
        /// The project's id.
        #[arg(long)]
        project: String,
        /// What the key is for.
        #[arg(long)]
        desc: String,
        /// When the key stops working (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List a project's agent API keys (masked).
    List {
        /// The project's id.
        #[arg(long)]
        project: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Issue a new key in place of this one and print it, once.
    Rotate {
        /// The project's id.
        #[arg(long)]
        project: String,
        /// The agent API key's id.
        id: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Delete an agent API key.
    Delete {
        /// The project's id.
        #[arg(long)]
        project: String,
        /// The agent API key's id.
        id: String,
    },
}

impl ToPlan for AgentKeyVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            AgentKeyVerb::Create {
                project,
                desc,
                expires_at,
            } => (
                Call::new(Method::POST, ["groups", &project, "agentapikeys"])
                    .body(json!({ "desc": desc, "expiresAt": expires_at })),
                Answer::Minted("the agent API key"),
            ),
            AgentKeyVerb::List { project, list } => (
                Call::new(Method::GET, ["groups", &project, "agentapikeys"]),
                list.answer(Paging::LinkHeader),
            ),
            AgentKeyVerb::Rotate {
                project,
                id,
                rotate,
            } => (
                Call::new(
                    Method::POST,
                    ["groups", &project, "agentapikeys", &id, "rotate"],
                )
                .body(rotate.body()),
                Answer::Minted("the new agent API key"),
            ),
            AgentKeyVerb::Delete { project, id } => (
                Call::new(Method::DELETE, ["groups", &project, "agentapikeys", &id]),
                Answer::Deleted(format!("agent API key {id}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &AGENT_KEY,
            answer,
        })
    }
}

/// Ops Manager's organization roles, named as its API names them.
#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
pub enum OrgRole {
    #[serde(rename = "ORG_OWNER")]
    #[value(name = "ORG_OWNER")]
    Owner,
    #[serde(rename = "ORG_MEMBER")]
    #[value(name = "ORG_MEMBER")]
    Member,
    #[serde(rename = "ORG_READ_ONLY")]
    #[value(name = "ORG_READ_ONLY")]
    ReadOnly,
}

#[derive(Debug, Subcommand)]
pub enum KeyPairVerb {
    /// Create a programmatic API key pair (HTTP Digest) and print its private key, once.
    Create {
        /// The organization's Ops Manager id (24 hex characters, `orgId` of its projects).
        #[arg(long)]
        org: String,
        /// What the key pair is for.
        #[arg(long)]
        desc: String,
        /// An organization role (repeatable, at least one).
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<OrgRole>,
        /// When the key pair stops authenticating (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List the organization's key pairs (private keys masked).
    List {
        /// The organization's Ops Manager id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show a key pair (private key masked).
    Get {
        /// The organization's Ops Manager id.
        #[arg(long)]
        org: String,
        /// The key pair's id.
        id: String,
    },
    /// Issue a new private key for the same public key and print it, once.
    Rotate {
        /// The organization's Ops Manager id.
        #[arg(long)]
        org: String,
        /// The key pair's id.
        id: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Delete a key pair.
    Delete {
        /// The organization's Ops Manager id.
        #[arg(long)]
        org: String,
        /// The key pair's id.
        id: String,
    },
}

impl ToPlan for KeyPairVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            KeyPairVerb::Create {
                org,
                desc,
                roles,
                expires_at,
            } => (
                Call::new(Method::POST, ["orgs", &org, "apiKeys"]).body(json!({
                    "desc": desc,
                    "roles": roles,
                    "expiresAt": expires_at,
                })),
                Answer::Minted("the key pair's private key"),
            ),
            KeyPairVerb::List { org, list } => (
                Call::new(Method::GET, ["orgs", &org, "apiKeys"]),
                list.answer(Paging::Documents),
            ),
            KeyPairVerb::Get { org, id } => (
                Call::new(Method::GET, ["orgs", &org, "apiKeys", &id]),
                Answer::One,
            ),
            KeyPairVerb::Rotate { org, id, rotate } => (
                Call::new(Method::POST, ["orgs", &org, "apiKeys", &id, "rotate"])
                    .body(rotate.body()),
                Answer::Minted("the key pair's new private key"),
            ),
            KeyPairVerb::Delete { org, id } => (
                Call::new(Method::DELETE, ["orgs", &org, "apiKeys", &id]),
                Answer::Deleted(format!("key pair {id}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &KEY_PAIR,
            answer,
        })
    }
}
