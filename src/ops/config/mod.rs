//! Configuration: built-in defaults, then a TOML file, then `DNS64D_…`
//! environment variables (nested keys joined with `__`), then command-line
//! flags, merged with figment into [`RawConfig`] and validated once into
//! [`Config`], whose fields are typed (addresses, prefixes, networks,
//! durations) so nothing downstream parses or re-checks them.
//!
//! Errors name the key, the value and the reason; unknown keys are rejected.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use hickory_proto::rr::Name;

use crate::answering::recursive::{RecursiveSettings, read_root_hints, read_trust_anchor};
use crate::answering::upstream::url::EncryptedUpstream;
use crate::answering::zones::ZoneConfig;
use crate::dns64::reverse::{DEFAULT_REVERSE_TTL, ReverseMode};
use crate::dns64::{ExcludedAaaa, Nat64Prefix, SynthesisPrefix, SynthesizeOn};

/// Default resolver file read when `upstream.servers = "system"`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

mod source;

pub use source::{ENV_PREFIX, Origin};

/// Why a configuration cannot be used. Each names where the value was
/// written (file:line:column, environment variable or flag), the key, the
/// value and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or merged (what figment reports beyond
    /// the cases below).
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// The configuration file cannot be read.
    #[error("{}: cannot read the configuration file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("{}:{line}:{column}: not valid TOML: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A key that does not exist.
    #[error("{origin}unknown key `{key}`; allowed here: {allowed}")]
    UnknownKey {
        /// Where it was written.
        origin: Origin,
        /// The key path.
        key: String,
        /// The keys allowed at that level.
        allowed: String,
    },
    /// A `DNS64D_…` environment variable that names no key.
    #[error(
        "environment variable {variable} names no configuration key; did you mean {nearest}? (nested keys are joined with two underscores: DNS64D_SECTION__KEY)"
    )]
    UnknownVariable {
        /// The variable.
        variable: String,
        /// The known variable most like it.
        nearest: String,
    },
    /// A value that is not acceptable.
    #[error("{origin}{key} = {value}: {reason}")]
    Invalid {
        /// Where it was written.
        origin: Origin,
        /// The key path, e.g. `dns64.prefixes`.
        key: String,
        /// The offending value as written.
        value: String,
        /// Why it is not acceptable, and what is allowed.
        reason: String,
    },
    /// No upstream server is left to forward to.
    #[error("{origin}no usable upstream server: {reason}")]
    NoUpstream {
        /// Where the servers were set.
        origin: Origin,
        /// Which servers were dropped and why.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, value: impl ToString, reason: impl ToString) -> Self {
        Self::Invalid {
            origin: Origin::Unknown,
            key: key.to_string(),
            value: toml_text(&value.to_string()),
            reason: reason.to_string(),
        }
    }

    /// Adds where the value was written, if known.
    fn located(mut self, sources: &source::Sources) -> Self {
        match &mut self {
            Self::Invalid {
                origin, key, value, ..
            } => {
                let unquoted = value.trim_matches('"');
                *origin = sources.origin(key, Some(unquoted));
            }
            Self::UnknownKey { origin, key, .. } => *origin = sources.origin_of_key(key),
            Self::NoUpstream { origin, .. } => *origin = sources.origin("upstream.servers", None),
            _ => {}
        }
        self
    }
}

/// A value as TOML writes it: numbers, booleans and lists bare, text quoted.
fn toml_text(value: &str) -> String {
    let bare = value.parse::<f64>().is_ok()
        || value == "true"
        || value == "false"
        || value.starts_with('[');
    if bare {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

/// Checks a range and names the key, the value and the range when outside.
fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

/// The words `log.level` takes alone or after `target=`.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a log filter: a level (`info`) or comma-separated directives
/// `level` / `target=level` (`dns64d=debug,warn`), levels from
/// [`LOG_LEVELS`]. tracing would take `verbose` as a target name and log
/// nothing; this does not.
pub fn check_log_level(text: &str) -> Result<(), String> {
    let allowed = || {
        format!(
            "allowed: {} or directives like \"dns64d=debug,warn\"",
            LOG_LEVELS.join(", ")
        )
    };
    if text.trim().is_empty() {
        return Err(format!("empty; {}", allowed()));
    }
    for directive in text.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if !LOG_LEVELS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(level.trim()))
        {
            return Err(format!(
                "{:?} is not a log level; {}",
                level.trim(),
                allowed()
            ));
        }
        let valid_target = |target: &str| {
            !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
        };
        if let Some(target) = target {
            if !valid_target(target.trim()) {
                return Err(format!(
                    "{:?} is not a module path; {}",
                    target.trim(),
                    allowed()
                ));
            }
        }
    }
    if tracing_subscriber::EnvFilter::try_new(text).is_err() {
        return Err(allowed());
    }
    Ok(())
}

/// The configuration as written: every key of the file, with its default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `"network"` (a DNS64 server for a network) or `"shim"` (a per-host loopback forwarder).
    pub profile: Profile,
    /// Socket addresses to serve on; each serves UDP and TCP.
    pub listen: Vec<String>,
    /// `[upstream]`.
    pub upstream: RawUpstream,
    /// `[dns64]`.
    pub dns64: RawDns64,
    /// `[access]`.
    pub access: RawAccess,
    /// `[cache]`.
    pub cache: RawCache,
    /// `[server]`.
    pub server: RawServer,
    /// `[[listeners]]`: listeners with their own policy, besides `listen`.
    pub listeners: Vec<RawListener>,
    /// `[[zones]]`: local zones served authoritatively.
    pub zones: Vec<RawZone>,
    /// `[log]`.
    pub log: RawLog,
    /// `[metrics]`.
    pub metrics: RawMetrics,
    /// `[rate_limit]`.
    pub rate_limit: RawRateLimit,
    /// `[control]`.
    pub control: RawControl,
    /// `[cookies]`.
    pub cookies: RawCookies,
    /// `[ddr]`: Discovery of Designated Resolvers (RFC 9462).
    pub ddr: RawDdr,
}

/// The default `control.socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/dns64d/control.sock";

/// `[control]` as written: the local socket `dns64d ctl` talks to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawControl {
    /// Path of the Unix socket (mode 0660); `""` turns it off.
    pub socket: PathBuf,
}

impl Default for RawControl {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        }
    }
}

/// `[cookies]` as written: DNS Cookies (RFC 7873, RFC 9018).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawCookies {
    /// Answer DNS Cookies.
    pub enabled: bool,
    /// The server secret, 32 hexadecimal digits (unset: random at start).
    pub secret: Option<String>,
    /// The secret before the last rollover, still accepted.
    pub previous_secret: Option<String>,
    /// Large UDP responses only to clients with a valid server cookie.
    pub require_for_large_udp: bool,
}

impl Default for RawCookies {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
            previous_secret: None,
            require_for_large_udp: false,
        }
    }
}

/// `[ddr]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawDdr {
    /// The name the encrypted listeners' certificate is valid for; set, it
    /// turns on the `_dns.resolver.arpa` SVCB answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `"text"` or `"json"`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `debug`, `dns64d=debug,warn`); `RUST_LOG` overrides it.
    pub level: String,
    /// One line per query (client, name, type, rcode, synthesized, latency).
    pub queries: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            queries: false,
        }
    }
}

