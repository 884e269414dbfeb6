//! UDP sockets to upstream and authoritative servers, kept between
//! exchanges: the one pool both forwarding ([`crate::answering::upstream`])
//! and recursion ([`crate::answering::recursive`]) draw from.
//!
//! A socket per upstream query costs five system calls and an epoll
//! registration on top of the exchange itself: on a cache miss that is most
//! of the CPU. Instead a socket that got its answer goes back to a small list
//! of idle sockets, and the next query takes it (the same idea as Unbound's
//! `outgoing-range`). What RFC 5452 asks for holds: each socket is bound to a
//! port the kernel (or hickory) picks at random, every query gets a random
//! ID, and a socket is closed for good after [`MAX_USES`] exchanges, so the
//! ports keep changing. A socket whose exchange did not end in an answer
//! (timeout, error, cancelled) is never put back, so no late reply can meet
//! a later query.
//!
//! The idle lists are per thread: each UDP listener thread runs its own
//! runtime, and a socket is registered with the runtime that made it. No
//! lock is taken. They are kept per [`PoolKey`]: a forwarder's sockets are
//! connected to their server, the recursor's are not (one serves every name
//! server) and are kept per local address.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

/// Exchanges after which a socket is closed (and a new random port taken).
pub(crate) const MAX_USES: u32 = 64;

/// Which idle list a socket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PoolKey {
    /// Connected to this server (forwarding).
    ConnectedTo(SocketAddr),
    /// Bound to this local address and not connected (recursion).
    BoundTo(IpAddr),
}

impl PoolKey {
    /// Idle sockets kept per key and thread (more are closed): a forwarder
    /// has a list per server, the recursor one for all name servers.
    fn max_idle(self) -> usize {
        match self {
            PoolKey::ConnectedTo(_) => 32,
            PoolKey::BoundTo(_) => 64,
        }
    }
}

/// A socket and how many exchanges it has carried.
pub(crate) struct PooledSocket {
    socket: UdpSocket,
    uses: u32,
}

impl PooledSocket {
    /// A new socket, not used yet.
    pub(crate) fn new(socket: UdpSocket) -> Self {
        Self { socket, uses: 0 }
    }

    /// The socket.
    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<PoolKey, Vec<PooledSocket>>> = RefCell::new(HashMap::new());
}

/// An idle socket of `key` that this thread holds, if any.
pub(crate) fn take_idle(key: PoolKey) -> Option<PooledSocket> {
    IDLE.with(|idle| idle.borrow_mut().get_mut(&key)?.pop())
}

/// An idle socket connected to `server`, or a new one on a random port.
pub(crate) async fn take_connected(server: SocketAddr) -> std::io::Result<PooledSocket> {
    if let Some(pooled) = take_idle(PoolKey::ConnectedTo(server)) {
        return Ok(pooled);
    }
    let unspecified: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(unspecified).await?;
    socket.connect(server).await?;
    Ok(PooledSocket::new(socket))
}

/// Puts back a socket whose exchange ended with an accepted answer (unless
/// it has carried [`MAX_USES`] exchanges or the list is full: then it
/// closes). Safe to call while the thread ends (the socket then closes).
pub(crate) fn give_back(key: PoolKey, mut pooled: PooledSocket) {
    pooled.uses += 1;
    if pooled.uses >= MAX_USES {
        return;
    }
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let sockets = idle.entry(key).or_default();
        if sockets.len() < key.max_idle() {
            sockets.push(pooled);
        }
    }); // the thread is ending: the socket closes
}

/// Idle sockets this thread holds for `key` (for tests).
#[cfg(test)]
pub(crate) fn idle_count(key: PoolKey) -> usize {
    IDLE.with(|idle| idle.borrow().get(&key).map_or(0, Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answered_socket_is_reused_until_its_uses_run_out() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        let key = PoolKey::ConnectedTo(address);
        let first = take_connected(address).await.unwrap();
        let port = first.socket().local_addr().unwrap().port();
        give_back(key, first);
        assert_eq!(idle_count(key), 1);
        let mut again = take_connected(address).await.unwrap();
        assert_eq!(again.socket().local_addr().unwrap().port(), port);
        assert_eq!(idle_count(key), 0);
        again.uses = MAX_USES - 1;
        give_back(key, again);
        assert_eq!(idle_count(key), 0, "closed after MAX_USES");
        let fresh = take_connected(address).await.unwrap();
        assert_eq!(fresh.uses, 0);
        assert_eq!(fresh.socket().peer_addr().unwrap(), address);
    }

    #[tokio::test]
    async fn each_list_keeps_at_most_its_idle_sockets() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        let connected = PoolKey::ConnectedTo(address);
        let bound = PoolKey::BoundTo(address.ip());
        for key in [connected, bound] {
            let mut sockets = Vec::new();
            for _ in 0..key.max_idle() + 5 {
                sockets.push(take_connected(address).await.unwrap());
            }
            for pooled in sockets {
                give_back(key, pooled);
            }
            assert_eq!(idle_count(key), key.max_idle(), "{key:?}");
        }
        assert_eq!(connected.max_idle(), 32);
        assert_eq!(bound.max_idle(), 64);
    }
}
