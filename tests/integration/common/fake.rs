//! Programmable fake upstream DNS server (hickory-proto only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use super::auth::bind_udp_tcp_same_port;
use super::seen::{SeenLog, SeenQuery, Transport};

/// What the fake upstream does with a query.
#[derive(Debug, Clone)]
pub enum FakeAction {
    /// Send this message (encoded with `Message::to_vec`).
    Reply(Message),
    /// Send nothing.
    Drop,
    /// Send these bytes as the DNS message (over TCP the 2-byte length prefix is added).
    Raw(Vec<u8>),
    /// `tokio::time::sleep(d)` then reply (simulates a slow server; other queries are not blocked).
    Delayed(Duration, Message),
    /// TCP: close the connection without answering. UDP: same as `Drop`.
    CloseTcp,
}

type Behaviour = dyn Fn(&Message, Transport) -> FakeAction + Send + Sync + 'static;

/// Programmable UDP+TCP DNS server on one loopback port. Stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    seen: SeenLog,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// All parseable queries received so far, in arrival order.
    pub fn seen(&self) -> Vec<SeenQuery> {
        self.seen.all()
    }

    /// Number of received queries for `name` (case-insensitive, trailing dot optional) and `qtype`.
    pub fn count(&self, name: &str, qtype: RecordType) -> usize {
        self.seen.count(name, qtype)
    }

    pub fn total(&self) -> usize {
        self.seen.all().len()
    }

    pub fn clear_seen(&self) {
        self.seen.clear();
    }

    /// Wait (event-driven, no polling) until at least `n` queries for `name`/`qtype` were
    /// received; panics after `TEST_TIMEOUT`.
    pub async fn wait_for_count(&self, name: &str, qtype: RecordType, n: usize) {
        self.seen.wait_for_count(name, qtype, n).await;
    }

    /// Wait until `cond(seen queries)` holds; panics after `TEST_TIMEOUT`.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&[SeenQuery]) -> bool) {
        self.seen.wait_until(what, cond).await;
    }

    /// Stop listening (the UDP socket and TCP listener are closed when this returns;
    /// already-accepted TCP connections are aborted asynchronously).
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start a fake upstream on `ip` (random port, same for UDP and TCP). `behaviour` is called
/// for every query that decodes with `Message::from_vec`; undecodable packets are ignored.
pub async fn start_fake_upstream(
    ip: IpAddr,
    behaviour: impl Fn(&Message, Transport) -> FakeAction + Send + Sync + 'static,
) -> FakeUpstream {
    let (udp, tcp) = bind_udp_tcp_same_port(ip).await;
    serve_fake(udp, tcp, behaviour)
}

/// [`start_fake_upstream`] on a given address and port (port 53 for a fake
/// name server that a recursor asks).
pub async fn start_fake_upstream_at(
    addr: SocketAddr,
    behaviour: impl Fn(&Message, Transport) -> FakeAction + Send + Sync + 'static,
) -> FakeUpstream {
    let udp = UdpSocket::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("binding UDP on {addr}: {e}"));
    let tcp = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("binding TCP on {addr}: {e}"));
    serve_fake(udp, tcp, behaviour)
}

fn serve_fake(
    udp: UdpSocket,
    tcp: TcpListener,
    behaviour: impl Fn(&Message, Transport) -> FakeAction + Send + Sync + 'static,
) -> FakeUpstream {
    let behaviour: Arc<Behaviour> = Arc::new(behaviour);
    let seen = SeenLog::default();
    let addr = udp.local_addr().unwrap();
    let udp = Arc::new(udp);

    let udp_task = tokio::spawn(udp_loop(udp, behaviour.clone(), seen.clone()));
    let tcp_task = tokio::spawn(tcp_loop(tcp, behaviour, seen.clone()));

    FakeUpstream {
        addr,
        seen,
        tasks: vec![udp_task, tcp_task],
    }
}

async fn udp_loop(sock: Arc<UdpSocket>, behaviour: Arc<Behaviour>, seen: SeenLog) {
    // Per-datagram tasks are owned by this JoinSet, so aborting the loop aborts them too.
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // e.g. ICMP port unreachable reported on Linux; keep serving.
                eprintln!("FakeUpstream: udp recv error: {e}");
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        let Ok(msg) = Message::from_vec(&buf[..len]) else {
            eprintln!("FakeUpstream: undecodable UDP packet from {src}");
            continue;
        };
        seen.push(SeenQuery::from_message(&msg, Transport::Udp, src));
        let action = behaviour(&msg, Transport::Udp);
        let sock = sock.clone();
        tasks.spawn(async move {
            let bytes = match action {
                FakeAction::Reply(m) => m.to_vec().expect("encode reply"),
                FakeAction::Raw(b) => b,
                FakeAction::Delayed(d, m) => {
                    tokio::time::sleep(d).await;
                    m.to_vec().expect("encode reply")
                }
                FakeAction::Drop | FakeAction::CloseTcp => return,
            };
            if let Err(e) = sock.send_to(&bytes, src).await {
                eprintln!("FakeUpstream: udp send to {src} failed: {e}");
            }
        });
    }
}

async fn tcp_loop(listener: TcpListener, behaviour: Arc<Behaviour>, seen: SeenLog) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("FakeUpstream: tcp accept error: {e}");
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(tcp_conn(stream, src, behaviour.clone(), seen.clone()));
    }
}

