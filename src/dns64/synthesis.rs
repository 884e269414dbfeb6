//! RFC 6147 §5.1 decisions for AAAA queries: keep the native AAAA answer,
//! or synthesize AAAA records from the A answer, and with which TTL.
//!
//! Pure functions over plain values and [`Answer`]s: no I/O, no clock. The
//! resolver asks [`decide_on_question`] whether DNS64 handles a question at
//! all; for one it does, it asks [`decide_on_aaaa`] about the AAAA answer and,
//! when told to, fetches the A answer and calls [`synthesize_from_a`].

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::policy::{ExcludedAaaa, SynthesisPrefix};
use crate::dns64::answer::{Answer, is_rrsig_covering, is_type_or_its_rrsig};

/// TTL cap for synthesized records when the AAAA answer carried no SOA (RFC 6147 §5.1.7).
pub(crate) const TTL_CAP_WITHOUT_SOA: u32 = 600;

/// What the resolver knows about a question when it decides whether DNS64
/// handles it: plain values, so the decision is a table lookup. Finding them
/// (the configuration's domain lists, the local zones) is the caller's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuestionFacts {
    /// At least one prefix applies to this client on this listener, and the
    /// class is IN (RFC 6147 §5.1: DNS64 answers "type AAAA and class IN").
    pub dns64_active: bool,
    /// The query type.
    pub record_type: RecordType,
    /// The name is at or below one of `dns64.exclude_domains` (operator policy).
    pub name_excluded: bool,
    /// The name is inside a local zone configured with `dns64 = false` (operator policy).
    pub zone_forbids_dns64: bool,
    /// The client's EDNS DO bit.
    pub dnssec_ok: bool,
    /// The client's CD bit.
    pub checking_disabled: bool,
    /// `dns64.break_dnssec`: synthesize for DO+CD queries too, against RFC 6147 §5.5.
    pub break_dnssec: bool,
}

/// Whether DNS64 handles a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuestionDecision {
    /// DNS64 handles it: look up AAAA, then [`decide_on_aaaa`] (RFC 6147 §5.1).
    Dns64,
    /// Answer it as a resolver without DNS64 would, for this reason.
    Forward(ForwardReason),
}

/// Why a question is answered without DNS64 (the first rule that applies,
/// in the order [`decide_on_question`] checks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardReason {
    /// No prefix applies to this client on this listener, or the class is not IN.
    Inactive,
    /// Not an AAAA question: RFC 6147 §5.1 synthesizes AAAA records only
    /// (PTR for synthesized addresses, §5.3.1, is [`super::reverse`]'s).
    NotAaaa,
    /// The name is in `dns64.exclude_domains`.
    ExcludedDomain,
    /// The name is in a local zone with `dns64 = false`.
    ZoneForbids,
    /// DO and CD are both set and `dns64.break_dnssec` is off: the client
    /// validates itself, so RFC 6147 §5.5 item 3 forbids synthesis.
    ClientValidates,
}

/// Decides whether DNS64 handles a question (RFC 6147 §5.1, §5.5).
///
/// DNS64 handles a question only when all of these hold, checked in this
/// order (the first that fails is the [`ForwardReason`]):
/// - DNS64 is active for it: a prefix serves the client and the class is
///   IN (§5.1: "a query for RRs of type AAAA and class IN").
/// - The type is AAAA (§5.1). Every other type, A included, is answered as
///   a plain recursive resolver would.
/// - The name is not excluded by the operator (`dns64.exclude_domains`, or
///   a local zone with `dns64 = false`).
/// - The client does not validate for itself: §5.5 item 3, "If the CD bit
///   is set and DO is set, then vDNS64 MAY perform validation, but MUST NOT
///   perform synthesis": such a client gets the data as it is and does its
///   own synthesis. `dns64.break_dnssec` overrides this, knowingly. CD
///   without DO, or DO without CD, does not stop synthesis (§5.5 items 1
///   and 2; the AD bit is [`super::dnssec::response_authentic_data`]'s).
pub(crate) fn decide_on_question(facts: QuestionFacts) -> QuestionDecision {
    let reason = if !facts.dns64_active {
        ForwardReason::Inactive
    } else if facts.record_type != RecordType::AAAA {
        ForwardReason::NotAaaa
    } else if facts.name_excluded {
        ForwardReason::ExcludedDomain
    } else if facts.zone_forbids_dns64 {
        ForwardReason::ZoneForbids
    } else if facts.dnssec_ok && facts.checking_disabled && !facts.break_dnssec {
        ForwardReason::ClientValidates
    } else {
        return QuestionDecision::Dns64;
    };
    QuestionDecision::Forward(reason)
}

/// When a failed AAAA lookup (an RCODE other than NOERROR or NXDOMAIN) leads to synthesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthesizeOn {
    /// RFC 6147 §5.1.2: treat SERVFAIL, REFUSED and the like as NODATA and synthesize.
    #[default]
    Rfc,
    /// Synthesize only after a NOERROR answer without usable AAAA; return failures as SERVFAIL.
    NodataOnly,
}

/// What to do with the answer to the AAAA question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AaaaDecision {
    /// Usable native AAAA records exist: return this answer (excluded AAAA removed).
    Native(Answer),
    /// Return this answer unchanged (NXDOMAIN: the name does not exist, §5.1.2).
    PassThrough(Answer),
    /// No usable AAAA: look up A and synthesize. Carries what the fallback needs.
    Synthesize(AaaaFallback),
    /// The AAAA lookup failed and policy forbids synthesis after failures.
    Fail,
}

/// What the AAAA answer contributes when synthesis runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaaaFallback {
    /// The negative-caching TTL of the AAAA answer, when it carried an SOA (§5.1.7).
    pub negative_ttl: Option<u32>,
    /// The AAAA answer's RCODE was NOERROR (the name exists, without usable AAAA).
    pub name_exists: bool,
    /// The AAAA answer with excluded records removed, returned when nothing can be synthesized.
    pub nodata: Answer,
    /// Native AAAA records were present and all excluded.
    pub had_excluded: bool,
    /// The native answer set aside because `ignore_aaaa` applies to the
    /// name: returned when nothing can be synthesized, so the option only
    /// ever prefers the synthesized address and never makes a name
    /// unreachable (as Unbound 1.19 and later do).
    pub native: Option<Answer>,
}

