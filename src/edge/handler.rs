//! One DNS request, bytes in and bytes out: header and shape checks
//! (FORMERR, NOTIMP, REFUSED, BADVERS), access control, the call into the
//! [`Resolver`], and the response: flags, EDNS, Extended DNS Errors and
//! truncation to the client's UDP size. Both transports use this one path,
//! so UDP and TCP answer alike.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::IpNet;

use crate::answering::ede::{ExtendedError, InfoCode};
use crate::answering::identity::Identity;
use crate::answering::resolver::{AnswerSettings, ClientFlags, Question, Resolver};
use crate::dns64::SynthesisPrefix;
use crate::dns64::dnssec::{self, ClientDnssec};
use crate::edge::cookies::{self, CookieSettings, CookieState};
use crate::edge::fastpath::StoredNote;
use crate::edge::transport::Transport;
use crate::ops::discovery::DiscoveredPrefixes;
use crate::ops::metrics::AaaaKind;
use arc_swap::ArcSwap;

/// The smallest UDP payload every DNS client accepts (RFC 1035 §4.2.1).
pub(crate) const MIN_UDP_PAYLOAD: u16 = 512;

/// What one listener allows: who may query, and the DNS64 policy there.
#[derive(Debug, Clone)]
pub struct ListenerPolicy {
    /// Networks allowed to query (others get REFUSED).
    pub access_clients: Vec<IpNet>,
    /// Synthesis on this listener.
    pub dns64: bool,
    /// Prefixes used on this listener.
    pub prefixes: Vec<SynthesisPrefix>,
    /// Discovered prefixes used on this listener too (`"discover"`).
    pub discovered: Option<Arc<DiscoveredPrefixes>>,
    /// Answers here do not depend on the client (no `dns64.clients`, no
    /// per-prefix `clients`), so the fast path may replay them.
    pub client_independent: bool,
    /// DNS Cookies here (`None`: `cookies.enabled = false`).
    pub cookies: Option<Arc<CookieSettings>>,
    /// What answering reads from the same configuration (DNS64 policy,
    /// zones, DDR); shared by every listener's policy.
    pub answering: Arc<AnswerSettings>,
    /// What CHAOS TXT and NSID tell (`[server] identity`, `version`, `nsid`).
    pub identity: Arc<Identity>,
    /// `log.queries`: one log line per query.
    pub log_queries: bool,
}

impl ListenerPolicy {
    /// Moves on when the discovered prefixes change (part of the fast path's key).
    pub(crate) fn generation(&self) -> u64 {
        self.discovered.as_ref().map_or(0, |set| set.generation())
    }
}

impl ListenerPolicy {
    /// True if `address` may query (IPv4-mapped IPv6 sources count as IPv4).
    pub(crate) fn is_allowed(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.access_clients
            .iter()
            .any(|network| network.contains(&address))
    }

    /// True if `client` may get a stored response replayed (the fast path):
    /// answers do not depend on who asks, queries are not logged one by
    /// one, and the client may query.
    pub(crate) fn replays_to(&self, client: IpAddr) -> bool {
        self.client_independent && !self.log_queries && self.is_allowed(client)
    }
}

/// One configuration as queries see it: every listener's policy, each
/// carrying the same answering settings, identity and query-log switch.
/// Built whole at start and on each reload, and swapped in one store
/// ([`SnapshotSlot`]); a query loads its listener's policy once, at its
/// start, and reads nothing else from the configuration.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The policies, by listener index (configuration order).
    pub listeners: Vec<Arc<ListenerPolicy>>,
    /// The answering settings every policy above shares.
    pub answering: Arc<AnswerSettings>,
}

/// The snapshot in force, replaceable while serving.
pub(crate) struct SnapshotSlot(ArcSwap<Snapshot>);

