//! DNS Cookies (RFC 7873) with the interoperable server cookies of RFC 9018:
//! parsing the COOKIE option of a query, checking its server cookie, and
//! making a fresh one. Plain functions over bytes, no I/O; the handler and
//! the UDP fast path decide what to answer from the [`CookieState`].
//!
//! A server cookie (RFC 9018 §4) is Version (1), Reserved (3 octets, zero
//! when we make it), Timestamp (4, seconds since the epoch modulo 2³²) and
//! Hash (8): SipHash-2-4 over Client Cookie | Version | Reserved | Timestamp
//! | Client IP (4 or 16 octets) keyed with the 16-octet secret. Every server
//! of an anycast group configured with the same `cookies.secret` accepts the
//! others' cookies. A cookie is accepted for an hour after its timestamp and
//! five minutes before it (clock skew, RFC 9018 §4.3), and under the current
//! secret or the previous one (`cookies.previous_secret`, for a rollover).
//! Each response carries a cookie made now.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// The EDNS option code of COOKIE (RFC 7873 §4).
pub(crate) const COOKIE_OPTION_CODE: u16 = 10;
/// Length of a client cookie (RFC 7873 §4).
pub(crate) const CLIENT_COOKIE_LEN: usize = 8;
/// Length of the server cookies we make (RFC 9018 §4).
pub(crate) const SERVER_COOKIE_LEN: usize = 16;
/// Length of the COOKIE option data we send: client cookie and server cookie.
pub(crate) const COOKIE_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
/// A server cookie is accepted this long after its timestamp (RFC 9018 §4.3).
const MAX_AGE_SECONDS: u32 = 3600;
/// ... and this long before it (clock skew between anycast servers).
const MAX_SKEW_SECONDS: u32 = 300;
/// The server cookie version RFC 9018 defines.
const VERSION: u8 = 1;

/// A 16-octet SipHash key.
pub(crate) type CookieSecret = [u8; 16];

/// What the COOKIE option of a query says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieState {
    /// No COOKIE option (or no EDNS).
    Absent,
    /// A COOKIE option of a length RFC 7873 §5.2.2 forbids: FORMERR.
    Malformed,
    /// Only a client cookie (RFC 7873 §5.2.3).
    ClientOnly([u8; CLIENT_COOKIE_LEN]),
    /// A client cookie and a server cookie that is not one of ours, or too
    /// old (RFC 7873 §5.2.4).
    Invalid([u8; CLIENT_COOKIE_LEN]),
    /// A client cookie and a server cookie we made for this client, still
    /// within its lifetime (RFC 7873 §5.2.5).
    Valid([u8; CLIENT_COOKIE_LEN]),
}

impl CookieState {
    /// The client cookie, if the query had a well-formed COOKIE option.
    pub(crate) fn client_cookie(&self) -> Option<[u8; CLIENT_COOKIE_LEN]> {
        match *self {
            Self::ClientOnly(client) | Self::Invalid(client) | Self::Valid(client) => Some(client),
            Self::Absent | Self::Malformed => None,
        }
    }

    /// The label of `dns64d_cookies_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Malformed => "malformed",
            Self::ClientOnly(_) => "client_only",
            Self::Invalid(_) => "invalid",
            Self::Valid(_) => "valid",
        }
    }
}

/// What one listener does with cookies (`[cookies]` with the secret in force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// The secrets.
    pub keys: CookieKeys,
    /// UDP responses larger than [`LARGE_UDP_RESPONSE`] only to clients with
    /// a valid server cookie; the others get them truncated (TC=1), so they
    /// come back over TCP or with the cookie they were just given.
    pub require_for_large_udp: bool,
}

/// A UDP response larger than this is "large" for `cookies.require_for_large_udp`:
/// the classic DNS UDP limit (RFC 1035 §4.2.1), beyond which a forged-source
/// query is worth amplifying.
pub(crate) const LARGE_UDP_RESPONSE: u16 = 512;

/// The secrets server cookies are made and checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKeys {
    /// Makes new cookies and verifies them.
    pub current: CookieSecret,
    /// Still verifies cookies (a rollover in progress).
    pub previous: Option<CookieSecret>,
}

