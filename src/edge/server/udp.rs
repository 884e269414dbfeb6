//! UDP elsewhere (not Linux): one tokio task per socket, receiving one
//! datagram at a time, answering hits at once and each other query in a
//! task of its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::MAX_DATAGRAM;
use super::context::{FastOutcome, ServeContext};
use socket2::Socket;
#[cfg(not(target_os = "linux"))]
use tokio::net::UdpSocket;

use crate::edge::pktinfo::ReplySource;
#[cfg(target_os = "linux")]
use crate::edge::udp_batch;

/// The socket the slow path answers a UDP query on: the listener's own.
#[cfg(not(target_os = "linux"))]
pub(super) type ListenerSocket = Arc<UdpSocket>;

/// Starts serving one UDP socket: receives datagrams one at a time,
/// answering hits at once and each other query in its own task.
#[cfg(not(target_os = "linux"))]
pub(super) fn serve_udp(
    socket: Socket,
    context: ServeContext,
) -> io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let socket = Arc::new(UdpSocket::from_std(socket.into())?);
    Ok(async move {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut reply = Vec::with_capacity(1232);
        loop {
            let (length, client) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; keep serving.
                    tracing::debug!(%error, "UDP receive error");
                    continue;
                }
            };
            let packet = &buffer[..length];
            let cache_generation = context.responses.generation();
            let policy = context.policy();
            match context.answer_fast(&policy, packet, client, &mut reply) {
                FastOutcome::Answer => send_reply(&socket, &reply, client, None).await,
                FastOutcome::Silenced => {}
                FastOutcome::Slow => {
                    context.answer_slow(&socket, policy, cache_generation, packet, client)
                }
            }
        }
    })
}

/// Sends one answer. Portable sockets are each bound to one address (see
/// [`bind_each_local_address`]), so `_source` is always `None` here.
#[cfg(not(target_os = "linux"))]
pub(super) async fn send_reply(
    socket: &Arc<UdpSocket>,
    bytes: &[u8],
    client: SocketAddr,
    _source: Option<ReplySource>,
) {
    if let Err(error) = socket.send_to(bytes, client).await {
        tracing::debug!(%client, %error, "UDP send failed");
    }
}
