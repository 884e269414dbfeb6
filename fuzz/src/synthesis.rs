//! The `synthesis` target: the pure DNS64 core on arbitrary upstream
//! responses (malformed, mismatched, huge, CNAME loops, records of the wrong
//! type or owner).
//!
//! Input: a 2-octet big-endian length N, then N octets of the "AAAA answer"
//! message and the rest as the "A answer" message. Messages that do not
//! parse are skipped (the upstream client would drop them too).
//!
//! For both question names (of the AAAA and of the A message) and every
//! policy combination (`SynthesizeOn::Rfc`/`NodataOnly`, native AAAA used or
//! ignored): `decide_on_aaaa`, then `synthesize_from_a`, and the result
//! re-encoded as a response. Also the reverse-name parsers, the reverse
//! answer rewriting and `Answer::chain_target` on every name.
//!
//! Invariants: no panic; a kept native answer holds no excluded AAAA;
//! synthesized answers hold only CNAMEs and AAAA records inside a prefix,
//! with a TTL no larger than the A record's and never AD; reverse names
//! round-trip; the result re-encodes without panicking and, when it
//! encodes, decodes again.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use dns64d::dns64::answer::Answer;
use dns64d::dns64::reverse;
use dns64d::dns64::synthesis::{self, AaaaDecision, SynthesizeOn};
use dns64d::dns64::{ExcludedAaaa, Nat64Prefix, SynthesisPrefix};
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn prefixes() -> &'static [SynthesisPrefix] {
    static PREFIXES: OnceLock<Vec<SynthesisPrefix>> = OnceLock::new();
    PREFIXES.get_or_init(|| {
        crate::CONFIG_PREFIXES
            .iter()
            .chain(crate::EXTRA_PREFIXES.iter())
            .map(|text| {
                let prefix: Nat64Prefix = text.parse().expect("valid fuzz prefix");
                SynthesisPrefix::new(prefix, None)
            })
            .collect()
    })
}

/// Splits an input into the two messages' octets.
pub fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = data.split_first_chunk::<2>()?;
    let length = usize::from(u16::from_be_bytes(*length)).min(rest.len());
    Some(rest.split_at(length))
}

/// Joins two messages' octets into an input (for seeds).
pub fn join(aaaa: &[u8], a: &[u8]) -> Vec<u8> {
    let length = u16::try_from(aaaa.len()).expect("seed message fits in 64 KiB");
    let mut data = length.to_be_bytes().to_vec();
    data.extend_from_slice(aaaa);
    data.extend_from_slice(a);
    data
}

/// Runs one input; panics when an invariant fails.
pub fn check(data: &[u8]) {
    let Some((aaaa_bytes, a_bytes)) = split(data) else {
        return;
    };
    let Ok(aaaa_message) = Message::from_vec(aaaa_bytes) else {
        return;
    };
    let Ok(a_message) = Message::from_vec(a_bytes) else {
        return;
    };
    let mut qnames: Vec<Name> = Vec::new();
    for message in [&aaaa_message, &a_message] {
        if let Some(query) = message.queries.first()
            && !qnames.contains(query.name())
        {
            qnames.push(query.name().clone());
        }
    }
    if qnames.is_empty() {
        qnames.push(Name::root());
    }

    for message in [&aaaa_message, &a_message] {
        for name in names_in(message) {
            check_reverse_name(&name);
        }
    }

    let aaaa = Answer::from_message(aaaa_message);
    let a = Answer::from_message(a_message);
    let excluded = ExcludedAaaa::default();
    for qname in &qnames {
        check_chain_target(&aaaa, qname);
        check_chain_target(&a, qname);
        for synthesize_on in [SynthesizeOn::Rfc, SynthesizeOn::NodataOnly] {
            for ignore_native in [false, true] {
                let decision = synthesis::decide_on_aaaa(
                    qname,
                    aaaa.clone(),
                    &excluded,
                    ignore_native,
                    synthesize_on,
                );
                match decision {
                    AaaaDecision::Native(answer) => {
                        assert!(!ignore_native, "native AAAA kept although ignored");
                        for record in &answer.answers {
                            if let RData::AAAA(address) = &record.data {
                                assert!(
                                    !excluded.is_excluded(&address.0),
                                    "excluded AAAA {} kept",
                                    address.0
                                );
                            }
                        }
                        encode(qname, &answer);
                    }
                    AaaaDecision::PassThrough(answer) => encode(qname, &answer),
                    AaaaDecision::Fail => {
                        assert_eq!(synthesize_on, SynthesizeOn::NodataOnly);
                    }
                    AaaaDecision::Synthesize(fallback) => {
                        for count in [prefixes().len(), 1] {
                            let used = &prefixes()[..count];
                            let result =
                                synthesis::synthesize_from_a(qname, &a, fallback.clone(), used);
                            if result.synthesized {
                                check_synthesized(&result.answer, &a, used);
                            }
                            encode(qname, &result.answer);
                        }
                    }
                }
            }
        }
        // The reverse rewriting on arbitrary answers (the A answer as the target's).
        let target = a.chain_target(qname).unwrap_or_else(|| qname.clone());
        encode(
            qname,
            &reverse::cname_answer(qname, &target, 600, a.clone()),
        );
        encode(qname, &reverse::ptr_answer(qname, &target, a.clone()));
        let _ = reverse::embedded_ipv4(qname, prefixes());
    }
}

