//! The wire tests' smoke subset against a dns64d *binary* run as a child
//! process: synthesis, a native AAAA, NXDOMAIN with its SOA and the local
//! `ipv4only.arpa`, over UDP and TCP, with exact records, TTLs and flags.
//! The binary is the one cargo built, or the one named by the environment
//! variable `TEST_DNS64D_BINARY`: CI points it at the static musl build
//! (`deploy/package-check.sh`), so the shipped binary itself is tested.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The binary under test.
fn binary() -> PathBuf {
    std::env::var_os("TEST_DNS64D_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dns64d")))
}

/// Starts the binary on a free loopback port, forwarding to `upstream`, and
/// waits until it answers.
async fn start_binary(upstream: SocketAddr) -> (Process, SocketAddr, tempfile::TempDir) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns64d.toml");
    std::fs::write(
        &path,
        format!("listen = [\"127.0.0.1:{port}\"]\n[upstream]\nservers = [\"{upstream}\"]\n"),
    )
    .unwrap();
    let mut command = Command::new(binary());
    // dns64d reads every DNS64D_* variable as configuration.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DNS64D_") {
            command.env_remove(name);
        }
    }
    let child = command
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", binary().display()));
    let process = Process(child);
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // ipv4only.arpa A is answered locally: the upstream and the cache stay untouched.
    wait_until_answer(server, &Q::new("ipv4only.arpa", RecordType::A), |m| {
        m.answers.len() == 2
    })
    .await;
    (process, server, dir)
}

/// NOERROR or the given rcode with the flags of a recursive answer.
fn assert_answer_header(m: &Message, rcode: ResponseCode) {
    assert_eq!(m.metadata.response_code, rcode);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.recursion_desired, "RD echoed");
    assert!(m.metadata.recursion_available, "RA set");
    assert!(!m.metadata.truncation, "not truncated");
    assert!(!m.metadata.authoritative, "not authoritative");
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[tokio::test]
async fn the_binary_synthesizes_forwards_and_answers_over_udp_and_tcp() {
    let auth = start_auth_upstream(LO).await;
    let (_process, server, _dir) = start_binary(auth.addr()).await;

    // Each name is asked once, so every TTL is the upstream's, not a cached countdown.
    let m = query_udp(server, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    let m = query_tcp(server, &Q::new("multi-a.dns64.test", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NoError);
    assert_eq!(
        sorted(answer_summary(&m)),
        [
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80b",
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80c",
            "multi-a.dns64.test. 60 AAAA 64:ff9b::5db8:d80d",
        ]
    );

    let m = query_udp(server, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    let m = query_tcp(server, &Q::new("v6only.dns64.test", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v6only.dns64.test. 300 AAAA 2001:db8::60"]
    );

    let m = query_udp(server, &Q::new("nope.dns64.test", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(
        authority_summary(&m),
        ["dns64.test. 60 SOA ns1.dns64.test. hostmaster.dns64.test. 1 3600 900 604800 60"]
    );

    let m = query_tcp(server, &Q::new("ipv4only.arpa", RecordType::AAAA)).await;
    assert_answer_header(&m, ResponseCode::NoError);
    assert_eq!(
        sorted(answer_summary(&m)),
        [
            "ipv4only.arpa. 600 AAAA 64:ff9b::c000:aa",
            "ipv4only.arpa. 600 AAAA 64:ff9b::c000:ab",
        ]
    );
    assert_eq!(auth.count("ipv4only.arpa", RecordType::AAAA), 0);
}
