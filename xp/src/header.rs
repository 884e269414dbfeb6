//! The DNS message header (RFC 1035 §4.1.1) as far as a relay needs it: the
//! ID to remap, QR/opcode/TC/RCODE to judge, the counts to check a query's
//! shape, and the one question's length so a SERVFAIL can echo it. Nothing
//! else of a message is read.

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

/// The largest query accepted over UDP or TCP. Queries are a header, one
/// question (at most 255 + 4 bytes) and perhaps an OPT record; anything
/// larger is not from a stub resolver and is dropped.
pub const MAX_QUERY_LEN: usize = 512;

/// The smallest query: a header and a question for the root (1 + 4 bytes).
pub const MIN_QUERY_LEN: usize = HEADER_LEN + 5;

/// RCODE 2, the server failed (RFC 1035 §4.1.1).
pub const RCODE_SERVFAIL: u8 = 2;
/// RCODE 5, the server refused (RFC 1035 §4.1.1).
pub const RCODE_REFUSED: u8 = 5;

/// Why a datagram or TCP message is not relayed as a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a header and a root question.
    TooShort,
    /// Longer than [`MAX_QUERY_LEN`].
    TooLong,
    /// The QR bit is set: a response sent to the relay.
    IsResponse,
    /// QDCOUNT is not 1 (RFC 9619: a query has exactly one question).
    QuestionCount,
    /// The question's name runs past the end, uses compression or a
    /// reserved label type.
    BadQuestion,
}

/// The message ID.
pub fn id(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
}

/// Replaces the message ID; a message shorter than two bytes is unchanged.
pub fn set_id(message: &mut [u8], id: u16) {
    if let Some(bytes) = message.get_mut(0..2) {
        bytes.copy_from_slice(&id.to_be_bytes());
    }
}

/// Whether the QR bit says this is a response.
pub fn is_response(message: &[u8]) -> bool {
    message.get(2).is_some_and(|flags| flags & 0x80 != 0)
}

/// Whether the TC bit is set (the client is to retry over TCP).
pub fn is_truncated(message: &[u8]) -> bool {
    message.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// The 4-bit RCODE of the header.
pub fn rcode(message: &[u8]) -> Option<u8> {
    message.get(3).map(|flags| flags & 0x0f)
}

/// QDCOUNT.
fn question_count(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.get(4)?, *message.get(5)?]))
}

/// The length of the question section of a one-question message: the name
/// (uncompressed labels, as in every query) plus type and class.
pub fn question_len(message: &[u8]) -> Option<usize> {
    let mut position = HEADER_LEN;
    loop {
        let length = usize::from(*message.get(position)?);
        if length == 0 {
            position += 1;
            break;
        }
        // 0xC0 is a compression pointer, 0x40/0x80 reserved label types:
        // none belongs in a query's question.
        if length & 0xc0 != 0 {
            return None;
        }
        position += 1 + length;
        if position - HEADER_LEN > 255 {
            return None;
        }
    }
    let end = position + 4;
    (end <= message.len()).then_some(end - HEADER_LEN)
}

/// Checks that `message` is a query the relay forwards.
pub fn check_query(message: &[u8]) -> Result<(), Malformed> {
    if message.len() < MIN_QUERY_LEN {
        return Err(Malformed::TooShort);
    }
    if message.len() > MAX_QUERY_LEN {
        return Err(Malformed::TooLong);
    }
    if is_response(message) {
        return Err(Malformed::IsResponse);
    }
    if question_count(message) != Some(1) {
        return Err(Malformed::QuestionCount);
    }
    question_len(message).ok_or(Malformed::BadQuestion)?;
    Ok(())
}

/// Whether a reply from an upstream answers the query sent with `id`: long
/// enough, a response, the same ID.
pub fn is_reply_to(reply: &[u8], query_id: u16) -> bool {
    reply.len() >= HEADER_LEN && is_response(reply) && id(reply) == Some(query_id)
}

/// Whether the reply tells the relay to ask the next upstream
/// (SERVFAIL or REFUSED).
pub fn is_failure(reply: &[u8]) -> bool {
    matches!(rcode(reply), Some(RCODE_SERVFAIL) | Some(RCODE_REFUSED))
}

