//! The `dns64d` command: parse flags, load the configuration, set up logs,
//! run the server until a signal, and turn errors into messages and exit
//! codes. SIGHUP reloads the configuration, SIGTERM and SIGINT stop
//! gracefully; systemd is told about each state (sd_notify).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use dns64d::config::{self, Config, LogFormat, Overrides};
use tracing_subscriber::EnvFilter;

mod man;

/// How long a shutdown waits for queries being answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
    /// Validate the configuration, print the effective settings and exit.
    #[arg(long)]
    check_config: bool,
    /// Write the man pages into DIR and exit (deploy/package.sh).
    #[arg(long, value_name = "DIR", hide = true)]
    write_man_pages: Option<PathBuf>,
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
    let arguments = Arguments::parse();
    if let Some(directory) = &arguments.write_man_pages {
        return man::write(Arguments::command(), directory);
    }
    let config = match arguments.load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dns64d: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if arguments.check_config {
        println!("# configuration is valid; effective settings:");
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dns64d: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(arguments, config))
}

/// Logs to stderr as text or JSON; `RUST_LOG` overrides `log.level`.
fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(arguments: Arguments, config: Config) -> ExitCode {
    let mut server = match dns64d::server::start(&config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("dns64d: {error}");
            return ExitCode::FAILURE;
        }
    };
    let upstreams: Vec<String> = config
        .upstream
        .servers
        .iter()
        .map(ToString::to_string)
        .collect();
    let prefixes: Vec<String> = config
        .dns64
        .prefixes
        .iter()
        .map(|p| p.prefix.to_string())
        .collect();
    tracing::info!(
        upstreams = %upstreams.join(", "),
        prefixes = %prefixes.join(", "),
        zones = config.zones.len(),
        "dns64d serving"
    );
    notify_systemd(ServiceState::Ready);

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
                    notify_systemd(ServiceState::Reloading);
                    reload(&arguments, &mut server).await;
                    notify_systemd(ServiceState::Ready);
                }
                Signal::Stop => break,
            },
        }
    }
    notify_systemd(ServiceState::Stopping);
    tracing::info!(
        in_flight = server.in_flight(),
        "shutting down: no new queries, finishing those in flight"
    );
    let cut_off = server.shutdown(SHUTDOWN_GRACE).await;
    if cut_off > 0 {
        tracing::warn!(cut_off, "queries still unanswered after the grace period");
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Re-reads the configuration from the same sources; a bad one is rejected
/// and the old one keeps serving.
async fn reload(arguments: &Arguments, server: &mut dns64d::server::RunningServer) {
    tracing::info!("SIGHUP: reloading the configuration");
    let config = match arguments.load() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "reload rejected: the new configuration is invalid; the old one keeps serving");
            return;
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match server.reload(config).await {
        Ok(notes) => {
            for note in notes {
                tracing::warn!("{note}");
            }
            tracing::info!("configuration reloaded");
        }
        Err(error) => {
            tracing::error!(%error, "reload rejected: a zone failed to load; the old configuration keeps serving");
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

/// systemd exists only on Unix.
#[cfg(not(unix))]
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

    async fn next(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Stop,
            Err(_) => std::future::pending().await,
        }
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
