//! Local answers for the special-use name `ipv4only.arpa` (RFC 7050 §2.2,
//! RFC 8880 §7.2): clients learn the NAT64 prefix from the AAAA answer, so
//! it is built from the configured prefixes without asking any upstream.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::LazyLock;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::policy::SynthesisPrefix;
use super::synthesis::{Synthesized, TTL_CAP_WITHOUT_SOA};
use crate::dns64::answer::Answer;

/// The well-known IPv4 addresses of `ipv4only.arpa` (RFC 7050 §2.2).
pub(crate) const IPV4ONLY_ADDRESSES: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// TTL of the local A records, as served by the real `ipv4only.arpa` zone.
pub(crate) const IPV4ONLY_A_TTL: u32 = 86400;

static IPV4ONLY: LazyLock<Name> =
    LazyLock::new(|| Name::from_str("ipv4only.arpa.").expect("valid name"));

/// True if `name` is `ipv4only.arpa` or a name below it.
pub(crate) fn is_ipv4only_name(name: &Name) -> bool {
    IPV4ONLY.zone_of(name)
}

/// The local answer for a question at or below `ipv4only.arpa`.
///
/// A gives 192.0.0.170 and 192.0.0.171; AAAA gives both synthesized under
/// every prefix (exclusions do not apply: this is how clients find the
/// prefix); other types get NODATA and names below it NXDOMAIN, each with the
/// zone's SOA. The synthesized AAAA TTL follows RFC 6147 §5.1.7 with the
/// zone's negative TTL (600 s).
pub(crate) fn answer(qname: &Name, qtype: RecordType, prefixes: &[SynthesisPrefix]) -> Synthesized {
    let owner = qname.clone();
    if *qname != *IPV4ONLY {
        let mut answer = Answer::empty(ResponseCode::NXDomain);
        answer.authorities.push(soa_record());
        return Synthesized {
            answer,
            synthesized: false,
        };
    }
    let mut answer = Answer::empty(ResponseCode::NoError);
    let mut synthesized = false;
    match qtype {
        RecordType::A => {
            for address in IPV4ONLY_ADDRESSES {
                answer.answers.push(Record::from_rdata(
                    owner.clone(),
                    IPV4ONLY_A_TTL,
                    RData::A(A(address)),
                ));
            }
        }
        RecordType::AAAA if !prefixes.is_empty() => {
            for prefix in prefixes {
                for address in IPV4ONLY_ADDRESSES {
                    answer.answers.push(Record::from_rdata(
                        owner.clone(),
                        IPV4ONLY_A_TTL.min(TTL_CAP_WITHOUT_SOA),
                        RData::AAAA(AAAA(prefix.prefix.embed(address))),
                    ));
                }
            }
            synthesized = true;
        }
        _ => answer.authorities.push(soa_record()),
    }
    Synthesized {
        answer,
        synthesized,
    }
}

/// The SOA of the local `ipv4only.arpa` zone (negative TTL 600 s).
fn soa_record() -> Record {
    let soa = SOA::new(
        IPV4ONLY.clone(),
        Name::from_str("nobody.invalid.").expect("valid name"),
        1,
        3600,
        1200,
        604800,
        TTL_CAP_WITHOUT_SOA,
    );
    Record::from_rdata(IPV4ONLY.clone(), TTL_CAP_WITHOUT_SOA, RData::SOA(soa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns64::prefix::Nat64Prefix;

    fn prefixes(networks: &[&str]) -> Vec<SynthesisPrefix> {
        networks
            .iter()
            .map(|network| {
                let prefix = Nat64Prefix::new(network.parse().unwrap()).unwrap();
                SynthesisPrefix::new(prefix, None)
            })
            .collect()
    }

    /// `rcode answers authorities synthesized` of one local answer, as text.
    fn summary(qname: &str, qtype: RecordType, networks: &[&str]) -> String {
        let qname = Name::from_str(qname).unwrap();
        let Synthesized {
            answer,
            synthesized,
        } = answer(&qname, qtype, &prefixes(networks));
        let records = |records: &[Record]| {
            records
                .iter()
                .map(|record| format!("{} {} {}", record.ttl, record.record_type(), record.data))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{:?} [{}] [{}] {synthesized}",
            answer.response_code,
            records(&answer.answers),
            records(&answer.authorities)
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    #[test]
    fn every_question_at_and_below_ipv4only_arpa() {
        let wkp = ["64:ff9b::/96"];
        let cases: &[(&str, &str, RecordType, &[&str], &str)] = &[
            (
                "A: the two well-known addresses, TTL of the real zone",
                "ipv4only.arpa.",
                RecordType::A,
                &wkp,
                "NoError [86400 A 192.0.0.170, 86400 A 192.0.0.171] [] false",
            ),
            (
                "AAAA under the well-known prefix: not excluded although 192.0.0.0/24 is special",
                "ipv4only.arpa.",
                RecordType::AAAA,
                &wkp,
                "NoError [600 AAAA 64:ff9b::c000:aa, 600 AAAA 64:ff9b::c000:ab] [] true",
            ),
            (
                "AAAA under every prefix, in configuration order",
                "ipv4only.arpa.",
                RecordType::AAAA,
                &["2001:db8:64::/96", "2001:db8::/32"],
                "NoError [600 AAAA 2001:db8:64::c000:aa, 600 AAAA 2001:db8:64::c000:ab, \
                 600 AAAA 2001:db8:c000:aa::, 600 AAAA 2001:db8:c000:ab::] [] true",
            ),
            (
                "AAAA with the /40 layout: bits 64-71 (the u octet) skipped",
                "ipv4only.arpa.",
                RecordType::AAAA,
                &["2001:db8:100::/40"],
                "NoError [600 AAAA 2001:db8:1c0:0:aa::, 600 AAAA 2001:db8:1c0:0:ab::] [] true",
            ),
            (
                "AAAA with no prefix (a plain forwarder): NODATA with the SOA",
                "ipv4only.arpa.",
                RecordType::AAAA,
                &[],
                "NoError [] [600 SOA] false",
            ),
            (
                "another type: NODATA with the SOA",
                "ipv4only.arpa.",
                RecordType::TXT,
                &wkp,
                "NoError [] [600 SOA] false",
            ),
            (
                "a name below: NXDOMAIN with the SOA",
                "www.ipv4only.arpa.",
                RecordType::AAAA,
                &wkp,
                "NXDomain [] [600 SOA] false",
            ),
            (
                "case does not matter",
                "IPv4Only.ARPA.",
                RecordType::A,
                &wkp,
                "NoError [86400 A 192.0.0.170, 86400 A 192.0.0.171] [] false",
            ),
        ];
        for (case, qname, qtype, networks, expected) in cases {
            assert_eq!(summary(qname, *qtype, networks), *expected, "{case}");
        }
    }

    #[test]
    fn which_names_are_answered_locally() {
        for (name, expected) in [
            ("ipv4only.arpa.", true),
            ("a.b.ipv4only.arpa.", true),
            ("IPV4ONLY.ARPA.", true),
            ("arpa.", false),
            ("xipv4only.arpa.", false),
            ("ipv4only.arpa.example.", false),
        ] {
            assert_eq!(
                is_ipv4only_name(&Name::from_str(name).unwrap()),
                expected,
                "{name}"
            );
        }
    }
}
