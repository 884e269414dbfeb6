//! The `dns64d` command: parse flags, load the configuration, set up logs,
//! run the server until a signal, and turn errors into messages and exit
//! codes. SIGHUP reloads the configuration, SIGTERM and SIGINT stop
//! gracefully; systemd is told about each state (sd_notify).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use dns64d::ops::config::{self, Config, ControlEndpoint, Overrides};
use dns64d::ops::control::{self, Command, Reply, Request, StatusInfo};
use dns64d::ops::logging::Logging;

mod cli;
use cli::man;
#[cfg(windows)]
use cli::windows_scm;

/// How long a shutdown waits for queries being answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Exit code: the configuration (or a zone file, root hints, trust anchor) is invalid.
const EXIT_CONFIG: u8 = 2;
/// Exit code of `ctl`: the server is not running, or the socket or token
/// file not permitted, or the token refused.
const EXIT_UNREACHABLE: u8 = 3;

/// A DNS64 server: forwards queries, caches answers and synthesizes AAAA
/// records from A records under a NAT64 prefix (RFC 6147, RFC 6052).
#[derive(Debug, Parser)]
#[command(name = "dns64d", version, about)]
struct Arguments {
    /// TOML configuration file (settings not in it keep their defaults).
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to serve on, UDP and TCP (repeatable; replaces `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Upstream resolver, ip or ip:port (repeatable; replaces `upstream.servers`).
    #[arg(long, value_name = "ADDR")]
    upstream: Vec<String>,
    /// NAT64 prefix (repeatable; replaces `dns64.prefixes`).
    #[arg(long, value_name = "PREFIX")]
    prefix: Vec<String>,
    /// Run as a per-host shim: 127.0.0.1:53, loopback clients only, forwarding
    /// to the host's IPv6 resolvers, synthesis off unless a prefix is given.
    #[arg(long)]
    shim: bool,
    /// Load everything a start or reload would (configuration, zone files,
    /// root hints, trust anchor), print the effective settings and exit:
    /// 0 if valid, 2 if not.
    #[arg(long)]
    check_config: bool,
    /// Write the man pages into DIR and exit (deploy/package.sh).
    #[arg(long, value_name = "DIR", hide = true)]
    write_man_pages: Option<PathBuf>,
    /// A subcommand (`ctl`); none runs the server.
    #[command(subcommand)]
    subcommand: Option<Subcommand>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Control a running dns64d over its control socket or port (`dns64d ctl help`).
    Ctl(CtlArguments),
}

/// `dns64d ctl`.
#[derive(Debug, clap::Args)]
struct CtlArguments {
    /// The server's configuration file, to find its control socket, or its
    /// control address and token file.
    #[arg(short, long, value_name = "FILE", conflicts_with_all = ["socket", "address", "token_file"])]
    config: Option<PathBuf>,
    /// The control socket (default: `control.socket` of the configuration).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["address", "token_file"])]
    socket: Option<PathBuf>,
    /// The control port, a loopback address (default: `control.address` of
    /// the configuration; with only --token-file, 127.0.0.1:5364).
    #[arg(long, value_name = "ADDR")]
    address: Option<std::net::SocketAddr>,
    /// The control port's token file (default: `control.token_file` of the
    /// configuration; with only --address, that key's default).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// The command and its arguments: status, reload, flush [NAME [--below]],
    /// dump-cache, log-level LEVEL, stats.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

impl Arguments {
    fn load(&self) -> Result<Config, config::ConfigError> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            prefix: self.prefix.clone(),
            shim: self.shim,
        };
        config::load(self.config.as_deref(), &overrides)
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    #[cfg(windows)]
    if let Some(code) = windows_scm::command() {
        return code;
    }
    run(Arguments::parse())
}

/// Turns off transparent huge pages for this process (Linux). Where THP is
/// `always`, the allocator's arenas are faulted in 2 MiB at a time: dns64d
/// idled at 26 MB RSS (13 MB of it one arena barely used) instead of 14 MB,
/// and its caches grew in the same steps. Memory that grows with use matters
/// more to a sidecar or a per-host shim than the TLB misses THP saves.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of
    // ours; on failure (an old kernel) the process keeps THP, nothing else.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Loads the configuration, sets up logs and serves until stopped (also the
/// Windows service's body); or runs `dns64d ctl`.
fn run(arguments: Arguments) -> ExitCode {
    if let Some(directory) = &arguments.write_man_pages {
        return man::write(Arguments::command(), directory);
    }
    if let Some(Subcommand::Ctl(ctl)) = &arguments.subcommand {
        return run_ctl(ctl, arguments.config.as_deref());
    }
    // Logging first, so what loading the configuration says is seen.
    let logging = Logging::init();
    let config = match arguments.load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dns64d: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging.apply(&config.log);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dns64d: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if arguments.check_config {
        // What a start would load beyond the configuration itself.
        if let Err(error) =
            runtime.block_on(dns64d::answering::zones::LocalZones::load(&config.zones))
        {
            eprintln!("dns64d: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
        println!("# configuration is valid; effective settings:");
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    runtime.block_on(serve(arguments, config, logging))
}

/// `dns64d ctl`: one command to the running server; exit 0 if done, 1 if
/// it failed, 2 on a usage error, 3 if the server cannot be reached.
fn run_ctl(ctl: &CtlArguments, top_config: Option<&Path>) -> ExitCode {
    let command = match Command::parse(&ctl.command) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("dns64d ctl: {error}\n\n{}", control::USAGE);
            return ExitCode::from(2);
        }
    };
    let endpoint = match (&ctl.socket, ctl.address, &ctl.token_file) {
        (Some(socket), _, _) => ControlEndpoint::UnixSocket(socket.clone()),
        (None, None, None) => {
            match config::load(ctl.config.as_deref().or(top_config), &Overrides::default()) {
                Ok(config) => match config.control {
                    Some(endpoint) => endpoint,
                    None => {
                        eprintln!(
                            "dns64d ctl: control is off in this configuration (control.socket and control.address are both \"\")"
                        );
                        return ExitCode::from(EXIT_UNREACHABLE);
                    }
                },
                Err(error) => {
                    eprintln!("dns64d ctl: configuration error: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        (None, address, token_file) => ControlEndpoint::Loopback {
            address: address.unwrap_or_else(|| {
                config::DEFAULT_CONTROL_ADDRESS
                    .parse()
                    .expect("the default control address is a socket address")
            }),
            token_file: token_file
                .clone()
                .unwrap_or_else(config::default_control_token_file),
        },
    };
    match control::send(&endpoint, &command) {
        Ok(Reply::Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Reply::Error(text)) => {
            eprintln!("dns64d ctl: {}", text.trim_end());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("dns64d ctl: {error}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// The startup line: version, configuration file, listeners, upstreams, prefixes, zones.
fn log_start(arguments: &Arguments, config: &Config, server: &dns64d::edge::server::RunningServer) {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let upstreams = if config.upstream.recursive.is_some() {
        "recursive (root servers)".to_string()
    } else {
        list(
            config
                .upstream
                .servers
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %arguments.config.as_ref().map_or("none".into(), |path| path.display().to_string()),
        listeners = %list(server.local_addrs().iter().map(ToString::to_string).collect()),
        upstreams = %upstreams,
        prefixes = %list(config.dns64.prefixes.iter().map(|p| p.prefix.to_string()).collect()),
        zones = %list(config.zones.iter().map(|zone| format!("{} ({})", zone.name, zone.file.display())).collect()),
        control = %config.control.as_ref().map_or("off".into(), ToString::to_string),
        "dns64d serving"
    );
}

async fn serve(arguments: Arguments, config: Config, logging: Logging) -> ExitCode {
    let started = Instant::now();
    let mut server = match dns64d::edge::server::start(&config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("dns64d: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (request_sender, mut requests) = tokio::sync::mpsc::channel::<Request>(16);
    let control_task = start_control(config.control.as_ref(), request_sender);
    log_start(&arguments, &config, &server);
    notify_systemd(ServiceState::Ready);
    let info = StatusInfo {
        started,
        config_file: arguments.config.clone(),
    };

    let signals = Signals::new();
    let mut signals = match signals {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("dns64d: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            () = server.wait() => {
                tracing::error!("all listeners stopped");
                return ExitCode::FAILURE;
            }
            signal = signals.next() => match signal {
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    notify_systemd(ServiceState::Reloading);
                    let _ = reload(&arguments, &mut server, &logging).await; // logged inside
                    notify_systemd(ServiceState::Ready);
                }
                Signal::Stop => break,
            },
            Some(request) = requests.recv() => {
                let reply = match &request.command {
                    Command::Reload => {
                        notify_systemd(ServiceState::Reloading);
                        let result = reload(&arguments, &mut server, &logging).await;
                        notify_systemd(ServiceState::Ready);
                        match result {
                            Ok(notes) => Reply::Ok(notes.iter().map(|note| format!("{note}\n")).chain(["configuration reloaded\n".to_string()]).collect()),
                            Err(error) => Reply::Error(error),
                        }
                    }
                    Command::LogLevel(level) => match logging.set_level(level) {
                        Ok(()) => {
                            tracing::info!(%level, "log level changed");
                            Reply::Ok(format!("log level set to {level}\n"))
                        }
                        Err(error) => Reply::Error(error.to_string()),
                    },
                    command => control::execute(command, &server, &info),
                };
                let _ = request.reply.send(reply); // the client may have gone; nothing to do
            }
        }
    }
    notify_systemd(ServiceState::Stopping);
    if let Some(task) = control_task {
        task.abort();
    }
    tracing::info!(
        active_queries = server.active_queries(),
        "shutting down: no new queries, finishing those in flight"
    );
    let cut_off = server.shutdown(SHUTDOWN_GRACE).await;
    if cut_off > 0 {
        tracing::warn!(cut_off, "queries still unanswered after the grace period");
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Opens the control socket or port and serves it; one that cannot be
/// opened is logged and the server runs without it.
fn start_control(
    endpoint: Option<&ControlEndpoint>,
    requests: tokio::sync::mpsc::Sender<Request>,
) -> Option<tokio::task::JoinHandle<()>> {
    match control::bind(endpoint?) {
        Ok(listener) => Some(tokio::spawn(control::serve(listener, requests))),
        Err(error) => {
            tracing::warn!(%error, "no control channel: dns64d ctl will not reach this server");
            None
        }
    }
}

/// Re-reads the configuration from the same sources; a bad one is rejected
/// and the old one keeps serving. Returns the notes, or why it was rejected.
async fn reload(
    arguments: &Arguments,
    server: &mut dns64d::edge::server::RunningServer,
    logging: &Logging,
) -> Result<Vec<String>, String> {
    let config = match arguments.load() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "reload rejected: the new configuration is invalid; the old one keeps serving");
            return Err(format!(
                "reload rejected, the old configuration keeps serving: {error}"
            ));
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let log = config.log.clone();
    match server.reload(config).await {
        Ok(notes) => {
            for note in &notes {
                tracing::warn!("{note}");
            }
            logging.apply(&log);
            tracing::info!("configuration reloaded");
            Ok(notes)
        }
        Err(error) => {
            tracing::error!(%error, "reload rejected: a zone failed to load; the old configuration keeps serving");
            Err(format!(
                "reload rejected, the old configuration keeps serving: {error}"
            ))
        }
    }
}

/// The service states systemd is told about.
#[derive(Debug, Clone, Copy)]
enum ServiceState {
    /// Listeners bound, serving.
    Ready,
    /// Reloading the configuration.
    Reloading,
    /// Shutting down.
    Stopping,
}

/// Tells systemd about a state change when running under `Type=notify`.
#[cfg(unix)]
fn notify_systemd(state: ServiceState) {
    let state = match state {
        ServiceState::Ready => sd_notify::NotifyState::Ready,
        ServiceState::Reloading => sd_notify::NotifyState::Reloading,
        ServiceState::Stopping => sd_notify::NotifyState::Stopping,
    };
    if let Err(error) = sd_notify::notify(&[state]) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// On Windows the Service Control Manager is told instead (when running as
/// a service).
#[cfg(windows)]
fn notify_systemd(state: ServiceState) {
    windows_scm::report(state);
}

/// Neither systemd nor an SCM elsewhere.
#[cfg(not(any(unix, windows)))]
fn notify_systemd(_state: ServiceState) {}

/// The signals dns64d acts on.
enum Signal {
    /// SIGHUP (Unix only).
    #[cfg_attr(not(unix), allow(dead_code))]
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

#[cfg(unix)]
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hangup.recv() => Signal::Reload,
            _ = self.terminate.recv() => Signal::Stop,
            _ = self.interrupt.recv() => Signal::Stop,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// Ctrl+C, or (on Windows) a stop request from the SCM.
    async fn next(&mut self) -> Signal {
        #[cfg(windows)]
        let service_stop = windows_scm::stop_requested();
        #[cfg(not(windows))]
        let service_stop = std::future::pending::<()>();
        tokio::select! {
            Ok(()) = tokio::signal::ctrl_c() => Signal::Stop,
            () = service_stop => Signal::Stop,
        }
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
