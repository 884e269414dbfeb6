//! Recursive mode (`upstream.mode = "recursive"`) against a miniature DNS
//! hierarchy on loopback: a root, a TLD and two leaves served by in-process
//! authoritative servers on 127.0.0.1–4 port 53, inside a network namespace
//! the test creates (port 53 needs root; CI runs as root).

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;

fn hierarchy_zone(file: &str) -> std::path::PathBuf {
    data_dir().join("hierarchy").join(file)
}

/// The root, `test.` and `rec.test.` of the miniature hierarchy.
const REC_TEST: [(u8, &str, &str); 3] = [
    (1, ".", "root.zone"),
    (2, "test.", "test.zone"),
    (3, "rec.test.", "rec.test.zone"),
];

/// Serves the miniature hierarchy's zones (`(host, origin, zone file)`, each
/// on 127.0.0.host:53) and starts a recursive dns64d on 127.0.0.1:5353 from
/// its root hints (timeout 500 ms, 2 attempts).
async fn serve_hierarchy_and_recurse(servers: &[(u8, &str, &str)]) -> (Vec<AuthUpstream>, Dns64d) {
    serve_hierarchy_and_recurse_with(servers, "").await
}

/// [`serve_hierarchy_and_recurse`] with more `[upstream]` lines.
async fn serve_hierarchy_and_recurse_with(
    servers: &[(u8, &str, &str)],
    upstream: &str,
) -> (Vec<AuthUpstream>, Dns64d) {
    let mut authorities = Vec::new();
    for &(host, origin, file) in servers {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
        authorities.push(
            start_auth_on_port_with(ip, 53, &[(origin.to_string(), hierarchy_zone(file))]).await,
        );
    }
    let toml = format!(
        "listen = [\"127.0.0.1:5353\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 500\nattempts = 2\n{upstream}",
        hierarchy_zone("root.hints").display().to_string()
    );
    (authorities, start_dns64d_toml(&toml).await)
}

/// The SOA, NS and ns-root. lines of a root zone of a test's own, served
/// on 127.0.0.1; a test adds its delegations.
const SMALL_ROOT: &str = "$ORIGIN .\n@ 86400 IN SOA ns-root. hostmaster.ns-root. 1 1800 900 604800 86400\n@ 86400 IN NS ns-root.\nns-root. 86400 IN A 127.0.0.1\n";

/// The zone `two.`, its name server `ns`, with `hosts` names h0.two. …
/// each A 93.184.216.34.
fn two_zone(ns: &str, hosts: usize) -> String {
    let hosts: String = (0..hosts)
        .map(|i| format!("h{i} 300 IN A 93.184.216.34\n"))
        .collect();
    format!(
        "$ORIGIN two.\n@ 3600 IN SOA {ns} hostmaster 1 1800 900 604800 60\n@ 3600 IN NS {ns}\n{hosts}"
    )
}

/// A small hierarchy of a test's own and a recursive dns64d on it.
struct SmallHierarchy {
    _dir: tempfile::TempDir,
    /// The root (127.0.0.1), then the zones in the order given.
    servers: Vec<AuthUpstream>,
    d: Dns64d,
}

