//! `[server]`, `[rate_limit]`, `[cookies]` and `[log]`: how the server
//! itself behaves toward clients and operators.

use std::time::Duration;

use ipnet::IpNet;

use super::ConfigError;
use super::schema::{LogFormat, RawCookies, RawLog, RawRateLimit, RawServer};
use super::values::{check_range, parse_ip_networks};
use crate::answering::identity::Identity;

/// Validated `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// EDNS UDP payload size (512–4096).
    pub edns_udp_size: u16,
    /// Idle timeout of TCP client connections.
    pub tcp_idle_timeout: Duration,
    /// Most TCP client connections at once.
    pub max_tcp_connections: usize,
    /// Most TCP connections at once from one client address on a listener
    /// (`None`: a quarter of the listener's limit).
    pub max_tcp_connections_per_client: Option<usize>,
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

/// Validates `[cookies]`.
pub(super) fn cookies(raw: &RawCookies) -> Result<CookiesConfig, ConfigError> {
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

/// The words `log.level` takes alone or after `target=`.
pub(crate) const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a log filter: a level (`info`) or comma-separated directives
/// `level` / `target=level` (`dns64d=debug,warn`), levels from
/// [`LOG_LEVELS`]. tracing would take `verbose` as a target name and log
/// nothing; this does not.
pub(crate) fn check_log_level(text: &str) -> Result<(), String> {
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

/// Checks `[server]`.
pub(super) fn validate(raw: &RawServer) -> Result<ServerConfig, ConfigError> {
    let edns_udp_size = raw.edns_udp_size;
    if !(512..=4096).contains(&edns_udp_size) {
        return Err(ConfigError::invalid(
            "server.edns_udp_size",
            edns_udp_size,
            "must be between 512 and 4096",
        ));
    }
    Ok(ServerConfig {
        edns_udp_size,
        tcp_idle_timeout: Duration::from_millis(check_range(
            "server.tcp_idle_timeout_ms",
            raw.tcp_idle_timeout_ms,
            1,
            3_600_000,
        )?),
        max_tcp_connections: check_range(
            "server.max_tcp_connections",
            raw.max_tcp_connections,
            1,
            1_000_000,
        )?,
        max_tcp_connections_per_client: raw
            .max_tcp_connections_per_client
            .map(|limit| check_range("server.max_tcp_connections_per_client", limit, 1, 1_000_000))
            .transpose()?,
        max_inflight_queries: check_range(
            "server.max_inflight_queries",
            raw.max_inflight_queries,
            1,
            10_000_000,
        )?,
    })
}

/// `server.identity`, `server.version` and `server.nsid`.
pub(super) fn identity(raw: &RawServer) -> Result<Identity, ConfigError> {
    Identity::new(
        raw.identity.as_deref(),
        raw.version.as_deref(),
        raw.nsid.as_deref(),
    )
    .map_err(|error| {
        let value = match error.key() {
            "server.identity" => raw.identity.clone(),
            "server.version" => raw.version.clone(),
            _ => raw.nsid.clone(),
        };
        ConfigError::invalid(error.key(), value.unwrap_or_default(), error)
    })
}

/// Checks `[rate_limit]`.
pub(super) fn rate_limit(limit: &RawRateLimit) -> Result<RateLimitConfig, ConfigError> {
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
    Ok(RateLimitConfig {
        responses_per_second: limit.responses_per_second,
        burst: limit.burst,
        slip: limit.slip,
        ipv4_prefix_length: limit.ipv4_prefix_length,
        ipv6_prefix_length: limit.ipv6_prefix_length,
        exempt: parse_ip_networks("rate_limit.exempt", &limit.exempt)?,
        max_tracked: check_range("rate_limit.max_tracked", limit.max_tracked, 1, 100_000_000)?,
    })
}

/// Checks `[log]`.
pub(super) fn log(raw: &RawLog) -> Result<LogConfig, ConfigError> {
    if let Err(reason) = check_log_level(&raw.level) {
        return Err(ConfigError::invalid("log.level", &raw.level, reason));
    }
    Ok(LogConfig {
        format: raw.format,
        level: raw.level.clone(),
        queries: raw.queries,
    })
}
