//! DNS Cookies over the wire (RFC 7873, RFC 9018 server cookies): `dig
//! +cookie` learns a server cookie and sends it back; a wrong server cookie
//! gets BADCOOKIE with a fresh one over UDP (dig retries with it) and an
//! answer over TCP; malformed cookies get FORMERR; a query without a
//! question gets a cookie (RFC 7873 §5.4); the fast path's replays carry
//! each client's own cookie and never another's; a valid cookie exempts a
//! client from rate limiting; `cookies.require_for_large_udp` truncates
//! large UDP answers to clients without a valid cookie.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dns64d::edge::cookies::{CookieKeys, CookieState, parse_secret, unix_now};
use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::common::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
/// How long a test waits for a reply it expects not to come.
const SILENCE: Duration = Duration::from_millis(300);

fn keys() -> CookieKeys {
    CookieKeys {
        current: parse_secret(SECRET).unwrap(),
        previous: None,
    }
}

fn cookies_config(extra: &str) -> String {
    format!("[cookies]\nsecret = \"{SECRET}\"\n{extra}")
}

/// The COOKIE option data of a message, if any.
fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    let edns = m.edns.as_ref()?;
    let cookies: Vec<Vec<u8>> = edns
        .options()
        .options
        .iter()
        .filter(|(code, _)| u16::from(*code) == 10)
        .map(|(_, option)| Vec::<u8>::try_from(option).expect("option data"))
        .collect();
    assert!(cookies.len() <= 1, "one COOKIE option at most: {m:?}");
    cookies.into_iter().next()
}

/// A query for `q` carrying `cookie` as its COOKIE option.
fn with_cookie(q: &Q, cookie: &[u8]) -> Message {
    let mut m = q.clone().edns(1232).to_message();
    m.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    m
}

/// Asserts `m` carries `client_cookie` and a server cookie of ours for
/// 127.0.0.1; returns the whole cookie.
fn assert_our_cookie(m: &Message, client_cookie: &[u8]) -> Vec<u8> {
    let cookie = cookie_of(m).unwrap_or_else(|| panic!("no COOKIE option: {m:?}"));
    assert_eq!(cookie.len(), 24, "client cookie + RFC 9018 server cookie");
    assert_eq!(&cookie[..8], client_cookie, "the client cookie is echoed");
    assert!(
        matches!(keys().check(&cookie, LO, unix_now()), CookieState::Valid(_)),
        "the server cookie verifies: {cookie:02x?}"
    );
    cookie
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs dig against `server` and returns its output.
async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+tries=1", "+time=3"])
        .args(args);
    let output = tokio::time::timeout(TEST_TIMEOUT, command.output())
        .await
        .expect("dig finishes")
        .expect("dig runs (bind9-dnsutils; .ci/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?} failed: {text}");
    text
}

