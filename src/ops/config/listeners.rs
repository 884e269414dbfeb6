//! `listen` and `[[listeners]]`: where dns64d answers, over which
//! transports, with which per-listener policy and connection limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::{IpNet, Ipv4Net};

use super::ConfigError;
use super::dns64::parse_prefix_list;
use super::schema::{ListenerProtocol, RawConfig, RawDdr, RawListener};
use super::values::{check_range, parse_domains, parse_ip_networks};
use crate::dns64::SynthesisPrefix;

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
    /// A DoT, DoH or DoQ listener (then `udp` and `tcp` are false).
    pub encrypted: Option<EncryptedListener>,
    /// Connection limit and idle timeout instead of `[server]`'s.
    pub connections: ConnectionLimits,
}

/// A listener's own connection limits and idle timeout (`None`: `[server]`'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address.
    pub max_connections_per_client: Option<usize>,
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
    /// DNS over QUIC (RFC 9250), on UDP.
    Quic,
}

/// A validated DoT, DoH or DoQ listener: its transport and certificate files
/// (loaded once during validation, so a bad file is a configuration error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedListener {
    /// DoT, DoH or DoQ.
    pub protocol: EncryptedProtocol,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Checks a listener's encrypted transport: `tls`, `https` or `quic` alone
/// in `protocols` (each is a port of its own), with `cert` and `key` that
/// load; `cert` and `key` only with one of them.
pub(super) fn validate_encrypted_listener(
    key: &str,
    listener: &RawListener,
) -> Result<Option<EncryptedListener>, ConfigError> {
    let protocol = match listener.protocols.as_slice() {
        [ListenerProtocol::Tls] => Some(EncryptedProtocol::Tls),
        [ListenerProtocol::Https] => Some(EncryptedProtocol::Https),
        [ListenerProtocol::Quic] => Some(EncryptedProtocol::Quic),
        protocols
            if protocols.iter().any(|p| {
                matches!(
                    p,
                    ListenerProtocol::Tls | ListenerProtocol::Https | ListenerProtocol::Quic
                )
            }) =>
        {
            return Err(ConfigError::invalid(
                &format!("{key}.protocols"),
                format!("{protocols:?}"),
                "\"tls\", \"https\" and \"quic\" each need a listener of their own (a separate address or port; \"tls\" and \"quic\" may share port 853, one being TCP, the other UDP): list one of them alone",
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
                "a certificate is only used by a \"tls\", \"https\" or \"quic\" listener",
            )),
            (Some(_), None, _) => Err(ConfigError::invalid(
                &format!("{key}.cert"),
                "(missing)",
                "a \"tls\", \"https\" or \"quic\" listener needs `cert`, a PEM certificate chain file",
            )),
            _ => Err(ConfigError::invalid(
                &format!("{key}.key"),
                "(missing)",
                "a \"tls\", \"https\" or \"quic\" listener needs `key`, a PEM private key file",
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

/// Parses a listen address; the port is required.
pub(super) fn parse_listen(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            text,
            "not a socket address like 127.0.0.1:53 or [::1]:53",
        )
    })
}

/// `listen` (plain addresses, both transports) and `[[listeners]]`; at
/// least one is needed.
pub(super) fn validate(
    raw: &RawConfig,
    global_exclude_ipv4: Option<&[Ipv4Net]>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
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
                    global_exclude_ipv4,
                    warnings,
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
                max_connections_per_client: listener
                    .max_connections_per_client
                    .map(|limit| {
                        check_range(
                            &format!("{key}.max_connections_per_client"),
                            limit,
                            1,
                            1_000_000,
                        )
                    })
                    .transpose()?,
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
    Ok(listeners)
}

/// `ddr.name`: the name the encrypted listeners' certificates are for
/// (RFC 9462); it needs at least one encrypted listener.
pub(super) fn ddr_name(
    raw: &RawDdr,
    listeners: &[ListenerConfig],
) -> Result<Option<Name>, ConfigError> {
    let Some(text) = &raw.name else {
        return Ok(None);
    };
    if !listeners
        .iter()
        .any(|listener| listener.encrypted.is_some())
    {
        return Err(ConfigError::invalid(
            "ddr.name",
            text,
            "DDR designates the encrypted listeners: add a [[listeners]] with protocols = [\"tls\"], [\"https\"] or [\"quic\"]",
        ));
    }
    let name = parse_domains("ddr.name", std::slice::from_ref(text))?;
    Ok(name.into_iter().next())
}
