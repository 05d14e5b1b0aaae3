//! Finding keygate secrets where they should not be: GitHub secret scanning's signed alerts
//! ([`ScanningKeys`]) and a scan of text for every string that is a secret keygate could have
//! minted ([`find_secrets`]), the same test by prefix, shape and checksum either way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

use super::{BODY_LEN, CHECKSUM_LEN, PlainSecret, SecretKind};

/// GitHub's secret scanning public keys, as its `meta/public_keys/secret_scanning` document
/// lists them: an alert is signed with one of them, named by its identifier.
pub struct ScanningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublicKeyEntry>,
}

#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of a P-256 key.
    key: String,
}

/// Why an alert's signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefused {
    #[error("the alert names no signing key, or one GitHub does not list")]
    UnknownKey,
    #[error("the alert's signature is not base64 DER")]
    Malformed,
    #[error("the alert's signature does not match its body")]
    Mismatch,
}

impl ScanningKeys {
    /// Reads GitHub's document `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
    /// Keys that are no longer current are kept: GitHub may still sign alerts in flight with them.
    pub fn parse(document: &str) -> Result<ScanningKeys, String> {
        let document: KeysDocument = serde_json::from_str(document)
            .map_err(|e| format!("not GitHub's public keys document: {e}"))?;
        let keys = document
            .public_keys
            .into_iter()
            .map(|entry| {
                VerifyingKey::from_public_key_pem(&entry.key)
                    .map(|key| (entry.key_identifier.clone(), key))
                    .map_err(|_| {
                        format!(
                            "key {:?} is not a PEM P-256 public key",
                            entry.key_identifier
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ScanningKeys { keys })
    }

    /// Checks `signature` (base64 of an ASN.1 DER ECDSA P-256 / SHA-256 signature) over the
    /// raw `body` with the key named `key_id`.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureRefused> {
        let key = key_id
            .and_then(|id| self.keys.iter().find(|(known, _)| known == id))
            .map(|(_, key)| key)
            .ok_or(SignatureRefused::UnknownKey)?;
        let der = STANDARD
            .decode(signature.ok_or(SignatureRefused::Malformed)?.trim())
            .map_err(|_| SignatureRefused::Malformed)?;
        let signature = DerSignature::from_bytes(&der).map_err(|_| SignatureRefused::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| SignatureRefused::Mismatch)
    }
}

/// A keygate secret found in text: where it starts (a byte offset), its kind, and what may be
/// shown of it (prefix and last four characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub at: usize,
    pub kind: SecretKind,
    pub hint: String,
}

/// Every string in `text` that is a secret keygate could have minted, checksum included, in
/// the order they appear: a look-alike with a wrong checksum is not one.
pub fn find_secrets(text: &str) -> Vec<Found> {
    let mut found: Vec<Found> = SecretKind::ALL
        .into_iter()
        .flat_map(|kind| {
            text.match_indices(kind.prefix())
                .filter_map(move |(at, _)| {
                    let candidate = text.get(at..at + kind.minted_len())?;
                    let plain = PlainSecret::parse(candidate).ok()?;
                    Some(Found {
                        at,
                        kind,
                        hint: plain.hint(),
                    })
                })
        })
        .collect();
    found.sort_by_key(|found| found.at);
    found
}

/// The regular expression that matches the secrets of `kind` (not their checksum, which a
/// regular expression cannot check).
pub fn pattern(kind: SecretKind) -> String {
    // Prefixes hold letters, `-` and `_` only: literal in any regular expression dialect.
    format!(
        "{}[A-Za-z0-9_-]{{{BODY_LEN}}}[A-Za-z0-9]{{{CHECKSUM_LEN}}}",
        kind.prefix()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_secrets_with_a_valid_checksum_are_found() {
        let live = PlainSecret::mint(SecretKind::AgentKey);
        let mut broken = live.expose().to_owned();
        let last = broken.pop().unwrap();
        broken.push(if last == 'A' { 'B' } else { 'A' });
        let api = PlainSecret::mint(SecretKind::ApiKey);
        let text = format!(
            "dsn = grpc://a:{}@h\nnope = {broken}\nkey={}",
            live.expose(),
            api.expose()
        );
        let found = find_secrets(&text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, SecretKind::AgentKey);
        assert_eq!(found[0].hint, live.hint());
        assert_eq!(&text[found[1].at..], api.expose());
    }

    #[test]
    fn every_minted_secret_matches_its_pattern() {
        for kind in SecretKind::ALL {
            let pattern = regex::Regex::new(&format!("^{}$", pattern(kind))).unwrap();
            assert!(
                pattern.is_match(PlainSecret::mint(kind).expose()),
                "{kind:?}"
            );
        }
    }
}
