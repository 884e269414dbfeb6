//! DNS over QUIC listeners (RFC 9250), end to end with two independent
//! clients: hickory's DoQ client in process and aioquic
//! (`tests/doq_client.py`, Python), with certificates from a private CA
//! made by the test; a bare quinn client for what those clients never do
//! (a message ID other than 0, a wrong length, a wrong ALPN). Each failure
//! ends as RFC 9250 says and leaves every listener serving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use futures_util::StreamExt;
use hickory_net::quic::QuicClientStream;
use hickory_net::xfer::DnsRequestSender;
use hickory_proto::op::{DnsRequest, DnsRequestOptions};
use quinn::crypto::rustls::QuicClientConfig;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The synthesized answer for `v4only.dns64.test` AAAA from the test zones.
const V4ONLY: &str = "v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822";

/// `DOQ_PROTOCOL_ERROR` (RFC 9250 §4.3).
const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// A dns64d with a plain listener (UDP+TCP) and a DoQ listener.
struct DoqSetup {
    auth: AuthUpstream,
    dns64d: Dns64d,
    ca: TestCa,
    plain: SocketAddr,
    doq: SocketAddr,
    toml: String,
}

/// `listener` lines go into the DoQ listener's table, `extra` after it.
async fn setup_with(label: &str, listener: &str, extra: &str) -> DoqSetup {
    let auth = start_auth_upstream(LO).await;
    let ca = TestCa::new(label);
    let cert = ca.issue("server", &[TLS_NAME, "127.0.0.1"]);
    let toml = format!(
        "listen = [\"127.0.0.1:0\"]\n\
         [upstream]\nservers = [\"{upstream}\"]\ntimeout_ms = 1000\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"quic\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
         {listener}\n{extra}",
        upstream = auth.addr(),
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let dns64d = start_dns64d_toml(&toml).await;
    let addresses = dns64d.server.local_addrs().to_vec();
    DoqSetup {
        auth,
        dns64d,
        ca,
        plain: addresses[0],
        doq: addresses[1],
        toml,
    }
}

/// A TLS 1.3 client configuration trusting only `ca`, offering `alpn`
/// (none: hickory's client adds `doq`).
fn client_tls(ca: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(certificate.expect("CA PEM"))
            .expect("CA certificate");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(dns64d::edge::certificate::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|alpn| alpn.to_vec()).collect();
    config
}

/// One question over hickory's DoQ client (a connection of its own).
async fn hickory_doq(
    server: SocketAddr,
    ca: &Path,
    qname: &str,
    qtype: RecordType,
) -> Result<Message, String> {
    let connecting = QuicClientStream::builder()
        .crypto_config(client_tls(ca, &[]))
        .build(server, Arc::from(TLS_NAME));
    let mut stream = tokio::time::timeout(TEST_TIMEOUT, connecting)
        .await
        .expect("the DoQ handshake ends in time")
        .map_err(|error| error.to_string())?;
    let request = DnsRequest::new(
        Q::new(qname, qtype).to_message(),
        DnsRequestOptions::default(),
    );
    let response = tokio::time::timeout(TEST_TIMEOUT, stream.send_message(request).next())
        .await
        .expect("a DoQ answer in time")
        .expect("an answer on the stream")
        .map_err(|error| error.to_string())?;
    Ok(response.into_message())
}

/// A bare quinn connection to `server` offering `alpn`.
async fn quinn_connect(
    server: SocketAddr,
    ca: &Path,
    alpn: &[u8],
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let crypto = QuicClientConfig::try_from(Arc::new(client_tls(ca, &[alpn]))).expect("QUIC TLS");
    let endpoint = quinn::Endpoint::client(SocketAddr::new(LO, 0)).expect("client endpoint");
    let connecting = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), server, TLS_NAME)
        .expect("connect");
    tokio::time::timeout(TEST_TIMEOUT, connecting)
        .await
        .expect("the handshake ends in time")
}

