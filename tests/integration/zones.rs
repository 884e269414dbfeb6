//! Local zones (`[[zones]]`): authoritative answers with AA, NXDOMAIN and
//! NODATA with the zone's SOA, wildcards, CNAMEs in and out of the zone,
//! delegations, DNS64 on local data with the TTL rule, and reloads.

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn zone_toml(file: &std::path::Path, dns64: bool) -> String {
    format!(
        "[[zones]]\nname = \"local.test\"\nfile = {:?}\ndns64 = {dns64}\n",
        file.display().to_string()
    )
}

async fn setup() -> (AuthUpstream, Dns64d) {
    let auth = start_auth_upstream(LO).await;
    let zone = data_dir().join("local.test.zone");
    let d = start_dns64d(&[auth.addr()], "", &zone_toml(&zone, true)).await;
    (auth, d)
}

fn soa_line(ttl: u32) -> String {
    format!("local.test. {ttl} SOA ns.local.test. hostmaster.local.test. 1 3600 900 604800 30")
}

#[tokio::test]
async fn local_data_is_authoritative_and_never_forwarded() {
    let (auth, d) = setup().await;
    for m in [
        query_udp(d.addr, &Q::new("v4only.local.test", RecordType::A)).await,
        query_tcp(d.addr, &Q::new("v4only.local.test", RecordType::A)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative, "AA");
        assert_eq!(
            answer_summary(&m),
            ["v4only.local.test. 300 A 93.184.216.50"]
        );
    }
    let m = query_udp(d.addr, &Q::new("dual.local.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.local.test. 300 AAAA 2001:db8::52"]
    );
    assert_eq!(auth.total(), 0);
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_zone_soa() {
    let (_auth, d) = setup().await;
    let m = query_udp(d.addr, &Q::new("nope.local.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(authority_summary(&m), [soa_line(30)]);
    let m = query_udp(d.addr, &Q::new("text.local.test", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(authority_summary(&m), [soa_line(30)]);
}

#[tokio::test]
async fn a_only_local_names_are_synthesized_with_the_ttl_rule() {
    let (auth, d) = setup().await;
    let m = query_udp(d.addr, &Q::new("v4only.local.test", RecordType::AAAA)).await;
    // min(A TTL 300, the zone's negative TTL min(3600, 30)) = 30.
    assert_eq!(
        answer_summary(&m),
        ["v4only.local.test. 30 AAAA 64:ff9b::5db8:d832"]
    );
    assert!(m.metadata.authoritative);
    let m = query_udp(d.addr, &Q::new("short.local.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["short.local.test. 20 AAAA 64:ff9b::5db8:d833"]
    );
    // No A either: NODATA with the SOA.
    let m = query_udp(d.addr, &Q::new("text.local.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(authority_summary(&m), [soa_line(30)]);
    let m = query_udp(d.addr, &Q::new("nope.local.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(auth.total(), 0);
}

#[tokio::test]
async fn wildcards_answer_under_the_name_asked() {
    let (_auth, d) = setup().await;
    let m = query_udp(d.addr, &Q::new("anything.wild.local.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["anything.wild.local.test. 300 A 93.184.216.53"]
    );
    let m = query_udp(
        d.addr,
        &Q::new("anything.wild.local.test", RecordType::AAAA),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        ["anything.wild.local.test. 30 AAAA 64:ff9b::5db8:d835"]
    );
}

#[tokio::test]
async fn cnames_inside_and_out_of_the_zone() {
    let (auth, d) = setup().await;
    let m = query_udp(d.addr, &Q::new("www.local.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "www.local.test. 300 CNAME v4only.local.test.",
            "v4only.local.test. 30 AAAA 64:ff9b::5db8:d832"
        ]
    );
    // Out of the zone: the target is resolved through the upstream.
    let m = query_udp(d.addr, &Q::new("out.local.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "out.local.test. 300 CNAME v4only.dns64.test.",
            "v4only.dns64.test. 300 A 93.184.216.34"
        ]
    );
    assert!(!m.metadata.authoritative, "part of the answer is not ours");
    assert_eq!(auth.count("v4only.dns64.test", RecordType::A), 1);
    let m = query_udp(d.addr, &Q::new("out.local.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "out.local.test. 300 CNAME v4only.dns64.test.",
            "v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"
        ]
    );
}

#[tokio::test]
async fn delegations_are_followed_with_rd_and_referred_without() {
    let (auth, d) = setup().await;
    let m = query_udp(
        d.addr,
        &Q::new("host.sub.local.test", RecordType::A).no_rd(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(
        authority_summary(&m),
        ["sub.local.test. 300 NS ns.sub.local.test."]
    );
    assert_eq!(auth.total(), 0);
    // With RD the name is resolved through the upstream (which refuses it here).
    query_udp(d.addr, &Q::new("host.sub.local.test", RecordType::A)).await;
    assert!(auth.count("host.sub.local.test", RecordType::A) >= 1);
}

#[tokio::test]
async fn zone_with_dns64_off_is_not_synthesized() {
    let auth = start_auth_upstream(LO).await;
    let zone = data_dir().join("local.test.zone");
    let d = start_dns64d(&[auth.addr()], "", &zone_toml(&zone, false)).await;
    let m = query_udp(d.addr, &Q::new("v4only.local.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(authority_summary(&m), [soa_line(30)]);
}

#[tokio::test]
async fn reload_serves_the_new_file_and_keeps_the_old_zone_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.test.zone");
    let original = std::fs::read_to_string(data_dir().join("local.test.zone")).unwrap();
    std::fs::write(&path, &original).unwrap();
    let auth = start_auth_upstream(LO).await;
    let mut d = start_dns64d(&[auth.addr()], "", &zone_toml(&path, true)).await;

    std::fs::write(&path, original.replace("93.184.216.50", "93.184.216.60")).unwrap();
    assert_eq!(d.server.reload_zones().await, Ok(1));
    let m = query_udp(d.addr, &Q::new("v4only.local.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.local.test. 300 A 93.184.216.60"]
    );

    std::fs::write(
        &path,
        format!("{original}\nbroken 300 IN A not-an-address\n"),
    )
    .unwrap();
    let error = d
        .server
        .reload_zones()
        .await
        .expect_err("a broken file is rejected");
    assert!(error.to_string().contains("local.test.zone"), "{error}");
    let m = query_udp(d.addr, &Q::new("v4only.local.test", RecordType::A)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.local.test. 300 A 93.184.216.60"],
        "old zone still served"
    );
}

#[tokio::test]
async fn a_bad_zone_file_at_start_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.zone");
    std::fs::write(
        &path,
        "$ORIGIN local.test.\n@ 3600 IN SOA ns hostmaster 1 3600 900 604800 30\nhost 300 IN A 300.1.2.3\n",
    )
    .unwrap();
    let config = dns64d::ops::config::from_toml_str(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n{}",
        zone_toml(&path, true)
    ))
    .unwrap();
    let error = match dns64d::edge::server::start(&config).await {
        Ok(_) => panic!("a broken zone must stop start-up"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("bad.zone"), "{error}");
    assert!(
        error.contains("line 3") || error.contains(":3"),
        "the line is named: {error}"
    );
}

const UNSIGNED_ZONE: &str = "\
$ORIGIN signed.test.
@        3600 IN SOA   ns.signed.test. hostmaster.signed.test. 1 3600 900 604800 30
@        3600 IN NS    ns.signed.test.
ns       300  IN A     93.184.216.53
v4only   300  IN A     93.184.216.34
dual     300  IN A     93.184.216.40
dual     300  IN AAAA  2001:db8::40
alias    300  IN CNAME v4only.signed.test.
mail     300  IN MX    10 v4only.signed.test.
*.wild   300  IN A     93.184.216.41
a.b.ent  300  IN A     93.184.216.42
";

fn rrsig_covers(record: &Record) -> Option<RecordType> {
    match &record.data {
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
            Some(sig.input().type_covered)
        }
        _ => None,
    }
}

/// The zone's records at `owner` of `record_type`, then their RRSIGs.
fn zone_set(zone: &SignedZoneFile, owner: &str, record_type: RecordType) -> Vec<String> {
    let owner = Name::from_ascii(owner).unwrap();
    let data = zone
        .records
        .iter()
        .filter(|r| r.name == owner && r.record_type() == record_type);
    let signatures = zone
        .records
        .iter()
        .filter(|r| r.name == owner && rrsig_covers(r) == Some(record_type));
    data.chain(signatures).map(record_line).collect()
}

/// Every NSEC/NSEC3 record in `records` is one of the zone's, and comes with its RRSIG.
fn assert_proof_from_zone(
    zone: &SignedZoneFile,
    records: &[Record],
    proof: RecordType,
    what: &str,
) {
    let proofs: Vec<&Record> = records
        .iter()
        .filter(|r| r.record_type() == proof)
        .collect();
    assert!(
        !proofs.is_empty(),
        "{what}: no {proof} in {:?}",
        records.iter().map(record_line).collect::<Vec<_>>()
    );
    for record in proofs {
        let owner = record.name.to_string();
        let expected = zone_set(zone, &owner, proof);
        let got: Vec<String> = records
            .iter()
            .filter(|r| {
                r.name == record.name
                    && (r.record_type() == proof || rrsig_covers(r) == Some(proof))
            })
            .map(record_line)
            .collect();
        assert_eq!(got, expected, "{what}: {owner}");
    }
}

#[tokio::test]
async fn signed_zone_files_serve_signatures_and_proofs() {
    use hickory_server::dnssec::NxProofKind;
    let nsec3 = NxProofKind::Nsec3 {
        algorithm: Default::default(),
        salt: std::sync::Arc::from(&b"\xab\xcd"[..]),
        iterations: 1,
        opt_out: false,
    };
    for (kind, proof) in [
        (NxProofKind::Nsec, RecordType::NSEC),
        (nsec3, RecordType::NSEC3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let unsigned = dir.path().join("unsigned.zone");
        std::fs::write(&unsigned, UNSIGNED_ZONE).unwrap();
        let zone = sign_zone_file("signed.test.", &unsigned, kind);
        let file = dir.path().join("signed.test.zone");
        std::fs::write(&file, &zone.text).unwrap();
        let auth = start_auth_upstream(LO).await;
        let d = start_dns64d(
            &[auth.addr()],
            "",
            &format!(
                "[[zones]]\nname = \"signed.test\"\nfile = {:?}\n",
                file.display().to_string()
            ),
        )
        .await;
        let ask = |name: &str, qtype: RecordType, dnssec_ok: bool| {
            let q = Q::new(name, qtype).edns(1232);
            if dnssec_ok { q.do_bit() } else { q }
        };

        // A native AAAA with its RRSIG for DO, without for others; AA, never AD.
        let m = query_udp(d.addr, &ask("dual.signed.test", RecordType::AAAA, true)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proof}");
        assert!(m.metadata.authoritative && !m.metadata.authentic_data);
        assert_eq!(
            answer_summary(&m),
            zone_set(&zone, "dual.signed.test.", RecordType::AAAA)
        );
        assert_eq!(answer_summary(&m).len(), 2, "the AAAA and its RRSIG");
        let m = query_tcp(d.addr, &ask("dual.signed.test", RecordType::AAAA, false)).await;
        assert_eq!(
            answer_summary(&m),
            ["dual.signed.test. 300 AAAA 2001:db8::40"]
        );
        // DNSKEY at the apex, signed.
        let m = query_udp(d.addr, &ask("signed.test", RecordType::DNSKEY, true)).await;
        assert_eq!(
            answer_summary(&m),
            zone_set(&zone, "signed.test.", RecordType::DNSKEY)
        );

        // NODATA: the SOA with its RRSIG and the proof, each with its RRSIG.
        let m = query_udp(d.addr, &ask("mail.signed.test", RecordType::AAAA, true)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proof}");
        assert!(m.answers.is_empty(), "{:?}", answer_summary(&m));
        let soa: Vec<String> = m
            .authorities
            .iter()
            .filter(|r| {
                r.record_type() == RecordType::SOA || rrsig_covers(r) == Some(RecordType::SOA)
            })
            .map(record_line)
            .collect();
        let mut expected_soa = zone_set(&zone, "signed.test.", RecordType::SOA);
        expected_soa[0] =
            "signed.test. 30 SOA ns.signed.test. hostmaster.signed.test. 2 3600 900 604800 30"
                .into();
        assert_eq!(
            soa, expected_soa,
            "{proof}: the SOA (negative TTL) and its RRSIG"
        );
        assert_proof_from_zone(&zone, &m.authorities, proof, "NODATA");
        if proof == RecordType::NSEC {
            let owners: Vec<String> = m
                .authorities
                .iter()
                .filter(|r| r.record_type() == proof)
                .map(|r| r.name.to_string())
                .collect();
            assert_eq!(owners, ["mail.signed.test."], "the NSEC at the name itself");
        }
        // Without DO: the SOA alone.
        let m = query_udp(d.addr, &ask("mail.signed.test", RecordType::AAAA, false)).await;
        assert_eq!(authority_summary(&m), [expected_soa[0].clone()]);

        // NXDOMAIN: the SOA and the proofs.
        let m = query_udp(d.addr, &ask("nope.signed.test", RecordType::AAAA, true)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{proof}");
        assert!(m.answers.is_empty());
        assert!(
            m.authorities
                .iter()
                .any(|r| rrsig_covers(r) == Some(RecordType::SOA))
        );
        assert_proof_from_zone(&zone, &m.authorities, proof, "NXDOMAIN");
        // An empty non-terminal is NODATA with a proof too.
        let m = query_udp(d.addr, &ask("b.ent.signed.test", RecordType::A, true)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_proof_from_zone(&zone, &m.authorities, proof, "empty non-terminal");

        // Synthesized from local data: the CNAME keeps its RRSIG, the AAAA has none.
        let m = query_udp(d.addr, &ask("alias.signed.test", RecordType::AAAA, true)).await;
        let mut expected = zone_set(&zone, "alias.signed.test.", RecordType::CNAME);
        expected.push("v4only.signed.test. 30 AAAA 64:ff9b::5db8:d822".into());
        assert_eq!(answer_summary(&m), expected, "{proof}");
        assert!(!m.metadata.authentic_data);
        assert!(ede(&m).iter().any(|(code, _)| *code == 29));

        // A wildcard answer: owned by the name asked, its RRSIG too (with the
        // wildcard's label count), and with NSEC the proof that no closer name exists.
        let m = query_udp(d.addr, &ask("x.wild.signed.test", RecordType::A, true)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let wildcard = zone_set(&zone, "*.wild.signed.test.", RecordType::A);
        let expanded: Vec<String> = wildcard
            .iter()
            .map(|line| line.replacen("*.wild", "x.wild", 1))
            .collect();
        assert_eq!(answer_summary(&m), expanded, "{proof}");
        if proof == RecordType::NSEC {
            assert_proof_from_zone(&zone, &m.authorities, proof, "wildcard");
        }
        drop(auth);
    }
}

/// A reload puts one snapshot of the configuration in force in one store
/// (issue 17): while queries run, configuration A (prefix 64:ff9b::/96,
/// v4only at .50) and B (prefix 2001:db8:64::/96, v4only at .60) alternate,
/// and every synthesized answer is A's or B's, never A's prefix over B's
/// zone data or the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_mixes_two_configurations_while_reloading_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(data_dir().join("local.test.zone")).unwrap();
    let file_a = dir.path().join("a.zone");
    let file_b = dir.path().join("b.zone");
    std::fs::write(&file_a, &original).unwrap();
    std::fs::write(&file_b, original.replace("93.184.216.50", "93.184.216.60")).unwrap();
    let auth = start_auth_upstream(LO).await;
    let toml = |prefix: &str, file: &std::path::Path| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n[dns64]\nprefixes = [\"{prefix}\"]\n{}",
            auth.addr(),
            zone_toml(file, true)
        )
    };
    let config_a = dns64d::ops::config::from_toml_str(&toml("64:ff9b::/96", &file_a)).unwrap();
    let config_b = dns64d::ops::config::from_toml_str(&toml("2001:db8:64::/96", &file_b)).unwrap();
    let mut server = dns64d::edge::server::start(&config_a).await.unwrap();
    let addr = server.local_addrs()[0];

    let answer_a = vec!["64:ff9b::5db8:d832".to_string()];
    let answer_b = vec!["2001:db8:64::5db8:d83c".to_string()];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Answers seen so far under A and under B, by every client together.
    let under = std::sync::Arc::new([
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    ]);
    let mut clients = Vec::new();
    for over_tcp in [false, true] {
        let stop = std::sync::Arc::clone(&stop);
        let under = std::sync::Arc::clone(&under);
        let (answer_a, answer_b) = (answer_a.clone(), answer_b.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<Vec<String>, usize>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let q = Q::new("v4only.local.test", RecordType::AAAA);
                let m = if over_tcp {
                    query_tcp(addr, &q).await
                } else {
                    query_udp(addr, &q).await
                };
                let addresses: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
                if addresses == answer_a {
                    under[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if addresses == answer_b {
                    under[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                *seen.entry(addresses).or_default() += 1;
            }
            seen
        }));
    }
    // At least 200 reloads, and on until each configuration answered 50 times.
    let enough = |index: usize| under[index].load(std::sync::atomic::Ordering::Relaxed) >= 50;
    let mut rounds = 0;
    while rounds < 200 || !(enough(0) && enough(1)) {
        assert!(
            rounds < 100_000,
            "queries were not answered while reloading"
        );
        let config = if rounds % 2 == 0 {
            &config_b
        } else {
            &config_a
        };
        server.reload(config.clone()).await.expect("reload");
        rounds += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        let seen = client.await.unwrap();
        for answer in seen.keys() {
            assert!(
                *answer == answer_a || *answer == answer_b,
                "an answer from two configurations (or none): {answer:?}; all seen: {seen:?}"
            );
        }
        assert!(seen.values().sum::<usize>() > 0, "{seen:?}");
    }
}