/// `[metrics]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// Address of the HTTP endpoint serving `/metrics` and `/healthz`; off when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// One `[[zones]]` table as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    /// The zone's origin, e.g. `example.test`.
    pub name: String,
    /// The RFC 1035 master file (relative paths are relative to the working directory).
    pub file: PathBuf,
    /// Synthesize AAAA for A-only names in this zone.
    #[serde(default = "enabled")]
    pub dns64: bool,
}

/// What dns64d runs as; the profile chooses the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A network DNS64 server: listens on every address, port 53.
    #[default]
    Network,
    /// A per-host shim: 127.0.0.1:53, loopback clients only, forwards to the
    /// host's IPv6 resolvers, synthesis off unless a prefix is configured.
    Shim,
}

/// Which address family of upstream servers to use (`upstream.family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IPv6 servers.
    #[default]
    Any,
    /// Only IPv4 servers.
    Ipv4,
    /// Only IPv6 servers.
    Ipv6,
}

impl Family {
    fn admits(self, address: &SocketAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Ipv4 => address.is_ipv4(),
            Self::Ipv6 => address.is_ipv6(),
        }
    }
}

/// A transport a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// DNS over TLS (RFC 7858); needs `cert` and `key`.
    Tls,
    /// DNS over HTTPS (RFC 8484, HTTP/2); needs `cert` and `key`.
    Https,
}

/// One `[[listeners]]` table as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// Socket address.
    pub address: String,
    /// Transports served; both by default.
    #[serde(default = "both_protocols")]
    pub protocols: Vec<ListenerProtocol>,
    /// Synthesis on this listener.
    #[serde(default = "enabled")]
    pub dns64: bool,
    /// Prefixes used on this listener instead of `dns64.prefixes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<RawPrefix>>,
    /// Networks allowed to query this listener instead of `access.clients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// PEM certificate chain of a `tls` or `https` listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of a `tls` or `https` listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Most connections open at once on this listener (TCP, DoT, DoH)
    /// instead of `server.max_tcp_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Idle timeout of this listener's connections, in milliseconds, instead
    /// of `server.tcp_idle_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

fn both_protocols() -> Vec<ListenerProtocol> {
    vec![ListenerProtocol::Udp, ListenerProtocol::Tcp]
}

fn enabled() -> bool {
    true
}

/// A prefix entry: a plain string, or a table with its own policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawPrefix {
    /// `"64:ff9b::/96"`.
    Plain(String),
    /// `{ prefix = "2001:db8:64::/96", mapped_ipv4 = ["10.0.0.0/8"] }`.
    Table(RawPrefixTable),
}

/// A prefix with its own policy (BIND's `dns64` block options).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPrefixTable {
    /// The NAT64 prefix.
    pub prefix: String,
    /// Only A records in these ranges use this prefix (BIND `mapped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_ipv4: Option<Vec<String>>,
    /// Only these clients get this prefix (BIND `clients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// Bits after the embedded IPv4 address (BIND `suffix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// IPv4 ranges never synthesized under this prefix (replaces `dns64.exclude_ipv4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_ipv4: Option<Vec<String>>,
    /// AAAA ranges treated as absent for this prefix's clients (replaces `dns64.exclude_aaaa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_aaaa: Option<Vec<String>>,
}

/// `upstream.servers`: a list of addresses, or `"system"` for the host's resolvers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawServers {
    /// `"system"`.
    Keyword(String),
    /// `["192.0.2.53", "[2001:db8::53]:53"]`.
    List(Vec<String>),
}

/// `[upstream]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// Servers to forward to.
    pub servers: RawServers,
    /// Timeout of one attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Total attempts across servers.
    pub attempts: u32,
    /// Resolver file read for `servers = "system"`.
    pub resolv_conf: PathBuf,
    /// Address family of the servers to use.
    pub family: Family,
    /// How often the resolver file is re-read for `servers = "system"`, in milliseconds (0: never).
    pub system_refresh_ms: u64,
    /// Randomize the letter case of upstream queries (0x20) and check the echo.
    pub case_randomization: bool,
    /// `"forward"` to the servers, or `"recursive"` from the root.
    pub mode: UpstreamMode,
    /// Root hints file for recursive mode (named.root format); built in when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hints: Option<PathBuf>,
    /// Recursive mode: allow name servers on loopback and private addresses.
    pub query_private_nameservers: bool,
    /// Recursive mode: most referrals and CNAME links followed for one question.
    pub recursion_limit: u8,
    /// Recursive mode: validate answers with DNSSEC (bogus answers become SERVFAIL).
    pub dnssec_validation: bool,
    /// Recursive mode with validation: trust anchor file (DNSKEY records);
    /// the IANA root keys are built in when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_anchor: Option<PathBuf>,
    /// CA certificates (PEM) that DoT/DoH upstream certificates must chain
    /// to, instead of the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// How cache misses are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamMode {
    /// Forward to `upstream.servers`.
    #[default]
    Forward,
    /// Resolve from the root servers.
    Recursive,
}

/// `[dns64]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawDns64 {
    /// NAT64 prefixes (strings or tables).
    pub prefixes: Vec<RawPrefix>,
    /// `[[dns64.prefix]]` tables, appended to `prefixes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix: Vec<RawPrefixTable>,
    /// AAAA ranges treated as absent.
    pub exclude_aaaa: Vec<String>,
    /// IPv4 ranges never synthesized; `None` selects the built-in default.
    pub exclude_ipv4: Option<Vec<String>>,
    /// Whether a failed AAAA lookup leads to synthesis.
    pub synthesize_on: SynthesizeOn,
    /// Synthesize even for DO+CD queries (a departure from RFC 6147 §5.5).
    pub break_dnssec: bool,
    /// Reverse synthesis mode for PTR queries under a prefix.
    pub reverse: ReverseMode,
    /// TTL of the synthesized reverse CNAME.
    pub reverse_ttl: u32,
    /// Clients that get synthesis; others get plain forwarding. `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// Synthesize even when native AAAA exist (replacing them).
    pub synth_all: bool,
    /// Names under these domains ignore native AAAA and are synthesized.
    pub ignore_aaaa_domains: Vec<String>,
    /// Names under these domains are never synthesized.
    pub exclude_domains: Vec<String>,
}

/// `[access]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccess {
    /// Networks allowed to query.
    pub clients: Vec<String>,
}

/// `[cache]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Most entries held.
    pub max_entries: usize,
    /// Lower bound on cached TTLs, seconds.
    pub min_ttl: u32,
    /// Upper bound on cached TTLs, seconds.
    pub max_ttl: u32,
    /// Upper bound on negative-answer TTLs, seconds.
    pub negative_max_ttl: u32,
    /// Serve-stale (RFC 8767): how long after expiry an answer may still be served, seconds (0: off).
    pub stale_max_ttl: u32,
    /// Serve-stale: the TTL of a stale answer, seconds.
    pub stale_answer_ttl: u32,
    /// Serve-stale: the client-response timer, milliseconds (RFC 8767 §5).
    pub stale_client_timeout_ms: u64,
    /// Refresh cached answers asked for in the last part of their TTL.
    pub prefetch: bool,
    /// Prefetch: the last part of the TTL, percent.
    pub prefetch_threshold_percent: u8,
}

