//! The control channel and `dns64d ctl`: the day-2 commands of
//! unbound-control, rndc, knotc and rec_control for dns64d.
//!
//! One command per connection: the client writes one line, the words
//! separated by spaces, and reads the reply to the end: `ok` or `error` on
//! the first line, then the text. Two transports carry this same protocol
//! ([`ControlEndpoint`]; only how a client gets in differs):
//!
//! - a local Unix socket (`[control] socket`, mode 0660, so its owner and
//!   group may use it), the default on Unix;
//! - a loopback TCP port (`[control] address`), the default on Windows and
//!   chosen on Unix by setting the address. Before the command line the
//!   client sends `token HEX`, the token the server wrote at start to
//!   `[control] token_file` (see [`token`]); without the right token the
//!   reply is `refused` and the reason, and the command is not looked at.
//!
//! The server side hands each command to the main loop ([`Request`]), which
//! owns the running server; [`execute`] answers the commands that only read
//! or flush.

mod token;

pub use token::TokenError;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::answering::cache::FlushScope;
use crate::edge::server::RunningServer;
use crate::ops::config::{ControlEndpoint, DEFAULT_CONTROL_ADDRESS};
use token::{Token, TokenFile};

/// How the commands are used, printed with every usage error.
pub const USAGE: &str = "\
usage: dns64d ctl [--config FILE | --socket PATH | --address ADDR --token-file PATH] <command>

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

/// Longest request accepted (the token line and the command line).
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
            let mut text = format!("flushed {removed} cache entries\n");
            if let Some(recursive) = &server.config().upstream.recursive {
                text.push_str(match (scope, recursive.dnssec_validation) {
                    (FlushScope::All, false) => {
                        "and emptied the recursor's delegations, name server addresses and round-trip times\n"
                    }
                    (FlushScope::All, true) => {
                        "and replaced the recursor with an empty one (its answers, delegations and DNSSEC validations)\n"
                    }
                    (FlushScope::Name(_) | FlushScope::Below(_), false) => {
                        "the recursor keeps no answers of its own; its delegations stay until `dns64d ctl flush`\n"
                    }
                    (FlushScope::Name(_) | FlushScope::Below(_), true) => {
                        "the validating recursor keeps its own copy until that copy's TTL ends (hickory's recursor cannot remove one name); `dns64d ctl flush` empties it\n"
                    }
                });
            }
            Reply::Ok(text)
        }
        Command::DumpCache => {
            let mut text = String::new();
            server.handler().resolver().cache().dump(&mut text);
            Reply::Ok(text)
        }
        Command::Stats => {
            let resolver = server.handler().resolver();
            Reply::Ok(resolver.metrics_text())
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

/// Why the control endpoint cannot be opened or used.
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
    /// Nobody listens on the control port: the server is not running.
    #[error(
        "dns64d is not running, or not with this control address: nothing listens on {address} ({source}); check `[control] address` or pass --address"
    )]
    NotListening {
        /// The control address.
        address: SocketAddr,
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
    /// Another program (perhaps another dns64d) already listens on the control port.
    #[error(
        "cannot listen on the control address {address}: another program (perhaps another dns64d) uses it; set `[control] address` to a free loopback port"
    )]
    AddressInUse {
        /// The control address.
        address: SocketAddr,
    },
    /// Any other I/O failure on the socket.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Any other failure on the control port.
    #[error("control address {address}: {source}")]
    Network {
        /// The control address.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server refused the token.
    #[error(
        "the dns64d at {address} refused the token from {}: {reason}; that file is not the one this server wrote (dns64d writes a new token at every start): check `[control] token_file`, or pass --token-file",
        token_file.display()
    )]
    Refused {
        /// The control address.
        address: SocketAddr,
        /// Where the token was read.
        token_file: PathBuf,
        /// The server's reason.
        reason: String,
    },
    /// The token file cannot be written (server) or read (`ctl`).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A Unix socket was asked for where there are none.
    #[error(
        "Unix control sockets do not exist on this system: dns64d listens on `[control] address` (default {DEFAULT_CONTROL_ADDRESS}); use --config or --address"
    )]
    Unsupported,
}

impl ControlError {
    #[cfg(unix)]
    fn from_io(path: &Path, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        let path = path.to_path_buf();
        match source.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => Self::NotRunning { path, source },
            ErrorKind::PermissionDenied => Self::Permission { path },
            _ => Self::Io { path, source },
        }
    }

    fn from_network(address: SocketAddr, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match source.kind() {
            ErrorKind::ConnectionRefused => Self::NotListening { address, source },
            ErrorKind::AddrInUse => Self::AddressInUse { address },
            _ => Self::Network { address, source },
        }
    }
}

// ---- the protocol, the same on both transports -------------------------------------

