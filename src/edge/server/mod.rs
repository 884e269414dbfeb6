//! The listeners: UDP sockets and one TCP listener per `listen` address,
//! each handing request bytes to the shared [`RequestHandler`].
//!
//! UDP: cache hits are answered from stored responses ([`fastpath`]); the
//! rest take the slow path through the handler. On Linux there is one
//! SO_REUSEPORT socket per core, each served by a thread of its own that
//! batches its I/O and runs its misses in a single-threaded runtime (see
//! `serve_udp_thread`); elsewhere one tokio task per socket. TCP runs in
//! the main runtime.
//!
//! On a wildcard address each UDP answer comes from the address its query
//! was sent to (issue 15): with pktinfo on Linux ([`crate::edge::pktinfo`]), with
//! one socket per local address elsewhere (`bind_each_local_address`).
//!
//! IPv6 sockets are bound IPv6-only, so `[::]:53` and `0.0.0.0:53` can both
//! be listed. A port of 0 binds UDP first and then TCP on the same port, so
//! tests get one address that serves both.

pub mod https;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[cfg(not(target_os = "linux"))]
use tokio::net::UdpSocket;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::answering::ddr::Designation;
use crate::answering::recursive::{RecursiveError, RecursiveForwarder};
use crate::answering::resolver::Resolver;
use crate::answering::upstream::{Forwarder, Upstream};
use crate::answering::zones::{LocalZones, ZoneError};
use crate::edge::certificate::CertificateError;
use crate::edge::cookies::{self, CookieKeys, CookieSecret, CookieSettings, CookieState};
use crate::edge::fastpath::{self, ResponseCache};
use crate::edge::handler::{ListenerPolicy, PolicySlot, RequestHandler};
use crate::edge::pktinfo::ReplySource;
use crate::edge::ratelimit::{RateLimiter, Verdict};
use crate::edge::transport::Transport;
#[cfg(target_os = "linux")]
use crate::edge::udp_batch;
use crate::ops::config::Config;
use crate::ops::config::ListenerConfig;
use crate::ops::discovery::{self, DiscoveredPrefixes};
use crate::ops::metrics::Metrics;