impl CookieKeys {
    /// Reads the COOKIE option data of a query from `client` at `now`
    /// (seconds since the epoch, modulo 2³²).
    pub fn check(&self, option: &[u8], client: IpAddr, now: u32) -> CookieState {
        let Some((client_cookie, server_cookie)) = split(option) else {
            return CookieState::Malformed;
        };
        if server_cookie.is_empty() {
            return CookieState::ClientOnly(client_cookie);
        }
        let valid = server_cookie.len() == SERVER_COOKIE_LEN
            && [Some(&self.current), self.previous.as_ref()]
                .into_iter()
                .flatten()
                .any(|secret| verify(secret, &client_cookie, server_cookie, client, now));
        if valid {
            CookieState::Valid(client_cookie)
        } else {
            CookieState::Invalid(client_cookie)
        }
    }

    /// The COOKIE option data for a response: the client cookie and a
    /// server cookie made now with the current secret.
    pub(crate) fn response_cookie(
        &self,
        client_cookie: &[u8; CLIENT_COOKIE_LEN],
        client: IpAddr,
        now: u32,
    ) -> [u8; COOKIE_LEN] {
        let mut cookie = [0u8; COOKIE_LEN];
        cookie[..CLIENT_COOKIE_LEN].copy_from_slice(client_cookie);
        cookie[CLIENT_COOKIE_LEN..].copy_from_slice(&server_cookie(
            &self.current,
            client_cookie,
            client,
            now,
        ));
        cookie
    }
}

/// The cookies toward one upstream server (RFC 7873 §5.1, §5.3): a random
/// client cookie of our own for that server, and the server cookie it last
/// sent us, sent back with every query.
#[derive(Debug)]
pub(crate) struct UpstreamCookie {
    client: [u8; CLIENT_COOKIE_LEN],
    server: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Default for UpstreamCookie {
    fn default() -> Self {
        Self {
            client: rand::random(),
            server: std::sync::Mutex::new(None),
        }
    }
}

impl UpstreamCookie {
    /// The COOKIE option data for the next query to this server.
    pub(crate) fn option_data(&self) -> Vec<u8> {
        let mut data = self.client.to_vec();
        if let Some(server) = &*self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            data.extend_from_slice(server);
        }
        data
    }

    /// Reads the COOKIE option data of a reply (`None`: the reply has none,
    /// as from a server without cookies). False if the reply must be
    /// ignored: its client cookie is not ours (a forged reply, RFC 7873
    /// §5.3) or the option is malformed. A server cookie is remembered.
    pub(crate) fn accept_reply(&self, option: Option<&[u8]>) -> bool {
        let Some(option) = option else {
            return true;
        };
        let Some((client, server)) = split(option) else {
            return false;
        };
        if client != self.client {
            return false;
        }
        if !server.is_empty() {
            *self
                .server
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server.to_vec());
        }
        true
    }
}

/// Splits COOKIE option data into the client cookie and the server cookie
/// (empty when absent); `None` for the lengths RFC 7873 §5.2.2 calls
/// malformed: anything but 8, or 16 to 40 octets.
pub(crate) fn split(option: &[u8]) -> Option<([u8; CLIENT_COOKIE_LEN], &[u8])> {
    let valid_length = option.len() == CLIENT_COOKIE_LEN || (16..=40).contains(&option.len());
    if !valid_length {
        return None;
    }
    let (client, server) = option.split_first_chunk::<CLIENT_COOKIE_LEN>()?;
    Some((*client, server))
}

/// The seconds since the epoch modulo 2³² (RFC 9018 §4.3 serial arithmetic).
///
/// On Linux from the coarse realtime clock: cookies need seconds, and the
/// UDP fast path calls this for every query with a cookie (measured: about
/// 75 ns for `SystemTime::now` on the test VM, a third of the cookie's cost).
pub fn unix_now() -> u32 {
    #[cfg(target_os = "linux")]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec for the duration of the
        // call, and CLOCK_REALTIME_COARSE is a clock every Linux since 2.6.32 has.
        let result = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
        if result == 0 {
            // Truncation is the point: the timestamp is modulo 2³².
            return now.tv_sec as u32;
        }
    }
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    // Truncation is the point: the timestamp is modulo 2³².
    seconds as u32
}

