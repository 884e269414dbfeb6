//! `[upstream]` in forward mode: the server list (plain, `tls://`,
//! `https://`, or `"system"` from resolv.conf) and which of those servers
//! may be used (family, loopback, not ourselves).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::recursion::{self, RecursiveSettings};
use super::schema::{Family, Profile, RawConfig, RawServers, RawUpstream};
use super::upstream_url::EncryptedUpstream;
use super::{ConfigError, Origin};
use crate::edge::certificate;

/// Validated `[upstream]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Servers in preference order.
    pub servers: Vec<SocketAddr>,
    /// How the server list is chosen, kept to re-read the system resolvers.
    pub selection: UpstreamSelection,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Total attempts across servers.
    pub attempts: u32,
    /// 0x20 case randomization.
    pub case_randomization: bool,
    /// Recursive mode settings (`None`: forward mode).
    pub recursive: Option<RecursiveSettings>,
    /// The servers of `servers` reached over DoT or DoH (by address).
    pub encrypted: Vec<EncryptedUpstream>,
    /// `upstream.ca_file`: the CAs for DoT/DoH upstreams (`None`: the system's).
    pub ca_file: Option<PathBuf>,
}

/// Parses an upstream server: `ip`, `ip:port`, `[v6]` or `[v6]:port` (port 53 if omitted).
pub(crate) fn parse_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// The system resolver file and how often it is re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemResolvers {
    /// The resolv.conf path.
    pub path: PathBuf,
    /// Re-read interval (zero: never).
    pub refresh: Duration,
}

/// The rules that turn candidate addresses into the upstream list, kept so
/// the system resolvers can be re-read and filtered the same way later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSelection {
    /// Set when the servers come from the system resolver configuration.
    pub system: Option<SystemResolvers>,
    /// Address family to keep.
    pub family: Family,
    /// Our own listen addresses (never forwarded to).
    pub listen: Vec<SocketAddr>,
    /// Skip loopback servers from the system configuration (the shim: its own
    /// address is usually what resolv.conf points at).
    pub avoid_loopback: bool,
}

