//! The UDP fast path: repeated questions are answered from finished,
//! pre-encoded responses, without decoding the query into a `Message`,
//! without a task per packet and without allocating.
//!
//! Why it exists: the full path (hickory-proto decode, policy, cache,
//! synthesis, encode) costs several microseconds and a dozen allocations per
//! query; most queries repeat a recent question. Measured here, answering
//! hits from stored bytes is what lets a DNS64 server keep up with Unbound
//! and NSD (see bench/).
//!
//! What it hands to the slow path: every packet it does not fully
//! understand or may not answer — anything but a plain one-question QUERY
//! with at most an OPT record without options, clients outside the
//! listener's access list, listeners whose answers depend on the client,
//! misses, and responses that would not fit the client's UDP size. After
//! the slow path has answered, [`ReplayCache::store`] keeps its response
//! when it is safe to replay: NOERROR or NXDOMAIN, not truncated, every TTL
//! above zero.
//!
//! A stored response is keyed by everything that changes it: the question
//! (name case-insensitively, type, class), the RD, CD and AD bits, EDNS and
//! DO, the listener, and a generation that a reload or a change of
//! discovered prefixes moves on. On a hit the ID and the question (with the
//! client's letter case) are copied in and TTLs are lowered by the time
//! since storing — except in authoritative answers, whose TTLs stay as the
//! zone says. Entries expire with their smallest TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::ops::metrics::AaaaKind;
use crate::sharded::{LRU_NODE_OVERHEAD, ShardedLru, Weigh};

/// Longest key: a name (255) plus type, class, flags, listener, generation.
const MAX_KEY: usize = 255 + 2 + 2 + 1 + 4 + 8;
/// The OPT pseudo-record type.
const TYPE_OPT: u16 = 41;

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2).
const FLAG_QR: u16 = 0x8000;
const FLAG_OPCODE: u16 = 0x7800;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_AA: u16 = 0x0400;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;
const RCODE_MASK: u16 = 0x000f;

/// What the fast path understood of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryShape<'a> {
    /// The query ID.
    pub id: u16,
    /// The header flags.
    pub flags: u16,
    /// The question section as sent (name, type, class).
    pub question: &'a [u8],
    /// The EDNS payload size, if the query has an OPT record.
    pub edns_payload: Option<u16>,
    /// The EDNS DO bit.
    pub dnssec_ok: bool,
    /// The data of the first COOKIE option (RFC 7873), if any.
    pub cookie: Option<&'a [u8]>,
}

impl QueryShape<'_> {
    /// The largest UDP response this client takes, bounded by ours.
    pub fn udp_limit(&self, our_size: u16) -> usize {
        usize::from(
            self.edns_payload
                .map_or(512, |size| size.clamp(512, our_size)),
        )
    }
}

/// Reads a plain query: QR=0, opcode QUERY, one question, no answer or
/// authority records, and at most one OPT record with no options and
/// version 0. Anything else is `None` (the slow path handles it).
pub fn parse_query(packet: &[u8]) -> Option<QueryShape<'_>> {
    let header = packet.get(..12)?;
    let word = |index: usize| u16::from_be_bytes([header[index], header[index + 1]]);
    let flags = word(2);
    if flags & (FLAG_QR | FLAG_OPCODE | FLAG_TC) != 0
        || word(4) != 1
        || word(6) != 0
        || word(8) != 0
    {
        return None;
    }
    let additional_count = word(10);
    let name_end = name_end(packet, 12)?;
    let question_end = name_end.checked_add(4)?;
    let question = packet.get(12..question_end)?;
    let (edns_payload, dnssec_ok, cookie, end) = match additional_count {
        0 => (None, false, None, question_end),
        1 => {
            // OPT: root name, TYPE 41, CLASS = payload, TTL = ext-rcode/version/flags, RDLEN, options.
            let opt = packet.get(question_end..question_end + 11)?;
            if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
                return None;
            }
            let payload = u16::from_be_bytes([opt[3], opt[4]]);
            let (extended_rcode, version) = (opt[5], opt[6]);
            let dnssec_ok = opt[7] & 0x80 != 0;
            let rdlength = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
            if extended_rcode != 0 || version != 0 {
                return None;
            }
            let options_start = question_end + 11;
            let options = packet.get(options_start..options_start + rdlength)?;
            let cookie = ignorable_options(options)?;
            (Some(payload), dnssec_ok, cookie, options_start + rdlength)
        }
        _ => return None,
    };
    if end != packet.len() {
        return None;
    }
    Some(QueryShape {
        id: word(0),
        flags,
        question,
        edns_payload,
        dnssec_ok,
        cookie,
    })
}

