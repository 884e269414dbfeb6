//! Recursive mode (`upstream.mode = "recursive"`) against a miniature DNS
//! hierarchy on loopback: a root, a TLD and two leaves served by in-process
//! authoritative servers on 127.0.0.1–4 port 53, inside a network namespace
//! the test creates (port 53 needs root; CI runs as root).

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;

fn hierarchy_zone(file: &str) -> std::path::PathBuf {
    data_dir().join("hierarchy").join(file)
}

#[test]
fn dns64_on_top_of_recursion_from_a_test_root() {
    let Some(netns) = Netns::create() else {
        eprintln!(
            "SKIPPED recursion test: cannot create a network namespace (needs root and iproute2)"
        );
        return;
    };
    netns.run(|| async {
        let servers = [
            (1, ".", "root.zone"),
            (2, "test.", "test.zone"),
            (3, "rec.test.", "rec.test.zone"),
            (4, "far.test.", "far.test.zone"),
        ];
        let mut authorities = Vec::new();
        for (host, origin, file) in servers {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
            authorities.push(
                start_auth_on_port_with(ip, 53, &[(origin.to_string(), hierarchy_zone(file))]).await,
            );
        }
        let toml = format!(
            "listen = [\"127.0.0.1:5353\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 500\nattempts = 2\n",
            hierarchy_zone("root.hints").display().to_string()
        );
        let d = start_dns64d_toml(&toml).await;

        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // TTL = min(A TTL 300, rec.test's negative TTL min(3600, 60)) = 60.
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 60 AAAA 64:ff9b::5db8:d822"]);
        assert!(!m.metadata.authentic_data && !m.metadata.authoritative);

        let m = query_udp(d.addr, &Q::new("dual.rec.test", RecordType::AAAA)).await;
        assert_eq!(answer_summary(&m), ["dual.rec.test. 300 AAAA 2001:db8::40"]);

        let m = query_tcp(d.addr, &Q::new("v4only.rec.test", RecordType::A)).await;
        assert_eq!(answer_summary(&m), ["v4only.rec.test. 300 A 93.184.216.34"]);

        // A CNAME across zones: synthesized with the target zone's negative TTL (45).
        let m = query_udp(d.addr, &Q::new("cname.rec.test", RecordType::AAAA)).await;
        assert_eq!(
            answer_summary(&m),
            ["cname.rec.test. 300 CNAME target.far.test.", "target.far.test. 45 AAAA 64:ff9b::5db8:d85a"]
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
        assert!(started.elapsed() < std::time::Duration::from_millis(2500), "{:?}", started.elapsed());
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
    let config = dns64d::config::from_toml_str(&toml).expect("recursive mode with root hints only");
    assert!(config.upstream.servers.is_empty());
    let error = dns64d::config::from_toml_str(
        "[upstream]\nmode = \"recursive\"\nroot_hints = \"/nonexistent/root.hints\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("upstream.root_hints") && error.contains("/nonexistent/root.hints"),
        "{error}"
    );
}