/// Largest UDP datagram read (the IPv4/IPv6 UDP maximum).
const MAX_DATAGRAM: usize = 65535;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A local zone file could not be loaded.
    #[error(transparent)]
    Zone(Box<ZoneError>),
    /// Recursive mode could not start.
    #[error(transparent)]
    Recursive(#[from] RecursiveError),
    /// A DoT or DoH listener's certificate or TLS setup failed.
    #[error("TLS listener {address}: {source}")]
    Tls {
        /// The listener's address.
        address: SocketAddr,
        /// Why.
        source: CertificateError,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {protocol} {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// "UDP" or "TCP".
        protocol: &'static str,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl From<ZoneError> for ServerError {
    fn from(error: ZoneError) -> Self {
        Self::Zone(Box::new(error))
    }
}

/// A running server: its bound addresses and its tasks (stopped on drop).
pub struct RunningServer {
    addresses: Vec<SocketAddr>,
    handler: Arc<RequestHandler>,
    upstream: Arc<Upstream>,
    listeners: Vec<(ListenerConfig, Arc<PolicySlot>)>,
    discovered: Option<Arc<DiscoveredPrefixes>>,
    config: Config,
    responses: Arc<ResponseCache>,
    metrics_address: Option<SocketAddr>,
    listener_tasks: JoinSet<()>,
    background: JoinSet<()>,
    in_flight: Arc<InFlight>,
    certificates: Vec<tls::ListenerCertificate>,
    health: Arc<crate::ops::health::HealthCheck>,
    /// The cookie secret used while `cookies.secret` is unset.
    fallback_cookie_secret: CookieSecret,
}

/// Counts queries being answered, so a shutdown can wait for them (and a
/// listener thread for its own slow queries).
#[derive(Debug, Default)]
pub struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held while one query is answered.
struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    /// Queries being answered now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl RunningServer {
    /// The bound addresses, one per listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The request handler (for statistics).
    pub fn handler(&self) -> &Arc<RequestHandler> {
        &self.handler
    }

    /// The bound address of the metrics endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Queries being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Waits until every listener task has ended (normally never).
    pub async fn wait(&mut self) {
        while self.listener_tasks.join_next().await.is_some() {}
    }

    /// Applies a new configuration without dropping queries: upstreams,
    /// prefixes and policies, per-listener policy, access lists and zones.
    /// Listener addresses and protocols, `[cache]` and `[server]` need a
    /// restart; changes there are reported in the returned notes and ignored.
    /// A zone that fails to load rejects the whole reload (nothing changes).
    pub async fn reload(&mut self, config: Config) -> Result<Vec<String>, ZoneError> {
        self.handler
            .resolver()
            .zones()
            .replace(&config.zones)
            .await?;
        let mut notes = tls::reload_certificates(&self.certificates, &config);
        // DDR names the listeners running now (changes to them need a restart).
        let running: Vec<ListenerConfig> = self
            .listeners
            .iter()
            .map(|(listener, _)| listener.clone())
            .collect();
        self.handler.resolver().set_designation(Designation::new(
            config.ddr_name.as_ref(),
            &running,
            &self.addresses,
        ));
        self.upstream.reconfigure(&config.upstream);
        self.handler.resolver().set_dns64(config.dns64.clone());
        self.handler.set_log_queries(config.log.queries);
        self.handler.set_identity(config.identity.clone());
        if config.control_socket != self.config.control_socket {
            notes.push("control.socket changed: restart dns64d to apply it".into());
        }
        if config.metrics_listen != self.config.metrics_listen {
            notes.push("metrics.listen changed: restart dns64d to apply it".into());
        }
        let same_listeners = config.listeners.len() == self.listeners.len()
            && config
                .listeners
                .iter()
                .zip(&self.listeners)
                .all(|(new, (old, _))| {
                    new.address == old.address
                        && new.udp == old.udp
                        && new.tcp == old.tcp
                        && new.encrypted.as_ref().map(|encrypted| encrypted.protocol)
                            == old.encrypted.as_ref().map(|encrypted| encrypted.protocol)
                        && new.connections == old.connections
                });
        if !same_listeners {
            notes.push(
                "listener addresses, protocols or connection limits changed: restart dns64d to apply them".into(),
            );
        }
        let wants_discovery = config.dns64.discover
            || config
                .listeners
                .iter()
                .any(|listener| listener.discover == Some(true));
        if wants_discovery && self.discovered.is_none() {
            notes.push(
                "\"discover\" was added to the prefixes: restart dns64d to start discovery".into(),
            );
        }
        let cookies = cookie_settings(&config, &self.fallback_cookie_secret);
        for (index, (old, slot)) in self.listeners.iter().enumerate() {
            // Policies follow the listener with the same address (or position).
            let new = config
                .listeners
                .iter()
                .find(|new| new.address == old.address)
                .or_else(|| config.listeners.get(index));
            if let Some(new) = new {
                slot.set(listener_policy(
                    new,
                    &config,
                    self.discovered.as_ref(),
                    cookies.as_ref(),
                ));
            }
        }
        // Stored responses reflect the old policy and zones. Last, so a
        // response stamped with the new generation was computed under the new
        // configuration (see `ResponseCache::generation`).
        self.responses.invalidate();
        if config.upstream.recursive.is_some() != self.config.upstream.recursive.is_some() {
            notes.push("upstream.mode changed: restart dns64d to apply it".into());
        } else if config.upstream.recursive != self.config.upstream.recursive {
            notes.push(
                "recursive-mode settings changed (root hints, DNSSEC validation, trust anchor, limits): restart dns64d to apply them"
                    .into(),
            );
        }
        if config.cache != self.config.cache {
            notes.push("[cache] changed: restart dns64d to apply it".into());
        }
        if config.server != self.config.server {
            notes.push("[server] changed: restart dns64d to apply it".into());
        }
        self.config = config;
        Ok(notes)
    }

    /// Stops accepting queries, lets those being answered finish (at most
    /// `grace`), then stops everything. Returns the queries cut off.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.handler.resolver().metrics().set_ready(false);
        self.listener_tasks.abort_all();
        while self.listener_tasks.join_next().await.is_some() {}
        let _ = tokio::time::timeout(grace, self.in_flight.wait_idle()).await; // timing out is reported below
        self.background.abort_all();
        self.in_flight.count()
    }
}

/// What the operations side (`dns64d ctl`, health) reads and does.
impl RunningServer {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The forwarding upstreams.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The health check `/healthz` answers from.
    pub fn health(&self) -> &Arc<crate::ops::health::HealthCheck> {
        &self.health
    }

    /// Removes cache entries (and every stored response, which may hold
    /// them); returns how many cache entries were removed.
    pub fn flush_cache(&self, scope: &crate::answering::cache::FlushScope) -> usize {
        let removed = self.handler.resolver().cache().flush(scope);
        self.responses.invalidate();
        removed
    }
}

