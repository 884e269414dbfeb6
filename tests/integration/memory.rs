//! Memory, measured on the real binary. Per cached entry: fill the cache of
//! a separate dns64d process with DNS64 answers (for each name an A record
//! and a negative AAAA with its SOA, as synthesis stores them) and read its
//! peak resident size (VmHWM); each shipped Kubernetes example must stay
//! within its memory limit with its cache full. At idle: the caches
//! allocate as entries arrive, so a dns64d with a large `cache.max_entries`
//! idles as small as one with a small cap (a sidecar with a big cap and
//! little traffic stays small).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A dns64d process; killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill(); // the test is done with it
        let _ = self.0.wait();
    }
}

/// A memory figure of a process from /proc (`VmHWM`, `VmRSS`), in bytes.
fn memory_of(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("a {field} line"));
    kib * 1024
}

/// Peak resident set size of a process, in bytes.
fn vm_hwm(pid: u32) -> u64 {
    memory_of(pid, "VmHWM")
}

/// An upstream for `<n>.fill.test`: one A record per name, NODATA with an
/// SOA for AAAA (so each AAAA question stores two cache entries).
async fn fill_upstream() -> FakeUpstream {
    start_fake_upstream(LO, |request, _| {
        let query = &request.queries[0];
        let name = query.name().to_ascii();
        match query.query_type() {
            RecordType::A => {
                let number: u32 = name
                    .split('.')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                FakeAction::Reply(reply_with(
                    request,
                    vec![rr_a(
                        &name,
                        3600,
                        Ipv4Addr::from(0x5DB8_0000 | (number & 0xffff)),
                    )],
                ))
            }
            _ => {
                let mut reply = reply_to(request);
                reply.authorities.push(rr_soa("fill.test", 3600, 3600));
                FakeAction::Reply(reply)
            }
        }
    })
    .await
}

/// Starts the binary with `[cache] max_entries = entries`, forwarding to
/// `upstream`; returns the process and the address it listens on.
async fn start_with_cache(upstream: SocketAddr, entries: usize) -> (Process, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dns64d.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{upstream}\"]\n[cache]\nmax_entries = {entries}\n[control]\nsocket = \"\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,dns64d=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start dns64d");
    let stderr = child.stderr.take().unwrap();
    let process = Process(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listeners=").nth(1) {
                let _ = sender.send(
                    rest.split([' ', ','])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ); // the test may have ended
            }
        }
    });
    let addr: SocketAddr = tokio::task::spawn_blocking(move || receiver.recv_timeout(TEST_TIMEOUT))
        .await
        .unwrap()
        .expect("startup line")
        .parse()
        .unwrap();
    (process, addr)
}

/// Starts the binary with `[cache] max_entries = entries`, asks AAAA for
/// `entries / 2` names (an A and a negative AAAA entry each: the answer
/// cache is full) and then A for the same names (answered from the cache:
/// with the AAAA answers, the fast path's stored responses are full too),
/// and returns (VmHWM with an empty cache, VmHWM with full ones).
async fn fill(upstream: SocketAddr, entries: usize) -> (u64, u64) {
    let (process, addr) = start_with_cache(upstream, entries).await;
    // Warm up the code paths, then measure the empty cache.
    query_udp(addr, &Q::new("0.fill.test", RecordType::AAAA)).await;
    let empty = vm_hwm(process.0.id());
    let names = entries / 2;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let next = Arc::clone(&next);
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index > names {
                    return;
                }
                let name = format!("{index}.fill.test");
                let m = query_udp(addr, &Q::new(name.as_str(), RecordType::AAAA)).await;
                assert_eq!(m.answers.len(), 1, "{index}: a synthesized AAAA");
                let m = query_udp(addr, &Q::new(name, RecordType::A)).await;
                assert_eq!(m.answers.len(), 1, "{index}: the A record");
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result.expect("a fill worker");
    }
    let full = vm_hwm(process.0.id());
    (empty, full)
}

