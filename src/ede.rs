//! Extended DNS Errors (RFC 8914): the EDNS option (code 15) that tells an
//! operator why an answer looks as it does. hickory-proto 0.26 has no type
//! for it, so this module builds the option from a code and a text.

use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// The EDNS option code of Extended DNS Errors (RFC 8914 §2).
pub const EDE_OPTION_CODE: u16 = 15;

/// The INFO-CODEs dns64d sends (IANA "Extended DNS Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum InfoCode {
    /// 3: the answer is stale, served from an expired cache entry (RFC 8767).
    StaleAnswer = 3,
    /// 6: DNSSEC validation found the answer bogus.
    DnssecBogus = 6,
    /// 20: not authoritative (RD=0 and nothing cached).
    NotAuthoritative = 20,
    /// 22: no upstream server could be reached.
    NoReachableAuthority = 22,
    /// 23: a network error talking to the upstreams.
    NetworkError = 23,
    /// 29: the answer was synthesized (DNS64).
    Synthesized = 29,
}

/// One Extended DNS Error: an INFO-CODE and an EXTRA-TEXT for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedError {
    /// The INFO-CODE.
    pub code: InfoCode,
    /// UTF-8 text, without a terminating NUL (RFC 8914 §2).
    pub text: String,
}

impl ExtendedError {
    /// An error with a code and a text.
    pub fn new(code: InfoCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// The option's wire data: INFO-CODE (2 octets, network order) then EXTRA-TEXT.
    pub fn option_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(2 + self.text.len());
        data.extend_from_slice(&(self.code as u16).to_be_bytes());
        data.extend_from_slice(self.text.as_bytes());
        data
    }

    /// The option as hickory's EDNS option type.
    pub fn to_option(&self) -> EdnsOption {
        EdnsOption::Unknown(EDE_OPTION_CODE, self.option_data())
    }

    /// Reads an EDE option back (used by tests and tools).
    pub fn parse(option: &EdnsOption) -> Option<(u16, String)> {
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
pub fn ede_code() -> EdnsCode {
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
    fn empty_text_is_allowed() {
        let error = ExtendedError::new(InfoCode::NoReachableAuthority, "");
        assert_eq!(error.option_data(), vec![0, 22]);
    }
}
