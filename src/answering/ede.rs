//! Extended DNS Errors (RFC 8914): the EDNS option (code 15) that tells an
//! operator why an answer looks as it does. hickory-proto 0.26 has no type
//! for it, so this module builds the option from a code and a text.
//!
//! The EXTRA-TEXT sent is fixed per INFO-CODE: it never carries upstream
//! addresses or operating-system error strings (a client needs the code,
//! not our network). The detail given when the error was made goes to the
//! log instead. Only "Synthesized" (29) names something, the prefixes,
//! which the answer shows anyway.

use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// The EDNS option code of Extended DNS Errors (RFC 8914 §2).
pub(crate) const EDE_OPTION_CODE: u16 = 15;

/// The INFO-CODEs dns64d sends (IANA "Extended DNS Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum InfoCode {
    /// 3: the answer is stale, served from an expired cache entry (RFC 8767).
    StaleAnswer = 3,
    /// 6: DNSSEC validation found the answer bogus.
    DnssecBogus = 6,
    /// 18: the client may not query (`access.clients`).
    Prohibited = 18,
    /// 20: not authoritative (RD=0 and nothing cached).
    NotAuthoritative = 20,
    /// 22: no upstream server could be reached.
    NoReachableAuthority = 22,
    /// 23: a network error talking to the upstreams.
    NetworkError = 23,
    /// 29: the answer was synthesized (DNS64).
    Synthesized = 29,
}

impl InfoCode {
    /// The EXTRA-TEXT sent with this code (`None`: the detail is sent).
    pub(crate) fn fixed_text(self) -> Option<&'static str> {
        match self {
            Self::StaleAnswer => Some("the upstreams failed; served from expired cache data"),
            Self::DnssecBogus => Some("DNSSEC validation failed"),
            Self::Prohibited => Some("query refused by access policy"),
            Self::NotAuthoritative => Some("not cached and recursion not desired"),
            Self::NoReachableAuthority => Some("no upstream server answered"),
            Self::NetworkError => Some("upstream network error"),
            Self::Synthesized => None,
        }
    }
}

/// One Extended DNS Error: an INFO-CODE and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtendedError {
    /// The INFO-CODE.
    pub code: InfoCode,
    /// What happened, for the log (sent only for codes without a fixed text).
    pub text: String,
}

impl ExtendedError {
    /// An error with a code and a text.
    pub(crate) fn new(code: InfoCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// The EXTRA-TEXT sent: the code's fixed text, or the detail for 29.
    pub(crate) fn wire_text(&self) -> &str {
        self.code.fixed_text().unwrap_or(&self.text)
    }

    /// The option's wire data: INFO-CODE (2 octets, network order) then
    /// EXTRA-TEXT (UTF-8, no terminating NUL, RFC 8914 §2).
    pub(crate) fn option_data(&self) -> Vec<u8> {
        let text = self.wire_text();
        let mut data = Vec::with_capacity(2 + text.len());
        data.extend_from_slice(&(self.code as u16).to_be_bytes());
        data.extend_from_slice(text.as_bytes());
        data
    }

    /// The option as hickory's EDNS option type.
    pub(crate) fn to_option(&self) -> EdnsOption {
        EdnsOption::Unknown(EDE_OPTION_CODE, self.option_data())
    }

    /// Reads an EDE option back (used by tests and tools).
    pub(crate) fn parse(option: &EdnsOption) -> Option<(u16, String)> {
        let EdnsOption::Unknown(EDE_OPTION_CODE, data) = option else {
            return None;
        };
        let (code, text) = data.split_first_chunk::<2>()?;
        Some((
            u16::from_be_bytes(*code),
            String::from_utf8_lossy(text).into_owned(),
        ))
    }
}

/// The EDNS code of the option, for lookups in an OPT record.
pub(crate) fn ede_code() -> EdnsCode {
    EdnsCode::from(EDE_OPTION_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_data_is_code_then_text() {
        let error = ExtendedError::new(InfoCode::Synthesized, "64:ff9b::/96");
        let data = error.option_data();
        assert_eq!(&data[..2], &[0, 29]);
        assert_eq!(&data[2..], b"64:ff9b::/96");
        assert_eq!(
            ExtendedError::parse(&error.to_option()),
            Some((29, "64:ff9b::/96".to_string()))
        );
    }

    #[test]
    fn sent_texts_are_fixed_and_never_carry_the_detail() {
        let cases = [
            (InfoCode::DnssecBogus, "DNSSEC validation failed"),
            (InfoCode::Prohibited, "query refused by access policy"),
            (
                InfoCode::NotAuthoritative,
                "not cached and recursion not desired",
            ),
            (
                InfoCode::NoReachableAuthority,
                "no upstream server answered",
            ),
            (InfoCode::NetworkError, "upstream network error"),
        ];
        for (code, sent) in cases {
            let error =
                ExtendedError::new(code, "192.0.2.53:53: Connection refused (os error 111)");
            assert_eq!(
                ExtendedError::parse(&error.to_option()),
                Some((code as u16, sent.to_string())),
                "{code:?}"
            );
        }
    }
}
