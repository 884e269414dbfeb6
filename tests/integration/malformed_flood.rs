//! Hostile input over the wire: thousands of malformed packets over UDP and
//! TCP (random bytes, truncated headers, bad label lengths, compression
//! loops, QDCOUNT≠1, responses instead of queries, broken EDNS), TCP length
//! prefixes that lie, and slow-loris TCP clients; afterwards a normal query
//! must still get exactly the normal answer.
//!
//! The rule checked: a packet whose 12-octet header parses as a query
//! (QR=0) gets exactly one reply with its ID (FORMERR when the rest does not
//! parse); a shorter packet or a response (QR=1) gets none.
//!
//! Nothing waits on the clock: UDP is sent in windows, and each window waits
//! for the replies it must get (packets are not lost to full socket
//! buffers); silence is shown by the reply to a later packet arriving first,
//! and by nothing more having arrived when the test ends (exactly so over
//! TCP: once the client has shut its side, the server answers every message
//! it has read, in any order (RFC 7766 §6.2.1.1), and then closes). The packets come from a
//! fixed-seed xorshift generator, so every run sends the same ones.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The TCP idle timeout the slow-loris checks rely on (the default is 10 s).
const CONFIG: &str = "[server]\ntcp_idle_timeout_ms = 300\n";

/// Random packets sent over UDP, and over one TCP connection.
const UDP_PACKETS: usize = 3000;
const TCP_PACKETS: usize = 400;
/// UDP packets in flight at once (well below what a socket buffer holds).
const WINDOW: usize = 50;
/// Failure guard for a window whose replies include upstream round trips.
const WINDOW_GUARD: Duration = Duration::from_secs(15);

/// Flags word with RD set (QR=0, opcode QUERY).
const RD: u16 = 0x0100;

async fn setup() -> (AuthUpstream, Dns64d) {
    let auth = start_auth_upstream(LO).await;
    let dns64d = start_dns64d(&[auth.addr()], "", CONFIG).await;
    (auth, dns64d)
}

// ------------------------------------------------------------------ packets

/// xorshift64: a tiny deterministic generator, so every run sends the same packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A 12-octet DNS header.
fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// An uncompressed wire name.
fn wire_name(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

/// A plain query: header, one question (IN), no records.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut bytes = header(id, RD, 1, 0, 0, 0);
    bytes.extend(wire_name(name));
    bytes.extend_from_slice(&qtype.to_be_bytes());
    bytes.extend_from_slice(&1u16.to_be_bytes());
    bytes
}

/// An OPT record: payload size, extended RCODE, version, flags, then raw options.
fn opt(payload: u16, version: u8, flags: u16, options: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&41u16.to_be_bytes());
    bytes.extend_from_slice(&payload.to_be_bytes());
    bytes.extend_from_slice(&[0, version]);
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&(options.len() as u16).to_be_bytes());
    bytes.extend_from_slice(options);
    bytes
}

const NAMES: [&str; 8] = [
    "v4only.dns64.test",
    "dual.dns64.test",
    "cname-chain.dns64.test",
    "loop-a.dns64.test",
    "nowhere.dns64.test",
    "ipv4only.arpa",
    "34.216.184.93.in-addr.arpa",
    "x.other.test",
];
const TYPES: [u16; 6] = [1, 28, 12, 5, 16, 255];

/// The offsets of the label length octets of the question name at 12.
fn label_offsets(packet: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut position = 12;
    while let Some(&length) = packet.get(position) {
        if length == 0 {
            break;
        }
        offsets.push(position);
        position += usize::from(length) + 1;
    }
    offsets
}

