//! Starting and reloading: [`start`] builds the answering side (zones,
//! upstream or recursor, cache, resolver, handler), binds every listener
//! and spawns its serving tasks; [`RunningServer`] holds them, applies a
//! reload, and shuts down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::active_queries::ActiveQueries;
#[cfg(not(target_os = "linux"))]
use super::bind::bind_each_local_address;
use super::bind::{bind_listener, bind_quic, bind_tcp};
use super::context::ServeContext;
use super::tcp::{ConnectionSlots, serve_tcp};
#[cfg(not(target_os = "linux"))]
use super::udp::serve_udp;
#[cfg(target_os = "linux")]
use super::udp_linux::serve_udp;
use super::{ServerError, quic, tls};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::answering::ddr::Designation;
use crate::answering::identity::Identity;
use crate::answering::recursive::RecursiveResolver;
use crate::answering::resolver::AnswerSettings;
use crate::answering::resolver::Resolver;
use crate::answering::upstream::{AnswerSource, Upstream};
use crate::answering::zones::{LocalZones, ZoneError};
use crate::edge::cookies::{self, CookieKeys, CookieSecret, CookieSettings};
use crate::edge::fastpath::ReplayCache;
use crate::edge::handler::{ListenerPolicy, QueryHandler, Snapshot, SnapshotSlot};
use crate::edge::ratelimit::RateLimiter;
use crate::ops::config::Config;
use crate::ops::config::{EncryptedProtocol, ListenerConfig};
use crate::ops::discovery::{self, DiscoveredPrefixes};
use crate::ops::metrics::Metrics;

/// A running server: its bound addresses and its tasks (stopped on drop).
pub struct RunningServer {
    addresses: Vec<SocketAddr>,
    handler: Arc<QueryHandler>,
    upstream: Arc<Upstream>,
    /// The listeners running, in configuration order.
    listeners: Vec<ListenerConfig>,
    /// What queries read from the configuration, swapped whole on reload.
    snapshot: Arc<SnapshotSlot>,
    discovered: Option<Arc<DiscoveredPrefixes>>,
    config: Config,
    responses: Arc<ReplayCache>,
    metrics_address: Option<SocketAddr>,
    listener_tasks: JoinSet<()>,
    /// The UDP listeners among `listener_tasks`, aborted first on shutdown.
    udp_tasks: Vec<AbortHandle>,
    /// Tells the TCP, DoT and DoH listeners to stop (see `shutdown`).
    stop: watch::Sender<bool>,
    background: JoinSet<()>,
    active_queries: Arc<ActiveQueries>,
    certificates: Vec<tls::ListenerCertificate>,
    health: Arc<crate::ops::health::HealthCheck>,
    /// The cookie secret used while `cookies.secret` is unset.
    fallback_cookie_secret: CookieSecret,
}

impl RunningServer {
    /// The bound addresses, one per listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The request handler (for statistics).
    pub fn handler(&self) -> &Arc<QueryHandler> {
        &self.handler
    }

    /// The bound address of the metrics endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Queries being answered now.
    pub fn active_queries(&self) -> usize {
        self.active_queries.count()
    }

    /// Waits until every listener task has ended (normally never).
    pub async fn wait(&mut self) {
        while self.listener_tasks.join_next().await.is_some() {}
    }

