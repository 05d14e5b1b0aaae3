//! Machine identities: non-human identities that hold one native credential for each connection
//! they reach — the connections they name, and those sharing one of their attributes.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::connections::{ConnectionSummary, list_item_error, parse_name};
use super::secret::{NewSecret, SecretMeta, future_expiry};
use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind};

/// Most connections an identity may name.
pub const MAX_CONNECTION_NAMES: usize = 256;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1000;
/// Longest `ttl`: ten years, in seconds.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The slot of an identity's secret for a connection: the connection id in text, as both
/// databases write a uuid.
pub fn credential_slot(connection_id: Uuid) -> String {
    connection_id.hyphenated().to_string()
}

pub fn parse_description(value: Option<String>) -> Result<String, Error> {
    let value = value.unwrap_or_default();
    if value.chars().count() > MAX_DESCRIPTION {
        let message = format!("it must contain at most {MAX_DESCRIPTION} characters");
        return Err(Error::invalid("description", message));
    }
    Ok(value)
}

/// Connection names as given, none twice. Whether they exist is checked where they are
/// resolved, in the transaction that issues their credentials.
pub fn parse_connection_names(values: Vec<String>) -> Result<Vec<String>, Error> {
    if values.len() > MAX_CONNECTION_NAMES {
        let message = format!("it must name at most {MAX_CONNECTION_NAMES} connections");
        return Err(Error::invalid("connection_names", message));
    }
    let twice: Vec<_> = (0..values.len())
        .filter(|&index| values[..index].contains(&values[index]))
        .map(|index| list_item_error("connection_names", index, "it is listed twice".into()))
        .collect();
    if twice.is_empty() {
        Ok(values)
    } else {
        Err(Error::Invalid(twice))
    }
}

/// The expiry asked for by `ttl` (seconds from now) or `expires_at`, at most one of them.
pub fn requested_expiry(
    ttl: Option<u64>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, Error> {
    match (ttl, expires_at) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "ttl",
            "give either ttl or expires_at, not both",
        )),
        (Some(ttl), None) if ttl == 0 || ttl > MAX_TTL_SECONDS => Err(Error::invalid(
            "ttl",
            format!("it must be between 1 and {MAX_TTL_SECONDS} seconds"),
        )),
        (Some(ttl), None) => Ok(Some(super::secret::now() + Duration::seconds(ttl as i64))),
        (None, expires_at) => future_expiry(expires_at),
    }
}