async fn tcp_conn(stream: TcpStream, src: SocketAddr, behaviour: Arc<Behaviour>, seen: SeenLog) {
    let (mut rd, wr) = stream.into_split();
    let writer: Arc<Mutex<Option<OwnedWriteHalf>>> = Arc::new(Mutex::new(Some(wr)));
    let close = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let mut len = [0u8; 2];
        let read = async {
            rd.read_exact(&mut len).await?;
            let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
            rd.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        };
        let body = tokio::select! {
            r = read => match r {
                Ok(b) => b,
                Err(_) => break, // EOF or reset
            },
            _ = close.notified() => break,
        };
        while tasks.try_join_next().is_some() {}
        let Ok(msg) = Message::from_vec(&body) else {
            eprintln!("FakeUpstream: undecodable TCP message from {src}");
            continue;
        };
        seen.push(SeenQuery::from_message(&msg, Transport::Tcp, src));
        let action = behaviour(&msg, Transport::Tcp);
        let writer = writer.clone();
        let close = close.clone();
        tasks.spawn(async move {
            let bytes = match action {
                FakeAction::Reply(m) => m.to_vec().expect("encode reply"),
                FakeAction::Raw(b) => b,
                FakeAction::Delayed(d, m) => {
                    tokio::time::sleep(d).await;
                    m.to_vec().expect("encode reply")
                }
                FakeAction::Drop => return,
                FakeAction::CloseTcp => {
                    if let Some(mut w) = writer.lock().await.take() {
                        let _ = w.shutdown().await;
                    }
                    close.notify_one();
                    return;
                }
            };
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            if let Some(w) = writer.lock().await.as_mut() {
                let _ = w.write_all(&framed).await;
            }
        });
    }
    // Let already-scheduled replies (e.g. Delayed) finish unless the connection was closed.
    drop(rd);
    while tasks.join_next().await.is_some() {}
}

// ---------------------------------------------------------------------------------------------
// Response-building helpers
// ---------------------------------------------------------------------------------------------

/// Response skeleton for `request`: same id, opcode and questions, RD echoed, QR=1, RA=1,
/// NOERROR, no records, no EDNS.
pub fn reply_to(request: &Message) -> Message {
    let mut m = Message::response(request.metadata.id, request.metadata.op_code);
    m.metadata.message_type = MessageType::Response;
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.checking_disabled = request.metadata.checking_disabled;
    m.add_queries(request.queries.iter().cloned());
    m
}

/// `reply_to` with the given response code.
pub fn reply_rcode(request: &Message, rcode: ResponseCode) -> Message {
    let mut m = reply_to(request);
    m.metadata.response_code = rcode;
    m
}

/// `reply_to` with the given answer records.
pub fn reply_with(request: &Message, answers: Vec<Record>) -> Message {
    let mut m = reply_to(request);
    m.add_answers(answers);
    m
}

fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap_or_else(|e| panic!("bad name {s:?}: {e}"));
    n.set_fqdn(true);
    n
}

pub fn rr_a(owner: &str, ttl: u32, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(ip)))
}

pub fn rr_aaaa(owner: &str, ttl: u32, ip: Ipv6Addr) -> Record {
    Record::from_rdata(name(owner), ttl, RData::AAAA(AAAA(ip)))
}

pub fn rr_cname(owner: &str, ttl: u32, target: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

/// A DNAME from `owner` to `target` (RFC 6672), as hickory reads one from
/// the wire: opaque data holding the target's uncompressed name.
pub fn rr_dname(owner: &str, ttl: u32, target: &str) -> Record {
    use hickory_proto::rr::rdata::NULL;
    use hickory_proto::serialize::binary::BinEncodable;
    let target = name(target).to_bytes().expect("a name encodes");
    Record::from_rdata(
        name(owner),
        ttl,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(target),
        },
    )
}

/// SOA for `zone` (`ns1.<zone>` / `hostmaster.<zone>`, serial 1, refresh 3600, retry 900,
/// expire 604800) with record TTL `ttl` and MINIMUM `minimum`.
pub fn rr_soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    let z = name(zone);
    let soa = SOA::new(
        name(&format!("ns1.{z}")),
        name(&format!("hostmaster.{z}")),
        1,
        3600,
        900,
        604800,
        minimum,
    );
    Record::from_rdata(z, ttl, RData::SOA(soa))
}

/// An RRSIG over `covered` at `owner`, signed (in appearance only: the bytes are not a
/// signature) by `signer`'s key 4711 with ECDSAP256SHA256. dns64d in forwarding mode does
/// not validate; what matters is that the record comes through intact.
pub fn rr_rrsig(owner: &str, ttl: u32, covered: RecordType, signer: &str) -> Record {
    use hickory_proto::dnssec::Algorithm;
    use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG, SigInput};
    let owner = name(owner);
    let input = SigInput {
        type_covered: covered,
        algorithm: Algorithm::ECDSAP256SHA256,
        num_labels: owner.num_labels(),
        original_ttl: ttl,
        sig_expiration: 2_200_000_000.into(),
        sig_inception: 1_600_000_000.into(),
        key_tag: 4711,
        signer_name: name(signer),
    };
    let rrsig = RRSIG::from_sig(input, vec![0xab; 64]);
    Record::from_rdata(owner, ttl, RData::DNSSEC(DNSSECRData::RRSIG(rrsig)))
}

/// An NSEC record at `owner` pointing at `next`, with the given types.
pub fn rr_nsec(owner: &str, ttl: u32, next: &str, types: &[RecordType]) -> Record {
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    let nsec = NSEC::new(name(next), types.iter().copied());
    Record::from_rdata(name(owner), ttl, RData::DNSSEC(DNSSECRData::NSEC(nsec)))
}
