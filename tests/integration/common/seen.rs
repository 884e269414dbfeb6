//! Recording of the queries an upstream test server receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, RecordType};

/// Transport a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One query as received by an upstream test server.
#[derive(Debug, Clone)]
pub struct SeenQuery {
    /// First question's name as received (case preserved, with trailing dot),
    /// or "" if the message had no question.
    pub name: String,
    /// First question's type (`RecordType::ZERO` if no question).
    pub qtype: RecordType,
    pub class: DNSClass,
    pub protocol: Transport,
    pub src: SocketAddr,
    pub id: u16,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub authentic_data: bool,
    /// EDNS DO bit (false if no OPT record).
    pub dnssec_ok: bool,
    /// EDNS UDP payload size, None if the query had no OPT record.
    pub edns_payload: Option<u16>,
    /// Number of questions in the message.
    pub qdcount: usize,
}

impl SeenQuery {
    pub(crate) fn from_message(msg: &Message, protocol: Transport, src: SocketAddr) -> Self {
        let (name, qtype, class) = match msg.queries.first() {
            Some(q) => (q.name().to_string(), q.query_type(), q.query_class()),
            None => (String::new(), RecordType::ZERO, DNSClass::IN),
        };
        Self {
            name,
            qtype,
            class,
            protocol,
            src,
            id: msg.metadata.id,
            recursion_desired: msg.metadata.recursion_desired,
            checking_disabled: msg.metadata.checking_disabled,
            authentic_data: msg.metadata.authentic_data,
            dnssec_ok: msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            edns_payload: msg.edns.as_ref().map(|e| e.max_payload()),
            qdcount: msg.queries.len(),
        }
    }

    /// Case-insensitive name comparison, trailing dot optional on either side.
    pub fn name_is(&self, name: &str) -> bool {
        norm_name(&self.name) == norm_name(name)
    }
}

pub(crate) fn norm_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Shared, thread-safe log of seen queries; waiters are woken on every push.
#[derive(Debug, Clone)]
pub struct SeenLog {
    log: Arc<Mutex<Vec<SeenQuery>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for SeenLog {
    fn default() -> Self {
        Self {
            log: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl SeenLog {
    pub fn push(&self, q: SeenQuery) {
        self.log.lock().unwrap().push(q);
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn all(&self) -> Vec<SeenQuery> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    pub fn count(&self, name: &str, qtype: RecordType) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.qtype == qtype && q.name_is(name))
            .count()
    }

    /// Wait (event-driven) until `cond(&log)` holds; panics after `TEST_TIMEOUT`.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&[SeenQuery]) -> bool) {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if cond(&self.log.lock().unwrap()) {
                    return;
                }
                rx.changed().await.expect("seen log sender dropped");
            }
        };
        tokio::time::timeout(super::TEST_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for upstream to see {what}"));
    }

    /// Wait until at least `n` queries for `name`/`qtype` have been seen.
    pub async fn wait_for_count(&self, name: &str, qtype: RecordType, n: usize) {
        let what = format!("{n} x {name} {qtype}");
        self.wait_until(&what, |log| {
            log.iter()
                .filter(|q| q.qtype == qtype && q.name_is(name))
                .count()
                >= n
        })
        .await;
    }
}
