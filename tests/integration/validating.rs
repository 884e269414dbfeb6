//! Against a real validator: Unbound (the Debian package, started by the
//! test on loopback) validates what dns64d serves from a signed local zone,
//! and, as dns64d's forwarding upstream, decides what is secure or bogus.
//!
//!   client -> dns64d (forwarding, DNS64) -> Unbound (validating, trust anchor
//!   for signed.test.) -> dns64d (authoritative for signed.test., dns64 off)
//!
//! Every query of Unbound stays on loopback: a stub zone for the root points
//! at the authoritative dns64d too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const ZONE: &str = "\
$ORIGIN signed.test.
@        3600 IN SOA   ns.signed.test. hostmaster.signed.test. 1 3600 900 604800 30
@        3600 IN NS    ns.signed.test.
ns       300  IN A     93.184.216.53
v4only   300  IN A     93.184.216.34
dual     300  IN A     93.184.216.40
dual     300  IN AAAA  2001:db8::40
alias    300  IN CNAME v4only.signed.test.
mail     300  IN MX    10 v4only.signed.test.
badsig   300  IN A     93.184.216.66
*.wild   300  IN A     93.184.216.41
a.b.ent  300  IN A     93.184.216.42
";

/// Unbound, stopped (by its process id) when dropped.
struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait();
    }
}

/// Starts Unbound on a free loopback port, validating `signed.test.` with
/// `anchor` (DNSKEY lines) and asking `authority` for everything.
async fn start_unbound(dir: &std::path::Path, anchor: &str, authority: SocketAddr) -> Unbound {
    let port = std::net::UdpSocket::bind((LO, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let anchor_file = dir.join("anchor.key");
    std::fs::write(&anchor_file, anchor).unwrap();
    let config = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  chroot: \"\"\n  username: \"\"\n  \
         directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{dir}/unbound.log\"\n  \
         do-ip6: no\n  do-not-query-localhost: no\n  module-config: \"validator iterator\"\n  \
         trust-anchor-file: \"{anchor}\"\n  local-zone: \"test.\" nodefault\n  ede: yes\n  \
         val-log-level: 2\n  access-control: 127.0.0.0/8 allow\n\
         stub-zone:\n  name: \"signed.test.\"\n  stub-addr: {ip}@{auth_port}\n\
         stub-zone:\n  name: \".\"\n  stub-addr: {ip}@{auth_port}\n",
        dir = dir.display(),
        anchor = anchor_file.display(),
        ip = authority.ip(),
        auth_port = authority.port(),
    );
    let config_file = dir.join("unbound.conf");
    std::fs::write(&config_file, config).unwrap();
    let child = Command::new("unbound")
        .arg("-d")
        .arg("-c")
        .arg(&config_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unbound starts (Debian package unbound, installed by .ci/run)");
    let unbound = Unbound {
        child,
        addr: SocketAddr::new(LO, port),
    };
    // Ready when it answers (a question it answers locally), within a deadline.
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    let probe = Q::new("localhost", RecordType::A)
        .to_message()
        .to_vec()
        .unwrap();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unbound did not answer on {}",
            unbound.addr
        );
        let socket = tokio::net::UdpSocket::bind((LO, 0)).await.unwrap();
        socket.send_to(&probe, unbound.addr).await.unwrap();
        let mut buffer = [0u8; 512];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buffer)).await
        {
            return unbound;
        }
    }
}

