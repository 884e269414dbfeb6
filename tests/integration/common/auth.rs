//! In-process authoritative upstream built on hickory-server.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{LowerName, Name, RecordType};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use super::certs::ServerCert;
use super::seen::{SeenLog, SeenQuery, Transport};

/// The default zones served by [`start_auth_upstream`].
pub fn default_zones() -> Vec<(String, PathBuf)> {
    vec![
        (
            "dns64.test.".to_string(),
            super::data_dir().join("dns64.test.zone"),
        ),
        (
            "other.test.".to_string(),
            super::data_dir().join("other.test.zone"),
        ),
        (
            "184.93.in-addr.arpa.".to_string(),
            super::data_dir().join("reverse.zone"),
        ),
        (
            "10.in-addr.arpa.".to_string(),
            super::data_dir().join("private-reverse.zone"),
        ),
    ]
}

/// `RequestHandler` that records every request, then delegates to the `Catalog`.
struct RecordingHandler {
    catalog: Catalog,
    seen: SeenLog,
}

#[async_trait::async_trait]
impl RequestHandler for RecordingHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // DoT and DoH (start_auth_encrypted) are stream transports too.
        let transport = match request.protocol() {
            Protocol::Tcp | Protocol::Tls | Protocol::Https => Transport::Tcp,
            _ => Transport::Udp,
        };
        // Decode the raw bytes again so the name keeps its original case
        // (hickory's LowerQuery is lower-cased).
        match Message::from_vec(request.as_slice()) {
            Ok(msg) => self
                .seen
                .push(SeenQuery::from_message(&msg, transport, request.src())),
            Err(e) => eprintln!(
                "AuthUpstream: undecodable request from {}: {e}",
                request.src()
            ),
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// In-process authoritative DNS server (UDP + TCP on the same loopback port).
/// Stops when dropped (tasks are aborted) or via [`AuthUpstream::shutdown`].
pub struct AuthUpstream {
    addr: SocketAddr,
    seen: SeenLog,
    server: Option<Server<RecordingHandler>>,
}

impl AuthUpstream {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// All queries received so far, in arrival order.
    pub fn seen(&self) -> Vec<SeenQuery> {
        self.seen.all()
    }

    /// Number of received queries for `name` (case-insensitive, trailing dot optional) and `qtype`.
    pub fn count(&self, name: &str, qtype: RecordType) -> usize {
        self.seen.count(name, qtype)
    }

    /// Total number of received queries.
    pub fn total(&self) -> usize {
        self.seen.all().len()
    }

    pub fn clear_seen(&self) {
        self.seen.clear();
    }

    /// Wait (event-driven, no polling) until at least `n` queries for `name`/`qtype` were
    /// received; panics after `TEST_TIMEOUT`.
    pub async fn wait_for_count(&self, name: &str, qtype: RecordType, n: usize) {
        self.seen.wait_for_count(name, qtype, n).await;
    }

    /// Wait until `cond(seen queries)` holds; panics after `TEST_TIMEOUT`.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&[SeenQuery]) -> bool) {
        self.seen.wait_until(what, cond).await;
    }

    /// Graceful shutdown: returns once the UDP socket and TCP listener are closed.
    pub async fn shutdown(mut self) {
        if let Some(mut server) = self.server.take() {
            tokio::time::timeout(super::TEST_TIMEOUT, server.shutdown_gracefully())
                .await
                .expect("AuthUpstream shutdown timed out")
                .expect("AuthUpstream shutdown error");
        }
    }
}

/// Start the authoritative upstream serving `dns64.test.` and `other.test.` on `ip`
/// (random port, same for UDP and TCP).
pub async fn start_auth_upstream(ip: IpAddr) -> AuthUpstream {
    start_auth_upstream_with(ip, &default_zones()).await
}

/// Like [`start_auth_upstream`] on a given port (0 for any), with the default zones.
pub async fn start_auth_on_port(ip: IpAddr, port: u16) -> AuthUpstream {
    start_auth_on_port_with(ip, port, &default_zones()).await
}

/// An authoritative server for `zones` on a given address and port.
pub async fn start_auth_on_port_with(
    ip: IpAddr,
    port: u16,
    zones: &[(String, PathBuf)],
) -> AuthUpstream {
    let udp = UdpSocket::bind((ip, port)).await.expect("bind UDP");
    let bound = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(bound).await.expect("bind TCP");
    serve_zones(zones, udp, tcp).await
}

