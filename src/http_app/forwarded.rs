//! `--forwarded-allow-ips`: which proxies may name the client with X-Forwarded-For.
//! Behind a trusted proxy the logs show the client's address instead of the proxy's;
//! the last address in the header is the one the proxy saw (nginx's
//! `$proxy_add_x_forwarded_for` appends it), so a client cannot forge its own.

use std::net::IpAddr;

/// Gunicorn's default: only a proxy on this host is trusted.
pub const DEFAULT: &str = "127.0.0.1,::1";

/// One entry of the list: an address, a network (`10.0.0.0/8`), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trusted {
    Any,
    Network(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Trusted>);

impl TrustedProxies {
    /// Parses Gunicorn's comma-separated list; entries that are not addresses or
    /// networks are skipped (Gunicorn would refuse them at start).
    pub fn parse(list: &str) -> TrustedProxies {
        let entries = list
            .split(',')
            .map(str::trim)
            .filter_map(|entry| {
                if entry == "*" {
                    return Some(Trusted::Any);
                }
                let (address, bits) = match entry.split_once('/') {
                    Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
                    None => (entry, None),
                };
                let ip: IpAddr = address.parse().ok()?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = bits.unwrap_or(max);
                (bits <= max).then_some(Trusted::Network(ip, bits))
            })
            .collect();
        TrustedProxies(entries)
    }

    /// Whether `peer` is on the list.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|t| match *t {
            Trusted::Any => true,
            Trusted::Network(net, bits) => same_network(net, peer, bits),
        })
    }

    /// The client's address: the last X-Forwarded-For entry when the peer is a
    /// trusted proxy and the entry is an address, else the peer.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        forwarded_for
            .and_then(|header| header.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer)
    }
}

fn same_network(net: IpAddr, ip: IpAddr, bits: u8) -> bool {
    let mask = |width: u32| -> u128 {
        if bits == 0 {
            0
        } else {
            (!0u128) << (width - u32::from(bits))
        }
    };
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let m = mask(32);
            (u128::from(u32::from(n)) & m) == (u128::from(u32::from(i)) & m)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            (u128::from(n) & mask(128)) == (u128::from(i) & mask(128))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_others_do_not() {
        let local = TrustedProxies::parse(DEFAULT);
        let xff = Some("203.0.113.9");
        assert_eq!(local.client(ip("127.0.0.1"), xff), ip("203.0.113.9"));
        assert_eq!(local.client(ip("::1"), xff), ip("203.0.113.9"));
        assert_eq!(local.client(ip("198.51.100.7"), xff), ip("198.51.100.7"));
        // What nginx appended is used, not what the client wrote before it.
        assert_eq!(
            local.client(ip("127.0.0.1"), Some("6.6.6.6, 203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(
            local.client(ip("127.0.0.1"), Some("garbage")),
            ip("127.0.0.1")
        );
        assert_eq!(local.client(ip("127.0.0.1"), None), ip("127.0.0.1"));

        let nets = TrustedProxies::parse("10.0.0.0/8, 2001:db8::/32, nonsense");
        assert_eq!(nets.client(ip("10.20.30.40"), xff), ip("203.0.113.9"));
        assert_eq!(nets.client(ip("11.0.0.1"), xff), ip("11.0.0.1"));
        assert_eq!(nets.client(ip("2001:db8::5"), xff), ip("203.0.113.9"));
        assert_eq!(nets.client(ip("::ffff:10.1.1.1"), xff), ip("203.0.113.9"));
        let all = TrustedProxies::parse("*");
        assert_eq!(all.client(ip("198.51.100.7"), xff), ip("203.0.113.9"));
    }
}
