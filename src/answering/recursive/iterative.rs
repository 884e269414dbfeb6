//! The project's own iteration on hickory-proto, for recursive mode without
//! DNSSEC validation (with `upstream.dnssec_validation`, hickory's recursor
//! and validator answer instead, [`super::RecursiveResolver`]).
//!
//! A question is followed down from the deepest zone cut known for it
//! ([`zone_cuts`]): the cut's fastest name server is asked without RD; a
//! referral to a cut below is remembered and followed; an answer, a CNAME
//! out of the zone, NXDOMAIN or NODATA ends the walk (a CNAME starts a new
//! walk for its target). Queries towards a cut are minimised as Unbound does
//! (RFC 9156): the zone's name plus one label, type A, until the cut holding
//! the name is reached, so a walk costs no more queries than without it. A
//! name server without glue is resolved (its A, else AAAA) when its zone is
//! first asked, and its addresses kept.
//!
//! Every question is bounded: by the time bound (the caller's), by
//! `upstream.recursion_limit` referrals plus name server lookups, by
//! [`MAX_CNAME_LINKS`] CNAME links and by [`MAX_QUERIES`] upstream queries.
//! One name server gets [`super::name_server_timeout`] before the next is
//! tried (the same one again if it is the zone's only one), and one that
//! timed out is asked last until it answers again.
//! Only what the answer needs is asked: no NS query at the leaf, and (with
//! `dns64.parallel_a = false`, recursive mode's default) A only after an
//! empty AAAA answer.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::IpNet;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::exchange::{self, ExchangeError, QueryStyle};
use super::zone_cuts::{Infrastructure, NameServer, ZoneCut};
use crate::dns64::Nat64Prefix;
use crate::dns64::answer::{Answer, dname_substitution, dname_target, is_rrsig_covering};
use crate::ops::metrics::RecursionFailure;

/// CNAME links followed for one question (Unbound's limit is 11).
pub(super) const MAX_CNAME_LINKS: usize = 12;

/// Upstream queries one question may cost, its name server lookups included.
pub(super) const MAX_QUERIES: u32 = 100;

/// Tries of one query at a zone's name servers (each address in turn, again
/// if the zone has fewer) before the zone counts as unreachable.
const MAX_SERVERS_TRIED: usize = 4;

/// Minimised queries sent to one zone before the whole name is asked
/// (Unbound's `MAX_MINIMISE_COUNT` idea: long names are not walked label by
/// label).
const MAX_MINIMISED_STEPS: u8 = 3;

/// A question given up: why, for `dns64d_recursion_failures_total`, and
/// what happened.
#[derive(Debug)]
pub(super) struct GaveUp {
    pub reason: RecursionFailure,
    pub detail: String,
}

