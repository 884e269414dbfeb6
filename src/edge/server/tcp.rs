//! TCP (and the accept loop DoT and DoH share): connections up to the
//! configured limits (per listener and per client address), two-octet
//! length framing with pipelined queries answered concurrently (TCP and
//! DoT), an idle timeout. A failed accept (out of file descriptors, say) is
//! retried after a pause that grows while the failures last, and logged at
//! a limited rate.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::context::ServeContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::edge::transport::Transport;

/// The connection slots of one listener (TCP, DoT, DoH or DoQ): a connection
/// holds one while it is open, so at most `max` are open at once, and at
/// most `max_per_client` from one client address, so one client cannot
/// take every slot.
pub(crate) struct ConnectionSlots {
    free: Arc<Semaphore>,
    max: usize,
    max_per_client: usize,
    /// Connections open per client address (no entry: none).
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoSlot {
    /// The listener has `max` connections open.
    Listener,
    /// The client address has `max_per_client` open.
    Client,
}

/// One connection's slot, given back when dropped.
pub(super) struct ConnectionSlot {
    _listener: OwnedSemaphorePermit,
    slots: Arc<ConnectionSlots>,
    client: IpAddr,
}

/// Unless configured, one client address may hold at most this part of a
/// listener's connections (a quarter, rounded up).
const DEFAULT_CLIENT_SHARE: usize = 4;

impl ConnectionSlots {
    /// Slots for at most `max` connections at once, and at most
    /// `max_per_client` from one address (`None`: a quarter of `max`).
    pub(super) fn new(max: usize, max_per_client: Option<usize>) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            free: Arc::new(Semaphore::new(max)),
            max,
            max_per_client: max_per_client
                .unwrap_or_else(|| max.div_ceil(DEFAULT_CLIENT_SHARE))
                .max(1),
            per_client: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one connection from `client`, held until the connection
    /// ends.
    pub(super) fn take(self: &Arc<Self>, client: IpAddr) -> Result<ConnectionSlot, NoSlot> {
        let permit = Arc::clone(&self.free)
            .try_acquire_owned()
            .map_err(|_| NoSlot::Listener)?;
        let client = client.to_canonical();
        let mut per_client = self.lock_per_client();
        let open = per_client.entry(client).or_default();
        if *open >= self.max_per_client {
            // `max_per_client` is at least 1, so the entry was there already.
            return Err(NoSlot::Client);
        }
        *open += 1;
        Ok(ConnectionSlot {
            _listener: permit,
            slots: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.max.saturating_sub(self.free.available_permits())
    }

    /// Whether at least half of the slots are taken.
    pub(super) fn is_half_taken(&self) -> bool {
        self.open().saturating_mul(2) >= self.max
    }

    fn lock_per_client(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map stays consistent even if a holder panicked: each change is one step.
        self.per_client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_client = self.slots.lock_per_client();
        if let Some(open) = per_client.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_client.remove(&self.client);
            }
        }
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
            accepted_without_nagle(&stream)?;
            let mut stream = stream;
            // Borrowed halves: no lock between them (as `io::split` takes),
            // and no shutdown when the writing half is dropped.
            let (reader, writer) = stream.split();
            serve_connection(
                reader,
                writer,
                client,
                context,
                Transport::Tcp,
                idle_timeout,
            )
            .await
        },
    )
    .await;
}

/// Makes sure Nagle's algorithm is off on an accepted connection (answers
/// are written whole; Nagle would hold back the second of two pipelined
/// answers until the first is acknowledged). On Linux an accepted socket
/// inherits `TCP_NODELAY` from its listener (`bind::bind_tcp` sets it), so
/// nothing is left to do; elsewhere it is set on each connection.
pub(crate) fn accepted_without_nagle(stream: &TcpStream) -> io::Result<()> {
    if cfg!(target_os = "linux") {
        Ok(())
    } else {
        stream.set_nodelay(true)
    }
}

