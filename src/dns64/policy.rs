//! Which addresses take part in DNS64: the excluded AAAA ranges (RFC 6147
//! §5.1.4) and, per prefix, the IPv4 ranges that are never synthesized
//! (RFC 6147 §5.1.4 and RFC 6052 §3.1).
//!
//! Built once from the configuration; the decisions are plain lookups.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::prefix::Nat64Prefix;

/// IPv4 ranges never synthesized under any prefix: "this network", loopback,
/// link-local, multicast and reserved (RFC 6890). Translating them can only
/// point a client at itself or at nothing.
pub(crate) const ALWAYS_EXCLUDED_IPV4: [&str; 5] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Non-global IPv4 ranges (RFC 6890) that RFC 6052 §3.1 forbids embedding in
/// the well-known prefix 64:ff9b::/96. A network-specific prefix may embed them.
pub(crate) const NON_GLOBAL_IPV4: [&str; 9] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
];

/// The default `dns64.exclude_aaaa`: IPv4-mapped addresses (RFC 6147 §5.1.4).
pub(crate) const DEFAULT_EXCLUDED_AAAA: [&str; 1] = ["::ffff:0:0/96"];

/// The built-in IPv4 exclusion list for a prefix (used when `dns64.exclude_ipv4` is not set).
pub(crate) fn default_excluded_ipv4(prefix: &Nat64Prefix) -> Vec<Ipv4Net> {
    let extra: &[&str] = if prefix.is_well_known() {
        &NON_GLOBAL_IPV4
    } else {
        &[]
    };
    ALWAYS_EXCLUDED_IPV4
        .iter()
        .chain(extra)
        .map(|text| text.parse().expect("built-in IPv4 range is valid"))
        .collect()
}

/// A prefix together with its policy: the IPv4 ranges it must not embed,
/// optionally the only IPv4 ranges it is used for (BIND's `mapped`), and
/// optionally the only clients it serves (BIND's per-prefix `clients`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthesisPrefix {
    /// The NAT64 prefix.
    pub prefix: Nat64Prefix,
    /// IPv4 ranges never synthesized under this prefix.
    pub excluded_ipv4: Arc<[Ipv4Net]>,
    /// If set, only A records in these ranges use this prefix.
    pub mapped_ipv4: Option<Arc<[Ipv4Net]>>,
    /// If set, only these clients get this prefix.
    pub clients: Option<Arc<[IpNet]>>,
    /// The AAAA ranges treated as absent for clients of this prefix; `None`:
    /// the global `dns64.exclude_aaaa`.
    pub excluded_aaaa: Option<ExcludedAaaa>,
}

impl SynthesisPrefix {
    /// A prefix with an explicit exclusion list, or the built-in one when `None`.
    pub fn new(prefix: Nat64Prefix, excluded_ipv4: Option<&[Ipv4Net]>) -> Self {
        let excluded_ipv4 = match excluded_ipv4 {
            Some(list) => list.into(),
            None => default_excluded_ipv4(&prefix).into(),
        };
        Self {
            prefix,
            excluded_ipv4,
            mapped_ipv4: None,
            clients: None,
            excluded_aaaa: None,
        }
    }

    /// True if `ipv4` may be synthesized under this prefix.
    pub fn may_embed(&self, ipv4: Ipv4Addr) -> bool {
        !self.excluded_ipv4.iter().any(|net| net.contains(&ipv4))
            && self
                .mapped_ipv4
                .as_ref()
                .is_none_or(|mapped| mapped.iter().any(|net| net.contains(&ipv4)))
    }

    /// True if this prefix serves `client`.
    pub(crate) fn serves(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.clients
            .as_ref()
            .is_none_or(|clients| clients.iter().any(|net| net.contains(&client)))
    }
}

/// The AAAA ranges treated as absent (RFC 6147 §5.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedAaaa(Arc<[Ipv6Net]>);

impl ExcludedAaaa {
    /// An exclusion set from a list of networks.
    pub(crate) fn new(networks: &[Ipv6Net]) -> Self {
        Self(networks.into())
    }

    /// True if an AAAA record with this address must be treated as absent.
    pub fn is_excluded(&self, address: &Ipv6Addr) -> bool {
        self.0.iter().any(|net| net.contains(address))
    }

    /// The networks in this set.
    pub(crate) fn networks(&self) -> &[Ipv6Net] {
        &self.0
    }
}

