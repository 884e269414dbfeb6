//! Recursive mode (`upstream.mode = "recursive"`): questions are resolved
//! from the root instead of being forwarded, behind the same
//! [`AnswerSource`] interface, so the cache, DNS64 synthesis and everything
//! else work exactly as in forward mode.
//!
//! Two engines resolve ([`Engine`]):
//! - without DNSSEC validation (the default), the project's own iteration
//!   on hickory-proto ([`iterative`]: zone cuts, name server round-trip
//!   times and lameness in [`zone_cuts`], one exchange in [`exchange`]);
//! - with `upstream.dnssec_validation`, hickory-resolver's recursor, whose
//!   validator is built into it. Its delegation cache holds
//!   `cache.max_entries` zone cuts and its response cache a thirty-second of
//!   that (dns64d's own cache holds the answers); its UDP sockets come from
//!   the shared pool ([`sockets`]); its negative results (errors in its API)
//!   are turned back into NXDOMAIN/NODATA answers with the SOA, which the
//!   TTL rule needs. It offers no way to empty its caches, so `dns64d ctl
//!   flush` replaces it with a new one built from the same settings
//!   ([`AnswerSource::flush`]); `flush NAME` cannot reach into it.
//!
//! Limits per question: the time bound (`upstream.timeout_ms` ×
//! `upstream.attempts`, here and, from the query's arrival, at the edge),
//! the referral depth (`upstream.recursion_limit`), and caps on CNAME links
//! and upstream queries per question (the iteration's 12 and 100,
//! hickory's 64 and 200). A question given up is counted by reason in
//! `dns64d_recursion_failures_total` and logged in a summary line at most
//! once a minute, never a line per query: NXDOMAIN and NODATA are answers,
//! not failures, and hickory's warnings about them are filtered out of the
//! default log (`ops::logging`).
//!
//! With `recursion.nat64_prefix` (an IPv6-only host), queries to IPv4 name
//! server addresses go to those addresses embedded in the prefix instead
//! ([`reach`]), through the network's NAT64, as Unbound's `do-nat64` and
//! BIND's `resolver-use-dns64` do; IPv6 addresses are used as they are.
//!
//! With `upstream.dnssec_validation`, the recursor validates from the trust
//! anchor (the IANA root keys, or `upstream.trust_anchor`). Its proofs become
//! the answer's AD bit here; a bogus answer becomes [`UpstreamError::Bogus`]
//! (SERVFAIL with Extended DNS Error 6) unless the client set CD, which gets
//! the data unvalidated (RFC 4035 §3.2.2). Whether a synthesized answer
//! carries AD is RFC 6147 §5.5's rule, in [`crate::dns64::dnssec`].

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::dnssec::{DnssecSummary, Proof};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::config::{ConnectionConfig, ProtocolConfig};
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::recursor::{
    DnssecConfig, DnssecPolicy, Recursor, RecursorError, RecursorOptions,
};
use hickory_resolver::{ConnectionProvider, PoolContext};

mod exchange;
mod iterative;
mod sockets;
mod zone_cuts;

use self::iterative::{Iteration, IterationSettings};
use self::sockets::PooledRuntime;
use crate::answering::upstream::{AnswerSource, UpstreamError, UpstreamFlags};
use crate::dns64::Nat64Prefix;
use crate::dns64::answer::Answer;
use crate::ops::config::recursion::{
    RecursionFileError, RecursiveSettings, read_root_hints, read_trust_anchor,
};
use crate::ops::logging::{SUMMARY_INTERVAL_SECONDS, Summary};
use crate::ops::metrics::{Metrics, RecursionFailure};

/// Why recursive mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecursiveError {
    /// The root hints or the trust anchor could not be used.
    #[error(transparent)]
    Files(#[from] RecursionFileError),
    /// The recursor could not be built.
    #[error("cannot start the recursor: {0}")]
    Recursor(String),
}

