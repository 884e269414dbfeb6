//! RFC 6147 §5.1 over the wire: synthesis, native AAAA, exclusions, CNAME
//! chains, NXDOMAIN vs NODATA, the TTL rule and pass-through of other types,
//! against the in-process authoritative upstream, over UDP and TCP.

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn setup(extra: &str) -> (AuthUpstream, Dns64d) {
    let auth = start_auth_upstream(LO).await;
    let dns64d = start_dns64d(&[auth.addr()], "", extra).await;
    (auth, dns64d)
}

/// Queries over UDP and TCP and checks both give the same answer.
async fn both(server: std::net::SocketAddr, q: &Q) -> Message {
    let udp = query_udp(server, q).await;
    let tcp = query_tcp(server, q).await;
    assert_eq!(
        answer_summary(&udp),
        answer_summary(&tcp),
        "UDP and TCP differ for {}",
        q.name
    );
    assert_eq!(udp.metadata.response_code, tcp.metadata.response_code);
    udp
}

fn assert_recursive_flags(m: &Message) {
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.recursion_available, "RA must be set");
    assert!(
        !m.metadata.authoritative,
        "AA must not be set for forwarded data"
    );
    assert!(!m.metadata.authentic_data, "AD must not be set");
}

#[tokio::test]
async fn a_only_name_gets_synthesized_aaaa_with_ttl_rule() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_recursive_flags(&m);
    // TTL = min(A TTL 300, negative TTL min(3600, 60)) = 60 (RFC 6147 §5.1.7).
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert!(m.authorities.is_empty() && m.additionals.is_empty());
}

#[tokio::test]
async fn several_a_records_give_one_aaaa_each() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("multi-a.dns64.test", RecordType::AAAA)).await;
    let mut lines = answer_summary(&m);
    lines.sort();
    assert_eq!(
        lines,
        [
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80b",
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80c",
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80d",
        ]
    );
}

#[tokio::test]
async fn native_aaaa_is_returned_unchanged() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_recursive_flags(&m);
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    let m = both(d.addr, &Q::new("v6only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v6only.dns64.test. 300 AAAA 2001:db8::60"]
    );
}

