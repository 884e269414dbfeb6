//! The relay loop: UDP and TCP listeners, one upstream socket per query in
//! flight, one `select` loop on one thread. The decisions (query shape,
//! IDs, which upstream, failover, SERVFAIL) are `dns64d_xp`'s; this file
//! only moves bytes and keeps the tables.
//!
//! Limits: [`UDP_SLOTS`] UDP queries and [`TCP_SLOTS`] TCP connections in
//! flight; a query beyond them is dropped (the client retries). A TCP
//! connection idle for [`TCP_IDLE_MS`] is closed.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};

use dns64d_xp::exchange::{Exchange, Verdict};
use dns64d_xp::header::{self, MAX_QUERY_LEN};
use dns64d_xp::upstreams::Upstreams;
use dns64d_xp::{Tick, is_due, until};

use super::log::log;
use super::net::{self, Socket, SocketError, SocketSet, Transport};
use super::system::{self, Global};

/// UDP queries in flight at once.
pub const UDP_SLOTS: usize = 1024;
/// TCP connections at once.
pub const TCP_SLOTS: usize = 8;
/// A TCP client idle this long is disconnected.
pub const TCP_IDLE_MS: u32 = 10_000;
/// The longest `select` wait, so a stop request is seen within it.
const POLL_MS: u32 = 200;
/// Datagrams read from one listener per round before the others get a turn.
const BURST: usize = 64;
/// The UDP listener's receive buffer: XP's default of 8 KiB holds only
/// a dozen queries, too few for a burst of hundreds.
const LISTENER_BUFFER: i32 = 512 * 1024;
/// Random source ports come from 1024–65535.
const FIRST_PORT: u32 = 1024;
/// A TCP message: two length bytes and up to 65535 bytes.
const TCP_MESSAGE_LEN: usize = 2 + 65_535;

/// Why the relay could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The IPv6 stack is not installed.
    NoIpv6(net::ErrorCode),
    /// A listen address is taken (another DNS server) or not local.
    Bind(SocketAddr, Transport, SocketError),
    /// Another socket call failed.
    Socket(SocketError),
}

impl StartError {
    /// The process exit code (and the service-specific exit code).
    pub fn exit_code(&self) -> u32 {
        match self {
            Self::Bind(..) => 3,
            Self::NoIpv6(_) => 4,
            Self::Socket(_) => 5,
        }
    }
}

impl core::fmt::Display for StartError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoIpv6(code) => write!(
                formatter,
                "no IPv6 stack (Winsock error {code}); install it with `netsh interface ipv6 install` and start again"
            ),
            Self::Bind(address, transport, error) => {
                let hint = if matches!(error.code, net::ADDRESS_IN_USE | net::ACCESS_DENIED) {
                    " (another program holds this port: stop the other DNS server, or choose --listen)"
                } else {
                    ""
                };
                write!(
                    formatter,
                    "cannot listen on {address} ({transport:?}): {error}{hint}"
                )
            }
            Self::Socket(error) => write!(formatter, "{error}"),
        }
    }
}

/// One UDP query in flight.
struct UdpSlot {
    socket: Option<Socket>,
    exchange: Option<Exchange>,
    listener: usize,
    /// Meaningful while `exchange` is set. Not an `Option`: its `None`
    /// would be a non-zero niche value and move the whole table from
    /// .bss into the file.
    client: SocketAddr,
    query: [u8; MAX_QUERY_LEN],
    query_len: usize,
}

impl UdpSlot {
    const fn new() -> Self {
        Self {
            socket: None,
            exchange: None,
            listener: 0,
            client: SocketAddr::V4(core::net::SocketAddrV4::new(
                core::net::Ipv4Addr::UNSPECIFIED,
                0,
            )),
            query: [0; MAX_QUERY_LEN],
            query_len: 0,
        }
    }

    fn is_free(&self) -> bool {
        self.exchange.is_none()
    }

