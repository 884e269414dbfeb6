//! What an upstream (or a local source) said about one question: the RCODE,
//! the AD bit and the three record sections, without the header or OPT.
//!
//! This is the unit that the cache stores and that DNS64 synthesis reads and
//! writes, so both stay free of wire and socket details.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The most CNAMEs followed in one chain before it is treated as a loop.
pub const MAX_CNAME_CHAIN: usize = 16;

/// The content of a DNS response for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code (NOERROR, NXDOMAIN, SERVFAIL, …).
    pub response_code: ResponseCode,
    /// The upstream's AD bit (RFC 4035 §3.2.3).
    pub authentic_data: bool,
    /// Authoritative data from a local zone (AA in the response).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section, without OPT and TSIG.
    pub additionals: Vec<Record>,
    /// Served from an expired cache entry (RFC 8767): the response gets
    /// Extended DNS Error 3 "Stale Answer".
    pub stale: bool,
}

impl Answer {
    /// An answer with a response code and no records.
    pub fn empty(response_code: ResponseCode) -> Self {
        Self {
            response_code,
            authentic_data: false,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            stale: false,
        }
    }

    /// Takes the sections of an upstream response. Records with empty data
    /// (valid only in UPDATE messages) are dropped: they cannot be relayed.
    pub fn from_message(message: Message) -> Self {
        let relayable = |records: Vec<Record>| -> Vec<Record> {
            records
                .into_iter()
                .filter(|record| !matches!(record.data, RData::Update0(_)))
                .collect()
        };
        Self {
            response_code: message.metadata.response_code,
            authentic_data: message.metadata.authentic_data,
            authoritative: false,
            answers: relayable(message.answers),
            authorities: relayable(message.authorities),
            additionals: relayable(message.additionals),
            stale: false,
        }
    }

    /// The SOA record of the authority section and its negative-caching TTL,
    /// min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> Option<u32> {
        self.authorities
            .iter()
            .find_map(|record| match &record.data {
                RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
                _ => None,
            })
    }

    /// The smallest TTL in the answer section, if it has records.
    pub fn min_answer_ttl(&self) -> Option<u32> {
        self.answers.iter().map(|record| record.ttl).min()
    }

    /// Puts the answer section in chain order (RFC 1034 §4.3.2 step 3a): the
    /// records at `name` (its CNAME), then those at the CNAME's target, and so
    /// on, each name's records preceded by a DNAME above it (the DNAME its
    /// CNAME was synthesized from, RFC 6672 §3.4); records off the chain keep
    /// their order at the end. Within one name the order is kept, so an RRSIG
    /// stays beside its RRset.
    pub(crate) fn order_chain(&mut self, name: &Name) {
        let mut rest = std::mem::take(&mut self.answers);
        let mut ordered = Vec::with_capacity(rest.len());
        let mut current = name.clone();
        for _ in 0..=MAX_CNAME_CHAIN {
            let (above, others): (Vec<Record>, Vec<Record>) =
                rest.into_iter().partition(|record| {
                    record.name != current
                        && record.name.zone_of(&current)
                        && is_type_or_its_rrsig(record, RecordType::DNAME)
                });
            ordered.extend(above);
            let (here, others): (Vec<Record>, Vec<Record>) = others
                .into_iter()
                .partition(|record| record.name == current);
            rest = others;
            let next = here.iter().find_map(|record| match &record.data {
                RData::CNAME(cname) => Some(cname.0.clone()),
                _ => None,
            });
            ordered.extend(here);
            match next {
                Some(target) => current = target,
                None => break,
            }
        }
        ordered.extend(rest);
        self.answers = ordered;
    }

    /// Follows the CNAME chain from `name` through the answer section and
    /// returns the final owner name, or `None` for a loop or an over-long chain.
    pub fn chain_target(&self, name: &Name) -> Option<Name> {
        let mut current = name.clone();
        for _ in 0..=MAX_CNAME_CHAIN {
            let next = self.answers.iter().find_map(|record| match &record.data {
                RData::CNAME(cname) if record.name == current => Some(cname.0.clone()),
                _ => None,
            });
            match next {
                Some(target) => current = target,
                None => return Some(current),
            }
        }
        None
    }

    /// Records of `record_type` owned by `owner` in the answer section.
    pub fn records_at<'a>(
        &'a self,
        owner: &'a Name,
        record_type: RecordType,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.answers
            .iter()
            .filter(move |record| record.record_type() == record_type && &record.name == owner)
    }

    /// Sets the TTL of every SOA in the authority section (only negative
    /// answers carry one there) to its negative-caching TTL,
    /// min(SOA TTL, MINIMUM), as RFC 2308 §3 asks of the server that sends it.
    pub fn normalize_negative_soa(&mut self) {
        for record in &mut self.authorities {
            if let RData::SOA(soa) = &record.data {
                record.ttl = record.ttl.min(soa.minimum);
            }
        }
    }

    /// Removes RRSIG, NSEC and NSEC3 records from the answer and authority
    /// sections: a rewritten answer cannot be validated (RFC 6147 §5.5).
    pub(crate) fn strip_dnssec(&mut self) {
        let is_dnssec = |record: &Record| {
            matches!(
                record.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
        };
        self.answers.retain(|record| !is_dnssec(record));
        self.authorities.retain(|record| !is_dnssec(record));
    }

    /// Lowers every TTL by `elapsed` seconds, never below zero (for cached data).
    pub fn age_by(&mut self, elapsed: u32) {
        for record in self
            .answers
            .iter_mut()
            .chain(self.authorities.iter_mut())
            .chain(self.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(elapsed);
        }
    }
}

