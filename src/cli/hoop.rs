//! hoop's resources: agents (keys in DSN form), connections, machine identities.

use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use super::client::{Call, Paging};
use super::output::Shape;
use super::{Answer, ListArgs, Plan, RotateArgs, ToPlan};

const AGENT: Shape = Shape {
    env_prefix: "KEYGATE_AGENT",
    env_names: &[("token", "DSN")],
    columns: &["name", "id", "mode", "created_at"],
};

const CONNECTION: Shape = Shape {
    env_prefix: "KEYGATE_CONNECTION",
    env_names: &[],
    columns: &["name", "type", "subtype", "agent_id", "attributes"],
};

const IDENTITY: Shape = Shape {
    env_prefix: "KEYGATE_MACHINE_IDENTITY",
    env_names: &[("credentials", "")],
    columns: &["name", "connection_names", "attributes", "expires_at"],
};

const CREDENTIAL: Shape = Shape {
    env_prefix: "KEYGATE_CREDENTIAL",
    env_names: &[],
    columns: &[],
};

#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    Standard,
    Embedded,
}

#[derive(Debug, Subcommand)]
pub enum AgentVerb {
    /// Create an agent and print its DSN, once.
    Create {
        /// The agent's name, the user of its DSN.
        name: String,
        /// How the agent runs (default: the server's, standard).
        #[arg(long, value_enum)]
        mode: Option<AgentMode>,
        /// When the key stops working (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List agents.
    List(ListArgs),
    /// Show an agent (by name or id).
    Get {
        /// The agent's name or id.
        agent: String,
    },
    /// Issue the agent a new key and print its DSN, once.
    Rotate {
        /// The agent's name or id.
        agent: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Delete an agent; its key stops working.
    Delete {
        /// The agent's name or id.
        agent: String,
    },
}

impl ToPlan for AgentVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            AgentVerb::Create {
                name,
                mode,
                expires_at,
            } => (
                Call::new(Method::POST, ["agents"]).body(json!({
                    "name": name,
                    "mode": mode,
                    "expires_at": expires_at,
                })),
                Answer::Minted("the agent's DSN"),
            ),
            AgentVerb::List(list) => (
                Call::new(Method::GET, ["agents"]),
                list.answer(Paging::LinkHeader),
            ),
            AgentVerb::Get { agent } => (Call::new(Method::GET, ["agents", &agent]), Answer::One),
            AgentVerb::Rotate { agent, rotate } => (
                Call::new(Method::POST, ["agents", &agent, "rotate"]).body(rotate.body()),
                Answer::Minted("the agent's new DSN"),
            ),
            AgentVerb::Delete { agent } => (
                Call::new(Method::DELETE, ["agents", &agent]),
                Answer::Deleted(format!("agent {agent}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &AGENT,
            answer,
        })
    }
}

#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    Database,
    Application,
    Custom,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionVerb {
    /// Create a connection served by an agent.
    Create {
        /// The connection's name, unique in the organization.
        name: String,
        /// What the gateway fronts.
        #[arg(long = "type", value_enum)]
        kind: ConnectionType,
        /// e.g. postgres, mysql, mongodb, ssh, tcp.
        #[arg(long)]
        subtype: String,
        /// The agent that serves it (id or name).
        #[arg(long)]
        agent_id: String,
        /// The database a database connection opens.
        #[arg(long)]
        database_name: Option<String>,
        /// Machine identities with this attribute get a credential for it (repeatable).
        #[arg(long = "attribute", value_name = "ATTRIBUTE")]
        attributes: Vec<String>,
    },
    /// List connections.
    List(ListArgs),
    /// Show a connection.
    Get {
        /// The connection's name.
        name: String,
    },
    /// Delete a connection; credentials for it stop working.
    Delete {
        /// The connection's name.
        name: String,
    },
}

impl ToPlan for ConnectionVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, answer) = match self {
            ConnectionVerb::Create {
                name,
                kind,
                subtype,
                agent_id,
                database_name,
                attributes,
            } => (
                Call::new(Method::POST, ["connections"]).body(json!({
                    "name": name,
                    "type": kind,
                    "subtype": subtype,
                    "agent_id": agent_id,
                    "database_name": database_name,
                    "attributes": attributes,
                })),
                Answer::One,
            ),
            ConnectionVerb::List(list) => (
                Call::new(Method::GET, ["connections"]),
                list.answer(Paging::LinkHeader),
            ),
            ConnectionVerb::Get { name } => {
                (Call::new(Method::GET, ["connections", &name]), Answer::One)
            }
            ConnectionVerb::Delete { name } => (
                Call::new(Method::DELETE, ["connections", &name]),
                Answer::Deleted(format!("connection {name}")),
            ),
        };
        Ok(Plan {
            call,
            shape: &CONNECTION,
            answer,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum IdentityVerb {
    /// Create a machine identity and print its credentials, once, one per connection.
    Create {
        /// The machine identity's name, unique in the organization.
        name: String,
        /// A connection it gets a credential for (repeatable).
        #[arg(long = "connection", value_name = "CONNECTION")]
        connections: Vec<String>,
        /// Connections carrying this attribute give it a credential (repeatable).
        #[arg(long = "attribute", value_name = "ATTRIBUTE")]
        attributes: Vec<String>,
        /// What the identity is for.
        #[arg(long)]
        description: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, value_name = "SECONDS", conflicts_with = "expires_at")]
        ttl: Option<u64>,
        /// When its credentials stop working (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List machine identities.
    List(ListArgs),
    /// Show a machine identity and its credentials' state (never the secrets).
    Get {
        /// The machine identity's name.
        name: String,
    },
    /// Issue a new credential for one connection and print it, once.
    Rotate {
        /// The machine identity's name.
        name: String,
        /// The connection whose credential is replaced.
        connection: String,
        #[command(flatten)]
        rotate: RotateArgs,
    },
    /// Delete a machine identity; all its credentials stop working.
    Delete {
        /// The machine identity's name.
        name: String,
    },
}

impl ToPlan for IdentityVerb {
    fn plan(self) -> Result<Plan, String> {
        let (call, shape, answer) = match self {
            IdentityVerb::Create {
                name,
                connections,
                attributes,
                description,
                ttl,
                expires_at,
            } => (
                Call::new(Method::POST, ["machineidentities"]).body(json!({
                    "name": name,
                    "connection_names": connections,
                    "attributes": attributes,
                    "description": description,
                    "ttl": ttl,
                    "expires_at": expires_at,
                })),
                &IDENTITY,
                Answer::Minted("the identity's credentials"),
            ),
            IdentityVerb::List(list) => (
                Call::new(Method::GET, ["machineidentities"]),
                &IDENTITY,
                list.answer(Paging::LinkHeader),
            ),
            IdentityVerb::Get { name } => (
                Call::new(Method::GET, ["machineidentities", &name]),
                &IDENTITY,
                Answer::One,
            ),
            IdentityVerb::Rotate {
                name,
                connection,
                rotate,
            } => (
                Call::new(
                    Method::POST,
                    [
                        "machineidentities",
                        &name,
                        "credentials",
                        &connection,
                        "rotate",
                    ],
                )
                .body(rotate.body()),
                &CREDENTIAL,
                Answer::Minted("the new credential"),
            ),
            IdentityVerb::Delete { name } => (
                Call::new(Method::DELETE, ["machineidentities", &name]),
                &IDENTITY,
                Answer::Deleted(format!("machine identity {name}")),
            ),
        };
        Ok(Plan {
            call,
            shape,
            answer,
        })
    }
}
