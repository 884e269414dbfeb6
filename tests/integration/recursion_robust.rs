//! Recursive mode under stress (issue 19, "Make it robust"): no log line per
//! query at the default level, every query of a flood answered (or
//! SERVFAIL) within the time bound with the counters adding up, and the
//! limits per question counted. Each test serves the miniature hierarchy of
//! `tests/data/hierarchy` from in-process authoritative servers on
//! 127.0.0.x:53 inside a network namespace of its own (port 53 needs root).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// Names `hostN.many.rec.test.` (N below this) with an A record only.
const MANY: usize = 2000;

/// The hierarchy's zone files, copied into `dir` with [`MANY`] A-only names
/// `hostN.many.rec.test.` added (every AAAA there is synthesized), and every name server address `127.0.0.N` replaced by
/// `address(N)`. Returns the root hints file.
pub(crate) fn write_hierarchy(dir: &Path, address: impl Fn(u8) -> String) -> PathBuf {
    let source = data_dir().join("hierarchy");
    for file in [
        "root.zone",
        "test.zone",
        "rec.test.zone",
        "far.test.zone",
        "root.hints",
    ] {
        let mut text = std::fs::read_to_string(source.join(file)).unwrap();
        for host in (1..=9).rev() {
            text = text.replace(&format!("127.0.0.{host}"), &address(host));
        }
        if file == "rec.test.zone" {
            // Names, not a wildcard: hickory-server 0.26 answers NXDOMAIN for
            // a type a wildcard lacks.
            text.push_str("many       300  IN TXT \"the parent of hostN\"\n");
            for index in 0..MANY {
                text.push_str(&format!("host{index}.many 300 IN A 93.184.216.34\n"));
            }
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir.join("root.hints")
}

/// Serves the root (`ips[0]`), `test.` (`ips[1]`), `rec.test.` (`ips[2]`)
/// and `far.test.` (`ips[3]`) from the files [`write_hierarchy`] wrote.
pub(crate) async fn serve_hierarchy(dir: &Path, ips: [IpAddr; 4]) -> Vec<AuthUpstream> {
    let zones = [
        (".", "root.zone"),
        ("test.", "test.zone"),
        ("rec.test.", "rec.test.zone"),
        ("far.test.", "far.test.zone"),
    ];
    let mut servers = Vec::new();
    for (ip, (origin, file)) in ips.into_iter().zip(zones) {
        servers
            .push(start_auth_on_port_with(ip, 53, &[(origin.to_string(), dir.join(file))]).await);
    }
    servers
}

fn loopback(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host))
}

/// The sum of the series of `name` in a Prometheus text whose labels
/// contain every one of `labels` (`protocol="udp"`).
fn metric(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The lines dns64d (the binary, in recursive mode on the hierarchy, at
/// `level`) logs while answering `names` AAAA questions for A-only names,
/// each checked to be synthesized, then `faults` questions (at once) into
/// `lame.test.`, whose name server does not answer, each checked to be
/// SERVFAIL. Runs in the current namespace.
async fn log_of_a_run(
    dir: &Path,
    hints: &Path,
    level: &str,
    names: usize,
    faults: usize,
) -> Vec<String> {
    let port = free_port();
    let config = dir.join(format!("dns64d-{}.toml", level.replace([',', '='], "_")));
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:{port}\"]\n[log]\nlevel = {level:?}\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 1000\nattempts = 2\n",
            hints.display().to_string()
        ),
    )
    .unwrap();
    let log = dir.join(format!(
        "{}.log",
        config.file_stem().unwrap().to_string_lossy()
    ));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start dns64d");
    let mut process = Process(child);
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until_answer(server, &Q::new("dual.rec.test", RecordType::AAAA), |m| {
        m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
    })
    .await;
    for index in 0..names {
        let name = format!("host{index}.many.rec.test");
        let m = query_udp(server, &Q::new(&name, RecordType::AAAA)).await;
        assert_eq!(
            answer_summary(&m),
            [format!("{name}. 60 AAAA 64:ff9b::5db8:d822")],
            "{name}"
        );
    }
    let mut lame = tokio::task::JoinSet::new();
    for index in 0..faults {
        lame.spawn(async move {
            query_udp(
                server,
                &Q::new(format!("host{index}.lame.test"), RecordType::AAAA),
            )
            .await
        });
    }
    while let Some(answer) = lame.join_next().await {
        assert_eq!(
            answer.unwrap().metadata.response_code,
            ResponseCode::ServFail
        );
    }
    signal(&process.0, libc::SIGTERM);
    let status = process.0.wait().unwrap();
    assert!(status.success(), "dns64d exited with {status}");
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn no_log_line_per_query_at_the_default_level() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let hints = write_hierarchy(dir.path(), |host| format!("127.0.0.{host}"));
        let servers = serve_hierarchy(dir.path(), [1, 2, 3, 4].map(loopback)).await;
        const NAMES: usize = 300;

        // hickory's recursor logged a WARN per A-only name ("no records
        // found"); the project's iteration, which answers these names now,
        // logs nothing per query at info. The run below provokes what did:
        // 300 names whose AAAA is NODATA, and 40 questions to a silent server.
        // The default level: the start and stop lines, whatever the number of queries,
        // and the failures (a silent name server) in one summary line.
        const FAULTS: usize = 40;
        let quiet = log_of_a_run(dir.path(), &hints, "info", NAMES, FAULTS).await;
        assert!(
            quiet.len() <= 12,
            "{} lines at the default level:\n{}",
            quiet.len(),
            quiet.join("\n")
        );
        eprintln!(
            "the default log of {NAMES} names and {FAULTS} failures:\n{}",
            quiet.join("\n")
        );
        let summaries = quiet
            .iter()
            .filter(|line| line.contains("recursion gave questions up"))
            .count();
        assert_eq!(
            summaries,
            1,
            "{FAULTS} failures, one summary line:\n{}",
            quiet.join("\n")
        );
        assert!(
            !quiet
                .iter()
                .any(|line| line.contains("hickory") || line.contains("no records found")),
            "{}",
            quiet.join("\n")
        );
        drop(servers);
    });
}