/// Sends `stream` (length field and message, as the test wants them) on a
/// new stream, then FIN; returns what came back before the server's FIN.
async fn exchange_raw(connection: &quinn::Connection, stream: &[u8]) -> Result<Vec<u8>, String> {
    let exchange = async {
        let (mut send, mut receive) = connection.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(stream).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        receive
            .read_to_end(2 + 65535)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(TEST_TIMEOUT, exchange)
        .await
        .expect("the exchange ends in time")
}

/// An AAAA query as DoQ frames it: message ID `id`, a length field that says `length`.
fn framed_query(qname: &str, id: u16, length: Option<u16>) -> Vec<u8> {
    framed(qname, RecordType::AAAA, id, length)
}

/// A query as DoQ frames it: message ID `id`, a length field that says `length`.
fn framed(qname: &str, qtype: RecordType, id: u16, length: Option<u16>) -> Vec<u8> {
    let mut message = Q::new(qname, qtype).to_message();
    message.metadata.id = id;
    let message = message.to_vec().expect("encode");
    let length = length.unwrap_or(message.len() as u16);
    [length.to_be_bytes().to_vec(), message].concat()
}

/// Decodes a DoQ answer stream (length field, then the message).
fn unframe(stream: &[u8]) -> Message {
    let (length, message) = stream.split_at(2);
    assert_eq!(
        usize::from(u16::from_be_bytes([length[0], length[1]])),
        message.len(),
        "the length field matches the answer"
    );
    decode(message)
}

/// Runs tests/doq_client.py (aioquic) against `server` for `questions`.
async fn aioquic_doq(server: SocketAddr, ca: &Path, questions: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doq_client.py");
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(script)
        .arg("--port")
        .arg(server.port().to_string())
        .arg("--ca")
        .arg(ca)
        .arg("--name")
        .arg(TLS_NAME)
        .args(questions)
        .kill_on_drop(true);
    tokio::time::timeout(TEST_TIMEOUT * 3, command.output())
        .await
        .expect("doq_client.py finishes")
        .expect("python3 runs (aioquic and dnspython installed by .ci/run)")
}

/// The plain listener and the DoQ listener both still answer.
async fn assert_serving(setup: &DoqSetup, ca: &Path) {
    assert_still_answers(setup.plain).await;
    let answer = hickory_doq(setup.doq, ca, "v4only.dns64.test", RecordType::AAAA)
        .await
        .expect("DoQ still answers");
    assert_eq!(answer_summary(&answer), [V4ONLY]);
}

#[tokio::test]
async fn doq_listener_answers_hickory_and_aioquic_clients() {
    let setup = setup_with("answers", "", "").await;
    let answer = hickory_doq(
        setup.doq,
        &setup.ca.ca_pem,
        "v4only.dns64.test",
        RecordType::AAAA,
    )
    .await
    .expect("hickory DoQ");
    assert_eq!(answer.metadata.id, 0, "DoQ answers carry ID 0");
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_summary(&answer), [V4ONLY]);
    // NXDOMAIN passes through with its SOA, as over UDP.
    let missing = hickory_doq(
        setup.doq,
        &setup.ca.ca_pem,
        "nope.dns64.test",
        RecordType::AAAA,
    )
    .await
    .expect("hickory DoQ");
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.answers.is_empty(), "{missing:?}");
    let metrics = setup.dns64d.server.handler().resolver().metrics().encode(0);
    for line in [
        r#"dns64d_queries_total{qtype="AAAA",protocol="quic",rcode="NOERROR"} 1"#,
        r#"dns64d_queries_total{qtype="AAAA",protocol="quic",rcode="NXDOMAIN"} 1"#,
    ] {
        assert!(
            metrics.contains(line),
            "DoQ queries are counted with protocol=\"quic\": {line}\n{metrics}"
        );
    }

    // aioquic, two questions on two streams of one connection (names not
    // asked before: answers from upstream, so TTLs not aged by the cache).
    let output = aioquic_doq(
        setup.doq,
        &setup.ca.ca_pem,
        &["multi-a.dns64.test", "AAAA", "none.dns64.test", "AAAA"],
    )
    .await;
    assert!(output.status.success(), "doq_client.py: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<Vec<&str>> = stdout
        .split("--- ")
        .skip(1)
        .map(|block| block.lines().collect())
        .collect();
    assert_eq!(answers.len(), 2, "{stdout}");
    let multi = &answers[0];
    assert_eq!(multi[0], "multi-a.dns64.test AAAA");
    for line in ["id 0", "rcode NOERROR"] {
        assert!(multi.contains(&line), "{line:?} in {multi:?}");
    }
    let mut records: Vec<&str> = multi
        .iter()
        .copied()
        .filter(|line| line.starts_with("multi-a.dns64.test. 60 "))
        .collect();
    records.sort_unstable();
    assert_eq!(
        records,
        [
            "multi-a.dns64.test. 60 IN AAAA 64:ff9b::5db8:d80b",
            "multi-a.dns64.test. 60 IN AAAA 64:ff9b::5db8:d80c",
            "multi-a.dns64.test. 60 IN AAAA 64:ff9b::5db8:d80d",
        ],
        "{multi:?}"
    );
    let nope = &answers[1];
    assert!(nope.contains(&"rcode NXDOMAIN"), "{nope:?}");
    assert!(
        !nope.iter().any(|line| line.contains(" IN AAAA ")),
        "{nope:?}"
    );
}

