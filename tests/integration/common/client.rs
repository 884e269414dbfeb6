//! DNS client and assertion helpers (hickory-proto only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::TEST_TIMEOUT;

/// EDNS payload size used when only `.do_bit()` is requested.
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

/// A query description; build with [`Q::new`] and the builder methods.
#[derive(Debug, Clone)]
pub struct Q {
    pub name: String,
    pub qtype: RecordType,
    /// Some(size) => OPT record with this UDP payload size.
    pub edns_payload: Option<u16>,
    /// DO bit (adds an OPT record with `DEFAULT_EDNS_PAYLOAD` if `edns_payload` is None).
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
    pub authentic_data: bool,
    /// Default true.
    pub recursion_desired: bool,
    /// Default IN.
    pub class: DNSClass,
}

impl Q {
    pub fn new(name: impl Into<String>, qtype: RecordType) -> Self {
        Self {
            name: name.into(),
            qtype,
            edns_payload: None,
            dnssec_ok: false,
            checking_disabled: false,
            authentic_data: false,
            recursion_desired: true,
            class: DNSClass::IN,
        }
    }
    pub fn edns(mut self, size: u16) -> Self {
        self.edns_payload = Some(size);
        self
    }
    pub fn do_bit(mut self) -> Self {
        self.dnssec_ok = true;
        self
    }
    pub fn cd(mut self) -> Self {
        self.checking_disabled = true;
        self
    }
    pub fn ad(mut self) -> Self {
        self.authentic_data = true;
        self
    }
    pub fn no_rd(mut self) -> Self {
        self.recursion_desired = false;
        self
    }
    pub fn class(mut self, c: DNSClass) -> Self {
        self.class = c;
        self
    }

    /// The query name as a hickory `Name` (case preserved, always fully qualified).
    pub fn qname(&self) -> Name {
        let mut n = Name::from_ascii(&self.name)
            .unwrap_or_else(|e| panic!("bad query name {:?}: {e}", self.name));
        n.set_fqdn(true);
        n
    }

    /// Build the query message with a random ID.
    pub fn to_message(&self) -> Message {
        let mut m = Message::new(rand::random::<u16>(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = self.recursion_desired;
        m.metadata.checking_disabled = self.checking_disabled;
        m.metadata.authentic_data = self.authentic_data;
        let mut q = Query::query(self.qname(), self.qtype);
        q.set_query_class(self.class);
        m.add_query(q);
        if self.edns_payload.is_some() || self.dnssec_ok {
            let mut edns = Edns::new();
            edns.set_max_payload(self.edns_payload.unwrap_or(DEFAULT_EDNS_PAYLOAD));
            edns.set_dnssec_ok(self.dnssec_ok);
            m.set_edns(edns);
        }
        m
    }
}

fn local_for(server: SocketAddr) -> SocketAddr {
    match server.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
    }
}

fn decode_from(bytes: &[u8], ctx: &str) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("{ctx}: undecodable response: {e}"))
}

/// Query over UDP; panics after `TEST_TIMEOUT` or if the response ID doesn't match.
pub async fn query_udp(server: SocketAddr, q: &Q) -> Message {
    exchange_udp(server, &q.to_message()).await
}

/// Query over TCP; panics after `TEST_TIMEOUT` or if the response ID doesn't match.
pub async fn query_tcp(server: SocketAddr, q: &Q) -> Message {
    exchange_tcp(server, &q.to_message()).await
}

/// Send an arbitrary message over UDP and return the (ID-checked) response.
pub async fn exchange_udp(server: SocketAddr, msg: &Message) -> Message {
    let bytes = msg.to_vec().expect("encode query");
    let ctx = format!("UDP query {:?} to {server}", msg.queries.first());
    let resp = send_udp_raw(server, &bytes, TEST_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("{ctx}: no response within {TEST_TIMEOUT:?}"));
    let resp = decode_from(&resp, &ctx);
    assert_eq!(
        resp.metadata.id, msg.metadata.id,
        "{ctx}: response ID mismatch"
    );
    resp
}

/// Send an arbitrary message over TCP and return the (ID-checked) response.
pub async fn exchange_tcp(server: SocketAddr, msg: &Message) -> Message {
    let ctx = format!("TCP query {:?} to {server}", msg.queries.first());
    let mut conn = TcpConn::connect(server).await;
    conn.send_msg(msg).await;
    let resp = conn
        .recv_msg()
        .await
        .unwrap_or_else(|| panic!("{ctx}: connection closed without a response"));
    assert_eq!(
        resp.metadata.id, msg.metadata.id,
        "{ctx}: response ID mismatch"
    );
    resp
}

/// Send `bytes` in one datagram from a fresh loopback socket; return the first datagram
/// received within `wait`, or None.
pub async fn send_udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(local_for(server))
        .await
        .expect("bind client UDP");
    sock.send_to(bytes, server).await.expect("UDP send");
    let mut buf = vec![0u8; 65535];
    loop {
        match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok((len, from))) => {
                if from == server {
                    return Some(buf[..len].to_vec());
                }
                // ignore stray datagrams from elsewhere
            }
            // e.g. ECONNREFUSED from an ICMP port unreachable: nothing will arrive.
            Ok(Err(_)) => return None,
        }
    }
}

/// Send `bytes` (2-byte length prefix added) on a fresh TCP connection; return the first
/// response's payload, or None if the server closes the connection first.
/// Panics if neither happens within `TEST_TIMEOUT`.
pub async fn send_tcp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpConn::connect(server).await;
    conn.send_raw(bytes).await;
    conn.recv_raw().await
}

/// A TCP connection to a DNS server, for pipelining / connection-reuse tests.
pub struct TcpConn {
    stream: TcpStream,
    server: SocketAddr,
}

