//! Serve-stale (RFC 8767) and prefetch over the wire: an upstream that goes
//! silent (or answers SERVFAIL) after the cache is warm gives stale answers
//! with Extended DNS Error 3 and TTL `cache.stale_answer_ttl` within the
//! client-response timer, synthesized AAAA from a stale A are marked the same
//! way, fresh answers come back when the upstream does; a name asked for late
//! in its TTL is refreshed once in the background and never expires for
//! clients.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The harness' per-attempt upstream timeout (see `start_dns64d`).
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often a test re-asks while it waits for a TTL to run out.
const POLL: Duration = Duration::from_millis(50);

/// What the fake upstream does.
const UP: u8 = 0;
const SILENT: u8 = 1;
const SERVFAIL: u8 = 2;

/// A fake upstream for `*.stale.test.`: A 93.184.216.34 with `ttl`, other
/// types NODATA with an SOA of TTL `ttl` and MINIMUM 60, while `mode` is UP.
async fn start_switchable(mode: Arc<AtomicU8>, ttl: u32) -> FakeUpstream {
    start_fake_upstream(LO, move |req, _| match mode.load(Ordering::SeqCst) {
        SILENT => FakeAction::Drop,
        SERVFAIL => FakeAction::Reply(reply_rcode(req, ResponseCode::ServFail)),
        _ => {
            let q = &req.queries[0];
            if q.query_type() == RecordType::A {
                let owner = q.name().to_string();
                FakeAction::Reply(reply_with(
                    req,
                    vec![rr_a(&owner, ttl, Ipv4Addr::new(93, 184, 216, 34))],
                ))
            } else {
                let mut m = reply_to(req);
                m.add_authority(rr_soa("stale.test.", ttl, 60));
                FakeAction::Reply(m)
            }
        }
    })
    .await
}

fn has_ede(m: &Message, code: u16) -> bool {
    ede(m).iter().any(|(c, _)| *c == code)
}