#[tokio::test]
async fn doq_protocol_errors_close_the_connection_and_the_server_keeps_serving() {
    let setup = setup_with("errors", "", "").await;
    let ca = &setup.ca.ca_pem;

    // Queries on concurrent streams of one connection, each answered on its own.
    let connection = quinn_connect(setup.doq, ca, b"doq").await.expect("DoQ");
    let (v4only, dual) = (
        framed_query("v4only.dns64.test", 0, None),
        framed_query("dual.dns64.test", 0, None),
    );
    let (first, second) = tokio::join!(
        exchange_raw(&connection, &v4only),
        exchange_raw(&connection, &dual),
    );
    assert_eq!(answer_summary(&unframe(&first.expect("first"))), [V4ONLY]);
    let dual = unframe(&second.expect("second"));
    assert_eq!(dual.queries[0].name().to_string(), "dual.dns64.test.");
    assert_eq!(dual.metadata.response_code, ResponseCode::NoError);

    // RFC 9250 §4.2.1 and §4.3.3: an ID other than 0, the TCP keepalive
    // option, a length field that does not match the message, two messages
    // on one stream.
    let keepalive = {
        let mut message = Q::new("v4only.dns64.test", RecordType::AAAA)
            .edns(1232)
            .to_message();
        message.metadata.id = 0;
        if let Some(edns) = message.edns.as_mut() {
            edns.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                    11,
                    Vec::new(),
                ));
        }
        let message = message.to_vec().expect("encode");
        [(message.len() as u16).to_be_bytes().to_vec(), message].concat()
    };
    let cases = [
        ("message ID 7", framed_query("v4only.dns64.test", 7, None)),
        ("the edns-tcp-keepalive option (RFC 9250 §5.5.2)", keepalive),
        (
            "length 60 for a shorter message",
            framed_query("v4only.dns64.test", 0, Some(60)),
        ),
        (
            "two queries on one stream",
            [
                framed_query("v4only.dns64.test", 0, None),
                framed_query("dual.dns64.test", 0, None),
            ]
            .concat(),
        ),
    ];
    for (case, stream) in cases {
        let connection = quinn_connect(setup.doq, ca, b"doq").await.expect("DoQ");
        let answer = exchange_raw(&connection, &stream).await;
        assert!(answer.is_err(), "{case}: no answer, got {answer:?}");
        let closed = tokio::time::timeout(TEST_TIMEOUT, connection.closed())
            .await
            .expect("closed in time");
        match closed {
            quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
                close.error_code,
                quinn::VarInt::from_u32(DOQ_PROTOCOL_ERROR),
                "{case}"
            ),
            other => panic!("{case}: closed with DOQ_PROTOCOL_ERROR expected, got {other}"),
        }
    }

    // Another ALPN fails the handshake (TLS no_application_protocol, 120).
    let refused = quinn_connect(setup.doq, ca, b"h3").await;
    match refused {
        Err(quinn::ConnectionError::ConnectionClosed(close)) => assert_eq!(
            close.error_code,
            quinn::TransportErrorCode::crypto(120),
            "{close}"
        ),
        other => panic!("a handshake offering h3 only must fail: {other:?}"),
    }

    // Plain DNS over UDP on the QUIC port gets no DNS answer.
    let plaintext = tokio::net::UdpSocket::bind(SocketAddr::new(LO, 0))
        .await
        .expect("bind");
    let mut query = Q::new("v4only.dns64.test", RecordType::AAAA).to_message();
    query.metadata.id = 0x5a5a;
    plaintext
        .send_to(&query.to_vec().expect("encode"), setup.doq)
        .await
        .expect("send");

    assert_serving(&setup, ca).await;
    // Whatever came back by now (a QUIC stateless reset, say) is no answer to it.
    let mut buffer = [0u8; 2048];
    while let Ok(length) = plaintext.try_recv(&mut buffer) {
        let reply = Message::from_vec(&buffer[..length]);
        assert!(
            !reply.is_ok_and(|reply| reply.metadata.id == 0x5a5a && !reply.answers.is_empty()),
            "plain DNS was answered on the QUIC port"
        );
    }
}

