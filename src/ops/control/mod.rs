//! The control socket and `dns64d ctl`: the day-2 commands of
//! unbound-control, rndc, knotc and rec_control for dns64d.
//!
//! A local Unix socket (`[control] socket`, mode 0660, so its owner and
//! group may use it) takes one command per connection: the client writes
//! one line, the words separated by spaces, and reads the reply to the end:
//! `ok` or `error` on the first line, then the text. The server side hands
//! each command to the main loop ([`Request`]), which owns the running
//! server; [`execute`] answers the commands that only read or flush.
//!
//! Windows has no control socket yet: `ctl` says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::answering::cache::FlushScope;
use crate::edge::server::RunningServer;

/// How the commands are used, printed with every usage error.
pub const USAGE: &str = "\
usage: dns64d ctl [--config FILE | --socket PATH] <command>

commands:
  status               version, uptime, config file, upstream health, cache fill, queries by outcome
  reload               re-read the configuration (as SIGHUP does)
  flush                empty the cache
  flush NAME           remove NAME (every type) from the cache
  flush NAME --below   remove NAME and every name below it
  dump-cache           the cache, one record per line with its remaining TTL
  log-level LEVEL      set the log level (trace, debug, info, warn, error, off,
                       or directives like dns64d=debug,warn) until the next reload
  stats                the metrics, as /metrics serves them
";

/// Longest command line accepted.
#[cfg_attr(not(unix), allow(dead_code))]
const MAX_COMMAND: usize = 4096;

/// How long `ctl` waits for a reply (a reload loads zone files).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Version, uptime, configuration, health, cache, counters.
    Status,
    /// Re-read the configuration.
    Reload,
    /// Remove cache entries.
    Flush(FlushScope),
    /// The cache as text.
    DumpCache,
    /// Set the log level.
    LogLevel(String),
    /// The metrics as text.
    Stats,
}

/// Why a command line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No command given.
    #[error("no command given")]
    Missing,
    /// A word that is no command.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// Wrong arguments for a command.
    #[error("{command}: {problem}")]
    Arguments {
        /// The command.
        command: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl Command {
    /// Parses the words after `ctl`.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Self, UsageError> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        let Some((&first, rest)) = words.split_first() else {
            return Err(UsageError::Missing);
        };
        let no_arguments = |command: &'static str, value: Self| {
            if rest.is_empty() {
                Ok(value)
            } else {
                Err(UsageError::Arguments {
                    command,
                    problem: format!("takes no arguments, got {:?}", rest.join(" ")),
                })
            }
        };
        match first {
            "status" => no_arguments("status", Self::Status),
            "reload" => no_arguments("reload", Self::Reload),
            "dump-cache" => no_arguments("dump-cache", Self::DumpCache),
            "stats" => no_arguments("stats", Self::Stats),
            "flush" => parse_flush(rest).map(Self::Flush),
            "log-level" => match rest {
                [level] => Ok(Self::LogLevel((*level).to_string())),
                _ => Err(UsageError::Arguments {
                    command: "log-level",
                    problem: "takes one level, like debug or dns64d=debug,warn".into(),
                }),
            },
            other => Err(UsageError::Unknown(other.to_string())),
        }
    }

    /// The command as sent on the socket (one line).
    pub(crate) fn to_line(&self) -> String {
        match self {
            Self::Status => "status".into(),
            Self::Reload => "reload".into(),
            Self::DumpCache => "dump-cache".into(),
            Self::Stats => "stats".into(),
            Self::LogLevel(level) => format!("log-level {level}"),
            Self::Flush(FlushScope::All) => "flush".into(),
            Self::Flush(FlushScope::Name(name)) => format!("flush {name}"),
            Self::Flush(FlushScope::Below(name)) => format!("flush {name} --below"),
        }
    }
}

fn parse_flush(rest: &[&str]) -> Result<FlushScope, UsageError> {
    let name = |text: &str| {
        Name::from_str_relaxed(text)
            .map(|mut name| {
                name.set_fqdn(true);
                name
            })
            .map_err(|error| UsageError::Arguments {
                command: "flush",
                problem: format!("{text:?} is not a domain name: {error}"),
            })
    };
    match rest {
        [] => Ok(FlushScope::All),
        [text] if !text.starts_with('-') => Ok(FlushScope::Name(name(text)?)),
        [text, "--below"] | ["--below", text] => Ok(FlushScope::Below(name(text)?)),
        _ => Err(UsageError::Arguments {
            command: "flush",
            problem: format!(
                "expected nothing, NAME, or NAME --below; got {:?}",
                rest.join(" ")
            ),
        }),
    }
}

/// The reply to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done; the text to print.
    Ok(String),
    /// Not done; why.
    Error(String),
}

#[cfg_attr(not(unix), allow(dead_code))]
impl Reply {
    fn to_wire(&self) -> String {
        match self {
            Self::Ok(text) => format!("ok\n{text}"),
            Self::Error(text) => format!("error\n{text}"),
        }
    }