/// The AAAA exclusions for a query answered with `prefixes` (RFC 6147
/// §5.1.4): each prefix's own list, or `global` for a prefix without one.
/// With several prefixes, an AAAA is treated as absent when any of their
/// lists covers it: it is unusable through at least one of the NAT64s the
/// client may take, and the synthesized addresses reach the name through
/// every one of them.
pub(crate) fn excluded_aaaa_for<'a>(
    prefixes: &'a [SynthesisPrefix],
    global: &'a ExcludedAaaa,
) -> std::borrow::Cow<'a, ExcludedAaaa> {
    if prefixes.iter().all(|prefix| prefix.excluded_aaaa.is_none()) {
        return std::borrow::Cow::Borrowed(global);
    }
    let mut networks: Vec<Ipv6Net> = Vec::new();
    for prefix in prefixes {
        let list = prefix.excluded_aaaa.as_ref().unwrap_or(global);
        for network in list.networks() {
            if !networks.contains(network) {
                networks.push(*network);
            }
        }
    }
    std::borrow::Cow::Owned(ExcludedAaaa::new(&networks))
}

impl Default for ExcludedAaaa {
    fn default() -> Self {
        let networks: Vec<Ipv6Net> = DEFAULT_EXCLUDED_AAAA
            .iter()
            .map(|text| text.parse().expect("built-in IPv6 range is valid"))
            .collect();
        Self(networks.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_prefix_excludes_non_global_ipv4() {
        let wkp = SynthesisPrefix::new(Nat64Prefix::well_known(), None);
        let cases = [
            ("93.184.216.34", true),
            ("10.1.2.3", false),
            ("100.64.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.0.0.170", false),
            ("192.0.2.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.20.0.1", true),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("127.0.0.1", false),
            ("0.0.0.0", false),
            ("169.254.1.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
        ];
        for (address, allowed) in cases {
            assert_eq!(
                wkp.may_embed(address.parse().unwrap()),
                allowed,
                "{address}"
            );
        }
    }

    #[test]
    fn network_specific_prefix_may_embed_private_ipv4() {
        let nsp = SynthesisPrefix::new("2001:db8:64::/96".parse().unwrap(), None);
        assert!(nsp.may_embed("10.1.2.3".parse().unwrap()));
        assert!(nsp.may_embed("192.0.2.1".parse().unwrap()));
        assert!(!nsp.may_embed("127.0.0.1".parse().unwrap()));
        assert!(!nsp.may_embed("224.0.0.1".parse().unwrap()));
    }

    #[test]
    fn configured_list_replaces_default() {
        let list: Vec<Ipv4Net> = vec!["93.184.216.0/24".parse().unwrap()];
        let custom = SynthesisPrefix::new(Nat64Prefix::well_known(), Some(&list));
        assert!(!custom.may_embed("93.184.216.34".parse().unwrap()));
        assert!(custom.may_embed("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn mapped_ranges_and_clients_limit_a_prefix() {
        let mut prefix = SynthesisPrefix::new("2001:db8:64::/96".parse().unwrap(), None);
        prefix.mapped_ipv4 = Some(vec!["10.0.0.0/8".parse().unwrap()].into());
        prefix.clients = Some(vec!["192.168.1.0/24".parse().unwrap()].into());
        assert!(prefix.may_embed("10.1.2.3".parse().unwrap()));
        assert!(!prefix.may_embed("93.184.216.34".parse().unwrap()));
        assert!(prefix.serves("192.168.1.7".parse().unwrap()));
        assert!(prefix.serves("::ffff:192.168.1.7".parse().unwrap()));
        assert!(!prefix.serves("192.168.2.7".parse().unwrap()));
    }

    #[test]
    fn exclusions_per_prefix_default_to_the_global_list() {
        let global = ExcludedAaaa::default();
        let own = ExcludedAaaa::new(&["2001:db8:bad::/48".parse().unwrap()]);
        let plain = SynthesisPrefix::new(Nat64Prefix::well_known(), None);
        let mut listed = SynthesisPrefix::new("2001:db8:64::/96".parse().unwrap(), None);
        listed.excluded_aaaa = Some(own.clone());
        let mapped: Ipv6Addr = "::ffff:1.2.3.4".parse().unwrap();
        let bad: Ipv6Addr = "2001:db8:bad::1".parse().unwrap();
        // (case, prefixes, mapped excluded, bad excluded)
        let cases = [
            ("no prefix", vec![], true, false),
            ("global only", vec![plain.clone()], true, false),
            ("own list only", vec![listed.clone()], false, true),
            ("both: any list excludes", vec![plain, listed], true, true),
        ];
        for (case, prefixes, mapped_excluded, bad_excluded) in cases {
            let excluded = excluded_aaaa_for(&prefixes, &global);
            assert_eq!(excluded.is_excluded(&mapped), mapped_excluded, "{case}");
            assert_eq!(excluded.is_excluded(&bad), bad_excluded, "{case}");
        }
    }

    #[test]
    fn mapped_addresses_are_excluded_by_default() {
        let excluded = ExcludedAaaa::default();
        assert!(excluded.is_excluded(&"::ffff:1.2.3.4".parse().unwrap()));
        assert!(!excluded.is_excluded(&"2001:db8::1".parse().unwrap()));
        assert!(!excluded.is_excluded(&"::1".parse().unwrap()));
    }
}
