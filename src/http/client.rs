//! Who the client is, for counting failed attempts: the peer address, or, when the peer is a
//! trusted proxy, the nearest untrusted address in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

pub fn client_address(parts: &Parts, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer.ip()) {
        return Some(peer.ip());
    }
    // Each proxy appends the address it received from, so the list is read right to left and
    // the first hop that is not one of ours is the client; a client can forge only what lies
    // to the left of it.
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    let hops: Vec<IpAddr> = forwarded
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted(hop))
            .unwrap_or(peer.ip()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

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
}
