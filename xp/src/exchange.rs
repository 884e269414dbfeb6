//! One query's life in the relay, without I/O: the edge reports what
//! happened (a reply arrived, the attempt timed out, the socket failed) and
//! is told what to do next.
//!
//! Each attempt goes to one upstream with a fresh random ID (the edge also
//! uses a fresh random source port), so an off-path spoofer has to guess
//! both. On timeout, socket error, SERVFAIL or REFUSED the next untried
//! upstream is asked; when all were asked the client gets SERVFAIL. Every
//! attempt gets `timeout_ms`, so the client hears back within
//! `timeout_ms × upstreams`.

use crate::header;
use crate::upstreams::{Tried, Upstreams};
use crate::{Tick, is_due};

/// What a reply from the upstream means for the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a reply to this attempt (wrong ID, not a response, too short):
    /// ignore it and keep waiting.
    Ignore,
    /// The answer: relay it to the client (its ID has been restored).
    Deliver,
    /// SERVFAIL or REFUSED: ask the next upstream.
    Failed,
}

/// The state of one relayed query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    client_id: u16,
    upstream_id: u16,
    upstream: usize,
    tried: Tried,
    deadline: Tick,
}

impl Exchange {
    /// Starts relaying `query` (already checked with
    /// [`header::check_query`]): picks the first upstream and replaces the
    /// query's ID with `fresh_id`. `None` when there is no upstream.
    pub fn start(
        query: &mut [u8],
        upstreams: &Upstreams,
        now: Tick,
        timeout_ms: u32,
        fresh_id: u16,
    ) -> Option<Self> {
        let client_id = header::id(query)?;
        let upstream = upstreams.choose(now, 0)?;
        header::set_id(query, fresh_id);
        Some(Self {
            client_id,
            upstream_id: fresh_id,
            upstream,
            tried: 1 << upstream,
            deadline: now.wrapping_add(timeout_ms),
        })
    }

    /// The upstream asked by the current attempt.
    pub fn upstream(&self) -> usize {
        self.upstream
    }

    /// The ID the client used.
    pub fn client_id(&self) -> u16 {
        self.client_id
    }

    /// When the current attempt times out.
    pub fn deadline(&self) -> Tick {
        self.deadline
    }

    /// Whether the current attempt has timed out at `now`.
    pub fn is_expired(&self, now: Tick) -> bool {
        is_due(now, self.deadline)
    }

    /// Judges `reply` from the current upstream; on [`Verdict::Deliver`] its
    /// ID is the client's again and the upstream counts as healthy.
    pub fn on_reply(&self, reply: &mut [u8], upstreams: &mut Upstreams, now: Tick) -> Verdict {
        if !header::is_reply_to(reply, self.upstream_id) {
            return Verdict::Ignore;
        }
        if header::is_failure(reply) {
            upstreams.mark_failed(self.upstream, now);
            return Verdict::Failed;
        }
        upstreams.mark_answered(self.upstream);
        header::set_id(reply, self.client_id);
        Verdict::Deliver
    }

    /// Records a timeout or socket error of the current attempt. Returns
    /// whether the upstream was healthy until now (for one log line).
    pub fn on_error(&self, upstreams: &mut Upstreams, now: Tick) -> bool {
        upstreams.mark_failed(self.upstream, now)
    }

    /// Moves on to the next untried upstream with ID `fresh_id`, rewriting
    /// `query`. `false` when every upstream was tried: answer SERVFAIL (with
    /// the client's ID, which this restores in `query`).
    pub fn retry(
        &mut self,
        query: &mut [u8],
        upstreams: &Upstreams,
        now: Tick,
        timeout_ms: u32,
        fresh_id: u16,
    ) -> bool {
        match upstreams.choose(now, self.tried) {
            Some(next) => {
                self.upstream = next;
                self.tried |= 1 << next;
                self.upstream_id = fresh_id;
                self.deadline = now.wrapping_add(timeout_ms);
                header::set_id(query, fresh_id);
                true
            }
            None => {
                header::set_id(query, self.client_id);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv6Addr, SocketAddrV6};

    const QUERY: [u8; 17] = [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];

    fn upstreams(count: u16) -> Upstreams {
        let addresses: [SocketAddrV6; 3] = core::array::from_fn(|index| {
            SocketAddrV6::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, index as u16 + 1),
                53,
                0,
                0,
            )
        });
        Upstreams::new(&addresses[..usize::from(count)], 30_000)
    }

    /// A reply to `query` with `rcode`.
    fn reply(query: &[u8; 17], rcode: u8) -> [u8; 17] {
        let mut reply = *query;
        reply[2] |= 0x80;
        reply[3] = 0x80 | rcode;
        reply
    }

