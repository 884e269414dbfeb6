//! Listen and upstream addresses as an admin writes them, and the rules that
//! keep the relay from forwarding to itself.
//!
//! Written forms (as dns64d's `--listen` and `--upstream`): `ip:port`,
//! `[ipv6]:port`, or a bare address meaning port 53.

use core::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Why a written address cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not an address, `ip:port` or `[ipv6]:port`.
    Syntax,
    /// Port 0.
    PortZero,
    /// An upstream that is not IPv6: the relay exists to reach IPv6 servers.
    NotIpv6,
    /// An IPv4-mapped upstream (`::ffff:a.b.c.d`) would go out over IPv4.
    Ipv4Mapped,
    /// `::` or a multicast address: no server there.
    NotUnicast,
    /// The upstream is one of the relay's own listen addresses.
    IsListenAddress,
}

impl core::fmt::Display for AddressError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(match self {
            Self::Syntax => "expected an address, ip:port or [ipv6]:port",
            Self::PortZero => "port 0 is not allowed",
            Self::NotIpv6 => "an upstream must be an IPv6 address (the relay forwards over IPv6)",
            Self::Ipv4Mapped => {
                "an IPv4-mapped address goes out over IPv4 (and may be the relay itself); use an IPv6 server"
            }
            Self::NotUnicast => "the unspecified and multicast addresses are not servers",
            Self::IsListenAddress => "it is the relay's own listen address (a loop)",
        })
    }
}

/// Parses `ip`, `ip:port` or `[ipv6]:port`; a bare address gets port 53.
pub fn parse_socket_address(text: &str) -> Result<SocketAddr, AddressError> {
    let text = text.trim();
    let address = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, DNS_PORT)
    } else if let Some(inner) = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let ip = inner
            .parse::<Ipv6Addr>()
            .map_err(|_| AddressError::Syntax)?;
        SocketAddr::new(IpAddr::V6(ip), DNS_PORT)
    } else {
        text.parse::<SocketAddr>()
            .map_err(|_| AddressError::Syntax)?
    };
    if address.port() == 0 {
        return Err(AddressError::PortZero);
    }
    Ok(address)
}

/// Parses a listen address (IPv4 or IPv6, any port but 0).
pub fn parse_listen(text: &str) -> Result<SocketAddr, AddressError> {
    parse_socket_address(text)
}

/// Parses an upstream and checks it against the loop rules: IPv6 unicast,
/// not IPv4-mapped (no IPv4 loopback in disguise), not a listen address.
pub fn parse_upstream(text: &str, listen: &[SocketAddr]) -> Result<SocketAddrV6, AddressError> {
    let address = match parse_socket_address(text)? {
        SocketAddr::V6(address) => address,
        SocketAddr::V4(_) => return Err(AddressError::NotIpv6),
    };
    check_upstream(address, listen)?;
    Ok(address)
}

/// The loop rules for an upstream, also applied to discovered servers.
pub fn check_upstream(address: SocketAddrV6, listen: &[SocketAddr]) -> Result<(), AddressError> {
    let ip = *address.ip();
    if ip.to_ipv4_mapped().is_some() {
        return Err(AddressError::Ipv4Mapped);
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(AddressError::NotUnicast);
    }
    if address.port() == 0 {
        return Err(AddressError::PortZero);
    }
    let is_listen = listen.iter().any(|listen| match listen {
        SocketAddr::V6(listen) => listen.port() == address.port() && listen.ip() == &ip,
        SocketAddr::V4(_) => false,
    });
    if is_listen {
        return Err(AddressError::IsListenAddress);
    }
    Ok(())
}

/// The site-local DNS servers XP's IPv6 stack itself uses when nothing else
/// is configured (`fec0:0:0:ffff::1`, `::2`, `::3`, RFC draft
/// "well-known site-local DNS", as shipped in Windows XP SP1 and later).
pub const WELL_KNOWN_SITE_LOCAL: [SocketAddrV6; 3] = [
    SocketAddrV6::new(
        Ipv6Addr::new(0xfec0, 0, 0, 0xffff, 0, 0, 0, 1),
        DNS_PORT,
        0,
        0,
    ),
    SocketAddrV6::new(
        Ipv6Addr::new(0xfec0, 0, 0, 0xffff, 0, 0, 0, 2),
        DNS_PORT,
        0,
        0,
    ),
    SocketAddrV6::new(
        Ipv6Addr::new(0xfec0, 0, 0, 0xffff, 0, 0, 0, 3),
        DNS_PORT,
        0,
        0,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn v6(text: &str, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(text.parse().expect("test address"), port, 0, 0)
    }

    #[test]
    fn written_forms() {
        let cases: &[(&str, Result<SocketAddr, AddressError>)] = &[
            (
                "127.0.0.1",
                Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)),
            ),
            (
                "127.0.0.1:5353",
                Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 5353)),
            ),
            (" ::1 ", Ok(SocketAddr::V6(v6("::1", 53)))),
            ("[::1]", Ok(SocketAddr::V6(v6("::1", 53)))),
            (
                "[2001:db8::53]:5300",
                Ok(SocketAddr::V6(v6("2001:db8::53", 5300))),
            ),
            ("127.0.0.1:0", Err(AddressError::PortZero)),
            ("[::1]:0", Err(AddressError::PortZero)),
            ("localhost", Err(AddressError::Syntax)),
            ("127.0.0.1:99999", Err(AddressError::Syntax)),
            (
                "2001:db8::53:53",
                Ok(SocketAddr::V6(v6("2001:db8::53:53", 53))),
            ),
            ("[2001:db8::53", Err(AddressError::Syntax)),
            ("", Err(AddressError::Syntax)),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_socket_address(text), expected, "{text:?}");
        }
    }

    #[test]
    fn upstream_loop_rules() {
        let listen = [
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53),
            SocketAddr::V6(v6("::1", 5300)),
        ];
        let cases: &[(&str, Result<SocketAddrV6, AddressError>)] = &[
            ("[2001:db8::53]:53", Ok(v6("2001:db8::53", 53))),
            ("::1", Ok(v6("::1", 53))),
            ("[::1]:5300", Err(AddressError::IsListenAddress)),
            ("127.0.0.1", Err(AddressError::NotIpv6)),
            ("192.0.2.53:53", Err(AddressError::NotIpv6)),
            ("::ffff:127.0.0.1", Err(AddressError::Ipv4Mapped)),
            ("[::ffff:192.0.2.1]:53", Err(AddressError::Ipv4Mapped)),
            ("::", Err(AddressError::NotUnicast)),
            ("ff02::fb", Err(AddressError::NotUnicast)),
            ("fec0:0:0:ffff::1", Ok(WELL_KNOWN_SITE_LOCAL[0])),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_upstream(text, &listen), expected, "{text:?}");
        }
    }
}
