//! The per-host shim: an IPv4 loopback listener forwarding over IPv6, loop
//! prevention when reading the system resolvers, and picking up a resolver
//! that appears in the resolver file later.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::common::*;

const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn shim_toml(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "profile = \"shim\"\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{upstream}\"]\ntimeout_ms = 1000\n{extra}"
    )
}

#[tokio::test]
async fn shim_on_ipv4_loopback_forwards_over_ipv6() {
    let auth = start_auth_upstream(LO6).await;
    let d = start_dns64d_toml(&shim_toml(auth.addr(), "")).await;
    assert!(d.addr.is_ipv4());
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let seen = auth.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|q| q.src.is_ipv6()),
        "the upstream saw IPv4 queries: {seen:?}"
    );
    // DNS64 is off by default in the shim: no synthesis…
    let m = query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // …and ipv4only.arpa goes to the network's resolvers (RFC 8880 §7).
    query_udp(d.addr, &Q::new("ipv4only.arpa", RecordType::AAAA)).await;
    assert!(auth.count("ipv4only.arpa", RecordType::AAAA) >= 1);
}

#[tokio::test]
async fn shim_with_a_prefix_synthesizes() {
    let auth = start_auth_upstream(LO6).await;
    let toml = format!(
        "{}[dns64]\nprefixes = [\"64:ff9b::/96\"]\n",
        shim_toml(auth.addr(), "")
    );
    let d = start_dns64d_toml(&toml).await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    let m = query_udp(d.addr, &Q::new("ipv4only.arpa", RecordType::AAAA)).await;
    assert_eq!(aaaa_answers(&m).len(), 2);
    assert_eq!(auth.count("ipv4only.arpa", RecordType::AAAA), 0);
}

#[test]
fn shim_skips_loopback_and_ipv4_system_resolvers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(
        &path,
        "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 127.0.0.53\n",
    )
    .unwrap();
    let toml = format!(
        "profile = \"shim\"\n[upstream]\nservers = \"system\"\nresolv_conf = {:?}\n",
        path.display().to_string()
    );
    let config = dns64d::ops::config::from_toml_str(&toml).unwrap();
    assert_eq!(
        config.upstream.servers,
        vec!["[2001:db8::53]:53".parse::<SocketAddr>().unwrap()]
    );
    let addresses: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
    assert_eq!(
        addresses,
        vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
    );
    let clients: Vec<String> = config
        .access_clients
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(clients, ["127.0.0.0/8", "::1/128"]);
    assert!(
        config.dns64.prefixes.is_empty(),
        "synthesis is off in the shim by default"
    );
}

#[tokio::test]
#[ignore = "needs root: binds a private loopback address on port 53"]
async fn resolver_that_appears_later_is_used_without_restart() {
    // resolv.conf has no port syntax, so the upstream must listen on port 53:
    // use a private loopback address of its own (needs root, as CI has).
    let octets = rand::random::<[u8; 2]>();
    let ip = IpAddr::V4(Ipv4Addr::new(127, 53, octets[0], octets[1].max(1)));
    let socket = std::net::UdpSocket::bind((ip, 53))
        .unwrap_or_else(|error| panic!("cannot bind {ip}:53 ({error}): run as root"));
    drop(socket);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "# no servers yet\n").unwrap();
    let toml = format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = \"system\"\nresolv_conf = {:?}\nsystem_refresh_ms = 50\ntimeout_ms = 500\n",
        path.display().to_string()
    );
    let d = start_dns64d_toml(&toml).await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::A).edns(1232),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let ede: Vec<u16> = ede(&m).into_iter().map(|(code, _)| code).collect();
    assert_eq!(ede, [22], "no upstream yet: SERVFAIL with EDE 22");

    let auth = start_auth_on_port(ip, 53).await;
    std::fs::write(&path, format!("nameserver {ip}\n")).unwrap();
    // Wait for the change to be picked up: repeat the query until it succeeds.
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
        if m.metadata.response_code == ResponseCode::NoError {
            assert_eq!(
                answer_summary(&m),
                ["v4only.dns64.test. 300 A 93.184.216.34"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new resolver was not picked up"
        );
        tokio::task::yield_now().await;
    }
    assert!(auth.count("v4only.dns64.test", RecordType::A) >= 1);
}

/// A client on a non-loopback address of the host is refused by the shim,
/// while loopback is answered. The test makes its own namespace, whose veth
/// carries the non-loopback address 198.51.100.1; nothing leaves it.
#[test]
#[ignore = "needs root: a network namespace with a non-loopback address"]
fn non_loopback_clients_are_refused_by_the_shim() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.ip(&[
        "link", "add", "shim0", "type", "veth", "peer", "name", "shim1",
    ]);
    netns.ip(&["addr", "add", "198.51.100.1/24", "dev", "shim0"]);
    netns.ip(&["link", "set", "shim0", "up"]);
    netns.ip(&["link", "set", "shim1", "up"]);
    netns.run(|| async {
        let local = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        let auth = start_auth_upstream(LO6).await;
        let d = start_dns64d_toml(&shim_toml(auth.addr(), "")).await;
        let client = tokio::net::UdpSocket::bind((local, 0)).await.unwrap();
        let query = Q::new("v4only.dns64.test", RecordType::A).to_message();
        client
            .send_to(&query.to_vec().unwrap(), d.addr)
            .await
            .unwrap();
        let mut buffer = vec![0u8; 4096];
        let (length, _) = tokio::time::timeout(TEST_TIMEOUT, client.recv_from(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        let m = Message::from_vec(&buffer[..length]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert_eq!(auth.total(), 0);
        // The same query from loopback is answered.
        let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    });
}