/// `[server]` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// EDNS UDP payload size advertised and used as the UDP response limit.
    pub edns_udp_size: u16,
    /// Idle timeout of a TCP client connection, in milliseconds.
    pub tcp_idle_timeout_ms: u64,
    /// Most TCP client connections open at once; more are closed at once.
    pub max_tcp_connections: usize,
    /// Most queries being resolved at once (cache misses); more are dropped.
    pub max_inflight_queries: usize,
    /// Answer to CHAOS TXT `id.server` and `hostname.bind`; hidden when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Answer to CHAOS TXT `version.bind` and `version.server`; hidden when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// NSID (RFC 5001) sent to clients that ask; hidden when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nsid: Option<String>,
}

/// `[rate_limit]` as written: response rate limiting per client prefix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    /// UDP responses per second per client prefix (0: off).
    pub responses_per_second: u32,
    /// Extra responses a prefix may send at once above the rate.
    pub burst: u32,
    /// Every `slip`-th limited response is sent truncated (TC=1) instead of dropped (0: drop all).
    pub slip: u32,
    /// Client prefix length for IPv4.
    pub ipv4_prefix_length: u8,
    /// Client prefix length for IPv6.
    pub ipv6_prefix_length: u8,
    /// Clients never limited.
    pub exempt: Vec<String>,
    /// Most client prefixes tracked at once.
    pub max_tracked: usize,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            burst: 0,
            slip: 2,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_tracked: 100_000,
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            profile: Profile::Network,
            listen: vec!["[::]:53".into(), "0.0.0.0:53".into()],
            upstream: RawUpstream::default(),
            dns64: RawDns64::default(),
            access: RawAccess::default(),
            cache: RawCache::default(),
            server: RawServer::default(),
            listeners: Vec::new(),
            zones: Vec::new(),
            log: RawLog::default(),
            metrics: RawMetrics::default(),
            rate_limit: RawRateLimit::default(),
            control: RawControl::default(),
            cookies: RawCookies::default(),
            ddr: RawDdr::default(),
        }
    }
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            servers: RawServers::Keyword("system".into()),
            timeout_ms: 2000,
            attempts: 2,
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            family: Family::Any,
            system_refresh_ms: 2000,
            case_randomization: false,
            mode: UpstreamMode::Forward,
            root_hints: None,
            query_private_nameservers: false,
            recursion_limit: 12,
            dnssec_validation: false,
            trust_anchor: None,
            ca_file: None,
        }
    }
}

impl Default for RawDns64 {
    fn default() -> Self {
        Self {
            prefixes: vec![RawPrefix::Plain("64:ff9b::/96".into())],
            prefix: Vec::new(),
            exclude_aaaa: vec!["::ffff:0:0/96".into()],
            exclude_ipv4: None,
            synthesize_on: SynthesizeOn::Rfc,
            break_dnssec: false,
            reverse: ReverseMode::Cname,
            reverse_ttl: DEFAULT_REVERSE_TTL,
            clients: None,
            synth_all: false,
            ignore_aaaa_domains: Vec::new(),
            exclude_domains: Vec::new(),
        }
    }
}

/// The default `access.clients`: loopback and private ranges, never an open resolver.
pub const DEFAULT_ACCESS_CLIENTS: [&str; 7] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

impl Default for RawAccess {
    fn default() -> Self {
        Self {
            clients: DEFAULT_ACCESS_CLIENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            min_ttl: 0,
            max_ttl: 86400,
            negative_max_ttl: 3600,
            stale_max_ttl: 86400,
            stale_answer_ttl: 30,
            stale_client_timeout_ms: 1800,
            prefetch: true,
            prefetch_threshold_percent: 10,
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            edns_udp_size: 1232,
            tcp_idle_timeout_ms: 10_000,
            max_tcp_connections: 1024,
            max_inflight_queries: 10_000,
            identity: None,
            version: None,
            nsid: None,
        }
    }
}

/// Values given on the command line; each replaces one key.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` (repeatable).
    pub listen: Vec<String>,
    /// `--upstream` (repeatable).
    pub upstream: Vec<String>,
    /// `--prefix` (repeatable).
    pub prefix: Vec<String>,
    /// `--shim`: the shim profile.
    pub shim: bool,
}

/// Merges defaults, the optional file, the environment and the overrides.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut sources = source::Sources {
        environment: std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| {
                name.get(..ENV_PREFIX.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(ENV_PREFIX))
            })
            .collect(),
        ..source::Sources::default()
    };
    source::check_environment(&sources.environment)?;
    let mut user = Figment::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        source::check_syntax(path, &text)?;
        user = user.merge(Toml::string(&text));
        sources.file = Some((path.to_path_buf(), text));
    }
    user = user.merge(Env::prefixed(ENV_PREFIX).split("__"));
    if overrides.shim {
        user = user.merge(Serialized::default("profile", Profile::Shim));
        sources.flags.push(("profile", "--shim"));
    }
    if !overrides.listen.is_empty() {
        user = user.merge(Serialized::default("listen", &overrides.listen));
        sources.flags.push(("listen", "--listen"));
    }
    if !overrides.upstream.is_empty() {
        user = user.merge(Serialized::default("upstream.servers", &overrides.upstream));
        sources.flags.push(("upstream.servers", "--upstream"));
    }
    if !overrides.prefix.is_empty() {
        user = user.merge(Serialized::default("dns64.prefixes", &overrides.prefix));
        sources.flags.push(("dns64.prefixes", "--prefix"));
    }
    build(user).map_err(|error| error.located(&sources))
}

/// Validates `[cookies]`.
fn parse_cookies(raw: &RawCookies) -> Result<CookiesConfig, ConfigError> {
    let secret = |key: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| {
                crate::edge::cookies::parse_secret(text).ok_or_else(|| {
                    ConfigError::invalid(
                        key,
                        text,
                        "must be 32 hexadecimal digits (a 128-bit SipHash key, RFC 9018 §4.4), the same on every server of an anycast group",
                    )
                })
            })
            .transpose()
    };
    let previous_secret = secret("cookies.previous_secret", &raw.previous_secret)?;
    let current = secret("cookies.secret", &raw.secret)?;
    if current.is_none() && previous_secret.is_some() {
        return Err(ConfigError::invalid(
            "cookies.previous_secret",
            raw.previous_secret.as_deref().unwrap_or_default(),
            "needs cookies.secret (the secret that replaced it)",
        ));
    }
    Ok(CookiesConfig {
        enabled: raw.enabled,
        secret: current,
        previous_secret,
        require_for_large_udp: raw.require_for_large_udp,
    })
}

/// The serve-stale and prefetch bounds of `[cache]`.
fn check_stale_and_prefetch(cache: &CacheConfig) -> Result<(), ConfigError> {
    if cache.stale_answer_ttl == 0 || cache.stale_answer_ttl > 3600 {
        return Err(ConfigError::invalid(
            "cache.stale_answer_ttl",
            cache.stale_answer_ttl,
            "must be between 1 and 3600 seconds (RFC 8767 §4 suggests 30)",
        ));
    }
    let timeout_ms = cache.stale_client_timeout.as_millis();
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "cache.stale_client_timeout_ms",
            timeout_ms,
            "must be between 1 and 60000 milliseconds (RFC 8767 §5 suggests 1800)",
        ));
    }
    if !(1..=50).contains(&cache.prefetch_threshold_percent) {
        return Err(ConfigError::invalid(
            "cache.prefetch_threshold_percent",
            cache.prefetch_threshold_percent,
            "must be between 1 and 50 (percent of the TTL)",
        ));
    }
    Ok(())
}

/// Parses a TOML document on top of the defaults (no environment), for tests and tools.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    build(Figment::from(Toml::string(text)))
}

