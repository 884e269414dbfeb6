//! DNS over TLS and DNS over HTTPS listeners, end to end with real clients:
//! `kdig +tls`, `dig +tls` / `dig +https` (bind9-dnsutils 9.18) and curl
//! over HTTP/2, with certificates from a private CA made by the test. The
//! failure cases (a certificate the client does not trust, the wrong name,
//! an expired certificate, plaintext DNS on the TLS port, HTTP errors) each
//! fail as the client expects and leave every listener serving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Output;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The synthesized answer for `v4only.dns64.test` AAAA from the test zones.
const V4ONLY_ANSWER: &str = "v4only.dns64.test. 60 IN AAAA 64:ff9b::5db8:d822";

/// A dns64d with a plain listener (UDP+TCP), a DoT and a DoH listener.
struct EncryptedSetup {
    _auth: AuthUpstream,
    dns64d: Dns64d,
    ca: TestCa,
    plain: SocketAddr,
    dot: SocketAddr,
    doh: SocketAddr,
    toml: String,
}

/// The TOML of a dns64d forwarding to `upstream` with a plain listener
/// and DoT/DoH listeners on loopback using `cert`.
fn encrypted_toml(upstream: SocketAddr, cert: &ServerCert, extra: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\
         [upstream]\nservers = [\"{upstream}\"]\ntimeout_ms = 1000\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tls\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"https\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
         {extra}",
        cert = cert.cert.display(),
        key = cert.key.display(),
    )
}

async fn setup() -> EncryptedSetup {
    setup_with("").await
}

async fn setup_with(extra: &str) -> EncryptedSetup {
    let auth = start_auth_upstream(LO).await;
    let ca = TestCa::new("main");
    let cert = ca.issue("server", &[TLS_NAME, "127.0.0.1"]);
    let toml = encrypted_toml(auth.addr(), &cert, extra);
    let dns64d = start_dns64d_toml(&toml).await;
    let addresses = dns64d.server.local_addrs().to_vec();
    EncryptedSetup {
        _auth: auth,
        dns64d,
        ca,
        plain: addresses[0],
        dot: addresses[1],
        doh: addresses[2],
        toml,
    }
}