/// The RFC 9018 hash over the cookie's fields and the client address.
fn hash(
    secret: &CookieSecret,
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    header: &[u8; 8],
    client: IpAddr,
) -> [u8; 8] {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(client_cookie);
    hasher.write(header);
    match client.to_canonical() {
        IpAddr::V4(address) => hasher.write(&address.octets()),
        IpAddr::V6(address) => hasher.write(&address.octets()),
    }
    // SipHash's 64-bit result, in the byte order of the reference code.
    hasher.finish().to_le_bytes()
}

/// A server cookie made at `now` (RFC 9018 §4.2, Reserved zero).
fn server_cookie(
    secret: &CookieSecret,
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    client: IpAddr,
    now: u32,
) -> [u8; SERVER_COOKIE_LEN] {
    let mut cookie = [0u8; SERVER_COOKIE_LEN];
    cookie[0] = VERSION;
    cookie[4..8].copy_from_slice(&now.to_be_bytes());
    let mut header = [0u8; 8];
    header.copy_from_slice(&cookie[..8]);
    cookie[8..].copy_from_slice(&hash(secret, client_cookie, &header, client));
    cookie
}

/// True if `server_cookie` is ours for this client and within its lifetime.
fn verify(
    secret: &CookieSecret,
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    server_cookie: &[u8],
    client: IpAddr,
    now: u32,
) -> bool {
    let Some((header, sent_hash)) = server_cookie.split_first_chunk::<8>() else {
        return false;
    };
    if header[0] != VERSION {
        return false;
    }
    let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    // Serial number arithmetic (RFC 1982): the age may wrap.
    let age = now.wrapping_sub(timestamp);
    let ahead = timestamp.wrapping_sub(now);
    if age > MAX_AGE_SECONDS && ahead > MAX_SKEW_SECONDS {
        return false;
    }
    let expected = hash(secret, client_cookie, header, client);
    // Not secret-dependent timing worth hiding: the hash is over public data.
    expected[..] == sent_hash[..]
}

