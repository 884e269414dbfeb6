//! One question to one authoritative name server, for the project's own
//! iteration ([`super::iterative`]): UDP on a pooled socket
//! ([`crate::answering::udp_pool`]), then TCP if the reply was truncated.
//!
//! What RFC 5452 asks of a resolver holds: the socket's port was picked at
//! random by the kernel, the ID is random per query (hickory's
//! [`DnsRequest`]), and a datagram is taken as the reply only if it comes
//! from the address and port the query went to, with the query's ID and
//! question (and, with 0x20, the question's letter case). Anything else is
//! ignored and the wait goes on, within the caller's time limit. A socket
//! goes back to the pool only after an accepted reply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, Query, ResponseCode};

use crate::answering::udp_pool::{self, PoolKey, PooledSocket};
use crate::answering::upstream::{exchange_tcp, matching_reply};

/// How a question is put to an authoritative server.
#[derive(Clone, Copy)]
pub(super) struct QueryStyle {
    /// EDNS payload size (`server.edns_udp_size`).
    pub edns_udp_size: u16,
    /// Ask for DNSSEC records (the client set DO).
    pub dnssec_ok: bool,
    /// 0x20: random letter case, echoed back exactly.
    pub case_randomization: bool,
}

/// Why an exchange gave no reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExchangeError {
    /// No accepted reply within the time given.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The network refused (unreachable, reset, no route).
    #[error("{0}")]
    Network(String),
}

/// Asks `server` (port 53) `query`, waiting at most `timeout` for the UDP
/// reply and as long again for the TCP exchange after truncation. A TCP
/// connection's background task runs in `runtime`'s task set, which must
/// outlive the exchange (the iteration keeps one).
pub(super) async fn ask(
    server: IpAddr,
    query: Query,
    style: QueryStyle,
    timeout: Duration,
    runtime: &TokioRuntimeProvider,
) -> Result<Message, ExchangeError> {
    let request = request(query.clone(), style, true);
    let address = SocketAddr::new(server, 53);
    let mut reply = ask_udp(address, &request, style, timeout).await?;
    let mut request = request;
    if reply.metadata.response_code == ResponseCode::FormErr && reply.edns.is_none() {
        // A server that does not know EDNS (RFC 6891 §7): once more without.
        tracing::debug!(%server, "FORMERR without OPT; asking again without EDNS");
        request = self::request(query, style, false);
        reply = ask_udp(address, &request, style, timeout).await?;
    }
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    tracing::debug!(%server, "truncated reply; asking again over TCP");
    tokio::time::timeout(timeout, exchange_tcp(address, request, timeout, runtime))
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
        .map_err(|error| ExchangeError::Network(error.to_string()))
}

/// The query: no RD, a random ID, EDNS (with our payload size and DO as
/// the client asked) unless `edns` is off.
fn request(query: Query, style: QueryStyle, edns: bool) -> DnsRequest {
    let mut options = DnsRequestOptions::default();
    options.use_edns = edns;
    options.edns_payload_len = style.edns_udp_size;
    options.edns_set_dnssec_ok = edns && style.dnssec_ok;
    options.recursion_desired = false;
    options.case_randomization = style.case_randomization;
    DnsRequest::from_query(query, options)
}

/// The UDP exchange, given up after `timeout`.
async fn ask_udp(
    server: SocketAddr,
    request: &DnsRequest,
    style: QueryStyle,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    tokio::time::timeout(timeout, exchange_udp(server, request, style))
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

/// The UDP exchange: send, then read until a datagram passes the checks.
async fn exchange_udp(
    server: SocketAddr,
    request: &DnsRequest,
    style: QueryStyle,
) -> Result<Message, ExchangeError> {
    let network = |error: std::io::Error| ExchangeError::Network(error.to_string());
    let local = if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let key = PoolKey::BoundTo(local);
    let pooled = match udp_pool::take_idle(key) {
        Some(pooled) => pooled,
        None => PooledSocket::new(
            tokio::net::UdpSocket::bind(SocketAddr::new(local, 0))
                .await
                .map_err(network)?,
        ),
    };
    let socket = pooled.socket();
    let bytes = request
        .to_vec()
        .map_err(|error| ExchangeError::Network(error.to_string()))?;
    socket.send_to(&bytes, server).await.map_err(network)?;
    let mut buffer = vec![0u8; usize::from(style.edns_udp_size.max(512))];
    loop {
        let (length, from) = socket.recv_from(&mut buffer).await.map_err(network)?;
        if from != server {
            tracing::debug!(%server, %from, "ignoring a datagram from another address");
            continue;
        }
        match matching_reply(request, &buffer[..length], style.case_randomization) {
            Ok(reply) => {
                udp_pool::give_back(key, pooled);
                return Ok(reply);
            }
            Err(why) => tracing::debug!(%server, why, "ignoring a datagram"),
        }
    }
}
