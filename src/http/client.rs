//! Who the client is, for counting failed attempts: the peer address, or, when the peer is a
//! trusted proxy, the address that the chain of trusted proxies in `X-Forwarded-For` vouches for.
//! And where the client reached keygate: the scheme and host its absolute links must carry.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The address failures are counted against, or `None` without a connection address.
///
/// Each proxy appends the address it received from, so the hops are walked right to left from
/// the peer: while the current address is a trusted proxy, the hop it appended is believed. The
/// walk stops at the first untrusted address (the client) or at a hop that is not an address;
/// then the client is the trusted proxy that forwarded it, since nothing further left was said
/// by anyone we trust. If every hop is trusted, the left-most one is the client.
pub fn client_address(parts: &Parts, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    // Several headers are one list in order; bytes rather than text, so that a hop that is not
    // text stops the walk like any other garbage instead of hiding a whole header.
    let hops = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&byte| byte == b','));
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`; canonical form makes them
    // match IPv4 trusted ranges and count as one client with their plain IPv4 form.
    let mut client = peer.ip().to_canonical();
    for hop in hops {
        if !trusted(&client) {
            break;
        }
        // Skipping garbage would let whatever lies left of it, which anyone can forge, become
        // the client, and a client rotating garbage would never be counted twice.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
    }
    Some(client)
}

/// Whether the request's peer is one of the trusted proxies, whose `X-Forwarded-*` are believed.
pub fn from_trusted_proxy(parts: &Parts, trusted_proxies: &[IpNet]) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| {
            let ip = peer.ip().to_canonical();
            trusted_proxies.iter().any(|net| net.contains(&ip))
        })
}

/// `scheme://host[:port]` as the client reached keygate: from a trusted proxy's
/// `X-Forwarded-Proto` and `X-Forwarded-Host`, else plain `http` and the `Host` header. `None`
/// when no host is known or it is not a plain host name or address (it would end up in bodies).
pub fn public_origin(parts: &Parts, trusted_proxies: &[IpNet]) -> Option<String> {
    let trusted = from_trusted_proxy(parts, trusted_proxies);
    let forwarded = |name: &str| {
        trusted
            .then(|| parts.headers.get(name))
            .flatten()
            .and_then(|value| value.to_str().ok())
            // A chain of proxies lists each hop; the first is what the client asked for.
            .and_then(|value| value.split(',').next())
            .map(str::trim)
    };
    let scheme = match forwarded("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = forwarded("x-forwarded-host")
        .or_else(|| parts.headers.get(axum::http::header::HOST)?.to_str().ok())?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    (!host.is_empty() && host.chars().all(plain)).then(|| format!("{scheme}://{host}"))
}

/// One `X-Forwarded-For` entry: an IP address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|address| address.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Request};

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut request = Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 4000)));
        parts
    }

    fn proxies(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_form() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = client_address(
            &parts("::ffff:10.0.0.2", &["::ffff:198.51.100.7"]),
            &trusted,
        );
        assert_eq!(got, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let got = client_address(&parts("203.0.113.9", &["198.51.100.1"]), &[]);
        assert_eq!(
            got,
            Some("203.0.113.9".parse().unwrap()),
            "X-Forwarded-For is ignored"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = client_address(
            &parts("10.0.0.2", &["6.6.6.6, 198.51.100.7, 10.0.0.3"]),
            &trusted,
        );
        assert_eq!(
            got,
            Some("198.51.100.7".parse().unwrap()),
            "the forged left part is skipped"
        );
        let split = client_address(&parts("10.0.0.2", &["198.51.100.8", "10.0.0.5"]), &trusted);
        assert_eq!(
            split,
            Some("198.51.100.8".parse().unwrap()),
            "several headers read as one list"
        );
    }

    #[test]
    fn a_trusted_peer_without_a_usable_header_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(&parts("10.0.0.2", &[]), &trusted),
            Some("10.0.0.2".parse().unwrap())
        );
        let garbage = client_address(&parts("10.0.0.2", &["not-an-ip"]), &trusted);
        assert_eq!(garbage, Some("10.0.0.2".parse().unwrap()));
    }

    fn ip(address: &str) -> Option<IpAddr> {
        Some(address.parse().unwrap())
    }

    #[test]
    fn garbage_forwarded_for_a_client_makes_the_proxy_that_forwarded_it_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(&parts("10.0.0.2", &["198.51.100.7, garbage"]), &trusted),
            ip("10.0.0.2"),
            "what lies left of garbage is not believed"
        );
        assert_eq!(
            client_address(
                &parts("10.0.0.2", &["198.51.100.7, garbage, 10.0.0.3"]),
                &trusted
            ),
            ip("10.0.0.3"),
            "the nearest trusted proxy that forwarded the garbage, never a hop further left"
        );
        assert_eq!(
            client_address(&parts("10.0.0.2", &["198.51.100.7", "garbage"]), &trusted),
            ip("10.0.0.2"),
            "garbage in a later header is to the right of earlier headers"
        );
        assert_eq!(
            client_address(&parts("10.0.0.2", &["198.51.100.7, , 10.0.0.3"]), &trusted),
            ip("10.0.0.3"),
            "an empty hop is garbage too"
        );
    }

    #[test]
    fn a_hop_that_is_not_text_stops_the_walk() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut request = parts("10.0.0.2", &[]);
        request.headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.7, caf\xe9, 10.0.0.3").unwrap(),
        );
        assert_eq!(client_address(&request, &trusted), ip("10.0.0.3"));
    }

    #[test]
    fn garbage_left_of_the_client_is_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = client_address(
            &parts("10.0.0.2", &["garbage, 198.51.100.7, 10.0.0.3"]),
            &trusted,
        );
        assert_eq!(
            got,
            ip("198.51.100.7"),
            "the walk stops at the untrusted hop"
        );
        let untrusted_peer = client_address(&parts("203.0.113.9", &["garbage"]), &trusted);
        assert_eq!(untrusted_peer, ip("203.0.113.9"));
    }

    #[test]
    fn rotating_garbage_from_one_peer_is_always_the_same_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let garbage = (0..1000)
            .map(|i| format!("198.51.100.{i}, junk-{i}"))
            .chain(
                [
                    "1.2.3.4.5",
                    "999.0.0.1",
                    "::g",
                    "[::1]",
                    "1.2.3.4:",
                    "unknown",
                ]
                .map(String::from),
            );
        for value in garbage {
            let got = client_address(&parts("10.0.0.2", &[&value]), &trusted);
            assert_eq!(got, ip("10.0.0.2"), "for {value:?}");
        }
    }

    #[test]
    fn ports_are_stripped() {
        let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let v4 = client_address(&parts("10.0.0.2", &["198.51.100.7:5678"]), &trusted);
        assert_eq!(v4, ip("198.51.100.7"));
        let v6 = client_address(&parts("10.0.0.2", &["[2001:db8::7]:443"]), &trusted);
        assert_eq!(v6, ip("2001:db8::7"));
        let via_proxies = client_address(
            &parts("10.0.0.2", &["198.51.100.7, [fd00::3]:80, 10.0.0.4:8080"]),
            &trusted,
        );
        assert_eq!(
            via_proxies,
            ip("198.51.100.7"),
            "trusted hops with a port are still trusted"
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_left_most_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = client_address(&parts("10.0.0.2", &["10.0.0.9, 10.0.0.3"]), &trusted);
        assert_eq!(got, ip("10.0.0.9"));
    }
}
