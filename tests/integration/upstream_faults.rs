//! Upstream faults over the wire: failover on silence, SERVFAIL, REFUSED,
//! garbage and forged replies, answers after the timeout, TCP closed in the
//! middle of an answer, the SERVFAIL (+ EDE 22) deadline when nobody
//! answers, TCP retry after TC=1, RFC 6147 §5.1.2 synthesis after a failed
//! AAAA lookup, coalescing of identical misses, cached answers while a miss
//! is pending, no query left in flight, and
//! what dns64d sends upstream (random IDs, random ports on pooled sockets, DO and CD only as the
//! client asked).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The harness' per-attempt upstream timeout and attempt count (see `start_dns64d`).
const TIMEOUT: Duration = Duration::from_millis(1000);
const ATTEMPTS: u32 = 2;

/// A fake upstream answering every A question with 93.184.216.34 (TTL 300) and
/// every other question with NODATA (SOA of `example.`).
async fn start_a_fake() -> FakeUpstream {
    start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        if q.query_type() == RecordType::A {
            let owner = q.name().to_string();
            FakeAction::Reply(reply_with(
                req,
                vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
            ))
        } else {
            let mut m = reply_to(req);
            m.add_authority(rr_soa("example.", 300, 60));
            FakeAction::Reply(m)
        }
    })
    .await
}

/// A UDP listener keeps answering while one of its misses waits on a silent
/// upstream (on Linux its thread then waits in its runtime for the socket and
/// the miss together), and still answers once that miss has failed (the
/// thread is back to waiting in the kernel).
#[tokio::test]
async fn cached_answers_are_not_held_up_by_a_pending_miss() {
    let fake = start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        if q.name().to_string().starts_with("silent.") {
            FakeAction::Drop
        } else {
            let owner = q.name().to_string();
            FakeAction::Reply(reply_with(
                req,
                vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
            ))
        }
    })
    .await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    let cached = Q::new("fast.example", RecordType::A);
    let address = Ipv4Addr::new(93, 184, 216, 34);
    // Name and address: the TTL counts down while the test runs.
    let fast_answer = |m: &Message| -> Vec<(String, Ipv4Addr)> {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        a_answers(m)
            .into_iter()
            .map(|(name, _, ip)| (name, ip))
            .collect()
    };
    let expected = vec![("fast.example.".to_string(), address)];
    assert_eq!(fast_answer(&query_udp(d.addr, &cached).await), expected);

    let silent = Q::new("silent.example", RecordType::A);
    let pending = query_udp(d.addr, &silent);
    tokio::pin!(pending);
    for round in 0..3 {
        tokio::select! {
            biased;
            m = query_udp(d.addr, &cached) => assert_eq!(fast_answer(&m), expected, "round {round}"),
            _ = &mut pending => panic!("the miss ended before the cached answer of round {round}"),
        }
    }
    let failed = pending.await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        fake.count("fast.example", RecordType::A),
        1,
        "answered from the cache"
    );
    assert_eq!(fast_answer(&query_udp(d.addr, &cached).await), expected);
    let other = query_udp(d.addr, &Q::new("other.example", RecordType::A)).await;
    assert_eq!(
        a_answers(&other),
        [("other.example.".to_string(), 300, address)]
    );
}

#[tokio::test]
async fn silent_first_upstream_fails_over_to_second() {
    let silent = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[silent.addr(), auth.addr()], "", "").await;

    let started = Instant::now();
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    let elapsed = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert!(
        elapsed < TIMEOUT * 2,
        "failover took {elapsed:?}, expected < {:?}",
        TIMEOUT * 2
    );
    assert!(silent.count("v4only.dns64.test", RecordType::AAAA) >= 1);
    assert!(auth.count("v4only.dns64.test", RecordType::AAAA) >= 1);
}

#[tokio::test]
async fn servfail_from_first_upstream_fails_over_to_second() {
    let failing = start_fake_upstream(LO, |req, _| {
        FakeAction::Reply(reply_rcode(req, ResponseCode::ServFail))
    })
    .await;
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[failing.addr(), auth.addr()], "", "").await;

    for m in [
        query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await,
        query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 300 A 93.184.216.34"]
        );
    }
    assert_eq!(failing.count("v4only.dns64.test", RecordType::A), 1);
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);
}

