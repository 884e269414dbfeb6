//! Day-2 operations (issue 18): `dns64d ctl` over the real control socket
//! and the real loopback control port (with its token) of the real binary, `/healthz` with a dead and revived upstream,
//! `/readyz`, CHAOS TXT and NSID, Extended DNS Error texts and EDE 18,
//! and configuration errors as `dns64d` prints them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A dns64d process; killed if the test ends early.
struct Daemon {
    child: Child,
    /// Log lines as they come.
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The DNS listener, from the startup line.
    addr: SocketAddr,
    /// The log lines before the startup line.
    startup: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill(); // already exited in the normal case
        let _ = self.child.wait();
    }
}

/// Starts the binary on `config` and waits for its startup line (listeners
/// bound, control socket open).
async fn start_binary(config: &Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start dns64d");
    let stderr = child.stderr.take().expect("stderr piped");
    let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = tokio::time::timeout(TEST_TIMEOUT, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no startup line in time:\n{}", seen.join("\n")))
            .unwrap_or_else(|| panic!("dns64d exited:\n{}", seen.join("\n")));
        if line.contains("dns64d serving") {
            let listeners = line
                .split("listeners=")
                .nth(1)
                .and_then(|rest| rest.split([' ', ',']).next())
                .expect("the startup line names the listeners");
            break listeners.parse().expect("a socket address");
        }
        seen.push(line);
    };
    Daemon {
        child,
        lines,
        addr,
        startup: seen,
    }
}

/// How a test reaches the control channel of the binary.
#[derive(Debug, Clone)]
enum Channel {
    /// The Unix socket at this path.
    Socket(PathBuf),
    /// The loopback control port and its token file.
    Port {
        address: SocketAddr,
        token_file: PathBuf,
    },
}

impl Channel {
    /// A free loopback port with its token file `control.token` in `dir`.
    fn port_in(dir: &Path) -> Self {
        Self::Port {
            address: SocketAddr::new(LO, free_tcp_port()),
            token_file: dir.join("control.token"),
        }
    }

    /// The `[control]` section that selects it.
    fn section(&self) -> String {
        match self {
            Self::Socket(path) => {
                format!("[control]\nsocket = {:?}\n", path.display().to_string())
            }
            Self::Port {
                address,
                token_file,
            } => format!(
                "[control]\naddress = \"{address}\"\ntoken_file = {:?}\n",
                token_file.display().to_string()
            ),
        }
    }

    /// The flags of `dns64d ctl` that name it.
    fn flags(&self) -> Vec<OsString> {
        match self {
            Self::Socket(path) => vec!["--socket".into(), path.into()],
            Self::Port {
                address,
                token_file,
            } => vec![
                "--address".into(),
                address.to_string().into(),
                "--token-file".into(),
                token_file.into(),
            ],
        }
    }

    /// The file the server makes for it (and removes on exit).
    fn file(&self) -> &Path {
        match self {
            Self::Socket(path) => path,
            Self::Port { token_file, .. } => token_file,
        }
    }

    /// The mode of that file.
    fn file_mode(&self) -> u32 {
        match self {
            Self::Socket(_) => 0o660,
            Self::Port { .. } => 0o640,
        }
    }

    /// Sends `request` as a client other than `dns64d ctl` would (on the
    /// control port after the line `token HEX` from the token file) and
    /// reads the whole reply.
    async fn raw_request(&self, request: &[u8]) -> String {
        match self {
            Self::Socket(path) => {
                exchange_raw(
                    tokio::net::UnixStream::connect(path).await.unwrap(),
                    request,
                )
                .await
            }
            Self::Port {
                address,
                token_file,
            } => {
                let token = std::fs::read_to_string(token_file).unwrap();
                let mut with_token = format!("token {token}").into_bytes();
                with_token.extend_from_slice(request);
                raw_to_port(*address, &with_token).await
            }
        }
    }

