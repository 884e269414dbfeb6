//! The local addresses a wildcard UDP listener stands for, on systems where
//! dns64d does not read each datagram's destination address (every system
//! but Linux, see [`crate::edge::pktinfo`]).
//!
//! There the listener binds one UDP socket per local address of its family
//! instead of one wildcard socket, so the kernel sends each answer from the
//! address its socket is bound to, which is the address the client asked
//! (issue 15). Addresses added after start-up are not served over UDP
//! until a restart; `server` logs this when it binds. The interfaces are
//! listed by the `if-addrs` crate (getifaddrs, GetAdaptersAddresses).

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// Each local address of `wildcard`'s family, with its port (IPv6
/// link-local addresses with their interface as scope), without repeats.
pub(crate) fn local_addresses(wildcard: SocketAddr) -> io::Result<Vec<SocketAddr>> {
    let mut addresses = Vec::new();
    for interface in if_addrs::get_if_addrs()? {
        let ip = interface.ip();
        let address = match ip {
            IpAddr::V4(_) if wildcard.is_ipv4() => SocketAddr::new(ip, wildcard.port()),
            IpAddr::V6(ip) if wildcard.is_ipv6() => {
                let scope = if ip.is_unicast_link_local() {
                    interface.index.unwrap_or(0)
                } else {
                    0
                };
                SocketAddr::V6(SocketAddrV6::new(ip, wildcard.port(), 0, scope))
            }
            _ => continue,
        };
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_lists_its_own_addresses_with_the_port() {
        let ipv4 = local_addresses("0.0.0.0:5300".parse().unwrap()).unwrap();
        assert!(
            ipv4.contains(&"127.0.0.1:5300".parse().unwrap()),
            "{ipv4:?}"
        );
        assert!(
            ipv4.iter()
                .all(|address| address.is_ipv4() && address.port() == 5300)
        );
        let ipv6 = local_addresses("[::]:0".parse().unwrap()).unwrap();
        assert!(
            ipv6.iter()
                .all(|address| address.is_ipv6() && address.port() == 0)
        );
        let mut unique = ipv6.clone();
        unique.dedup();
        assert_eq!(unique.len(), ipv6.len());
    }
}