/// The cookie dig printed (`; COOKIE: <hex> (good)`), checking dig found it good.
fn dig_cookie(output: &str) -> Vec<u8> {
    let line = output
        .lines()
        .find(|line| line.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no cookie in dig's output:\n{output}"));
    assert!(line.ends_with("(good)"), "dig does not like it: {line}");
    let text = line
        .trim_start_matches("; COOKIE: ")
        .split_whitespace()
        .next()
        .unwrap();
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn dig_learns_a_server_cookie_and_sends_it_back() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", &cookies_config("")).await;
    let first = dig(d.addr, &["+cookie", "AAAA", "v4only.dns64.test"]).await;
    assert!(first.contains("status: NOERROR"), "{first}");
    assert!(first.contains("64:ff9b::5db8:d822"), "{first}");
    let cookie = dig_cookie(&first);
    assert!(matches!(
        keys().check(&cookie, LO, unix_now()),
        CookieState::Valid(_)
    ));
    // The cookie sent back is valid: answered (from the fast path's stored
    // response this time) with a fresh cookie, over UDP and TCP.
    let sent = format!("+cookie={}", hex(&cookie));
    for transport in ["+notcp", "+tcp"] {
        let again = dig(d.addr, &[&sent, transport, "AAAA", "v4only.dns64.test"]).await;
        assert!(again.contains("status: NOERROR"), "{again}");
        assert!(again.contains("64:ff9b::5db8:d822"), "{again}");
        assert_eq!(dig_cookie(&again)[..8], cookie[..8]);
    }
    let metrics = d.server.handler().resolver().metrics().encode(0);
    assert!(
        metrics.contains("dns64d_cookies_total{kind=\"valid\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wrong_server_cookie_gets_badcookie_over_udp_and_an_answer_over_tcp() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", &cookies_config("")).await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    let client_cookie = [1, 2, 3, 4, 5, 6, 7, 8];
    let mut wrong = client_cookie.to_vec();
    wrong.extend_from_slice(&[1, 0, 0, 0]);
    wrong.extend_from_slice(&unix_now().to_be_bytes());
    wrong.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef]);

    // Twice: the first time the slow path answers; nothing is stored for the fast path.
    for _ in 0..2 {
        let m = exchange_udp(d.addr, &with_cookie(&q, &wrong)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::BADCOOKIE);
        assert!(m.answers.is_empty(), "nothing to amplify: {m:?}");
        assert_eq!(m.queries.len(), 1);
        assert_our_cookie(&m, &client_cookie);
    }
    // RFC 7873 §5.3: the client retries with the cookie it was given.
    let bad = exchange_udp(d.addr, &with_cookie(&q, &wrong)).await;
    let fresh = assert_our_cookie(&bad, &client_cookie);
    let m = exchange_udp(d.addr, &with_cookie(&q, &fresh)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    assert_our_cookie(&m, &client_cookie);
    // TCP cannot be forged: answered, with a fresh cookie.
    let m = exchange_tcp(d.addr, &with_cookie(&q, &wrong)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answer_summary(&m),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    assert_our_cookie(&m, &client_cookie);
    // dig handles the BADCOOKIE itself: it retries with the new cookie.
    let output = dig(
        d.addr,
        &[
            &format!("+cookie={}", hex(&wrong)),
            "A",
            "v4only.dns64.test",
        ],
    )
    .await;
    assert!(output.contains("BADCOOKIE, retrying"), "{output}");
    assert!(output.contains("status: NOERROR"), "{output}");
    assert!(output.contains("93.184.216.34"), "{output}");
}

#[tokio::test]
async fn malformed_cookies_get_formerr_and_a_cookie_alone_gets_a_cookie() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", &cookies_config("")).await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    for length in [7, 9, 41] {
        let m = exchange_udp(d.addr, &with_cookie(&q, &vec![7; length])).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::FormErr,
            "{length} octets"
        );
        assert!(cookie_of(&m).is_none());
    }
    // RFC 7873 §5.4: no question, only a client cookie.
    let mut ask = with_cookie(&q, &[9; 8]);
    ask.queries.clear();
    for m in [
        exchange_udp(d.addr, &ask).await,
        exchange_tcp(d.addr, &ask).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.queries.is_empty() && m.answers.is_empty());
        assert_our_cookie(&m, &[9; 8]);
    }
}

#[tokio::test]
async fn replayed_answers_carry_each_clients_own_cookie() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", &cookies_config("")).await;
    let q = Q::new("v4only.dns64.test", RecordType::AAAA);
    let first = exchange_udp(d.addr, &with_cookie(&q, &[1; 8])).await;
    assert_our_cookie(&first, &[1; 8]);
    let second = exchange_udp(d.addr, &with_cookie(&q, &[2; 8])).await;
    assert_our_cookie(&second, &[2; 8]);
    assert_eq!(answer_summary(&first), answer_summary(&second));
    assert_eq!(ede(&first), ede(&second), "the EDE 29 is kept");
    let plain = query_udp(d.addr, &q.clone().edns(1232)).await;
    assert!(
        cookie_of(&plain).is_none(),
        "no cookie for a client without one"
    );
    assert_eq!(answer_summary(&plain), answer_summary(&first));
    let hits = d.server.handler().resolver().metrics().encode(0);
    assert!(
        hits.contains("dns64d_cookies_total{kind=\"client_only\"} 2"),
        "{hits}"
    );
}

#[tokio::test]
async fn a_valid_cookie_exempts_a_client_from_rate_limiting() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        &cookies_config(
            "[rate_limit]\nresponses_per_second = 1\nslip = 0\nipv4_prefix_length = 32\nexempt = []\n",
        ),
    )
    .await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    let cookie = assert_our_cookie(
        &exchange_tcp(d.addr, &with_cookie(&q, &[3; 8])).await,
        &[3; 8],
    );
    for _ in 0..10 {
        let m = exchange_udp(d.addr, &with_cookie(&q, &cookie)).await;
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 300 A 93.184.216.34"]
        );
    }
    // Without it the same client is limited (1/s, the rest dropped).
    let mut answered = 0;
    for _ in 0..5 {
        let bytes = with_cookie(&q, &[3; 8]).to_vec().unwrap();
        if send_udp_raw(d.addr, &bytes, SILENCE).await.is_some() {
            answered += 1;
        }
    }
    assert!(answered <= 2, "{answered} of 5 answered over the limit");
}