/// Accepts connections on a TCP listener and runs `serve` for each in its
/// own task, at most `server.max_tcp_connections` at once on this listener
/// and `server.max_tcp_connections_per_client` from one client address
/// (further ones are closed at once and counted as shed). Plain TCP, DoT and
/// DoH share this loop; `serve` owns what runs on the connection.
///
/// The connection tasks belong to this loop: when it is aborted, they are
/// too. When the server stops ([`ServeContext::stopping`]) it stops
/// accepting and returns once every connection has ended (each stops
/// reading queries, answers those it has read and closes).
pub(crate) async fn accept_connections<Serve, Serving>(
    listener: TcpListener,
    context: ServeContext,
    serve: Serve,
) where
    Serve: Fn(TcpStream, SocketAddr, ServeContext) -> Serving,
    Serving: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::new();
    let stopping = context.stopping();
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            () = &mut stopping => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = ended {
                    tracing::error!(%error, "TCP connection task failed");
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, client)) => {
                backoff.succeeded();
                let slot = match context.connections.take(client.ip()) {
                    Ok(slot) => slot,
                    Err(full) => {
                        context.handler.resolver().metrics().shed();
                        let open = context.connections.open();
                        match full {
                            NoSlot::Listener => {
                                tracing::debug!(%client, open, "TCP connection refused: the listener's max_connections (server.max_tcp_connections) reached")
                            }
                            NoSlot::Client => {
                                tracing::debug!(%client, open, "TCP connection refused: this client's max_connections_per_client (server.max_tcp_connections_per_client) reached")
                            }
                        }
                        drop(stream);
                        continue;
                    }
                };
                let serving = serve(stream, client, context.clone());
                connections.spawn(async move {
                    if let Err(error) = serving.await {
                        tracing::debug!(%client, %error, "TCP connection ended");
                    }
                    drop(slot);
                });
            }
            Err(error) if is_connection_error(&error) => {
                // That connection is gone before it was accepted; the next is fine.
                tracing::debug!(%error, "TCP connection failed before it was accepted");
            }
            Err(error) => {
                // Out of file descriptors and the like: retrying at once would
                // spin until the condition passes, so pause, longer each time.
                let (pause, log) = backoff.failed(Instant::now());
                if let Some(failures) = log {
                    tracing::warn!(%error, failures, retry_in = ?pause, "TCP accept failed (this failure and those since the last such line)");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut stopping => break,
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Whether a failed accept concerns only the connection being accepted
/// (reset or aborted by the client), not the listener or the process.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The first pause after a failed accept.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two failed accepts.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Least time between two log lines about failed accepts.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after a failed accept (EMFILE, ENFILE,
/// ENOBUFS: failures that last until something else changes): from
/// [`FIRST_ACCEPT_PAUSE`], doubling up to [`MAX_ACCEPT_PAUSE`], back to the
/// start after an accept succeeds. It also says when to log: the first
/// failure, then at most once per [`ACCEPT_LOG_INTERVAL`], with the count.
#[derive(Debug)]
struct AcceptBackoff {
    /// The pause after the next failure.
    pause: Duration,
    /// Failures not yet logged.
    unlogged: u64,
    /// When the last log line was written.
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    fn new() -> Self {
        Self {
            pause: FIRST_ACCEPT_PAUSE,
            unlogged: 0,
            last_log: None,
        }
    }

    /// An accept failed at `now`: how long to pause, and the failures to
    /// log now (this one included), if a line is due.
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_ACCEPT_PAUSE);
        self.unlogged = self.unlogged.saturating_add(1);
        let due = self
            .last_log
            .is_none_or(|last| now.saturating_duration_since(last) >= ACCEPT_LOG_INTERVAL);
        if !due {
            return (pause, None);
        }
        self.last_log = Some(now);
        (pause, Some(std::mem::take(&mut self.unlogged)))
    }

    /// An accept succeeded: the next failure pauses briefly again.
    fn succeeded(&mut self) {
        self.pause = FIRST_ACCEPT_PAUSE;
    }
}

/// Queries of one TCP or DoT connection answered at once; the next is read
/// when one of them is done.
const MAX_QUERIES_PER_CONNECTION: usize = 64;

/// The read buffer of one TCP or DoT connection: room for a few queries.
const STREAM_READ_BUFFER: usize = 2048;

