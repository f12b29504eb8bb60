//! The client IP that per-IP rate limits are keyed on (S45).
//!
//! By default it is the TCP peer, and forwarding headers are ignored: anyone can send them. With
//! `--trusted-proxy` ranges configured, and only when the peer is in one of them, the chosen header
//! (`--client-ip-header`: `X-Forwarded-For`, or RFC 7239 `Forwarded` `for=`) is read from the right,
//! the hop each proxy appended: the client is the first hop, from the right, that is not a trusted
//! proxy. Hops further left were written by the client itself and are never believed. A hop that
//! cannot be parsed (`unknown`, an obfuscated name, garbage) stops the walk at the last trusted hop
//! (the address of the proxy that forwarded it). This is the algorithm of nginx's
//! `real_ip_recursive on` and of MDN's X-Forwarded-For "rightmost trustworthy" advice.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Which header a trusted proxy writes the client address to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[value(name = "forwarded")]
    Forwarded,
}

/// Parse a `--trusted-proxy` value: an address (`10.0.0.1`, `::1`) or a range (`10.0.0.0/8`).
pub fn parse_trusted_proxy(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid trusted proxy {s:?}: expected an address or a CIDR range"))
}

/// The client address of a request from `peer` (see the module docs).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ClientIpHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers, header);
    let mut ip = peer;
    for hop in hops.iter().rev() {
        let Some(h) = hop else { return ip };
        ip = h.to_canonical();
        if !is_trusted(&ip) {
            return ip;
        }
    }
    ip
}

/// The hops of every instance of the header, left to right; `None` for one that is not an address.
fn forwarded_hops(headers: &HeaderMap, header: ClientIpHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ClientIpHeader::XForwardedFor => "x-forwarded-for",
        ClientIpHeader::Forwarded => "forwarded",
    };
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            match header {
                ClientIpHeader::XForwardedFor => hops.push(parse_node(element.trim())),
                ClientIpHeader::Forwarded => {
                    // An element without `for=` says nothing about this hop's client.
                    let node = element.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| v.trim().trim_matches('"'))
                    });
                    if let Some(node) = node {
                        hops.push(parse_node(node));
                    }
                }
            }
        }
    }
    hops
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(name, HeaderValue::from_static(v));
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
        let xff = h("x-forwarded-for", &["203.0.113.9"]);
        let x = ClientIpHeader::XForwardedFor;
        assert_eq!(client_ip(ip("127.0.0.1"), &xff, &[], x), ip("127.0.0.1"));
        let trusted = [parse_trusted_proxy("10.0.0.0/8").expect("net")];
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff, &trusted, x),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), &xff, &trusted, x),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = [
            parse_trusted_proxy("127.0.0.1").expect("net"),
            parse_trusted_proxy("10.0.0.0/8").expect("net"),
        ];
        let x = ClientIpHeader::XForwardedFor;
        let peer = ip("127.0.0.1");
        // The client wrote "1.1.1.1" itself; the trusted proxies appended the rest.
        let m = h("x-forwarded-for", &["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(peer, &m, &trusted, x), ip("203.0.113.9"));
        // All hops trusted: the leftmost.
        let m = h("x-forwarded-for", &["10.0.0.3, 10.0.0.2"]);
        assert_eq!(client_ip(peer, &m, &trusted, x), ip("10.0.0.3"));
        // Garbage stops the walk at the last trusted hop.
        let m = h("x-forwarded-for", &["203.0.113.9, nonsense, 10.0.0.2"]);
        assert_eq!(client_ip(peer, &m, &trusted, x), ip("10.0.0.2"));
        // No header: the peer.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted, x), peer);
        // An IPv4-mapped peer is the IPv4 address.
        assert_eq!(
            client_ip(
                ip("::ffff:127.0.0.1"),
                &h("x-forwarded-for", &["192.0.2.5"]),
                &trusted,
                x
            ),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn forwarded_for_nodes_with_ports_brackets_and_quotes() {
        let trusted = [parse_trusted_proxy("127.0.0.1").expect("net")];
        let f = ClientIpHeader::Forwarded;
        let peer = ip("127.0.0.1");
        let m = h(
            "forwarded",
            &[r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#],
        );
        assert_eq!(client_ip(peer, &m, &trusted, f), ip("2001:db8:cafe::17"));
        let m = h("forwarded", &["for=192.0.2.43:8080"]);
        assert_eq!(client_ip(peer, &m, &trusted, f), ip("192.0.2.43"));
        let m = h("forwarded", &["for=unknown"]);
        assert_eq!(client_ip(peer, &m, &trusted, f), peer);
        // X-Forwarded-For is not read when Forwarded is the configured header.
        let m = h("x-forwarded-for", &["192.0.2.99"]);
        assert_eq!(client_ip(peer, &m, &trusted, f), peer);
    }

    #[test]
    fn trusted_proxy_values() {
        assert!(parse_trusted_proxy("10.0.0.0/8").is_ok());
        assert!(parse_trusted_proxy("::1").is_ok());
        assert!(parse_trusted_proxy("fd00::/8").is_ok());
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("proxy.local").is_err());
    }
}
