//! dns64d: a DNS64 server (RFC 6147, RFC 6052).
//!
//! A tour of the modules, in the order a query meets them:
//!
//! - [`server`]: UDP and TCP listeners; bytes in, bytes out.
//! - `udp_batch` (Linux): blocking `recvmmsg`/`sendmmsg` for the UDP
//!   listener threads.
//! - [`handler`]: one request: shape checks (FORMERR, NOTIMP, BADVERS),
//!   access control (REFUSED), flags, EDNS and truncation.
//! - [`resolver`]: the pipeline for one question: local `ipv4only.arpa`,
//!   cache, upstream, DNS64 synthesis; coalesces identical misses.
//! - [`dns64`]: the pure RFC 6052 / RFC 6147 core: prefixes, exclusions,
//!   the synthesize-or-not decision, the TTL rule, `ipv4only.arpa`.
//! - [`cache`]: bounded LRU of upstream answers with TTL countdown and
//!   negative caching (RFC 2308); expired answers kept for serve-stale
//!   (RFC 8767), late hits flagged for prefetch.
//! - [`upstream`]: forwarding with timeout, failover and TCP on truncation.
//! - [`answer`]: the RCODE-plus-sections value passed between them.
//! - [`ede`]: Extended DNS Errors (RFC 8914).
//! - [`cookies`]: DNS Cookies (RFC 7873, RFC 9018 server cookies).
//! - [`config`]: figment-loaded, validated configuration.

pub mod answer;
pub mod cache;
pub mod config;
pub mod cookies;
pub mod discovery;
pub mod dns64;
pub mod ede;
pub mod fastpath;
pub mod handler;
pub mod metrics;
pub mod ratelimit;
pub mod recursive;
pub mod resolver;
pub mod server;
pub mod sharded;
#[cfg(target_os = "linux")]
pub mod udp_batch;
pub mod upstream;
pub mod zones;
