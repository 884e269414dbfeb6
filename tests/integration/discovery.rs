//! `dns64.prefixes = ["discover"]`: the NAT64 prefix learned through RFC 7050
//! from an upstream DNS64, and through an RFC 8781 PREF64 option in a router
//! advertisement sent inside a network namespace that the test creates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An upstream that behaves like a DNS64 under 2001:db8:aa::/96 for
/// ipv4only.arpa, and knows v4only.dns64.test (A only).
async fn upstream_dns64(ip: IpAddr) -> FakeUpstream {
    start_fake_upstream(ip, |request, _| {
        let question = &request.queries[0];
        let name = question.name().to_ascii().to_lowercase();
        let reply = match (name.as_str(), question.query_type()) {
            ("ipv4only.arpa.", RecordType::AAAA) => reply_with(
                request,
                vec![
                    rr_aaaa(
                        "ipv4only.arpa.",
                        300,
                        "2001:db8:aa::c000:aa".parse().unwrap(),
                    ),
                    rr_aaaa(
                        "ipv4only.arpa.",
                        300,
                        "2001:db8:aa::c000:ab".parse().unwrap(),
                    ),
                ],
            ),
            ("v4only.dns64.test.", RecordType::A) => reply_with(
                request,
                vec![rr_a(
                    "v4only.dns64.test.",
                    300,
                    Ipv4Addr::new(93, 184, 216, 34),
                )],
            ),
            _ => {
                let mut m = reply_to(request);
                m.add_authority(rr_soa("dns64.test.", 60, 60));
                m
            }
        };
        FakeAction::Reply(reply)
    })
    .await
}

/// Queries until the AAAA answer is non-empty (discovery runs in the background).
async fn wait_for_synthesis(server: SocketAddr, name: &str) -> Message {
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        let m = query_udp(server, &Q::new(name, RecordType::AAAA)).await;
        if !m.answers.is_empty() {
            return m;
        }
        assert!(Instant::now() < deadline, "no prefix was discovered");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn rfc7050_learns_the_prefix_from_the_upstream_dns64() {
    let upstream = upstream_dns64(LO).await;
    let d = start_dns64d(
        &[upstream.addr()],
        "",
        "[dns64]\nprefixes = [\"discover\"]\n",
    )
    .await;
    let m = wait_for_synthesis(d.addr, "v4only.dns64.test").await;
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 60 AAAA 2001:db8:aa::5db8:d822"]
    );
    // ipv4only.arpa is now answered from the learned prefix, locally.
    let before = upstream.count("ipv4only.arpa", RecordType::AAAA);
    let m = query_udp(d.addr, &Q::new("ipv4only.arpa", RecordType::AAAA)).await;
    assert_eq!(
        answer_summary(&m),
        [
            "ipv4only.arpa. 600 AAAA 2001:db8:aa::c000:aa",
            "ipv4only.arpa. 600 AAAA 2001:db8:aa::c000:ab"
        ]
    );
    assert_eq!(upstream.count("ipv4only.arpa", RecordType::AAAA), before);
}

/// A router advertisement carrying PREF64 2001:db8:64::/96 (lifetime 1800 s).
fn router_advertisement() -> Vec<u8> {
    let mut packet = vec![134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let field: u16 = 225 << 3; // 1800 s, PLC 0 (/96)
    packet.extend_from_slice(&[38, 2]);
    packet.extend_from_slice(&field.to_be_bytes());
    packet.extend_from_slice(&"2001:db8:64::".parse::<Ipv6Addr>().unwrap().octets()[..12]);
    packet
}

#[test]
#[ignore = "needs root: a network namespace and a raw ICMPv6 socket"]
fn pref64_in_a_router_advertisement_sets_the_prefix() {
    let netns = Netns::create().expect(NETNS_NEEDS_ROOT);
    netns.ip(&["link", "add", "ra0", "type", "veth", "peer", "name", "ra1"]);
    netns.ip(&["link", "set", "ra0", "up"]);
    netns.ip(&["link", "set", "ra1", "up"]);
    netns.run(|| async {
        let upstream = upstream_dns64(IpAddr::V6(Ipv6Addr::LOCALHOST)).await;
        let d = start_dns64d(
            &[upstream.addr()],
            "",
            "[dns64]\nprefixes = [\"discover\"]\n",
        )
        .await;
        // RFC 7050 gives 2001:db8:aa::/96 first.
        let m = wait_for_synthesis(d.addr, "v4only.dns64.test").await;
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 60 AAAA 2001:db8:aa::5db8:d822"]
        );

        // Send the RA from ra0's link-local address to all nodes on the link.
        let index = if_index("ra0");
        let sender = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV6),
        )
        .expect("raw socket");
        sender.set_multicast_if_v6(index).unwrap();
        sender.set_multicast_hops_v6(255).unwrap();
        let all_nodes = std::net::SocketAddrV6::new("ff02::1".parse().unwrap(), 0, 0, index);
        let deadline = Instant::now() + TEST_TIMEOUT;
        loop {
            // Until ra0's link-local address is ready (slow on a loaded machine) the
            // send fails; the deadline below bounds the retries.
            let sent = sender.send_to(&router_advertisement(), &all_nodes.into());
            assert!(
                sent.is_ok() || Instant::now() < deadline,
                "send RA: {sent:?}"
            );
            let m = query_udp(d.addr, &Q::new("v4only.dns64.test", RecordType::AAAA)).await;
            if answer_summary(&m) == ["v4only.dns64.test. 60 AAAA 2001:db8:64::5db8:d822"] {
                break; // the RA-learned prefix now wins over the DNS-learned one
            }
            assert!(
                Instant::now() < deadline,
                "PREF64 not learned: {:?}",
                answer_summary(&m)
            );
            tokio::task::yield_now().await;
        }
    });
}
