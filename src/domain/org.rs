//! Organizations and the API keys that act in them, with their roles.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::secret::{NewSecret, now};
use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind};

/// The organization created at bootstrap; its admins are the operators of the server.
pub const OPERATOR_ORG: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Org {
    pub fn new(name: String) -> Org {
        Org {
            id: Uuid::now_v7(),
            name,
            created_at: now(),
        }
    }
}

/// What an API key may do within its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in its organization.
    Admin,
    /// Read, and use what it is granted (such as `POST /verify`).
    Member,
    /// Read only.
    Auditor,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(value: &str) -> Result<Role, ()> {
        match value {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "auditor" => Ok(Role::Auditor),
            _ => Err(()),
        }
    }
}

/// The name of an organization or an API key: 1 to 128 characters, not only white space, no
/// control characters.
pub fn parse_label(field: &'static str, value: String) -> Result<String, Error> {
    if value.trim().is_empty() || value.chars().count() > 128 {
        return Err(Error::invalid(
            field,
            "it must contain between 1 and 128 characters",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "it must not contain control characters",
        ));
    }
    Ok(value)
}

/// An API key about to be stored.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
    pub secret: NewSecret,
}

impl NewApiKey {
    /// Mints an API key for `org_id`; the plain key is returned for the one response that
    /// shows it.
    pub fn mint(
        org_id: Uuid,
        name: String,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
    ) -> (NewApiKey, PlainSecret) {
        let plain = PlainSecret::mint(SecretKind::ApiKey);
        (
            NewApiKey::with_secret(org_id, name, role, &plain, expires_at),
            plain,
        )
    }

    /// An API key whose secret was chosen elsewhere (the operator's bootstrap token).
    pub fn with_secret(
        org_id: Uuid,
        name: String,
        role: Role,
        plain: &PlainSecret,
        expires_at: Option<DateTime<Utc>>,
    ) -> NewApiKey {
        NewApiKey {
            id: Uuid::now_v7(),
            org_id,
            name,
            role,
            secret: NewSecret::from_plain(SecretKind::ApiKey, plain, expires_at),
        }
    }
}

/// A stored API key: the owner of the secrets that authenticate as it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
}