impl GaveUp {
    fn new(reason: RecursionFailure, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// How the iteration asks.
pub(super) struct IterationSettings {
    /// Maximum referrals plus name server lookups for one question.
    pub recursion_limit: u8,
    /// How long one name server gets before the next is tried.
    pub server_timeout: Duration,
    /// 0x20 letter case randomization.
    pub case_randomization: bool,
    /// EDNS payload size of its queries.
    pub edns_udp_size: u16,
    /// Name server addresses never asked (loopback, private: unless
    /// `upstream.query_private_nameservers`).
    pub denied: Vec<IpNet>,
    /// IPv4 name servers are reached inside this prefix (`recursion.nat64_prefix`).
    pub nat64_prefix: Option<Nat64Prefix>,
}

/// The iteration: its settings and what it remembers.
pub(super) struct Iteration {
    settings: IterationSettings,
    infrastructure: Infrastructure,
    /// Runs the background tasks of TCP exchanges (after truncation).
    runtime: TokioRuntimeProvider,
    /// Name server names being resolved now: questions that need the same
    /// one wait for the first lookup instead of starting their own.
    resolving: Mutex<HashMap<Name, Arc<ServerLookup>>>,
}

/// One name server name's lookup, shared by the questions waiting for it.
type ServerLookup = OnceCell<Arc<[IpAddr]>>;

/// What one question has spent, shared with the name server lookups it starts.
struct Spent {
    queries: AtomicU32,
}

impl Spent {
    fn charge(&self) -> Result<(), GaveUp> {
        if self.queries.fetch_add(1, Ordering::Relaxed) >= MAX_QUERIES {
            return Err(GaveUp::new(
                RecursionFailure::QueryBudget,
                format!("more than {MAX_QUERIES} upstream queries"),
            ));
        }
        Ok(())
    }
}

/// What a zone's reply says about the name asked: where the walk ends, or
/// a referral further down.
enum Reply {
    /// The walk ends here.
    Found(Found),
    /// A referral to a cut below the zone.
    Referral(Arc<ZoneCut>),
}

/// Where a walk ended.
enum Found {
    /// The records asked for, after the CNAME links in the zone (if any).
    Records(Vec<Record>),
    /// CNAME links ending at a name outside the zone (or not answered in it).
    Alias { links: Vec<Record>, target: Name },
    /// NXDOMAIN or NODATA, with the CNAME links before it and the zone's
    /// authority records (the SOA, and with DO the denial's proofs).
    Negative {
        code: ResponseCode,
        links: Vec<Record>,
        authorities: Vec<Record>,
    },
}

type Walk<'a, T> = Pin<Box<dyn Future<Output = Result<T, GaveUp>> + Send + 'a>>;

impl Iteration {
    /// An iteration starting from `root_servers` (the root hints).
    pub(super) fn new(
        settings: IterationSettings,
        root_servers: &[IpAddr],
        cache_entries: usize,
    ) -> Self {
        let servers = root_servers
            .iter()
            .map(|address| NameServer {
                name: Name::root(),
                addresses: vec![*address],
            })
            .collect();
        Self {
            settings,
            infrastructure: Infrastructure::new(ZoneCut::root(servers), cache_entries),
            runtime: TokioRuntimeProvider::default(),
            resolving: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets delegations, name server addresses and round-trip times.
    pub(super) fn clear(&self) {
        self.infrastructure.clear();
    }

    /// Resolves one question from the deepest known cut: its answer (with
    /// the CNAME chain from `name`), NXDOMAIN or NODATA (with the SOA).
    /// The caller bounds the time.
    pub(super) async fn resolve(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        dnssec_ok: bool,
    ) -> Result<Answer, GaveUp> {
        let spent = Spent {
            queries: AtomicU32::new(0),
        };
        self.resolve_chain(name, record_type, class, self.style(dnssec_ok), &spent, 0)
            .await
    }

    /// Follows CNAME links across zones, a walk per target.
    fn resolve_chain<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
        class: DNSClass,
        style: QueryStyle,
        spent: &'a Spent,
        depth: u8,
    ) -> Walk<'a, Answer> {
        Box::pin(async move {
            let mut chain: Vec<Record> = Vec::new();
            let mut current = name.clone();
            loop {
                let reply = self
                    .walk(&current, record_type, class, style, spent, depth)
                    .await?;
                match reply {
                    Found::Records(records) => {
                        chain.extend(records);
                        let mut answer = Answer::empty(ResponseCode::NoError);
                        answer.answers = chain;
                        return Ok(answer);
                    }
                    Found::Negative {
                        code,
                        links,
                        authorities,
                    } => {
                        chain.extend(links);
                        let mut answer = Answer::empty(code);
                        answer.answers = chain;
                        answer.authorities = authorities;
                        return Ok(answer);
                    }
                    Found::Alias { links, target } => {
                        chain.extend(links);
                        let cnames = chain
                            .iter()
                            .filter(|record| record.record_type() == RecordType::CNAME)
                            .count();
                        let looped = chain.iter().any(|record| {
                            record.name == target && record.record_type() == RecordType::CNAME
                        });
                        if cnames > MAX_CNAME_LINKS || looped {
                            return Err(GaveUp::new(
                                RecursionFailure::CnameChain,
                                format!("{cnames} CNAME links from {name}, looped: {looped}"),
                            ));
                        }
                        current = target;
                    }
                }
            }
        })
    }

    /// One name within the hierarchy: from the deepest known cut down to
    /// the zone that answers it.
    async fn walk(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        style: QueryStyle,
        spent: &Spent,
        depth: u8,
    ) -> Result<Found, GaveUp> {
        let mut cut = self
            .infrastructure
            .closest_cut(name, record_type == RecordType::DS);
        let mut referrals: u8 = 0;
        let mut minimise = true;
        let mut steps: u8 = 0;
        loop {
            // RFC 9156, as Unbound does it: zone + one more label, type A.
            let labels = usize::from(cut.zone.num_labels()) + 1 + usize::from(steps);
            let minimised = minimise
                && record_type != RecordType::DS
                && usize::from(name.num_labels()) > labels;
            let (asked, asked_type) = if minimised {
                (name.trim_to(labels), RecordType::A)
            } else {
                (name.clone(), record_type)
            };
            let reply = self
                .ask_zone(&cut, &asked, asked_type, class, style, spent, depth)
                .await?;
            match reply {
                Reply::Referral(child) => {
                    referrals += 1;
                    if depth.saturating_add(referrals) >= self.settings.recursion_limit {
                        return Err(GaveUp::new(
                            RecursionFailure::RecursionLimit,
                            format!(
                                "{name}: referral to {} past upstream.recursion_limit {}",
                                child.zone, self.settings.recursion_limit
                            ),
                        ));
                    }
                    self.infrastructure.learn_cut(Arc::clone(&child));
                    cut = child;
                    steps = 0;
                }
                Reply::Found(Found::Negative {
                    code: ResponseCode::NXDomain,
                    ..
                }) if minimised => {
                    // RFC 8020 says nothing lies below; a server that
                    // answers minimised queries badly is asked the name.
                    minimise = false;
                }
                Reply::Found(_) if minimised => {
                    // No cut at that label: one label more.
                    steps += 1;
                    if steps >= MAX_MINIMISED_STEPS {
                        minimise = false;
                    }
                }
                Reply::Found(found) => return Ok(found),
            }
        }
    }

    /// Asks the zone's name servers, fastest first, until one gives a usable reply.
    #[allow(clippy::too_many_arguments)]
    async fn ask_zone(
        &self,
        cut: &ZoneCut,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        style: QueryStyle,
        spent: &Spent,
        depth: u8,
    ) -> Result<Reply, GaveUp> {
        let addresses = self.server_addresses(cut, spent, depth).await?;
        let mut last_failure = GaveUp::new(
            RecursionFailure::Unreachable,
            format!("{name}: no usable name server address for {}", cut.zone),
        );
        // Each address in turn, and again while tries remain: a zone with
        // one name server survives a lost datagram (Unbound retries too).
        for &address in addresses.iter().cycle().take(MAX_SERVERS_TRIED) {
            spent.charge()?;
            let mut query = Query::query(name.clone(), record_type);
            query.set_query_class(class);
            let reached = self.reach(address);
            let started = Instant::now();
            let timeout = self.settings.server_timeout;
            match exchange::ask(reached, query, style, timeout, &self.runtime).await {
                Ok(message) => {
                    self.infrastructure.answered(address, started.elapsed());
                    match classify(message, &cut.zone, name, record_type, style.dnssec_ok) {
                        Ok(reply) => return Ok(reply),
                        Err(why) => {
                            tracing::debug!(%reached, zone = %cut.zone, %name, ?why, "unusable reply; asking the next name server");
                            if matches!(why, Unusable::Lame(_)) {
                                self.infrastructure.lame(address, &cut.zone);
                            }
                            last_failure = GaveUp::new(
                                RecursionFailure::Unreachable,
                                format!("{name}: {reached} for {}: {why:?}", cut.zone),
                            );
                        }
                    }
                }
                Err(error) => {
                    self.infrastructure.timed_out(address, timeout);
                    let reason = match error {
                        ExchangeError::Timeout(_) => RecursionFailure::Timeout,
                        ExchangeError::Network(_) => RecursionFailure::Unreachable,
                    };
                    last_failure = GaveUp::new(
                        reason,
                        format!("{name}: {reached} for {}: {error}", cut.zone),
                    );
                }
            }
        }
        Err(last_failure)
    }

    /// The addresses of the cut's name servers that may be asked, fastest
    /// first: glue, addresses resolved earlier, else the first name server
    /// names resolved now.
    async fn server_addresses(
        &self,
        cut: &ZoneCut,
        spent: &Spent,
        depth: u8,
    ) -> Result<Vec<IpAddr>, GaveUp> {
        let mut addresses: Vec<IpAddr> = Vec::new();
        let mut unresolved: Vec<&Name> = Vec::new();
        for server in &cut.servers {
            if !server.addresses.is_empty() {
                addresses.extend(&server.addresses);
            } else if let Some(known) = self.infrastructure.addresses(&server.name) {
                addresses.extend(known.iter());
            } else if !cut.zone.zone_of(&server.name) {
                // In the zone without glue: unreachable through it.
                unresolved.push(&server.name);
            }
        }
        addresses.retain(|address| self.allowed(*address));
        if addresses.is_empty() {
            for server in unresolved {
                let found = self.resolve_server(server, spent, depth).await;
                addresses.extend(found.iter().filter(|address| self.allowed(**address)));
                if !addresses.is_empty() {
                    break;
                }
            }
        }
        // Fastest first, lame ones last; equal ones (never asked) in random order.
        let mut scored: Vec<(bool, Duration, u32, IpAddr)> = addresses
            .into_iter()
            .map(|address| {
                (
                    self.infrastructure.is_lame(address, &cut.zone),
                    self.infrastructure.rtt(address),
                    rand::random(),
                    address,
                )
            })
            .collect();
        scored.sort_unstable();
        scored.dedup_by_key(|(_, _, _, address)| *address);
        Ok(scored
            .into_iter()
            .map(|(_, _, _, address)| address)
            .collect())
    }

    /// A name server's addresses, looked up once however many questions
    /// need them at the same time ([`Self::look_up_server`]).
    async fn resolve_server(&self, server: &Name, spent: &Spent, depth: u8) -> Arc<[IpAddr]> {
        let lookup = {
            let mut resolving = self
                .resolving
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(resolving.entry(server.clone()).or_default())
        };
        let found = lookup
            .get_or_init(|| self.look_up_server(server, spent, depth))
            .await
            .clone();
        let mut resolving = self
            .resolving
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if resolving
            .get(server)
            .is_some_and(|pending| Arc::ptr_eq(pending, &lookup))
        {
            resolving.remove(server);
        }
        found
    }

    /// A name server's addresses: A, else AAAA; kept for their TTL. A
    /// failure leaves it without addresses (the zone's other servers remain).
    async fn look_up_server(&self, server: &Name, spent: &Spent, depth: u8) -> Arc<[IpAddr]> {
        let depth = depth.saturating_add(1);
        if depth >= self.settings.recursion_limit {
            return Arc::from([]);
        }
        for record_type in [RecordType::A, RecordType::AAAA] {
            let answer = self
                .resolve_chain(
                    server,
                    record_type,
                    DNSClass::IN,
                    self.style(false),
                    spent,
                    depth,
                )
                .await;
            let Ok(answer) = answer else {
                continue;
            };
            let mut ttl = u32::MAX;
            let list: Arc<[IpAddr]> = answer
                .answers
                .iter()
                .filter_map(|record| {
                    ttl = ttl.min(record.ttl);
                    address_of(&record.data)
                })
                .collect();
            if !list.is_empty() {
                self.infrastructure
                    .learn_addresses(server, Arc::clone(&list), ttl);
                return list;
            }
        }
        Arc::from([])
    }

    /// How this iteration's queries are asked, with DO as given.
    fn style(&self, dnssec_ok: bool) -> QueryStyle {
        QueryStyle {
            edns_udp_size: self.settings.edns_udp_size,
            dnssec_ok,
            case_randomization: self.settings.case_randomization,
        }
    }

    /// Whether a name server address may be asked.
    fn allowed(&self, address: IpAddr) -> bool {
        !self
            .settings
            .denied
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The address a name server at `address` is reached at.
    fn reach(&self, address: IpAddr) -> IpAddr {
        super::reach(address, self.settings.nat64_prefix.as_ref())
    }
}

/// Why a reply cannot be used (the next name server is asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// The server does not serve the zone: not authoritative and no
    /// referral, or REFUSED. It is asked last for the zone from now on.
    Lame(&'static str),
    /// A failure that may pass (SERVFAIL, FORMERR, …).
    Failed(&'static str),
}

/// Reads a zone's reply to (`asked`, `record_type`); `Err` says why it
/// cannot be used.
fn classify(
    message: Message,
    zone: &Name,
    asked: &Name,
    record_type: RecordType,
    dnssec_ok: bool,
) -> Result<Reply, Unusable> {
    let code = message.metadata.response_code;
    if code == ResponseCode::Refused {
        return Err(Unusable::Lame("REFUSED"));
    }
    if code != ResponseCode::NoError && code != ResponseCode::NXDomain {
        return Err(Unusable::Failed("neither NOERROR nor NXDOMAIN"));
    }
    // The answer: the CNAME links in the zone from the name asked, then
    // the records of the type asked at the chain's end. A DNAME above a
    // link's owner is passed on before it (RFC 6672 §3.4); when the zone
    // sent a DNAME without the CNAME it stands for, that CNAME is
    // synthesized here (§3.2), with the DNAME's TTL.
    let in_zone = |record: &Record| zone.zone_of(&record.name);
    let mut links: Vec<Record> = Vec::new();
    let mut owner = asked.clone();
    let mut visited: Vec<Name> = Vec::new();
    if record_type != RecordType::CNAME {
        while visited.len() <= MAX_CNAME_LINKS {
            let cname = message.answers.iter().find(|record| {
                record.name == owner && record.record_type() == RecordType::CNAME && in_zone(record)
            });
            let dname = (record_type != RecordType::DNAME)
                .then(|| {
                    message.answers.iter().find_map(|record| {
                        let target = dname_target(record).filter(|_| in_zone(record))?;
                        let mapped = dname_substitution(&owner, &record.name, &target)?;
                        Some((record, mapped))
                    })
                })
                .flatten();
            if let Some((record, _)) = &dname
                && !links.contains(record)
            {
                links.push((*record).clone());
            }
            let target = match (cname, dname) {
                (Some(link), _) => {
                    let RData::CNAME(target) = &link.data else {
                        break;
                    };
                    links.push(link.clone());
                    target.0.clone()
                }
                (None, Some((record, mapped))) => {
                    let mut synthesized = Record::from_rdata(
                        owner.clone(),
                        record.ttl,
                        RData::CNAME(CNAME(mapped.clone())),
                    );
                    synthesized.dns_class = record.dns_class;
                    links.push(synthesized);
                    mapped
                }
                (None, None) => break,
            };
            visited.push(std::mem::replace(&mut owner, target));
            if visited.contains(&owner) {
                break; // a loop: the chain's end says so
            }
        }
    }
    let signatures_of = |owner: &Name, covered: RecordType| -> Vec<Record> {
        if !dnssec_ok {
            return Vec::new();
        }
        message
            .answers
            .iter()
            .filter(|record| record.name == *owner && is_rrsig_covering(record, covered))
            .cloned()
            .collect()
    };
    let records: Vec<Record> = message
        .answers
        .iter()
        .filter(|record| {
            record.name == owner
                && (record.record_type() == record_type || record_type == RecordType::ANY)
                && in_zone(record)
        })
        .cloned()
        .collect();
    if dnssec_ok {
        let mut signed: Vec<Record> = Vec::new();
        for link in &links {
            signed.push(link.clone());
            signed.extend(signatures_of(&link.name, link.record_type()));
        }
        links = signed;
    }
    if !records.is_empty() {
        let signatures = signatures_of(&owner, record_type);
        links.extend(records);
        links.extend(signatures);
        return Ok(Reply::Found(Found::Records(links)));
    }
    let authorities = || -> Vec<Record> {
        message
            .authorities
            .iter()
            .filter(|record| zone.zone_of(&record.name))
            .filter(|record| dnssec_ok || record.record_type() == RecordType::SOA)
            .cloned()
            .collect()
    };
    if code == ResponseCode::NXDomain {
        return Ok(Reply::Found(Found::Negative {
            code,
            links,
            authorities: authorities(),
        }));
    }
    if !links.is_empty() {
        // The chain leaves the zone, or its end has no data of the type here.
        let has_soa = message
            .authorities
            .iter()
            .any(|record| record.record_type() == RecordType::SOA && zone.zone_of(&record.name));
        if zone.zone_of(&owner) && message.metadata.authoritative && has_soa {
            return Ok(Reply::Found(Found::Negative {
                code,
                links,
                authorities: authorities(),
            }));
        }
        return Ok(Reply::Found(Found::Alias {
            links,
            target: owner,
        }));
    }
    if let Some(referral) = referral(&message, zone, asked) {
        return Ok(Reply::Referral(referral));
    }
    let has_soa = message
        .authorities
        .iter()
        .any(|record| record.record_type() == RecordType::SOA && record.name.zone_of(asked));
    if message.metadata.authoritative || has_soa {
        return Ok(Reply::Found(Found::Negative {
            code,
            links,
            authorities: authorities(),
        }));
    }
    Err(Unusable::Lame(
        "not authoritative for the zone and no referral",
    ))
}

/// A referral in `message` to a cut below `zone` and above (or at) `asked`,
/// with the glue within `zone` for its name servers.
fn referral(message: &Message, zone: &Name, asked: &Name) -> Option<Arc<ZoneCut>> {
    let first = message.authorities.iter().find(|record| {
        record.record_type() == RecordType::NS
            && record.name != *zone
            && zone.zone_of(&record.name)
            && record.name.zone_of(asked)
    })?;
    let child = first.name.clone();
    let mut ttl = u32::MAX;
    let mut servers: Vec<NameServer> = Vec::new();
    for record in &message.authorities {
        let RData::NS(ns) = &record.data else {
            continue;
        };
        if record.name != child {
            continue;
        }
        ttl = ttl.min(record.ttl);
        let addresses = message
            .additionals
            .iter()
            .filter(|glue| glue.name == ns.0 && zone.zone_of(&glue.name))
            .filter_map(|glue| address_of(&glue.data))
            .collect();
        servers.push(NameServer {
            name: ns.0.clone(),
            addresses,
        });
    }
    Some(Arc::new(ZoneCut::new(child, servers, ttl)))
}

/// The address in an A or AAAA record's data.
fn address_of(data: &RData) -> Option<IpAddr> {
    match data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn record(owner: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(name(owner), ttl, data)
    }

    fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
        record(
            zone,
            ttl,
            RData::SOA(SOA::new(
                name(&format!("ns.{zone}")),
                name(&format!("hostmaster.{zone}")),
                1,
                3600,
                900,
                604_800,
                minimum,
            )),
        )
    }

    fn reply(code: ResponseCode, authoritative: bool) -> Message {
        let mut message = Message::query();
        message.metadata.message_type = hickory_proto::op::MessageType::Response;
        message.metadata.response_code = code;
        message.metadata.authoritative = authoritative;
        message
    }

    fn a(text: &str) -> RData {
        RData::A(A(text.parse().unwrap()))
    }

    #[test]
    fn a_referral_is_followed_with_the_glue_in_the_parent_zone() {
        let mut message = reply(ResponseCode::NoError, false);
        message.authorities = vec![
            record(
                "example.com.",
                7200,
                RData::NS(NS(name("ns1.example.com."))),
            ),
            record("example.com.", 3600, RData::NS(NS(name("ns.other.net.")))),
        ];
        message.additionals = vec![
            record("ns1.example.com.", 3600, a("192.0.2.1")),
            // Out of com.'s bailiwick: not taken as glue.
            record("ns.other.net.", 3600, a("192.0.2.66")),
        ];
        let Ok(Reply::Referral(cut)) = classify(
            message,
            &name("com."),
            &name("www.example.com."),
            RecordType::AAAA,
            false,
        ) else {
            panic!("not a referral");
        };
        assert_eq!(cut.zone, name("example.com."));
        assert_eq!(cut.servers.len(), 2);
        assert_eq!(
            cut.servers[0].addresses,
            ["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert!(cut.servers[1].addresses.is_empty());
    }

    #[test]
    fn nodata_and_nxdomain_carry_the_zones_soa() {
        // As the zone sent it: the resolver gives every answer's SOA its
        // negative TTL (`Answer::normalize_negative_soa`) before caching.
        for code in [ResponseCode::NoError, ResponseCode::NXDomain] {
            let mut message = reply(code, true);
            message.authorities = vec![soa("example.com.", 3600, 60)];
            let Ok(Reply::Found(Found::Negative {
                code: got,
                links,
                authorities,
            })) = classify(
                message,
                &name("example.com."),
                &name("www.example.com."),
                RecordType::AAAA,
                false,
            )
            else {
                panic!("not negative");
            };
            assert_eq!(got, code);
            assert!(links.is_empty());
            assert_eq!(authorities, [soa("example.com.", 3600, 60)]);
        }
    }

    #[test]
    fn a_cname_out_of_the_zone_is_followed_and_one_inside_is_answered() {
        let mut message = reply(ResponseCode::NoError, true);
        message.answers = vec![
            record(
                "www.example.com.",
                300,
                RData::CNAME(CNAME(name("web.example.com."))),
            ),
            record(
                "web.example.com.",
                300,
                RData::CNAME(CNAME(name("cdn.other.net."))),
            ),
            // Out of the zone: not believed.
            record("cdn.other.net.", 300, a("192.0.2.9")),
        ];
        let Ok(Reply::Found(Found::Alias { links, target })) = classify(
            message,
            &name("example.com."),
            &name("www.example.com."),
            RecordType::A,
            false,
        ) else {
            panic!("not an alias");
        };
        assert_eq!(links.len(), 2);
        assert_eq!(target, name("cdn.other.net."));

        let mut message = reply(ResponseCode::NoError, true);
        message.answers = vec![
            record(
                "www.example.com.",
                300,
                RData::CNAME(CNAME(name("web.example.com."))),
            ),
            record("web.example.com.", 300, a("192.0.2.9")),
        ];
        let Ok(Reply::Found(Found::Records(records))) = classify(
            message,
            &name("example.com."),
            &name("www.example.com."),
            RecordType::A,
            false,
        ) else {
            panic!("not answered");
        };
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn a_dname_is_passed_on_before_its_cname_and_the_cname_synthesized_when_missing() {
        use crate::dns64::answer::dname_record;
        let dname = dname_record(&name("old.example.com."), 600, &name("new.example.com."));
        let synthesized = record(
            "www.old.example.com.",
            600,
            RData::CNAME(CNAME(name("www.new.example.com."))),
        );
        let address = record("www.new.example.com.", 300, a("192.0.2.9"));
        let ask = |answers: Vec<Record>| {
            let mut message = reply(ResponseCode::NoError, true);
            message.answers = answers;
            classify(
                message,
                &name("example.com."),
                &name("www.old.example.com."),
                RecordType::A,
                false,
            )
        };
        // As RFC 6672 servers send it: DNAME, CNAME, the target's records.
        let Ok(Reply::Found(Found::Records(records))) =
            ask(vec![dname.clone(), synthesized.clone(), address.clone()])
        else {
            panic!("not answered");
        };
        assert_eq!(
            records,
            [dname.clone(), synthesized.clone(), address.clone()]
        );
        // A DNAME alone: the CNAME is synthesized with the DNAME's TTL.
        let Ok(Reply::Found(Found::Records(records))) = ask(vec![dname.clone(), address.clone()])
        else {
            panic!("not answered");
        };
        assert_eq!(records, [dname.clone(), synthesized, address]);
        // Out of the zone asked: not believed.
        let foreign = dname_record(&name("old.example.com."), 600, &name("new.example.com."));
        let mut message = reply(ResponseCode::NoError, true);
        message.answers = vec![foreign];
        let Ok(Reply::Found(Found::Negative { code, links, .. })) = classify(
            message,
            &name("other.com."),
            &name("www.old.example.com."),
            RecordType::A,
            false,
        ) else {
            panic!("not a negative answer");
        };
        assert_eq!((code, links), (ResponseCode::NoError, Vec::new()));
    }

    #[test]
    fn a_lame_or_failing_server_is_not_believed() {
        let ask = |message: Message| {
            classify(
                message,
                &name("example.com."),
                &name("www.example.com."),
                RecordType::A,
                false,
            )
            .err()
        };
        let is_lame = |unusable: Option<Unusable>| matches!(unusable, Some(Unusable::Lame(_)));
        assert!(
            is_lame(ask(reply(ResponseCode::NoError, false))),
            "no data, not authoritative"
        );
        assert!(is_lame(ask(reply(ResponseCode::Refused, false))));
        assert!(matches!(
            ask(reply(ResponseCode::ServFail, true)),
            Some(Unusable::Failed(_))
        ));
        // An upward referral is lame too.
        let mut message = reply(ResponseCode::NoError, false);
        message.authorities = vec![record("com.", 3600, RData::NS(NS(name("a.gtld.net."))))];
        assert!(is_lame(ask(message)));
    }
}
