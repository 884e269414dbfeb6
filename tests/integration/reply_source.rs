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

/// The bug of issue 15: two of four addresses never got an answer the client
/// accepted. Each address is asked a first time (slow path), a second time
/// (fast path, from stored responses: the upstream sees no new query), and
/// once from a connected socket, over IPv4 and IPv6, then over TCP.
#[test]
#[ignore = "needs root: two network namespaces joined by a veth pair"]
fn udp_answers_come_from_the_address_asked() {
    let server = Netns::create().expect(NETNS_NEEDS_ROOT);
    let client = Netns::create().expect(NETNS_NEEDS_ROOT);
    server.veth_to("srv0", &client, "cli0");
    for address in ["10.15.0.1/24", "10.15.0.2/24"] {
        server.ip(&["addr", "add", address, "dev", "srv0"]);
    }
    for address in ["fd15::1/64", "fd15::2/64"] {
        server.ip(&["addr", "add", address, "dev", "srv0", "nodad"]);
    }
    client.ip(&["addr", "add", "10.15.0.100/24", "dev", "cli0"]);
    client.ip(&["addr", "add", "fd15::100/64", "dev", "cli0", "nodad"]);
    let client_namespace = client;
    server.run(move || async move {
        let auth = start_auth_upstream(LO).await;
        let d = start_dns64d_toml(&format!(
            "listen = [\"0.0.0.0:0\", \"[::]:0\"]\n[upstream]\nservers = [\"{}\"]\n",
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
        let asking = client_namespace.spawn(move || async move {
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
        tokio::task::spawn_blocking(move || asking.join())
            .await
            .unwrap()
            .expect("the client's questions");
        // Every repeated question was answered from stored responses: the
        // upstream saw each name once per type (AAAA, and A to synthesize).
        for index in 0..SERVER_ADDRESSES.len() {
            let (q, _) = question_and_answer(index);
            assert_eq!(auth.count(&q.name, RecordType::AAAA), 1, "{}", q.name);
        }
        drop(d);
    });
}