/// The zone signed with `proofs`, with badsig's A signature spoiled, and the
/// trust anchor for it.
fn signed_zone(
    dir: &std::path::Path,
    proofs: hickory_server::dnssec::NxProofKind,
) -> (std::path::PathBuf, String) {
    let unsigned = dir.join("unsigned.zone");
    std::fs::write(&unsigned, ZONE).unwrap();
    let zone = sign_zone_file("signed.test.", &unsigned, proofs);
    let mut anchor = String::new();
    let mut text = String::new();
    for line in zone.text.lines() {
        if line.starts_with("signed.test. ") && line.contains(" IN DNSKEY ") {
            anchor.push_str(line);
            anchor.push('\n');
        }
        if line.starts_with("badsig.signed.test. ") && line.contains(" IN RRSIG A ") {
            // One character of the base64 signature changed: the signature fails.
            let (head, signature) = line.rsplit_once(' ').unwrap();
            let mut signature: Vec<char> = signature.chars().collect();
            signature[10] = if signature[10] == 'A' { 'B' } else { 'A' };
            text.push_str(&format!(
                "{head} {}\n",
                signature.into_iter().collect::<String>()
            ));
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    let file = dir.join("signed.test.zone");
    std::fs::write(&file, text).unwrap();
    (file, anchor)
}

/// The synthesized AAAA for v4only, with TTL min(A 300, the zone's negative TTL 30);
/// Unbound's cached denial may be a second or two older.
fn assert_synthesized(m: &Message, what: &str) {
    let answers = aaaa_answers(m);
    assert_eq!(answers.len(), 1, "{what}: {:?}", answer_summary(m));
    let (owner, ttl, address) = &answers[0];
    assert_eq!(owner, "v4only.signed.test.", "{what}");
    assert_eq!(
        *address,
        "64:ff9b::5db8:d822".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert!((25..=30).contains(ttl), "{what}: TTL {ttl}");
}

#[tokio::test]
#[ignore = "needs unbound (Debian package unbound, installed by .ci/run)"]
async fn unbound_validates_local_signed_zones_and_dns64_follows_its_verdicts() {
    use hickory_server::dnssec::NxProofKind;
    let nsec3 = NxProofKind::Nsec3 {
        algorithm: Default::default(),
        salt: std::sync::Arc::from(&b"\xab\xcd"[..]),
        iterations: 1,
        opt_out: false,
    };
    for proofs in [NxProofKind::Nsec, nsec3] {
        let what = format!("{proofs:?}");
        let dir = tempfile::tempdir().unwrap();
        let (file, anchor) = signed_zone(dir.path(), proofs);
        let dummy = start_fake_upstream(LO, |_, _| FakeAction::Drop).await;
        let authority = start_dns64d(
            &[dummy.addr()],
            "",
            &format!(
                "[[zones]]\nname = \"signed.test\"\nfile = {:?}\ndns64 = false\n",
                file.display().to_string()
            ),
        )
        .await;
        let unbound = start_unbound(dir.path(), &anchor, authority.addr).await;

        // What dns64d serves from the signed zone validates: answers, CNAMEs,
        // NODATA, NXDOMAIN, empty non-terminals and wildcards (answer and NODATA).
        for (name, qtype, rcode) in [
            ("dual.signed.test", RecordType::AAAA, ResponseCode::NoError),
            ("alias.signed.test", RecordType::A, ResponseCode::NoError),
            ("mail.signed.test", RecordType::AAAA, ResponseCode::NoError),
            ("nope.signed.test", RecordType::AAAA, ResponseCode::NXDomain),
            ("x.nope.signed.test", RecordType::A, ResponseCode::NXDomain),
            ("b.ent.signed.test", RecordType::A, ResponseCode::NoError),
            ("x.wild.signed.test", RecordType::A, ResponseCode::NoError),
            (
                "x.wild.signed.test",
                RecordType::AAAA,
                ResponseCode::NoError,
            ),
            ("signed.test", RecordType::TXT, ResponseCode::NoError),
        ] {
            let m = query_udp(unbound.addr, &Q::new(name, qtype).do_bit()).await;
            assert_eq!(m.metadata.response_code, rcode, "{what} {name} {qtype}");
            assert!(
                m.metadata.authentic_data,
                "{what} {name} {qtype}: Unbound did not validate it"
            );
        }

        // dns64d forwarding to Unbound, with DNS64.
        let d = start_dns64d(&[unbound.addr], "", "").await;
        // Validated AAAA denial and A: the synthesized answer is AD for DO (RFC 6147 §5.5).
        let m = query_udp(
            d.addr,
            &Q::new("v4only.signed.test", RecordType::AAAA).do_bit(),
        )
        .await;
        assert_synthesized(&m, &what);
        assert!(m.metadata.authentic_data, "{what}");
        let m = query_udp(d.addr, &Q::new("v4only.signed.test", RecordType::AAAA).ad()).await;
        assert_synthesized(&m, &what);
        assert!(!m.metadata.authentic_data, "{what}: DO=0, never AD");
        // The CNAME keeps its RRSIG.
        let m = query_udp(
            d.addr,
            &Q::new("alias.signed.test", RecordType::AAAA).do_bit(),
        )
        .await;
        let kinds: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(
            kinds,
            [RecordType::CNAME, RecordType::RRSIG, RecordType::AAAA],
            "{what}"
        );
        assert!(m.metadata.authentic_data, "{what}");
        // A validated NODATA keeps its proof and AD.
        let m = query_udp(
            d.addr,
            &Q::new("mail.signed.test", RecordType::AAAA).do_bit(),
        )
        .await;
        assert!(m.answers.is_empty() && m.metadata.authentic_data, "{what}");
        let proof = if what.contains("Nsec3") {
            RecordType::NSEC3
        } else {
            RecordType::NSEC
        };
        assert!(
            m.authorities.iter().any(|r| r.record_type() == proof),
            "{what}: {:?}",
            authority_summary(&m)
        );
        assert!(
            m.authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA)
        );
        // Bogus A (its signature spoiled) behind a secure AAAA denial: Unbound answers
        // SERVFAIL with a DNSSEC EDE, and dns64d never synthesizes over it.
        for q in [
            Q::new("badsig.signed.test", RecordType::AAAA).edns(1232),
            Q::new("badsig.signed.test", RecordType::AAAA).do_bit(),
        ] {
            let m = query_udp(d.addr, &q).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::ServFail,
                "{what} {q:?}"
            );
            assert!(m.answers.is_empty(), "{what}");
            assert_eq!(
                ede(&m).iter().map(|(code, _)| *code).collect::<Vec<_>>(),
                [6],
                "{what}"
            );
        }
        drop(unbound);
    }
}
