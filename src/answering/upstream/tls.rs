//! Connections to DoT and DoH upstream servers, with hickory-net's
//! transports: a TLS stream with hickory's multiplexer (many queries in
//! flight on one connection, matched by ID; RFC 7858 §3.3) or an HTTP/2
//! connection (one stream per query). One connection per server is kept
//! and shared by every query; when it fails, the next query opens a new
//! one, and a query that finds its reused connection closed by the server
//! retries once on a fresh one. Timeouts, failover and metrics are
//! [`Upstream`](crate::answering::upstream::Upstream)'s, exactly as for UDP.
//!
//! Connections are opened on the runtime that built the upstream set (the
//! main one), so they outlive the query, and the listener thread, that
//! happened to open them.

use std::sync::Arc;
use std::time::Duration;

use hickory_net::NetError;
use hickory_net::h2::HttpsClientStream;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsResponse};
use rustls_pki_types::ServerName;

use crate::edge::certificate;
use crate::ops::config::upstream_url::{EncryptedTransport, EncryptedUpstream};

/// Queries one DoT connection carries at once (hickory's default is 32).
const MAX_PIPELINED: usize = 128;

/// The TLS client settings of the encrypted upstreams: one configuration
/// per ALPN, verifying against the same roots.
#[derive(Clone)]
pub(crate) struct TlsClients {
    dot: Arc<rustls::ClientConfig>,
    h2: Arc<rustls::ClientConfig>,
}

impl TlsClients {
    /// Client settings verifying against `roots`.
    pub(crate) fn new(roots: rustls::RootCertStore) -> Result<Self, rustls::Error> {
        let roots = Arc::new(roots);
        Ok(Self {
            dot: Arc::new(certificate::client_config(Arc::clone(&roots), b"dot")?),
            h2: Arc::new(certificate::client_config(roots, b"h2")?),
        })
    }
}

/// The shared connection to one encrypted upstream server.
pub(crate) struct EncryptedConnection {
    upstream: EncryptedUpstream,
    clients: TlsClients,
    provider: TokioRuntimeProvider,
    runtime: tokio::runtime::Handle,
    exchange: tokio::sync::Mutex<Option<DnsExchange<TokioRuntimeProvider>>>,
}

impl EncryptedConnection {
    /// A connection to `upstream`, opened when first needed; must be made
    /// inside the tokio runtime that should own the connections.
    pub(crate) fn new(
        upstream: EncryptedUpstream,
        clients: TlsClients,
        provider: TokioRuntimeProvider,
    ) -> Self {
        Self {
            upstream,
            clients,
            provider,
            runtime: tokio::runtime::Handle::current(),
            exchange: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends one query and waits for its answer, opening a connection when
    /// there is none (each wait bounded by `timeout`; the caller bounds the
    /// whole).
    pub(crate) async fn exchange(
        &self,
        request: DnsRequest,
        timeout: Duration,
    ) -> Result<DnsResponse, NetError> {
        loop {
            let (exchange, fresh) = self.connection(timeout).await?;
            match exchange.send(request.clone()).first_answer().await {
                Ok(response) => return Ok(response),
                // A slow answer says nothing about the connection.
                Err(NetError::Timeout) => return Err(NetError::Timeout),
                Err(error) => {
                    *self.exchange.lock().await = None;
                    if fresh {
                        return Err(error);
                    }
                    tracing::debug!(upstream = %self.upstream, %error, "reused upstream connection failed; opening a new one");
                }
            }
        }
    }

    /// The open connection, or a new one (then `true`).
    async fn connection(
        &self,
        timeout: Duration,
    ) -> Result<(DnsExchange<TokioRuntimeProvider>, bool), NetError> {
        let mut slot = self.exchange.lock().await;
        if let Some(exchange) = slot.as_ref() {
            return Ok((exchange.clone(), false));
        }
        let upstream = self.upstream.clone();
        let provider = self.provider.clone();
        let clients = self.clients.clone();
        let opened = self
            .runtime
            .spawn(async move { open(&upstream, &clients, provider, timeout).await })
            .await
            .map_err(|error| NetError::from(format!("connection task failed: {error}")))??;
        tracing::debug!(upstream = %self.upstream, "upstream connection opened");
        *slot = Some(opened.clone());
        Ok((opened, true))
    }
}

/// Opens a DoT or DoH connection to `upstream`.
async fn open(
    upstream: &EncryptedUpstream,
    clients: &TlsClients,
    provider: TokioRuntimeProvider,
    timeout: Duration,
) -> Result<DnsExchange<TokioRuntimeProvider>, NetError> {
    match &upstream.transport {
        EncryptedTransport::Tls => {
            let name = ServerName::try_from(upstream.name.clone()).map_err(|error| {
                NetError::from(format!("bad server name {:?}: {error}", upstream.name))
            })?;
            hickory_net::tls::tls_exchange(
                upstream.address,
                name,
                (*clients.dot).clone(),
                timeout,
                Some(MAX_PIPELINED),
                provider,
            )
            .await
        }
        EncryptedTransport::Https { path } => {
            let mut builder = HttpsClientStream::builder(Arc::clone(&clients.h2), provider);
            builder.request_timeout(timeout);
            builder
                .exchange(
                    upstream.address,
                    Arc::from(upstream.name.as_str()),
                    Arc::from(path.as_str()),
                )
                .await
        }
    }
}
