//! Issue 15, part 1: a UDP answer comes from the address the query was sent
//! to. On a host with several addresses, a socket bound to `0.0.0.0` or
//! `[::]` would otherwise answer from whatever address the route back
//! prefers, and clients drop such answers.
//!
//! The test builds the host for real: a server namespace with two IPv4 and
//! two IPv6 addresses on one veth, a client namespace on its other end,
//! dns64d on the wildcard addresses in the server namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The server's addresses: two per family on one interface.
const SERVER_ADDRESSES: [&str; 4] = ["10.15.0.1", "10.15.0.2", "fd15::1", "fd15::2"];

/// A name per server address, so every address gets a first answer from the
/// slow path, and what dns64d answers for it.
fn question_and_answer(index: usize) -> (Q, Vec<&'static str>) {
    let (name, answers): (&str, &[&'static str]) = match index {
        0 => (
            "v4only.dns64.test",
            &["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"],
        ),
        1 => (
            "multi-a.dns64.test",
            &[
                "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80b",
                "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80c",
                "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80d",
            ],
        ),
        2 => (
            "dual.dns64.test",
            &["dual.dns64.test. 300 AAAA 2001:db8::40"],
        ),
        _ => (
            "v6only.dns64.test",
            &["v6only.dns64.test. 300 AAAA 2001:db8::60"],
        ),
    };
    (Q::new(name, RecordType::AAAA), answers.to_vec())
}

/// Sends `q` from an unconnected socket and returns the answer with the
/// address it came from.
async fn ask_unconnected(server: SocketAddr, q: &Q) -> (Message, SocketAddr) {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
        SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await.unwrap();
    let query = q.to_message();
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let (length, from) = tokio::time::timeout(TEST_TIMEOUT, socket.recv_from(&mut buffer))
        .await
        .unwrap_or_else(|_| panic!("no answer to {} from {server}", q.name))
        .unwrap();
    let answer = decode(&buffer[..length]);
    assert_eq!(answer.metadata.id, query.metadata.id);
    (answer, from)
}

/// Sends `q` from a socket connected to `server`: the kernel delivers only
/// an answer whose source is `server`, as a stub resolver expects.
async fn ask_connected(server: SocketAddr, q: &Q) -> Message {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
        SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await.unwrap();
    socket.connect(server).await.unwrap();
    let query = q.to_message();
    socket.send(&query.to_vec().unwrap()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let length = tokio::time::timeout(TEST_TIMEOUT, socket.recv(&mut buffer))
        .await
        .unwrap_or_else(|_| panic!("no answer from {server} on a connected socket"))
        .unwrap();
    let answer = decode(&buffer[..length]);
    assert_eq!(answer.metadata.id, query.metadata.id);
    answer
}

/// Two hosts for real: a server namespace with [`SERVER_ADDRESSES`] on one
/// veth (MTU `mtu`; under 1280 the IPv6 ones are left out), a client
/// namespace on its other end. Starts dns64d on
/// `0.0.0.0:0` and `[::]:0` in the server namespace, with `extra` TOML
/// (sections after `[upstream]`), runs `ask` in the client namespace with
/// the four addresses (on dns64d's ports), and returns the upstream's
/// count of AAAA questions for each name in `counted`.
fn with_two_hosts<F, Fut>(mtu: &str, extra: &str, counted: Vec<String>, ask: F) -> Vec<usize>
where
    F: FnOnce(Vec<SocketAddr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let server = Netns::create().expect(NETNS_NEEDS_ROOT);
    let client = Netns::create().expect(NETNS_NEEDS_ROOT);
    server.veth_to("srv0", &client, "cli0");
    server.ip(&["link", "set", "srv0", "mtu", mtu]);
    client.ip(&["link", "set", "cli0", "mtu", mtu]);
    for address in ["10.15.0.1/24", "10.15.0.2/24"] {
        server.ip(&["addr", "add", address, "dev", "srv0"]);
    }
    client.ip(&["addr", "add", "10.15.0.100/24", "dev", "cli0"]);
    // IPv6 needs an MTU of at least 1280 (RFC 8200 §5).
    if mtu.parse::<u32>().is_ok_and(|mtu| mtu >= 1280) {
        for address in ["fd15::1/64", "fd15::2/64"] {
            server.ip(&["addr", "add", address, "dev", "srv0", "nodad"]);
        }
        client.ip(&["addr", "add", "fd15::100/64", "dev", "cli0", "nodad"]);
    }
    let extra = extra.to_string();
    let (counts_sender, counts) = std::sync::mpsc::channel();
    server.run(move || async move {
        let auth = start_auth_upstream(LO).await;
        let d = start_dns64d_toml(&format!(
            "listen = [\"0.0.0.0:0\", \"[::]:0\"]\n[upstream]\nservers = [\"{}\"]\n{extra}",
            auth.addr()
        ))
        .await;
        let ports = d.server.local_addrs().to_vec();
        let targets: Vec<SocketAddr> = SERVER_ADDRESSES
            .iter()
            .map(|address| {
                let address: IpAddr = address.parse().unwrap();
                let port = if address.is_ipv4() {
                    ports[0]
                } else {
                    ports[1]
                }
                .port();
                SocketAddr::new(address, port)
            })
            .collect();
        let asking = client.spawn(move || ask(targets));
        tokio::task::spawn_blocking(move || asking.join())
            .await
            .unwrap()
            .expect("the client's questions");
        let result = counted
            .iter()
            .map(|name| auth.count(name, RecordType::AAAA))
            .collect();
        counts_sender.send(result).unwrap();
        drop(d);
    });
    counts.recv().unwrap()
}

/// The bug of issue 15: two of four addresses never got an answer the client
/// accepted. Each address is asked a first time (slow path), a second time
/// (fast path, from stored responses: the upstream sees no new query), and
/// once from a connected socket, over IPv4 and IPv6, then over TCP.
#[test]
#[ignore = "needs root: two network namespaces joined by a veth pair"]
fn udp_answers_come_from_the_address_asked() {
    let names = (0..SERVER_ADDRESSES.len())
        .map(|index| question_and_answer(index).0.name)
        .collect();
    let counts = with_two_hosts("1500", "", names, |targets| async move {
        for (index, target) in targets.iter().enumerate() {
            let (q, expected) = question_and_answer(index);
            for path in ["slow path", "fast path"] {
                let (answer, from) = ask_unconnected(*target, &q).await;
                assert_eq!(from, *target, "{path}: the answer's source");
                assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
                let mut summary = answer_summary(&answer);
                summary.sort();
                assert_eq!(summary, expected, "{path} from {target}");
            }
            let answer = ask_connected(*target, &q).await;
            assert_eq!(answer_summary(&answer).len(), expected.len());
            let tcp = query_tcp(*target, &q).await;
            let mut summary = answer_summary(&tcp);
            summary.sort();
            assert_eq!(summary, expected, "TCP to {target}");
        }
    });
    // Every repeated question was answered from stored responses: the
    // upstream saw each name's AAAA question once.
    assert_eq!(counts, [1, 1, 1, 1]);
}

/// Answers cut down on the way out come from the address asked too: a
/// rate-limit slip (TC=1, no records) from the slow and the fast path, on
/// IPv4 and IPv6; and an IPv4 answer over the interface MTU (DF is set, so
/// the kernel refuses it and dns64d sends it truncated), from both paths.
#[test]
#[ignore = "needs root: two network namespaces joined by a veth pair"]
fn slipped_and_truncated_answers_come_from_the_address_asked() {
    // Every response over one per second per client is limited, and each
    // limited one slips.
    let limited = "[rate_limit]\nresponses_per_second = 1\nslip = 1\n";
    with_two_hosts("1500", limited, Vec::new(), |targets| async move {
        for target in [targets[1], targets[3]] {
            // Fresh names go the slow path; ask until one is limited.
            let mut slipped = false;
            for index in 0..50 {
                let q = Q::new(format!("slip-{index}.dns64.test"), RecordType::A);
                let (answer, from) = ask_unconnected(target, &q).await;
                assert_eq!(from, target, "slow path: the answer's source");
                if answer.metadata.truncation {
                    assert!(answer.answers.is_empty());
                    slipped = true;
                    break;
                }
            }
            assert!(slipped, "no slow-path answer to {target} was limited");
            // The same name again goes the fast path.
            let q = Q::new("v4only.dns64.test", RecordType::A);
            let mut slipped = false;
            for _ in 0..50 {
                let (answer, from) = ask_unconnected(target, &q).await;
                assert_eq!(from, target, "fast path: the answer's source");
                if answer.metadata.truncation {
                    slipped = true;
                    break;
                }
            }
            assert!(slipped, "no fast-path answer to {target} was limited");
        }
    });
    let big = "[server]\nedns_udp_size = 4096\n";
    let counts = with_two_hosts(
        "1000",
        big,
        vec!["many-a.dns64.test".into()],
        |targets| async move {
            let q = Q::new("many-a.dns64.test", RecordType::AAAA).edns(4096);
            for path in ["slow path", "fast path"] {
                let (answer, from) = ask_unconnected(targets[1], &q).await;
                assert_eq!(from, targets[1], "{path}: the answer's source");
                assert!(answer.metadata.truncation, "{path}: TC");
                assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
                assert!(answer.answers.is_empty(), "{path}: no records");
            }
            let tcp = query_tcp(targets[1], &q).await;
            assert_eq!(tcp.answers.len(), 40);
        },
    );
    assert_eq!(counts, [1]);
}