/// The expiry of a credential issued now to an identity that expires at `expires_at`.
pub fn issuable_expiry(
    expires_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Error> {
    match expires_at {
        Some(expiry) if expiry <= at => Err(Error::invalid(
            "expires_at",
            "the identity has expired; give it a new ttl or expires_at to issue credentials",
        )),
        other => Ok(other),
    }
}

/// The error for connection names that name no connection of the organization. A name is
/// repeated only when it could be a connection name and could not be a secret pasted there.
pub fn unknown_connections(missing: &[(usize, &str)]) -> Error {
    Error::Invalid(
        missing
            .iter()
            .map(|&(index, name)| {
                let message = if parse_name(name).is_ok() && PlainSecret::parse(name).is_err() {
                    format!("there is no connection named {name}")
                } else {
                    "there is no such connection".to_owned()
                };
                list_item_error("connection_names", index, message)
            })
            .collect(),
    )
}

/// A machine identity about to be stored.
#[derive(Clone, Debug)]
pub struct NewMachineIdentity {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    pub attributes: Vec<String>,
    pub connection_names: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Changes to an identity; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct IdentityChanges {
    pub description: Option<String>,
    pub attributes: Option<Vec<String>>,
    pub connection_names: Option<Vec<String>>,
    /// A new expiry for the identity and every credential it holds, those in their grace
    /// period included (they keep their grace end when that comes first).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored machine identity with the credentials it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineIdentity {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    pub attributes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Named connections first, in the order given, then those reached through attributes.
    pub credentials: Vec<CredentialMeta>,
}

impl MachineIdentity {
    /// The connections the identity names, in the order given.
    pub fn connection_names(&self) -> Vec<String> {
        self.credentials
            .iter()
            .filter(|credential| credential.position.is_some())
            .map(|credential| credential.connection.name.clone())
            .collect()
    }

    pub fn credential_for(&self, connection_name: &str) -> Option<&CredentialMeta> {
        self.credentials
            .iter()
            .find(|credential| credential.connection.name == connection_name)
    }
}

/// One of an identity's credentials, as it may be shown: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialMeta {
    pub connection: ConnectionSummary,
    /// The connection's place in `connection_names`; `None` when reached only through an
    /// attribute.
    pub position: Option<usize>,
    pub secret: SecretMeta,
}

/// A credential issued by a create or an update, to be shown once with the secret the
/// [`CredentialMint`] kept for `secret_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub connection: ConnectionSummary,
    pub secret_id: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where the connections an identity should hold credentials for stand against those it holds.
pub struct Reconciliation {
    /// Held connections it no longer reaches.
    pub dropped: Vec<Uuid>,
    /// Held connections whose place in `connection_names` changed, with the new place.
    pub moved: Vec<(Uuid, Option<usize>)>,
    /// Connections it newly reaches, with their place.
    pub added: Vec<(ConnectionSummary, Option<usize>)>,
}

impl Reconciliation {
    pub fn of(
        held: &[(Uuid, Option<usize>)],
        targets: Vec<(ConnectionSummary, Option<usize>)>,
    ) -> Reconciliation {
        let dropped = held
            .iter()
            .filter(|(id, _)| !targets.iter().any(|(target, _)| target.id == *id))
            .map(|(id, _)| *id)
            .collect();
        let mut moved = Vec::new();
        let mut added = Vec::new();
        for (target, position) in targets {
            match held.iter().find(|(id, _)| *id == target.id) {
                Some((_, held_position)) if *held_position == position => {}
                Some(_) => moved.push((target.id, position)),
                None => added.push((target, position)),
            }
        }
        Reconciliation {
            dropped,
            moved,
            added,
        }
    }
}

/// Whose a verified machine credential is, and for which connection.
#[derive(Clone, Debug)]
pub struct CredentialHolder {
    pub identity_id: Uuid,
    pub org_id: Uuid,
    pub identity_name: String,
    pub attributes: Vec<String>,
    pub connection: ConnectionSummary,
}

/// Gives the store a new secret for each credential it issues in its transaction, where the
/// connections an identity reaches are resolved.
pub trait CredentialIssuer: Send + Sync {
    fn issue(&self, expires_at: Option<DateTime<Utc>>) -> NewSecret;
}

/// Mints each credential's secret and keeps its plain value for the one response that shows
/// it. A transaction that is run again mints again; the plain values it left are dropped with
/// the mint, unread.
#[derive(Default)]
pub struct CredentialMint {
    minted: Mutex<HashMap<Uuid, PlainSecret>>,
}

impl CredentialMint {
    /// The plain value of the secret minted as `secret_id`.
    pub fn take(&self, secret_id: Uuid) -> Result<PlainSecret, Error> {
        self.minted
            .lock()
            .expect("mint lock")
            .remove(&secret_id)
            .ok_or_else(|| Error::internal("an issued credential was not minted here"))
    }
}

impl CredentialIssuer for CredentialMint {
    fn issue(&self, expires_at: Option<DateTime<Utc>>) -> NewSecret {
        let plain = PlainSecret::mint(SecretKind::MachineCredential);
        let secret = NewSecret::from_plain(SecretKind::MachineCredential, &plain, expires_at);
        self.minted
            .lock()
            .expect("mint lock")
            .insert(secret.id, plain);
        secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_expires_at_exclude_each_other() {
        let later = super::super::secret::now() + Duration::hours(1);
        assert!(requested_expiry(Some(60), Some(later)).is_err());
        assert!(requested_expiry(Some(0), None).is_err());
        assert!(requested_expiry(Some(MAX_TTL_SECONDS + 1), None).is_err());
        assert_eq!(requested_expiry(None, Some(later)).unwrap(), Some(later));
        assert_eq!(requested_expiry(None, None).unwrap(), None);
        let expiry = requested_expiry(Some(60), None).unwrap().unwrap();
        assert!(expiry > super::super::secret::now() + Duration::seconds(59));
    }

    #[test]
    fn unknown_connections_are_named_unless_they_could_be_secrets() {
        let pasted = PlainSecret::mint(SecretKind::MachineCredential);
        let error = unknown_connections(&[(0, "prod-pg"), (2, pasted.expose()), (3, "a b")]);
        let shown = format!("{:?}", error);
        assert!(
            shown.contains("there is no connection named prod-pg"),
            "{shown}"
        );
        assert!(!shown.contains(pasted.expose()), "{shown}");
        let Error::Invalid(fields) = error else {
            panic!("a field error");
        };
        let paths: Vec<String> = fields.iter().map(|f| f.dotted_path()).collect();
        assert_eq!(
            paths,
            [
                "connection_names.0",
                "connection_names.2",
                "connection_names.3"
            ]
        );
    }

    #[test]
    fn a_connection_named_twice_is_refused() {
        let names = vec!["a-1".to_owned(), "b-2".into(), "a-1".into()];
        let Err(Error::Invalid(fields)) = parse_connection_names(names) else {
            panic!("refused");
        };
        assert_eq!(fields[0].dotted_path(), "connection_names.2");
    }

    #[test]
    fn a_reconciliation_drops_moves_and_adds() {
        let connection = |name: &str| ConnectionSummary {
            id: Uuid::now_v7(),
            name: name.into(),
            connection_type: super::super::connections::ConnectionType::Database,
            subtype: "postgres".into(),
            database_name: None,
        };
        let (a, b, c, d) = (
            connection("a-1"),
            connection("b-1"),
            connection("c-1"),
            connection("d-1"),
        );
        let held = [(a.id, Some(0)), (b.id, None), (c.id, Some(1))];
        let targets = vec![(a.clone(), Some(1)), (d.clone(), Some(0)), (b, None)];
        let plan = Reconciliation::of(&held, targets);
        assert_eq!(plan.dropped, [c.id]);
        assert_eq!(plan.moved, [(a.id, Some(1))]);
        assert_eq!(plan.added, [(d, Some(0))]);
    }

    #[test]
    fn the_mint_keeps_each_plain_secret_once() {
        let mint = CredentialMint::default();
        let secret = mint.issue(None);
        let plain = mint.take(secret.id).unwrap();
        assert_eq!(plain.hash(), secret.hash);
        assert!(plain.expose().starts_with("kgmi_"));
        assert!(mint.take(secret.id).is_err());
    }
}
