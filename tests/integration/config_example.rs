//! The shipped example configuration loads and means what its comments say.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[test]
fn quickstart_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.toml");
    // `servers = "system"` reads /etc/resolv.conf; loading sends no traffic.
    let config = dns64d::ops::config::load(Some(&path), &Default::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let listen: Vec<SocketAddr> = ["127.0.0.1:5300", "[::1]:5300"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let bound: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
    assert_eq!(bound, listen);
    // The upstreams come from this machine's /etc/resolv.conf and may be none.
    assert_eq!(config.upstream.timeout, Duration::from_millis(2000));
    assert_eq!(config.upstream.attempts, 2);
    let prefixes: Vec<String> = config
        .dns64
        .prefixes
        .iter()
        .map(|p| p.prefix.to_string())
        .collect();
    assert_eq!(prefixes, ["64:ff9b::/96"]);
    let clients: Vec<String> = config
        .access_clients
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(clients, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(config.cache.max_entries, 100_000);
    assert_eq!(config.cache.max_ttl, 86400);
    assert_eq!(config.cache.negative_max_ttl, 3600);
    assert!(!config.dns64.break_dnssec);
}

#[test]
fn shim_example_loads_as_written() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shim.toml");
    let config = dns64d::ops::config::load(Some(&path), &Default::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    assert_eq!(config.profile, dns64d::ops::config::Profile::Shim);
    let bound: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
    assert_eq!(bound, vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]);
    assert!(config.dns64.prefixes.is_empty());
    assert!(
        config
            .upstream
            .servers
            .iter()
            .all(|s| s.is_ipv6() && !s.ip().is_loopback())
    );
}

#[test]
fn recursive_example_loads_as_written() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/recursive.toml");
    let config = dns64d::ops::config::load(Some(&path), &Default::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let recursive = config.upstream.recursive.expect("recursive mode");
    assert_eq!(recursive.root_hints, None, "the built-in root hints");
    assert!(!recursive.query_private_nameservers);
    assert_eq!(recursive.timeout, Duration::from_millis(4000));
}
