//! What every listener task shares ([`ServeContext`]), and the steps of one
//! query that do not depend on the transport: the fast path over stored
//! responses, rate limiting, and handing the rest to the handler.
//!
//! Overload never makes a query vanish: over `server.max_inflight_queries`
//! a query is answered SERVFAIL at once (`dns64d_shed_total`), and with a
//! time bound (recursive mode) a query still unanswered when the bound has
//! passed since its arrival, however long it waited to run, is answered
//! SERVFAIL then (`dns64d_deadline_expired_total`). Both are logged in a
//! summary line at most once a minute.

use super::active_queries::ActiveQueries;
use super::tcp::ConnectionSlots;
#[cfg(not(target_os = "linux"))]
use super::udp::{ListenerSocket, send_reply};
#[cfg(target_os = "linux")]
use super::udp_linux::{ListenerSocket, send_reply};
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::edge::cookies::{self, CookieState};
use crate::edge::fastpath::{self, ReplayCache};
use crate::edge::handler::{ListenerPolicy, QueryHandler, Reply, SnapshotSlot};
use crate::edge::pktinfo::ReplySource;
use crate::edge::ratelimit::{RateLimiter, Verdict};
use crate::edge::transport::Transport;
use crate::ops::logging::{SUMMARY_INTERVAL_SECONDS, Summary};
use crate::ops::metrics::Metrics;

/// What a listener task needs to answer a query.
#[derive(Clone)]
pub(crate) struct ServeContext {
    pub(super) handler: Arc<QueryHandler>,
    /// What queries read from the configuration; this listener's policy is
    /// at `listener_id`.
    pub(super) snapshot: Arc<SnapshotSlot>,
    pub(super) active_queries: Arc<ActiveQueries>,
    pub(super) responses: Arc<ReplayCache>,
    pub(super) listener_id: u32,
    pub(super) limiter: Option<Arc<RateLimiter>>,
    pub(super) max_inflight_queries: usize,
    /// The longest a query may take from its arrival to its answer, waiting
    /// to run included (recursive mode: the recursion's time bound);
    /// `None`: bounded by the upstream timeouts alone.
    pub(super) query_bound: Option<std::time::Duration>,
    /// This listener's connection slots (TCP, DoT, DoH).
    pub(super) connections: Arc<ConnectionSlots>,
    /// Becomes true when the server shuts down: stream listeners stop
    /// accepting, their connections stop reading queries.
    pub(super) stop: tokio::sync::watch::Receiver<bool>,
}

impl ServeContext {
    /// Returns once the server is shutting down (or gone).
    pub(crate) async fn stopping(&self) {
        let mut stop = self.stop.clone();
        // An error means the server is gone, which is a stop as well.
        let _ = stop.wait_for(|stopping| *stopping).await;
    }
}

impl ServeContext {
    /// Applies response rate limiting to a UDP response in `reply`; false:
    /// send nothing. A client with a valid server cookie is not limited: its
    /// address is not forged (RFC 7873 §5.2.5).
    pub(super) fn rate_limit(
        &self,
        client: SocketAddr,
        valid_cookie: bool,
        reply: &mut Vec<u8>,
    ) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        if valid_cookie {
            return true;
        }
        match limiter.check(client.ip()) {
            Verdict::Send => true,
            Verdict::Slip => {
                self.handler.resolver().metrics().ratelimited();
                fastpath::truncate_to_question(reply)
            }
            Verdict::Drop => {
                self.handler.resolver().metrics().ratelimited();
                false
            }
        }
    }
}

/// What the fast path did with one datagram.
pub(super) enum FastOutcome {
    /// `reply` holds the answer to send.
    Answer,
    /// Answered, but rate limiting says to send nothing.
    Silenced,
    /// Not answerable from stored responses: hand it to the slow path.
    Slow,
}

