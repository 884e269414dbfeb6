//! The query pipeline below the wire: local answers, cache, upstream and
//! DNS64 synthesis, for one question. It takes a parsed question and the
//! client's flags and returns a [`Resolution`]; the listeners in
//! [`crate::server`] and the request handling in [`crate::handler`] only
//! translate bytes to and from it.
//!
//! Identical concurrent cache misses share one upstream query. For AAAA
//! questions the A lookup starts in parallel, so a synthesized answer costs
//! one upstream round trip; its result lands in the cache either way, where
//! the client's own A query (happy eyeballs asks both) finds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::sync::OnceCell;

use crate::answer::{Answer, MAX_CNAME_CHAIN};
use crate::cache::{Cache, CacheKey};
use crate::config::{Config, Dns64Config};
use crate::dns64::ipv4only;
use crate::dns64::synthesis::{self, AaaaDecision};
use crate::ede::{ExtendedError, InfoCode};
use crate::upstream::{Upstream, UpstreamError, UpstreamFlags};

/// A question as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name as asked (case preserved).
    pub name: Name,
    /// The query type.
    pub record_type: RecordType,
    /// The query class.
    pub class: DNSClass,
}

/// The client's request bits that change the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientFlags {
    /// EDNS DO.
    pub dnssec_ok: bool,
    /// CD.
    pub checking_disabled: bool,
}

/// The outcome for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// RCODE and sections.
    pub answer: Answer,
    /// True if the answer holds synthesized records (never AD, RFC 6147 §5.5).
    pub synthesized: bool,
    /// An Extended DNS Error for the response, if any.
    pub extended_error: Option<ExtendedError>,
}

impl Resolution {
    fn plain(answer: Answer) -> Self {
        Self {
            answer,
            synthesized: false,
            extended_error: None,
        }
    }

    fn failure(error: &UpstreamError) -> Self {
        let code = match error {
            UpstreamError::Timeout { .. } => InfoCode::NoReachableAuthority,
            UpstreamError::Network(_) => InfoCode::NetworkError,
        };
        Self {
            answer: Answer::empty(ResponseCode::ServFail),
            synthesized: false,
            extended_error: Some(ExtendedError::new(code, error.to_string())),
        }
    }
}

type SharedLookup = Arc<OnceCell<Result<Answer, UpstreamError>>>;

/// Cache, upstream and DNS64 policy together.
pub struct Resolver {
    upstream: Upstream,
    cache: Cache,
    dns64: Dns64Config,
    in_flight: Mutex<HashMap<CacheKey, SharedLookup>>,
}

impl Resolver {
    /// Builds the pipeline from a validated configuration (inside a tokio runtime).
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            upstream: Upstream::new(&config.upstream, config.server.edns_udp_size),
            cache: Cache::new(config.cache),
            dns64: config.dns64.clone(),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The cache (for statistics).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Answers one question.
    pub async fn resolve(self: &Arc<Self>, question: &Question, flags: ClientFlags) -> Resolution {
        if question.class == DNSClass::IN && ipv4only::is_ipv4only_name(&question.name) {
            let local =
                ipv4only::answer(&question.name, question.record_type, &self.dns64.prefixes);
            return Resolution {
                extended_error: local.synthesized.then(|| self.synthesized_note()),
                answer: local.answer,
                synthesized: local.synthesized,
            };
        }
        let upstream_flags = UpstreamFlags {
            dnssec_ok: flags.dnssec_ok,
            checking_disabled: flags.checking_disabled,
        };
        let wants_synthesis = question.record_type == RecordType::AAAA
            && question.class == DNSClass::IN
            && !self.dns64.prefixes.is_empty()
            // RFC 6147 §5.5: with DO and CD the client validates; synthesis would fail it.
            && !(flags.dnssec_ok && flags.checking_disabled && !self.dns64.break_dnssec);
        if wants_synthesis {
            return self.resolve_aaaa(question, upstream_flags).await;
        }
        match self
            .lookup_following(
                &question.name,
                question.record_type,
                question.class,
                upstream_flags,
            )
            .await
        {
            Ok(answer) => Resolution::plain(answer),
            Err(error) => Resolution::failure(&error),
        }
    }

