//! Configuration: built-in defaults, then a TOML file, then `DNS64D_…`
//! environment variables (nested keys joined with `__`), then command-line
//! flags, merged with figment into [`RawConfig`] and validated once into
//! [`Config`], whose fields are typed (addresses, prefixes, networks,
//! durations) so nothing downstream parses or re-checks them.
//!
//! Errors name the key, the value and the reason; unknown keys are rejected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hickory_proto::rr::Name;
use ipnet::IpNet;

mod cache;
mod control;
mod dns64;
mod listeners;
pub mod recursion;
mod render;
mod schema;
mod server;
mod source;
mod upstream;
pub mod upstream_url;
mod values;
mod zones;

pub use cache::CacheConfig;
pub use control::{
    ControlEndpoint, DEFAULT_CONTROL_ADDRESS, default_token_file as default_control_token_file,
};
pub use dns64::Dns64Config;
pub use listeners::{ConnectionLimits, EncryptedListener, EncryptedProtocol, ListenerConfig};
pub use recursion::RecursiveSettings;
pub use schema::*;
pub(crate) use server::check_log_level;
pub use server::{CookiesConfig, LogConfig, RateLimitConfig, ServerConfig};
pub(crate) use source::ENV_PREFIX;
pub use source::Origin;
pub use upstream::{SystemResolvers, UpstreamConfig, UpstreamSelection};
pub use zones::ZoneConfig;

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

/// A value as TOML writes it: numbers, booleans and lists bare, text quoted
/// (a bracketed IPv6 socket address such as `[::1]:53` is text, not a list).
fn toml_text(value: &str) -> String {
    let bare = value.parse::<f64>().is_ok()
        || value == "true"
        || value == "false"
        || (value.starts_with('[') && value.ends_with(']'));
    if bare {
        value.to_string()
    } else {
        format!("{value:?}")
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
    /// Where `dns64d ctl` reaches the server (`None`: off).
    pub control: Option<ControlEndpoint>,
    /// What CHAOS TXT and NSID reveal.
    pub identity: crate::answering::identity::Identity,
    /// DNS Cookies.
    pub cookies: CookiesConfig,
    /// `ddr.name`: the designated resolvers' name (RFC 9462); `None`: no DDR.
    pub ddr_name: Option<Name>,
}

impl Config {
    /// Checks every value of `raw` and builds the typed configuration,
    /// one section at a time (each section's rules sit next to its type).
    pub(crate) fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let global_exclude_ipv4 = dns64::global_exclude_ipv4(&raw.dns64)?;
        let prefixes = dns64::prefixes(&raw.dns64, global_exclude_ipv4.as_deref(), &mut warnings)?;
        let listeners = listeners::validate(&raw, global_exclude_ipv4.as_deref(), &mut warnings)?;
        let listen = listeners.iter().map(|listener| listener.address).collect();
        let upstream = upstream::validate(&raw, listen)?;
        let ddr_name = listeners::ddr_name(&raw.ddr, &listeners)?;
        let dns64 = dns64::validate(
            &raw.dns64,
            prefixes,
            global_exclude_ipv4,
            upstream.recursive.is_some(),
            &mut warnings,
        )?;
        let access_clients = values::parse_ip_networks("access.clients", &raw.access.clients)?;
        let log = server::log(&raw.log)?;
        let metrics_listen = raw
            .metrics
            .listen
            .as_ref()
            .map(|text| listeners::parse_listen("metrics.listen", text))
            .transpose()?;
        let zones = zones::validate(&raw.zones)?;
        let cache = cache::validate(&raw.cache)?;
        let server = server::validate(&raw.server)?;
        let identity = server::identity(&raw.server)?;
        let rate_limit = server::rate_limit(&raw.rate_limit)?;
        let cookies = server::cookies(&raw.cookies)?;
        let control = control::validate(&raw.control, &mut warnings)?;
        Ok(Self {
            profile: raw.profile,
            listeners,
            upstream,
            dns64,
            access_clients,
            cache,
            server,
            log,
            metrics_listen,
            rate_limit,
            control,
            identity,
            cookies,
            ddr_name,
            raw,
            warnings,
            zones,
        })
    }
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::upstream::parse_server;
    use super::*;
    use crate::dns64::reverse::ReverseMode;

    fn error_text(toml: &str) -> String {
        from_toml_str(toml)
            .expect_err("config must be rejected")
            .to_string()
    }

    const BASE: &str = "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"192.0.2.53\"]\n";

    #[test]
    fn parallel_a_defaults_to_the_mode_measured_cheaper() {
        let parallel_a = |toml: &str| from_toml_str(toml).unwrap().dns64.parallel_a;
        let recursive = "listen = [\"127.0.0.1:5300\"]\n[upstream]\nmode = \"recursive\"\n";
        assert!(parallel_a(BASE));
        assert!(!parallel_a(recursive));
        assert!(!parallel_a(&format!("{BASE}[dns64]\nparallel_a = false\n")));
        assert!(parallel_a(&format!(
            "{recursive}[dns64]\nparallel_a = true\n"
        )));
        assert!(
            error_text(&format!("{BASE}[dns64]\nparallel_a = 1\n")).contains("parallel_a"),
            "{}",
            error_text(&format!("{BASE}[dns64]\nparallel_a = 1\n"))
        );
    }

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
    fn a_bracketed_ipv6_address_in_an_error_is_quoted_text() {
        let text = error_text("listen = [\"[::1]:99999\"]\n");
        assert!(
            text.ends_with(
                "listen = \"[::1]:99999\": not a socket address like 127.0.0.1:53 or [::1]:53"
            ),
            "{text}"
        );
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
                "a size with an unknown unit",
                "[cache]\nmax_memory = \"64x\"\n",
                "dns64d.toml:2:14: cache.max_memory = \"64x\": expected a size in bytes: a whole number like 67108864, or a string with k, m or g like \"64m\"",
            ),
            (
                "a size below the minimum",
                "[cache]\nmax_memory = \"512k\"\n",
                "dns64d.toml:2:14: cache.max_memory = 524288: must be at least 1048576 bytes (\"1m\"); leave it out to bound the cache by cache.max_entries alone",
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
                "dns64d.toml:2:1: unknown key `cache.max_entrys`; allowed here: max_entries, max_memory, min_ttl, max_ttl, negative_max_ttl, stale_max_ttl, stale_answer_ttl, stale_client_timeout_ms, prefetch, prefetch_threshold_percent",
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
