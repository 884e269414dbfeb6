//! Forwarding to upstream resolvers (DoT and DoH ones through
//! [`upstream_tls`](crate::answering::upstream::tls)): UDP with EDNS0 from a random port and
//! ID, replies checked for ID and question (and letter case with 0x20), a
//! retry over TCP when the reply is truncated (hickory-net's TCP client), a
//! timeout per attempt, and failover across servers. Messages are encoded and
//! decoded by hickory-proto.
//!
//! hickory-resolver's `NameServerPool` is not used because it turns NXDOMAIN,
//! NODATA and SERVFAIL replies into errors and drops sections, while DNS64
//! needs every reply whole (the SOA for the TTL rule, RCODEs for §5.1.2).
//! The result is an [`Answer`], or [`UpstreamError`] when no server replied.

pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::time::Instant;

use crate::answering::ede::ExtendedError;
use crate::answering::udp_pool;
use crate::answering::upstream::tls::{EncryptedConnection, TlsClients};
use crate::dns64;
use crate::dns64::answer::Answer;
use crate::edge::certificate;
use crate::edge::cookies::{COOKIE_OPTION_CODE, UpstreamCookie};
use crate::ops::config::upstream_url::EncryptedUpstream;
use crate::ops::config::{UpstreamConfig, UpstreamSelection};
use crate::ops::metrics::{Metrics, UpstreamSeries};

/// Why no answer came back from any upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Every attempt timed out.
    #[error("no upstream server answered within {attempts} attempt(s) of {timeout:?}")]
    Timeout {
        /// Attempts made.
        attempts: u32,
        /// Timeout of each.
        timeout: Duration,
    },
    /// Attempts failed with network errors (unreachable, refused, reset).
    #[error("upstream network error: {0}")]
    Network(String),
    /// No upstream server is configured (yet).
    #[error("no usable upstream server is configured")]
    NoServers,
    /// DNSSEC validation found the answer bogus: dns64d's own (recursive
    /// mode), or the upstream's (a SERVFAIL with a DNSSEC Extended DNS Error).
    #[error("DNSSEC validation failed: {0}")]
    Bogus(String),
}

/// The bits of the client's query that are passed upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct UpstreamFlags {
    /// Ask for DNSSEC records (EDNS DO).
    pub dnssec_ok: bool,
    /// Checking disabled (CD), forwarded as the client set it (RFC 6147 §5.5).
    pub checking_disabled: bool,
}

/// Where the resolver's cache misses go: one question in, one whole answer
/// (or a failure) out. [`Upstream`] forwards over the network; tests and
/// fuzz targets plug in an in-memory source.
#[async_trait::async_trait]
pub trait AnswerSource: Send + Sync + 'static {
    /// Asks one question.
    async fn query(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError>;

    /// Forgets what the source remembers of earlier answers, for
    /// `dns64d ctl flush` (a recursor's caches). Most remember nothing
    /// ([`Upstream`] leaves caching to [`crate::answering::cache`]).
    fn flush(&self) {}
}

/// One upstream server.
struct Server {
    address: SocketAddr,
    /// Set for a DoT or DoH server: its shared connection.
    encrypted: Option<Arc<EncryptedConnection>>,
    /// Our DNS Cookies with it (RFC 7873 §5.1).
    cookie: UpstreamCookie,
    /// Its query counter and latency histogram.
    series: UpstreamSeries,
}

impl Server {
    /// A server at `address`, encrypted when `encrypted` lists it.
    fn new(
        address: SocketAddr,
        encrypted: &Encrypted,
        runtime: &TokioRuntimeProvider,
        metrics: &Metrics,
    ) -> Self {
        let encrypted = encrypted
            .servers
            .iter()
            .find(|upstream| upstream.address == address)
            .map(|upstream| {
                Arc::new(EncryptedConnection::new(
                    upstream.clone(),
                    encrypted.clients.clone(),
                    runtime.clone(),
                ))
            });
        Self {
            address,
            encrypted,
            cookie: UpstreamCookie::default(),
            series: metrics.upstream_series(address),
        }
    }
}

/// The encrypted upstream servers and the TLS settings they share.
#[derive(Clone)]
struct Encrypted {
    servers: Vec<EncryptedUpstream>,
    ca_file: Option<std::path::PathBuf>,
    clients: TlsClients,
}

