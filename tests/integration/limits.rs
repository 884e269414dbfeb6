//! Protection under load and abuse: response rate limiting with slip, the
//! TCP connection limits (per listener and per client address), shedding
//! beyond the in-flight limit, and 0x20 case randomization of upstream
//! queries.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Sends `count` queries from `source` at once and sorts the replies:
/// (answered in full, truncated, IDs never answered).
async fn burst(server: SocketAddr, source: IpAddr, count: u16) -> (usize, usize, usize) {
    let socket = UdpSocket::bind((source, 0)).await.unwrap();
    let mut sent = HashSet::new();
    for index in 0..count {
        let mut message = Q::new("v4only.dns64.test", RecordType::A).to_message();
        message.metadata.id = 1000 + index;
        sent.insert(message.metadata.id);
        socket
            .send_to(&message.to_vec().unwrap(), server)
            .await
            .unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buffer = vec![0u8; 4096];
    // Collect until the server has been silent for a while (dropped replies never come).
    while let Ok(Ok((length, _))) =
        tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buffer)).await
    {
        let reply = Message::from_vec(&buffer[..length]).unwrap();
        assert!(sent.remove(&reply.metadata.id), "unexpected or repeated ID");
        if reply.metadata.truncation {
            assert!(reply.answers.is_empty());
            truncated += 1;
        } else {
            assert_eq!(
                answer_summary(&reply),
                ["v4only.dns64.test. 300 A 93.184.216.34"]
            );
            full += 1;
        }
    }
    (full, truncated, sent.len())
}

#[tokio::test]
async fn rate_limiting_limits_one_source_and_serves_another() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[rate_limit]\nresponses_per_second = 5\nslip = 2\nipv4_prefix_length = 32\nexempt = []\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    // Warm the cache so the burst is answered at full speed.
    query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    let (full, truncated, dropped) = burst(d.addr, LO, 40).await;
    assert!(
        (5..=7).contains(&full),
        "about the rate (5/s) get full answers: {full}"
    );
    assert!(
        truncated >= 10,
        "every second limited response slips through truncated: {truncated}"
    );
    assert!(dropped >= 10, "the others are dropped: {dropped}");
    assert_eq!(full + truncated + dropped, 40);
    // Another source (its own /32 here) is served in full.
    let (full, truncated, dropped) =
        burst(d.addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 5).await;
    assert_eq!((full, truncated, dropped), (5, 0, 0));
    // TCP is never limited.
    let m = query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
}

#[tokio::test]
async fn loopback_is_exempt_by_default() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[rate_limit]\nresponses_per_second = 2\n",
    )
    .await;
    let (full, truncated, dropped) = burst(d.addr, LO, 20).await;
    assert_eq!((full, truncated, dropped), (20, 0, 0));
}

#[tokio::test]
async fn tcp_connections_beyond_the_limit_are_closed() {
    let auth = start_auth_upstream(LO).await;
    // Both from 127.0.0.1: the limit per client (a quarter of 2 by default) must not bite first.
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[server]\nmax_tcp_connections = 2\nmax_tcp_connections_per_client = 2\n",
    )
    .await;
    let mut first = TcpConn::connect(d.addr).await;
    let second = TcpConn::connect(d.addr).await;
    // Both are served (the first one here); make sure the server has accepted both.
    first
        .send_msg(&Q::new("v4only.dns64.test", RecordType::A).to_message())
        .await;
    assert!(first.recv_msg().await.is_some());
    let mut extra = TcpConn::connect(d.addr).await;
    extra.expect_closed().await;
    drop(second);
    // A slot is free again: a new connection is served (retry until the close is seen).
    let deadline = std::time::Instant::now() + TEST_TIMEOUT;
    loop {
        let mut again = TcpConn::connect(d.addr).await;
        again
            .send_msg(&Q::new("v4only.dns64.test", RecordType::A).to_message())
            .await;
        if again.recv_msg().await.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no TCP slot freed");
        tokio::task::yield_now().await;
    }
}

/// Whether a query on `connection` is answered (false: the server closed it).
async fn is_served(connection: &mut TcpConn) -> bool {
    connection
        .send_msg(&Q::new("v4only.dns64.test", RecordType::A).to_message())
        .await;
    connection.recv_msg().await.is_some()
}

