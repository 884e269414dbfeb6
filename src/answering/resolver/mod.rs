//! The query pipeline below the wire: local answers, cache, upstream and
//! DNS64 synthesis, for one question. It takes a parsed question and the
//! client's flags and returns a [`Resolution`]; the listeners in
//! [`crate::edge::server`] and the request handling in [`crate::edge::handler`] only
//! translate bytes to and from it.
//!
//! Identical concurrent cache misses share one upstream query. For AAAA
//! questions the A lookup starts in parallel, so a synthesized answer costs
//! one upstream round trip; its result lands in the cache either way, where
//! the client's own A query (happy eyeballs asks both) finds it.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::sync::OnceCell;

use crate::answering::cache::{AnswerCache, CacheKey, Cached};
use crate::answering::ddr::Designation;
use crate::answering::ede::{ExtendedError, InfoCode};
use crate::answering::upstream::{AnswerSource, UpstreamError, UpstreamFlags};
use crate::answering::zones::{LocalZones, ZoneAnswer};
use crate::dns64::answer::{Answer, MAX_CNAME_CHAIN};
use crate::dns64::dnssec::AnswerOrigin;
use crate::dns64::policy::excluded_aaaa_for;
use crate::dns64::reverse::{self, ReverseMode};
use crate::dns64::synthesis::{self, AaaaDecision};
use crate::dns64::{SynthesisPrefix, ipv4only};
use crate::ops::config::{Config, Dns64Config};
use crate::ops::metrics::Metrics;

mod stale;

/// A question as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    /// The name as asked (case preserved).
    pub name: Name,
    /// The query type.
    pub record_type: RecordType,
    /// The query class.
    pub class: DNSClass,
}

/// The client's request bits that change the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientFlags {
    /// EDNS DO.
    pub dnssec_ok: bool,
    /// CD.
    pub checking_disabled: bool,
    /// RD: with RD=0 only cached data is used (never an upstream query).
    pub recursion_desired: bool,
}

impl Default for ClientFlags {
    fn default() -> Self {
        Self {
            dnssec_ok: false,
            checking_disabled: false,
            recursion_desired: true,
        }
    }
}

/// The outcome for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// RCODE and sections.
    pub answer: Answer,
    /// True if the answer holds synthesized records.
    pub synthesized: bool,
    /// Whether DNS64 composed the answer (RFC 6147 §5.5's AD rule applies).
    pub origin: AnswerOrigin,
    /// An Extended DNS Error for the response, if any.
    pub extended_error: Option<ExtendedError>,
    /// Native AAAA existed but all were excluded (RFC 6147 §5.1.4).
    pub excluded_aaaa: bool,
}

impl Resolution {
    fn plain(answer: Answer) -> Self {
        Self {
            answer,
            synthesized: false,
            origin: AnswerOrigin::Unmodified,
            extended_error: None,
            excluded_aaaa: false,
        }
    }

    /// A forwarded answer. An upstream's REFUSED, NOTIMP or FORMERR says the
    /// upstream would not serve us, not that the name is bad: the client gets
    /// SERVFAIL with an Extended DNS Error naming the upstream's RCODE.
    fn forwarded(answer: Answer) -> Self {
        match answer.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain | ResponseCode::ServFail => {
                Self::plain(answer)
            }
            code => Self {
                answer: Answer::empty(ResponseCode::ServFail),
                synthesized: false,
                origin: AnswerOrigin::Unmodified,
                extended_error: Some(ExtendedError::new(
                    InfoCode::NetworkError,
                    format!("every upstream attempt was answered {code}"),
                )),
                excluded_aaaa: false,
            },
        }
    }

    fn failure(error: &LookupError) -> Self {
        let (code, info) = match error {
            LookupError::Upstream(UpstreamError::Timeout { .. }) => {
                (ResponseCode::ServFail, InfoCode::NoReachableAuthority)
            }
            LookupError::Upstream(UpstreamError::Network(_)) => {
                (ResponseCode::ServFail, InfoCode::NetworkError)
            }
            LookupError::Upstream(UpstreamError::NoServers) => {
                (ResponseCode::ServFail, InfoCode::NoReachableAuthority)
            }
            LookupError::Upstream(UpstreamError::Bogus(_)) => {
                (ResponseCode::ServFail, InfoCode::DnssecBogus)
            }
            LookupError::NotCached => (ResponseCode::Refused, InfoCode::NotAuthoritative),
        };
        Self {
            answer: Answer::empty(code),
            synthesized: false,
            origin: AnswerOrigin::Unmodified,
            extended_error: Some(ExtendedError::new(info, error.to_string())),
            excluded_aaaa: false,
        }
    }
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LookupError {
    /// The upstreams failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// RD=0 and the answer is not cached.
    #[error("recursion not desired (RD=0) and the answer is not cached")]
    NotCached,
}

