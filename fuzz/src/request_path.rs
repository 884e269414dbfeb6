//! The `request_path` target: arbitrary bytes through
//! `QueryHandler::handle` (parse, shape checks, access control, resolver,
//! DNS64 synthesis, response encoding and truncation), with the upstream
//! replaced by [`ZoneForwarder`].
//!
//! Invariants checked on every input, for UDP and TCP and for an allowed and
//! a refused client:
//! - no panic (libfuzzer-sys aborts on any panic, in spawned tasks too);
//! - silence exactly when the input has no 12-octet header or QR=1;
//! - otherwise a response that parses, with QR=1 and the request's ID;
//! - over UDP, no response larger than our EDNS payload size;
//! - when the request parses, the question is echoed;
//! - bounded work: at most 2 × (MAX_CNAME_CHAIN + 1) upstream questions;
//! - the UDP fast path (`dns64d::edge::fastpath`): a response it stores and
//!   replays at once is byte-identical to the slow path's, and a rate-limit
//!   slip (`truncate_to_question`) still parses, with TC=1 and the same ID.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use dns64d::answering::resolver::AnswerSettings;
use dns64d::answering::resolver::Resolver;
use dns64d::answering::zones::LocalZones;
use dns64d::dns64::answer::MAX_CNAME_CHAIN;
use dns64d::edge::fastpath::{self, ReplayCache, StoredNote};
use dns64d::edge::handler::{ListenerPolicy, QueryHandler};
use dns64d::edge::transport::Transport;
use dns64d::ops::config::Config;
use hickory_proto::op::{Message, MessageType};

use crate::zone::{Zone, ZoneForwarder};

/// The configuration of the target (the upstream list is never used).
pub fn config_toml() -> String {
    let prefixes: Vec<String> = crate::CONFIG_PREFIXES
        .iter()
        .map(|prefix| format!("\"{prefix}\""))
        .collect();
    format!(
        r#"listen = ["127.0.0.1:0"]

[upstream]
servers = ["192.0.2.1"]
timeout_ms = 100
attempts = 1

[cache]
max_entries = 64

[dns64]
prefixes = [{}]
ignore_aaaa_domains = ["ignore.fuzz.test"]
exclude_domains = ["excluded.fuzz.test"]
"#,
        prefixes.join(", ")
    )
}

struct State {
    runtime: tokio::runtime::Runtime,
    config: Config,
    policy: ListenerPolicy,
    zone: Arc<Zone>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let config =
            dns64d::ops::config::from_toml_str(&config_toml()).expect("fuzz config is valid");
        let policy = ListenerPolicy {
            access_clients: config.access_clients.clone(),
            dns64: true,
            prefixes: config.dns64.prefixes.clone(),
            discovered: None,
            client_independent: true,
            cookies: None,
            answering: Arc::new(AnswerSettings::new(
                &config,
                Arc::new(LocalZones::default()),
            )),
            identity: Arc::new(config.identity.clone()),
            log_queries: false,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        State {
            runtime,
            config,
            policy,
            zone: Arc::new(Zone::new()),
        }
    })
}

/// An allowed client (loopback is in the default `access.clients`).
pub const ALLOWED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53000);
/// A client outside `access.clients` (REFUSED).
pub const DENIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 53000);

/// Runs one input; panics when an invariant fails.
pub fn check(data: &[u8]) {
    let state = state();
    // A fresh resolver (and cache) per input, so every run is reproducible;
    // UDP then TCP on the same one, so the second call meets the cache.
    let (forwarder, asked) = ZoneForwarder::new(Arc::clone(&state.zone));
    let resolver = Resolver::with_source(&state.config, Arc::new(forwarder));
    let handler = QueryHandler::new(resolver, state.config.server.edns_udp_size);
    let request = Message::from_vec(data).ok();
    for (transport, client) in [
        (Transport::Udp, ALLOWED),
        (Transport::Tcp, ALLOWED),
        (Transport::Udp, DENIED),
    ] {
        asked.store(0, Ordering::Relaxed);
        let response =
            state
                .runtime
                .block_on(handler.handle(data, client, transport, &state.policy));
        let questions = asked.load(Ordering::Relaxed);
        assert!(
            questions <= 2 * (MAX_CNAME_CHAIN + 1),
            "{questions} upstream questions for one request"
        );
        check_response(
            data,
            request.as_ref(),
            response.as_deref(),
            transport,
            state.config.server.edns_udp_size,
        );
        if let (Transport::Udp, ALLOWED, Some(response)) = (transport, client, &response) {
            check_fast_path(data, response, state.config.server.edns_udp_size);
        }
    }
}

/// The server's UDP fast path on this request and the slow path's response.
fn check_fast_path(data: &[u8], response: &[u8], edns_udp_size: u16) {
    let mut slipped = response.to_vec();
    if fastpath::truncate_to_question(&mut slipped) {
        assert_eq!(&slipped[..2], &data[..2], "slip changed the ID");
        // Finding 3 (regressions/request_path/slip-qdcount-2.bin), fixed:
        // only one-question responses are cut, into a clean packet.
        assert_eq!(
            response[4..6],
            [0, 1],
            "slip of a response without exactly one question"
        );
        let message = Message::from_vec(&slipped)
            .unwrap_or_else(|error| panic!("slip does not parse: {error}: {slipped:02x?}"));
        assert!(message.metadata.truncation, "slip without TC");
        let clean = message
            .to_vec()
            .is_ok_and(|bytes| bytes.len() == slipped.len());
        assert!(clean, "slip has trailing octets: {slipped:02x?}");
    }
    let Some(query) = fastpath::parse_query(data) else {
        return;
    };
    let cache = ReplayCache::new(16);
    cache.store(data, response, 0, 0, StoredNote::default());
    let mut replay = Vec::new();
    let limit = query.udp_limit(edns_udp_size);
    if cache.answer(&query, 0, 0, limit, &mut replay).is_some() {
        assert_eq!(
            replay, response,
            "fast-path replay differs from the slow path"
        );
    }
}

fn check_response(
    data: &[u8],
    request: Option<&Message>,
    response: Option<&[u8]>,
    transport: Transport,
    edns_udp_size: u16,
) {
    let is_query = data.len() >= 12 && data[2] & 0x80 == 0;
    let Some(bytes) = response else {
        assert!(
            !is_query,
            "no response to a request whose header parses as a query"
        );
        return;
    };
    assert!(is_query, "a response to input without a query header");
    let response = Message::from_vec(bytes)
        .unwrap_or_else(|error| panic!("response does not parse: {error}: {bytes:02x?}"));
    let id = u16::from_be_bytes([data[0], data[1]]);
    assert_eq!(
        response.metadata.id, id,
        "response ID differs from the query ID"
    );
    assert_eq!(response.metadata.message_type, MessageType::Response);
    if transport == Transport::Udp {
        assert!(
            bytes.len() <= usize::from(edns_udp_size.max(512)),
            "UDP response of {} octets",
            bytes.len()
        );
    }
    if let Some(request) = request
        && request.queries.len() == 1
    {
        assert_eq!(response.metadata.id, request.metadata.id);
        assert_eq!(response.queries, request.queries, "question not echoed");
    }
}
