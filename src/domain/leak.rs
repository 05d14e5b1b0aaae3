//! Leaked secrets: what keygate does when GitHub secret scanning reports one of its secrets
//! found in a public place. The secret stops working at once — its owner keeps a successor
//! nobody has seen, so that the next step is an ordinary rotation, where the kind allows — and
//! the report is kept with where the secret was found.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::audit::{Actor, AuditContext, Change};
use crate::domain::secret::NewSecret;
use crate::secrets::{PlainSecret, SecretHash, SecretKind};

/// The longest `url` and `source` kept of a report (the database checks the same bounds).
const URL_MAX: usize = 2048;
const SOURCE_MAX: usize = 64;

/// What an organization does with its secrets reported leaked: its policy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LeakResponse {
    /// Stop the secret at once.
    #[default]
    Revoke,
    /// Record and show it only: a person decides.
    Notify,
}

impl LeakResponse {
    pub const fn as_str(self) -> &'static str {
        match self {
            LeakResponse::Revoke => "revoke",
            LeakResponse::Notify => "notify",
        }
    }

    pub fn from_db(value: &str) -> Option<LeakResponse> {
        [LeakResponse::Revoke, LeakResponse::Notify]
            .into_iter()
            .find(|response| response.as_str() == value)
    }
}

/// What was done about a leaked secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeakAction {
    /// Revoked, and a successor nobody has seen made current: the owner rotates to get a
    /// working secret.
    Rotated,
    /// Revoked: its kind cannot be given a successor without its owner.
    Revoked,
    /// Recorded and shown only: the organization keeps a human in the loop.
    Notified,
}

impl LeakAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            LeakAction::Rotated => "rotated",
            LeakAction::Revoked => "revoked",
            LeakAction::Notified => "notified",
        }
    }

    pub fn from_db(value: &str) -> Option<LeakAction> {
        [
            LeakAction::Rotated,
            LeakAction::Revoked,
            LeakAction::Notified,
        ]
        .into_iter()
        .find(|action| action.as_str() == value)
    }

    /// What is done with a leaked secret of `kind` under `response`: for a current secret, a
    /// rotation without grace, unless the kind's secrets need sealed material made from the
    /// secret itself (a key pair's Digest HA1 values, a webhook signing secret), which a
    /// successor nobody has seen cannot have; a predecessor still in its grace period is only
    /// revoked, its owner's current secret being another one.
    pub fn for_leak(response: LeakResponse, kind: SecretKind, current: bool) -> LeakAction {
        match (response, kind) {
            (LeakResponse::Notify, _) => LeakAction::Notified,
            (_, SecretKind::ProgrammaticKey | SecretKind::AgentexSigningSecret) => {
                LeakAction::Revoked
            }
            _ if current => LeakAction::Rotated,
            _ => LeakAction::Revoked,
        }
    }
}

/// One secret GitHub reported, parsed: its digest, where it was found, and the successor it
/// gets if it is current and rotated.
#[derive(Debug)]
pub struct Leak {
    pub hash: SecretHash,
    pub url: Option<String>,
    pub source: Option<String>,
    /// Of the reported secret's kind, its plain value dropped at once: nobody ever sees it.
    pub successor: NewSecret,
    /// The request that reported it, for the audit trail.
    pub request_id: Option<String>,
    pub client: Option<IpAddr>,
}

impl Leak {
    pub fn new(
        reported: &PlainSecret,
        url: Option<&str>,
        source: Option<&str>,
        request_id: Option<String>,
        client: Option<IpAddr>,
    ) -> Option<Leak> {
        let kind = reported.kind()?;
        Some(Leak {
            hash: reported.hash(),
            url: url.map(|url| bounded(url, URL_MAX)),
            source: source.map(|source| bounded(source, SOURCE_MAX)),
            successor: NewSecret::from_plain(kind, &PlainSecret::mint(kind), None),
            request_id,
            client,
        })
    }

    /// The audit record of the report of secret `secret_id`, in `org_id`, by GitHub.
    pub fn change(&self, org_id: Uuid, secret_id: Uuid) -> Change {
        AuditContext {
            org_id,
            actor: Actor::GitHub,
            request_id: self.request_id.clone(),
            client: self.client,
        }
        .change("secret.leaked", "secret", secret_id)
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a report came to.
#[derive(Debug)]
pub enum LeakOutcome {
    /// No secret keygate holds has this digest.
    Unknown,
    /// The secret had already stopped working (revoked or expired).
    Ended,
    /// Reported before and left as it was (a `notify` organization's secret, still working).
    AlreadyReported,
    /// Acted on now.
    Acted {
        kind: SecretKind,
        action: LeakAction,
        change: Change,
    },
}

impl LeakOutcome {
    /// Whether GitHub is told the secret was a live one of ours (`true_positive`).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            LeakOutcome::AlreadyReported | LeakOutcome::Acted { .. }
        )
    }
}

/// A reported leak, as the console's overview shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LeakedSecret {
    pub secret_id: Uuid,
    /// The kind of secret, as `POST /verify` names them.
    pub kind: String,
    /// The secret's prefix and last four characters.
    pub hint: String,
    /// Where GitHub found it.
    pub url: Option<String>,
    /// What GitHub scanned: `content`, `commit`, `pull_request_title`, …
    pub source: Option<String>,
    pub action: LeakAction,
    pub reported_at: DateTime<Utc>,
}
