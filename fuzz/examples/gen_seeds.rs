//! Writes the committed seed corpus: `fuzz/seeds/request_path/*.bin` (DNS
//! queries, a few malformed) and `fuzz/seeds/synthesis/*.bin` (pairs of
//! upstream responses from the fuzz zone). Deterministic: fixed IDs, no
//! randomness, so re-running it changes nothing.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds

use std::fs;
use std::path::{Path, PathBuf};

use dns64d_fuzz::synthesis::{ip6_arpa, join};
use dns64d_fuzz::zone::{Zone, name};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, RecordType};

fn query(id: u16, qname: &str, qtype: RecordType) -> Message {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(qname), qtype));
    message
}

fn with_edns(mut message: Message, payload: u16, version: u8, dnssec_ok: bool) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload)
        .set_version(version)
        .set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().expect("seed encodes")
}

fn request_path_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let reverse = |address: &str| ip6_arpa(address.parse().expect("fixed address")).to_ascii();
    // 93.184.216.34 under the well-known prefix, 10.1.2.3 under the /40, 192.0.0.170.
    let ptr_wkp = reverse("64:ff9b::5db8:d822");
    let ptr_nsp40 = reverse("2001:db8:10a:102:3::");
    let ptr_ipv4only = reverse("64:ff9b::c000:aa");
    let mut seeds = vec![
        (
            "aaaa-v4only",
            bytes(&query(0x0101, "v4only.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "a-v4only",
            bytes(&query(0x0102, "v4only.fuzz.test.", RecordType::A)),
        ),
        (
            "aaaa-dual",
            bytes(&query(0x0103, "dual.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-signed-do",
            bytes(&with_edns(
                query(0x0104, "signed.fuzz.test.", RecordType::AAAA),
                1232,
                0,
                true,
            )),
        ),
        (
            "aaaa-cname-chain",
            bytes(&query(0x0105, "cname-chain.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-cname-out",
            bytes(&query(0x0106, "cname-out.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-loop",
            bytes(&query(0x0107, "loop-a.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-nxdomain",
            bytes(&query(0x0108, "nowhere.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-nodata",
            bytes(&query(0x0109, "cname-nodata.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-servfail",
            bytes(&query(0x010a, "servfail.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-timeout",
            bytes(&query(0x010b, "timeout.fuzz.test.", RecordType::AAAA)),
        ),
        (
            "aaaa-many-edns",
            bytes(&with_edns(
                query(0x010c, "many.fuzz.test.", RecordType::AAAA),
                1232,
                0,
                false,
            )),
        ),
        (
            "aaaa-ipv4only-arpa",
            bytes(&query(0x010d, "ipv4only.arpa.", RecordType::AAAA)),
        ),
        (
            "ptr-in-addr",
            bytes(&query(
                0x010e,
                "34.216.184.93.in-addr.arpa.",
                RecordType::PTR,
            )),
        ),
        (
            "ptr-synthesized",
            bytes(&query(0x010f, &ptr_wkp, RecordType::PTR)),
        ),
        (
            "ptr-synthesized-40",
            bytes(&query(0x0119, &ptr_nsp40, RecordType::PTR)),
        ),
        (
            "ptr-ipv4only",
            bytes(&query(0x0110, &ptr_ipv4only, RecordType::PTR)),
        ),
        (
            "any-dual",
            bytes(&query(0x0111, "dual.fuzz.test.", RecordType::ANY)),
        ),
        (
            "aaaa-do-cd",
            bytes(&{
                let mut m = with_edns(
                    query(0x0112, "v4only.fuzz.test.", RecordType::AAAA),
                    4096,
                    0,
                    true,
                );
                m.metadata.checking_disabled = true;
                m
            }),
        ),
        (
            "edns-version-1",
            bytes(&with_edns(
                query(0x0113, "v4only.fuzz.test.", RecordType::A),
                1232,
                1,
                false,
            )),
        ),
        (
            "aaaa-no-rd",
            bytes(&{
                let mut m = query(0x0114, "v4only.fuzz.test.", RecordType::AAAA);
                m.metadata.recursion_desired = false;
                m
            }),
        ),
        (
            "ch-txt",
            bytes(&{
                let mut m = Message::new(0x0115, MessageType::Query, OpCode::Query);
                let mut q = Query::query(name("version.bind."), RecordType::TXT);
                q.set_query_class(DNSClass::CH);
                m.add_query(q);
                m
            }),
        ),
        (
            "notify",
            bytes(&{
                let mut m = Message::new(0x0116, MessageType::Query, OpCode::Notify);
                m.add_query(Query::query(name("fuzz.test."), RecordType::SOA));
                m
            }),
        ),
        (
            "qdcount-2",
            bytes(&{
                let mut m = query(0x0117, "v4only.fuzz.test.", RecordType::AAAA);
                m.add_query(Query::query(name("dual.fuzz.test."), RecordType::AAAA));
                m
            }),
        ),
    ];
    // A response (QR=1): never answered.
    let mut response = query(0x0118, "v4only.fuzz.test.", RecordType::AAAA);
    response.metadata.message_type = MessageType::Response;
    seeds.push(("response-qr1", bytes(&response)));
    // Malformed after a valid header: compression loop, label past the end.
    seeds.push((
        "pointer-loop",
        vec![
            0x01, 0x19, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 28, 0, 1,
        ],
    ));
    seeds.push((
        "label-past-end",
        vec![0x01, 0x1a, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'a', b'b'],
    ));
    seeds
}

fn synthesis_seeds() -> Vec<(String, Vec<u8>)> {
    let zone = Zone::new();
    let response = |id: u16, qname: &str, qtype: RecordType| -> Vec<u8> {
        let mut message = Message::response(id, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.metadata.recursion_available = true;
        message.add_query(Query::query(name(qname), qtype));
        match zone.answer(&name(qname), qtype, DNSClass::IN) {
            Ok(answer) => {
                message.metadata.response_code = answer.response_code;
                message.answers = answer.answers;
                message.authorities = answer.authorities;
                message.additionals = answer.additionals;
            }
            Err(_) => message.metadata.response_code = hickory_proto::op::ResponseCode::ServFail,
        }
        bytes(&message)
    };
    let mut seeds = Vec::new();
    let names = [
        "v4only",
        "multi",
        "private",
        "loopback",
        "dual",
        "v6only",
        "mapped",
        "signed",
        "cname-chain",
        "cname-out",
        "cname-nx",
        "cname-nodata",
        "loop-a",
        "nowhere",
        "servfail",
        "ttl-zero",
        "ipv4only-like",
    ];
    for (index, label) in names.iter().enumerate() {
        let qname = format!("{label}.fuzz.test.");
        let id = 0x0200 + index as u16;
        let aaaa = response(id, &qname, RecordType::AAAA);
        let a = response(id + 0x100, &qname, RecordType::A);
        seeds.push((format!("pair-{label}"), join(&aaaa, &a)));
    }
    // Mismatched: the AAAA answer of one name with the A answer of another.
    let aaaa = response(0x0300, "dual.fuzz.test.", RecordType::AAAA);
    let a = response(0x0301, "multi.fuzz.test.", RecordType::A);
    seeds.push(("mismatched-dual-multi".into(), join(&aaaa, &a)));
    // Reverse names in the question.
    let aaaa = response(0x0302, "34.216.184.93.in-addr.arpa.", RecordType::PTR);
    let a = response(
        0x0303,
        "0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        RecordType::PTR,
    );
    seeds.push(("reverse-names".into(), join(&aaaa, &a)));
    seeds
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).expect("create seed directory");
    fs::write(dir.join(format!("{name}.bin")), data).expect("write seed");
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    for (name, data) in request_path_seeds() {
        write(&root.join("request_path"), name, &data);
    }
    for (name, data) in synthesis_seeds() {
        write(&root.join("synthesis"), &name, &data);
    }
    println!("seeds written under {}", root.display());
}