/// The policy of one listener under a configuration.
fn listener_policy(
    listener: &ListenerConfig,
    config: &Config,
    discovered: Option<&Arc<DiscoveredPrefixes>>,
    cookies: Option<&Arc<CookieSettings>>,
) -> ListenerPolicy {
    let prefixes = listener
        .prefixes
        .clone()
        .unwrap_or_else(|| config.dns64.prefixes.clone());
    ListenerPolicy {
        access_clients: listener
            .clients
            .clone()
            .unwrap_or_else(|| config.access_clients.clone()),
        dns64: listener.dns64,
        client_independent: config.dns64.clients.is_none()
            && prefixes.iter().all(|prefix| prefix.clients.is_none()),
        prefixes,
        discovered: listener
            .discover
            .unwrap_or(config.dns64.discover)
            .then(|| discovered.cloned())
            .flatten(),
        cookies: cookies.cloned(),
    }
}

/// The cookie settings of a configuration; `fallback_secret` stands in for
/// an unset `cookies.secret` (made at start, kept across reloads).
fn cookie_settings(config: &Config, fallback_secret: &CookieSecret) -> Option<Arc<CookieSettings>> {
    let cookies = &config.cookies;
    cookies.enabled.then(|| {
        Arc::new(CookieSettings {
            keys: CookieKeys {
                current: cookies.secret.unwrap_or(*fallback_secret),
                previous: cookies.previous_secret,
            },
            require_for_large_udp: cookies.require_for_large_udp,
        })
    })
}

