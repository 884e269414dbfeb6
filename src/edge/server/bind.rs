//! Binding sockets: UDP and TCP on one address (the same port when the
//! port is 0), `SO_REUSEPORT` copies per core on Linux, one socket per
//! local address for a wildcard listener where pktinfo is not available,
//! IPv6-only sockets, and a large UDP receive buffer.

use std::io;
use std::net::SocketAddr;

use super::ServerError;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

#[cfg(target_os = "linux")]
use crate::edge::udp_batch;

/// Binds the wanted transports on one address.
pub(super) fn bind_listener(
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
pub(super) fn add_reuseport_sockets(mut sockets: Vec<Socket>) -> Vec<Socket> {
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
pub(super) fn add_reuseport_sockets(sockets: Vec<Socket>) -> Vec<Socket> {
    sockets
}

/// Binds UDP and TCP on one address; with port 0, TCP takes the port UDP got.
pub(super) fn bind_pair(address: SocketAddr) -> Result<(Socket, TcpListener), ServerError> {
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

pub(super) fn new_socket(
    address: SocketAddr,
    kind: Type,
    protocol: Protocol,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Receive buffer asked for each UDP listener socket: room for bursts of a
/// few thousand queries (the kernel caps it at net.core.rmem_max).
pub(super) const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// Without pktinfo (every system but Linux), a wildcard UDP listener would
/// answer from whatever address the route back prefers, not the one asked
/// (issue 15). It becomes one socket per local address of its family
/// instead ([`crate::edge::local_addresses`]), on the port the wildcard got; the
/// wildcard sockets are closed first to free that port. Other listeners are
/// returned as they are.
#[cfg(any(test, not(target_os = "linux")))]
pub(super) fn bind_each_local_address(
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
pub(super) fn bind_udp(address: SocketAddr) -> io::Result<Socket> {
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

/// A bound UDP socket for a DoQ listener: one socket, no `SO_REUSEPORT`
/// (a QUIC connection's packets must all reach the one endpoint), no
/// pktinfo of ours (quinn sets up its own).
pub(super) fn bind_quic(address: SocketAddr) -> io::Result<Socket> {
    let socket = new_socket(address, Type::DGRAM, Protocol::UDP)?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(%error, "cannot enlarge the UDP receive buffer");
    }
    socket.bind(&address.into())?;
    Ok(socket)
}

pub(super) fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    // Answers are written whole; Nagle would hold back the second of two
    // pipelined answers until the first is acknowledged. On Linux the
    // accepted connections inherit this (see `tcp::accepted_without_nagle`).
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
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
