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
//!
//! NSEC3 proofs are chosen here ([`Nsec3Chain`], RFC 5155 §7.2) rather than
//! by hickory's in-memory handler, whose choice for a wildcard NODATA answer
//! does not validate (Unbound: "nodata proof failed").

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
pub(crate) fn is_refused_for_dnssec_records(reason: &str) -> bool {
    reason.contains("should be dynamically generated")
}

/// Loads a signed zone file into a zone handler that serves its
/// signatures and proofs. The error is a text naming the problem (and the
/// line, where the scanner gives one).
pub(crate) async fn load(origin: &Name, path: &Path) -> Result<FileZoneHandler, String> {
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

/// The NSEC3 chain of a signed zone, for proofs of absence (RFC 5155 §7.2).
pub(crate) struct Nsec3Chain {
    origin: Name,
    algorithm: hickory_proto::dnssec::Nsec3HashAlgorithm,
    salt: Arc<[u8]>,
    iterations: u16,
    /// The NSEC3 records with their RRSIGs, by hashed owner label (base32hex
    /// in lower case, whose order is the order of the hashes), sorted.
    entries: Vec<(String, Vec<Record>)>,
}

impl Nsec3Chain {
    /// The chain of a zone that uses NSEC3 (`None` for other zones).
    pub(crate) fn new(
        origin: &Name,
        kind: Option<&NxProofKind>,
        records: &BTreeMap<RrKey, Arc<RecordSet>>,
    ) -> Option<Self> {
        let Some(NxProofKind::Nsec3 {
            algorithm,
            salt,
            iterations,
            ..
        }) = kind
        else {
            return None;
        };
        let mut entries: Vec<(String, Vec<Record>)> = records
            .iter()
            .filter(|(key, _)| key.record_type == RecordType::NSEC3)
            .filter_map(|(key, set)| {
                let name = Name::from(key.name.clone());
                let label = name.iter().next()?;
                let label = String::from_utf8_lossy(label).to_ascii_lowercase();
                let records = set
                    .records_without_rrsigs()
                    .chain(set.rrsigs())
                    .cloned()
                    .collect();
                Some((label, records))
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Self {
            origin: origin.clone(),
            algorithm: *algorithm,
            salt: Arc::clone(salt),
            iterations: *iterations,
            entries,
        })
    }

    /// The hashed owner label of `name`.
    fn label_of(&self, name: &Name) -> Option<String> {
        let digest = self
            .algorithm
            .hash(&self.salt, name, self.iterations)
            .ok()?;
        Some(data_encoding::BASE32_DNSSEC.encode(digest.as_ref()))
    }

    /// The NSEC3 (and RRSIGs) whose owner is the hash of `name`.
    fn matching(&self, name: &Name) -> Option<&[Record]> {
        let label = self.label_of(name)?;
        let index = self
            .entries
            .binary_search_by(|entry| entry.0.as_str().cmp(&label))
            .ok()?;
        Some(&self.entries[index].1)
    }

    /// The NSEC3 (and RRSIGs) whose span covers the hash of `name`: the last
    /// one before it in hash order, or the last of the chain, which wraps.
    fn covering(&self, name: &Name) -> Option<&[Record]> {
        let label = self.label_of(name)?;
        let index = match self
            .entries
            .binary_search_by(|entry| entry.0.as_str().cmp(&label))
        {
            Ok(_) => return None,
            Err(0) => self.entries.len().checked_sub(1)?,
            Err(index) => index - 1,
        };
        Some(&self.entries[index].1)
    }

    /// The closest encloser of `name` (the nearest ancestor with an NSEC3)
    /// and the next closer name (its child on the way to `name`).
    fn closest_encloser(&self, name: &Name) -> Option<(Name, Name)> {
        let mut next_closer = name.clone();
        while self.origin.zone_of(&next_closer) && next_closer != self.origin {
            let parent = next_closer.base_name();
            if self.matching(&parent).is_some() {
                return Some((parent, next_closer));
            }
            next_closer = parent;
        }
        None
    }

    /// The proof for a negative answer about `name` (RFC 5155 §7.2.3–7.2.5):
    /// NODATA for a name with an NSEC3 (empty non-terminals included): that
    /// NSEC3. Otherwise the closest encloser's NSEC3, the one covering the
    /// next closer name, and for the wildcard at the closest encloser the
    /// NSEC3 matching it (a wildcard NODATA) or covering it (NXDOMAIN).
    pub(crate) fn denial(&self, name: &Name) -> Vec<Record> {
        if let Some(records) = self.matching(name) {
            return records.to_vec();
        }
        let Some((encloser, next_closer)) = self.closest_encloser(name) else {
            return Vec::new();
        };
        let Ok(wildcard) = Name::from_ascii("*").and_then(|star| star.append_domain(&encloser))
        else {
            return Vec::new();
        };
        let wildcard_proof = self
            .matching(&wildcard)
            .or_else(|| self.covering(&wildcard));
        let mut proof: Vec<Record> = Vec::new();
        for records in [
            self.matching(&encloser),
            self.covering(&next_closer),
            wildcard_proof,
        ]
        .into_iter()
        .flatten()
        {
            for record in records {
                if !proof.contains(record) {
                    proof.push(record.clone());
                }
            }
        }
        proof
    }

    /// The proof for an answer expanded from a wildcard (RFC 5155 §7.2.6):
    /// the NSEC3 covering the next closer name, so no closer name exists.
    pub(crate) fn wildcard_answer(&self, name: &Name) -> Vec<Record> {
        self.closest_encloser(name)
            .and_then(|(_, next_closer)| self.covering(&next_closer))
            .map(<[Record]>::to_vec)
            .unwrap_or_default()
    }
}