/// The defaults of a profile under what the user wrote, then validation.
fn build(user: Figment) -> Result<Config, ConfigError> {
    let profile: Profile = match user.find_value("profile") {
        Ok(_) => user.extract_inner("profile").map_err(source::translate)?,
        Err(_) => Profile::Network,
    };
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    if profile == Profile::Shim {
        figment = figment
            .merge(Serialized::default("listen", SHIM_LISTEN))
            .merge(Serialized::default("access.clients", SHIM_ACCESS_CLIENTS))
            .merge(Serialized::default("upstream.family", Family::Ipv6))
            .merge(Serialized::default("dns64.prefixes", Vec::<String>::new()));
    }
    let raw: RawConfig = figment.merge(user).extract().map_err(source::translate)?;
    Config::validate(raw)
}

/// The top-level keys of the configuration (sections and plain keys).
pub const TOP_LEVEL_KEYS: [&str; 15] = [
    "cookies",
    "profile",
    "listen",
    "listeners",
    "upstream",
    "dns64",
    "access",
    "cache",
    "server",
    "zones",
    "log",
    "metrics",
    "rate_limit",
    "control",
    "ddr",
];

/// The shim's default listen address.
pub const SHIM_LISTEN: [&str; 1] = ["127.0.0.1:53"];
/// The shim's default `access.clients`: loopback only.
pub const SHIM_ACCESS_CLIENTS: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The profile the defaults came from.
    pub profile: Profile,
    /// Listeners: `listen` entries (both transports, global policy) then `[[listeners]]`.
    pub listeners: Vec<ListenerConfig>,
    /// Forwarding.
    pub upstream: UpstreamConfig,
    /// DNS64 policy.
    pub dns64: Dns64Config,
    /// Networks allowed to query (others get REFUSED).
    pub access_clients: Vec<IpNet>,
    /// Cache bounds.
    pub cache: CacheConfig,
    /// Listener behaviour.
    pub server: ServerConfig,
    /// The merged raw values, for `--check-config`.
    pub raw: RawConfig,
    /// Legal but suspicious settings, logged at start and printed by `--check-config`.
    pub warnings: Vec<String>,
    /// Local zones.
    pub zones: Vec<ZoneConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The metrics and health endpoint, if enabled.
    pub metrics_listen: Option<SocketAddr>,
    /// Response rate limiting.
    pub rate_limit: RateLimitConfig,
    /// The control socket (`None`: off).
    pub control_socket: Option<PathBuf>,
    /// What CHAOS TXT and NSID reveal.
    pub identity: crate::answering::identity::Identity,
    /// DNS Cookies.
    pub cookies: CookiesConfig,
    /// `ddr.name`: the designated resolvers' name (RFC 9462); `None`: no DDR.
    pub ddr_name: Option<Name>,
}

/// Validated `[cookies]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiesConfig {
    /// Answer DNS Cookies.
    pub enabled: bool,
    /// The configured secret (`None`: the server makes a random one at start).
    pub secret: Option<crate::edge::cookies::CookieSecret>,
    /// The previous secret, still accepted.
    pub previous_secret: Option<crate::edge::cookies::CookieSecret>,
    /// Large UDP responses only to clients with a valid server cookie.
    pub require_for_large_udp: bool,
}

/// Validated `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// The tracing filter.
    pub level: String,
    /// Log every query.
    pub queries: bool,
}

/// One validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Socket address.
    pub address: SocketAddr,
    /// Serve UDP.
    pub udp: bool,
    /// Serve TCP.
    pub tcp: bool,
    /// Synthesis on this listener.
    pub dns64: bool,
    /// Prefixes instead of `dns64.prefixes`.
    pub prefixes: Option<Vec<SynthesisPrefix>>,
    /// With `prefixes`: whether the list includes `"discover"`.
    pub discover: Option<bool>,
    /// Access list instead of `access.clients`.
    pub clients: Option<Vec<IpNet>>,
    /// A DoT or DoH listener (then `udp` and `tcp` are false).
    pub encrypted: Option<EncryptedListener>,
    /// Connection limit and idle timeout instead of `[server]`'s.
    pub connections: ConnectionLimits,
}

/// A listener's own connection limit and idle timeout (`None`: `[server]`'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// Idle timeout of a connection.
    pub idle_timeout: Option<Duration>,
}

/// The encrypted transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedProtocol {
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484) on HTTP/2.
    Https,
}

/// A validated DoT or DoH listener: its transport and certificate files
/// (loaded once during validation, so a bad file is a configuration error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedListener {
    /// DoT or DoH.
    pub protocol: EncryptedProtocol,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

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
    pub fn serves(&self, client: std::net::IpAddr) -> bool {
        let client = client.to_canonical();
        self.clients
            .as_ref()
            .is_none_or(|clients| clients.iter().any(|net| net.contains(&client)))
    }

    /// True if `name` is at or below one of `exclude_domains`.
    pub fn is_excluded_domain(&self, name: &Name) -> bool {
        self.exclude_domains
            .iter()
            .any(|domain| domain.zone_of(name))
    }

    /// True if native AAAA for `name` are ignored (`synth_all` or `ignore_aaaa_domains`).
    pub fn ignores_native_aaaa(&self, name: &Name) -> bool {
        self.synth_all
            || self
                .ignore_aaaa_domains
                .iter()
                .any(|domain| domain.zone_of(name))
    }
}

/// Validated `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Lower bound on cached TTLs, seconds.
    pub min_ttl: u32,
    /// Upper bound on cached TTLs, seconds.
    pub max_ttl: u32,
    /// Upper bound on negative TTLs, seconds.
    pub negative_max_ttl: u32,
    /// Serve-stale (RFC 8767): seconds after expiry an answer may still be served (0: off).
    pub stale_max_ttl: u32,
    /// The TTL of stale answers, seconds (RFC 8767 §4).
    pub stale_answer_ttl: u32,
    /// How long a client waits for the upstream before a stale answer (RFC 8767 §5).
    pub stale_client_timeout: Duration,
    /// Whether answers asked for late in their TTL are refreshed in the background.
    pub prefetch: bool,
    /// The last part of a TTL, in percent, in which a query triggers the refresh.
    pub prefetch_threshold_percent: u8,
}

/// Validated `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// EDNS UDP payload size (512–4096).
    pub edns_udp_size: u16,
    /// Idle timeout of TCP client connections.
    pub tcp_idle_timeout: Duration,
    /// Most TCP client connections at once.
    pub max_tcp_connections: usize,
    /// Most queries being resolved at once.
    pub max_inflight_queries: usize,
}

/// Validated `[rate_limit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Responses per second per prefix (0: off).
    pub responses_per_second: u32,
    /// Burst above the rate.
    pub burst: u32,
    /// Slip ratio (0: drop every limited response).
    pub slip: u32,
    /// IPv4 prefix length.
    pub ipv4_prefix_length: u8,
    /// IPv6 prefix length.
    pub ipv6_prefix_length: u8,
    /// Exempt networks.
    pub exempt: Vec<IpNet>,
    /// Most prefixes tracked.
    pub max_tracked: usize,
}

