//! A small fixed in-memory zone and a [`AnswerSource`] answering from it like a
//! recursive upstream would: CNAME chains followed inside the data, NXDOMAIN
//! and NODATA with the zone's SOA, and a few names that fail on purpose.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dns64d::answering::upstream::{AnswerSource, UpstreamError, UpstreamFlags};
use dns64d::dns64::answer::Answer;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NULL, PTR, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Name parsing for fixed, known-good names.
pub fn name(text: &str) -> Name {
    Name::from_str(text).unwrap_or_else(|error| panic!("bad fixed name {text:?}: {error}"))
}

/// The zone origins served, each with its SOA (TTL 3600, MINIMUM 60).
pub const ORIGINS: [&str; 5] = [
    "fuzz.test.",
    "other.test.",
    "184.93.in-addr.arpa.",
    "10.in-addr.arpa.",
    "8.b.d.0.1.0.0.2.ip6.arpa.",
];

/// Names under `fuzz.test.` whose lookup fails: (label, how).
pub const FAILING: [(&str, Failure); 4] = [
    ("timeout", Failure::Timeout),
    ("neterr", Failure::Network),
    ("servfail", Failure::Rcode(ResponseCode::ServFail)),
    ("refused", Failure::Rcode(ResponseCode::Refused)),
];

/// How a failing name fails.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// `UpstreamError::Timeout`.
    Timeout,
    /// `UpstreamError::Network`.
    Network,
    /// An answer with this RCODE and no records.
    Rcode(ResponseCode),
}

/// The zone data.
pub struct Zone {
    records: Vec<Record>,
    soas: Vec<Record>,
}

