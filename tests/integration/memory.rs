//! Memory that grows with use: the caches allocate as entries arrive, so a
//! dns64d with a large `cache.max_entries` idles as small as one with a
//! small cap (a sidecar with a big cap and little traffic stays small).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A dns64d process of the real binary, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill(); // the test is done with it either way
        let _ = self.0.wait();
    }
}

/// The resident set of a process, in KiB, from /proc.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// Starts the binary with `max_entries`, waits until it answers, and
/// returns its idle resident set in KiB.
async fn idle_resident_kib(max_entries: usize) -> u64 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let child = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // An upstream that is never asked: ipv4only.arpa is answered locally.
        .args(["--upstream", "127.0.0.1:9"])
        .env("DNS64D_CACHE__MAX_ENTRIES", max_entries.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dns64d");
    let daemon = Daemon(child);
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let q = Q::new("ipv4only.arpa", RecordType::AAAA);
    let deadline = Instant::now() + TEST_TIMEOUT;
    let query = q.to_message().to_vec().unwrap();
    while send_udp_raw(server, &query, Duration::from_millis(100))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "dns64d did not start in time");
    }
    resident_kib(daemon.0.id())
}

#[tokio::test]
async fn idle_memory_does_not_depend_on_the_cache_capacity() {
    let small = idle_resident_kib(1_000).await;
    let large = idle_resident_kib(1_000_000).await;
    // Before allocation on demand, 1 000 000 entries cost about 70 MB at idle.
    assert!(
        large < small + 8 * 1024,
        "idle RSS {large} KiB with max_entries 1000000 vs {small} KiB with 1000"
    );
}