impl Config {
    /// Checks every value of `raw` and builds the typed configuration.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let global_exclude_ipv4 = raw
            .dns64
            .exclude_ipv4
            .as_ref()
            .map(|list| parse_ipv4_networks("dns64.exclude_ipv4", list))
            .transpose()?;
        let mut prefix_entries: Vec<RawPrefix> = raw.dns64.prefixes.clone();
        prefix_entries.extend(raw.dns64.prefix.iter().cloned().map(RawPrefix::Table));
        let (prefixes, discover) = parse_prefix_list(
            "dns64.prefixes",
            &prefix_entries,
            global_exclude_ipv4.as_deref(),
            &mut warnings,
        )?;

        let mut listeners = Vec::new();
        for text in &raw.listen {
            listeners.push(ListenerConfig {
                address: parse_listen("listen", text)?,
                udp: true,
                tcp: true,
                dns64: true,
                prefixes: None,
                discover: None,
                clients: None,
                encrypted: None,
                connections: ConnectionLimits::default(),
            });
        }
        for (index, listener) in raw.listeners.iter().enumerate() {
            let key = format!("listeners[{index}]");
            let (prefixes, listener_discover) = match &listener.prefixes {
                Some(list) => {
                    let (fixed, discover) = parse_prefix_list(
                        &format!("{key}.prefixes"),
                        list,
                        global_exclude_ipv4.as_deref(),
                        &mut warnings,
                    )?;
                    (Some(fixed), Some(discover))
                }
                None => (None, None),
            };
            let clients = listener
                .clients
                .as_ref()
                .map(|list| parse_ip_networks(&format!("{key}.clients"), list))
                .transpose()?;
            if listener.protocols.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.protocols").as_str(),
                    "[]",
                    "list \"udp\", \"tcp\" or both",
                ));
            }
            let encrypted = validate_encrypted_listener(&key, listener)?;
            if listener.idle_timeout_ms == Some(0) {
                return Err(ConfigError::invalid(
                    &format!("{key}.idle_timeout_ms"),
                    0,
                    "must be at least 1 (milliseconds)",
                ));
            }
            listeners.push(ListenerConfig {
                address: parse_listen(&format!("{key}.address"), &listener.address)?,
                udp: listener.protocols.contains(&ListenerProtocol::Udp),
                tcp: listener.protocols.contains(&ListenerProtocol::Tcp),
                dns64: listener.dns64,
                prefixes,
                discover: listener_discover,
                clients,
                encrypted,
                connections: ConnectionLimits {
                    max_connections: listener.max_connections,
                    idle_timeout: listener.idle_timeout_ms.map(Duration::from_millis),
                },
            });
        }
        if listeners.is_empty() {
            return Err(ConfigError::invalid(
                "listen",
                "[]",
                "at least one address is needed (in `listen` or `[[listeners]]`)",
            ));
        }
        let listen: Vec<SocketAddr> = listeners.iter().map(|listener| listener.address).collect();

        let selection = UpstreamSelection {
            system: match &raw.upstream.servers {
                RawServers::Keyword(word) if word == "system" => Some(SystemResolvers {
                    path: raw.upstream.resolv_conf.clone(),
                    refresh: Duration::from_millis(raw.upstream.system_refresh_ms),
                }),
                _ => None,
            },
            family: raw.upstream.family,
            listen: listen.clone(),
            avoid_loopback: raw.profile == Profile::Shim,
        };
        let recursive = (raw.upstream.mode == UpstreamMode::Recursive).then(|| RecursiveSettings {
            root_hints: raw.upstream.root_hints.clone(),
            query_private_nameservers: raw.upstream.query_private_nameservers,
            timeout: Duration::from_millis(raw.upstream.timeout_ms)
                .saturating_mul(raw.upstream.attempts.max(1)),
            cache_entries: u64::try_from(raw.cache.max_entries).unwrap_or(u64::MAX),
            recursion_limit: raw.upstream.recursion_limit,
            case_randomization: raw.upstream.case_randomization,
            edns_udp_size: raw.server.edns_udp_size,
            dnssec_validation: raw.upstream.dnssec_validation,
            trust_anchor: raw.upstream.trust_anchor.clone(),
        });
        if recursive.is_none() && raw.upstream.dnssec_validation {
            return Err(ConfigError::invalid(
                "upstream.dnssec_validation",
                true,
                "needs upstream.mode = \"recursive\" (in forward mode the upstream validates and its AD bit is passed on)",
            ));
        }
        if let Some(path) = &raw.upstream.trust_anchor {
            // (Validation outside recursive mode was rejected just above.)
            if !raw.upstream.dnssec_validation {
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
            if raw.upstream.recursion_limit == 0 {
                return Err(ConfigError::invalid(
                    "upstream.recursion_limit",
                    0,
                    "must be at least 1",
                ));
            }
        }
        let (servers, encrypted) = if recursive.is_some() {
            (Vec::new(), Vec::new()) // the root hints replace the server list
        } else {
            resolve_servers(&raw.upstream, &selection)?
        };
        if let Some(path) = &raw.upstream.ca_file {
            if let Err(error) = crate::edge::certificate::load_roots(path) {
                return Err(ConfigError::invalid(
                    "upstream.ca_file",
                    path.display(),
                    error,
                ));
            }
        }
        let ddr_name = match &raw.ddr.name {
            None => None,
            Some(text) => {
                if !listeners
                    .iter()
                    .any(|listener| listener.encrypted.is_some())
                {
                    return Err(ConfigError::invalid(
                        "ddr.name",
                        text,
                        "DDR designates the encrypted listeners: add a [[listeners]] with protocols = [\"tls\"] or [\"https\"]",
                    ));
                }
                let name = parse_domains("ddr.name", std::slice::from_ref(text))?;
                name.into_iter().next()
            }
        };
        let upstream = UpstreamConfig {
            servers,
            encrypted,
            ca_file: raw.upstream.ca_file.clone(),
            recursive,
            selection,
            case_randomization: raw.upstream.case_randomization,
            timeout: Duration::from_millis(raw.upstream.timeout_ms),
            attempts: raw.upstream.attempts,
        };
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

        let exclude_aaaa =
            parse_exclude_aaaa("dns64.exclude_aaaa", &raw.dns64.exclude_aaaa, &mut warnings)?;
        warn_about_prefixes(&prefixes, &exclude_aaaa, &mut warnings);

        let access_clients = parse_ip_networks("access.clients", &raw.access.clients)?;
        if let Err(reason) = check_log_level(&raw.log.level) {
            return Err(ConfigError::invalid("log.level", &raw.log.level, reason));
        }
        let metrics_listen = raw
            .metrics
            .listen
            .as_ref()
            .map(|text| parse_listen("metrics.listen", text))
            .transpose()?;
        let mut zones: Vec<ZoneConfig> = Vec::new();
        for (index, zone) in raw.zones.iter().enumerate() {
            let key = format!("zones[{index}].name");
            let name = parse_domains(&key, std::slice::from_ref(&zone.name))?
                .pop()
                .expect("one name parsed");
            if zones.iter().any(|known| known.name == name) {
                return Err(ConfigError::invalid(&key, &zone.name, "listed twice"));
            }
            zones.push(ZoneConfig {
                name,
                file: zone.file.clone(),
                dns64: zone.dns64,
            });
        }
        let dns64_clients = raw
            .dns64
            .clients
            .as_ref()
            .map(|list| parse_ip_networks("dns64.clients", list))
            .transpose()?;
        let ignore_aaaa_domains =
            parse_domains("dns64.ignore_aaaa_domains", &raw.dns64.ignore_aaaa_domains)?;
        let exclude_domains = parse_domains("dns64.exclude_domains", &raw.dns64.exclude_domains)?;
        if raw.dns64.reverse_ttl > 604_800 {
            return Err(ConfigError::invalid(
                "dns64.reverse_ttl",
                raw.dns64.reverse_ttl,
                "must be at most 604800 (one week)",
            ));
        }

        let cache = CacheConfig {
            max_entries: raw.cache.max_entries,
            min_ttl: raw.cache.min_ttl,
            max_ttl: raw.cache.max_ttl,
            negative_max_ttl: raw.cache.negative_max_ttl,
            stale_max_ttl: raw.cache.stale_max_ttl,
            stale_answer_ttl: raw.cache.stale_answer_ttl,
            stale_client_timeout: Duration::from_millis(raw.cache.stale_client_timeout_ms),
            prefetch: raw.cache.prefetch,
            prefetch_threshold_percent: raw.cache.prefetch_threshold_percent,
        };
        check_stale_and_prefetch(&cache)?;
        if cache.min_ttl > cache.max_ttl {
            return Err(ConfigError::invalid(
                "cache.min_ttl",
                cache.min_ttl,
                format!("is larger than cache.max_ttl ({})", cache.max_ttl),
            ));
        }

        let edns_udp_size = raw.server.edns_udp_size;
        if !(512..=4096).contains(&edns_udp_size) {
            return Err(ConfigError::invalid(
                "server.edns_udp_size",
                edns_udp_size,
                "must be between 512 and 4096",
            ));
        }
        let server = ServerConfig {
            edns_udp_size,
            tcp_idle_timeout: Duration::from_millis(check_range(
                "server.tcp_idle_timeout_ms",
                raw.server.tcp_idle_timeout_ms,
                1,
                3_600_000,
            )?),
            max_tcp_connections: check_range(
                "server.max_tcp_connections",
                raw.server.max_tcp_connections,
                1,
                1_000_000,
            )?,
            max_inflight_queries: check_range(
                "server.max_inflight_queries",
                raw.server.max_inflight_queries,
                1,
                10_000_000,
            )?,
        };
        let identity = crate::answering::identity::Identity::new(
            raw.server.identity.as_deref(),
            raw.server.version.as_deref(),
            raw.server.nsid.as_deref(),
        )
        .map_err(|error| {
            let value = match error.key() {
                "server.identity" => raw.server.identity.clone(),
                "server.version" => raw.server.version.clone(),
                _ => raw.server.nsid.clone(),
            };
            ConfigError::invalid(error.key(), value.unwrap_or_default(), error)
        })?;
        let limit = &raw.rate_limit;
        if limit.ipv4_prefix_length > 32 {
            return Err(ConfigError::invalid(
                "rate_limit.ipv4_prefix_length",
                limit.ipv4_prefix_length,
                "must be at most 32",
            ));
        }
        if limit.ipv6_prefix_length > 128 {
            return Err(ConfigError::invalid(
                "rate_limit.ipv6_prefix_length",
                limit.ipv6_prefix_length,
                "must be at most 128",
            ));
        }
        let rate_limit = RateLimitConfig {
            responses_per_second: limit.responses_per_second,
            burst: limit.burst,
            slip: limit.slip,
            ipv4_prefix_length: limit.ipv4_prefix_length,
            ipv6_prefix_length: limit.ipv6_prefix_length,
            exempt: parse_ip_networks("rate_limit.exempt", &limit.exempt)?,
            max_tracked: check_range("rate_limit.max_tracked", limit.max_tracked, 1, 100_000_000)?,
        };

        Ok(Self {
            profile: raw.profile,
            listeners,
            upstream,
            dns64: Dns64Config {
                prefixes,
                discover,
                discovered_exclude_ipv4: global_exclude_ipv4.clone(),
                exclude_aaaa: ExcludedAaaa::new(&exclude_aaaa),
                synthesize_on: raw.dns64.synthesize_on,
                break_dnssec: raw.dns64.break_dnssec,
                reverse: raw.dns64.reverse,
                reverse_ttl: raw.dns64.reverse_ttl,
                clients: dns64_clients,
                synth_all: raw.dns64.synth_all,
                ignore_aaaa_domains,
                exclude_domains,
            },
            access_clients,
            cache,
            server,
            log: LogConfig {
                format: raw.log.format,
                level: raw.log.level.clone(),
                queries: raw.log.queries,
            },
            metrics_listen,
            rate_limit,
            control_socket: (!raw.control.socket.as_os_str().is_empty())
                .then(|| raw.control.socket.clone()),
            identity,
            cookies: parse_cookies(&raw.cookies)?,
            ddr_name,
            raw,
            warnings,
            zones,
        })
    }

    /// The effective configuration as TOML (for `--check-config`).
    pub fn to_toml(&self) -> String {
        let mut effective = self.raw.clone();
        effective.upstream.servers = RawServers::List(
            self.upstream
                .servers
                .iter()
                .map(|server| {
                    self.upstream
                        .encrypted
                        .iter()
                        .find(|encrypted| encrypted.address == *server)
                        .map_or_else(|| server.to_string(), ToString::to_string)
                })
                .collect(),
        );
        let mut text = toml::to_string_pretty(&effective)
            .unwrap_or_else(|error| format!("# cannot render: {error}\n"));
        for warning in &self.warnings {
            text.push_str(&format!("# warning: {warning}\n"));
        }
        if self.raw.dns64.exclude_ipv4.is_none() {
            text.push_str("\n# dns64.exclude_ipv4 is not set: built-in exclusions per prefix\n");
            for prefix in &self.dns64.prefixes {
                let ranges: Vec<String> = prefix
                    .excluded_ipv4
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                text.push_str(&format!("#   {}: {}\n", prefix.prefix, ranges.join(", ")));
            }
        }
        text
    }
}

