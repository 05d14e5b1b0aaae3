//! keygate's server key: 256 bits kept outside the database, for what cannot be stored as a
//! one-way digest. It seals secrets the server must read back (HMAC signing secrets) with
//! AES-256-GCM, and authenticates server-issued tokens (nonces) with HMAC-SHA256.
//!
//! It comes from `KEYGATE_SECRET_KEY` (base64 of 32 bytes) or, failing that, from
//! `<data dir>/secret-key`, generated (mode 0600) on first start. Every instance sharing a
//! database must use the same key: the database keeps each key's check value (a MAC of a fixed
//! label), and an instance whose key does not match does not start. Each sealed value carries
//! the key's id and is bound to its row by associated data, so a ciphertext copied to another
//! row does not open.
//!
//! A [`Keyring`] is the current key plus the previous ones (`KEYGATE_PREVIOUS_SECRET_KEYS`):
//! the current key seals and signs; a sealed value opens with the key its id names, so values
//! sealed before a rotation keep opening until `keygate server-key rotate` has re-sealed them.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// The generated key's file in the data directory.
pub const FILE_NAME: &str = "secret-key";
/// What a key's check value is the MAC of; unlike every other MAC input, so that a check value
/// is never also a valid nonce or CSRF token.
const CHECK_LABEL: &[u8] = b"keygate server key check";

/// A value sealed under the server key: which key, and nonce ‖ ciphertext ‖ tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

pub struct ServerKey {
    id: String,
    cipher: Aes256Gcm,
    mac_key: Zeroizing<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKey({})", self.id)
    }
}

/// Reads a configured key: base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
pub fn parse_key(value: &str) -> Result<Zeroizing<[u8; KEY_BYTES]>, &'static str> {
    let value = value.trim();
    let decoded = Zeroizing::new(
        [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or("must be base64")?,
    );
    let bytes: [u8; KEY_BYTES] = decoded
        .as_slice()
        .try_into()
        .map_err(|_| "must be 32 bytes (256 bits) in base64")?;
    Ok(Zeroizing::new(bytes))
}

impl ServerKey {
    pub fn from_bytes(key: &[u8; KEY_BYTES]) -> ServerKey {
        let digest = Sha256::digest(key);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        // The MAC key is derived, so the cipher key itself is never used for two purposes.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(b"keygate server key: mac");
        ServerKey {
            id,
            cipher: Aes256Gcm::new(key.into()),
            mac_key: Zeroizing::new(mac.finalize().into_bytes().into()),
        }
    }

    /// The configured key, else the one in `<data dir>/secret-key`, else (when `missing` says
    /// so) a new one written there (mode 0600).
    pub fn load(
        configured: Option<&str>,
        data_dir: &Path,
        missing: IfMissing,
    ) -> Result<ServerKey, String> {
        if let Some(value) = configured {
            let key = parse_key(value).map_err(|rule| format!("KEYGATE_SECRET_KEY {rule}"))?;
            return Ok(ServerKey::from_bytes(&key));
        }
        let path = data_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_key(&text)
                    .map_err(|rule| format!("the server key in {} {rule}", path.display()))?;
                Ok(ServerKey::from_bytes(&key))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => match missing {
                IfMissing::Generate => {
                    let key = generate(&path)?;
                    tracing::info!(path = %path.display(), "generated the server key");
                    Ok(ServerKey::from_bytes(&key))
                }
                IfMissing::Refuse => Err(format!(
                    "no server key: set KEYGATE_SECRET_KEY to the server's key (there is no {})",
                    path.display()
                )),
            },
            Err(err) => Err(format!(
                "cannot read the server key {}: {err}",
                path.display()
            )),
        }
    }

    /// Which key sealed a value: the first 8 hex digits of its SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plaintext`, bound to `associated` (e.g. the row's id).
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng
            .try_fill_bytes(&mut nonce)
            .expect("the OS random number generator failed");
        let payload = Payload {
            msg: plaintext,
            aad: associated,
        };
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .expect("AES-GCM encrypts any message of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            key_id: self.id.clone(),
            bytes,
        }
    }

    /// Decrypts what [`Self::seal`] sealed with the same associated data; `None` when another
    /// key sealed it, or it was altered or moved to another row.
    pub fn open(&self, sealed: &Sealed, associated: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.key_id != self.id || sealed.bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        let payload = Payload {
            msg: ciphertext,
            aad: associated,
        };
        self.cipher
            .decrypt(&Nonce::from(nonce), payload)
            .ok()
            .map(Zeroizing::new)
    }

    /// HMAC-SHA256 of `data` under a key derived from the server key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.mac_key.as_slice())
            .expect("HMAC takes any key");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A value stored beside sealed data that proves, at start, that a key is the one that sealed
    /// it: the MAC of a fixed label, which says nothing about the key itself.
    pub fn check_value(&self) -> [u8; 32] {
        self.mac(CHECK_LABEL)
    }

    /// Whether `value` is this key's [`Self::check_value`], compared in constant time.
    pub fn matches_check(&self, value: &[u8]) -> bool {
        self.verify_mac(CHECK_LABEL, value)
    }

    /// Whether `tag` is the MAC of `data`, compared in constant time.
    pub fn verify_mac(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.mac_key.as_slice())
            .expect("HMAC takes any key");
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