impl ServeContext {
    /// Tries to answer `packet` under `policy` from the response cache into `reply`.
    pub(super) fn answer_fast(
        &self,
        policy: &ListenerPolicy,
        packet: &[u8],
        client: SocketAddr,
        reply: &mut Vec<u8>,
    ) -> FastOutcome {
        let Some(query) = fastpath::parse_query(packet) else {
            return FastOutcome::Slow;
        };
        if !policy.replays_to(client.ip()) {
            return FastOutcome::Slow;
        }
        let mut limit = query.udp_limit(self.handler.edns_udp_size());
        let mut cookie = None;
        if let Some(settings) = &policy.cookies {
            let now = cookies::unix_now();
            let state = match query.cookie {
                Some(option) => settings.keys.check(option, client.ip(), now),
                None => CookieState::Absent,
            };
            let client_cookie = match state {
                CookieState::Absent => None,
                CookieState::ClientOnly(client_cookie) | CookieState::Valid(client_cookie) => {
                    Some(client_cookie)
                }
                // FORMERR and BADCOOKIE come from the slow path.
                CookieState::Malformed | CookieState::Invalid(_) => return FastOutcome::Slow,
            };
            let valid = matches!(state, CookieState::Valid(_));
            if settings.require_for_large_udp && !valid {
                limit = limit.min(usize::from(cookies::LARGE_UDP_RESPONSE));
            }
            if let Some(client_cookie) = client_cookie {
                limit = limit.saturating_sub(4 + cookies::COOKIE_LEN);
                cookie = Some((
                    state,
                    settings
                        .keys
                        .response_cookie(&client_cookie, client.ip(), now),
                ));
            }
        }
        let Some(hit) =
            self.responses
                .answer(&query, self.listener_id, policy.generation(), limit, reply)
        else {
            return FastOutcome::Slow;
        };
        let metrics = self.handler.resolver().metrics();
        let mut valid_cookie = false;
        if let Some((state, response_cookie)) = &cookie {
            if !hit.append_cookie(reply, response_cookie) {
                return FastOutcome::Slow;
            }
            metrics.cookie(state.label());
            valid_cookie = matches!(state, CookieState::Valid(_));
        }
        record_hit(metrics, &hit, Transport::Udp);
        if self.rate_limit(client, valid_cookie, reply) {
            FastOutcome::Answer
        } else {
            FastOutcome::Silenced
        }
    }

    /// Answers `packet` under `policy` through the full request path in its
    /// own task, then stores the response for the fast path when that is safe.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn answer_slow(
        &self,
        socket: &ListenerSocket,
        policy: Arc<ListenerPolicy>,
        cache_generation: u64,
        packet: &[u8],
        client: SocketAddr,
    ) {
        // Each socket is bound to one address here (`bind_each_local_address`).
        let source = None;
        match self.slow_task(socket, policy, cache_generation, packet, client, source) {
            Ok(task) => {
                tokio::spawn(task);
            }
            Err(Some(busy)) => {
                let socket = Arc::clone(socket);
                tokio::spawn(async move { send_reply(&socket, &busy, client, source).await });
            }
            Err(None) => {}
        }
    }

    /// The task that answers `packet` under `policy` through the full
    /// request path (SERVFAIL if the query's time bound runs out first),
    /// then stores the response for the fast path when that is safe.
    /// `cache_generation` is the response cache's generation taken before
    /// `policy` was read. When too many queries are being answered already,
    /// the query is shed instead: `Err` with the SERVFAIL to send at once
    /// (`None`: not a query, send nothing).
    pub(super) fn slow_task(
        &self,
        socket: &ListenerSocket,
        policy: Arc<ListenerPolicy>,
        cache_generation: u64,
        packet: &[u8],
        client: SocketAddr,
        source: Option<ReplySource>,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static, Option<Vec<u8>>> {
        let arrived = tokio::time::Instant::now();
        let Some(guard) = self.active_queries.try_enter(self.max_inflight_queries) else {
            // Shed load rather than queue without bound, and say so.
            let mut busy = self.shed(packet, Transport::Udp);
            if let Some(bytes) = &mut busy {
                if !self.rate_limit(client, false, bytes) {
                    return Err(None);
                }
            }
            return Err(busy);
        };
        let request = packet.to_vec();
        let generation = replay_generation(cache_generation, &policy);
        let socket = Arc::clone(socket);
        let context = self.clone();
        Ok(async move {
            let _guard = guard;
            let answering = context
                .handler
                .handle_reply(&request, client, Transport::Udp, &policy);
            let Some(response) = (match context.within_bound(arrived, answering).await {
                Ok(response) => response,
                Err(()) => {
                    if let Some(mut late) = context.expired(&request, Transport::Udp) {
                        if context.rate_limit(client, false, &mut late) {
                            send_reply(&socket, &late, client, source).await;
                        }
                    }
                    return;
                }
            }) else {
                return;
            };
            // The stored response has no cookie; the one sent has this client's.
            let mut sent = response.clone().into_bytes();
            if context.rate_limit(client, response.valid_cookie, &mut sent) {
                send_reply(&socket, &sent, client, source).await;
            }
            context.store_for_replay(&policy, generation, &request, &response);
        })
    }

    /// Stores the response to `request` for the fast path when `policy`
    /// allows it (answers that do not depend on the client), under
    /// `generation`: the [`replay_generation`] taken before answering.
    fn store_for_replay(
        &self,
        policy: &ListenerPolicy,
        generation: u64,
        request: &[u8],
        reply: &Reply,
    ) {
        if policy.client_independent {
            self.responses.store(
                request,
                &reply.bytes,
                self.listener_id,
                generation,
                reply.note,
            );
        }
    }
}