impl SnapshotSlot {
    /// A slot holding `snapshot`.
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(snapshot))
    }

    /// The snapshot in force now.
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// The policy of listener `index` in the snapshot in force now.
    pub(crate) fn policy(&self, index: usize) -> Arc<ListenerPolicy> {
        Arc::clone(&self.0.load().listeners[index])
    }

    /// Puts a new snapshot in force (one atomic store); queries already
    /// running finish under the one they took.
    pub(crate) fn replace(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

/// Turns request bytes into response bytes.
pub struct QueryHandler {
    resolver: Arc<Resolver>,
    edns_udp_size: u16,
}

/// A response and what the fast path needs to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The encoded response, without the COOKIE option (so it can be
    /// stored and replayed to other clients).
    pub bytes: Vec<u8>,
    /// Metrics facts about it.
    pub note: StoredNote,
    /// The COOKIE option data for this client, appended when sending (see
    /// [`Reply::into_bytes`]).
    pub cookie: Option<[u8; cookies::COOKIE_LEN]>,
    /// The query carried a valid server cookie: its source address is not
    /// forged, so rate limiting does not apply (RFC 7873 §5.2.5).
    pub valid_cookie: bool,
}

impl Reply {
    /// A reply without cookie.
    fn plain(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            note: StoredNote::default(),
            cookie: None,
            valid_cookie: false,
        }
    }

    /// The bytes to send: the response with its COOKIE option.
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        if let Some(cookie) = &self.cookie {
            // Every response to a query with a well-formed COOKIE has an OPT at its end.
            if !crate::edge::fastpath::append_cookie(&mut self.bytes, cookie) {
                tracing::debug!("response without an OPT record at its end; cookie not sent");
            }
        }
        self.bytes
    }
}

/// What happened to one request, for metrics and the query log.
#[derive(Debug, Default)]
struct Outcome {
    refused: bool,
    resolved: bool,
    synthesized: bool,
    excluded_aaaa: bool,
    /// Served from expired cache data (RFC 8767).
    stale: bool,
}

impl QueryHandler {
    /// A handler over a resolver, with our EDNS payload size.
    pub fn new(resolver: Arc<Resolver>, edns_udp_size: u16) -> Self {
        Self {
            resolver,
            edns_udp_size,
        }
    }

    /// The prefixes that apply to `client` on a listener (empty: no synthesis).
    fn prefixes_for(&self, listener: &ListenerPolicy, client: IpAddr) -> Vec<SynthesisPrefix> {
        if !listener.dns64 || !listener.answering.dns64.serves(client) {
            return Vec::new();
        }
        let discovered = listener.discovered.as_ref().map(|set| set.current());
        listener
            .prefixes
            .iter()
            .chain(discovered.iter().flat_map(|set| set.iter()))
            .filter(|prefix| prefix.serves(client))
            .cloned()
            .collect()
    }

    /// The resolver behind this handler.
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// Handles one request; `None` means send nothing (no header, or not a query).
    pub async fn handle(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        listener: &ListenerPolicy,
    ) -> Option<Vec<u8>> {
        self.handle_reply(request, client, transport, listener)
            .await
            .map(Reply::into_bytes)
    }

    /// Our EDNS UDP payload size.
    pub(crate) fn edns_udp_size(&self) -> u16 {
        self.edns_udp_size
    }