/// This namespace's count of UDP datagrams dropped for a full receive buffer
/// (the silent name server's, which never reads, included).
fn receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let mut lines = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap()
}

/// Sends the queries of `queries` to `server` from one socket, keeping
/// `outstanding` of them unanswered at a time (a new one goes out as each
/// answer comes in), and returns, per query in order, its response and the
/// time from its sending to its response; `None` for a query not answered
/// within `wait` of its sending. The window keeps the kernel from dropping
/// a burst before dns64d could see it (loopback's backlog holds 1000
/// packets), so a missing answer is dns64d's.
fn flood(
    server: SocketAddr,
    queries: &[Message],
    outstanding: usize,
    wait: Duration,
) -> Vec<Option<(Message, Duration)>> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    // Room for many responses at once (up to net.core.rmem_max).
    socket.set_recv_buffer_size(8 << 20).unwrap();
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let socket: std::net::UdpSocket = socket.into();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sent: Vec<Option<Instant>> = vec![None; queries.len()];
    let mut received: Vec<Option<(Message, Duration)>> = vec![None; queries.len()];
    let (mut next, mut answered) = (0, 0);
    let mut buffer = vec![0u8; 4096];
    loop {
        while next < queries.len() && next - answered < outstanding {
            socket
                .send(&queries[next].to_vec().unwrap())
                .expect("send a query");
            sent[next] = Some(Instant::now());
            next += 1;
        }
        if answered == queries.len() {
            break;
        }
        let oldest_waiting = sent
            .iter()
            .zip(&received)
            .filter_map(|(sent, answer)| sent.filter(|_| answer.is_none()))
            .min();
        if oldest_waiting.is_some_and(|at| at.elapsed() > wait) {
            break; // a query is overdue: give up on the rest
        }
        let Ok(length) = socket.recv(&mut buffer) else {
            continue;
        };
        let message = Message::from_vec(&buffer[..length]).expect("a DNS response");
        let index = usize::from(message.metadata.id);
        let sent_at = sent
            .get(index)
            .copied()
            .flatten()
            .unwrap_or_else(|| panic!("an answer to a query never sent: {message:?}"));
        assert!(received[index].is_none(), "two answers to query {index}");
        received[index] = Some((message, sent_at.elapsed()));
        answered += 1;
    }
    received
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn a_flood_against_a_slow_hierarchy_is_answered_within_the_bound() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let hints = write_hierarchy(dir.path(), |host| format!("127.0.0.{host}"));
        let servers = serve_hierarchy(dir.path(), [1, 2, 3, 4].map(loopback)).await;
        // lame.test.'s name server (127.0.0.9) takes every query and never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.9:53").unwrap();
        let toml = format!(
            "listen = [\"127.0.0.1:5353\"]\n[server]\nmax_inflight_queries = 100\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 400\nattempts = 2\n",
            hints.display().to_string()
        );
        let bound = Duration::from_millis(800);
        let d = start_dns64d_toml(&toml).await;
        let metrics = || d.server.handler().resolver().metrics().encode(0);
        // The delegations are learnt before the flood.
        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let m = query_udp(d.addr, &Q::new("warm.lame.test", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let before = metrics();
        let drops_before = receive_buffer_drops();

        // 1000 questions, 250 outstanding at a time, half of them for the silent zone.
        const QUERIES: usize = 1000;
        let queries: Vec<Message> = (0..QUERIES)
            .map(|index| {
                let zone = if index % 2 == 0 { "lame.test" } else { "many.rec.test" };
                let mut m = Q::new(format!("host{index}.{zone}"), RecordType::AAAA).to_message();
                m.metadata.id = u16::try_from(index).unwrap();
                m
            })
            .collect();
        // For CPU contention (a debug build beside the rest of the suite on two
        // cores, where a starved listener answers late however it is written);
        // the median below is held to the bound itself.
        let slack = Duration::from_secs(5);
        let d_addr = d.addr;
        // Answers are waited for longer than the bound allows, so a late one
        // fails the bound below rather than passing for lost.
        let results = tokio::task::spawn_blocking(move || flood(d_addr, &queries, 250, bound + slack * 2))
            .await
            .unwrap();
        let after = metrics();

        let missing: Vec<usize> = (0..QUERIES).filter(|index| results[*index].is_none()).collect();
        assert!(
            missing.is_empty(),
            "{} queries got no answer (first {:?}); receive buffer drops {}; dns64d counted {} answered, {} shed, {} expired",
            missing.len(),
            missing.first(),
            receive_buffer_drops() - drops_before,
            metric(&after, "dns64d_queries_total", &["protocol=\"udp\""]) - metric(&before, "dns64d_queries_total", &["protocol=\"udp\""]),
            metric(&after, "dns64d_shed_total", &[]) - metric(&before, "dns64d_shed_total", &[]),
            metric(&after, "dns64d_deadline_expired_total", &[]) - metric(&before, "dns64d_deadline_expired_total", &[]),
        );
        let mut codes = std::collections::BTreeMap::<String, usize>::new();
        let mut slowest = Duration::ZERO;
        for (index, result) in results.iter().enumerate() {
            let (m, took) = result.as_ref().unwrap_or_else(|| panic!("query {index} got no answer"));
            let code = m.metadata.response_code;
            assert!(matches!(code, ResponseCode::NoError | ResponseCode::ServFail), "query {index}: {code}");
            if index % 2 == 0 {
                assert_eq!(code, ResponseCode::ServFail, "query {index} to the silent zone");
            } else if code == ResponseCode::NoError {
                assert_eq!(aaaa_answers(m).len(), 1, "query {index}: {m:?}");
            }
            *codes.entry(code.to_string()).or_default() += 1;
            slowest = slowest.max(*took);
        }
        let mut latencies: Vec<Duration> = results.iter().flatten().map(|(_, took)| *took).collect();
        latencies.sort();
        let late = latencies.iter().filter(|took| **took > bound + slack).count();
        let median = latencies[latencies.len() / 2];
        assert!(
            late == 0 && median <= bound,
            "{late} answers later than the bound {bound:?} + {slack:?}; median {median:?}, slowest {slowest:?}"
        );
        let delta = |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);
        let shed = delta("dns64d_shed_total", &[]);
        let expired = delta("dns64d_deadline_expired_total", &[]);
        let answered = delta("dns64d_queries_total", &["protocol=\"udp\""]);
        let servfail = delta("dns64d_queries_total", &["protocol=\"udp\"", "rcode=\"SERVFAIL\""]);
        eprintln!("answers {codes:?}, slowest {slowest:?}; shed {shed}, expired {expired}");
        assert!(shed > 0, "100 queries in flight at most: some of 250 outstanding are shed");
        assert_eq!(answered, QUERIES as u64, "every query counted once");
        assert_eq!(servfail, codes.get("Server Failure").copied().unwrap_or(0) as u64, "{codes:?}");
        assert!(shed + expired <= servfail);
        assert!(
            delta("dns64d_recursion_failures_total", &["reason=\"timeout\""]) > 0,
            "the silent zone's questions time out"
        );
        drop((servers, silent));
    });
}