/// Runs `q` against `addr` over UDP or TCP and measures how long the answer took.
async fn timed(addr: SocketAddr, q: Q, tcp: bool) -> (Q, Message, Duration) {
    let started = Instant::now();
    let m = if tcp {
        query_tcp(addr, &q).await
    } else {
        query_udp(addr, &q).await
    };
    (q, m, started.elapsed())
}

/// Two silent upstreams; three questions (UDP A, UDP AAAA, TCP A) asked concurrently.
async fn ask_silent_upstreams() -> (FakeUpstream, FakeUpstream, Vec<(Q, Message, Duration)>) {
    let silent1 = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let silent2 = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let d = start_dns64d(&[silent1.addr(), silent2.addr()], "", "").await;
    let (a, b, c) = tokio::join!(
        timed(
            d.addr,
            Q::new("gone.example", RecordType::A).edns(1232),
            false
        ),
        timed(
            d.addr,
            Q::new("gone6.example", RecordType::AAAA).edns(1232),
            false
        ),
        timed(
            d.addr,
            Q::new("gone-tcp.example", RecordType::A).edns(1232),
            true
        ),
    );
    (silent1, silent2, vec![a, b, c])
}

#[tokio::test]
async fn all_upstreams_silent_gives_servfail_in_time() {
    let (silent1, silent2, results) = ask_silent_upstreams().await;
    let bound = TIMEOUT * ATTEMPTS + Duration::from_millis(500);
    for (q, m, elapsed) in &results {
        let what = format!("{} {}", q.name, q.qtype);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{what}");
        assert!(m.answers.is_empty(), "{what}");
        assert!(m.edns.is_some(), "{what}: OPT missing");
        assert!(
            *elapsed <= bound,
            "{what}: SERVFAIL after {elapsed:?}, expected <= {bound:?}"
        );
    }
    // Both servers were tried.
    assert!(silent1.count("gone.example", RecordType::A) >= 1);
    assert!(silent2.count("gone.example", RecordType::A) >= 1);
}

#[tokio::test]
async fn all_upstreams_silent_servfail_carries_ede_22() {
    let (_silent1, _silent2, results) = ask_silent_upstreams().await;
    for (q, m, _) in &results {
        let errors = ede(m);
        assert_eq!(
            errors.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [22],
            "{} {}: expected exactly EDE 22 (No Reachable Authority), got {errors:?}",
            q.name,
            q.qtype
        );
    }
}

