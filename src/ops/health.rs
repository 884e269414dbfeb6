//! Upstream health and the answer to "can this server answer?".
//!
//! Every upstream exchange reports here (through [`crate::ops::metrics`]): a
//! reply of any RCODE means the server is alive; [`DOWN_AFTER`] timeouts or
//! network errors in a row mark it down. Each change is logged once (warn
//! when it goes down, info when it is back), never per query. While a
//! server is down a prober asks it `. NS` every [`PROBE_INTERVAL`], so it
//! comes back even when no client query would reach it.
//!
//! `/healthz` is 200 while something can answer (an upstream not down, a
//! local zone, or recursion) and 503 with the reason when nothing can;
//! `/readyz` is 200 once listeners and zones are up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::answering::resolver::Resolver;
use crate::answering::upstream::Upstream;

/// Timeouts or network errors in a row after which a server is down.
pub const DOWN_AFTER: u32 = 3;

/// How often servers that are down are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What is known about one server.
#[derive(Debug, Clone, Copy, Default)]
struct ServerState {
    failures_in_a_row: u32,
    down_since: Option<Instant>,
    last_error: &'static str,
}

/// One server's health, for `dns64d ctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
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
}

impl UpstreamHealth {
    fn with_state<T>(&self, server: SocketAddr, change: impl FnOnce(&mut ServerState) -> T) -> T {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(servers.entry(server).or_default())
    }

    /// The server replied (any RCODE: it is alive).
    pub fn answered(&self, server: SocketAddr) {
        let was_down = self.with_state(server, |state| {
            state.failures_in_a_row = 0;
            state.down_since.take()
        });
        if let Some(since) = was_down {
            tracing::info!(%server, down_for = ?since.elapsed(), "upstream server is answering again");
        }
    }

    /// A timeout or network error talking to the server.
    pub fn failed(&self, server: SocketAddr, kind: &'static str) {
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
    pub fn report(&self, servers: &[SocketAddr]) -> Vec<ServerHealth> {
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

/// Why `/healthz` says 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    /// Listeners or zones are not up yet, or the server is stopping.
    #[error("not serving: listeners and zones are not up (starting or stopping)")]
    NotReady,
    /// No upstream is configured and nothing else answers.
    #[error(
        "no upstream server is configured (none usable in the system resolver configuration) and no local zone"
    )]
    NoUpstream,
    /// Every upstream is down and nothing else answers.
    #[error("every upstream server is down: {0}")]
    AllDown(String),
}

/// What the health check looks at.
pub struct HealthCheck {
    /// The forwarding upstreams.
    pub upstream: Arc<Upstream>,
    /// The resolver (zones, cache, metrics).
    pub resolver: Arc<Resolver>,
    /// Recursive mode: the root servers answer, not `upstream`.
    pub recursive: bool,
}

impl HealthCheck {
    /// `Ok` while something can answer.
    pub fn check(&self) -> Result<(), Unhealthy> {
        let metrics = self.resolver.metrics();
        if !metrics.is_ready() {
            return Err(Unhealthy::NotReady);
        }
        if self.recursive || !self.resolver.zones().is_empty() {
            return Ok(());
        }
        let servers = self.upstream.addresses();
        if servers.is_empty() {
            return Err(Unhealthy::NoUpstream);
        }
        let health = metrics.upstream_health();
        if servers.iter().any(|&server| !health.is_down(server)) {
            return Ok(());
        }
        let detail = health
            .report(&servers)
            .iter()
            .map(|server| {
                format!(
                    "{} ({}, down for {}s)",
                    server.address,
                    server.last_error,
                    server.down_for.unwrap_or_default().as_secs()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(Unhealthy::AllDown(detail))
    }

    /// Asks every server that is down `. NS` every [`PROBE_INTERVAL`], forever.
    pub async fn probe_down_servers(self: Arc<Self>) {
        let mut interval = tokio::time::interval(PROBE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let health = self.resolver.metrics().upstream_health();
            for server in self.upstream.addresses() {
                if health.is_down(server) {
                    self.upstream.probe(server).await;
                }
            }
        }
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
