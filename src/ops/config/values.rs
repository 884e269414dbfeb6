//! Parsers for the value kinds used across sections (networks, domain
//! names, numbers in a range), each error naming the key.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::{IpNet, Ipv4Net};

use super::ConfigError;

/// Checks a range and names the key, the value and the range when outside.
pub(super) fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
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

/// Parses IP networks; a bare address means a single host.
pub(super) fn parse_ip_networks(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
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
pub(super) fn parse_ipv4_networks(key: &str, list: &[String]) -> Result<Vec<Ipv4Net>, ConfigError> {
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
pub(super) fn parse_domains(key: &str, list: &[String]) -> Result<Vec<Name>, ConfigError> {
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
