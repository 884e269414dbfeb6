//! RFC 6147 §5.1 decisions for AAAA queries: keep the native AAAA answer,
//! or synthesize AAAA records from the A answer, and with which TTL.
//!
//! Pure functions over [`Answer`]s: no I/O, no clock. The resolver asks
//! [`decide_on_aaaa`] first and, when told to, fetches the A answer and calls
//! [`synthesize_from_a`].

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::policy::{ExcludedAaaa, SynthesisPrefix};
use crate::answer::{Answer, is_rrsig_covering};

/// TTL cap for synthesized records when the AAAA answer carried no SOA (RFC 6147 §5.1.7).
pub const TTL_CAP_WITHOUT_SOA: u32 = 600;

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
/// The CNAME chain of the A answer is kept with its RRSIGs, and one AAAA
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
            .filter(|record| is_type_or_its_rrsig(record, RecordType::CNAME))
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
///   RRSIG from the A answer when that was NODATA too. No proof of absence
///   exists for AAAA records that exist, so this answer is never validated.
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
            if answer.negative_ttl().is_none() && a.response_code == ResponseCode::NoError {
                answer.authorities.extend(
                    a.authorities
                        .iter()
                        .filter(|record| is_type_or_its_rrsig(record, RecordType::SOA))
                        .cloned(),
                );
            }
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

/// True if `record` is of `record_type` or an RRSIG covering that type.
fn is_type_or_its_rrsig(record: &Record, record_type: RecordType) -> bool {
    record.record_type() == record_type || is_rrsig_covering(record, record_type)
}
