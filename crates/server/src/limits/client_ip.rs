//! Who is on the other end: the socket peer, or — when the peer is a trusted
//! proxy — the address it forwarded in `X-Forwarded-For`.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address, as the limits middleware resolved it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// From a request's extensions: the resolved address, else the socket peer.
    pub fn of(parts: &Parts) -> Option<ClientIp> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| ClientIp(c.0.ip().to_canonical())))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientIp::of(parts).unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Resolves the client address. `X-Forwarded-For` is read right to left,
/// skipping trusted proxies: the first address not ours is the client. Entries
/// further left were written by that client and could be anything.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| parse_hop(entry.trim()))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port or brackets.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::settings::parse_networks;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn untrusted_peers_are_taken_as_they_are() {
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(resolve(ip, &headers("203.0.113.1"), &[]), ip);
    }

    #[test]
    fn trusted_proxies_forward_the_nearest_untrusted_hop() {
        let trusted = parse_networks("127.0.0.1, 10.0.0.0/8").unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolve(peer, &headers("203.0.113.9"), &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        // A spoofed entry on the left does not win over what the proxy saw.
        assert_eq!(
            resolve(peer, &headers("6.6.6.6, 203.0.113.9, 10.1.2.3"), &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), peer);
        assert_eq!(resolve(peer, &headers("garbage"), &trusted), peer);
        assert_eq!(resolve(peer, &headers("[2001:db8::1]:443"), &trusted), "2001:db8::1".parse::<IpAddr>().unwrap());
    }
}
