//! `[dns64]`: NAT64 prefixes (fixed, per listener, or discovered), the
//! IPv4 and AAAA exclusions, and the synthesis options.

use hickory_proto::rr::Name;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ConfigError;
use super::schema::{RawDns64, RawPrefix};
use super::values::{parse_domains, parse_ip_networks, parse_ipv4_networks};
use crate::dns64::reverse::ReverseMode;
use crate::dns64::{ExcludedAaaa, Nat64Prefix, SynthesisPrefix, SynthesizeOn};

/// Validated `[dns64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns64Config {
    /// Configured prefixes, each with its IPv4 exclusions.
    pub prefixes: Vec<SynthesisPrefix>,
    /// `"discover"` was listed: learn prefixes (RFC 7050, RFC 8781) and use them too.
    pub discover: bool,
    /// The IPv4 exclusions applied to discovered prefixes (`None`: built-in).
    pub discovered_exclude_ipv4: Option<Vec<Ipv4Net>>,
    /// AAAA ranges treated as absent.
    pub exclude_aaaa: ExcludedAaaa,
    /// Whether a failed AAAA lookup leads to synthesis.
    pub synthesize_on: SynthesizeOn,
    /// Ask A together with AAAA (lower latency for A-only names, an upstream
    /// A query wasted for every name that has AAAA); `false`: A only after
    /// the AAAA answer turned out empty, as RFC 6147 §5.1 describes. Unset,
    /// `true` in forward mode and `false` in recursive mode, where each was
    /// measured cheaper (bench/README, "Parallel A").
    pub parallel_a: bool,
    /// Synthesize even for DO+CD queries.
    pub break_dnssec: bool,
    /// Reverse synthesis mode.
    pub reverse: ReverseMode,
    /// TTL of synthesized reverse CNAMEs.
    pub reverse_ttl: u32,
    /// Clients that get synthesis (`None`: all).
    pub clients: Option<Vec<IpNet>>,
    /// Replace native AAAA with synthesized ones everywhere.
    pub synth_all: bool,
    /// Domains whose native AAAA are ignored.
    pub ignore_aaaa_domains: Vec<Name>,
    /// Domains never synthesized.
    pub exclude_domains: Vec<Name>,
}

impl Dns64Config {
    /// True if synthesis is allowed for `client` by `dns64.clients`.
    pub(crate) fn serves(&self, client: std::net::IpAddr) -> bool {
        let client = client.to_canonical();
        self.clients
            .as_ref()
            .is_none_or(|clients| clients.iter().any(|net| net.contains(&client)))
    }

    /// True if `name` is at or below one of `exclude_domains`.
    pub(crate) fn is_excluded_domain(&self, name: &Name) -> bool {
        self.exclude_domains
            .iter()
            .any(|domain| domain.zone_of(name))
    }

    /// True if native AAAA for `name` are ignored (`synth_all` or `ignore_aaaa_domains`).
    pub(crate) fn ignores_native_aaaa(&self, name: &Name) -> bool {
        self.synth_all
            || self
                .ignore_aaaa_domains
                .iter()
                .any(|domain| domain.zone_of(name))
    }
}

/// Parses a list of prefix entries (strings or tables) into prefixes with policy.
pub(super) fn parse_prefix_list(
    key: &str,
    entries: &[RawPrefix],
    global_exclude_ipv4: Option<&[Ipv4Net]>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<SynthesisPrefix>, bool), ConfigError> {
    let mut prefixes: Vec<SynthesisPrefix> = Vec::new();
    let mut discover = false;
    for entry in entries {
        let (text, table) = match entry {
            RawPrefix::Plain(text) if text.trim() == "discover" => {
                discover = true;
                continue;
            }
            RawPrefix::Plain(text) => (text, None),
            RawPrefix::Table(table) => (&table.prefix, Some(table)),
        };
        let mut prefix: Nat64Prefix = text
            .parse()
            .map_err(|error| ConfigError::invalid(key, text, error))?;
        let mut exclude_ipv4 = global_exclude_ipv4.map(<[Ipv4Net]>::to_vec);
        let mut mapped_ipv4 = None;
        let mut clients = None;
        let mut excluded_aaaa = None;
        if let Some(table) = table {
            if let Some(list) = &table.exclude_aaaa {
                let networks = parse_exclude_aaaa(&format!("{key}.exclude_aaaa"), list, warnings)?;
                excluded_aaaa = Some(ExcludedAaaa::new(&networks));
            }
            if let Some(suffix) = &table.suffix {
                let address: std::net::Ipv6Addr = suffix.trim().parse().map_err(|_| {
                    ConfigError::invalid(
                        &format!("{key}.suffix"),
                        suffix,
                        "not an IPv6 address like ::1",
                    )
                })?;
                prefix = prefix.with_suffix(address).map_err(|error| {
                    ConfigError::invalid(&format!("{key}.suffix"), suffix, error)
                })?;
            }
            if let Some(list) = &table.exclude_ipv4 {
                exclude_ipv4 = Some(parse_ipv4_networks(&format!("{key}.exclude_ipv4"), list)?);
            }
            if let Some(list) = &table.mapped_ipv4 {
                mapped_ipv4 =
                    Some(parse_ipv4_networks(&format!("{key}.mapped_ipv4"), list)?.into());
            }
            if let Some(list) = &table.clients {
                clients = Some(parse_ip_networks(&format!("{key}.clients"), list)?.into());
            }
        }
        if prefixes
            .iter()
            .any(|known| known.prefix.network() == prefix.network())
        {
            return Err(ConfigError::invalid(key, text, "listed twice"));
        }
        let mut synthesis_prefix = SynthesisPrefix::new(prefix, exclude_ipv4.as_deref());
        synthesis_prefix.mapped_ipv4 = mapped_ipv4;
        synthesis_prefix.clients = clients;
        synthesis_prefix.excluded_aaaa = excluded_aaaa;
        prefixes.push(synthesis_prefix);
    }
    Ok((prefixes, discover))
}

