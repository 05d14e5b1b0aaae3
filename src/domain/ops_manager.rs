//! Ops Manager inside an organization: projects ("groups") with ObjectId-style ids, the
//! programmatic API key pairs that act on them with organization and project roles and access
//! lists, and each project's agent API keys. Storage, verification and the HTTP family build on
//! these types and rules.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::org::Role;
use super::secret::{NewSecret, now};
use crate::error::Error;
use crate::secrets::server_key::Sealed;
use crate::secrets::{PlainSecret, SecretKind};

/// The realm of every Digest challenge, as Ops Manager names it; it is part of the stored HA1.
pub const DIGEST_REALM: &str = "MMS Public API";
/// Longest description of an agent API key.
pub const AGENT_KEY_DESC_MAX: usize = 1000;
/// Longest description of a programmatic API key.
pub const API_KEY_DESC_MAX: usize = 250;
/// Longest project name.
pub const PROJECT_NAME_MAX: usize = 64;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // As for minted secrets: no weak fallback when the OS generator fails.
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    bytes
}

/// A 12-byte id shown as 24 lowercase hex characters, as MongoDB's ObjectId: a 4-byte time in
/// seconds, then random bytes, so ids sort roughly by creation and cannot be guessed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

impl ObjectId {
    pub fn new() -> ObjectId {
        ObjectId::with_time(Utc::now().timestamp() as u32, random_bytes())
    }

    fn with_time(seconds: u32, rest: [u8; 8]) -> ObjectId {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        bytes[4..].copy_from_slice(&rest);
        ObjectId(bytes)
    }

    /// 24 hex characters, either case; anything else is not an id.
    pub fn parse(value: &str) -> Option<ObjectId> {
        if value.len() != 24 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 12];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&value[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ObjectId(bytes))
    }

    /// The id Ops Manager clients know a keygate organization by: its creation second, then
    /// a digest of its UUID. Derived rather than stored, since a caller only ever names its
    /// own organization.
    pub fn of_org(org_id: Uuid) -> ObjectId {
        let seconds = org_id
            .get_timestamp()
            .map_or(0, |timestamp| timestamp.to_unix().0 as u32);
        let mut digest = Sha256::new();
        digest.update(b"keygate ops manager organization id");
        digest.update(org_id.as_bytes());
        let digest = digest.finalize();
        ObjectId::with_time(seconds, digest[..8].try_into().expect("8 bytes"))
    }
}

impl Default for ObjectId {
    fn default() -> ObjectId {
        ObjectId::new()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Roles an API key holds in its organization.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum OrgRole {
    /// Owner of every project of the organization, and of its API keys.
    #[serde(rename = "ORG_OWNER")]
    Owner,
    /// Sees the organization; projects only as granted.
    #[serde(rename = "ORG_MEMBER")]
    Member,
    /// Reads every project of the organization.
    #[serde(rename = "ORG_READ_ONLY")]
    ReadOnly,
}

/// Roles an API key holds in one project.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum ProjectRole {
    #[serde(rename = "GROUP_OWNER")]
    Owner,
    #[serde(rename = "GROUP_READ_ONLY")]
    ReadOnly,
}

impl OrgRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "ORG_OWNER",
            OrgRole::Member => "ORG_MEMBER",
            OrgRole::ReadOnly => "ORG_READ_ONLY",
        }
    }

    pub fn parse(value: &str) -> Option<OrgRole> {
        [OrgRole::Owner, OrgRole::Member, OrgRole::ReadOnly]
            .into_iter()
            .find(|role| role.as_str() == value)
    }
}

impl ProjectRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Owner => "GROUP_OWNER",
            ProjectRole::ReadOnly => "GROUP_READ_ONLY",
        }
    }

    pub fn parse(value: &str) -> Option<ProjectRole> {
        [ProjectRole::Owner, ProjectRole::ReadOnly]
            .into_iter()
            .find(|role| role.as_str() == value)
    }

    /// Whether holding this role gives what `needed` requires: an owner also reads.
    pub fn covers(self, needed: ProjectRole) -> bool {
        self == ProjectRole::Owner || needed == ProjectRole::ReadOnly
    }
}