    fn free(&mut self) {
        self.socket = None;
        self.exchange = None;
    }
}

/// Where a TCP connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpPhase {
    /// No connection.
    Free,
    /// Reading the client's length-prefixed query.
    ReadQuery,
    /// Connecting to the upstream and sending it the query.
    SendQuery,
    /// Reading the upstream's reply.
    ReadReply,
    /// Writing the reply (or SERVFAIL) to the client.
    SendReply,
}

/// One TCP client connection and its upstream connection.
struct TcpSlot {
    phase: TcpPhase,
    client: Option<Socket>,
    upstream: Option<Socket>,
    exchange: Option<Exchange>,
    /// The query with its two length bytes.
    query: [u8; 2 + MAX_QUERY_LEN],
    query_have: usize,
    query_sent: usize,
    /// The reply with its two length bytes.
    reply: [u8; TCP_MESSAGE_LEN],
    reply_have: usize,
    reply_sent: usize,
    idle_deadline: Tick,
}

impl TcpSlot {
    const fn new() -> Self {
        Self {
            phase: TcpPhase::Free,
            client: None,
            upstream: None,
            exchange: None,
            query: [0; 2 + MAX_QUERY_LEN],
            query_have: 0,
            query_sent: 0,
            reply: [0; TCP_MESSAGE_LEN],
            reply_have: 0,
            reply_sent: 0,
            idle_deadline: 0,
        }
    }

    fn free(&mut self) {
        self.phase = TcpPhase::Free;
        self.client = None;
        self.upstream = None;
        self.exchange = None;
    }

    /// Expected total length of a length-prefixed message, once 2 bytes are in.
    fn expected(buffer: &[u8], have: usize) -> Option<usize> {
        (have >= 2).then(|| 2 + usize::from(u16::from_be_bytes([buffer[0], buffer[1]])))
    }
}

/// Everything the loop owns. Static (zero-initialised, in .bss) rather
/// than on the stack: the TCP buffers are large, and untouched pages cost
/// no memory.
struct Tables {
    udp: [UdpSlot; UDP_SLOTS],
    tcp: [TcpSlot; TCP_SLOTS],
    read: SocketSet,
    write: SocketSet,
    error: SocketSet,
    /// Every datagram is read here first: a query (at most 512 bytes are
    /// relayed, the rest is there to see that it is longer) or an upstream
    /// reply (up to the UDP maximum, so an EDNS client's large answer is
    /// relayed whole rather than failing as too long).
    scratch: [u8; UDP_DATAGRAM_LEN],
}

/// The largest UDP payload.
const UDP_DATAGRAM_LEN: usize = 65_536;

static TABLES: Global<Tables> = Global::new(Tables {
    udp: [const { UdpSlot::new() }; UDP_SLOTS],
    tcp: [const { TcpSlot::new() }; TCP_SLOTS],
    read: SocketSet::new(),
    write: SocketSet::new(),
    error: SocketSet::new(),
    scratch: [0; UDP_DATAGRAM_LEN],
});

/// A bound relay, ready to serve.
pub struct Relay {
    udp_listeners: [Option<(Socket, SocketAddr)>; dns64d_xp::settings::MAX_LISTEN],
    tcp_listeners: [Option<Socket>; dns64d_xp::settings::MAX_LISTEN],
    upstreams: Upstreams,
    timeout_ms: u32,
    /// Queries dropped as malformed or for lack of a slot (logged now and then).
    dropped: u32,
    /// When the upstreams came from the adapters: when to read them again.
    rediscover_at: Option<Tick>,
}

/// How often the adapters' DNS servers are read again when the upstreams
/// came from them (a service starts at boot, perhaps before the network).
const REDISCOVER_MS: u32 = 60_000;