fn rr(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

fn a(owner: &str, address: [u8; 4]) -> Record {
    rr(owner, 300, RData::A(A(Ipv4Addr::from(address))))
}

fn aaaa(owner: &str, address: &str) -> Record {
    let address: Ipv6Addr = address.parse().expect("fixed IPv6 address");
    rr(owner, 300, RData::AAAA(AAAA(address)))
}

fn cname(owner: &str, target: &str) -> Record {
    rr(owner, 300, RData::CNAME(CNAME(name(target))))
}

fn ptr(owner: &str, target: &str) -> Record {
    rr(owner, 300, RData::PTR(PTR(name(target))))
}

/// An RRSIG as hickory without DNSSEC features carries it: opaque RDATA
/// whose first two octets are the type covered.
fn rrsig(owner: &str, covered: RecordType) -> Record {
    let mut rdata = u16::from(covered).to_be_bytes().to_vec();
    rdata.extend_from_slice(&[13, 3, 0, 0, 1, 44, 0x66, 0, 0, 0, 0x65, 0, 0, 0, 0x12, 0x34]);
    rdata.extend_from_slice(&[4, b'f', b'u', b'z', b'z', 4, b't', b'e', b's', b't', 0]);
    rdata.extend_from_slice(&[0xab; 16]);
    rr(
        owner,
        300,
        RData::Unknown {
            code: RecordType::RRSIG,
            rdata: NULL::with(rdata),
        },
    )
}

impl Zone {
    /// The fixed zone.
    pub fn new() -> Self {
        let mut records = vec![
            a("ns1.fuzz.test.", [93, 184, 216, 1]),
            // A only
            a("v4only.fuzz.test.", [93, 184, 216, 34]),
            a("multi.fuzz.test.", [93, 184, 216, 11]),
            a("multi.fuzz.test.", [93, 184, 216, 12]),
            a("multi.fuzz.test.", [93, 184, 216, 13]),
            a("private.fuzz.test.", [10, 1, 2, 3]),
            a("loopback.fuzz.test.", [127, 0, 0, 1]),
            a("ipv4only-like.fuzz.test.", [192, 0, 0, 170]),
            // dual-stack and IPv6 only
            a("dual.fuzz.test.", [93, 184, 216, 40]),
            aaaa("dual.fuzz.test.", "2001:db8::40"),
            aaaa("v6only.fuzz.test.", "2001:db8::60"),
            // excluded (IPv4-mapped) AAAA, with and without a usable one, signed
            aaaa("mapped.fuzz.test.", "::ffff:93.184.216.70"),
            a("mapped.fuzz.test.", [93, 184, 216, 70]),
            aaaa("signed.fuzz.test.", "::ffff:1.2.3.4"),
            aaaa("signed.fuzz.test.", "2001:db8::71"),
            rrsig("signed.fuzz.test.", RecordType::AAAA),
            a("signed.fuzz.test.", [93, 184, 216, 71]),
            rrsig("signed.fuzz.test.", RecordType::A),
            // dns64.ignore_aaaa_domains and dns64.exclude_domains in the fuzz config
            a("host.ignore.fuzz.test.", [93, 184, 216, 90]),
            aaaa("host.ignore.fuzz.test.", "2001:db8::90"),
            a("host.excluded.fuzz.test.", [93, 184, 216, 91]),
            // CNAMEs: chain, to dual-stack, out of zone, to NXDOMAIN, to NODATA, loop
            cname("cname.fuzz.test.", "v4only.fuzz.test."),
            cname("cname-chain.fuzz.test.", "cname.fuzz.test."),
            cname("cname-dual.fuzz.test.", "dual.fuzz.test."),
            cname("cname-out.fuzz.test.", "target.other.test."),
            cname("cname-nx.fuzz.test.", "nowhere.fuzz.test."),
            cname("cname-nodata.fuzz.test.", "text.fuzz.test."),
            cname("loop-a.fuzz.test.", "loop-b.fuzz.test."),
            cname("loop-b.fuzz.test.", "loop-a.fuzz.test."),
            // other types (NODATA for A and AAAA)
            rr(
                "text.fuzz.test.",
                300,
                RData::TXT(TXT::new(vec!["hello".into()])),
            ),
            rr(
                "mx.fuzz.test.",
                300,
                RData::MX(MX::new(10, name("v4only.fuzz.test."))),
            ),
            rr(
                "ttl-zero.fuzz.test.",
                0,
                RData::A(A(Ipv4Addr::new(93, 184, 216, 102))),
            ),
            a("target.other.test.", [93, 184, 216, 50]),
            // reverse zones
            ptr("34.216.184.93.in-addr.arpa.", "v4only.fuzz.test."),
            ptr("40.216.184.93.in-addr.arpa.", "dual.fuzz.test."),
            ptr("3.2.1.10.in-addr.arpa.", "private.fuzz.test."),
            ptr(
                "0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                "dual.fuzz.test.",
            ),
        ];
        // Enough A records that the synthesized answer exceeds a UDP payload.
        for last in 1..=40u8 {
            records.push(a("many.fuzz.test.", [93, 184, 217, last]));
        }
        let soas = ORIGINS
            .iter()
            .map(|origin| {
                let soa = SOA::new(
                    name("ns1.fuzz.test."),
                    name("hostmaster.fuzz.test."),
                    1,
                    3600,
                    900,
                    604_800,
                    60,
                );
                rr(origin, 3600, RData::SOA(soa))
            })
            .collect();
        Self { records, soas }
    }

    /// Every owner name in the zone (for seeds).
    pub fn owners(&self) -> Vec<Name> {
        let mut owners: Vec<Name> = Vec::new();
        for record in &self.records {
            if !owners.contains(&record.name) {
                owners.push(record.name.clone());
            }
        }
        owners
    }

    fn soa_for(&self, qname: &Name) -> Option<&Record> {
        self.soas.iter().find(|soa| soa.name.zone_of(qname))
    }

    fn failure(&self, qname: &Name) -> Option<Failure> {
        FAILING
            .iter()
            .find(|(label, _)| *qname == name(&format!("{label}.fuzz.test.")))
            .map(|(_, failure)| *failure)
    }

    /// What a recursive upstream would answer.
    pub fn answer(
        &self,
        qname: &Name,
        record_type: RecordType,
        class: DNSClass,
    ) -> Result<Answer, UpstreamError> {
        if class != DNSClass::IN {
            return Ok(Answer::empty(ResponseCode::Refused));
        }
        match self.failure(qname) {
            Some(Failure::Timeout) => {
                return Err(UpstreamError::Timeout {
                    attempts: 1,
                    timeout: Duration::from_millis(100),
                });
            }
            Some(Failure::Network) => {
                return Err(UpstreamError::Network(
                    "192.0.2.1:53: connection refused".into(),
                ));
            }
            Some(Failure::Rcode(code)) => return Ok(Answer::empty(code)),
            None => {}
        }
        let mut answer = Answer::empty(ResponseCode::NoError);
        let mut current = qname.clone();
        // Follow CNAMEs inside the data, at most 8 (a loop ends there).
        for _ in 0..8 {
            let at: Vec<&Record> = self.records.iter().filter(|r| r.name == current).collect();
            let alias = at.iter().find(|r| r.record_type() == RecordType::CNAME);
            match alias {
                Some(alias) if record_type != RecordType::CNAME => {
                    answer.answers.push((*alias).clone());
                    let RData::CNAME(CNAME(target)) = &alias.data else {
                        unreachable!("CNAME record with other data");
                    };
                    current = target.clone();
                    continue;
                }
                _ => {}
            }
            // The RRset asked for, and the RRSIGs that cover it.
            let matching: Vec<Record> = at
                .iter()
                .filter(|r| {
                    record_type == RecordType::ANY
                        || r.record_type() == record_type
                        || dns64d::dns64::answer::is_rrsig_covering(r, record_type)
                })
                .map(|r| (*r).clone())
                .collect();
            if at.is_empty() {
                // NXDOMAIN (possibly at the end of a chain, RFC 6604).
                answer.response_code = ResponseCode::NXDomain;
                answer.authorities.extend(self.soa_for(&current).cloned());
            } else if matching.is_empty() {
                answer.authorities.extend(self.soa_for(&current).cloned());
            } else {
                answer.answers.extend(matching);
                answer.authentic_data = false;
            }
            return Ok(answer);
        }
        Ok(answer)
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`AnswerSource`] over a shared [`Zone`] that counts the questions asked.
pub struct ZoneForwarder {
    zone: Arc<Zone>,
    asked: Arc<AtomicUsize>,
}

impl ZoneForwarder {
    /// A forwarder and its question counter.
    pub fn new(zone: Arc<Zone>) -> (Self, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        (
            Self {
                zone,
                asked: Arc::clone(&asked),
            },
            asked,
        )
    }
}

#[async_trait::async_trait]
impl AnswerSource for ZoneForwarder {
    async fn query(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        _flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.zone.answer(name, record_type, class)
    }
}
