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
//!   negative caching (RFC 2308).
//! - [`upstream`]: forwarding with timeout, failover and TCP on truncation;
//!   [`upstream_tls`]: DoT/DoH upstream connections; [`upstream_url`]: their
//!   `tls://` / `https://` form in `upstream.servers`.
//! - [`answer`]: the RCODE-plus-sections value passed between them.
//! - [`ede`]: Extended DNS Errors (RFC 8914).
//! - [`config`]: figment-loaded, validated configuration.
//! - `tls_listener`, `https_listener`: DNS over TLS (RFC 7858) and over
//!   HTTPS (RFC 8484) listeners on the TCP path; [`certificate`]: their
//!   PEM certificates, reloadable; [`ddr`]: their discovery (RFC 9462).

pub mod answer;
pub mod cache;
pub mod certificate;
pub mod config;
pub mod ddr;
pub mod discovery;
pub mod dns64;
pub mod ede;
pub mod fastpath;
pub mod handler;
pub mod https_listener;
pub mod metrics;
pub mod ratelimit;
pub mod recursive;
pub mod resolver;
pub mod server;
pub mod sharded;
pub mod tls_listener;
#[cfg(target_os = "linux")]
pub mod udp_batch;
pub mod upstream;
pub mod upstream_tls;
pub mod upstream_url;
pub mod zones;
