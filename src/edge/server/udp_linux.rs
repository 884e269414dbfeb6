//! UDP on Linux: one thread per `SO_REUSEPORT` socket, receiving and
//! sending in batches (`recvmmsg`/`sendmmsg`, [`crate::edge::udp_batch`]),
//! answering hits at once and running its misses in a single-threaded
//! runtime of its own. On a wildcard address each reply leaves from the
//! address its query was sent to ([`crate::edge::pktinfo`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::MAX_DATAGRAM;
use super::active_queries::ActiveQueries;
use super::context::{FastOutcome, ServeContext};
use socket2::Socket;
#[cfg(not(target_os = "linux"))]
use tokio::net::UdpSocket;

use crate::edge::fastpath::{self};
use crate::edge::pktinfo::ReplySource;
#[cfg(target_os = "linux")]
use crate::edge::udp_batch;

/// The socket the slow path answers a UDP query on: the listener's own.
#[cfg(target_os = "linux")]
pub(super) type ListenerSocket = Arc<Socket>;

/// Starts serving one UDP socket on a thread of its own (see
/// [`serve_udp_thread`]); the returned task ends when the thread does, and
/// dropping or aborting it stops the thread.
#[cfg(target_os = "linux")]
pub(super) fn serve_udp(
    socket: Socket,
    context: ServeContext,
) -> io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    socket.set_nonblocking(false)?;
    let socket = Arc::new(socket);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ended, on_end) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread_socket = Arc::clone(&socket);
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("dns64d-udp".into())
        .spawn(move || {
            serve_udp_thread(&runtime, &thread_socket, &context, &thread_stop);
            drop(ended);
        })?;
    let stopper = StopUdpThread { socket, stop };
    Ok(async move {
        let _stopper = stopper;
        let _ = on_end.await; // the thread only ends when stopped
    })
}

/// Stops a listener thread when dropped: sets its flag and shuts its socket
/// for reading, which wakes a `recvmmsg` that waits (Linux does this even for
/// unconnected UDP sockets, though the call itself reports ENOTCONN).
#[cfg(target_os = "linux")]
pub(super) struct StopUdpThread {
    socket: Arc<Socket>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(target_os = "linux")]
impl Drop for StopUdpThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
    }
}

/// A listener thread on Linux. It receives datagrams in batches
/// ([`udp_batch`]), answers what the fast path can in one batched send, and
/// runs the slow path in a single-threaded runtime of its own, so a miss is
/// taken up without waking another thread. It waits in one of two ways:
///
/// - while its runtime has no task, blocked in `recvmmsg` on the socket,
///   which is not registered with epoll (the point of the thread: see
///   [`udp_batch`]);
/// - while it has tasks (slow queries, or what they started), in the runtime,
///   for the socket (now registered) and the tasks together, as any
///   single-threaded event loop does; when the last slow query ends, it goes
///   back to blocking.
///
/// When stopped, it lets its slow queries finish (each is bounded by the
/// upstream timeouts) and ends.
#[cfg(target_os = "linux")]
pub(super) fn serve_udp_thread(
    runtime: &tokio::runtime::Runtime,
    socket: &Arc<Socket>,
    context: &ServeContext,
    stop: &std::sync::atomic::AtomicBool,
) {
    let _runtime = runtime.enter();
    let slow_queries = Arc::new(ActiveQueries::default());
    // Only a wildcard socket has pktinfo on (see `bind_udp`).
    let wildcard = is_wildcard(socket);
    let mut received = udp_batch::ReceiveBatch::new(MAX_DATAGRAM, wildcard);
    let mut answers = udp_batch::SendBatch::default();
    let mut reply = Vec::with_capacity(1232);
    let mut registered = None;
    loop {
        received.clear();
        let outcome = if runtime.metrics().num_alive_tasks() == 0 {
            registered = None;
            received.receive(&**socket, true)
        } else if let Some(registration) = registration(&mut registered, socket) {
            // Background tasks alone (say, a connection a query opened) are
            // driven while waiting for the next query; slow queries also end the wait.
            let slow_running = slow_queries.count() > 0;
            runtime.block_on(async {
                // The tasks that are ready run first: a socket that always has
                // queries waiting must not keep them from running.
                tokio::task::yield_now().await;
                tokio::select! {
                    outcome = registration.async_io(tokio::io::Interest::READABLE, |socket| {
                        received.receive(&**socket, false)
                    }) => outcome,
                    () = slow_queries.wait_idle(), if slow_running => Ok(0),
                }
            })
        } else {
            // Not expected (epoll out of room): finish the slow queries, then block.
            runtime.block_on(slow_queries.wait_idle());
            received.receive(&**socket, true)
        };
        if stop.load(Ordering::Acquire) {
            runtime.block_on(slow_queries.wait_idle());
            return;
        }
        match outcome {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        }
        // One read of the policy per batch: the batch is answered as of its
        // arrival. The cache generation is taken first (see `slow_task`).
        let cache_generation = context.responses.generation();
        let policy = context.policy();
        for (packet, client, source) in received.datagrams() {
            match context.answer_fast(&policy, packet, client, &mut reply) {
                FastOutcome::Answer => answers.push(&reply, client, source),
                FastOutcome::Silenced => {}
                FastOutcome::Slow => {
                    let policy = Arc::clone(&policy);
                    let task =
                        context.slow_task(socket, policy, cache_generation, packet, client, source);
                    match task {
                        Ok(task) => {
                            let running = slow_queries.enter();
                            runtime.spawn(async move {
                                task.await;
                                drop(running);
                            });
                        }
                        // Shed: its SERVFAIL goes out with this batch's answers.
                        Err(Some(busy)) => answers.push(&busy, client, source),
                        Err(None) => {}
                    }
                }
            }
        }
        if !answers.is_empty() {
            answers.flush(&**socket, |bytes, client, source, error| {
                send_refused(socket, bytes, client, source, &error);
            });
        }
    }
}