/// Writes a SERVFAIL reply to `query` (already checked by [`check_query`])
/// into `out`: the query's header and question with QR, RA and RCODE set,
/// no other records. Returns its length, or `None` if `out` is too small or
/// the query has no well-formed question.
pub fn write_servfail(query: &[u8], out: &mut [u8]) -> Option<usize> {
    let length = HEADER_LEN + question_len(query)?;
    let source = query.get(..length)?;
    let reply = out.get_mut(..length)?;
    reply.copy_from_slice(source);
    // QR = 1, keep opcode and RD, clear AA and TC.
    reply[2] = (reply[2] & 0x79) | 0x80;
    // RA = 1, Z/AD/CD as asked for CD only, RCODE = SERVFAIL.
    reply[3] = 0x80 | (reply[3] & 0x10) | RCODE_SERVFAIL;
    // QDCOUNT stays 1; ANCOUNT, NSCOUNT, ARCOUNT = 0.
    reply[6..12].fill(0);
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `example.com. A` with ID 0x1234 and RD set.
    fn query() -> [u8; 29] {
        [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, //
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, //
            0, 1, 0, 1,
        ]
    }

    #[test]
    fn query_shapes() {
        let good = query();
        let mut response = good;
        response[2] |= 0x80;
        let mut two_questions = good;
        two_questions[5] = 2;
        let mut compressed = good;
        compressed[12] = 0xc0;
        let mut reserved_label = good;
        reserved_label[12] = 0x47;
        let long = [0u8; MAX_QUERY_LEN + 1];
        let cases: &[(&str, &[u8], Result<(), Malformed>)] = &[
            ("well formed", &good, Ok(())),
            ("empty", &[], Err(Malformed::TooShort)),
            ("header only", &good[..12], Err(Malformed::TooShort)),
            ("name cut short", &good[..20], Err(Malformed::BadQuestion)),
            (
                "type and class cut",
                &good[..27],
                Err(Malformed::BadQuestion),
            ),
            ("response", &response, Err(Malformed::IsResponse)),
            (
                "two questions",
                &two_questions,
                Err(Malformed::QuestionCount),
            ),
            (
                "compression pointer",
                &compressed,
                Err(Malformed::BadQuestion),
            ),
            (
                "reserved label type",
                &reserved_label,
                Err(Malformed::BadQuestion),
            ),
            ("oversized", &long, Err(Malformed::TooLong)),
        ];
        for &(name, message, expected) in cases {
            assert_eq!(check_query(message), expected, "{name}");
        }
    }

    #[test]
    fn a_name_longer_than_255_bytes_is_refused() {
        let mut message = [0u8; 300];
        message[..12].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        // Four labels of 63 bytes and their length bytes: 256 bytes of name.
        for label in 0..4 {
            message[12 + label * 64] = 63;
        }
        assert_eq!(question_len(&message), None);
        assert_eq!(check_query(&message), Err(Malformed::BadQuestion));
    }

    #[test]
    fn ids_are_read_and_replaced() {
        let mut message = query();
        assert_eq!(id(&message), Some(0x1234));
        set_id(&mut message, 0xbeef);
        assert_eq!(&message[..2], &[0xbe, 0xef]);
        let mut short = [7u8];
        set_id(&mut short, 1);
        assert_eq!(short, [7]);
        assert_eq!(id(&short), None);
    }

    #[test]
    fn replies_are_matched_and_judged() {
        let mut reply = query();
        reply[2] |= 0x80;
        assert!(is_reply_to(&reply, 0x1234));
        assert!(!is_reply_to(&reply, 0x1235), "another ID");
        assert!(!is_reply_to(&query(), 0x1234), "not a response");
        assert!(!is_reply_to(&reply[..11], 0x1234), "shorter than a header");
        let cases: &[(&str, u8, bool)] = &[
            ("NOERROR", 0, false),
            ("FORMERR", 1, false),
            ("SERVFAIL", 2, true),
            ("NXDOMAIN", 3, false),
            ("NOTIMP", 4, false),
            ("REFUSED", 5, true),
        ];
        for &(name, code, fails) in cases {
            reply[3] = 0x80 | code;
            assert_eq!(rcode(&reply), Some(code), "{name}");
            assert_eq!(is_failure(&reply), fails, "{name}");
        }
        reply[2] |= 0x02;
        assert!(is_truncated(&reply));
    }

    #[test]
    fn servfail_echoes_header_and_question() {
        let mut with_opt = [0u8; 40];
        with_opt[..29].copy_from_slice(&query());
        with_opt[11] = 1; // ARCOUNT 1: the OPT record is not echoed
        with_opt[3] = 0x10; // CD
        let mut out = [0u8; 64];
        let length = write_servfail(&with_opt, &mut out).expect("room");
        assert_eq!(length, 29);
        assert_eq!(&out[..2], &[0x12, 0x34]);
        assert_eq!(out[2], 0x81, "QR and RD");
        assert_eq!(out[3], 0x92, "RA, CD, SERVFAIL");
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..29], &query()[12..]);
        assert_eq!(write_servfail(&with_opt, &mut out[..20]), None, "too small");
    }
}