/// Serves [`SMALL_ROOT`] plus `delegations` on 127.0.0.1:53 and each of
/// `zones` (origin, zone text, host) on 127.0.0.host:53, and starts a
/// recursive dns64d on 127.0.0.1:5353 from the root's hints (timeout
/// 1000 ms, 2 attempts).
async fn serve_small_hierarchy(delegations: &str, zones: &[(&str, String, u8)]) -> SmallHierarchy {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let hints = write(
        "root.hints",
        ". 3600000 IN NS ns-root.\nns-root. 3600000 IN A 127.0.0.1\n",
    );
    let root = write("root.zone", &format!("{SMALL_ROOT}{delegations}"));
    let mut servers = vec![
        start_auth_on_port_with(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            53,
            &[(".".into(), root)],
        )
        .await,
    ];
    for (origin, text, host) in zones {
        let file = write(&format!("{origin}zone"), text);
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, *host));
        servers.push(start_auth_on_port_with(ip, 53, &[(origin.to_string(), file)]).await);
    }
    let toml = format!(
        "listen = [\"127.0.0.1:5353\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 1000\nattempts = 2\n",
        hints.display().to_string()
    );
    let d = start_dns64d_toml(&toml).await;
    SmallHierarchy {
        _dir: dir,
        servers,
        d,
    }
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn dns64_on_top_of_recursion_from_a_test_root() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let servers = [
            (1, ".", "root.zone"),
            (2, "test.", "test.zone"),
            (3, "rec.test.", "rec.test.zone"),
            (4, "far.test.", "far.test.zone"),
        ];
        let (authorities, d) = serve_hierarchy_and_recurse(&servers).await;

        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // TTL = min(A TTL 300, rec.test's negative TTL min(3600, 60)) = 60.
        assert_eq!(
            answer_summary(&m),
            ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]
        );
        assert!(!m.metadata.authentic_data && !m.metadata.authoritative);

        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA)).await;
        assert_eq!(answer_summary(&m), ["dual.rec.test. 300 AAAA 2001:db8::40"]);

        let m = query_tcp(d.addr, &Q::new("v4only.rec.test", RecordType::A)).await;
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 300 A 93.184.216.34"]);

        // A CNAME across zones: synthesized with the target zone's negative TTL (45).
        let m = query_udp(d.addr, &Q::new("cname.rec.test", RecordType::AAAA)).await;
        assert_eq!(
            answer_summary(&m),
            [
                "cname.rec.test. 300 CNAME target.far.test.",
                "target.far.test. 45 AAAA 64:ff9b::5db8:d85a"
            ]
        );

        let m = query_udp(d.addr, &Q::new("nope.rec.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.answers.is_empty());
        assert_eq!(soa_ttl(&m), Some(60), "the leaf's SOA, TTL min(3600, 60)");

        let m = query_udp(d.addr, &Q::new("text.rec.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(soa_ttl(&m), Some(60));

        // A lame delegation (nothing answers at 127.0.0.9): SERVFAIL, in bounded time.
        let started = std::time::Instant::now();
        let m = query_udp(d.addr, &Q::new("host.lame.test", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
        drop(authorities);
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn the_recursor_keeps_its_upstream_sockets_between_queries() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let (authorities, d) = serve_hierarchy_and_recurse(&REC_TEST).await;
        const NAMES: usize = 40;
        for i in 0..NAMES {
            let m = query_udp(d.addr, &Q::new(format!("nx{i}.rec.test"), RecordType::A)).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
        }
        let leaf: Vec<SeenQuery> = authorities[2]
            .seen()
            .into_iter()
            .filter(|q| q.protocol == Transport::Udp && q.name.starts_with("nx"))
            .collect();
        assert!(leaf.len() >= NAMES, "{} queries at the leaf", leaf.len());
        // One client socket: its queries land on one listener thread, whose
        // idle sockets carry them (a new socket per query before).
        let ports: std::collections::HashSet<u16> = leaf.iter().map(|q| q.src.port()).collect();
        assert!(
            ports.len() <= 3,
            "{} source ports for {} queries: {ports:?}",
            ports.len(),
            leaf.len()
        );
        // ...each with a random ID of its own (a few may collide by chance).
        let ids: std::collections::HashSet<u16> = leaf.iter().map(|q| q.id).collect();
        assert!(
            ids.len() + 3 >= leaf.len(),
            "{} IDs for {} queries",
            ids.len(),
            leaf.len()
        );
        drop(authorities);
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn concurrent_questions_for_one_name_are_asked_upstream_once() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let (authorities, d) = serve_hierarchy_and_recurse(&REC_TEST).await;
        // 30 clients (30 sockets, so several listener threads) ask at once.
        let asks = (0..30).map(|_| async {
            let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
            assert_eq!(
                answer_summary(&m),
                ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]
            );
        });
        futures_util::future::join_all(asks).await;
        let leaf = &authorities[2];
        assert_eq!(
            leaf.count("v4only.rec.test", RecordType::AAAA),
            1,
            "{:?}",
            leaf.seen()
        );
        assert_eq!(
            leaf.count("v4only.rec.test", RecordType::A),
            1,
            "{:?}",
            leaf.seen()
        );
        // A is asked after the AAAA answer (dns64.parallel_a = false), so
        // its walk finds the delegations the AAAA walk cached: no question
        // was asked twice anywhere in the hierarchy.
        for authority in &authorities {
            let seen = authority.seen();
            let distinct: std::collections::HashSet<(String, RecordType)> = seen
                .iter()
                .map(|q| (q.name.to_lowercase(), q.qtype))
                .collect();
            assert_eq!(distinct.len(), seen.len(), "{seen:?}");
        }
        drop(authorities);
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn questions_that_need_one_name_servers_address_look_it_up_once() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // two.'s name server ns.slow. has no glue; slow.'s server
        // (127.0.0.5, a fake) answers its address after 200 ms, so every
        // question for two. needs that address while it is being looked up.
        let slow = start_fake_upstream_at("127.0.0.5:53".parse().unwrap(), |request, _| {
            let mut reply = if request.queries[0].query_type() == RecordType::A {
                reply_with(request, vec![rr_a("ns.slow.", 300, Ipv4Addr::new(127, 0, 0, 6))])
            } else {
                let mut reply = reply_to(request);
                reply.add_authority(rr_soa("slow.", 300, 60));
                reply
            };
            reply.metadata.authoritative = true;
            FakeAction::Delayed(std::time::Duration::from_millis(200), reply)
        })
        .await;
        let hierarchy = serve_small_hierarchy(
            "two. 86400 IN NS ns.slow.\nslow. 86400 IN NS ns-slow.\nns-slow. 86400 IN A 127.0.0.5\n",
            &[("two.", two_zone("ns.slow.", 20), 6)],
        )
        .await;
        let d = &hierarchy.d;
        let addr = d.addr;
        let asks = (0..20).map(|index| async move {
            let name = format!("h{index}.two");
            let m = query_udp(addr, &Q::new(&name, RecordType::A)).await;
            assert_eq!(answer_summary(&m), [format!("{name}. 300 A 93.184.216.34")], "{m:?}");
        });
        futures_util::future::join_all(asks).await;
        assert_eq!(slow.count("ns.slow", RecordType::A), 1, "{:?}", slow.seen());
    });
}

/// The zone `one.`'s answer to `request`: h.one. A 93.184.216.34, authoritative.
fn one_answer(request: &Message) -> Message {
    let mut reply = reply_with(
        request,
        vec![rr_a("h.one.", 300, Ipv4Addr::new(93, 184, 216, 34))],
    );
    reply.metadata.authoritative = true;
    reply
}

/// A small hierarchy whose zone `one.` has one name server, a fake at
/// 127.0.0.5 that does what `behaviour` says, and dns64d's answer to
/// `h.one. A` through it, which must be [`one_answer`]'s.
async fn ask_h_one_through(
    behaviour: impl Fn(&Message, Transport) -> FakeAction + Send + Sync + 'static,
) -> FakeUpstream {
    let one = start_fake_upstream_at("127.0.0.5:53".parse().unwrap(), behaviour).await;
    let hierarchy = serve_small_hierarchy(
        "one. 86400 IN NS ns-one.\nns-one. 86400 IN A 127.0.0.5\n",
        &[],
    )
    .await;
    let m = query_udp(hierarchy.d.addr, &Q::new("h.one", RecordType::A)).await;
    assert_eq!(answer_summary(&m), ["h.one. 300 A 93.184.216.34"], "{m:?}");
    one
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_zone_with_one_name_server_survives_a_lost_query() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // one.'s only name server drops the first query.
        let dropped = std::sync::atomic::AtomicBool::new(false);
        let one = ask_h_one_through(move |request, _| {
            if !dropped.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return FakeAction::Drop;
            }
            FakeAction::Reply(one_answer(request))
        })
        .await;
        assert_eq!(one.count("h.one", RecordType::A), 2, "{:?}", one.seen());
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_truncated_reply_is_asked_again_over_tcp() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // one.'s name server truncates every UDP reply.
        let one = ask_h_one_through(|request, transport| {
            FakeAction::Reply(match transport {
                Transport::Udp => {
                    let mut reply = reply_to(request);
                    reply.metadata.authoritative = true;
                    reply.metadata.truncation = true;
                    reply
                }
                Transport::Tcp => one_answer(request),
            })
        })
        .await;
        let transports: Vec<Transport> = one.seen().iter().map(|q| q.protocol).collect();
        assert_eq!(transports, [Transport::Udp, Transport::Tcp]);
    });
}