/// True if `record` is an RRSIG covering `covered`: a decoded RRSIG, or one
/// kept as opaque RDATA, whose first two octets are the type covered
/// (RFC 4034 §3.1).
pub fn is_rrsig_covering(record: &Record, covered: RecordType) -> bool {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) => rrsig.input().type_covered == covered,
        RData::Unknown { code, rdata } if *code == RecordType::RRSIG => rdata
            .anything
            .first_chunk::<2>()
            .is_some_and(|bytes| RecordType::from(u16::from_be_bytes(*bytes)) == covered),
        _ => false,
    }
}

/// True if `record` is of `record_type` or an RRSIG covering that type.
pub fn is_type_or_its_rrsig(record: &Record, record_type: RecordType) -> bool {
    record.record_type() == record_type || is_rrsig_covering(record, record_type)
}

/// The target of a DNAME record (RFC 6672 §2.1), which hickory keeps as
/// opaque data; `None` for another record or a target that does not decode.
pub fn dname_target(record: &Record) -> Option<Name> {
    use hickory_proto::serialize::binary::BinDecodable;
    match &record.data {
        RData::Unknown { code, rdata } if *code == RecordType::DNAME => {
            Name::from_bytes(&rdata.anything).ok()
        }
        _ => None,
    }
}

/// The name a DNAME at `owner` with `target` maps `name` to (RFC 6672
/// §2.2): `name`'s labels below `owner`, then `target`. `None` when `name`
/// is not strictly below `owner`, or the result is too long (YXDOMAIN).
pub fn dname_substitution(name: &Name, owner: &Name, target: &Name) -> Option<Name> {
    if name.num_labels() <= owner.num_labels() || !owner.zone_of(name) {
        return None;
    }
    let below = usize::from(name.num_labels() - owner.num_labels());
    Name::from_labels(name.iter().take(below))
        .ok()?
        .append_domain(target)
        .ok()
}

