//! Upstream fetches that outlive the client waiting for them: serve-stale
//! (RFC 8767) and prefetch.
//!
//! A cache miss asks the upstream through [`Resolver::fetch`], shared by
//! every concurrent miss of the same question. When the cache still holds an
//! expired answer (within `cache.stale_max_ttl`), the fetch runs in a task of
//! its own and the client waits at most the client-response timer
//! (`cache.stale_client_timeout_ms`, RFC 8767 §5): if the upstream fails
//! (timeout, network error, SERVFAIL, REFUSED…) or is slower, the client gets
//! the expired answer with TTL `cache.stale_answer_ttl` and Extended DNS
//! Error 3, while the fetch goes on and fills the cache when it succeeds. A
//! stale answer is never stored anywhere, so it never wins over a fresh one.
//! For `cache.stale_answer_ttl` seconds after an entry was served stale,
//! later clients get it at once, and the upstream is retried in the
//! background (one fetch at a time per question).
//!
//! Prefetch: a fresh hit in the last part of its TTL starts one background
//! fetch (unless one is running for the question), so a popular name is
//! refreshed before it expires (Unbound's `prefetch`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::task::JoinHandle;

use super::{LookupError, PendingLookupCleanup, Resolver, SharedLookup};
use crate::answering::cache::{CacheKey, StaleHit};
use crate::answering::upstream::{UpstreamError, UpstreamFlags};
use crate::dns64::answer::Answer;

/// True if an upstream reply says the upstream could not answer (RFC 8767
/// §5: such a reply, like a timeout, lets a stale answer be used).
fn is_upstream_failure(answer: &Answer) -> bool {
    !matches!(
        answer.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    )
}

impl Resolver {
    /// The shared lookup of `key`, and whether this caller leads it (then it
    /// must remove it from the in-flight map when done).
    pub(super) fn join_pending_lookup(&self, key: &CacheKey) -> (SharedLookup, bool) {
        let mut pending_lookups = self
            .pending_lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match pending_lookups.get(key) {
            Some(shared) => (Arc::clone(shared), false),
            None => {
                let shared = SharedLookup::default();
                pending_lookups.insert(key.clone(), Arc::clone(&shared));
                (shared, true)
            }
        }
    }

    /// Asks the upstream one question and caches what it says (failures
    /// are not cached, so an expired entry stays for serve-stale).
    pub(super) async fn fetch(
        &self,
        key: &CacheKey,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        let mut result = self.upstream.query(name, record_type, class, flags).await;
        self.metrics.cache_miss();
        if matches!(result, Err(UpstreamError::Bogus(_))) {
            self.metrics.dnssec_bogus();
        }
        if let Ok(answer) = &mut result {
            answer.normalize_negative_soa();
            self.cache.clamp_ttls(answer);
            let evicted = self.cache.insert(key.clone(), answer.clone());
            self.metrics.cache_evictions(evicted);
            // Read before writing: the flag is shared by every worker, and a
            // write on every fetch would bounce its cache line between cores.
            if !is_upstream_failure(answer)
                && self.serving_stale.load(Ordering::Relaxed)
                && self.serving_stale.swap(false, Ordering::AcqRel)
            {
                tracing::info!("the upstreams answer again: no longer serving stale answers");
            }
        }
        result
    }

    /// Runs the shared fetch of `key` in a task of its own, so it finishes
    /// even when the client stops waiting. With `only_if_idle`, nothing is
    /// started when a fetch of `key` is running already. `None` when nothing
    /// was started.
    fn spawn_fetch(
        &self,
        key: CacheKey,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
        only_if_idle: bool,
    ) -> Option<JoinHandle<Result<Answer, UpstreamError>>> {
        let resolver = self.me.upgrade()?;
        let (shared, leader) = self.join_pending_lookup(&key);
        if only_if_idle && !leader {
            return None;
        }
        let name = name.clone();
        Some(tokio::spawn(async move {
            let _cleanup = leader.then(|| PendingLookupCleanup {
                resolver: &resolver,
                key: key.clone(),
            });
            shared
                .get_or_init(|| resolver.fetch(&key, &name, record_type, class, flags))
                .await
                .clone()
        }))
    }

    /// Starts a background refresh of a cached answer late in its TTL.
    pub(super) fn prefetch(
        &self,
        key: CacheKey,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) {
        if self
            .spawn_fetch(key, name, record_type, class, flags, true)
            .is_some()
        {
            self.metrics.prefetch();
        }
    }

    /// A miss with an expired answer at hand: the upstream's answer if it
    /// comes within the client-response timer, else the stale one.
    pub(super) async fn lookup_or_stale(
        &self,
        key: CacheKey,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
        stale: StaleHit,
    ) -> Result<Answer, LookupError> {
        if stale.recently_served {
            // Keep trying the upstream, one fetch at a time; answer at once.
            let _ = self.spawn_fetch(key.clone(), name, record_type, class, flags, true); // a running fetch is enough
            return Ok(self.serve_stale(&key, stale.answer));
        }
        let Some(fetch) = self.spawn_fetch(key.clone(), name, record_type, class, flags, false)
        else {
            return Ok(self.serve_stale(&key, stale.answer));
        };
        match tokio::time::timeout(self.cache.stale_client_timeout(), fetch).await {
            Ok(Ok(Ok(answer))) if !is_upstream_failure(&answer) => Ok(answer),
            // Validation failure is never papered over with old data.
            Ok(Ok(Err(error @ UpstreamError::Bogus(_)))) => Err(LookupError::Upstream(error)),
            _ => Ok(self.serve_stale(&key, stale.answer)),
        }
    }

    /// Counts and logs a stale answer, and returns it.
    fn serve_stale(&self, key: &CacheKey, answer: Answer) -> Answer {
        self.cache.mark_served_stale(key);
        self.metrics.stale_answer();
        if !self.serving_stale.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                name = %key.name(),
                record_type = %key.record_type(),
                "the upstreams fail: serving stale answers from the cache (RFC 8767) until they answer again"
            );
        }
        answer
    }
}