    /// How `dns64d ctl` begins to say that nothing listens.
    fn not_running(&self) -> String {
        match self {
            Self::Socket(path) => format!(
                "dns64d ctl: dns64d is not running, or not with this control socket: nothing listens on {}",
                path.display()
            ),
            Self::Port { address, .. } => format!(
                "dns64d ctl: dns64d is not running, or not with this control address: nothing listens on {address}"
            ),
        }
    }
}

/// A free loopback TCP port for a child process (it binds it right after).
fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind((LO, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `request` to the control port as it is and reads the whole reply.
async fn raw_to_port(address: SocketAddr, request: &[u8]) -> String {
    exchange_raw(
        tokio::net::TcpStream::connect(address).await.unwrap(),
        request,
    )
    .await
}

/// Writes `request`, closes the sending side and reads the reply to the end.
async fn exchange_raw<S>(mut stream: S, request: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

/// Runs `dns64d ctl FLAGS ARGS…`, the flags naming `channel`.
async fn ctl(channel: &Channel, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    command.arg("ctl").args(channel.flags()).args(args);
    run(command).await
}

async fn run(mut command: Command) -> Output {
    let output = tokio::task::spawn_blocking(move || command.output().expect("run dns64d"));
    tokio::time::timeout(TEST_TIMEOUT, output)
        .await
        .expect("dns64d exits in time")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cache dump's lines for `name` with their TTLs cut off:
/// `(line without TTL, TTL)`.
fn dumped(dump: &str, name: &str) -> Vec<(String, u32)> {
    dump.lines()
        .filter(|line| line.starts_with(name))
        .map(|line| {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let ttl = words.remove(1).parse().expect("a TTL");
            (words.join(" "), ttl)
        })
        .collect()
}

fn config_text(upstream: SocketAddr, channel: &Channel, prefix: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{upstream}\"]\n[dns64]\nprefixes = [\"{prefix}\"]\n{}",
        channel.section()
    )
}

#[tokio::test]
async fn every_ctl_command_works_over_the_real_socket() {
    every_ctl_command_works(|dir| Channel::Socket(dir.join("control.sock"))).await;
}

#[tokio::test]
async fn every_ctl_command_works_over_the_loopback_port() {
    every_ctl_command_works(Channel::port_in).await;
}

/// Every command through `dns64d ctl` over the channel `channel_in` makes in
/// a directory, against the running binary; usage errors, a client other
/// than ctl, ctl finding the channel from `--config`, and what ctl says once
/// the server stopped.
async fn every_ctl_command_works(channel_in: impl FnOnce(&Path) -> Channel) {
    let auth = start_auth_upstream(LO).await;
    let dir = tempfile::tempdir().unwrap();
    let channel = channel_in(dir.path());
    let config = dir.path().join("dns64d.toml");
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    let mut daemon = start_binary(&config).await;
    let mode = std::fs::metadata(channel.file()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        channel.file_mode()
    );

    // status before any query
    let out = ctl(&channel, &["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    let expected = [
        format!("version: {}", env!("CARGO_PKG_VERSION")),
        format!("config: {}", config.display()),
        format!("listeners: {}", daemon.addr),
        "health: ok".to_string(),
        format!("upstream: {} up", auth.addr()),
        "cache: 0 of 100000 entries".to_string(),
        "queries: none yet".to_string(),
        "refused: 0".to_string(),
    ];
    for line in &expected {
        assert!(status.lines().any(|got| got == line), "{line}\n{status}");
    }
    assert!(
        status.lines().any(|line| line.starts_with("uptime: ")),
        "{status}"
    );

    // fill the cache, then dump it
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    let m = query_udp(daemon.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    let m = query_udp(daemon.addr, &Q::new("dual.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let out = ctl(&channel, &["dump-cache"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump = text(&out.stdout);
    let lines = dumped(&dump, "v4only.dns64.test.");
    assert_eq!(lines.len(), 1, "{dump}");
    assert_eq!(
        lines[0].0, "v4only.dns64.test. IN A 93.184.216.34",
        "{dump}"
    );
    assert!((290..=300).contains(&lines[0].1), "remaining TTL: {dump}");
    assert!(
        dump.lines()
            .any(|line| line.starts_with("; v4only.dns64.test. IN AAAA NODATA ttl=")),
        "the negative AAAA entry: {dump}"
    );
    let out = ctl(&channel, &["status"]).await;
    let status = text(&out.stdout);
    assert!(
        status
            .lines()
            .any(|line| line == "cache: 3 of 100000 entries"),
        "{status}"
    );
    assert!(
        status.lines().any(|line| line == "queries: NOERROR=2"),
        "{status}"
    );

    // flush one name: its A and AAAA entries go, the other name stays
    let out = ctl(&channel, &["flush", "V4ONLY.dns64.test"]).await;
    assert_eq!(
        text(&out.stdout),
        "flushed 2 cache entries\n",
        "{}",
        text(&out.stderr)
    );
    let dump = text(&ctl(&channel, &["dump-cache"]).await.stdout);
    assert!(dumped(&dump, "v4only.dns64.test.").is_empty(), "{dump}");
    assert_eq!(dumped(&dump, "dual.dns64.test.").len(), 1, "{dump}");
    // …and the next query goes upstream again (the fast path was flushed too)
    auth.clear_seen();
    query_udp(daemon.addr, &q).await;
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);

    // flush a name and everything below it
    let out = ctl(&channel, &["flush", "dns64.test", "--below"]).await;
    assert_eq!(text(&out.stdout), "flushed 3 cache entries\n");
    query_udp(daemon.addr, &q).await;
    let out = ctl(&channel, &["flush"]).await;
    assert_eq!(text(&out.stdout), "flushed 2 cache entries\n");
    assert_eq!(text(&ctl(&channel, &["dump-cache"]).await.stdout), "");

    // stats: the metrics text
    let out = ctl(&channel, &["stats"]).await;
    let stats = text(&out.stdout);
    assert!(
        stats.lines().any(|line| line
            == "dns64d_queries_total{qtype=\"AAAA\",protocol=\"udp\",rcode=\"NOERROR\"} 3"),
        "{stats}"
    );

    // log-level: a good level is applied (debug lines appear), a bad one is refused
    let out = ctl(&channel, &["log-level", "debug"]).await;
    assert_eq!(
        text(&out.stdout),
        "log level set to debug\n",
        "{}",
        text(&out.stderr)
    );
    // A query that does not decode is logged at debug.
    let mut junk = Q::new("v4only.dns64.test", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    junk.truncate(junk.len() - 2);
    send_udp_raw(daemon.addr, &junk, std::time::Duration::from_millis(500)).await;
    wait_for_line(&mut daemon, |line| {
        line.contains("DEBUG") && line.contains("malformed request")
    })
    .await;
    let out = ctl(&channel, &["log-level", "verbose"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "dns64d ctl: log level \"verbose\": \"verbose\" is not a log level; allowed: trace, debug, info, warn, error, off or directives like \"dns64d=debug,warn\"\n"
    );

    // reload: a new prefix is applied; a bad configuration is refused
    std::fs::write(
        &config,
        config_text(auth.addr(), &channel, "2001:db8:64::/96"),
    )
    .unwrap();
    let out = ctl(&channel, &["reload"]).await;
    assert_eq!(
        text(&out.stdout),
        "configuration reloaded\n",
        "{}",
        text(&out.stderr)
    );
    let m = query_udp(daemon.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"]
    );
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/80")).unwrap();
    let out = ctl(&channel, &["reload"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "dns64d ctl: reload rejected, the old configuration keeps serving: {}:5:13: dns64.prefixes = \"64:ff9b::/80\": length /80 is not allowed; RFC 6052 §2.2 allows /32, /40, /48, /56, /64 and /96\n",
            config.display()
        )
    );
    let m = query_udp(daemon.addr, &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"]
    );

    // usage errors: exit 2 with the usage, the server unharmed
    for (args, message) in [
        (
            &["restart"][..],
            "dns64d ctl: unknown command \"restart\"\n",
        ),
        (
            &["flush", "a", "b"][..],
            "dns64d ctl: flush: expected nothing, NAME, or NAME --below; got \"a b\"\n",
        ),
        (&[][..], "dns64d ctl: no command given\n"),
    ] {
        let out = ctl(&channel, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: dns64d ctl"), "{stderr}");
    }
    // the same through the channel itself (a client other than ctl)
    let reply = channel.raw_request(b"frobnicate now\n").await;
    assert!(
        reply.starts_with("error\nunknown command \"frobnicate\"\nusage:"),
        "{reply}"
    );

    // ctl finds the channel from the server's configuration file too
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    command.args(["ctl", "--config"]).arg(&config).arg("status");
    let out = run(command).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // SIGTERM: the socket file (or token file) is removed
    signal(&daemon.child, libc::SIGTERM);
    let child_wait = tokio::task::spawn_blocking(move || {
        let status = daemon.child.wait();
        (daemon, status)
    });
    let (_daemon, status) = tokio::time::timeout(TEST_TIMEOUT, child_wait)
        .await
        .expect("stops in time")
        .unwrap();
    assert!(status.unwrap().success());
    assert!(!channel.file().exists(), "removed on exit");
    let out = ctl(&channel, &["status"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).starts_with(&channel.not_running()),
        "{}",
        text(&out.stderr)
    );
}

async fn wait_for_line(daemon: &mut Daemon, wanted: impl Fn(&str) -> bool) {
    loop {
        let line = tokio::time::timeout(TEST_TIMEOUT, daemon.lines.recv())
            .await
            .expect("the log line in time")
            .expect("dns64d still running");
        if wanted(&line) {
            return;
        }
    }
}

#[tokio::test]
#[ignore = "needs root: runs ctl as another user (nobody) to be denied"]
async fn ctl_names_a_socket_it_may_not_use() {
    use std::os::unix::process::CommandExt;
    let auth = start_auth_upstream(LO).await;
    let dir = tempfile::tempdir().unwrap(); // mode 0700, owned by root
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("dns64d.toml");
    let channel = Channel::Socket(socket.clone());
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    let _daemon = start_binary(&config).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    command
        .arg("ctl")
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .uid(65534)
        .gid(65534);
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "dns64d ctl: permission denied on the control socket {}: run as root or as a member of its group\n",
            socket.display()
        )
    );
}

#[tokio::test]
async fn the_control_port_refuses_a_missing_or_wrong_token() {
    let auth = start_auth_upstream(LO).await;
    let dir = tempfile::tempdir().unwrap();
    let channel = Channel::port_in(dir.path());
    let Channel::Port {
        address,
        token_file,
    } = channel.clone()
    else {
        unreachable!("a port")
    };
    let config = dir.path().join("dns64d.toml");
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    let mut daemon = start_binary(&config).await;
    let token = std::fs::read_to_string(&token_file).unwrap();
    let digits = token.strip_suffix('\n').expect("one line");
    assert_eq!(digits.len(), 64, "{token:?}");
    assert!(
        digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{token:?}"
    );
    // Something in the cache, which no refused flush may remove.
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    query_udp(daemon.addr, &q).await;
    let cached = || async {
        let dump = text(&ctl(&channel, &["dump-cache"]).await.stdout);
        dumped(&dump, "v4only.dns64.test.").len()
    };
    assert_eq!(cached().await, 1);

    // ctl with another token file (another server's, an old copy): exit 3
    let other = dir.path().join("other.token");
    std::fs::write(&other, format!("{}\n", "0123456789abcdef".repeat(4))).unwrap();
    let out = ctl(
        &Channel::Port {
            address,
            token_file: other.clone(),
        },
        &["flush"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "dns64d ctl: the dns64d at {address} refused the token from {}: wrong control token; that file is not the one this server wrote (dns64d writes a new token at every start): check `[control] token_file`, or pass --token-file\n",
            other.display()
        )
    );
    assert_eq!(text(&out.stdout), "");
    wait_for_line(&mut daemon, |line| {
        line.contains(" WARN ")
            && line.contains("control connection refused")
            && line.contains("peer=127.0.0.1:")
            && line.contains("reason=\"wrong control token\"")
    })
    .await;

    // other clients: no token line, a wrong token, an empty one
    for (request, reply) in [
        (
            "flush\n".to_string(),
            "refused\nno control token: on the control port a connection starts with the line `token HEX`, HEX from the token file",
        ),
        (
            format!("token {}\nflush\n", "f".repeat(64)),
            "refused\nwrong control token",
        ),
        (
            format!("token {}\nflush\n", digits.to_uppercase()),
            "refused\nwrong control token",
        ),
        (
            "token \nflush\n".to_string(),
            "refused\nwrong control token",
        ),
    ] {
        assert_eq!(
            raw_to_port(address, request.as_bytes()).await,
            reply,
            "{request:?}"
        );
    }
    assert_eq!(cached().await, 1, "no refused flush ran");
    // the right token, by hand (CRLF too)
    let reply = raw_to_port(address, format!("token {digits}\r\nstatus\n").as_bytes()).await;
    assert!(reply.starts_with("ok\nversion: "), "{reply}");

    // a token file that is missing, or holds no token: exit 3, nothing sent
    let missing = dir.path().join("missing.token");
    let malformed = dir.path().join("malformed.token");
    std::fs::write(&malformed, "hello\n").unwrap();
    for (file, message) in [
        (
            &missing,
            format!(
                "dns64d ctl: no control token file {}: dns64d writes it when it starts, so it is not running, or runs with another `[control] token_file` (check the configuration, or pass --token-file)\n",
                missing.display()
            ),
        ),
        (
            &malformed,
            format!(
                "dns64d ctl: the control token file {} does not hold a control token (32 bytes as 64 hexadecimal digits); dns64d rewrites it at every start\n",
                malformed.display()
            ),
        ),
    ] {
        let out = ctl(
            &Channel::Port {
                address,
                token_file: file.clone(),
            },
            &["flush"],
        )
        .await;
        assert_eq!(out.status.code(), Some(3), "{}", file.display());
        assert_eq!(text(&out.stderr), message);
    }
    assert_eq!(cached().await, 1);
}

#[tokio::test]
async fn a_second_server_on_the_control_port_leaves_the_first_ones_token() {
    let auth = start_auth_upstream(LO).await;
    let dir = tempfile::tempdir().unwrap();
    let channel = Channel::port_in(dir.path());
    let Channel::Port {
        address,
        token_file,
    } = channel.clone()
    else {
        unreachable!("a port")
    };
    let config = dir.path().join("dns64d.toml");
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    let first = start_binary(&config).await;
    let token = std::fs::read_to_string(&token_file).unwrap();

    let second_token = dir.path().join("second.token");
    let second_channel = Channel::Port {
        address,
        token_file: second_token.clone(),
    };
    let second_config = dir.path().join("second.toml");
    std::fs::write(
        &second_config,
        config_text(auth.addr(), &second_channel, "64:ff9b::/96"),
    )
    .unwrap();
    let second = start_binary(&second_config).await;
    let warning = format!(
        "cannot listen on the control address {address}: another program (perhaps another dns64d) uses it; set `[control] address` to a free loopback port"
    );
    assert!(
        second
            .startup
            .iter()
            .any(|line| line.contains(" WARN ") && line.contains(&warning)),
        "{:#?}",
        second.startup
    );
    assert!(!second_token.exists(), "the second server wrote no token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let out = ctl(&channel, &["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listeners = format!("listeners: {}", first.addr);
    assert!(
        text(&out.stdout).lines().any(|line| line == listeners),
        "the first server answers: {}",
        text(&out.stdout)
    );
}

#[tokio::test]
#[ignore = "needs root: runs ctl as another user (nobody) to be denied"]
async fn ctl_names_a_token_file_it_may_not_read() {
    use std::os::unix::process::CommandExt;
    let auth = start_auth_upstream(LO).await;
    let dir = tempfile::tempdir().unwrap(); // mode 0700, owned by root
    let channel = Channel::port_in(dir.path());
    let config = dir.path().join("dns64d.toml");
    std::fs::write(&config, config_text(auth.addr(), &channel, "64:ff9b::/96")).unwrap();
    let _daemon = start_binary(&config).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    command
        .arg("ctl")
        .args(channel.flags())
        .arg("status")
        .uid(65534)
        .gid(65534);
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "dns64d ctl: permission denied on the control token file {}: run as the user dns64d runs as, as root, or (on Windows) as Administrator\n",
            channel.file().display()
        )
    );
}

#[tokio::test]
async fn check_config_names_a_bad_control_address() {
    for (value, reason) in [
        (
            "192.0.2.1:5364",
            "not a loopback address; the control port takes commands from any local program that has the token, so it listens on 127.0.0.0/8 or ::1 only",
        ),
        (
            "[::1]:0",
            "port 0 is not allowed: dns64d ctl finds the server by this address, so it needs a fixed port (1-65535)",
        ),
    ] {
        let (code, stderr, dir) = check_binary(
            &format!("[upstream]\nservers = [\"192.0.2.1\"]\n[control]\naddress = \"{value}\"\n"),
            None,
        )
        .await;
        assert_eq!(code, Some(2));
        assert_eq!(
            stderr,
            format!(
                "dns64d: configuration error: {}/dns64d.toml:4:11: control.address = \"{value}\": {reason}\n",
                dir.path().display()
            )
        );
    }
}

/// Polls `path` until `check` accepts (status, body), with a deadline.
async fn wait_for_http(
    server: SocketAddr,
    path: &str,
    check: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + TEST_TIMEOUT * 2;
    loop {
        let (status, body) = http_get(server, path).await;
        if check(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "{path} stayed at {status} {body:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// A configuration with one upstream, one attempt of 100 ms, and `extra`.
fn fast_failing(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{upstream}\"]\ntimeout_ms = 100\nattempts = 1\n{extra}"
    )
}

#[tokio::test]
async fn healthz_follows_a_dead_and_revived_upstream() {
    let alive = Arc::new(AtomicBool::new(true));
    let switch = Arc::clone(&alive);
    let fake = start_fake_upstream(LO, move |request, _| {
        if switch.load(Ordering::SeqCst) {
            FakeAction::Reply(reply_rcode(request, ResponseCode::NXDomain))
        } else {
            FakeAction::Drop
        }
    })
    .await;
    let d = start_dns64d_toml(&fast_failing(
        fake.addr(),
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    ))
    .await;
    let http = d.server.metrics_addr().unwrap();
    assert_eq!(http_get(http, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(http, "/readyz").await, (200, "ready\n".into()));
    let m = query_udp(d.addr, &Q::new("a.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    alive.store(false, Ordering::SeqCst);
    // Two failures: not down yet (a lost packet is not a dead server).
    for name in ["b.example", "c.example"] {
        let m = query_udp(d.addr, &Q::new(name, RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    assert_eq!(http_get(http, "/healthz").await, (200, "ok\n".into()));
    let m = query_udp(d.addr, &Q::new("d.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let (status, body) = http_get(http, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        format!(
            "every upstream server is down: {} (timeout, down for 0s)\n",
            fake.addr()
        )
    );
    assert_eq!(
        http_get(http, "/readyz").await,
        (200, "ready\n".into()),
        "still ready"
    );

    // Revived: the prober notices without any client query.
    alive.store(true, Ordering::SeqCst);
    wait_for_http(http, "/healthz", |status, _| status == 200).await;
    assert!(fake.count(".", RecordType::NS) >= 1, "probed with . NS");
    let m = query_udp(d.addr, &Q::new("e.example", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Stopping: neither ready nor healthy.
    d.server.handler().resolver().metrics().set_ready(false);
    assert_eq!(
        http_get(http, "/readyz").await,
        (503, "not ready: listeners and zones are not up\n".into())
    );
    assert_eq!(
        http_get(http, "/healthz").await,
        (
            503,
            "not serving: listeners and zones are not up (starting or stopping)\n".into()
        )
    );
}

#[tokio::test]
async fn healthz_stays_up_while_a_local_zone_answers() {
    let fake = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    let zone = data_dir().join("local.test.zone");
    let d = start_dns64d_toml(&fast_failing(
        fake.addr(),
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n[[zones]]\nname = \"local.test\"\nfile = {:?}\n",
            zone.display().to_string()
        ),
    ))
    .await;
    for name in ["a.example", "b.example", "c.example"] {
        query_udp(d.addr, &Q::new(name, RecordType::A)).await;
    }
    assert!(
        d.server
            .handler()
            .resolver()
            .metrics()
            .upstream_health()
            .is_down(fake.addr())
    );
    assert_eq!(
        http_get(d.server.metrics_addr().unwrap(), "/healthz").await,
        (200, "ok\n".into())
    );
}

fn txt_answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(txt.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn chaos_txt_and_nsid_answer_from_config_and_are_hidden_by_default() {
    let auth = start_auth_upstream(LO).await;
    let shown = start_dns64d(
        &[auth.addr()],
        "",
        "[server]\nidentity = \"fra-1\"\nversion = \"dns64d test\"\nnsid = \"fra-1.anycast\"\n",
    )
    .await;
    let hidden = start_dns64d(&[auth.addr()], "", "").await;
    for (name, text) in [
        ("version.bind", "dns64d test"),
        ("version.server", "dns64d test"),
        ("id.server", "fra-1"),
        ("hostname.bind", "fra-1"),
    ] {
        let q = Q::new(name, RecordType::TXT).class(DNSClass::CH);
        for m in [
            query_udp(shown.addr, &q).await,
            query_tcp(shown.addr, &q).await,
        ] {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(m.metadata.authoritative, "{name}");
            assert_eq!(txt_answers(&m), [text], "{name}");
            assert_eq!(m.answers[0].dns_class, DNSClass::CH);
            assert_eq!(m.answers[0].ttl, 0);
        }
        let m = query_udp(hidden.addr, &q).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "hidden {name}"
        );
        assert!(m.answers.is_empty());
    }
    let m = query_udp(
        shown.addr,
        &Q::new("authors.bind", RecordType::TXT).class(DNSClass::CH),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(auth.total(), 0, "CHAOS questions never go upstream");

    // NSID (RFC 5001): only to a client that asks, only when configured.
    let nsid_of = |m: &Message| {
        m.edns
            .as_ref()
            .and_then(|edns| match edns.option(EdnsCode::NSID) {
                Some(EdnsOption::NSID(payload)) => Some(text(payload.as_ref())),
                _ => None,
            })
    };
    let mut asking = Q::new("v4only.dns64.test", RecordType::A)
        .edns(1232)
        .to_message();
    if let Some(edns) = asking.edns.as_mut() {
        edns.options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
    }
    let m = exchange_udp(shown.addr, &asking).await;
    assert_eq!(nsid_of(&m).as_deref(), Some("fra-1.anycast"));
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let m = exchange_tcp(shown.addr, &asking).await;
    assert_eq!(nsid_of(&m).as_deref(), Some("fra-1.anycast"));
    let m = exchange_udp(hidden.addr, &asking).await;
    assert_eq!(nsid_of(&m), None);
    let m = query_udp(
        shown.addr,
        &Q::new("v4only.dns64.test", RecordType::A).edns(1232),
    )
    .await;
    assert_eq!(nsid_of(&m), None, "not asked");
}

#[tokio::test]
async fn refused_clients_get_ede_18() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[access]\nclients = [\"192.0.2.0/24\"]\n",
    )
    .await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::A).edns(1232),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        ede(&m),
        [(18, "query refused by access policy".to_string())]
    );
    let m = query_tcp(d.addr, &Q::new("v4only.dns64.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.edns.is_none(), "no OPT to a client that sent none");
    assert_eq!(d.server.handler().resolver().metrics().refused_total(), 2);
}

#[tokio::test]
async fn ede_texts_never_carry_upstream_addresses_or_os_errors() {
    // Nothing listens on this port: the upstream "refuses" at the network level.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let unreachable = closed.local_addr().unwrap();
    drop(closed);
    let silent = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
    for (upstream, code, text) in [
        (unreachable, 23, "upstream network error"),
        (silent.addr(), 22, "no upstream server answered"),
    ] {
        let d = start_dns64d_toml(&fast_failing(upstream, "")).await;
        let m = query_udp(d.addr, &Q::new("x.example", RecordType::A).edns(1232)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(ede(&m), [(code, text.to_string())], "{upstream}");
    }
}

/// Runs `dns64d --check-config` on `config` (and a zone file `local.zone`),
/// written to a new directory (`DIR` in `config`); returns (exit code,
/// stderr, the directory).
async fn check_binary(
    config: &str,
    zone: Option<&str>,
) -> (Option<i32>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns64d.toml");
    if let Some(zone) = zone {
        std::fs::write(dir.path().join("local.zone"), zone).unwrap();
    }
    std::fs::write(
        &path,
        config.replace("DIR", &dir.path().display().to_string()),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    command
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .env("NO_COLOR", "1");
    let out = run(command).await;
    (out.status.code(), text(&out.stderr), dir)
}

#[tokio::test]
async fn check_config_rejects_with_file_line_key_value_and_exit_2() {
    let (code, stderr, dir) = check_binary(
        "[upstream]\nservers = [\"192.0.2.1\"]\n[log]\nlevel = \"warning\"\n",
        None,
    )
    .await;
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "dns64d: configuration error: {}/dns64d.toml:4:9: log.level = \"warning\": \"warning\" is not a log level; allowed: trace, debug, info, warn, error, off or directives like \"dns64d=debug,warn\"\n",
            dir.path().display()
        )
    );
    // --check-config loads the zone files a start would.
    let (code, stderr, dir) = check_binary(
        "[upstream]\nservers = [\"192.0.2.1\"]\n[[zones]]\nname = \"local.test\"\nfile = \"DIR/local.zone\"\n",
        Some("$ORIGIN local.test.\n@ 3600 IN SOA ns hostmaster 1 2 3 4 5\nhost 300 IN A 192.0.2.300\n"),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "dns64d: configuration error: zone local.test.: cannot load {dir}/local.zone: {dir}/local.zone:3: network address parse error: invalid IPv4 address syntax, in the record `host 300 IN A 192.0.2.300`",
            dir = dir.path().display()
        ),
        "{stderr}"
    );
    let (code, stderr, dir) = check_binary(
        "[upstream]\nservers = [\"192.0.2.1\"]\n[[zones]]\nname = \"local.test\"\nfile = \"DIR/local.zone\"\n",
        Some("$ORIGIN local.test.\n@ 3600 IN SOA ns hostmaster 1 2 3 4 5\n$INCLUDE hosts.inc\n"),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "dns64d: configuration error: zone local.test.: cannot load {dir}/local.zone: {dir}/local.zone:3: io error: No such file or directory (os error 2), in the record `$INCLUDE hosts.inc` (looked for {dir}/hosts.inc)",
            dir = dir.path().display()
        ),
        "{stderr}"
    );
    let (code, stderr, _) = check_binary(
        "[upstream]\nservers = [\"192.0.2.1\"]\n[[zones]]\nname = \"local.test\"\nfile = \"DIR/local.zone\"\n",
        Some("$ORIGIN local.test.\n@ 3600 IN SOA ns hostmaster 1 2 3 4 5\nhost 300 IN A 192.0.2.30\n"),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn warnings_while_loading_are_logged_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns64d.toml");
    std::fs::write(
        &path,
        "listen = [\"127.0.0.1:5300\"]\n[upstream]\nservers = [\"127.0.0.1:5300\", \"192.0.2.1\"]\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dns64d"));
    // stderr is a pipe, not a terminal: no colour even without NO_COLOR.
    command
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let warning = stderr
        .lines()
        .find(|line| line.contains("skipping upstream server"))
        .unwrap_or_else(|| panic!("the warning from loading is logged:\n{stderr}"));
    assert!(
        warning.contains(" WARN ")
            && warning.contains("server=127.0.0.1:5300")
            && warning
                .contains("reason=\"dns64d itself listens there (it would forward to itself)\""),
        "{warning}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
    assert!(text(&out.stdout).contains("servers = [\"192.0.2.1:53\"]"));
}
