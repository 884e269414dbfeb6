//! RFC 6052 address translation: the validated NAT64 prefix and the embedding
//! and extraction of IPv4 addresses into and out of IPv6 addresses.
//!
//! A [`Nat64Prefix`] exists only if it is valid (one of the six lengths of
//! RFC 6052 §2.2, no bits set past the length, bits 64–71 zero), so the
//! embedding itself cannot fail. Everything here is pure arithmetic.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

/// The prefix lengths that RFC 6052 §2.2 allows.
pub(crate) const VALID_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// Byte 8 of the address (bits 64–71), the "u" octet that RFC 6052 §2.2 reserves.
const U_OCTET: usize = 8;

/// The well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub(crate) const WELL_KNOWN_PREFIX: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// Why a string or network is not a usable NAT64 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Not of the form `address/length`.
    #[error("not an IPv6 prefix of the form address/length")]
    Syntax,
    /// The length is not one of 32, 40, 48, 56, 64, 96.
    #[error("length /{0} is not allowed; RFC 6052 §2.2 allows /32, /40, /48, /56, /64 and /96")]
    Length(u8),
    /// Address bits are set after the prefix length.
    #[error("bits are set after the prefix length (did you mean {0}?)")]
    HostBits(Ipv6Net),
    /// Bits 64–71 are not zero (only a /96 can cover them).
    #[error("bits 64-71 must be zero (RFC 6052 §2.2)")]
    UOctet,
    /// A suffix sets bits of the prefix, of the embedded IPv4 address or of the u-octet.
    #[error("a suffix may only set bits after the embedded IPv4 address (and not bits 64-71)")]
    SuffixOverlap,
    /// A link-local, multicast, loopback or unspecified prefix cannot route to a translator.
    #[error("a {0} prefix cannot be a NAT64 prefix")]
    Unroutable(&'static str),
}

/// A validated RFC 6052 NAT64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nat64Prefix {
    network: Ipv6Net,
    /// Bits after the embedded IPv4 address (RFC 6052 §2.2 "suffix"; BIND's `suffix`).
    suffix: [u8; 16],
}

impl Nat64Prefix {
    /// The well-known prefix 64:ff9b::/96.
    pub(crate) fn well_known() -> Self {
        Self {
            network: Ipv6Net::new(WELL_KNOWN_PREFIX, 96).expect("96 is a valid IPv6 prefix length"),
            suffix: [0; 16],
        }
    }

    /// Validates a network as a NAT64 prefix.
    pub(crate) fn new(network: Ipv6Net) -> Result<Self, PrefixError> {
        let length = network.prefix_len();
        if !VALID_LENGTHS.contains(&length) {
            return Err(PrefixError::Length(length));
        }
        if network.addr() != network.network() {
            return Err(PrefixError::HostBits(network.trunc()));
        }
        if network.addr().octets()[U_OCTET] != 0 {
            return Err(PrefixError::UOctet);
        }
        let address = network.addr();
        let segments = address.segments();
        if address.is_unspecified() || address.is_loopback() {
            return Err(PrefixError::Unroutable("loopback or unspecified"));
        }
        if address.is_multicast() {
            return Err(PrefixError::Unroutable("multicast"));
        }
        if segments[0] & 0xffc0 == 0xfe80 {
            return Err(PrefixError::Unroutable("link-local"));
        }
        Ok(Self {
            network,
            suffix: [0; 16],
        })
    }

    /// Sets the suffix: the bits after the embedded IPv4 address, for
    /// prefixes shorter than /96. It must leave the prefix, the IPv4 octets
    /// and the u-octet zero.
    pub(crate) fn with_suffix(mut self, suffix: Ipv6Addr) -> Result<Self, PrefixError> {
        let octets = suffix.octets();
        let reserved = self.ipv4_positions();
        let last_ipv4 = reserved[3];
        let overlaps = octets
            .iter()
            .enumerate()
            .any(|(position, &byte)| byte != 0 && (position <= last_ipv4 || position == U_OCTET));
        if overlaps {
            return Err(PrefixError::SuffixOverlap);
        }
        self.suffix = octets;
        Ok(self)
    }

    /// The prefix as a network.
    pub(crate) fn network(&self) -> Ipv6Net {
        self.network
    }

    /// The prefix length in bits.
    pub(crate) fn length(&self) -> u8 {
        self.network.prefix_len()
    }

    /// True for 64:ff9b::/96, which RFC 6052 §3.1 limits to global IPv4 addresses.
    pub(crate) fn is_well_known(&self) -> bool {
        *self == Self::well_known()
    }

    /// True if the address lies inside this prefix.
    pub(crate) fn contains(&self, address: &Ipv6Addr) -> bool {
        self.network.contains(address)
    }

    /// Byte positions of the four IPv4 octets for this length (RFC 6052 §2.2 figure 1).
    fn ipv4_positions(&self) -> [usize; 4] {
        let mut positions = [0usize; 4];
        let mut position = usize::from(self.length() / 8);
        for slot in &mut positions {
            if position == U_OCTET {
                position += 1;
            }
            *slot = position;
            position += 1;
        }
        positions
    }