/// What starts the first line on the control port, before the token.
const TOKEN_PREFIX: &str = "token ";

/// Why a connection to the control port gets no command answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The first line is not `token HEX`.
    NoToken,
    /// The token is not the server's.
    WrongToken,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Self::NoToken => {
                "no control token: on the control port a connection starts with the line `token HEX`, HEX from the token file"
            }
            Self::WrongToken => "wrong control token",
        }
    }

    fn to_wire(self) -> String {
        format!("refused\n{}", self.reason())
    }
}

/// What the server read from one connection.
enum Incoming {
    /// A command line to answer.
    Line(String),
    /// Refused before the command was looked at.
    Refused(Refusal),
    /// The client closed before sending anything (`ctl` that could not
    /// read the token file, a port probe).
    Closed,
}

/// Reads one request: on the control port the token line first (checked
/// after the command line was read, so the client's whole request is
/// consumed and the reply is not lost to a connection reset), then the
/// command line.
async fn read_request<S>(stream: &mut S, token: Option<&Token>) -> std::io::Result<Incoming>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut reader = BufReader::new(stream.take(MAX_COMMAND as u64));
    let mut line = Vec::new();
    let mut refusal = None;
    if let Some(token) = token {
        reader.read_until(b'\n', &mut line).await?;
        if line.is_empty() {
            return Ok(Incoming::Closed);
        }
        let given = line.strip_suffix(b"\n").unwrap_or(&line);
        let given = given.strip_suffix(b"\r").unwrap_or(given);
        let Some(given) = given.strip_prefix(TOKEN_PREFIX.as_bytes()) else {
            return Ok(Incoming::Refused(Refusal::NoToken));
        };
        if !token.matches(given) {
            refusal = Some(Refusal::WrongToken);
        }
        line.clear();
    }
    reader.read_until(b'\n', &mut line).await?;
    if let Some(refusal) = refusal {
        return Ok(Incoming::Refused(refusal));
    }
    String::from_utf8(line)
        .map(Incoming::Line)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Answers one connection of either transport: reads the request, hands
/// the command to the main loop, writes the reply. `token` is the control
/// port's (`None` on the Unix socket); `peer` names the client in logs.
async fn answer<S>(
    mut stream: S,
    requests: tokio::sync::mpsc::Sender<Request>,
    token: Option<&Token>,
    peer: &str,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let read = tokio::time::timeout(REPLY_TIMEOUT, read_request(&mut stream, token)).await;
    let reply = match read {
        Err(_) => Reply::Error("no command within the timeout".into()).to_wire(),
        Ok(Err(error)) => Reply::Error(format!("cannot read the command: {error}")).to_wire(),
        Ok(Ok(Incoming::Refused(refusal))) => {
            tracing::warn!(%peer, reason = refusal.reason(), "control connection refused");
            refusal.to_wire()
        }
        Ok(Ok(Incoming::Line(line))) => dispatch(&line, &requests).await.to_wire(),
        Ok(Ok(Incoming::Closed)) => {
            tracing::debug!(%peer, "control connection closed before a request");
            return Ok(());
        }
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// Parses a command line and gets the main loop's reply.
async fn dispatch(line: &str, requests: &tokio::sync::mpsc::Sender<Request>) -> Reply {
    let words: Vec<&str> = line.split_whitespace().collect();
    let command = match Command::parse(&words) {
        Ok(command) => command,
        Err(error) => return Reply::Error(format!("{error}\n{USAGE}")),
    };
    tracing::info!(command = %command.to_line(), "control command");
    let (reply, receive) = tokio::sync::oneshot::channel();
    if requests.send(Request { command, reply }).await.is_err() {
        return Reply::Error("the server is shutting down".into());
    }
    receive
        .await
        .unwrap_or_else(|_| Reply::Error("the server is shutting down".into()))
}

/// A connected client stream of either transport (blocking, for `ctl`).
trait ClientStream: std::io::Read + std::io::Write {
    /// Bounds each read of the reply.
    fn set_reply_timeout(&self, timeout: Duration) -> std::io::Result<()>;
    /// Tells the server the request is complete.
    fn end_request(&self) -> std::io::Result<()>;
}

impl ClientStream for std::net::TcpStream {
    fn set_reply_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }

    fn end_request(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(unix)]
impl ClientStream for std::os::unix::net::UnixStream {
    fn set_reply_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }

    fn end_request(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// The client's half of the protocol: the token line (control port only),
/// the command line, then the reply to the end. `Err` in the result is a
/// refusal's reason.
fn exchange(
    stream: &mut impl ClientStream,
    token: Option<&Token>,
    command: &Command,
) -> std::io::Result<Result<Reply, String>> {
    stream.set_reply_timeout(REPLY_TIMEOUT)?;
    let mut request = String::new();
    if let Some(token) = token {
        request.push_str(TOKEN_PREFIX);
        request.push_str(token.as_str());
        request.push('\n');
    }
    request.push_str(&command.to_line());
    request.push('\n');
    stream.write_all(request.as_bytes())?;
    stream.end_request()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(match reply.strip_prefix("refused\n") {
        Some(reason) => Err(reason.to_string()),
        None => Ok(Reply::from_wire(&reply)),
    })
}

// ---- the client (`dns64d ctl`) ------------------------------------------------------

/// Sends one command and returns the reply (blocking; for `dns64d ctl`).
pub fn send(endpoint: &ControlEndpoint, command: &Command) -> Result<Reply, ControlError> {
    match endpoint {
        ControlEndpoint::UnixSocket(path) => send_to_socket(path, command),
        ControlEndpoint::Loopback {
            address,
            token_file,
        } => send_to_port(*address, token_file, command),
    }
}

#[cfg(unix)]
fn send_to_socket(path: &Path, command: &Command) -> Result<Reply, ControlError> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|error| ControlError::from_io(path, error))?;
    match exchange(&mut stream, None, command) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(reason)) => Ok(Reply::Error(reason)), // no tokens on the socket
        Err(source) => Err(ControlError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(not(unix))]
fn send_to_socket(_path: &Path, _command: &Command) -> Result<Reply, ControlError> {
    Err(ControlError::Unsupported)
}

/// Connects first, then reads the token: with the server down, "not
/// running" says more than a missing token file.
fn send_to_port(
    address: SocketAddr,
    token_file: &Path,
    command: &Command,
) -> Result<Reply, ControlError> {
    let mut stream = std::net::TcpStream::connect(address)
        .map_err(|error| ControlError::from_network(address, error))?;
    let token = token::read(token_file)?;
    match exchange(&mut stream, Some(&token), command) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(reason)) => Err(ControlError::Refused {
            address,
            token_file: token_file.to_path_buf(),
            reason,
        }),
        Err(source) => Err(ControlError::Network { address, source }),
    }
}