/// The generation a response is computed under, read before computing it:
/// the response cache's (`cache_generation`, taken before `policy` was
/// read) plus the policy's, which moves when discovered prefixes change
/// (it is read live). Read after answering, a change meanwhile would be
/// papered over: an answer computed without the new prefix would be stored
/// as current.
fn replay_generation(cache_generation: u64, policy: &ListenerPolicy) -> u64 {
    cache_generation.wrapping_add(policy.generation())
}

/// Counts a fast-path answer like the slow path would have.
pub(super) fn record_hit(metrics: &Metrics, hit: &fastpath::Hit, transport: Transport) {
    metrics.query(
        RecordType::from(hit.qtype),
        transport,
        ResponseCode::from_low(hit.rcode),
    );
    metrics.cache_hit();
    if hit.note.synthesized {
        metrics.synthesized();
    }
    if let Some(kind) = hit.note.aaaa {
        metrics.aaaa(kind);
    }
}

impl ServeContext {
    /// Answers one query that came over a stream transport (TCP, DoT, DoH,
    /// DoQ): from a stored response if one fits ([`Self::answer_stream_stored`]),
    /// else through the full request path ([`Self::answer_stream_resolved`]).
    /// `None`: send nothing.
    pub(crate) async fn answer_stream(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        if let Some(response) = self.answer_stream_stored(request, client, transport) {
            return Some(response);
        }
        let arrived = tokio::time::Instant::now();
        // Boxed, so that this future stays small for the stored answers
        // (the resolving one is about 10 KiB, moved with every task it is in).
        Box::pin(self.answer_stream_resolved(request, client, transport, arrived)).await
    }

    /// Answers one stream query through the full request path, within the
    /// query's time bound counted from `arrived` (when it was read). While
    /// `server.max_inflight_queries` are being answered, it is answered
    /// SERVFAIL at once instead and counted as shed: a UDP client retries
    /// after silence, but a stream client would wait on its connection.
    /// `None`: send nothing.
    pub(crate) async fn answer_stream_resolved(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        arrived: tokio::time::Instant,
    ) -> Option<Vec<u8>> {
        // The cache generation is taken before the policy (see `slow_task`).
        let cache_generation = self.responses.generation();
        let policy = self.policy();
        let generation = replay_generation(cache_generation, &policy);
        let Some(_guard) = self.active_queries.try_enter(self.max_inflight_queries) else {
            return self.shed(request, transport);
        };
        let answering = self
            .handler
            .handle_reply(request, client, transport, &policy);
        let reply = match self.within_bound(arrived, answering).await {
            Ok(reply) => reply?,
            Err(()) => return self.expired(request, transport),
        };
        // Replayed to later queries of this listener over any transport
        // (over UDP only when it fits the client's payload size).
        self.store_for_replay(&policy, generation, request, &reply);
        Some(reply.into_bytes())
    }

