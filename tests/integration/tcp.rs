//! Plain TCP connections: pipelined queries answered concurrently and out
//! of order (RFC 7766 §6.2.1.1), the bound on queries in flight per
//! connection, SERVFAIL over `server.max_inflight_queries`, and queries in
//! flight finished on shutdown.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Queries answered at once on one TCP or DoT connection (README,
/// "Encrypted DNS": "at most 64 at once per connection").
const QUERIES_PER_CONNECTION: u16 = 64;

/// An upstream that answers every A question with 93.184.216.34, names
/// starting with `slow` after `delay`, the others at once.
async fn slow_and_fast_upstream(delay: Duration) -> FakeUpstream {
    start_fake_upstream(LO, move |request, _| {
        let name = request.queries[0].name().to_ascii();
        let answer = reply_with(
            request,
            vec![rr_a(&name, 300, Ipv4Addr::new(93, 184, 216, 34))],
        );
        if name.starts_with("slow") {
            FakeAction::Delayed(delay, answer)
        } else {
            FakeAction::Reply(answer)
        }
    })
    .await
}

/// dns64d forwarding to `upstream`, patient enough for its slow answers.
async fn start_patient_dns64d(upstream: &FakeUpstream, extra: &str) -> Dns64d {
    start_dns64d_toml(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\ntimeout_ms = 3000\nattempts = 1\n{extra}",
        upstream.addr()
    ))
    .await
}

/// Writes one query for `name` with `id` on `connection` (not waiting for
/// the answer).
async fn send_query(connection: &mut TcpConn, name: &str, id: u16) {
    let mut query = Q::new(name, RecordType::A).to_message();
    query.metadata.id = id;
    connection.send_msg(&query).await;
}

#[tokio::test]
async fn tcp_answers_pipelined_queries_as_they_are_ready() {
    let upstream = slow_and_fast_upstream(Duration::from_millis(1500)).await;
    let d = start_patient_dns64d(&upstream, "").await;
    let mut connection = TcpConn::connect(d.addr).await;
    // All queries are written before any answer is read: the slow one first.
    send_query(&mut connection, "slow.example", 1).await;
    for id in 2..=6 {
        send_query(&mut connection, &format!("fast{id}.example"), id).await;
    }
    let mut order = Vec::new();
    for _ in 1..=6 {
        let reply = connection.recv_msg().await.expect("an answer");
        let name = reply.queries[0].name().to_ascii();
        assert_eq!(
            answer_summary(&reply),
            [format!("{name} 300 A 93.184.216.34")],
            "the answer to ID {}",
            reply.metadata.id
        );
        order.push(reply.metadata.id);
    }
    assert_ne!(
        order[0], 1,
        "a fast answer comes before the slow one (out of order): {order:?}"
    );
    let answered: HashSet<u16> = order.iter().copied().collect();
    assert_eq!(answered, (1..=6).collect(), "every ID once: {order:?}");
}

/// A query message for `name` (type A) with `id`, framed for a stream.
fn framed_query(name: &str, id: u16) -> Vec<u8> {
    let mut query = Q::new(name, RecordType::A).to_message();
    query.metadata.id = id;
    let bytes = query.to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    framed
}

