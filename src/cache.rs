//! A bounded, sharded LRU cache of upstream answers (A, AAAA, any type,
//! and negative answers per RFC 2308), served with TTLs counted down.
//!
//! The cache stores what upstreams said, never synthesized data, so a change
//! of prefixes or policy takes effect at once. It uses `tokio::time::Instant`
//! so tests can drive it with a paused clock. No I/O, no DNS64 logic.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::time::{Duration, Instant};

use crate::answer::Answer;
use crate::config::CacheConfig;
use crate::sharded::ShardedLru;

/// What identifies a cached answer: the question and the DNSSEC bits that change it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Lower-cased query name.
    pub name: Name,
    /// Query type.
    pub record_type: RecordType,
    /// Query class.
    pub class: DNSClass,
    /// The DO bit asked upstream (RRSIGs included or not).
    pub dnssec_ok: bool,
    /// The CD bit asked upstream (validation off or on).
    pub checking_disabled: bool,
}

impl CacheKey {
    /// A key for a question; the name is lower-cased.
    pub fn new(
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Self {
        Self {
            name: name.to_lowercase(),
            record_type,
            class,
            dnssec_ok,
            checking_disabled,
        }
    }
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    stored: Instant,
    expires: Instant,
}

/// Cache statistics since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held now.
    pub entries: usize,
}

/// The answer cache.
pub struct Cache {
    entries: ShardedLru<CacheKey, Entry>,
    config: CacheConfig,
}

impl Cache {
    /// A cache bounded by `config.max_entries` (0 disables caching).
    pub fn new(config: CacheConfig) -> Self {
        Self {
            entries: ShardedLru::new(config.max_entries),
            config,
        }
    }

    /// The cached answer with TTLs lowered by its age, if present and fresh.
    pub fn get(&self, key: &CacheKey) -> Option<Answer> {
        if self.config.max_entries == 0 {
            return None;
        }
        let now = Instant::now();
        let mut shard = self.entries.shard(key);
        let entry = shard.get(key)?;
        if entry.expires <= now {
            shard.pop(key);
            return None;
        }
        let elapsed = now.duration_since(entry.stored).as_secs();
        let mut answer = entry.answer.clone();
        answer.age_by(u32::try_from(elapsed).unwrap_or(u32::MAX));
        Some(answer)
    }

    /// Stores an upstream answer if it is cacheable (RFC 2308: negative
    /// answers only with an SOA; failures never). Returns true if another
    /// entry was evicted to make room.
    pub fn insert(&self, key: CacheKey, mut answer: Answer) -> bool {
        if self.config.max_entries == 0 {
            return false;
        }
        let Some(ttl) = self.cache_ttl(&answer) else {
            return false;
        };
        if ttl == 0 {
            return false;
        }
        self.clamp_ttls(&mut answer);
        let now = Instant::now();
        let entry = Entry {
            answer,
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
        };
        let mut shard = self.entries.shard(&key);
        let replaced = shard.push(key.clone(), entry);
        replaced.is_some_and(|(old_key, _)| old_key != key)
    }

    /// Brings an upstream answer's TTLs within the configured bounds, so the
    /// first client sees the TTLs later clients get from the cache:
    /// positive answers within `min_ttl..=max_ttl`, negative ones at most
    /// `negative_max_ttl`.
    pub fn clamp_ttls(&self, answer: &mut Answer) {
        let config = &self.config;
        let (floor, cap) = if answer.answers.is_empty() {
            (0, config.negative_max_ttl)
        } else {
            (config.min_ttl, config.max_ttl)
        };
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            record.ttl = record.ttl.clamp(floor, cap.max(floor));
        }
    }

    /// How long an answer may be kept, or `None` if it must not be cached.
    fn cache_ttl(&self, answer: &Answer) -> Option<u32> {
        let config = &self.config;
        match answer.response_code {
            ResponseCode::NoError if !answer.answers.is_empty() => {
                let ttl = answer.min_answer_ttl()?;
                Some(ttl.clamp(config.min_ttl, config.max_ttl))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let ttl = answer.negative_ttl()?;
                Some(ttl.min(config.negative_max_ttl))
            }
            _ => None,
        }
    }

    /// Number of entries held now (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which entries `dns64d ctl flush` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    /// Every entry.
    All,
    /// Every entry of this name (all types).
    Name(Name),
    /// Every entry of this name and of the names below it.
    Below(Name),
}

