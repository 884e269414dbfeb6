//! NAT64 prefix discovery for `dns64.prefixes = ["discover"]`: RFC 7050
//! (AAAA `ipv4only.arpa` through the upstreams, re-checked at the answer's
//! TTL) and, on Linux, the PREF64 option of router advertisements (RFC 8781,
//! read from a raw ICMPv6 socket). An RA-learned prefix is preferred over a
//! DNS-learned one (RFC 9872). Every change is logged.
//!
//! [`DiscoveredPrefixes`] holds the current set; the request path reads it
//! per query, and the cache keeps only upstream data, so a change takes
//! effect at once. The packet and answer parsers are pure and unit-tested.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::time::Instant;

use crate::answering::upstream::{AnswerSource, UpstreamFlags};
use crate::dns64::answer::Answer;
use crate::dns64::ipv4only::IPV4ONLY_ADDRESSES;
use crate::dns64::prefix::VALID_LENGTHS;
use crate::dns64::{Nat64Prefix, SynthesisPrefix};

/// Wait before asking again after a failed or empty RFC 7050 lookup.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Bounds on the RFC 7050 re-check interval (the answer's TTL).
const MIN_RECHECK: Duration = Duration::from_secs(10);
const MAX_RECHECK: Duration = Duration::from_secs(86400);

/// The ICMPv6 type of a router advertisement (RFC 4861 §4.2).
const ROUTER_ADVERTISEMENT: u8 = 134;
/// The neighbour discovery option type of PREF64 (RFC 8781 §4).
const PREF64_OPTION: u8 = 38;

/// Prefixes learned from the network, with where they came from.
#[derive(Debug, Default)]
pub struct DiscoveredPrefixes {
    state: RwLock<State>,
    exclude_ipv4: Option<Vec<Ipv4Net>>,
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    from_dns: Vec<Nat64Prefix>,
    from_ra: Vec<(Nat64Prefix, Instant)>,
    current: Arc<[SynthesisPrefix]>,
}

