//! DNS over TLS listeners (RFC 7858): the TCP listener's loop and framing
//! ([`server::accept_connections`], [`server::serve_connection`]) over a
//! rustls stream, so DoT answers exactly as TCP does. Also starts the DoH
//! listeners ([`https_listener`]), which share the TLS handshake, and
//! reloads the certificates of both.
//!
//! The TLS handshake is bounded by the listener's idle timeout; a client
//! that fails it (plaintext DNS on the TLS port, an unknown ALPN, a
//! certificate it rejects) costs one connection, never the listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
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
    /// it again; with port 0 a DoT and a DoH listener share an address).
    pub address: SocketAddr,
    /// DoT or DoH.
    pub protocol: EncryptedProtocol,
    /// The certificate its handshakes use.
    pub certificate: Arc<ReloadableCertificate>,
}

/// Starts serving DoT or DoH on a bound TCP listener: loads the
/// certificate, builds the TLS configuration with the transport's ALPN and
/// returns the listener task with the certificate slot for reloads.
pub(crate) fn start(
    listener: TcpListener,
    address: SocketAddr,
    context: ServeContext,
    encrypted: &EncryptedListener,
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
    let alpn = match encrypted.protocol {
        EncryptedProtocol::Tls => ALPN_DOT,
        EncryptedProtocol::Https => ALPN_H2,
    };
    let acceptor = TlsAcceptor::from(certificate::server_config(Arc::clone(&certificate), alpn)?);
    let protocol = encrypted.protocol;
    let serving = async move {
        match protocol {
            EncryptedProtocol::Tls => serve_tls(listener, context, acceptor, idle_timeout).await,
            EncryptedProtocol::Https => {
                https::serve(listener, context, acceptor, idle_timeout).await;
            }
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
/// with pipelined queries answered concurrently.
async fn serve_tls(
    listener: TcpListener,
    context: ServeContext,
    acceptor: TlsAcceptor,
    idle_timeout: Duration,
) {
    server::accept_connections(listener, context, move |stream, client, context| {
        let acceptor = acceptor.clone();
        async move {
            let stream = handshake(&acceptor, stream, idle_timeout).await?;
            serve_pipelined(stream, client, context, idle_timeout).await
        }
    })
    .await;
}

/// Queries of one DoT connection answered at once; the next is read when
/// one of them is done.
const MAX_CONCURRENT_PER_CONNECTION: usize = 64;

/// Serves length-prefixed messages on a DoT connection, answering each
/// query in its own task and each answer as soon as it is ready, in any
/// order (RFC 7858 §3.3, RFC 7766 §6.2.1.1): a slow miss does not hold up
/// the cache hits behind it. Answers ready together go out in one flush.
/// The connection closes when the client does, or after `idle_timeout`
/// without a query, once the queries in flight are answered.
async fn serve_pipelined<Stream>(
    stream: Stream,
    client: SocketAddr,
    context: ServeContext,
    idle_timeout: Duration,
) -> io::Result<()>
where
    Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (answers, mut to_write) =
        tokio::sync::mpsc::channel::<Vec<u8>>(MAX_CONCURRENT_PER_CONNECTION);
    let writing = async move {
        while let Some(framed) = to_write.recv().await {
            writer.write_all(&framed).await?;
            while let Ok(more) = to_write.try_recv() {
                writer.write_all(&more).await?;
            }
            writer.flush().await?;
        }
        writer.shutdown().await
    };
    let reading = async move {
        let mut queries = tokio::task::JoinSet::new();
        loop {
            while queries.len() >= MAX_CONCURRENT_PER_CONNECTION {
                queries.join_next().await;
            }
            let mut length = [0u8; 2];
            match tokio::time::timeout(idle_timeout, reader.read_exact(&mut length)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => break,
                Ok(Err(error)) => return Err(error),
                Err(_) => break, // idle
            }
            let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
            match tokio::time::timeout(idle_timeout, reader.read_exact(&mut request)).await {
                Ok(result) => result?,
                Err(_) => break,
            };
            let (context, answers) = (context.clone(), answers.clone());
            queries.spawn(async move {
                let Some(response) = context
                    .answer_stream(&request, client, Transport::Tls)
                    .await
                else {
                    return;
                };
                let Ok(response_length) = u16::try_from(response.len()) else {
                    tracing::warn!(%client, size = response.len(), "response too large for DoT; dropped");
                    return;
                };
                let mut framed = Vec::with_capacity(response.len() + 2);
                framed.extend_from_slice(&response_length.to_be_bytes());
                framed.extend_from_slice(&response);
                // The writer is gone only when the connection failed.
                let _ = answers.send(framed).await;
            });
            while queries.try_join_next().is_some() {}
        }
        while queries.join_next().await.is_some() {}
        Ok(())
    };
    tokio::try_join!(reading, writing).map(|_| ())
}

/// The server side of a TLS handshake, bounded by `timeout`.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<TlsStream<TcpStream>> {
    // Answers are written whole; Nagle would only delay them.
    stream.set_nodelay(true)?;
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
                tracing::info!(address = %slot.address, cert = %encrypted.cert.display(), "certificate reloaded");
            }
            Err(error) => notes.push(format!(
                "listener {}: {error}; the old certificate stays in use",
                slot.address
            )),
        }
    }
    notes
}