/// The `memory` limit and cache size of a shipped example.
fn example_limits(path: &Path) -> (u64, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let limit = text
        .lines()
        .find_map(|line| line.split("limits: { memory: ").nth(1))
        .and_then(|rest| rest.split("Mi").next())
        .and_then(|mib| mib.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{}: no memory limit", path.display()));
    // `max_entries = N` in an embedded configuration, or the value of
    // the DNS64D_CACHE__MAX_ENTRIES variable (on the line after its name).
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.split(" #").next().unwrap_or_default().trim())
        .collect();
    let entries = lines
        .iter()
        .find_map(|line| line.strip_prefix("max_entries = "))
        .or_else(|| {
            let at = lines
                .iter()
                .position(|line| line.contains("name: DNS64D_CACHE__MAX_ENTRIES"))?;
            lines.get(at + 1)?.strip_prefix("value: ")
        })
        .and_then(|value| value.trim_matches('"').parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{}: no cache size", path.display()));
    (limit * 1024 * 1024, entries)
}

/// Measures bytes per cached entry (printed for the README) and checks
/// that each Kubernetes example's full cache fits its memory limit.
#[tokio::test]
async fn each_shipped_example_stays_within_its_memory_limit_with_a_full_cache() {
    let upstream = fill_upstream().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    for file in ["sidecar.yaml", "deployment.yaml"] {
        let (limit, entries) = example_limits(&examples.join(file));
        let (empty, full) = fill(upstream.addr(), entries).await;
        let per_entry = full.saturating_sub(empty) / entries as u64;
        println!(
            "{file}: {entries} entries: VmHWM {} KiB empty, {} KiB full: {per_entry} bytes per entry; limit {} KiB",
            empty / 1024,
            full / 1024,
            limit / 1024
        );
        assert!(
            full < limit,
            "{file}: {} KiB with a full cache of {entries} entries is over the limit of {} KiB",
            full / 1024,
            limit / 1024
        );
    }
}

#[tokio::test]
async fn idle_memory_does_not_depend_on_the_cache_capacity() {
    let upstream = fill_upstream().await;
    let resident_after_one_answer = async |entries| {
        let (process, addr) = start_with_cache(upstream.addr(), entries).await;
        query_udp(addr, &Q::new("0.fill.test", RecordType::AAAA)).await;
        memory_of(process.0.id(), "VmRSS")
    };
    let small = resident_after_one_answer(1_000).await;
    let large = resident_after_one_answer(1_000_000).await;
    // Before allocation on demand, 1 000 000 entries cost about 70 MB at idle.
    assert!(
        large < small + 8 * 1024 * 1024,
        "idle RSS {} KiB with max_entries 1000000 vs {} KiB with 1000",
        large / 1024,
        small / 1024
    );
}

/// `cache.max_memory` bounds the bytes the caches hold whatever
/// `cache.max_entries` allows: 3000 names (6000 answer-cache entries and as
/// many stored responses) into a 2 MiB budget, half of it for the answer
/// cache; the evictions are counted, and the newest answers stay.
#[tokio::test]
async fn cache_max_memory_bounds_the_cache_in_bytes() {
    let upstream = fill_upstream().await;
    let d = start_dns64d(
        &[upstream.addr()],
        "",
        "[cache]\nmax_entries = 1000000\nmax_memory = \"2m\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    let names = 3000;
    for index in 1..=names {
        let name = format!("{index}.fill.test");
        let m = query_udp(d.addr, &Q::new(name.as_str(), RecordType::AAAA)).await;
        assert_eq!(m.answers.len(), 1, "{index}: a synthesized AAAA");
        let m = query_udp(d.addr, &Q::new(name, RecordType::A)).await;
        assert_eq!(m.answers.len(), 1, "{index}: the A record");
    }
    let endpoint = d.server.metrics_addr().expect("metrics endpoint bound");
    let (status, body) = http_get(endpoint, "/metrics").await;
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        body.lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{body}"))
    };
    let bytes = value("dns64d_cache_bytes");
    let entries = value("dns64d_cache_entries");
    let evictions = value("dns64d_cache_evictions_total");
    assert!(
        bytes <= 1024.0 * 1024.0,
        "{bytes} bytes over the answer cache's 1 MiB"
    );
    assert!(
        bytes >= 0.75 * 1024.0 * 1024.0,
        "{bytes} bytes: the budget is used, not just bounded"
    );
    assert!(
        entries < (2 * names) as f64,
        "{entries} entries: nothing was evicted"
    );
    assert_eq!(
        entries + evictions,
        (2 * names) as f64,
        "every entry stored is held or counted as evicted"
    );
    // The newest answer is still cached: asking again reaches no upstream.
    let before = upstream.total();
    let m = query_udp(d.addr, &Q::new(format!("{names}.fill.test"), RecordType::A)).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(upstream.total(), before);
}
