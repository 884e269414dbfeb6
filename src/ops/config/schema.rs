//! The configuration as written: the raw schema (`Raw…` types, one per
//! TOML table), its built-in defaults, and the keys the shim profile
//! changes. figment deserializes into these; nothing here is checked
//! beyond types (that is [`super::Config::validate`]'s job).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dns64::SynthesizeOn;
use crate::dns64::reverse::{DEFAULT_REVERSE_TTL, ReverseMode};

/// Default resolver file read when `upstream.servers = "system"`.
pub(crate) const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

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
    /// `[recursion]`: recursive mode on an IPv6-only host.
    pub recursion: RawRecursion,
}

/// The default `control.socket`.
pub(crate) const DEFAULT_CONTROL_SOCKET: &str = "/run/dns64d/control.sock";

/// `[control]` as written: where `dns64d ctl` talks to the server (see
/// [`super::ControlEndpoint`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawControl {
    /// Path of the Unix socket (mode 0660); `""` turns it off. Unix only.
    pub socket: PathBuf,
    /// Loopback address of the control port; set, it replaces the socket.
    /// `""`: none (the default on Unix).
    pub address: String,
    /// The file the control port's token is written to at each start.
    pub token_file: PathBuf,
}

impl Default for RawControl {
    fn default() -> Self {
        Self {
            socket: super::control::default_socket(),
            address: super::control::default_address(),
            token_file: super::control::default_token_file(),
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
    pub(super) fn admits(self, address: &SocketAddr) -> bool {
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
    /// DNS over QUIC (RFC 9250, UDP); needs `cert` and `key`.
    Quic,
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
    /// PEM certificate chain of a `tls`, `https` or `quic` listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of a `tls`, `https` or `quic` listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Most connections open at once on this listener (TCP, DoT, DoH, DoQ)
    /// instead of `server.max_tcp_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most connections one client address may have open at once on this
    /// listener, instead of `server.max_tcp_connections_per_client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<usize>,
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
    /// Recursive mode: most referrals followed for one question (nested name
    /// server lookups counted; CNAME links have their own cap).
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

/// `[recursion]` as written: recursive mode's settings for the network it runs in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecursion {
    /// Recursive mode on an IPv6-only host: reach name servers' IPv4
    /// addresses embedded in this NAT64 prefix (RFC 6052), through the
    /// network's translator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat64_prefix: Option<String>,
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
    /// Ask A together with AAAA instead of after an empty AAAA answer
    /// (`None`: in forward mode yes, in recursive mode no).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_a: Option<bool>,
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
    /// Most bytes the cached entries may take (`"64m"`); unset: only `max_entries` bounds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<super::values::ByteSize>,
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
    /// Most TCP connections one client address may have open at once on a
    /// listener; unset: a quarter of the listener's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tcp_connections_per_client: Option<usize>,
    /// Most queries being answered at once (UDP cache misses, every TCP, DoT
    /// and DoH query); more are dropped (UDP) or answered SERVFAIL.
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
            recursion: RawRecursion::default(),
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
            parallel_a: None,
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
pub(crate) const DEFAULT_ACCESS_CLIENTS: [&str; 7] = [
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
            max_memory: None,
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
            max_tcp_connections_per_client: None,
            max_inflight_queries: 10_000,
            identity: None,
            version: None,
            nsid: None,
        }
    }
}

/// The top-level keys of the configuration (sections and plain keys).
pub(crate) const TOP_LEVEL_KEYS: [&str; 15] = [
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
pub(crate) const SHIM_LISTEN: [&str; 1] = ["127.0.0.1:53"];
/// The shim's default `access.clients`: loopback only.
pub(crate) const SHIM_ACCESS_CLIENTS: [&str; 2] = ["127.0.0.0/8", "::1/128"];
