//! DNS over TLS listeners (RFC 7858): the TCP listener's loop and framing
//! ([`server::accept_connections`], [`server::serve_connection`]) over a
//! rustls stream, so DoT answers exactly as TCP does. Also starts the DoH
//! listeners ([`https_listener`]), which share the TLS handshake, and
//! reloads the certificates of every encrypted listener (DoQ's too).
//!
//! The TLS handshake is bounded by the listener's idle timeout; a client
//! that fails it (plaintext DNS on the TLS port, an unknown ALPN, a
//! certificate it rejects) costs one connection, never the listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::https;
use crate::edge::certificate::{self, CertificateError, ReloadableCertificate};
use crate::edge::server::{self, ServeContext};
use crate::edge::transport::Transport;
use crate::ops::config::{Config, EncryptedListener, EncryptedProtocol};

/// ALPN of DNS over TLS (RFC 9461 §5 registers "dot").
pub(crate) const ALPN_DOT: &[u8] = b"dot";

/// ALPN of DNS over HTTPS on HTTP/2 (RFC 8484 §5.2).
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// An encrypted listener's certificate slot, kept for reloads.
pub(crate) struct ListenerCertificate {
    /// The listener's configured address and transport (how a reload finds
    /// it again; with port 0 a DoT, a DoH and a DoQ listener share an
    /// address, and DoT and DoQ may share port 853, one TCP, one UDP).
    pub address: SocketAddr,
    /// DoT, DoH or DoQ.
    pub protocol: EncryptedProtocol,
    /// The certificate its handshakes use.
    pub certificate: Arc<ReloadableCertificate>,
}

/// The encrypted transports over TCP (DoQ has its own listener, `quic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverTcp {
    /// DNS over TLS.
    Tls,
    /// DNS over HTTPS.
    Https,
}

impl OverTcp {
    /// The TCP transport of `protocol`; `None` for DoQ.
    pub(crate) fn of(protocol: EncryptedProtocol) -> Option<Self> {
        match protocol {
            EncryptedProtocol::Tls => Some(Self::Tls),
            EncryptedProtocol::Https => Some(Self::Https),
            EncryptedProtocol::Quic => None,
        }
    }
}

/// Starts serving DoT or DoH (`over`) on a bound TCP listener: loads the
/// certificate, builds the TLS configuration with the transport's ALPN and
/// returns the listener task with the certificate slot for reloads.
pub(crate) fn start(
    listener: TcpListener,
    address: SocketAddr,
    context: ServeContext,
    encrypted: &EncryptedListener,
    over: OverTcp,
    idle_timeout: Duration,
) -> Result<
    (
        impl std::future::Future<Output = ()> + Send + 'static,
        ListenerCertificate,
    ),
    CertificateError,
> {
    let certificate = Arc::new(ReloadableCertificate::new(certificate::load(
        &encrypted.cert,
        &encrypted.key,
    )?));
    let alpn = match over {
        OverTcp::Tls => ALPN_DOT,
        OverTcp::Https => ALPN_H2,
    };
    let acceptor = TlsAcceptor::from(certificate::server_config(Arc::clone(&certificate), alpn)?);
    let protocol = encrypted.protocol;
    let serving = async move {
        match over {
            OverTcp::Tls => serve_tls(listener, context, acceptor, idle_timeout).await,
            OverTcp::Https => https::serve(listener, context, acceptor, idle_timeout).await,
        }
    };
    Ok((
        serving,
        ListenerCertificate {
            address,
            protocol,
            certificate,
        },
    ))
}

/// Serves DoT: each connection is a TLS handshake, then the TCP framing
/// with pipelined queries answered concurrently ([`server::serve_connection`]).
async fn serve_tls(
    listener: TcpListener,
    context: ServeContext,
    acceptor: TlsAcceptor,
    idle_timeout: Duration,
) {
    server::accept_connections(listener, context, move |stream, client, context| {
        let acceptor = acceptor.clone();
        async move {
            super::tcp::accepted_without_nagle(&stream)?;
            let stream = handshake(&acceptor, stream, idle_timeout).await?;
            let (reader, writer) = tokio::io::split(stream);
            server::serve_connection(
                reader,
                writer,
                client,
                context,
                Transport::Tls,
                idle_timeout,
            )
            .await
        }
    })
    .await;
}

/// The server side of a TLS handshake, bounded by `timeout`. The caller
/// has turned Nagle off on the TCP socket: answers are written whole, and
/// Nagle would only delay them.
pub(crate) async fn handshake<Io>(
    acceptor: &TlsAcceptor,
    stream: Io,
    timeout: Duration,
) -> io::Result<TlsStream<Io>>
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake not finished within the idle timeout",
        )),
    }
}

/// Reloads the certificate of every encrypted listener from `config` (the
/// listener with the same address): new handshakes use the new files, open
/// connections and the other listeners are untouched. A file that no longer
/// loads keeps the old certificate; the returned notes say so.
pub(crate) fn reload_certificates(
    certificates: &[ListenerCertificate],
    config: &Config,
) -> Vec<String> {
    let mut notes = Vec::new();
    for slot in certificates {
        let Some(encrypted) = config.listeners.iter().find_map(|listener| {
            listener.encrypted.as_ref().filter(|encrypted| {
                listener.address == slot.address && encrypted.protocol == slot.protocol
            })
        }) else {
            continue; // the listener changed; the restart note covers it
        };
        match certificate::load(&encrypted.cert, &encrypted.key) {
            Ok(certified) => {
                slot.certificate.replace(certified);
                tracing::info!(address = %slot.address, protocol = ?slot.protocol, cert = %encrypted.cert.display(), "certificate reloaded");
            }
            Err(error) => notes.push(format!(
                "listener {} ({:?}): {error}; the old certificate stays in use",
                slot.address, slot.protocol
            )),
        }
    }
    notes
}
