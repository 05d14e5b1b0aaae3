//! The secret machinery: mints, parses, hashes and displays every secret keygate issues.
//!
//! A secret is `<prefix><body><checksum>`: the prefix names its kind, the body is 32 bytes from the
//! OS CSPRNG in unpadded base64url (hoop's `xagt-` layout), and the checksum is the CRC32 of
//! prefix and body in six base62 characters, so a garbled secret is refused before any database
//! read. At rest only a SHA-256 digest is kept: with 256 random bits a salt or a slow hash adds
//! nothing, and the digest is what hoop itself stores. A new key kind is a new [`SecretKind`].

pub mod agent_key;
pub mod chosen;
pub mod scanning;
pub mod server_key;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Random bytes in every minted secret (256 bits).
const RANDOM_BYTES: usize = 32;
/// Unpadded base64url length of [`RANDOM_BYTES`].
const BODY_LEN: usize = 43;
/// CRC32 in base62 needs six characters (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a secret is for; the prefix makes a leaked secret recognisable by scanners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    /// A hoop agent's key, carried in its DSN.
    AgentKey,
    /// A bearer credential of keygate's own API.
    ApiKey,
    /// An Ops Manager project's agent API key.
    ProjectAgentKey,
    /// The private half of an Ops Manager programmatic API key pair (HTTP Digest).
    ProgrammaticKey,
    /// A machine identity's native credential for one connection.
    MachineCredential,
    /// An Agentex agent API key of type `internal` or `external`: a bearer secret.
    AgentexKey,
    /// An Agentex agent API key of type `github` or `slack`: a webhook signing secret, also
    /// kept sealed because an HMAC is checked with the secret itself.
    AgentexSigningSecret,
}

impl SecretKind {
    pub const ALL: [SecretKind; 7] = [
        SecretKind::AgentKey,
        SecretKind::ApiKey,
        SecretKind::ProjectAgentKey,
        SecretKind::ProgrammaticKey,
        SecretKind::MachineCredential,
        SecretKind::AgentexKey,
        SecretKind::AgentexSigningSecret,
    ];

    pub const fn prefix(self) -> &'static str {
        match self {
            SecretKind::AgentKey => "xagt-",
            SecretKind::ApiKey => "kgk_",
            SecretKind::ProjectAgentKey => "mdbak_",
            SecretKind::ProgrammaticKey => "mdbpk_",
            SecretKind::MachineCredential => "kgmi_",
            SecretKind::AgentexKey => "agx_key_",
            SecretKind::AgentexSigningSecret => "agx_whsec_",
        }
    }

    /// The name stored in the database and shown in `POST /verify` answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretKind::AgentKey => "agent_key",
            SecretKind::ApiKey => "api_key",
            SecretKind::ProjectAgentKey => "project_agent_key",
            SecretKind::ProgrammaticKey => "programmatic_key",
            SecretKind::MachineCredential => "machine_credential",
            SecretKind::AgentexKey => "agentex_key",
            SecretKind::AgentexSigningSecret => "agentex_signing_secret",
        }
    }

    /// The length of every secret of this kind that keygate mints.
    pub const fn minted_len(self) -> usize {
        self.prefix().len() + BODY_LEN + CHECKSUM_LEN
    }

    pub fn from_db(value: &str) -> Option<SecretKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    fn from_secret(value: &str) -> Option<SecretKind> {
        Self::ALL
            .into_iter()
            .find(|kind| value.starts_with(kind.prefix()))
    }
}

/// Why a presented string is not a secret keygate could have minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("unknown secret prefix")]
    UnknownPrefix,
    #[error("secret has the wrong length or characters")]
    Shape,
    #[error("secret checksum does not match")]
    Checksum,
}

/// A secret in plain text. It exists only between minting and the response that shows it once,
/// or between receiving it and hashing it. `Debug` shows the kind and hint, never the value, and
/// there is deliberately no `Display`, `Serialize` or `Clone`: reading it takes a call to
/// [`Self::expose`], and its memory is wiped when it is dropped.
pub struct PlainSecret {
    kind: Option<SecretKind>,
    value: String,
}

impl PlainSecret {
    /// Mints a new secret of `kind` from the OS CSPRNG.
    pub fn mint(kind: SecretKind) -> PlainSecret {
        let mut random = [0u8; RANDOM_BYTES];
        // The OS generator failing is not recoverable: refusing to mint beats a weak secret.
        OsRng
            .try_fill_bytes(&mut random)
            .expect("the OS random number generator failed");
        let mut value = String::with_capacity(kind.prefix().len() + BODY_LEN + CHECKSUM_LEN);
        value.push_str(kind.prefix());
        value.push_str(&URL_SAFE_NO_PAD.encode(random));
        let checksum = checksum(&value);
        value.push_str(&checksum);
        PlainSecret {
            kind: Some(kind),
            value,
        }
    }

