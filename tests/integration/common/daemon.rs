//! Starting an in-process dns64d for a test: a config built from TOML with
//! the listen address on loopback port 0 and the given upstreams.

use std::net::SocketAddr;

use dns64d::edge::server::{self, RunningServer};

/// A running dns64d; stops when dropped.
pub struct Dns64d {
    pub addr: SocketAddr,
    pub server: RunningServer,
}

/// Starts dns64d on 127.0.0.1:0 forwarding to `upstreams`, with `extra` TOML
/// appended (sections such as `[dns64]` or `[cache]`; `[upstream]` keys go in
/// `upstream_extra`).
pub async fn start_dns64d(upstreams: &[SocketAddr], upstream_extra: &str, extra: &str) -> Dns64d {
    start_dns64d_on("127.0.0.1:0", upstreams, upstream_extra, extra).await
}

/// Like [`start_dns64d`] on a chosen listen address (port 0 for a free port).
pub async fn start_dns64d_on(
    listen: &str,
    upstreams: &[SocketAddr],
    upstream_extra: &str,
    extra: &str,
) -> Dns64d {
    let servers: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    let toml = format!(
        "listen = [\"{listen}\"]\n{extra_top}[upstream]\nservers = [{}]\ntimeout_ms = 1000\nattempts = 2\n{upstream_extra}\n{extra}\n",
        servers.join(", "),
        extra_top = "",
    );
    let config = dns64d::ops::config::from_toml_str(&toml)
        .unwrap_or_else(|e| panic!("test config rejected: {e}\n{toml}"));
    let server = server::start(&config).await.expect("dns64d starts");
    let addr = server.local_addrs()[0];
    Dns64d { addr, server }
}

/// Starts dns64d from a whole TOML configuration (listen addresses included).
pub async fn start_dns64d_toml(toml: &str) -> Dns64d {
    let config = dns64d::ops::config::from_toml_str(toml)
        .unwrap_or_else(|e| panic!("test config rejected: {e}\n{toml}"));
    let server = server::start(&config).await.expect("dns64d starts");
    let addr = server.local_addrs()[0];
    Dns64d { addr, server }
}