/// What a caller may do in Ops Manager's terms, within its own organization.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub org_roles: Vec<OrgRole>,
    pub project_roles: Vec<(ObjectId, ProjectRole)>,
}

impl Grants {
    /// A keygate API key acts as an organization owner when it is an admin, and reads every
    /// project otherwise.
    pub fn of_api_key(role: Role) -> Grants {
        let org_role = match role {
            Role::Admin => OrgRole::Owner,
            Role::Member | Role::Auditor => OrgRole::ReadOnly,
        };
        Grants {
            org_roles: vec![org_role],
            project_roles: Vec::new(),
        }
    }

    pub fn has_org_role(&self, role: OrgRole) -> bool {
        self.org_roles.contains(&role)
    }

    /// The strongest role on `project`: an organization owner owns every project, a read-only
    /// member reads every one, and project roles add to that.
    pub fn project_role(&self, project: ObjectId) -> Option<ProjectRole> {
        let from_org = self.org_roles.iter().filter_map(|role| match role {
            OrgRole::Owner => Some(ProjectRole::Owner),
            OrgRole::ReadOnly => Some(ProjectRole::ReadOnly),
            OrgRole::Member => None,
        });
        let granted = self
            .project_roles
            .iter()
            .filter(|(id, _)| *id == project)
            .map(|(_, role)| *role);
        from_org.chain(granted).min()
    }
}

/// A project (Ops Manager's "group"): where agent API keys live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: ObjectId,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Project {
    pub fn new(org_id: Uuid, name: String) -> Result<Project, Error> {
        Ok(Project {
            id: ObjectId::new(),
            org_id,
            name: parse_text("name", name, 1, PROJECT_NAME_MAX)?,
            created_at: now(),
        })
    }
}

/// Free text of `min..=max` characters without control characters.
pub fn parse_text(
    field: &'static str,
    value: String,
    min: usize,
    max: usize,
) -> Result<String, Error> {
    let length = value.chars().count();
    if length < min || length > max {
        let message = format!("it must contain between {min} and {max} characters");
        return Err(Error::invalid(field, message));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "it must not contain control characters",
        ));
    }
    Ok(value)
}

/// A key shown after its creation: asterisks, then the last four characters, as long as the key.
pub fn masked(kind: SecretKind, hint: &str) -> String {
    let tail: String = {
        let mut last: Vec<char> = hint.chars().rev().take(4).collect();
        last.reverse();
        last.into_iter().collect()
    };
    format!("{}{tail}", "*".repeat(kind.minted_len() - 4))
}

/// A programmatic API key pair: a public key (its Digest user name, not secret) and a private
/// key, minted, shown once and kept as a digest plus sealed HA1 values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgrammaticKey {
    /// Its owner id.
    pub id: Uuid,
    pub object_id: ObjectId,
    pub org_id: Uuid,
    pub public_key: String,
    pub desc: String,
    pub roles: Grants,
    pub created_at: DateTime<Utc>,
}

/// A programmatic key about to be stored.
#[derive(Clone, Debug)]
pub struct NewProgrammaticKey {
    pub key: ProgrammaticKey,
    /// The private key, with its sealed HA1 values.
    pub secret: NewSecret,
}

/// Lower-case letters for public keys, which clients show and type.
const PUBLIC_KEY_ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
/// Eight letters, the length of Ops Manager's public keys.
const PUBLIC_KEY_LEN: usize = 8;

impl NewProgrammaticKey {
    /// Mints a key pair with `roles`, working until `expires_at` if given; the private key is
    /// returned for the one response that shows it. `seal` keeps the HA1 values under the
    /// server key, bound to the row's id.
    pub fn mint(
        org_id: Uuid,
        desc: String,
        roles: Grants,
        expires_at: Option<DateTime<Utc>>,
        seal: impl FnOnce(&[u8], &[u8]) -> Sealed,
    ) -> (NewProgrammaticKey, PlainSecret) {
        let public_key: String = random_bytes::<PUBLIC_KEY_LEN>()
            .iter()
            .map(|b| char::from(PUBLIC_KEY_ALPHABET[usize::from(*b) % 26]))
            .collect();
        let plain = PlainSecret::mint(SecretKind::ProgrammaticKey);
        let id = Uuid::now_v7();
        let secret = private_key_secret(id, &public_key, &plain, expires_at, seal);
        let key = ProgrammaticKey {
            id,
            object_id: ObjectId::new(),
            org_id,
            public_key,
            desc,
            roles,
            created_at: secret.created_at,
        };
        (NewProgrammaticKey { key, secret }, plain)
    }
}

