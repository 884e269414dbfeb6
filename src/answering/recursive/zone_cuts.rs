//! What the project's own iteration ([`super::iterative`]) remembers between
//! questions, Unbound's infrastructure cache: the zone cuts it learnt from
//! referrals (each zone's name servers, with the glue addresses that came
//! with them), the addresses it resolved for name servers that had no glue,
//! per name server address the smoothed round-trip time and time-outs that
//! choose which server of a zone is asked, and which addresses answered
//! lamely for which zone.
//!
//! All four are bounded LRU maps sized from `cache.max_entries` and empty
//! at start; an entry lives until its TTL ends (delegations, addresses) or
//! for [`SERVER_MEMORY`] (round-trip times) or [`LAME_MEMORY`] (lameness). Answers themselves are not kept
//! here: they live in dns64d's answer cache ([`crate::answering::cache`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::time::Instant;

use crate::answering::cache::name_heap_bytes;
use crate::sharded::{LRU_NODE_OVERHEAD, ShardedLru, Weigh};

/// How long a name server's round-trip time and time-outs are remembered
/// (Unbound's `infra-host-ttl`): after that it counts as a server never asked.
const SERVER_MEMORY: Duration = Duration::from_secs(900);

/// The round-trip time assumed for an address never asked (Unbound's 376 ms).
pub(super) const UNKNOWN_RTT: Duration = Duration::from_millis(376);

/// The longest a time-out's back-off makes a server look (Unbound's 120 s).
const MAX_BACKED_OFF_RTT: Duration = Duration::from_secs(120);

/// The longest a delegation or address is kept, whatever its TTL says.
const MAX_TTL: u32 = 86_400;

/// How long a name server that answered lamely for a zone is asked last
/// for it (Unbound's `infra-lame-ttl`).
const LAME_MEMORY: Duration = Duration::from_secs(900);

/// One name server of a zone: its name and the addresses the referral's
/// glue gave for it (none: resolve the name).
#[derive(Debug, Clone)]
pub(super) struct NameServer {
    pub name: Name,
    pub addresses: Vec<IpAddr>,
}

/// A zone cut: the zone and its name servers.
#[derive(Debug)]
pub(super) struct ZoneCut {
    pub zone: Name,
    pub servers: Vec<NameServer>,
    /// When the delegation's TTL ends (`None`: never, the root hints).
    expires: Option<Instant>,
}

impl ZoneCut {
    /// A cut learnt now, kept for `ttl` seconds (capped at a day).
    pub(super) fn new(zone: Name, servers: Vec<NameServer>, ttl: u32) -> Self {
        Self {
            zone,
            servers,
            expires: Some(expiry(ttl)),
        }
    }

    /// The root's cut from the hints: it never expires.
    pub(super) fn root(servers: Vec<NameServer>) -> Self {
        Self {
            zone: Name::root(),
            servers,
            expires: None,
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }
}

impl Weigh<Name> for Arc<ZoneCut> {
    fn weigh(&self, key: &Name) -> usize {
        LRU_NODE_OVERHEAD
            + name_bytes(key)
            + name_bytes(&self.zone)
            + self
                .servers
                .iter()
                .map(|server| {
                    name_bytes(&server.name) + server.addresses.len() * size_of::<IpAddr>()
                })
                .sum::<usize>()
    }
}

/// The addresses resolved for a name server's name.
struct Addresses {
    list: Arc<[IpAddr]>,
    expires: Instant,
}

impl Weigh<Name> for Addresses {
    fn weigh(&self, key: &Name) -> usize {
        LRU_NODE_OVERHEAD + name_bytes(key) + self.list.len() * size_of::<IpAddr>()
    }
}

/// What is known of one name server address.
#[derive(Debug, Clone, Copy)]
struct ServerState {
    /// Smoothed round-trip time, doubled by each time-out (back-off).
    rtt: Duration,
    /// When it was last updated.
    updated: Instant,
}

impl Weigh<IpAddr> for ServerState {
    fn weigh(&self, _key: &IpAddr) -> usize {
        LRU_NODE_OVERHEAD + size_of::<IpAddr>() + size_of::<Self>()
    }
}

/// When something learnt now with `ttl` seconds ends (capped at [`MAX_TTL`]).
fn expiry(ttl: u32) -> Instant {
    Instant::now() + Duration::from_secs(u64::from(ttl.min(MAX_TTL)))
}

/// A name's bytes, inline and on the heap (as the answer cache counts them).
fn name_bytes(name: &Name) -> usize {
    size_of::<Name>() + name_heap_bytes(name)
}

/// Zone cuts, name server addresses and round-trip times.
pub(super) struct Infrastructure {
    root: Arc<ZoneCut>,
    cuts: ShardedLru<Name, Arc<ZoneCut>>,
    addresses: ShardedLru<Name, Addresses>,
    servers: ShardedLru<IpAddr, ServerState>,
    /// Name server addresses that answered lamely for a zone (not
    /// authoritative, no referral, REFUSED), until when.
    lame: ShardedLru<(IpAddr, Name), Instant>,
    /// Whether any address was ever found lame (saves the look-up until one is).
    any_lame: AtomicBool,
}

impl Weigh<(IpAddr, Name)> for Instant {
    fn weigh(&self, key: &(IpAddr, Name)) -> usize {
        LRU_NODE_OVERHEAD + size_of::<(IpAddr, Name, Instant)>() + name_bytes(&key.1)
    }
}

impl Infrastructure {
    /// Empty maps of at most `entries` each, and the root from its hints.
    pub(super) fn new(root: ZoneCut, entries: usize) -> Self {
        let entries = entries.max(16);
        Self {
            root: Arc::new(root),
            cuts: ShardedLru::new(entries),
            addresses: ShardedLru::new(entries),
            servers: ShardedLru::new(entries),
            lame: ShardedLru::new(entries),
            any_lame: AtomicBool::new(false),
        }
    }

