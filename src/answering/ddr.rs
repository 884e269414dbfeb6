//! Discovery of Designated Resolvers (DDR, RFC 9462): the answer to
//! `_dns.resolver.arpa` SVCB, one record per encrypted listener (RFC 9461:
//! `alpn`, `port`, for DoH `dohpath`, and address hints for listeners on a
//! specific address; RFC 9250 §7 for DoQ's `doq`), so a client that found
//! dns64d as its plain resolver upgrades to DoT, DoH or DoQ by itself. Other names under `resolver.arpa` are
//! answered locally too (NODATA or NXDOMAIN): they are never forwarded
//! (RFC 9462 §6.2 reserves the domain for this use).
//!
//! Pure data: the listeners' bound addresses in, records out.

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, SVCB, SvcParamKey, SvcParamValue, Unknown};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns64::answer::Answer;
use crate::ops::config::{EncryptedProtocol, ListenerConfig};

/// TTL of the DDR records and of the local SOA.
const TTL: u32 = 300;

/// The DoH URI template announced (RFC 9461 §5: relative to the target).
const DOH_PATH_TEMPLATE: &str = "/dns-query{?dns}";

/// The `dohpath` SvcParamKey (RFC 9461 §5, IANA SVCB key 7); hickory has no
/// name for it.
const DOHPATH_KEY: u16 = 7;

static RESOLVER_ARPA: LazyLock<Name> =
    LazyLock::new(|| Name::from_ascii("resolver.arpa.").expect("a valid name"));
static DNS_RESOLVER_ARPA: LazyLock<Name> =
    LazyLock::new(|| Name::from_ascii("_dns.resolver.arpa.").expect("a valid name"));

/// What dns64d answers for `resolver.arpa`.
#[derive(Debug, Clone, PartialEq)]
pub struct Designation {
    records: Vec<Record>,
}

impl Designation {
    /// The designation of the encrypted listeners among `listeners` (bound at
    /// `bound`, in the same order) under `name`, the name their certificate
    /// is valid for; `None` without a name or an encrypted listener.
    pub(crate) fn new(
        name: Option<&Name>,
        listeners: &[ListenerConfig],
        bound: &[SocketAddr],
    ) -> Option<Self> {
        let name = name?;
        let records: Vec<Record> = listeners
            .iter()
            .zip(bound)
            .filter_map(|(listener, address)| {
                listener
                    .encrypted
                    .as_ref()
                    .map(|encrypted| (encrypted.protocol, *address))
            })
            .zip(1u16..)
            .map(|((protocol, address), priority)| {
                Record::from_rdata(
                    DNS_RESOLVER_ARPA.clone(),
                    TTL,
                    RData::SVCB(service(priority, name, protocol, address)),
                )
            })
            .collect();
        (!records.is_empty()).then_some(Self { records })
    }

    /// The answer for a question under `resolver.arpa`; `None` for any
    /// other name (or class).
    pub(crate) fn answer(
        &self,
        qname: &Name,
        qtype: RecordType,
        class: DNSClass,
    ) -> Option<Answer> {
        if class != DNSClass::IN || !RESOLVER_ARPA.zone_of(qname) {
            return None;
        }
        let mut answer = Answer::empty(ResponseCode::NoError);
        if *qname == *DNS_RESOLVER_ARPA && qtype == RecordType::SVCB {
            answer.answers = self
                .records
                .iter()
                .map(|record| {
                    let mut record = record.clone();
                    record.name = qname.clone(); // the client's letter case
                    record
                })
                .collect();
            return Some(answer);
        }
        if *qname != *DNS_RESOLVER_ARPA && *qname != *RESOLVER_ARPA {
            answer.response_code = ResponseCode::NXDomain;
        }
        answer.authorities.push(soa());
        Some(answer)
    }
}

/// One ServiceMode SVCB record (RFC 9460 §2.4.3) for an encrypted listener,
/// its parameters in ascending key order as the wire format requires.
fn service(priority: u16, name: &Name, protocol: EncryptedProtocol, address: SocketAddr) -> SVCB {
    let alpn = match protocol {
        EncryptedProtocol::Tls => "dot",
        EncryptedProtocol::Https => "h2",
        EncryptedProtocol::Quic => "doq",
    };
    let mut parameters = vec![
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec![alpn.to_string()])),
        ),
        (SvcParamKey::Port, SvcParamValue::Port(address.port())),
    ];
    match address.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => parameters.push((
            SvcParamKey::Ipv4Hint,
            SvcParamValue::Ipv4Hint(IpHint(vec![A(ip)])),
        )),
        IpAddr::V6(ip) if !ip.is_unspecified() => parameters.push((
            SvcParamKey::Ipv6Hint,
            SvcParamValue::Ipv6Hint(IpHint(vec![AAAA(ip)])),
        )),
        _ => {}
    }
    if protocol == EncryptedProtocol::Https {
        parameters.push((
            SvcParamKey::Unknown(DOHPATH_KEY),
            SvcParamValue::Unknown(Unknown(DOH_PATH_TEMPLATE.as_bytes().to_vec())),
        ));
    }
    SVCB::new(priority, name.clone(), parameters)
}

/// The SOA of negative answers under `resolver.arpa`.
fn soa() -> Record {
    Record::from_rdata(
        RESOLVER_ARPA.clone(),
        TTL,
        RData::SOA(SOA::new(
            RESOLVER_ARPA.clone(),
            Name::from_ascii("nobody.invalid.").expect("a valid name"),
            1,
            3600,
            1200,
            604_800,
            TTL,
        )),
    )
}
