//! Prometheus metrics behind one small API, and the HTTP endpoint that
//! serves them (`/metrics`) beside the health check (`/healthz`: can this
//! server answer?) and the readiness check (`/readyz`: are listeners and
//! zones up?), see [`crate::ops::health`].
//!
//! The request path calls plain methods (`query`, `synthesized`, …); only
//! this module knows the metric names and the prometheus-client types.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::edge::transport::Transport;

/// Labels of `dns64d_queries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    qtype: &'static str,
    protocol: &'static str,
    rcode: &'static str,
}

/// Labels of `dns64d_aaaa_answers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AaaaLabels {
    kind: &'static str,
}

/// Labels of the per-upstream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

/// Labels of `dns64d_upstream_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerErrorLabels {
    server: String,
    kind: &'static str,
}

/// One upstream server's query counter and latency histogram (handles
/// into `dns64d_upstream_queries_total` and
/// `dns64d_upstream_latency_seconds`), from [`Metrics::upstream_series`].
#[derive(Clone, Debug)]
pub(crate) struct UpstreamSeries {
    server: SocketAddr,
    queries: Counter,
    latency: Histogram,
}

/// Labels of `dns64d_recursion_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why the recursor gave a question up (`dns64d_recursion_failures_total`):
/// a limit per question, or a fault of the name servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecursionFailure {
    /// The question's time bound ran out.
    Timeout,
    /// More referrals (or CNAME links) than `upstream.recursion_limit`.
    RecursionLimit,
    /// More CNAME lookups than the recursor follows for one question.
    CnameChain,
    /// More upstream queries than the recursor sends for one question.
    QueryBudget,
    /// DNSSEC validation failed.
    Bogus,
    /// No name server gave a usable answer (lame, refused, network errors).
    Unreachable,
}

impl RecursionFailure {
    /// Every reason, in the order of the metric's series.
    pub(crate) const ALL: [Self; 6] = [
        Self::Timeout,
        Self::RecursionLimit,
        Self::CnameChain,
        Self::QueryBudget,
        Self::Bogus,
        Self::Unreachable,
    ];

    /// The metric's label (also used in log summaries).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::RecursionLimit => "recursion_limit",
            Self::CnameChain => "cname_chain",
            Self::QueryBudget => "query_budget",
            Self::Bogus => "bogus",
            Self::Unreachable => "unreachable",
        }
    }
}

/// How an AAAA question was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AaaaKind {
    /// Native AAAA records returned.
    Native,
    /// AAAA records synthesized from A.
    Synthesized,
    /// Native AAAA existed but were all excluded (`dns64.exclude_aaaa`), then synthesis ran.
    Excluded,
    /// Neither native nor synthesized AAAA: NODATA or NXDOMAIN.
    Nodata,
}

impl AaaaKind {
    fn label(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Synthesized => "synthesized",
            Self::Excluded => "excluded",
            Self::Nodata => "nodata",
        }
    }
}