/// Parses a listen address; the port is required.
/// Checks a listener's encrypted transport: `tls` or `https` alone in
/// `protocols` (each is a TCP port of its own), with `cert` and `key` that
/// load; `cert` and `key` only with one of them.
fn validate_encrypted_listener(
    key: &str,
    listener: &RawListener,
) -> Result<Option<EncryptedListener>, ConfigError> {
    let protocol = match listener.protocols.as_slice() {
        [ListenerProtocol::Tls] => Some(EncryptedProtocol::Tls),
        [ListenerProtocol::Https] => Some(EncryptedProtocol::Https),
        protocols
            if protocols
                .iter()
                .any(|p| matches!(p, ListenerProtocol::Tls | ListenerProtocol::Https)) =>
        {
            return Err(ConfigError::invalid(
                &format!("{key}.protocols"),
                format!("{protocols:?}"),
                "\"tls\" and \"https\" each need a listener of their own (a separate address or port): list one of them alone",
            ));
        }
        _ => None,
    };
    let (Some(protocol), Some(cert), Some(private_key)) = (protocol, &listener.cert, &listener.key)
    else {
        return match (protocol, &listener.cert, &listener.key) {
            (None, None, None) => Ok(None),
            (None, Some(path), _) | (None, None, Some(path)) => Err(ConfigError::invalid(
                &format!(
                    "{key}.{}",
                    if listener.cert.is_some() {
                        "cert"
                    } else {
                        "key"
                    }
                ),
                path.display(),
                "a certificate is only used by a \"tls\" or \"https\" listener",
            )),
            (Some(_), None, _) => Err(ConfigError::invalid(
                &format!("{key}.cert"),
                "(missing)",
                "a \"tls\" or \"https\" listener needs `cert`, a PEM certificate chain file",
            )),
            _ => Err(ConfigError::invalid(
                &format!("{key}.key"),
                "(missing)",
                "a \"tls\" or \"https\" listener needs `key`, a PEM private key file",
            )),
        };
    };
    if let Err(error) = crate::edge::certificate::load(cert, private_key) {
        let which = match error {
            crate::edge::certificate::CertificateError::Key { .. } => "key",
            _ => "cert",
        };
        let path = if which == "key" { private_key } else { cert };
        return Err(ConfigError::invalid(
            &format!("{key}.{which}"),
            path.display(),
            error,
        ));
    }
    Ok(Some(EncryptedListener {
        protocol,
        cert: cert.clone(),
        key: private_key.clone(),
    }))
}

