//! DNSSEC-signed zone files made in the test: a zone file is loaded, signed
//! by hickory with a fresh ECDSA P-256 key (with an NSEC or NSEC3 chain), and
//! written out in presentation format, as `dnssec-signzone` would.

use std::path::Path;

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::{Algorithm, DnssecSigner, SigningKey};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::dnssec::NxProofKind;

use super::auth::load_zone;

/// A signed zone: its text, and every record in it (RRSIGs included).
pub struct SignedZoneFile {
    pub text: String,
    pub records: Vec<Record>,
}

/// Signs the zone in `path` for `origin` with a fresh key, with `proofs` (NSEC or NSEC3).
pub fn sign_zone_file(origin: &str, path: &Path, proofs: NxProofKind) -> SignedZoneFile {
    let origin = Name::from_ascii(origin).unwrap();
    let mut zone = load_zone(&origin, path, Some(proofs));
    let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
    let key = EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).unwrap();
    let public_key = key.to_public_key().unwrap();
    let signer = DnssecSigner::new(
        DNSKEY::from_key(&public_key),
        Box::new(key),
        origin,
        std::time::Duration::from_secs(86400),
    );
    zone.add_zone_signing_key_mut(signer).unwrap();
    zone.secure_zone_mut().unwrap();
    let mut text = String::new();
    let mut records = Vec::new();
    for set in zone.records_get_mut().values() {
        for record in set.records_without_rrsigs().chain(set.rrsigs()) {
            text.push_str(&format!(
                "{} {} IN {} {}\n",
                record.name,
                record.ttl,
                record.record_type(),
                presentation(&record.data)
            ));
            records.push(record.clone());
        }
    }
    SignedZoneFile { text, records }
}

/// The RDATA as signing tools write it: hickory's text, except for RRSIG, whose
/// algorithm is written as a number (RFC 4034 §3.2), as `dnssec-signzone` does.
fn presentation(data: &RData) -> String {
    let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = data else {
        return data.to_string();
    };
    let input = rrsig.input();
    let text = data.to_string();
    let signature = text.rsplit(' ').next().unwrap_or_default();
    format!(
        "{} {} {} {} {} {} {} {} {}",
        input.type_covered,
        u8::from(input.algorithm),
        input.num_labels,
        input.original_ttl,
        input.sig_expiration.get(),
        input.sig_inception.get(),
        input.key_tag,
        input.signer_name,
        signature
    )
}
