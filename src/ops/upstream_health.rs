//! Per-server upstream health: every exchange reports here (through
//! [`crate::ops::metrics`]); a reply of any RCODE means the server is
//! alive, [`DOWN_AFTER`] timeouts or network errors in a row mark it down.
//! Each change is logged once (warn when it goes down, info when it is
//! back), never per query. [`crate::ops::health`] probes the servers that
//! are down and turns this into `/healthz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Timeouts or network errors in a row after which a server is down.
pub(crate) const DOWN_AFTER: u32 = 3;

/// How often servers that are down are probed.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What is known about one server.
#[derive(Debug, Clone, Copy, Default)]
struct ServerState {
    failures_in_a_row: u32,
    down_since: Option<Instant>,
    last_error: &'static str,
}

/// One server's health, for `dns64d ctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerHealth {
    /// The server.
    pub address: SocketAddr,
    /// Down since this long ago (`None`: up, or not asked yet).
    pub down_for: Option<Duration>,
    /// The last failure kind seen (`timeout`, `network`), if any.
    pub last_error: &'static str,
}

/// Health of every upstream server seen.
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    servers: Mutex<HashMap<SocketAddr, ServerState>>,
    /// How many servers have failures in a row (kept under the lock). While
    /// none has, a reply changes nothing, and [`Self::answered`] does not
    /// take the lock: that is every upstream reply of a healthy setup.
    failing: AtomicUsize,
}

impl UpstreamHealth {
    fn with_state<T>(&self, server: SocketAddr, change: impl FnOnce(&mut ServerState) -> T) -> T {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = servers.entry(server).or_default();
        let was_failing = state.failures_in_a_row > 0;
        let result = change(state);
        match (was_failing, state.failures_in_a_row > 0) {
            (false, true) => self.failing.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.failing.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        result
    }

    /// The server replied (any RCODE: it is alive).
    pub(crate) fn answered(&self, server: SocketAddr) {
        if self.failing.load(Ordering::Relaxed) == 0 {
            return; // nothing to reset (a server that is down has failures in a row)
        }
        let was_down = self.with_state(server, |state| {
            state.failures_in_a_row = 0;
            state.down_since.take()
        });
        if let Some(since) = was_down {
            tracing::info!(%server, down_for = ?since.elapsed(), "upstream server is answering again");
        }
    }

    /// A timeout or network error talking to the server.
    pub(crate) fn failed(&self, server: SocketAddr, kind: &'static str) {
        let went_down = self.with_state(server, |state| {
            state.failures_in_a_row = state.failures_in_a_row.saturating_add(1);
            state.last_error = kind;
            if state.down_since.is_none() && state.failures_in_a_row >= DOWN_AFTER {
                state.down_since = Some(Instant::now());
                return true;
            }
            false
        });
        if went_down {
            tracing::warn!(%server, error = kind, failures = DOWN_AFTER, "upstream server is down: no answer to {DOWN_AFTER} queries in a row; probing it every {PROBE_INTERVAL:?}");
        }
    }

    /// True if the server is down.
    pub fn is_down(&self, server: SocketAddr) -> bool {
        self.with_state(server, |state| state.down_since.is_some())
    }

    /// The health of `servers`, in their order.
    pub(crate) fn report(&self, servers: &[SocketAddr]) -> Vec<ServerHealth> {
        servers
            .iter()
            .map(|&address| {
                self.with_state(address, |state| ServerHealth {
                    address,
                    down_for: state.down_since.map(|since| since.elapsed()),
                    last_error: state.last_error,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_failures_in_a_row_and_up_on_any_reply() {
        let health = UpstreamHealth::default();
        let server: SocketAddr = "192.0.2.1:53".parse().unwrap();
        for _ in 1..DOWN_AFTER {
            health.failed(server, "timeout");
        }
        assert!(!health.is_down(server), "not yet");
        health.answered(server);
        for _ in 1..DOWN_AFTER {
            health.failed(server, "timeout");
        }
        assert!(!health.is_down(server), "a reply resets the count");
        health.failed(server, "network");
        assert!(health.is_down(server));
        assert_eq!(health.report(&[server])[0].last_error, "network");
        health.answered(server);
        assert!(!health.is_down(server));
        assert_eq!(health.report(&[server])[0].down_for, None);
    }
}