/// Serves length-prefixed messages (RFC 1035 §4.2.2) on a TCP or TLS
/// stream, given as its reading and writing halves.
///
/// While every query has a stored response, the connection is served in
/// order in this one task: a query is read, its answer appended to the
/// output, and the output written unless a further whole query is
/// already buffered, so pipelined hits go out in one write. That is what nearly
/// every connection needs (one query, or a few cache hits), and it costs
/// no channel and no second task.
///
/// The first query that needs resolving switches the connection to
/// [`serve_concurrently`] for the rest of its life: each miss gets a task
/// of its own and its answer goes out as soon as it is ready, in any order
/// (RFC 7766 §6.2.1.1, RFC 7858 §3.3), so a slow miss does not hold up the
/// hits behind it.
///
/// The connection closes when the client does, or after `idle_timeout`
/// without a query (RFC 7766 §6.2.3, RFC 7858 §3.4) or when the server
/// stops, once the queries in flight are answered.
pub(crate) async fn serve_connection<Reader, Writer>(
    reader: Reader,
    mut writer: Writer,
    client: SocketAddr,
    context: ServeContext,
    transport: Transport,
    idle_timeout: Duration,
) -> io::Result<()>
where
    Reader: tokio::io::AsyncRead + Unpin + Send,
    Writer: tokio::io::AsyncWrite + Unpin + Send,
{
    // Buffered: one read takes a query's length and its message, and often
    // the pipelined queries behind it.
    let mut reader = tokio::io::BufReader::with_capacity(STREAM_READ_BUFFER, reader);
    let mut output = Vec::new();
    let first_miss = {
        let stopping = context.stopping();
        tokio::pin!(stopping);
        loop {
            let Some(request) = read_query(&mut reader, idle_timeout, &mut stopping).await? else {
                break None;
            };
            // A stored response is answered here; the first query that
            // needs resolving leaves this loop.
            let Some(response) = context.answer_stream_stored(&request, client, transport) else {
                break Some(request);
            };
            append_framed(&mut output, &response, client, transport);
            if !holds_a_whole_query(reader.buffer()) {
                write_out(&mut writer, &mut output).await?;
            }
        }
    };
    write_out(&mut writer, &mut output).await?;
    match first_miss {
        // Boxed: the concurrent part's state stays out of every
        // connection's task until a connection needs it.
        Some(request) => {
            Box::pin(serve_concurrently(
                reader,
                writer,
                request,
                client,
                context,
                transport,
                idle_timeout,
            ))
            .await
        }
        None => close_stream(&mut writer, transport).await,
    }
}

/// The rest of a connection once a query needs resolving (see
/// [`serve_connection`]), starting with that query: a query with a stored
/// response is answered at once, one that needs resolving gets a task of
/// its own, at most [`MAX_QUERIES_PER_CONNECTION`] at once, and one writer
/// sends the answers as they are ready, those ready together in one flush.
async fn serve_concurrently<Reader, Writer>(
    mut reader: tokio::io::BufReader<Reader>,
    mut writer: Writer,
    first_miss: Vec<u8>,
    client: SocketAddr,
    context: ServeContext,
    transport: Transport,
    idle_timeout: Duration,
) -> io::Result<()>
where
    Reader: tokio::io::AsyncRead + Unpin + Send,
    Writer: tokio::io::AsyncWrite + Unpin + Send,
{
    let (answers, mut to_write) = tokio::sync::mpsc::channel::<Vec<u8>>(MAX_QUERIES_PER_CONNECTION);
    // One writer, so answers finished together never interleave.
    let writing = async move {
        while let Some(framed) = to_write.recv().await {
            writer.write_all(&framed).await?;
            while let Ok(more) = to_write.try_recv() {
                writer.write_all(&more).await?;
            }
            writer.flush().await?;
        }
        close_stream(&mut writer, transport).await
    };
    let reading = async move {
        let mut queries = JoinSet::new();
        let stop = context.clone();
        let stopping = stop.stopping();
        tokio::pin!(stopping);
        let mut next = Some(first_miss);
        loop {
            while queries.try_join_next().is_some() {}
            while queries.len() >= MAX_QUERIES_PER_CONNECTION {
                queries.join_next().await;
            }
            let request = match next.take() {
                Some(request) => request,
                None => match read_query(&mut reader, idle_timeout, &mut stopping).await? {
                    Some(request) => request,
                    None => break,
                },
            };
            // A stored response is sent at once; only a query that needs
            // resolving gets a task (its future is large: about 10 KiB,
            // copied into the task, which would cost more than the answer).
            if let Some(response) = context.answer_stream_stored(&request, client, transport) {
                if let Some(framed) = frame_for_stream(&response, client, transport) {
                    // The writer is gone only when the connection failed.
                    let _ = answers.send(framed).await;
                }
            } else {
                let arrived = Instant::now();
                let (context, answers) = (context.clone(), answers.clone());
                queries.spawn(async move {
                    let Some(response) = context
                        .answer_stream_resolved(&request, client, transport, arrived)
                        .await
                    else {
                        return;
                    };
                    if let Some(framed) = frame_for_stream(&response, client, transport) {
                        let _ = answers.send(framed).await;
                    }
                });
            }
        }
        while queries.join_next().await.is_some() {}
        Ok(())
    };
    tokio::try_join!(reading, writing).map(|_| ())
}