impl TcpConn {
    pub async fn connect(server: SocketAddr) -> Self {
        let stream = tokio::time::timeout(TEST_TIMEOUT, TcpStream::connect(server))
            .await
            .unwrap_or_else(|_| panic!("TCP connect to {server} timed out"))
            .unwrap_or_else(|e| panic!("TCP connect to {server}: {e}"));
        Self { stream, server }
    }

    /// Connects from `source` (another loopback address, say 127.0.0.2, so
    /// the server sees another client) on a port the system picks.
    pub async fn connect_from(source: IpAddr, server: SocketAddr) -> Self {
        let socket = match source {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("TCP socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|e| panic!("bind {source}: {e}"));
        let stream = tokio::time::timeout(TEST_TIMEOUT, socket.connect(server))
            .await
            .unwrap_or_else(|_| panic!("TCP connect from {source} to {server} timed out"))
            .unwrap_or_else(|e| panic!("TCP connect from {source} to {server}: {e}"));
        Self { stream, server }
    }

    /// Write one length-prefixed DNS message payload.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(bytes);
        self.send_wire(&framed).await;
    }

    /// Write bytes verbatim (no length prefix added).
    pub async fn send_wire(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("TCP write to {}: {e}", self.server));
    }

    pub async fn send_msg(&mut self, msg: &Message) {
        self.send_raw(&msg.to_vec().expect("encode query")).await;
    }

    /// Read one length-prefixed message payload; None on EOF/reset.
    /// Panics after `TEST_TIMEOUT`.
    pub async fn recv_raw(&mut self) -> Option<Vec<u8>> {
        let server = self.server;
        let read = async {
            let mut len = [0u8; 2];
            self.stream.read_exact(&mut len).await.ok()?;
            let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(body)
        };
        tokio::time::timeout(TEST_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| panic!("TCP read from {server}: nothing within {TEST_TIMEOUT:?}"))
    }

    pub async fn recv_msg(&mut self) -> Option<Message> {
        let server = self.server;
        self.recv_raw()
            .await
            .map(|b| decode_from(&b, &format!("TCP response from {server}")))
    }

    /// Shuts the client's sending side (a TCP FIN): the server sees the
    /// end of the queries, answers those it has read, then closes.
    pub async fn finish(&mut self) {
        self.stream
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("TCP shutdown toward {}: {e}", self.server));
    }

    /// True if the server closed the connection (EOF/reset) within `TEST_TIMEOUT`;
    /// panics if data arrives instead.
    pub async fn expect_closed(&mut self) {
        let server = self.server;
        let mut buf = [0u8; 512];
        let r = tokio::time::timeout(TEST_TIMEOUT, self.stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("TCP {server}: connection not closed within {TEST_TIMEOUT:?}")
            });
        if let Ok(n) = r {
            assert_eq!(n, 0, "TCP {server}: expected close, got {n} bytes");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertion helpers
// ---------------------------------------------------------------------------------------------

/// (owner, ttl, address) of every AAAA record in the answer section, in order.
pub fn aaaa_answers(msg: &Message) -> Vec<(String, u32, Ipv6Addr)> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some((r.name.to_string(), r.ttl, a.0)),
            _ => None,
        })
        .collect()
}

/// (owner, ttl, address) of every A record in the answer section, in order.
pub fn a_answers(msg: &Message) -> Vec<(String, u32, Ipv4Addr)> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_string(), r.ttl, a.0)),
            _ => None,
        })
        .collect()
}

/// "owner ttl TYPE rdata" for one record, e.g. "v4only.dns64.test. 300 AAAA 64:ff9b::5db8:d822".
pub fn record_line(r: &Record) -> String {
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
}

/// `record_line` for every answer record, in order.
pub fn answer_summary(msg: &Message) -> Vec<String> {
    msg.answers.iter().map(record_line).collect()
}

/// `record_line` for every authority record, in order.
pub fn authority_summary(msg: &Message) -> Vec<String> {
    msg.authorities.iter().map(record_line).collect()
}

/// `record_line` for every additional record (OPT is not included), in order.
pub fn additional_summary(msg: &Message) -> Vec<String> {
    msg.additionals.iter().map(record_line).collect()
}

/// TTL of the first SOA record in the authority section.
pub fn soa_ttl(msg: &Message) -> Option<u32> {
    msg.authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.ttl)
}

/// Extended DNS Errors (RFC 8914, option code 15) in the response's OPT: (INFO-CODE, EXTRA-TEXT).
pub fn ede(m: &Message) -> Vec<(u16, String)> {
    let Some(edns) = &m.edns else {
        return Vec::new();
    };
    edns.options()
        .options
        .iter()
        .filter_map(|(_, option)| match option {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data) => {
                let (code, text) = data.split_first_chunk::<2>()?;
                Some((
                    u16::from_be_bytes(*code),
                    String::from_utf8_lossy(text).into_owned(),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Decodes a reply, failing the test with its bytes if it does not decode.
pub fn decode(bytes: &[u8]) -> Message {
    decode_from(bytes, &format!("reply {bytes:02x?}"))
}

/// The normal query still gets exactly the normal answer, over UDP and TCP
/// (after floods and malformed input).
pub async fn assert_still_answers(addr: SocketAddr) {
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    for m in [query_udp(addr, &q).await, query_tcp(addr, &q).await] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
        );
    }
}

/// GET `path` from an HTTP server; returns (status code, body).
pub async fn http_get(server: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect to the HTTP endpoint");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        TEST_TIMEOUT,
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response),
    )
    .await
    .expect("HTTP answer in time")
    .unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}
