//! DNS64 itself, without I/O: RFC 6052 address embedding ([`prefix`]), the
//! exclusion policy ([`policy`]), the RFC 6147 decisions for AAAA queries
//! ([`synthesis`]), the DNSSEC rules of §5.5 ([`dnssec`]) and the local
//! `ipv4only.arpa` answers ([`ipv4only`]), PTR answers for synthesized
//! addresses ([`reverse`]), and the [`answer`] value they all work on.
//!
//! This module imports nothing from the rest of the crate.

pub mod answer;
pub mod dnssec;
pub mod ipv4only;
pub mod policy;
pub mod prefix;
pub mod reverse;
pub mod synthesis;

pub use policy::{ExcludedAaaa, SynthesisPrefix};
pub use prefix::{Nat64Prefix, PrefixError};
pub use synthesis::SynthesizeOn;
