//! Answering one question: the [`resolver`] pipeline over the [`cache`],
//! local [`zones`], [`upstream`] forwarding and [`recursive`] resolution,
//! with DNS64 applied by the core ([`crate::dns64`]). Also the answers that
//! come from configuration: [`identity`] (CHAOS TXT, NSID), [`ddr`]
//! (RFC 9462 discovery), and the Extended DNS Errors ([`ede`]) they carry.
//! Forwarding and recursion share one pool of upstream UDP sockets
//! ([`udp_pool`]).

pub mod cache;
pub mod ddr;
pub mod ede;
pub mod identity;
pub mod recursive;
pub mod resolver;
pub(crate) mod udp_pool;
pub mod upstream;
pub mod zones;