/// The name server of `one.` with `old.one. DNAME one.` (RFC 6672): a name
/// below `old.one.` gets the DNAME, the CNAME synthesized from it unless
/// `without_cname` (as servers older than RFC 6672 may answer), and what
/// the zone holds at the CNAME's target; `h.one.` has an A record only.
fn dname_zone(request: &Message, without_cname: bool) -> Message {
    let query = &request.queries[0];
    let asked = query.name().to_ascii().to_ascii_lowercase();
    let mut reply = reply_to(request);
    reply.metadata.authoritative = true;
    let target = match asked.strip_suffix("old.one.") {
        Some(below) if !below.is_empty() => {
            let target = format!("{below}one.");
            reply.add_answer(rr_dname("old.one.", 600, "one."));
            if !without_cname {
                reply.add_answer(rr_cname(&asked, 600, &target));
            }
            target
        }
        _ => asked,
    };
    if target == "h.one." && query.query_type() == RecordType::A {
        reply.add_answer(rr_a("h.one.", 300, Ipv4Addr::new(93, 184, 216, 34)));
    } else {
        reply.add_authority(rr_soa("one.", 3600, 60));
    }
    reply
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_dname_is_passed_on_with_its_cname_and_the_aaaa_synthesized_at_the_target() {
    // Each variant in a namespace of its own: the servers bind the same ports.
    for without_cname in [false, true] {
        let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
        netns.run(move || async move {
            let _one =
                start_fake_upstream_at("127.0.0.5:53".parse().unwrap(), move |request, _| {
                    FakeAction::Reply(dname_zone(request, without_cname))
                })
                .await;
            let hierarchy = serve_small_hierarchy(
                "one. 86400 IN NS ns-one.\nns-one. 86400 IN A 127.0.0.5\n",
                &[],
            )
            .await;
            let m = query_udp(hierarchy.d.addr, &Q::new("h.old.one", RecordType::AAAA)).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
            let kinds: Vec<(String, RecordType)> = m
                .answers
                .iter()
                .map(|record| (record.name.to_string(), record.record_type()))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("old.one.".to_string(), RecordType::DNAME),
                    ("h.old.one.".to_string(), RecordType::CNAME),
                    ("h.one.".to_string(), RecordType::AAAA)
                ],
                "without the CNAME: {without_cname}"
            );
            assert_eq!(
                answer_summary(&m)[1..],
                [
                    "h.old.one. 600 CNAME h.one.",
                    "h.one. 60 AAAA 64:ff9b::5db8:d822"
                ],
                "without the CNAME: {without_cname}"
            );
        });
    }
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_server_without_edns_is_asked_again_without_it() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // one.'s name server answers FORMERR, without an OPT record, to
        // every query that has one.
        let one = ask_h_one_through(|request, _| {
            if request.edns.is_some() {
                return FakeAction::Reply(reply_rcode(request, ResponseCode::FormErr));
            }
            FakeAction::Reply(one_answer(request))
        })
        .await;
        let edns: Vec<Option<u16>> = one.seen().iter().map(|q| q.edns_payload).collect();
        assert_eq!(edns, [Some(1232), None]);
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn with_0x20_the_names_go_out_in_random_case_and_come_back_as_asked() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let (authorities, d) =
            serve_hierarchy_and_recurse_with(&REC_TEST, "case_randomization = true\n").await;
        for i in 0..10 {
            let name = format!("nx{i}.rec.test");
            let m = query_udp(d.addr, &Q::new(&name, RecordType::A)).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
            assert_eq!(m.queries[0].name().to_string(), format!("{name}."));
        }
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
        assert_eq!(
            answer_summary(&m),
            ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]
        );
        let leaf = authorities[2].seen();
        let mixed = leaf
            .iter()
            .filter(|q| q.name != q.name.to_lowercase())
            .count();
        assert!(
            mixed * 2 >= leaf.len(),
            "{mixed} of {} names in mixed case: {leaf:?}",
            leaf.len()
        );
        drop(authorities);
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_lame_name_server_is_asked_last_for_its_zone() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // two.'s name server has two addresses: 127.0.0.5 refuses (it does
        // not serve the zone), 127.0.0.6 answers.
        const NAMES: usize = 20;
        let lame = start_fake_upstream_at("127.0.0.5:53".parse().unwrap(), |request, _| {
            FakeAction::Reply(reply_rcode(request, ResponseCode::Refused))
        })
        .await;
        let hierarchy = serve_small_hierarchy(
            "two. 86400 IN NS ns-two.\nns-two. 86400 IN A 127.0.0.5\nns-two. 86400 IN A 127.0.0.6\n",
            &[("two.", two_zone("ns-two.", NAMES), 6)],
        )
        .await;
        let d = &hierarchy.d;
        for i in 0..NAMES {
            let m = query_udp(d.addr, &Q::new(format!("h{i}.two"), RecordType::A)).await;
            assert_eq!(answer_summary(&m), [format!("h{i}.two. 300 A 93.184.216.34")], "{m:?}");
        }
        // It answers fast, so without its lameness remembered it would be
        // asked first whenever it led on round-trip time.
        assert!(lame.total() <= 1, "the lame address got {} queries: {:?}", lame.total(), lame.seen());
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_silent_name_server_is_avoided_after_it_failed() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // A zone whose name server has two addresses: 127.0.0.5 takes
        // queries and never answers, 127.0.0.6 answers.
        const NAMES: usize = 30;
        let dead = std::net::UdpSocket::bind("127.0.0.5:53").unwrap();
        let hierarchy = serve_small_hierarchy(
            "two. 86400 IN NS ns-two.\nns-two. 86400 IN A 127.0.0.5\nns-two. 86400 IN A 127.0.0.6\n",
            &[("two.", two_zone("ns-two.", NAMES), 6)],
        )
        .await;
        let (d, live) = (&hierarchy.d, &hierarchy.servers[1]);
        let mut slow = 0;
        for i in 0..NAMES {
            let started = std::time::Instant::now();
            let m = query_udp(d.addr, &Q::new(format!("h{i}.two"), RecordType::A)).await;
            assert_eq!(answer_summary(&m), [format!("h{i}.two. 300 A 93.184.216.34")], "{m:?}");
            if started.elapsed() > std::time::Duration::from_millis(100) {
                slow += 1;
            }
        }
        dead.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let mut to_dead = 0;
        while dead.recv(&mut buf).is_ok() {
            to_dead += 1;
        }
        let to_live = live.seen().iter().filter(|q| q.name.starts_with('h')).count();
        eprintln!("slow {slow}, dead {to_dead}, live {to_live}");
        // Every name answered (hickory used to spend its whole 5 s on the
        // silent address and give up); the silent one is mostly avoided once
        // it failed (its smoothed RTT decays, so it is probed again now and
        // then, as Unbound probes a server it backed off from).
        assert!(to_live >= NAMES, "{to_live}");
        assert!(slow <= NAMES / 4, "{slow} of {NAMES} questions waited for the silent address");
        assert!(to_dead <= NAMES / 2, "the silent address got {to_dead} queries for {NAMES} names");
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn flush_empties_the_recursors_own_cache_too() {
    use dns64d::answering::cache::FlushScope;
    use dns64d::ops::control::{self, Command, Reply, StatusInfo};
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let (authorities, d) = serve_hierarchy_and_recurse(&REC_TEST).await;
        let leaf = &authorities[2];
        // `dns64d ctl flush` as the main loop answers it.
        let info = StatusInfo {
            started: std::time::Instant::now(),
            config_file: None,
        };
        let flush = |scope| control::execute(&Command::Flush(scope), &d.server, &info);
        let q = Q::new("v4only.rec.test", RecordType::A);
        let ask = || async {
            let m = query_udp(d.addr, &q).await;
            assert_eq!(answer_summary(&m).len(), 1, "{m:?}");
            assert!(answer_summary(&m)[0].ends_with(" A 93.184.216.34"), "{m:?}");
        };
        ask().await;
        assert_eq!(leaf.count("v4only.rec.test", RecordType::A), 1);

        let root = &authorities[0];
        let root_queries = root.seen().len();

        // flush NAME: the recursor keeps no answer of its own, so the name
        // is asked at its zone again; the delegations stay (the root is not asked).
        let name = Name::from_ascii("v4only.rec.test.").unwrap();
        assert_eq!(
            flush(FlushScope::Name(name)),
            Reply::Ok(
                "flushed 1 cache entries\nthe recursor keeps no answers of its own; its delegations stay until `dns64d ctl flush`\n".into()
            )
        );
        ask().await;
        assert_eq!(leaf.count("v4only.rec.test", RecordType::A), 2);
        assert_eq!(root.seen().len(), root_queries, "{:?}", root.seen());

        // flush (everything) empties the delegations too: the walk starts at the root again
        assert_eq!(
            flush(FlushScope::All),
            Reply::Ok(
                "flushed 1 cache entries\nand emptied the recursor's delegations, name server addresses and round-trip times\n".into()
            )
        );
        ask().await;
        assert_eq!(leaf.count("v4only.rec.test", RecordType::A), 3);
        assert!(root.seen().len() > root_queries, "{:?}", root.seen());
        drop(authorities);
    });
}