    /// Embeds an IPv4 address into this prefix (RFC 6052 §2.2); suffix and u-octet are zero.
    pub fn embed(&self, ipv4: Ipv4Addr) -> Ipv6Addr {
        let mut octets = self.network.network().octets();
        for (octet, suffix) in octets.iter_mut().zip(self.suffix) {
            *octet |= suffix;
        }
        for (position, byte) in self.ipv4_positions().into_iter().zip(ipv4.octets()) {
            octets[position] = byte;
        }
        Ipv6Addr::from(octets)
    }

    /// Extracts the embedded IPv4 address, if the address lies inside this prefix (RFC 6052 §2.3).
    pub fn extract(&self, address: &Ipv6Addr) -> Option<Ipv4Addr> {
        if !self.contains(address) {
            return None;
        }
        let octets = address.octets();
        let [a, b, c, d] = self.ipv4_positions().map(|position| octets[position]);
        Some(Ipv4Addr::new(a, b, c, d))
    }
}

impl fmt::Display for Nat64Prefix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.network.fmt(formatter)
    }
}

impl std::str::FromStr for Nat64Prefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let network: Ipv6Net = text.trim().parse().map_err(|_| PrefixError::Syntax)?;
        Self::new(network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Nat64Prefix {
        text.parse().expect("valid test prefix")
    }

    /// The examples table of RFC 6052 §2.4, for 192.0.2.33.
    #[test]
    fn rfc6052_section_2_4_examples() {
        let ipv4 = Ipv4Addr::new(192, 0, 2, 33);
        let cases = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
        ];
        for (network, expected) in cases {
            let expected: Ipv6Addr = expected.parse().unwrap();
            let prefix = prefix(network);
            assert_eq!(prefix.embed(ipv4), expected, "embed under {network}");
            assert_eq!(
                prefix.extract(&expected),
                Some(ipv4),
                "extract under {network}"
            );
        }
    }

    #[test]
    fn well_known_prefix_embeds_in_last_32_bits() {
        let prefix = Nat64Prefix::well_known();
        let address = prefix.embed(Ipv4Addr::new(93, 184, 216, 34));
        assert_eq!(address, "64:ff9b::5db8:d822".parse::<Ipv6Addr>().unwrap());
        assert!(prefix.is_well_known());
    }

    #[test]
    fn round_trip_for_every_length() {
        let samples = [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::new(203, 0, 113, 99),
        ];
        for length in VALID_LENGTHS {
            let network = Ipv6Net::new("2001:db8:aa00::".parse().unwrap(), length)
                .unwrap()
                .trunc();
            let prefix = Nat64Prefix::new(network).unwrap();
            for ipv4 in samples {
                let address = prefix.embed(ipv4);
                assert_eq!(address.octets()[U_OCTET], 0, "u-octet zero for /{length}");
                assert!(prefix.contains(&address));
                assert_eq!(prefix.extract(&address), Some(ipv4), "/{length} {ipv4}");
            }
        }
    }

    #[test]
    fn suffix_fills_the_bits_after_the_ipv4_address() {
        let prefix = prefix("2001:db8:122::/48")
            .with_suffix("::ff:1".parse().unwrap())
            .unwrap();
        let address = prefix.embed(Ipv4Addr::new(192, 0, 2, 33));
        assert_eq!(
            address,
            "2001:db8:122:c000:2:2100:ff:1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(prefix.extract(&address), Some(Ipv4Addr::new(192, 0, 2, 33)));
        // A suffix may not touch the IPv4 octets or bits 64-71.
        assert_eq!(
            prefix.with_suffix("::2:0:0:0".parse().unwrap()),
            Err(PrefixError::SuffixOverlap)
        );
        assert_eq!(
            Nat64Prefix::well_known().with_suffix("::1".parse().unwrap()),
            Err(PrefixError::SuffixOverlap)
        );
    }

    #[test]
    fn extract_outside_prefix_is_none() {
        let prefix = Nat64Prefix::well_known();
        assert_eq!(prefix.extract(&"2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn invalid_prefixes_are_rejected_with_reason() {
        let cases = [
            ("64:ff9b::/80", PrefixError::Length(80)),
            ("64:ff9b::/128", PrefixError::Length(128)),
            ("2001:db8::", PrefixError::Syntax),
            ("not-a-prefix", PrefixError::Syntax),
            (
                "64:ff9b::1/96",
                PrefixError::HostBits("64:ff9b::/96".parse().unwrap()),
            ),
            ("2001:db8:0:0:ff00::/96", PrefixError::UOctet),
            ("fe80::/64", PrefixError::Unroutable("link-local")),
            ("ff02::/64", PrefixError::Unroutable("multicast")),
            ("::/96", PrefixError::Unroutable("loopback or unspecified")),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Nat64Prefix>(), Err(expected), "{text}");
        }
    }
}
