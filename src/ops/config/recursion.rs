//! `upstream.mode = "recursive"`: the settings of recursion, and its files
//! (root hints, DNSSEC trust anchor), read and checked here so a bad file
//! is a configuration error; the recursor itself is
//! `answering::recursive`'s.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::rr::Name;
use hickory_proto::serialize::txt::Parser;

use super::ConfigError;
use super::schema::{RawConfig, UpstreamMode};
use crate::dns64::Nat64Prefix;

/// The IANA root hints (named.root), built in; `upstream.root_hints` overrides them.
pub(crate) const BUILT_IN_ROOT_HINTS: &str = "\
.                        3600000      NS    A.ROOT-SERVERS.NET.
A.ROOT-SERVERS.NET.      3600000      A     198.41.0.4
A.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:ba3e::2:30
.                        3600000      NS    B.ROOT-SERVERS.NET.
B.ROOT-SERVERS.NET.      3600000      A     170.247.170.2
B.ROOT-SERVERS.NET.      3600000      AAAA  2801:1b8:10::b
.                        3600000      NS    C.ROOT-SERVERS.NET.
C.ROOT-SERVERS.NET.      3600000      A     192.33.4.12
C.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2::c
.                        3600000      NS    D.ROOT-SERVERS.NET.
D.ROOT-SERVERS.NET.      3600000      A     199.7.91.13
D.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2d::d
.                        3600000      NS    E.ROOT-SERVERS.NET.
E.ROOT-SERVERS.NET.      3600000      A     192.203.230.10
E.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:a8::e
.                        3600000      NS    F.ROOT-SERVERS.NET.
F.ROOT-SERVERS.NET.      3600000      A     192.5.5.241
F.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2f::f
.                        3600000      NS    G.ROOT-SERVERS.NET.
G.ROOT-SERVERS.NET.      3600000      A     192.112.36.4
G.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:12::d0d
.                        3600000      NS    H.ROOT-SERVERS.NET.
H.ROOT-SERVERS.NET.      3600000      A     198.97.190.53
H.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:1::53
.                        3600000      NS    I.ROOT-SERVERS.NET.
I.ROOT-SERVERS.NET.      3600000      A     192.36.148.17
I.ROOT-SERVERS.NET.      3600000      AAAA  2001:7fe::53
.                        3600000      NS    J.ROOT-SERVERS.NET.
J.ROOT-SERVERS.NET.      3600000      A     192.58.128.30
J.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:c27::2:30
.                        3600000      NS    K.ROOT-SERVERS.NET.
K.ROOT-SERVERS.NET.      3600000      A     193.0.14.129
K.ROOT-SERVERS.NET.      3600000      AAAA  2001:7fd::1
.                        3600000      NS    L.ROOT-SERVERS.NET.
L.ROOT-SERVERS.NET.      3600000      A     199.7.83.42
L.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:9f::42
.                        3600000      NS    M.ROOT-SERVERS.NET.
M.ROOT-SERVERS.NET.      3600000      A     202.12.27.33
M.ROOT-SERVERS.NET.      3600000      AAAA  2001:dc3::35
";

/// Why recursion's root hints or trust anchor cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecursionFileError {
    /// The root hints could not be read or parsed.
    #[error("root hints {source_name}: {reason}")]
    RootHints {
        /// The file, or "built in".
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// The trust anchor file could not be read or holds no key.
    #[error("trust anchor {path}: {reason}")]
    TrustAnchor {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The addresses of the root servers in a named.root-style hints text.
pub(crate) fn root_addresses(
    text: &str,
    source_name: &str,
) -> Result<Vec<IpAddr>, RecursionFileError> {
    let error = |reason: String| RecursionFileError::RootHints {
        source_name: source_name.to_string(),
        reason,
    };
    let (_origin, records) = Parser::new(text, None, Some(Name::root()))
        .parse()
        .map_err(|parse_error| error(parse_error.to_string()))?;
    let addresses: Vec<IpAddr> = records
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .filter_map(|record| record.data.ip_addr())
        .collect();
    if addresses.is_empty() {
        return Err(error("no A or AAAA record for any root server".into()));
    }
    Ok(addresses)
}

/// The root server addresses from a hints file, or the built-in hints.
pub(crate) fn read_root_hints(path: Option<&Path>) -> Result<Vec<IpAddr>, RecursionFileError> {
    match path {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| RecursionFileError::RootHints {
                    source_name: path.display().to_string(),
                    reason: error.to_string(),
                })?;
            root_addresses(&text, &path.display().to_string())
        }
        None => root_addresses(BUILT_IN_ROOT_HINTS, "built in"),
    }
}

/// The DNSSEC trust anchors in a file of DNSKEY records (the format of
/// Unbound's `trust-anchor-file` with DNSKEYs, or BIND's `named.root.key`
/// records); `None` (no file): the IANA root keys built into hickory.
pub(crate) fn read_trust_anchor(
    path: Option<&Path>,
) -> Result<Option<TrustAnchors>, RecursionFileError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let error = |reason: String| RecursionFileError::TrustAnchor {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|io| error(io.to_string()))?;
    let anchors: TrustAnchors =
        text.parse()
            .map_err(|parse: hickory_proto::serialize::txt::ParseError| {
                error(format!(
                    "{parse} (expected lines like \". 3600 IN DNSKEY 257 3 8 <base64>\")"
                ))
            })?;
    if anchors.is_empty() {
        return Err(error("no DNSKEY record in the file".into()));
    }
    Ok(Some(anchors))
}