    /// Applies a new configuration without dropping queries: upstreams,
    /// prefixes and policies, per-listener policy, access lists and zones.
    /// Listener addresses and protocols, `[cache]` and `[server]` need a
    /// restart; changes there are reported in the returned notes and ignored.
    /// A zone that fails to load rejects the whole reload (nothing changes).
    pub async fn reload(&mut self, config: Config) -> Result<Vec<String>, ZoneError> {
        let zones = Arc::new(LocalZones::load(&config.zones).await?);
        let mut notes = tls::reload_certificates(&self.certificates, &config);
        self.upstream.reconfigure(&config.upstream);
        if config.control != self.config.control {
            notes.push(
                "control.socket, control.address or control.token_file changed: restart dns64d to apply it"
                    .into(),
            );
        }
        if config.metrics_listen != self.config.metrics_listen {
            notes.push("metrics.listen changed: restart dns64d to apply it".into());
        }
        let same_listeners = config.listeners.len() == self.listeners.len()
            && config
                .listeners
                .iter()
                .zip(&self.listeners)
                .all(|(new, old)| {
                    new.address == old.address
                        && new.udp == old.udp
                        && new.tcp == old.tcp
                        && new.encrypted.as_ref().map(|encrypted| encrypted.protocol)
                            == old.encrypted.as_ref().map(|encrypted| encrypted.protocol)
                        && new.connections == old.connections
                });
        if !same_listeners {
            notes.push(
                "listener addresses, protocols or connection limits changed: restart dns64d to apply them".into(),
            );
        }
        let wants_discovery = config.dns64.discover
            || config
                .listeners
                .iter()
                .any(|listener| listener.discover == Some(true));
        if wants_discovery && self.discovered.is_none() {
            notes.push(
                "\"discover\" was added to the prefixes: restart dns64d to start discovery".into(),
            );
        }
        // DDR names the listeners running now (changes to them need a restart).
        let designation =
            Designation::new(config.ddr_name.as_ref(), &self.listeners, &self.addresses);
        let snapshot = snapshot(
            &config,
            &self.listeners,
            zones,
            designation,
            self.discovered.as_ref(),
            &self.fallback_cookie_secret,
        );
        // One store: a query sees all of the old configuration or all of the new.
        self.snapshot.replace(snapshot);
        // Stored responses reflect the old policy and zones. Last, so a
        // response stamped with the new generation was computed under the new
        // configuration (see `ReplayCache::generation`).
        self.responses.invalidate();
        if config.upstream.recursive.is_some() != self.config.upstream.recursive.is_some() {
            notes.push("upstream.mode changed: restart dns64d to apply it".into());
        } else if config.upstream.recursive != self.config.upstream.recursive {
            notes.push(
                "recursive-mode settings changed (root hints, DNSSEC validation, trust anchor, limits): restart dns64d to apply them"
                    .into(),
            );
        }
        if config.cache != self.config.cache {
            notes.push("[cache] changed: restart dns64d to apply it".into());
        }
        if config.server != self.config.server {
            notes.push("[server] changed: restart dns64d to apply it".into());
        }
        self.config = config;
        Ok(notes)
    }

    /// Re-reads the zone files of the configuration in force (a reload
    /// with the same configuration); returns how many zones are loaded. A
    /// zone that fails to load changes nothing.
    pub async fn reload_zones(&mut self) -> Result<usize, ZoneError> {
        let config = self.config.clone();
        let count = config.zones.len();
        self.reload(config).await.map(|_| count)
    }

    /// Stops accepting queries, lets those being answered finish (at most
    /// `grace`), then stops everything. Returns the queries cut off.
    ///
    /// UDP listeners stop at once (their queries in flight go on). TCP, DoT
    /// and DoH listeners stop accepting; each of their connections stops
    /// reading queries, answers those it has read and closes (DoH: GOAWAY).
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.handler.resolver().metrics().set_ready(false);
        // An error means no listener is left to tell.
        let _ = self.stop.send(true);
        for task in &self.udp_tasks {
            task.abort();
        }
        let finished = async {
            while self.listener_tasks.join_next().await.is_some() {}
            self.active_queries.wait_idle().await;
        };
        let _ = tokio::time::timeout(grace, finished).await; // timing out is reported below
        // Counted before the connections still open are aborted with their queries.
        let cut_off = self.active_queries.count();
        self.listener_tasks.abort_all();
        while self.listener_tasks.join_next().await.is_some() {}
        self.background.abort_all();
        cut_off
    }
}

/// What the operations side (`dns64d ctl`, health) reads and does.
impl RunningServer {
    /// The configuration in force.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The forwarding upstreams.
    pub(crate) fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The health check `/healthz` answers from.
    pub(crate) fn health(&self) -> &Arc<crate::ops::health::HealthCheck> {
        &self.health
    }

    /// Removes cache entries (and every stored response, which may hold
    /// them); returns how many cache entries were removed. A whole flush
    /// empties the recursor's caches too, first, so what is flushed here is
    /// not filled again from there.
    pub(crate) fn flush_cache(&self, scope: &crate::answering::cache::FlushScope) -> usize {
        if *scope == crate::answering::cache::FlushScope::All {
            self.handler.resolver().flush_answer_source();
        }
        let removed = self.handler.resolver().cache().flush(scope);
        self.responses.invalidate();
        removed
    }
}