/// Runs a client program to completion (bounded by its own timeouts and ours).
async fn run(program: &str, args: &[String]) -> Output {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    tokio::time::timeout(TEST_TIMEOUT * 2, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish"))
        .unwrap_or_else(|error| panic!("cannot run {program} (installed by .ci/run): {error}"))
}

/// The answer lines of a dig/kdig `+noall +answer` output, whitespace
/// collapsed.
fn answer_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with(';'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

/// kdig over TLS to `server`, verifying against `ca` with `name`.
async fn kdig_tls(server: SocketAddr, ca: &Path, name: &str, qname: &str) -> Output {
    let mut args = strings(&["@127.0.0.1", "-p"]);
    args.push(server.port().to_string());
    args.push(format!("+tls-ca={}", ca.display()));
    args.push(format!("+tls-hostname={name}"));
    args.extend(strings(&[
        "+timeout=2",
        "+retry=0",
        "+noall",
        "+answer",
        "AAAA",
        qname,
    ]));
    run("kdig", &args).await
}

/// dig (bind9-dnsutils) with `transport` (`+tls`, `+https`, `+https-get`).
async fn dig_encrypted(server: SocketAddr, transport: &str, ca: &Path, qname: &str) -> Output {
    let mut args = strings(&["@127.0.0.1", "-p"]);
    args.push(server.port().to_string());
    args.push(transport.to_string());
    args.push(format!("+tls-ca={}", ca.display()));
    args.push(format!("+tls-hostname={TLS_NAME}"));
    args.extend(strings(&[
        "+tries=1",
        "+timeout=2",
        "+noall",
        "+answer",
        "AAAA",
        qname,
    ]));
    run("dig", &args).await
}

/// curl to the DoH listener over HTTP/2; returns (HTTP status, body).
async fn curl_doh(
    server: SocketAddr,
    ca: &Path,
    extra: &[String],
    path: &str,
) -> (String, Vec<u8>) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let body = directory.path().join("body");
    let mut args = strings(&["--silent", "--show-error", "--http2", "--max-time", "5"]);
    args.push("--cacert".into());
    args.push(ca.display().to_string());
    args.push("--resolve".into());
    args.push(format!("{TLS_NAME}:{}:127.0.0.1", server.port()));
    args.push("--output".into());
    args.push(body.display().to_string());
    args.extend(strings(&["--write-out", "%{http_code} %{http_version}"]));
    args.extend(extra.iter().cloned());
    args.push(format!("https://{TLS_NAME}:{}{path}", server.port()));
    let output = run("curl", &args).await;
    let status = String::from_utf8_lossy(&output.stdout).to_string();
    (status, std::fs::read(&body).unwrap_or_default())
}

/// Every listener still answers the normal query (plain, DoT, DoH).
async fn assert_all_serving(setup: &EncryptedSetup) {
    assert_still_answers(setup.plain).await;
    let dot = kdig_tls(setup.dot, &setup.ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert_eq!(answer_lines(&dot), [V4ONLY_ANSWER], "DoT after the failure");
    let doh = dig_encrypted(setup.doh, "+https", &setup.ca.ca_pem, "v4only.dns64.test").await;
    assert_eq!(answer_lines(&doh), [V4ONLY_ANSWER], "DoH after the failure");
}

#[tokio::test]
async fn dot_listener_answers_kdig_and_dig_like_udp() {
    let setup = setup().await;
    let kdig = kdig_tls(setup.dot, &setup.ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert!(kdig.status.success(), "kdig +tls: {kdig:?}");
    assert_eq!(answer_lines(&kdig), [V4ONLY_ANSWER]);
    let dig = dig_encrypted(setup.dot, "+tls", &setup.ca.ca_pem, "v4only.dns64.test").await;
    assert!(dig.status.success(), "dig +tls: {dig:?}");
    assert_eq!(answer_lines(&dig), [V4ONLY_ANSWER]);
    // NXDOMAIN passes through with its SOA, as over UDP.
    let missing = dig_encrypted(setup.dot, "+tls", &setup.ca.ca_pem, "nope.dns64.test").await;
    assert!(answer_lines(&missing).is_empty(), "{missing:?}");
    let metrics = setup.dns64d.server.handler().resolver().metrics().encode(0);
    assert!(
        metrics.contains(r#"dns64d_queries_total{qtype="AAAA",protocol="tls",rcode="NOERROR"} 2"#),
        "DoT queries are counted with protocol=\"tls\":\n{metrics}"
    );
    assert!(
        metrics.contains(r#"dns64d_queries_total{qtype="AAAA",protocol="tls",rcode="NXDOMAIN"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn dot_connection_is_reused_for_pipelined_queries() {
    let setup = setup().await;
    let connector = tls_connector(&setup.ca.ca_pem, b"dot");
    let tcp = tokio::net::TcpStream::connect(setup.dot)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from(TLS_NAME).expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"dot"[..]));
    let names = ["v4only.dns64.test", "dual.dns64.test", "nope.dns64.test"];
    // All three queries are written before the first answer is read (RFC 7766 §6.2.1.1).
    for (id, name) in names.iter().enumerate() {
        let mut query = Q::new(*name, RecordType::AAAA).to_message();
        query.metadata.id = 100 + id as u16;
        write_framed(&mut stream, &query.to_vec().expect("encode")).await;
    }
    let mut seen = Vec::new();
    for _ in names {
        let reply = decode(&read_framed(&mut stream).await);
        seen.push((reply.metadata.id, reply.metadata.response_code));
        if reply.metadata.id == 100 {
            assert_eq!(
                answer_summary(&reply),
                ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
            );
            assert!(reply.metadata.recursion_available && !reply.metadata.authoritative);
        }
    }
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(
        seen,
        [
            (100, ResponseCode::NoError),
            (101, ResponseCode::NoError),
            (102, ResponseCode::NXDomain)
        ]
    );
}

#[tokio::test]
async fn doh_listener_answers_dig_and_curl_get_and_post() {
    let setup = setup().await;
    for transport in ["+https", "+https-get"] {
        let dig = dig_encrypted(setup.doh, transport, &setup.ca.ca_pem, "v4only.dns64.test").await;
        assert!(dig.status.success(), "dig {transport}: {dig:?}");
        assert_eq!(answer_lines(&dig), [V4ONLY_ANSWER], "dig {transport}");
    }
    let mut query = Q::new("v4only.dns64.test", RecordType::AAAA).to_message();
    query.metadata.id = 0; // RFC 8484 §4.1: ID 0 for cache-friendly GETs
    let wire = query.to_vec().expect("encode");
    let directory = tempfile::tempdir().expect("temporary directory");
    let query_file = directory.path().join("query");
    std::fs::write(&query_file, &wire).expect("write query");

    let post = strings(&[
        "--header",
        "content-type: application/dns-message",
        "--data-binary",
        &format!("@{}", query_file.display()),
    ]);
    let (status, body) = curl_doh(setup.doh, &setup.ca.ca_pem, &post, "/dns-query").await;
    assert_eq!(status, "200 2", "POST over HTTP/2");
    let reply = decode(&body);
    assert_eq!(reply.metadata.id, 0);
    assert_eq!(
        answer_summary(&reply),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );

    let encoded = data_encoding::BASE64URL_NOPAD.encode(&wire);
    let (status, body) = curl_doh(
        setup.doh,
        &setup.ca.ca_pem,
        &[],
        &format!("/dns-query?dns={encoded}"),
    )
    .await;
    assert_eq!(status, "200 2", "GET over HTTP/2");
    assert_eq!(
        answer_summary(&decode(&body)),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );

    let metrics = setup.dns64d.server.handler().resolver().metrics().encode(0);
    assert!(
        metrics
            .contains(r#"dns64d_queries_total{qtype="AAAA",protocol="https",rcode="NOERROR"} 4"#),
        "DoH queries are counted with protocol=\"https\":\n{metrics}"
    );
}

#[tokio::test]
async fn doh_http_errors_follow_rfc_8484_and_leave_the_listener_serving() {
    let setup = setup().await;
    let ca = &setup.ca.ca_pem;
    let query = Q::new("v4only.dns64.test", RecordType::AAAA).to_message();
    let encoded = data_encoding::BASE64URL_NOPAD.encode(&query.to_vec().expect("encode"));
    let response = Message::response(7, OpCode::Query)
        .to_vec()
        .expect("encode");
    let cases: [(&str, Vec<String>, String, &str); 6] = [
        (
            "another path",
            vec![],
            format!("/other?dns={encoded}"),
            "404 2",
        ),
        (
            "GET without dns",
            vec![],
            "/dns-query?name=x".into(),
            "400 2",
        ),
        (
            "GET with bad base64url",
            vec![],
            "/dns-query?dns=%2B%2F".into(),
            "400 2",
        ),
        (
            "PUT",
            strings(&["--request", "PUT"]),
            format!("/dns-query?dns={encoded}"),
            "405 2",
        ),
        (
            "POST of another media type",
            strings(&["--data-binary", "x"]),
            "/dns-query".into(),
            "415 2",
        ),
        (
            "a response sent as a query",
            vec![],
            format!(
                "/dns-query?dns={}",
                data_encoding::BASE64URL_NOPAD.encode(&response)
            ),
            "400 2",
        ),
    ];
    for (case, extra, path, expected) in cases {
        let (status, _) = curl_doh(setup.doh, ca, &extra, &path).await;
        assert_eq!(status, expected, "{case}");
    }
    // HTTP/1.1 is not offered: ALPN is h2 only (RFC 8484 §5.2).
    let (status, _) = curl_doh(setup.doh, ca, &strings(&["--http1.1"]), "/dns-query").await;
    assert_eq!(
        status, "000 0",
        "an HTTP/1.1-only client fails the handshake"
    );
    assert_all_serving(&setup).await;
}

#[tokio::test]
async fn untrusted_wrong_name_and_expired_certificates_fail_and_the_server_keeps_serving() {
    let setup = setup().await;
    let other_ca = TestCa::new("other");
    let untrusted = kdig_tls(setup.dot, &other_ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert!(
        !untrusted.status.success(),
        "a certificate of another CA is rejected: {untrusted:?}"
    );
    assert!(answer_lines(&untrusted).is_empty());
    let wrong_name = kdig_tls(
        setup.dot,
        &setup.ca.ca_pem,
        "other.test",
        "v4only.dns64.test",
    )
    .await;
    assert!(
        !wrong_name.status.success(),
        "a certificate for another name is rejected: {wrong_name:?}"
    );
    let (status, _) = curl_doh(
        setup.doh,
        &other_ca.ca_pem,
        &[],
        "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB",
    )
    .await;
    assert_eq!(status, "000 0", "curl rejects a certificate of another CA");

    // A listener serving an expired certificate: clients refuse it.
    let expired = setup.ca.issue_expired("expired", &[TLS_NAME, "127.0.0.1"]);
    let expired_toml = encrypted_toml(setup._auth.addr(), &expired, "");
    let expired_dns64d = start_dns64d_toml(&expired_toml).await;
    let expired_dot = expired_dns64d.server.local_addrs()[1];
    let refused = kdig_tls(expired_dot, &setup.ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert!(
        !refused.status.success(),
        "an expired certificate is rejected: {refused:?}"
    );
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("handshake failed")
            || String::from_utf8_lossy(&refused.stderr).contains("handshake failed"),
        "{refused:?}"
    );
    assert_all_serving(&setup).await;
}

#[tokio::test]
async fn plaintext_dns_on_the_tls_port_gets_no_answer_and_the_server_keeps_serving() {
    let setup = setup_with("[server]\ntcp_idle_timeout_ms = 300\n").await;
    let query = Q::new("v4only.dns64.test", RecordType::AAAA).to_message();
    let mut plaintext = tokio::net::TcpStream::connect(setup.dot)
        .await
        .expect("connect");
    write_framed(&mut plaintext, &query.to_vec().expect("encode")).await;
    let sent_back = read_until_closed(&mut plaintext).await;
    // At most a TLS alert record (content type 21), never a DNS answer.
    assert!(
        sent_back.is_empty() || sent_back[0] == 21,
        "plaintext DNS on the TLS port got {sent_back:02x?}"
    );
    // A client that connects and never speaks is closed after the idle
    // timeout (here 300 ms), holding up no one meanwhile.
    let mut silent = tokio::net::TcpStream::connect(setup.dot)
        .await
        .expect("connect");
    assert_all_serving(&setup).await;
    assert!(read_until_closed(&mut silent).await.is_empty());
}

/// Reads until the peer closes (or resets) the connection; fails the test
/// after `TEST_TIMEOUT`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received);
    match tokio::time::timeout(TEST_TIMEOUT, read).await {
        Ok(_) => received, // EOF or reset: closed either way
        Err(_) => panic!("the connection was not closed within {TEST_TIMEOUT:?}"),
    }
}

#[tokio::test]
async fn certificate_is_reloaded_without_dropping_the_other_listeners() {
    let mut setup = setup().await;
    let old = kdig_tls(setup.dot, &setup.ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert_eq!(answer_lines(&old), [V4ONLY_ANSWER]);
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
    for server in [setup.dot, setup.doh] {
        let with_new = if server == setup.dot {
            kdig_tls(server, &new_ca.ca_pem, TLS_NAME, "v4only.dns64.test").await
        } else {
            dig_encrypted(server, "+https", &new_ca.ca_pem, "v4only.dns64.test").await
        };
        assert_eq!(
            answer_lines(&with_new),
            [V4ONLY_ANSWER],
            "{server}: the new certificate"
        );
    }
    let with_old = kdig_tls(setup.dot, &setup.ca.ca_pem, TLS_NAME, "v4only.dns64.test").await;
    assert!(
        !with_old.status.success(),
        "the old certificate is gone: {with_old:?}"
    );
    assert_still_answers(setup.plain).await;

    // A broken file is rejected by the configuration, naming key and file.
    std::fs::write(setup.ca.dir.path().join("server-key.pem"), "not a key\n").expect("write");
    let error = dns64d::ops::config::from_toml_str(&setup.toml)
        .expect_err("a bad key is a configuration error")
        .to_string();
    assert!(
        error.contains("listeners[0].key") && error.contains("server-key.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn encrypted_listener_configuration_errors_name_the_key() {
    let ca = TestCa::new("config");
    let cert = ca.issue("server", &[TLS_NAME]);
    let (cert, key) = (cert.cert.display(), cert.key.display());
    let missing = ca.dir.path().join("missing.pem");
    let cases = [
        (
            "no cert",
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tls\"]\nkey = \"{key}\"\n"
            ),
            "listeners[0].cert",
        ),
        (
            "no key",
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"https\"]\ncert = \"{cert}\"\n"
            ),
            "listeners[0].key",
        ),
        (
            "missing certificate file",
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tls\"]\ncert = \"{}\"\nkey = \"{key}\"\n",
                missing.display()
            ),
            "missing.pem",
        ),
        (
            "tls with tcp",
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tls\", \"tcp\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n"
            ),
            "listeners[0].protocols",
        ),
        (
            "cert on a plain listener",
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"udp\"]\ncert = \"{cert}\"\n"
            ),
            "listeners[0].cert",
        ),
    ];
    for (case, toml, named) in cases {
        let error = dns64d::ops::config::from_toml_str(&format!("listen = []\n{toml}"))
            .expect_err(case)
            .to_string();
        assert!(error.contains(named), "{case}: {error}");
    }
}

/// A rustls client trusting only `ca`, offering `alpn`.
fn tls_connector(ca: &Path, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(certificate.expect("CA PEM"))
            .expect("CA certificate");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(dns64d::edge::certificate::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

async fn write_framed(stream: &mut (impl tokio::io::AsyncWrite + Unpin), message: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).await.expect("write");
    stream.flush().await.expect("flush");
}

async fn read_framed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await.expect("length");
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut message).await.expect("message");
        message
    };
    tokio::time::timeout(TEST_TIMEOUT, read)
        .await
        .expect("an answer in time")
}

#[tokio::test]
async fn ddr_designates_the_encrypted_listeners_and_a_client_can_follow_it() {
    let setup = setup_with("[ddr]\nname = \"dns.test\"\n").await;
    let mut args = strings(&["@127.0.0.1", "-p"]);
    args.push(setup.plain.port().to_string());
    args.extend(strings(&[
        "+tries=1",
        "+timeout=2",
        "+noall",
        "+answer",
        "_dns.resolver.arpa",
        "SVCB",
    ]));
    let dig = run("dig", &args).await;
    assert!(dig.status.success(), "{dig:?}");
    assert_eq!(
        answer_lines(&dig),
        [
            format!(
                "_dns.resolver.arpa. 300 IN SVCB 1 dns.test. alpn=\"dot\" port={} ipv4hint=127.0.0.1",
                setup.dot.port()
            ),
            // key7 is dohpath (RFC 9461), which dig 9.18 does not name yet.
            format!(
                "_dns.resolver.arpa. 300 IN SVCB 2 dns.test. alpn=\"h2\" port={} ipv4hint=127.0.0.1 key7=\"/dns-query{{?dns}}\"",
                setup.doh.port()
            ),
        ]
    );
    // The client upgrades: the DoT endpoint from the answer, verified for the target name.
    let answer = decode(
        &send_udp_raw(
            setup.plain,
            &Q::new("_dns.resolver.arpa", RecordType::SVCB)
                .to_message()
                .to_vec()
                .expect("encode"),
            TEST_TIMEOUT,
        )
        .await
        .expect("an answer"),
    );
    let RData::SVCB(dot) = &answer.answers[0].data else {
        panic!("SVCB expected: {answer:?}");
    };
    let port = dot
        .svc_params
        .iter()
        .find_map(|(_, value)| match value {
            hickory_proto::rr::rdata::svcb::SvcParamValue::Port(port) => Some(*port),
            _ => None,
        })
        .expect("a port");
    let target = dot.target_name.to_string();
    let upgraded = kdig_tls(
        SocketAddr::new(LO, port),
        &setup.ca.ca_pem,
        target.trim_end_matches('.'),
        "v4only.dns64.test",
    )
    .await;
    assert_eq!(answer_lines(&upgraded), [V4ONLY_ANSWER]);

    // Other names under resolver.arpa are answered here, never forwarded.
    for (name, qtype, rcode) in [
        ("_dns.resolver.arpa", RecordType::A, ResponseCode::NoError),
        ("resolver.arpa", RecordType::SVCB, ResponseCode::NoError),
        (
            "other.resolver.arpa",
            RecordType::SVCB,
            ResponseCode::NXDomain,
        ),
    ] {
        let reply = query_udp(setup.plain, &Q::new(name, qtype)).await;
        assert_eq!(reply.metadata.response_code, rcode, "{name} {qtype}");
        assert!(reply.answers.is_empty(), "{name} {qtype}");
        assert_eq!(
            authority_summary(&reply),
            ["resolver.arpa. 300 SOA resolver.arpa. nobody.invalid. 1 3600 1200 604800 300"],
            "{name} {qtype}"
        );
    }
    assert!(
        !setup
            ._auth
            .seen()
            .iter()
            .any(|query| query.name.contains("resolver.arpa")),
        "resolver.arpa is never forwarded"
    );

    // Without encrypted listeners there is nothing to designate.
    let error = dns64d::ops::config::from_toml_str(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:5353\"]\n[ddr]\nname = \"dns.test\"\n",
    )
    .expect_err("ddr.name alone")
    .to_string();
    assert!(error.contains("ddr.name"), "{error}");
}

#[tokio::test]
async fn dot_listener_has_its_own_connection_limit_and_idle_timeout() {
    let auth = start_auth_upstream(LO).await;
    let ca = TestCa::new("limits");
    let cert = ca.issue("server", &[TLS_NAME]);
    let dns64d = start_dns64d_toml(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"tls\"]\ncert = \"{}\"\nkey = \"{}\"\n\
         max_connections = 1\nidle_timeout_ms = 300\n",
        auth.addr(),
        cert.cert.display(),
        cert.key.display()
    ))
    .await;
    let (plain, dot) = (dns64d.addr, dns64d.server.local_addrs()[1]);
    let connector = tls_connector(&ca.ca_pem, b"dot");
    let name = rustls_pki_types::ServerName::try_from(TLS_NAME).expect("name");
    let tcp = tokio::net::TcpStream::connect(dot).await.expect("connect");
    let mut first = connector
        .connect(name.clone(), tcp)
        .await
        .expect("TLS handshake");
    write_framed(
        &mut first,
        &Q::new("v4only.dns64.test", RecordType::AAAA)
            .to_message()
            .to_vec()
            .expect("encode"),
    )
    .await;
    assert_eq!(
        answer_summary(&decode(&read_framed(&mut first).await)),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    // The second connection is over the limit: closed at once.
    let mut second = tokio::net::TcpStream::connect(dot).await.expect("connect");
    assert!(read_until_closed(&mut second).await.is_empty());
    // The first is closed after 300 ms without a query (RFC 7766 §6.2.3).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        TEST_TIMEOUT,
        tokio::io::AsyncReadExt::read_to_end(&mut first, &mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the idle DoT connection was not closed");
    // Its slot is freed (by the server's task, just after the close: polled
    // until a deadline); the plain listener has the default limits throughout.
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    let mut third = loop {
        let tcp = tokio::net::TcpStream::connect(dot).await.expect("connect");
        match connector.connect(name.clone(), tcp).await {
            Ok(stream) => break stream,
            Err(error) if tokio::time::Instant::now() < deadline => {
                let _ = error; // refused while the slot was still taken; try again
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no DoT connection after the idle one closed: {error}"),
        }
    };
    write_framed(
        &mut third,
        &Q::new("v4only.dns64.test", RecordType::AAAA)
            .to_message()
            .to_vec()
            .expect("encode"),
    )
    .await;
    assert_eq!(
        answer_summary(&decode(&read_framed(&mut third).await)),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert_still_answers(plain).await;
}

#[tokio::test]
async fn dot_answers_pipelined_queries_as_they_are_ready() {
    let fake = start_fake_upstream(LO, |request, _| {
        let name = request.queries[0].name().to_string();
        let answer = reply_with(
            request,
            vec![rr_a(&name, 300, Ipv4Addr::new(93, 184, 216, 34))],
        );
        if name.starts_with("slow.") {
            FakeAction::Delayed(std::time::Duration::from_millis(1500), answer)
        } else {
            FakeAction::Reply(answer)
        }
    })
    .await;
    let ca = TestCa::new("pipelined");
    let cert = ca.issue("server", &[TLS_NAME]);
    let toml =
        encrypted_toml(fake.addr(), &cert, "").replace("timeout_ms = 1000", "timeout_ms = 3000");
    let dns64d = start_dns64d_toml(&toml).await;
    let dot = dns64d.server.local_addrs()[1];
    let connector = tls_connector(&ca.ca_pem, b"dot");
    let tcp = tokio::net::TcpStream::connect(dot).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from(TLS_NAME).expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    for (id, qname) in [(1u16, "slow.example"), (2, "fast.example")] {
        let mut query = Q::new(qname, RecordType::A).to_message();
        query.metadata.id = id;
        write_framed(&mut stream, &query.to_vec().expect("encode")).await;
    }
    // The fast answer does not wait for the slow one (RFC 7858 §3.3).
    let first = decode(&read_framed(&mut stream).await);
    let second = decode(&read_framed(&mut stream).await);
    assert_eq!((first.metadata.id, second.metadata.id), (2, 1));
    assert_eq!(
        answer_summary(&first),
        ["fast.example. 300 A 93.184.216.34"]
    );
    assert_eq!(
        answer_summary(&second),
        ["slow.example. 300 A 93.184.216.34"]
    );
}

#[tokio::test]
async fn check_config_loads_the_certificate() {
    let ca = TestCa::new("check");
    let cert = ca.issue("server", &[TLS_NAME]);
    let config = ca.dir.path().join("dns64d.toml");
    let write = |key: &Path| {
        std::fs::write(
            &config,
            format!(
                "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:5353\"]\n\
                 [[listeners]]\naddress = \"127.0.0.1:853\"\nprotocols = [\"tls\"]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.cert.display(),
                key.display()
            ),
        )
        .expect("write config");
    };
    let check = || async {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dns64d"))
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .await
            .expect("run dns64d")
    };
    write(&cert.key);
    let good = check().await;
    assert!(good.status.success(), "{good:?}");
    write(&ca.dir.path().join("gone-key.pem"));
    let bad = check().await;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{bad:?}");
    assert!(
        stderr.contains("listeners[0].key") && stderr.contains("gone-key.pem"),
        "{stderr}"
    );
}