#[tokio::test]
async fn doq_listener_has_its_own_connection_limit_and_idle_timeout() {
    let setup = setup_with("limits", "max_connections = 1\nidle_timeout_ms = 400", "").await;
    let ca = &setup.ca.ca_pem;
    let first = quinn_connect(setup.doq, ca, b"doq").await.expect("DoQ");
    let answer = exchange_raw(&first, &framed_query("v4only.dns64.test", 0, None))
        .await
        .expect("answer");
    assert_eq!(answer_summary(&unframe(&answer)), [V4ONLY]);
    // The one slot is taken: the next connection is refused before its handshake.
    match quinn_connect(setup.doq, ca, b"doq").await {
        Err(quinn::ConnectionError::ConnectionClosed(close)) => assert_eq!(
            close.error_code,
            quinn::TransportErrorCode::CONNECTION_REFUSED,
            "{close}"
        ),
        other => panic!("a second connection over max_connections = 1: {other:?}"),
    }
    // The idle timeout is the listener's (quinn's default is 30 s, the client's too).
    let closed = tokio::time::timeout(TEST_TIMEOUT, first.closed())
        .await
        .expect("the idle connection is closed in time");
    assert!(
        matches!(closed, quinn::ConnectionError::TimedOut),
        "{closed}"
    );
    // Its slot is freed once the server has timed it out as well (polled
    // until a deadline); then a new connection is served.
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    let third = loop {
        match quinn_connect(setup.doq, ca, b"doq").await {
            Ok(connection) => break connection,
            Err(error) if tokio::time::Instant::now() < deadline => {
                let _ = error; // refused while the slot was still taken; try again
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no DoQ connection after the idle one closed: {error}"),
        }
    };
    // A name not asked before: its TTL is not aged by the cache.
    let answer = exchange_raw(&third, &framed_query("dual.dns64.test", 0, None))
        .await
        .expect("answer");
    assert_eq!(
        answer_summary(&unframe(&answer)),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    assert_still_answers(setup.plain).await;
}

#[tokio::test]
async fn doq_certificate_is_reloaded_and_errors_name_the_file() {
    let mut setup = setup_with("before", "", "").await;
    let old_ca = setup.ca.ca_pem.clone();
    assert!(
        hickory_doq(setup.doq, &old_ca, "v4only.dns64.test", RecordType::AAAA)
            .await
            .is_ok()
    );
    // The files now hold a certificate from another CA.
    let new_ca = TestCa::new("renewed");
    let renewed = new_ca.issue("renewed", &[TLS_NAME, "127.0.0.1"]);
    for (from, to) in [
        (&renewed.cert, setup.ca.dir.path().join("server-cert.pem")),
        (&renewed.key, setup.ca.dir.path().join("server-key.pem")),
    ] {
        let partial = to.with_extension("partial");
        std::fs::copy(from, &partial).expect("copy");
        std::fs::rename(&partial, &to).expect("rename");
    }
    let config = dns64d::ops::config::from_toml_str(&setup.toml).expect("config still valid");
    let notes = setup.dns64d.server.reload(config).await.expect("reload");
    assert!(notes.is_empty(), "nothing needs a restart: {notes:?}");
    assert_serving(&setup, &new_ca.ca_pem).await;
    let with_old = hickory_doq(setup.doq, &old_ca, "v4only.dns64.test", RecordType::AAAA).await;
    assert!(
        with_old.is_err(),
        "the old certificate is gone: {with_old:?}"
    );

    // Configuration errors name the key and the file; --check-config loads it.
    let missing = setup.ca.dir.path().join("missing.pem");
    let key = setup.ca.dir.path().join("server-key.pem");
    let cert = setup.ca.dir.path().join("server-cert.pem");
    let listener = |protocols: &str, cert: &Path, key: &Path| {
        format!(
            "listen = []\n[upstream]\nservers = [\"127.0.0.1:5353\"]\n\
             [[listeners]]\naddress = \"127.0.0.1:853\"\nprotocols = {protocols}\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        )
    };
    let cases = [
        (
            "missing certificate file",
            listener("[\"quic\"]", &missing, &key),
            ["listeners[0].cert", "missing.pem"],
        ),
        (
            "missing key file",
            listener("[\"quic\"]", &cert, &missing),
            ["listeners[0].key", "missing.pem"],
        ),
        (
            "quic with udp",
            listener("[\"quic\", \"udp\"]", &cert, &key),
            ["listeners[0].protocols", "\"quic\""],
        ),
    ];
    for (case, toml, named) in cases {
        let error = dns64d::ops::config::from_toml_str(&toml)
            .expect_err(case)
            .to_string();
        assert!(
            named.iter().all(|part| error.contains(part)),
            "{case}: {error}"
        );
    }
    let file = setup.ca.dir.path().join("dns64d.toml");
    for (toml, passes) in [
        (listener("[\"quic\"]", &cert, &key), true),
        (listener("[\"quic\"]", &cert, &missing), false),
    ] {
        std::fs::write(&file, toml).expect("write config");
        let check = tokio::process::Command::new(env!("CARGO_BIN_EXE_dns64d"))
            .arg("--config")
            .arg(&file)
            .arg("--check-config")
            .output()
            .await
            .expect("run dns64d");
        assert_eq!(check.status.success(), passes, "{check:?}");
        if !passes {
            let stderr = String::from_utf8_lossy(&check.stderr);
            assert!(
                stderr.contains("listeners[0].key") && stderr.contains("missing.pem"),
                "{stderr}"
            );
        }
    }
}

#[tokio::test]
async fn ddr_designates_the_doq_listener_and_a_client_can_follow_it() {
    let setup = setup_with("ddr", "", "[ddr]\nname = \"dns.test\"\n").await;
    let answer = query_udp(setup.plain, &Q::new("_dns.resolver.arpa", RecordType::SVCB)).await;
    assert_eq!(
        answer_summary(&answer),
        [format!(
            // hickory's text form of SVCB parameters
            "_dns.resolver.arpa. 300 SVCB 1 dns.test. alpn=doq, port={} ipv4hint=127.0.0.1,",
            setup.doq.port()
        )]
    );
    let RData::SVCB(doq) = &answer.answers[0].data else {
        panic!("SVCB expected: {answer:?}");
    };
    let port = doq
        .svc_params
        .iter()
        .find_map(|(_, value)| match value {
            hickory_proto::rr::rdata::svcb::SvcParamValue::Port(port) => Some(*port),
            _ => None,
        })
        .expect("a port");
    let upgraded = hickory_doq(
        SocketAddr::new(LO, port),
        &setup.ca.ca_pem,
        "v4only.dns64.test",
        RecordType::AAAA,
    )
    .await
    .expect("DoQ at the designated port");
    assert_eq!(answer_summary(&upgraded), [V4ONLY]);
    assert!(
        !setup
            .auth
            .seen()
            .iter()
            .any(|query| query.name.contains("resolver.arpa")),
        "resolver.arpa is never forwarded"
    );
}

#[tokio::test]
async fn shutdown_answers_the_queries_a_doq_connection_has_sent_then_closes_it() {
    let upstream = start_fake_upstream(LO, |request, _| {
        let name = request.queries[0].name().to_ascii();
        let answer = reply_with(
            request,
            vec![rr_a(&name, 300, Ipv4Addr::new(93, 184, 216, 34))],
        );
        FakeAction::Delayed(std::time::Duration::from_millis(500), answer)
    })
    .await;
    let ca = TestCa::new("shutdown");
    let cert = ca.issue("server", &[TLS_NAME]);
    let dns64d = start_dns64d_toml(&format!(
        "listen = []\n[upstream]\nservers = [\"{}\"]\ntimeout_ms = 3000\nattempts = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"quic\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        upstream.addr(),
        cert.cert.display(),
        cert.key.display(),
    ))
    .await;
    let doq = dns64d.server.local_addrs()[0];
    let connection = quinn_connect(doq, &ca.ca_pem, b"doq").await.expect("DoQ");
    let asking = connection.clone();
    let exchange = tokio::spawn(async move {
        exchange_raw(&asking, &framed("slow.example", RecordType::A, 0, None)).await
    });
    upstream
        .wait_until("the question forwarded", |seen| !seen.is_empty())
        .await;
    let shutdown = tokio::spawn(dns64d.server.shutdown(std::time::Duration::from_secs(5)));
    let answer = exchange
        .await
        .expect("the exchange task")
        .expect("an answer to the query sent before the shutdown");
    assert_eq!(
        answer_summary(&unframe(&answer)),
        ["slow.example. 300 A 93.184.216.34"]
    );
    // Then the server closes the connection with DOQ_NO_ERROR, cutting nothing off.
    let closed = tokio::time::timeout(TEST_TIMEOUT, connection.closed())
        .await
        .expect("closed in time");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(0), "DOQ_NO_ERROR")
        }
        other => panic!("closed with DOQ_NO_ERROR expected, got {other}"),
    }
    assert_eq!(shutdown.await.expect("shutdown"), 0, "queries cut off");
}