/// One malformed (or odd) packet; its ID, where it has one, is `id`.
fn malformed(rng: &mut Rng, id: u16) -> Vec<u8> {
    let name = *rng.pick(&NAMES);
    let qtype = *rng.pick(&TYPES);
    let mut packet = match rng.below(10) {
        // random bytes
        0 => {
            let length = rng.below(600);
            rng.bytes(length)
        }
        // truncated header
        1 => {
            let length = rng.below(12);
            rng.bytes(length)
        }
        // bad label length: past the end, or label type 01/10 (0x40-0xbf)
        2 => {
            let mut packet = query(id, name, qtype);
            let offsets = label_offsets(&packet);
            let at = *rng.pick(&offsets);
            packet[at] = if rng.below(2) == 0 {
                0x40 + rng.below(0x80) as u8
            } else {
                (packet.len() - at) as u8 + rng.below(20) as u8
            };
            packet
        }
        // compression pointers: to itself, ping-pong, past the end, into the header
        3 => {
            let mut packet = header(id, RD, 1, 0, 0, 0);
            match rng.below(4) {
                0 => packet.extend_from_slice(&[0xc0, 12]),
                1 => packet.extend_from_slice(&[1, b'a', 0xc0, 17, 0, 0xc0, 12]),
                2 => packet.extend_from_slice(&[0xc0 | rng.below(64) as u8, 0xff]),
                _ => packet.extend_from_slice(&[0xc0, rng.below(12) as u8]),
            }
            packet.extend_from_slice(&[0, 28, 0, 1]);
            packet
        }
        // QDCOUNT other than one
        4 => {
            let mut packet = query(id, name, qtype);
            let count = *rng.pick(&[0u16, 2, 3, 0xffff]);
            packet[4..6].copy_from_slice(&count.to_be_bytes());
            if count == 0 && rng.below(2) == 0 {
                packet.truncate(12);
            }
            packet
        }
        // a response instead of a query
        5 => {
            if rng.below(2) == 0 {
                let mut packet = query(id, name, qtype);
                packet[2] |= 0x80;
                packet
            } else {
                let length = 12 + rng.below(200);
                let mut packet = rng.bytes(length);
                packet[2] |= 0x80;
                packet
            }
        }
        // a valid question followed by garbage, or record counts without records
        6 => {
            let mut packet = query(id, name, qtype);
            let counts = [
                rng.below(3) as u16,
                rng.below(3) as u16,
                rng.below(3) as u16,
            ];
            packet[6..8].copy_from_slice(&counts[0].to_be_bytes());
            packet[8..10].copy_from_slice(&counts[1].to_be_bytes());
            packet[10..12].copy_from_slice(&counts[2].to_be_bytes());
            let length = rng.below(40);
            packet.extend(rng.bytes(length));
            packet
        }
        // a real query with a few bits flipped
        7 => {
            let mut packet = query(id, name, qtype);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(packet.len());
                packet[at] ^= 1 << rng.below(8);
            }
            packet
        }
        // broken EDNS: two OPTs, option lengths that lie, odd versions
        8 => {
            let mut packet = query(id, name, qtype);
            let lying_option = [0, 10, 0, 200, 1, 2];
            let (count, records) = match rng.below(3) {
                0 => (
                    2u16,
                    [opt(1232, 0, 0, &[]), opt(4096, 0, 0x8000, &[])].concat(),
                ),
                1 => (1, opt(rng.next() as u16, 0, 0, &lying_option)),
                _ => (
                    1,
                    opt(rng.next() as u16, rng.byte(), rng.next() as u16, &[]),
                ),
            };
            packet[10..12].copy_from_slice(&count.to_be_bytes());
            packet.extend(records);
            packet
        }
        // a query header over a random body
        _ => {
            let flags = (rng.next() as u16) & !0x8000;
            let counts = [
                rng.below(3) as u16,
                rng.below(3) as u16,
                rng.below(3) as u16,
                rng.below(3) as u16,
            ];
            let mut packet = header(id, flags, counts[0], counts[1], counts[2], counts[3]);
            let length = rng.below(300);
            packet.extend(rng.bytes(length));
            packet
        }
    };
    if packet.len() >= 2 {
        packet[..2].copy_from_slice(&id.to_be_bytes());
    }
    packet
}

/// The rule: a reply exactly when the header parses and says QR=0.
fn expects_reply(packet: &[u8]) -> bool {
    packet.len() >= 12 && packet[2] & 0x80 == 0
}

// ------------------------------------------------------------------ checks

