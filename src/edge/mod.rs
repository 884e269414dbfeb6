//! The network edge: bytes in, bytes out. The [`server`] listeners (UDP,
//! TCP, DoT, DoH), the Linux batch I/O ([`udp_batch`]) and reply source
//! addresses ([`pktinfo`]), the [`fastpath`] for cached UDP answers, the
//! [`ratelimit`], DNS [`cookies`], TLS [`certificate`]s, and the
//! [`handler`] that checks one request before it is answered.

pub mod certificate;
pub mod cookies;
pub mod fastpath;
pub mod handler;
#[cfg(any(test, not(target_os = "linux")))]
pub mod local_addresses;
pub mod pktinfo;
pub mod ratelimit;
pub mod server;
pub mod transport;
#[cfg(target_os = "linux")]
pub mod udp_batch;
