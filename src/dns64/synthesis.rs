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
            let mut nodata = kept;
            if had_excluded || has_usable {
                nodata = strip_aaaa(nodata);
            }
            AaaaDecision::Synthesize(AaaaFallback {
                negative_ttl: nodata.negative_ttl(),
                name_exists: true,
                nodata,
                had_excluded,
            })
        }
        _ => match synthesize_on {
            SynthesizeOn::Rfc => AaaaDecision::Synthesize(AaaaFallback {
                negative_ttl: None,
                name_exists: false,
                nodata: Answer::empty(ResponseCode::ServFail),
                had_excluded: false,
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
/// The CNAME chain of the A answer is kept, and one AAAA per embeddable A
/// record of the chain's final name is added per prefix (prefix order first).
/// The TTL of each synthesized AAAA is min(A TTL, negative TTL of the AAAA
/// answer), or min(A TTL, 600) without an SOA. Synthesized answers carry no
/// RRSIGs, no authority and no additional data, and never the AD bit (§5.5).
/// With nothing to synthesize, the result is NODATA (or the A answer's
/// NXDOMAIN when the AAAA lookup failed).
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
            .filter(|record| record.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
        answers.extend(synthesized);
        return Synthesized {
            answer: Answer {
                response_code: ResponseCode::NoError,
                authentic_data: false,
                authoritative: a.authoritative && fallback.nodata.authoritative,
                answers,
                authorities: Vec::new(),
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

/// The answer when no AAAA could be synthesized: NODATA with the chain and the
/// SOA (from the A answer, else the AAAA answer), or the A answer's NXDOMAIN
/// or failure when the AAAA lookup had failed.
fn nothing_to_synthesize(a: &Answer, fallback: AaaaFallback) -> Answer {
    let a_is_negative = matches!(
        a.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    );
    if !fallback.name_exists {
        // The AAAA lookup failed: the A answer is all we know.
        if !a_is_negative {
            return Answer::empty(ResponseCode::ServFail);
        }
        let mut answer = without_dnssec(a.clone());
        answer
            .answers
            .retain(|record| record.record_type() == RecordType::CNAME);
        answer.additionals.clear();
        answer.authentic_data = false;
        return answer;
    }
    if a.response_code == ResponseCode::NoError {
        let mut answer = without_dnssec(a.clone());
        answer
            .answers
            .retain(|record| record.record_type() == RecordType::CNAME);
        answer.additionals.clear();
        if answer.negative_ttl().is_none() {
            answer.authorities = fallback.nodata.authorities.clone();
            answer = without_dnssec(answer);
        }
        answer.authentic_data = false;
        return answer;
    }
    let mut answer = without_dnssec(fallback.nodata);
    answer.additionals.clear();
    answer.authentic_data = false;
    answer
}

/// The answer without DNSSEC records (see [`Answer::strip_dnssec`]).
fn without_dnssec(mut answer: Answer) -> Answer {
    answer.strip_dnssec();
    answer
}
