//! HTTP Digest authentication (RFC 7616, `qop=auth`, MD5 and SHA-256 and their `-sess`
//! variants) with a programmatic API key pair, as Ops Manager's clients speak it; bearer keygate
//! API keys are accepted too.
//!
//! Nonces are stateless: the issue time and random bytes, authenticated with an HMAC under the
//! server key, so any instance sharing that key accepts a nonce another issued. A nonce lives
//! five minutes; a right answer to an older one gets `stale=true`, so the client retries with a
//! fresh nonce without asking its user again. Each (nonce, nonce count) pair is accepted once,
//! recorded in the database so that a replay is refused by every instance. The server holds
//! only HA1 = H(public key:realm:private key), sealed under the server key.

use std::collections::HashMap;

use async_trait::async_trait;
use axum::extract::OriginalUri;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::errors;
use crate::domain::ops_manager::{DIGEST_REALM, access_allows, ha1_binding};
use crate::domain::secret::{Standing, now};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{AuthScheme, Authentication, Bearer, Principal, authorization};
use crate::http::client::client_address;
use crate::secrets::server_key::Keyring;

/// How long a nonce may be answered.
const NONCE_LIFETIME: Duration = Duration::minutes(5);
/// How far ahead of this instance's clock another instance may have issued a nonce.
const CLOCK_SKEW: Duration = Duration::seconds(30);
/// Issue time (8 bytes), random bytes (8), HMAC-SHA256 (32).
const NONCE_BYTES: usize = 48;
const NONCE_DOMAIN: &[u8] = b"keygate digest nonce:";

/// `Authorization: Digest …` with a programmatic API key pair, or `Authorization: Bearer …`
/// with a keygate API key.
pub struct Digest;

#[async_trait]
impl AuthScheme for Digest {
    async fn authenticate(&self, parts: &Parts, state: &AppState) -> Result<Authentication, Error> {
        match authorization(parts, "digest") {
            Some(credentials) => match Answer::parse(credentials) {
                Some(answer) => check(parts, state, &answer).await,
                None => Ok(Authentication::Refused),
            },
            None => Bearer.authenticate(parts, state).await,
        }
    }

    fn challenge(&self, state: &AppState, stale: bool) -> HeaderValue {
        let nonce = issue_nonce(&state.server_key, now());
        let value = format!(
            "Digest realm=\"{DIGEST_REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
        );
        HeaderValue::from_str(&value).expect("the challenge is ASCII")
    }
}

/// A fresh nonce: base64url of the issue time, random bytes and their HMAC.
fn issue_nonce(key: &Keyring, at: DateTime<Utc>) -> String {
    let mut bytes = Vec::with_capacity(NONCE_BYTES);
    bytes.extend_from_slice(&at.timestamp().to_be_bytes());
    let mut random = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut random)
        .expect("the OS random number generator failed");
    bytes.extend_from_slice(&random);
    let tag = key.mac(&[NONCE_DOMAIN, &bytes].concat());
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// When a nonce this server key issued was issued; `None` for anything else.
fn nonce_issued_at(key: &Keyring, nonce: &str) -> Option<DateTime<Utc>> {
    let bytes = URL_SAFE_NO_PAD.decode(nonce).ok()?;
    if bytes.len() != NONCE_BYTES {
        return None;
    }
    let (data, tag) = bytes.split_at(16);
    if !key.verify_mac(&[NONCE_DOMAIN, data].concat(), tag) {
        return None;
    }
    let seconds = i64::from_be_bytes(data[..8].try_into().ok()?);
    Utc.timestamp_opt(seconds, 0).single()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The hash and whether it is a `-sess` variant.
    fn parse(value: Option<&str>) -> Option<(Algorithm, bool)> {
        match value.map(str::to_ascii_uppercase).as_deref() {
            None | Some("MD5") => Some((Algorithm::Md5, false)),
            Some("MD5-SESS") => Some((Algorithm::Md5, true)),
            Some("SHA-256") => Some((Algorithm::Sha256, false)),
            Some("SHA-256-SESS") => Some((Algorithm::Sha256, true)),
            Some(_) => None,
        }
    }

    fn hex(self, data: &str) -> String {
        let digest = match self {
            Algorithm::Md5 => md5::Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        hex(&digest)
    }

    /// Where this algorithm's HA1 lies among the sealed values (MD5, then SHA-256).
    fn ha1(self, values: &[u8]) -> Option<&[u8]> {
        match self {
            Algorithm::Md5 => values.get(..16),
            Algorithm::Sha256 => values.get(16..48),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client's `Authorization: Digest` parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    cnonce: String,
    nc: String,
    qop: String,
    algorithm: Option<String>,
}

impl Answer {
    /// Reads `name=token` and `name="quoted string"` pairs separated by commas; `None` when a
    /// required one is missing, repeated, or the list cannot be read.
    pub fn parse(credentials: &str) -> Option<Answer> {
        let mut params: HashMap<String, String> = HashMap::new();
        let mut rest = credentials.trim();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (_, '\\') => value.push(chars.next()?.1),
                        (at, '"') => break at,
                        (_, c) => value.push(c),
                    }
                };
                (value, &quoted[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            if name.is_empty() || params.insert(name, value).is_some() {
                return None;
            }
            rest = after.trim_start();
            rest = match rest.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if rest.is_empty() => rest,
                None => return None,
            };
        }
        let mut take = |name: &str| params.remove(name);
        Some(Answer {
            username: take("username")?,
            realm: take("realm")?,
            nonce: take("nonce")?,
            uri: take("uri")?,
            response: take("response")?,
            cnonce: take("cnonce")?,
            nc: take("nc")?,
            qop: take("qop")?,
            algorithm: take("algorithm"),
        })
    }

    /// The response a client knowing the key pair whose HA1 is `ha1` sends for `method`.
    fn expected(&self, algorithm: Algorithm, session: bool, ha1: &[u8], method: &str) -> String {
        let mut ha1 = hex(ha1);
        if session {
            ha1 = algorithm.hex(&format!("{ha1}:{}:{}", self.nonce, self.cnonce));
        }
        let ha2 = algorithm.hex(&format!("{method}:{}", self.uri));
        algorithm.hex(&format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            self.nonce, self.nc, self.cnonce, self.qop
        ))
    }
}