/// Cache hits on one connection are answered in order, in the connection's
/// own task; an answer never waits for the rest of a query that has only
/// begun to arrive; the first miss then switches the connection to answering
/// concurrently, and the hits behind a slow miss still come first.
#[tokio::test]
async fn tcp_answers_stored_responses_at_once_then_misses_concurrently() {
    let upstream = slow_and_fast_upstream(Duration::from_millis(1500)).await;
    let d = start_patient_dns64d(&upstream, "").await;
    for name in ["fast1.example", "fast2.example", "fast3.example"] {
        let reply = query_tcp(d.addr, &Q::new(name, RecordType::A)).await;
        assert_eq!(
            answer_summary(&reply),
            [format!("{name}. 300 A 93.184.216.34")]
        );
    }
    let asked = upstream.total();

    let mut connection = TcpConn::connect(d.addr).await;
    // Two whole queries and the first three octets of a third, in one write.
    let third = framed_query("fast3.example", 3);
    let mut first_write = [
        framed_query("fast1.example", 1),
        framed_query("fast2.example", 2),
    ]
    .concat();
    first_write.extend_from_slice(&third[..3]);
    connection.send_wire(&first_write).await;
    for id in [1, 2] {
        let reply = connection
            .recv_msg()
            .await
            .expect("an answer before the third query is whole");
        assert_eq!(reply.metadata.id, id, "stored responses in order");
        assert_eq!(reply.answers.len(), 1, "{reply:?}");
    }
    connection.send_wire(&third[3..]).await;
    let reply = connection.recv_msg().await.expect("the third answer");
    assert_eq!(
        (reply.metadata.id, reply.answers.len()),
        (3, 1),
        "{reply:?}"
    );
    assert_eq!(upstream.total(), asked, "every answer so far was stored");

    // A slow miss, then a hit behind it on the same connection.
    connection
        .send_wire(
            &[
                framed_query("slow.example", 4),
                framed_query("fast1.example", 5),
            ]
            .concat(),
        )
        .await;
    let order: Vec<u16> = [
        connection.recv_msg().await.expect("an answer"),
        connection.recv_msg().await.expect("an answer"),
    ]
    .iter()
    .map(|reply| {
        assert_eq!(reply.answers.len(), 1, "{reply:?}");
        reply.metadata.id
    })
    .collect();
    assert_eq!(order, [5, 4], "the hit is not held up by the slow miss");
    // Still served after the switch.
    connection
        .send_wire(&framed_query("fast2.example", 6))
        .await;
    let reply = connection.recv_msg().await.expect("an answer");
    assert_eq!(
        (reply.metadata.id, reply.answers.len()),
        (6, 1),
        "{reply:?}"
    );
}

#[tokio::test]
async fn tcp_connection_answers_at_most_64_queries_at_once() {
    let upstream = slow_and_fast_upstream(Duration::from_millis(500)).await;
    let d = start_patient_dns64d(&upstream, "").await;
    let mut connection = TcpConn::connect(d.addr).await;
    for id in 1..=QUERIES_PER_CONNECTION {
        send_query(&mut connection, &format!("slow{id}.example"), id).await;
    }
    // One query over the bound: it is not read before a slow one is done,
    // so its answer, though ready at once, comes after a slow answer.
    let fast = QUERIES_PER_CONNECTION + 1;
    send_query(&mut connection, "fast.example", fast).await;
    let mut order = Vec::new();
    for _ in 1..=fast {
        let reply = connection.recv_msg().await.expect("an answer");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        order.push(reply.metadata.id);
    }
    assert_ne!(
        order[0], fast,
        "the query over the bound was answered before any slow one: {order:?}"
    );
    let answered: HashSet<u16> = order.iter().copied().collect();
    assert_eq!(answered, (1..=fast).collect(), "every ID once");
    upstream
        .wait_until("every question forwarded once", |seen| {
            seen.len() == usize::from(fast)
        })
        .await;
}

#[tokio::test]
async fn shutdown_answers_the_queries_a_tcp_connection_has_sent_then_closes_it() {
    let upstream = slow_and_fast_upstream(Duration::from_millis(500)).await;
    let d = start_patient_dns64d(&upstream, "").await;
    let address = d.addr;
    let mut connection = TcpConn::connect(address).await;
    send_query(&mut connection, "slow1.example", 1).await;
    send_query(&mut connection, "slow2.example", 2).await;
    upstream
        .wait_until("both questions forwarded", |seen| seen.len() == 2)
        .await;
    let shutdown = tokio::spawn(d.server.shutdown(Duration::from_secs(5)));
    let mut answered = Vec::new();
    for _ in 0..2 {
        let reply = connection
            .recv_msg()
            .await
            .expect("an answer to a query sent before the shutdown");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        answered.push(reply.metadata.id);
    }
    answered.sort_unstable();
    assert_eq!(answered, [1, 2]);
    // Then the server closes the connection, and the shutdown cuts nothing off.
    connection.expect_closed().await;
    assert_eq!(shutdown.await.expect("shutdown"), 0, "queries cut off");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "no connection is accepted after the shutdown"
    );
}

