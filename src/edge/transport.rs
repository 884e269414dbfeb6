//! The transport a request came over, which sets its size limits and
//! labels its metrics.

/// The transport a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses are truncated to the client's payload size.
    Udp,
    /// TCP: responses up to 65535 octets.
    Tcp,
    /// DNS over TLS (RFC 7858): as TCP.
    Tls,
    /// DNS over HTTPS (RFC 8484): one message per HTTP exchange, up to 65535 octets.
    Https,
    /// DNS over QUIC (RFC 9250): one message per stream, up to 65535 octets.
    Quic,
}