/// The policy of one listener under a configuration.
fn listener_policy(
    listener: &ListenerConfig,
    config: &Config,
    discovered: Option<&Arc<DiscoveredPrefixes>>,
    cookies: Option<&Arc<CookieSettings>>,
    shared: SharedSettings<'_>,
) -> ListenerPolicy {
    let prefixes = listener
        .prefixes
        .clone()
        .unwrap_or_else(|| config.dns64.prefixes.clone());
    ListenerPolicy {
        access_clients: listener
            .clients
            .clone()
            .unwrap_or_else(|| config.access_clients.clone()),
        dns64: listener.dns64,
        client_independent: config.dns64.clients.is_none()
            && prefixes.iter().all(|prefix| prefix.clients.is_none()),
        prefixes,
        discovered: listener
            .discover
            .unwrap_or(config.dns64.discover)
            .then(|| discovered.cloned())
            .flatten(),
        cookies: cookies.cloned(),
        answering: Arc::clone(shared.answering),
        identity: Arc::clone(shared.identity),
        log_queries: config.log.queries,
    }
}

/// The cookie settings of a configuration; `fallback_secret` stands in for
/// an unset `cookies.secret` (made at start, kept across reloads).
fn cookie_settings(config: &Config, fallback_secret: &CookieSecret) -> Option<Arc<CookieSettings>> {
    let cookies = &config.cookies;
    cookies.enabled.then(|| {
        Arc::new(CookieSettings {
            keys: CookieKeys {
                current: cookies.secret.unwrap_or(*fallback_secret),
                previous: cookies.previous_secret,
            },
            require_for_large_udp: cookies.require_for_large_udp,
        })
    })
}

/// The snapshot of a configuration for the `running` listeners: each gets
/// the policy of the configured listener at its position with its address
/// (or, failing that, the first with its address, or the one at its
/// position, or else its own), all over one set of answering settings.
fn snapshot(
    config: &Config,
    running: &[ListenerConfig],
    zones: Arc<LocalZones>,
    designation: Option<Designation>,
    discovered: Option<&Arc<DiscoveredPrefixes>>,
    fallback_cookie_secret: &CookieSecret,
) -> Snapshot {
    let answering = Arc::new(AnswerSettings {
        designation,
        ..AnswerSettings::new(config, zones)
    });
    let identity = Arc::new(config.identity.clone());
    let cookies = cookie_settings(config, fallback_cookie_secret);
    let listeners = running
        .iter()
        .enumerate()
        .map(|(index, old)| {
            let listener = config
                .listeners
                .get(index)
                .filter(|new| new.address == old.address)
                .or_else(|| {
                    config
                        .listeners
                        .iter()
                        .find(|new| new.address == old.address)
                })
                .or_else(|| config.listeners.get(index))
                .unwrap_or(old);
            Arc::new(listener_policy(
                listener,
                config,
                discovered,
                cookies.as_ref(),
                SharedSettings {
                    answering: &answering,
                    identity: &identity,
                },
            ))
        })
        .collect();
    Snapshot {
        listeners,
        answering,
    }
}

/// The parts of a snapshot every listener's policy shares.
struct SharedSettings<'a> {
    answering: &'a Arc<AnswerSettings>,
    identity: &'a Arc<Identity>,
}

