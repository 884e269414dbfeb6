//! The `dns64d` command: parse flags, load the configuration, set up logs,
//! run the server, and turn errors into messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dns64d::config::{self, Overrides};
use tracing_subscriber::EnvFilter;

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
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let overrides = Overrides {
        listen: arguments.listen,
        upstream: arguments.upstream,
        prefix: arguments.prefix,
        shim: arguments.shim,
    };
    let config = match config::load(arguments.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dns64d: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
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
    runtime.block_on(async {
        let server = match dns64d::server::start(&config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("dns64d: {error}");
                return ExitCode::FAILURE;
            }
        };
        let upstreams: Vec<String> = config.upstream.servers.iter().map(ToString::to_string).collect();
        let prefixes: Vec<String> = config.dns64.prefixes.iter().map(|p| p.prefix.to_string()).collect();
        tracing::info!(upstreams = %upstreams.join(", "), prefixes = %prefixes.join(", "), "dns64d serving");
        tokio::select! {
            () = server.wait() => ExitCode::FAILURE,
            signal = tokio::signal::ctrl_c() => {
                if let Err(error) = signal {
                    tracing::error!(%error, "cannot wait for SIGINT");
                }
                tracing::info!("shutting down");
                ExitCode::SUCCESS
            }
        }
    })
}