fn parse_listen(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            text,
            "not a socket address like 127.0.0.1:53 or [::1]:53",
        )
    })
}

/// Parses IP networks; a bare address means a single host.
fn parse_ip_networks(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|text| {
            text.trim()
                .parse::<IpNet>()
                .or_else(|_| text.trim().parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::invalid(key, text, "not an IP network like 10.0.0.0/8"))
        })
        .collect()
}

/// Parses IPv4 networks.
fn parse_ipv4_networks(key: &str, list: &[String]) -> Result<Vec<Ipv4Net>, ConfigError> {
    list.iter()
        .map(|text| {
            text.trim()
                .parse::<Ipv4Net>()
                .map(|network| network.trunc())
                .map_err(|_| ConfigError::invalid(key, text, "not an IPv4 network like 10.0.0.0/8"))
        })
        .collect()
}

/// Parses domain names (made fully qualified).
fn parse_domains(key: &str, list: &[String]) -> Result<Vec<Name>, ConfigError> {
    list.iter()
        .map(|text| {
            Name::from_str_relaxed(text.trim())
                .map(|name| {
                    let mut name = name.to_lowercase();
                    name.set_fqdn(true);
                    name
                })
                .map_err(|error| ConfigError::invalid(key, text, error))
        })
        .collect()
}

