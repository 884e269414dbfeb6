//! RFC 6147 §5.5 in forwarding mode, over the wire: a fake validating
//! upstream for `sec.test.` sends records with RRSIGs and NSEC proofs (and
//! AD=1 for secure data unless the query set CD), or a
//! SERVFAIL with a DNSSEC Extended DNS Error for bogus data. dns64d must keep
//! every still-true record with its RRSIGs, set AD on synthesized answers
//! only as §5.5 allows, and never synthesize over a validation failure.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ZONE: &str = "sec.test.";

/// The SOA of the zone (TTL 3600, MINIMUM 60) and its RRSIG.
fn soa_and_rrsig() -> Vec<Record> {
    vec![
        rr_soa(ZONE, 3600, 60),
        rr_rrsig(ZONE, 3600, RecordType::SOA, ZONE),
    ]
}

/// A NODATA proof: the NSEC at `owner` listing `types`, and its RRSIG.
fn nsec_at(owner: &str, next: &str, types: &[RecordType]) -> Vec<Record> {
    vec![
        rr_nsec(owner, 60, next, types),
        rr_rrsig(owner, 60, RecordType::NSEC, ZONE),
    ]
}

/// The fake validating upstream's answer for one question (with DO: RRSIGs and proofs).
fn sec_zone(request: &Message) -> Message {
    let query = &request.queries[0];
    let qname = query.name().to_ascii().to_ascii_lowercase();
    let qtype = query.query_type();
    let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let checking_disabled = request.metadata.checking_disabled;
    let bogus = |code: u16| {
        let mut m = reply_rcode(request, ResponseCode::ServFail);
        let mut edns = Edns::new();
        edns.options_mut().insert(EdnsOption::Unknown(
            15,
            [&code.to_be_bytes()[..], b"validation failed"].concat(),
        ));
        m.set_edns(edns);
        m
    };
    let mut m = reply_to(request);
    let (answers, authorities, secure): (Vec<Record>, Vec<Record>, bool) =
        match (qname.as_str(), qtype) {
            ("v4only.sec.test.", RecordType::A) | ("insecure.sec.test.", RecordType::A) => (
                vec![
                    rr_a(&qname, 300, Ipv4Addr::new(93, 184, 216, 34)),
                    rr_rrsig(&qname, 300, RecordType::A, ZONE),
                ],
                vec![],
                true,
            ),
            ("v4only.sec.test.", RecordType::AAAA) => (
                vec![],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        &qname,
                        "x.sec.test.",
                        &[RecordType::A, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            // The AAAA denial did not validate (an insecure answer): no AD.
            ("insecure.sec.test.", RecordType::AAAA) => {
                (vec![], vec![rr_soa(ZONE, 3600, 60)], false)
            }
            ("alias.sec.test.", RecordType::A) => (
                vec![
                    rr_cname(&qname, 300, "v4only.sec.test."),
                    rr_rrsig(&qname, 300, RecordType::CNAME, ZONE),
                    rr_a("v4only.sec.test.", 300, Ipv4Addr::new(93, 184, 216, 34)),
                    rr_rrsig("v4only.sec.test.", 300, RecordType::A, ZONE),
                ],
                vec![],
                true,
            ),
            ("alias.sec.test.", RecordType::AAAA) => (
                vec![
                    rr_cname(&qname, 300, "v4only.sec.test."),
                    rr_rrsig(&qname, 300, RecordType::CNAME, ZONE),
                ],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        "v4only.sec.test.",
                        "x.sec.test.",
                        &[RecordType::A, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            // moved.sec.test. DNAME sec.test.: the signed DNAME and the
            // unsigned CNAME synthesized from it (RFC 6672 §3.4, §5.3).
            ("v4only.moved.sec.test.", RecordType::A) => (
                vec![
                    rr_dname("moved.sec.test.", 600, ZONE),
                    rr_rrsig("moved.sec.test.", 600, RecordType::DNAME, ZONE),
                    rr_cname(&qname, 600, "v4only.sec.test."),
                    rr_a("v4only.sec.test.", 300, Ipv4Addr::new(93, 184, 216, 34)),
                    rr_rrsig("v4only.sec.test.", 300, RecordType::A, ZONE),
                ],
                vec![],
                true,
            ),
            ("v4only.moved.sec.test.", RecordType::AAAA) => (
                vec![
                    rr_dname("moved.sec.test.", 600, ZONE),
                    rr_rrsig("moved.sec.test.", 600, RecordType::DNAME, ZONE),
                    rr_cname(&qname, 600, "v4only.sec.test."),
                ],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        "v4only.sec.test.",
                        "x.sec.test.",
                        &[RecordType::A, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            ("text.sec.test.", RecordType::A | RecordType::AAAA) => (
                vec![],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        &qname,
                        "v4only.sec.test.",
                        &[RecordType::TXT, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            ("totext.sec.test.", RecordType::A | RecordType::AAAA) => (
                vec![
                    rr_cname(&qname, 300, "text.sec.test."),
                    rr_rrsig(&qname, 300, RecordType::CNAME, ZONE),
                ],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        "text.sec.test.",
                        "v4only.sec.test.",
                        &[RecordType::TXT, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            ("mapped.sec.test.", RecordType::AAAA) => (
                vec![
                    rr_aaaa(&qname, 300, "::ffff:192.0.2.1".parse().unwrap()),
                    rr_rrsig(&qname, 300, RecordType::AAAA, ZONE),
                ],
                vec![],
                true,
            ),
            ("mapped.sec.test.", RecordType::A) | ("v6only.sec.test.", RecordType::A) => (
                vec![],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        &qname,
                        "text.sec.test.",
                        &[RecordType::AAAA, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            ("v6only.sec.test.", RecordType::AAAA) => (
                vec![
                    rr_aaaa(&qname, 300, "2001:db8::6".parse().unwrap()),
                    rr_rrsig(&qname, 300, RecordType::AAAA, ZONE),
                ],
                vec![],
                true,
            ),
            ("bogus.sec.test.", RecordType::AAAA) if !checking_disabled => return bogus(6),
            ("bogus.sec.test.", RecordType::A) | ("plainfail.sec.test.", RecordType::A) => (
                vec![rr_a(&qname, 300, Ipv4Addr::new(93, 184, 216, 35))],
                vec![],
                true,
            ),
            ("bogusa.sec.test.", RecordType::AAAA) => (
                vec![],
                [
                    soa_and_rrsig(),
                    nsec_at(
                        &qname,
                        "mapped.sec.test.",
                        &[RecordType::A, RecordType::RRSIG, RecordType::NSEC],
                    ),
                ]
                .concat(),
                true,
            ),
            ("bogusa.sec.test.", RecordType::A) if !checking_disabled => return bogus(7),
            ("plainfail.sec.test.", RecordType::AAAA) => {
                return reply_rcode(request, ResponseCode::ServFail);
            }
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                (
                    vec![],
                    [
                        soa_and_rrsig(),
                        nsec_at(
                            "alias.sec.test.",
                            "bogus.sec.test.",
                            &[RecordType::CNAME, RecordType::RRSIG, RecordType::NSEC],
                        ),
                    ]
                    .concat(),
                    true,
                )
            }
        };
    let keep = |records: Vec<Record>| -> Vec<Record> {
        records
            .into_iter()
            .filter(|r| {
                dnssec_ok || !matches!(r.record_type(), RecordType::RRSIG | RecordType::NSEC)
            })
            .collect()
    };
    m.add_answers(keep(answers));
    m.add_authorities(keep(authorities));
    // Like some validating resolvers, AD whenever the data validated (not only for DO queries).
    m.metadata.authentic_data = secure && !checking_disabled;
    if let Some(edns) = &request.edns {
        let mut reply_edns = Edns::new();
        reply_edns.set_dnssec_ok(edns.flags().dnssec_ok);
        m.set_edns(reply_edns);
    }
    m
}

async fn setup(extra: &str) -> (FakeUpstream, Dns64d) {
    let upstream = start_fake_upstream(LO, |request, _| FakeAction::Reply(sec_zone(request))).await;
    let dns64d = start_dns64d(&[upstream.addr()], "", extra).await;
    (upstream, dns64d)
}

fn types(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r.data {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
                format!("{} RRSIG({})", r.name, sig.input().type_covered)
            }
            _ => format!("{} {}", r.name, r.record_type()),
        })
        .collect()
}

#[tokio::test]
async fn synthesized_answer_is_ad_only_for_do_clients_when_both_lookups_validated() {
    let (_upstream, d) = setup("").await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // The synthesized AAAA set has no RRSIG, and nothing else comes along.
    assert_eq!(
        answer_summary(&m),
        ["v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert!(m.authorities.is_empty(), "{:?}", authority_summary(&m));
    assert!(
        m.metadata.authentic_data,
        "RFC 6147 §5.5 item 2: AD on a validated synthesis"
    );
    assert!(ede(&m).iter().any(|(code, _)| *code == 29), "{:?}", ede(&m));
    // DO=0: never AD (§5.5 item 1), whether or not the client set AD.
    for q in [
        Q::new("v4only.sec.test", RecordType::AAAA),
        Q::new("v4only.sec.test", RecordType::AAAA).ad(),
        Q::new("v4only.sec.test", RecordType::AAAA).edns(1232).ad(),
    ] {
        let m = query_udp(d.addr, &q).await;
        assert_eq!(
            answer_summary(&m),
            ["v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"]
        );
        assert!(!m.metadata.authentic_data, "DO=0: no AD");
    }
    // The AAAA denial did not validate: synthesis, without AD.
    let m = query_udp(
        d.addr,
        &Q::new("insecure.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        ["insecure.sec.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    assert!(!m.metadata.authentic_data);
    // A native answer keeps the upstream's AD and its RRSIG.
    let m = query_udp(
        d.addr,
        &Q::new("v6only.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(
        types(&m.answers),
        ["v6only.sec.test. AAAA", "v6only.sec.test. RRSIG(AAAA)"]
    );
    assert!(m.metadata.authentic_data);
}

#[tokio::test]
async fn a_synthesized_cname_chain_keeps_the_cname_signatures() {
    let (_upstream, d) = setup("").await;
    let q = Q::new("alias.sec.test", RecordType::AAAA).do_bit();
    for m in [query_udp(d.addr, &q).await, query_tcp(d.addr, &q).await] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            types(&m.answers),
            [
                "alias.sec.test. CNAME",
                "alias.sec.test. RRSIG(CNAME)",
                "v4only.sec.test. AAAA"
            ]
        );
        assert_eq!(
            answer_summary(&m)[2],
            "v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"
        );
        assert!(m.metadata.authentic_data);
    }
    // Without DO the upstream sends no signatures, and dns64d adds none.
    let m = query_udp(d.addr, &Q::new("alias.sec.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "alias.sec.test. 300 CNAME v4only.sec.test.",
            "v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"
        ]
    );
    assert!(!m.metadata.authentic_data);
}

/// A name under a DNAME: the synthesized answer keeps the signed DNAME
/// before the CNAME synthesized from it, which a validating client needs
/// (the CNAME has no signature of its own).
#[tokio::test]
async fn a_synthesized_answer_through_a_dname_keeps_the_dname_and_its_signature() {
    let (_upstream, d) = setup("").await;
    let q = Q::new("v4only.moved.sec.test", RecordType::AAAA).do_bit();
    for m in [query_udp(d.addr, &q).await, query_tcp(d.addr, &q).await] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            types(&m.answers),
            [
                "moved.sec.test. DNAME",
                "moved.sec.test. RRSIG(DNAME)",
                "v4only.moved.sec.test. CNAME",
                "v4only.sec.test. AAAA"
            ]
        );
        let summary = answer_summary(&m);
        assert_eq!(
            summary[2..],
            [
                "v4only.moved.sec.test. 600 CNAME v4only.sec.test.",
                "v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"
            ]
        );
        assert!(m.metadata.authentic_data);
    }
    let m = query_udp(d.addr, &Q::new("v4only.moved.sec.test", RecordType::AAAA)).await;
    assert_eq!(
        types(&m.answers),
        [
            "moved.sec.test. DNAME",
            "v4only.moved.sec.test. CNAME",
            "v4only.sec.test. AAAA"
        ]
    );
}

#[tokio::test]
async fn nodata_and_nxdomain_keep_the_soa_signature_and_the_nsec_proof() {
    let (_upstream, d) = setup("").await;
    // NODATA: no A to synthesize from; the AAAA denial as the upstream sent it.
    let q = Q::new("text.sec.test", RecordType::AAAA).do_bit();
    for m in [query_udp(d.addr, &q).await, query_tcp(d.addr, &q).await] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(
            types(&m.authorities),
            [
                "sec.test. SOA",
                "sec.test. RRSIG(SOA)",
                "text.sec.test. NSEC",
                "text.sec.test. RRSIG(NSEC)"
            ]
        );
        assert_eq!(soa_ttl(&m), Some(60));
        assert!(m.metadata.authentic_data, "a validated denial keeps AD");
    }
    // The same through a CNAME: the chain with its RRSIG, then the proof.
    let m = query_udp(
        d.addr,
        &Q::new("totext.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        types(&m.answers),
        ["totext.sec.test. CNAME", "totext.sec.test. RRSIG(CNAME)"]
    );
    assert_eq!(
        types(&m.authorities),
        [
            "sec.test. SOA",
            "sec.test. RRSIG(SOA)",
            "text.sec.test. NSEC",
            "text.sec.test. RRSIG(NSEC)"
        ]
    );
    assert!(m.metadata.authentic_data);
    // DO=0: the SOA alone, no AD.
    let m = query_udp(d.addr, &Q::new("text.sec.test", RecordType::AAAA).ad()).await;
    assert_eq!(authority_summary(&m).len(), 1);
    assert_eq!(types(&m.authorities), ["sec.test. SOA"]);
    assert!(!m.metadata.authentic_data);
    // NXDOMAIN: passed through whole.
    let m = query_udp(d.addr, &Q::new("nope.sec.test", RecordType::AAAA).do_bit()).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        types(&m.authorities),
        [
            "sec.test. SOA",
            "sec.test. RRSIG(SOA)",
            "alias.sec.test. NSEC",
            "alias.sec.test. RRSIG(NSEC)"
        ]
    );
    assert!(m.metadata.authentic_data);
    // From the cache: the same records again.
    let again = query_udp(d.addr, &Q::new("text.sec.test", RecordType::AAAA).do_bit()).await;
    assert_eq!(
        types(&again.authorities),
        [
            "sec.test. SOA",
            "sec.test. RRSIG(SOA)",
            "text.sec.test. NSEC",
            "text.sec.test. RRSIG(NSEC)"
        ]
    );
    assert!(again.metadata.authentic_data);
}

#[tokio::test]
async fn excluded_aaaa_gives_nodata_with_the_signed_soa_and_no_ad() {
    let (_upstream, d) = setup("").await;
    let m = query_udp(
        d.addr,
        &Q::new("mapped.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "{:?}", answer_summary(&m));
    // The SOA is still true; the NSEC denies A, not the AAAA that exists: dropped.
    assert_eq!(
        types(&m.authorities),
        ["sec.test. SOA", "sec.test. RRSIG(SOA)"]
    );
    assert!(!m.metadata.authentic_data);
}

#[tokio::test]
async fn validation_failures_are_servfail_with_ede_6_never_synthesis() {
    let (upstream, d) = setup("").await;
    // A bogus AAAA, and a bogus A behind a secure AAAA denial.
    for name in ["bogus.sec.test", "bogusa.sec.test"] {
        for q in [
            Q::new(name, RecordType::AAAA).edns(1232),
            Q::new(name, RecordType::AAAA).do_bit(),
        ] {
            let m = query_udp(d.addr, &q).await;
            assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{name}");
            assert!(m.answers.is_empty() && m.authorities.is_empty(), "{name}");
            let codes: Vec<u16> = ede(&m).iter().map(|(code, _)| *code).collect();
            assert_eq!(codes, [6], "{name}: {:?}", ede(&m));
        }
    }
    // One upstream query per question: a validation failure is not retried elsewhere.
    assert_eq!(upstream.count("bogus.sec.test", RecordType::AAAA), 2);
    // A plain SERVFAIL for AAAA still falls back to synthesis (RFC 6147 §5.1.2).
    let m = query_udp(
        d.addr,
        &Q::new("plainfail.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["plainfail.sec.test. 300 AAAA 64:ff9b::5db8:d823"]
    );
    assert!(
        !m.metadata.authentic_data,
        "the AAAA lookup failed: nothing validated"
    );
}

#[tokio::test]
async fn do_and_cd_get_the_upstream_answer_unchanged() {
    let (_upstream, d) = setup("").await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.sec.test", RecordType::AAAA).do_bit().cd(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "no synthesis with DO and CD");
    assert_eq!(
        types(&m.authorities),
        [
            "sec.test. SOA",
            "sec.test. RRSIG(SOA)",
            "v4only.sec.test. NSEC",
            "v4only.sec.test. RRSIG(NSEC)"
        ]
    );
    assert!(m.metadata.checking_disabled && !m.metadata.authentic_data);
}

#[tokio::test]
async fn ignore_aaaa_domains_fall_back_to_native_aaaa_without_a() {
    let (_upstream, d) =
        setup("[dns64]\nignore_aaaa_domains = [\"v6only.sec.test\", \"v4only.sec.test\"]\n").await;
    // No A: the real AAAA, with its RRSIG and AD, not NODATA.
    let m = query_udp(
        d.addr,
        &Q::new("v6only.sec.test", RecordType::AAAA).do_bit(),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        types(&m.answers),
        ["v6only.sec.test. AAAA", "v6only.sec.test. RRSIG(AAAA)"]
    );
    assert_eq!(
        answer_summary(&m)[0],
        "v6only.sec.test. 300 AAAA 2001:db8::6"
    );
    assert!(m.metadata.authentic_data);
    assert!(ede(&m).is_empty(), "{:?}", ede(&m));
    let m = query_udp(d.addr, &Q::new("v6only.sec.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v6only.sec.test. 300 AAAA 2001:db8::6"]
    );
    // With an A record the synthesized address is still preferred.
    let m = query_udp(d.addr, &Q::new("v4only.sec.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.sec.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
}