    fn from_wire(text: &str) -> Self {
        match text.split_once('\n') {
            Some(("ok", rest)) => Self::Ok(rest.to_string()),
            Some(("error", rest)) => Self::Error(rest.to_string()),
            _ if text == "ok" => Self::Ok(String::new()),
            _ => Self::Error(format!("unexpected reply from the server: {text:?}")),
        }
    }
}

/// A command from the socket, with where its reply goes.
pub struct Request {
    /// The command.
    pub command: Command,
    /// Send the reply here.
    pub reply: tokio::sync::oneshot::Sender<Reply>,
}

/// What `status` tells beyond the running server.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    /// When the server started.
    pub started: Instant,
    /// The configuration file, if any.
    pub config_file: Option<PathBuf>,
}

/// Answers the commands that read or flush: `status`, `flush`,
/// `dump-cache`, `stats`. (`reload` and `log-level` change what the main
/// loop owns; it answers them.)
pub fn execute(command: &Command, server: &RunningServer, info: &StatusInfo) -> Reply {
    match command {
        Command::Status => Reply::Ok(status(server, info)),
        Command::Flush(scope) => {
            let removed = server.flush_cache(scope);
            Reply::Ok(format!("flushed {removed} cache entries\n"))
        }
        Command::DumpCache => {
            let mut text = String::new();
            server.handler().resolver().cache().dump(&mut text);
            Reply::Ok(text)
        }
        Command::Stats => {
            let resolver = server.handler().resolver();
            Reply::Ok(resolver.metrics().encode(resolver.cache().len()))
        }
        Command::Reload | Command::LogLevel(_) => {
            Reply::Error(format!("{} is handled by the main loop", command.to_line()))
        }
    }
}

fn status(server: &RunningServer, info: &StatusInfo) -> String {
    use std::fmt::Write as _;
    let resolver = server.handler().resolver();
    let metrics = resolver.metrics();
    let config = server.config();
    let mut text = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(text, "{key}: {value}"); // writing to a String cannot fail
    };
    line("version", env!("CARGO_PKG_VERSION").to_string());
    line("uptime", format!("{}s", info.started.elapsed().as_secs()));
    line(
        "config",
        info.config_file.as_ref().map_or_else(
            || "none (defaults, environment, flags)".to_string(),
            |path| path.display().to_string(),
        ),
    );
    let listeners: Vec<String> = server
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    line("listeners", listeners.join(", "));
    line(
        "health",
        match server.health().check() {
            Ok(()) => "ok".to_string(),
            Err(reason) => reason.to_string(),
        },
    );
    if config.upstream.recursive.is_some() {
        line("upstream", "recursive (from the root servers)".into());
    }
    let servers = server.upstream().addresses();
    for report in metrics.upstream_health().report(&servers) {
        let state = match report.down_for {
            Some(down_for) => format!(
                "down for {}s (last error: {})",
                down_for.as_secs(),
                report.last_error
            ),
            None => "up".to_string(),
        };
        line("upstream", format!("{} {state}", report.address));
    }
    line(
        "cache",
        format!(
            "{} of {} entries",
            resolver.cache().len(),
            config.cache.max_entries
        ),
    );
    let queries: Vec<String> = metrics
        .queries_by_rcode()
        .iter()
        .map(|(rcode, count)| format!("{rcode}={count}"))
        .collect();
    line(
        "queries",
        if queries.is_empty() {
            "none yet".to_string()
        } else {
            queries.join(" ")
        },
    );
    line("refused", metrics.refused_total().to_string());
    text
}

/// Why the control socket cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket does not exist or nobody listens: the server is not running.
    #[error(
        "dns64d is not running, or not with this control socket: nothing listens on {} ({source}); check `[control] socket` or pass --socket",
        path.display()
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// No permission on the socket.
    #[error(
        "permission denied on the control socket {}: run as root or as a member of its group",
        path.display()
    )]
    Permission {
        /// The socket path.
        path: PathBuf,
    },
    /// Another server already listens on the socket.
    #[error("another dns64d already listens on the control socket {}", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Any other I/O failure on the socket.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Control sockets exist on Unix only so far.
    #[error("the control socket is not supported on this system yet")]
    Unsupported,
}

#[cfg_attr(not(unix), allow(dead_code))]
impl ControlError {
    fn from_io(path: &Path, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        let path = path.to_path_buf();
        match source.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => Self::NotRunning { path, source },
            ErrorKind::PermissionDenied => Self::Permission { path },
            _ => Self::Io { path, source },
        }
    }
}

