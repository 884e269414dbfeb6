//! Reverse lookups for synthesized addresses (RFC 6147 §5.3.1): a PTR query
//! for an ip6.arpa name inside a NAT64 prefix is answered from the PTR of the
//! embedded IPv4 address, as a CNAME to its in-addr.arpa name (BIND, Knot) or
//! as a PTR rewritten under the ip6.arpa owner (Unbound). The reverse names
//! of 192.0.0.170 and 192.0.0.171 answer `ipv4only.arpa.` (RFC 8880 §7.1).
//!
//! Pure name arithmetic and answer rewriting; the resolver does the lookups.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::ipv4only::IPV4ONLY_ADDRESSES;
use super::policy::SynthesisPrefix;
use super::prefix::Nat64Prefix;
use crate::dns64::answer::Answer;

/// How PTR queries under a NAT64 prefix are answered (`dns64.reverse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReverseMode {
    /// A CNAME to the in-addr.arpa name, followed (default).
    #[default]
    Cname,
    /// The in-addr.arpa PTR records, rewritten under the ip6.arpa name.
    Ptr,
    /// No reverse synthesis: forward such queries as they are.
    Off,
}

/// The default TTL of a synthesized reverse CNAME (`dns64.reverse_ttl`).
pub(crate) const DEFAULT_REVERSE_TTL: u32 = 600;

/// The address of a full 32-nibble ip6.arpa name, or `None` for any other name.
pub fn ipv6_from_reverse_name(name: &Name) -> Option<Ipv6Addr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let [nibbles @ .., ip6, arpa] = labels.as_slice() else {
        return None;
    };
    if nibbles.len() != 32
        || !ip6.eq_ignore_ascii_case(b"ip6")
        || !arpa.eq_ignore_ascii_case(b"arpa")
    {
        return None;
    }
    let mut value: u128 = 0;
    for label in nibbles.iter().rev() {
        let [digit] = label else {
            return None;
        };
        let nibble = char::from(*digit).to_digit(16)?;
        value = (value << 4) | u128::from(nibble);
    }
    Some(Ipv6Addr::from(value))
}

/// The address of a full in-addr.arpa name (four decimal labels), or `None`.
pub fn ipv4_from_reverse_name(name: &Name) -> Option<Ipv4Addr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let [d, c, b, a, in_addr, arpa] = labels.as_slice() else {
        return None;
    };
    if !in_addr.eq_ignore_ascii_case(b"in-addr") || !arpa.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let octet = |label: &[u8]| -> Option<u8> {
        // Decimal digits only: Rust's integer parsing would also take "+1".
        if label.is_empty() || !label.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if label.len() > 1 && label[0] == b'0' {
            return None;
        }
        std::str::from_utf8(label).ok()?.parse().ok()
    };
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

/// The in-addr.arpa name of an IPv4 address.
pub fn reverse_name_of(ipv4: Ipv4Addr) -> Name {
    let [a, b, c, d] = ipv4.octets();
    Name::from_str(&format!("{d}.{c}.{b}.{a}.in-addr.arpa.")).expect("valid reverse name")
}

/// The ip6.arpa name of an IPv6 address (32 nibble labels, RFC 3596 §2.5).
pub fn ip6_arpa_name_of(address: Ipv6Addr) -> Name {
    let mut labels: Vec<String> = format!("{:032x}", u128::from(address))
        .chars()
        .rev()
        .map(String::from)
        .collect();
    labels.push("ip6.arpa.".into());
    Name::from_str(&labels.join(".")).expect("valid reverse name")
}

/// The ip6.arpa zone of a prefix: one nibble label per 4 bits of its length.
pub(crate) fn prefix_zone_name(prefix: &Nat64Prefix) -> Name {
    let nibbles = usize::from(prefix.length() / 4);
    let mut labels: Vec<String> = format!("{:032x}", u128::from(prefix.network().network()))
        .chars()
        .take(nibbles)
        .map(String::from)
        .collect();
    labels.reverse();
    labels.push("ip6.arpa.".into());
    Name::from_str(&labels.join(".")).expect("valid reverse zone name")
}

