//! A bounded, sharded LRU cache of upstream answers (A, AAAA, any type,
//! and negative answers per RFC 2308), served with TTLs counted down.
//!
//! The cache stores what upstreams said, never synthesized data, so a change
//! of prefixes or policy takes effect at once. It uses `tokio::time::Instant`
//! so tests can drive it with a paused clock. No I/O, no DNS64 logic.
//!
//! Expired entries are kept for `cache.stale_max_ttl` more seconds, so the
//! resolver can answer from them when every upstream fails (serve-stale,
//! RFC 8767); they are never returned as fresh. A fresh hit in the last
//! `cache.prefetch_threshold_percent` of its TTL says, once per entry, that
//! the resolver should refresh it in the background (prefetch).

mod packed;

use std::hash::{BuildHasher, Hasher};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::time::{Duration, Instant};

use crate::dns64::answer::Answer;
use crate::ops::config::CacheConfig;
use crate::sharded::{LRU_NODE_OVERHEAD, ShardedLru, Weigh};

use self::packed::PackedAnswer;

/// What identifies a cached answer: the question and the DNSSEC bits that change it.
///
/// The key carries its own hash, computed once when it is made: hashing a
/// `Name` lower-cases it label by label, and one cache miss hashes its keys
/// a dozen times (shard choice, LRU lookups and inserts, the in-flight map).
#[derive(Debug, Clone)]
pub(crate) struct CacheKey {
    /// Lower-cased query name.
    name: Name,
    /// Query type.
    record_type: RecordType,
    /// Query class.
    class: DNSClass,
    /// The DO bit asked upstream (RRSIGs included or not).
    dnssec_ok: bool,
    /// The CD bit asked upstream (validation off or on).
    checking_disabled: bool,
    /// The hash of all the fields above (the name's lower-cased labels).
    hash: u64,
}

/// The hasher of cache keys: foldhash, seeded at random once per process.
static KEY_HASHER: std::sync::LazyLock<lru::DefaultHasher> =
    std::sync::LazyLock::new(Default::default);

impl CacheKey {
    /// A key for a question; the name is lower-cased.
    pub(crate) fn new(
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Self {
        let name = name.to_lowercase();
        let mut hasher = KEY_HASHER.build_hasher();
        hasher.write_u8(u8::from(name.is_fqdn()));
        for label in name.iter() {
            hasher.write_u8(label.len() as u8); // a label is at most 63 octets
            hasher.write(label);
        }
        hasher.write_u16(u16::from(record_type));
        hasher.write_u16(u16::from(class));
        hasher.write_u8(u8::from(dnssec_ok) | u8::from(checking_disabled) << 1);
        Self {
            name,
            record_type,
            class,
            dnssec_ok,
            checking_disabled,
            hash: hasher.finish(),
        }
    }

    /// The (lower-cased) query name.
    pub(crate) fn name(&self) -> &Name {
        &self.name
    }

    /// The query type.
    pub(crate) fn record_type(&self) -> RecordType {
        self.record_type
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.record_type == other.record_type
            && self.class == other.class
            && self.dnssec_ok == other.dnssec_ok
            && self.checking_disabled == other.checking_disabled
            && self.name == other.name
    }
}

impl Eq for CacheKey {}

impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

#[derive(Debug)]
struct Entry {
    /// The answer, in wire form ([`packed`]).
    answer: PackedAnswer,
    stored: Instant,
    expires: Instant,
    /// A prefetch of this entry was asked for (at most one per entry).
    prefetch_started: bool,
    /// When this entry was last served stale (RFC 8767 §5: later clients
    /// get it at once while the upstream is retried in the background).
    served_stale: Option<Instant>,
    /// What the entry weighs with its key, worked out once when stored.
    bytes: usize,
}

impl Weigh<CacheKey> for Entry {
    fn weigh(&self, _key: &CacheKey) -> usize {
        self.bytes
    }
}

/// The bytes an entry for `answer` under `key` takes: the map's node, the
/// key and entry inline, and what the key's name and the packed records
/// hold on the heap.
fn entry_bytes(key: &CacheKey, answer: &PackedAnswer) -> usize {
    std::mem::size_of::<(CacheKey, Entry)>()
        + LRU_NODE_OVERHEAD
        + name_heap_bytes(&key.name)
        + answer.heap_bytes()
}

/// What a name holds on the heap: nothing up to 32 octets of labels (hickory
/// keeps them inline), else about its length and its label ends.
pub(crate) fn name_heap_bytes(name: &Name) -> usize {
    let length = name.len();
    if length <= 32 {
        0
    } else {
        length + name.num_labels() as usize
    }
}

/// A fresh cache hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The answer with TTLs lowered by its age.
    pub answer: Answer,
    /// The entry is in the last part of its TTL: refresh it in the background.
    pub needs_prefetch: bool,
}