/// Reads the next length-prefixed query; `None` when the client closed the
/// connection, it sent nothing for `idle_timeout`, or `stopping` completed
/// (the server is shutting down) before a query began.
async fn read_query<Reader, Stopping>(
    reader: &mut tokio::io::BufReader<Reader>,
    idle_timeout: Duration,
    stopping: &mut std::pin::Pin<&mut Stopping>,
) -> io::Result<Option<Vec<u8>>>
where
    Reader: tokio::io::AsyncRead + Unpin,
    Stopping: std::future::Future<Output = ()>,
{
    let mut length = [0u8; 2];
    let read = tokio::time::timeout(idle_timeout, reader.read_exact(&mut length));
    let read = tokio::select! {
        read = read => read,
        // Shutting down: answer what was read, then close.
        () = stopping.as_mut() => return Ok(None),
    };
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(error)) => return Err(error),
        Err(_) => return Ok(None), // idle
    }
    let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
    match tokio::time::timeout(idle_timeout, reader.read_exact(&mut request)).await {
        Ok(result) => result?,
        Err(_) => return Ok(None),
    };
    Ok(Some(request))
}

/// Writes the answers gathered in `output`, if any, and empties it.
async fn write_out<Writer>(writer: &mut Writer, output: &mut Vec<u8>) -> io::Result<()>
where
    Writer: tokio::io::AsyncWrite + Unpin,
{
    if output.is_empty() {
        return Ok(());
    }
    writer.write_all(output).await?;
    writer.flush().await?;
    output.clear();
    Ok(())
}

/// Whether `buffered` (what was read from a stream and not yet taken)
/// holds a whole length-prefixed query: the answers so far wait for the
/// next one only then, never for the rest of a query still on its way.
fn holds_a_whole_query(buffered: &[u8]) -> bool {
    match buffered {
        [high, low, message @ ..] => {
            message.len() >= usize::from(u16::from_be_bytes([*high, *low]))
        }
        _ => false,
    }
}

/// Ends the writing side once every answer is written: over TLS this
/// sends close_notify; plain TCP needs no separate shutdown, the close
/// that follows sends the FIN.
async fn close_stream<Writer>(writer: &mut Writer, transport: Transport) -> io::Result<()>
where
    Writer: tokio::io::AsyncWrite + Unpin,
{
    if transport == Transport::Tcp {
        Ok(())
    } else {
        writer.shutdown().await
    }
}

/// Appends `response` with its two-octet length prefix to `output`
/// (nothing, logged, when it is too large for one).
fn append_framed(output: &mut Vec<u8>, response: &[u8], client: SocketAddr, transport: Transport) {
    let Ok(response_length) = u16::try_from(response.len()) else {
        tracing::warn!(%client, ?transport, size = response.len(), "response too large for a stream; dropped");
        return;
    };
    output.reserve(response.len() + 2);
    output.extend_from_slice(&response_length.to_be_bytes());
    output.extend_from_slice(response);
}