/// The stored form of private key `plain` of key pair `id` (public key `public_key`): its
/// digest, and the HA1 values Digest checks need, sealed by `seal` and bound to the key pair.
pub fn private_key_secret(
    id: Uuid,
    public_key: &str,
    plain: &PlainSecret,
    expires_at: Option<DateTime<Utc>>,
    seal: impl FnOnce(&[u8], &[u8]) -> Sealed,
) -> NewSecret {
    NewSecret {
        sealed: Some(seal(&ha1_values(public_key, plain), &ha1_binding(id))),
        ..NewSecret::from_plain(SecretKind::ProgrammaticKey, plain, expires_at)
    }
}

/// What HA1 values are sealed to: the key's owner id, so a sealed value moved to another row
/// does not open.
pub fn ha1_binding(id: Uuid) -> Vec<u8> {
    let mut binding = b"programmatic key ha1:".to_vec();
    binding.extend_from_slice(id.as_bytes());
    binding
}

/// HA1 = H(public:realm:private) with MD5 (16 bytes) then SHA-256 (32 bytes): what Digest
/// needs of the private key, so the private key itself is never kept.
fn ha1_values(public_key: &str, private: &PlainSecret) -> Vec<u8> {
    let credentials = format!("{public_key}:{DIGEST_REALM}:{}", private.expose());
    let mut values = md5::Md5::digest(credentials.as_bytes()).to_vec();
    values.extend_from_slice(&Sha256::digest(credentials.as_bytes()));
    values
}

/// A key pair as Digest authentication finds it by its public key.
#[derive(Clone, Debug)]
pub struct DigestAccount {
    pub key: ProgrammaticKey,
    /// The private keys that may still work, the current one first: after a rotation with a
    /// grace period, the old one too until the grace ends.
    pub credentials: Vec<crate::domain::secret::SealedSecret>,
    pub access_list: Vec<AccessEntry>,
}

/// One entry of a key's access list: a network its requests may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    pub network: IpNet,
    pub created_at: DateTime<Utc>,
}

/// Reads an access list entry: an address (`192.0.2.7`, one host) or a network in CIDR
/// notation, kept by its network address (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_network(value: &str) -> Option<IpNet> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

/// Whether a request from `client` may use a key with `access_list`: any address when the list
/// is empty. IPv4 clients seen as IPv4-mapped IPv6 addresses match IPv4 entries.
pub fn access_allows(access_list: &[AccessEntry], client: Option<IpAddr>) -> bool {
    if access_list.is_empty() {
        return true;
    }
    let Some(client) = client.map(|ip| ip.to_canonical()) else {
        return false;
    };
    access_list
        .iter()
        .any(|entry| entry.network.contains(&client))
}

/// Who made an agent API key; keys made through this API are `PUBLIC_API`.
pub const CREATED_BY_PUBLIC_API: &str = "PUBLIC_API";

/// An agent API key of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectAgentKey {
    /// Its owner id.
    pub id: Uuid,
    pub object_id: ObjectId,
    pub org_id: Uuid,
    pub project_id: ObjectId,
    pub desc: String,
    pub created_by: String,
    pub created_ip: String,
    pub created_user_id: String,
    pub created_at: DateTime<Utc>,
}

/// An agent API key about to be stored.
#[derive(Clone, Debug)]
pub struct NewProjectAgentKey {
    pub key: ProjectAgentKey,
    pub secret: NewSecret,
}

