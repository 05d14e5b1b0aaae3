//! Organizations, the roles of API keys, and the bootstrap of an empty database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind};
use crate::storage::{self, NewApiKey, NewSecret, Org, Store};

/// The organization created at bootstrap; its admins are the operators of the server.
pub const OPERATOR_ORG: &str = "default";

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

/// The name of an organization or an API key: 1 to 128 characters, not only white space.
pub fn parse_label(field: &'static str, value: String) -> Result<String, Error> {
    if value.trim().is_empty() || value.chars().count() > 128 {
        return Err(Error::invalid(
            field,
            "it must contain between 1 and 128 characters",
        ));
    }
    Ok(value)
}

/// Mints an API key for `org_id`; the plain key is returned for the one response that shows it.
pub fn mint_api_key(
    org_id: Uuid,
    name: String,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> (NewApiKey, PlainSecret) {
    let plain = PlainSecret::mint(SecretKind::ApiKey);
    (
        api_key_record(org_id, name, role, &plain, expires_at),
        plain,
    )
}

fn api_key_record(
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

pub fn new_org(name: String) -> Org {
    Org {
        id: Uuid::now_v7(),
        name,
        created_at: storage::now(),
    }
}

/// On an empty database, creates organization `default` and its admin key: the operator's token
/// when given, else a minted one written to `<data dir>/bootstrap-token` (mode 0600).
/// Returns the operator organization either way.
pub async fn bootstrap(
    store: &dyn Store,
    data_dir: &Path,
    token: Option<&str>,
) -> Result<Org, Error> {
    if store.count_orgs().await? == 0 {
        let org = new_org(OPERATOR_ORG.into());
        let (admin, written_to) = match token {
            Some(token) => {
                if token.len() < 16 {
                    tracing::warn!(
                        "KEYGATE_BOOTSTRAP_TOKEN is shorter than 16 characters; rotate it soon"
                    );
                }
                let plain = PlainSecret::from_operator(token.to_owned());
                (
                    api_key_record(org.id, "bootstrap".into(), Role::Admin, &plain, None),
                    None,
                )
            }
            None => {
                let (admin, plain) = mint_api_key(org.id, "bootstrap".into(), Role::Admin, None);
                (admin, Some(write_token_file(data_dir, &plain)?))
            }
        };
        match store.create_org(&org, &admin).await {
            Ok(()) => match written_to {
                Some(path) => {
                    tracing::info!(path = %path.display(), "bootstrapped organization `default`; admin API key written to file")
                }
                None => tracing::info!(
                    "bootstrapped organization `default` with the admin key from KEYGATE_BOOTSTRAP_TOKEN"
                ),
            },
            // Another instance bootstrapped the same database first; its key stands.
            Err(Error::Conflict) => {
                if let Some(path) = written_to {
                    let _ = std::fs::remove_file(path);
                }
            }
            Err(err) => return Err(err),
        }
    }
    store
        .find_org_by_name(OPERATOR_ORG)
        .await?
        .ok_or_else(|| Error::internal("the database has organizations but none named `default`"))
}

fn write_token_file(data_dir: &Path, plain: &PlainSecret) -> Result<PathBuf, Error> {
    let path = data_dir.join("bootstrap-token");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(Error::internal)?;
    // `mode` applies only to a new file; an older file left behind is tightened too.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(Error::internal)?;
    writeln!(file, "{}", plain.expose()).map_err(Error::internal)?;
    Ok(path)
}