#[test]
fn recursive_mode_needs_no_servers() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nresolv_conf = {:?}\n",
        hierarchy_zone("root.hints").display().to_string(),
        dir.path().join("missing").display().to_string()
    );
    let config =
        dns64d::ops::config::from_toml_str(&toml).expect("recursive mode with root hints only");
    assert!(config.upstream.servers.is_empty());
    let error = dns64d::ops::config::from_toml_str(
        "[upstream]\nmode = \"recursive\"\nroot_hints = \"/nonexistent/root.hints\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("upstream.root_hints") && error.contains("/nonexistent/root.hints"),
        "{error}"
    );
}

#[test]
fn dnssec_settings_are_checked() {
    let hints = hierarchy_zone("root.hints").display().to_string();
    let recursive = format!("[upstream]\nmode = \"recursive\"\nroot_hints = {hints:?}\n");
    let error = |toml: &str| {
        dns64d::ops::config::from_toml_str(toml)
            .unwrap_err()
            .to_string()
    };

    let forward = error("[upstream]\nservers = [\"192.0.2.1\"]\ndnssec_validation = true\n");
    assert!(
        forward.contains("upstream.dnssec_validation") && forward.contains("recursive"),
        "{forward}"
    );

    let unused = error(&format!("{recursive}trust_anchor = \"/etc/hosts\"\n"));
    assert!(
        unused.contains("upstream.trust_anchor") && unused.contains("dnssec_validation"),
        "{unused}"
    );

    let missing = error(&format!(
        "{recursive}dnssec_validation = true\ntrust_anchor = \"/nonexistent/root.key\"\n"
    ));
    assert!(
        missing.contains("upstream.trust_anchor") && missing.contains("/nonexistent/root.key"),
        "{missing}"
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "; no keys here\n").unwrap();
    let no_key = error(&format!(
        "{recursive}dnssec_validation = true\ntrust_anchor = {:?}\n",
        empty.display().to_string()
    ));
    assert!(
        no_key.contains("upstream.trust_anchor") && no_key.contains("no DNSKEY"),
        "{no_key}"
    );

    // Validation with the built-in IANA root keys needs no file.
    let config =
        dns64d::ops::config::from_toml_str(&format!("{recursive}dnssec_validation = true\n"))
            .expect("validation with the built-in trust anchor");
    let settings = config.upstream.recursive.expect("recursive mode");
    assert!(settings.dnssec_validation && settings.trust_anchor.is_none());
}