/// The recursor behind the [`AnswerSource`] interface.
pub(crate) struct RecursiveResolver {
    engine: Engine,
    timeout: Duration,
    validating: bool,
    metrics: Arc<Metrics>,
}

/// What resolves: the project's iteration, or (validating) hickory's recursor.
enum Engine {
    /// The project's iteration on hickory-proto ([`iterative`]).
    Iterative(Box<Iteration>),
    /// hickory's recursor with its DNSSEC validator (`upstream.dnssec_validation`).
    Validating(Box<ValidatingRecursor>),
}

/// hickory's recursor, and how to build an empty one.
struct ValidatingRecursor {
    /// The recursor in use; a flush swaps in a new, empty one (queries
    /// already running finish with the old one).
    recursor: RwLock<Arc<Recursor<NameServerConnections>>>,
    /// What a new recursor is built from.
    build: RecursorBuild,
}

/// The arguments of [`Recursor::new`], kept to build an empty recursor on
/// a flush.
struct RecursorBuild {
    roots: Vec<IpAddr>,
    policy: DnssecPolicy,
    options: RecursorOptions,
    connections: NameServerConnections,
}

impl ValidatingRecursor {
    /// The recursor in use now.
    fn current(&self) -> Arc<Recursor<NameServerConnections>> {
        Arc::clone(&self.recursor.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl RecursorBuild {
    fn recursor(&self) -> Result<Recursor<NameServerConnections>, RecursorError> {
        Recursor::new(
            &self.roots,
            self.policy.clone(),
            None,
            self.options.clone(),
            self.connections.clone(),
        )
    }
}

/// How the recursor opens its connections to name servers: hickory's, on
/// UDP sockets kept between queries ([`sockets`]), with IPv4 addresses
/// rewritten into `recursion.nat64_prefix` when it is set, and a UDP
/// exchange given up after [`name_server_timeout`] so the next name server
/// of the zone is tried.
#[derive(Clone, Default)]
pub(crate) struct NameServerConnections {
    runtime: PooledRuntime,
    nat64_prefix: Option<Nat64Prefix>,
    udp_timeout: Duration,
}

/// How long the recursor waits for one name server over UDP before it tries
/// the zone's next one: half the question's time bound, from 100 ms to 800 ms
/// (Unbound starts at 376 ms for a server it has no RTT for). hickory's own
/// is 5 s, its whole budget for a zone, so a zone whose first name server was
/// silent got SERVFAIL although another one answered. Not less than half the
/// bound: a busy host answering late is not a dead server (a fifth made the
/// flood test's live servers time out on a loaded CI machine).
fn name_server_timeout(question_bound: Duration) -> Duration {
    (question_bound / 2).clamp(Duration::from_millis(100), Duration::from_millis(800))
}

/// The address a name server at `address` is reached at: an IPv4 one
/// inside `nat64_prefix` when it is set.
fn reach(address: IpAddr, nat64_prefix: Option<&Nat64Prefix>) -> IpAddr {
    match (address, nat64_prefix) {
        (IpAddr::V4(ipv4), Some(prefix)) => IpAddr::V6(prefix.embed(ipv4)),
        _ => address,
    }
}

impl ConnectionProvider for NameServerConnections {
    type Conn = <PooledRuntime as ConnectionProvider>::Conn;
    type FutureConn = <PooledRuntime as ConnectionProvider>::FutureConn;
    type RuntimeProvider = PooledRuntime;

    fn new_connection(
        &self,
        address: IpAddr,
        config: &ConnectionConfig,
        context: &PoolContext,
    ) -> Result<Self::FutureConn, NetError> {
        let address = reach(address, self.nat64_prefix.as_ref());
        if matches!(config.protocol, ProtocolConfig::Udp) {
            // As hickory's provider builds it, with the shorter timeout.
            let stream = UdpClientStream::builder(
                SocketAddr::new(address, config.port),
                self.runtime.clone(),
            )
            .with_timeout(Some(self.udp_timeout))
            .with_os_port_selection(context.options.os_port_selection)
            .avoid_local_ports(context.options.avoid_local_udp_ports.clone())
            .with_bind_addr(config.bind_addr);
            return Ok(Box::pin(async move { Ok(stream.exchange()) }));
        }
        self.runtime.new_connection(address, config, context)
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.runtime
    }
}

impl RecursiveResolver {
    /// Reads the root hints and builds the recursor.
    pub(crate) fn new(
        settings: &RecursiveSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RecursiveError> {
        let roots = read_root_hints(settings.root_hints.as_deref())?;
        let defaults = RecursorOptions::default();
        let denied = if settings.query_private_nameservers {
            Vec::new()
        } else {
            defaults.deny_server.clone()
        };
        let engine = if settings.dnssec_validation {
            Self::validating_engine(settings, roots, defaults, denied)?
        } else {
            let iteration = IterationSettings {
                recursion_limit: settings.recursion_limit,
                server_timeout: name_server_timeout(settings.timeout),
                case_randomization: settings.case_randomization,
                edns_udp_size: settings.edns_udp_size,
                denied,
                nat64_prefix: settings.nat64_prefix,
            };
            let entries = usize::try_from(settings.cache_entries).unwrap_or(usize::MAX);
            Engine::Iterative(Box::new(Iteration::new(iteration, &roots, entries)))
        };
        Ok(Self {
            engine,
            timeout: settings.timeout,
            validating: settings.dnssec_validation,
            metrics,
        })
    }

    /// hickory's recursor, validating from the trust anchor.
    fn validating_engine(
        settings: &RecursiveSettings,
        roots: Vec<IpAddr>,
        defaults: RecursorOptions,
        denied: Vec<ipnet::IpNet>,
    ) -> Result<Engine, RecursiveError> {
        let options = RecursorOptions {
            // The answers themselves are kept in dns64d's own cache; the
            // recursor's response cache mostly held a second copy of them (with
            // every section) and made recursive mode's RSS 2.7× Unbound's. A
            // thirty-second of `cache.max_entries` keeps what resolution reuses
            // (moka admits by frequency, so name servers' addresses stay):
            // measured at 20 000 zones, RSS 237 → 113 MB, no more upstream
            // queries per name, and less CPU.
            response_cache_size: (settings.cache_entries / 32).max(1024),
            // Delegations (a name server pool per zone cut) as many as answers:
            // hickory's default of 1024 makes a recursor serving more zones than
            // that ask the parents again for delegations it had.
            ns_cache_size: usize::try_from(settings.cache_entries)
                .unwrap_or(usize::MAX)
                .max(1),
            recursion_limit: settings.recursion_limit,
            ns_recursion_limit: settings.recursion_limit,
            case_randomization: settings.case_randomization,
            edns_payload_len: settings.edns_udp_size,
            deny_server: denied,
            ..defaults
        };
        let mut dnssec = DnssecConfig::default();
        dnssec.trust_anchor = read_trust_anchor(settings.trust_anchor.as_deref())?.map(Arc::new);
        let build = RecursorBuild {
            roots,
            policy: DnssecPolicy::ValidateWithStaticKey(dnssec),
            options,
            connections: NameServerConnections {
                runtime: PooledRuntime::default(),
                nat64_prefix: settings.nat64_prefix,
                udp_timeout: name_server_timeout(settings.timeout),
            },
        };
        let recursor = build
            .recursor()
            .map_err(|error| RecursiveError::Recursor(error.to_string()))?;
        Ok(Engine::Validating(Box::new(ValidatingRecursor {
            recursor: RwLock::new(Arc::new(recursor)),
            build,
        })))
    }
}

#[async_trait::async_trait]
impl AnswerSource for RecursiveResolver {
    /// Swaps in a new recursor: its response, name server, connection and
    /// DNSSEC validation caches start empty, as after a restart. Building
    /// one from the settings that built the first cannot fail in practice
    /// (no I/O, the same checks); if it does, the old one stays and says so.
    fn flush(&self) {
        let (recursor, build) = match &self.engine {
            Engine::Iterative(iteration) => return iteration.clear(),
            Engine::Validating(validating) => (&validating.recursor, &validating.build),
        };
        match build.recursor() {
            Ok(empty) => {
                *recursor.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(empty);
            }
            Err(error) => {
                tracing::error!(%error, "flush: cannot build an empty recursor; the recursor's caches keep their entries");
            }
        }
    }

    async fn query(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        // One time limit for everything this question costs, the CNAME workaround included.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let validating = match &self.engine {
            Engine::Validating(validating) => validating,
            Engine::Iterative(iteration) => {
                let resolution = iteration.resolve(name, record_type, class, flags.dnssec_ok);
                return match tokio::time::timeout_at(deadline, resolution).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(gave_up)) => {
                        self.failed(gave_up.reason, name, record_type, &gave_up.detail);
                        Err(UpstreamError::Network(format!(
                            "recursion failed: {}",
                            gave_up.detail
                        )))
                    }
                    Err(_) => Err(self.out_of_time(name, record_type)),
                };
            }
        };
        let recursor = validating.current();
        match self
            .resolve(&recursor, name, record_type, class, flags, deadline)
            .await
        {
            Err(_) => Err(self.out_of_time(name, record_type)),
            Ok(Ok(message)) => {
                let (answer, summary) = self.positive_answer(name, record_type, message, flags);
                if summary == DnssecSummary::Bogus && !flags.checking_disabled {
                    self.failed(RecursionFailure::Bogus, name, record_type, &"bogus answer");
                    return Err(UpstreamError::Bogus(format!(
                        "{name} {record_type}: the answer's signatures do not validate"
                    )));
                }
                Ok(answer)
            }
            Ok(Err(error)) => {
                if self.validating
                    && !flags.checking_disabled
                    && record_type != RecordType::CNAME
                    && is_bogus_denial(&error)
                {
                    if let Some(answer) = self
                        .validated_cname(&recursor, name, class, flags, deadline)
                        .await
                    {
                        return Ok(answer);
                    }
                }
                let result = self.negative_answer(name, record_type, error, flags);
                if let Err((reason, error)) = &result {
                    self.failed(*reason, name, record_type, error);
                }
                result.map_err(|(_, error)| error)
            }
        }
    }
}

/// Recursion failures since the last summary line, by [`RecursionFailure`].
static FAILURES: Summary<6> = Summary::new(SUMMARY_INTERVAL_SECONDS);

impl RecursiveResolver {
    /// A question that ran out of its time bound: counted, and its error.
    fn out_of_time(&self, name: &Name, record_type: RecordType) -> UpstreamError {
        self.failed(
            RecursionFailure::Timeout,
            name,
            record_type,
            &"no answer in time",
        );
        UpstreamError::Timeout {
            attempts: 1,
            timeout: self.timeout,
        }
    }

