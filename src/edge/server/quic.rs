//! DNS over QUIC listeners (RFC 9250) on quinn: a QUIC endpoint on the
//! listener's UDP socket, TLS 1.3 with ALPN `doq` and the listener's
//! reloadable certificate, one task per connection and one per stream.
//! Each stream carries one query (two-octet length, then the message, then
//! FIN) and gets one answer the same way, through the same request path as
//! TCP, DoT and DoH ([`ServeContext::answer_stream`]).
//!
//! Limits as on the TCP transports: the listener's connection slots (per
//! listener and per client address; a connection over them is refused
//! before its handshake, and once half are taken a client must answer a
//! Retry first, so forged addresses cannot hold them), its idle timeout (QUIC's own: a connection that
//! sends nothing for that long is closed; also the bound on the handshake
//! and on a query's FIN), and at most [`MAX_STREAMS_PER_CONNECTION`]
//! queries open at once on one connection.
//!
//! Errors (RFC 9250 §4.3): a query whose message ID is not 0 (§4.2.1), a
//! length that does not match what came before the FIN, more than one
//! message on a stream, the edns-tcp-keepalive option (§5.5.2), a message
//! that gets no answer (a response, a runt), or no FIN within the idle
//! timeout close the connection with
//! `DOQ_PROTOCOL_ERROR` (§4.3.3); an answer that cannot be sent resets its
//! stream with `DOQ_INTERNAL_ERROR` (§4.3.2); a stream the client resets is
//! dropped. DNS failures are answers (SERVFAIL and the like), as elsewhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_net::quic::DoqErrorCode;
use hickory_proto::op::{Header, Message};
use hickory_proto::rr::rdata::opt::EdnsCode;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{ConnectionError, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use tokio::task::JoinSet;

use super::tls::ListenerCertificate;
use crate::edge::certificate::{self, CertificateError, ReloadableCertificate};
use crate::edge::server::{ServeContext, ServerError};
use crate::edge::transport::Transport;
use crate::ops::config::EncryptedListener;

/// ALPN of DNS over QUIC (RFC 9250 §4.1).
pub(crate) const ALPN_DOQ: &[u8] = b"doq";

/// Queries (bidirectional streams) one client may have open at once on a
/// connection; QUIC flow control holds back the next until one finishes.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// Most octets read from a query stream: the length field and the largest
/// DNS message (RFC 9250 §4.2).
const MAX_QUERY_STREAM: usize = 2 + 65535;

/// Why a DoQ connection ended other than by closing normally.
#[derive(Debug, thiserror::Error)]
enum QuicError {
    /// The client sent something RFC 9250 forbids; the connection was
    /// closed with `DOQ_PROTOCOL_ERROR`.
    #[error("DoQ protocol error: {0}")]
    Protocol(&'static str),
    /// The handshake did not finish within the idle timeout.
    #[error("QUIC handshake not finished within the idle timeout")]
    HandshakeTimeout,
    /// The QUIC connection failed (handshake refused, lost, timed out).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

/// Starts serving DoQ on a bound UDP socket: loads the certificate, builds
/// the QUIC endpoint and returns the listener task with the certificate
/// slot for reloads. Runs inside the tokio runtime (the endpoint registers
/// its socket there).
pub(crate) fn start(
    socket: std::net::UdpSocket,
    address: SocketAddr,
    context: ServeContext,
    encrypted: &EncryptedListener,
    idle_timeout: Duration,
) -> Result<
    (
        impl std::future::Future<Output = ()> + Send + 'static,
        ListenerCertificate,
    ),
    ServerError,
> {
    let tls_error = |source| ServerError::Tls { address, source };
    let certificate = Arc::new(ReloadableCertificate::new(
        certificate::load(&encrypted.cert, &encrypted.key).map_err(tls_error)?,
    ));
    let tls = certificate::quic_server_config(Arc::clone(&certificate), ALPN_DOQ)
        .map_err(|error| tls_error(error.into()))?;
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|error| tls_error(CertificateError::Quic(error)))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(idle_timeout)));
    let endpoint = Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| ServerError::Bind {
        address,
        protocol: "QUIC",
        source,
    })?;
    Ok((
        serve(endpoint, context, idle_timeout),
        ListenerCertificate {
            address,
            protocol: encrypted.protocol,
            certificate,
        },
    ))
}

/// The QUIC transport settings of a DoQ listener.
fn transport(idle_timeout: Duration) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_CONNECTION))
        // DoQ uses client-initiated bidirectional streams only (RFC 9250
        // §4.2): a unidirectional one is a QUIC stream limit error.
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        // Over QUIC's limit (2^62 ms, never configured) no idle timeout.
        .max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok());
    transport
}

