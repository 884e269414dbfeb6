//! Running dns64d in production: Prometheus metrics and the health check
//! over HTTP, configuration reload (in-process and by SIGHUP on the real
//! binary, good and bad), the query log, and graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The value of one exported sample line (`name{labels} value`).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_and_health_are_served_over_http() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", "[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let endpoint = d.server.metrics_addr().expect("metrics endpoint bound");
    for name in ["v4only", "dual", "mapped", "text"] {
        query_udp(
            d.addr,
            &Q::new(format!("{name}.dns64.test"), RecordType::AAAA),
        )
        .await;
    }
    query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await; // now from the cache
    query_tcp(d.addr, &Q::new("nope.dns64.test", RecordType::A)).await;

    let (status, body) = http_get(endpoint, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&body, "dns64d_synthesized_answers_total"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "dns64d_aaaa_answers_total{kind=\"synthesized\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "dns64d_aaaa_answers_total{kind=\"excluded\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "dns64d_aaaa_answers_total{kind=\"native\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "dns64d_aaaa_answers_total{kind=\"nodata\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "dns64d_queries_total{qtype=\"AAAA\",protocol=\"udp\",rcode=\"NOERROR\"}"
        ),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "dns64d_queries_total{qtype=\"A\",protocol=\"tcp\",rcode=\"NXDOMAIN\"}"
        ),
        Some(1.0),
        "{body}"
    );
    // The repeated question is a cache hit (answered by the UDP fast path);
    // every AAAA miss also looked up A (dns64.parallel_a, forward mode's
    // default): 4 × 2 + the NXDOMAIN A.
    assert_eq!(
        sample(&body, "dns64d_cache_hits_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "dns64d_cache_misses_total"),
        Some(9.0),
        "{body}"
    );
    assert_eq!(sample(&body, "dns64d_cache_entries"), Some(9.0), "{body}");
    let server = auth.addr();
    assert_eq!(
        sample(
            &body,
            &format!("dns64d_upstream_queries_total{{server=\"{server}\"}}")
        ),
        Some(auth.total() as f64),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            &format!("dns64d_upstream_latency_seconds_count{{server=\"{server}\"}}")
        ),
        Some(auth.total() as f64),
        "{body}"
    );
    let (status, body) = http_get(endpoint, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn refused_clients_are_counted() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[access]\nclients = [\"192.0.2.0/24\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    let (_, body) = http_get(d.server.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(sample(&body, "dns64d_refused_total"), Some(1.0), "{body}");
}

#[tokio::test]
async fn reload_applies_new_prefixes_and_rejects_a_broken_zone() {
    let auth = start_auth_upstream(LO).await;
    let toml = |prefix: &str, zone: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n[dns64]\nprefixes = [\"{prefix}\"]\n{zone}",
            auth.addr()
        )
    };
    let mut d = start_dns64d_toml(&toml("64:ff9b::/96", "")).await;
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    let m = query_udp(d.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );

    let new = dns64d::ops::config::from_toml_str(&toml("2001:db8:64::/96", "")).unwrap();
    let notes = d.server.reload(new).await.expect("reload accepted");
    assert!(notes.is_empty(), "{notes:?}");
    let m = query_udp(d.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"],
        "new prefix at once"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.zone");
    std::fs::write(&broken, "$ORIGIN local.test.\nthis is not a zone\n").unwrap();
    let zone = format!(
        "[[zones]]\nname = \"local.test\"\nfile = {:?}\n",
        broken.display().to_string()
    );
    let new = dns64d::ops::config::from_toml_str(&toml("64:ff9b::/96", &zone)).unwrap();
    assert!(d.server.reload(new).await.is_err());
    let m = query_udp(d.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"],
        "old config still serving"
    );
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_stops_the_real_binary() {
    let auth = start_auth_upstream(LO).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns64d.toml");
    let config = |prefix: &str| {
        format!(
            "listen = [\"127.0.0.1:{port}\"]\n[upstream]\nservers = [\"{}\"]\n[dns64]\nprefixes = [\"{prefix}\"]\n[log]\nformat = \"json\"\nqueries = true\n",
            auth.addr()
        )
    };
    std::fs::write(&path, config("64:ff9b::/96")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("--config")
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start dns64d");
    let mut process = Process(child);
    // Read the log as it comes, to act on what dns64d says.
    let stderr = process.0.stderr.take().unwrap();
    let (line_sender, mut line_receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    wait_until_answer(server, &q, |m| {
        answer_summary(m) == ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    })
    .await;

    std::fs::write(&path, config("2001:db8:64::/96")).unwrap();
    signal(&process.0, libc::SIGHUP);
    wait_until_answer(server, &q, |m| {
        answer_summary(m) == ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"]
    })
    .await;

    std::fs::write(&path, config("64:ff9b::/80")).unwrap(); // invalid: rejected, old one kept
    signal(&process.0, libc::SIGHUP);
    loop {
        let line = tokio::time::timeout(TEST_TIMEOUT, line_receiver.recv())
            .await
            .expect("the bad reload is reported in time")
            .expect("dns64d still running");
        let rejected = line.contains("reload rejected") && line.contains("dns64.prefixes");
        lines.push(line);
        if rejected {
            break;
        }
    }
    let m = query_udp(server, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"],
        "old config kept"
    );
    signal(&process.0, libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || process.0.wait().unwrap());
    let status = tokio::time::timeout(TEST_TIMEOUT, status)
        .await
        .expect("dns64d stops in time")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    while let Some(line) = line_receiver.recv().await {
        lines.push(line);
    }
    let log = lines.join("\n");
    assert!(log.contains("configuration reloaded"), "{log}");
    // The query log: one JSON line per query, with the fields an operator needs.
    let query_line = lines
        .iter()
        .find(|line| line.contains("\"target\":\"dns64d::query\"") && line.contains("AAAA"))
        .unwrap_or_else(|| panic!("no query log line in:\n{log}"));
    for field in [
        "\"client\":",
        "\"name\":\"v4only.dns64.test.\"",
        "\"qtype\":\"AAAA\"",
        "\"rcode\":\"No Error\"",
        "\"synthesized\":true",
        "\"latency_us\":",
    ] {
        assert!(
            query_line.contains(field),
            "{field} missing in {query_line}"
        );
    }
    assert!(log.contains("stopped"), "{log}");
}