    /// Counts a question given up, and logs the summary line when one is due
    /// (naming this question as an example).
    fn failed(
        &self,
        reason: RecursionFailure,
        name: &Name,
        record_type: RecordType,
        detail: &dyn std::fmt::Display,
    ) {
        self.metrics.recursion_failure(reason);
        if let Some(counts) = FAILURES.record(reason as usize) {
            let by_reason: Vec<String> = RecursionFailure::ALL
                .iter()
                .zip(counts)
                .filter(|(_, count)| *count > 0)
                .map(|(reason, count)| format!("{} {count}", reason.label()))
                .collect();
            tracing::warn!(
                failures = %by_reason.join(", "),
                example = %format_args!("{name} {record_type}: {detail}"),
                "recursion gave questions up, answered SERVFAIL (counts since the last such line; dns64d_recursion_failures_total)"
            );
        }
    }
}

/// What kind of failure a recursor error is. hickory wraps some errors of
/// the delegation walk into text ("no nameserver found for …: <error>"), so
/// the text is read when the variant says nothing.
fn failure_reason(error: &RecursorError) -> RecursionFailure {
    match error {
        RecursorError::RecursionLimitExceeded { .. } => return RecursionFailure::RecursionLimit,
        RecursorError::QueryBudgetExceeded => return RecursionFailure::QueryBudget,
        RecursorError::MaxRecordLimitExceeded {
            record_type: RecordType::CNAME,
            ..
        } => return RecursionFailure::CnameChain,
        RecursorError::Timeout => return RecursionFailure::Timeout,
        _ if error.is_timeout() => return RecursionFailure::Timeout,
        _ => {}
    }
    let text = error.to_string();
    if text.contains("maximum recursion limit exceeded") {
        RecursionFailure::RecursionLimit
    } else if text.contains("per-request query budget exceeded") {
        RecursionFailure::QueryBudget
    } else if text.contains("maximum record limit for CNAME") {
        RecursionFailure::CnameChain
    } else if text.contains("timed out") {
        RecursionFailure::Timeout
    } else {
        RecursionFailure::Unreachable
    }
}

/// Whether the recursor judged a denial of existence bogus.
fn is_bogus_denial(error: &RecursorError) -> bool {
    matches!(
        error,
        RecursorError::Net(NetError::Dns(DnsError::Nsec {
            proof: Proof::Bogus,
            ..
        }))
    )
}

impl RecursiveResolver {
    /// One question to the recursor, answered by `deadline`.
    async fn resolve(
        &self,
        recursor: &Recursor<NameServerConnections>,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
        deadline: tokio::time::Instant,
    ) -> Result<Result<Message, RecursorError>, tokio::time::error::Elapsed> {
        let mut query = Query::query(name.clone(), record_type);
        query.set_query_class(class);
        let resolution = recursor.resolve(query, std::time::Instant::now(), flags.dnssec_ok);
        tokio::time::timeout_at(deadline, resolution).await
    }