impl UpstreamSelection {
    /// Filters candidates: our own listeners, loops through loopback, the
    /// wrong family and duplicates are dropped, each with a log line.
    pub(crate) fn select(&self, candidates: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let mut servers = Vec::new();
        for server in candidates {
            let skip_reason = if is_own_listener(&server, &self.listen) {
                Some("dns64d itself listens there (it would forward to itself)")
            } else if self.system.is_some() && self.avoid_loopback && server.ip().is_loopback() {
                Some(
                    "a loopback resolver in the system configuration is most likely this shim (a loop)",
                )
            } else if self
                .listen
                .iter()
                .any(|own| own.ip().is_loopback() && own.is_ipv4())
                && self.avoid_loopback
                && matches!(server.ip(), IpAddr::V4(v4) if v4.is_loopback())
                && server.port() == 53
            {
                Some("the shim listens on 127.0.0.0/8 (a loop)")
            } else if !self.family.admits(&server) {
                Some("excluded by upstream.family")
            } else {
                None
            };
            if let Some(reason) = skip_reason {
                tracing::warn!(%server, reason, "skipping upstream server");
                continue;
            }
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        servers
    }

    /// Reads and filters the system resolvers (empty when not configured so).
    pub(crate) fn read_system(&self) -> Vec<SocketAddr> {
        match &self.system {
            Some(system) => self.select(read_resolv_conf(&system.path)),
            None => Vec::new(),
        }
    }
}

/// The upstream servers: the list, or the system resolvers, filtered.
pub(super) fn resolve_servers(
    raw: &RawUpstream,
    selection: &UpstreamSelection,
) -> Result<(Vec<SocketAddr>, Vec<EncryptedUpstream>), ConfigError> {
    let mut encrypted = Vec::new();
    let servers = match &raw.servers {
        RawServers::List(list) => {
            let candidates = list
                .iter()
                .map(|text| match EncryptedUpstream::parse(text) {
                    Ok(Some(upstream)) => {
                        let address = upstream.address;
                        encrypted.push(upstream);
                        Ok(address)
                    }
                    Ok(None) => parse_server(text).ok_or_else(|| {
                        ConfigError::invalid(
                            "upstream.servers",
                            text,
                            "not an address like 192.0.2.53, 192.0.2.53:53 or [2001:db8::53]:53, nor tls://name@192.0.2.53 or https://name@192.0.2.53/dns-query",
                        )
                    }),
                    Err(reason) => Err(ConfigError::invalid("upstream.servers", text, reason)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let servers = selection.select(candidates.clone());
            if servers.is_empty() {
                return Err(ConfigError::NoUpstream {
                    origin: Origin::Unknown,
                    reason: format!(
                        "every server in upstream.servers was dropped ({}); list a server that is not dns64d itself and matches upstream.family, or use --upstream",
                        dropped_servers(&candidates, selection)
                    ),
                });
            }
            servers
        }
        RawServers::Keyword(word) if word == "system" => {
            let servers = selection.read_system();
            if servers.is_empty() {
                // The host may learn resolvers later (DHCP, router advertisements):
                // keep running, answer SERVFAIL and re-read the file until then.
                tracing::warn!(
                    file = %raw.resolv_conf.display(),
                    "no usable upstream server in the system resolver configuration; answering SERVFAIL until one appears"
                );
            }
            servers
        }
        RawServers::Keyword(word) => {
            return Err(ConfigError::invalid(
                "upstream.servers",
                word,
                "expected a list of addresses or \"system\"",
            ));
        }
    };
    encrypted.retain(|upstream| servers.contains(&upstream.address));
    Ok((servers, encrypted))
}

/// Each dropped server with the reason, for the "no usable upstream" error.
pub(super) fn dropped_servers(candidates: &[SocketAddr], selection: &UpstreamSelection) -> String {
    candidates
        .iter()
        .map(|server| {
            let reason = if is_own_listener(server, &selection.listen) {
                "dns64d itself listens there"
            } else if !selection.family.admits(server) {
                "excluded by upstream.family"
            } else {
                "a loop through the shim's loopback address"
            };
            format!("{server}: {reason}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// True if `server` is one of our listen addresses (a wildcard listener covers every local address).
pub(super) fn is_own_listener(server: &SocketAddr, listen: &[SocketAddr]) -> bool {
    listen.iter().any(|own| {
        own.port() == server.port()
            && (own.ip() == server.ip()
                || (own.ip().is_unspecified()
                    && (server.ip().is_loopback() || server.ip().is_unspecified())))
    })
}

/// Name servers from a resolv.conf file, parsed by hickory-resolver's
/// system configuration (an unreadable or empty file gives none). On
/// Windows the adapters' DNS servers are read instead and `path` is unused.
pub(crate) fn read_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    #[cfg(all(unix, not(any(target_os = "android", target_vendor = "apple"))))]
    let parsed = std::fs::read(path)
        .map_err(|error| error.to_string())
        .and_then(|data| {
            hickory_resolver::system_conf::parse_resolv_conf(data)
                .map_err(|error| error.to_string())
        });
    #[cfg(not(all(unix, not(any(target_os = "android", target_vendor = "apple")))))]
    let parsed =
        hickory_resolver::system_conf::read_system_conf().map_err(|error| error.to_string());
    match parsed {
        Ok((resolver_config, _options)) => resolver_config
            .name_servers()
            .iter()
            .map(|server| {
                let port = server
                    .connections
                    .first()
                    .map_or(53, |connection| connection.port);
                SocketAddr::new(server.ip, port)
            })
            .collect(),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "no name servers read from the system resolver configuration");
            Vec::new()
        }
    }
}

/// Checks `[upstream]`: the mode, recursion's files (root hints, trust
/// anchor), the forward servers and the timeouts.
pub(super) fn validate(
    raw: &RawConfig,
    listen: Vec<SocketAddr>,
) -> Result<UpstreamConfig, ConfigError> {
    let selection = UpstreamSelection {
        system: match &raw.upstream.servers {
            RawServers::Keyword(word) if word == "system" => Some(SystemResolvers {
                path: raw.upstream.resolv_conf.clone(),
                refresh: Duration::from_millis(raw.upstream.system_refresh_ms),
            }),
            _ => None,
        },
        family: raw.upstream.family,
        listen,
        avoid_loopback: raw.profile == Profile::Shim,
    };
    let recursive = recursion::validate(raw)?;
    let (servers, encrypted) = if recursive.is_some() {
        (Vec::new(), Vec::new()) // the root hints replace the server list
    } else {
        resolve_servers(&raw.upstream, &selection)?
    };
    if let Some(path) = &raw.upstream.ca_file {
        if let Err(error) = certificate::load_roots(path) {
            return Err(ConfigError::invalid(
                "upstream.ca_file",
                path.display(),
                error,
            ));
        }
    }
    if raw.upstream.timeout_ms == 0 || raw.upstream.timeout_ms > 60_000 {
        return Err(ConfigError::invalid(
            "upstream.timeout_ms",
            raw.upstream.timeout_ms,
            "must be between 1 and 60000",
        ));
    }
    if raw.upstream.attempts == 0 || raw.upstream.attempts > 16 {
        return Err(ConfigError::invalid(
            "upstream.attempts",
            raw.upstream.attempts,
            "must be between 1 and 16",
        ));
    }
    Ok(UpstreamConfig {
        servers,
        encrypted,
        ca_file: raw.upstream.ca_file.clone(),
        recursive,
        selection,
        case_randomization: raw.upstream.case_randomization,
        timeout: Duration::from_millis(raw.upstream.timeout_ms),
        attempts: raw.upstream.attempts,
    })
}