/// `Some` if the EDNS options are well-formed and none changes the answer
/// (padding and the like are not echoed), with the data of the first COOKIE
/// option: the caller answers cookies itself (RFC 7873 §5.2: only the first
/// one counts). `None` sends the query to the slow path: client subnet
/// (code 8), which it decodes, NSID (code 3), which the response answers,
/// or malformed options.
fn ignorable_options(mut options: &[u8]) -> Option<Option<&[u8]>> {
    const CLIENT_SUBNET: u16 = 8;
    const NSID: u16 = 3;
    let mut cookie = None;
    while !options.is_empty() {
        let (header, rest) = options.split_first_chunk::<4>()?;
        let code = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if code == CLIENT_SUBNET || code == NSID || length > rest.len() {
            return None;
        }
        if code == crate::edge::cookies::COOKIE_OPTION_CODE && cookie.is_none() {
            cookie = Some(&rest[..length]);
        }
        options = &rest[length..];
    }
    Some(cookie)
}

/// The end of an uncompressed name starting at `start` (queries carry no pointers).
fn name_end(packet: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    loop {
        let length = usize::from(*packet.get(position)?);
        if length == 0 {
            return Some(position + 1);
        }
        if length > 63 || position - start + length + 1 > 254 {
            return None;
        }
        position += length + 1;
    }
}

/// The end of a possibly compressed name in a response (a pointer ends it).
fn skip_name(message: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    loop {
        let length = *message.get(position)?;
        match length {
            0 => return Some(position + 1),
            1..=63 => position += usize::from(length) + 1,
            0xc0..=0xff => {
                message.get(position + 1)?;
                return Some(position + 2);
            }
            _ => return None,
        }
    }
}

/// Where a response's records are: the question's end, the offsets of every
/// TTL (OPT excluded), and the offset of the OPT record's RDLENGTH when OPT
/// is the last record (where an option can be appended).
struct Layout {
    question_end: usize,
    ttl_offsets: Vec<u16>,
    last_opt_rdlength: Option<usize>,
}

/// Appends an EDNS option to a response whose last record is its OPT (as
/// hickory-proto encodes them), at `rdlength_at` (see [`Layout`]); false
/// (nothing changed) if the OPT would grow too large.
fn append_option(response: &mut Vec<u8>, rdlength_at: usize, code: u16, data: &[u8]) -> bool {
    let Some(rdlength) = response
        .get(rdlength_at..rdlength_at + 2)
        .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
    else {
        return false;
    };
    let Some(new_length) = u16::try_from(data.len())
        .ok()
        .and_then(|length| length.checked_add(4))
        .and_then(|added| rdlength.checked_add(added))
    else {
        return false;
    };
    let Ok(data_length) = u16::try_from(data.len()) else {
        return false;
    };
    response[rdlength_at..rdlength_at + 2].copy_from_slice(&new_length.to_be_bytes());
    response.extend_from_slice(&code.to_be_bytes());
    response.extend_from_slice(&data_length.to_be_bytes());
    response.extend_from_slice(data);
    true
}

/// Appends a COOKIE option (RFC 7873 §4) to an encoded response whose last
/// record is its OPT; false (nothing changed) when it has no OPT there.
pub(crate) fn append_cookie(response: &mut Vec<u8>, cookie: &[u8]) -> bool {
    match layout(response).and_then(|layout| layout.last_opt_rdlength) {
        Some(rdlength_at) => append_option(
            response,
            rdlength_at,
            crate::edge::cookies::COOKIE_OPTION_CODE,
            cookie,
        ),
        None => false,
    }
}

