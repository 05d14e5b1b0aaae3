//! Webhook signatures made with signing secrets: which key a delivery names (a GitHub
//! repository's `full_name`, a Slack app's `api_app_id`) and whether its signature is that
//! key's HMAC-SHA256 of the raw body, compared in constant time; Slack's only within 300 s of
//! its timestamp, so a captured delivery cannot be replayed later.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::AgentApiKeyType;

/// How far a Slack request's timestamp may be from the server's clock, either way.
pub const SLACK_WINDOW_SECS: i64 = 300;

/// Who signed a webhook delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSource {
    /// `x-hub-signature-256: sha256=<hex HMAC of the body>`.
    Github,
    /// `x-slack-signature: v0=<hex HMAC of "v0:<timestamp>:<body>">` with
    /// `x-slack-request-timestamp`.
    Slack,
}

/// Why a delivery's signature is or is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCode {
    Valid,
    /// The source's signature header (or Slack's timestamp) is absent.
    MissingSignature,
    /// A header is not in the source's format, or the body names no key.
    Malformed,
    /// Slack's timestamp is more than 300 s from now.
    Stale,
    /// The agent has no key of this source with the name the body gives.
    NoKey,
    /// The signature is not the key's HMAC of this body.
    Mismatch,
}

/// A signature as a delivery's headers present it.
pub struct Signature {
    mac: [u8; 32],
    /// Slack signs its timestamp (as sent) with the body.
    slack_timestamp: Option<String>,
}

impl WebhookSource {
    /// The type of the keys that sign this source's deliveries.
    pub const fn key_type(self) -> AgentApiKeyType {
        match self {
            WebhookSource::Github => AgentApiKeyType::Github,
            WebhookSource::Slack => AgentApiKeyType::Slack,
        }
    }

    /// Reads the signature from `headers` (names in any case), refusing before any key is
    /// looked up what no key could make valid: an absent or malformed header, or a Slack
    /// timestamp outside the window around `now` (Unix seconds).
    pub fn signature(
        self,
        headers: &HashMap<String, String>,
        now: i64,
    ) -> Result<Signature, SignatureCode> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
        };
        let (header_name, scheme) = match self {
            WebhookSource::Github => ("x-hub-signature-256", "sha256="),
            WebhookSource::Slack => ("x-slack-signature", "v0="),
        };
        let value = header(header_name).ok_or(SignatureCode::MissingSignature)?;
        let mut mac = [0u8; 32];
        value
            .strip_prefix(scheme)
            .and_then(|hex_mac| hex::decode_to_slice(hex_mac, &mut mac).ok())
            .ok_or(SignatureCode::Malformed)?;
        let slack_timestamp = match self {
            WebhookSource::Github => None,
            WebhookSource::Slack => {
                let sent =
                    header("x-slack-request-timestamp").ok_or(SignatureCode::MissingSignature)?;
                let at: i64 = sent.parse().map_err(|_| SignatureCode::Malformed)?;
                if now.abs_diff(at) > SLACK_WINDOW_SECS.unsigned_abs() {
                    return Err(SignatureCode::Stale);
                }
                Some(sent.to_owned())
            }
        };
        Ok(Signature {
            mac,
            slack_timestamp,
        })
    }

    /// The name of the key the delivery names: the repository's `full_name` (GitHub) or the
    /// app's `api_app_id` (Slack), from a JSON body or a form body (Slack's slash commands
    /// carry `api_app_id` as a field; both sources put JSON in a `payload` field).
    pub fn key_name(self, body: &[u8]) -> Option<String> {
        let pointer = match self {
            WebhookSource::Github => "/repository/full_name",
            WebhookSource::Slack => "/api_app_id",
        };
        let from_json = |json: &[u8]| {
            let value: Value = serde_json::from_slice(json).ok()?;
            value.pointer(pointer)?.as_str().map(str::to_owned)
        };
        if let Some(name) = from_json(body) {
            return Some(name);
        }
        let fields: HashMap<_, _> = url::form_urlencoded::parse(body).collect();
        match (self, fields.get("api_app_id")) {
            (WebhookSource::Slack, Some(name)) => Some(name.to_string()),
            _ => from_json(fields.get("payload")?.as_bytes()),
        }
    }
}