/// Parses a secret written as 32 hexadecimal digits.
pub fn parse_secret(text: &str) -> Option<CookieSecret> {
    let text = text.trim();
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut secret = [0u8; 16];
    for (index, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(secret)
}

/// A random secret, for a server that was not given one.
pub(crate) fn random_secret() -> CookieSecret {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
            .collect()
    }

    fn keys(secret: &str, previous: Option<&str>) -> CookieKeys {
        CookieKeys {
            current: parse_secret(secret).unwrap(),
            previous: previous.map(|text| parse_secret(text).unwrap()),
        }
    }

    /// RFC 9018 Appendix A: the cookie each example's server sends back.
    #[test]
    fn rfc9018_appendix_a_responses() {
        let cases = [
            (
                "A.1 learning a new server cookie",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1_559_731_985,
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
            ),
            (
                "A.2 the same client learning a renewed cookie",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1_559_734_385,
                "2464c4abcf10c957010000005cf7a871d4a564a1442aca77",
            ),
            (
                "A.3 another client learning a renewed cookie",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "fc93fc62807ddb86",
                "203.0.113.203",
                1_559_734_700,
                "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e",
            ),
            (
                "A.4 an IPv6 client after a secret rollover",
                "445536bcd2513298075a5d379663c962",
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1_559_741_961,
                "22681ab97d52c298010000005cf7c609a6bb79d16625507a",
            ),
        ];
        for (name, secret, client_cookie, client, now, expected) in cases {
            let client_cookie: [u8; 8] = hex(client_cookie).try_into().unwrap();
            let cookie =
                keys(secret, None).response_cookie(&client_cookie, client.parse().unwrap(), now);
            assert_eq!(cookie.to_vec(), hex(expected), "{name}");
        }
    }

    /// RFC 9018 Appendix A: the cookies the example clients send are checked.
    #[test]
    fn rfc9018_appendix_a_queries() {
        let a1 = "e5e973e5a6b2a43f48e7dc849e37bfcf";
        let cases = [
            (
                "A.2: the cookie of A.1, 40 minutes later",
                keys(a1, None),
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                "198.51.100.100",
                1_559_734_385,
                "valid",
            ),
            (
                "A.3: reserved octets set by another server are hashed as sent",
                keys(a1, None),
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                "203.0.113.203",
                1_559_727_985 + 60,
                "valid",
            ),
            (
                "A.3 as in the example: 1 h 52 min old, so a fresh one is sent",
                keys(a1, None),
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                "203.0.113.203",
                1_559_734_700,
                "invalid",
            ),
            (
                "A.3 from another address",
                keys(a1, None),
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                "203.0.113.204",
                1_559_727_985 + 60,
                "invalid",
            ),
            (
                "A.4: made with the old secret, checked after the rollover",
                keys(
                    "445536bcd2513298075a5d379663c962",
                    Some("dd3bdf9344b678b185a6f5cb60fca715"),
                ),
                "22681ab97d52c298010000005cf7c57926556bd0934c72f8",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1_559_741_961,
                "valid",
            ),
            (
                "A.4 without the old secret",
                keys("445536bcd2513298075a5d379663c962", None),
                "22681ab97d52c298010000005cf7c57926556bd0934c72f8",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1_559_741_961,
                "invalid",
            ),
            (
                "A.1's cookie an hour and a second later",
                keys(a1, None),
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                "198.51.100.100",
                1_559_731_985 + 3601,
                "invalid",
            ),
            (
                "A.1's cookie five minutes before it was made (skew)",
                keys(a1, None),
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                "198.51.100.100",
                1_559_731_985 - 300,
                "valid",
            ),
            (
                "only a client cookie",
                keys(a1, None),
                "2464c4abcf10c957",
                "198.51.100.100",
                1_559_731_985,
                "client_only",
            ),
        ];
        for (name, keys, option, client, now, expected) in cases {
            let state = keys.check(&hex(option), client.parse().unwrap(), now);
            assert_eq!(state.label(), expected, "{name}");
        }
    }

    #[test]
    fn lengths_outside_rfc7873_are_malformed() {
        let keys = keys("e5e973e5a6b2a43f48e7dc849e37bfcf", None);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for length in [0, 1, 7, 9, 15, 41, 64] {
            assert_eq!(
                keys.check(&vec![0; length], client, 0),
                CookieState::Malformed,
                "{length} octets"
            );
        }
        for length in [16, 24, 40] {
            assert_eq!(
                keys.check(&vec![0; length], client, 0).label(),
                "invalid",
                "{length} octets"
            );
        }
    }

    #[test]
    fn an_ipv4_mapped_client_is_hashed_as_ipv4() {
        let keys = keys("e5e973e5a6b2a43f48e7dc849e37bfcf", None);
        let client_cookie = hex("2464c4abcf10c957").try_into().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.100".parse().unwrap();
        assert_eq!(
            keys.response_cookie(&client_cookie, mapped, 1_559_731_985)
                .to_vec(),
            hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
        );
    }

    #[test]
    fn an_upstream_cookie_learns_the_server_cookie_and_rejects_foreign_replies() {
        let jar = UpstreamCookie::default();
        let client = jar.option_data();
        assert_eq!(client.len(), 8, "only a client cookie at first");
        assert!(jar.accept_reply(None), "a server without cookies");
        let mut reply = client.clone();
        reply.extend_from_slice(&[0xab; 16]);
        assert!(jar.accept_reply(Some(&reply)));
        assert_eq!(jar.option_data(), reply, "the server cookie is sent back");
        let mut foreign = vec![0; 8];
        foreign.extend_from_slice(&[0xcd; 16]);
        assert!(!jar.accept_reply(Some(&foreign)), "another client cookie");
        assert!(!jar.accept_reply(Some(&client[..5])), "malformed");
        assert_eq!(jar.option_data(), reply, "nothing learned from them");
    }

    #[test]
    fn the_clock_is_the_system_clock_in_seconds() {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        assert!(unix_now().wrapping_sub(system).wrapping_add(1) <= 2);
    }

    #[test]
    fn secrets_are_32_hex_digits() {
        assert!(parse_secret("e5e973e5a6b2a43f48e7dc849e37bfcf").is_some());
        assert!(parse_secret("e5e973e5a6b2a43f48e7dc849e37bfc").is_none());
        assert!(parse_secret("x5e973e5a6b2a43f48e7dc849e37bfcf").is_none());
        assert!(parse_secret("é5e973e5a6b2a43f48e7dc849e37bfc").is_none());
    }
}