/// Asks `q` over UDP until the answer carries EDE 3 (the TTL ran out),
/// checking every earlier answer is the fresh one; returns the stale answer
/// and how long it took to come.
async fn ask_until_stale(addr: std::net::SocketAddr, q: &Q) -> (Message, Duration) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no stale answer for {q:?}");
        let asked = Instant::now();
        let m = query_udp(addr, q).await;
        let took = asked.elapsed();
        if has_ede(&m, 3) {
            return (m, took);
        }
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
        assert!(!m.answers.is_empty(), "a fresh answer while warm: {m:?}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn a_silent_upstream_gives_stale_answers_with_ede_3_then_fresh_ones_when_it_returns() {
    let mode = Arc::new(AtomicU8::new(UP));
    let fake = start_switchable(Arc::clone(&mode), 1).await;
    let d = start_dns64d(
        &[fake.addr()],
        "",
        "[cache]\nprefetch = false\nstale_client_timeout_ms = 300\n",
    )
    .await;
    let a = Q::new("host.stale.test", RecordType::A).edns(1232);
    let aaaa = Q::new("host.stale.test", RecordType::AAAA).edns(1232);
    let warm = query_udp(d.addr, &aaaa).await;
    assert_eq!(
        answer_summary(&warm),
        ["host.stale.test. 1 AAAA 64:ff9b::5db8:d822"]
    );
    assert_eq!(
        answer_summary(&query_udp(d.addr, &a).await),
        ["host.stale.test. 1 A 93.184.216.34"]
    );

    mode.store(SILENT, Ordering::SeqCst);
    let (stale, took) = ask_until_stale(d.addr, &a).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&stale),
        ["host.stale.test. 30 A 93.184.216.34"]
    );
    assert!(
        took < UPSTREAM_TIMEOUT,
        "the stale answer came after {took:?}, not within the client timer"
    );
    // Later clients get it at once, over TCP too; nothing stale is stored.
    let again = query_tcp(d.addr, &a).await;
    assert!(has_ede(&again, 3), "{again:?}");
    assert_eq!(
        answer_summary(&again),
        ["host.stale.test. 30 A 93.184.216.34"]
    );

    // Synthesis from the stale A (and the stale AAAA NODATA) is marked the
    // same way; the TTL rule gives min(30, min(30, MINIMUM 60)).
    let synthesized = query_udp(d.addr, &aaaa).await;
    assert!(has_ede(&synthesized, 3), "{synthesized:?}");
    assert!(has_ede(&synthesized, 29), "{synthesized:?}");
    assert_eq!(
        answer_summary(&synthesized),
        ["host.stale.test. 30 AAAA 64:ff9b::5db8:d822"]
    );

    // The upstream comes back: a fresh answer (TTL 1, no EDE) wins.
    mode.store(UP, Ordering::SeqCst);
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no fresh answer after the upstream returned"
        );
        let m = query_udp(d.addr, &a).await;
        if !has_ede(&m, 3) {
            assert_eq!(answer_summary(&m), ["host.stale.test. 1 A 93.184.216.34"]);
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let metrics = d.server.handler().resolver().metrics().encode(0);
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("dns64d_stale_answers_total ") && !line.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upstream_servfail_gives_the_stale_answer_at_once() {
    let mode = Arc::new(AtomicU8::new(UP));
    let fake = start_switchable(Arc::clone(&mode), 1).await;
    // A client timer longer than the test's deadline: only the SERVFAIL can end the wait.
    let d = start_dns64d(
        &[fake.addr()],
        "",
        "[cache]\nprefetch = false\nstale_client_timeout_ms = 60000\nstale_answer_ttl = 7\n",
    )
    .await;
    let a = Q::new("sf.stale.test", RecordType::A).edns(1232);
    query_udp(d.addr, &a).await;
    mode.store(SERVFAIL, Ordering::SeqCst);
    let (stale, _) = ask_until_stale(d.addr, &a).await;
    assert_eq!(answer_summary(&stale), ["sf.stale.test. 7 A 93.184.216.34"]);
}

#[tokio::test]
async fn with_stale_max_ttl_zero_an_expired_answer_is_not_served() {
    let mode = Arc::new(AtomicU8::new(UP));
    let fake = start_switchable(Arc::clone(&mode), 1).await;
    let d = start_dns64d(
        &[fake.addr()],
        "",
        "[cache]\nprefetch = false\nstale_max_ttl = 0\n",
    )
    .await;
    let a = Q::new("off.stale.test", RecordType::A).edns(1232);
    query_udp(d.addr, &a).await;
    mode.store(SERVFAIL, Ordering::SeqCst);
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "the answer never expired");
        let m = query_udp(d.addr, &a).await;
        assert!(!has_ede(&m, 3), "{m:?}");
        if m.metadata.response_code == ResponseCode::ServFail {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn prefetch_keeps_a_name_cached_across_its_ttl_with_one_upstream_query() {
    const TTL: u64 = 4;
    let fake = start_switchable(Arc::new(AtomicU8::new(UP)), TTL as u32).await;
    let d = start_dns64d(&[fake.addr()], "", "").await; // prefetch on, 10 %, by default
    let a = Q::new("hot.stale.test", RecordType::A);
    let start = Instant::now();
    assert_eq!(
        answer_summary(&query_udp(d.addr, &a).await),
        ["hot.stale.test. 4 A 93.184.216.34"]
    );
    assert_eq!(fake.count("hot.stale.test", RecordType::A), 1);
    // Ask as a busy client would until past the first answer's expiry (and
    // the second a response with the old data's TTL rounded up may be
    // replayed): every answer comes from the cache, and one background query
    // refreshed it.
    let expiry = start + Duration::from_secs(TTL);
    let mut refreshed_at = None;
    while Instant::now() < expiry + Duration::from_millis(1200) {
        let asked = Instant::now();
        let m = query_udp(d.addr, &a).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_answers(&m).len(), 1, "{m:?}");
        assert!(
            asked.elapsed() < UPSTREAM_TIMEOUT,
            "a client waited for the upstream"
        );
        if refreshed_at.is_none() && fake.count("hot.stale.test", RecordType::A) == 2 {
            refreshed_at = Some(start.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    let refreshed_at = refreshed_at.expect("the name was refreshed");
    assert!(
        refreshed_at < Duration::from_secs(TTL),
        "refreshed after the TTL ran out ({refreshed_at:?})"
    );
    assert_eq!(
        fake.count("hot.stale.test", RecordType::A),
        2,
        "one upstream query kept the name cached across its TTL"
    );
    let after = query_udp(d.addr, &a).await;
    let ttl = a_answers(&after)[0].1;
    assert!(ttl >= 2, "the refreshed answer's TTL is {ttl}");
}

#[test]
fn stale_and_prefetch_settings_are_checked() {
    for (toml, key, value) in [
        (
            "[cache]\nstale_answer_ttl = 0\n",
            "cache.stale_answer_ttl",
            "0",
        ),
        (
            "[cache]\nstale_client_timeout_ms = 0\n",
            "cache.stale_client_timeout_ms",
            "0",
        ),
        (
            "[cache]\nprefetch_threshold_percent = 90\n",
            "cache.prefetch_threshold_percent",
            "90",
        ),
    ] {
        let error = dns64d::ops::config::from_toml_str(toml)
            .expect_err(toml)
            .to_string();
        assert!(error.starts_with(&format!("{key} = {value}: ")), "{error}");
    }
    let config = dns64d::ops::config::from_toml_str("").unwrap();
    assert_eq!(
        (
            config.cache.stale_max_ttl,
            config.cache.stale_answer_ttl,
            config.cache.stale_client_timeout,
            config.cache.prefetch,
            config.cache.prefetch_threshold_percent,
        ),
        (86400, 30, Duration::from_millis(1800), true, 10),
        "the defaults of RFC 8767 and Unbound's prefetch"
    );
}