impl Signature {
    /// Whether this is `secret`'s signature of `body`, compared in constant time.
    pub fn is_made_with(&self, secret: &[u8], body: &[u8]) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        if let Some(timestamp) = &self.slack_timestamp {
            mac.update(b"v0:");
            mac.update(timestamp.as_bytes());
            mac.update(b":");
        }
        mac.update(body);
        mac.verify_slice(&self.mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// GitHub's documented example: secret "It's a Secret to Everybody", payload
    /// "Hello, World!".
    #[test]
    fn githubs_documented_signature_verifies() {
        let signed = headers(&[(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let signature = WebhookSource::Github.signature(&signed, 0).unwrap();
        assert!(signature.is_made_with(b"It's a Secret to Everybody", b"Hello, World!"));
        assert!(!signature.is_made_with(b"It's a Secret to Everybody", b"Hello, World?"));
        assert!(!signature.is_made_with(b"It's a Secret to Everybodz", b"Hello, World!"));
    }

    /// Slack's documented example request, signed at 1531420618.
    #[test]
    fn slacks_documented_signature_verifies_within_its_window() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let signed = headers(&[
            ("X-Slack-Request-Timestamp", "1531420618"),
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        let sent = 1_531_420_618;
        for now in [sent, sent + 300, sent - 300] {
            let signature = WebhookSource::Slack.signature(&signed, now).unwrap();
            assert!(signature.is_made_with(secret, body.as_bytes()));
            assert!(!signature.is_made_with(secret, b"token=other"));
        }
        for now in [sent + 301, sent - 301] {
            assert_eq!(
                WebhookSource::Slack.signature(&signed, now).err(),
                Some(SignatureCode::Stale)
            );
        }
    }

    #[test]
    fn absent_and_malformed_headers_are_told_apart() {
        let read = |source: WebhookSource, pairs: &[(&str, &str)]| {
            source.signature(&headers(pairs), 100).err()
        };
        assert_eq!(
            read(WebhookSource::Github, &[]),
            Some(SignatureCode::MissingSignature)
        );
        for bad in [
            "sha1=abc",
            "sha256=zz",
            "sha256=757107ea",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ] {
            assert_eq!(
                read(WebhookSource::Github, &[("x-hub-signature-256", bad)]),
                Some(SignatureCode::Malformed),
                "{bad}"
            );
        }
        let v0 = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(
            read(WebhookSource::Slack, &[("x-slack-signature", v0)]),
            Some(SignatureCode::MissingSignature)
        );
        assert_eq!(
            read(
                WebhookSource::Slack,
                &[
                    ("x-slack-signature", v0),
                    ("x-slack-request-timestamp", "soon")
                ]
            ),
            Some(SignatureCode::Malformed)
        );
    }

    #[test]
    fn the_key_is_named_by_the_body() {
        let github = br#"{"repository": {"full_name": "octo-org/hello-world"}}"#;
        assert_eq!(
            WebhookSource::Github.key_name(github).as_deref(),
            Some("octo-org/hello-world")
        );
        let github_form =
            b"payload=%7B%22repository%22%3A%7B%22full_name%22%3A%22octo%2Frepo%22%7D%7D";
        assert_eq!(
            WebhookSource::Github.key_name(github_form).as_deref(),
            Some("octo/repo")
        );
        assert_eq!(
            WebhookSource::Slack
                .key_name(br#"{"api_app_id": "A0123", "type": "event_callback"}"#)
                .as_deref(),
            Some("A0123")
        );
        assert_eq!(
            WebhookSource::Slack
                .key_name(b"command=%2Fdeploy&api_app_id=A0456")
                .as_deref(),
            Some("A0456")
        );
        assert_eq!(WebhookSource::Github.key_name(b"Hello, World!"), None);
        assert_eq!(WebhookSource::Slack.key_name(github), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::PROPERTY_CASES))]

        #[test]
        fn any_headers_and_body_are_read_or_refused_without_panicking(
            signature in "\\PC{0,80}|(sha256|v0)=[0-9a-fA-F]{0,70}",
            timestamp in "\\PC{0,24}|-?[0-9]{1,22}",
            now in proptest::prelude::any::<i64>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let sent = headers(&[
                ("x-hub-signature-256", &signature),
                ("x-slack-signature", &signature),
                ("x-slack-request-timestamp", &timestamp),
            ]);
            for source in [WebhookSource::Github, WebhookSource::Slack] {
                let _ = source.signature(&sent, now);
                let _ = source.key_name(&body);
            }
        }

        #[test]
        fn a_signature_verifies_with_its_secret_and_body_only(
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            now in 0i64..4_000_000_000,
        ) {
            let timestamp = now.to_string();
            let mut github = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            github.update(&body);
            let mut slack = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            slack.update(format!("v0:{timestamp}:").as_bytes());
            slack.update(&body);
            let signed = [
                (WebhookSource::Github, headers(&[
                    ("X-Hub-Signature-256", &format!("sha256={}", hex::encode(github.finalize().into_bytes()))),
                ])),
                (WebhookSource::Slack, headers(&[
                    ("X-Slack-Request-Timestamp", &timestamp),
                    ("X-Slack-Signature", &format!("v0={}", hex::encode(slack.finalize().into_bytes()))),
                ])),
            ];
            let mut other_secret = secret.clone();
            other_secret[0] ^= 1;
            for (source, sent) in signed {
                let signature = source.signature(&sent, now).unwrap();
                proptest::prop_assert!(signature.is_made_with(&secret, &body));
                proptest::prop_assert!(!signature.is_made_with(&other_secret, &body));
                proptest::prop_assert!(!signature.is_made_with(&secret, &[&body[..], b"x"].concat()));
            }
        }
    }
}
