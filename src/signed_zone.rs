//! DNSSEC-signed zone files for `[[zones]]`: files that hold RRSIG, NSEC,
//! NSEC3, NSEC3PARAM and DNSKEY records, as `dnssec-signzone` or
//! `ldns-signzone` write them.
//!
//! hickory-proto's zone file parser refuses these types ("should be
//! dynamically generated"), so such a file is read with NLnetLabs' `domain`
//! zone file scanner instead; each record goes through the wire format into
//! hickory's types and then into hickory's in-memory zone handler, which
//! serves them: each RRSIG is attached to the RRset it covers (returned with
//! it to DO clients), and the NSEC or NSEC3 records give the proofs of
//! absence (the kind is read from the zone: NSEC3PARAM at the apex means
//! NSEC3, otherwise NSEC).
//!
//! Nothing is signed or re-signed here: the zone is served as it was signed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::BinDecodable;
use hickory_server::dnssec::NxProofKind;
use hickory_server::store::file::FileZoneHandler;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};

/// True if hickory's zone file parser refused the file for holding DNSSEC
/// records, which [`load`] reads.
pub fn is_refused_for_dnssec_records(reason: &str) -> bool {
    reason.contains("should be dynamically generated")
}

/// Loads a signed zone file into a zone handler that serves its
/// signatures and proofs. The error is a text naming the problem (and the
/// line, where the scanner gives one).
pub async fn load(origin: &Name, path: &Path) -> Result<FileZoneHandler, String> {
    let (records, signatures) = read_records(origin, path)?;
    let nx_proof_kind = nx_proof_kind(origin, &records);
    let mut handler = InMemoryZoneHandler::new(
        origin.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
        nx_proof_kind,
    )?;
    let sets = handler.records_get_mut();
    for signature in signatures {
        let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &signature.data else {
            continue;
        };
        let key = RrKey::new(LowerName::new(&signature.name), rrsig.input().type_covered);
        match sets.get_mut(&key) {
            Some(set) => Arc::make_mut(set).insert_rrsig(signature),
            None => {
                return Err(format!(
                    "{} RRSIG covers {}, but the zone has no such RRset",
                    signature.name,
                    rrsig.input().type_covered
                ));
            }
        }
    }
    Ok(FileZoneHandler::new(handler).await)
}

/// The records of the file grouped into RRsets, and the RRSIG records apart.
fn read_records(
    origin: &Name,
    path: &Path,
) -> Result<(BTreeMap<RrKey, RecordSet>, Vec<Record>), String> {
    use domain::zonefile::inplace::{Entry, Zonefile};
    let mut file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut zonefile = Zonefile::load(&mut file).map_err(|error| error.to_string())?;
    let domain_origin = domain::base::Name::bytes_from_str(&origin.to_ascii())
        .map_err(|error| format!("origin {origin}: {error}"))?;
    zonefile.set_origin(domain_origin);
    let mut records: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
    let mut signatures = Vec::new();
    for entry in zonefile {
        let entry = entry.map_err(|error| error.to_string())?;
        let record = match entry {
            Entry::Record(record) => record,
            Entry::Include { path, .. } => {
                return Err(format!(
                    "$INCLUDE {path} is not supported in a signed zone file"
                ));
            }
        };
        let mut wire = Vec::new();
        record
            .compose(&mut wire)
            .map_err(|_| format!("{} cannot be encoded", record.owner()))?;
        let record =
            Record::from_bytes(&wire).map_err(|error| format!("{}: {error}", record.owner()))?;
        if !origin.zone_of(&record.name) {
            return Err(format!("{} is outside the zone {origin}", record.name));
        }
        if record.record_type() == RecordType::RRSIG {
            signatures.push(record);
            continue;
        }
        records
            .entry(RrKey::new(
                LowerName::new(&record.name),
                record.record_type(),
            ))
            .or_insert_with(|| RecordSet::new(record.name.clone(), record.record_type(), 0))
            .insert(record, 0);
    }
    Ok((records, signatures))
}

/// NSEC3 (with the apex NSEC3PARAM's hash, salt and iterations) when the
/// zone has an NSEC3PARAM at its apex, NSEC when it has NSEC records, none
/// otherwise.
fn nx_proof_kind(origin: &Name, records: &BTreeMap<RrKey, RecordSet>) -> Option<NxProofKind> {
    let apex = RrKey::new(LowerName::new(origin), RecordType::NSEC3PARAM);
    let parameters = records.get(&apex).and_then(|set| {
        set.records_without_rrsigs()
            .find_map(|record| match &record.data {
                RData::DNSSEC(DNSSECRData::NSEC3PARAM(parameters)) => Some(parameters.clone()),
                _ => None,
            })
    });
    if let Some(parameters) = parameters {
        return Some(NxProofKind::Nsec3 {
            algorithm: parameters.hash_algorithm(),
            salt: Arc::from(parameters.salt()),
            iterations: parameters.iterations(),
            opt_out: parameters.opt_out(),
        });
    }
    records
        .keys()
        .any(|key| key.record_type == RecordType::NSEC)
        .then_some(NxProofKind::Nsec)
}
