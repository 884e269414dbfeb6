//! Reusable integration-test harness for dns64d.
//!
//! * [`AuthUpstream`]: in-process authoritative server (hickory-server `Catalog` +
//!   zone files from `tests/data/`), UDP and TCP on the same loopback port, records
//!   every query it sees.
//! * [`FakeUpstream`]: programmable UDP+TCP DNS server (hickory-proto only).
//! * client helpers ([`Q`], [`query_udp`], [`query_tcp`], raw senders, [`TcpConn`]) and
//!   assertion helpers ([`answer_summary`], [`aaaa_answers`], ...).
//!
//! Only `daemon` depends on the dns64d crate (it starts the server under test).
#![allow(dead_code, unused_imports)]

mod auth;
mod certs;
mod client;
mod daemon;
mod fake;
mod netns;
mod process;
mod seen;
mod signed;

pub use auth::*;
pub use certs::*;
pub use client::*;
pub use daemon::*;
pub use fake::*;
pub use netns::*;
pub use process::*;
pub use seen::*;
pub use signed::*;

pub use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
pub use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Generous timeout after which a harness operation that should have completed is
/// declared a test failure (panic). Not used for timing-based synchronisation.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Directory holding the test zone files.
pub fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}