/// How one lookup may get its data.
#[derive(Clone)]
struct LookupOptions {
    flags: UpstreamFlags,
    cache_only: bool,
    /// The local zones of the query's configuration snapshot.
    zones: Arc<LocalZones>,
}

/// What answering reads from the configuration: one immutable value per
/// configuration, taken once by each query (with its listener's policy,
/// see `edge::handler::Snapshot`), so a reload never gives one answer two
/// configurations.
pub struct AnswerSettings {
    /// The DNS64 policy.
    pub dns64: Dns64Config,
    /// DDR (RFC 9462): the `resolver.arpa` answers, when configured.
    pub designation: Option<Designation>,
    /// The local zones.
    pub zones: Arc<LocalZones>,
    /// The upstream's timing, for an AAAA question's A lookup.
    pub upstream_timing: UpstreamTiming,
}

/// The upstream's timing as configured (`upstream.timeout_ms`,
/// `upstream.attempts`), in the snapshot, so that a reload changes it for
/// the next question: how long an AAAA lookup may take before A is asked
/// alongside it, and how long the A answer is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTiming {
    /// One upstream attempt's timeout: an AAAA lookup longer than this gets
    /// its A lookup alongside (see [`Resolver::resolve_aaaa`]).
    pub attempt_timeout: Duration,
    /// `upstream.attempts` (at least 1).
    pub attempts: u32,
}

impl UpstreamTiming {
    /// The timing of `config`'s upstream.
    pub fn new(config: &Config) -> Self {
        Self {
            attempt_timeout: config.upstream.timeout,
            attempts: config.upstream.attempts.max(1),
        }
    }

    /// The upstream time bound (one attempt's timeout × attempts): an AAAA
    /// question's A lookup is not waited for past it.
    pub fn time_bound(&self) -> Duration {
        self.attempt_timeout * self.attempts
    }
}

impl std::fmt::Debug for AnswerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerSettings")
            .field("dns64", &self.dns64)
            .field("designation", &self.designation.is_some())
            .finish_non_exhaustive()
    }
}

impl AnswerSettings {
    /// Settings of a configuration, with its zones loaded and no DDR.
    pub fn new(config: &Config, zones: Arc<LocalZones>) -> Self {
        Self {
            dns64: config.dns64.clone(),
            designation: None,
            zones,
            upstream_timing: UpstreamTiming::new(config),
        }
    }
}

type SharedLookup = Arc<OnceCell<Result<Answer, UpstreamError>>>;

/// AnswerCache, upstream and DNS64 policy together.
pub struct Resolver {
    upstream: Arc<dyn AnswerSource>,
    metrics: Arc<Metrics>,
    cache: AnswerCache,
    pending_lookups: Mutex<HashMap<CacheKey, SharedLookup>>,
    /// This resolver, for background refreshes (serve-stale, prefetch).
    me: Weak<Resolver>,
    /// Some answer is being served stale now (logged when this changes).
    serving_stale: AtomicBool,
}

impl Resolver {
    /// Builds the pipeline over any [`AnswerSource`] (an in-memory one in fuzz targets and tests).
    pub fn with_source(config: &Config, forwarder: Arc<dyn AnswerSource>) -> Arc<Self> {
        Self::with_parts(config, forwarder, Arc::new(Metrics::new()))
    }