/// An expired entry still within `cache.stale_max_ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaleHit {
    /// The answer, every TTL set to `cache.stale_answer_ttl`, marked stale.
    pub answer: Answer,
    /// It was served stale within the last `cache.stale_answer_ttl` seconds:
    /// answer at once instead of waiting for the client-response timer.
    pub recently_served: bool,
}

/// What the cache holds for a question.
#[derive(Debug)]
pub(crate) enum Cached {
    /// A fresh answer.
    Fresh(Hit),
    /// An expired answer within the serve-stale window.
    Stale(StaleHit),
    /// Nothing usable.
    Missing,
}

/// The answer cache.
pub(crate) struct AnswerCache {
    entries: ShardedLru<CacheKey, Entry>,
    config: CacheConfig,
}

impl AnswerCache {
    /// A cache bounded by `config.max_entries` (0 disables caching).
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            entries: ShardedLru::with_byte_budget(
                config.max_entries,
                config.max_memory.map(|bytes| bytes / 2),
            ),
            config,
        }
    }

    /// The cached answer with TTLs lowered by its age, if present and fresh.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Answer> {
        match self.lookup(key, false, false) {
            Cached::Fresh(hit) => Some(hit.answer),
            Cached::Stale(_) | Cached::Missing => None,
        }
    }

    /// What the cache holds for a client's question, in one look: a fresh
    /// answer (and whether the caller should prefetch it: `cache.prefetch`,
    /// in the last part of its TTL, and not asked before for this entry), an
    /// expired one that may still be served (RFC 8767), or nothing.
    pub(crate) fn lookup_for_client(&self, key: &CacheKey) -> Cached {
        self.lookup(key, self.config.prefetch, true)
    }

    fn lookup(&self, key: &CacheKey, prefetch: bool, stale: bool) -> Cached {
        if self.config.max_entries == 0 {
            return Cached::Missing;
        }
        let now = Instant::now();
        let mut shard = self.entries.shard(key);
        let Some(entry) = shard.get_mut(key) else {
            return Cached::Missing;
        };
        if entry.expires <= now {
            if self.is_past_stale(entry, now) {
                shard.pop(key);
                return Cached::Missing;
            }
            return match stale.then(|| self.stale_hit(entry, now)).flatten() {
                Some(hit) => Cached::Stale(hit),
                None => Cached::Missing,
            };
        }
        let elapsed = now.duration_since(entry.stored);
        let needs_prefetch = prefetch && !entry.prefetch_started && {
            let lifetime = entry.expires.duration_since(entry.stored);
            let remaining = entry.expires.duration_since(now);
            remaining.as_millis() * 100
                < lifetime.as_millis() * u128::from(self.config.prefetch_threshold_percent)
        };
        let Some(mut answer) = entry.answer.unpack() else {
            shard.pop(key);
            return Cached::Missing;
        };
        entry.prefetch_started |= needs_prefetch;
        answer.age_by(u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX));
        Cached::Fresh(Hit {
            answer,
            needs_prefetch,
        })
    }

    /// True if an expired entry is beyond the serve-stale window (always,
    /// when serve-stale is off: `cache.stale_max_ttl = 0`).
    fn is_past_stale(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.expires)
            >= Duration::from_secs(u64::from(self.config.stale_max_ttl))
    }

    /// An expired entry within the serve-stale window, as served: every TTL
    /// set to `cache.stale_answer_ttl`, marked stale.
    fn stale_hit(&self, entry: &Entry, now: Instant) -> Option<StaleHit> {
        let stale_ttl = self.config.stale_answer_ttl;
        let recently_served = entry.served_stale.is_some_and(|served| {
            now.duration_since(served) < Duration::from_secs(u64::from(stale_ttl))
        });
        let mut answer = entry.answer.unpack()?;
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            record.ttl = stale_ttl;
        }
        answer.stale = true;
        Some(StaleHit {
            answer,
            recently_served,
        })
    }

    /// The fresh hit of [`Self::lookup_for_client`], if any.
    #[cfg(test)]
    fn get_for_prefetch(&self, key: &CacheKey) -> Option<Hit> {
        match self.lookup_for_client(key) {
            Cached::Fresh(hit) => Some(hit),
            Cached::Stale(_) | Cached::Missing => None,
        }
    }

    /// An expired answer that may still be served (RFC 8767): expired less
    /// than `cache.stale_max_ttl` ago. `None` when serve-stale is off.
    #[cfg(test)]
    fn get_stale(&self, key: &CacheKey) -> Option<StaleHit> {
        match self.lookup(key, false, true) {
            Cached::Stale(stale) => Some(stale),
            Cached::Fresh(_) | Cached::Missing => None,
        }
    }

    /// Notes that an expired entry was just served stale.
    pub(crate) fn mark_served_stale(&self, key: &CacheKey) {
        let mut shard = self.entries.shard(key);
        if let Some(entry) = shard.peek_mut(key) {
            entry.served_stale = Some(Instant::now());
        }
    }

    /// The client-response timer of serve-stale (RFC 8767 §5).
    pub(crate) fn stale_client_timeout(&self) -> Duration {
        self.config.stale_client_timeout
    }

    /// Stores an upstream answer if it is cacheable (RFC 2308: negative
    /// answers only with an SOA; failures never). Returns how many other
    /// entries were evicted to make room.
    pub(crate) fn insert(&self, key: CacheKey, mut answer: Answer) -> usize {
        if self.config.max_entries == 0 {
            return 0;
        }
        let Some(ttl) = self.cache_ttl(&answer) else {
            return 0;
        };
        if ttl == 0 {
            return 0;
        }
        self.clamp_ttls(&mut answer);
        let Some(answer) = PackedAnswer::pack(&answer) else {
            return 0;
        };
        let now = Instant::now();
        let entry = Entry {
            bytes: entry_bytes(&key, &answer),
            answer,
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
            prefetch_started: false,
            served_stale: None,
        };
        self.entries.shard(&key).put(key, entry)
    }

    /// Brings an upstream answer's TTLs within the configured bounds, so the
    /// first client sees the TTLs later clients get from the cache:
    /// positive answers within `min_ttl..=max_ttl`, negative ones at most
    /// `negative_max_ttl`.
    pub(crate) fn clamp_ttls(&self, answer: &mut Answer) {
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
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes the entries held now take (an estimate, see [`Weigh`]).
    pub(crate) fn bytes(&self) -> usize {
        self.entries.bytes()
    }

    /// True if nothing is cached.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
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

impl AnswerCache {
    /// Removes the entries in `scope`; returns how many.
    pub(crate) fn flush(&self, scope: &FlushScope) -> usize {
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
    pub(crate) fn dump(&self, out: &mut String) {
        use std::fmt::Write as _;
        let now = Instant::now();
        self.entries.for_each(|key, entry| {
            if entry.expires <= now {
                return;
            }
            let elapsed = now.duration_since(entry.stored).as_secs();
            let Some(mut answer) = entry.answer.unpack() else {
                return;
            };
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
            max_memory: None,
            min_ttl: 0,
            max_ttl: 86400,
            negative_max_ttl: 3600,
            stale_max_ttl: 0,
            stale_answer_ttl: 30,
            stale_client_timeout: Duration::from_millis(1800),
            prefetch: true,
            prefetch_threshold_percent: 10,
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
        let cache = AnswerCache::new(config(100));
        cache.insert(key("a.test."), positive(300));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(cache.get(&key("A.TEST.")).unwrap().answers[0].ttl, 200);
        tokio::time::advance(Duration::from_secs(200)).await;
        assert!(cache.get(&key("a.test.")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn negative_answers_use_soa_ttl_and_cap() {
        let cache = AnswerCache::new(config(100));
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
        let cache = AnswerCache::new(config(100));
        cache.insert(key("fail.test."), Answer::empty(ResponseCode::ServFail));
        cache.insert(key("bare.test."), Answer::empty(ResponseCode::NXDomain));
        cache.insert(key("zero.test."), positive(0));
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_answers_are_served_stale_within_the_window_only() {
        let cache = AnswerCache::new(CacheConfig {
            stale_max_ttl: 100,
            ..config(100)
        });
        cache.insert(key("a.test."), positive(60));
        assert!(
            cache.get_stale(&key("a.test.")).is_none(),
            "fresh is not stale"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            cache.get(&key("a.test.")).is_none(),
            "never returned as fresh"
        );
        let stale = cache.get_stale(&key("a.test.")).expect("stale");
        assert!(stale.answer.stale && !stale.recently_served);
        assert_eq!(stale.answer.answers[0].ttl, 30);
        cache.mark_served_stale(&key("a.test."));
        assert!(cache.get_stale(&key("a.test.")).unwrap().recently_served);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!cache.get_stale(&key("a.test.")).unwrap().recently_served);
        tokio::time::advance(Duration::from_secs(70)).await;
        assert!(
            cache.get_stale(&key("a.test.")).is_none(),
            "past stale_max_ttl"
        );
        assert!(cache.get(&key("a.test.")).is_none());
        assert!(cache.is_empty(), "dropped once past the window");
    }

    #[tokio::test(start_paused = true)]
    async fn prefetch_is_asked_for_once_in_the_last_tenth_of_the_ttl() {
        let cache = AnswerCache::new(config(100));
        cache.insert(key("a.test."), positive(100));
        tokio::time::advance(Duration::from_secs(89)).await;
        assert!(
            !cache
                .get_for_prefetch(&key("a.test."))
                .unwrap()
                .needs_prefetch
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            cache
                .get_for_prefetch(&key("a.test."))
                .unwrap()
                .needs_prefetch
        );
        assert!(
            !cache
                .get_for_prefetch(&key("a.test."))
                .unwrap()
                .needs_prefetch,
            "once per entry"
        );
        cache.insert(key("a.test."), positive(100));
        assert!(
            !cache
                .get_for_prefetch(&key("a.test."))
                .unwrap()
                .needs_prefetch
        );
        let off = AnswerCache::new(CacheConfig {
            prefetch: false,
            ..config(100)
        });
        off.insert(key("a.test."), positive(100));
        tokio::time::advance(Duration::from_secs(95)).await;
        assert!(
            !off.get_for_prefetch(&key("a.test."))
                .unwrap()
                .needs_prefetch
        );
    }

    #[test]
    fn keys_match_whatever_the_case_and_differ_by_type_class_and_bits() {
        use std::hash::BuildHasher;
        let hasher = lru::DefaultHasher::default();
        let name = |text: &str| Name::from_str(text).unwrap();
        let upper = CacheKey::new(
            &name("WwW.Example.TEST."),
            RecordType::A,
            DNSClass::IN,
            false,
            false,
        );
        let lower = CacheKey::new(
            &name("www.example.test."),
            RecordType::A,
            DNSClass::IN,
            false,
            false,
        );
        assert_eq!(upper, lower);
        assert_eq!(hasher.hash_one(&upper), hasher.hash_one(&lower));
        assert_eq!(upper.name(), &name("www.example.test."));
        for other in [
            CacheKey::new(
                &name("www.example.test."),
                RecordType::AAAA,
                DNSClass::IN,
                false,
                false,
            ),
            CacheKey::new(
                &name("www.example.test."),
                RecordType::A,
                DNSClass::CH,
                false,
                false,
            ),
            CacheKey::new(
                &name("www.example.test."),
                RecordType::A,
                DNSClass::IN,
                true,
                false,
            ),
            CacheKey::new(
                &name("www.example.test."),
                RecordType::A,
                DNSClass::IN,
                false,
                true,
            ),
            CacheKey::new(
                &name("www.example.test"),
                RecordType::A,
                DNSClass::IN,
                false,
                false,
            ),
            CacheKey::new(
                &name("wwwexample.test."),
                RecordType::A,
                DNSClass::IN,
                false,
                false,
            ),
        ] {
            assert_ne!(lower, other);
            assert_ne!(lower.hash, other.hash, "{other:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn size_is_bounded() {
        let cache = AnswerCache::new(config(32));
        for index in 0..1000 {
            cache.insert(key(&format!("n{index}.test.")), positive(300));
        }
        assert!(cache.len() <= 32, "{} entries", cache.len());
    }
}