/// Binds every listen address and starts serving.
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(
        &config.upstream,
        config.server.edns_udp_size,
        Arc::clone(&metrics),
    ));
    let zones = Arc::new(LocalZones::load(&config.zones).await?);
    let forwarder: Arc<dyn Forwarder> = match &config.upstream.recursive {
        Some(settings) => {
            tracing::info!(
                root_hints = %settings.root_hints.as_ref().map_or("built in".into(), |path| path.display().to_string()),
                "recursive mode: resolving from the root servers"
            );
            Arc::new(RecursiveForwarder::new(settings)?)
        }
        None => Arc::clone(&upstream) as Arc<dyn Forwarder>,
    };
    let resolver =
        Resolver::with_parts(config, Arc::clone(&forwarder), zones, Arc::clone(&metrics));
    let handler = Arc::new(RequestHandler::new(resolver, config.server.edns_udp_size));
    handler.set_log_queries(config.log.queries);
    handler.set_identity(config.identity.clone());
    let in_flight = Arc::new(InFlight::default());
    let responses = Arc::new(
        ResponseCache::new(config.cache.max_entries).with_prefetch_margin(
            if config.cache.prefetch {
                config.cache.prefetch_threshold_percent
            } else {
                0
            },
        ),
    );
    let limiter = RateLimiter::new(&config.rate_limit).map(Arc::new);
    let mut listener_tasks = JoinSet::new();
    let mut background = JoinSet::new();
    let mut addresses = Vec::new();
    let mut listeners = Vec::new();
    let mut metrics_address = None;
    let mut certificates = Vec::new();
    let wants_discovery = config.dns64.discover
        || config
            .listeners
            .iter()
            .any(|listener| listener.discover == Some(true));
    let discovered = wants_discovery.then(|| {
        let discovered = Arc::new(DiscoveredPrefixes::new(
            config.dns64.discovered_exclude_ipv4.clone(),
        ));
        background.spawn(discovery::run_rfc7050(
            Arc::clone(&discovered),
            Arc::clone(&forwarder),
        ));
        background.spawn(discovery::run_pref64(Arc::clone(&discovered)));
        discovered
    });
    let fallback_cookie_secret = cookies::random_secret();
    let cookie_settings = cookie_settings(config, &fallback_cookie_secret);
    for listener in &config.listeners {
        let slot = Arc::new(PolicySlot::new(listener_policy(
            listener,
            config,
            discovered.as_ref(),
            cookie_settings.as_ref(),
        )));
        let address = listener.address;
        let (udp, tcp) = bind_listener(
            address,
            listener.udp,
            listener.tcp || listener.encrypted.is_some(),
        )?;
        let bound = match (udp.first(), &tcp) {
            (Some(udp), _) => udp.local_addr().and_then(|bound| {
                bound
                    .as_socket()
                    .ok_or_else(|| io::Error::other("not an IP socket"))
            }),
            (None, Some(tcp)) => tcp.local_addr(),
            (None, None) => Ok(address),
        }
        .map_err(|source| ServerError::Bind {
            address,
            protocol: "UDP",
            source,
        })?;
        let encrypted = listener
            .encrypted
            .as_ref()
            .map(|encrypted| encrypted.protocol);
        tracing::info!(address = %bound, udp = listener.udp, tcp = listener.tcp, ?encrypted, dns64 = listener.dns64, "listening");
        #[cfg(not(target_os = "linux"))]
        let udp = bind_each_local_address(udp, bound)?;
        addresses.push(bound);
        let context = ServeContext {
            handler: Arc::clone(&handler),
            policy: Arc::clone(&slot),
            in_flight: Arc::clone(&in_flight),
            responses: Arc::clone(&responses),
            listener_id: u32::try_from(listeners.len()).unwrap_or(u32::MAX),
            limiter: limiter.clone(),
            max_inflight_queries: config.server.max_inflight_queries,
            tcp_connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            max_tcp_connections: listener
                .connections
                .max_connections
                .unwrap_or(config.server.max_tcp_connections),
        };
        let idle_timeout = listener
            .connections
            .idle_timeout
            .unwrap_or(config.server.tcp_idle_timeout);
        for socket in udp {
            let serving =
                serve_udp(socket, context.clone()).map_err(|source| ServerError::Bind {
                    address: bound,
                    protocol: "UDP",
                    source,
                })?;
            listener_tasks.spawn(serving);
        }
        match (tcp, &listener.encrypted) {
            (Some(tcp), Some(encrypted)) => {
                let (serving, certificate) =
                    tls::start(tcp, address, context, encrypted, idle_timeout)
                        .map_err(|source| ServerError::Tls { address, source })?;
                listener_tasks.spawn(serving);
                certificates.push(certificate);
            }
            (Some(tcp), None) => {
                listener_tasks.spawn(serve_tcp(tcp, context, idle_timeout));
            }
            (None, _) => {}
        }
        listeners.push((listener.clone(), slot));
    }
    let health = Arc::new(crate::ops::health::HealthCheck {
        upstream: Arc::clone(&upstream),
        resolver: Arc::clone(handler.resolver()),
        recursive: config.upstream.recursive.is_some(),
    });
    handler.resolver().set_designation(Designation::new(
        config.ddr_name.as_ref(),
        &config.listeners,
        &addresses,
    ));
    if let Some(address) = config.metrics_listen {
        let listener = bind_tcp(address).map_err(|source| ServerError::Bind {
            address,
            protocol: "TCP (metrics)",
            source,
        })?;
        let bound = listener.local_addr().unwrap_or(address);
        tracing::info!(address = %bound, "metrics on http://{bound}/metrics, health on /healthz, readiness on /readyz");
        metrics_address = Some(bound);
        background.spawn(crate::ops::http::serve_http(listener, Arc::clone(&health)));
    }
    background.spawn(Arc::clone(&health).probe_down_servers());
    metrics.set_ready(true);
    if let Some(system) = &config.upstream.selection.system {
        if !system.refresh.is_zero() {
            background.spawn(watch_system_resolvers(
                Arc::clone(&upstream),
                system.refresh,
            ));
        }
    }
    Ok(RunningServer {
        addresses,
        handler,
        upstream,
        listeners,
        discovered,
        config: config.clone(),
        responses,
        metrics_address,
        listener_tasks,
        background,
        in_flight,
        certificates,
        health,
        fallback_cookie_secret,
    })
}

/// What a listener task needs to answer a query.
#[derive(Clone)]
pub(crate) struct ServeContext {
    handler: Arc<RequestHandler>,
    policy: Arc<PolicySlot>,
    in_flight: Arc<InFlight>,
    responses: Arc<ResponseCache>,
    listener_id: u32,
    limiter: Option<Arc<RateLimiter>>,
    max_inflight_queries: usize,
    tcp_connections: Arc<std::sync::atomic::AtomicUsize>,
    max_tcp_connections: usize,
}

impl ServeContext {
    /// Applies response rate limiting to a UDP response in `reply`; false:
    /// send nothing. A client with a valid server cookie is not limited: its
    /// address is not forged (RFC 7873 §5.2.5).
    fn rate_limit(&self, client: SocketAddr, valid_cookie: bool, reply: &mut Vec<u8>) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        if valid_cookie {
            return true;
        }
        match limiter.check(client.ip()) {
            Verdict::Send => true,
            Verdict::Slip => {
                self.handler.resolver().metrics().ratelimited();
                fastpath::truncate_to_question(reply)
            }
            Verdict::Drop => {
                self.handler.resolver().metrics().ratelimited();
                false
            }
        }
    }
}

