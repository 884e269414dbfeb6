//! Encrypted upstream servers as written in `upstream.servers`:
//! `tls://name@address[:port]` (DNS over TLS, port 853 by default) and
//! `https://name[@address][:port][/path]` (DNS over HTTPS, port 443, path
//! `/dns-query` by default). `name` is what the server's certificate must
//! be valid for; an IP address may stand for both name and address. Only
//! parsing lives here (the configuration layer's part); the connections
//! are [`upstream_tls`](crate::answering::upstream::tls)'s.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The transport of an encrypted upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptedTransport {
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484), HTTP/2 POST to `path`.
    Https {
        /// The URI path, such as `/dns-query`.
        path: String,
    },
}

/// One encrypted upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedUpstream {
    /// Where to connect.
    pub address: SocketAddr,
    /// The name (or IP address) its certificate is verified against.
    pub name: String,
    /// DoT or DoH.
    pub transport: EncryptedTransport,
}

/// Why an upstream URL is not usable (the text says what is expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UpstreamUrlError(&'static str);

/// The DoT port (RFC 7858 §3.1).
const DOT_PORT: u16 = 853;
/// The HTTPS port.
const DOH_PORT: u16 = 443;
/// The DoH path when the URL names none (RFC 8484 §4.1's example).
const DEFAULT_DOH_PATH: &str = "/dns-query";

impl EncryptedUpstream {
    /// Parses `tls://…` or `https://…`; `Ok(None)` for anything else (a
    /// plain address, parsed elsewhere). A DoH URL without an address has
    /// its name resolved by the system (`getaddrinfo`) here, once.
    pub(crate) fn parse(text: &str) -> Result<Option<Self>, UpstreamUrlError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("tls://") {
            let (name, address) = split_name(rest, DOT_PORT)?;
            let address = address.ok_or(UpstreamUrlError(
                "DoT needs an address: tls://name@192.0.2.53 or tls://name@[2001:db8::53]:853",
            ))?;
            return Ok(Some(Self {
                address,
                name,
                transport: EncryptedTransport::Tls,
            }));
        }
        if let Some(rest) = text.strip_prefix("https://") {
            let (authority, path) = match rest.find('/') {
                Some(slash) => rest.split_at(slash),
                None => (rest, DEFAULT_DOH_PATH),
            };
            let (name, address) = split_name(authority, DOH_PORT)?;
            let address = match address {
                Some(address) => address,
                None => resolve(&name, authority)?,
            };
            return Ok(Some(Self {
                address,
                name,
                transport: EncryptedTransport::Https {
                    path: path.to_string(),
                },
            }));
        }
        Ok(None)
    }
}

/// Splits `name@address[:port]`, `name[:port]` or `ip[:port]` into the
/// certificate name and, when given, the socket address.
fn split_name(
    authority: &str,
    default_port: u16,
) -> Result<(String, Option<SocketAddr>), UpstreamUrlError> {
    if let Some((name, address)) = authority.split_once('@') {
        if name.is_empty() {
            return Err(UpstreamUrlError("the name before `@` is empty"));
        }
        let address = parse_address(address, default_port).ok_or(UpstreamUrlError(
            "after `@` comes an IP address, optionally with a port: 192.0.2.53, 192.0.2.53:853, [2001:db8::53]:853",
        ))?;
        return Ok((name.to_string(), Some(address)));
    }
    if let Some(address) = parse_address(authority, default_port) {
        return Ok((address.ip().to_string(), Some(address)));
    }
    let name = authority.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return Err(UpstreamUrlError("no server name"));
    }
    Ok((name.to_string(), None))
}

/// `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_address(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// Resolves `name[:port]` through the system resolver.
fn resolve(name: &str, authority: &str) -> Result<SocketAddr, UpstreamUrlError> {
    let port = match authority.rsplit_once(':') {
        Some((_, port)) => port
            .parse::<u16>()
            .map_err(|_| UpstreamUrlError("the port is not a number from 0 to 65535"))?,
        None => DOH_PORT,
    };
    (name, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or(UpstreamUrlError(
            "the name does not resolve through the system resolver; give the address as https://name@192.0.2.53/dns-query",
        ))
}

impl fmt::Display for EncryptedUpstream {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            EncryptedTransport::Tls => write!(formatter, "tls://{}@{}", self.name, self.address),
            EncryptedTransport::Https { path } => {
                write!(formatter, "https://{}@{}{path}", self.name, self.address)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_upstream_urls() {
        let cases: [(&str, Option<&str>); 8] = [
            (
                "tls://dns.test@192.0.2.53",
                Some("tls://dns.test@192.0.2.53:853"),
            ),
            (
                "tls://dns.test@[2001:db8::53]:8853",
                Some("tls://dns.test@[2001:db8::53]:8853"),
            ),
            ("tls://192.0.2.53", Some("tls://192.0.2.53@192.0.2.53:853")),
            (
                "https://dns.test@192.0.2.53/dns-query",
                Some("https://dns.test@192.0.2.53:443/dns-query"),
            ),
            (
                "https://dns.test@192.0.2.53:8443/q",
                Some("https://dns.test@192.0.2.53:8443/q"),
            ),
            (
                "https://dns.test@192.0.2.53",
                Some("https://dns.test@192.0.2.53:443/dns-query"),
            ),
            (
                "https://[2001:db8::53]/dns-query",
                Some("https://2001:db8::53@[2001:db8::53]:443/dns-query"),
            ),
            ("192.0.2.53:53", None),
        ];
        for (text, expected) in cases {
            let parsed = EncryptedUpstream::parse(text).expect(text);
            assert_eq!(
                parsed.map(|upstream| upstream.to_string()).as_deref(),
                expected,
                "{text}"
            );
        }
        // Without an address the name is resolved by the system (/etc/hosts here).
        let resolved = EncryptedUpstream::parse("https://localhost:8443/dns-query")
            .expect("localhost resolves")
            .expect("a DoH URL");
        assert_eq!(resolved.name, "localhost");
        assert!(resolved.address.ip().is_loopback() && resolved.address.port() == 8443);
        for bad in [
            "tls://dns.test",
            "tls://@192.0.2.53",
            "tls://dns.test@not-an-address",
            "https://dns.test@192.0.2.53:http/dns-query",
        ] {
            assert!(EncryptedUpstream::parse(bad).is_err(), "{bad}");
        }
    }
}