#[tokio::test]
async fn servfail_without_edns_has_no_opt() {
    let silent = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let d = start_dns64d(&[silent.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("gone.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.edns.is_none());
}

/// A fake that answers A for every name, but with the given corruption applied to the reply.
async fn start_forging_fake(corrupt: fn(&Message) -> FakeAction) -> FakeUpstream {
    start_fake_upstream(LO, move |req, _| corrupt(req)).await
}

fn wrong_id(req: &Message) -> FakeAction {
    let owner = req.queries[0].name().to_string();
    let mut m = reply_with(req, vec![rr_a(&owner, 300, Ipv4Addr::new(192, 0, 2, 66))]);
    m.metadata.id = req.metadata.id ^ 0x5a5a;
    FakeAction::Raw(m.to_vec().unwrap())
}

fn wrong_question(req: &Message) -> FakeAction {
    let mut m = reply_to(req);
    let qtype = req.queries[0].query_type();
    m.queries = vec![Query::query(
        Name::from_ascii("forged.example.").unwrap(),
        qtype,
    )];
    m.add_answer(rr_a("forged.example.", 300, Ipv4Addr::new(192, 0, 2, 66)));
    FakeAction::Raw(m.to_vec().unwrap())
}

/// A forged reply is ignored: alone it leaves SERVFAIL; first of two
/// upstreams, the real one answers.
async fn assert_forged_reply_ignored(corrupt: fn(&Message) -> FakeAction) {
    let forger = start_forging_fake(corrupt).await;
    let d = start_dns64d(&[forger.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());

    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[forger.addr(), auth.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
}

#[tokio::test]
async fn reply_with_wrong_id_is_ignored() {
    assert_forged_reply_ignored(wrong_id).await;
}

#[tokio::test]
async fn reply_with_wrong_question_is_ignored() {
    assert_forged_reply_ignored(wrong_question).await;
}

#[tokio::test]
async fn with_0x20_a_reply_over_tcp_gets_the_names_case_back() {
    // The upstream echoes the question's name, as real servers do, in the
    // answer's owner name; over UDP it truncates, so the answer comes over TCP.
    let fake = start_fake_upstream(LO, |req, transport| match transport {
        Transport::Udp => {
            let mut m = reply_to(req);
            m.metadata.truncation = true;
            FakeAction::Reply(m)
        }
        Transport::Tcp => {
            let owner = req.queries[0].name().clone();
            let record = Record::from_rdata(
                owner,
                300,
                RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
            );
            FakeAction::Reply(reply_with(req, vec![record]))
        }
    })
    .await;
    let d = start_dns64d(&[fake.addr()], "case_randomization = true\n", "").await;
    let m = query_udp(d.addr, &Q::new("big.example", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["big.example. 300 A 192.0.2.1"],
        "{m:?}"
    );
    let sent = fake.seen();
    assert!(
        sent.iter().any(|q| q.name != q.name.to_lowercase()),
        "the name went out in random case: {sent:?}"
    );
}

#[tokio::test]
async fn truncated_udp_reply_is_retried_over_tcp() {
    let fake = start_fake_upstream(LO, |req, transport| match transport {
        Transport::Udp => {
            let mut m = reply_to(req);
            m.metadata.truncation = true;
            FakeAction::Reply(m)
        }
        Transport::Tcp => FakeAction::Reply(reply_with(
            req,
            (1..=3)
                .map(|i| rr_a("big.example.", 300, Ipv4Addr::new(192, 0, 2, i)))
                .collect(),
        )),
    })
    .await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("big.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.truncation);
    assert_eq!(
        answer_summary(&m),
        [
            "big.example. 300 A 192.0.2.1",
            "big.example. 300 A 192.0.2.2",
            "big.example. 300 A 192.0.2.3",
        ]
    );
    let seen = fake.seen();
    assert!(
        seen.iter()
            .any(|q| q.protocol == Transport::Udp && q.name_is("big.example")),
        "no UDP query seen: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|q| q.protocol == Transport::Tcp && q.name_is("big.example")),
        "no TCP retry seen: {seen:?}"
    );
}

/// AAAA → SERVFAIL, A → 93.184.216.34 (TTL 300).
async fn start_aaaa_servfail_fake() -> FakeUpstream {
    start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        match q.query_type() {
            RecordType::A => FakeAction::Reply(reply_with(
                req,
                vec![rr_a(
                    &q.name().to_string(),
                    300,
                    Ipv4Addr::new(93, 184, 216, 34),
                )],
            )),
            _ => FakeAction::Reply(reply_rcode(req, ResponseCode::ServFail)),
        }
    })
    .await
}

#[tokio::test]
async fn aaaa_servfail_with_a_answer_is_synthesized_by_default() {
    let fake = start_aaaa_servfail_fake().await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    for m in [
        query_udp(d.addr, &Q::new("v4only.example", RecordType::AAAA)).await,
        query_tcp(d.addr, &Q::new("v4only.example", RecordType::AAAA)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // No SOA from the failed AAAA lookup: TTL = min(A TTL 300, 600).
        assert_eq!(
            answer_summary(&m),
            ["v4only.example. 300 AAAA 64:ff9b::5db8:d822"]
        );
    }
}

#[tokio::test]
async fn aaaa_servfail_with_nodata_only_policy_is_servfail() {
    let fake = start_aaaa_servfail_fake().await;
    let d = start_dns64d(
        &[fake.addr()],
        "",
        "[dns64]\nsynthesize_on = \"nodata-only\"\n",
    )
    .await;
    for m in [
        query_udp(d.addr, &Q::new("v4only.example", RecordType::AAAA)).await,
        query_tcp(d.addr, &Q::new("v4only.example", RecordType::AAAA)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.answers.is_empty());
    }
}

#[tokio::test]
async fn concurrent_identical_misses_share_one_upstream_query() {
    let fake = start_fake_upstream(LO, |req, _| {
        let owner = req.queries[0].name().to_string();
        FakeAction::Delayed(
            Duration::from_millis(200),
            reply_with(req, vec![rr_a(&owner, 300, Ipv4Addr::new(192, 0, 2, 7))]),
        )
    })
    .await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    let addr: SocketAddr = d.addr;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        set.spawn(async move { query_udp(addr, &Q::new("slow.example", RecordType::A)).await });
    }
    let mut n = 0;
    while let Some(m) = set.join_next().await {
        let m = m.expect("query task");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer_summary(&m), ["slow.example. 300 A 192.0.2.7"]);
        n += 1;
    }
    assert_eq!(n, 20);
    assert_eq!(fake.count("slow.example", RecordType::A), 1);
    assert_eq!(fake.total(), 1, "unexpected queries: {:?}", fake.seen());
}

#[tokio::test]
async fn upstream_queries_use_random_ids() {
    let fake = start_a_fake().await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    const CLIENT_ID: u16 = 0x4242;
    for i in 0..12 {
        let mut msg = Q::new(format!("id{i}.example"), RecordType::A).to_message();
        msg.metadata.id = CLIENT_ID;
        let m = exchange_udp(d.addr, &msg).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    let ids: Vec<u16> = fake.seen().iter().map(|q| q.id).collect();
    assert_eq!(ids.len(), 12);
    let distinct: HashSet<u16> = ids.iter().copied().collect();
    assert!(distinct.len() >= 11, "upstream IDs repeat: {ids:04x?}");
    assert!(
        ids.iter().filter(|&&id| id == CLIENT_ID).count() <= 1,
        "client ID copied upstream: {ids:04x?}"
    );
    let strides: HashSet<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    assert!(strides.len() > 1, "upstream IDs are sequential: {ids:04x?}");
}

#[tokio::test]
async fn do_and_cd_are_forwarded_only_when_the_client_sets_them() {
    let fake = start_a_fake().await;
    let d = start_dns64d(&[fake.addr()], "", "").await;
    let cases = [
        (
            "plain.example",
            Q::new("plain.example", RecordType::A),
            false,
            false,
        ),
        (
            "edns.example",
            Q::new("edns.example", RecordType::A).edns(4096),
            false,
            false,
        ),
        (
            "do.example",
            Q::new("do.example", RecordType::A).do_bit(),
            true,
            false,
        ),
        (
            "cd.example",
            Q::new("cd.example", RecordType::A).cd(),
            false,
            true,
        ),
        (
            "docd.example",
            Q::new("docd.example", RecordType::A).do_bit().cd(),
            true,
            true,
        ),
        (
            "aaaa-cd.example",
            Q::new("aaaa-cd.example", RecordType::AAAA).cd(),
            false,
            true,
        ),
        (
            "aaaa-do.example",
            Q::new("aaaa-do.example", RecordType::AAAA).do_bit(),
            true,
            false,
        ),
    ];
    for (name, q, dnssec_ok, cd) in &cases {
        let m = query_udp(d.addr, q).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(m.metadata.checking_disabled, *cd, "{name}: CD not echoed");
        let seen: Vec<SeenQuery> = fake
            .seen()
            .into_iter()
            .filter(|s| s.name_is(name))
            .collect();
        assert!(!seen.is_empty(), "{name}: upstream saw nothing");
        for s in &seen {
            assert!(
                s.edns_payload.is_some(),
                "{name} {}: upstream query without EDNS",
                s.qtype
            );
            assert_eq!(s.dnssec_ok, *dnssec_ok, "{name} {}: DO upstream", s.qtype);
            assert_eq!(s.checking_disabled, *cd, "{name} {}: CD upstream", s.qtype);
            assert!(s.recursion_desired, "{name}: RD upstream");
        }
    }
}

/// Waits until no query is being answered any more (no task left behind).
async fn assert_no_query_in_flight(d: &Dns64d) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    while d.server.active_queries() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} queries still in flight",
            d.server.active_queries()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_answer_after_the_timeout_is_too_late() {
    let late = start_fake_upstream(LO, |req, _| {
        let owner = req.queries[0].name().to_string();
        FakeAction::Delayed(
            Duration::from_millis(1500),
            reply_with(
                req,
                vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
            ),
        )
    })
    .await;
    let d = start_dns64d(&[late.addr()], "", "").await; // 1000 ms per attempt, 2 attempts
    let started = Instant::now();
    let m = query_udp(d.addr, &Q::new("late.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < TIMEOUT * ATTEMPTS + Duration::from_millis(500));
    assert_no_query_in_flight(&d).await;
}

#[tokio::test]
async fn tcp_closed_mid_answer_fails_over() {
    let cutting = start_fake_upstream(LO, |req, transport| match transport {
        Transport::Udp => {
            let mut m = reply_to(req);
            m.metadata.truncation = true;
            FakeAction::Reply(m)
        }
        Transport::Tcp => FakeAction::CloseTcp,
    })
    .await;
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[cutting.addr(), auth.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    assert!(
        cutting.seen().iter().any(|q| q.protocol == Transport::Tcp),
        "the TCP retry was made"
    );
    // With only the cutting upstream: SERVFAIL, in time.
    let d = start_dns64d(&[cutting.addr()], "", "").await;
    let started = Instant::now();
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < TIMEOUT * ATTEMPTS + Duration::from_millis(500));
    assert_no_query_in_flight(&d).await;
}

#[tokio::test]
async fn garbage_with_the_right_id_is_ignored() {
    let garbage = start_fake_upstream(LO, |req, _| {
        let mut bytes = req.metadata.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[
            0x81, 0x80, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x07,
        ]);
        FakeAction::Raw(bytes)
    })
    .await;
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[garbage.addr(), auth.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert_no_query_in_flight(&d).await;
}

#[tokio::test]
async fn refused_fails_over_and_alone_becomes_servfail_with_ede() {
    let refusing = start_fake_upstream(LO, |req, _| {
        FakeAction::Reply(reply_rcode(req, ResponseCode::Refused))
    })
    .await;
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[refusing.addr(), auth.addr()], "", "").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let d = start_dns64d(&[refusing.addr()], "", "").await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::A).edns(1232),
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "the upstream refused us, not the client"
    );
    let codes: Vec<u16> = ede(&m).into_iter().map(|(code, _)| code).collect();
    assert_eq!(codes, [23]);
}

/// RFC 5452 with pooled upstream sockets: every query has a random ID; a
/// socket carries at most 64 exchanges before a new random port is taken;
/// queries in flight at the same time never share a port; a socket whose
/// query went unanswered is never used again.
#[tokio::test]
async fn upstream_queries_come_from_random_ports() {
    const MAX_USES: usize = 64; // udp_pool::MAX_USES
    let fake = start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        let owner = q.name().to_string();
        let reply = reply_with(
            req,
            vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
        );
        match owner.split('.').next().unwrap_or("") {
            name if name.starts_with("lost") => FakeAction::Drop,
            name if name.starts_with("slow") => {
                FakeAction::Delayed(Duration::from_millis(300), reply)
            }
            _ => FakeAction::Reply(reply),
        }
    })
    .await;
    let d = start_dns64d(&[fake.addr()], "", "").await;

    let sequential = 3 * MAX_USES + 10;
    for index in 0..sequential {
        let m = query_udp(d.addr, &Q::new(format!("p{index}.example"), RecordType::A)).await;
        assert_eq!(m.answers.len(), 1);
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), sequential);
    let ids: HashSet<u16> = seen.iter().map(|q| q.id).collect();
    assert!(
        ids.len() >= sequential - 3,
        "IDs repeat: {} distinct of {sequential}",
        ids.len()
    );
    let mut per_port: HashMap<u16, usize> = HashMap::new();
    for q in &seen {
        *per_port.entry(q.src.port()).or_default() += 1;
    }
    assert!(
        per_port.values().all(|&uses| uses <= MAX_USES),
        "a port carried more than {MAX_USES} queries: {per_port:?}"
    );
    assert!(
        per_port.len() >= sequential.div_ceil(MAX_USES),
        "{per_port:?}"
    );

    // Twenty queries in flight at once: twenty sockets.
    fake.clear_seen();
    let mut slow = tokio::task::JoinSet::new();
    for index in 0..20 {
        let addr = d.addr;
        slow.spawn(async move {
            query_udp(addr, &Q::new(format!("slow{index}.example"), RecordType::A)).await
        });
    }
    while let Some(answer) = slow.join_next().await {
        assert_eq!(answer.unwrap().answers.len(), 1);
    }
    let ports: HashSet<u16> = fake.seen().iter().map(|q| q.src.port()).collect();
    assert_eq!(
        ports.len(),
        20,
        "queries in flight shared a socket: {ports:?}"
    );

    // A socket whose query got no answer is closed: its port never asks again.
    fake.clear_seen();
    let lost = query_udp(d.addr, &Q::new("lost.example", RecordType::A)).await;
    assert_eq!(lost.metadata.response_code, ResponseCode::ServFail);
    let lost_ports: HashSet<u16> = fake.seen().iter().map(|q| q.src.port()).collect();
    fake.clear_seen();
    for index in 0..20 {
        query_udp(
            d.addr,
            &Q::new(format!("after{index}.example"), RecordType::A),
        )
        .await;
    }
    let later: HashSet<u16> = fake.seen().iter().map(|q| q.src.port()).collect();
    assert!(
        lost_ports.is_disjoint(&later),
        "{lost_ports:?} reused in {later:?}"
    );
}