    /// The fast path for a stream transport (TCP, DoT, DoH, DoQ): the answer
    /// from a stored response, at once and with no task of its own, replayed
    /// as over UDP with no size limit but the message's own; `None`: it needs
    /// [`Self::answer_stream_resolved`]. A query with a COOKIE option takes
    /// the full path (which answers it with this client's cookie).
    pub(crate) fn answer_stream_stored(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let policy = self.policy();
        let query = fastpath::parse_query(request)?;
        if query.cookie.is_some() || !policy.replays_to(client.ip()) {
            return None;
        }
        let mut reply = Vec::new();
        let hit = self.responses.answer(
            &query,
            self.listener_id,
            policy.generation(),
            usize::from(u16::MAX),
            &mut reply,
        )?;
        record_hit(self.handler.resolver().metrics(), &hit, transport);
        Some(reply)
    }

    /// Runs `answering` until the query's time bound, counted from
    /// `arrived`, runs out (`Err`).
    async fn within_bound<T>(
        &self,
        arrived: tokio::time::Instant,
        answering: impl std::future::Future<Output = T>,
    ) -> Result<T, ()> {
        match self.query_bound {
            Some(bound) => tokio::time::timeout_at(arrived + bound, answering)
                .await
                .map_err(|_| ()),
            None => Ok(answering.await),
        }
    }

    /// The SERVFAIL for a query shed over `server.max_inflight_queries`,
    /// counted and summarized in the log.
    fn shed(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let metrics = self.handler.resolver().metrics();
        metrics.shed();
        log_overload(Overload::Shed);
        let (qtype, response) = busy_response(request, self.handler.edns_udp_size())?;
        metrics.query(qtype, transport, ResponseCode::ServFail);
        Some(response)
    }

    /// The SERVFAIL for a query whose time bound ran out, counted and
    /// summarized in the log.
    fn expired(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let metrics = self.handler.resolver().metrics();
        metrics.deadline_expired();
        log_overload(Overload::Expired);
        let (qtype, response) = busy_response(request, self.handler.edns_udp_size())?;
        metrics.query(qtype, transport, ResponseCode::ServFail);
        Some(response)
    }

    /// This listener's policy in the snapshot in force now: taken once per
    /// query, at its start.
    pub(super) fn policy(&self) -> Arc<ListenerPolicy> {
        self.snapshot.policy(self.listener_id as usize)
    }
}

/// What overload did to a query.
#[derive(Debug, Clone, Copy)]
enum Overload {
    /// Shed over `server.max_inflight_queries`.
    Shed = 0,
    /// Answered SERVFAIL when its time bound ran out.
    Expired = 1,
}

/// Queries shed or expired since the last summary line, by [`Overload`].
static OVERLOAD: Summary<2> = Summary::new(SUMMARY_INTERVAL_SECONDS);

/// Counts a query lost to overload; logs the summary line when one is due.
fn log_overload(what: Overload) {
    if let Some([shed, expired]) = OVERLOAD.record(what as usize) {
        tracing::warn!(
            shed,
            expired,
            "queries answered SERVFAIL unresolved: shed over server.max_inflight_queries, or their time bound passed, waiting included (counts since the last such line; dns64d_shed_total, dns64d_deadline_expired_total)"
        );
    }
}

/// SERVFAIL for a query that came while too many were being answered, with
/// its question type (for the metrics); `None` for a message that is not a
/// query (never answer responses) or has no header. The question and the
/// flags are echoed, and an OPT record sent to a client that sent one.
fn busy_response(request: &[u8], edns_udp_size: u16) -> Option<(RecordType, Vec<u8>)> {
    let header = Header::read(&mut BinDecoder::new(request)).ok()?;
    if header.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(header.metadata.id, header.metadata.op_code);
    response.metadata.recursion_desired = header.metadata.recursion_desired;
    response.metadata.checking_disabled = header.metadata.checking_disabled;
    response.metadata.recursion_available = true;
    response.metadata.response_code = ResponseCode::ServFail;
    let mut qtype = RecordType::Unknown(0);
    if let Ok(query) = Message::from_vec(request) {
        if let Some(question) = query.queries.first() {
            qtype = question.query_type();
        }
        response.queries = query.queries;
        if query.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(edns_udp_size);
            response.set_edns(edns);
        }
    }
    Some((qtype, response.to_vec().ok()?))
}
