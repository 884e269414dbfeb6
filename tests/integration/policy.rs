//! RFC 6147 §5.3.1 reverse synthesis and the operator policies over the
//! wire: reverse modes, dns64.clients, per-listener policy, synth_all,
//! ignore_aaaa_domains, exclude_domains, per-prefix mapped/clients/suffix,
//! ANY (RFC 8482) and RD=0.

use std::net::{IpAddr, Ipv4Addr};

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The ip6.arpa name of an address.
fn ip6_arpa(address: &str) -> String {
    dns64d::dns64::reverse::ip6_arpa_name_of(address.parse().unwrap()).to_string()
}

async fn setup(extra: &str) -> (AuthUpstream, Dns64d) {
    let auth = start_auth_upstream(LO).await;
    let dns64d = start_dns64d(&[auth.addr()], "", extra).await;
    (auth, dns64d)
}

#[tokio::test]
async fn reverse_cname_points_at_in_addr_arpa_and_follows_it() {
    let (_auth, d) = setup("").await;
    let name = ip6_arpa("64:ff9b::5db8:d822");
    for m in [
        query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await,
        query_tcp(d.addr, &Q::new(&name, RecordType::PTR)).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.authentic_data);
        assert_eq!(
            answer_summary(&m),
            [
                format!("{name} 600 CNAME 34.216.184.93.in-addr.arpa."),
                "34.216.184.93.in-addr.arpa. 300 PTR v4only.dns64.test.".to_string(),
            ]
        );
    }
}

#[tokio::test]
async fn reverse_ttl_sets_the_cname_ttl() {
    let (_auth, d) = setup("[dns64]\nreverse_ttl = 60\n").await;
    let name = ip6_arpa("64:ff9b::5db8:d822");
    let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
    assert_eq!(
        answer_summary(&m)[0],
        format!("{name} 60 CNAME 34.216.184.93.in-addr.arpa.")
    );
}

#[tokio::test]
async fn reverse_ptr_mode_rewrites_the_owner() {
    let (_auth, d) = setup("[dns64]\nreverse = \"ptr\"\n").await;
    let name = ip6_arpa("64:ff9b::5db8:d822");
    let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
    assert_eq!(
        answer_summary(&m),
        [format!("{name} 300 PTR v4only.dns64.test.")]
    );
}

#[tokio::test]
async fn reverse_without_ptr_is_nxdomain_with_the_cname() {
    let (_auth, d) = setup("").await;
    let name = ip6_arpa("64:ff9b::5db8:d828"); // 93.184.216.40 has no PTR
    let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        answer_summary(&m),
        [format!("{name} 600 CNAME 40.216.184.93.in-addr.arpa.")]
    );
    assert_eq!(soa_ttl(&m), Some(120));
}