/// What [`ServerKey::load`] does when no key is configured and the data directory has none:
/// the server generates its first key; a command working on an existing database must not,
/// since a new key could open nothing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    Generate,
    Refuse,
}

/// The server keys an instance holds: the current one, which seals and signs, and the previous
/// ones, which open what they sealed and verify what they signed.
#[derive(Debug)]
pub struct Keyring {
    current: ServerKey,
    previous: Vec<ServerKey>,
}

impl From<ServerKey> for Keyring {
    fn from(current: ServerKey) -> Keyring {
        Keyring {
            current,
            previous: Vec::new(),
        }
    }
}

impl Keyring {
    /// `current` with `previous` (each base64 of 32 bytes; the current key or a repeated one
    /// given among them is kept once).
    pub fn new(current: ServerKey, previous: &[String]) -> Result<Keyring, String> {
        let mut ring = Keyring::from(current);
        for value in previous {
            let key = parse_key(value)
                .map_err(|rule| format!("a key in KEYGATE_PREVIOUS_SECRET_KEYS {rule}"))?;
            let key = ServerKey::from_bytes(&key);
            if ring.get(key.id()).is_none() {
                ring.previous.push(key);
            }
        }
        Ok(ring)
    }

    /// The current key as [`ServerKey::load`] finds it, with the previous keys `previous`.
    pub fn load(
        configured: Option<&str>,
        previous: &[String],
        data_dir: &Path,
        missing: IfMissing,
    ) -> Result<Keyring, String> {
        Keyring::new(ServerKey::load(configured, data_dir, missing)?, previous)
    }

    /// The key that seals and signs.
    pub fn current(&self) -> &ServerKey {
        &self.current
    }

    /// The current key's id.
    pub fn id(&self) -> &str {
        self.current.id()
    }

    /// Every key, the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &ServerKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// The key with id `id`.
    pub fn get(&self, id: &str) -> Option<&ServerKey> {
        self.keys().find(|key| key.id() == id)
    }

    /// Seals under the current key.
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Sealed {
        self.current.seal(plaintext, associated)
    }

    /// Opens with the key that sealed the value; `None` when the ring lacks it, or the value was
    /// altered or moved to another row.
    pub fn open(&self, sealed: &Sealed, associated: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.get(&sealed.key_id)?.open(sealed, associated)
    }

    /// Signs with the current key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        self.current.mac(data)
    }

    /// Whether any key of the ring signed `data` with `tag`. What is signed (Digest nonces,
    /// console CSRF tokens) lives minutes to hours and may have been issued by an instance
    /// that still ran the previous key while the instances restarted one by one with the new
    /// one; it stops verifying once its key leaves the ring.
    pub fn verify_mac(&self, data: &[u8], tag: &[u8]) -> bool {
        self.keys().any(|key| key.verify_mac(data, tag))
    }
}

