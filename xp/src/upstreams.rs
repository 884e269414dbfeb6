//! The upstream servers in the order given, which one to ask, and the
//! hold-down that skips a server for a while after it failed (timed out,
//! answered SERVFAIL or REFUSED, or its port was unreachable).

use core::net::{Ipv6Addr, SocketAddrV6};

use crate::{Tick, is_due};

/// The most upstreams kept; more are ignored (with a log line at the edge).
pub const MAX_UPSTREAMS: usize = 8;

/// One upstream and its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Upstream {
    address: SocketAddrV6,
    /// Set while the server is skipped: the tick when it may be asked again.
    skipped_until: Option<Tick>,
}

/// The upstream list with its hold-down state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    entries: [Upstream; MAX_UPSTREAMS],
    count: usize,
    skip_ms: u32,
}

/// A set of upstream indexes already asked for one query.
pub type Tried = u32;

impl Upstreams {
    /// The list (the first [`MAX_UPSTREAMS`] of `addresses`); a server that
    /// fails is skipped for `skip_ms`.
    pub fn new(addresses: &[SocketAddrV6], skip_ms: u32) -> Self {
        let empty = Upstream {
            address: SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0),
            skipped_until: None,
        };
        let mut entries = [empty; MAX_UPSTREAMS];
        let count = addresses.len().min(MAX_UPSTREAMS);
        for (entry, address) in entries.iter_mut().zip(addresses) {
            entry.address = *address;
        }
        Self {
            entries,
            count,
            skip_ms,
        }
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The address of upstream `index`.
    pub fn address(&self, index: usize) -> Option<SocketAddrV6> {
        self.active().get(index).map(|entry| entry.address)
    }