/// `response` with its two-octet length prefix (RFC 1035 §4.2.2); `None`
/// (logged) when it is too large for one.
fn frame_for_stream(response: &[u8], client: SocketAddr, transport: Transport) -> Option<Vec<u8>> {
    let mut framed = Vec::new();
    append_framed(&mut framed, response, client, transport);
    (!framed.is_empty()).then_some(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener =
            super::super::bind::bind_tcp("127.0.0.1:0".parse().expect("address")).expect("bind");
        let address = listener.local_addr().expect("bound address");
        let _client = TcpStream::connect(address).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        accepted_without_nagle(&accepted).expect("set up");
        assert!(accepted.nodelay().expect("TCP_NODELAY"));
    }

    #[test]
    fn a_buffered_query_counts_only_when_whole() {
        let cases: [(&[u8], bool); 6] = [
            (&[], false),
            (&[0], false),
            (&[0, 3, 1, 2], false),
            (&[0, 3, 1, 2, 3], true),
            (&[0, 3, 1, 2, 3, 0], true),
            (&[0, 0], true),
        ];
        for (buffered, whole) in cases {
            assert_eq!(holds_a_whole_query(buffered), whole, "{buffered:?}");
        }
    }

    #[test]
    fn connection_slots_limit_the_listener_and_each_client_address() {
        let slots = Arc::new(ConnectionSlots::new(3, Some(2)));
        let address = |text: &str| text.parse::<IpAddr>().expect("address");
        let (first, second) = (address("192.0.2.1"), address("2001:db8::2"));
        let taken_first = [slots.take(first), slots.take(first)];
        assert!(taken_first.iter().all(Result::is_ok));
        assert_eq!(slots.take(first).err(), Some(NoSlot::Client));
        // The same client through an IPv4-mapped IPv6 address.
        assert_eq!(
            slots.take(address("::ffff:192.0.2.1")).err(),
            Some(NoSlot::Client)
        );
        let taken_second = slots.take(second);
        assert!(taken_second.is_ok());
        assert_eq!(slots.open(), 3);
        assert_eq!(
            slots.take(address("192.0.2.3")).err(),
            Some(NoSlot::Listener)
        );
        drop(taken_first);
        assert_eq!(slots.open(), 1);
        assert!(
            slots.take(first).is_ok(),
            "a closed connection gives its slots back"
        );
        drop(taken_second);
        assert!(
            slots.lock_per_client().is_empty(),
            "no entry for a client without connections"
        );
    }

    #[test]
    fn a_client_may_hold_a_quarter_of_the_connections_unless_configured() {
        let cases = [
            ("the default limit", 1024, None, 256),
            ("rounded up", 10, None, 3),
            ("at least one", 1, None, 1),
            ("configured", 1024, Some(32), 32),
            ("configured above the listener's limit", 2, Some(8), 8),
        ];
        for (case, max, configured, per_client) in cases {
            assert_eq!(
                ConnectionSlots::new(max, configured).max_per_client,
                per_client,
                "{case}"
            );
        }
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_starts_over_after_a_success() {
        let start = Instant::now();
        let milliseconds = Duration::from_millis;
        let mut backoff = AcceptBackoff::new();
        let pauses: Vec<Duration> = (0..9).map(|_| backoff.failed(start).0).collect();
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000].map(milliseconds)
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(start).0, milliseconds(10));
    }

    #[test]
    fn accept_failures_are_logged_at_most_every_interval_with_their_count() {
        let start = Instant::now();
        let mut backoff = AcceptBackoff::new();
        // (seconds after start, the count logged then, if any)
        let cases: [(u64, Option<u64>); 6] = [
            (0, Some(1)), // the first failure is logged at once
            (1, None),
            (5, None),
            (10, Some(3)), // an interval later: it and the two unlogged
            (11, None),
            (25, Some(2)),
        ];
        for (seconds, logged) in cases {
            let now = start + Duration::from_secs(seconds);
            assert_eq!(backoff.failed(now).1, logged, "at {seconds} s");
        }
    }
}
