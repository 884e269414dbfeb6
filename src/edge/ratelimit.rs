//! Response rate limiting (as BIND's RRL): a token bucket per client prefix
//! (/24 and /56 by default) bounds the UDP responses per second, so dns64d
//! cannot be used to flood a forged source address. Over the limit, every
//! `slip`-th response goes out truncated (TC=1, no records: a real client
//! retries over TCP, which cannot be forged) and the others are dropped.
//! TCP is never limited. The table of prefixes is a bounded LRU.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use crate::ops::config::RateLimitConfig;
use crate::sharded::{LRU_NODE_OVERHEAD, ShardedLru, Weigh};

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit: send it.
    Send,
    /// Over the limit: send a truncated response instead.
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    limited: u32,
}

impl Weigh<(IpAddr, u8)> for Bucket {
    fn weigh(&self, _key: &(IpAddr, u8)) -> usize {
        std::mem::size_of::<((IpAddr, u8), Bucket)>() + LRU_NODE_OVERHEAD
    }
}

/// The per-prefix limiter; `None` from [`RateLimiter::new`] when limiting is off.
pub(crate) struct RateLimiter {
    rate: f64,
    capacity: f64,
    slip: u32,
    ipv4_prefix_length: u8,
    ipv6_prefix_length: u8,
    exempt: Vec<IpNet>,
    buckets: ShardedLru<(IpAddr, u8), Bucket>,
}

impl RateLimiter {
    /// A limiter for `config`, or `None` when `responses_per_second` is 0.
    pub(crate) fn new(config: &RateLimitConfig) -> Option<Self> {
        if config.responses_per_second == 0 {
            return None;
        }
        let rate = f64::from(config.responses_per_second);
        Some(Self {
            rate,
            capacity: rate + f64::from(config.burst),
            slip: config.slip,
            ipv4_prefix_length: config.ipv4_prefix_length,
            ipv6_prefix_length: config.ipv6_prefix_length,
            exempt: config.exempt.clone(),
            buckets: ShardedLru::new(config.max_tracked),
        })
    }

    /// The client's prefix, the unit that is limited.
    fn prefix(&self, client: IpAddr) -> (IpAddr, u8) {
        let client = client.to_canonical();
        let length = match client {
            IpAddr::V4(_) => self.ipv4_prefix_length,
            IpAddr::V6(_) => self.ipv6_prefix_length,
        };
        let network = IpNet::new(client, length).map_or(client, |net| net.network());
        (network, length)
    }

    /// Decides on one UDP response to `client` now.
    pub(crate) fn check(&self, client: IpAddr) -> Verdict {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Verdict {
        let canonical = client.to_canonical();
        if self
            .exempt
            .iter()
            .any(|network| network.contains(&canonical))
        {
            return Verdict::Send;
        }
        let key = self.prefix(client);
        let mut shard = self.buckets.shard(&key);
        let bucket = shard.get_or_insert_mut(key, || Bucket {
            tokens: self.capacity,
            updated: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if self.slip > 0 && bucket.limited % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: u32, slip: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            responses_per_second: rate,
            burst: 0,
            slip,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
            max_tracked: 1000,
        })
        .unwrap()
    }

    #[test]
    fn a_prefix_is_limited_and_refills_over_time() {
        let limiter = limiter(5, 2);
        let start = Instant::now();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..9).map(|_| limiter.check_at(client, start)).collect();
        assert_eq!(&verdicts[..5], &[Verdict::Send; 5]);
        assert_eq!(
            &verdicts[5..],
            &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        // The same /24 shares the bucket; another /24 does not.
        assert_eq!(
            limiter.check_at("192.0.2.99".parse().unwrap(), start),
            Verdict::Drop
        );
        assert_eq!(
            limiter.check_at("198.51.100.1".parse().unwrap(), start),
            Verdict::Send
        );
        // One second later, five more.
        let later = start + Duration::from_secs(1);
        assert_eq!(limiter.check_at(client, later), Verdict::Send);
    }

    #[test]
    fn exempt_clients_and_off_switch() {
        let limiter = limiter(1, 0);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                limiter.check_at("127.0.0.1".parse().unwrap(), now),
                Verdict::Send
            );
        }
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(limiter.check_at(client, now), Verdict::Send);
        assert_eq!(
            limiter.check_at(client, now),
            Verdict::Drop,
            "slip 0 drops all"
        );
        let off = RateLimitConfig {
            responses_per_second: 0,
            burst: 0,
            slip: 2,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: Vec::new(),
            max_tracked: 10,
        };
        assert!(RateLimiter::new(&off).is_none());
    }
}