    /// Like [`Self::handle`], with what the fast path needs to replay the response.
    pub(crate) async fn handle_reply(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        listener: &ListenerPolicy,
    ) -> Option<Reply> {
        let header = Header::read(&mut BinDecoder::new(request)).ok()?;
        if header.metadata.message_type != MessageType::Query {
            return None; // never answer responses: reflection loops
        }
        let started = std::time::Instant::now();
        let metrics = self.resolver.metrics();
        let message = match Message::from_vec(request) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%client, %error, "malformed request");
                let mut response = Message::response(header.metadata.id, header.metadata.op_code);
                response.metadata.recursion_desired = header.metadata.recursion_desired;
                response.metadata.response_code = ResponseCode::FormErr;
                metrics.query(RecordType::Unknown(0), transport, ResponseCode::FormErr);
                return encode(&response, transport, MIN_UDP_PAYLOAD).map(Reply::plain);
            }
        };
        let cookie = listener
            .cookies
            .as_deref()
            .map_or(CookieState::Absent, |settings| {
                cookie_state(settings, &message, client)
            });
        if cookie != CookieState::Absent {
            metrics.cookie(cookie.label());
        }
        let response_cookie = listener.cookies.as_deref().and_then(|settings| {
            let client_cookie = cookie.client_cookie()?;
            Some(
                settings
                    .keys
                    .response_cookie(&client_cookie, client.ip(), cookies::unix_now()),
            )
        });
        // Access control and BADVERS come before cookies (REFUSED stays REFUSED).
        let cookie_answers_first = listener.is_allowed(client.ip())
            && message
                .edns
                .as_ref()
                .is_some_and(|edns| edns.version() == 0);
        let early = cookie_answers_first
            .then(|| cookie_only_response(&message, cookie, transport, self.edns_udp_size))
            .flatten();
        if let Some(response) = early {
            metrics.query(
                message
                    .queries
                    .first()
                    .map_or(RecordType::Unknown(0), |query| query.query_type()),
                transport,
                response.metadata.response_code,
            );
            return encode(&response, transport, MIN_UDP_PAYLOAD).map(|bytes| Reply {
                cookie: response_cookie,
                ..Reply::plain(bytes)
            });
        }
        let valid_cookie = matches!(cookie, CookieState::Valid(_));
        let mut outcome = Outcome::default();
        let (response, mut limit) = self.respond(message, client, listener, &mut outcome).await;
        if transport == Transport::Udp {
            let requires_cookie = listener
                .cookies
                .as_deref()
                .is_some_and(|settings| settings.require_for_large_udp);
            if requires_cookie && !valid_cookie {
                limit = limit.min(cookies::LARGE_UDP_RESPONSE);
            }
            if response_cookie.is_some() {
                // Room for the COOKIE option appended when sending.
                limit = limit.saturating_sub(4 + cookies::COOKIE_LEN as u16);
            }
        }
        let rcode = response.metadata.response_code;
        let question = response.queries.first();
        let qtype = question.map_or(RecordType::Unknown(0), |query| query.query_type());
        metrics.query(qtype, transport, rcode);
        if outcome.refused {
            metrics.refused();
        }
        if outcome.synthesized {
            metrics.synthesized();
        }
        let mut note = StoredNote {
            synthesized: outcome.synthesized,
            aaaa: None,
            stale: outcome.stale,
        };
        if qtype == RecordType::AAAA && outcome.resolved {
            let has_aaaa = response
                .answers
                .iter()
                .any(|record| record.record_type() == RecordType::AAAA);
            let kind = match (outcome.synthesized, outcome.excluded_aaaa, has_aaaa) {
                (true, true, _) => AaaaKind::Excluded,
                (true, false, _) => AaaaKind::Synthesized,
                (false, _, true) => AaaaKind::Native,
                (false, _, false) => AaaaKind::Nodata,
            };
            metrics.aaaa(kind);
            note.aaaa = Some(kind);
        }
        if listener.log_queries {
            tracing::info!(
                target: "dns64d::query",
                %client,
                name = %question.map(|query| query.name().to_string()).unwrap_or_default(),
                qtype = %qtype,
                protocol = ?transport,
                rcode = %rcode,
                synthesized = outcome.synthesized,
                latency_us = started.elapsed().as_micros() as u64,
                "query"
            );
        }
        encode(&response, transport, limit).map(|bytes| Reply {
            bytes,
            note,
            cookie: response_cookie,
            valid_cookie,
        })
    }

    /// Builds the response message and the UDP size limit for it.
    async fn respond(
        &self,
        request: Message,
        client: SocketAddr,
        listener: &ListenerPolicy,
        outcome: &mut Outcome,
    ) -> (Message, u16) {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.checking_disabled = request.metadata.checking_disabled;
        response.metadata.recursion_available = true;
        response.queries = request.queries.clone();

        let mut limit = MIN_UDP_PAYLOAD;
        let mut dnssec_ok = false;
        if let Some(client_edns) = &request.edns {
            dnssec_ok = client_edns.flags().dnssec_ok;
            limit = client_edns
                .max_payload()
                .clamp(MIN_UDP_PAYLOAD, self.edns_udp_size);
            let mut edns = Edns::new();
            edns.set_max_payload(self.edns_udp_size)
                .set_dnssec_ok(dnssec_ok);
            listener.identity.add_nsid(client_edns, &mut edns);
            response.set_edns(edns);
            if client_edns.version() > 0 {
                // RFC 6891 §6.1.3: unsupported version.
                response.metadata.response_code = ResponseCode::BADVERS;
                return (response, limit);
            }
        }

        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return (response, limit);
        }
        if request.queries.len() != 1 {
            response.metadata.response_code = ResponseCode::FormErr;
            return (response, limit);
        }
        if !listener.is_allowed(client.ip()) {
            outcome.refused = true;
            refuse(client, &mut response);
            return (response, limit);
        }
        let query = &request.queries[0];
        let record_type = query.query_type();
        if query.query_class() == DNSClass::CH {
            listener.identity.answer_chaos(query, &mut response);
            return (response, limit);
        }
        if query.query_class() != DNSClass::IN {
            response.metadata.response_code = ResponseCode::Refused;
            return (response, limit);
        }
        match record_type {
            RecordType::OPT => {
                response.metadata.response_code = ResponseCode::FormErr;
                return (response, limit);
            }
            RecordType::AXFR | RecordType::IXFR => {
                response.metadata.response_code = ResponseCode::Refused;
                return (response, limit);
            }
            _ => {}
        }

        let question = Question {
            name: query.name().clone(),
            record_type,
            class: query.query_class(),
        };
        let flags = ClientFlags {
            dnssec_ok,
            checking_disabled: request.metadata.checking_disabled,
            recursion_desired: request.metadata.recursion_desired,
        };
        let prefixes = self.prefixes_for(listener, client.ip());
        let resolution = self
            .resolver
            .resolve(&question, flags, &prefixes, &listener.answering)
            .await;
        let answer = resolution.answer;
        outcome.resolved = true;
        outcome.stale = answer.stale;
        outcome.synthesized = resolution.synthesized;
        outcome.excluded_aaaa = resolution.excluded_aaaa;
        response.metadata.response_code = answer.response_code;
        response.metadata.authoritative = answer.authoritative;
        response.metadata.authentic_data = dnssec::response_authentic_data(
            answer.authentic_data,
            resolution.origin,
            ClientDnssec {
                dnssec_ok,
                checking_disabled: request.metadata.checking_disabled,
                authentic_data: request.metadata.authentic_data,
            },
        );
        response.answers = answer.answers;
        response.authorities = answer.authorities;
        response.additionals = answer.additionals;
        if let Some(error) = resolution.extended_error {
            if error.code.fixed_text().is_some() {
                tracing::debug!(%client, code = error.code as u16, detail = %error.text, "extended DNS error");
            }
            if let Some(edns) = response.edns.as_mut() {
                edns.options_mut().insert(error.to_option());
            }
        }
        if let (Some(edns), true) = (response.edns.as_mut(), outcome.stale) {
            let note = ExtendedError::new(
                InfoCode::StaleAnswer,
                "the upstreams failed; served from expired cache data",
            );
            edns.options_mut().insert(note.to_option());
        }
        (response, limit)
    }
}