#[tokio::test]
async fn reverse_off_short_names_and_excluded_ipv4_are_forwarded() {
    let (auth, d) = setup("[dns64]\nreverse = \"off\"\n").await;
    let name = ip6_arpa("64:ff9b::5db8:d822");
    let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
    // Forwarded as it is: the test authority does not serve ip6.arpa and
    // refuses, which the client sees as SERVFAIL (the upstream refused us).
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(auth.count(&name, RecordType::PTR) >= 1);

    let prefix_only = "b.9.f.f.4.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.";
    let m = query_udp(d.addr, &Q::new(prefix_only, RecordType::PTR)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(auth.count(prefix_only, RecordType::PTR) >= 1);

    let (auth, d) = setup("").await;
    // 10.1.2.3 may not be embedded in the well-known prefix: no CNAME, forwarded.
    let excluded = ip6_arpa("64:ff9b::a01:203");
    let m = query_udp(d.addr, &Q::new(&excluded, RecordType::PTR)).await;
    assert!(m.answers.is_empty());
    assert!(auth.count(&excluded, RecordType::PTR) >= 1);
}

#[tokio::test]
async fn reverse_zone_empty_non_terminals_are_nodata_with_the_prefix_soa() {
    let (auth, d) = setup("[dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8:100::/40\"]\n").await;
    let wkp_zone = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.9.f.f.4.6.0.0.ip6.arpa.";
    let full = ip6_arpa("64:ff9b::5db8:d822");
    // (name asked, qtype, the prefix zone in the SOA)
    let cases = [
        (wkp_zone.to_string(), RecordType::PTR, wkp_zone),
        (full[2..].to_string(), RecordType::PTR, wkp_zone), // 31 nibbles
        (full[16..].to_string(), RecordType::NS, wkp_zone),
        (format!("d.{wkp_zone}"), RecordType::A, wkp_zone),
        (
            "2.1.0.8.b.d.0.1.0.0.2.ip6.arpa.".to_string(),
            RecordType::PTR,
            "1.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        ),
    ];
    for (name, qtype, zone) in cases {
        for m in [
            query_udp(d.addr, &Q::new(&name, qtype)).await,
            query_tcp(d.addr, &Q::new(&name, qtype)).await,
        ] {
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{name} {qtype}"
            );
            assert!(m.answers.is_empty() && m.additionals.is_empty(), "{name}");
            assert_eq!(
                authority_summary(&m),
                [format!(
                    "{zone} 600 SOA {zone} nobody.invalid. 1 3600 1200 604800 600"
                )],
                "{name} {qtype}"
            );
        }
        assert_eq!(auth.count(&name, qtype), 0, "{name} was forwarded");
    }
    // The SOA of the zone itself, at its apex.
    let m = query_udp(d.addr, &Q::new(wkp_zone, RecordType::SOA)).await;
    assert_eq!(
        answer_summary(&m),
        [format!(
            "{wkp_zone} 600 SOA {wkp_zone} nobody.invalid. 1 3600 1200 604800 600"
        )]
    );
    // Above the prefix zone, and outside every prefix: forwarded.
    for name in ["4.6.0.0.ip6.arpa.", "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."] {
        query_udp(d.addr, &Q::new(name, RecordType::PTR)).await;
        assert!(
            auth.count(name, RecordType::PTR) >= 1,
            "{name} was not forwarded"
        );
    }
}

#[tokio::test]
async fn reverse_under_a_network_specific_prefix_and_second_prefix() {
    let (_auth, d) = setup("[dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8:64::/96\"]\n").await;
    let name = ip6_arpa("2001:db8:64::a01:203");
    let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
    assert_eq!(
        answer_summary(&m),
        [
            format!("{name} 600 CNAME 3.2.1.10.in-addr.arpa."),
            "3.2.1.10.in-addr.arpa. 300 PTR private.dns64.test.".to_string(),
        ]
    );
}

#[tokio::test]
async fn reverse_of_ipv4only_addresses_is_ipv4only_arpa() {
    let (auth, d) = setup("[dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8:64::/96\"]\n").await;
    for address in [
        "64:ff9b::c000:aa",
        "64:ff9b::c000:ab",
        "2001:db8:64::c000:aa",
    ] {
        let name = ip6_arpa(address);
        let m = query_udp(d.addr, &Q::new(&name, RecordType::PTR)).await;
        assert_eq!(
            answer_summary(&m),
            [format!("{name} 86400 PTR ipv4only.arpa.")],
            "{address}"
        );
    }
    for name in ["170.0.0.192.in-addr.arpa.", "171.0.0.192.in-addr.arpa."] {
        let m = query_udp(d.addr, &Q::new(name, RecordType::PTR)).await;
        assert_eq!(
            answer_summary(&m),
            [format!("{name} 86400 PTR ipv4only.arpa.")]
        );
    }
    assert_eq!(auth.total(), 0, "answered locally");
}

#[tokio::test]
async fn dns64_clients_limits_who_gets_synthesis() {
    let (_auth, d) = setup("[dns64]\nclients = [\"192.0.2.0/24\"]\n").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.answers.is_empty(),
        "127.0.0.1 is not in dns64.clients: plain forwarding"
    );
    let (_auth, d) = setup("[dns64]\nclients = [\"127.0.0.0/8\"]\n").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
}

#[tokio::test]
async fn listeners_have_their_own_dns64_policy() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ndns64 = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprefixes = [\"2001:db8:64::/96\"]\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = [\"udp\"]\nclients = [\"192.0.2.0/24\"]\n",
    )
    .await;
    let addresses = d.server.local_addrs().to_vec();
    assert_eq!(addresses.len(), 4);
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    // listen = [...] shorthand: the global policy.
    let m = query_udp(addresses[0], &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
    // dns64 = false: plain forwarding.
    let m = query_tcp(addresses[1], &q).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // Own prefix list.
    let m = query_udp(addresses[2], &q).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"]
    );
    // Own access list: 127.0.0.1 refused.
    let m = query_udp(addresses[3], &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // UDP only: nothing listens on TCP there.
    assert!(tokio::net::TcpStream::connect(addresses[3]).await.is_err());
}

#[tokio::test]
async fn synth_all_replaces_native_aaaa() {
    let (_auth, d) = setup("[dns64]\nsynth_all = true\n").await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    // The AAAA answer was positive (no SOA): TTL capped at 600, so the A TTL 300 stays.
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 64:ff9b::5db8:d828"]
    );
}

#[tokio::test]
async fn ignore_aaaa_domains_synthesize_under_those_names_only() {
    let (_auth, d) = setup("[dns64]\nignore_aaaa_domains = [\"dual.dns64.test\"]\n").await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 64:ff9b::5db8:d828"]
    );
    let m = query_udp(d.addr, &Q::new("v6only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["v6only.dns64.test. 300 AAAA 2001:db8::60"]
    );
}

