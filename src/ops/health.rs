//! The answer to "can this server answer?", and the prober that brings
//! servers back: while a server is down (see [`crate::ops::upstream_health`])
//! it is asked `. NS` every [`PROBE_INTERVAL`], so it comes back even when no
//! client query would reach it.
//!
//! `/healthz` is 200 while something can answer (an upstream not down, a
//! local zone, or recursion) and 503 with the reason when nothing can;
//! `/readyz` is 200 once listeners and zones are up.

use std::sync::Arc;

use crate::answering::resolver::Resolver;
use crate::answering::upstream::Upstream;
use crate::edge::handler::SnapshotSlot;
pub(crate) use crate::ops::upstream_health::PROBE_INTERVAL;

/// Why `/healthz` says 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unhealthy {
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
pub(crate) struct HealthCheck {
    /// The forwarding upstreams.
    pub upstream: Arc<Upstream>,
    /// The resolver (cache, metrics).
    pub resolver: Arc<Resolver>,
    /// The configuration in force (its zones).
    pub snapshot: Arc<SnapshotSlot>,
    /// Recursive mode: the root servers answer, not `upstream`.
    pub recursive: bool,
}

impl HealthCheck {
    /// `Ok` while something can answer.
    pub(crate) fn check(&self) -> Result<(), Unhealthy> {
        let metrics = self.resolver.metrics();
        if !metrics.is_ready() {
            return Err(Unhealthy::NotReady);
        }
        if self.recursive || self.has_zones() {
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

    /// True if local zones are configured (they answer without upstreams).
    fn has_zones(&self) -> bool {
        !self.snapshot.current().answering.zones.is_empty()
    }

    /// Asks every server that is down `. NS` every [`PROBE_INTERVAL`], forever.
    pub(crate) async fn probe_down_servers(self: Arc<Self>) {
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