impl AaaaFallback {
    /// True if the AAAA answer is a validated denial (RFC 6147 §5.5 item 2:
    /// "the negative response validates"): NOERROR without AAAA, with AD.
    /// Native AAAA records that were excluded or ignored are no denial.
    fn is_validated_denial(&self) -> bool {
        self.name_exists
            && self.nodata.authentic_data
            && !self.had_excluded
            && self.native.is_none()
    }
}

/// Decides on the AAAA answer for `qname` (RFC 6147 §5.1.1, §5.1.2, §5.1.4).
pub fn decide_on_aaaa(
    qname: &Name,
    aaaa: Answer,
    excluded: &ExcludedAaaa,
    ignore_native: bool,
    synthesize_on: SynthesizeOn,
) -> AaaaDecision {
    match aaaa.response_code {
        ResponseCode::NXDomain => AaaaDecision::PassThrough(aaaa),
        ResponseCode::NoError => {
            let target = aaaa.chain_target(qname);
            let (kept, had_excluded) = without_excluded_aaaa(aaaa, excluded);
            let has_usable = target
                .as_ref()
                .is_some_and(|target| kept.records_at(target, RecordType::AAAA).next().is_some());
            if has_usable && !ignore_native {
                return AaaaDecision::Native(kept);
            }
            let native = has_usable.then(|| kept.clone());
            let mut nodata = kept;
            if had_excluded || has_usable {
                nodata = strip_aaaa(nodata);
            }
            AaaaDecision::Synthesize(AaaaFallback {
                negative_ttl: nodata.negative_ttl(),
                name_exists: true,
                nodata,
                had_excluded,
                native,
            })
        }
        _ => match synthesize_on {
            SynthesizeOn::Rfc => AaaaDecision::Synthesize(AaaaFallback {
                negative_ttl: None,
                name_exists: false,
                nodata: Answer::empty(ResponseCode::ServFail),
                had_excluded: false,
                native: None,
            }),
            SynthesizeOn::NodataOnly => AaaaDecision::Fail,
        },
    }
}

/// Removes excluded AAAA records; if any were removed, the AAAA RRSIGs no
/// longer match the RRset and are removed too. Returns whether any were removed.
fn without_excluded_aaaa(mut answer: Answer, excluded: &ExcludedAaaa) -> (Answer, bool) {
    let before = answer.answers.len();
    answer.answers.retain(|record| match &record.data {
        RData::AAAA(AAAA(address)) => !excluded.is_excluded(address),
        _ => true,
    });
    let removed = answer.answers.len() != before;
    if removed {
        answer
            .answers
            .retain(|record| !is_rrsig_covering(record, RecordType::AAAA));
    }
    (answer, removed)
}

/// Removes every AAAA record and its signatures (for `ignore_aaaa` and the NODATA fallback).
fn strip_aaaa(mut answer: Answer) -> Answer {
    answer.answers.retain(|record| {
        record.record_type() != RecordType::AAAA && !is_rrsig_covering(record, RecordType::AAAA)
    });
    answer
}

/// The result of synthesis: the answer to return and whether it holds synthesized records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthesized {
    /// The response content.
    pub answer: Answer,
    /// True when the answer section holds synthesized AAAA records (RFC 8914 code 29 applies).
    pub synthesized: bool,
}

/// Builds the AAAA answer from the A answer for `qname` (RFC 6147 §5.1.6–§5.1.7).
///
/// The chain of the A answer is kept with its RRSIGs: its CNAMEs, and the
/// DNAMEs they were synthesized from (RFC 6672 §3.4: a validating client
/// checks the signed DNAME, not the unsigned CNAME). One AAAA
/// per embeddable A record of the chain's final name is added per prefix
/// (prefix order first). The TTL of each synthesized AAAA is min(A TTL,
/// negative TTL of the AAAA answer), or min(A TTL, 600) without an SOA.
/// The synthesized AAAA set has no RRSIG; the authority section keeps the A
/// answer's NSEC/NSEC3 records and their RRSIGs (a wildcard's proof stays
/// true), and nothing else. The answer counts as validated (see
/// [`super::dnssec::response_authentic_data`]) when the AAAA answer was a
/// validated denial and the A answer (chain included) validated.
/// With nothing to synthesize, the result is NODATA (or the A answer's
/// NXDOMAIN when the AAAA lookup failed), see [`nothing_to_synthesize`].
pub fn synthesize_from_a(
    qname: &Name,
    a: &Answer,
    fallback: AaaaFallback,
    prefixes: &[SynthesisPrefix],
) -> Synthesized {
    let ttl_cap = fallback.negative_ttl.unwrap_or(TTL_CAP_WITHOUT_SOA);
    let target = if a.response_code == ResponseCode::NoError {
        a.chain_target(qname)
    } else {
        None
    };
    let mut synthesized = Vec::new();
    if let Some(target) = &target {
        for prefix in prefixes {
            for record in a.records_at(target, RecordType::A) {
                let RData::A(address) = &record.data else {
                    continue;
                };
                if !prefix.may_embed(address.0) {
                    continue;
                }
                let aaaa = AAAA(prefix.prefix.embed(address.0));
                let mut synthesized_record = Record::from_rdata(
                    record.name.clone(),
                    record.ttl.min(ttl_cap),
                    RData::AAAA(aaaa),
                );
                synthesized_record.dns_class = record.dns_class;
                synthesized.push(synthesized_record);
            }
        }
    }

    if !synthesized.is_empty() {
        let mut answers: Vec<Record> = a
            .answers
            .iter()
            .filter(|record| {
                is_type_or_its_rrsig(record, RecordType::CNAME)
                    || is_type_or_its_rrsig(record, RecordType::DNAME)
            })
            .cloned()
            .collect();
        answers.extend(synthesized);
        let authorities = a
            .authorities
            .iter()
            .filter(|record| {
                is_type_or_its_rrsig(record, RecordType::NSEC)
                    || is_type_or_its_rrsig(record, RecordType::NSEC3)
            })
            .cloned()
            .collect();
        return Synthesized {
            answer: Answer {
                response_code: ResponseCode::NoError,
                authentic_data: fallback.is_validated_denial() && a.authentic_data,
                authoritative: a.authoritative && fallback.nodata.authoritative,
                answers,
                authorities,
                additionals: Vec::new(),
                stale: a.stale,
            },
            synthesized: true,
        };
    }

    Synthesized {
        answer: nothing_to_synthesize(a, fallback),
        synthesized: false,
    }
}