/// Receives one datagram from `server` on `socket` (panics after TEST_TIMEOUT).
async fn recv_from_server(socket: &UdpSocket, server: SocketAddr) -> Vec<u8> {
    let mut buffer = vec![0u8; 65535];
    loop {
        let (length, from) = tokio::time::timeout(TEST_TIMEOUT, socket.recv_from(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no UDP reply within {TEST_TIMEOUT:?}"))
            .expect("UDP receive");
        if from == server {
            return buffer[..length].to_vec();
        }
    }
}

/// Asserts a FORMERR reply with `id` and no records.
fn assert_formerr(reply: &[u8], id: u16, what: &str) {
    let m = decode(reply);
    assert_eq!(m.metadata.id, id, "{what}: ID");
    assert_eq!(m.metadata.message_type, MessageType::Response, "{what}: QR");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::FormErr,
        "{what}: RCODE"
    );
    assert!(
        m.answers.is_empty() && m.authorities.is_empty(),
        "{what}: records in a FORMERR"
    );
}

/// (what, ID, packet): a header-parsing query that must get FORMERR.
type FormerrCase = (&'static str, u16, Vec<u8>);
/// (what, packet): a packet that must get no reply.
type SilentCase = (&'static str, Vec<u8>);

/// Header-parsing malformed queries (FORMERR) and packets to ignore, each
/// with a name; IDs are unique.
fn exact_cases() -> (Vec<FormerrCase>, Vec<SilentCase>) {
    let with = |id: u16, flags: u16, qd: u16, an: u16, tail: &[u8]| {
        let mut b = header(id, flags, qd, an, 0, 0);
        b.extend_from_slice(tail);
        b
    };
    let formerr = vec![
        (
            "label past the end",
            0xf001,
            with(0xf001, RD, 1, 0, &[5, b'a', b'b']),
        ),
        (
            "label type 0x40",
            0xf002,
            with(0xf002, RD, 1, 0, &[0x40, b'a', 0, 0, 1, 0, 1]),
        ),
        (
            "label type 0x80",
            0xf003,
            with(0xf003, RD, 1, 0, &[0x81, b'a', 0, 0, 1, 0, 1]),
        ),
        (
            "pointer to itself",
            0xf004,
            with(0xf004, RD, 1, 0, &[0xc0, 0x0c, 0, 28, 0, 1]),
        ),
        (
            "pointer ping-pong",
            0xf005,
            with(
                0xf005,
                RD,
                1,
                0,
                &[1, b'a', 0xc0, 17, 0, 0xc0, 12, 0, 28, 0, 1],
            ),
        ),
        (
            "pointer past the end",
            0xf006,
            with(0xf006, RD, 1, 0, &[0xc0, 0xff, 0, 28, 0, 1]),
        ),
        (
            "question cut short",
            0xf007,
            with(0xf007, RD, 1, 0, &[1, b'a', 0, 0]),
        ),
        (
            "header only, QDCOUNT=1",
            0xf008,
            with(0xf008, RD, 1, 0, &[]),
        ),
        ("QDCOUNT=0", 0xf009, with(0xf009, RD, 0, 0, &[])),
        ("QDCOUNT=2", 0xf00a, {
            let mut b = query(0xf00a, "v4only.dns64.test", 28);
            b[4..6].copy_from_slice(&2u16.to_be_bytes());
            b.extend(wire_name("dual.dns64.test"));
            b.extend_from_slice(&[0, 28, 0, 1]);
            b
        }),
        ("QDCOUNT=65535", 0xf00b, {
            let mut b = query(0xf00b, "v4only.dns64.test", 28);
            b[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
            b
        }),
        (
            "ANCOUNT=1 without an answer",
            0xf00c,
            with(0xf00c, RD, 1, 1, &[1, b'a', 0, 0, 28, 0, 1]),
        ),
        ("two OPT records", 0xf00d, {
            let mut b = query(0xf00d, "v4only.dns64.test", 28);
            b[10..12].copy_from_slice(&2u16.to_be_bytes());
            b.extend(opt(1232, 0, 0, &[]));
            b.extend(opt(1232, 0, 0, &[]));
            b
        }),
    ];
    let silent = vec![
        ("empty", Vec::new()),
        ("1 octet", vec![0xf1]),
        ("2 octets", vec![0xf1, 0x01]),
        ("11 octets", with(0xf102, RD, 1, 0, &[])[..11].to_vec()),
        ("QR=1 header", header(0xf103, 0x8180, 0, 0, 0, 0)),
        ("QR=1 response", {
            let mut b = query(0xf104, "v4only.dns64.test", 1);
            b[2] |= 0x80;
            b
        }),
        ("QR=1 with garbage", {
            let mut b = header(0xf105, 0x8000, 0xffff, 0xffff, 0, 0);
            b.extend_from_slice(&[0xc0, 0x0c, 0x3f]);
            b
        }),
    ];
    (formerr, silent)
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn udp_malformed_flood_then_normal_answer() {
    let (_auth, d) = setup().await;
    let (formerr, silent) = exact_cases();

    // Exact cases, one socket, one at a time. Each silent packet is followed
    // by a FORMERR case whose reply must be the next datagram.
    let exact = UdpSocket::bind((LO, 0)).await.unwrap();
    for (index, (what, id, bytes)) in formerr.iter().enumerate() {
        if let Some((_, silent_bytes)) = silent.get(index) {
            exact.send_to(silent_bytes, d.addr).await.unwrap();
        }
        exact.send_to(bytes, d.addr).await.unwrap();
        let reply = recv_from_server(&exact, d.addr).await;
        let note = silent
            .get(index)
            .map(|(quiet, _)| format!("{what} (after silent {quiet})"))
            .unwrap_or_else(|| what.to_string());
        assert_formerr(&reply, *id, &note);
    }
    assert!(silent.len() <= formerr.len());

    // The bulk: windows of packets; every reply must carry the ID of a packet
    // that had a query header, once; each window waits for all it is owed.
    let mut rng = Rng(0x6473_3634_6466_757a);
    let packets: Vec<Vec<u8>> = (0..UDP_PACKETS)
        .map(|index| malformed(&mut rng, index as u16))
        .collect();
    let owed_total = packets.iter().filter(|p| expects_reply(p)).count();
    let bulk = UdpSocket::bind((LO, 0)).await.unwrap();
    let mut replies: HashMap<u16, usize> = HashMap::new();
    let mut buffer = vec![0u8; 65535];
    let mut received = 0;
    for (window, chunk) in packets.chunks(WINDOW).enumerate() {
        for packet in chunk {
            bulk.send_to(packet, d.addr).await.unwrap();
        }
        let owed_so_far = packets[..(window * WINDOW + chunk.len())]
            .iter()
            .filter(|p| expects_reply(p))
            .count();
        while received < owed_so_far {
            let (length, from) =
                tokio::time::timeout(WINDOW_GUARD, bulk.recv_from(&mut buffer))
                    .await
                    .unwrap_or_else(|_| {
                        let missing: Vec<usize> = (0..window * WINDOW + chunk.len())
                            .filter(|&i| {
                                expects_reply(&packets[i]) && !replies.contains_key(&(i as u16))
                            })
                            .collect();
                        panic!(
                            "window {window}: no reply to packets {missing:?} within {WINDOW_GUARD:?}: first {:02x?}",
                            packets[missing[0]]
                        )
                    })
                    .unwrap();
            assert_eq!(from, d.addr);
            check_bulk_reply(&buffer[..length], &packets, &mut replies);
            received += 1;
        }
    }
    assert_eq!(received, owed_total);
    eprintln!(
        "UDP flood: {} packets, {owed_total} with a query header, all answered once; {} ignored",
        packets.len(),
        packets.len() - owed_total
    );

    assert_still_answers(d.addr).await;

    // Late replies to packets that must be ignored would have arrived by now.
    for (socket, what) in [(&exact, "exact cases"), (&bulk, "bulk")] {
        match socket.try_recv_from(&mut buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((length, _)) => panic!(
                "{what}: unexpected late reply {:02x?}",
                &buffer[..length.min(64)]
            ),
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// One reply of the bulk: decodable, a response, the ID of a packet with a
/// query header that was not answered before.
fn check_bulk_reply(reply: &[u8], packets: &[Vec<u8>], replies: &mut HashMap<u16, usize>) {
    let m = decode(reply);
    let id = m.metadata.id;
    let packet = packets
        .get(usize::from(id))
        .unwrap_or_else(|| panic!("reply with an ID no packet had: {id}"));
    assert!(
        expects_reply(packet),
        "reply to packet {id}, which must be ignored: {packet:02x?}"
    );
    assert_eq!(m.metadata.message_type, MessageType::Response);
    let count = replies.entry(id).or_default();
    *count += 1;
    assert_eq!(*count, 1, "packet {id} answered twice: {packet:02x?}");
}

#[tokio::test]
async fn tcp_malformed_messages_then_normal_answer() {
    let (_auth, d) = setup().await;
    let (formerr, silent) = exact_cases();

    // Exact: each FORMERR case is answered before the next pair is sent, so
    // a reply to the silent message sent before it would be read here (or
    // in the next round, or at the end) instead.
    let mut conn = TcpConn::connect(d.addr).await;
    for (index, (what, id, bytes)) in formerr.iter().enumerate() {
        if let Some((_, silent_bytes)) = silent.get(index) {
            conn.send_raw(silent_bytes).await;
        }
        conn.send_raw(bytes).await;
        let reply = conn
            .recv_raw()
            .await
            .unwrap_or_else(|| panic!("{what}: connection closed"));
        assert_formerr(&reply, *id, what);
    }
    conn.finish().await;
    conn.expect_closed().await;

    // The bulk on one connection, then a normal query: every message with a
    // query header is answered once, the others not at all.
    let mut rng = Rng(0x7463_7066_6c6f_6f64);
    let packets: Vec<Vec<u8>> = (0..TCP_PACKETS)
        .map(|index| malformed(&mut rng, index as u16))
        .collect();
    let owed = packets.iter().filter(|p| expects_reply(p)).count();
    let mut bulk = TcpConn::connect(d.addr).await;
    let sentinel_id = 0xfeed;
    let mut sentinel = Q::new("v4only.dns64.test", RecordType::AAAA).to_message();
    sentinel.metadata.id = sentinel_id;
    // Replies are small (FORMERR mostly): the socket buffers hold them all
    // while the messages are written.
    for packet in &packets {
        bulk.send_raw(packet).await;
    }
    bulk.send_msg(&sentinel).await;
    bulk.finish().await;
    let mut replies: HashMap<u16, usize> = HashMap::new();
    let mut sentinel_reply = None;
    for _ in 0..=owed {
        let reply = bulk
            .recv_raw()
            .await
            .expect("connection closed during the bulk");
        if decode(&reply).metadata.id == sentinel_id {
            assert!(
                sentinel_reply.replace(reply).is_none(),
                "sentinel answered twice"
            );
        } else {
            check_bulk_reply(&reply, &packets, &mut replies);
        }
    }
    // Everything read is answered before the server closes: nothing more.
    bulk.expect_closed().await;
    let last = decode(&sentinel_reply.expect("sentinel reply"));
    assert_eq!(
        answer_summary(&last),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    eprintln!(
        "TCP flood: {} messages, {owed} answered once",
        packets.len()
    );

    assert_still_answers(d.addr).await;
}

#[tokio::test]
async fn tcp_lying_length_prefixes_and_slow_loris_are_closed() {
    let (_auth, d) = setup().await;
    let normal = query(0x0a0a, "v4only.dns64.test", 28);

    // Undersized prefixes that still frame whole messages: 0 and 11 octets are
    // ignored, 12 (a header) gets FORMERR; the connection goes on serving.
    let mut conn = TcpConn::connect(d.addr).await;
    conn.send_raw(&[]).await;
    conn.send_raw(&header(0x0b0b, RD, 1, 0, 0, 0)[..11]).await;
    conn.send_raw(&header(0x0c0c, RD, 1, 0, 0, 0)).await;
    let reply = conn
        .recv_raw()
        .await
        .expect("reply to the 12-octet message");
    assert_formerr(&reply, 0x0c0c, "12-octet message");
    conn.send_raw(&normal).await;
    let m = conn.recv_msg().await.expect("reply to the normal query");
    assert_eq!(m.metadata.id, 0x0a0a);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );

    // Stalled clients, all open at once: nothing sent; one octet of a prefix;
    // a prefix and nothing more; a prefix larger than the data that follows
    // (65535, then 100 octets); a prefix smaller than the query that follows
    // (5 octets are ignored, the next two read as a length of 256 that never
    // comes). Each must be closed by the 300 ms idle timeout, without a reply.
    let stalls: Vec<(&str, Vec<u8>)> = vec![
        ("nothing sent", Vec::new()),
        ("one octet of a length prefix", vec![0]),
        ("a length prefix only", vec![0, 0x30]),
        ("prefix 65535, 100 octets", {
            let mut b = vec![0xff, 0xff];
            b.extend(std::iter::repeat_n(0x3f, 100));
            b
        }),
        ("prefix 5 before a whole query", {
            let mut b = vec![0, 5];
            b.extend_from_slice(&normal);
            b
        }),
        ("a partial query after its prefix", {
            let mut b = (normal.len() as u16).to_be_bytes().to_vec();
            b.extend_from_slice(&normal[..normal.len() - 3]);
            b
        }),
    ];
    let mut stalled = Vec::new();
    for _ in 0..4 {
        for (what, bytes) in &stalls {
            let mut conn = TcpConn::connect(d.addr).await;
            conn.send_wire(bytes).await;
            stalled.push((*what, conn));
        }
    }
    // While they hang, others are served.
    assert_still_answers(d.addr).await;
    for (what, conn) in &mut stalled {
        eprintln!("waiting for the server to close: {what}");
        conn.expect_closed().await;
    }

    assert_still_answers(d.addr).await;
}