/// Reads where a response's records are.
fn layout(response: &[u8]) -> Option<Layout> {
    let header = response.get(..12)?;
    let count = |index: usize| usize::from(u16::from_be_bytes([header[index], header[index + 1]]));
    // One question, or none (a cookie-only answer, RFC 7873 §5.4).
    let question_end = match count(4) {
        0 => 12,
        1 => skip_name(response, 12)?.checked_add(4)?,
        _ => return None,
    };
    let mut position = question_end;
    let mut offsets = Vec::new();
    let mut last_opt_rdlength = None;
    for _ in 0..count(6) + count(8) + count(10) {
        position = skip_name(response, position)?;
        let fixed = response.get(position..position + 10)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        last_opt_rdlength = None;
        if record_type == TYPE_OPT {
            last_opt_rdlength = Some(position + 8);
        } else {
            offsets.push(u16::try_from(position + 4).ok()?);
        }
        position += 10 + rdlength;
    }
    (position == response.len()).then_some(Layout {
        question_end,
        ttl_offsets: offsets,
        last_opt_rdlength,
    })
}

/// Cuts a response down to its header and question, with TC=1 and no
/// records (a rate-limit "slip": the client retries over TCP).
pub fn truncate_to_question(response: &mut Vec<u8>) -> bool {
    // Only a one-question message can be cut after its question.
    if response.get(4..6) != Some(&[0, 1][..]) {
        return false;
    }
    let Some(question_end) = skip_name(response, 12).and_then(|end| end.checked_add(4)) else {
        return false;
    };
    if response.len() < question_end {
        return false;
    }
    response.truncate(question_end);
    response[2] |= (FLAG_TC >> 8) as u8;
    response[6..12].fill(0);
    true
}

/// One stored response.
struct Stored {
    bytes: Box<[u8]>,
    question_end: usize,
    ttl_offsets: Box<[u16]>,
    original_ttls: Box<[u32]>,
    stored: Instant,
    expires: Instant,
    patch_ttls: bool,
    /// Where to append an EDNS option (see [`Layout`]).
    last_opt_rdlength: Option<usize>,
    /// What the slow path reported for it, replayed into metrics on a hit.
    pub(crate) note: StoredNote,
}

impl Weigh<Box<[u8]>> for Stored {
    fn weigh(&self, key: &Box<[u8]>) -> usize {
        std::mem::size_of::<(Box<[u8]>, Stored)>()
            + LRU_NODE_OVERHEAD
            + key.len()
            + self.bytes.len()
            + std::mem::size_of_val(&*self.ttl_offsets)
            + std::mem::size_of_val(&*self.original_ttls)
    }
}

/// What the slow path knew about a response, kept for metrics on hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredNote {
    /// The answer held synthesized records.
    pub synthesized: bool,
    /// How an AAAA question was answered.
    pub aaaa: Option<AaaaKind>,
    /// The answer was stale (RFC 8767): never stored, so it cannot shadow
    /// the fresh answer the background fetch brings.
    pub stale: bool,
}

/// A hit: the response is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The query type (for metrics).
    pub qtype: u16,
    /// The response RCODE.
    pub rcode: u8,
    /// The response has AAAA records in its answer (for metrics).
    pub note: StoredNote,
    /// Where a COOKIE option can be appended to the response (see [`Layout`]).
    pub last_opt_rdlength: Option<usize>,
}

impl Hit {
    /// Appends a COOKIE option to the response this hit wrote into `out`;
    /// false (nothing changed) when the response has no OPT at its end.
    pub(crate) fn append_cookie(&self, out: &mut Vec<u8>, cookie: &[u8]) -> bool {
        self.last_opt_rdlength.is_some_and(|rdlength_at| {
            append_option(
                out,
                rdlength_at,
                crate::edge::cookies::COOKIE_OPTION_CODE,
                cookie,
            )
        })
    }
}

/// The cache of finished responses, bounded like the answer cache.
pub struct ReplayCache {
    stored: ShardedLru<Box<[u8]>, Stored>,
    generation: AtomicU64,
    enabled: bool,
    /// Percent of a TTL, at its end, in which stored responses are not
    /// replayed, so such queries reach the answer cache and its prefetch.
    prefetch_margin_percent: u8,
}

impl ReplayCache {
    /// A cache holding at most about `max_entries` responses (0 disables it).
    pub fn new(max_entries: usize) -> Self {
        Self::with_byte_budget(max_entries, None)
    }