    /// The addresses in order.
    pub fn addresses(&self) -> impl Iterator<Item = SocketAddrV6> + '_ {
        self.active().iter().map(|entry| entry.address)
    }

    fn active(&self) -> &[Upstream] {
        self.entries.get(..self.count).unwrap_or(&[])
    }

    /// Whether upstream `index` is being skipped at `now`.
    pub fn is_skipped(&self, index: usize, now: Tick) -> bool {
        self.active()
            .get(index)
            .and_then(|entry| entry.skipped_until)
            .is_some_and(|until| !is_due(now, until))
    }

    /// The upstream to ask next for a query that already asked `tried`: the
    /// first healthy one not tried, else the first not tried at all (when
    /// every remaining one is skipped, asking one beats failing). `None`
    /// when all were tried.
    pub fn choose(&self, now: Tick, tried: Tried) -> Option<usize> {
        let untried = (0..self.count).filter(|&index| tried & (1 << index) == 0);
        untried
            .clone()
            .find(|&index| !self.is_skipped(index, now))
            .or_else(|| untried.min_by_key(|&index| self.skip_left(index, now)))
    }

    fn skip_left(&self, index: usize, now: Tick) -> u32 {
        self.active()
            .get(index)
            .and_then(|entry| entry.skipped_until)
            .map_or(0, |until| crate::until(now, until))
    }

    /// Records that upstream `index` failed at `now`. Returns whether it was
    /// healthy until now (so the edge logs the change once).
    pub fn mark_failed(&mut self, index: usize, now: Tick) -> bool {
        let was_skipped = self.is_skipped(index, now);
        let skip_ms = self.skip_ms;
        if let Some(entry) = self
            .entries
            .get_mut(..self.count)
            .and_then(|e| e.get_mut(index))
        {
            entry.skipped_until = Some(now.wrapping_add(skip_ms));
        }
        !was_skipped
    }

    /// Replaces the list with `addresses` (the first [`MAX_UPSTREAMS`]) if
    /// it differs, keeping the hold-down of servers still listed. Returns
    /// whether it changed. Used when the adapters' servers are re-read.
    pub fn replace(&mut self, addresses: &[SocketAddrV6]) -> bool {
        let addresses = addresses
            .get(..addresses.len().min(MAX_UPSTREAMS))
            .unwrap_or(&[]);
        if self.addresses().eq(addresses.iter().copied()) {
            return false;
        }
        let mut next = Self::new(addresses, self.skip_ms);
        for entry in next.entries.iter_mut().take(next.count) {
            if let Some(old) = self
                .active()
                .iter()
                .find(|old| old.address == entry.address)
            {
                entry.skipped_until = old.skipped_until;
            }
        }
        *self = next;
        true
    }

    /// Records that upstream `index` answered. Returns whether it had been
    /// marked failed (so the edge logs the recovery once).
    pub fn mark_answered(&mut self, index: usize) -> bool {
        self.entries
            .get_mut(..self.count)
            .and_then(|entries| entries.get_mut(index))
            .and_then(|entry| entry.skipped_until.take())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(count: u16) -> Upstreams {
        let addresses: [SocketAddrV6; 10] = core::array::from_fn(|index| {
            SocketAddrV6::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, index as u16 + 1),
                53,
                0,
                0,
            )
        });
        Upstreams::new(&addresses[..usize::from(count)], 30_000)
    }

    #[test]
    fn first_healthy_untried_upstream_is_chosen() {
        let mut upstreams = list(3);
        assert_eq!(upstreams.choose(0, 0), Some(0));
        assert_eq!(upstreams.choose(0, 0b001), Some(1));
        assert_eq!(upstreams.choose(0, 0b011), Some(2));
        assert_eq!(upstreams.choose(0, 0b111), None);
        assert!(upstreams.mark_failed(0, 1_000), "newly failed");
        assert!(!upstreams.mark_failed(0, 1_500), "already failed");
        assert_eq!(
            upstreams.choose(2_000, 0),
            Some(1),
            "the failed one is skipped"
        );
        assert_eq!(upstreams.choose(31_499, 0), Some(1), "still skipped");
        assert_eq!(upstreams.choose(31_500, 0), Some(0), "hold-down over");
    }

    #[test]
    fn when_all_untried_are_skipped_the_soonest_back_is_asked() {
        let mut upstreams = list(3);
        upstreams.mark_failed(0, 0);
        upstreams.mark_failed(1, 5_000);
        upstreams.mark_failed(2, 2_000);
        assert_eq!(upstreams.choose(10_000, 0), Some(0));
        assert_eq!(upstreams.choose(10_000, 0b001), Some(2));
        assert_eq!(upstreams.choose(10_000, 0b101), Some(1));
    }

    #[test]
    fn an_answer_ends_the_hold_down() {
        let mut upstreams = list(2);
        upstreams.mark_failed(0, 0);
        assert!(upstreams.is_skipped(0, 1));
        assert!(upstreams.mark_answered(0), "recovered");
        assert!(!upstreams.mark_answered(0), "was healthy");
        assert_eq!(upstreams.choose(2, 0), Some(0));
    }

    #[test]
    fn a_new_list_keeps_the_hold_down_of_servers_still_in_it() {
        let mut upstreams = list(3);
        let before: [SocketAddrV6; 3] =
            core::array::from_fn(|index| upstreams.address(index).expect("listed"));
        upstreams.mark_failed(1, 0);
        assert!(!upstreams.replace(&before), "the same list is no change");
        let reordered = [before[1], before[2]];
        assert!(upstreams.replace(&reordered));
        assert_eq!(upstreams.len(), 2);
        assert!(
            upstreams.is_skipped(0, 10),
            "the failed server is still skipped at its new place"
        );
        assert!(!upstreams.is_skipped(1, 10));
        assert!(upstreams.replace(&[]));
        assert!(upstreams.is_empty());
    }

    #[test]
    fn the_list_is_capped_and_indexes_past_it_are_ignored() {
        let mut upstreams = list(10);
        assert_eq!(upstreams.len(), MAX_UPSTREAMS);
        assert_eq!(upstreams.addresses().count(), MAX_UPSTREAMS);
        assert_eq!(upstreams.address(MAX_UPSTREAMS), None);
        assert!(upstreams.mark_failed(MAX_UPSTREAMS, 0));
        assert!(!upstreams.mark_answered(9));
        assert!(list(0).is_empty());
        assert_eq!(list(0).choose(0, 0), None);
    }
}
