//! dns64d: a DNS64 server (RFC 6147, RFC 6052).
//!
//! The folders are the layers, each using only those above it in this list
//! (`tests/integration/layers.rs` checks that no modules import each other
//! in a ring):
//!
//! - [`dns64`]: the pure core, without I/O: RFC 6052 prefixes, the
//!   exclusions, the synthesize-or-not decisions and the TTL rule of RFC
//!   6147, its DNSSEC (AD) rule, `ipv4only.arpa`, reverse (PTR) answers, and
//!   the [`dns64::answer::Answer`] value passed between the layers.
//! - [`ops::config`]: defaults, file, environment and flags merged and
//!   validated once into typed values; it depends on the core only.
//! - [`answering`]: one question to one answer: the
//!   [`resolver`](answering::resolver) pipeline (local `ipv4only.arpa`,
//!   zones, cache, upstream or recursion, DNS64 synthesis, serve-stale and
//!   prefetch), the [`cache`](answering::cache), local
//!   [`zones`](answering::zones), [`upstream`](answering::upstream)
//!   forwarding (UDP, TCP, DoT, DoH) and [`recursive`](answering::recursive)
//!   resolution.
//! - [`edge`]: bytes in, bytes out: the [`server`](edge::server) listeners
//!   (UDP with batched I/O and reply source addresses, TCP, DoT, DoH), the
//!   UDP [`fastpath`](edge::fastpath) for cached answers, the
//!   [`ratelimit`](edge::ratelimit), DNS [`cookies`](edge::cookies), and the
//!   [`handler`](edge::handler) that checks one request (FORMERR, NOTIMP,
//!   BADVERS, REFUSED, EDNS, truncation) before it is answered.
//! - [`ops`]: operating it: [`logging`](ops::logging),
//!   [`metrics`](ops::metrics), [`health`](ops::health) and its HTTP
//!   endpoint, the [`control`](ops::control) socket or port behind `dns64d ctl`,
//!   and NAT64 prefix [`discovery`](ops::discovery) (RFC 7050, RFC 8781).
//!
//! A query's way: a listener in `edge::server` takes its listener's policy
//! from the configuration snapshot in force (one load; a reload swaps the
//! whole snapshot), tries the fast path, else the handler checks it and
//! asks the resolver, which applies the core's rules to what the cache,
//! zones and upstreams say.

pub mod answering;
pub mod dns64;
pub mod edge;
pub mod ops;
pub mod sharded;