    /// The deepest known cut at or above `name` (strictly above it when
    /// `above` is set: a DS record lives in the parent zone).
    pub(super) fn closest_cut(&self, name: &Name, above: bool) -> Arc<ZoneCut> {
        let now = Instant::now();
        let labels = name.num_labels();
        let deepest = if above {
            labels.saturating_sub(1)
        } else {
            labels
        };
        for count in (1..=deepest).rev() {
            let candidate = name.trim_to(usize::from(count));
            let mut shard = self.cuts.shard(&candidate);
            match shard.get(&candidate) {
                Some(cut) if cut.is_live(now) => return Arc::clone(cut),
                Some(_) => {
                    shard.pop(&candidate);
                }
                None => {}
            }
        }
        Arc::clone(&self.root)
    }

    /// Remembers a cut learnt from a referral.
    pub(super) fn learn_cut(&self, cut: Arc<ZoneCut>) {
        if cut.zone.is_root() {
            return;
        }
        self.cuts.shard(&cut.zone).put(cut.zone.clone(), cut);
    }

    /// The addresses resolved earlier for name server `name`, if still live.
    pub(super) fn addresses(&self, name: &Name) -> Option<Arc<[IpAddr]>> {
        let mut shard = self.addresses.shard(name);
        let entry = shard.get(name)?;
        if Instant::now() < entry.expires {
            return Some(Arc::clone(&entry.list));
        }
        shard.pop(name);
        None
    }

    /// Remembers the addresses resolved for name server `name` for `ttl` seconds.
    pub(super) fn learn_addresses(&self, name: &Name, list: Arc<[IpAddr]>, ttl: u32) {
        let expires = expiry(ttl);
        self.addresses
            .shard(name)
            .put(name.clone(), Addresses { list, expires });
    }

    /// How fast `address` answers, as far as is known ([`UNKNOWN_RTT`] if
    /// never asked or not for [`SERVER_MEMORY`]).
    pub(super) fn rtt(&self, address: IpAddr) -> Duration {
        let now = Instant::now();
        let mut shard = self.servers.shard(&address);
        match shard.get(&address) {
            Some(state) if now.duration_since(state.updated) < SERVER_MEMORY => state.rtt,
            _ => UNKNOWN_RTT,
        }
    }

    /// `address` answered in `elapsed`: the smoothed RTT moves an eighth of
    /// the way towards it (a first answer sets it).
    pub(super) fn answered(&self, address: IpAddr, elapsed: Duration) {
        let now = Instant::now();
        let mut shard = self.servers.shard(&address);
        let state = shard.get_or_insert_mut(address, || ServerState {
            rtt: elapsed,
            updated: now,
        });
        let known = now.duration_since(state.updated) < SERVER_MEMORY && state.rtt < UNKNOWN_RTT;
        state.rtt = if known {
            (state.rtt * 7 + elapsed) / 8
        } else {
            elapsed
        };
        state.updated = now;
    }