#[tokio::test]
async fn tcp_queries_beyond_the_inflight_limit_get_servfail_at_once() {
    let upstream = slow_and_fast_upstream(Duration::from_millis(1000)).await;
    let d = start_patient_dns64d(&upstream, "[server]\nmax_inflight_queries = 2\n").await;
    let mut connection = TcpConn::connect(d.addr).await;
    for id in 1..=4 {
        let mut query = Q::new(format!("slow{id}.example"), RecordType::A)
            .edns(1232)
            .to_message();
        query.metadata.id = id;
        connection.send_msg(&query).await;
    }
    // Two are being resolved (slowly); the two over the limit are answered
    // SERVFAIL at once, not left waiting on the connection.
    let mut answers = Vec::new();
    for _ in 0..4 {
        let reply = connection.recv_msg().await.expect("an answer");
        let name = reply.queries[0].name().to_ascii();
        assert_eq!(
            name,
            format!("slow{}.example.", reply.metadata.id),
            "the question is echoed"
        );
        assert!(reply.edns.is_some(), "EDNS is answered with EDNS");
        answers.push(reply.metadata.response_code);
    }
    assert_eq!(
        answers,
        [
            ResponseCode::ServFail,
            ResponseCode::ServFail,
            ResponseCode::NoError,
            ResponseCode::NoError
        ]
    );
    assert_eq!(upstream.total(), 2, "only two were forwarded");
    let metrics = d.server.handler().resolver().metrics().encode(0);
    for counted in [
        "dns64d_shed_total 2",
        r#"dns64d_queries_total{qtype="A",protocol="tcp",rcode="SERVFAIL"} 2"#,
        r#"dns64d_queries_total{qtype="A",protocol="tcp",rcode="NOERROR"} 2"#,
    ] {
        assert!(metrics.contains(counted), "{counted} in\n{metrics}");
    }
}

/// Stream transports replay stored responses as UDP does: a question asked
/// again over TCP is answered without the upstream (counted as a cache hit
/// under protocol="tcp"), and a response stored from TCP that is too large
/// for a UDP client's payload size is not replayed to it whole: the UDP
/// client gets TC=1 and the full answer over TCP again.
#[tokio::test]
async fn stream_queries_are_replayed_from_stored_responses() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", "[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let first = query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&first),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    let asked = auth.total();
    let again = query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(answer_summary(&again), answer_summary(&first));
    assert_eq!(auth.total(), asked, "answered from the stored response");

    // 40 synthesized AAAA: over 512 octets, whole over TCP.
    let many = query_tcp(d.addr, &Q::new("many-a.dns64.test", RecordType::AAAA)).await;
    assert_eq!(many.answers.len(), 40);
    let asked = auth.total();
    let udp = query_udp(d.addr, &Q::new("many-a.dns64.test", RecordType::AAAA)).await;
    assert!(udp.metadata.truncation, "{udp:?}");
    assert!(udp.answers.is_empty());
    let tcp = query_tcp(d.addr, &Q::new("many-a.dns64.test", RecordType::AAAA)).await;
    assert_eq!(tcp.answers.len(), 40);
    assert_eq!(auth.total(), asked, "the stored responses answered both");

    let endpoint = d.server.metrics_addr().expect("metrics endpoint bound");
    let (_, body) = http_get(endpoint, "/metrics").await;
    let series = "dns64d_queries_total{qtype=\"AAAA\",protocol=\"tcp\",rcode=\"NOERROR\"} 4";
    assert!(body.lines().any(|line| line == series), "{series}\n{body}");
    // A replayed answer is one hit; the full path counts its AAAA and A
    // lookups (the truncated UDP answer): 1 + 2 + 1.
    assert!(
        body.lines().any(|line| line == "dns64d_cache_hits_total 4"),
        "{body}"
    );
}