// ---- the server ---------------------------------------------------------------------

/// A bound control endpoint, served by [`serve`]. Dropping it removes the
/// socket file or the token file.
pub struct ControlListener {
    transport: Transport,
}

/// The listening half of each transport.
enum Transport {
    /// The Unix socket.
    #[cfg(unix)]
    Socket(ControlSocket),
    /// The loopback port and its token.
    Port {
        listener: tokio::net::TcpListener,
        token: Arc<Token>,
        /// Removed with the listener.
        _file: TokenFile,
    },
}

/// Opens the control endpoint (inside a tokio runtime). For the control
/// port the address is bound first, and only then a new token written, so
/// a second server on the same address cannot replace the first one's token.
pub fn bind(endpoint: &ControlEndpoint) -> Result<ControlListener, ControlError> {
    let transport = match endpoint {
        #[cfg(unix)]
        ControlEndpoint::UnixSocket(path) => Transport::Socket(bind_socket(path)?),
        #[cfg(not(unix))]
        ControlEndpoint::UnixSocket(_) => return Err(ControlError::Unsupported),
        ControlEndpoint::Loopback {
            address,
            token_file,
        } => {
            let address = *address;
            let network = |error| ControlError::from_network(address, error);
            let listener = std::net::TcpListener::bind(address).map_err(network)?;
            listener.set_nonblocking(true).map_err(network)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(network)?;
            let token = Token::random();
            let file = token::write(token_file, &token)?;
            Transport::Port {
                listener,
                token: Arc::new(token),
                _file: file,
            }
        }
    };
    Ok(ControlListener { transport })
}

/// Accepts connections until the task is stopped, one command each, handed
/// to the main loop through `requests`.
pub async fn serve(listener: ControlListener, requests: tokio::sync::mpsc::Sender<Request>) {
    match listener.transport {
        #[cfg(unix)]
        Transport::Socket(socket) => loop {
            let stream = match socket.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "control socket: accept failed");
                    continue;
                }
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                if let Err(error) = answer(stream, requests, None, "control socket").await {
                    tracing::debug!(%error, "control connection failed");
                }
            });
        },
        Transport::Port {
            listener,
            token,
            _file,
        } => loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "control port: accept failed");
                    continue;
                }
            };
            let requests = requests.clone();
            let token = Arc::clone(&token);
            tokio::spawn(async move {
                let peer = peer.to_string();
                if let Err(error) = answer(stream, requests, Some(&token), &peer).await {
                    tracing::debug!(%error, %peer, "control connection failed");
                }
            });
        },
    }
}

/// The bound control socket; the file is removed when dropped.
#[cfg(unix)]
struct ControlSocket {
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
fn bind_socket(path: &Path) -> Result<ControlSocket, ControlError> {
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