    /// `address` did not answer within `waited`: it looks at least twice as
    /// slow as that from now on (up to [`MAX_BACKED_OFF_RTT`]), so the
    /// zone's other servers are asked first until it answers again.
    pub(super) fn timed_out(&self, address: IpAddr, waited: Duration) {
        let now = Instant::now();
        let mut shard = self.servers.shard(&address);
        let state = shard.get_or_insert_mut(address, || ServerState {
            rtt: UNKNOWN_RTT,
            updated: now,
        });
        state.rtt = (state.rtt.max(waited) * 2).min(MAX_BACKED_OFF_RTT);
        state.updated = now;
    }

    /// `address` answered lamely for `zone`: it is asked last for that
    /// zone for [`LAME_MEMORY`].
    pub(super) fn lame(&self, address: IpAddr, zone: &Name) {
        let key = (address, zone.clone());
        let until = Instant::now() + LAME_MEMORY;
        self.lame.shard(&key).put(key, until);
        self.any_lame.store(true, Ordering::Relaxed);
    }

    /// Whether `address` answered lamely for `zone` lately.
    pub(super) fn is_lame(&self, address: IpAddr, zone: &Name) -> bool {
        if !self.any_lame.load(Ordering::Relaxed) {
            return false;
        }
        let key = (address, zone.clone());
        let mut shard = self.lame.shard(&key);
        match shard.get(&key) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                shard.pop(&key);
                false
            }
            None => false,
        }
    }

    /// Forgets everything but the root hints (`dns64d ctl flush`).
    pub(super) fn clear(&self) {
        self.cuts.retain(|_, _| false);
        self.addresses.retain(|_, _| false);
        self.servers.retain(|_, _| false);
        self.lame.retain(|_, _| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn cut(zone: &str, ttl: u32) -> Arc<ZoneCut> {
        Arc::new(ZoneCut::new(
            name(zone),
            vec![NameServer {
                name: name(&format!("ns.{zone}")),
                addresses: vec!["192.0.2.1".parse().unwrap()],
            }],
            ttl,
        ))
    }

    #[tokio::test]
    async fn the_deepest_live_cut_is_found() {
        let infrastructure = Infrastructure::new(ZoneCut::root(Vec::new()), 100);
        let question = name("www.example.com.");
        assert!(infrastructure.closest_cut(&question, false).zone.is_root());
        infrastructure.learn_cut(cut("com.", 3600));
        infrastructure.learn_cut(cut("example.com.", 3600));
        assert_eq!(
            infrastructure.closest_cut(&question, false).zone,
            name("example.com.")
        );
        // A DS question goes to the parent.
        assert_eq!(
            infrastructure.closest_cut(&name("example.com."), true).zone,
            name("com.")
        );
        assert_eq!(
            infrastructure
                .closest_cut(&name("EXAMPLE.com."), false)
                .zone,
            name("example.com.")
        );
        infrastructure.clear();
        assert!(infrastructure.closest_cut(&question, false).zone.is_root());
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_cut_is_not_used() {
        let infrastructure = Infrastructure::new(ZoneCut::root(Vec::new()), 100);
        infrastructure.learn_cut(cut("example.com.", 10));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            infrastructure
                .closest_cut(&name("www.example.com."), false)
                .zone
                .is_root()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_time_out_backs_the_server_off_and_an_answer_brings_it_back() {
        let infrastructure = Infrastructure::new(ZoneCut::root(Vec::new()), 100);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let ms = Duration::from_millis;
        assert_eq!(infrastructure.rtt(address), UNKNOWN_RTT);
        infrastructure.answered(address, ms(8));
        assert_eq!(infrastructure.rtt(address), ms(8));
        infrastructure.answered(address, ms(16));
        assert_eq!(infrastructure.rtt(address), ms(9));
        infrastructure.timed_out(address, ms(400));
        assert_eq!(infrastructure.rtt(address), ms(800));
        infrastructure.timed_out(address, ms(400));
        assert_eq!(infrastructure.rtt(address), ms(1600));
        infrastructure.answered(address, ms(2));
        assert_eq!(
            infrastructure.rtt(address),
            ms(2),
            "backed off: the answer starts afresh"
        );
        tokio::time::advance(SERVER_MEMORY).await;
        assert_eq!(infrastructure.rtt(address), UNKNOWN_RTT, "forgotten");
    }
}