/// Parses a list of prefix entries (strings or tables) into prefixes with policy.
fn parse_prefix_list(
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
fn parse_exclude_aaaa(
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
fn warn_about_prefixes(
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

/// Parses an upstream server: `ip`, `ip:port`, `[v6]` or `[v6]:port` (port 53 if omitted).
pub fn parse_server(text: &str) -> Option<SocketAddr> {
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
    pub fn select(&self, candidates: Vec<SocketAddr>) -> Vec<SocketAddr> {
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
    pub fn read_system(&self) -> Vec<SocketAddr> {
        match &self.system {
            Some(system) => self.select(read_resolv_conf(&system.path)),
            None => Vec::new(),
        }
    }
}

/// The upstream servers: the list, or the system resolvers, filtered.
fn resolve_servers(
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
fn dropped_servers(candidates: &[SocketAddr], selection: &UpstreamSelection) -> String {
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
fn is_own_listener(server: &SocketAddr, listen: &[SocketAddr]) -> bool {
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
pub fn read_resolv_conf(path: &Path) -> Vec<SocketAddr> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(toml: &str) -> String {
        from_toml_str(toml)
            .expect_err("config must be rejected")
            .to_string()
    }

    const BASE: &str = "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"192.0.2.53\"]\n";

    #[test]
    fn defaults_with_explicit_upstream_are_valid() {
        let config = from_toml_str(BASE).unwrap();
        assert_eq!(
            config.upstream.servers,
            vec!["192.0.2.53:53".parse().unwrap()]
        );
        assert_eq!(config.upstream.timeout, Duration::from_millis(2000));
        assert_eq!(config.upstream.attempts, 2);
        assert_eq!(config.dns64.prefixes.len(), 1);
        assert!(config.dns64.prefixes[0].prefix.is_well_known());
        assert_eq!(config.cache.max_entries, 100_000);
        assert_eq!(config.server.edns_udp_size, 1232);
        assert_eq!(config.access_clients.len(), 7);
    }

    #[test]
    fn bad_prefix_names_key_value_and_reason() {
        let text = error_text(&format!("{BASE}[dns64]\nprefixes = [\"64:ff9b::/80\"]\n"));
        assert!(text.contains("dns64.prefixes"), "{text}");
        assert!(text.contains("64:ff9b::/80"), "{text}");
        assert!(text.contains("/80"), "{text}");
        let text = error_text(&format!(
            "{BASE}[dns64]\nprefixes = [\"2001:db8:0:0:ff00::/96\"]\n"
        ));
        assert!(text.contains("bits 64-71"), "{text}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = error_text(&format!("{BASE}[dns64]\nprefixs = [\"64:ff9b::/96\"]\n"));
        assert!(text.contains("prefixs"), "{text}");
    }

    #[test]
    fn upstream_port_defaults_to_53() {
        assert_eq!(
            parse_server("192.0.2.53"),
            Some("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("2001:db8::53"),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[2001:db8::53]"),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[2001:db8::53]:5353"),
            Some("[2001:db8::53]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("nonsense"), None);
    }

    #[test]
    fn own_listener_is_never_an_upstream() {
        let toml = "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"127.0.0.1:5300\", \"192.0.2.53\"]\n";
        let config = from_toml_str(toml).unwrap();
        assert_eq!(
            config.upstream.servers,
            vec!["192.0.2.53:53".parse().unwrap()]
        );
        let toml = "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"127.0.0.1:5300\"]\n";
        assert!(error_text(toml).contains("no usable upstream"));
    }

    #[test]
    fn resolv_conf_is_read_for_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# test\nnameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch example\n",
        )
        .unwrap();
        let toml = format!(
            "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = \"system\"\nresolv_conf = {:?}\n",
            path.display().to_string()
        );
        let config = from_toml_str(&toml).unwrap();
        assert_eq!(
            config.upstream.servers,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn check_config_warns_about_suspicious_dns64_settings() {
        let config = from_toml_str(&format!(
            "{BASE}[dns64]\nprefixes = [\"2001:db8:64::/96\", \"2001:db8::/32\"]\nexclude_aaaa = [\"::ffff/96\"]\nexclude_ipv4 = [\"0.0.0.0/0\"]\n"
        ))
        .unwrap();
        let warnings = config.warnings.join("\n");
        assert!(
            warnings.contains("2001:db8::/32 and 2001:db8:64::/96 overlap")
                || warnings.contains("2001:db8:64::/96 and 2001:db8::/32 overlap"),
            "{warnings}"
        );
        assert!(warnings.contains("\"::ffff/96\" is a typo"), "{warnings}");
        assert!(warnings.contains("will never synthesize"), "{warnings}");
        assert!(config.to_toml().contains("# warning: "));
        // The excluded network is used as it means (::/96), not as written.
        assert!(
            config
                .dns64
                .exclude_aaaa
                .is_excluded(&"::1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn unroutable_prefixes_are_rejected() {
        for prefix in ["fe80::/64", "ff0e::/96", "::1/128", "::/96"] {
            let text = error_text(&format!("{BASE}[dns64]\nprefixes = [\"{prefix}\"]\n"));
            assert!(text.contains("dns64.prefixes"), "{prefix}: {text}");
        }
    }

    #[test]
    fn prefix_tables_listeners_and_policies_parse() {
        let config = from_toml_str(&format!(
            "{BASE}[dns64]\nprefixes = [\"64:ff9b::/96\", {{ prefix = \"2001:db8:64::/96\", mapped_ipv4 = [\"10.0.0.0/8\"], clients = [\"10.1.0.0/16\"] }}]\n\
             reverse = \"ptr\"\nreverse_ttl = 30\nclients = [\"10.0.0.0/8\"]\nsynth_all = true\n\
             ignore_aaaa_domains = [\"broken.example\"]\nexclude_domains = [\"corp.example.\"]\n\
             [[listeners]]\naddress = \"127.0.0.1:53\"\nprotocols = [\"udp\"]\ndns64 = false\n"
        ))
        .unwrap();
        assert_eq!(config.dns64.prefixes.len(), 2);
        assert!(config.dns64.prefixes[1].mapped_ipv4.is_some());
        assert_eq!(config.dns64.reverse, ReverseMode::Ptr);
        assert_eq!(config.dns64.reverse_ttl, 30);
        assert!(config.dns64.synth_all);
        assert!(
            config
                .dns64
                .is_excluded_domain(&Name::from_ascii("a.CORP.example.").unwrap())
        );
        assert!(
            config
                .dns64
                .ignores_native_aaaa(&Name::from_ascii("x.y.example.").unwrap())
        );
        assert_eq!(config.listeners.len(), 2);
        assert!(config.listeners[1].udp && !config.listeners[1].tcp && !config.listeners[1].dns64);
        let text = error_text(&format!("{BASE}[dns64]\nreverse = \"sideways\"\n"));
        assert!(text.contains("sideways"), "{text}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure returns figment's own error type
    fn environment_sets_keys_and_rejects_every_unknown_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DNS64D_CACHE__MAX_ENTRIES", "5000");
            jail.set_env("DNS64D_UPSTREAM__SERVERS", "[\"192.0.2.53\"]");
            let config = load(None, &Overrides::default()).expect("loads");
            assert_eq!(config.cache.max_entries, 5000);
            assert_eq!(
                config.upstream.servers,
                vec!["192.0.2.53:53".parse().unwrap()]
            );
            jail.set_env("DNS64D_CACHE__MAX_ENTRYS", "1");
            let error = load(None, &Overrides::default()).expect_err("typo in a known section");
            assert!(
                error
                    .to_string()
                    .starts_with("environment variable DNS64D_CACHE__MAX_ENTRYS: unknown key `cache.max_entrys`; allowed here: max_entries,"),
                "{error}"
            );
            jail.set_env("DNS64D_CACHE__MAX_ENTRYS", "");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("DNS64D_CACHE_MAX_ENTRIES", "5");
            let error = load(None, &Overrides::default()).expect_err("one underscore");
            assert_eq!(
                error.to_string(),
                "environment variable DNS64D_CACHE_MAX_ENTRIES names no configuration key; did you mean DNS64D_CACHE__MAX_ENTRIES? (nested keys are joined with two underscores: DNS64D_SECTION__KEY)"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("DNS64D_CACHE__MAX_ENTRIES", "lots");
            let error = load(None, &Overrides::default()).expect_err("not a number");
            assert_eq!(
                error.to_string(),
                "environment variable DNS64D_CACHE__MAX_ENTRIES: cache.max_entries = \"lots\": expected a whole number, 0 or more"
            );
            Ok(())
        });
    }

    /// Loads `text` from a file named `dns64d.toml`; the error text with the directory cut off.
    #[allow(clippy::result_large_err)] // figment::Jail's closure returns figment's own error type
    fn file_error(text: &str) -> String {
        let mut result = String::new();
        // In a jail: no DNS64D_ variable of another test is seen.
        figment::Jail::expect_with(|jail| {
            jail.create_file("dns64d.toml", text)?;
            let error = load(Some(Path::new("dns64d.toml")), &Overrides::default())
                .expect_err("config must be rejected");
            result = error.to_string();
            Ok(())
        });
        result
    }

    #[test]
    fn file_errors_name_file_line_column_key_value_and_what_is_allowed() {
        let cases = [
            (
                "misspelt log level",
                "[log]\nlevel = \"verbose\"\n",
                "dns64d.toml:2:9: log.level = \"verbose\": \"verbose\" is not a log level; allowed: trace, debug, info, warn, error, off or directives like \"dns64d=debug,warn\"",
            ),
            (
                "another misspelt log level",
                "[log]\nlevel = \"dns64d=warning\"\n",
                "dns64d.toml:2:9: log.level = \"dns64d=warning\": \"warning\" is not a log level; allowed: trace, debug, info, warn, error, off or directives like \"dns64d=debug,warn\"",
            ),
            (
                "a number below its minimum",
                "[server]\nmax_inflight_queries = 0\n",
                "dns64d.toml:2:24: server.max_inflight_queries = 0: must be between 1 and 10000000",
            ),
            (
                "a negative number",
                "[cache]\nmax_entries = -5\n",
                "dns64d.toml:2:15: cache.max_entries = -5: expected a whole number, 0 or more",
            ),
            (
                "a number too large for its type",
                "[rate_limit]\nipv4_prefix_length = 300\n",
                "dns64d.toml:2:22: rate_limit.ipv4_prefix_length = 300: expected a whole number from 0 to 255",
            ),
            (
                "a word where a number goes",
                "[upstream]\nservers = [\"192.0.2.1\"]\ntimeout_ms = \"2s\"\n",
                "dns64d.toml:3:14: upstream.timeout_ms = \"2s\": expected a whole number, 0 or more",
            ),
            (
                "an unknown key",
                "[cache]\nmax_entrys = 5\n",
                "dns64d.toml:2:1: unknown key `cache.max_entrys`; allowed here: max_entries, min_ttl, max_ttl, negative_max_ttl, stale_max_ttl, stale_answer_ttl, stale_client_timeout_ms, prefetch, prefetch_threshold_percent",
            ),
            (
                "an unknown mode",
                "[log]\nformat = \"yaml\"\n",
                "dns64d.toml:2:10: log.format = \"yaml\": allowed: \"text\", \"json\"",
            ),
            (
                "a bad prefix in a list",
                "[upstream]\nservers = [\"192.0.2.1\"]\n[dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8::/80\"]\n",
                "dns64d.toml:4:29: dns64.prefixes = \"2001:db8::/80\": length /80 is not allowed; RFC 6052 §2.2 allows /32, /40, /48, /56, /64 and /96",
            ),
            (
                "a listener table",
                "[upstream]\nservers = [\"192.0.2.1\"]\n[[listeners]]\naddress = \"127.0.0.1\"\n",
                "dns64d.toml:4:11: listeners[0].address = \"127.0.0.1\": not a socket address like 127.0.0.1:53 or [::1]:53",
            ),
            (
                "no upstream left",
                "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"127.0.0.1:5300\"]\n",
                "dns64d.toml:3:11: no usable upstream server: every server in upstream.servers was dropped (127.0.0.1:5300: dns64d itself listens there); list a server that is not dns64d itself and matches upstream.family, or use --upstream",
            ),
            (
                "bad syntax",
                "[cache]\nmax_entries = = 5\n",
                "dns64d.toml:2:15: not valid TOML: invalid string\nexpected `\"`, `'`",
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(file_error(text), expected, "{name}");
        }
    }

    #[test]
    fn log_levels_take_levels_and_directives_only() {
        for good in [
            "info",
            "WARN",
            "dns64d=debug,warn",
            "dns64d::query=info",
            "off",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        for bad in ["verbose", "warning", "", "dns64d=loud", "a b=info"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }
}