impl NewProjectAgentKey {
    /// Mints an agent key for `project`, made through this API by `created_user_id` from
    /// `created_ip`, working until `expires_at` (already checked against the clock and the
    /// organization's policy) if given; the plain key is returned for the one response that
    /// shows it.
    pub fn mint(
        project: &Project,
        desc: String,
        expires_at: Option<DateTime<Utc>>,
        created_ip: String,
        created_user_id: String,
    ) -> Result<(NewProjectAgentKey, PlainSecret), Error> {
        let desc = parse_text("desc", desc, 0, AGENT_KEY_DESC_MAX)?;
        let plain = PlainSecret::mint(SecretKind::ProjectAgentKey);
        let secret = NewSecret::from_plain(SecretKind::ProjectAgentKey, &plain, expires_at);
        let key = ProjectAgentKey {
            id: Uuid::now_v7(),
            object_id: ObjectId::new(),
            org_id: project.org_id,
            project_id: project.id,
            desc,
            created_by: CREATED_BY_PUBLIC_API.to_owned(),
            created_ip,
            created_user_id,
            created_at: secret.created_at,
        };
        Ok((NewProjectAgentKey { key, secret }, plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_24_hex_with_a_time_prefix() {
        let id = ObjectId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(ObjectId::parse(&text), Some(id));
        assert_eq!(ObjectId::parse(&text.to_uppercase()), Some(id));
        let seconds = u32::from_str_radix(&text[..8], 16).unwrap();
        assert!((Utc::now().timestamp() - i64::from(seconds)).abs() < 5);
        for bad in [
            "",
            "5a0a1e7e0f2912c554080ad",
            "5a0a1e7e0f2912c554080adcz",
            "é".repeat(12).as_str(),
        ] {
            assert_eq!(ObjectId::parse(bad), None, "{bad}");
        }
        assert_ne!(ObjectId::new(), ObjectId::new());
    }

    #[test]
    fn an_organizations_id_is_stable_and_its_own() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(ObjectId::of_org(a), ObjectId::of_org(a));
        assert_ne!(ObjectId::of_org(a), ObjectId::of_org(b));
    }

    #[test]
    fn organization_roles_reach_every_project_and_project_roles_one() {
        let (mine, other) = (ObjectId::new(), ObjectId::new());
        let owner = Grants {
            org_roles: vec![OrgRole::Owner],
            project_roles: Vec::new(),
        };
        assert_eq!(owner.project_role(other), Some(ProjectRole::Owner));
        let member = Grants {
            org_roles: vec![OrgRole::Member],
            project_roles: vec![(mine, ProjectRole::ReadOnly), (mine, ProjectRole::Owner)],
        };
        assert_eq!(member.project_role(mine), Some(ProjectRole::Owner));
        assert_eq!(member.project_role(other), None);
        let reader = Grants::of_api_key(Role::Auditor);
        assert_eq!(reader.project_role(other), Some(ProjectRole::ReadOnly));
        assert!(!ProjectRole::ReadOnly.covers(ProjectRole::Owner));
        assert!(ProjectRole::Owner.covers(ProjectRole::ReadOnly));
    }

    #[test]
    fn masks_are_as_long_as_the_key_and_end_with_its_last_four() {
        let plain = PlainSecret::mint(SecretKind::ProjectAgentKey);
        let mask = masked(SecretKind::ProjectAgentKey, &plain.hint());
        assert_eq!(mask.len(), plain.expose().len());
        assert!(mask.ends_with(&plain.expose()[plain.expose().len() - 4..]));
        assert!(mask[..mask.len() - 4].bytes().all(|b| b == b'*'));
    }

    #[test]
    fn access_lists_match_addresses_and_networks() {
        let entry = |net: &str| AccessEntry {
            network: parse_network(net).unwrap(),
            created_at: now(),
        };
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(parse_network("not an address"), None);
        let list = [entry("10.0.0.0/8"), entry("2001:db8::/32")];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(access_allows(&list, ip("10.9.9.9")));
        assert!(access_allows(&list, ip("::ffff:10.9.9.9")));
        assert!(access_allows(&list, ip("2001:db8::1")));
        assert!(!access_allows(&list, ip("192.0.2.1")));
        assert!(!access_allows(&list, None));
        assert!(access_allows(&[], ip("192.0.2.1")));
    }
}