#[tokio::test]
async fn exclude_domains_are_never_synthesized() {
    let (_auth, d) = setup("[dns64]\nexclude_domains = [\"DNS64.test\"]\n").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(soa_ttl(&m), Some(60));
    let m = query_udp(d.addr, &Q::new("target.other.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["target.other.test. 45 AAAA 64:ff9b::5db8:d85a"]
    );
}

#[tokio::test]
async fn per_prefix_mapped_ranges_choose_the_prefix() {
    let (_auth, d) = setup(
        "[dns64]\nprefixes = [{ prefix = \"2001:db8:64::/96\", mapped_ipv4 = [\"10.0.0.0/8\"] }, \"64:ff9b::/96\"]\n",
    )
    .await;
    let m = query_udp(
        d.addr,
        &Q::new("private-mixed.dns64.test", RecordType::AAAA),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        [
            "private-mixed.dns64.test. 60 AAAA 2001:db8:64::a00:1",
            "private-mixed.dns64.test. 60 AAAA 64:ff9b::5db8:d850",
        ]
    );
}

#[tokio::test]
async fn per_prefix_clients_and_suffix() {
    let (_auth, d) = setup(
        "[[dns64.prefix]]\nprefix = \"2001:db8:64::/96\"\nclients = [\"192.0.2.0/24\"]\n\n\
         [[dns64.prefix]]\nprefix = \"2001:db8:122::/48\"\nsuffix = \"::ff:1\"\n",
    )
    .await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    // 64:ff9b::/96 (the default list) + the suffixed /48; the /96 is not for 127.0.0.1.
    assert_eq!(
        answer_summary(&m),
        [
            "v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822",
            "v4only.dns64.test. 60 AAAA 2001:db8:122:5db8:d8:2200:ff:1",
        ]
    );
}

#[tokio::test]
async fn any_gets_one_rrset_and_no_synthesis() {
    let (_auth, d) = setup("").await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::ANY)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::ANY)).await;
    let types: std::collections::BTreeSet<RecordType> =
        m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "one RRset: {:?}", answer_summary(&m));
}

#[tokio::test]
async fn rd_zero_answers_from_cache_only() {
    let (auth, d) = setup("").await;
    let m = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::A)
            .no_rd()
            .edns(1232),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.recursion_desired);
    let ede: Vec<u16> = ede(&m).into_iter().map(|(code, _)| code).collect();
    assert_eq!(ede, [20]);
    assert_eq!(auth.total(), 0, "RD=0 never queries upstream");
    // Once cached, RD=0 gets the cached answer (and the synthesis built from it).
    query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
    let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::A).no_rd()).await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    let m = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::AAAA).no_rd(),
    )
    .await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 64:ff9b::5db8:d822"]
    );
}

#[tokio::test]
async fn exclude_aaaa_per_prefix_defaults_to_the_global_list() {
    // Inline table: this prefix treats 2001:db8::/32 as unusable, and only that.
    let (_auth, d) = setup(
        "[dns64]\nprefixes = [{ prefix = \"64:ff9b::/96\", exclude_aaaa = [\"2001:db8::/32\"] }]\n",
    )
    .await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 64:ff9b::5db8:d828"]
    );
    // Its own list replaces the global one: an IPv4-mapped AAAA is usable here.
    let m = query_udp(d.addr, &Q::new("mapped.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["mapped.dns64.test. 300 AAAA ::ffff:93.184.216.70"]
    );

    // [[dns64.prefix]]: the list applies to the clients of its prefix only; the
    // prefix without a list uses the global one (the IPv4-mapped range).
    let (_auth, d) = setup(
        "[dns64]\nprefixes = []\n\n[[dns64.prefix]]\nprefix = \"64:ff9b::/96\"\nclients = [\"127.0.0.0/8\"]\n\n\
         [[dns64.prefix]]\nprefix = \"2001:db8:64::/96\"\nclients = [\"10.0.0.0/8\"]\nexclude_aaaa = [\"2001:db8::/32\"]\n",
    )
    .await;
    let m = query_udp(d.addr, &Q::new("dual.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["dual.dns64.test. 300 AAAA 2001:db8::40"]
    );
    let m = query_udp(d.addr, &Q::new("mapped.dns64.test", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        ["mapped.dns64.test. 300 AAAA 64:ff9b::5db8:d846"]
    );

    // Config errors name the key, the value and what is allowed.
    let error = dns64d::ops::config::from_toml_str(
        "[upstream]\nservers = [\"127.0.0.1\"]\n[dns64]\nprefixes = [{ prefix = \"64:ff9b::/96\", exclude_aaaa = [\"2001:db8::/300\"] }]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("dns64.prefixes.exclude_aaaa")
            && error.contains("2001:db8::/300")
            && error.contains("IPv6 network"),
        "{error}"
    );
}