/// Accepts connections until the server stops, each in its own task within
/// the listener's connection limits; then waits for them to finish their
/// queries and close.
async fn serve(endpoint: Endpoint, context: ServeContext, idle_timeout: Duration) {
    let mut connections = JoinSet::new();
    let stopping = context.stopping();
    tokio::pin!(stopping);
    loop {
        let incoming = tokio::select! {
            () = &mut stopping => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = ended {
                    tracing::error!(%error, "DoQ connection task failed");
                }
                continue;
            }
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break, // the endpoint was closed
            },
        };
        let client = incoming.remote_address();
        // Initial packets from forged addresses would each hold a slot until
        // their handshake times out. Once half the slots are taken, a client
        // must first show it receives at its address: it gets a Retry
        // (RFC 9000 §8.1.2), which a forger never sees, and comes back
        // validated. Quinn checks the token; this costs one round trip.
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && context.connections.is_half_taken()
        {
            if let Err(error) = incoming.retry() {
                error.into_incoming().refuse(); // may_retry said it could; refuse if not
            }
            continue;
        }
        let slot = match context.connections.take(client.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                context.handler.resolver().metrics().shed();
                tracing::debug!(%client, open = context.connections.open(), reason = ?full, "DoQ connection refused: the listener's connection limits are reached");
                incoming.refuse();
                continue;
            }
        };
        let context = context.clone();
        connections.spawn(async move {
            if let Err(error) = serve_connection(incoming, client, context, idle_timeout).await {
                tracing::debug!(%client, %error, "DoQ connection ended");
            }
            drop(slot);
        });
    }
    // Stopping: new connections are refused (as a TCP listener stops
    // listening) while the open ones answer what they have read.
    endpoint.set_server_config(None);
    while connections.join_next().await.is_some() {}
    // Connections are closed by now; let their last packets go out.
    let _ = tokio::time::timeout(idle_timeout, endpoint.wait_idle()).await; // bounded wait; nothing to report
}

/// Serves one connection: its handshake, then a task per query stream until
/// the client closes it, it idles out, or the server stops (then the
/// queries read are answered and the connection is closed with
/// `DOQ_NO_ERROR`).
async fn serve_connection(
    incoming: Incoming,
    client: SocketAddr,
    context: ServeContext,
    idle_timeout: Duration,
) -> Result<(), QuicError> {
    let connection = match tokio::time::timeout(idle_timeout, incoming).await {
        Ok(connection) => connection?,
        Err(_) => return Err(QuicError::HandshakeTimeout),
    };
    let mut queries = JoinSet::new();
    let stopping = context.stopping();
    tokio::pin!(stopping);
    let ended = loop {
        tokio::select! {
            () = &mut stopping => break Ok(()),
            Some(answered) = queries.join_next(), if !queries.is_empty() => {
                match answered {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => break Err(error),
                    Err(error) => tracing::error!(%error, "DoQ query task failed"),
                }
            }
            accepted = connection.accept_bi() => match accepted {
                Ok((send, receive)) => {
                    let context = context.clone();
                    queries.spawn(answer_query(send, receive, client, context, idle_timeout));
                }
                Err(ConnectionError::ApplicationClosed(_) | ConnectionError::TimedOut | ConnectionError::LocallyClosed) => {
                    return Ok(()); // the client closed it, or it idled out
                }
                Err(error) => return Err(error.into()),
            },
        }
    };
    match ended {
        Ok(()) => {
            while let Some(answered) = queries.join_next().await {
                if let Ok(Err(error)) = answered {
                    tracing::debug!(%client, %error, "DoQ query failed while stopping");
                }
            }
            connection.close(DoqErrorCode::NoError.into(), b"");
            Ok(())
        }
        Err(error) => {
            queries.abort_all();
            connection.close(DoqErrorCode::ProtocolError.into(), b"");
            Err(error)
        }
    }
}

/// Reads one query from a stream and answers it on the same stream. A
/// protocol error resets the stream and is returned for the connection to
/// close with; the rest (a reset by the client, a lost connection) ends the
/// stream only.
async fn answer_query(
    mut send: SendStream,
    mut receive: RecvStream,
    client: SocketAddr,
    context: ServeContext,
    idle_timeout: Duration,
) -> Result<(), QuicError> {
    let answered = answer(&mut send, &mut receive, client, &context, idle_timeout).await;
    if answered.is_err() {
        // Not the FIN dropping the stream would send: no answer follows.
        let _ = send.reset(DoqErrorCode::ProtocolError.into()); // a stream already gone needs no reset
    }
    answered
}

