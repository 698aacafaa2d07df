//! The client's address: the one place that decides where a request came from, for every
//! per-address counter, the stored session address and the audit log.
//!
//! The TCP peer is the client unless it is a configured trusted proxy (`trusted_proxies`). Only
//! then are `X-Forwarded-For` (or, without it, `Forwarded`, RFC 7239 §4) believed: walking the
//! chain from the right, each hop that is itself a trusted proxy vouches for the one before it, and
//! the first address that is not a trusted proxy is the client. From anyone else those headers are
//! ignored, so a client cannot choose the address it is counted under.
//!
//! The proxy must append to (or overwrite) the header it sets, and Tessera reads only that one
//! header (`forwarded_header`: `X-Forwarded-For` by default, or `Forwarded`): a header of the
//! other kind can only have come from the client, so it is never read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};

/// Entries of a forwarding chain looked at, from the right; a longer chain is cut there.
const MAX_HOPS: usize = 32;

/// One network, `address/prefix` (a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `ip` with every bit after the first `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & keep))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

/// The `trusted_proxies` setting: networks whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Comma-separated CIDR networks; empty means none (forwarding headers are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// The `admin_allowed_networks` setting: the only networks the admin console and API answer
/// (empty: anywhere). Parsed like `trusted_proxies`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<Cidr>);

impl AllowedNetworks {
    /// Comma-separated CIDR networks (or single addresses); empty means anywhere.
    pub fn parse(text: &str) -> Result<Self, String> {
        TrustedProxies::parse(text).map(|t| Self(t.0))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// Which forwarding header the trusted proxies set (`forwarded_header`); the other is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!("`{other}` is not `x-forwarded-for` or `forwarded`")),
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// The key a per-address counter uses: the address itself for IPv4, its /64 network for IPv6
    /// (one subscriber usually holds a whole /64, so counting single addresses would let one party
    /// rotate through billions of them).
    pub fn limit_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(_) => format!("{}/64", mask(self.0, 64)),
        }
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The client address of `req` (see the module documentation).
pub fn client_addr(req: &HttpRequest) -> Option<ClientAddr> {
    let peer = req.peer_addr()?.ip();
    let config = req
        .app_data::<web::Data<super::AppState>>()
        .map(|s| (&s.config.trusted_proxies, s.config.forwarded_header));
    Some(match config {
        Some((t, header)) => resolve(peer, req.headers(), t, header),
        None => ClientAddr(peer.to_canonical()),
    })
}

/// The client behind `peer`, believing the forwarding headers only from trusted proxies.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
    header: ForwardedHeader,
) -> ClientAddr {
    let peer = peer.to_canonical();
    if !trusted.trusts(peer) {
        return ClientAddr(peer);
    }
    let chain = forwarded_chain(headers, header);
    if chain.is_empty() {
        warn_if_the_proxy_sets_the_other_header(headers, header);
    }
    let mut client = peer;
    for hop in chain.iter().rev().take(MAX_HOPS) {
        // A hop we cannot read (garbage, `unknown`, an obfuscated name) ends what we can vouch
        // for: the client is the last address a trusted proxy named.
        let Some(ip) = hop else { break };
        client = *ip;
        if !trusted.trusts(*ip) {
            break;
        }
    }
    ClientAddr(client)
}

/// A trusted proxy that sends only the header Tessera does not read makes every client look like
/// the proxy (one shared bucket for every per-address limit): said once in the log.
fn warn_if_the_proxy_sets_the_other_header(headers: &HeaderMap, header: ForwardedHeader) {
    let (other, setting) = match header {
        ForwardedHeader::XForwardedFor => ("forwarded", "forwarded"),
        ForwardedHeader::Forwarded => ("x-forwarded-for", "x-forwarded-for"),
    };
    if headers.contains_key(other) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                header = other,
                "a trusted proxy sent only the {other} header, which is not read: every client \
                 behind it counts as the proxy's address; set forwarded_header = \"{setting}\" \
                 if that is the header your proxies set"
            );
        });
    }
}

/// The addresses of the forwarding chain, left (origin) to right (nearest proxy); `None` for
/// an entry that is not an address.
///
/// Header values are read as bytes: a line holding bytes that are not visible ASCII (which a
/// client can put in the part it sends and a proxy passes on before appending its own entry)
/// yields garbage entries where those bytes are, never a line dropped as a whole (which would
/// throw away the entry the proxy appended to it).
fn forwarded_chain(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    fn entry(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes).ok()
    }
    if header == ForwardedHeader::XForwardedFor {
        return headers
            .get_all("x-forwarded-for")
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|e| entry(e).and_then(node_address))
            .collect();
    }
    headers
        .get_all("forwarded")
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|element| {
            entry(element).and_then(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| node_address(value))
            })
        })
        .collect()
}