/// Refuses a client outside `access.clients`: REFUSED with Extended DNS
/// Error 18 (Prohibited) when it sent EDNS, and a log line at most every
/// [`REFUSED_LOG_INTERVAL_SECONDS`] saying how many were refused since.
fn refuse(client: SocketAddr, response: &mut Message) {
    response.metadata.response_code = ResponseCode::Refused;
    if let Some(edns) = response.edns.as_mut() {
        edns.options_mut()
            .insert(ExtendedError::new(InfoCode::Prohibited, "").to_option());
    }
    static SINCE_LOG: AtomicU64 = AtomicU64::new(0);
    static LAST_LOG: AtomicU64 = AtomicU64::new(0);
    let refused = SINCE_LOG.fetch_add(1, Ordering::Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let last = LAST_LOG.load(Ordering::Relaxed);
    if now >= last.saturating_add(REFUSED_LOG_INTERVAL_SECONDS)
        && LAST_LOG
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        SINCE_LOG.fetch_sub(refused, Ordering::Relaxed);
        tracing::info!(%client, refused, "refused queries from clients not in access.clients (this one, and the count since the last such line)");
    }
}

/// Least seconds between two log lines about refused clients.
pub(crate) const REFUSED_LOG_INTERVAL_SECONDS: u64 = 10;

