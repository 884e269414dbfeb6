//! Which instance answered: CHAOS TXT `version.bind` / `version.server`,
//! `id.server` / `hostname.bind`, and NSID (RFC 5001), from `[server]
//! identity`, `version` and `nsid`. Hidden by default (like Unbound's
//! `hide-identity` and `hide-version`): a CHAOS question then gets REFUSED,
//! as every other non-IN question does, and NSID requests get no NSID.

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Longest identity or version: one TXT character-string (RFC 1035 §3.3).
const MAX_TEXT: usize = 255;

/// Why an identity setting is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IdentityError {
    /// Empty: unset the key to hide it instead.
    #[error("is empty; leave the key out to hide it")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// Longer than a TXT string or NSID holds.
    #[error("is {length} bytes long; at most {MAX_TEXT} are allowed")]
    TooLong {
        /// The key.
        key: &'static str,
        /// Its length in bytes.
        length: usize,
    },
}

impl IdentityError {
    /// The key the error is about.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Self::Empty { key } | Self::TooLong { key, .. } => key,
        }
    }
}

/// What this server tells about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    identity: Option<String>,
    version: Option<String>,
    nsid: Option<Vec<u8>>,
}

fn checked(key: &'static str, text: Option<&str>) -> Result<Option<String>, IdentityError> {
    match text {
        None => Ok(None),
        Some("") => Err(IdentityError::Empty { key }),
        Some(text) if text.len() > MAX_TEXT => Err(IdentityError::TooLong {
            key,
            length: text.len(),
        }),
        Some(text) => Ok(Some(text.to_string())),
    }
}

impl Identity {
    /// From `server.identity`, `server.version` and `server.nsid` (each hidden when `None`).
    pub(crate) fn new(
        identity: Option<&str>,
        version: Option<&str>,
        nsid: Option<&str>,
    ) -> Result<Self, IdentityError> {
        Ok(Self {
            identity: checked("server.identity", identity)?,
            version: checked("server.version", version)?,
            nsid: checked("server.nsid", nsid)?.map(String::into_bytes),
        })
    }

    /// The text for a CHAOS TXT question, if that name is answered.
    fn chaos_text(&self, name: &Name) -> Option<&str> {
        let name = name.to_lowercase().to_ascii();
        match name.trim_end_matches('.') {
            "version.bind" | "version.server" => self.version.as_deref(),
            "id.server" | "hostname.bind" => self.identity.as_deref(),
            _ => None,
        }
    }

    /// Answers a CHAOS-class question in `response`: the TXT record when
    /// configured (authoritative, TTL 0, as BIND and Unbound send it);
    /// REFUSED otherwise, and NOTIMP-free NODATA for other types of a
    /// configured name.
    pub(crate) fn answer_chaos(&self, query: &Query, response: &mut Message) {
        let Some(text) = self.chaos_text(query.name()) else {
            response.metadata.response_code = ResponseCode::Refused;
            return;
        };
        response.metadata.authoritative = true;
        response.metadata.response_code = ResponseCode::NoError;
        if matches!(query.query_type(), RecordType::TXT | RecordType::ANY) {
            let mut record = Record::from_rdata(
                query.name().clone(),
                0,
                RData::TXT(TXT::new(vec![text.to_string()])),
            );
            record.dns_class = DNSClass::CH;
            response.answers.push(record);
        }
    }

    /// Adds NSID to the response's EDNS when the client asked (an empty
    /// NSID option, RFC 5001 §2.1) and one is configured.
    pub(crate) fn add_nsid(&self, request: &Edns, response: &mut Edns) {
        let Some(nsid) = &self.nsid else {
            return;
        };
        if request.option(EdnsCode::NSID).is_none() {
            return;
        }
        match NSIDPayload::new(nsid.clone()) {
            Ok(payload) => response.options_mut().insert(EdnsOption::NSID(payload)),
            Err(error) => tracing::debug!(%error, "cannot send NSID"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            Identity::new(Some(""), None, None),
            Err(IdentityError::Empty {
                key: "server.identity"
            })
        );
        let long = "x".repeat(256);
        assert_eq!(
            Identity::new(None, None, Some(&long)).map_err(|error| error.key()),
            Err("server.nsid")
        );
        assert!(Identity::new(Some("a"), Some("b"), Some("c")).is_ok());
    }

    #[test]
    fn names_map_to_settings() {
        let identity = Identity::new(Some("fra-1"), Some("dns64d 1"), None).unwrap();
        let cases = [
            ("version.bind.", Some("dns64d 1")),
            ("VERSION.server", Some("dns64d 1")),
            ("id.server.", Some("fra-1")),
            ("hostname.bind.", Some("fra-1")),
            ("authors.bind.", None),
        ];
        for (name, expected) in cases {
            assert_eq!(
                identity.chaos_text(&Name::from_ascii(name).unwrap()),
                expected,
                "{name}"
            );
        }
        assert_eq!(
            Identity::default().chaos_text(&Name::from_ascii("version.bind.").unwrap()),
            None
        );
    }
}