/// An address from one chain entry: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, any of them in double quotes (RFC 7239 §6).
fn node_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let entry = entry
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(entry)
        .trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| IpAddr::V6(v6).to_canonical());
    }
    // IPv4 with a port.
    let (host, port) = entry.split_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).unwrap()
    }

    /// The client as the proxies' header (`X-Forwarded-For`) says.
    fn client(peer: &str, trusted: &str, h: &[(&str, &str)]) -> String {
        client_by(ForwardedHeader::XForwardedFor, peer, trusted, h)
    }

    fn client_by(header: ForwardedHeader, peer: &str, trusted: &str, h: &[(&str, &str)]) -> String {
        resolve(ip(peer), &headers(h), &proxies(trusted), header).to_string()
    }

    #[test]
    fn cidr_networks_parse_and_match_by_prefix() {
        let net = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(
            net.contains(ip("::ffff:10.0.0.9")),
            "IPv4-mapped IPv6 is IPv4"
        );
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("198.51.100.1"))
        );
    }

    #[test]
    fn bad_trusted_proxy_settings_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0/8",
            "1.2.3.4/x",
            "/8",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(
            TrustedProxies::parse(" 10.0.0.0/8, ::1 ,").unwrap().0.len(),
            2
        );
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let spoof = [
            ("x-forwarded-for", "203.0.113.5"),
            ("forwarded", "for=203.0.113.6"),
        ];
        for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
            assert_eq!(
                client_by(header, "198.51.100.9", "", &spoof),
                "198.51.100.9"
            );
            assert_eq!(
                client_by(header, "198.51.100.9", "10.0.0.0/8", &spoof),
                "198.51.100.9"
            );
        }
    }

    #[test]
    fn the_right_most_address_that_is_not_a_trusted_proxy_is_the_client() {
        let t = "10.0.0.0/8, 127.0.0.1";
        // The client forged the first entry; the proxy appended the real one.
        let h = [("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.0.0.3")];
        assert_eq!(client("127.0.0.1", t, &h), "203.0.113.5");
        // Several header lines form one list, in order.
        let h = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.7"),
        ];
        assert_eq!(client("10.0.0.1", t, &h), "203.0.113.7");
        // Every hop trusted: the left-most is the client.
        let h = [("x-forwarded-for", "10.0.0.8, 10.0.0.9")];
        assert_eq!(client("10.0.0.1", t, &h), "10.0.0.8");
        // No header: the peer itself.
        assert_eq!(client("10.0.0.1", t, &[]), "10.0.0.1");
    }

    #[test]
    fn forwarded_entries_with_ports_and_quoted_ipv6_are_read() {
        let t = "10.0.0.0/8";
        let fwd = ForwardedHeader::Forwarded;
        let h = [(
            "forwarded",
            "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
        )];
        assert_eq!(client_by(fwd, "10.0.0.1", t, &h), "2001:db8:cafe::17");
        let h = [("forwarded", "for=\"198.51.100.17:8080\";proto=https")];
        assert_eq!(client_by(fwd, "10.0.0.1", t, &h), "198.51.100.17");
        let h = [("x-forwarded-for", "[2001:db8::5]:443, 198.51.100.3:1234")];
        assert_eq!(client("10.0.0.1", t, &h), "198.51.100.3");
    }

    #[test]
    fn only_the_header_the_proxies_set_is_read_so_the_client_cannot_add_the_other() {
        let t = "10.0.0.0/8";
        let h = [
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ];
        assert_eq!(client("10.0.0.1", t, &h), "192.0.2.2");
        assert_eq!(
            client_by(ForwardedHeader::Forwarded, "10.0.0.1", t, &h),
            "192.0.2.1"
        );
        // Behind a proxy that sets only Forwarded, a client-sent X-Forwarded-For is not read...
        let h = [("x-forwarded-for", "198.51.100.99")];
        assert_eq!(
            client_by(ForwardedHeader::Forwarded, "10.0.0.1", t, &h),
            "10.0.0.1"
        );
        // ...and behind one that sets X-Forwarded-For, a client-sent Forwarded is not either.
        let h = [("forwarded", "for=198.51.100.99")];
        assert_eq!(client("10.0.0.1", t, &h), "10.0.0.1");
        assert_eq!(
            ForwardedHeader::parse(" Forwarded "),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!(ForwardedHeader::parse("x-real-ip").is_err());
    }

    #[test]
    fn garbage_in_the_chain_stops_at_the_last_address_a_trusted_proxy_named() {
        let t = "10.0.0.0/8";
        for garbage in [
            "not-an-ip",
            "unknown",
            "_hidden",
            "1.2.3.4.5",
            "[::1",
            "",
            "::1]:80",
        ] {
            let h = [(
                "x-forwarded-for",
                format!("203.0.113.9, {garbage}, 10.0.0.4"),
            )];
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(client("10.0.0.1", t, &h), "10.0.0.4", "{garbage:?}");
        }
        let fwd = ForwardedHeader::Forwarded;
        let h = [("forwarded", "for=unknown")];
        assert_eq!(client_by(fwd, "10.0.0.1", t, &h), "10.0.0.1");
        let h = [("forwarded", "proto=https")];
        assert_eq!(client_by(fwd, "10.0.0.1", t, &h), "10.0.0.1");
    }

    #[test]
    fn a_forwarding_line_with_bytes_outside_visible_ascii_is_not_dropped_as_a_whole() {
        let t = "10.0.0.0/8";
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"\x80\xff, 203.0.113.66").unwrap(),
        );
        h.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_static("for=198.51.100.20"),
        );
        assert_eq!(
            resolve(
                ip("10.0.0.1"),
                &h,
                &proxies(t),
                ForwardedHeader::XForwardedFor
            )
            .to_string(),
            "203.0.113.66",
            "the entry the proxy appended counts, not the client's Forwarded header"
        );
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_bytes(b"for=\"_\xe9\", for=192.0.2.9").unwrap(),
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies(t), ForwardedHeader::Forwarded).to_string(),
            "192.0.2.9"
        );
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64_and_ipv4_per_address() {
        let a = ClientAddr(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientAddr(ip("2001:db8:1:2:bbbb::9"));
        let c = ClientAddr(ip("2001:db8:1:3::1"));
        assert_eq!(a.limit_key(), "2001:db8:1:2::/64");
        assert_eq!(a.limit_key(), b.limit_key());
        assert_ne!(a.limit_key(), c.limit_key());
        assert_eq!(a.to_string(), "2001:db8:1:2:aaaa::1", "shown in full");
        assert_eq!(ClientAddr(ip("192.0.2.1")).limit_key(), "192.0.2.1");
    }
}
