//! Prometheus metrics behind one small API, and the HTTP endpoint that
//! serves them (`/metrics`) beside a health check (`/healthz`).
//!
//! The request path calls plain methods (`query`, `synthesized`, …); only
//! this module knows the metric names and the prometheus-client types.

use std::net::SocketAddr;
use std::sync::Arc;
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

use crate::handler::Transport;

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
    synthesized: Counter,
    aaaa: Family<AaaaLabels, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    cache_entries: Gauge,
    upstream_queries: Family<ServerLabels, Counter>,
    upstream_errors: Family<ServerErrorLabels, Counter>,
    upstream_latency: Family<ServerLabels, Histogram>,
    refused: Counter,
    ratelimited: Counter,
    shed: Counter,
    dnssec_bogus: Counter,
    healthy: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
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
            "Entries evicted to keep the cache within cache.max_entries",
            cache_evictions.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Entries in the cache",
            cache_entries.clone(),
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
        registry.register("shed", "Queries dropped because server.max_inflight_queries were being resolved, or TCP connections closed over server.max_tcp_connections", shed.clone());
        let ratelimited = Counter::default();
        registry.register(
            "ratelimited",
            "Responses dropped or truncated by response rate limiting",
            ratelimited.clone(),
        );
        let dnssec_bogus = Counter::default();
        registry.register(
            "dnssec_bogus",
            "Upstream answers that failed DNSSEC validation (recursive mode with upstream.dnssec_validation)",
            dnssec_bogus.clone(),
        );
        // Series an operator's dashboard divides by exist from the start.
        for kind in [
            AaaaKind::Native,
            AaaaKind::Synthesized,
            AaaaKind::Excluded,
            AaaaKind::Nodata,
        ] {
            drop(aaaa.get_or_create(&AaaaLabels { kind: kind.label() })); // creating the series is the point
        }
        Self {
            registry,
            queries,
            synthesized,
            aaaa,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_entries,
            upstream_queries,
            upstream_errors,
            upstream_latency,
            refused,
            ratelimited,
            shed,
            dnssec_bogus,
            healthy: AtomicBool::new(false),
        }
    }

    /// One query answered.
    pub fn query(&self, qtype: RecordType, transport: Transport, rcode: ResponseCode) {
        let labels = QueryLabels {
            qtype: qtype_label(qtype),
            protocol: match transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            },
            rcode: rcode_label(rcode),
        };
        self.queries.get_or_create(&labels).inc();
    }

    /// An answer with synthesized records.
    pub fn synthesized(&self) {
        self.synthesized.inc();
    }

    /// How an AAAA question was answered.
    pub fn aaaa(&self, kind: AaaaKind) {
        self.aaaa
            .get_or_create(&AaaaLabels { kind: kind.label() })
            .inc();
    }

    /// A cache hit.
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// A cache miss.
    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// An entry evicted from the cache.
    pub fn cache_eviction(&self) {
        self.cache_evictions.inc();
    }

    /// A query sent upstream.
    pub fn upstream_query(&self, server: SocketAddr) {
        self.upstream_queries
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .inc();
    }

    /// An upstream answer and how long it took.
    pub fn upstream_latency(&self, server: SocketAddr, latency: Duration) {
        self.upstream_latency
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// A failed upstream query.
    pub fn upstream_error(&self, server: SocketAddr, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&ServerErrorLabels {
                server: server.to_string(),
                kind,
            })
            .inc();
    }

    /// A query refused by the access list.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// A response limited by response rate limiting.
    pub fn ratelimited(&self) {
        self.ratelimited.inc();
    }

    /// A query or connection shed under load.
    pub fn shed(&self) {
        self.shed.inc();
    }

    /// An upstream answer that failed DNSSEC validation.
    pub fn dnssec_bogus(&self) {
        self.dnssec_bogus.inc();
    }

    /// Marks the server as serving (listeners bound) or not.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// True while the listeners are bound and serving.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
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

/// Record types with their own label value; others count as "other".
fn qtype_label(qtype: RecordType) -> &'static str {
    match qtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::ANY => "ANY",
        RecordType::CAA => "CAA",
        RecordType::CNAME => "CNAME",
        RecordType::DNSKEY => "DNSKEY",
        RecordType::DS => "DS",
        RecordType::HTTPS => "HTTPS",
        RecordType::MX => "MX",
        RecordType::NS => "NS",
        RecordType::PTR => "PTR",
        RecordType::SOA => "SOA",
        RecordType::SRV => "SRV",
        RecordType::SVCB => "SVCB",
        RecordType::TXT => "TXT",
        _ => "other",
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is stopped.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    cache_entries: Arc<dyn Fn() -> usize + Send + Sync>,
) {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let metrics_for_scrape = Arc::clone(&metrics);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics_for_scrape);
                let entries = cache_entries();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(entries),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let healthy = metrics.is_healthy();
                async move {
                    if healthy {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not serving\n")
                    }
                }
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "metrics endpoint stopped");
    }
}