/// Checks a Digest answer: the nonce is ours, the response proves the private key for this
/// method and request target (as sent, query included), then the nonce is fresh, the key works,
/// the (nonce, count) pair is new and the client is on the key's access list.
async fn check(parts: &Parts, state: &AppState, answer: &Answer) -> Result<Authentication, Error> {
    let refused = Ok(Authentication::Refused);
    let Some((algorithm, session)) = Algorithm::parse(answer.algorithm.as_deref()) else {
        return refused;
    };
    let target = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let target = target
        .path_and_query()
        .map_or(target.path(), |target| target.as_str());
    let nc = u32::from_str_radix(&answer.nc, 16)
        .ok()
        .filter(|_| answer.nc.len() == 8);
    let issued = nonce_issued_at(&state.server_key, &answer.nonce);
    let (Some(nc), Some(issued)) = (nc, issued) else {
        return refused;
    };
    if answer.realm != DIGEST_REALM
        || answer.qop != "auth"
        || answer.uri != target
        || answer.cnonce.is_empty()
    {
        return refused;
    }
    let Some(account) = state.store.find_digest_account(&answer.username).await? else {
        return refused;
    };
    // The current private key, or one rotated away whose grace has not ended.
    let given = answer.response.to_ascii_lowercase();
    let mut matched = None;
    for credential in &account.credentials {
        let values = state
            .server_key
            .open(&credential.sealed, &ha1_binding(account.key.id))
            .ok_or_else(|| {
                Error::internal("a key pair's HA1 is sealed under another server key; do all instances share KEYGATE_SECRET_KEY?")
            })?;
        let ha1 = algorithm.ha1(&values).ok_or_else(|| {
            Error::internal("a key pair's sealed HA1 values have the wrong length")
        })?;
        let expected = answer.expected(algorithm, session, ha1, parts.method.as_str());
        if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            matched = Some(&credential.secret);
            break;
        }
    }
    let Some(secret) = matched else {
        return refused;
    };
    let at = now();
    let age = at - issued;
    if age > NONCE_LIFETIME || age < -CLOCK_SKEW {
        return Err(Error::StaleNonce);
    }
    if secret.standing(at) != Standing::Active {
        return refused;
    }
    let nonce_digest: [u8; 32] = Sha256::digest(answer.nonce.as_bytes()).into();
    let first_use = state
        .store
        .record_nonce_use(&nonce_digest, nc, issued + NONCE_LIFETIME, at)
        .await?;
    if !first_use {
        return refused;
    }
    let client = client_address(parts, &state.trusted_proxies);
    if !access_allows(&account.access_list, client) {
        return Err(errors::address_not_allowed());
    }
    state.verifier.record_use(secret.id);
    Ok(Authentication::Accepted(Principal::ProgrammaticKey(
        account.key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::server_key::ServerKey;

    /// RFC 7616 section 3.9.1: Mufasa's request for /dir/index.html.
    fn rfc_answer(algorithm: &str) -> Answer {
        Answer::parse(&format!(
            r#"username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",
               algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001,
               cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,
               response="x", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        ))
        .unwrap()
    }

    #[test]
    fn responses_match_the_examples_of_rfc_7616() {
        let credentials = "Mufasa:http-auth@example.org:Circle of Life";
        let md5_ha1 = md5::Md5::digest(credentials.as_bytes());
        assert_eq!(
            rfc_answer("MD5").expected(Algorithm::Md5, false, &md5_ha1, "GET"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha_ha1 = Sha256::digest(credentials.as_bytes());
        assert_eq!(
            rfc_answer("SHA-256").expected(Algorithm::Sha256, false, &sha_ha1, "GET"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn parameters_are_read_quoted_or_not_with_escapes() {
        let answer = rfc_answer("SHA-256");
        assert_eq!(answer.username, "Mufasa");
        assert_eq!(answer.nc, "00000001");
        assert_eq!(answer.algorithm.as_deref(), Some("SHA-256"));
        let escaped = Answer::parse(
            r#"username="a\"b", realm="r", nonce="n", uri="/x?y=1,2", response="r", cnonce="c", nc=00000001, qop="auth""#,
        )
        .unwrap();
        assert_eq!(
            (escaped.username.as_str(), escaped.uri.as_str()),
            ("a\"b", "/x?y=1,2")
        );
        for broken in [
            r#"username="unterminated"#,
            r#"username="a", username="b", realm="r", nonce="n", uri="/", response="r", cnonce="c", nc=1, qop=auth"#,
            r#"realm="r", nonce="n", uri="/", response="r", cnonce="c", nc=1, qop=auth"#,
            r#"username="a" realm="r""#,
        ] {
            assert_eq!(Answer::parse(broken), None, "{broken}");
        }
    }

    #[test]
    fn nonces_carry_their_issue_time_and_open_only_under_their_key() {
        let key = Keyring::from(ServerKey::from_bytes(&[3; 32]));
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let nonce = issue_nonce(&key, at);
        assert_eq!(nonce_issued_at(&key, &nonce), Some(at));
        assert_ne!(
            issue_nonce(&key, at),
            nonce,
            "nonces issued together differ"
        );
        assert_eq!(
            nonce_issued_at(&Keyring::from(ServerKey::from_bytes(&[4; 32])), &nonce),
            None
        );
        let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        forged[7] ^= 1; // a later issue time
        assert_eq!(nonce_issued_at(&key, &URL_SAFE_NO_PAD.encode(forged)), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::PROPERTY_CASES))]

        #[test]
        fn any_header_value_is_read_or_refused_without_panicking(
            text in "\\PC{0,200}|([a-z]{1,8}=(\"([^\"\\\\]|\\\\.){0,12}\"|[^,]{0,12}), ?){0,12}\\\\?\"?",
        ) {
            let _ = Answer::parse(&text);
        }

        #[test]
        fn quoted_values_with_any_characters_read_back_as_sent(
            values in proptest::collection::vec("\\PC{0,30}", 8),
            algorithm in proptest::option::of("[A-Za-z0-9-]{1,16}"),
        ) {
            let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
            let names = ["username", "realm", "nonce", "uri", "response", "cnonce", "nc", "qop"];
            let mut header = names
                .iter()
                .zip(&values)
                .map(|(name, value)| format!("{name}=\"{}\"", quote(value)))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(algorithm) = &algorithm {
                header.push_str(&format!(", algorithm={algorithm}"));
            }
            let answer = Answer::parse(&header).expect("a well-formed header");
            let read = [
                &answer.username, &answer.realm, &answer.nonce, &answer.uri,
                &answer.response, &answer.cnonce, &answer.nc, &answer.qop,
            ];
            proptest::prop_assert!(read.iter().zip(&values).all(|(read, sent)| *read == sent));
            proptest::prop_assert_eq!(answer.algorithm, algorithm);
        }
    }
}