/// Binds the wanted transports on one address.
fn bind_listener(
    address: SocketAddr,
    udp: bool,
    tcp: bool,
) -> Result<(Vec<Socket>, Option<TcpListener>), ServerError> {
    let (sockets, tcp) = match (udp, tcp) {
        (true, true) => bind_pair(address).map(|(udp, tcp)| (vec![udp], Some(tcp)))?,
        (true, false) => bind_udp(address)
            .map(|udp| (vec![udp], None))
            .map_err(|source| ServerError::Bind {
                address,
                protocol: "UDP",
                source,
            })?,
        (false, _) => bind_tcp(address)
            .map(|tcp| (Vec::new(), Some(tcp)))
            .map_err(|source| ServerError::Bind {
                address,
                protocol: "TCP",
                source,
            })?,
    };
    Ok((add_reuseport_sockets(sockets), tcp))
}

/// With SO_REUSEPORT, one UDP socket per worker thread on the same address,
/// so the kernel spreads queries over them and each has its own receive loop.
#[cfg(unix)]
fn add_reuseport_sockets(mut sockets: Vec<Socket>) -> Vec<Socket> {
    let Some(first) = sockets.first() else {
        return sockets;
    };
    let Some(bound) = first.local_addr().ok().and_then(|bound| bound.as_socket()) else {
        return sockets;
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    for _ in 1..workers {
        match bind_udp(bound) {
            Ok(socket) => sockets.push(socket),
            Err(error) => {
                tracing::debug!(%error, address = %bound, "no extra SO_REUSEPORT socket");
                break;
            }
        }
    }
    sockets
}

#[cfg(not(unix))]
fn add_reuseport_sockets(sockets: Vec<Socket>) -> Vec<Socket> {
    sockets
}

/// Binds UDP and TCP on one address; with port 0, TCP takes the port UDP got.
fn bind_pair(address: SocketAddr) -> Result<(Socket, TcpListener), ServerError> {
    const TRIES_FOR_EPHEMERAL_PORT: usize = 20;
    let tries = if address.port() == 0 {
        TRIES_FOR_EPHEMERAL_PORT
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..tries {
        let udp = bind_udp(address).map_err(|source| ServerError::Bind {
            address,
            protocol: "UDP",
            source,
        })?;
        let port = udp
            .local_addr()
            .ok()
            .and_then(|bound| bound.as_socket())
            .map_or(address.port(), |bound| bound.port());
        let tcp_address = SocketAddr::new(address.ip(), port);
        match bind_tcp(tcp_address) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => last_error = Some(source),
        }
    }
    Err(ServerError::Bind {
        address,
        protocol: "TCP",
        source: last_error.unwrap_or_else(|| io::Error::other("no attempt made")),
    })
}

fn new_socket(address: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Receive buffer asked for each UDP listener socket: room for bursts of a
/// few thousand queries (the kernel caps it at net.core.rmem_max).
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// Without pktinfo (every system but Linux), a wildcard UDP listener would
/// answer from whatever address the route back prefers, not the one asked
/// (issue 15). It becomes one socket per local address of its family
/// instead ([`crate::edge::local_addresses`]), on the port the wildcard got; the
/// wildcard sockets are closed first to free that port. Other listeners are
/// returned as they are.
#[cfg(any(test, not(target_os = "linux")))]
fn bind_each_local_address(
    sockets: Vec<Socket>,
    bound: SocketAddr,
) -> Result<Vec<Socket>, ServerError> {
    if sockets.is_empty() || !bound.ip().is_unspecified() {
        return Ok(sockets);
    }
    let error = |source| ServerError::Bind {
        address: bound,
        protocol: "UDP",
        source,
    };
    let addresses = crate::edge::local_addresses::local_addresses(bound).map_err(error)?;
    drop(sockets);
    let mut each = Vec::new();
    for address in addresses {
        match bind_udp(address) {
            Ok(socket) => each.push(socket),
            // Say, an IPv6 address still being checked for duplicates.
            Err(source) => tracing::warn!(%address, %source, "cannot listen on UDP {address}"),
        }
    }
    if each.is_empty() {
        return Err(error(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no local address of this family could be bound",
        )));
    }
    let list: Vec<String> = each
        .iter()
        .filter_map(|socket| socket.local_addr().ok()?.as_socket())
        .map(|address| address.to_string())
        .collect();
    tracing::info!(
        listen = %bound,
        addresses = %list.join(", "),
        "this system does not tell dns64d where a UDP query was sent, so it serves UDP on each local address instead of {bound}, and each answer comes from the address asked; restart dns64d to serve addresses added later",
    );
    Ok(each)
}

/// A bound UDP listener socket (non-blocking; the Linux listener thread
/// makes it blocking).
fn bind_udp(address: SocketAddr) -> io::Result<Socket> {
    let socket = new_socket(address, Type::DGRAM, Protocol::UDP)?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(%error, "cannot enlarge the UDP receive buffer");
    }
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    #[cfg(target_os = "linux")]
    if address.is_ipv4() {
        udp_batch::set_dont_fragment(&socket)?;
    }
    // A wildcard socket answers each query from the address it was sent
    // to (issue 15); one bound to an address has no choice to make.
    #[cfg(target_os = "linux")]
    if address.ip().is_unspecified() {
        crate::edge::pktinfo::enable(&socket, address.is_ipv6())?;
    }
    Ok(socket)
}

fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// What the fast path did with one datagram.
enum FastOutcome {
    /// `reply` holds the answer to send.
    Answer,
    /// Answered, but rate limiting says to send nothing.
    Silenced,
    /// Not answerable from stored responses: hand it to the slow path.
    Slow,
}

impl ServeContext {
    /// Tries to answer `packet` under `policy` from the response cache into `reply`.
    fn answer_fast(
        &self,
        policy: &ListenerPolicy,
        packet: &[u8],
        client: SocketAddr,
        reply: &mut Vec<u8>,
    ) -> FastOutcome {
        let Some(query) = fastpath::parse_query(packet) else {
            return FastOutcome::Slow;
        };
        if !policy.client_independent
            || self.handler.logs_queries()
            || !policy.is_allowed(client.ip())
        {
            return FastOutcome::Slow;
        }
        let mut limit = query.udp_limit(self.handler.edns_udp_size());
        let mut cookie = None;
        if let Some(settings) = &policy.cookies {
            let now = cookies::unix_now();
            let state = match query.cookie {
                Some(option) => settings.keys.check(option, client.ip(), now),
                None => CookieState::Absent,
            };
            let client_cookie = match state {
                CookieState::Absent => None,
                CookieState::ClientOnly(client_cookie) | CookieState::Valid(client_cookie) => {
                    Some(client_cookie)
                }
                // FORMERR and BADCOOKIE come from the slow path.
                CookieState::Malformed | CookieState::Invalid(_) => return FastOutcome::Slow,
            };
            let valid = matches!(state, CookieState::Valid(_));
            if settings.require_for_large_udp && !valid {
                limit = limit.min(usize::from(cookies::LARGE_UDP_RESPONSE));
            }
            if let Some(client_cookie) = client_cookie {
                limit = limit.saturating_sub(4 + cookies::COOKIE_LEN);
                cookie = Some((
                    state,
                    settings
                        .keys
                        .response_cookie(&client_cookie, client.ip(), now),
                ));
            }
        }
        let Some(hit) =
            self.responses
                .answer(&query, self.listener_id, policy.generation(), limit, reply)
        else {
            return FastOutcome::Slow;
        };
        let metrics = self.handler.resolver().metrics();
        let mut valid_cookie = false;
        if let Some((state, response_cookie)) = &cookie {
            if !hit.append_cookie(reply, response_cookie) {
                return FastOutcome::Slow;
            }
            metrics.cookie(state.label());
            valid_cookie = matches!(state, CookieState::Valid(_));
        }
        record_hit(metrics, &hit);
        if self.rate_limit(client, valid_cookie, reply) {
            FastOutcome::Answer
        } else {
            FastOutcome::Silenced
        }
    }

    /// Answers `packet` under `policy` through the full request path in its
    /// own task, then stores the response for the fast path when that is safe.
    #[cfg(not(target_os = "linux"))]
    fn answer_slow(
        &self,
        socket: &ListenerSocket,
        policy: Arc<ListenerPolicy>,
        cache_generation: u64,
        packet: &[u8],
        client: SocketAddr,
    ) {
        // Each socket is bound to one address here (`bind_each_local_address`).
        let source = None;
        if let Some(task) = self.slow_task(socket, policy, cache_generation, packet, client, source)
        {
            tokio::spawn(task);
        }
    }