/// An `exclude_aaaa` list (`key` names it in errors): IPv6 networks; one
/// with host bits set is taken as its network, with a warning.
pub(super) fn parse_exclude_aaaa(
    key: &str,
    list: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<Ipv6Net>, ConfigError> {
    let mut networks = Vec::new();
    for text in list {
        let network: Ipv6Net = text.trim().parse().map_err(|_| {
            ConfigError::invalid(key, text, "not an IPv6 network like ::ffff:0:0/96")
        })?;
        if network != network.trunc() {
            let hint = if network.trunc() == "::/96".parse::<Ipv6Net>().expect("valid") {
                " (\"::ffff/96\" is a typo copied from RFC 6147; the IPv4-mapped range is ::ffff:0:0/96)"
            } else {
                ""
            };
            warnings.push(format!(
                "{key}: \"{text}\" has bits set after /{}, so it means {}{hint}",
                network.prefix_len(),
                network.trunc()
            ));
        }
        networks.push(network.trunc());
    }
    Ok(networks)
}

/// Warnings for prefixes that overlap each other or that the exclusions hide.
pub(super) fn warn_about_prefixes(
    prefixes: &[SynthesisPrefix],
    exclude_aaaa: &[Ipv6Net],
    warnings: &mut Vec<String>,
) {
    for (index, first) in prefixes.iter().enumerate() {
        for second in &prefixes[index + 1..] {
            let (a, b) = (first.prefix.network(), second.prefix.network());
            if a.contains(&b) || b.contains(&a) {
                warnings.push(format!(
                    "dns64.prefixes: {a} and {b} overlap; reverse lookups and extraction pick the first"
                ));
            }
        }
        let network = first.prefix.network();
        for excluded in exclude_aaaa {
            if excluded.contains(&network) || network.contains(excluded) {
                warnings.push(format!(
                    "dns64.exclude_aaaa: {excluded} overlaps prefix {network}; native AAAA records there are treated as absent"
                ));
            }
        }
        let hides_everything = first
            .excluded_ipv4
            .iter()
            .any(|excluded| excluded.prefix_len() == 0)
            || first.mapped_ipv4.as_ref().is_some_and(|mapped| {
                mapped.iter().all(|range| {
                    first
                        .excluded_ipv4
                        .iter()
                        .any(|excluded| excluded.contains(range))
                })
            });
        if hides_everything {
            warnings.push(format!(
                "dns64: the IPv4 exclusions cover every address that prefix {network} may embed; it will never synthesize"
            ));
        }
    }
}

/// `dns64.exclude_ipv4`, when set: it replaces the built-in exclusions of
/// every prefix.
pub(super) fn global_exclude_ipv4(raw: &RawDns64) -> Result<Option<Vec<Ipv4Net>>, ConfigError> {
    raw.exclude_ipv4
        .as_ref()
        .map(|list| parse_ipv4_networks("dns64.exclude_ipv4", list))
        .transpose()
}

/// `dns64.prefixes` and `[[dns64.prefix]]`: the fixed prefixes, and
/// whether `"discover"` was listed.
pub(super) fn prefixes(
    raw: &RawDns64,
    global_exclude_ipv4: Option<&[Ipv4Net]>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<SynthesisPrefix>, bool), ConfigError> {
    let mut entries: Vec<RawPrefix> = raw.prefixes.clone();
    entries.extend(raw.prefix.iter().cloned().map(RawPrefix::Table));
    parse_prefix_list("dns64.prefixes", &entries, global_exclude_ipv4, warnings)
}

/// The rest of `[dns64]`, around the already checked prefixes.
pub(super) fn validate(
    raw: &RawDns64,
    (prefixes, discover): (Vec<SynthesisPrefix>, bool),
    global_exclude_ipv4: Option<Vec<Ipv4Net>>,
    recursive: bool,
    warnings: &mut Vec<String>,
) -> Result<Dns64Config, ConfigError> {
    let exclude_aaaa = parse_exclude_aaaa("dns64.exclude_aaaa", &raw.exclude_aaaa, warnings)?;
    warn_about_prefixes(&prefixes, &exclude_aaaa, warnings);
    let clients = raw
        .clients
        .as_ref()
        .map(|list| parse_ip_networks("dns64.clients", list))
        .transpose()?;
    let ignore_aaaa_domains = parse_domains("dns64.ignore_aaaa_domains", &raw.ignore_aaaa_domains)?;
    let exclude_domains = parse_domains("dns64.exclude_domains", &raw.exclude_domains)?;
    if raw.reverse_ttl > 604_800 {
        return Err(ConfigError::invalid(
            "dns64.reverse_ttl",
            raw.reverse_ttl,
            "must be at most 604800 (one week)",
        ));
    }
    Ok(Dns64Config {
        prefixes,
        discover,
        discovered_exclude_ipv4: global_exclude_ipv4,
        exclude_aaaa: ExcludedAaaa::new(&exclude_aaaa),
        synthesize_on: raw.synthesize_on,
        // Unset: what measured cheaper in each mode (bench/README, "Parallel A").
        parallel_a: raw.parallel_a.unwrap_or(!recursive),
        break_dnssec: raw.break_dnssec,
        reverse: raw.reverse,
        reverse_ttl: raw.reverse_ttl,
        clients,
        synth_all: raw.synth_all,
        ignore_aaaa_domains,
        exclude_domains,
    })
}
