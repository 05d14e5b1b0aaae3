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
///
/// Verification parses one per request, and a general URL parse cost more than the rest of a
/// cached verification: the form keygate itself builds is read directly, anything else (IPv6
/// hosts, paths, escapes in the query, odd spacing) by the URL parser, with the same result.
pub fn parse_dsn(value: &str) -> Option<Dsn> {
    built_form(value).or_else(|| parse_dsn_as_url(value))
}

/// A DSN in the form [`build_dsn`] writes, `grpc(s)://name:key@host:port?query`, in which every
/// character is one the URL parser keeps as it is: then reading the parts directly is what the
/// URL parser would read. `None` for anything else, or an empty name or key.
fn built_form(value: &str) -> Option<Dsn> {
    let rest = value
        .strip_prefix("grpc://")
        .or_else(|| value.strip_prefix("grpcs://"))?;
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let (user_info, host_port) = authority.split_once('@')?;
    let (name, key) = user_info.split_once(':')?;
    let (host, port) = host_port.split_once(':')?;
    let simple_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let simple_port = (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok();
    let simple_query = query.is_none_or(|query| {
        query
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~=&".contains(&b))
    });
    if !(unreserved_or_escaped(name)
        && unreserved_or_escaped(key)
        && simple_host
        && simple_port
        && simple_query)
    {
        return None;
    }
    let name = percent_decode(name)?;
    let key = percent_decode(key)?;
    // The query's pairs as the URL parser splits them; no character in it is escaped.
    let mode = query.and_then(|query| {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(k, _)| *k == "mode")
            .map(|(_, v)| v.to_owned())
    });
    (!name.is_empty() && !key.is_empty()).then_some(Dsn { name, key, mode })
}

/// RFC 3986's unreserved characters and well-formed `%XX` escapes only: what the URL parser
/// leaves as it is in a user name or password.
fn unreserved_or_escaped(part: &str) -> bool {
    let bytes = part.as_bytes();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b == b'%' {
            if !bytes
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            {
                return false;
            }
            at += 3;
        } else if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            at += 1;
        } else {
            return false;
        }
    }
    true
}

/// Any DSN, read by the general URL parser.
fn parse_dsn_as_url(value: &str) -> Option<Dsn> {
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
    fn the_built_form_is_read_without_the_url_parser() {
        let dsn = "grpc://default:xagt-abc_1%25@gw.example.com:8010?mode=standard";
        assert_eq!(built_form(dsn), parse_dsn_as_url(dsn));
        assert_eq!(built_form(dsn).unwrap().key, "xagt-abc_1%");
        // An IPv6 host is the URL parser's to read.
        assert!(built_form("grpc://n:k@[::1]:8010").is_none());
        assert!(parse_dsn("grpc://n:k@[::1]:8010").is_some());
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
        fn the_built_form_is_read_as_the_url_parser_reads_it(
            dsn in "grpcs?://([a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|%[cC]3){0,8}:\
                ([a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|%[cC]3){0,8}@[a-z0-9.-]{0,8}:[0-9]{0,6}\
                (\\?([a-z=&._~-]){0,16})?",
            noise in proptest::option::of((0usize..40, "[%:@/?# +\\[\\]\t]")),
        ) {
            // The form itself, and with a character the direct reading must leave to the parser.
            let mut text = dsn;
            if let Some((at, noise)) = noise {
                let at = (0..=at.min(text.len())).rev().find(|at| text.is_char_boundary(*at)).unwrap_or(0);
                text.insert_str(at, &noise);
            }
            proptest::prop_assert_eq!(parse_dsn(&text), parse_dsn_as_url(&text), "{}", text);
        }

        #[test]
        fn any_text_parses_as_a_dsn_or_not_without_panicking(
            text in "\\PC{0,80}|grpcs?://[^@]{0,20}@[a-z0-9.:\\[\\]]{0,20}(\\?.{0,20})?",
        ) {
            let _ = parse_dsn(&text);
        }
    }
}