impl Relay {
    /// Checks for an IPv6 stack and binds UDP and TCP on every listen
    /// address.
    /// `rediscover`: the upstreams came from the adapters; read them again
    /// every [`REDISCOVER_MS`].
    pub fn bind(
        listen: &[SocketAddr],
        upstreams: Upstreams,
        timeout_ms: u32,
        rediscover: bool,
    ) -> Result<Self, StartError> {
        let probe = SocketAddr::new(core::net::Ipv6Addr::UNSPECIFIED.into(), 0);
        match Socket::new(probe, Transport::Udp) {
            Ok(_) => {}
            Err(error) if net::NO_FAMILY.contains(&error.code) => {
                return Err(StartError::NoIpv6(error.code));
            }
            Err(error) => return Err(StartError::Socket(error)),
        }
        let mut relay = Relay {
            udp_listeners: [const { None }; dns64d_xp::settings::MAX_LISTEN],
            tcp_listeners: [const { None }; dns64d_xp::settings::MAX_LISTEN],
            upstreams,
            timeout_ms,
            dropped: 0,
            rediscover_at: rediscover.then(|| system::now().wrapping_add(REDISCOVER_MS)),
        };
        for (index, &address) in listen.iter().enumerate() {
            let udp = Socket::new(address, Transport::Udp)
                .map_err(|error| StartError::Bind(address, Transport::Udp, error))?;
            udp.bind(address)
                .map_err(|error| StartError::Bind(address, Transport::Udp, error))?;
            udp.ignore_connection_resets();
            udp.set_receive_buffer(LISTENER_BUFFER);
            let tcp = Socket::new(address, Transport::Tcp)
                .map_err(|error| StartError::Bind(address, Transport::Tcp, error))?;
            tcp.bind(address)
                .map_err(|error| StartError::Bind(address, Transport::Tcp, error))?;
            tcp.listen()
                .map_err(|error| StartError::Bind(address, Transport::Tcp, error))?;
            if let (Some(udp_slot), Some(tcp_slot)) = (
                relay.udp_listeners.get_mut(index),
                relay.tcp_listeners.get_mut(index),
            ) {
                *udp_slot = Some((udp, address));
                *tcp_slot = Some(tcp);
            }
        }
        Ok(relay)
    }

    /// Serves until `stop` is set.
    pub fn serve(&mut self, stop: &AtomicBool) {
        // SAFETY: `Global::get` needs no other reference to TABLES alive:
        // `serve` is the only function that takes it, once per call, on the
        // relay's one thread, and it is not re-entered.
        let tables = unsafe { TABLES.get() };
        while !stop.load(Ordering::Relaxed) {
            let now = system::now();
            let timeout = self.fill_sets(tables, now);
            match net::wait(
                &mut tables.read,
                &mut tables.write,
                &mut tables.error,
                timeout,
            ) {
                Ok(_) => {}
                Err(error) => {
                    log!("select: {error}");
                    // SAFETY: Sleep takes an integer and has no preconditions.
                    // Pausing avoids spinning on a persistent error.
                    unsafe { windows_sys::Win32::System::Threading::Sleep(POLL_MS) };
                    tables.read.clear();
                    tables.write.clear();
                    tables.error.clear();
                }
            }
            let now = system::now();
            self.accept_udp(tables, now);
            self.accept_tcp(tables, now);
            for index in 0..UDP_SLOTS {
                self.step_udp(tables, index, now);
            }
            for index in 0..TCP_SLOTS {
                self.step_tcp(tables, index, now);
            }
            if self.rediscover_at.is_some_and(|at| is_due(now, at)) {
                self.rediscover_at = Some(now.wrapping_add(REDISCOVER_MS));
                self.rediscover();
            }
        }
        for slot in tables.udp.iter_mut() {
            slot.free();
        }
        for slot in tables.tcp.iter_mut() {
            slot.free();
        }
    }