/// A zone of the hierarchy, signed with a fresh ECDSA P-256 key (with an NSEC
/// chain for denials), and the DS record its parent publishes for that key.
struct SignedZone {
    origin: Name,
    zone: hickory_server::store::file::FileZoneHandler,
    public_key: hickory_proto::dnssec::PublicKeyBuf,
}

impl SignedZone {
    fn load(origin: &str, file: &str) -> (SignedZone, Box<dyn hickory_proto::dnssec::SigningKey>) {
        use hickory_proto::dnssec::crypto::EcdsaSigningKey;
        use hickory_proto::dnssec::{Algorithm, SigningKey};
        let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
        let key = EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).unwrap();
        let public_key = key.to_public_key().unwrap();
        let origin = Name::from_ascii(origin).unwrap();
        let zone = load_zone(
            &origin,
            &hierarchy_zone(file),
            Some(hickory_server::dnssec::NxProofKind::Nsec),
        );
        (
            SignedZone {
                origin,
                zone,
                public_key,
            },
            Box::new(key),
        )
    }

    /// The DS record for this zone's key, as its parent publishes it.
    fn ds(&self) -> Record {
        use hickory_proto::dnssec::DigestType;
        use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
        let ds = DS::from_key(&self.public_key, &self.origin, DigestType::SHA256).unwrap();
        Record::from_rdata(
            self.origin.clone(),
            3600,
            RData::DNSSEC(DNSSECRData::DS(ds)),
        )
    }

    /// Adds the DS records of signed children, then signs the zone with `key`.
    fn sign(
        mut self,
        key: Box<dyn hickory_proto::dnssec::SigningKey>,
        children: &[Record],
    ) -> (
        Name,
        std::sync::Arc<dyn hickory_server::zone_handler::ZoneHandler>,
    ) {
        use hickory_proto::dnssec::DnssecSigner;
        use hickory_proto::dnssec::rdata::DNSKEY;
        for ds in children {
            self.zone.upsert_mut(ds.clone(), 0);
        }
        let signer = DnssecSigner::new(
            DNSKEY::from_key(&self.public_key),
            key,
            self.origin.clone(),
            std::time::Duration::from_secs(86400),
        );
        self.zone.add_zone_signing_key_mut(signer).unwrap();
        self.zone.secure_zone_mut().unwrap();
        (self.origin, std::sync::Arc::new(self.zone))
    }

    /// Like [`Self::sign`], then spoils the signature of `owner`'s A set (one
    /// bit of the signature flipped): that set is bogus, the rest of the zone
    /// (the NSEC proofs for `owner` included) stays secure.
    fn sign_with_bad_a_signature(
        mut self,
        key: Box<dyn hickory_proto::dnssec::SigningKey>,
        owner: &str,
    ) -> (
        Name,
        std::sync::Arc<dyn hickory_server::zone_handler::ZoneHandler>,
    ) {
        use hickory_proto::dnssec::DnssecSigner;
        use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
        let signer = DnssecSigner::new(
            DNSKEY::from_key(&self.public_key),
            key,
            self.origin.clone(),
            std::time::Duration::from_secs(86400),
        );
        self.zone.add_zone_signing_key_mut(signer).unwrap();
        self.zone.secure_zone_mut().unwrap();
        let key = hickory_proto::rr::RrKey::new(
            hickory_proto::rr::LowerName::new(&Name::from_ascii(owner).unwrap()),
            RecordType::A,
        );
        let set = self
            .zone
            .records_get_mut()
            .get_mut(&key)
            .expect("the A set to spoil");
        let set = std::sync::Arc::make_mut(set);
        let spoiled: Vec<Record> = set
            .rrsigs()
            .iter()
            .map(|record| {
                let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data else {
                    panic!("not an RRSIG: {record}");
                };
                let mut signature = rrsig.sig().to_vec();
                signature[0] ^= 1;
                let rrsig = RRSIG::from_sig(rrsig.input().clone(), signature);
                Record::from_rdata(
                    record.name.clone(),
                    record.ttl,
                    RData::DNSSEC(DNSSECRData::RRSIG(rrsig)),
                )
            })
            .collect();
        assert!(!spoiled.is_empty());
        set.clear_rrsigs();
        for record in spoiled {
            set.insert_rrsig(record);
        }
        (self.origin, std::sync::Arc::new(self.zone))
    }
}