/// A new connection from `source` to `server` that gets its query
/// answered, retried until `TEST_TIMEOUT` (a slot is given back by the
/// server's task just after a client closes, so the first try may be early).
async fn served_connection(source: IpAddr, server: SocketAddr) -> TcpConn {
    let deadline = std::time::Instant::now() + TEST_TIMEOUT;
    loop {
        let mut connection = TcpConn::connect_from(source, server).await;
        if is_served(&mut connection).await {
            return connection;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TCP slot for {source} within {TEST_TIMEOUT:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// `dns64d_shed_total` of a running server.
fn shed_total(d: &Dns64d) -> String {
    let metrics = d.server.handler().resolver().metrics().encode(0);
    metrics
        .lines()
        .find(|line| line.starts_with("dns64d_shed_total "))
        .unwrap_or_else(|| panic!("no dns64d_shed_total in\n{metrics}"))
        .to_string()
}

#[tokio::test]
async fn tcp_connections_beyond_the_per_client_limit_are_closed_while_others_get_in() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[server]\nmax_tcp_connections = 10\nmax_tcp_connections_per_client = 2\n",
    )
    .await;
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut first = TcpConn::connect_from(LO, d.addr).await;
    let mut second = TcpConn::connect_from(LO, d.addr).await;
    assert!(is_served(&mut first).await && is_served(&mut second).await);
    // A third from the same address is over its limit: closed at once, counted.
    let mut third = TcpConn::connect_from(LO, d.addr).await;
    third.expect_closed().await;
    assert_eq!(shed_total(&d), "dns64d_shed_total 1");
    // Another address still gets a slot while 127.0.0.1 holds its two.
    let mut elsewhere = TcpConn::connect_from(other, d.addr).await;
    assert!(is_served(&mut elsewhere).await, "127.0.0.2 is refused");
    assert!(is_served(&mut first).await, "open connections go on");
    // Closing one gives 127.0.0.1 its slot back.
    drop(second);
    let mut again = served_connection(LO, d.addr).await;
    assert!(is_served(&mut again).await);
}

#[tokio::test]
async fn a_listener_has_its_own_per_client_limit() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d_toml(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tcp\"]\nmax_connections_per_client = 1\n",
        auth.addr()
    ))
    .await;
    let (plain, limited) = (d.addr, d.server.local_addrs()[1]);
    let mut first = TcpConn::connect_from(LO, limited).await;
    assert!(is_served(&mut first).await);
    TcpConn::connect_from(LO, limited)
        .await
        .expect_closed()
        .await;
    // The other listener keeps the default (a quarter of 1024).
    let mut plain_connections = Vec::new();
    for _ in 0..3 {
        let mut connection = TcpConn::connect_from(LO, plain).await;
        assert!(is_served(&mut connection).await);
        plain_connections.push(connection);
    }
    drop(first);
    served_connection(LO, limited).await;
    // A limit of 0 would refuse every connection: the key is named.
    let error = dns64d::ops::config::from_toml_str(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:5353\"]\n[server]\nmax_tcp_connections_per_client = 0\n",
    )
    .expect_err("a limit of 0")
    .to_string();
    assert!(
        error.contains("server.max_tcp_connections_per_client"),
        "{error}"
    );
}

#[tokio::test]
async fn queries_beyond_the_inflight_limit_are_shed() {
    let slow = start_fake_upstream(LO, |request, _| {
        let name = request.queries[0].name().to_ascii();
        FakeAction::Delayed(
            Duration::from_millis(500),
            reply_with(
                request,
                vec![rr_a(&name, 300, Ipv4Addr::new(93, 184, 216, 34))],
            ),
        )
    })
    .await;
    let d = start_dns64d(&[slow.addr()], "", "[server]\nmax_inflight_queries = 2\n").await;
    let socket = UdpSocket::bind((LO, 0)).await.unwrap();
    for index in 0..6u16 {
        let mut message = Q::new(format!("n{index}.example"), RecordType::A).to_message();
        message.metadata.id = index;
        socket
            .send_to(&message.to_vec().unwrap(), d.addr)
            .await
            .unwrap();
    }
    let (mut resolved, mut shed) = (0, 0);
    let mut buffer = vec![0u8; 4096];
    while let Ok(Ok((length, _))) =
        tokio::time::timeout(Duration::from_millis(1500), socket.recv_from(&mut buffer)).await
    {
        let m = decode(&buffer[..length]);
        match m.metadata.response_code {
            ResponseCode::NoError if a_answers(&m).len() == 1 => resolved += 1,
            // Shed: answered at once, not left to time out (issue 19).
            ResponseCode::ServFail if m.answers.is_empty() => shed += 1,
            _ => panic!("unexpected answer {m:?}"),
        }
    }
    assert_eq!((resolved, shed), (2, 4), "two resolved, four shed");
    assert_eq!(slow.total(), 2);
}

#[tokio::test]
async fn case_randomization_mixes_the_case_upstream() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "case_randomization = true\n", "").await;
    let name = "multi-a.dns64.test";
    let m = query_udp(d.addr, &Q::new(name, RecordType::A)).await;
    assert_eq!(a_answers(&m).len(), 3);
    assert!(
        m.queries[0]
            .name()
            .eq_case(&Q::new(name, RecordType::A).qname()),
        "the client's case is kept"
    );
    let seen = auth.seen();
    let upstream_name = &seen.iter().find(|q| q.name_is(name)).expect("seen").name;
    // 15 letters: all lower case by chance is 1 in 32768.
    assert_ne!(
        upstream_name.as_str(),
        "multi-a.dns64.test.",
        "0x20 case randomization"
    );
}
