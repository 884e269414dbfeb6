//! The listeners: bytes in, bytes out. One query's way through:
//!
//! 1. `startup` binds each listener (`bind`) and spawns its serving
//!    tasks with a `context::ServeContext`: the handler, the listener's
//!    policy slot, the response cache, the rate limiter, the limits.
//! 2. A UDP datagram is read by `udp_linux` (a thread per `SO_REUSEPORT`
//!    socket, batched `recvmmsg`) or `udp` (elsewhere); a TCP, DoT or DoH
//!    connection is accepted by `tcp` (with [`tls`] and [`https`] on top)
//!    within the listener's and the client address's connection limits,
//!    and its pipelined queries are answered concurrently.
//! 3. `context` tries the fast path (a stored response, replayed with the
//!    ID, letter case and TTLs fixed up) and applies rate limiting; a miss
//!    (and every stream query) goes to the
//!    [`QueryHandler`](crate::edge::handler::QueryHandler), counted in
//!    `active_queries` so a shutdown can wait for it, unless
//!    `server.max_inflight_queries` are in flight (then it is answered
//!    SERVFAIL at once, over every transport); with a time bound (recursive
//!    mode) a query still unanswered when the bound has passed since its
//!    arrival is answered SERVFAIL then.
//! 4. The reply leaves from the address the query was sent to (pktinfo on
//!    Linux, one socket per local address elsewhere).
//!
//! IPv6 sockets are bound IPv6-only, so `[::]:53` and `0.0.0.0:53` can both
//! be listed. A port of 0 binds UDP first and then TCP on the same port, so
//! tests get one address that serves both.

mod active_queries;
mod bind;
mod context;
pub mod https;
mod quic;
mod response_records;
mod startup;
mod tcp;
pub mod tls;
#[cfg(not(target_os = "linux"))]
mod udp;
#[cfg(target_os = "linux")]
mod udp_linux;

use std::io;
use std::net::SocketAddr;

use crate::answering::recursive::RecursiveError;
use crate::answering::zones::ZoneError;
use crate::edge::certificate::CertificateError;

pub(crate) use context::ServeContext;
pub use startup::{RunningServer, start};
pub(crate) use tcp::{accept_connections, serve_connection};

/// Largest UDP datagram read (the IPv4/IPv6 UDP maximum).
pub(super) const MAX_DATAGRAM: usize = 65535;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A local zone file could not be loaded.
    #[error(transparent)]
    Zone(Box<ZoneError>),
    /// Recursive mode could not start.
    #[error(transparent)]
    Recursive(#[from] RecursiveError),
    /// A DoT, DoH or DoQ listener's certificate or TLS setup failed.
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
