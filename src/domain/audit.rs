//! The audit trail's records: who changed what, on which resource, from where and in which
//! request ([`Change`], written in the transaction that makes the change), and the refused
//! credentials ([`Refusal`]). Neither can hold a secret: they carry ids, names and addresses.

use std::fmt::Display;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::page::PageRequest;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A keygate API key, by id.
    ApiKey(Uuid),
    /// An Ops Manager programmatic key pair, by public key.
    KeyPair(String),
    /// The server's host, outside any request: the first start, the recovery command.
    Host,
    /// GitHub secret scanning, by an alert signed with one of its keys.
    GitHub,
}

impl Actor {
    /// The stored kind and id.
    pub fn parts(&self) -> (&'static str, String) {
        match self {
            Actor::ApiKey(id) => ("api_key", id.to_string()),
            Actor::KeyPair(public_key) => ("key_pair", public_key.clone()),
            Actor::Host => ("host", String::new()),
            Actor::GitHub => ("github", "secret_scanning".to_owned()),
        }
    }
}

/// Where a request came from, and who sent it: what every change it makes is recorded with.
#[derive(Clone, Debug)]
pub struct AuditContext {
    pub org_id: Uuid,
    pub actor: Actor,
    /// The `x-request-id` the server assigned.
    pub request_id: Option<String>,
    /// Formatted only when written: most requests write no audit event.
    pub client: Option<IpAddr>,
}

impl AuditContext {
    /// Changes made in `org_id` on the server's host, outside any request.
    pub fn host(org_id: Uuid) -> AuditContext {
        AuditContext {
            org_id,
            actor: Actor::Host,
            request_id: None,
            client: None,
        }
    }

    /// The change `action` on the resource `kind` `id`, made in this context.
    pub fn change(&self, action: &'static str, kind: &'static str, id: impl Display) -> Change {
        Change {
            context: self.clone(),
            action,
            resource_kind: kind,
            resource_id: id.to_string(),
        }
    }
}

/// One change, handed to the store method that makes it and recorded in its transaction.
#[derive(Clone, Debug)]
pub struct Change {
    pub context: AuditContext,
    pub action: &'static str,
    pub resource_kind: &'static str,
    pub resource_id: String,
}

impl Change {
    /// Writes the change on the `keygate::audit` log target, once it is made.
    pub fn log(&self) {
        let (actor_kind, actor) = self.context.actor.parts();
        tracing::info!(
            target: "keygate::audit",
            action = self.action,
            resource_kind = self.resource_kind,
            resource_id = %self.resource_id,
            org_id = %self.context.org_id,
            actor_kind,
            actor = %actor,
            request_id = self.context.request_id.as_deref().unwrap_or("-"),
        );
    }
}

/// A credential that did not work, stamped when written, moments later. What was presented is
/// never kept: it may be a secret.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub request_id: Option<String>,
    pub client: Option<String>,
}

/// The action recorded for a [`Refusal`].
pub const AUTHENTICATION_REFUSED: &str = "authentication.refused";

/// A recorded event, as `GET /audit` lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The organization acted in; absent for refused credentials, which name none.
    pub org_id: Option<Uuid>,
    /// `api_key`, `key_pair`, `host` or `github`; absent for refused credentials.
    pub actor_kind: Option<String>,
    /// The API key's id or the key pair's public key.
    pub actor: Option<String>,
    /// What happened, e.g. `agent.created`, `api_key.revoked`, `authentication.refused`.
    pub action: String,
    /// e.g. `agent`, `api_key`, `connection`, `project`.
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    /// The client's address, as counted for failed attempts.
    pub client: Option<String>,
    /// The `x-request-id` of the request.
    pub request_id: Option<String>,
    /// `success` (a change made) or `refused` (a credential that did not work).
    pub outcome: String,
}

/// Which events `GET /audit` asks for: a page in (time, id) order.
#[derive(Clone, Debug)]
pub struct AuditQuery {
    pub org_id: Uuid,
    /// Also events that belong to no organization (refused credentials): operators only.
    pub include_unscoped: bool,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page: PageRequest<(DateTime<Utc>, Uuid)>,
}