#[tokio::test]
async fn large_udp_answers_need_a_valid_cookie_when_required() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        &cookies_config("require_for_large_udp = true\n"),
    )
    .await;
    let q = Q::new("many-a.dns64.test", RecordType::A);
    // No cookie, or only a client cookie: truncated, so TCP (or the cookie) comes next.
    let plain = query_udp(d.addr, &q.clone().edns(1232)).await;
    assert!(
        plain.metadata.truncation && plain.answers.is_empty(),
        "{plain:?}"
    );
    let client_only = exchange_udp(d.addr, &with_cookie(&q, &[4; 8])).await;
    assert!(client_only.metadata.truncation && client_only.answers.is_empty());
    let cookie = assert_our_cookie(&client_only, &[4; 8]);
    // With the valid cookie the whole answer comes over UDP (twice: slow, then fast path).
    for _ in 0..2 {
        let m = exchange_udp(d.addr, &with_cookie(&q, &cookie)).await;
        assert!(!m.metadata.truncation);
        assert_eq!(a_answers(&m).len(), 40);
        assert_our_cookie(&m, &[4; 8]);
    }
    // And small answers need nothing.
    let small = query_udp(
        d.addr,
        &Q::new("v4only.dns64.test", RecordType::A).edns(1232),
    )
    .await;
    assert_eq!(
        answer_summary(&small),
        ["v4only.dns64.test. 300 A 93.184.216.34"]
    );
    // Without the option, the large answer goes to anyone who takes it.
    let open = start_dns64d(&[auth.addr()], "", &cookies_config("")).await;
    let m = query_udp(open.addr, &q.clone().edns(1232)).await;
    assert_eq!(a_answers(&m).len(), 40);
}

#[tokio::test]
async fn cookies_can_be_turned_off() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(&[auth.addr()], "", "[cookies]\nenabled = false\n").await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    for _ in 0..2 {
        let m = exchange_udp(d.addr, &with_cookie(&q, &[5; 8])).await;
        assert_eq!(
            answer_summary(&m),
            ["v4only.dns64.test. 300 A 93.184.216.34"]
        );
        assert!(cookie_of(&m).is_none());
    }
}

/// The COOKIE option data of each query a fake upstream saw, by name.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A cookie-aware fake upstream: it remembers what each query carried and
/// answers `*.up.test` A with 192.0.2.1 and the client cookie plus
/// `server_cookie`; a query for `fresh.up.test` carrying another server
/// cookie than `renewed` gets BADCOOKIE with `renewed`; `forged.up.test`
/// gets an answer with someone else's client cookie.
async fn start_cookie_upstream(seen: Seen) -> FakeUpstream {
    const SERVER: [u8; 16] = [0xab; 16];
    const RENEWED: [u8; 16] = [0xcd; 16];
    start_fake_upstream(LO, move |req, _| {
        let name = req.queries[0].name().to_string();
        let sent = cookie_of(req).unwrap_or_default();
        seen.lock().unwrap().push((name.clone(), sent.clone()));
        let client = sent.get(..8).unwrap_or_default().to_vec();
        let (rcode, server, client) = match name.as_str() {
            "fresh.up.test." if sent.get(8..) != Some(&RENEWED[..]) => {
                (ResponseCode::BADCOOKIE, RENEWED, client)
            }
            "fresh.up.test." => (ResponseCode::NoError, RENEWED, client),
            "forged.up.test." => (ResponseCode::NoError, SERVER, vec![0; 8]),
            _ => (ResponseCode::NoError, SERVER, client),
        };
        let mut m = reply_rcode(req, rcode);
        if rcode == ResponseCode::NoError {
            m.add_answer(rr_a(&name, 300, Ipv4Addr::new(192, 0, 2, 1)));
        }
        let mut cookie = client;
        cookie.extend_from_slice(&server);
        let mut edns = hickory_proto::op::Edns::new();
        edns.options_mut().insert(EdnsOption::Unknown(10, cookie));
        m.set_edns(edns);
        FakeAction::Reply(m)
    })
    .await
}

