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
    let d = start_dns64d(&[auth.addr()], "", &zone_toml(&path, true)).await;
    let zones = d.server.handler().resolver().zones().clone();

    std::fs::write(&path, original.replace("93.184.216.50", "93.184.216.60")).unwrap();
    assert_eq!(zones.reload().await, Ok(1));
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
    let error = zones.reload().await.expect_err("a broken file is rejected");
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
    let config = dns64d::config::from_toml_str(&format!(
        "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n{}",
        zone_toml(&path, true)
    ))
    .unwrap();
    let error = match dns64d::server::start(&config).await {
        Ok(_) => panic!("a broken zone must stop start-up"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("bad.zone"), "{error}");
    assert!(
        error.contains("line 3") || error.contains(":3"),
        "the line is named: {error}"
    );
}
