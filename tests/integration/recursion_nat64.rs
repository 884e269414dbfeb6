//! Recursion from an IPv6-only host (issue 19, `recursion.nat64_prefix`): dns64d
//! in an IPv6-only namespace resolves from IPv4-only name servers through
//! Tayga. Three namespaces of the test's own, linked by veth pairs, with
//! documentation addresses only:
//!
//! ```text
//! d6 (dns64d; IPv6 only) ── gw (tayga, 2001:db8:64::/96 ↔ pool 198.51.100.0/24) ── s4 (root, test., rec.test., far.test.; IPv4 only)
//! 2001:db8:1::2              2001:db8:1::1 / 203.0.113.254                         203.0.113.1-4
//! ```
//!
//! The prefix is a network-specific one, as in `deploy/nat64-lab/`: Tayga
//! 0.9.2 answers ICMPv6 unreachable instead of translating to these
//! documentation addresses under the well-known 64:ff9b::/96 (checked by
//! hand, 2026-12-06). What dns64d does is the same for any prefix.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::recursion_robust::{serve_hierarchy, write_hierarchy};

/// The IPv4-only name servers' addresses (host N of the hierarchy is `.N`).
fn server_address(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, host)
}

/// Tayga in `gw`, translating 2001:db8:64::/96 to IPv4 with sources from
/// 198.51.100.0/24; stopped when dropped.
struct Tayga {
    _process: Process,
    _state: tempfile::TempDir,
}

impl Tayga {
    fn start(gw: &Netns) -> Self {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir(state.path().join("data")).unwrap();
        let config = state.path().join("tayga.conf");
        std::fs::write(
            &config,
            format!(
                "tun-device nat64\nipv4-addr 198.51.100.1\nipv6-addr 2001:db8:ffff::1\nprefix 2001:db8:64::/96\ndynamic-pool 198.51.100.0/24\ndata-dir {}\n",
                state.path().join("data").display()
            ),
        )
        .unwrap();
        let tayga = |args: &[&str]| {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &gw.0, "tayga", "--config"])
                .arg(&config)
                .args(args);
            command
        };
        let made = tayga(&["--mktun"])
            .output()
            .expect("tayga is installed (apt install tayga)");
        assert!(
            made.status.success(),
            "tayga --mktun: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        gw.ip(&["link", "set", "nat64", "up"]);
        gw.ip(&["route", "add", "2001:db8:64::/96", "dev", "nat64"]);
        gw.ip(&["route", "add", "198.51.100.0/24", "dev", "nat64"]);
        gw.ip(&["route", "add", "2001:db8:ffff::1/128", "dev", "nat64"]);
        let child = tayga(&["-d"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tayga");
        Self {
            _process: Process(child),
            _state: state,
        }
    }
}

/// The three namespaces, addressed and routed as the module's figure shows.
fn build_lab() -> (Netns, Netns, Netns) {
    let d6 = Netns::create().expect(NETNS_NEEDS_ROOT);
    let gw = Netns::create().expect(NETNS_NEEDS_ROOT);
    let s4 = Netns::create().expect(NETNS_NEEDS_ROOT);
    d6.veth_to("eth0", &gw, "to-d6");
    gw.veth_to("to-s4", &s4, "eth0");
    // d6: IPv6 only (loopback aside), every route through gw.
    d6.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::2/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    d6.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    // s4: IPv4 only.
    s4.sysctl("net.ipv6.conf.all.disable_ipv6=1");
    s4.sysctl("net.ipv6.conf.default.disable_ipv6=1");
    for host in 1..=4 {
        s4.ip(&[
            "addr",
            "add",
            &format!("{}/24", server_address(host)),
            "dev",
            "eth0",
        ]);
    }
    s4.ip(&["route", "add", "default", "via", "203.0.113.254"]);
    // gw: routes between its links and tayga, nothing else.
    gw.sysctl("net.ipv6.conf.all.forwarding=1");
    gw.sysctl("net.ipv4.ip_forward=1");
    gw.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        "to-d6",
        "nodad",
    ]);
    gw.ip(&["addr", "add", "203.0.113.254/24", "dev", "to-s4"]);
    (d6, gw, s4)
}