fn generate(path: &PathBuf) -> Result<Zeroizing<[u8; KEY_BYTES]>, String> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    OsRng
        .try_fill_bytes(key.as_mut_slice())
        .map_err(|e| format!("the OS random number generator failed: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    // create_new: two processes starting together must not both write a key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let encoded = Zeroizing::new(STANDARD.encode(key.as_slice()));
            writeln!(file, "{}", encoded.as_str())
                .map_err(|e| format!("cannot write the server key {}: {e}", path.display()))?;
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the server key {}: {e}", path.display()))?;
            parse_key(&text).map_err(|rule| format!("the server key in {} {rule}", path.display()))
        }
        Err(err) => Err(format!(
            "cannot create the server key {}: {err}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ServerKey {
        ServerKey::from_bytes(&[byte; KEY_BYTES])
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let sealed = key(1).seal(b"signing secret", b"row-1");
        assert!(!sealed.bytes.windows(14).any(|w| w == b"signing secret"));
        assert_eq!(
            key(1).open(&sealed, b"row-1").unwrap().as_slice(),
            b"signing secret"
        );
        assert!(
            key(1).open(&sealed, b"row-2").is_none(),
            "moved to another row"
        );
        assert!(
            key(2).open(&sealed, b"row-1").is_none(),
            "another server key"
        );
        let mut altered = sealed.clone();
        *altered.bytes.last_mut().unwrap() ^= 1;
        assert!(key(1).open(&altered, b"row-1").is_none(), "altered");
    }

    #[test]
    fn macs_verify_only_their_data_under_their_key() {
        let tag = key(1).mac(b"nonce data");
        assert!(key(1).verify_mac(b"nonce data", &tag));
        assert!(!key(1).verify_mac(b"nonce datb", &tag));
        assert!(!key(2).verify_mac(b"nonce data", &tag));
    }

    #[test]
    fn check_values_match_only_their_key() {
        let check = key(1).check_value();
        assert!(key(1).matches_check(&check));
        assert!(!key(2).matches_check(&check));
    }

    #[test]
    fn a_configured_key_must_be_256_bits_of_base64() {
        let good = STANDARD.encode([7u8; 32]);
        assert!(parse_key(&good).is_ok());
        assert!(parse_key(&STANDARD.encode([7u8; 16])).is_err());
        assert!(parse_key("not base64 at all!").is_err());
    }

    #[test]
    fn a_generated_key_is_kept_in_the_data_dir_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let refused = ServerKey::load(None, dir.path(), IfMissing::Refuse).unwrap_err();
        assert!(refused.contains("KEYGATE_SECRET_KEY"), "{refused}");
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing generated");
        let first = ServerKey::load(None, dir.path(), IfMissing::Generate).unwrap();
        let again = ServerKey::load(None, dir.path(), IfMissing::Refuse).unwrap();
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = STANDARD.encode([9u8; 32]);
        let chosen = ServerKey::load(Some(&configured), dir.path(), IfMissing::Generate).unwrap();
        assert_eq!(
            chosen.id(),
            key(9).id(),
            "the configured key wins over the file"
        );
    }

    #[test]
    fn a_ring_seals_and_signs_with_its_current_key_and_opens_with_any() {
        let old = key(1);
        let sealed_before = old.seal(b"signing secret", b"row-1");
        let signed_before = old.mac(b"nonce data");
        let ring = Keyring::new(
            key(2),
            &[STANDARD.encode([1u8; 32]), STANDARD.encode([2u8; 32])],
        )
        .unwrap();
        assert_eq!(ring.id(), key(2).id());
        assert_eq!(
            ring.keys().count(),
            2,
            "the current key given again is kept once"
        );
        assert_eq!(
            ring.open(&sealed_before, b"row-1").unwrap().as_slice(),
            b"signing secret"
        );
        assert!(ring.open(&sealed_before, b"row-2").is_none());
        let sealed_now = ring.seal(b"signing secret", b"row-1");
        assert_eq!(sealed_now.key_id, key(2).id());
        assert!(old.open(&sealed_now, b"row-1").is_none());
        assert!(ring.verify_mac(b"nonce data", &signed_before));
        assert!(key(2).verify_mac(b"nonce data", &ring.mac(b"nonce data")));

        let without_old = Keyring::from(key(2));
        assert!(without_old.open(&sealed_before, b"row-1").is_none());
        assert!(!without_old.verify_mac(b"nonce data", &signed_before));
        let refused = Keyring::new(key(2), &["hunter2".into()]).unwrap_err();
        assert!(refused.contains("KEYGATE_PREVIOUS_SECRET_KEYS") && !refused.contains("hunter2"));
    }
}