/// Every metric dns64d exports.
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    /// The series of `queries`, looked up once each: the answer path counts
    /// every query, and a family lookup (hash the labels, take a lock) costs
    /// more than the increment. Created on first use, so /metrics lists only
    /// the combinations seen.
    query_series: Box<[OnceLock<Counter>]>,
    synthesized: Counter,
    /// The four series of `dns64d_aaaa_answers_total`, by [`AaaaKind`].
    aaaa_series: [Counter; 4],
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    upstream_queries: Family<ServerLabels, Counter>,
    upstream_errors: Family<ServerErrorLabels, Counter>,
    upstream_latency: Family<ServerLabels, Histogram>,
    refused: Counter,
    ratelimited: Counter,
    shed: Counter,
    /// SERVFAIL answers given when a query's time bound ran out.
    deadline_expired: Counter,
    /// One series per [`RecursionFailure`], in the order of [`RecursionFailure::ALL`].
    recursion_failures: [Counter; 6],
    /// Serve-stale, prefetch and cookie counters (see `register_resilience`).
    resilience: Resilience,
    dnssec_bogus: Counter,
    ready: AtomicBool,
    upstream_health: crate::ops::upstream_health::UpstreamHealth,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("dns64d");
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "queries",
            "Queries answered, by type, protocol and RCODE",
            queries.clone(),
        );
        let synthesized = Counter::default();
        registry.register(
            "synthesized_answers",
            "Answers holding synthesized records (AAAA or reverse)",
            synthesized.clone(),
        );
        let aaaa = Family::<AaaaLabels, Counter>::default();
        registry.register("aaaa_answers", "AAAA answers by kind: native, synthesized, excluded (native AAAA all excluded), nodata", aaaa.clone());
        let cache_hits = Counter::default();
        registry.register(
            "cache_hits",
            "Lookups answered from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "cache_misses",
            "Lookups that went upstream",
            cache_misses.clone(),
        );
        let cache_evictions = Counter::default();
        registry.register(
            "cache_evictions",
            "Entries evicted to keep the cache within cache.max_entries and cache.max_memory",
            cache_evictions.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Entries in the cache",
            cache_entries.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "Bytes the answer cache's entries take, as the cache estimates them (cache.max_memory bounds them to half its value)",
            cache_bytes.clone(),
        );
        let upstream_queries = Family::<ServerLabels, Counter>::default();
        registry.register(
            "upstream_queries",
            "Queries sent to each upstream server",
            upstream_queries.clone(),
        );
        let upstream_errors = Family::<ServerErrorLabels, Counter>::default();
        registry.register("upstream_errors", "Failed upstream queries by server and kind (timeout, network, servfail, refused, other)", upstream_errors.clone());
        let upstream_latency = Family::<ServerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "upstream_latency_seconds",
            "Upstream answer latency by server",
            upstream_latency.clone(),
        );
        let refused = Counter::default();
        registry.register(
            "refused",
            "Queries refused because the client is not in the access list",
            refused.clone(),
        );
        let shed = Counter::default();
        registry.register("shed", "Queries shed because server.max_inflight_queries were being resolved (answered SERVFAIL at once), or TCP connections closed over server.max_tcp_connections or the per-client limit", shed.clone());
        let deadline_expired = Counter::default();
        registry.register("deadline_expired", "Queries answered SERVFAIL because their time bound ran out before an answer (recursive mode: upstream.timeout_ms x upstream.attempts from arrival, time spent waiting to run included)", deadline_expired.clone());
        let failures = Family::<ReasonLabels, Counter>::default();
        registry.register("recursion_failures", "Recursive mode: questions the recursor gave up, by reason: timeout (the time bound), recursion_limit (more referrals and CNAME links than upstream.recursion_limit), cname_chain (too many CNAME lookups), query_budget (too many upstream queries for one question), bogus (DNSSEC), unreachable (no name server answered usefully)", failures.clone());
        let recursion_failures = RecursionFailure::ALL.map(|reason| {
            failures
                .get_or_create(&ReasonLabels {
                    reason: reason.label(),
                })
                .clone()
        });
        let ratelimited = Counter::default();
        registry.register(
            "ratelimited",
            "Responses dropped or truncated by response rate limiting",
            ratelimited.clone(),
        );
        let resilience = Resilience::register(&mut registry);
        let dnssec_bogus = Counter::default();
        registry.register(
            "dnssec_bogus",
            "Upstream answers that failed DNSSEC validation (recursive mode with upstream.dnssec_validation)",
            dnssec_bogus.clone(),
        );
        // Series an operator's dashboard divides by exist from the start.
        let aaaa_series = [
            AaaaKind::Native,
            AaaaKind::Synthesized,
            AaaaKind::Excluded,
            AaaaKind::Nodata,
        ]
        .map(|kind| {
            aaaa.get_or_create(&AaaaLabels { kind: kind.label() })
                .clone()
        });
        let query_series = (0..QTYPE_LABELS.len() * PROTOCOL_LABELS.len() * RCODE_LABELS.len())
            .map(|_| OnceLock::new())
            .collect();
        Self {
            registry,
            queries,
            query_series,
            synthesized,
            aaaa_series,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_entries,
            cache_bytes,
            upstream_queries,
            upstream_errors,
            upstream_latency,
            refused,
            ratelimited,
            shed,
            deadline_expired,
            recursion_failures,
            resilience,
            dnssec_bogus,
            ready: AtomicBool::new(false),
            upstream_health: crate::ops::upstream_health::UpstreamHealth::default(),
        }
    }

    /// One query answered.
    pub(crate) fn query(&self, qtype: RecordType, transport: Transport, rcode: ResponseCode) {
        let (qtype, rcode) = (qtype_index(qtype), rcode_index(rcode));
        let transport = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::Https => 3,
            Transport::Quic => 4,
        };
        let series = &self.query_series
            [(qtype * PROTOCOL_LABELS.len() + transport) * RCODE_LABELS.len() + rcode];
        series
            .get_or_init(|| {
                let labels = QueryLabels {
                    qtype: QTYPE_LABELS[qtype],
                    protocol: PROTOCOL_LABELS[transport],
                    rcode: RCODE_LABELS[rcode],
                };
                self.queries.get_or_create(&labels).clone()
            })
            .inc();
    }

    /// An answer with synthesized records.
    pub(crate) fn synthesized(&self) {
        self.synthesized.inc();
    }

    /// How an AAAA question was answered.
    pub(crate) fn aaaa(&self, kind: AaaaKind) {
        let index = match kind {
            AaaaKind::Native => 0,
            AaaaKind::Synthesized => 1,
            AaaaKind::Excluded => 2,
            AaaaKind::Nodata => 3,
        };
        self.aaaa_series[index].inc();
    }

    /// A cache hit.
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// A cache miss.
    pub(crate) fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// Entries evicted from the cache to make room.
    pub(crate) fn cache_evictions(&self, evicted: usize) {
        if evicted > 0 {
            self.cache_evictions.inc_by(evicted as u64);
        }
    }

    /// The series of one upstream server, looked up once when the server is
    /// set up: formatting the label and finding it in the family are not
    /// per-query work.
    pub(crate) fn upstream_series(&self, server: SocketAddr) -> UpstreamSeries {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        UpstreamSeries {
            server,
            queries: self.upstream_queries.get_or_create(&labels).clone(),
            latency: self.upstream_latency.get_or_create(&labels).clone(),
        }
    }

    /// A query sent upstream.
    pub(crate) fn upstream_query(&self, series: &UpstreamSeries) {
        series.queries.inc();
    }

    /// An upstream answer and how long it took.
    pub(crate) fn upstream_latency(&self, series: &UpstreamSeries, latency: Duration) {
        self.upstream_health.answered(series.server);
        series.latency.observe(latency.as_secs_f64());
    }

    /// A failed upstream query.
    pub(crate) fn upstream_error(&self, server: SocketAddr, kind: &'static str) {
        if matches!(kind, "timeout" | "network") {
            self.upstream_health.failed(server, kind);
        }
        self.upstream_errors
            .get_or_create(&ServerErrorLabels {
                server: server.to_string(),
                kind,
            })
            .inc();
    }

    /// A query refused by the access list.
    pub(crate) fn refused(&self) {
        self.refused.inc();
    }

    /// A response limited by response rate limiting.
    pub(crate) fn ratelimited(&self) {
        self.ratelimited.inc();
    }

    /// An answer served stale (RFC 8767).
    pub(crate) fn stale_answer(&self) {
        self.resilience.stale_answers.inc();
    }

    /// A background refresh of a cached answer started (prefetch).
    pub(crate) fn prefetch(&self) {
        self.resilience.prefetches.inc();
    }

    /// A query with a DNS Cookie, by what its server cookie was.
    /// `kind` is one of `client_only`, `valid`, `invalid`, `malformed`
    /// (others are not counted).
    pub(crate) fn cookie(&self, kind: &'static str) {
        if let Some(index) = COOKIE_KINDS.iter().position(|known| *known == kind) {
            self.resilience.cookies[index].inc();
        }
    }

    /// A query or connection shed under load.
    pub(crate) fn shed(&self) {
        self.shed.inc();
    }

    /// A query answered SERVFAIL because its time bound ran out.
    pub(crate) fn deadline_expired(&self) {
        self.deadline_expired.inc();
    }

    /// A question the recursor gave up.
    pub(crate) fn recursion_failure(&self, reason: RecursionFailure) {
        if let Some(counter) = self.recursion_failures.get(reason as usize) {
            counter.inc();
        }
    }

    /// An upstream answer that failed DNSSEC validation.
    pub(crate) fn dnssec_bogus(&self) {
        self.dnssec_bogus.inc();
    }

    /// Marks the server as ready (listeners bound, zones loaded) or not (stopping).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// True while the listeners are bound and the zones loaded.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The health of the upstream servers.
    pub fn upstream_health(&self) -> &crate::ops::upstream_health::UpstreamHealth {
        &self.upstream_health
    }

    /// Queries answered since start, by RCODE label (only those seen).
    pub(crate) fn queries_by_rcode(&self) -> Vec<(&'static str, u64)> {
        let mut totals = vec![0u64; RCODE_LABELS.len()];
        for (index, series) in self.query_series.iter().enumerate() {
            if let Some(counter) = series.get() {
                let rcode = index % RCODE_LABELS.len();
                totals[rcode] = totals[rcode].saturating_add(counter.get());
            }
        }
        RCODE_LABELS
            .iter()
            .zip(totals)
            .filter(|(_, count)| *count > 0)
            .map(|(label, count)| (*label, count))
            .collect()
    }

    /// Queries refused by the access list since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.get()
    }

    /// Sets `dns64d_cache_bytes`: the answer cache's bytes, as it estimates them.
    pub fn set_cache_bytes(&self, cache_bytes: usize) {
        self.cache_bytes
            .set(i64::try_from(cache_bytes).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition, with the cache size read now.
    pub fn encode(&self, cache_entries: usize) -> String {
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        text
    }
}

/// Record types with their own label value; the last one, "other", counts the rest.
const QTYPE_LABELS: [&str; 16] = [
    "A", "AAAA", "ANY", "CAA", "CNAME", "DNSKEY", "DS", "HTTPS", "MX", "NS", "PTR", "SOA", "SRV",
    "SVCB", "TXT", "other",
];

fn qtype_index(qtype: RecordType) -> usize {
    match qtype {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::ANY => 2,
        RecordType::CAA => 3,
        RecordType::CNAME => 4,
        RecordType::DNSKEY => 5,
        RecordType::DS => 6,
        RecordType::HTTPS => 7,
        RecordType::MX => 8,
        RecordType::NS => 9,
        RecordType::PTR => 10,
        RecordType::SOA => 11,
        RecordType::SRV => 12,
        RecordType::SVCB => 13,
        RecordType::TXT => 14,
        _ => 15,
    }
}

/// Response codes with their own label value; the last one, "other", counts the rest.
/// The `protocol` label of `dns64d_queries_total`, indexed as in [`Metrics::query`].
const PROTOCOL_LABELS: [&str; 5] = ["udp", "tcp", "tls", "https", "quic"];

const RCODE_LABELS: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];

fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_series_carry_their_own_labels() {
        let metrics = Metrics::new();
        metrics.query(RecordType::TXT, Transport::Tcp, ResponseCode::NXDomain);
        metrics.query(RecordType::TXT, Transport::Tcp, ResponseCode::NXDomain);
        metrics.query(RecordType::AAAA, Transport::Udp, ResponseCode::NoError);
        metrics.query(RecordType::NULL, Transport::Udp, ResponseCode::YXDomain);
        metrics.aaaa(AaaaKind::Excluded);
        let text = metrics.encode(0);
        for expected in [
            r#"dns64d_queries_total{qtype="TXT",protocol="tcp",rcode="NXDOMAIN"} 2"#,
            r#"dns64d_queries_total{qtype="AAAA",protocol="udp",rcode="NOERROR"} 1"#,
            r#"dns64d_queries_total{qtype="other",protocol="udp",rcode="other"} 1"#,
            r#"dns64d_aaaa_answers_total{kind="excluded"} 1"#,
            r#"dns64d_aaaa_answers_total{kind="native"} 0"#,
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "{expected}\n{text}"
            );
        }
        assert_eq!(
            text.matches("dns64d_queries_total{").count(),
            3,
            "only the series seen"
        );
    }

    #[test]
    fn every_label_index_names_its_own_type() {
        for (index, label) in QTYPE_LABELS.iter().enumerate().take(QTYPE_LABELS.len() - 1) {
            let record_type: RecordType = label.parse().unwrap();
            assert_eq!(qtype_index(record_type), index, "{label}");
        }
        for (index, code) in [
            ResponseCode::NoError,
            ResponseCode::FormErr,
            ResponseCode::ServFail,
            ResponseCode::NXDomain,
            ResponseCode::NotImp,
            ResponseCode::Refused,
            ResponseCode::BADVERS,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(rcode_index(code), index, "{code}");
        }
    }
}