    /// Builds the pipeline over a [`AnswerSource`].
    pub(crate) fn with_parts(
        config: &Config,
        forwarder: Arc<dyn AnswerSource>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            upstream: forwarder,
            metrics,
            cache: AnswerCache::new(config.cache),
            pending_lookups: Mutex::new(HashMap::new()),
            me: me.clone(),
            serving_stale: AtomicBool::new(false),
        })
    }

    /// The cache (for statistics).
    pub(crate) fn cache(&self) -> &AnswerCache {
        &self.cache
    }

    /// Tells the answer source to forget what it remembers itself
    /// (recursive mode: the recursor's caches); see [`AnswerSource::flush`].
    pub(crate) fn flush_answer_source(&self) {
        self.upstream.flush();
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The Prometheus text exposition, with the cache's size read now.
    pub fn metrics_text(&self) -> String {
        self.metrics.set_cache_bytes(self.cache.bytes());
        self.metrics.encode(self.cache.len())
    }

    /// Answers one question. `prefixes` are the prefixes that apply to this
    /// client on this listener; empty means plain forwarding (no synthesis,
    /// and `ipv4only.arpa` is forwarded too, RFC 8880 §7).
    pub(crate) async fn resolve(
        self: &Arc<Self>,
        question: &Question,
        flags: ClientFlags,
        prefixes: &[SynthesisPrefix],
        settings: &AnswerSettings,
    ) -> Resolution {
        let options = LookupOptions {
            flags: UpstreamFlags {
                dnssec_ok: flags.dnssec_ok,
                checking_disabled: flags.checking_disabled,
            },
            cache_only: !flags.recursion_desired,
            zones: Arc::clone(&settings.zones),
        };
        if let Some(answer) = settings.designation.as_ref().and_then(|designation| {
            designation.answer(&question.name, question.record_type, question.class)
        }) {
            return Resolution::plain(answer);
        }
        let policy = &settings.dns64;
        let dns64_active = !prefixes.is_empty() && question.class == DNSClass::IN;
        if dns64_active && ipv4only::is_ipv4only_name(&question.name) {
            let local = ipv4only::answer(&question.name, question.record_type, prefixes);
            return self.synthesized(local.answer, local.synthesized, prefixes);
        }
        if dns64_active && policy.reverse != ReverseMode::Off {
            if let Some(prefix) = reverse::empty_non_terminal_of(&question.name, prefixes) {
                let answer = reverse::empty_non_terminal_answer(
                    &question.name,
                    question.record_type,
                    prefix,
                );
                return Resolution::plain(answer);
            }
        }
        if dns64_active && question.record_type == RecordType::PTR {
            if let Some(resolution) = self
                .resolve_reverse(question, options.clone(), prefixes, policy)
                .await
            {
                return resolution;
            }
        }
        if question.record_type == RecordType::ANY {
            return self.resolve_any(question, options).await;
        }
        // The name is looked up in the exclusions and the zones only when the
        // decision reads it: for an AAAA question with DNS64 active.
        let asks_name = dns64_active && question.record_type == RecordType::AAAA;
        let decision = synthesis::decide_on_question(synthesis::QuestionFacts {
            dns64_active,
            record_type: question.record_type,
            name_excluded: asks_name && policy.is_excluded_domain(&question.name),
            zone_forbids_dns64: asks_name && settings.zones.forbids_dns64(&question.name),
            dnssec_ok: flags.dnssec_ok,
            checking_disabled: flags.checking_disabled,
            break_dnssec: policy.break_dnssec,
        });
        if decision == synthesis::QuestionDecision::Dns64 {
            return self
                .resolve_aaaa(
                    question,
                    options,
                    prefixes,
                    policy,
                    settings.upstream_timing,
                )
                .await;
        }
        match self
            .lookup_following(
                &question.name,
                question.record_type,
                question.class,
                options,
            )
            .await
        {
            Ok(answer) => Resolution::forwarded(answer),
            Err(error) => Resolution::failure(&error),
        }
    }

    /// A resolution DNS64 composed, which may hold synthesized data (EDE 29 when it does).
    fn synthesized(
        &self,
        answer: Answer,
        synthesized: bool,
        prefixes: &[SynthesisPrefix],
    ) -> Resolution {
        Resolution {
            extended_error: synthesized.then(|| synthesized_note(prefixes)),
            answer,
            synthesized,
            origin: AnswerOrigin::Dns64,
            excluded_aaaa: false,
        }
    }

    /// RFC 6147 §5.1 for one AAAA question.
    async fn resolve_aaaa(
        self: &Arc<Self>,
        question: &Question,
        options: LookupOptions,
        prefixes: &[SynthesisPrefix],
        policy: &Dns64Config,
        timing: UpstreamTiming,
    ) -> Resolution {
        let name = &question.name;
        let flags = options.flags;
        // With dns64.parallel_a, the A lookup starts now (unless the AAAA
        // answer is cached: then A most likely is too). Otherwise A is asked
        // once the AAAA answer is known to be empty, as RFC 6147 §5.1 has it,
        // or alongside when the AAAA answer takes longer than one upstream
        // attempt: a silent upstream then still gets its SERVFAIL within the
        // time bound, and a server that drops AAAA questions still gets its
        // A synthesized when the AAAA lookup gives up.
        let spawn_a = || {
            let resolver = Arc::clone(self);
            let (a_name, class, a_options) = (name.clone(), question.class, options.clone());
            tokio::spawn(async move {
                resolver
                    .lookup_following(&a_name, RecordType::A, class, a_options)
                    .await
            })
        };
        let aaaa_uncached = || {
            !options.cache_only
                && self
                    .cache
                    .get(&CacheKey::new(
                        name,
                        RecordType::AAAA,
                        question.class,
                        flags.dnssec_ok,
                        flags.checking_disabled,
                    ))
                    .is_none()
        };
        let started = tokio::time::Instant::now();
        let mut a_prefetch = (policy.parallel_a && aaaa_uncached()).then(spawn_a);
        let aaaa_lookup =
            self.lookup_following(name, RecordType::AAAA, question.class, options.clone());
        let aaaa_result = if a_prefetch.is_some() || options.cache_only {
            aaaa_lookup.await
        } else {
            tokio::pin!(aaaa_lookup);
            match tokio::time::timeout(timing.attempt_timeout, &mut aaaa_lookup).await {
                Ok(result) => result,
                Err(_) => {
                    a_prefetch = Some(spawn_a());
                    aaaa_lookup.await
                }
            }
        };
        let aaaa = match aaaa_result {
            Ok(answer) => answer,
            // RFC 6147 §5.1.2: a failed AAAA lookup counts as "no AAAA" —
            // but not a bogus one: validation failure is never papered over.
            Err(LookupError::Upstream(error))
                if policy.synthesize_on == synthesis::SynthesizeOn::Rfc
                    && !matches!(error, UpstreamError::Bogus(_)) =>
            {
                Answer::empty(ResponseCode::ServFail)
            }
            Err(error) => return Resolution::failure(&error),
        };
        let excluded_aaaa = excluded_aaaa_for(prefixes, &policy.exclude_aaaa);
        let aaaa_stale = aaaa.stale;
        let decision = synthesis::decide_on_aaaa(
            name,
            aaaa,
            &excluded_aaaa,
            policy.ignores_native_aaaa(name),
            policy.synthesize_on,
        );
        let fallback = match decision {
            AaaaDecision::Native(mut answer) | AaaaDecision::PassThrough(mut answer) => {
                answer.stale |= aaaa_stale;
                return Resolution::plain(answer);
            }
            AaaaDecision::Fail => {
                let mut resolution = Resolution::plain(Answer::empty(ResponseCode::ServFail));
                resolution.extended_error = Some(ExtendedError::new(
                    InfoCode::NetworkError,
                    "the upstream failed the AAAA lookup (dns64.synthesize_on = \"nodata-only\")",
                ));
                return resolution;
            }
            AaaaDecision::Synthesize(fallback) => fallback,
        };
        let aaaa_failed = !fallback.name_exists;
        let excluded_aaaa = fallback.had_excluded;

        // The A answer is not waited for past the time bound from the start
        // of the AAAA lookup (a spawned A lookup goes on and fills the cache).
        let a_deadline = started + timing.time_bound();
        let timed_out = || {
            LookupError::Upstream(UpstreamError::Timeout {
                attempts: timing.attempts,
                timeout: timing.attempt_timeout,
            })
        };
        let a = match a_prefetch {
            Some(task) => match tokio::time::timeout_at(a_deadline, task).await {
                Ok(Ok(result)) => result,
                Ok(Err(join_error)) => {
                    tracing::error!(%join_error, "A lookup task failed");
                    Err(LookupError::Upstream(UpstreamError::Network(
                        "internal A lookup failed".into(),
                    )))
                }
                // Out of time: SERVFAIL, not the AAAA answer's NODATA.
                Err(_) => return Resolution::failure(&timed_out()),
            },
            None => match tokio::time::timeout_at(
                a_deadline,
                self.lookup_following(name, RecordType::A, question.class, options),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => return Resolution::failure(&timed_out()),
            },
        };
        let a = match a {
            Ok(answer) => answer,
            Err(error)
                if aaaa_failed
                    || matches!(error, LookupError::Upstream(UpstreamError::Bogus(_))) =>
            {
                return Resolution::failure(&error);
            }
            Err(_) => Answer::empty(ResponseCode::ServFail),
        };
        let mut result = synthesis::synthesize_from_a(name, &a, fallback, prefixes);
        // RFC 8767: an answer built from stale data is stale too.
        result.answer.stale |= aaaa_stale || a.stale;
        let mut resolution = self.synthesized(result.answer, result.synthesized, prefixes);
        resolution.excluded_aaaa = excluded_aaaa;
        resolution
    }

    /// RFC 6147 §5.3.1: PTR for an address inside a prefix. `None` when the
    /// name is not such an address (or reverse synthesis is off): forward it.
    async fn resolve_reverse(
        &self,
        question: &Question,
        options: LookupOptions,
        prefixes: &[SynthesisPrefix],
        policy: &Dns64Config,
    ) -> Option<Resolution> {
        let qname = &question.name;
        let ipv4 = match reverse::ipv4_from_reverse_name(qname) {
            // 170/171.0.0.192.in-addr.arpa answer ipv4only.arpa (RFC 8880 §7.1).
            Some(ipv4) => {
                return reverse::ipv4only_ptr(qname, ipv4).map(Resolution::plain);
            }
            None => reverse::embedded_ipv4(qname, prefixes)?,
        };
        if let Some(answer) = reverse::ipv4only_ptr(qname, ipv4) {
            return Some(self.synthesized(answer, true, prefixes));
        }
        if policy.reverse == ReverseMode::Off {
            return None;
        }
        let target = reverse::reverse_name_of(ipv4);
        let target_answer = match self
            .lookup_following(&target, RecordType::PTR, question.class, options)
            .await
        {
            Ok(answer) => answer,
            Err(error) => return Some(Resolution::failure(&error)),
        };
        if !matches!(
            target_answer.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            return Some(Resolution::plain(target_answer));
        }
        let answer = match policy.reverse {
            ReverseMode::Ptr => reverse::ptr_answer(qname, &target, target_answer),
            _ => reverse::cname_answer(qname, &target, policy.reverse_ttl, target_answer),
        };
        Some(self.synthesized(answer, true, prefixes))
    }

    /// RFC 8482: ANY gets one RRset of what the upstream has, never a fan-out
    /// and never synthesized records.
    async fn resolve_any(&self, question: &Question, options: LookupOptions) -> Resolution {
        match self
            .lookup(&question.name, RecordType::ANY, question.class, options)
            .await
        {
            Ok(mut answer) => {
                if let Some(first) = answer
                    .answers
                    .iter()
                    .find(|record| record.record_type() != RecordType::RRSIG)
                {
                    let (owner, kind) = (first.name.clone(), first.record_type());
                    answer
                        .answers
                        .retain(|record| record.name == owner && record.record_type() == kind);
                }
                answer.additionals.clear();
                Resolution::plain(answer)
            }
            Err(error) => Resolution::failure(&error),
        }
    }

    /// Looks a question up and, when the reply ends in a CNAME whose target
    /// it does not answer, follows the chain with further lookups (bounded).
    /// A CNAME loop gives SERVFAIL.
    async fn lookup_following(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        options: LookupOptions,
    ) -> Result<Answer, LookupError> {
        let mut answer = self
            .lookup(name, record_type, class, options.clone())
            .await?;
        if record_type == RecordType::CNAME {
            return Ok(answer);
        }
        for _ in 0..MAX_CNAME_CHAIN {
            if answer.response_code != ResponseCode::NoError {
                break;
            }
            let Some(target) = answer.chain_target(name) else {
                break;
            };
            let dangling = target != *name
                && answer.records_at(&target, record_type).next().is_none()
                && answer.negative_ttl().is_none();
            if !dangling {
                break;
            }
            let next = self
                .lookup(&target, record_type, class, options.clone())
                .await?;
            if next.response_code != ResponseCode::NoError
                && next.response_code != ResponseCode::NXDomain
            {
                return Ok(next);
            }
            for record in next.answers {
                if !answer.answers.contains(&record) {
                    answer.answers.push(record);
                }
            }
            answer.response_code = next.response_code;
            answer.stale |= next.stale;
            answer.authentic_data &= next.authentic_data;
            answer.authoritative &= next.authoritative;
            answer.authorities = next.authorities;
            answer.additionals = next.additionals;
        }
        if answer.response_code == ResponseCode::NoError && answer.chain_target(name).is_none() {
            tracing::debug!(%name, "CNAME loop in upstream answer");
            return Ok(Answer::empty(ResponseCode::ServFail));
        }
        Ok(answer)
    }

    /// One question through the cache; concurrent misses share one upstream query.
    async fn lookup(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        options: LookupOptions,
    ) -> Result<Answer, LookupError> {
        if !options.zones.is_empty() {
            match options
                .zones
                .lookup(name, record_type, options.flags.dnssec_ok)
                .await
            {
                ZoneAnswer::Answer { mut answer, .. } => {
                    answer.authoritative = true;
                    return Ok(answer);
                }
                // RD=0: the referral; RD=1: resolve below the cut through the upstreams.
                ZoneAnswer::Referral(referral) if options.cache_only => return Ok(referral),
                ZoneAnswer::Referral(_) | ZoneAnswer::NotLocal => {}
            }
        }
        let flags = options.flags;
        let key = CacheKey::new(
            name,
            record_type,
            class,
            flags.dnssec_ok,
            flags.checking_disabled,
        );
        match self.cache.lookup_for_client(&key) {
            Cached::Fresh(hit) => {
                self.metrics.cache_hit();
                if hit.needs_prefetch && !options.cache_only {
                    self.prefetch(key, name, record_type, class, flags);
                }
                return Ok(hit.answer);
            }
            _ if options.cache_only => return Err(LookupError::NotCached),
            Cached::Stale(stale) => {
                return self
                    .lookup_or_stale(key, name, record_type, class, flags, stale)
                    .await;
            }
            Cached::Missing => {}
        }
        let (shared, leader) = self.join_pending_lookup(&key);
        let _cleanup = leader.then(|| PendingLookupCleanup {
            resolver: self,
            key: key.clone(),
        });
        let result = shared
            .get_or_init(|| self.fetch(&key, name, record_type, class, flags))
            .await
            .clone();
        result.map_err(LookupError::from)
    }
}

/// The EDE 29 "Synthesized" note, naming the prefixes.
fn synthesized_note(prefixes: &[SynthesisPrefix]) -> ExtendedError {
    let prefixes: Vec<String> = prefixes.iter().map(|p| p.prefix.to_string()).collect();
    ExtendedError::new(
        InfoCode::Synthesized,
        format!("DNS64 synthesis under {}", prefixes.join(", ")),
    )
}

/// Removes a finished (or abandoned) lookup from the in-flight map.
struct PendingLookupCleanup<'a> {
    resolver: &'a Resolver,
    key: CacheKey,
}

impl Drop for PendingLookupCleanup<'_> {
    fn drop(&mut self) {
        let mut pending_lookups = self
            .resolver
            .pending_lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending_lookups.remove(&self.key);
    }
}
