//! hoop agent keys travel inside a DSN: `grpc(s)://<name>:<key>@<host>:<port>?mode=<mode>`.
//! The DSN is built and parsed as a URL, so names and keys are escaped, IPv6 hosts keep their
//! brackets, and a gateway URL without a port gets the scheme's default.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::Url;

/// Everything but RFC 3986's unreserved characters is escaped in the user-info part.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// hoop's gRPC port is the default for plain `grpc://`; TLS (`grpcs://`) defaults to 443.
pub const fn default_port(scheme: &str) -> Option<u16> {
    match scheme.as_bytes() {
        b"grpc" => Some(8010),
        b"grpcs" => Some(443),
        _ => None,
    }
}

/// An agent DSN: the agent's name, its key and its mode, addressed at the gateway.
#[derive(PartialEq, Eq)]
pub struct Dsn {
    pub name: String,
    pub key: String,
    pub mode: Option<String>,
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dsn")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Builds the DSN shown to the user once, from the configured gateway URL.
pub fn build_dsn(gateway: &Url, name: &str, key: &str, mode: &str) -> String {
    let mut url = gateway.clone();
    if url.port().is_none() {
        // A non-special scheme has no implicit port, so an absent one must be written out.
        url.set_port(default_port(gateway.scheme()))
            .expect("gateway URL has a host");
    }
    let name = utf8_percent_encode(name, USERINFO).to_string();
    let key = utf8_percent_encode(key, USERINFO).to_string();
    url.set_username(&name).expect("gateway URL has a host");
    url.set_password(Some(&key))
        .expect("gateway URL has a host");
    url.set_path("");
    url.query_pairs_mut().clear().append_pair("mode", mode);
    url.into()
}

/// Parses a presented DSN; `None` when it is not a `grpc(s)://name:key@…` URL.
pub fn parse_dsn(value: &str) -> Option<Dsn> {
    let url = Url::parse(value).ok()?;
    default_port(url.scheme())?;
    let name = percent_decode(url.username())?;
    let key = percent_decode(url.password()?)?;
    let mode = url
        .query_pairs()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.into_owned());
    (!name.is_empty() && !key.is_empty()).then_some(Dsn { name, key, mode })
}

fn percent_decode(value: &str) -> Option<String> {
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(url: &str) -> Url {
        Url::parse(url).unwrap()
    }

    #[test]
    fn builds_the_hoop_layout() {
        let dsn = build_dsn(
            &gateway("grpc://127.0.0.1:8010"),
            "default",
            "xagt-abc",
            "standard",
        );
        assert_eq!(dsn, "grpc://default:xagt-abc@127.0.0.1:8010?mode=standard");
    }

    #[test]
    fn missing_port_gets_the_scheme_default() {
        let plain = build_dsn(&gateway("grpc://gw.example.com"), "a_1", "k", "embedded");
        assert_eq!(plain, "grpc://a_1:k@gw.example.com:8010?mode=embedded");
        let tls = build_dsn(&gateway("grpcs://gw.example.com"), "a_1", "k", "standard");
        assert_eq!(tls, "grpcs://a_1:k@gw.example.com:443?mode=standard");
    }

    #[test]
    fn ipv6_hosts_keep_brackets_and_round_trip() {
        let dsn = build_dsn(
            &gateway("grpcs://[2001:db8::1]:9000"),
            "my.agent",
            "xagt-k_-",
            "standard",
        );
        assert_eq!(
            dsn,
            "grpcs://my.agent:xagt-k_-@[2001:db8::1]:9000?mode=standard"
        );
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(
            parsed,
            Dsn {
                name: "my.agent".into(),
                key: "xagt-k_-".into(),
                mode: Some("standard".into())
            }
        );
    }

    #[test]
    fn special_characters_are_escaped_and_round_trip() {
        let dsn = build_dsn(
            &gateway("grpc://h:1"),
            "we:ird@name/x",
            "p@ss:w/rd%",
            "standard",
        );
        assert!(
            dsn.starts_with("grpc://we%3Aird%40name%2Fx:p%40ss%3Aw%2Frd%25@h:1"),
            "{dsn}"
        );
        let parsed = parse_dsn(&dsn).unwrap();
        assert_eq!(parsed.name, "we:ird@name/x");
        assert_eq!(parsed.key, "p@ss:w/rd%");
    }

    #[test]
    fn non_dsn_strings_do_not_parse() {
        assert!(parse_dsn("xagt-abc").is_none());
        assert!(parse_dsn("https://a:b@h:1").is_none());
        assert!(parse_dsn("grpc://h:1?mode=standard").is_none());
    }

    #[test]
    fn debug_hides_the_key() {
        let dsn = parse_dsn("grpc://n:secretkey@h:1").unwrap();
        assert!(!format!("{dsn:?}").contains("secretkey"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::PROPERTY_CASES))]

        #[test]
        fn any_name_key_and_mode_round_trip_through_the_dsn(
            gateway_url in proptest::sample::select(vec![
                "grpc://127.0.0.1:8010", "grpcs://gw.example.com", "grpc://[2001:db8::1]:9000",
            ]),
            name in ".{1,40}",
            key in ".{1,60}",
            mode in ".{0,20}",
        ) {
            let dsn = build_dsn(&gateway(gateway_url), &name, &key, &mode);
            proptest::prop_assert_eq!(parse_dsn(&dsn), Some(Dsn { name, key, mode: Some(mode) }));
        }

        #[test]
        fn any_text_parses_as_a_dsn_or_not_without_panicking(
            text in "\\PC{0,80}|grpcs?://[^@]{0,20}@[a-z0-9.:\\[\\]]{0,20}(\\?.{0,20})?",
        ) {
            let _ = parse_dsn(&text);
        }
    }
}