#[test]
#[ignore = "needs root: a network namespace with authoritative servers on 127.0.0.x:53"]
fn limits_per_question_are_counted_by_reason() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let hints = write_hierarchy(dir.path(), |host| format!("127.0.0.{host}"));
        let servers = serve_hierarchy(dir.path(), [1, 2, 3, 4].map(loopback)).await;
        // One referral allowed: the root's to test. is the last; rec.test. is too deep.
        let toml = format!(
            "listen = [\"127.0.0.1:5353\"]\n[upstream]\nmode = \"recursive\"\nroot_hints = {:?}\nquery_private_nameservers = true\ntimeout_ms = 400\nattempts = 2\nrecursion_limit = 2\n",
            hints.display().to_string()
        );
        let d = start_dns64d_toml(&toml).await;
        let metrics = || d.server.handler().resolver().metrics().encode(0);
        let text = metrics();
        for reason in ["timeout", "recursion_limit", "cname_chain", "query_budget", "bogus", "unreachable"] {
            let series = format!("dns64d_recursion_failures_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&series), "{series} missing from /metrics");
        }
        assert!(text.contains("dns64d_deadline_expired_total 0"), "{text}");

        let m = query_udp(d.addr, &Q::new("v4only.rec.test", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let text = metrics();
        assert!(
            metric(&text, "dns64d_recursion_failures_total", &["reason=\"recursion_limit\""]) >= 1,
            "{text}"
        );
        // A name within the limit is still answered.
        let m = query_udp(d.addr, &Q::new("test", RecordType::SOA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
        drop(servers);
    });
}
