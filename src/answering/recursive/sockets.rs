//! The recursor's UDP sockets, kept between queries in the shared pool
//! ([`crate::answering::udp_pool`], Unbound's `outgoing-range` idea), for
//! hickory's recursor.
//!
//! hickory binds a new UDP socket for every query it sends to a name server
//! and closes it after the answer: five system calls and an epoll
//! registration per upstream query, about a tenth of recursive mode's CPU.
//! [`PooledRuntime`] is hickory's tokio runtime provider with one change:
//! [`RuntimeProvider::bind_udp`] hands out an idle socket when this thread
//! has one for the local address, and a socket goes back to the pool when
//! hickory drops it after an exchange that got its reply.
//!
//! The pool's rules hold (see its module): a new socket is bound to the
//! random port hickory chose for it; every query has a random ID (hickory's);
//! a socket is closed after [`udp_pool::MAX_USES`] queries; and a socket
//! whose last query got no datagram back from the server it was sent to (a
//! timeout, an error, a cancelled query) is closed, not reused. hickory
//! checks the source address, the ID and the question of every datagram it
//! reads, so a stray datagram that does reach a reused socket is ignored.
//! The sockets are not connected (one serves every name server), so they
//! are pooled per local address ([`PoolKey::BoundTo`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use tokio::net::UdpSocket;

use crate::answering::udp_pool::{self, PoolKey, PooledSocket};

/// hickory's tokio runtime provider, with UDP sockets from the idle lists.
#[derive(Clone, Default)]
pub(crate) struct PooledRuntime {
    tokio: TokioRuntimeProvider,
}

impl RuntimeProvider for PooledRuntime {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = PooledUdpSocket;
    type Tcp = <TokioRuntimeProvider as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.tokio.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        self.tokio.connect_tcp(server_addr, bind_addr, timeout)
    }

    /// An idle socket on `local_addr`'s address, or a new one bound to
    /// `local_addr` (hickory picks its port at random).
    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        let key = PoolKey::BoundTo(local_addr.ip());
        let idle = udp_pool::take_idle(key);
        Box::pin(async move {
            let pooled = match idle {
                Some(idle) => idle,
                None => PooledSocket::new(UdpSocket::bind(local_addr).await?),
            };
            Ok(PooledUdpSocket {
                pooled: Some(pooled),
                key,
                exchange: Mutex::new(Exchange::default()),
            })
        })
    }
}

/// Where a socket's current query stands.
#[derive(Default)]
struct Exchange {
    /// Where the last datagram went (`None`: nothing sent yet).
    sent_to: Option<SocketAddr>,
    /// Whether a datagram came back from there since.
    answered: bool,
}

/// A socket lent to hickory for one query; it goes back to the idle list
/// when dropped if that query got a datagram back (see the module's doc).
pub(crate) struct PooledUdpSocket {
    pooled: Option<PooledSocket>,
    /// The idle list it came from and goes back to (its local address, as
    /// bound: known here, so no `getsockname` is needed to put it back).
    key: PoolKey,
    exchange: Mutex<Exchange>,
}

impl PooledUdpSocket {
    fn socket(&self) -> &UdpSocket {
        self.pooled
            .as_ref()
            .expect("the socket is only taken on drop")
            .socket()
    }

    fn exchange(&self) -> std::sync::MutexGuard<'_, Exchange> {
        self.exchange
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DnsUdpSocket for PooledUdpSocket {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut read = tokio::io::ReadBuf::new(buf);
        let from = std::task::ready!(self.socket().poll_recv_from(cx, &mut read))?;
        let mut exchange = self.exchange();
        if exchange.sent_to.is_some_and(|to| same_endpoint(to, from)) {
            exchange.answered = true;
        }
        Poll::Ready(Ok((read.filled().len(), from)))
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let sent = std::task::ready!(self.socket().poll_send_to(cx, buf, target))?;
        *self.exchange() = Exchange {
            sent_to: Some(target),
            answered: false,
        };
        Poll::Ready(Ok(sent))
    }
}

/// The same address and port (an IPv4 address may come back mapped).
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

impl Drop for PooledUdpSocket {
    fn drop(&mut self) {
        let answered = self.exchange().answered;
        let Some(pooled) = self.pooled.take() else {
            return;
        };
        if answered {
            udp_pool::give_back(self.key, pooled);
        }
    }
}

/// Idle sockets this thread holds on `address` (for tests).
#[cfg(test)]
fn idle_count(address: std::net::IpAddr) -> usize {
    udp_pool::idle_count(PoolKey::BoundTo(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    async fn exchange(runtime: &PooledRuntime, server: &UdpSocket, answer: bool) -> u16 {
        let socket = runtime
            .bind_udp("127.0.0.1:0".parse().unwrap(), server.local_addr().unwrap())
            .await
            .unwrap();
        let port = socket.socket().local_addr().unwrap().port();
        socket
            .send_to(b"query", server.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0; 16];
        let (_, client) = server.recv_from(&mut buf).await.unwrap();
        if answer {
            server.send_to(b"reply", client).await.unwrap();
            socket.recv_from(&mut buf).await.unwrap();
        }
        port
    }

    #[tokio::test]
    async fn an_answered_socket_is_reused_until_its_uses_run_out() {
        let runtime = PooledRuntime::default();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let first = exchange(&runtime, &server, true).await;
        assert_eq!(idle_count(local), 1);
        let mut ports = vec![first];
        for _ in 1..udp_pool::MAX_USES {
            ports.push(exchange(&runtime, &server, true).await);
        }
        assert!(ports.iter().all(|&port| port == first), "{ports:?}");
        assert_eq!(idle_count(local), 0, "closed after MAX_USES queries");
        assert_ne!(exchange(&runtime, &server, true).await, first);
    }

    #[tokio::test]
    async fn a_socket_without_a_reply_is_closed() {
        let runtime = PooledRuntime::default();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        exchange(&runtime, &server, false).await;
        assert_eq!(idle_count(local), 0);
    }

    #[tokio::test]
    async fn a_datagram_from_elsewhere_is_not_a_reply() {
        let runtime = PooledRuntime::default();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = runtime
            .bind_udp("127.0.0.1:0".parse().unwrap(), server.local_addr().unwrap())
            .await
            .unwrap();
        socket
            .send_to(b"query", server.local_addr().unwrap())
            .await
            .unwrap();
        stranger
            .send_to(b"spoof", socket.socket().local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0; 16];
        socket.recv_from(&mut buf).await.unwrap();
        drop(socket);
        assert_eq!(idle_count("127.0.0.1".parse().unwrap()), 0);
    }
}
