//! Where the API may send a request on a user's behalf (webhook deliveries): the checks
//! against server-side request forgery. Pure: the caller resolves the host, hands the
//! addresses here, and connects only to an address that passed (no second resolution that
//! a rebinding DNS server could answer differently).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest destination URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("must be an absolute URL of at most 2,048 characters")]
    Malformed,
    #[error("must use https")]
    NotHttps,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("resolves to {0}, which is not a public address")]
    NotPublic(IpAddr),
    #[error("resolves to no address")]
    Unresolved,
}

/// A destination URL, checked for its form: `https://host[:port]/…` (and, when
/// `allow_loopback`, `http://127.0.0.1:PORT/…` or `http://localhost:PORT/…`, so that local
/// tests can receive). Returns the host and port to resolve.
pub fn parse(raw: &str, allow_loopback: bool) -> Result<(url::Url, String, u16), Refusal> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(Refusal::Malformed);
    }
    let url = url::Url::parse(raw).map_err(|_| Refusal::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(Refusal::Malformed),
    };
    let local_receiver =
        allow_loopback && url.scheme() == "http" && (host == "127.0.0.1" || host == "localhost");
    if url.scheme() != "https" && !local_receiver {
        return Err(Refusal::NotHttps);
    }
    let port = url.port_or_known_default().ok_or(Refusal::Malformed)?;
    Ok((url, host, port))
}

/// Whether loopback addresses may be connected to for `host`: only for the local
/// receivers `parse` lets through (`http://127.0.0.1`, `http://localhost`) when
/// `allow_loopback`, never for another name, nor `https://127.0.0.1/` or `https://[::1]/`.
pub fn loopback_for(url: &url::Url, allow_loopback: bool) -> bool {
    allow_loopback && url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost"))
}

/// The first address of `resolved` that may be connected to: every address must pass
/// (a name that resolves to one public and one private address is refused), so that
/// whichever the connection would pick is safe.
pub fn choose(resolved: &[IpAddr], allow_loopback: bool) -> Result<IpAddr, Refusal> {
    let first = *resolved.first().ok_or(Refusal::Unresolved)?;
    for ip in resolved {
        if !(is_public(*ip) || (allow_loopback && ip.is_loopback())) {
            return Err(Refusal::NotPublic(*ip));
        }
    }
    Ok(first)
}

/// A globally routable unicast address: not loopback, private, link-local (the metadata
/// service's 169.254.169.254 among them), unique-local, shared (CGNAT), unspecified,
/// multicast, broadcast, documentation, benchmarking or reserved; IPv6 forms that embed an
/// IPv4 address are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => is_public_v6(a),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    !(a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || b0 == 0 // "this network"
        || (b0 == 100 && (64..128).contains(&b1)) // shared address space (CGNAT)
        || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking
        || b0 >= 240) // reserved
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = a.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated) and the like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_unicast_addresses_pass() {
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:2800:220:1:248:1893:25c8:1946",
            "::ffff:93.184.216.34",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
    }

    #[test]
    fn every_resolved_address_must_pass() {
        assert_eq!(choose(&[ip("93.184.216.34")], false), Ok(ip("93.184.216.34")));
        assert_eq!(
            choose(&[ip("93.184.216.34"), ip("10.0.0.1")], false),
            Err(Refusal::NotPublic(ip("10.0.0.1")))
        );
        assert_eq!(choose(&[], false), Err(Refusal::Unresolved));
        assert_eq!(
            choose(&[ip("127.0.0.1")], false),
            Err(Refusal::NotPublic(ip("127.0.0.1")))
        );
        // Locally a test's receiver on loopback, and nothing else private.
        assert_eq!(choose(&[ip("127.0.0.1")], true), Ok(ip("127.0.0.1")));
        assert_eq!(
            choose(&[ip("10.0.0.1")], true),
            Err(Refusal::NotPublic(ip("10.0.0.1")))
        );
    }

    #[test]
    fn urls_are_https_without_credentials() {
        let (_, host, port) = parse("https://hooks.example.org/bookshelf", false).unwrap();
        assert_eq!((host.as_str(), port), ("hooks.example.org", 443));
        assert_eq!(
            parse("http://hooks.example.org/x", false).unwrap_err(),
            Refusal::NotHttps
        );
        assert_eq!(
            parse("https://user:pw@hooks.example.org/", false).unwrap_err(),
            Refusal::Credentials
        );
        assert_eq!(parse("not a url", false).unwrap_err(), Refusal::Malformed);
        assert_eq!(parse("ftp://example.org/", false).unwrap_err(), Refusal::NotHttps);
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(parse(&long, false).unwrap_err(), Refusal::Malformed);
        // Loopback over http only where allowed (locally), and only by these two names.
        assert_eq!(
            parse("http://127.0.0.1:9999/hook", false).unwrap_err(),
            Refusal::NotHttps
        );
        let (_, host, port) = parse("http://127.0.0.1:9999/hook", true).unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 9999));
        assert!(parse("http://localhost:8080/", true).is_ok());
        assert_eq!(
            parse("http://10.0.0.1:8080/", true).unwrap_err(),
            Refusal::NotHttps
        );
        // https to a private literal passes the form check; `choose` refuses the address.
        let (_, host, _) = parse("https://169.254.169.254/latest/meta-data", false).unwrap();
        assert_eq!(
            choose(&[host.parse().unwrap()], false),
            Err(Refusal::NotPublic(ip("169.254.169.254")))
        );
        // Other spellings of the same address are normalised first (WHATWG URL parsing).
        for spelling in [
            "https://2852039166/",
            "https://0xa9.0xfe.0xa9.0xfe/",
            "https://[::ffff:a9fe:a9fe]/",
        ] {
            let (_, host, _) = parse(spelling, false).unwrap();
            assert!(
                choose(&[host.parse().unwrap()], false).is_err(),
                "{spelling} → {host}"
            );
        }
    }
}