    #[test]
    fn the_id_is_remapped_and_restored() {
        let upstreams_list = &mut upstreams(2);
        let mut query = QUERY;
        let exchange =
            Exchange::start(&mut query, upstreams_list, 0, 2_000, 0x1111).expect("an upstream");
        assert_eq!(&query[..2], &[0x11, 0x11], "the upstream sees the fresh ID");
        assert_eq!(exchange.upstream(), 0);
        assert_eq!(exchange.client_id(), 0xabcd);
        let mut answer = reply(&query, 0);
        assert_eq!(
            exchange.on_reply(&mut answer, upstreams_list, 10),
            Verdict::Deliver
        );
        assert_eq!(&answer[..2], &[0xab, 0xcd], "the client sees its own ID");
    }

    #[test]
    fn replies_that_do_not_match_are_ignored() {
        let upstreams_list = &mut upstreams(1);
        let mut query = QUERY;
        let exchange =
            Exchange::start(&mut query, upstreams_list, 0, 2_000, 0x1111).expect("an upstream");
        let mut wrong_id = reply(&query, 0);
        wrong_id[1] = 0x12;
        let mut not_response = query;
        let cases: [(&str, &mut [u8]); 3] = [
            ("wrong ID", &mut wrong_id),
            ("not a response", &mut not_response),
            ("short", &mut [0x11, 0x11, 0x80]),
        ];
        for (name, message) in cases {
            assert_eq!(
                exchange.on_reply(message, upstreams_list, 1),
                Verdict::Ignore,
                "{name}"
            );
        }
        assert!(
            !upstreams_list.is_skipped(0, 1),
            "ignoring does not mark a failure"
        );
    }

    #[test]
    fn servfail_and_refused_fail_over_then_give_up() {
        let upstreams_list = &mut upstreams(3);
        let mut query = QUERY;
        let mut exchange =
            Exchange::start(&mut query, upstreams_list, 0, 2_000, 1).expect("an upstream");
        let mut servfail = reply(&query, header::RCODE_SERVFAIL);
        assert_eq!(
            exchange.on_reply(&mut servfail, upstreams_list, 5),
            Verdict::Failed
        );
        assert!(exchange.retry(&mut query, upstreams_list, 5, 2_000, 2));
        assert_eq!((exchange.upstream(), header::id(&query)), (1, Some(2)));
        let mut refused = reply(&query, header::RCODE_REFUSED);
        assert_eq!(
            exchange.on_reply(&mut refused, upstreams_list, 6),
            Verdict::Failed
        );
        assert!(exchange.retry(&mut query, upstreams_list, 6, 2_000, 3));
        assert_eq!(exchange.upstream(), 2);
        let mut late_servfail = servfail;
        assert_eq!(
            exchange.on_reply(&mut late_servfail, upstreams_list, 7),
            Verdict::Ignore,
            "a late reply to an earlier attempt carries its old ID"
        );
        assert!(
            exchange.on_error(upstreams_list, 2_006),
            "timed out: newly failed"
        );
        assert!(
            !exchange.retry(&mut query, upstreams_list, 2_006, 2_000, 4),
            "all tried"
        );
        assert_eq!(
            header::id(&query),
            Some(0xabcd),
            "SERVFAIL goes out with the client's ID"
        );
    }

    #[test]
    fn timeouts_bound_the_whole_exchange() {
        let upstreams_list = &mut upstreams(3);
        let mut query = QUERY;
        let mut now = 1_000;
        let timeout = 2_000;
        let mut exchange =
            Exchange::start(&mut query, upstreams_list, now, timeout, 9).expect("an upstream");
        let mut attempts = 1;
        loop {
            assert!(!exchange.is_expired(now + timeout - 1));
            now = exchange.deadline();
            assert!(exchange.is_expired(now));
            exchange.on_error(upstreams_list, now);
            if !exchange.retry(&mut query, upstreams_list, now, timeout, 9) {
                break;
            }
            attempts += 1;
        }
        assert_eq!(attempts, 3);
        assert_eq!(
            now - 1_000,
            timeout * 3,
            "SERVFAIL after timeout × upstreams"
        );
    }

    #[test]
    fn a_failed_upstream_is_skipped_by_the_next_query() {
        let upstreams_list = &mut upstreams(2);
        let mut query = QUERY;
        let exchange =
            Exchange::start(&mut query, upstreams_list, 0, 2_000, 1).expect("an upstream");
        exchange.on_error(upstreams_list, 2_000);
        let mut query = QUERY;
        let next =
            Exchange::start(&mut query, upstreams_list, 2_001, 2_000, 2).expect("an upstream");
        assert_eq!(next.upstream(), 1);
        assert!(Exchange::start(&mut QUERY.clone(), &upstreams(0), 0, 2_000, 3).is_none());
    }
}