    /// The task that answers `packet` under `policy` through the full
    /// request path, then stores the response for the fast path when that is
    /// safe; `None` when too many queries are being answered already.
    /// `cache_generation` is the response cache's generation taken before
    /// `policy` was read.
    fn slow_task(
        &self,
        socket: &ListenerSocket,
        policy: Arc<ListenerPolicy>,
        cache_generation: u64,
        packet: &[u8],
        client: SocketAddr,
        source: Option<ReplySource>,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if self.in_flight.count() >= self.max_inflight_queries {
            // Shed load rather than queue without bound; the client will retry.
            self.handler.resolver().metrics().shed();
            return None;
        }
        let request = packet.to_vec();
        // The generation the answer is computed under (configuration and
        // discovered prefixes); a change meanwhile must not be papered over.
        let generation = cache_generation.wrapping_add(policy.generation());
        let socket = Arc::clone(socket);
        let context = self.clone();
        let guard = context.in_flight.enter();
        Some(async move {
            let _guard = guard;
            let Some(response) = context
                .handler
                .handle_reply(&request, client, Transport::Udp, &policy)
                .await
            else {
                return;
            };
            // The stored response has no cookie; the one sent has this client's.
            let mut sent = response.clone().into_bytes();
            if context.rate_limit(client, response.valid_cookie, &mut sent) {
                send_reply(&socket, &sent, client, source).await;
            }
            if policy.client_independent {
                context.responses.store(
                    &request,
                    &response.bytes,
                    context.listener_id,
                    generation,
                    response.note,
                );
            }
        })
    }
}

/// The socket the slow path answers a UDP query on: the listener's own.
#[cfg(target_os = "linux")]
type ListenerSocket = Arc<Socket>;
/// The socket the slow path answers a UDP query on: the listener's own.
#[cfg(not(target_os = "linux"))]
type ListenerSocket = Arc<UdpSocket>;