/// The listener socket's registration with the thread's runtime, made when
/// first needed; `None` (logged) when it cannot be made.
#[cfg(target_os = "linux")]
pub(super) fn registration<'a>(
    registered: &'a mut Option<tokio::io::unix::AsyncFd<Arc<Socket>>>,
    socket: &Arc<Socket>,
) -> Option<&'a tokio::io::unix::AsyncFd<Arc<Socket>>> {
    if registered.is_none() {
        match udp_batch::register(socket) {
            Ok(registration) => *registered = Some(registration),
            Err(error) => {
                tracing::warn!(%error, "cannot register a UDP listener with its runtime");
                return None;
            }
        }
    }
    registered.as_ref()
}

/// Whether a listener socket is bound to a wildcard address (and so has
/// pktinfo on and must say where each reply comes from).
#[cfg(target_os = "linux")]
pub(super) fn is_wildcard(socket: &Socket) -> bool {
    socket
        .local_addr()
        .ok()
        .and_then(|bound| bound.as_socket())
        .is_some_and(|bound| bound.ip().is_unspecified())
}

/// Sends one datagram to `destination`, from `source` when given (a
/// wildcard socket's reply, see [`crate::edge::pktinfo`]).
#[cfg(target_os = "linux")]
pub(super) fn send_from(
    socket: &Socket,
    bytes: &[u8],
    destination: &socket2::SockAddr,
    source: Option<ReplySource>,
    flags: libc::c_int,
) -> io::Result<usize> {
    let Some(source) = source else {
        return socket.send_to_with_flags(bytes, destination, flags);
    };
    let mut control = crate::edge::pktinfo::ControlBuffer::default();
    let length = crate::edge::pktinfo::encode(source, &mut control);
    let buffers = [io::IoSlice::new(bytes)];
    let message = socket2::MsgHdr::new()
        .with_addr(destination)
        .with_buffers(&buffers)
        .with_control(control.bytes(length));
    socket.sendmsg(&message, flags)
}

/// Sends one slow-path answer, from `source` when given, without blocking
/// the runtime: at once when the send buffer has room, else from a
/// blocking-pool thread.
#[cfg(target_os = "linux")]
pub(super) async fn send_reply(
    socket: &Arc<Socket>,
    bytes: &[u8],
    client: SocketAddr,
    source: Option<ReplySource>,
) {
    let destination = socket2::SockAddr::from(client);
    match send_from(socket, bytes, &destination, source, libc::MSG_DONTWAIT) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            let socket = Arc::clone(socket);
            let bytes = bytes.to_vec();
            let sent = tokio::task::spawn_blocking(move || {
                if let Err(error) = send_from(&socket, &bytes, &destination, source, 0) {
                    send_refused(&socket, &bytes, client, source, &error);
                }
            });
            let _ = sent.await; // a panic there is already reported by the runtime
        }
        Err(error) => send_refused(socket, bytes, client, source, &error),
    }
}

/// Deals with an answer the kernel would not send. One larger than the
/// outgoing interface's MTU (IPv4 listeners set DF, RFC 9715) goes out
/// truncated instead, so the client retries over TCP; anything else is
/// logged and dropped, as UDP would lose it.
#[cfg(target_os = "linux")]
pub(super) fn send_refused(
    socket: &Socket,
    bytes: &[u8],
    client: SocketAddr,
    source: Option<ReplySource>,
    error: &io::Error,
) {
    if error.raw_os_error() == Some(libc::EMSGSIZE) {
        let mut truncated = bytes.to_vec();
        if fastpath::truncate_to_question(&mut truncated) {
            let destination = socket2::SockAddr::from(client);
            if let Err(error) =
                send_from(socket, &truncated, &destination, source, libc::MSG_DONTWAIT)
            {
                tracing::debug!(%client, %error, "UDP send of a truncated answer failed");
            }
            return;
        }
    }
    tracing::debug!(%client, %error, "UDP send failed");
}