impl Cache {
    /// Removes the entries in `scope`; returns how many.
    pub fn flush(&self, scope: &FlushScope) -> usize {
        match scope {
            FlushScope::All => self.entries.retain(|_, _| false),
            FlushScope::Name(name) => {
                let name = name.to_lowercase();
                self.entries.retain(|key, _| key.name != name)
            }
            FlushScope::Below(name) => self.entries.retain(|key, _| !name.zone_of(&key.name)),
        }
    }

    /// The fresh entries as text, one record per line with its remaining
    /// TTL (zone-file form); a negative entry is one comment line with its
    /// RCODE and remaining TTL. Entries fetched with DO or CD say so.
    pub fn dump(&self, out: &mut String) {
        use std::fmt::Write as _;
        let now = Instant::now();
        self.entries.for_each(|key, entry| {
            if entry.expires <= now {
                return;
            }
            let elapsed = now.duration_since(entry.stored).as_secs();
            let mut answer = entry.answer.clone();
            answer.age_by(u32::try_from(elapsed).unwrap_or(u32::MAX));
            let bits = match (key.dnssec_ok, key.checking_disabled) {
                (false, false) => "",
                (true, false) => " ; DO",
                (false, true) => " ; CD",
                (true, true) => " ; DO CD",
            };
            if answer.answers.is_empty() {
                let remaining = entry.expires.saturating_duration_since(now).as_secs();
                let kind = if answer.response_code == ResponseCode::NXDomain {
                    "NXDOMAIN"
                } else {
                    "NODATA"
                };
                let _ = writeln!(
                    out,
                    "; {} {} {} {kind} ttl={remaining}{bits}",
                    key.name, key.class, key.record_type
                ); // writing to a String cannot fail
            }
            for record in &answer.answers {
                let _ = writeln!(out, "{record}{bits}"); // writing to a String cannot fail
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{RData, Record};
    use std::str::FromStr;

    fn config(max_entries: usize) -> CacheConfig {
        CacheConfig {
            max_entries,
            min_ttl: 0,
            max_ttl: 86400,
            negative_max_ttl: 3600,
        }
    }

    fn key(name: &str) -> CacheKey {
        CacheKey::new(
            &Name::from_str(name).unwrap(),
            RecordType::A,
            DNSClass::IN,
            false,
            false,
        )
    }

    fn positive(ttl: u32) -> Answer {
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.answers.push(Record::from_rdata(
            Name::from_str("a.test.").unwrap(),
            ttl,
            RData::A(A::new(1, 2, 3, 4)),
        ));
        answer
    }

    fn negative(code: ResponseCode, soa_ttl: u32, minimum: u32) -> Answer {
        let mut answer = Answer::empty(code);
        let soa = SOA::new(
            Name::from_str("ns.test.").unwrap(),
            Name::from_str("h.test.").unwrap(),
            1,
            1,
            1,
            1,
            minimum,
        );
        answer.authorities.push(Record::from_rdata(
            Name::from_str("test.").unwrap(),
            soa_ttl,
            RData::SOA(soa),
        ));
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_counts_down_and_entry_expires() {
        let cache = Cache::new(config(100));
        cache.insert(key("a.test."), positive(300));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(cache.get(&key("A.TEST.")).unwrap().answers[0].ttl, 200);
        tokio::time::advance(Duration::from_secs(200)).await;
        assert!(cache.get(&key("a.test.")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn negative_answers_use_soa_ttl_and_cap() {
        let cache = Cache::new(config(100));
        cache.insert(
            key("nx.test."),
            negative(ResponseCode::NXDomain, 7200, 7200),
        );
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(cache.get(&key("nx.test.")).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(&key("nx.test.")).is_none());
        cache.insert(
            key("nodata.test."),
            negative(ResponseCode::NoError, 3600, 60),
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache.get(&key("nodata.test.")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_soa_less_negatives_are_not_cached() {
        let cache = Cache::new(config(100));
        cache.insert(key("fail.test."), Answer::empty(ResponseCode::ServFail));
        cache.insert(key("bare.test."), Answer::empty(ResponseCode::NXDomain));
        cache.insert(key("zero.test."), positive(0));
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn size_is_bounded() {
        let cache = Cache::new(config(32));
        for index in 0..1000 {
            cache.insert(key(&format!("n{index}.test.")), positive(300));
        }
        assert!(cache.len() <= 32, "{} entries", cache.len());
    }
}