/// The `kind` labels of `dns64d_cookies_total`.
const COOKIE_KINDS: [&str; 4] = ["client_only", "valid", "invalid", "malformed"];

/// Label of `dns64d_cookies_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CookieLabels {
    /// `client_only`, `valid`, `invalid`, `malformed`.
    kind: &'static str,
}

/// The counters of serve-stale, prefetch and DNS Cookies.
#[derive(Debug)]
struct Resilience {
    stale_answers: Counter,
    prefetches: Counter,
    /// One series per [`COOKIE_KINDS`] entry, made at start (the fast path counts them).
    cookies: [Counter; 4],
}

impl Resilience {
    fn register(registry: &mut Registry) -> Self {
        let stale_answers = Counter::default();
        registry.register(
            "stale_answers",
            "Answers served from expired cache entries because the upstreams failed (RFC 8767 serve-stale)",
            stale_answers.clone(),
        );
        let prefetches = Counter::default();
        registry.register(
            "prefetches",
            "Cached answers refreshed in the background because they were asked for late in their TTL",
            prefetches.clone(),
        );
        let family = Family::<CookieLabels, Counter>::default();
        registry.register(
            "cookies",
            "Queries carrying a DNS Cookie (RFC 7873), by the state of their server cookie",
            family.clone(),
        );
        let cookies = COOKIE_KINDS.map(|kind| family.get_or_create(&CookieLabels { kind }).clone());
        Self {
            stale_answers,
            prefetches,
            cookies,
        }
    }
}
