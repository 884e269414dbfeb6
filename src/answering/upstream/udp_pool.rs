//! Connected UDP sockets to upstream servers, kept between exchanges.
//!
//! A socket per upstream query costs five system calls and an epoll
//! registration on top of the exchange itself: on a cache miss that is most
//! of the CPU. Instead a socket that got its answer goes back to a small pool
//! of idle sockets for its server, and the next query to that server takes it
//! (the same idea as Unbound's `outgoing-range`). What RFC 5452 asks for
//! holds: each socket is bound to a port the kernel picks at random, every
//! query gets a random ID, and a socket is closed for good after
//! [`MAX_USES`] exchanges, so the ports keep changing. A socket whose
//! exchange did not end in an answer (timeout, error, cancelled) is never
//! put back, so no late reply can meet a later query.
//!
//! The pool is per thread: each UDP listener thread runs its own runtime,
//! and a socket is registered with the runtime that made it. No lock is
//! taken.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Exchanges after which a socket is closed (and a new random port taken).
pub(crate) const MAX_USES: u32 = 64;

/// Idle sockets kept per server and thread (more are closed).
pub(crate) const MAX_IDLE: usize = 32;

/// A connected socket and how many exchanges it has carried.
pub(crate) struct PooledSocket {
    socket: UdpSocket,
    uses: u32,
}

impl PooledSocket {
    /// The socket.
    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<PooledSocket>>> = RefCell::new(HashMap::new());
}

/// An idle socket connected to `server`, or a new one on a random port.
pub(crate) async fn take(server: SocketAddr) -> std::io::Result<PooledSocket> {
    if let Some(pooled) = IDLE.with(|idle| idle.borrow_mut().get_mut(&server)?.pop()) {
        return Ok(pooled);
    }
    let unspecified: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(unspecified).await?;
    socket.connect(server).await?;
    Ok(PooledSocket { socket, uses: 0 })
}

/// Puts back a socket whose exchange ended with an accepted answer (unless
/// it has carried [`MAX_USES`] exchanges or the pool is full: then it closes).
pub(crate) fn give_back(server: SocketAddr, mut pooled: PooledSocket) {
    pooled.uses += 1;
    if pooled.uses >= MAX_USES {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let sockets = idle.entry(server).or_default();
        if sockets.len() < MAX_IDLE {
            sockets.push(pooled);
        }
    });
}

/// Idle sockets this thread holds for `server` (for tests).
#[cfg(test)]
pub(crate) fn idle_count(server: SocketAddr) -> usize {
    IDLE.with(|idle| idle.borrow().get(&server).map_or(0, Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answered_socket_is_reused_until_its_uses_run_out() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        let first = take(address).await.unwrap();
        let port = first.socket().local_addr().unwrap().port();
        give_back(address, first);
        assert_eq!(idle_count(address), 1);
        let mut again = take(address).await.unwrap();
        assert_eq!(again.socket().local_addr().unwrap().port(), port);
        assert_eq!(idle_count(address), 0);
        again.uses = MAX_USES - 1;
        give_back(address, again);
        assert_eq!(idle_count(address), 0, "closed after MAX_USES");
        let fresh = take(address).await.unwrap();
        assert_eq!(fresh.uses, 0);
        assert_eq!(fresh.socket().peer_addr().unwrap(), address);
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_max_idle_per_server() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        let mut sockets = Vec::new();
        for _ in 0..MAX_IDLE + 5 {
            sockets.push(take(address).await.unwrap());
        }
        for pooled in sockets {
            give_back(address, pooled);
        }
        assert_eq!(idle_count(address), MAX_IDLE);
    }
}