/// Like [`start_auth_upstream`] with custom zones: `(origin, zone file path)`.
pub async fn start_auth_upstream_with(ip: IpAddr, zones: &[(String, PathBuf)]) -> AuthUpstream {
    let (udp, tcp) = bind_udp_tcp_same_port(ip).await;
    serve_zones(zones, udp, tcp).await
}

/// Loads a zone file; `nx_proofs` gives it an NSEC chain when it is signed.
pub fn load_zone(origin: &Name, path: &Path, nx_proofs: Option<NxProofKind>) -> FileZoneHandler {
    FileZoneHandler::try_from_config(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        None,
        &FileConfig {
            zone_path: path.to_path_buf(),
        },
        nx_proofs,
    )
    .unwrap_or_else(|e| panic!("loading zone {origin} from {}: {e}", path.display()))
}

async fn serve_zones(
    zones: &[(String, PathBuf)],
    udp: UdpSocket,
    tcp: TcpListener,
) -> AuthUpstream {
    let handlers = zones
        .iter()
        .map(|(origin, path)| {
            let origin = Name::from_str(origin).expect("zone origin");
            let handler: Arc<dyn ZoneHandler> = Arc::new(load_zone(&origin, path, None));
            (origin, handler)
        })
        .collect();
    serve_handlers(handlers, udp, tcp)
}

/// An authoritative server for ready-made zone handlers (signed zones) on an address and port.
pub async fn start_auth_with_handlers(
    ip: IpAddr,
    port: u16,
    handlers: Vec<(Name, Arc<dyn ZoneHandler>)>,
) -> AuthUpstream {
    let udp = UdpSocket::bind((ip, port)).await.expect("bind UDP");
    let bound = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(bound).await.expect("bind TCP");
    serve_handlers(handlers, udp, tcp)
}

fn serve_handlers(
    handlers: Vec<(Name, Arc<dyn ZoneHandler>)>,
    udp: UdpSocket,
    tcp: TcpListener,
) -> AuthUpstream {
    let mut catalog = Catalog::new();
    for (origin, handler) in handlers {
        catalog.upsert(LowerName::new(&origin), vec![handler]);
    }

    let seen = SeenLog::default();
    let addr = udp.local_addr().unwrap();

    let mut server = Server::new(RecordingHandler {
        catalog,
        seen: seen.clone(),
    });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(30), 16);

    AuthUpstream {
        addr,
        seen,
        server: Some(server),
    }
}

/// The authoritative upstream with the default zones over UDP/TCP (the
/// returned `AuthUpstream`'s address) and also over DoT and DoH (HTTP/2 POST
/// at `/dns-query`), hickory-server's own listeners, with `cert`.
pub async fn start_auth_encrypted(
    ip: IpAddr,
    cert: &ServerCert,
) -> (AuthUpstream, SocketAddr, SocketAddr) {
    let (udp, tcp) = bind_udp_tcp_same_port(ip).await;
    let mut auth = serve_zones(&default_zones(), udp, tcp).await;
    let dot = TcpListener::bind((ip, 0)).await.expect("bind DoT");
    let doh = TcpListener::bind((ip, 0)).await.expect("bind DoH");
    let (dot_addr, doh_addr) = (dot.local_addr().unwrap(), doh.local_addr().unwrap());
    let server = auth.server.as_mut().expect("server running");
    server
        .register_tls_listener(dot, Duration::from_secs(5), cert.resolver())
        .expect("DoT listener");
    server
        .register_https_listener(
            doh,
            Duration::from_secs(5),
            cert.resolver(),
            None,
            "/dns-query".into(),
        )
        .expect("DoH listener");
    (auth, dot_addr, doh_addr)
}

/// Bind UDP on `ip:0`, then TCP on the same port (retrying with a new UDP port if the
/// TCP port is taken).
pub async fn bind_udp_tcp_same_port(ip: IpAddr) -> (UdpSocket, TcpListener) {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("binding UDP on {ip}: {e}"));
        let port = udp.local_addr().unwrap().port();
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(tcp) => return (udp, tcp),
            Err(e) => last_err = Some(e),
        }
    }
    panic!("could not bind UDP+TCP on the same port on {ip}: {last_err:?}");
}