/// The prefix whose reverse zone holds `qname` as an empty non-terminal: a
/// name of fewer than 32 nibbles at or below the prefix's ip6.arpa zone, an
/// ancestor of the full names answered by [`embedded_ipv4`]. Such names
/// exist (RFC 8020: an NXDOMAIN for them would deny everything below), but
/// own no records.
pub(crate) fn empty_non_terminal_of<'a>(
    qname: &Name,
    prefixes: &'a [SynthesisPrefix],
) -> Option<&'a SynthesisPrefix> {
    let labels: Vec<&[u8]> = qname.iter().collect();
    let [nibbles @ .., ip6, arpa] = labels.as_slice() else {
        return None;
    };
    if nibbles.len() >= 32
        || !ip6.eq_ignore_ascii_case(b"ip6")
        || !arpa.eq_ignore_ascii_case(b"arpa")
    {
        return None;
    }
    let mut value: u128 = 0;
    for label in nibbles.iter().rev() {
        let [digit] = label else {
            return None;
        };
        value = (value << 4) | u128::from(char::from(*digit).to_digit(16)?);
    }
    // Fewer than 32 nibbles: shift the known ones to the top of the address.
    let shift = 4 * (32 - nibbles.len() as u32);
    let address = Ipv6Addr::from(value.checked_shl(shift).unwrap_or(0));
    prefixes.iter().find(|prefix| {
        nibbles.len() >= usize::from(prefix.prefix.length() / 4) && prefix.prefix.contains(&address)
    })
}

/// The answer for an empty non-terminal of `prefix`'s reverse zone: NOERROR
/// without records and the zone's SOA in the authority section; an SOA
/// question at the zone's apex gets the SOA as its answer.
pub(crate) fn empty_non_terminal_answer(
    qname: &Name,
    record_type: RecordType,
    prefix: &SynthesisPrefix,
) -> Answer {
    let zone = prefix_zone_name(&prefix.prefix);
    let soa = SOA::new(
        zone.clone(),
        Name::from_str("nobody.invalid.").expect("valid name"),
        1,
        3600,
        1200,
        604800,
        PREFIX_ZONE_NEGATIVE_TTL,
    );
    let record = Record::from_rdata(zone.clone(), PREFIX_ZONE_NEGATIVE_TTL, RData::SOA(soa));
    let mut answer = Answer::empty(ResponseCode::NoError);
    if record_type == RecordType::SOA && *qname == zone {
        answer.answers.push(record);
    } else {
        answer.authorities.push(record);
    }
    answer
}

/// The TTL and negative TTL of the local SOA of a prefix's reverse zone.
pub(crate) const PREFIX_ZONE_NEGATIVE_TTL: u32 = 600;

/// The embedded IPv4 address if `qname` is a full ip6.arpa name inside one of
/// `prefixes` and the address may be synthesized under it.
pub fn embedded_ipv4(qname: &Name, prefixes: &[SynthesisPrefix]) -> Option<Ipv4Addr> {
    let address = ipv6_from_reverse_name(qname)?;
    prefixes.iter().find_map(|prefix| {
        let ipv4 = prefix.prefix.extract(&address)?;
        let special = IPV4ONLY_ADDRESSES.contains(&ipv4);
        (special || prefix.may_embed(ipv4)).then_some(ipv4)
    })
}

/// The local answer `PTR ipv4only.arpa.` for 192.0.0.170 and .171, owned by `qname`.
pub fn ipv4only_ptr(qname: &Name, ipv4: Ipv4Addr) -> Option<Answer> {
    if !IPV4ONLY_ADDRESSES.contains(&ipv4) {
        return None;
    }
    let mut answer = Answer::empty(ResponseCode::NoError);
    let target = Name::from_str("ipv4only.arpa.").expect("valid name");
    answer.answers.push(Record::from_rdata(
        qname.clone(),
        super::ipv4only::IPV4ONLY_A_TTL,
        RData::PTR(PTR(target)),
    ));
    Some(answer)
}

/// The CNAME form: `qname CNAME target` followed by the answer for `target`.
pub fn cname_answer(qname: &Name, target: &Name, ttl: u32, target_answer: Answer) -> Answer {
    let mut answer = target_answer;
    answer.strip_dnssec();
    answer.authentic_data = false;
    answer.answers.insert(
        0,
        Record::from_rdata(qname.clone(), ttl, RData::CNAME(CNAME(target.clone()))),
    );
    answer
}