/// What the COOKIE option of `request` says under `settings` (RFC 7873 §5.2:
/// only the first COOKIE option counts).
fn cookie_state(settings: &CookieSettings, request: &Message, client: SocketAddr) -> CookieState {
    let Some(edns) = &request.edns else {
        return CookieState::Absent;
    };
    let option = edns
        .options()
        .options
        .iter()
        .find(|(code, _)| u16::from(*code) == cookies::COOKIE_OPTION_CODE);
    let Some((_, option)) = option else {
        return CookieState::Absent;
    };
    match Vec::<u8>::try_from(option) {
        Ok(data) => settings.keys.check(&data, client.ip(), cookies::unix_now()),
        Err(_) => CookieState::Malformed,
    }
}

/// The response a query gets for its cookie alone, if any:
/// - a malformed COOKIE option: FORMERR (RFC 7873 §5.2.2);
/// - no question, only a COOKIE (RFC 7873 §5.4, asking for a server
///   cookie): NOERROR, or BADCOOKIE when its server cookie is not ours;
/// - a server cookie that is not ours (or too old) over UDP: BADCOOKIE with
///   a fresh cookie and no records (RFC 7873 §5.2.4, §5.3: the client
///   retries with it), so a forged source gets nothing to amplify.
fn cookie_only_response(
    request: &Message,
    cookie: CookieState,
    transport: Transport,
    edns_udp_size: u16,
) -> Option<Message> {
    let response_code = match cookie {
        CookieState::Malformed => ResponseCode::FormErr,
        CookieState::Invalid(_) if request.queries.is_empty() || transport == Transport::Udp => {
            ResponseCode::BADCOOKIE
        }
        CookieState::ClientOnly(_) | CookieState::Valid(_) if request.queries.is_empty() => {
            ResponseCode::NoError
        }
        _ => return None,
    };
    if request.metadata.op_code != OpCode::Query {
        return None; // NOTIMP comes first
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.metadata.recursion_available = true;
    response.metadata.response_code = response_code;
    response.queries = request.queries.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(edns_udp_size);
    response.set_edns(edns);
    Some(response)
}

/// Encodes a response; over UDP, one larger than `limit` is sent with TC=1
/// and no records, so the client retries over TCP (RFC 7766 §5).
fn encode(response: &Message, transport: Transport, limit: u16) -> Option<Vec<u8>> {
    let bytes = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "cannot encode response; sending SERVFAIL");
            let mut failure = Message::response(response.metadata.id, response.metadata.op_code);
            failure.queries = response.queries.clone();
            failure.metadata.response_code = ResponseCode::ServFail;
            failure.metadata.recursion_available = true;
            return failure.to_vec().ok();
        }
    };
    if transport != Transport::Udp || bytes.len() <= usize::from(limit) {
        return Some(bytes);
    }
    let mut truncated = Message::response(response.metadata.id, response.metadata.op_code);
    truncated.metadata = response.metadata;
    truncated.metadata.truncation = true;
    truncated.queries = response.queries.clone();
    if let Some(edns) = &response.edns {
        let mut edns = edns.clone();
        edns.options_mut().options.clear();
        truncated.set_edns(edns);
    }
    truncated.to_vec().ok()
}
