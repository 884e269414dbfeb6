//! TCP (and the accept loop DoT and DoH share): connections up to the
//! configured limits, two-octet length framing, an idle timeout.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::context::ServeContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::edge::transport::Transport;

/// The connection slots of one listener (TCP, DoT or DoH): a connection
/// holds one while it is open, so at most `max` are open at once.
pub(crate) struct ConnectionSlots {
    free: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    /// Slots for at most `max` connections at once.
    pub(super) fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            free: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot for one connection, held until the connection ends; `None`
    /// when every slot is taken.
    fn take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.free).try_acquire_owned().ok()
    }

    /// Connections open now.
    fn open(&self) -> usize {
        self.max.saturating_sub(self.free.available_permits())
    }
}

/// Accepts TCP connections and serves each in its own task.
pub(super) async fn serve_tcp(
    listener: TcpListener,
    context: ServeContext,
    idle_timeout: Duration,
) {
    accept_connections(
        listener,
        context,
        move |stream, client, context| async move {
            serve_connection(stream, client, &context, Transport::Tcp, idle_timeout).await
        },
    )
    .await;
}

/// Accepts connections on a TCP listener and runs `serve` for each in its
/// own task, at most `server.max_tcp_connections` at once on this listener
/// (further ones are closed at once and counted as shed). Plain TCP, DoT and
/// DoH share this loop; `serve` owns what runs on the connection.
pub(crate) async fn accept_connections<Serve, Serving>(
    listener: TcpListener,
    context: ServeContext,
    serve: Serve,
) where
    Serve: Fn(TcpStream, SocketAddr, ServeContext) -> Serving,
    Serving: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let Some(slot) = context.connections.take() else {
                    context.handler.resolver().metrics().shed();
                    let open = context.connections.open();
                    tracing::debug!(%client, open, "TCP connection refused: server.max_tcp_connections reached");
                    drop(stream);
                    continue;
                };
                let serving = serve(stream, client, context.clone());
                tokio::spawn(async move {
                    if let Err(error) = serving.await {
                        tracing::debug!(%client, %error, "TCP connection ended");
                    }
                    drop(slot);
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: log and go on accepting.
                tracing::warn!(%error, "TCP accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Serves length-prefixed messages (RFC 1035 §4.2.2) on a TCP or TLS stream
/// until the client closes or stays idle longer than `idle_timeout`
/// (RFC 7766 §6.2.3, RFC 7858 §3.4).
pub(crate) async fn serve_connection<Stream>(
    mut stream: Stream,
    client: SocketAddr,
    context: &ServeContext,
    transport: Transport,
    idle_timeout: Duration,
) -> io::Result<()>
where
    Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(idle_timeout, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Err(_) => return Ok(()),
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
        match tokio::time::timeout(idle_timeout, stream.read_exact(&mut request)).await {
            Ok(result) => result?,
            Err(_) => return Ok(()),
        };
        let Some(response) = context.answer_stream(&request, client, transport).await else {
            continue;
        };
        let Ok(response_length) = u16::try_from(response.len()) else {
            tracing::warn!(%client, size = response.len(), "response too large for TCP; dropped");
            continue;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&response_length.to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
        stream.flush().await?;
    }
}