impl DiscoveredPrefixes {
    /// An empty set; discovered prefixes get `exclude_ipv4` (or the built-in exclusions).
    pub(crate) fn new(exclude_ipv4: Option<Vec<Ipv4Net>>) -> Self {
        Self {
            state: RwLock::default(),
            exclude_ipv4,
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Moves on at every change of the prefixes in use.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The prefixes in use now: RA-learned ones if any are valid, else DNS-learned ones.
    pub(crate) fn current(&self) -> Arc<[SynthesisPrefix]> {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if state.from_ra.iter().any(|(_, expiry)| *expiry <= now) {
            drop(state);
            let mut state = self
                .state
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.from_ra.retain(|(_, expiry)| *expiry > now);
            self.recompute(&mut state);
            return Arc::clone(&state.current);
        }
        Arc::clone(&state.current)
    }

    fn recompute(&self, state: &mut State) {
        let chosen: Vec<Nat64Prefix> = if state.from_ra.is_empty() {
            state.from_dns.clone()
        } else {
            state.from_ra.iter().map(|(prefix, _)| *prefix).collect()
        };
        let current: Arc<[SynthesisPrefix]> = chosen
            .into_iter()
            .map(|prefix| SynthesisPrefix::new(prefix, self.exclude_ipv4.as_deref()))
            .collect();
        if current != state.current {
            let list: Vec<String> = current.iter().map(|p| p.prefix.to_string()).collect();
            tracing::info!(prefixes = %list.join(", "), "discovered NAT64 prefixes changed");
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        state.current = current;
    }

    /// Records the prefixes learned through RFC 7050.
    pub(crate) fn set_from_dns(&self, prefixes: Vec<Nat64Prefix>) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.from_dns != prefixes {
            tracing::info!(prefixes = ?prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(), "RFC 7050: ipv4only.arpa gave NAT64 prefixes");
            state.from_dns = prefixes;
            self.recompute(&mut state);
        }
    }

    /// Records a PREF64 option: a lifetime of zero withdraws the prefix.
    pub fn set_from_ra(&self, prefix: Nat64Prefix, lifetime: Duration) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.from_ra.retain(|(known, _)| *known != prefix);
        if !lifetime.is_zero() {
            state.from_ra.push((prefix, Instant::now() + lifetime));
        }
        tracing::info!(%prefix, lifetime_s = lifetime.as_secs(), "RFC 8781: PREF64 in a router advertisement");
        self.recompute(&mut state);
    }
}

/// The NAT64 prefixes in an AAAA answer for `ipv4only.arpa` (RFC 7050 §3):
/// for each address, the prefix length at which 192.0.0.170 or .171 is embedded.
pub(crate) fn prefixes_from_ipv4only_answer(answer: &Answer) -> Vec<Nat64Prefix> {
    let mut prefixes = Vec::new();
    for record in &answer.answers {
        let RData::AAAA(aaaa) = &record.data else {
            continue;
        };
        if let Some(prefix) = prefix_embedding_ipv4only(aaaa.0) {
            if !prefixes.contains(&prefix) {
                prefixes.push(prefix);
            }
        }
    }
    prefixes
}

/// The prefix under which `address` embeds a well-known ipv4only.arpa address.
fn prefix_embedding_ipv4only(address: Ipv6Addr) -> Option<Nat64Prefix> {
    VALID_LENGTHS.iter().rev().find_map(|&length| {
        let network = Ipv6Net::new(address, length).ok()?.trunc();
        let prefix = Nat64Prefix::new(network).ok()?;
        let embedded: Ipv4Addr = prefix.extract(&address)?;
        (IPV4ONLY_ADDRESSES.contains(&embedded) && prefix.embed(embedded) == address)
            .then_some(prefix)
    })
}

/// The PREF64 options of a router advertisement (the ICMPv6 message, from its
/// type octet on): each prefix with its lifetime (RFC 8781 §4).
pub fn pref64_options(packet: &[u8]) -> Vec<(Nat64Prefix, Duration)> {
    let mut found = Vec::new();
    if packet.first() != Some(&ROUTER_ADVERTISEMENT) || packet.get(1) != Some(&0) {
        return found;
    }
    let mut options = packet.get(16..).unwrap_or_default();
    while let [kind, length, ..] = options {
        let size = usize::from(*length) * 8;
        if size == 0 || size > options.len() {
            break;
        }
        if *kind == PREF64_OPTION && size == 16 {
            let field = u16::from_be_bytes([options[2], options[3]]);
            let lifetime = Duration::from_secs(u64::from(field >> 3) * 8);
            let length = match field & 0b111 {
                0 => Some(96),
                1 => Some(64),
                2 => Some(56),
                3 => Some(48),
                4 => Some(40),
                5 => Some(32),
                _ => None,
            };
            let mut octets = [0u8; 16];
            octets[..12].copy_from_slice(&options[4..16]);
            let prefix = length
                .and_then(|length| Ipv6Net::new(Ipv6Addr::from(octets), length).ok())
                .and_then(|network| Nat64Prefix::new(network.trunc()).ok());
            if let Some(prefix) = prefix {
                found.push((prefix, lifetime));
            }
        }
        options = &options[size..];
    }
    found
}

/// RFC 7050: asks the upstreams for AAAA `ipv4only.arpa` now and again at the answer's TTL.
pub(crate) async fn run_rfc7050(
    discovered: Arc<DiscoveredPrefixes>,
    forwarder: Arc<dyn AnswerSource>,
) {
    let name = Name::from_str("ipv4only.arpa.").expect("valid name");
    loop {
        let result = forwarder
            .query(
                &name,
                RecordType::AAAA,
                DNSClass::IN,
                UpstreamFlags::default(),
            )
            .await;
        let wait = match result {
            Ok(answer) if answer.response_code == ResponseCode::NoError => {
                let prefixes = prefixes_from_ipv4only_answer(&answer);
                if prefixes.is_empty() {
                    tracing::debug!("RFC 7050: ipv4only.arpa has no synthesized AAAA upstream");
                    RETRY_AFTER_FAILURE
                } else {
                    let ttl = answer.min_answer_ttl().unwrap_or(60);
                    discovered.set_from_dns(prefixes);
                    Duration::from_secs(u64::from(ttl)).clamp(MIN_RECHECK, MAX_RECHECK)
                }
            }
            Ok(answer) => {
                tracing::debug!(rcode = %answer.response_code, "RFC 7050: ipv4only.arpa lookup failed");
                RETRY_AFTER_FAILURE
            }
            Err(error) => {
                tracing::debug!(%error, "RFC 7050: ipv4only.arpa lookup failed");
                RETRY_AFTER_FAILURE
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// RFC 8781: listens for router advertisements and learns their PREF64
/// options. Needs a raw ICMPv6 socket (CAP_NET_RAW); without one it logs
/// why and returns, leaving RFC 7050 as the only source.
#[cfg(target_os = "linux")]
pub(crate) async fn run_pref64(discovered: Arc<DiscoveredPrefixes>) {
    use socket2::{Domain, Protocol, Socket, Type};
    use tokio::io::unix::AsyncFd;

    let socket = match Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
        .and_then(|socket| {
            // SAFETY: the socket is owned here and moves into the AsyncFd,
            // which is its only owner until it is dropped.
            unsafe { AsyncFd::register(socket) }.map_err(|error| error.into())
        }) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::info!(%error, "PREF64 (RFC 8781) discovery unavailable: no raw ICMPv6 socket (needs CAP_NET_RAW)");
            return;
        }
    };
    let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let Ok(mut guard) = socket.readable().await else {
            return;
        };
        let received = guard.try_io(|inner| inner.get_ref().recv_from(&mut buffer));
        let Ok(Ok((length, source))) = received else {
            continue;
        };
        let link_local = source
            .as_socket_ipv6()
            .is_some_and(|address| address.ip().segments()[0] & 0xffc0 == 0xfe80);
        if !link_local {
            continue; // RFC 4861 §6.1.2: router advertisements come from link-local addresses
        }
        // SAFETY: recv_from initialised the first `length` bytes.
        let packet: Vec<u8> = buffer[..length]
            .iter()
            .map(|byte| unsafe { byte.assume_init() })
            .collect();
        for (prefix, lifetime) in pref64_options(&packet) {
            discovered.set_from_ra(prefix, lifetime);
        }
    }
}

/// RFC 8781 discovery needs Linux raw sockets; elsewhere only RFC 7050 runs.
#[cfg(not(target_os = "linux"))]
pub(crate) async fn run_pref64(_discovered: Arc<DiscoveredPrefixes>) {
    tracing::info!("PREF64 (RFC 8781) discovery is only implemented on Linux");
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::AAAA;

    fn aaaa_answer(addresses: &[&str]) -> Answer {
        let mut answer = Answer::empty(ResponseCode::NoError);
        for address in addresses {
            answer.answers.push(Record::from_rdata(
                Name::from_str("ipv4only.arpa.").unwrap(),
                300,
                RData::AAAA(AAAA(address.parse().unwrap())),
            ));
        }
        answer
    }

    #[test]
    fn rfc7050_finds_the_prefix_of_every_length() {
        let cases = [
            ("64:ff9b::c000:aa", "64:ff9b::/96"),
            ("2001:db8:64::c000:ab", "2001:db8:64::/96"),
            ("2001:db8:c000:aa::", "2001:db8::/32"),
            ("2001:db8:100:c000:0:aa00::", "2001:db8:100::/48"),
            ("2001:db8:122:344:c0:0:aa00:0", "2001:db8:122:344::/64"),
        ];
        for (address, expected) in cases {
            let found = prefixes_from_ipv4only_answer(&aaaa_answer(&[address]));
            assert_eq!(found, vec![expected.parse().unwrap()], "{address}");
        }
        assert!(prefixes_from_ipv4only_answer(&aaaa_answer(&["2001:db8::1"])).is_empty());
        let two =
            prefixes_from_ipv4only_answer(&aaaa_answer(&["64:ff9b::c000:aa", "64:ff9b::c000:ab"]));
        assert_eq!(two.len(), 1);
    }

    fn router_advertisement(option: &[u8]) -> Vec<u8> {
        let mut packet = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&[1, 1, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]); // source link-layer option
        packet.extend_from_slice(option);
        packet
    }

    #[test]
    fn pref64_option_is_parsed_with_lifetime_and_length() {
        // 2001:db8:64::/96, scaled lifetime 225 (1800 s), PLC 0.
        let field: u16 = 225 << 3; // PLC 0
        let mut option = vec![38, 2];
        option.extend_from_slice(&field.to_be_bytes());
        option.extend_from_slice(&"2001:db8:64::".parse::<Ipv6Addr>().unwrap().octets()[..12]);
        let found = pref64_options(&router_advertisement(&option));
        assert_eq!(
            found,
            vec![(
                "2001:db8:64::/96".parse().unwrap(),
                Duration::from_secs(1800)
            )]
        );
        // PLC 3 is /48.
        let field: u16 = (10 << 3) | 3;
        option[2..4].copy_from_slice(&field.to_be_bytes());
        let found = pref64_options(&router_advertisement(&option));
        assert_eq!(
            found,
            vec![("2001:db8:64::/48".parse().unwrap(), Duration::from_secs(80))]
        );
    }

    #[test]
    fn malformed_router_advertisements_give_nothing() {
        assert!(pref64_options(&[]).is_empty());
        assert!(pref64_options(&[133, 0, 0, 0]).is_empty());
        assert!(pref64_options(&router_advertisement(&[38, 0, 0, 0])).is_empty());
        assert!(pref64_options(&router_advertisement(&[38, 5, 0, 0])).is_empty());
        let mut bad_plc = vec![38, 2, 0, 7];
        bad_plc.extend_from_slice(&[0; 12]);
        assert!(pref64_options(&router_advertisement(&bad_plc)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ra_prefixes_win_over_dns_and_expire() {
        let discovered = DiscoveredPrefixes::new(None);
        discovered.set_from_dns(vec!["64:ff9b::/96".parse().unwrap()]);
        assert_eq!(discovered.current()[0].prefix.to_string(), "64:ff9b::/96");
        discovered.set_from_ra("2001:db8:64::/96".parse().unwrap(), Duration::from_secs(60));
        assert_eq!(
            discovered.current()[0].prefix.to_string(),
            "2001:db8:64::/96"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(discovered.current()[0].prefix.to_string(), "64:ff9b::/96");
    }
}