/// The answer when no AAAA could be synthesized.
///
/// Every record kept is one the upstream sent that is still true, with its
/// RRSIGs, in the section it came from (RFC 4035 §3.1), so a validating
/// client can check what it gets:
/// - `ignore_aaaa` set the native AAAA answer aside: that answer, whole.
/// - The AAAA answer was NODATA: that answer as it came (the CNAME chain,
///   the SOA and the NSEC/NSEC3 proof, all with their RRSIGs, and its AD).
/// - Its AAAA records were all excluded: its chain, and the SOA with its
///   RRSIG from the A answer when that was NODATA too (also used when an
///   AAAA NODATA came without SOA). No proof of absence exists for AAAA
///   records that exist, so this answer is never validated.
/// - The AAAA lookup failed (§5.1.2): the A answer without its A records,
///   which keeps an NXDOMAIN with its proof, or the failure.
fn nothing_to_synthesize(a: &Answer, fallback: AaaaFallback) -> Answer {
    if let Some(native) = fallback.native {
        return native;
    }
    if fallback.name_exists {
        let mut answer = fallback.nodata;
        if fallback.had_excluded {
            answer.authentic_data = false;
        }
        // A NODATA needs an SOA for negative caching (RFC 2308 §2.2): when the
        // AAAA answer had none (excluded records, or an upstream that sent
        // none), the A answer's NODATA SOA, from the same zone, with its RRSIGs.
        if answer.negative_ttl().is_none() && a.response_code == ResponseCode::NoError {
            answer.authorities.extend(
                a.authorities
                    .iter()
                    .filter(|record| is_type_or_its_rrsig(record, RecordType::SOA))
                    .cloned(),
            );
        }
        answer.additionals.clear();
        return answer;
    }
    if !matches!(
        a.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) {
        return Answer::empty(ResponseCode::ServFail);
    }
    let mut answer = a.clone();
    answer
        .answers
        .retain(|record| !is_type_or_its_rrsig(record, RecordType::A));
    answer.additionals.clear();
    // The A answer's proofs deny A, not AAAA: only an NXDOMAIN denies both.
    answer.authentic_data &= answer.response_code == ResponseCode::NXDomain;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns64::Nat64Prefix;
    use hickory_proto::dnssec::Algorithm;
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, RRSIG, SigInput};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use ipnet::Ipv4Net;
    use std::net::Ipv6Addr;
    use std::str::FromStr;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    fn rrsig(owner: &str, covered: RecordType) -> Record {
        let input = SigInput {
            type_covered: covered,
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: name(owner).num_labels(),
            original_ttl: 300,
            sig_expiration: 2_000_000_000.into(),
            sig_inception: 1_000_000_000.into(),
            key_tag: 1,
            signer_name: name("test."),
        };
        let data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, vec![1; 64])));
        Record::from_rdata(name(owner), 300, data)
    }

    fn soa() -> Record {
        let soa = SOA::new(name("ns.test."), name("h.test."), 1, 3600, 900, 604800, 60);
        Record::from_rdata(name("test."), 3600, RData::SOA(soa))
    }

    fn nsec(owner: &str, types: &[RecordType]) -> Record {
        let data = NSEC::new(name("z.test."), types.iter().copied());
        Record::from_rdata(name(owner), 60, RData::DNSSEC(DNSSECRData::NSEC(data)))
    }

    /// A signed answer: `answers`, and a signed SOA plus the NSEC at `nodata_at` when set.
    fn answer(
        code: ResponseCode,
        answers: Vec<Record>,
        nodata_at: Option<(&str, &[RecordType])>,
        authentic_data: bool,
    ) -> Answer {
        let mut answer = Answer::empty(code);
        answer.answers = answers;
        answer.authentic_data = authentic_data;
        if let Some((owner, types)) = nodata_at {
            answer.authorities = vec![
                soa(),
                rrsig("test.", RecordType::SOA),
                nsec(owner, types),
                rrsig(owner, RecordType::NSEC),
            ];
        }
        answer
    }

    fn summary(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|record| match &record.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                    format!("{} RRSIG({})", record.name, sig.input().type_covered)
                }
                _ => format!("{} {}", record.name, record.record_type()),
            })
            .collect()
    }

    #[test]
    fn answers_keep_every_true_record_with_its_signatures() {
        let prefixes = [SynthesisPrefix::new(Nat64Prefix::well_known(), None)];
        let qname = name("alias.test.");
        let chain = || {
            vec![
                Record::from_rdata(qname.clone(), 300, RData::CNAME(CNAME(name("host.test.")))),
                rrsig("alias.test.", RecordType::CNAME),
            ]
        };
        let a_record = |address: A| Record::from_rdata(name("host.test."), 300, RData::A(address));
        let secure_a = |address: A| {
            let mut answers = chain();
            answers.extend([a_record(address), rrsig("host.test.", RecordType::A)]);
            answer(ResponseCode::NoError, answers, None, true)
        };
        let aaaa_nodata = |authentic_data| {
            answer(
                ResponseCode::NoError,
                chain(),
                Some((
                    "host.test.",
                    &[RecordType::A, RecordType::RRSIG, RecordType::NSEC],
                )),
                authentic_data,
            )
        };
        let a_nodata = answer(
            ResponseCode::NoError,
            chain(),
            Some((
                "host.test.",
                &[RecordType::TXT, RecordType::RRSIG, RecordType::NSEC],
            )),
            true,
        );
        let mapped_aaaa = {
            let mut answers = chain();
            answers.push(Record::from_rdata(
                name("host.test."),
                300,
                RData::AAAA(AAAA("::ffff:1.2.3.4".parse().unwrap())),
            ));
            answers.push(rrsig("host.test.", RecordType::AAAA));
            answer(ResponseCode::NoError, answers, None, true)
        };
        let proof = [
            "test. SOA",
            "test. RRSIG(SOA)",
            "host.test. NSEC",
            "host.test. RRSIG(NSEC)",
        ];
        let chain_lines = ["alias.test. CNAME", "alias.test. RRSIG(CNAME)"];
        // (case, AAAA answer, A answer, answer lines, authority lines, validated, synthesized)
        type Case<'a> = (
            &'a str,
            Answer,
            Answer,
            Vec<&'a str>,
            Vec<&'a str>,
            bool,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "synthesized from a secure chain",
                aaaa_nodata(true),
                secure_a(A::new(93, 184, 216, 34)),
                [&chain_lines[..], &["host.test. AAAA"]].concat(),
                vec![],
                true,
                true,
            ),
            (
                "synthesized, AAAA denial not validated",
                aaaa_nodata(false),
                secure_a(A::new(93, 184, 216, 34)),
                [&chain_lines[..], &["host.test. AAAA"]].concat(),
                vec![],
                false,
                true,
            ),
            (
                "nothing to embed: the AAAA denial whole",
                aaaa_nodata(true),
                secure_a(A::new(127, 0, 0, 1)),
                chain_lines.to_vec(),
                proof.to_vec(),
                true,
                false,
            ),
            (
                "no A either: the AAAA denial whole",
                aaaa_nodata(true),
                a_nodata.clone(),
                chain_lines.to_vec(),
                proof.to_vec(),
                true,
                false,
            ),
            (
                "excluded AAAA, no A: the signed SOA of the A answer, no proof, not validated",
                mapped_aaaa,
                a_nodata,
                chain_lines.to_vec(),
                vec!["test. SOA", "test. RRSIG(SOA)"],
                false,
                false,
            ),
        ];
        for (case, aaaa, a, answers, authorities, validated, synthesized) in cases {
            let AaaaDecision::Synthesize(fallback) = decide_on_aaaa(
                &qname,
                aaaa,
                &ExcludedAaaa::default(),
                false,
                SynthesizeOn::Rfc,
            ) else {
                panic!("{case}: no synthesis");
            };
            let result = synthesize_from_a(&qname, &a, fallback, &prefixes);
            assert_eq!(summary(&result.answer.answers), answers, "{case}");
            assert_eq!(summary(&result.answer.authorities), authorities, "{case}");
            assert_eq!(result.answer.authentic_data, validated, "{case}");
            assert_eq!(result.synthesized, synthesized, "{case}");
        }
    }

    #[test]
    fn ignored_native_aaaa_is_returned_when_nothing_can_be_synthesized() {
        let qname = name("v6.test.");
        let mut aaaa = Answer::empty(ResponseCode::NoError);
        aaaa.answers = vec![
            Record::from_rdata(
                qname.clone(),
                300,
                RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
            ),
            rrsig("v6.test.", RecordType::AAAA),
        ];
        aaaa.authentic_data = true;
        let AaaaDecision::Synthesize(fallback) = decide_on_aaaa(
            &qname,
            aaaa.clone(),
            &ExcludedAaaa::default(),
            true,
            SynthesizeOn::Rfc,
        ) else {
            panic!("ignore_aaaa: synthesis first");
        };
        let prefixes = [SynthesisPrefix::new(Nat64Prefix::well_known(), None)];
        let a = answer(
            ResponseCode::NoError,
            vec![],
            Some((
                "v6.test.",
                &[RecordType::AAAA, RecordType::RRSIG, RecordType::NSEC],
            )),
            true,
        );
        let result = synthesize_from_a(&qname, &a, fallback.clone(), &prefixes);
        assert_eq!(result.answer, aaaa, "the native answer, whole");
        assert!(!result.synthesized);
        // The A lookup failed: the native answer too.
        let result = synthesize_from_a(
            &qname,
            &Answer::empty(ResponseCode::ServFail),
            fallback,
            &prefixes,
        );
        assert_eq!(result.answer, aaaa);
    }

    // ---- table tests of every rule, with exact values -------------------

    fn a_record(owner: &str, ttl: u32, address: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A(address.parse().unwrap())))
    }

    fn aaaa_record(owner: &str, ttl: u32, address: &str) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::AAAA(AAAA(address.parse().unwrap())),
        )
    }

    /// An answer with `answers` and, when `soa` is `(TTL, MINIMUM)`, an SOA
    /// at `test.` in the authority section.
    fn plain(code: ResponseCode, answers: Vec<Record>, soa: Option<(u32, u32)>) -> Answer {
        let mut answer = Answer::empty(code);
        answer.answers = answers;
        if let Some((ttl, minimum)) = soa {
            let data = SOA::new(
                name("ns.test."),
                name("h.test."),
                1,
                3600,
                900,
                604800,
                minimum,
            );
            answer.authorities = vec![Record::from_rdata(name("test."), ttl, RData::SOA(data))];
        }
        answer
    }

    /// A prefix with the built-in exclusions for it.
    fn prefix(network: &str) -> SynthesisPrefix {
        SynthesisPrefix::new(network.parse().unwrap(), None)
    }

    /// `TTL TYPE data` for answers, `TTL TYPE` for other sections.
    fn lines(records: &[Record], with_data: bool) -> String {
        records
            .iter()
            .map(|record| match &record.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                    format!("{} RRSIG({})", record.ttl, sig.input().type_covered)
                }
                data if with_data => format!("{} {} {data}", record.ttl, record.record_type()),
                _ => format!("{} {}", record.ttl, record.record_type()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `RCODE [answers] [authorities]` of an answer.
    fn sections(answer: &Answer) -> String {
        format!(
            "{:?} [{}] [{}]",
            answer.response_code,
            lines(&answer.answers, true),
            lines(&answer.authorities, false)
        )
    }

    /// The whole §5.1 pipeline for `v4.test.`: the decision on the AAAA
    /// answer and, when it says so, synthesis from the A answer; as text.
    fn pipeline(
        aaaa: Answer,
        excluded: &ExcludedAaaa,
        synthesize_on: SynthesizeOn,
        a: &Answer,
        prefixes: &[SynthesisPrefix],
    ) -> String {
        let qname = name("v4.test.");
        match decide_on_aaaa(&qname, aaaa, excluded, false, synthesize_on) {
            AaaaDecision::Native(answer) => format!("native {}", sections(&answer)),
            AaaaDecision::PassThrough(answer) => format!("pass-through {}", sections(&answer)),
            AaaaDecision::Fail => "fail".to_string(),
            AaaaDecision::Synthesize(fallback) => {
                let result = synthesize_from_a(&qname, a, fallback, prefixes);
                format!(
                    "synthesize {} {}",
                    sections(&result.answer),
                    result.synthesized
                )
            }
        }
    }

    /// The AAAA addresses synthesized for `v4.test.` with these A records (TTL 300).
    fn synthesized_addresses(prefixes: &[SynthesisPrefix], a_addresses: &[&str]) -> Vec<Ipv6Addr> {
        let a = plain(
            ResponseCode::NoError,
            a_addresses
                .iter()
                .map(|address| a_record("v4.test.", 300, address))
                .collect(),
            None,
        );
        let aaaa = plain(ResponseCode::NoError, vec![], Some((3600, 900)));
        let AaaaDecision::Synthesize(fallback) = decide_on_aaaa(
            &name("v4.test."),
            aaaa,
            &ExcludedAaaa::default(),
            false,
            SynthesizeOn::Rfc,
        ) else {
            panic!("NODATA leads to synthesis");
        };
        synthesize_from_a(&name("v4.test."), &a, fallback, prefixes)
            .answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::AAAA(AAAA(address)) => Some(*address),
                _ => None,
            })
            .collect()
    }

    fn addresses(texts: &[&str]) -> Vec<Ipv6Addr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    /// RFC 6052 §2.4, Tables 1 and 2: 192.0.2.33 under every prefix length.
    #[test]
    fn every_rfc6052_prefix_length_embeds_the_section_2_4_example() {
        let no_exclusions: &[Ipv4Net] = &[];
        let cases: &[(&str, SynthesisPrefix, &[&str])] = &[
            ("/32", prefix("2001:db8::/32"), &["2001:db8:c000:221::"]),
            ("/40", prefix("2001:db8:100::/40"), &["2001:db8:1c0:2:21::"]),
            (
                "/48",
                prefix("2001:db8:122::/48"),
                &["2001:db8:122:c000:2:2100::"],
            ),
            (
                "/56",
                prefix("2001:db8:122:300::/56"),
                &["2001:db8:122:3c0:0:221::"],
            ),
            (
                "/64",
                prefix("2001:db8:122:344::/64"),
                &["2001:db8:122:344:c0:2:2100:0"],
            ),
            (
                "/96",
                prefix("2001:db8:122:344::/96"),
                &["2001:db8:122:344::192.0.2.33"],
            ),
            (
                "the well-known /96 with no exclusions (Table 1)",
                SynthesisPrefix::new(Nat64Prefix::well_known(), Some(no_exclusions)),
                &["64:ff9b::192.0.2.33"],
            ),
            (
                "the well-known /96 as configured by default: 192.0.2.0/24 is \
                 not global, RFC 6052 §3.1 forbids it",
                prefix("64:ff9b::/96"),
                &[],
            ),
        ];
        for (case, prefix, expected) in cases {
            assert_eq!(
                synthesized_addresses(std::slice::from_ref(prefix), &["192.0.2.33"]),
                addresses(expected),
                "{case}"
            );
        }
    }

    /// The IPv4 ranges never embedded (RFC 6890 special ranges; under the
    /// well-known prefix the non-global ones too, RFC 6052 §3.1), at their
    /// edges, plus the configured lists that replace or narrow them.
    #[test]
    fn excluded_ipv4_ranges_are_never_synthesized() {
        let nsp = || prefix("2001:db8:64::/96");
        let wkp = || prefix("64:ff9b::/96");
        let custom: &[Ipv4Net] = &["93.184.216.0/24".parse().unwrap()];
        let mut mapped = nsp();
        mapped.mapped_ipv4 = Some(vec!["10.0.0.0/8".parse().unwrap()].into());
        // (case, prefixes, A records, synthesized AAAA)
        type Case<'a> = (&'a str, Vec<SynthesisPrefix>, &'a [&'a str], &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (
                "0.0.0.0/8 (this network), any prefix",
                vec![nsp()],
                &["0.0.0.0", "0.255.255.255", "1.0.0.0"],
                &["2001:db8:64::100:0"],
            ),
            (
                "127.0.0.0/8 (loopback), any prefix",
                vec![nsp()],
                &[
                    "126.255.255.255",
                    "127.0.0.1",
                    "127.255.255.255",
                    "128.0.0.0",
                ],
                &["2001:db8:64::7eff:ffff", "2001:db8:64::8000:0"],
            ),
            (
                "169.254.0.0/16 (link-local), any prefix",
                vec![nsp()],
                &[
                    "169.253.255.255",
                    "169.254.0.0",
                    "169.254.255.255",
                    "169.255.0.0",
                ],
                &["2001:db8:64::a9fd:ffff", "2001:db8:64::a9ff:0"],
            ),
            (
                "224.0.0.0/4 (multicast) and 240.0.0.0/4 (reserved), any prefix",
                vec![nsp()],
                &[
                    "223.255.255.255",
                    "224.0.0.1",
                    "239.255.255.255",
                    "240.0.0.0",
                    "255.255.255.255",
                ],
                &["2001:db8:64::dfff:ffff"],
            ),
            (
                "non-global ranges are fine under a network-specific prefix",
                vec![nsp()],
                &["10.1.2.3", "192.168.1.1", "192.0.2.1", "100.64.0.1"],
                &[
                    "2001:db8:64::a01:203",
                    "2001:db8:64::c0a8:101",
                    "2001:db8:64::c000:201",
                    "2001:db8:64::6440:1",
                ],
            ),
            (
                "well-known prefix: 10/8, 100.64/10, 172.16/12, 192.168/16 at their edges",
                vec![wkp()],
                &[
                    "9.255.255.255",
                    "10.0.0.0",
                    "10.255.255.255",
                    "100.63.255.255",
                    "100.64.0.0",
                    "100.127.255.255",
                    "100.128.0.0",
                    "172.15.255.255",
                    "172.16.0.0",
                    "172.31.255.255",
                    "172.32.0.0",
                    "192.168.0.0",
                    "192.168.255.255",
                ],
                &[
                    "64:ff9b::9ff:ffff",
                    "64:ff9b::643f:ffff",
                    "64:ff9b::6480:0",
                    "64:ff9b::ac0f:ffff",
                    "64:ff9b::ac20:0",
                ],
            ),
            (
                "well-known prefix: 192.0.0/24, the documentation ranges, 198.18/15",
                vec![wkp()],
                &[
                    "192.0.0.170",
                    "192.0.2.255",
                    "198.17.255.255",
                    "198.18.0.0",
                    "198.19.255.255",
                    "198.20.0.0",
                    "198.51.100.1",
                    "203.0.113.255",
                ],
                &["64:ff9b::c611:ffff", "64:ff9b::c614:0"],
            ),
            (
                "only the embeddable records of a mixed set, in their order",
                vec![wkp()],
                &["127.0.0.1", "93.184.216.34", "10.0.0.1", "8.8.8.8"],
                &["64:ff9b::5db8:d822", "64:ff9b::808:808"],
            ),
            (
                "a configured exclude_ipv4 replaces the built-in list",
                vec![SynthesisPrefix::new(
                    Nat64Prefix::well_known(),
                    Some(custom),
                )],
                &["93.184.216.34", "10.1.2.3", "127.0.0.1"],
                &["64:ff9b::a01:203", "64:ff9b::7f00:1"],
            ),
            (
                "mapped ranges narrow a prefix to those A records",
                vec![mapped],
                &["93.184.216.34", "10.1.2.3"],
                &["2001:db8:64::a01:203"],
            ),
            (
                "per prefix: the well-known one skips 10.1.2.3, the other embeds it",
                vec![wkp(), nsp()],
                &["10.1.2.3", "93.184.216.34"],
                &[
                    "64:ff9b::5db8:d822",
                    "2001:db8:64::a01:203",
                    "2001:db8:64::5db8:d822",
                ],
            ),
        ];
        for (case, prefixes, a_addresses, expected) in cases {
            assert_eq!(
                synthesized_addresses(&prefixes, a_addresses),
                addresses(expected),
                "{case}"
            );
        }
    }

    /// RFC 6147 §5.1.4: AAAA records in the excluded ranges are treated as
    /// absent (`dns64.exclude_aaaa`, by default the IPv4-mapped ::ffff:0:0/96).
    #[test]
    fn excluded_aaaa_ranges_are_treated_as_absent() {
        let custom = ExcludedAaaa::new(&["2001:db8:bad::/48".parse().unwrap()]);
        let none = ExcludedAaaa::new(&[]);
        let default = ExcludedAaaa::default();
        let a = plain(
            ResponseCode::NoError,
            vec![a_record("v4.test.", 300, "93.184.216.34")],
            None,
        );
        let cases: &[(&str, &ExcludedAaaa, &[&str], &str)] = &[
            (
                "native AAAA outside the set: returned with its RRSIG",
                &default,
                &["2001:db8::1"],
                "native NoError [300 AAAA 2001:db8::1, 300 RRSIG(AAAA)] []",
            ),
            (
                "only a mapped AAAA: absent, so synthesized",
                &default,
                &["::ffff:1.2.3.4"],
                "synthesize NoError [300 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "mapped and native: the native one, without the RRSIG that no longer matches",
                &default,
                &["::ffff:1.2.3.4", "2001:db8::1"],
                "native NoError [300 AAAA 2001:db8::1] []",
            ),
            (
                "the last address of ::ffff:0:0/96",
                &default,
                &["::ffff:255.255.255.255"],
                "synthesize NoError [300 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "just below ::ffff:0:0/96",
                &default,
                &["::fffe:ffff:ffff"],
                "native NoError [300 AAAA ::fffe:ffff:ffff, 300 RRSIG(AAAA)] []",
            ),
            (
                "just above ::ffff:0:0/96",
                &default,
                &["::1:0:0:0"],
                "native NoError [300 AAAA ::1:0:0:0, 300 RRSIG(AAAA)] []",
            ),
            (
                "a configured range",
                &custom,
                &["2001:db8:bad::1"],
                "synthesize NoError [300 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "a configured list replaces the default: mapped AAAA kept",
                &custom,
                &["::ffff:1.2.3.4"],
                "native NoError [300 AAAA ::ffff:1.2.3.4, 300 RRSIG(AAAA)] []",
            ),
            (
                "an empty list excludes nothing",
                &none,
                &["::ffff:1.2.3.4"],
                "native NoError [300 AAAA ::ffff:1.2.3.4, 300 RRSIG(AAAA)] []",
            ),
        ];
        let prefixes = [prefix("64:ff9b::/96")];
        for (case, excluded, aaaa_addresses, expected) in cases {
            let mut answers: Vec<Record> = aaaa_addresses
                .iter()
                .map(|address| aaaa_record("v4.test.", 300, address))
                .collect();
            answers.push(rrsig("v4.test.", RecordType::AAAA));
            let aaaa = plain(ResponseCode::NoError, answers, None);
            assert_eq!(
                pipeline(aaaa, excluded, SynthesizeOn::Rfc, &a, &prefixes),
                *expected,
                "{case}"
            );
        }
    }

    /// RFC 6147 §5.1.7: a synthesized AAAA lives min(A TTL, the AAAA
    /// answer's negative TTL), the negative TTL being min(SOA TTL, SOA
    /// MINIMUM) (RFC 2308 §5); without an SOA, min(A TTL, 600).
    #[test]
    fn ttl_rule() {
        // (case, A TTLs, AAAA RCODE, AAAA SOA (TTL, MINIMUM), synthesized TTLs)
        type Case<'a> = (
            &'a str,
            &'a [u32],
            ResponseCode,
            Option<(u32, u32)>,
            &'a [u32],
        );
        let cases: &[Case] = &[
            (
                "A TTL below the negative TTL",
                &[30],
                ResponseCode::NoError,
                Some((3600, 900)),
                &[30],
            ),
            (
                "the SOA MINIMUM below the A TTL (README: min(3600, min(3600, 300)))",
                &[3600],
                ResponseCode::NoError,
                Some((3600, 300)),
                &[300],
            ),
            (
                "the SOA TTL below its MINIMUM",
                &[3600],
                ResponseCode::NoError,
                Some((100, 900)),
                &[100],
            ),
            (
                "all equal",
                &[300],
                ResponseCode::NoError,
                Some((300, 300)),
                &[300],
            ),
            (
                "a zero negative TTL",
                &[300],
                ResponseCode::NoError,
                Some((3600, 0)),
                &[0],
            ),
            (
                "a zero A TTL",
                &[0],
                ResponseCode::NoError,
                Some((3600, 900)),
                &[0],
            ),
            (
                "each A record its own minimum",
                &[100, 900],
                ResponseCode::NoError,
                Some((3600, 300)),
                &[100, 300],
            ),
            (
                "no SOA: capped at 600",
                &[3600],
                ResponseCode::NoError,
                None,
                &[600],
            ),
            (
                "no SOA, A TTL at the cap",
                &[600, 601],
                ResponseCode::NoError,
                None,
                &[600, 600],
            ),
            (
                "no SOA, A TTL under the cap",
                &[599],
                ResponseCode::NoError,
                None,
                &[599],
            ),
            (
                "the AAAA lookup failed (SERVFAIL, §5.1.2): capped at 600",
                &[86400],
                ResponseCode::ServFail,
                None,
                &[600],
            ),
        ];
        let prefixes = [prefix("64:ff9b::/96")];
        let addresses = ["93.184.216.34", "93.184.216.35"];
        for (case, a_ttls, aaaa_code, aaaa_soa, expected) in cases {
            let a = plain(
                ResponseCode::NoError,
                a_ttls
                    .iter()
                    .zip(addresses)
                    .map(|(ttl, address)| a_record("v4.test.", *ttl, address))
                    .collect(),
                None,
            );
            let aaaa = plain(*aaaa_code, vec![], *aaaa_soa);
            let AaaaDecision::Synthesize(fallback) = decide_on_aaaa(
                &name("v4.test."),
                aaaa,
                &ExcludedAaaa::default(),
                false,
                SynthesizeOn::Rfc,
            ) else {
                panic!("{case}: no synthesis");
            };
            let result = synthesize_from_a(&name("v4.test."), &a, fallback, &prefixes);
            let ttls: Vec<u32> = result
                .answer
                .answers
                .iter()
                .map(|record| record.ttl)
                .collect();
            assert_eq!(ttls, *expected, "{case}");
            assert!(result.synthesized, "{case}");
        }
    }

    /// RFC 6147 §5.1.2 and §5.1.4–§5.1.7 by RCODE: NXDOMAIN passes through,
    /// NODATA leads to synthesis or stays NODATA, a failure counts as NODATA
    /// (or SERVFAIL under `synthesize_on = "nodata-only"`), and what comes
    /// back when the A answer has nothing to embed.
    #[test]
    fn nodata_nxdomain_and_servfail_decisions() {
        use ResponseCode::{NXDomain, NoError, Refused, ServFail};
        use SynthesizeOn::{NodataOnly, Rfc};
        let has_a = plain(
            NoError,
            vec![a_record("v4.test.", 3600, "93.184.216.34")],
            None,
        );
        let a_nodata = plain(NoError, vec![], Some((1800, 1800)));
        let a_nxdomain = plain(NXDomain, vec![], Some((1800, 1800)));
        let aaaa_nodata = plain(NoError, vec![], Some((3600, 900)));
        let native = plain(
            NoError,
            vec![aaaa_record("v4.test.", 300, "2001:db8::1")],
            None,
        );
        let cases: Vec<(&str, Answer, SynthesizeOn, Answer, &str)> = vec![
            (
                "NXDOMAIN: returned as it is, no A lookup",
                plain(NXDomain, vec![], Some((3600, 900))),
                Rfc,
                has_a.clone(),
                "pass-through NXDomain [] [3600 SOA]",
            ),
            (
                "NXDOMAIN under nodata-only: the same",
                plain(NXDomain, vec![], Some((3600, 900))),
                NodataOnly,
                has_a.clone(),
                "pass-through NXDomain [] [3600 SOA]",
            ),
            (
                "native AAAA: returned as it is, no A lookup",
                native.clone(),
                Rfc,
                has_a.clone(),
                "native NoError [300 AAAA 2001:db8::1] []",
            ),
            (
                "NODATA with A: synthesized",
                aaaa_nodata.clone(),
                Rfc,
                has_a.clone(),
                "synthesize NoError [900 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "NODATA with A under nodata-only: synthesized",
                aaaa_nodata.clone(),
                NodataOnly,
                has_a.clone(),
                "synthesize NoError [900 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "NODATA, A NODATA: the AAAA NODATA with its SOA",
                aaaa_nodata.clone(),
                Rfc,
                a_nodata.clone(),
                "synthesize NoError [] [3600 SOA] false",
            ),
            (
                "NODATA without SOA, A NODATA: the A answer's SOA (RFC 2308 §2.2)",
                plain(NoError, vec![], None),
                Rfc,
                a_nodata.clone(),
                "synthesize NoError [] [1800 SOA] false",
            ),
            (
                "NODATA, A lookup failed: still NODATA, the name exists",
                aaaa_nodata.clone(),
                Rfc,
                plain(ServFail, vec![], None),
                "synthesize NoError [] [3600 SOA] false",
            ),
            (
                "NODATA, A NXDOMAIN (the zone changed in between): still NODATA",
                aaaa_nodata,
                Rfc,
                a_nxdomain.clone(),
                "synthesize NoError [] [3600 SOA] false",
            ),
            (
                "SERVFAIL with A: synthesized (§5.1.2), capped at 600",
                plain(ServFail, vec![], None),
                Rfc,
                has_a.clone(),
                "synthesize NoError [600 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "REFUSED with A: like SERVFAIL",
                plain(Refused, vec![], None),
                Rfc,
                has_a.clone(),
                "synthesize NoError [600 AAAA 64:ff9b::5db8:d822] [] true",
            ),
            (
                "SERVFAIL, A NXDOMAIN: the A answer's NXDOMAIN with its SOA",
                plain(ServFail, vec![], None),
                Rfc,
                a_nxdomain.clone(),
                "synthesize NXDomain [] [1800 SOA] false",
            ),
            (
                "SERVFAIL, A NODATA: the A answer's NODATA with its SOA",
                plain(ServFail, vec![], None),
                Rfc,
                a_nodata.clone(),
                "synthesize NoError [] [1800 SOA] false",
            ),
            (
                "SERVFAIL, A SERVFAIL: SERVFAIL",
                plain(ServFail, vec![], None),
                Rfc,
                plain(ServFail, vec![], None),
                "synthesize ServFail [] [] false",
            ),
            (
                "SERVFAIL, A REFUSED: SERVFAIL",
                plain(ServFail, vec![], None),
                Rfc,
                plain(Refused, vec![], None),
                "synthesize ServFail [] [] false",
            ),
            (
                "SERVFAIL under nodata-only: SERVFAIL, no A lookup",
                plain(ServFail, vec![], None),
                NodataOnly,
                has_a.clone(),
                "fail",
            ),
            (
                "REFUSED under nodata-only: SERVFAIL, no A lookup",
                plain(Refused, vec![], None),
                NodataOnly,
                has_a.clone(),
                "fail",
            ),
        ];
        let prefixes = [prefix("64:ff9b::/96")];
        for (case, aaaa, synthesize_on, a, expected) in cases {
            assert_eq!(
                pipeline(aaaa, &ExcludedAaaa::default(), synthesize_on, &a, &prefixes),
                expected,
                "{case}"
            );
        }
    }

    /// Facts for an active AAAA question with nothing set, changed by the
    /// words in `spec`: `inactive`, a type (`A`, `PTR`, `ANY`), `excluded`,
    /// `forbidden`, `DO`, `CD`, `break`.
    fn question_facts(spec: &str) -> QuestionFacts {
        let mut facts = QuestionFacts {
            dns64_active: true,
            record_type: RecordType::AAAA,
            name_excluded: false,
            zone_forbids_dns64: false,
            dnssec_ok: false,
            checking_disabled: false,
            break_dnssec: false,
        };
        for word in spec.split_whitespace() {
            match word {
                "inactive" => facts.dns64_active = false,
                "excluded" => facts.name_excluded = true,
                "forbidden" => facts.zone_forbids_dns64 = true,
                "DO" => facts.dnssec_ok = true,
                "CD" => facts.checking_disabled = true,
                "break" => facts.break_dnssec = true,
                other => facts.record_type = RecordType::from_str(other).unwrap(),
            }
        }
        facts
    }

    #[test]
    fn which_questions_dns64_handles() {
        use ForwardReason::*;
        use QuestionDecision::{Dns64, Forward};
        let cases = [
            ("a plain AAAA question", "", Dns64),
            ("DO alone (§5.5 item 2)", "DO", Dns64),
            ("CD alone", "CD", Dns64),
            (
                "DO and CD: the client validates (§5.5 item 3)",
                "DO CD",
                Forward(ClientValidates),
            ),
            ("DO and CD under break_dnssec", "DO CD break", Dns64),
            ("break_dnssec alone", "break", Dns64),
            ("DO under break_dnssec", "DO break", Dns64),
            ("CD under break_dnssec", "CD break", Dns64),
            ("an excluded domain", "excluded", Forward(ExcludedDomain)),
            (
                "an excluded domain, break_dnssec does not help",
                "excluded DO CD break",
                Forward(ExcludedDomain),
            ),
            (
                "a zone with dns64 = false",
                "forbidden",
                Forward(ZoneForbids),
            ),
            (
                "a zone with dns64 = false, break_dnssec does not help",
                "forbidden DO CD break",
                Forward(ZoneForbids),
            ),
            (
                "excluded and forbidden: the domain list is checked first",
                "excluded forbidden",
                Forward(ExcludedDomain),
            ),
            (
                "forbidden and DO CD: the zone is checked first",
                "forbidden DO CD",
                Forward(ZoneForbids),
            ),
            ("A (§5.1: AAAA only)", "A", Forward(NotAaaa)),
            (
                "PTR (reverse is decided elsewhere)",
                "PTR",
                Forward(NotAaaa),
            ),
            ("ANY", "ANY", Forward(NotAaaa)),
            ("A with DO and CD", "A DO CD", Forward(NotAaaa)),
            ("A in an excluded domain", "A excluded", Forward(NotAaaa)),
            (
                "inactive (no prefix, or class not IN)",
                "inactive",
                Forward(Inactive),
            ),
            ("inactive, for A too", "inactive A", Forward(Inactive)),
            (
                "inactive before everything else",
                "inactive excluded forbidden DO CD",
                Forward(Inactive),
            ),
        ];
        for (case, spec, expected) in cases {
            assert_eq!(decide_on_question(question_facts(spec)), expected, "{case}");
        }
    }

    /// Every combination gives what the resolver's condition gave before the
    /// decision moved here (issue #17: no change in behaviour).
    #[test]
    fn question_decision_is_the_resolver_condition_it_replaced() {
        for record_type in [RecordType::AAAA, RecordType::A, RecordType::PTR] {
            for bits in 0u8..64 {
                let bit = |index: u8| bits & (1 << index) != 0;
                let facts = QuestionFacts {
                    dns64_active: bit(0),
                    record_type,
                    name_excluded: bit(1),
                    zone_forbids_dns64: bit(2),
                    dnssec_ok: bit(3),
                    checking_disabled: bit(4),
                    break_dnssec: bit(5),
                };
                let before = facts.dns64_active
                    && facts.record_type == RecordType::AAAA
                    && !facts.name_excluded
                    && !facts.zone_forbids_dns64
                    && !(facts.dnssec_ok && facts.checking_disabled && !facts.break_dnssec);
                assert_eq!(
                    decide_on_question(facts) == QuestionDecision::Dns64,
                    before,
                    "{facts:?}"
                );
            }
        }
    }
}