impl Encrypted {
    /// The DoT/DoH servers of `config`, verified against `upstream.ca_file`
    /// or the system's CAs. The CA file was checked with the configuration;
    /// should it fail now, the system's CAs are used and the failure logged.
    fn new(config: &UpstreamConfig) -> Self {
        let roots = match &config.ca_file {
            None if config.encrypted.is_empty() => rustls::RootCertStore::empty(),
            None => certificate::system_roots(),
            Some(path) => certificate::load_roots(path).unwrap_or_else(|error| {
                tracing::error!(%error, "upstream.ca_file no longer loads; verifying upstreams against the system's CAs");
                certificate::system_roots()
            }),
        };
        Self {
            servers: config.encrypted.clone(),
            ca_file: config.ca_file.clone(),
            clients: TlsClients::new(roots).unwrap_or_else(|error| {
                // Not expected: rustls accepts these fixed settings.
                tracing::error!(%error, "cannot set up TLS for upstreams");
                TlsClients::new(rustls::RootCertStore::empty())
                    .expect("rustls accepts TLS 1.2/1.3 with ring")
            }),
        }
    }
}

/// The set of upstream servers, tried in order with failover. The set can
/// be replaced while serving (re-read system resolvers).
pub(crate) struct Upstream {
    servers: RwLock<Arc<[Arc<Server>]>>,
    timeout_ms: AtomicU64,
    attempts: AtomicU32,
    selection: RwLock<UpstreamSelection>,
    edns_udp_size: u16,
    /// Index of the server tried first; moves on when that server fails.
    preferred: AtomicUsize,
    /// Owns the background tasks of the exchanges (they stop when it is dropped).
    runtime: TokioRuntimeProvider,
    encrypted: RwLock<Encrypted>,
    case_randomization: bool,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// Builds the upstream set; must run inside a tokio runtime.
    pub(crate) fn new(config: &UpstreamConfig, edns_udp_size: u16, metrics: Arc<Metrics>) -> Self {
        let runtime = TokioRuntimeProvider::new();
        let encrypted = Encrypted::new(config);
        let servers = config
            .servers
            .iter()
            .map(|&address| Arc::new(Server::new(address, &encrypted, &runtime, &metrics)))
            .collect();
        Self {
            servers: RwLock::new(servers),
            timeout_ms: AtomicU64::new(duration_ms(config.timeout)),
            attempts: AtomicU32::new(config.attempts),
            selection: RwLock::new(config.selection.clone()),
            edns_udp_size,
            preferred: AtomicUsize::new(0),
            runtime,
            encrypted: RwLock::new(encrypted),
            metrics,
            case_randomization: config.case_randomization,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// How the server list is chosen (for re-reading the system resolvers).
    pub(crate) fn selection(&self) -> UpstreamSelection {
        self.selection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies a reloaded `[upstream]`: servers, timeout, attempts, selection.
    pub(crate) fn reconfigure(&self, config: &UpstreamConfig) {
        let timeout_changed = self
            .timeout_ms
            .swap(duration_ms(config.timeout), Ordering::Relaxed)
            != duration_ms(config.timeout);
        self.attempts.store(config.attempts, Ordering::Relaxed);
        *self
            .selection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config.selection.clone();
        let encrypted_changed = {
            let mut encrypted = self
                .encrypted
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let changed =
                encrypted.servers != config.encrypted || encrypted.ca_file != config.ca_file;
            if changed {
                *encrypted = Encrypted::new(config);
            }
            changed
        };
        if timeout_changed || encrypted_changed {
            // The connections carry the timeout and the TLS settings: build them anew.
            *self
                .servers
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::from(Vec::new());
        }
        self.set_addresses(&config.servers);
    }

    /// The server addresses in use, in order.
    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.snapshot()
            .iter()
            .map(|server| server.address)
            .collect()
    }

    fn snapshot(&self) -> Arc<[Arc<Server>]> {
        Arc::clone(
            &self
                .servers
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Replaces the server list; servers kept keep their exchanges. Returns
    /// true if the list changed.
    pub(crate) fn set_addresses(&self, addresses: &[SocketAddr]) -> bool {
        let current = self.snapshot();
        if current
            .iter()
            .map(|server| server.address)
            .eq(addresses.iter().copied())
        {
            return false;
        }
        let servers: Arc<[Arc<Server>]> = addresses
            .iter()
            .map(|&address| {
                current
                    .iter()
                    .find(|server| server.address == address)
                    .cloned()
                    .unwrap_or_else(|| {
                        let encrypted = self
                            .encrypted
                            .read()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .clone();
                        Arc::new(Server::new(
                            address,
                            &encrypted,
                            &self.runtime,
                            &self.metrics,
                        ))
                    })
            })
            .collect();
        *self
            .servers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = servers;
        self.preferred.store(0, Ordering::Relaxed);
        true
    }

    /// Asks the upstreams one question.
    ///
    /// SERVFAIL, REFUSED and other error RCODEs move on to the next server
    /// while attempts remain; the last such reply is returned if no server
    /// gives a better one. Network errors and timeouts move on too.
    pub(crate) async fn forward(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        let mut last_reply: Option<Answer> = None;
        let timeout = self.timeout();
        let attempts = self.attempts.load(Ordering::Relaxed);
        let mut last_error = UpstreamError::Timeout { attempts, timeout };
        let servers = self.snapshot();
        if servers.is_empty() {
            return Err(UpstreamError::NoServers);
        }
        let start = self.preferred.load(Ordering::Relaxed);
        for attempt in 0..attempts as usize {
            let index = (start + attempt) % servers.len();
            let server = &servers[index];
            let mut message = self.request_message(name, record_type, class, flags);
            set_cookie(&mut message, server);
            let sent = Instant::now();
            let deadline = sent + timeout;
            self.metrics.upstream_query(&server.series);
            match tokio::time::timeout_at(deadline, self.exchange(server, message, deadline)).await
            {
                Ok(Err(hickory_net::NetError::Timeout)) | Err(_) => {
                    self.metrics.upstream_error(server.address, "timeout");
                    tracing::debug!(server = %server.address, %name, "upstream timeout");
                }
                Ok(Ok(message)) => {
                    self.metrics
                        .upstream_latency(&server.series, sent.elapsed());
                    if let Some((code, text)) = validation_failure(&message) {
                        // RFC 6147 §5.5: the upstream validated and found the
                        // data bogus; no other server's answer, and no
                        // synthesis, may stand in for it.
                        self.metrics.upstream_error(server.address, "servfail");
                        return Err(UpstreamError::Bogus(format!(
                            "{name} {record_type}: upstream {} answered SERVFAIL with Extended DNS Error {code}{}",
                            server.address,
                            if text.is_empty() {
                                String::new()
                            } else {
                                format!(" ({text})")
                            }
                        )));
                    }
                    let answer = Answer::from_message(message);
                    if is_server_failure(answer.response_code) {
                        let kind = match answer.response_code {
                            ResponseCode::ServFail => "servfail",
                            ResponseCode::Refused => "refused",
                            _ => "other",
                        };
                        self.metrics.upstream_error(server.address, kind);
                        tracing::debug!(server = %server.address, rcode = %answer.response_code, %name, "upstream failure reply; trying next");
                        last_reply = Some(answer);
                        continue;
                    }
                    return Ok(answer);
                }
                Ok(Err(error)) => {
                    self.metrics.upstream_error(server.address, "network");
                    tracing::debug!(server = %server.address, %error, %name, "upstream error");
                    last_error = UpstreamError::Network(format!("{}: {error}", server.address));
                }
            }
            // Prefer the next server from now on; a healthy one keeps its place.
            let _ = self.preferred.compare_exchange(
                start,
                (index + 1) % servers.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ); // losing the race to another query's update is fine
        }
        match last_reply {
            Some(reply) => Ok(reply),
            None => Err(last_error),
        }
    }

    /// The query sent upstream: random ID, RD, EDNS with our payload size, DO and CD as asked.
    fn request_message(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> DnsRequest {
        let mut query = Query::query(name.clone(), record_type);
        query.set_query_class(class);
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_payload_len = self.edns_udp_size;
        options.edns_set_dnssec_ok = flags.dnssec_ok;
        options.recursion_desired = true;
        // 0x20 (draft-vixie-dnsext-dns0x20): hickory randomizes the letter case
        // and rejects replies that do not echo it.
        options.case_randomization = self.case_randomization;
        let mut request = DnsRequest::from_query(query, options);
        request.metadata.checking_disabled = flags.checking_disabled;
        request
    }

    /// One exchange with one server: UDP, then TCP if the reply was truncated.
    async fn exchange(
        &self,
        server: &Server,
        request: DnsRequest,
        deadline: Instant,
    ) -> Result<Message, hickory_net::NetError> {
        if let Some(connection) = &server.encrypted {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let response = connection.exchange(request, remaining).await?;
            return Ok(response.into_message());
        }
        let mut response = self.exchange_udp(server, &request).await?;
        let mut request = request;
        if response.metadata.response_code == ResponseCode::BADCOOKIE {
            // RFC 7873 §5.3: the server sent a fresh cookie; resend once with it.
            tracing::debug!(server = %server.address, "BADCOOKIE; retrying with the new server cookie");
            set_cookie(&mut request, server);
            response = self.exchange_udp(server, &request).await?;
        }
        if !response.metadata.truncation {
            return Ok(response);
        }
        tracing::debug!(server = %server.address, "truncated reply; retrying over TCP");
        let remaining = deadline.saturating_duration_since(Instant::now());
        exchange_tcp(server.address, request, remaining, &self.runtime).await
    }
}

impl Upstream {
    /// One UDP exchange: a socket on a port the kernel picked at random
    /// (RFC 5452 §4), taken from this thread's [`udp_pool`] or made now,
    /// connected to the server so only its datagrams arrive;
    /// replies with another ID or question are ignored as spoofed
    /// ([`matching_reply`]), and with 0x20 the question must echo the letter case. The caller
    /// bounds the wait. (hickory-net's UDP client does the same checks, but
    /// through a background task, channels and three extra message parses per
    /// query; this is the hot path of every cache miss.)
    async fn exchange_udp(
        &self,
        upstream: &Server,
        request: &DnsRequest,
    ) -> Result<Message, hickory_net::NetError> {
        let server = upstream.address;
        let pooled = udp_pool::take_connected(server).await?;
        let socket = pooled.socket();
        let bytes = request.to_vec()?;
        socket.send(&bytes).await?;
        let mut buffer = vec![0u8; usize::from(self.edns_udp_size.max(512))];
        loop {
            let length = socket.recv(&mut buffer).await?;
            let response = match matching_reply(request, &buffer[..length], self.case_randomization)
            {
                Ok(response) => response,
                Err(why) => {
                    tracing::debug!(%server, why, "ignoring a datagram");
                    continue;
                }
            };
            if !upstream
                .cookie
                .accept_reply(cookie_of(&response).as_deref())
            {
                tracing::debug!(%server, "ignoring a reply with another client cookie (RFC 7873 §5.3)");
                continue;
            }
            udp_pool::give_back(udp_pool::PoolKey::ConnectedTo(server), pooled);
            return Ok(response); // decoded once; a DnsResponse would encode it again
        }
    }
}

/// Puts our COOKIE option for `server` into an upstream query (replacing one there).
fn set_cookie(request: &mut DnsRequest, server: &Server) {
    if let Some(edns) = request.edns.as_mut() {
        let options = edns.options_mut();
        options.remove(EdnsCode::from(COOKIE_OPTION_CODE));
        options.insert(EdnsOption::Unknown(
            COOKIE_OPTION_CODE,
            server.cookie.option_data(),
        ));
    }
}

/// The data of the first COOKIE option of a message.
fn cookie_of(message: &Message) -> Option<Vec<u8>> {
    let option = message
        .edns
        .as_ref()?
        .options()
        .get(EdnsCode::from(COOKIE_OPTION_CODE))?;
    // An option hickory cannot turn back into bytes counts as malformed.
    Some(Vec::<u8>::try_from(option).unwrap_or_default())
}

/// `received` as the reply to `request`, or why it is not one (RFC 5452
/// §9.1): another ID, undecodable, not a response to a query, another
/// question, or (with 0x20) the question's letter case not echoed. The
/// question's letter case is put back in the reply.
pub(crate) fn matching_reply(
    request: &DnsRequest,
    received: &[u8],
    case_randomization: bool,
) -> Result<Message, &'static str> {
    if received.get(..2) != Some(&request.metadata.id.to_be_bytes()[..]) {
        return Err("another ID");
    }
    let mut reply = Message::from_vec(received).map_err(|_| "undecodable")?;
    let same_question = reply.queries.len() == request.queries.len()
        && reply
            .queries
            .iter()
            .zip(&request.queries)
            .all(|(got, sent)| {
                got == sent && (!case_randomization || got.name().eq_case(sent.name()))
            });
    if !same_question
        || reply.metadata.message_type != MessageType::Response
        || reply.metadata.op_code != OpCode::Query
    {
        return Err("a reply to another question");
    }
    if let Some(original) = request.original_query() {
        restore_case(&mut reply, original);
    }
    Ok(reply)
}

/// One exchange on a new TCP connection to `server` (after a truncated UDP
/// reply), given up after `timeout`; with 0x20 the question's letter case is
/// put back in the reply, as [`matching_reply`] does over UDP. The
/// connection's background task runs in `runtime`'s task set, which must
/// outlive the exchange.
pub(crate) async fn exchange_tcp(
    server: SocketAddr,
    request: DnsRequest,
    timeout: Duration,
    runtime: &TokioRuntimeProvider,
) -> Result<Message, hickory_net::NetError> {
    let original = request.original_query().cloned();
    let tcp = TcpClientStream::exchange(server, None, timeout, None, runtime.clone()).await?;
    let mut reply = tcp.send(request).first_answer().await?.into_message();
    if let Some(original) = original {
        restore_case(&mut reply, &original);
    }
    Ok(reply)
}

/// Puts the client's letter case back after 0x20: the question and every
/// owner name equal to it.
fn restore_case(response: &mut Message, original: &Query) {
    for query in &mut response.queries {
        *query = original.clone();
    }
    for record in response
        .answers
        .iter_mut()
        .chain(response.authorities.iter_mut())
        .chain(response.additionals.iter_mut())
    {
        if record.name == *original.name() {
            record.name = original.name().clone();
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The Extended DNS Error of an upstream SERVFAIL that reports a DNSSEC
/// validation failure (INFO-CODE 5–12), if the reply is one.
fn validation_failure(message: &Message) -> Option<(u16, String)> {
    if message.metadata.response_code != ResponseCode::ServFail {
        return None;
    }
    let edns = message.edns.as_ref()?;
    edns.options()
        .get_all(crate::answering::ede::ede_code())
        .into_iter()
        .filter_map(ExtendedError::parse)
        .find(|(code, _)| dns64::dnssec::is_validation_failure_code(*code))
}

/// RCODEs after which another server may do better.
fn is_server_failure(code: ResponseCode) -> bool {
    !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain)
}

#[async_trait::async_trait]
impl AnswerSource for Upstream {
    async fn query(
        &self,
        name: &Name,
        record_type: RecordType,
        class: DNSClass,
        flags: UpstreamFlags,
    ) -> Result<Answer, UpstreamError> {
        self.forward(name, record_type, class, flags).await
    }
}

impl Upstream {
    /// Asks one server `. NS` for the health prober; the outcome goes to
    /// the upstream health state (not to the query metrics).
    pub(crate) async fn probe(&self, server: SocketAddr) {
        let request = self.request_message(
            &Name::root(),
            RecordType::NS,
            DNSClass::IN,
            UpstreamFlags::default(),
        );
        let health = self.metrics.upstream_health();
        let known = self
            .servers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|known| known.address == server)
            .cloned();
        let Some(known) = known else {
            return; // no longer an upstream: nothing to report
        };
        // The same exchange as for queries: over DoT/DoH for an encrypted
        // server, with its DNS Cookie for a plain one.
        let deadline = Instant::now() + self.timeout();
        match tokio::time::timeout(self.timeout(), self.exchange(&known, request, deadline)).await {
            Ok(Ok(_)) => health.answered(server),
            Ok(Err(error)) => {
                tracing::debug!(%server, %error, "health probe failed");
                health.failed(server, "network");
            }
            Err(_) => health.failed(server, "timeout"),
        }
    }
}