/// Sends one command and returns the reply (blocking; for `dns64d ctl`).
#[cfg(unix)]
pub fn send(path: &Path, command: &Command) -> Result<Reply, ControlError> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|error| ControlError::from_io(path, error))?;
    let io = |error| ControlError::Io {
        path: path.to_path_buf(),
        source: error,
    };
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    stream
        .write_all(format!("{}\n", command.to_line()).as_bytes())
        .map_err(io)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(io)?;
    Ok(Reply::from_wire(&reply))
}

/// Control sockets exist on Unix only so far.
#[cfg(not(unix))]
pub fn send(_path: &Path, _command: &Command) -> Result<Reply, ControlError> {
    Err(ControlError::Unsupported)
}

/// The bound control socket; the file is removed when dropped.
#[cfg(unix)]
pub struct ControlSocket {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

#[cfg(unix)]
impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), %error, "cannot remove the control socket");
        }
    }
}

/// Binds the control socket at `path` (mode 0660). A socket file nobody
/// listens on (left by a crash) is replaced; a live one is an error.
#[cfg(unix)]
pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
    use std::os::unix::fs::PermissionsExt;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ControlError::InUse {
            path: path.to_path_buf(),
        });
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(|error| ControlError::from_io(path, error))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let socket = ControlSocket {
        listener,
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        ControlError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(socket)
}

/// Accepts connections until the task is stopped, one command each, handed
/// to the main loop through `requests`.
#[cfg(unix)]
pub async fn serve(socket: ControlSocket, requests: tokio::sync::mpsc::Sender<Request>) {
    loop {
        let stream = match socket.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "control socket: accept failed");
                continue;
            }
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, requests).await {
                tracing::debug!(%error, "control connection failed");
            }
        });
    }
}

/// Reads one command line, gets the reply and writes it.
#[cfg(unix)]
async fn answer(
    mut stream: tokio::net::UnixStream,
    requests: tokio::sync::mpsc::Sender<Request>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut line = String::new();
    let read = tokio::time::timeout(
        REPLY_TIMEOUT,
        BufReader::new((&mut stream).take(MAX_COMMAND as u64)).read_line(&mut line),
    )
    .await;
    let reply = match read {
        Err(_) => Reply::Error("no command within the timeout".into()),
        Ok(Err(error)) => Reply::Error(format!("cannot read the command: {error}")),
        Ok(Ok(_)) => {
            let words: Vec<&str> = line.split_whitespace().collect();
            match Command::parse(&words) {
                Err(error) => Reply::Error(format!("{error}\n{USAGE}")),
                Ok(command) => {
                    tracing::info!(command = %command.to_line(), "control command");
                    let (reply, receive) = tokio::sync::oneshot::channel();
                    if requests.send(Request { command, reply }).await.is_err() {
                        Reply::Error("the server is shutting down".into())
                    } else {
                        receive
                            .await
                            .unwrap_or_else(|_| Reply::Error("the server is shutting down".into()))
                    }
                }
            }
        }
    };
    stream.write_all(reply.to_wire().as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_parse_and_print_back() {
        let cases: [(&[&str], Command); 8] = [
            (&["status"], Command::Status),
            (&["reload"], Command::Reload),
            (&["flush"], Command::Flush(FlushScope::All)),
            (
                &["flush", "Example.com"],
                Command::Flush(FlushScope::Name(Name::from_ascii("Example.com.").unwrap())),
            ),
            (
                &["flush", "example.com", "--below"],
                Command::Flush(FlushScope::Below(Name::from_ascii("example.com.").unwrap())),
            ),
            (&["dump-cache"], Command::DumpCache),
            (&["log-level", "debug"], Command::LogLevel("debug".into())),
            (&["stats"], Command::Stats),
        ];
        for (words, command) in cases {
            assert_eq!(Command::parse(words).as_ref(), Ok(&command), "{words:?}");
            let line = command.to_line();
            let again: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(Command::parse(&again), Ok(command), "{line}");
        }
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let cases: [(&[&str], &str); 6] = [
            (&[], "no command given"),
            (&["restart"], "unknown command \"restart\""),
            (
                &["status", "now"],
                "status: takes no arguments, got \"now\"",
            ),
            (
                &["log-level"],
                "log-level: takes one level, like debug or dns64d=debug,warn",
            ),
            (
                &["flush", "a", "b"],
                "flush: expected nothing, NAME, or NAME --below; got \"a b\"",
            ),
            (
                &["flush", "a..b"],
                "flush: \"a..b\" is not a domain name: Malformed label: ",
            ),
        ];
        for (words, expected) in cases {
            let error = Command::parse(words).expect_err("usage error").to_string();
            assert!(error.starts_with(expected), "{words:?}: {error}");
        }
    }

    #[test]
    fn replies_survive_the_wire() {
        for reply in [
            Reply::Ok("a\nb\n".into()),
            Reply::Ok(String::new()),
            Reply::Error("no".into()),
        ] {
            assert_eq!(Reply::from_wire(&reply.to_wire()), reply);
        }
    }
}
