//! The DNSSEC bits of DNS64 answers (RFC 6147 §5.5): when a response may
//! carry the AD bit, and which upstream failures are DNSSEC verdicts that
//! synthesis must never paper over.
//!
//! Pure decisions over flags; the handler sets the header, the resolver and
//! the upstream layer report what was validated.

/// The client's DNSSEC-related request bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClientDnssec {
    /// EDNS DO: the client wants DNSSEC records.
    pub dnssec_ok: bool,
    /// CD: the client validates itself.
    pub checking_disabled: bool,
    /// AD in the query: the client understands AD (RFC 6840 §5.7).
    pub authentic_data: bool,
}

/// How the answer of a response came about, for the AD rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerOrigin {
    /// The data as the upstream or a local zone gave it (native AAAA, other
    /// types, NXDOMAIN passed through).
    Unmodified,
    /// Composed by DNS64 from the AAAA and A answers: a synthesized AAAA
    /// set, or the NODATA answer returned when nothing could be synthesized.
    Dns64,
}

/// The AD bit of a response.
///
/// `validated` says that every RRset in the answer and the relevant negative
/// records were validated: by dns64d itself in recursive mode, or carried
/// with AD=1 by the upstream in forwarding mode. For a DNS64 answer it must
/// cover the AAAA negative answer, the A answer and every CNAME of the chain.
///
/// Unmodified data (RFC 6840 §5.7, §5.8): AD to a client that set DO or AD.
///
/// DNS64 answers, RFC 6147 §5.5:
///
/// > 1. If CD is not set and DO is not set, vDNS64 SHOULD perform validation
/// > and do synthesis as needed. [...] In this case, however, vDNS64 MUST
/// > NOT set the AD bit in any response.
/// >
/// > 2. If CD is not set and DO is set, then vDNS64 SHOULD perform
/// > validation. [...] If the negative response validates, and the response
/// > to the A query validates, then the vDNS64 MAY perform synthesis and
/// > SHOULD set the AD bit in the answer to the client.
///
/// With CD set, synthesis happens only when the client did not set DO (or
/// under `dns64.break_dnssec`): the client validates, and a synthesized
/// answer never validates for it, so it gets no AD either.
pub(crate) fn response_authentic_data(
    validated: bool,
    origin: AnswerOrigin,
    client: ClientDnssec,
) -> bool {
    if !validated {
        return false;
    }
    match origin {
        AnswerOrigin::Unmodified => client.dnssec_ok || client.authentic_data,
        AnswerOrigin::Dns64 => client.dnssec_ok && !client.checking_disabled,
    }
}

/// True if an Extended DNS Error INFO-CODE (RFC 8914 §4) reports a DNSSEC
/// validation failure: 5 (Indeterminate), 6 (Bogus), 7 (Signature Expired),
/// 8 (Signature Not Yet Valid), 9 (DNSKEY Missing), 10 (RRSIGs Missing),
/// 11 (No Zone Key Bit Set) or 12 (NSEC Missing).
///
/// An upstream SERVFAIL that carries one is a validation verdict: RFC 6147
/// §5.5 forbids replacing a bogus answer with synthesis, so it is not the
/// "failure" that §5.1.2 lets DNS64 treat as NODATA.
pub(crate) fn is_validation_failure_code(info_code: u16) -> bool {
    (5..=12).contains(&info_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentic_data_by_origin_and_client_bits() {
        let client = |dnssec_ok, checking_disabled, authentic_data| ClientDnssec {
            dnssec_ok,
            checking_disabled,
            authentic_data,
        };
        // (case, validated, origin, DO, CD, AD, expected)
        let cases = [
            (
                "unvalidated never",
                false,
                AnswerOrigin::Unmodified,
                true,
                false,
                true,
                false,
            ),
            (
                "unvalidated dns64 never",
                false,
                AnswerOrigin::Dns64,
                true,
                false,
                false,
                false,
            ),
            (
                "native DO",
                true,
                AnswerOrigin::Unmodified,
                true,
                false,
                false,
                true,
            ),
            (
                "native AD",
                true,
                AnswerOrigin::Unmodified,
                false,
                false,
                true,
                true,
            ),
            (
                "native neither",
                true,
                AnswerOrigin::Unmodified,
                false,
                false,
                false,
                false,
            ),
            (
                "native CD+AD",
                true,
                AnswerOrigin::Unmodified,
                false,
                true,
                true,
                true,
            ),
            (
                "dns64 DO=1 CD=0: item 2",
                true,
                AnswerOrigin::Dns64,
                true,
                false,
                false,
                true,
            ),
            (
                "dns64 DO=0 AD=1: item 1",
                true,
                AnswerOrigin::Dns64,
                false,
                false,
                true,
                false,
            ),
            (
                "dns64 DO=0: item 1",
                true,
                AnswerOrigin::Dns64,
                false,
                false,
                false,
                false,
            ),
            (
                "dns64 CD=1 DO=0",
                true,
                AnswerOrigin::Dns64,
                false,
                true,
                true,
                false,
            ),
            (
                "dns64 CD=1 DO=1 (break_dnssec)",
                true,
                AnswerOrigin::Dns64,
                true,
                true,
                false,
                false,
            ),
        ];
        for (case, validated, origin, dnssec_ok, checking_disabled, authentic_data, expected) in
            cases
        {
            assert_eq!(
                response_authentic_data(
                    validated,
                    origin,
                    client(dnssec_ok, checking_disabled, authentic_data)
                ),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn validation_failure_codes_are_five_to_twelve() {
        let failures: Vec<u16> = (0..=30)
            .filter(|code| is_validation_failure_code(*code))
            .collect();
        assert_eq!(failures, [5, 6, 7, 8, 9, 10, 11, 12]);
    }
}