    /// Parses a presented secret, checking prefix, shape and checksum without any I/O.
    pub fn parse(value: &str) -> Result<PlainSecret, Malformed> {
        let kind = SecretKind::from_secret(value).ok_or(Malformed::UnknownPrefix)?;
        let rest = &value[kind.prefix().len()..];
        if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.is_ascii() {
            return Err(Malformed::Shape);
        }
        let (body, sum) = rest.split_at(BODY_LEN);
        let body_ok = body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !body_ok || !sum.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Malformed::Shape);
        }
        if checksum(&value[..value.len() - CHECKSUM_LEN]) != sum {
            return Err(Malformed::Checksum);
        }
        Ok(PlainSecret {
            kind: Some(kind),
            value: value.to_owned(),
        })
    }

    /// Wraps a secret chosen by an operator (the bootstrap token): no prefix or checksum to check.
    pub fn from_operator(value: String) -> PlainSecret {
        PlainSecret { kind: None, value }
    }

    /// Wraps a secret of `kind` that its owner chose instead of having it minted (an Agentex
    /// key given at creation, or presented later): it has no prefix or checksum to check.
    pub fn chosen(kind: SecretKind, value: String) -> PlainSecret {
        PlainSecret {
            kind: Some(kind),
            value,
        }
    }

    /// The kind named by the prefix, or given for a chosen secret; `None` for an
    /// operator-chosen secret.
    pub fn kind(&self) -> Option<SecretKind> {
        self.kind
    }

    /// The plain value: call only to put it in the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.value)
    }

    /// The display hint stored beside the hash: the prefix and the last four characters.
    pub fn hint(&self) -> String {
        let prefix = self
            .kind
            .map(SecretKind::prefix)
            .filter(|prefix| self.value.starts_with(prefix))
            .unwrap_or("");
        let tail_start = self.value.len().saturating_sub(4);
        // Operator-chosen values may be short or non-ASCII; never show more than a quarter of them.
        if self.value.len() < 16 || !self.value.is_char_boundary(tail_start) {
            return format!("{prefix}…");
        }
        format!("{prefix}…{}", &self.value[tail_start..])
    }
}

impl Drop for PlainSecret {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainSecret({})", self.hint())
    }
}

/// SHA-256 digest of a secret: the only form in which a secret is stored or looked up.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    fn of(value: &str) -> SecretHash {
        SecretHash(Sha256::digest(value.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SecretHash> {
        bytes.try_into().ok().map(SecretHash)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality: a stored digest is never compared with a branch per byte.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

fn checksum(prefix_and_body: &str) -> String {
    let mut n = crc32fast::hash(prefix_and_body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secret_has_prefix_body_and_checksum() {
        let secret = PlainSecret::mint(SecretKind::AgentKey);
        let value = secret.expose();
        assert!(value.starts_with("xagt-"));
        assert_eq!(value.len(), 5 + BODY_LEN + CHECKSUM_LEN);
        assert_eq!(PlainSecret::parse(value).unwrap().hash(), secret.hash());
    }

    #[test]
    fn minted_secrets_differ() {
        let a = PlainSecret::mint(SecretKind::ApiKey);
        let b = PlainSecret::mint(SecretKind::ApiKey);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn garbled_secret_fails_checksum() {
        let secret = PlainSecret::mint(SecretKind::AgentKey);
        let mut bytes = secret.expose().as_bytes().to_vec();
        let i = 10;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let garbled = String::from_utf8(bytes).unwrap();
        assert_eq!(
            PlainSecret::parse(&garbled).unwrap_err(),
            Malformed::Checksum
        );
    }

    #[test]
    fn wrong_prefix_and_shape_are_malformed() {
        assert_eq!(
            PlainSecret::parse("nope").unwrap_err(),
            Malformed::UnknownPrefix
        );
        assert_eq!(
            PlainSecret::parse("xagt-short").unwrap_err(),
            Malformed::Shape
        );
    }

    #[test]
    fn debug_and_hint_never_show_the_secret() {
        let secret = PlainSecret::mint(SecretKind::AgentKey);
        let debug = format!("{secret:?}");
        let body = &secret.expose()[5..30];
        assert!(!debug.contains(body));
        assert!(secret.hint().starts_with("xagt-…"));
        assert_eq!(secret.hint().chars().count(), "xagt-…".chars().count() + 4);
        assert_eq!(format!("{:?}", secret.hash()), "SecretHash(..)");
    }

    #[test]
    fn a_chosen_secret_is_hinted_without_a_prefix_it_does_not_have() {
        let chosen = PlainSecret::chosen(SecretKind::AgentexKey, "0123456789abcdef0123".into());
        assert_eq!(chosen.kind(), Some(SecretKind::AgentexKey));
        assert_eq!(chosen.hint(), "…0123");
    }

    #[test]
    fn no_prefix_is_the_start_of_another() {
        for a in SecretKind::ALL {
            for b in SecretKind::ALL {
                assert!(a == b || !a.prefix().starts_with(b.prefix()), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn short_operator_secret_has_no_tail_in_hint() {
        assert_eq!(PlainSecret::from_operator("short".into()).hint(), "…");
    }

    #[test]
    fn hash_is_sha256_of_the_whole_string_as_hoop_stores_it() {
        let hex: String = PlainSecret::from_operator("abc".into())
            .hash()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::PROPERTY_CASES))]

        #[test]
        fn any_text_parses_or_is_malformed_without_panicking(text in "\\PC{0,80}|(xagt-|kgk_|mdbak_)[A-Za-z0-9_-]{0,60}") {
            let _ = PlainSecret::parse(&text);
        }

        #[test]
        fn every_minted_secret_parses_and_any_one_changed_character_is_refused(
            kind in proptest::sample::select(SecretKind::ALL.to_vec()),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            replacement in proptest::prelude::any::<char>(),
        ) {
            let minted = PlainSecret::mint(kind);
            let value = minted.expose();
            proptest::prop_assert_eq!(PlainSecret::parse(value).map(|s| s.hash()).ok(), Some(minted.hash()));
            let at = at.index(value.len());
            proptest::prop_assume!(!value[at..].starts_with(replacement));
            let mut garbled = value.to_owned();
            garbled.replace_range(at..=at, replacement.encode_utf8(&mut [0; 4]));
            proptest::prop_assert!(PlainSecret::parse(&garbled).is_err());
        }
    }
}