    /// A cache bounded by `max_entries` responses and, if given, `max_bytes`.
    pub fn with_byte_budget(max_entries: usize, max_bytes: Option<usize>) -> Self {
        Self {
            stored: ShardedLru::with_byte_budget(max_entries, max_bytes),
            generation: AtomicU64::new(0),
            enabled: max_entries > 0,
            prefetch_margin_percent: 0,
        }
    }

    /// Stops replaying a stored response in the last `percent` of its TTL
    /// (`cache.prefetch_threshold_percent` when `cache.prefetch` is on): those
    /// queries take the slow path, where a hit late in its TTL starts the
    /// background refresh. Without it, names answered here would never be
    /// prefetched.
    pub(crate) fn with_prefetch_margin(mut self, percent: u8) -> Self {
        self.prefetch_margin_percent = percent.min(100);
        self
    }

    /// The cache's generation now. Take it before reading the configuration a
    /// response is computed under, add the listener policy's generation, and
    /// hand the sum to [`ReplayCache::store`]: a response computed under
    /// the configuration before a reload is then never kept for after it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets every stored response (a reload changed what answers look like).
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// True if nothing is stored.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.stored.len() == 0
    }

    /// Builds the cache key into `buffer`; `None` for a name too long.
    fn key<'b>(
        query: &QueryShape<'_>,
        listener: u32,
        generation: u64,
        buffer: &'b mut [u8; MAX_KEY],
    ) -> Option<&'b [u8]> {
        let question = query.question;
        let length = question.len();
        if length + 15 > MAX_KEY {
            return None;
        }
        for (target, byte) in buffer.iter_mut().zip(question) {
            *target = byte.to_ascii_lowercase();
        }
        let mut flags = 0u8;
        for (bit, set) in [
            (1, query.flags & FLAG_RD != 0),
            (2, query.flags & FLAG_CD != 0),
            (4, query.flags & FLAG_AD != 0),
            (8, query.edns_payload.is_some()),
            (16, query.dnssec_ok),
        ] {
            if set {
                flags |= bit;
            }
        }
        buffer[length] = flags;
        buffer[length + 1..length + 5].copy_from_slice(&listener.to_be_bytes());
        buffer[length + 5..length + 13].copy_from_slice(&generation.to_be_bytes());
        Some(&buffer[..length + 13])
    }

    /// Answers `query` from a stored response into `out`, if one is fresh and fits.
    #[inline]
    pub fn answer(
        &self,
        query: &QueryShape<'_>,
        listener: u32,
        extra_generation: u64,
        udp_limit: usize,
        out: &mut Vec<u8>,
    ) -> Option<Hit> {
        // Checked before the clock is read, so a disabled cache costs nothing.
        if !self.enabled {
            return None;
        }
        self.answer_at(
            query,
            listener,
            extra_generation,
            udp_limit,
            out,
            Instant::now(),
        )
    }

    /// [`ReplayCache::answer`] at the instant `now`: freshness and the
    /// TTL countdown are measured from the instant the response was stored
    /// to `now`. The clock is the caller's so tests can move it.
    pub(crate) fn answer_at(
        &self,
        query: &QueryShape<'_>,
        listener: u32,
        extra_generation: u64,
        udp_limit: usize,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Option<Hit> {
        if !self.enabled {
            return None;
        }
        let mut buffer = [0u8; MAX_KEY];
        let generation = self.generation().wrapping_add(extra_generation);
        let key = Self::key(query, listener, generation, &mut buffer)?;
        let mut shard = self.stored.shard(key);
        let stored = shard.get(key)?;
        if stored.expires <= now {
            shard.pop(key);
            return None;
        }
        if stored.bytes.len() > udp_limit {
            return None;
        }
        out.clear();
        out.extend_from_slice(&stored.bytes);
        out[..2].copy_from_slice(&query.id.to_be_bytes());
        out[12..stored.question_end].copy_from_slice(query.question);
        if stored.patch_ttls {
            let elapsed =
                u32::try_from(now.duration_since(stored.stored).as_secs()).unwrap_or(u32::MAX);
            for (&offset, &ttl) in stored.ttl_offsets.iter().zip(stored.original_ttls.iter()) {
                let offset = usize::from(offset);
                out[offset..offset + 4].copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
            }
        }
        let question = query.question;
        let qtype =
            u16::from_be_bytes([question[question.len() - 4], question[question.len() - 3]]);
        Some(Hit {
            qtype,
            rcode: (u16::from_be_bytes([out[2], out[3]]) & RCODE_MASK) as u8,
            note: stored.note,
            last_opt_rdlength: stored.last_opt_rdlength,
        })
    }

    /// How long a response whose smallest TTL is `min_ttl` is replayed.
    fn replay_lifetime(&self, min_ttl: u32) -> std::time::Duration {
        let lifetime = std::time::Duration::from_secs(u64::from(min_ttl));
        lifetime - lifetime * u32::from(self.prefetch_margin_percent) / 100
    }

    /// Keeps the slow path's `response` to `request` if it is safe to replay,
    /// under `generation` (see [`ReplayCache::generation`]).
    #[inline]
    pub fn store(
        &self,
        request: &[u8],
        response: &[u8],
        listener: u32,
        generation: u64,
        note: StoredNote,
    ) {
        if !self.enabled || note.stale {
            return;
        }
        self.store_at(
            request,
            response,
            listener,
            generation,
            note,
            Instant::now(),
        );
    }

    /// [`ReplayCache::store`] at the instant `now`, from which the stored
    /// response's TTLs count down (see [`ReplayCache::answer_at`]).
    pub(crate) fn store_at(
        &self,
        request: &[u8],
        response: &[u8],
        listener: u32,
        generation: u64,
        note: StoredNote,
        now: Instant,
    ) {
        if !self.enabled || note.stale {
            return;
        }
        let Some(query) = parse_query(request) else {
            return;
        };
        let Some(flags) = response
            .get(2..4)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
        else {
            return;
        };
        let rcode = flags & RCODE_MASK;
        if flags & FLAG_TC != 0 || !(rcode == 0 || rcode == 3) {
            return;
        }
        let Some(Layout {
            question_end,
            ttl_offsets: offsets,
            last_opt_rdlength,
        }) = layout(response)
        else {
            return;
        };
        if question_end != 12 + query.question.len() {
            return;
        }
        let ttls: Vec<u32> = offsets
            .iter()
            .map(|&offset| {
                let offset = usize::from(offset);
                u32::from_be_bytes([
                    response[offset],
                    response[offset + 1],
                    response[offset + 2],
                    response[offset + 3],
                ])
            })
            .collect();
        let Some(&min_ttl) = ttls.iter().min() else {
            return; // an empty answer without SOA: nothing says how long it holds
        };
        if min_ttl == 0 {
            return;
        }
        let mut buffer = [0u8; MAX_KEY];
        let Some(key) = Self::key(&query, listener, generation, &mut buffer) else {
            return;
        };
        let stored = Stored {
            bytes: response.into(),
            question_end,
            ttl_offsets: offsets.into(),
            original_ttls: ttls.into(),
            stored: now,
            expires: now + self.replay_lifetime(min_ttl),
            patch_ttls: flags & FLAG_AA == 0,
            last_opt_rdlength,
            note,
        };
        let key: Box<[u8]> = key.into();
        self.stored.shard(&key[..]).put(key, stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::AAAA;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use std::str::FromStr;
    use std::time::Duration;

    fn query(name: &str, edns: bool) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(
            Name::from_str(name).unwrap(),
            RecordType::AAAA,
        ));
        if edns {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            message.set_edns(edns);
        }
        message.to_vec().unwrap()
    }

    fn response_to(request: &[u8], ttl: u32) -> Vec<u8> {
        let request = Message::from_vec(request).unwrap();
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = true;
        response.metadata.recursion_available = true;
        response.queries = request.queries.clone();
        response.add_answer(Record::from_rdata(
            request.queries[0].name().clone(),
            ttl,
            RData::AAAA(AAAA("64:ff9b::1".parse().unwrap())),
        ));
        response.edns = request.edns.clone();
        response.to_vec().unwrap()
    }

    #[test]
    fn parses_plain_queries_only() {
        let plain = query("a.test.", true);
        let shape = parse_query(&plain).unwrap();
        assert_eq!(shape.edns_payload, Some(1232));
        assert!(shape.flags & FLAG_RD != 0);
        assert!(
            parse_query(&plain[..plain.len() - 1]).is_none(),
            "truncated"
        );
        let mut response = plain.clone();
        response[2] |= 0x80;
        assert!(parse_query(&response).is_none(), "QR=1");
        let mut two = plain.clone();
        two[5] = 2;
        assert!(parse_query(&two).is_none(), "QDCOUNT=2");
        assert!(parse_query(&[0; 11]).is_none());
    }

    #[test]
    fn ignorable_edns_options_keep_the_fast_path() {
        let mut with_cookie = query("a.test.", true);
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        with_cookie.extend_from_slice(&cookie);
        let rdlength_at = with_cookie.len() - cookie.len() - 2;
        with_cookie[rdlength_at..rdlength_at + 2]
            .copy_from_slice(&(cookie.len() as u16).to_be_bytes());
        assert!(parse_query(&with_cookie).is_some(), "a client cookie");
        let mut subnet = with_cookie.clone();
        subnet[rdlength_at + 3] = 8;
        assert!(
            parse_query(&subnet).is_none(),
            "client subnet goes to the slow path"
        );
        let mut short = with_cookie.clone();
        short[rdlength_at + 5] = 9; // option length beyond the data
        assert!(parse_query(&short).is_none(), "malformed options");
    }

    #[test]
    fn hit_echoes_id_and_case_and_lowers_ttls() {
        let cache = ReplayCache::new(100);
        let request = query("Host.Test.", false);
        let response = response_to(&request, 300);
        let stored_at = Instant::now();
        cache.store_at(&request, &response, 7, 0, StoredNote::default(), stored_at);
        let again = query("hOST.tEST.", false);
        let shape = parse_query(&again).unwrap();
        let mut out = Vec::new();
        let hit = cache
            .answer_at(&shape, 7, 0, 512, &mut out, stored_at)
            .expect("hit");
        assert_eq!(hit.rcode, 0);
        let message = Message::from_vec(&out).unwrap();
        assert_eq!(message.metadata.id, shape.id);
        assert!(
            message.queries[0]
                .name()
                .eq_case(&Name::from_str("hOST.tEST.").unwrap())
        );
        assert_eq!(message.answers[0].ttl, 300);
        // N seconds later the replayed TTL is 300 - N (whole seconds elapsed).
        for (elapsed, ttl) in [
            (Duration::from_millis(999), 300),
            (Duration::from_secs(1), 299),
            (Duration::from_secs(120), 180),
            (Duration::from_millis(299_999), 1),
        ] {
            cache
                .answer_at(&shape, 7, 0, 512, &mut out, stored_at + elapsed)
                .expect("still fresh");
            let message = Message::from_vec(&out).unwrap();
            assert_eq!(message.answers[0].ttl, ttl, "after {elapsed:?}");
        }
        // Another listener or generation does not see it.
        assert!(cache.answer(&shape, 8, 0, 512, &mut out).is_none());
        cache.invalidate();
        assert!(cache.answer(&shape, 7, 0, 512, &mut out).is_none());
    }

    #[test]
    fn an_expired_response_is_not_replayed_and_is_dropped() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", false);
        let shape = parse_query(&request).unwrap();
        let stored_at = Instant::now();
        let response = response_to(&request, 300);
        cache.store_at(&request, &response, 0, 0, StoredNote::default(), stored_at);
        let mut out = Vec::new();
        let late = stored_at + Duration::from_secs(300);
        assert!(cache.answer_at(&shape, 0, 0, 512, &mut out, late).is_none());
        assert!(cache.is_empty(), "the expired entry is removed");
        // And it stays gone, even for a query whose clock reads earlier.
        assert!(
            cache
                .answer_at(&shape, 0, 0, 512, &mut out, stored_at)
                .is_none()
        );
    }

    #[test]
    fn the_prefetch_margin_ends_replay_early() {
        let cache = ReplayCache::new(100).with_prefetch_margin(10);
        let request = query("a.test.", false);
        let shape = parse_query(&request).unwrap();
        let stored_at = Instant::now();
        let response = response_to(&request, 300);
        cache.store_at(&request, &response, 0, 0, StoredNote::default(), stored_at);
        let mut out = Vec::new();
        let at = |seconds: u64| stored_at + Duration::from_secs(seconds);
        assert!(
            cache
                .answer_at(&shape, 0, 0, 512, &mut out, at(269))
                .is_some()
        );
        assert_eq!(Message::from_vec(&out).unwrap().answers[0].ttl, 31);
        assert!(
            cache
                .answer_at(&shape, 0, 0, 512, &mut out, at(270))
                .is_none()
        );
    }

    #[test]
    fn authoritative_ttls_are_replayed_as_the_zone_says() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", false);
        let shape = parse_query(&request).unwrap();
        let mut response = response_to(&request, 300);
        response[2] |= (FLAG_AA >> 8) as u8;
        let stored_at = Instant::now();
        cache.store_at(&request, &response, 0, 0, StoredNote::default(), stored_at);
        let mut out = Vec::new();
        let later = stored_at + Duration::from_secs(120);
        assert!(
            cache
                .answer_at(&shape, 0, 0, 512, &mut out, later)
                .is_some()
        );
        assert_eq!(Message::from_vec(&out).unwrap().answers[0].ttl, 300);
    }

    #[test]
    fn a_response_computed_before_an_invalidation_is_not_kept_for_after_it() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", false);
        let shape = parse_query(&request).unwrap();
        let mut out = Vec::new();
        // Taken when the slow path starts; a reload invalidates before it stores.
        let before = cache.generation();
        cache.invalidate();
        cache.store(
            &request,
            &response_to(&request, 60),
            0,
            before,
            StoredNote::default(),
        );
        assert!(cache.answer(&shape, 0, 0, 512, &mut out).is_none());
        // One computed after the reload is kept.
        let after = cache.generation();
        cache.store(
            &request,
            &response_to(&request, 60),
            0,
            after,
            StoredNote::default(),
        );
        assert!(cache.answer(&shape, 0, 0, 512, &mut out).is_some());
    }

    #[test]
    fn edns_and_size_are_part_of_the_key() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", true);
        cache.store(
            &request,
            &response_to(&request, 60),
            0,
            0,
            StoredNote::default(),
        );
        let plain = query("a.test.", false);
        let mut out = Vec::new();
        assert!(
            cache
                .answer(&parse_query(&plain).unwrap(), 0, 0, 512, &mut out)
                .is_none()
        );
        let shape = parse_query(&request).unwrap();
        assert!(cache.answer(&shape, 0, 0, 512, &mut out).is_some());
        assert!(
            cache.answer(&shape, 0, 0, 20, &mut out).is_none(),
            "too big for the client"
        );
    }

    #[test]
    fn truncation_keeps_header_and_question() {
        let request = query("a.test.", true);
        let mut response = response_to(&request, 60);
        assert!(truncate_to_question(&mut response));
        let message = Message::from_vec(&response).unwrap();
        assert!(message.metadata.truncation);
        assert_eq!(message.queries.len(), 1);
        assert!(message.answers.is_empty() && message.edns.is_none());
    }

    #[test]
    fn slip_of_a_response_without_one_question_is_refused() {
        let request = query("a.test.", false);
        let mut response = response_to(&request, 60);
        response[5] = 2; // QDCOUNT 2 (regressions/request_path/slip-qdcount-2.bin)
        assert!(!truncate_to_question(&mut response));
    }

    #[test]
    fn stale_answers_are_not_stored() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", true);
        let note = StoredNote {
            stale: true,
            ..StoredNote::default()
        };
        cache.store(&request, &response_to(&request, 30), 0, 0, note);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_prefetch_margin_shortens_replay() {
        let cache = ReplayCache::new(100).with_prefetch_margin(10);
        assert_eq!(
            cache.replay_lifetime(100),
            std::time::Duration::from_secs(90)
        );
        assert_eq!(
            cache.replay_lifetime(1),
            std::time::Duration::from_millis(900)
        );
    }

    #[test]
    fn zero_ttl_and_failures_are_not_stored() {
        let cache = ReplayCache::new(100);
        let request = query("a.test.", false);
        cache.store(
            &request,
            &response_to(&request, 0),
            0,
            0,
            StoredNote::default(),
        );
        let mut failure = response_to(&request, 60);
        failure[3] = (failure[3] & 0xf0) | 2;
        cache.store(&request, &failure, 0, 0, StoredNote::default());
        assert!(cache.is_empty());
    }
}