#[test]
#[ignore = "needs root: network namespaces, a tun device and tayga"]
fn recursion_through_tayga_from_an_ipv6_only_namespace() {
    let (d6, gw, s4) = build_lab();
    let tayga = Tayga::start(&gw);
    let dir = tempfile::tempdir().unwrap();
    let hints = write_hierarchy(dir.path(), |host| server_address(host).to_string());

    // The name servers run in s4 until told to stop; they report what they saw.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let zone_dir = dir.path().to_path_buf();
    let servers = s4.spawn(move || async move {
        let ips = [1, 2, 3, 4].map(|host| IpAddr::V4(server_address(host)));
        let servers = serve_hierarchy(&zone_dir, ips).await;
        ready_tx.send(()).unwrap();
        let _ = stop_rx.await; // the sender is dropped on a failed test too
        servers
            .iter()
            .flat_map(|server| server.seen())
            .map(|seen| seen.src.ip())
            .collect::<Vec<IpAddr>>()
    });
    ready_rx.recv().expect("the name servers start");

    let hints_text = hints.display().to_string();
    d6.run(move || async move {
        let config = |listen: &str, nat64: &str| {
            format!(
                "listen = [\"{listen}\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {hints_text:?}\nquery_private_nameservers = true\ntimeout_ms = 1000\nattempts = 2\n{nat64}"
            )
        };
        // Without the prefix the IPv4-only servers are out of reach.
        let plain = start_dns64d_toml(&config("[::1]:5300", "")).await;
        let m = query_udp(plain.addr, &Q::new("v4only.rec.test", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
        drop(plain);

        let d = start_dns64d_toml(&config("[::1]:5353", "[recursion]\nnat64_prefix = \"2001:db8:64::/96\"\n")).await;
        // Tayga comes up on its own time: ask until the answer comes.
        let m = wait_until_answer(d.addr, &Q::new("v4only.rec.test", RecordType::A), |m| {
            m.metadata.response_code == ResponseCode::NoError
        })
        .await;
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 300 A 93.184.216.34"]);
        // Synthesis for clients uses dns64.prefixes (64:ff9b::/96 by default), apart from the
        // prefix the recursion reaches name servers through.
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]);
        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA)).await;
        assert_eq!(answer_summary(&m), ["dual.rec.test. 300 AAAA 2001:db8::40"]);
        // Across zones: the CNAME's target is resolved through the translator too.
        let m = query_tcp(d.addr, &Q::new("cname.rec.test", RecordType::AAAA)).await;
        assert_eq!(
            answer_summary(&m),
            ["cname.rec.test. 300 CNAME target.far.test.", "target.far.test. 45 AAAA 64:ff9b::5db8:d85a"]
        );
    });

    stop_tx.send(()).unwrap();
    let sources = servers.join().expect("the name servers' thread");
    assert!(!sources.is_empty(), "the name servers were asked");
    let pool: ipnet::Ipv4Net = "198.51.100.0/24".parse().unwrap();
    assert!(
        sources
            .iter()
            .all(|source| matches!(source, IpAddr::V4(ipv4) if pool.contains(ipv4))),
        "every query came from tayga's pool: {sources:?}"
    );
    drop(tayga);
}

#[test]
fn nat64_prefix_is_checked() {
    let hints = data_dir()
        .join("hierarchy/root.hints")
        .display()
        .to_string();
    let recursive = format!("[upstream]\nmode = \"recursive\"\nroot_hints = {hints:?}\n");
    let error = |toml: &str| {
        dns64d::ops::config::from_toml_str(toml)
            .unwrap_err()
            .to_string()
    };

    let forward = error(
        "[upstream]\nservers = [\"192.0.2.1\"]\n[recursion]\nnat64_prefix = \"64:ff9b::/96\"\n",
    );
    assert!(
        forward.contains("recursion.nat64_prefix")
            && forward.contains("64:ff9b::/96")
            && forward.contains("recursive"),
        "{forward}"
    );
    for (bad, says) in [
        ("64:ff9b::/97", "/32, /40, /48, /56, /64 and /96"),
        ("192.0.2.0/24", "IPv6 prefix"),
        ("fe80::/96", "link-local"),
    ] {
        let message = error(&format!("{recursive}[recursion]\nnat64_prefix = {bad:?}\n"));
        assert!(
            message.contains("recursion.nat64_prefix")
                && message.contains(bad)
                && message.contains(says),
            "{bad}: {message}"
        );
    }

    for (good, prefix) in [
        ("64:ff9b::/96", "64:ff9b::/96"),
        (" 2001:db8:64::/64 ", "2001:db8:64::/64"),
    ] {
        let config = dns64d::ops::config::from_toml_str(&format!(
            "{recursive}[recursion]\nnat64_prefix = {good:?}\n"
        ))
        .unwrap_or_else(|e| panic!("{good}: {e}"));
        let settings = config.upstream.recursive.expect("recursive mode");
        assert_eq!(
            settings.nat64_prefix.map(|p| p.to_string()).as_deref(),
            Some(prefix)
        );
    }
    let config = dns64d::ops::config::from_toml_str(&recursive).unwrap();
    assert_eq!(
        config.upstream.recursive.unwrap().nat64_prefix,
        None,
        "off by default"
    );
}