/// Settings of recursive mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecursiveSettings {
    /// Root hints file (`None`: built in).
    pub root_hints: Option<std::path::PathBuf>,
    /// Allow name servers on loopback and private addresses.
    pub query_private_nameservers: bool,
    /// Overall time for one question.
    pub timeout: Duration,
    /// Bound of the recursor's response cache.
    pub cache_entries: u64,
    /// Maximum referral and CNAME depth.
    pub recursion_limit: u8,
    /// 0x20 case randomization.
    pub case_randomization: bool,
    /// EDNS payload size of its queries.
    pub edns_udp_size: u16,
    /// Validate with DNSSEC.
    pub dnssec_validation: bool,
    /// Trust anchor file (`None`: the built-in IANA root keys).
    pub trust_anchor: Option<std::path::PathBuf>,
    /// Name servers' IPv4 addresses are reached embedded in this prefix
    /// (an IPv6-only host behind NAT64); `None`: as they are.
    pub nat64_prefix: Option<Nat64Prefix>,
}

/// Checks the recursion keys of `[upstream]`; `None` in forward mode.
pub(super) fn validate(raw: &RawConfig) -> Result<Option<RecursiveSettings>, ConfigError> {
    let upstream = &raw.upstream;
    let recursive = (upstream.mode == UpstreamMode::Recursive).then(|| RecursiveSettings {
        root_hints: upstream.root_hints.clone(),
        query_private_nameservers: upstream.query_private_nameservers,
        timeout: Duration::from_millis(upstream.timeout_ms)
            .saturating_mul(upstream.attempts.max(1)),
        cache_entries: u64::try_from(raw.cache.max_entries).unwrap_or(u64::MAX),
        recursion_limit: upstream.recursion_limit,
        case_randomization: upstream.case_randomization,
        edns_udp_size: raw.server.edns_udp_size,
        dnssec_validation: upstream.dnssec_validation,
        trust_anchor: upstream.trust_anchor.clone(),
        nat64_prefix: None,
    });
    if recursive.is_none() && upstream.dnssec_validation {
        return Err(ConfigError::invalid(
            "upstream.dnssec_validation",
            true,
            "needs upstream.mode = \"recursive\" (in forward mode the upstream validates and its AD bit is passed on)",
        ));
    }
    if let Some(path) = &upstream.trust_anchor {
        // (Validation outside recursive mode was rejected just above.)
        if !upstream.dnssec_validation {
            return Err(ConfigError::invalid(
                "upstream.trust_anchor",
                path.display(),
                "is used only with upstream.mode = \"recursive\" and upstream.dnssec_validation = true",
            ));
        }
        if let Err(error) = read_trust_anchor(Some(path)) {
            return Err(ConfigError::invalid(
                "upstream.trust_anchor",
                path.display(),
                error,
            ));
        }
    }
    let nat64_prefix = raw
        .recursion
        .nat64_prefix
        .as_deref()
        .map(|text| {
            let key = "recursion.nat64_prefix";
            if recursive.is_none() {
                return Err(ConfigError::invalid(
                    key,
                    text,
                    "is used only with upstream.mode = \"recursive\" (a forwarder reaches its servers as they are listed)",
                ));
            }
            text.trim().parse::<Nat64Prefix>().map_err(|error| {
                ConfigError::invalid(
                    key,
                    text,
                    format!("{error}; expected the NAT64 prefix of this network's translator, such as \"64:ff9b::/96\""),
                )
            })
        })
        .transpose()?;
    let mut recursive = recursive;
    if let Some(settings) = &mut recursive {
        settings.nat64_prefix = nat64_prefix;
    }
    if let Some(settings) = &recursive {
        if let Err(error) = read_root_hints(settings.root_hints.as_deref()) {
            return Err(ConfigError::invalid(
                "upstream.root_hints",
                settings
                    .root_hints
                    .as_ref()
                    .map_or("built in".to_string(), |path| path.display().to_string()),
                error,
            ));
        }
        if upstream.recursion_limit == 0 {
            return Err(ConfigError::invalid(
                "upstream.recursion_limit",
                0,
                "must be at least 1",
            ));
        }
    }
    Ok(recursive)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn built_in_root_hints_list_the_thirteen_servers_twice() {
        let roots = root_addresses(BUILT_IN_ROOT_HINTS, "built in").unwrap();
        assert_eq!(roots.len(), 26);
        assert!(roots.contains(&"198.41.0.4".parse().unwrap()));
        assert!(roots.contains(&"2001:dc3::35".parse().unwrap()));
    }

    #[test]
    fn bad_hints_are_reported() {
        let error = root_addresses(". 3600 NS a.root.\n", "test").unwrap_err();
        assert!(error.to_string().contains("no A or AAAA"), "{error}");
    }
}