/// Binds every listen address and starts serving.
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(
        &config.upstream,
        config.server.edns_udp_size,
        Arc::clone(&metrics),
    ));
    let zones = Arc::new(LocalZones::load(&config.zones).await?);
    let forwarder: Arc<dyn AnswerSource> = match &config.upstream.recursive {
        Some(settings) => {
            tracing::info!(
                root_hints = %settings.root_hints.as_ref().map_or("built in".into(), |path| path.display().to_string()),
                "recursive mode: resolving from the root servers"
            );
            Arc::new(RecursiveResolver::new(settings, Arc::clone(&metrics))?)
        }
        None => Arc::clone(&upstream) as Arc<dyn AnswerSource>,
    };
    let resolver = Resolver::with_parts(config, Arc::clone(&forwarder), Arc::clone(&metrics));
    let handler = Arc::new(QueryHandler::new(resolver, config.server.edns_udp_size));
    let active_queries = Arc::new(ActiveQueries::default());
    let responses = Arc::new(
        ReplayCache::with_byte_budget(
            config.cache.max_entries,
            config.cache.max_memory.map(|bytes| bytes / 2),
        )
        .with_prefetch_margin(if config.cache.prefetch {
            config.cache.prefetch_threshold_percent
        } else {
            0
        }),
    );
    let limiter = RateLimiter::new(&config.rate_limit).map(Arc::new);
    let mut listener_tasks = JoinSet::new();
    let mut udp_tasks = Vec::new();
    let (stop, stopping) = watch::channel(false);
    let mut background = JoinSet::new();
    let mut addresses = Vec::new();
    let mut listeners = Vec::new();
    let mut metrics_address = None;
    let mut certificates = Vec::new();
    let wants_discovery = config.dns64.discover
        || config
            .listeners
            .iter()
            .any(|listener| listener.discover == Some(true));
    let discovered = wants_discovery.then(|| {
        let discovered = Arc::new(DiscoveredPrefixes::new(
            config.dns64.discovered_exclude_ipv4.clone(),
        ));
        background.spawn(discovery::run_rfc7050(
            Arc::clone(&discovered),
            Arc::clone(&forwarder),
        ));
        background.spawn(discovery::run_pref64(Arc::clone(&discovered)));
        discovered
    });
    let fallback_cookie_secret = cookies::random_secret();
    // Without DDR until the listeners are bound (DDR names their addresses).
    let snapshot = Arc::new(SnapshotSlot::new(self::snapshot(
        config,
        &config.listeners,
        Arc::clone(&zones),
        None,
        discovered.as_ref(),
        &fallback_cookie_secret,
    )));
    for listener in &config.listeners {
        let address = listener.address;
        let over_tcp = listener
            .encrypted
            .as_ref()
            .and_then(|encrypted| tls::OverTcp::of(encrypted.protocol));
        // A DoQ listener is one UDP socket of quinn's; the rest bind here.
        let (udp, tcp, quic) = match &listener.encrypted {
            Some(encrypted) if encrypted.protocol == EncryptedProtocol::Quic => {
                let socket = bind_quic(address).map_err(|source| ServerError::Bind {
                    address,
                    protocol: "UDP (QUIC)",
                    source,
                })?;
                (Vec::new(), None, Some(socket))
            }
            _ => {
                let (udp, tcp) =
                    bind_listener(address, listener.udp, listener.tcp || over_tcp.is_some())?;
                (udp, tcp, None)
            }
        };
        let bound = match (udp.first().or(quic.as_ref()), &tcp) {
            (Some(udp), _) => udp.local_addr().and_then(|bound| {
                bound
                    .as_socket()
                    .ok_or_else(|| io::Error::other("not an IP socket"))
            }),
            (None, Some(tcp)) => tcp.local_addr(),
            (None, None) => Ok(address),
        }
        .map_err(|source| ServerError::Bind {
            address,
            protocol: "UDP",
            source,
        })?;
        let encrypted = listener
            .encrypted
            .as_ref()
            .map(|encrypted| encrypted.protocol);
        tracing::info!(address = %bound, udp = listener.udp, tcp = listener.tcp, ?encrypted, dns64 = listener.dns64, "listening");
        #[cfg(not(target_os = "linux"))]
        let udp = bind_each_local_address(udp, bound)?;
        addresses.push(bound);
        let context = ServeContext {
            handler: Arc::clone(&handler),
            snapshot: Arc::clone(&snapshot),
            active_queries: Arc::clone(&active_queries),
            responses: Arc::clone(&responses),
            listener_id: u32::try_from(listeners.len()).unwrap_or(u32::MAX),
            limiter: limiter.clone(),
            max_inflight_queries: config.server.max_inflight_queries,
            query_bound: config
                .upstream
                .recursive
                .as_ref()
                .map(|settings| settings.timeout),
            connections: Arc::new(ConnectionSlots::new(
                listener
                    .connections
                    .max_connections
                    .unwrap_or(config.server.max_tcp_connections),
                listener
                    .connections
                    .max_connections_per_client
                    .or(config.server.max_tcp_connections_per_client),
            )),
            stop: stopping.clone(),
        };
        let idle_timeout = listener
            .connections
            .idle_timeout
            .unwrap_or(config.server.tcp_idle_timeout);
        for socket in udp {
            let serving =
                serve_udp(socket, context.clone()).map_err(|source| ServerError::Bind {
                    address: bound,
                    protocol: "UDP",
                    source,
                })?;
            udp_tasks.push(listener_tasks.spawn(serving));
        }
        match (tcp, quic, &listener.encrypted, over_tcp) {
            (_, Some(socket), Some(encrypted), _) => {
                let (serving, certificate) =
                    quic::start(socket.into(), address, context, encrypted, idle_timeout)?;
                listener_tasks.spawn(serving);
                certificates.push(certificate);
            }
            (Some(tcp), _, Some(encrypted), Some(over)) => {
                let (serving, certificate) =
                    tls::start(tcp, address, context, encrypted, over, idle_timeout)
                        .map_err(|source| ServerError::Tls { address, source })?;
                listener_tasks.spawn(serving);
                certificates.push(certificate);
            }
            (Some(tcp), _, None, _) => {
                listener_tasks.spawn(serve_tcp(tcp, context, idle_timeout));
            }
            _ => {}
        }
        listeners.push(listener.clone());
    }
    snapshot.replace(self::snapshot(
        config,
        &listeners,
        zones,
        Designation::new(config.ddr_name.as_ref(), &config.listeners, &addresses),
        discovered.as_ref(),
        &fallback_cookie_secret,
    ));
    let health = Arc::new(crate::ops::health::HealthCheck {
        upstream: Arc::clone(&upstream),
        resolver: Arc::clone(handler.resolver()),
        snapshot: Arc::clone(&snapshot),
        recursive: config.upstream.recursive.is_some(),
    });
    if let Some(address) = config.metrics_listen {
        let listener = bind_tcp(address).map_err(|source| ServerError::Bind {
            address,
            protocol: "TCP (metrics)",
            source,
        })?;
        let bound = listener.local_addr().unwrap_or(address);
        tracing::info!(address = %bound, "metrics on http://{bound}/metrics, health on /healthz, readiness on /readyz");
        metrics_address = Some(bound);
        background.spawn(crate::ops::http::serve_http(listener, Arc::clone(&health)));
    }
    background.spawn(Arc::clone(&health).probe_down_servers());
    metrics.set_ready(true);
    if let Some(system) = &config.upstream.selection.system {
        if !system.refresh.is_zero() {
            background.spawn(watch_system_resolvers(
                Arc::clone(&upstream),
                system.refresh,
            ));
        }
    }
    Ok(RunningServer {
        addresses,
        handler,
        upstream,
        listeners,
        snapshot,
        discovered,
        config: config.clone(),
        responses,
        metrics_address,
        listener_tasks,
        udp_tasks,
        stop,
        background,
        active_queries,
        certificates,
        health,
        fallback_cookie_secret,
    })
}

/// Re-reads the system resolver file every `refresh` and switches to the
/// servers it now lists (RFC 8106 RDNSS learned by rdnssd or systemd-resolved
/// lands there), so a new server is used without a restart.
pub(super) async fn watch_system_resolvers(upstream: Arc<Upstream>, refresh: Duration) {
    let path = |upstream: &Upstream| upstream.selection().system.map(|system| system.path);
    let mut last_contents = path(&upstream).and_then(|path| std::fs::read(path).ok());
    let mut interval = tokio::time::interval(refresh);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let selection = upstream.selection();
        let Some(system) = &selection.system else {
            continue; // a reload switched to a fixed list
        };
        let contents = tokio::fs::read(&system.path).await.ok();
        if contents == last_contents {
            continue;
        }
        last_contents = contents;
        let servers = selection.read_system();
        if upstream.set_addresses(&servers) {
            let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
            if servers.is_empty() {
                tracing::warn!(file = %system.path.display(), "system resolvers changed: no usable upstream server left; answering SERVFAIL");
            } else {
                tracing::info!(file = %system.path.display(), servers = %list.join(", "), "system resolvers changed; now forwarding to them");
            }
        }
    }
}