/// Starts serving one UDP socket on a thread of its own (see
/// [`serve_udp_thread`]); the returned task ends when the thread does, and
/// dropping or aborting it stops the thread.
#[cfg(target_os = "linux")]
fn serve_udp(
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
struct StopUdpThread {
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
fn serve_udp_thread(
    runtime: &tokio::runtime::Runtime,
    socket: &Arc<Socket>,
    context: &ServeContext,
    stop: &std::sync::atomic::AtomicBool,
) {
    let _runtime = runtime.enter();
    let slow_queries = Arc::new(InFlight::default());
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
        let policy = context.policy.current();
        for (packet, client, source) in received.datagrams() {
            match context.answer_fast(&policy, packet, client, &mut reply) {
                FastOutcome::Answer => answers.push(&reply, client, source),
                FastOutcome::Silenced => {}
                FastOutcome::Slow => {
                    let policy = Arc::clone(&policy);
                    let task =
                        context.slow_task(socket, policy, cache_generation, packet, client, source);
                    if let Some(task) = task {
                        let running = slow_queries.enter();
                        runtime.spawn(async move {
                            task.await;
                            drop(running);
                        });
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
fn registration<'a>(
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
fn is_wildcard(socket: &Socket) -> bool {
    socket
        .local_addr()
        .ok()
        .and_then(|bound| bound.as_socket())
        .is_some_and(|bound| bound.ip().is_unspecified())
}

/// Sends one datagram to `destination`, from `source` when given (a
/// wildcard socket's reply, see [`crate::edge::pktinfo`]).
#[cfg(target_os = "linux")]
fn send_from(
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
async fn send_reply(
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
fn send_refused(
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

/// Starts serving one UDP socket: receives datagrams one at a time,
/// answering hits at once and each other query in its own task.
#[cfg(not(target_os = "linux"))]
fn serve_udp(
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
            let policy = context.policy.current();
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
async fn send_reply(
    socket: &Arc<UdpSocket>,
    bytes: &[u8],
    client: SocketAddr,
    _source: Option<ReplySource>,
) {
    if let Err(error) = socket.send_to(bytes, client).await {
        tracing::debug!(%client, %error, "UDP send failed");
    }
}

/// Counts a fast-path answer like the slow path would have.
fn record_hit(metrics: &Metrics, hit: &fastpath::Hit) {
    metrics.query(
        hickory_proto::rr::RecordType::from(hit.qtype),
        Transport::Udp,
        hickory_proto::op::ResponseCode::from_low(hit.rcode),
    );
    metrics.cache_hit();
    if hit.note.synthesized {
        metrics.synthesized();
    }
    if let Some(kind) = hit.note.aaaa {
        metrics.aaaa(kind);
    }
}

/// Accepts TCP connections and serves each in its own task.
async fn serve_tcp(listener: TcpListener, context: ServeContext, idle_timeout: Duration) {
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
                let open = context.tcp_connections.fetch_add(1, Ordering::AcqRel);
                if open >= context.max_tcp_connections {
                    context.tcp_connections.fetch_sub(1, Ordering::AcqRel);
                    context.handler.resolver().metrics().shed();
                    tracing::debug!(%client, open, "TCP connection refused: server.max_tcp_connections reached");
                    drop(stream);
                    continue;
                }
                let connections = Arc::clone(&context.tcp_connections);
                let serving = serve(stream, client, context.clone());
                tokio::spawn(async move {
                    if let Err(error) = serving.await {
                        tracing::debug!(%client, %error, "TCP connection ended");
                    }
                    connections.fetch_sub(1, Ordering::AcqRel);
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

impl ServeContext {
    /// Answers one query that came over a stream transport (TCP, DoT, DoH)
    /// through the full request path; `None`: send nothing.
    pub(crate) async fn answer_stream(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let _guard = self.in_flight.enter();
        let policy = self.policy.current();
        self.handler
            .handle(request, client, transport, &policy)
            .await
    }
}

/// Re-reads the system resolver file every `refresh` and switches to the
/// servers it now lists (RFC 8106 RDNSS learned by rdnssd or systemd-resolved
/// lands there), so a new server is used without a restart.
async fn watch_system_resolvers(upstream: Arc<Upstream>, refresh: Duration) {
    let path = |upstream: &Upstream| upstream.selection().system.map(|system| system.path);
    let mut last_contents = path(&upstream).and_then(|path| std::fs::read(path).ok());
    let mut interval = tokio::time::interval(refresh);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let selection = upstream.selection();
        let Some(system) = &selection.system else {
            continue; // a reload switched to a fixed list
        };
        let contents = tokio::fs::read(&system.path).await.ok();
        if contents == last_contents {
            continue;
        }
        last_contents = contents;
        let servers = selection.read_system();
        if upstream.set_addresses(&servers) {
            let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
            if servers.is_empty() {
                tracing::warn!(file = %system.path.display(), "system resolvers changed: no usable upstream server left; answering SERVFAIL");
            } else {
                tracing::info!(file = %system.path.display(), servers = %list.join(", "), "system resolvers changed; now forwarding to them");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable stand-in for pktinfo (used where Linux's is not):
    /// a wildcard listener becomes one socket per local address on its port,
    /// so an answer to 127.0.0.1 comes from there; other listeners stay.
    #[test]
    fn a_wildcard_listener_without_pktinfo_binds_each_local_address() {
        let wildcard = bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
        let bound = wildcard.local_addr().unwrap().as_socket().unwrap();
        let each = bind_each_local_address(vec![wildcard], bound).unwrap();
        let addresses: Vec<SocketAddr> = each
            .iter()
            .map(|socket| socket.local_addr().unwrap().as_socket().unwrap())
            .collect();
        let loopback = SocketAddr::new("127.0.0.1".parse().unwrap(), bound.port());
        assert!(addresses.contains(&loopback), "{addresses:?}");
        assert!(
            addresses
                .iter()
                .all(|address| address.port() == bound.port()
                    && address.is_ipv4()
                    && !address.ip().is_unspecified())
        );

        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"q", loopback).unwrap();
        let socket = each
            .iter()
            .find(|socket| socket.local_addr().unwrap().as_socket() == Some(loopback))
            .unwrap();
        socket.set_nonblocking(false).unwrap();
        let mut buffer = [std::mem::MaybeUninit::new(0u8); 8];
        let (_, from) = socket.recv_from(&mut buffer).unwrap();
        socket.send_to(b"a", &from).unwrap();
        let mut answer = [0u8; 8];
        let (length, source) = client.recv_from(&mut answer).unwrap();
        assert_eq!((&answer[..length], source), (&b"a"[..], loopback));

        let specific = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = specific.local_addr().unwrap().as_socket().unwrap();
        let kept = bind_each_local_address(vec![specific], address).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(
            bind_each_local_address(Vec::new(), bound)
                .unwrap()
                .is_empty()
        );
    }
}