/// [`answer_query`] up to the protocol errors.
async fn answer(
    send: &mut SendStream,
    receive: &mut RecvStream,
    client: SocketAddr,
    context: &ServeContext,
    idle_timeout: Duration,
) -> Result<(), QuicError> {
    let stream =
        match tokio::time::timeout(idle_timeout, receive.read_to_end(MAX_QUERY_STREAM)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(quinn::ReadToEndError::TooLong)) => {
                return Err(QuicError::Protocol("more than one message on a stream"));
            }
            Ok(Err(quinn::ReadToEndError::Read(error))) => {
                tracing::debug!(%client, %error, "DoQ query stream ended before its query");
                return Ok(());
            }
            Err(_) => return Err(QuicError::Protocol("no FIN after the query")),
        };
    let query = unframe(&stream)?;
    let Some(response) = context.answer_stream(query, client, Transport::Quic).await else {
        return Err(QuicError::Protocol("a message that is not a query"));
    };
    let Ok(length) = u16::try_from(response.len()) else {
        // The stream transports' answers fit 65535 octets; never expected.
        let _ = send.reset(DoqErrorCode::InternalError.into()); // a stream already gone needs no reset
        return Ok(());
    };
    let mut framed = Vec::with_capacity(2 + response.len());
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(&response);
    if let Err(error) = send.write_all(&framed).await {
        tracing::debug!(%client, %error, "DoQ answer not sent");
        return Ok(());
    }
    // A stream already reset by the client has nothing left to finish.
    let _ = send.finish();
    // Until the client has the answer: closing the connection (on shutdown)
    // before that would lose it.
    let _ = tokio::time::timeout(idle_timeout, send.stopped()).await; // bounded wait; the outcome changes nothing
    Ok(())
}

/// The DNS message of a query stream: the two-octet length must match what
/// follows (RFC 9250 §4.2) and the message ID must be 0 (§4.2.1).
fn unframe(stream: &[u8]) -> Result<&[u8], QuicError> {
    let Some((length, message)) = stream.split_first_chunk::<2>() else {
        return Err(QuicError::Protocol(
            "a stream shorter than its length field",
        ));
    };
    if usize::from(u16::from_be_bytes(*length)) != message.len() {
        return Err(QuicError::Protocol(
            "the length field does not match the message before the FIN",
        ));
    }
    let header = Header::read(&mut BinDecoder::new(message))
        .map_err(|_| QuicError::Protocol("a message shorter than a DNS header"))?;
    if header.metadata.id != 0 {
        return Err(QuicError::Protocol(
            "a query with a message ID other than 0",
        ));
    }
    // The TCP keepalive option means nothing on QUIC (RFC 9250 §5.5.2); an
    // OPT record can only be in the additional section. A message that does
    // not parse is the handler's to answer (FORMERR).
    if header.counts.additionals > 0 {
        if let Ok(query) = Message::from_vec(message) {
            if query
                .edns
                .is_some_and(|edns| edns.options().get(EdnsCode::Keepalive).is_some())
            {
                return Err(QuicError::Protocol("the edns-tcp-keepalive option"));
            }
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframe_refuses_the_tcp_keepalive_option() {
        use hickory_proto::op::Edns;
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let query = |option: Option<EdnsOption>| {
            let mut message = Message::query();
            message.metadata.id = 0;
            let mut edns = Edns::new();
            if let Some(option) = option {
                edns.options_mut().insert(option);
            }
            message.set_edns(edns);
            let message = message.to_vec().expect("encode");
            let mut stream = u16::try_from(message.len())
                .expect("small")
                .to_be_bytes()
                .to_vec();
            stream.extend_from_slice(&message);
            stream
        };
        assert!(unframe(&query(None)).is_ok(), "EDNS without options");
        assert!(
            unframe(&query(Some(EdnsOption::Unknown(11, Vec::new())))).is_err(),
            "edns-tcp-keepalive (option 11)"
        );
    }

    #[test]
    fn unframe_checks_length_and_message_id() {
        // A header with ID 0 (the rest of the message does not matter here).
        let header = [0u8, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let framed = |length: u16, message: &[u8]| {
            let mut stream = length.to_be_bytes().to_vec();
            stream.extend_from_slice(message);
            stream
        };
        let mut with_id = header;
        with_id[1] = 7;
        let cases: [(&str, Vec<u8>, bool); 6] = [
            ("a query with ID 0", framed(12, &header), true),
            ("a message ID other than 0", framed(12, &with_id), false),
            ("length longer than the message", framed(13, &header), false),
            (
                "a second message after the first",
                [framed(12, &header), framed(12, &header)].concat(),
                false,
            ),
            ("only a length field", framed(0, &[]), false),
            ("one octet", vec![0], false),
        ];
        for (case, stream, accepted) in cases {
            assert_eq!(unframe(&stream).is_ok(), accepted, "{case}");
        }
    }
}