/// A DNAME record from `owner` to `target`, as hickory reads one from the
/// wire (opaque data: the target's uncompressed name, RFC 6672 §2.5).
#[cfg(test)]
pub fn dname_record(owner: &Name, ttl: u32, target: &Name) -> Record {
    use hickory_proto::rr::rdata::NULL;
    use hickory_proto::serialize::binary::BinEncodable;
    Record::from_rdata(
        owner.clone(),
        ttl,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(target.to_bytes().expect("a name encodes")),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use std::str::FromStr;

    #[test]
    fn order_chain_puts_a_dname_before_the_cname_synthesized_from_it() {
        let dname = dname_record(&name("old.test."), 300, &name("new.test."));
        let synthesized = cname("www.old.test.", "www.new.test.");
        let a = Record::from_rdata(name("www.new.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.answers = vec![a.clone(), synthesized.clone(), dname.clone()];
        answer.order_chain(&name("www.old.test."));
        assert_eq!(answer.answers, [dname.clone(), synthesized, a]);
        assert_eq!(dname_target(&dname), Some(name("new.test.")));
        assert_eq!(
            answer.chain_target(&name("www.old.test.")),
            Some(name("www.new.test."))
        );
    }

    #[test]
    fn dname_substitution_replaces_the_owner_suffix() {
        let (owner, target) = (name("old.test."), name("new.example."));
        let cases = [
            ("www.old.test.", Some("www.new.example.")),
            ("a.b.OLD.test.", Some("a.b.new.example.")),
            ("old.test.", None),
            ("www.other.test.", None),
        ];
        for (asked, mapped) in cases {
            assert_eq!(
                dname_substitution(&name(asked), &owner, &target),
                mapped.map(name),
                "{asked}"
            );
        }
        let long_label = [b'x'; 63];
        let long_target = Name::from_labels([&long_label[..]; 3]).unwrap();
        assert_eq!(
            dname_substitution(
                &name(&format!("{}.old.test.", "y".repeat(63))),
                &owner,
                &long_target
            ),
            None,
            "over 255 octets: YXDOMAIN"
        );
    }

    #[test]
    fn order_chain_puts_cnames_before_their_targets() {
        let name = |text: &str| Name::from_str(text).unwrap();
        let a = Record::from_rdata(name("c.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        let first = Record::from_rdata(name("a.test."), 60, RData::CNAME(CNAME(name("b.test."))));
        let second = Record::from_rdata(name("b.test."), 60, RData::CNAME(CNAME(name("c.test."))));
        let stray = Record::from_rdata(name("x.test."), 60, RData::A(A::new(192, 0, 2, 9)));
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.answers = vec![a.clone(), stray.clone(), second.clone(), first.clone()];
        answer.order_chain(&name("A.test."));
        assert_eq!(answer.answers, [first, second, a, stray]);
    }

    #[test]
    fn rrsig_coverage_is_read_from_decoded_and_from_opaque_rrsigs() {
        use hickory_proto::rr::rdata::NULL;
        use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
        let mut rdata = vec![0, 28, 13, 2]; // covers AAAA, ECDSAP256SHA256, 2 labels
        rdata.extend_from_slice(&300u32.to_be_bytes());
        rdata.extend_from_slice(&2_000_000_000u32.to_be_bytes());
        rdata.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        rdata.extend_from_slice(&[0x30, 0x39, 4, b't', b'e', b's', b't', 0]);
        rdata.extend_from_slice(&[0xab; 64]);
        let opaque = Record::from_rdata(
            Name::from_str("a.test.").unwrap(),
            300,
            RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(rdata),
            },
        );
        let decoded = Record::from_bytes(&opaque.to_bytes().unwrap()).unwrap();
        assert!(matches!(decoded.data, RData::DNSSEC(DNSSECRData::RRSIG(_))));
        for record in [&opaque, &decoded] {
            assert!(is_rrsig_covering(record, RecordType::AAAA));
            assert!(!is_rrsig_covering(record, RecordType::A));
        }
    }

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn chain_target_follows_cnames_case_insensitively() {
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.answers = vec![
            cname("a.test.", "B.test."),
            cname("b.test.", "c.test."),
            Record::from_rdata(name("c.test."), 300, RData::A(A::new(1, 2, 3, 4))),
        ];
        assert_eq!(answer.chain_target(&name("A.TEST.")), Some(name("c.test.")));
        assert_eq!(answer.chain_target(&name("z.test.")), Some(name("z.test.")));
    }

    #[test]
    fn empty_update_records_are_not_taken_in() {
        // regressions/synthesis/update-opcode-empty-rdata.bin
        let mut message = Message::response(1, hickory_proto::op::OpCode::Query);
        message.answers.push(Record::from_rdata(
            name("a.test."),
            0,
            RData::Update0(RecordType::AAAA),
        ));
        message.answers.push(Record::from_rdata(
            name("a.test."),
            60,
            RData::A(A::new(1, 2, 3, 4)),
        ));
        let answer = Answer::from_message(message);
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.answers[0].record_type(), RecordType::A);
    }

    #[test]
    fn chain_target_detects_loops() {
        let mut answer = Answer::empty(ResponseCode::NoError);
        answer.answers = vec![cname("a.test.", "b.test."), cname("b.test.", "a.test.")];
        assert_eq!(answer.chain_target(&name("a.test.")), None);
    }

    #[test]
    fn negative_ttl_is_min_of_soa_ttl_and_minimum() {
        let soa = SOA::new(name("ns."), name("h."), 1, 3600, 900, 604800, 600);
        let mut answer = Answer::empty(ResponseCode::NXDomain);
        answer.authorities = vec![Record::from_rdata(name("t."), 45, RData::SOA(soa.clone()))];
        assert_eq!(answer.negative_ttl(), Some(45));
        answer.authorities = vec![Record::from_rdata(name("t."), 3600, RData::SOA(soa))];
        assert_eq!(answer.negative_ttl(), Some(600));
        assert_eq!(Answer::empty(ResponseCode::NoError).negative_ttl(), None);
    }
}
