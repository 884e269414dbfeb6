//! The listeners: one UDP socket and one TCP listener per `listen` address,
//! each handing request bytes to the shared [`RequestHandler`].
//!
//! IPv6 sockets are bound IPv6-only, so `[::]:53` and `0.0.0.0:53` can both
//! be listed. A port of 0 binds UDP first and then TCP on the same port, so
//! tests get one address that serves both.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::config::UpstreamSelection;
use crate::discovery::{self, DiscoveredPrefixes};
use crate::handler::{ListenerPolicy, RequestHandler, Transport};
use crate::resolver::Resolver;
use crate::upstream::{Forwarder, Upstream};

/// Largest UDP datagram read (the IPv4/IPv6 UDP maximum).
const MAX_DATAGRAM: usize = 65535;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
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

/// A running server: its bound addresses and its tasks (stopped on drop).
pub struct RunningServer {
    addresses: Vec<SocketAddr>,
    handler: Arc<RequestHandler>,
    tasks: JoinSet<()>,
}

impl RunningServer {
    /// The bound addresses, one per `listen` entry, each serving UDP and TCP.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The request handler (for statistics).
    pub fn handler(&self) -> &Arc<RequestHandler> {
        &self.handler
    }

    /// Waits until every listener task has ended (normally never).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops all listeners.
    pub fn shutdown(mut self) {
        self.tasks.abort_all();
    }
}

/// Binds every listen address and starts serving.
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    let upstream = Arc::new(Upstream::new(&config.upstream, config.server.edns_udp_size));
    let resolver = Resolver::with_forwarder(config, Arc::clone(&upstream) as Arc<dyn Forwarder>);
    let handler = Arc::new(RequestHandler::new(resolver, config.server.edns_udp_size));
    let mut tasks = JoinSet::new();
    let mut addresses = Vec::new();
    let wants_discovery = config.dns64.discover
        || config
            .listeners
            .iter()
            .any(|listener| listener.discover == Some(true));
    let discovered = wants_discovery.then(|| {
        let discovered = Arc::new(DiscoveredPrefixes::new(
            config.dns64.discovered_exclude_ipv4.clone(),
        ));
        tasks.spawn(discovery::run_rfc7050(
            Arc::clone(&discovered),
            Arc::clone(&upstream) as Arc<dyn Forwarder>,
        ));
        tasks.spawn(discovery::run_pref64(Arc::clone(&discovered)));
        discovered
    });
    for listener in &config.listeners {
        let policy = Arc::new(ListenerPolicy {
            access_clients: listener
                .clients
                .clone()
                .unwrap_or_else(|| config.access_clients.clone()),
            dns64: listener.dns64,
            prefixes: listener
                .prefixes
                .clone()
                .unwrap_or_else(|| config.dns64.prefixes.clone()),
            discovered: listener
                .discover
                .unwrap_or(config.dns64.discover)
                .then(|| discovered.clone())
                .flatten(),
        });
        let address = listener.address;
        let (udp, tcp) = bind_listener(address, listener.udp, listener.tcp)?;
        let bound = match (&udp, &tcp) {
            (Some(udp), _) => udp.local_addr(),
            (None, Some(tcp)) => tcp.local_addr(),
            (None, None) => Ok(address),
        }
        .map_err(|source| ServerError::Bind {
            address,
            protocol: "UDP",
            source,
        })?;
        tracing::info!(address = %bound, udp = listener.udp, tcp = listener.tcp, dns64 = listener.dns64, "listening");
        addresses.push(bound);
        if let Some(udp) = udp {
            tasks.spawn(serve_udp(
                Arc::new(udp),
                Arc::clone(&handler),
                Arc::clone(&policy),
            ));
        }
        if let Some(tcp) = tcp {
            tasks.spawn(serve_tcp(
                tcp,
                Arc::clone(&handler),
                Arc::clone(&policy),
                config.server.tcp_idle_timeout,
            ));
        }
    }
    if let Some(system) = &config.upstream.selection.system {
        if !system.refresh.is_zero() {
            tasks.spawn(watch_system_resolvers(
                upstream,
                config.upstream.selection.clone(),
                system.refresh,
            ));
        }
    }
    Ok(RunningServer {
        addresses,
        handler,
        tasks,
    })
}

/// Binds the wanted transports on one address.
fn bind_listener(
    address: SocketAddr,
    udp: bool,
    tcp: bool,
) -> Result<(Option<UdpSocket>, Option<TcpListener>), ServerError> {
    match (udp, tcp) {
        (true, true) => bind_pair(address).map(|(udp, tcp)| (Some(udp), Some(tcp))),
        (true, false) => bind_udp(address)
            .map(|udp| (Some(udp), None))
            .map_err(|source| ServerError::Bind {
                address,
                protocol: "UDP",
                source,
            }),
        (false, _) => bind_tcp(address)
            .map(|tcp| (None, Some(tcp)))
            .map_err(|source| ServerError::Bind {
                address,
                protocol: "TCP",
                source,
            }),
    }
}

/// Binds UDP and TCP on one address; with port 0, TCP takes the port UDP got.
fn bind_pair(address: SocketAddr) -> Result<(UdpSocket, TcpListener), ServerError> {
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
            .map(|bound| bound.port())
            .unwrap_or(address.port());
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

fn bind_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(address, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Receives datagrams and answers each in its own task.
async fn serve_udp(
    socket: Arc<UdpSocket>,
    handler: Arc<RequestHandler>,
    policy: Arc<ListenerPolicy>,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (length, client) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        };
        let request = buffer[..length].to_vec();
        let socket = Arc::clone(&socket);
        let handler = Arc::clone(&handler);
        let policy = Arc::clone(&policy);
        tokio::spawn(async move {
            if let Some(response) = handler
                .handle(&request, client, Transport::Udp, &policy)
                .await
            {
                if let Err(error) = socket.send_to(&response, client).await {
                    tracing::debug!(%client, %error, "UDP send failed");
                }
            }
        });
    }
}

/// Accepts TCP connections and serves each in its own task.
async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<RequestHandler>,
    policy: Arc<ListenerPolicy>,
    idle_timeout: Duration,
) {
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let handler = Arc::clone(&handler);
                let policy = Arc::clone(&policy);
                tokio::spawn(async move {
                    if let Err(error) =
                        serve_connection(stream, client, &handler, &policy, idle_timeout).await
                    {
                        tracing::debug!(%client, %error, "TCP connection ended");
                    }
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

/// Serves length-prefixed messages (RFC 1035 §4.2.2) until the client closes
/// or stays idle longer than `idle_timeout` (RFC 7766 §6.2.3).
async fn serve_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    handler: &RequestHandler,
    policy: &ListenerPolicy,
    idle_timeout: Duration,
) -> io::Result<()> {
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
        let Some(response) = handler
            .handle(&request, client, Transport::Tcp, policy)
            .await
        else {
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
    }
}

/// Re-reads the system resolver file every `refresh` and switches to the
/// servers it now lists (RFC 8106 RDNSS learned by rdnssd or systemd-resolved
/// lands there), so a new server is used without a restart.
async fn watch_system_resolvers(
    upstream: Arc<Upstream>,
    selection: UpstreamSelection,
    refresh: Duration,
) {
    let Some(system) = selection.system.clone() else {
        return;
    };
    let mut last_contents = std::fs::read(&system.path).ok();
    let mut interval = tokio::time::interval(refresh);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
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