/// Every name in a message: question, owners and the names inside CNAME/PTR data.
fn names_in(message: &Message) -> Vec<Name> {
    let mut names: Vec<Name> = message.queries.iter().map(|q| q.name().clone()).collect();
    for record in message
        .answers
        .iter()
        .chain(&message.authorities)
        .chain(&message.additionals)
    {
        names.push(record.name.clone());
        match &record.data {
            RData::CNAME(target) => names.push(target.0.clone()),
            RData::PTR(target) => names.push(target.0.clone()),
            _ => {}
        }
    }
    names
}

fn check_reverse_name(name: &Name) {
    if let Some(address) = reverse::ipv6_from_reverse_name(name) {
        assert_eq!(
            ip6_arpa(address),
            name.to_lowercase(),
            "ip6.arpa name does not round-trip"
        );
    }
    if let Some(address) = reverse::ipv4_from_reverse_name(name) {
        let back = reverse::reverse_name_of(address);
        // Finding 1 (regressions/synthesis/in-addr-plus-sign.bin, fixed): "+4" was taken as 4.
        assert_eq!(back, *name, "in-addr.arpa name does not round-trip");
        let _ = reverse::ipv4only_ptr(name, address);
    }
    let _ = reverse::embedded_ipv4(name, prefixes());
}

/// The ip6.arpa name of an address.
pub fn ip6_arpa(address: Ipv6Addr) -> Name {
    let nibbles: Vec<String> = format!("{:032x}", u128::from(address))
        .chars()
        .rev()
        .map(String::from)
        .collect();
    crate::zone::name(&format!("{}.ip6.arpa.", nibbles.join(".")))
}

fn check_chain_target(answer: &Answer, name: &Name) {
    if let Some(target) = answer.chain_target(name) {
        let reached = target == *name
            || answer.answers.iter().any(|record| match &record.data {
                RData::CNAME(cname) => cname.0 == target,
                _ => false,
            });
        assert!(
            reached,
            "chain target {target} is neither the name nor a CNAME target"
        );
    }
}

fn check_synthesized(answer: &Answer, a: &Answer, used: &[SynthesisPrefix]) {
    // RFC 6147 §5.5: validated only when the A answer was (and the AAAA denial).
    assert!(
        !answer.authentic_data || a.authentic_data,
        "synthesized answer validated although its A answer was not"
    );
    assert!(answer.additionals.is_empty());
    // The authority section: the A answer's NSEC/NSEC3 records and their RRSIGs only.
    for record in &answer.authorities {
        let proof = [RecordType::NSEC, RecordType::NSEC3]
            .into_iter()
            .any(|kind| {
                record.record_type() == kind
                    || dns64d::dns64::answer::is_rrsig_covering(record, kind)
            });
        assert!(
            proof && a.authorities.contains(record),
            "{} {} in the authority of a synthesized answer",
            record.name,
            record.record_type()
        );
    }
    let mut aaaa_count = 0;
    for record in &answer.answers {
        // The chain: CNAMEs, the DNAMEs they came from (RFC 6672 §3.4) and
        // their RRSIGs, each as the A answer had it.
        let chain = [RecordType::CNAME, RecordType::DNAME]
            .into_iter()
            .any(|kind| dns64d::dns64::answer::is_type_or_its_rrsig(record, kind));
        if chain && record.record_type() != RecordType::CNAME {
            assert!(
                a.answers.contains(record),
                "a {} the A answer did not have",
                record.record_type()
            );
            continue;
        }
        match &record.data {
            RData::CNAME(_) => {}
            RData::AAAA(address) => {
                aaaa_count += 1;
                // Prefixes may overlap (2001:db8::/32 holds the others): one
                // of those holding the address must explain it.
                let explained = used.iter().any(|prefix| {
                    let Some(ipv4) = prefix.prefix.extract(&address.0) else {
                        return false;
                    };
                    prefix.may_embed(ipv4)
                        && prefix.prefix.embed(ipv4) == address.0
                        && a.answers.iter().any(|r| {
                            r.name == record.name
                                && r.ttl >= record.ttl
                                && matches!(&r.data, RData::A(v4) if v4.0 == ipv4)
                        })
                });
                assert!(
                    explained,
                    "synthesized {} {} explained by no A record and prefix",
                    record.name, address.0
                );
            }
            other => panic!("{} record in a synthesized answer", other.record_type()),
        }
    }
    assert!(aaaa_count > 0, "synthesized answer without AAAA");
}

/// Re-encodes an answer as the handler would; encoding may fail, but not
/// panic, and what encodes must decode.
fn encode(qname: &Name, answer: &Answer) {
    let mut response = Message::response(0x4d64, OpCode::Query);
    response.metadata.response_code = answer.response_code;
    response.metadata.authentic_data = answer.authentic_data;
    response.add_query(Query::query(qname.clone(), RecordType::AAAA));
    response.answers = answer.answers.clone();
    response.authorities = answer.authorities.clone();
    response.additionals = answer.additionals.clone();
    if let Ok(bytes) = response.to_vec()
        && let Err(error) = Message::from_vec(&bytes)
    {
        // Finding 2 (regressions/synthesis/update-opcode-empty-rdata.bin), fixed:
        // records with empty data are dropped when an answer is taken in.
        panic!("re-encoded answer does not decode: {error}: {bytes:02x?}");
    }
    let _: Vec<&Record> = answer.records_at(qname, RecordType::AAAA).collect();
    let _ = (answer.negative_ttl(), answer.min_answer_ttl());
    let mut aged = answer.clone();
    aged.normalize_negative_soa();
    aged.age_by(u32::MAX);
}