/// Forwards what `client`-side sockets send to it on to `server`, and drops
/// whatever comes back: a client that never receives (as one using a forged
/// address would). The first forwarded datagram is reported on `forwarded`.
async fn black_hole_relay(
    server: SocketAddr,
    forwarded: tokio::sync::oneshot::Sender<()>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let relay = tokio::net::UdpSocket::bind(SocketAddr::new(LO, 0))
        .await
        .expect("bind relay");
    let address = relay.local_addr().expect("relay address");
    let task = tokio::spawn(async move {
        let mut forwarded = Some(forwarded);
        let mut buffer = vec![0u8; 65535];
        while let Ok((length, from)) = relay.recv_from(&mut buffer).await {
            if from != server {
                let _ = relay.send_to(&buffer[..length], server).await; // loopback; a loss only weakens the test
                if let Some(forwarded) = forwarded.take() {
                    let _ = forwarded.send(()); // the test may have stopped waiting
                }
            }
        }
    });
    (address, task)
}

#[tokio::test]
async fn forged_handshakes_cannot_hold_the_slots_once_half_are_taken() {
    // Two slots, one client address: the per-client limit is raised so only
    // the listener's counts here.
    let setup = setup_with(
        "retry",
        "max_connections = 2\nmax_connections_per_client = 2",
        "",
    )
    .await;
    let ca = &setup.ca.ca_pem;
    let first = quinn_connect(setup.doq, ca, b"doq").await.expect("DoQ");
    // A handshake that never completes: its client sees nothing the server
    // sends. Without the Retry it would hold the second slot until the
    // handshake timeout (the listener's idle timeout, 10 s).
    let (sent, forwarded) = tokio::sync::oneshot::channel();
    let (relay, relay_task) = black_hole_relay(setup.doq, sent).await;
    let crypto = QuicClientConfig::try_from(Arc::new(client_tls(ca, &[b"doq"]))).expect("QUIC TLS");
    let endpoint = quinn::Endpoint::client(SocketAddr::new(LO, 0)).expect("client endpoint");
    let forged = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), relay, TLS_NAME)
        .expect("connect");
    let forged = tokio::spawn(forged);
    tokio::time::timeout(TEST_TIMEOUT, forwarded)
        .await
        .expect("the forged Initial reached the server in time")
        .expect("relay running");
    // A real client gets the second slot (after a Retry its client follows).
    let second = quinn_connect(setup.doq, ca, b"doq")
        .await
        .expect("the second slot is free for a client that answers the Retry");
    for connection in [&first, &second] {
        let answer = exchange_raw(connection, &framed_query("v4only.dns64.test", 0, None))
            .await
            .expect("answer");
        assert_eq!(answer_summary(&unframe(&answer)), [V4ONLY]);
    }
    forged.abort();
    relay_task.abort();
}