#[tokio::test]
async fn mapped_aaaa_is_excluded_and_synthesized() {
    let (_auth, d) = setup("").await;
    // Only an excluded ::ffff:0:0/96 AAAA: synthesize from the A record.
    let m = both(d.addr, &Q::new("mapped.dns64.test", RecordType::AAAA)).await;
    // No SOA came with the (positive) AAAA answer: TTL capped at 600, so the A TTL 300 stays.
    assert_eq!(
        answer_summary(&m),
        ["mapped.dns64.test. 300 AAAA 64:ff9b::5db8:d846"]
    );
    // A mix: the excluded record is removed, the good one kept.
    let m = both(d.addr, &Q::new("mapped-mixed.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["mapped-mixed.dns64.test. 300 AAAA 2001:db8::71"]
    );
    // Only an excluded AAAA and no A: NODATA with the SOA of the A answer.
    let m = both(d.addr, &Q::new("mapped-only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(
        authority_summary(&m),
        ["dns64.test. 60 SOA ns1.dns64.test. hostmaster.dns64.test. 1 3600 900 604800 60"]
    );
}

#[tokio::test]
async fn non_global_ipv4_is_not_synthesized_under_well_known_prefix() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("private.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.answers.is_empty(),
        "10.1.2.3 must not be embedded in 64:ff9b::/96"
    );
    assert_eq!(soa_ttl(&m), Some(60));
    let m = both(
        d.addr,
        &Q::new("private-mixed.dns64.test", RecordType::AAAA),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        ["private-mixed.dns64.test. 60 AAAA 64:ff9b::5db8:d850"]
    );
    let m = both(d.addr, &Q::new("loopback.dns64.test", RecordType::AAAA)).await;
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn network_specific_prefix_embeds_private_ipv4() {
    let (_auth, d) = setup("[dns64]\nprefixes = [\"2001:db8:64::/96\"]\n").await;
    let m = both(d.addr, &Q::new("private.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["private.dns64.test. 60 AAAA 2001:db8:64::a01:203"]
    );
    // Loopback stays excluded under every prefix.
    let m = both(d.addr, &Q::new("loopback.dns64.test", RecordType::AAAA)).await;
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn configured_exclude_ipv4_replaces_default() {
    let (_auth, d) = setup("[dns64]\nexclude_ipv4 = [\"93.184.216.34/32\"]\n").await;
    let m = both(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert!(m.answers.is_empty());
    let m = both(d.addr, &Q::new("private.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["private.dns64.test. 60 AAAA 64:ff9b::a01:203"]
    );
}

#[tokio::test]
async fn every_prefix_length_synthesizes() {
    let cases = [
        ("2001:db8::/32", "2001:db8:5db8:d822::"),
        ("2001:db8:100::/40", "2001:db8:15d:b8d8:22::"),
        ("2001:db8:122::/48", "2001:db8:122:5db8:d8:2200::"),
        ("2001:db8:122:300::/56", "2001:db8:122:35d:b8:d822::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:5d:b8d8:2200:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::5db8:d822"),
    ];
    let auth = start_auth_upstream(LO).await;
    for (prefix, expected) in cases {
        let d = start_dns64d(
            &[auth.addr()],
            "",
            &format!("[dns64]\nprefixes = [\"{prefix}\"]\n"),
        )
        .await;
        let m = both(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
        let expected: std::net::Ipv6Addr = expected.parse().unwrap();
        assert_eq!(
            answer_summary(&m),
            [format!("v4only.dns64.test. 60 AAAA {expected}")],
            "prefix {prefix}"
        );
    }
}

#[tokio::test]
async fn several_prefixes_give_one_aaaa_per_prefix() {
    let (_auth, d) = setup("[dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8:64::/96\"]\n").await;
    let m = both(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822",
            "v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822",
        ]
    );
}

#[tokio::test]
async fn nxdomain_is_returned_without_synthesis() {
    let (auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("nope.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(
        authority_summary(&m),
        ["dns64.test. 60 SOA ns1.dns64.test. hostmaster.dns64.test. 1 3600 900 604800 60"]
    );
    assert_recursive_flags(&m);
    // The NXDOMAIN is cached: the second (TCP) query did not reach the upstream.
    assert_eq!(auth.count("nope.dns64.test", RecordType::AAAA), 1);
}

#[tokio::test]
async fn nodata_without_a_is_nodata_with_soa() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("text.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(soa_ttl(&m), Some(60));
}

#[tokio::test]
async fn cname_chain_is_kept_and_final_name_synthesized() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("cname-chain.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "cname-chain.dns64.test. 300 CNAME cname.dns64.test.",
            "cname.dns64.test. 300 CNAME v4only.dns64.test.",
            "v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822",
        ]
    );
    let m = both(d.addr, &Q::new("cname-dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "cname-dual.dns64.test. 300 CNAME dual.dns64.test.",
            "dual.dns64.test. 300 AAAA 2001:db8::40"
        ]
    );
}

#[tokio::test]
async fn cname_out_of_zone_is_followed_with_target_zone_ttl() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("cname-out.dns64.test", RecordType::AAAA)).await;
    // other.test's negative TTL is min(SOA TTL 45, MINIMUM 600) = 45.
    assert_eq!(
        answer_summary(&m),
        [
            "cname-out.dns64.test. 300 CNAME target.other.test.",
            "target.other.test. 45 AAAA 64:ff9b::5db8:d85a",
        ]
    );
}

#[tokio::test]
async fn cname_to_nxdomain_and_nodata_stay_negative() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("cname-nx.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        answer_summary(&m),
        ["cname-nx.dns64.test. 300 CNAME nowhere.dns64.test."]
    );
    let m = both(d.addr, &Q::new("cname-nodata.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["cname-nodata.dns64.test. 300 CNAME text.dns64.test."]
    );
    assert_eq!(soa_ttl(&m), Some(60));
}

#[tokio::test]
async fn cname_loop_is_servfail() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("loop-a.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn ttl_rule_takes_the_smaller_of_a_ttl_and_negative_ttl() {
    let (_auth, d) = setup("").await;
    for (name, ttl) in [("ttl-long", 60), ("ttl-short", 30), ("ttl-zero", 0)] {
        let m = query_udp(
            d.addr,
            &Q::new(format!("{name}.dns64.test"), RecordType::AAAA),
        )
        .await;
        let answers = aaaa_answers(&m);
        assert_eq!(answers.len(), 1, "{name}");
        assert_eq!(answers[0].1, ttl, "{name}");
    }
}

#[tokio::test]
async fn other_types_pass_through_unchanged() {
    let (_auth, d) = setup("").await;
    let m = both(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_recursive_flags(&m);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let m = both(d.addr, &Q::new("text.dns64.test", RecordType::TXT)).await;
    assert_eq!(answer_summary(&m), ["text.dns64.test. 300 TXT hello"]);
    let m = both(d.addr, &Q::new("mx.dns64.test", RecordType::MX)).await;
    assert_eq!(
        answer_summary(&m),
        ["mx.dns64.test. 300 MX 10 v4only.dns64.test."]
    );
    let m = both(d.addr, &Q::new("nope.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = both(d.addr, &Q::new("v6only.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(soa_ttl(&m), Some(60));
}

#[tokio::test]
async fn question_case_is_echoed_exactly() {
    let (_auth, d) = setup("").await;
    let q = Q::new("V4Only.DNS64.Test", RecordType::AAAA);
    for m in [query_udp(d.addr, &q).await, query_tcp(d.addr, &q).await] {
        assert_eq!(m.queries.len(), 1);
        assert!(
            m.queries[0].name().eq_case(&q.qname()),
            "question case changed: {}",
            m.queries[0].name()
        );
        assert_eq!(aaaa_answers(&m).len(), 1);
    }
}

#[tokio::test]
async fn cached_answers_count_down() {
    let (auth, d) = setup("").await;
    let first = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    let second = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(answer_summary(&first), answer_summary(&second));
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);
}

#[tokio::test]
async fn cache_ttl_bounds_apply_to_the_first_answer_and_to_cached_ones() {
    let (_auth, d) = setup("[cache]\nmin_ttl = 40\nmax_ttl = 100\nnegative_max_ttl = 20\n").await;
    // Every answer twice: from the upstream, then from the cache (same second: same TTL).
    for _ in 0..2 {
        let m = query_udp(d.addr, &Q::new("ttl-long.dns64.test", RecordType::A)).await;
        assert_eq!(
            answer_summary(&m),
            ["ttl-long.dns64.test. 100 A 93.184.216.100"]
        );
        let m = query_udp(d.addr, &Q::new("ttl-short.dns64.test", RecordType::A)).await;
        assert_eq!(
            answer_summary(&m),
            ["ttl-short.dns64.test. 40 A 93.184.216.101"]
        );
        let m = query_udp(d.addr, &Q::new("nope.dns64.test", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            soa_ttl(&m),
            Some(20),
            "min(SOA TTL, MINIMUM 60) capped at 20"
        );
        // Synthesis: min(A TTL 100 after the cap, AAAA negative TTL 20 after the cap).
        let m = query_udp(d.addr, &Q::new("ttl-long.dns64.test", RecordType::AAAA)).await;
        assert_eq!(aaaa_answers(&m).len(), 1);
        assert_eq!(aaaa_answers(&m)[0].1, 20);
    }
}

/// RFC 6147 §5.1: with `dns64.parallel_a = false`, A is asked only when the
/// AAAA answer is empty; with `true` (forward mode's default) both at once.
#[tokio::test]
async fn a_is_asked_only_when_the_aaaa_answer_is_empty() {
    let (auth, d) = setup("[dns64]\nparallel_a = false\n").await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert_eq!(auth.count("dual.dns64.test", RecordType::AAAA), 1);
    assert_eq!(
        auth.count("dual.dns64.test", RecordType::A),
        0,
        "{:?}",
        auth.seen()
    );
    assert_eq!(auth.count("v4only.dns64.test", RecordType::AAAA), 1);
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);

    let (auth, d) = setup("[dns64]\nparallel_a = true\n").await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    // The A lookup runs in a task of its own: it reaches the upstream even
    // though the answer did not wait for it.
    auth.wait_for_count("dual.dns64.test", RecordType::A, 1)
        .await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);
}

/// A server that never answers AAAA questions (the case RFC 6147 §5.1.2
/// has in mind): A is asked alongside once the AAAA answer is one attempt's
/// timeout late, so the client gets its synthesized AAAA when the AAAA
/// lookup gives up, within the time bound, not after a second one.
#[tokio::test]
async fn a_server_that_drops_aaaa_questions_still_gets_synthesis_in_time() {
    let fake = start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        if q.query_type() == RecordType::A {
            let owner = q.name().to_string();
            // Slow enough that asking A only after the AAAA lookup gave up
            // (2 s) would answer after 2.9 s.
            FakeAction::Delayed(
                std::time::Duration::from_millis(900),
                reply_with(
                    req,
                    vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
                ),
            )
        } else {
            FakeAction::Drop
        }
    })
    .await;
    // timeout_ms = 1000, attempts = 2 (start_dns64d): a bound of 2 s.
    let d = start_dns64d(&[fake.addr()], "", "[dns64]\nparallel_a = false\n").await;
    let started = std::time::Instant::now();
    let m = query_udp(d.addr, &Q::new("noaaaa.example", RecordType::AAAA)).await;
    let elapsed = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(answer_summary(&m).len(), 1, "{m:?}");
    assert!(
        answer_summary(&m)[0].ends_with(" AAAA 64:ff9b::5db8:d822"),
        "{m:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_millis(2500),
        "answered after {elapsed:?}"
    );
    assert_eq!(fake.count("noaaaa.example", RecordType::A), 1);
}

/// With `dns64.parallel_a = false` a silent upstream still gets its SERVFAIL
/// within the time bound (the A lookup started alongside is not waited for
/// past it), not after an AAAA bound and then an A bound.
#[tokio::test]
async fn a_silent_upstream_fails_within_the_bound_with_sequential_a() {
    let silent = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let d = start_dns64d(&[silent.addr()], "", "[dns64]\nparallel_a = false\n").await;
    let started = std::time::Instant::now();
    let m = query_udp(d.addr, &Q::new("gone.example", RecordType::AAAA)).await;
    let elapsed = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    // timeout_ms = 1000 × attempts = 2.
    assert!(
        elapsed < std::time::Duration::from_millis(2500),
        "SERVFAIL after {elapsed:?}"
    );
    assert!(
        silent.count("gone.example", RecordType::A) >= 1,
        "A asked alongside"
    );
}

/// The A lookup's timing is part of the configuration snapshot: a reload of
/// `upstream.timeout_ms` and `upstream.attempts` applies to the next question
/// (when to ask A alongside a late AAAA answer, how long to wait for A).
#[tokio::test]
async fn a_reload_of_the_upstream_timing_applies_to_the_a_lookup() {
    let fake = start_fake_upstream(LO, |req, _| {
        let q = &req.queries[0];
        let owner = q.name().to_string();
        if q.query_type() == RecordType::A {
            FakeAction::Delayed(
                std::time::Duration::from_millis(1200),
                reply_with(
                    req,
                    vec![rr_a(&owner, 300, Ipv4Addr::new(93, 184, 216, 34))],
                ),
            )
        } else {
            // NODATA, late.
            FakeAction::Delayed(
                std::time::Duration::from_millis(1500),
                reply_with(req, vec![]),
            )
        }
    })
    .await;
    let toml = |timeout_ms: u32, attempts: u32| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\ntimeout_ms = {timeout_ms}\nattempts = {attempts}\n[dns64]\nparallel_a = false\n",
            fake.addr()
        )
    };
    // 1000 ms × 2: the AAAA answer is an attempt late, so A is asked
    // alongside at 1 s; it answers at 2.2 s, past the 2 s bound.
    let mut d = start_dns64d_toml(&toml(1000, 2)).await;
    let m = query_udp(d.addr, &Q::new("before.example", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");

    let new = dns64d::ops::config::from_toml_str(&toml(3000, 1)).unwrap();
    let notes = d.server.reload(new).await.expect("reload accepted");
    assert!(notes.is_empty(), "{notes:?}");
    // 3000 ms × 1: the NODATA at 1.5 s is in time, A is asked then and
    // answers at 2.7 s, within the new 3 s bound.
    let m = query_udp(d.addr, &Q::new("after.example", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(
        answer_summary(&m),
        ["after.example. 300 AAAA 64:ff9b::5db8:d822"],
        "{m:?}"
    );
    assert_eq!(fake.count("after.example", RecordType::A), 1);
}
