//! Tests of the test harness itself (tests/integration/common).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ------------------------------------------------------------------ AuthUpstream

#[tokio::test]
async fn auth_v4only_a_udp_and_tcp() {
    let auth = start_auth_upstream(LO).await;
    for m in [
        query_udp(auth.addr(), &Q::new("v4only.dns64.test", RecordType::A)).await,
        query_tcp(auth.addr(), &Q::new("v4only.dns64.test.", RecordType::A)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative, "AA expected");
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 300 A 93.184.216.34"]
        );
        assert_eq!(
            a_answers(&m),
            [(
                "v4only.dns64.test.".to_string(),
                300,
                Ipv4Addr::new(93, 184, 216, 34)
            )]
        );
    }
}

#[tokio::test]
async fn auth_aaaa_nodata_has_soa() {
    let auth = start_auth_upstream(LO).await;
    let m = query_udp(auth.addr(), &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // hickory puts the SOA record with its own TTL (3600), not min(TTL, MINIMUM).
    assert_eq!(
        authority_summary(&m),
        ["dns64.test. 3600 SOA ns1.dns64.test. hostmaster.dns64.test. 1 3600 900 604800 60"]
    );
    assert_eq!(soa_ttl(&m), Some(3600));
}

#[tokio::test]
async fn auth_nxdomain_has_soa() {
    let auth = start_auth_upstream(LO).await;
    let m = query_udp(auth.addr(), &Q::new("nope.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(soa_ttl(&m), Some(3600));

    let m = query_udp(auth.addr(), &Q::new("nope.other.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        authority_summary(&m),
        ["other.test. 45 SOA ns1.other.test. hostmaster.other.test. 1 3600 900 604800 600"]
    );

    // Outside its zones the authority refuses.
    let m = query_udp(auth.addr(), &Q::new("example.org", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn auth_many_a() {
    let auth = start_auth_upstream(LO).await;
    let m = query_tcp(auth.addr(), &Q::new("many-a.dns64.test", RecordType::A)).await;
    assert!(!m.metadata.truncation);
    assert_eq!(a_answers(&m).len(), 40);
    // Over UDP without EDNS the answer doesn't fit in 512 bytes.
    let m = query_udp(auth.addr(), &Q::new("many-a.dns64.test", RecordType::A)).await;
    assert!(m.metadata.truncation);
    let m = query_udp(
        auth.addr(),
        &Q::new("many-a.dns64.test", RecordType::A).edns(4096),
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(a_answers(&m).len(), 40);
}

#[tokio::test]
async fn auth_follows_in_zone_cnames_only() {
    let auth = start_auth_upstream(LO).await;
    let m = query_udp(
        auth.addr(),
        &Q::new("cname-chain.dns64.test", RecordType::A),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        [
            "cname-chain.dns64.test. 300 CNAME cname.dns64.test.",
            "cname.dns64.test. 300 CNAME v4only.dns64.test.",
            "v4only.dns64.test. 300 A 93.184.216.34",
        ]
    );
    // Target has no AAAA: just the CNAME, NOERROR, and no SOA.
    let m = query_udp(auth.addr(), &Q::new("cname.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["cname.dns64.test. 300 CNAME v4only.dns64.test."]
    );
    assert!(m.authorities.is_empty());
    // Out-of-zone target isn't chased.
    let m = query_udp(auth.addr(), &Q::new("cname-out.dns64.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["cname-out.dns64.test. 300 CNAME target.other.test."]
    );
    // Dangling in-zone CNAME: NOERROR (not NXDOMAIN), CNAME only.
    let m = query_udp(
        auth.addr(),
        &Q::new("cname-nx.dns64.test", RecordType::AAAA),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["cname-nx.dns64.test. 300 CNAME nowhere.dns64.test."]
    );
}

#[tokio::test]
async fn auth_records_seen_queries() {
    let auth = start_auth_upstream(LO).await;
    let m = query_udp(
        auth.addr(),
        &Q::new("V4Only.DNS64.test", RecordType::A).do_bit().cd(),
    )
    .await;
    assert_eq!(a_answers(&m).len(), 1);
    query_tcp(
        auth.addr(),
        &Q::new("dual.dns64.test", RecordType::AAAA).edns(1400),
    )
    .await;
    query_tcp(auth.addr(), &Q::new("dual.dns64.test", RecordType::AAAA)).await;

    let seen = auth.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].name, "V4Only.DNS64.test.", "case preserved");
    assert_eq!(seen[0].qtype, RecordType::A);
    assert_eq!(seen[0].protocol, Transport::Udp);
    assert!(seen[0].dnssec_ok && seen[0].checking_disabled);
    assert_eq!(seen[0].edns_payload, Some(DEFAULT_EDNS_PAYLOAD));
    assert_eq!(seen[0].src.ip(), LO);
    assert_eq!(seen[1].protocol, Transport::Tcp);
    assert!(!seen[1].dnssec_ok && !seen[1].checking_disabled);
    assert_eq!(seen[1].edns_payload, Some(1400));
    assert_eq!(seen[2].edns_payload, None);

    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);
    assert_eq!(auth.count("V4ONLY.dns64.test.", RecordType::A), 1);
    assert_eq!(auth.count("v4only.dns64.test", RecordType::AAAA), 0);
    assert_eq!(auth.count("dual.dns64.test.", RecordType::AAAA), 2);
    auth.clear_seen();
    assert_eq!(auth.total(), 0);
}

#[tokio::test]
async fn auth_other_loopback_ip_and_shutdown() {
    let ip: IpAddr = "127.0.0.2".parse().unwrap();
    let auth = start_auth_upstream(ip).await;
    let addr = auth.addr();
    assert_eq!(addr.ip(), ip);
    let m = query_udp(addr, &Q::new("target.other.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["target.other.test. 300 A 93.184.216.90"]
    );
    auth.shutdown().await;
    let q = Q::new("target.other.test", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    assert_eq!(
        send_udp_raw(addr, &q, Duration::from_millis(500)).await,
        None
    );
}

// ------------------------------------------------------------------ FakeUpstream

#[tokio::test]
async fn fake_reply_udp_and_tcp() {
    let fake = start_fake_upstream(LO, |req, proto| {
        let ip = if proto == Transport::Udp {
            Ipv4Addr::new(192, 0, 2, 1)
        } else {
            Ipv4Addr::new(192, 0, 2, 2)
        };
        FakeAction::Reply(reply_with(req, vec![rr_a("x.example.", 77, ip)]))
    })
    .await;
    let m = query_udp(fake.addr(), &Q::new("x.example", RecordType::A)).await;
    assert_eq!(answer_summary(&m), ["x.example. 77 A 192.0.2.1"]);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    let m = query_tcp(fake.addr(), &Q::new("x.example", RecordType::A).no_rd()).await;
    assert_eq!(answer_summary(&m), ["x.example. 77 A 192.0.2.2"]);
    assert!(!m.metadata.recursion_desired);
    assert_eq!(fake.count("X.EXAMPLE.", RecordType::A), 2);
    let seen = fake.seen();
    assert_eq!(
        (seen[0].protocol, seen[1].protocol),
        (Transport::Udp, Transport::Tcp)
    );
    assert!(!seen[1].recursion_desired);
}

#[tokio::test]
async fn fake_drop_gives_no_udp_answer() {
    let fake = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let q = Q::new("x.example", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    assert_eq!(
        send_udp_raw(fake.addr(), &q, Duration::from_millis(300)).await,
        None
    );
    assert_eq!(fake.count("x.example", RecordType::A), 1);
}

#[tokio::test]
async fn fake_raw_is_sent_verbatim() {
    let fake = start_fake_upstream(LO, |_, _| FakeAction::Raw(vec![1, 2, 3, 4, 5])).await;
    let q = Q::new("x.example", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    assert_eq!(
        send_udp_raw(fake.addr(), &q, TEST_TIMEOUT).await,
        Some(vec![1, 2, 3, 4, 5])
    );
    assert_eq!(
        send_tcp_raw(fake.addr(), &q).await,
        Some(vec![1, 2, 3, 4, 5])
    );
}

#[tokio::test]
async fn fake_close_tcp() {
    let fake = start_fake_upstream(LO, |_, _| FakeAction::CloseTcp).await;
    let q = Q::new("x.example", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    assert_eq!(send_tcp_raw(fake.addr(), &q).await, None);
    let mut conn = TcpConn::connect(fake.addr()).await;
    conn.send_raw(&q).await;
    conn.expect_closed().await;
}

#[tokio::test]
async fn fake_delayed_does_not_block_other_queries() {
    let fake = start_fake_upstream(LO, |req, _| {
        let slow = req.queries[0].name().to_ascii().starts_with("slow");
        let resp = reply_with(
            req,
            vec![rr_a(
                &req.queries[0].name().to_ascii(),
                60,
                Ipv4Addr::new(192, 0, 2, 9),
            )],
        );
        if slow {
            FakeAction::Delayed(Duration::from_secs(2), resp)
        } else {
            FakeAction::Reply(resp)
        }
    })
    .await;
    let addr = fake.addr();
    for tcp in [false, true] {
        let slow = tokio::spawn(async move {
            let q = Q::new("slow.example", RecordType::A);
            if tcp {
                query_tcp(addr, &q).await
            } else {
                query_udp(addr, &q).await
            }
        });
        // Wait until the slow query has arrived (event-driven via the log, no fixed sleep).
        fake.wait_for_count("slow.example", RecordType::A, if tcp { 2 } else { 1 })
            .await;
        let fast = query_udp(addr, &Q::new("fast.example", RecordType::A)).await;
        assert_eq!(a_answers(&fast).len(), 1);
        assert!(
            !slow.is_finished(),
            "slow reply arrived before the fast one"
        );
        assert_eq!(a_answers(&slow.await.unwrap()).len(), 1);
    }
}

#[tokio::test]
async fn fake_tcp_pipelining() {
    let fake = start_fake_upstream(LO, |req, _| FakeAction::Reply(reply_to(req))).await;
    let mut conn = TcpConn::connect(fake.addr()).await;
    let q1 = Q::new("a.example", RecordType::A).to_message();
    let q2 = Q::new("b.example", RecordType::AAAA).to_message();
    conn.send_msg(&q1).await;
    conn.send_msg(&q2).await;
    let mut ids = vec![
        conn.recv_msg().await.unwrap().metadata.id,
        conn.recv_msg().await.unwrap().metadata.id,
    ];
    ids.sort();
    let mut want = vec![q1.metadata.id, q2.metadata.id];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn reply_to_skeleton() {
    let req = Q::new("Mixed.Example", RecordType::AAAA).cd().to_message();
    let r = reply_to(&req);
    assert_eq!(r.metadata.id, req.metadata.id);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert!(r.metadata.recursion_desired && r.metadata.recursion_available);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries, req.queries);
    assert_eq!(r.queries[0].name().to_string(), "Mixed.Example.");
    assert!(r.answers.is_empty() && r.edns.is_none());
    let soa = rr_soa("dns64.test.", 3600, 60);
    assert_eq!(
        record_line(&soa),
        "dns64.test. 3600 SOA ns1.dns64.test. hostmaster.dns64.test. 1 3600 900 604800 60"
    );
    assert_eq!(
        record_line(&rr_aaaa(
            "v4only.dns64.test",
            300,
            "64:ff9b::5db8:d822".parse().unwrap()
        )),
        "v4only.dns64.test. 300 AAAA 64:ff9b::5db8:d822"
    );
    assert_eq!(
        record_line(&rr_cname("a.test", 5, "b.test")),
        "a.test. 5 CNAME b.test."
    );
}
