//! dns64d: a DNS64 server (RFC 6147, RFC 6052).
//!
//! A tour of the modules, in the order a query meets them:
//!
//! - [`server`]: UDP and TCP listeners; bytes in, bytes out.
//! - `udp_batch` (Linux): blocking `recvmmsg`/`sendmmsg` for the UDP
//!   listener threads.
//! - [`pktinfo`]: on wildcard UDP sockets, the address each query was
//!   sent to, so its answer comes from there (Linux); elsewhere,
//!   `local_addresses` gives one UDP socket per local address instead.
//! - [`handler`]: one request: shape checks (FORMERR, NOTIMP, BADVERS),
//!   access control (REFUSED), flags, EDNS and truncation.
//! - [`resolver`]: the pipeline for one question: local `ipv4only.arpa`,
//!   cache, upstream, DNS64 synthesis; coalesces identical misses.
//! - [`dns64`]: the pure RFC 6052 / RFC 6147 core: prefixes, exclusions,
//!   the synthesize-or-not decision, the TTL rule, the DNSSEC (AD) rule,
//!   `ipv4only.arpa`.
//! - [`cache`]: bounded LRU of upstream answers with TTL countdown and
//!   negative caching (RFC 2308); expired answers kept for serve-stale
//!   (RFC 8767), late hits flagged for prefetch.
//! - [`upstream`]: forwarding with timeout, failover and TCP on truncation;
//!   [`upstream_tls`]: DoT/DoH upstream connections; [`upstream_url`]: their
//!   `tls://` / `https://` form in `upstream.servers`.
//! - [`answer`]: the RCODE-plus-sections value passed between them.
//! - [`ede`]: Extended DNS Errors (RFC 8914).
//! - [`cookies`]: DNS Cookies (RFC 7873, RFC 9018 server cookies).
//! - [`config`]: figment-loaded, validated configuration.
//! - `tls_listener`, `https_listener`: DNS over TLS (RFC 7858) and over
//!   HTTPS (RFC 8484) listeners on the TCP path; [`certificate`]: their
//!   PEM certificates, reloadable; [`ddr`]: their discovery (RFC 9462).
//!
//! Operations: [`control`] (the socket `dns64d ctl` talks to),
//! [`health`] (upstream health, `/healthz`), [`logging`], [`identity`]
//! (CHAOS TXT and NSID), [`metrics`].
//! - [`zones`] and [`signed_zone`]: local zones (`[[zones]]`), signed ones included.

pub mod answering;
pub mod dns64;
pub mod edge;
pub mod ops;
pub mod sharded;