    /// RFC 6147 §5.1 for one AAAA question.
    async fn resolve_aaaa(
        self: &Arc<Self>,
        question: &Question,
        flags: UpstreamFlags,
    ) -> Resolution {
        let name = &question.name;
        let aaaa_key = CacheKey::new(
            name,
            RecordType::AAAA,
            question.class,
            flags.dnssec_ok,
            flags.checking_disabled,
        );
        // Start the A lookup now unless the AAAA answer is cached (then A most likely is too).
        let a_prefetch = if self.cache.get(&aaaa_key).is_none() {
            let resolver = Arc::clone(self);
            let (a_name, class) = (name.clone(), question.class);
            Some(tokio::spawn(async move {
                resolver
                    .lookup_following(&a_name, RecordType::A, class, flags)
                    .await
            }))
        } else {
            None
        };

        let aaaa = match self
            .lookup_following(name, RecordType::AAAA, question.class, flags)
            .await
        {
            Ok(answer) => answer,
            Err(UpstreamError::Timeout { .. }) | Err(UpstreamError::Network(_))
                if self.dns64.synthesize_on == synthesis::SynthesizeOn::Rfc =>
            {
                Answer::empty(ResponseCode::ServFail)
            }
            Err(error) => return Resolution::failure(&error),
        };
        let upstream_failed = aaaa.response_code == ResponseCode::ServFail
            && aaaa.answers.is_empty()
            && aaaa.authorities.is_empty();
        let decision = synthesis::decide_on_aaaa(
            name,
            aaaa,
            &self.dns64.exclude_aaaa,
            false,
            self.dns64.synthesize_on,
        );
        let fallback = match decision {
            AaaaDecision::Native(answer) | AaaaDecision::PassThrough(answer) => {
                return Resolution::plain(answer);
            }
            AaaaDecision::Fail => {
                let mut resolution = Resolution::plain(Answer::empty(ResponseCode::ServFail));
                resolution.extended_error = Some(ExtendedError::new(
                    InfoCode::NetworkError,
                    "upstream failed the AAAA lookup; dns64.synthesize_on = \"nodata-only\"",
                ));
                return resolution;
            }
            AaaaDecision::Synthesize(fallback) => fallback,
        };

        let a = match a_prefetch {
            Some(task) => match task.await {
                Ok(result) => result,
                Err(join_error) => {
                    tracing::error!(%join_error, "A lookup task failed");
                    Err(UpstreamError::Network("internal A lookup failed".into()))
                }
            },
            None => {
                self.lookup_following(name, RecordType::A, question.class, flags)
                    .await
            }
        };
        let a = match a {
            Ok(answer) => answer,
            Err(error) if upstream_failed => return Resolution::failure(&error),
            Err(_) => Answer::empty(ResponseCode::ServFail),
        };
        let result = synthesis::synthesize_from_a(name, &a, fallback, &self.dns64.prefixes);
        Resolution {
            extended_error: result.synthesized.then(|| self.synthesized_note()),
            answer: result.answer,
            synthesized: result.synthesized,
        }
    }

    /// The EDE 29 "Synthesized" note, naming the prefixes.
    fn synthesized_note(&self) -> ExtendedError {
        let prefixes: Vec<String> = self
            .dns64
            .prefixes
            .iter()
            .map(|p| p.prefix.to_string())
            .collect();
        ExtendedError::new(
            InfoCode::Synthesized,
            format!("DNS64 synthesis under {}", prefixes.join(", ")),
        )
    }

    /// Looks a question up and, when the reply ends in a CNAME whose target
    /// it does not answer, follows the chain with further lookups (bounded).
    /// A CNAME loop gives SERVFAIL.
    async fn lookup_following(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        let mut answer = self.lookup(name, record_type, class, flags).await?;
        if record_type == RecordType::CNAME {
            return Ok(answer);
        }
        for _ in 0..MAX_CNAME_CHAIN {
            if answer.response_code != ResponseCode::NoError {
                break;
            }
            let Some(target) = answer.chain_target(name) else {
                tracing::debug!(%name, "CNAME loop in upstream answer");
                return Ok(Answer::empty(ResponseCode::ServFail));
            };
            let dangling = target != *name
                && answer.records_at(&target, record_type).next().is_none()
                && answer.negative_ttl().is_none();
            if !dangling {
                break;
            }
            let next = self.lookup(&target, record_type, class, flags).await?;
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
            answer.authentic_data &= next.authentic_data;
            answer.authorities = next.authorities;
            answer.additionals = next.additionals;
        }
        if answer.response_code == ResponseCode::NoError && answer.chain_target(name).is_none() {
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
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        let key = CacheKey::new(
            name,
            record_type,
            class,
            flags.dnssec_ok,
            flags.checking_disabled,
        );
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let (shared, leader) = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match in_flight.get(&key) {
                Some(shared) => (Arc::clone(shared), false),
                None => {
                    let shared = SharedLookup::default();
                    in_flight.insert(key.clone(), Arc::clone(&shared));
                    (shared, true)
                }
            }
        };
        let _cleanup = leader.then(|| InFlightGuard {
            resolver: self,
            key: key.clone(),
        });
        shared
            .get_or_init(|| async {
                let mut result = self.upstream.query(name, record_type, class, flags).await;
                if let Ok(answer) = &mut result {
                    answer.normalize_negative_soa();
                    self.cache.insert(key.clone(), answer.clone());
                }
                result
            })
            .await
            .clone()
    }
}

/// Removes a finished (or abandoned) lookup from the in-flight map.
struct InFlightGuard<'a> {
    resolver: &'a Resolver,
    key: CacheKey,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .resolver
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        in_flight.remove(&self.key);
    }
}