/// The PTR form: the target's PTR records rewritten under `qname`.
pub fn ptr_answer(qname: &Name, target: &Name, target_answer: Answer) -> Answer {
    let mut answer = target_answer;
    answer
        .answers
        .retain(|record| record.record_type() == RecordType::PTR && record.name == *target);
    for record in &mut answer.answers {
        record.name = qname.clone();
    }
    answer.strip_dnssec();
    answer.authentic_data = false;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    fn reverse_of(address: &str) -> Name {
        ip6_arpa_name_of(address.parse().unwrap())
    }

    #[test]
    fn ip6_arpa_names_round_trip() {
        let address: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let name = ip6_arpa_name_of(address);
        let expected = format!("1.{}8.b.d.0.1.0.0.2.ip6.arpa.", "0.".repeat(23));
        assert_eq!(name.to_string(), expected);
        assert_eq!(ipv6_from_reverse_name(&name), Some(address));
    }

    #[test]
    fn parses_full_ip6_arpa_names_only() {
        let full = reverse_of("64:ff9b::5db8:d822");
        assert_eq!(
            ipv6_from_reverse_name(&full),
            Some("64:ff9b::5db8:d822".parse().unwrap())
        );
        let upper = name(&full.to_string().to_uppercase());
        assert_eq!(
            ipv6_from_reverse_name(&upper),
            Some("64:ff9b::5db8:d822".parse().unwrap())
        );
        assert_eq!(
            ipv6_from_reverse_name(&name("b.9.f.f.4.6.0.0.ip6.arpa.")),
            None
        );
        assert_eq!(ipv6_from_reverse_name(&name("example.com.")), None);
    }

    #[test]
    fn parses_in_addr_arpa_names() {
        assert_eq!(
            ipv4_from_reverse_name(&name("170.0.0.192.in-addr.arpa.")),
            Some(Ipv4Addr::new(192, 0, 0, 170))
        );
        assert_eq!(ipv4_from_reverse_name(&name("0.192.in-addr.arpa.")), None);
        assert_eq!(
            ipv4_from_reverse_name(&name("300.0.0.192.in-addr.arpa.")),
            None
        );
        for first in ["+170", "01", "1a"] {
            let labels = [first, "0", "0", "192", "in-addr", "arpa"];
            let reverse = Name::from_labels(labels.iter().map(|label| label.as_bytes())).unwrap();
            assert_eq!(ipv4_from_reverse_name(&reverse), None, "{first}");
        }
        assert_eq!(
            reverse_name_of(Ipv4Addr::new(93, 184, 216, 34)),
            name("34.216.184.93.in-addr.arpa.")
        );
    }

    #[test]
    fn empty_non_terminals_lie_between_the_prefix_zone_and_full_names() {
        let prefixes = [
            SynthesisPrefix::new(Nat64Prefix::well_known(), None),
            SynthesisPrefix::new("2001:db8:100::/40".parse().unwrap(), None),
        ];
        let wkp_zone = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.9.f.f.4.6.0.0.ip6.arpa.";
        assert_eq!(prefix_zone_name(&prefixes[0].prefix), name(wkp_zone));
        assert_eq!(
            prefix_zone_name(&prefixes[1].prefix),
            name("1.0.8.b.d.0.1.0.0.2.ip6.arpa.")
        );
        // (case, name, index of the prefix or None)
        let full = reverse_of("64:ff9b::5db8:d822").to_string();
        let cases = [
            ("apex of the /96 zone", wkp_zone.to_string(), Some(0)),
            ("one nibble below", format!("d.{wkp_zone}"), Some(0)),
            ("31 nibbles", full[2..].to_string(), Some(0)),
            ("a full name is not one", full.clone(), None),
            ("above the zone", "4.6.0.0.ip6.arpa.".to_string(), None),
            (
                "outside every prefix",
                "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.".to_string(),
                None,
            ),
            (
                "inside the /40",
                "2.1.0.8.b.d.0.1.0.0.2.ip6.arpa.".to_string(),
                Some(1),
            ),
            ("not a nibble", format!("x.{wkp_zone}"), None),
            ("two characters", format!("dd.{wkp_zone}"), None),
            ("ip6.arpa itself", "ip6.arpa.".to_string(), None),
        ];
        for (case, text, expected) in cases {
            let found = empty_non_terminal_of(&name(&text), &prefixes);
            assert_eq!(
                found.map(|prefix| prefix.prefix),
                expected.map(|index: usize| prefixes[index].prefix),
                "{case}: {text}"
            );
        }
        let answer = empty_non_terminal_answer(
            &name(&format!("d.{wkp_zone}")),
            RecordType::PTR,
            &prefixes[0],
        );
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert!(answer.answers.is_empty());
        assert_eq!(answer.authorities.len(), 1);
        assert_eq!(answer.authorities[0].name, name(wkp_zone));
        assert_eq!(answer.negative_ttl(), Some(PREFIX_ZONE_NEGATIVE_TTL));
    }

    #[test]
    fn embedded_ipv4_respects_prefix_and_exclusions() {
        let wkp = [SynthesisPrefix::new(Nat64Prefix::well_known(), None)];
        assert_eq!(
            embedded_ipv4(&reverse_of("64:ff9b::5db8:d822"), &wkp),
            Some(Ipv4Addr::new(93, 184, 216, 34))
        );
        assert_eq!(
            embedded_ipv4(&reverse_of("64:ff9b::a01:203"), &wkp),
            None,
            "10.1.2.3 is excluded"
        );
        assert_eq!(
            embedded_ipv4(&reverse_of("64:ff9b::c000:aa"), &wkp),
            Some(Ipv4Addr::new(192, 0, 0, 170))
        );
        assert_eq!(embedded_ipv4(&reverse_of("2001:db8::1"), &wkp), None);
    }
}