    /// The recursor's answer as dns64d passes it on: in CNAME-chain order,
    /// without DNSSEC records unless the client set DO, and (when
    /// validating) with AD from the validator's verdict, which is returned too.
    fn positive_answer(
        &self,
        name: &Name,
        record_type: RecordType,
        message: Message,
        flags: UpstreamFlags,
    ) -> (Answer, DnssecSummary) {
        let mut answer = Answer::from_message(message);
        // Validated messages are rebuilt from sets: restore the chain's order.
        answer.order_chain(name);
        // The recursor's cache may hand back signatures fetched for a DO query.
        if !flags.dnssec_ok
            && !matches!(
                record_type,
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
        {
            answer.strip_dnssec();
        }
        let summary = DnssecSummary::from_records(answer.answers.iter());
        if self.validating {
            answer.authentic_data = summary == DnssecSummary::Secure;
        }
        (answer, summary)
    }

    /// Works around a gap of hickory 0.26's validator: when a CNAME leads into
    /// another zone and the target does not exist (or lacks the type), the
    /// target zone's denial is checked against the original name and found
    /// bogus (hickory PR #3598). If the name's CNAME validates on its own, the
    /// CNAME alone is returned; the resolver then follows it and the target's
    /// answer is validated on its own, so every link is still checked.
    async fn validated_cname(
        &self,
        recursor: &Recursor<NameServerConnections>,
        name: &Name,
        class: DNSClass,
        flags: UpstreamFlags,
        deadline: tokio::time::Instant,
    ) -> Option<Answer> {
        let message = self
            .resolve(recursor, name, RecordType::CNAME, class, flags, deadline)
            .await
            .ok()?
            .ok()?;
        let (mut answer, summary) = self.positive_answer(name, RecordType::CNAME, message, flags);
        let has_cname = answer
            .answers
            .iter()
            .any(|record| record.record_type() == RecordType::CNAME && record.name == *name);
        if !has_cname || summary == DnssecSummary::Bogus {
            return None;
        }
        answer.response_code = ResponseCode::NoError;
        answer.authorities.clear();
        answer.additionals.clear();
        Some(answer)
    }

    /// Turns the recursor's negative results back into answers: the SOA for
    /// the TTL rule, and when validating the proof's verdict (AD) and, for
    /// DO clients, the NSEC/NSEC3 records and signatures.
    fn negative_answer(
        &self,
        name: &Name,
        record_type: RecordType,
        error: RecursorError,
        flags: UpstreamFlags,
    ) -> Result<Answer, (RecursionFailure, UpstreamError)> {
        if let RecursorError::Net(NetError::Dns(DnsError::Nsec { response, .. })) = &error {
            // The denial's proof did not validate as secure.
            if is_bogus_denial(&error) && !flags.checking_disabled {
                return Err((
                    RecursionFailure::Bogus,
                    UpstreamError::Bogus(format!(
                        "{name} {record_type}: the denial of existence does not validate"
                    )),
                ));
            }
            let mut answer = Answer::empty(response.response_code);
            answer.authorities = response
                .authorities
                .iter()
                .filter(|record| flags.dnssec_ok || matches!(record.data, RData::SOA(_)))
                .cloned()
                .collect();
            return Ok(answer);
        }
        if !error.is_nx_domain() && !error.is_no_records_found() {
            return Err((
                failure_reason(&error),
                UpstreamError::Network(format!("recursion failed: {error}")),
            ));
        }
        let code = if error.is_nx_domain() {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        let mut answer = Answer::empty(code);
        let proofs: Vec<Record> = match &error {
            RecursorError::Negative(data) => data.authorities.as_deref().unwrap_or(&[]).to_vec(),
            RecursorError::Net(NetError::Dns(DnsError::NoRecordsFound(no_records))) => {
                no_records.authorities.as_deref().unwrap_or(&[]).to_vec()
            }
            _ => Vec::new(),
        };
        if let Some(soa) = error.into_soa() {
            let record = soa.into_record_of_rdata();
            if matches!(record.data, RData::SOA(_)) {
                answer.authorities.push(record);
            }
        }
        if self.validating {
            let summary =
                DnssecSummary::from_records(answer.authorities.iter().chain(proofs.iter()));
            answer.authentic_data = summary == DnssecSummary::Secure;
            if flags.dnssec_ok {
                answer.authorities.extend(
                    proofs
                        .into_iter()
                        .filter(|record| !matches!(record.data, RData::SOA(_))),
                );
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_name_servers_are_reached_through_the_nat64_prefix() {
        let prefix = |text: &str| Some(text.parse::<Nat64Prefix>().unwrap());
        let cases = [
            ("no prefix: as listed", None, "192.0.2.53", "192.0.2.53"),
            (
                "/96",
                prefix("64:ff9b::/96"),
                "192.0.2.53",
                "64:ff9b::c000:235",
            ),
            (
                "/64",
                prefix("2001:db8:64::/64"),
                "192.0.2.53",
                "2001:db8:64:0:c0:2:3500:0",
            ),
            (
                "/32",
                prefix("2001:db8::/32"),
                "192.0.2.53",
                "2001:db8:c000:235::",
            ),
            (
                "IPv6 as listed",
                prefix("64:ff9b::/96"),
                "2001:db8::53",
                "2001:db8::53",
            ),
        ];
        for (name, nat64_prefix, listed, reached) in cases {
            let listed: IpAddr = listed.parse().unwrap();
            assert_eq!(
                reach(listed, nat64_prefix.as_ref()),
                reached.parse::<IpAddr>().unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_name_server_gets_half_the_bound_within_limits() {
        let ms = Duration::from_millis;
        assert_eq!(name_server_timeout(ms(4000)), ms(800));
        assert_eq!(name_server_timeout(ms(800)), ms(400));
        assert_eq!(name_server_timeout(ms(100)), ms(100));
        assert_eq!(name_server_timeout(ms(60_000)), ms(800));
    }
}
