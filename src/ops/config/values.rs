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

/// A size in bytes, written as a whole number (`67108864`) or with a
/// suffix `k`, `m` or `g` (powers of 1024, as Unbound's sizes: `"64m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"64m"`, `"512k"`, `"1g"` or `"1048576"`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (digits, unit) = match text.char_indices().last()? {
            (at, 'k' | 'K') => (&text[..at], 1u64 << 10),
            (at, 'm' | 'M') => (&text[..at], 1 << 20),
            (at, 'g' | 'G') => (&text[..at], 1 << 30),
            _ => (text, 1),
        };
        let number: u64 = digits.trim().parse().ok()?;
        number.checked_mul(unit).map(Self)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size in bytes: a whole number like 67108864, or a string with k, m or g like \"64m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ByteSize, E> {
                ByteSize::parse(text)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
