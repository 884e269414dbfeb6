//! DoT and DoH upstreams: dns64d forwards over TLS or HTTP/2 to an
//! in-process hickory-server (its own DoT and DoH listeners) whose
//! certificate comes from a test CA given as `upstream.ca_file`. Answers are
//! as over UDP, one connection carries every query, and a certificate that
//! does not verify (another CA, another name, expired) fails that server
//! over to the next, as a UDP failure would.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// dns64d forwarding to `servers` (as written in `upstream.servers`),
/// verifying against `ca`.
async fn dns64d_forwarding_to(servers: &[String], ca: &TestCa) -> Dns64d {
    let list: Vec<String> = servers
        .iter()
        .map(|server| format!("\"{server}\""))
        .collect();
    start_dns64d_toml(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [{}]\ntimeout_ms = 1000\nattempts = 2\nca_file = \"{}\"\n",
        list.join(", "),
        ca.ca_pem.display()
    ))
    .await
}

fn dot_url(name: &str, address: SocketAddr) -> String {
    format!("tls://{name}@{address}")
}

fn doh_url(name: &str, address: SocketAddr) -> String {
    format!("https://{name}@{address}/dns-query")
}

/// Asks the synthesizing question and a few more, checks the answers, and
/// returns the queries the upstream saw.
async fn assert_forwarded_answers(dns64d: &Dns64d, auth: &AuthUpstream) -> Vec<SeenQuery> {
    let synthesized = query_udp(dns64d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(synthesized.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&synthesized),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    let native = query_tcp(dns64d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(native.metadata.response_code, ResponseCode::NoError);
    assert!(!aaaa_answers(&native).is_empty(), "{native:?}");
    let missing = query_udp(dns64d.addr, &Q::new("nope.dns64.test", RecordType::AAAA)).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(soa_ttl(&missing).is_some(), "NXDOMAIN keeps its SOA");
    auth.seen()
}

#[tokio::test]
async fn forwards_over_dot_and_doh_on_one_reused_connection() {
    let ca = TestCa::new("upstream");
    let cert = ca.issue("upstream", &[TLS_NAME]);
    for over_tls in [true, false] {
        let (auth, dot, doh) = start_auth_encrypted(LO, &cert).await;
        let url = if over_tls {
            dot_url(TLS_NAME, dot)
        } else {
            doh_url(TLS_NAME, doh)
        };
        let dns64d = dns64d_forwarding_to(std::slice::from_ref(&url), &ca).await;
        let seen = assert_forwarded_answers(&dns64d, &auth).await;
        assert!(
            seen.len() >= 4,
            "{url}: AAAA and A for two names, and more: {seen:?}"
        );
        // dns64d knows only the DoT or DoH port, so everything seen came that way.
        assert!(
            seen.iter().all(|query| query.protocol == Transport::Tcp),
            "{url}: every upstream query on the stream transport: {seen:?}"
        );
        let sources: std::collections::BTreeSet<SocketAddr> =
            seen.iter().map(|query| query.src).collect();
        assert_eq!(
            sources.len(),
            1,
            "{url}: one connection for all queries: {sources:?}"
        );
    }
}

#[tokio::test]
async fn upstream_certificates_that_do_not_verify_fail_over_to_the_next_server() {
    let ca = TestCa::new("trusted");
    let good = ca.issue("good", &[TLS_NAME]);
    let other_ca = TestCa::new("untrusted");
    let untrusted = other_ca.issue("untrusted", &[TLS_NAME]);
    let expired = ca.issue_expired("expired", &[TLS_NAME]);
    let (good_auth, good_dot, good_doh) = start_auth_encrypted(LO, &good).await;
    for (case, cert, name) in [
        ("certificate from another CA", &untrusted, TLS_NAME),
        ("certificate for another name", &good, "other.test"),
        ("expired certificate", &expired, TLS_NAME),
    ] {
        let (bad_auth, bad_dot, bad_doh) = start_auth_encrypted(LO, cert).await;
        for (bad, fallback) in [
            (dot_url(name, bad_dot), dot_url(TLS_NAME, good_dot)),
            (doh_url(name, bad_doh), doh_url(TLS_NAME, good_doh)),
        ] {
            // Alone, the server gets nothing and the client a SERVFAIL.
            let alone = dns64d_forwarding_to(std::slice::from_ref(&bad), &ca).await;
            let failed =
                query_udp(alone.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
            assert_eq!(
                failed.metadata.response_code,
                ResponseCode::ServFail,
                "{case}: {bad}"
            );
            // First in the list, it fails over to the good server.
            good_auth.clear_seen();
            let dns64d = dns64d_forwarding_to(&[bad.clone(), fallback.clone()], &ca).await;
            assert_forwarded_answers(&dns64d, &good_auth).await;
            let metrics = dns64d.server.handler().resolver().metrics().encode(0);
            let bad_address = if bad.starts_with("tls") {
                bad_dot
            } else {
                bad_doh
            };
            assert!(
                metrics.contains(&format!(
                    "dns64d_upstream_errors_total{{server=\"{bad_address}\",kind=\"network\"}}"
                )),
                "{case}: {bad} counted as a network error:\n{metrics}"
            );
        }
        assert_eq!(bad_auth.total(), 0, "{case}: no query reached the server");
    }
}

#[tokio::test]
async fn encrypted_upstream_configuration_errors_name_the_key() {
    let ca = TestCa::new("config");
    let missing = ca.dir.path().join("missing-ca.pem");
    let cases = [
        (
            "DoT without an address",
            "servers = [\"tls://dns.test\"]\n".to_string(),
            "upstream.servers",
        ),
        (
            "a bad address",
            "servers = [\"tls://dns.test@nowhere\"]\n".to_string(),
            "upstream.servers",
        ),
        (
            "a missing CA file",
            format!(
                "servers = [\"tls://dns.test@127.0.0.1\"]\nca_file = \"{}\"\n",
                missing.display()
            ),
            "missing-ca.pem",
        ),
    ];
    for (case, upstream, named) in cases {
        let error = dns64d::ops::config::from_toml_str(&format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\n{upstream}"
        ))
        .expect_err(case)
        .to_string();
        assert!(error.contains(named), "{case}: {error}");
    }
    // --check-config shows the encrypted servers as written.
    let config = dns64d::ops::config::from_toml_str(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"tls://dns.test@127.0.0.1\", \"https://dns.test@127.0.0.1:8443/q\", \"127.0.0.1:5353\"]\n",
    )
    .expect("valid");
    let rendered = config.to_toml();
    for server in [
        "\"tls://dns.test@127.0.0.1:853\"",
        "\"https://dns.test@127.0.0.1:8443/q\"",
        "\"127.0.0.1:5353\"",
    ] {
        assert!(rendered.contains(server), "{server} in {rendered}");
    }
}

#[tokio::test]
async fn shim_forwards_over_dot() {
    let ca = TestCa::new("shim");
    let cert = ca.issue("upstream", &[TLS_NAME]);
    let (auth, dot, _) =
        start_auth_encrypted(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), &cert).await;
    let dns64d = start_dns64d_toml(&format!(
        "profile = \"shim\"\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\nca_file = \"{}\"\n[dns64]\nprefixes = [\"64:ff9b::/96\"]\n",
        dot_url(TLS_NAME, dot),
        ca.ca_pem.display()
    ))
    .await;
    assert_forwarded_answers(&dns64d, &auth).await;
    assert!(
        auth.seen()
            .iter()
            .all(|query| query.protocol == Transport::Tcp && query.src.is_ipv6())
    );

    // The command line takes them too: `--shim --upstream tls://…`.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .args([
            "--shim",
            "--upstream",
            "tls://dns.test@[::1]",
            "--check-config",
        ])
        .output()
        .await
        .expect("run dns64d");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        printed.contains("\"tls://dns.test@[::1]:853\""),
        "{printed}"
    );
}