/// "owner TYPE" for the type each RRSIG among `records` covers.
fn covered(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
                Some(format!("{} {}", r.name, sig.input().type_covered))
            }
            _ => None,
        })
        .collect()
}

fn has_type(records: &[Record], record_type: RecordType) -> bool {
    records.iter().any(|r| r.record_type() == record_type)
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn dnssec_validation_on_a_signed_hierarchy() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        // Signed: the root, test. and rec.test. (a secure chain). far.test. is
        // unsigned and test. has no DS for it (insecure). bad.test. is signed, but
        // test. publishes the DS of another key (bogus).
        let (rec, rec_key) = SignedZone::load("rec.test.", "rec.test.zone");
        let (bad, bad_key) = SignedZone::load("bad.test.", "bad.test.zone");
        let (other_key_for_bad, _) = SignedZone::load("bad.test.", "bad.test.zone");
        let (tld, tld_key) = SignedZone::load("test.", "test.zone");
        let (root, root_key) = SignedZone::load(".", "root.zone");
        let children_of_tld = [rec.ds(), other_key_for_bad.ds()];
        let children_of_root = [tld.ds()];
        let dir = tempfile::tempdir().unwrap();
        let anchor = dir.path().join("root.key");
        std::fs::write(
            &anchor,
            format!(
                "; the test root's key\n. 3600 IN DNSKEY {}\n",
                hickory_proto::dnssec::rdata::DNSKEY::from_key(&root.public_key)
            ),
        )
        .unwrap();

        let far_origin = Name::from_ascii("far.test.").unwrap();
        let far: std::sync::Arc<dyn hickory_server::zone_handler::ZoneHandler> =
            std::sync::Arc::new(load_zone(&far_origin, &hierarchy_zone("far.test.zone"), None));
        let zones = [
            (1, root.sign(root_key, &children_of_root)),
            (2, tld.sign(tld_key, &children_of_tld)),
            (3, rec.sign_with_bad_a_signature(rec_key, "badsig.rec.test.")),
            (4, (far_origin, far)),
            (5, bad.sign(bad_key, &[])),
        ];
        let mut authorities = Vec::new();
        for (host, handler) in zones {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
            authorities.push(start_auth_with_handlers(ip, 53, vec![handler]).await);
        }
        let toml = format!(
            "listen = [\"127.0.0.1:5353\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 1000\nattempts = 2\ndnssec_validation = true\ntrust_anchor = {:?}\n",
            hierarchy_zone("root.hints").display().to_string(),
            anchor.display().to_string(),
        );
        let d = start_dns64d_toml(&toml).await;

        // A secure native AAAA: AD for a client that sets DO (with the RRSIG) ...
        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authentic_data, "secure answer with DO: AD");
        assert_eq!(
            m.answers
                .iter()
                .filter(|r| r.record_type() == RecordType::AAAA)
                .map(record_line)
                .collect::<Vec<_>>(),
            ["dual.rec.test. 300 AAAA 2001:db8::40"]
        );
        assert!(has_type(&m.answers, RecordType::RRSIG), "DO: the signature comes along");
        // ... or AD (RFC 6840 §5.7), without signatures; and none for a client that asks for neither.
        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA).ad()).await;
        assert!(m.metadata.authentic_data);
        assert_eq!(answer_summary(&m), ["dual.rec.test. 300 AAAA 2001:db8::40"]);
        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA)).await;
        assert!(!m.metadata.authentic_data);
        // CD does not hide that data is secure.
        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA).cd().ad()).await;
        assert!(m.metadata.authentic_data && m.metadata.checking_disabled);
        assert_eq!(answer_summary(&m), ["dual.rec.test. 300 AAAA 2001:db8::40"]);

        // A secure A record, and a secure AAAA NODATA: the synthesized AAAA is
        // AD for a DO client (RFC 6147 §5.5 item 2), never without DO (item 1).
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::A).do_bit()).await;
        assert!(m.metadata.authentic_data, "the A record itself validates");
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA).do_bit().ad()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]);
        assert!(m.metadata.authentic_data, "validated synthesis with DO: AD");
        assert!(ede(&m).iter().any(|(code, _)| *code == 29), "{:?}", ede(&m));
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA).ad()).await;
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]);
        assert!(!m.metadata.authentic_data, "DO=0: never AD");

        // A secure NXDOMAIN: AD, with the NSEC proof for a DO client.
        let m = query_udp(d.addr, &Q::new("nope.rec.test", RecordType::A).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authentic_data, "secure denial: AD");
        assert!(has_type(&m.authorities, RecordType::NSEC), "{:?}", authority_summary(&m));
        assert_eq!(soa_ttl(&m), Some(60));
        let m = query_udp(d.addr, &Q::new("nope.rec.test", RecordType::A).ad()).await;
        assert!(m.metadata.authentic_data);
        assert!(!has_type(&m.authorities, RecordType::NSEC), "no DO: no proof records");

        // An insecure delegation (no DS for far.test.): answered, never AD.
        let m = query_udp(d.addr, &Q::new("target.far.test", RecordType::AAAA).do_bit().ad()).await;
        assert_eq!(answer_summary(&m), ["target.far.test. 45 AAAA 64:ff9b::5db8:d85a"]);
        assert!(!m.metadata.authentic_data);
        let m = query_udp(d.addr, &Q::new("target.far.test", RecordType::A).do_bit().ad()).await;
        assert_eq!(answer_summary(&m), ["target.far.test. 300 A 93.184.216.90"]);
        assert!(!m.metadata.authentic_data, "insecure: no AD");

        // CNAME chains: inside the secure zone, and from it into the insecure one. The
        // secure chain's synthesis is AD for a DO client and keeps the CNAME's RRSIG.
        let m = query_udp(d.addr, &Q::new("alias.rec.test", RecordType::AAAA).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_summary(&m)
                .into_iter()
                .filter(|line| !line.contains("RRSIG"))
                .collect::<Vec<_>>(),
            ["alias.rec.test. 300 CNAME v4only.rec.test.", "v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]
        );
        assert_eq!(covered(&m.answers), ["alias.rec.test. CNAME"], "{:?}", answer_summary(&m));
        assert!(m.metadata.authentic_data, "secure chain, validated denial and A: AD");
        // Into the insecure zone: synthesized, never AD.
        let m = query_udp(d.addr, &Q::new("cname.rec.test", RecordType::AAAA).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.authentic_data);

        // A secure NODATA for a DO client: the SOA and the NSEC proof, each with its RRSIG, and AD.
        let m = query_udp(d.addr, &Q::new("text.rec.test", RecordType::AAAA).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "{:?}", answer_summary(&m));
        let mut kinds: Vec<String> = m.authorities.iter().map(|r| format!("{} {}", r.name, r.record_type())).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["rec.test. RRSIG", "rec.test. SOA", "text.rec.test. NSEC", "text.rec.test. RRSIG"],
            "{:?}",
            authority_summary(&m)
        );
        let mut signed = covered(&m.authorities);
        signed.sort();
        assert_eq!(signed, ["rec.test. SOA", "text.rec.test. NSEC"]);
        assert!(m.metadata.authentic_data, "secure denial: AD");
        let m = query_udp(d.addr, &Q::new("alias.rec.test", RecordType::A).ad()).await;
        assert_eq!(
            answer_summary(&m),
            ["alias.rec.test. 300 CNAME v4only.rec.test.", "v4only.rec.test. 300 A 93.184.216.34"]
        );
        assert!(m.metadata.authentic_data, "a secure CNAME chain: AD");
        let m = query_udp(d.addr, &Q::new("cname.rec.test", RecordType::AAAA).ad()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_summary(&m),
            ["cname.rec.test. 300 CNAME target.far.test.", "target.far.test. 45 AAAA 64:ff9b::5db8:d85a"]
        );
        assert!(!m.metadata.authentic_data);

        // Each bogus upstream answer is counted. Checked first, while no other lookup of
        // bogus data runs (an AAAA question also looks up A beside it), with a TXT question.
        let bogus_count = || {
            let metrics = d.server.handler().resolver().metrics().encode(0);
            metrics
                .lines()
                .find_map(|line| line.strip_prefix("dns64d_dnssec_bogus_total "))
                .and_then(|value| value.parse::<u64>().ok())
                .expect("dns64d_dnssec_bogus_total is exported")
        };
        let before = bogus_count();
        let m = query_udp(d.addr, &Q::new("text.bad.test", RecordType::TXT).edns(1232)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(ede(&m).iter().any(|(code, _)| *code == 6), "{:?}", ede(&m));
        assert_eq!((before, bogus_count()), (0, 1));
        // Bogus (the DS does not match the zone's key): SERVFAIL with EDE 6,
        // for A and for AAAA (no synthesis from data that failed validation).
        for qtype in [RecordType::A, RecordType::AAAA] {
            // Also when a secure CNAME leads there.
            for name in ["host.bad.test", "tobad.rec.test"] {
                let m = query_udp(d.addr, &Q::new(name, qtype).edns(1232)).await;
                assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{name} {qtype}");
                assert!(m.answers.is_empty());
                assert!(ede(&m).iter().any(|(code, _)| *code == 6), "{name} {qtype}: {:?}", ede(&m));
            }
        }
        // With CD the client validates itself: the data comes through, without AD.
        let m = query_udp(d.addr, &Q::new("host.bad.test", RecordType::A).cd()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer_summary(&m), ["host.bad.test. 300 A 93.184.216.50"]);
        assert!(!m.metadata.authentic_data);
        // A bogus A set behind a secure AAAA denial (RFC 6147 §5.5): SERVFAIL with
        // EDE 6 for AAAA too, never a synthesized answer and never NODATA.
        for q in [
            Q::new("badsig.rec.test", RecordType::AAAA).edns(1232),
            Q::new("badsig.rec.test", RecordType::AAAA).do_bit(),
            Q::new("badsig.rec.test", RecordType::A).do_bit(),
        ] {
            let m = query_udp(d.addr, &q).await;
            assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{q:?}");
            assert!(m.answers.is_empty() && m.authorities.is_empty(), "{q:?}");
            assert_eq!(ede(&m).iter().map(|(code, _)| *code).collect::<Vec<_>>(), [6], "{q:?}");
        }
        // The denial itself is secure: asked on its own, it validates.
        let m = query_udp(d.addr, &Q::new("badsig.rec.test", RecordType::TXT).do_bit()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authentic_data, "{:?}", authority_summary(&m));
        drop(authorities);
    });
}