#[tokio::test]
async fn upstream_queries_carry_a_client_cookie_and_the_servers_cookie_once_learned() {
    let seen = Seen::default();
    let fake = start_cookie_upstream(std::sync::Arc::clone(&seen)).await;
    let d = start_dns64d(&[fake.addr()], "", "[dns64]\nprefixes = []\n").await;
    for name in ["one.up.test", "two.up.test", "fresh.up.test"] {
        let m = query_udp(d.addr, &Q::new(name, RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(answer_summary(&m), [format!("{name}. 300 A 192.0.2.1")]);
    }
    let seen = seen.lock().unwrap().clone();
    let client = seen[0].1.clone();
    assert_eq!(client.len(), 8, "first a client cookie alone: {seen:?}");
    let with = |server: u8| {
        let mut cookie = client.clone();
        cookie.extend_from_slice(&[server; 16]);
        cookie
    };
    assert_eq!(
        seen,
        [
            ("one.up.test.".to_string(), client.clone()),
            ("two.up.test.".to_string(), with(0xab)),
            // BADCOOKIE with a renewed cookie: one retry with it (RFC 7873 §5.3).
            ("fresh.up.test.".to_string(), with(0xab)),
            ("fresh.up.test.".to_string(), with(0xcd)),
        ]
    );
}

#[tokio::test]
async fn an_upstream_reply_with_another_client_cookie_is_ignored() {
    let seen = Seen::default();
    let fake = start_cookie_upstream(std::sync::Arc::clone(&seen)).await;
    let d = start_dns64d(&[fake.addr()], "", "[dns64]\nprefixes = []\n").await;
    let m = query_udp(d.addr, &Q::new("forged.up.test", RecordType::A).edns(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    assert!(
        ede(&m).iter().any(|(code, _)| *code == 22),
        "the forged replies count as no reply: {m:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "both attempts were tried");
}

#[test]
fn cookie_settings_are_checked() {
    for (toml, key) in [
        ("[cookies]\nsecret = \"e5e973\"\n", "cookies.secret"),
        (
            "[cookies]\nsecret = \"zz e973e5a6b2a43f48e7dc849e37bfcf\"\n",
            "cookies.secret",
        ),
        (
            "[cookies]\nprevious_secret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n",
            "cookies.previous_secret",
        ),
    ] {
        let error = dns64d::ops::config::from_toml_str(toml)
            .expect_err(toml)
            .to_string();
        // `KEY = VALUE: what is allowed` (the configuration error format)
        assert!(error.starts_with(&format!("{key} = \"")), "{error}");
    }
    let config = dns64d::ops::config::from_toml_str("").unwrap();
    assert!(config.cookies.enabled, "on by default");
    assert!(!config.cookies.require_for_large_udp);
    assert_eq!(config.cookies.secret, None, "random at start");
    let config = dns64d::ops::config::from_toml_str(&cookies_config("")).unwrap();
    assert_eq!(config.cookies.secret, parse_secret(SECRET));
}

#[tokio::test]
async fn a_reload_rolls_the_secret_over_and_the_previous_one_still_holds() {
    const NEW: &str = "445536bcd2513298075a5d379663c962";
    let auth = start_auth_upstream(LO).await;
    let toml = |cookies: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n[cookies]\n{cookies}",
            auth.addr()
        )
    };
    let mut d = start_dns64d_toml(&toml(&format!("secret = \"{SECRET}\"\n"))).await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    let old = assert_our_cookie(
        &exchange_udp(d.addr, &with_cookie(&q, &[6; 8])).await,
        &[6; 8],
    );

    let rolled = toml(&format!(
        "secret = \"{NEW}\"\nprevious_secret = \"{SECRET}\"\n"
    ));
    let notes = d
        .server
        .reload(dns64d::ops::config::from_toml_str(&rolled).unwrap())
        .await
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let m = exchange_udp(d.addr, &with_cookie(&q, &old)).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "the old cookie holds"
    );
    let fresh = cookie_of(&m).unwrap();
    let new_keys = CookieKeys {
        current: parse_secret(NEW).unwrap(),
        previous: None,
    };
    assert!(
        matches!(
            new_keys.check(&fresh, LO, unix_now()),
            CookieState::Valid(_)
        ),
        "new cookies are made with the new secret"
    );

    let done = toml(&format!("secret = \"{NEW}\"\n"));
    d.server
        .reload(dns64d::ops::config::from_toml_str(&done).unwrap())
        .await
        .unwrap();
    let m = exchange_udp(d.addr, &with_cookie(&q, &old)).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::BADCOOKIE,
        "the old secret is gone"
    );
    let m = exchange_udp(d.addr, &with_cookie(&q, &fresh)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn refused_clients_get_refused_whatever_their_cookie() {
    let auth = start_auth_upstream(LO).await;
    let d = start_dns64d(
        &[auth.addr()],
        "",
        &format!(
            "[access]\nclients = [\"10.0.0.0/8\"]\n{}",
            cookies_config("")
        ),
    )
    .await;
    let q = Q::new("v4only.dns64.test", RecordType::A);
    for cookie in [vec![1; 9], vec![1; 24], vec![1; 8]] {
        let m = exchange_udp(d.addr, &with_cookie(&q, &cookie)).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "{cookie:?}"
        );
    }
}