    /// Reads the adapters' IPv6 DNS servers again and switches to them if
    /// they changed (the well-known site-local ones when there are none).
    fn rediscover(&mut self) {
        let mut listen = [SocketAddr::V4(core::net::SocketAddrV4::new(
            core::net::Ipv4Addr::LOCALHOST,
            0,
        )); dns64d_xp::settings::MAX_LISTEN];
        let mut listen_count = 0;
        for ((_, address), slot) in self.udp_listeners.iter().flatten().zip(listen.iter_mut()) {
            *slot = *address;
            listen_count += 1;
        }
        let mut found =
            [dns64d_xp::address::WELL_KNOWN_SITE_LOCAL[0]; dns64d_xp::upstreams::MAX_UPSTREAMS];
        let list = match super::discover::adapter_dns_servers(&listen[..listen_count], &mut found) {
            Ok(count) if count > 0 => &found[..count],
            Ok(_) => &dns64d_xp::address::WELL_KNOWN_SITE_LOCAL[..],
            // Keep the current list when the adapters cannot be read.
            Err(_) => return,
        };
        if self.upstreams.replace(list) {
            let mut line = dns64d_xp::text::Buffer::<300>::new();
            for address in self.upstreams.addresses() {
                // Writing to a Buffer never fails.
                let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" {address}"));
            }
            log!(
                "the adapters' DNS servers changed; upstreams now:{}",
                line.as_str()
            );
        }
    }

    /// Puts every socket waiting for something into the sets; returns how
    /// long `select` may wait (the nearest deadline, at most [`POLL_MS`]).
    fn fill_sets(&self, tables: &mut Tables, now: Tick) -> u32 {
        tables.read.clear();
        tables.write.clear();
        tables.error.clear();
        let mut timeout = POLL_MS;
        for (socket, _) in self.udp_listeners.iter().flatten() {
            tables.read.insert(socket);
        }
        for socket in self.tcp_listeners.iter().flatten() {
            tables.read.insert(socket);
        }
        for slot in &tables.udp {
            if let (Some(socket), Some(exchange)) = (&slot.socket, &slot.exchange) {
                tables.read.insert(socket);
                timeout = timeout.min(until(now, exchange.deadline()));
            }
        }
        for slot in &tables.tcp {
            match slot.phase {
                TcpPhase::Free => {}
                TcpPhase::ReadQuery | TcpPhase::SendReply => {
                    if let Some(client) = &slot.client {
                        if slot.phase == TcpPhase::ReadQuery {
                            tables.read.insert(client);
                        } else {
                            tables.write.insert(client);
                        }
                    }
                    timeout = timeout.min(until(now, slot.idle_deadline));
                }
                TcpPhase::SendQuery | TcpPhase::ReadReply => {
                    if let Some(upstream) = &slot.upstream {
                        if slot.phase == TcpPhase::SendQuery {
                            tables.write.insert(upstream);
                            tables.error.insert(upstream);
                        } else {
                            tables.read.insert(upstream);
                        }
                    }
                    if let Some(exchange) = &slot.exchange {
                        timeout = timeout.min(until(now, exchange.deadline()));
                    }
                }
            }
        }
        timeout
    }

    fn note_dropped(&mut self, why: &str) {
        self.dropped = self.dropped.wrapping_add(1);
        // One line for the first and then every 1000th, so a flood cannot fill the log.
        if self.dropped % 1000 == 1 {
            log!("dropped a query ({why}); {} dropped so far", self.dropped);
        }
    }

    /// Reads queries from the UDP listeners and starts their exchanges.
    fn accept_udp(&mut self, tables: &mut Tables, now: Tick) {
        for listener in 0..self.udp_listeners.len() {
            let Some((socket, _)) = &self.udp_listeners[listener] else {
                continue;
            };
            if !tables.read.contains(socket) {
                continue;
            }
            for _ in 0..BURST {
                let Some((socket, _)) = &self.udp_listeners[listener] else {
                    break;
                };
                let (length, client) = match socket.receive_from(&mut tables.scratch) {
                    Ok(received) => received,
                    Err(error) if error.code == net::WOULD_BLOCK => break,
                    // A reset from an earlier reply to a client that went away,
                    // or a datagram larger than any query: skip it.
                    Err(error) if error.code == net::CONNECTION_RESET => continue,
                    Err(error) if error.code == net::MESSAGE_TOO_LONG => {
                        self.note_dropped("oversized");
                        continue;
                    }
                    Err(error) => {
                        log!("UDP listener: {error}");
                        break;
                    }
                };
                let Some(client) = client else { continue };
                let Some(query) = tables.scratch.get(..length) else {
                    continue;
                };
                if let Err(malformed) = header::check_query(query) {
                    self.note_dropped(match malformed {
                        header::Malformed::TooShort => "too short",
                        header::Malformed::TooLong => "oversized",
                        header::Malformed::IsResponse => "a response",
                        header::Malformed::QuestionCount => "not one question",
                        header::Malformed::BadQuestion => "malformed question",
                    });
                    continue;
                }
                let Some(index) = tables.udp.iter().position(UdpSlot::is_free) else {
                    self.note_dropped("all UDP slots busy");
                    continue;
                };
                let slot = &mut tables.udp[index];
                slot.query[..length].copy_from_slice(query);
                slot.query_len = length;
                slot.listener = listener;
                slot.client = client;
                let random = system::random_u32();
                match Exchange::start(
                    &mut slot.query[..length],
                    &self.upstreams,
                    now,
                    self.timeout_ms,
                    random as u16,
                ) {
                    Some(exchange) => {
                        slot.exchange = Some(exchange);
                        self.send_udp(tables, index, now);
                    }
                    None => {
                        self.servfail_udp(tables, index);
                    }
                }
            }
        }
    }

    /// Opens a fresh socket (random source port) to the exchange's current
    /// upstream and sends the query; on failure moves on to the next one.
    fn send_udp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        loop {
            let slot = &mut tables.udp[index];
            let Some(exchange) = slot.exchange else {
                return;
            };
            let Some(upstream) = self.upstreams.address(exchange.upstream()) else {
                return;
            };
            let target = SocketAddr::V6(upstream);
            let result = open_udp(target).and_then(|socket| {
                socket.send(&slot.query[..slot.query_len])?;
                Ok(socket)
            });
            match result {
                Ok(socket) => {
                    slot.socket = Some(socket);
                    return;
                }
                Err(error) => {
                    slot.socket = None;
                    if exchange.on_error(&mut self.upstreams, now) {
                        log!("upstream {upstream} failed ({error}); skipping it for a while");
                    }
                    if !self.retry_udp(tables, index, now) {
                        return;
                    }
                }
            }
        }
    }

    /// Moves the UDP exchange to its next upstream (true) or answers
    /// SERVFAIL and frees the slot (false).
    fn retry_udp(&mut self, tables: &mut Tables, index: usize, now: Tick) -> bool {
        let slot = &mut tables.udp[index];
        let Some(mut exchange) = slot.exchange else {
            return false;
        };
        let random = system::random_u32() as u16;
        if exchange.retry(
            &mut slot.query[..slot.query_len],
            &self.upstreams,
            now,
            self.timeout_ms,
            random,
        ) {
            slot.exchange = Some(exchange);
            true
        } else {
            self.servfail_udp(tables, index);
            false
        }
    }

    fn servfail_udp(&mut self, tables: &mut Tables, index: usize) {
        let slot = &mut tables.udp[index];
        let mut reply = [0u8; MAX_QUERY_LEN];
        if let (Some(length), Some(Some((listener, _)))) = (
            header::write_servfail(&slot.query[..slot.query_len], &mut reply),
            self.udp_listeners.get(slot.listener),
        ) {
            // A failed send is a lost datagram; the client retries.
            let _ = listener.send_to(&reply[..length], slot.client);
        }
        slot.free();
    }

    /// Handles a reply or a timeout of UDP slot `index`.
    fn step_udp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.udp[index];
        let (Some(socket), Some(exchange)) = (&slot.socket, slot.exchange) else {
            return;
        };
        if tables.read.contains(socket) {
            // Bounded: a flood of stray datagrams cannot hold the loop.
            for _ in 0..BURST {
                let slot = &mut tables.udp[index];
                let Some(socket) = &slot.socket else { return };
                let length = socket.receive(&mut tables.scratch);
                let reply = &mut tables.scratch;
                match length {
                    Ok(length) => {
                        let Some(reply) = reply.get_mut(..length) else {
                            return;
                        };
                        match exchange.on_reply(reply, &mut self.upstreams, now) {
                            Verdict::Ignore => continue,
                            Verdict::Deliver => {
                                if let Some(Some((listener, _))) =
                                    self.udp_listeners.get(slot.listener)
                                {
                                    // A failed send is a lost datagram; the client retries.
                                    let _ = listener.send_to(reply, slot.client);
                                }
                                slot.free();
                                return;
                            }
                            Verdict::Failed => {
                                if self.retry_udp(tables, index, now) {
                                    self.send_udp(tables, index, now);
                                }
                                return;
                            }
                        }
                    }
                    Err(error) if error.code == net::WOULD_BLOCK => break,
                    Err(error) => {
                        // Port unreachable (WSAECONNRESET) or another error: next upstream.
                        if exchange.on_error(&mut self.upstreams, now) {
                            if let Some(upstream) = self.upstreams.address(exchange.upstream()) {
                                log!(
                                    "upstream {upstream} failed ({error}); skipping it for a while"
                                );
                            }
                        }
                        if self.retry_udp(tables, index, now) {
                            self.send_udp(tables, index, now);
                        }
                        return;
                    }
                }
            }
        }
        if exchange.is_expired(now) {
            if exchange.on_error(&mut self.upstreams, now) {
                if let Some(upstream) = self.upstreams.address(exchange.upstream()) {
                    log!(
                        "upstream {upstream} did not answer within {} ms; skipping it for a while",
                        self.timeout_ms
                    );
                }
            }
            if self.retry_udp(tables, index, now) {
                self.send_udp(tables, index, now);
            }
        }
    }

    /// Accepts TCP connections.
    fn accept_tcp(&mut self, tables: &mut Tables, now: Tick) {
        for listener in self.tcp_listeners.iter().flatten() {
            if !tables.read.contains(listener) {
                continue;
            }
            for _ in 0..BURST {
                let client = match listener.accept() {
                    Ok(client) => client,
                    Err(error) if error.code == net::WOULD_BLOCK => break,
                    Err(_) => continue,
                };
                let Some(slot) = tables
                    .tcp
                    .iter_mut()
                    .find(|slot| slot.phase == TcpPhase::Free)
                else {
                    // Dropping `client` closes it: the client retries later.
                    self.dropped = self.dropped.wrapping_add(1);
                    continue;
                };
                slot.client = Some(client);
                slot.phase = TcpPhase::ReadQuery;
                slot.query_have = 0;
                slot.idle_deadline = now.wrapping_add(TCP_IDLE_MS);
            }
        }
    }

    /// Advances TCP slot `index`.
    fn step_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.tcp[index];
        match slot.phase {
            TcpPhase::Free => {}
            TcpPhase::ReadQuery => {
                let Some(client) = &slot.client else {
                    return slot.free();
                };
                if tables.read.contains(client) {
                    let want = TcpSlot::expected(&slot.query, slot.query_have).unwrap_or(2);
                    if want > slot.query.len()
                        || (slot.query_have >= 2 && want < 2 + header::MIN_QUERY_LEN)
                    {
                        self.note_dropped("TCP query of a bad length");
                        return slot.free();
                    }
                    match client.receive(&mut slot.query[slot.query_have..want]) {
                        Ok(0) => return slot.free(),
                        Ok(received) => slot.query_have += received,
                        Err(error) if error.code == net::WOULD_BLOCK => {}
                        Err(_) => return slot.free(),
                    }
                    let complete = TcpSlot::expected(&slot.query, slot.query_have)
                        .is_some_and(|want| want == slot.query_have);
                    if complete {
                        self.start_tcp(tables, index, now);
                    }
                    return;
                }
                if is_due(now, slot.idle_deadline) {
                    slot.free();
                }
            }
            TcpPhase::SendQuery => {
                let Some(upstream) = &slot.upstream else {
                    return slot.free();
                };
                if tables.error.contains(upstream) {
                    return self.fail_tcp(tables, index, now, "connect failed");
                }
                if tables.write.contains(upstream) {
                    match upstream.send(&slot.query[slot.query_sent..slot.query_have]) {
                        Ok(sent) => slot.query_sent += sent,
                        Err(error) if error.code == net::WOULD_BLOCK => {}
                        Err(_) => return self.fail_tcp(tables, index, now, "send failed"),
                    }
                    if slot.query_sent >= slot.query_have {
                        slot.phase = TcpPhase::ReadReply;
                        slot.reply_have = 0;
                    }
                    return;
                }
                self.check_tcp_timeout(tables, index, now);
            }
            TcpPhase::ReadReply => {
                let Some(upstream) = &slot.upstream else {
                    return slot.free();
                };
                if tables.read.contains(upstream) {
                    let want = TcpSlot::expected(&slot.reply, slot.reply_have).unwrap_or(2);
                    let Some(buffer) = slot.reply.get_mut(slot.reply_have..want) else {
                        return self.fail_tcp(tables, index, now, "reply too long");
                    };
                    match upstream.receive(buffer) {
                        Ok(0) => return self.fail_tcp(tables, index, now, "closed the connection"),
                        Ok(received) => slot.reply_have += received,
                        Err(error) if error.code == net::WOULD_BLOCK => return,
                        Err(_) => return self.fail_tcp(tables, index, now, "connection error"),
                    }
                    let complete = TcpSlot::expected(&slot.reply, slot.reply_have)
                        .is_some_and(|want| want == slot.reply_have);
                    if complete {
                        let Some(exchange) = slot.exchange else {
                            return slot.free();
                        };
                        let reply_len = slot.reply_have;
                        match exchange.on_reply(
                            &mut slot.reply[2..reply_len],
                            &mut self.upstreams,
                            now,
                        ) {
                            Verdict::Deliver => {
                                slot.upstream = None;
                                slot.phase = TcpPhase::SendReply;
                                slot.reply_sent = 0;
                                slot.idle_deadline = now.wrapping_add(TCP_IDLE_MS);
                            }
                            Verdict::Ignore => {
                                return self.fail_tcp(
                                    tables,
                                    index,
                                    now,
                                    "sent a reply with another ID",
                                );
                            }
                            Verdict::Failed => {
                                slot.upstream = None;
                                self.retry_tcp(tables, index, now);
                            }
                        }
                    }
                    return;
                }
                self.check_tcp_timeout(tables, index, now);
            }
            TcpPhase::SendReply => {
                let Some(client) = &slot.client else {
                    return slot.free();
                };
                if tables.write.contains(client) {
                    match client.send(&slot.reply[slot.reply_sent..slot.reply_have]) {
                        Ok(sent) => slot.reply_sent += sent,
                        Err(error) if error.code == net::WOULD_BLOCK => {}
                        Err(_) => return slot.free(),
                    }
                    if slot.reply_sent >= slot.reply_have {
                        // Ready for the next query on the same connection.
                        slot.phase = TcpPhase::ReadQuery;
                        slot.query_have = 0;
                        slot.exchange = None;
                        slot.idle_deadline = now.wrapping_add(TCP_IDLE_MS);
                    }
                    return;
                }
                if is_due(now, slot.idle_deadline) {
                    slot.free();
                }
            }
        }
    }

    /// A complete TCP query arrived: check it and start its exchange.
    fn start_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.tcp[index];
        let length = slot.query_have;
        if header::check_query(&slot.query[2..length]).is_err() {
            self.note_dropped("malformed TCP query");
            return slot.free();
        }
        let random = system::random_u32() as u16;
        match Exchange::start(
            &mut slot.query[2..length],
            &self.upstreams,
            now,
            self.timeout_ms,
            random,
        ) {
            Some(exchange) => {
                slot.exchange = Some(exchange);
                self.connect_tcp(tables, index, now);
            }
            None => self.servfail_tcp(tables, index, now),
        }
    }

    /// Starts a connection to the exchange's current upstream.
    fn connect_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.tcp[index];
        let Some(exchange) = slot.exchange else {
            return slot.free();
        };
        let Some(upstream) = self.upstreams.address(exchange.upstream()) else {
            return slot.free();
        };
        let target = SocketAddr::V6(upstream);
        let result =
            Socket::new(target, Transport::Tcp).and_then(|socket| match socket.connect(target) {
                Ok(()) => Ok(socket),
                Err(error) if error.code == net::WOULD_BLOCK => Ok(socket),
                Err(error) => Err(error),
            });
        match result {
            Ok(socket) => {
                slot.upstream = Some(socket);
                slot.query_sent = 0;
                slot.phase = TcpPhase::SendQuery;
            }
            Err(_) => self.fail_tcp(tables, index, now, "connect failed"),
        }
    }

    fn check_tcp_timeout(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let expired = tables.tcp[index]
            .exchange
            .is_some_and(|exchange| exchange.is_expired(now));
        if expired {
            self.fail_tcp(tables, index, now, "did not answer in time");
        }
    }

    /// The current upstream failed for this TCP query: note it and move on.
    fn fail_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick, why: &str) {
        let slot = &mut tables.tcp[index];
        slot.upstream = None;
        let Some(exchange) = slot.exchange else {
            return slot.free();
        };
        if exchange.on_error(&mut self.upstreams, now) {
            if let Some(upstream) = self.upstreams.address(exchange.upstream()) {
                log!("upstream {upstream} over TCP: {why}; skipping it for a while");
            }
        }
        self.retry_tcp(tables, index, now);
    }

    fn retry_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.tcp[index];
        let Some(mut exchange) = slot.exchange else {
            return slot.free();
        };
        let length = slot.query_have;
        let random = system::random_u32() as u16;
        if exchange.retry(
            &mut slot.query[2..length],
            &self.upstreams,
            now,
            self.timeout_ms,
            random,
        ) {
            slot.exchange = Some(exchange);
            self.connect_tcp(tables, index, now);
        } else {
            self.servfail_tcp(tables, index, now);
        }
    }

    fn servfail_tcp(&mut self, tables: &mut Tables, index: usize, now: Tick) {
        let slot = &mut tables.tcp[index];
        slot.upstream = None;
        let length = slot.query_have;
        let (query, reply) = (&slot.query[2..length], &mut slot.reply[2..]);
        let Some(reply_len) = header::write_servfail(query, reply) else {
            return slot.free();
        };
        slot.reply[..2].copy_from_slice(&(reply_len as u16).to_be_bytes());
        slot.reply_have = 2 + reply_len;
        slot.reply_sent = 0;
        slot.phase = TcpPhase::SendReply;
        slot.idle_deadline = now.wrapping_add(TCP_IDLE_MS);
    }
}

/// A UDP socket bound to a random source port and connected to `target`
/// (only its replies are received).
fn open_udp(target: SocketAddr) -> Result<Socket, SocketError> {
    let socket = Socket::new(target, Transport::Udp)?;
    let mut bound = false;
    for _ in 0..8 {
        let port = FIRST_PORT + system::random_u32() % (65_536 - FIRST_PORT);
        if socket.bind_any(target, port as u16).is_ok() {
            bound = true;
            break;
        }
    }
    if !bound {
        // Eight taken ports in a row: let Windows choose.
        socket.bind_any(target, 0)?;
    }
    socket.connect(target)?;
    Ok(socket)
}
