//! Local zones served authoritatively (`[[zones]]`), with DNS64 applied on
//! top like for upstream data. Zone files are parsed and looked up by
//! hickory-server's file/in-memory zone handler (wildcards per RFC 4592 and
//! in-zone CNAME chains included); this module picks the zone for a name,
//! turns hickory's lookup into an [`Answer`] with AA set and the SOA in
//! negative answers, recognises delegations, and reloads the files.
//!
//! A reload parses every file first and swaps all zones at once, so a broken
//! file leaves the old zones serving.
//!
//! DNSSEC-signed zone files are loaded by [`crate::answering::zones::signed`]; for clients
//! that set DO their answers carry the RRSIGs of each answered RRset, and
//! negative answers the SOA's RRSIGs and the zone's NSEC or NSEC3 proof.
//!
//! Questions with no data (NODATA, NXDOMAIN) are answered from an index of
//! the zone's owner names ([`ZoneIndex`]) without asking hickory: its
//! negative path scans every record of the zone, which made each such answer
//! cost time in proportion to the zone (about 150 µs for 4 000 records), so
//! a flood of random names under a local zone would have been cheap to send
//! and dear to answer.

pub mod signed;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::dnssec::NxProofKind;
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{
    AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, ZoneHandler, ZoneType,
};

use crate::dns64::answer::Answer;
pub(crate) use crate::ops::config::ZoneConfig;

/// Why a zone could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zone {zone}: cannot load {}: {reason}", file.display())]
pub struct ZoneError {
    /// The zone's origin.
    pub zone: Name,
    /// The file.
    pub file: PathBuf,
    /// The parser's message (it names the line and the problem).
    pub reason: String,
}

struct LoadedZone {
    config: ZoneConfig,
    handler: FileZoneHandler,
    index: ZoneIndex,
    soa: Option<Record>,
    /// The RRSIGs of the apex SOA (empty for an unsigned zone).
    soa_signatures: Vec<Record>,
    /// The NSEC3 chain of a zone signed with NSEC3.
    nsec3: Option<signed::Nsec3Chain>,
}

/// The owner names of a zone and the types at each: enough to tell, before
/// asking hickory, that its lookup would find nothing, and what the negative
/// answer then is. It follows hickory's lookup rules (delegations, the name
/// itself with CNAME and ANAME, then `*.` under each ancestor in turn).
#[derive(Debug, Default)]
struct ZoneIndex {
    /// Record types at each owner name.
    types: HashMap<LowerName, Vec<RecordType>>,
    /// Owner names and their ancestors down from the origin: the names that
    /// exist, empty non-terminals included.
    existing: HashSet<LowerName>,
    /// Owners of NS records other than the apex: the zone cuts.
    cuts: HashSet<LowerName>,
}

impl ZoneIndex {
    fn new<'a>(origin: &LowerName, keys: impl Iterator<Item = &'a RrKey>) -> Self {
        let mut index = ZoneIndex::default();
        for key in keys {
            index
                .types
                .entry(key.name.clone())
                .or_default()
                .push(key.record_type);
            if key.record_type == RecordType::NS && key.name != *origin {
                index.cuts.insert(key.name.clone());
            }
            let mut name = key.name.clone();
            while origin.zone_of(&name) && index.existing.insert(name.clone()) && name != *origin {
                name = name.base_name();
            }
        }
        index
    }

    /// False when hickory's lookup certainly finds no records (and no
    /// referral) for the question; true when it may.
    fn may_answer(&self, origin: &LowerName, name: &LowerName, record_type: RecordType) -> bool {
        if matches!(
            record_type,
            RecordType::ANY | RecordType::AXFR | RecordType::IXFR
        ) {
            return true;
        }
        // A zone cut at or above the name (a DS question at the cut itself excepted).
        let mut above = name.clone();
        while origin.zone_of(&above) && above != *origin {
            if self.cuts.contains(&above) && !(record_type == RecordType::DS && above == *name) {
                return true;
            }
            above = above.base_name();
        }
        if self.holds(name, record_type) {
            return true;
        }
        if name.is_wildcard() || name.is_root() {
            return false;
        }
        // hickory then tries `*.` under every ancestor, nearest first.
        wildcards_above(name)
            .any(|wildcard| self.holds(&wildcard, record_type) || self.cuts.contains(&wildcard))
    }

    /// Whether `name` owns records of `record_type`, or a CNAME (or an ANAME
    /// for A and AAAA), which hickory returns in their place.
    fn holds(&self, name: &LowerName, record_type: RecordType) -> bool {
        self.types.get(name).is_some_and(|types| {
            types.iter().any(|held| {
                *held == record_type
                    || *held == RecordType::CNAME
                    || (*held == RecordType::ANAME
                        && matches!(record_type, RecordType::A | RecordType::AAAA))
            })
        })
    }

    /// The RCODE for a name without data of the asked type: NOERROR (NODATA)
    /// when the name exists, as an owner, an empty non-terminal, or a name a
    /// wildcard matches (RFC 4592 §4.1); NXDOMAIN otherwise.
    fn negative_rcode(&self, origin: &LowerName, name: &LowerName) -> ResponseCode {
        if self.existing.contains(name) || self.covered_by_wildcard(origin, name) {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        }
    }

    /// True if a wildcard owner `*.<ancestor>` in the zone matches `name`.
    fn covered_by_wildcard(&self, origin: &LowerName, name: &LowerName) -> bool {
        wildcards_above(name)
            .take_while(|wildcard| origin.zone_of(&wildcard.base_name()))
            .any(|wildcard| self.existing.contains(&wildcard))
    }
}

/// `*.<ancestor>` for every ancestor of `name`, nearest first, up to the
/// top-level domain, in the order hickory tries them.
fn wildcards_above(name: &LowerName) -> impl Iterator<Item = LowerName> {
    let first = (!name.is_root()).then(|| name.clone().into_wildcard());
    std::iter::successors(first, |wildcard| {
        let parent = wildcard.base_name();
        (!parent.is_root()).then(|| parent.into_wildcard())
    })
}

/// What the local zones say about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZoneAnswer {
    /// No local zone contains the name (or it lies below a delegation): forward it.
    NotLocal,
    /// An authoritative answer, and whether DNS64 applies to the zone.
    Answer {
        /// RCODE and sections (AA is implied).
        answer: Answer,
        /// The zone's `dns64` setting.
        dns64: bool,
    },
    /// The name lies at or below a delegation inside a local zone.
    Referral(Answer),
}

/// The set of local zones, as loaded; a reload loads a new set (see
/// `edge::server::RunningServer::reload`).
#[derive(Default)]
pub struct LocalZones {
    zones: Vec<Arc<LoadedZone>>,
}

impl LocalZones {
    /// Loads every zone file; the first error stops the load.
    pub async fn load(configs: &[ZoneConfig]) -> Result<Self, ZoneError> {
        Ok(Self {
            zones: load_all(configs).await?,
        })
    }

    /// True if no zone is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The most specific zone containing `name`.
    fn zone_for(&self, name: &Name) -> Option<Arc<LoadedZone>> {
        self.zones
            .iter()
            .filter(|zone| zone.config.name.zone_of(name))
            .max_by_key(|zone| zone.config.name.num_labels())
            .cloned()
    }

    /// True if `name` is inside a local zone whose `dns64` is off.
    pub(crate) fn forbids_dns64(&self, name: &Name) -> bool {
        self.zone_for(name).is_some_and(|zone| !zone.config.dns64)
    }

    /// Looks a question up in the local zones; with `dnssec_ok` (the
    /// client's DO), a signed zone's RRSIGs and proofs of absence come along.
    pub(crate) async fn lookup(
        &self,
        name: &Name,
        record_type: RecordType,
        dnssec_ok: bool,
    ) -> ZoneAnswer {
        let Some(zone) = self.zone_for(name) else {
            return ZoneAnswer::NotLocal;
        };
        let lower = LowerName::new(name);
        let origin = LowerName::new(&zone.config.name);
        let mut options = LookupOptions::default();
        options.dnssec_ok = dnssec_ok;
        let (zone_ref, lower_ref) = (&zone, &lower);
        let negative = |code: ResponseCode| async move {
            let (zone, lower) = (zone_ref, lower_ref);
            let mut answer = Answer::empty(code);
            answer.authorities.extend(zone.soa.clone());
            answer.normalize_negative_soa();
            if dnssec_ok {
                answer
                    .authorities
                    .extend(zone.soa_signatures.iter().cloned());
                // A wildcard NODATA's proof shows the wildcard's types (found by the chain).
                answer
                    .authorities
                    .extend(zone.denial_proof(lower, false, options).await);
            }
            ZoneAnswer::Answer {
                answer,
                dns64: zone.config.dns64,
            }
        };
        if !zone.index.may_answer(&origin, &lower, record_type) {
            return negative(zone.index.negative_rcode(&origin, &lower)).await;
        }
        let result = zone
            .handler
            .lookup(&lower, record_type, None, options)
            .await;
        let result = match result {
            LookupControlFlow::Continue(result) | LookupControlFlow::Break(result) => result,
            LookupControlFlow::Skip => return ZoneAnswer::NotLocal,
        };
        match result {
            Ok(lookup) => {
                let records: Vec<Record> = lookup.iter().cloned().collect();
                let additionals: Vec<Record> = lookup
                    .additionals()
                    .map(|iter| iter.cloned().collect())
                    .unwrap_or_default();
                // hickory answers a name below a delegation with the NS set of the cut.
                let is_delegation = records.first().is_some_and(|record| {
                    record.record_type() == RecordType::NS
                        && record.name != zone.config.name
                        && (record_type != RecordType::NS || record.name != *name)
                });
                if is_delegation {
                    let mut referral = Answer::empty(ResponseCode::NoError);
                    referral.authorities = records;
                    referral.additionals = additionals;
                    return ZoneAnswer::Referral(referral);
                }
                // An RRSIG with fewer labels than its owner: a wildcard expanded (RFC 4035 §5.3.4).
                let wildcard_expanded = records.iter().any(|record| match &record.data {
                    RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) => {
                        rrsig.input().num_labels < record.name.num_labels()
                    }
                    _ => false,
                });
                let mut answer = Answer::empty(ResponseCode::NoError);
                if dnssec_ok && wildcard_expanded {
                    // The proof that no closer name matched (RFC 4035 §3.1.3.3).
                    answer
                        .authorities
                        .extend(zone.denial_proof(&lower, true, options).await);
                }
                answer.answers = records
                    .into_iter()
                    .map(|mut record| {
                        // Wildcard answers are owned by the name asked (RFC 4592 §3.4).
                        if record.name.is_wildcard() {
                            record.name = name.clone();
                        }
                        record
                    })
                    .collect();
                answer.additionals = additionals;
                // A CNAME chain that ends in this zone without data for the type: NODATA/NXDOMAIN for its end.
                if let Some(target) = answer.chain_target(name) {
                    if target != *name
                        && answer.records_at(&target, record_type).next().is_none()
                        && zone.config.name.zone_of(&target)
                    {
                        if let ZoneAnswer::Answer { answer: tail, .. } =
                            Box::pin(self.lookup(&target, record_type, dnssec_ok)).await
                        {
                            if tail.answers.is_empty() {
                                answer.response_code = tail.response_code;
                                answer.authorities = tail.authorities;
                            }
                        }
                    }
                }
                ZoneAnswer::Answer {
                    answer,
                    dns64: zone.config.dns64,
                }
            }
            Err(LookupError::NameExists) => negative(ResponseCode::NoError).await,
            Err(LookupError::ResponseCode(ResponseCode::NXDomain))
                if zone.index.covered_by_wildcard(&origin, &lower) =>
            {
                // RFC 4592 §4.1: a name a wildcard matches exists; other types are NODATA.
                negative(ResponseCode::NoError).await
            }
            Err(LookupError::ResponseCode(ResponseCode::Refused)) => ZoneAnswer::NotLocal,
            Err(LookupError::ResponseCode(code)) => negative(code).await,
            Err(error) => {
                tracing::warn!(zone = %zone.config.name, %error, "local zone lookup failed");
                let answer = Answer::empty(ResponseCode::ServFail);
                ZoneAnswer::Answer {
                    answer,
                    dns64: zone.config.dns64,
                }
            }
        }
    }
}

impl LoadedZone {
    /// The NSEC or NSEC3 records (with their RRSIGs) that prove `name` has
    /// no data of the asked type or does not exist, or (`wildcard_expanded`
    /// for a positive answer) that no closer name matched a wildcard; nothing
    /// for an unsigned zone. NSEC records by name order, as hickory picks
    /// them; NSEC3 records by hashed name from [`signed::Nsec3Chain`].
    async fn denial_proof(
        &self,
        name: &LowerName,
        wildcard_expanded: bool,
        options: LookupOptions,
    ) -> Vec<Record> {
        if let Some(chain) = &self.nsec3 {
            let name = Name::from(name.clone());
            return if wildcard_expanded {
                chain.wildcard_answer(&name)
            } else {
                chain.denial(&name)
            };
        }
        let result = match self.handler.nx_proof_kind() {
            Some(NxProofKind::Nsec) => self.handler.nsec_records(name, options).await,
            _ => return Vec::new(),
        };
        match result {
            LookupControlFlow::Continue(Ok(lookup)) | LookupControlFlow::Break(Ok(lookup)) => {
                lookup.iter().cloned().collect()
            }
            LookupControlFlow::Continue(Err(error)) | LookupControlFlow::Break(Err(error)) => {
                tracing::warn!(zone = %self.config.name, %name, %error, "no proof of absence");
                Vec::new()
            }
            LookupControlFlow::Skip => Vec::new(),
        }
    }
}

async fn load_all(configs: &[ZoneConfig]) -> Result<Vec<Arc<LoadedZone>>, ZoneError> {
    let mut zones = Vec::with_capacity(configs.len());
    for config in configs {
        zones.push(Arc::new(load_zone(config).await?));
    }
    Ok(zones)
}

async fn load_zone(config: &ZoneConfig) -> Result<LoadedZone, ZoneError> {
    let error = |reason: String| ZoneError {
        zone: config.name.clone(),
        file: config.file.clone(),
        reason,
    };
    if !Path::new(&config.file).is_file() {
        return Err(error("the file does not exist".into()));
    }
    let handler = match FileZoneHandler::try_from_config(
        config.name.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        None,
        &FileConfig {
            zone_path: config.file.clone(),
        },
        None, // unsigned: no NSEC/NSEC3 chain
    ) {
        Ok(handler) => handler,
        Err(reason) if signed::is_refused_for_dnssec_records(&reason) => {
            signed::load(&config.name, &config.file)
                .await
                .map_err(error)?
        }
        Err(reason) => return Err(error(with_line(&config.file, &config.name, reason))),
    };
    let soa = apex_soa(&handler, &config.name).await;
    let soa_signatures = handler
        .records()
        .await
        .get(&RrKey::new(LowerName::new(&config.name), RecordType::SOA))
        .map(|set| set.rrsigs().to_vec())
        .unwrap_or_default();
    let nsec3 = signed::Nsec3Chain::new(
        &config.name,
        handler.nx_proof_kind(),
        &*handler.records().await,
    );
    let index = ZoneIndex::new(
        &LowerName::new(&config.name),
        handler.records().await.keys(),
    );
    if soa.is_none() {
        return Err(error(format!(
            "no SOA record at the zone apex {}",
            config.name
        )));
    }
    Ok(LoadedZone {
        config: config.clone(),
        handler,
        index,
        soa,
        soa_signatures,
        nsec3,
    })
}

/// Says where the first error is, which hickory's load message does not:
/// the smallest prefix of the file, ending at a line with balanced
/// parentheses, that fails to parse ends at that line; its parse error
/// names the problem. `file:line: problem, in the record `…``.
fn with_line(path: &Path, origin: &Name, reason: String) -> String {
    const MAX_LINES_SEARCHED: usize = 20_000;
    let Ok(text) = std::fs::read_to_string(path) else {
        return reason;
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_LINES_SEARCHED {
        return reason;
    }
    let mut depth: i64 = 0;
    let mut prefix = String::new();
    for (index, line) in lines.iter().enumerate() {
        prefix.push_str(line);
        prefix.push('\n');
        let code = line.split(';').next().unwrap_or_default();
        depth += code.matches('(').count() as i64 - code.matches(')').count() as i64;
        if depth != 0 {
            continue;
        }
        let parsed = hickory_proto::serialize::txt::Parser::new(
            prefix.as_str(),
            Some(path.to_path_buf()),
            Some(origin.clone()),
        )
        .parse();
        if let Err(error) = parsed {
            // hickory's own message for the line, not the loader's Debug form
            // (`AddrParse(AddrParseError(Ipv4))`).
            return format!(
                "{}:{}: {error}, in the record `{}`{}",
                path.display(),
                index + 1,
                line.trim(),
                included_file(path, line)
                    .map(|file| format!(" (looked for {})", file.display()))
                    .unwrap_or_default()
            );
        }
    }
    reason
}

/// The file a `$INCLUDE` line names, resolved as hickory does (relative to
/// the including file's directory).
fn included_file(path: &Path, line: &str) -> Option<PathBuf> {
    let mut words = line.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("$INCLUDE") {
        return None;
    }
    let named = Path::new(words.next()?);
    Some(if named.is_absolute() {
        named.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).join(named)
    })
}

/// The apex SOA, looked up once at load time.
async fn apex_soa(handler: &FileZoneHandler, origin: &Name) -> Option<Record> {
    let lower = LowerName::new(origin);
    let result = handler
        .lookup(&lower, RecordType::SOA, None, LookupOptions::default())
        .await;
    match result {
        LookupControlFlow::Continue(Ok(lookup)) | LookupControlFlow::Break(Ok(lookup)) => lookup
            .iter()
            .find(|record| matches!(record.data, RData::SOA(_)))
            .cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "\
$ORIGIN example.
@            3600 IN SOA ns hostmaster 1 3600 900 604800 300
@            3600 IN NS  ns
ns           3600 IN A   192.0.2.1
v4           3600 IN A   192.0.2.2
text         3600 IN TXT \"t\"
alias        3600 IN CNAME v4
a.b.ent      3600 IN A   192.0.2.3
*.wild       3600 IN A   192.0.2.4
named.wild   3600 IN TXT \"n\"
sub          3600 IN NS  ns.sub
ns.sub       3600 IN A   192.0.2.5
sub          3600 IN DS  1 13 2 0000000000000000000000000000000000000000000000000000000000000000
";

    /// What hickory itself answers, as this module did before the index:
    /// records (or a referral), or the RCODE of the negative answer.
    async fn hickory_says(
        zone: &LoadedZone,
        name: &Name,
        record_type: RecordType,
    ) -> Option<ResponseCode> {
        let lower = LowerName::new(name);
        let result = match zone
            .handler
            .lookup(&lower, record_type, None, LookupOptions::default())
            .await
        {
            LookupControlFlow::Continue(result) | LookupControlFlow::Break(result) => result,
            LookupControlFlow::Skip => panic!("skip for {name}"),
        };
        match result {
            Ok(_) => None,
            Err(LookupError::NameExists) => Some(ResponseCode::NoError),
            Err(LookupError::ResponseCode(ResponseCode::NXDomain)) => {
                // The former check: does `*.<ancestor>` exist, asked of hickory with ANY.
                let mut ancestor = name.base_name();
                while zone.config.name.zone_of(&ancestor) {
                    let wildcard = Name::from_ascii("*")
                        .unwrap()
                        .append_domain(&ancestor)
                        .unwrap();
                    let found = zone
                        .handler
                        .lookup(
                            &LowerName::new(&wildcard),
                            RecordType::ANY,
                            None,
                            LookupOptions::default(),
                        )
                        .await;
                    if matches!(
                        found,
                        LookupControlFlow::Continue(Ok(_) | Err(LookupError::NameExists))
                            | LookupControlFlow::Break(Ok(_) | Err(LookupError::NameExists))
                    ) {
                        return Some(ResponseCode::NoError);
                    }
                    if ancestor == zone.config.name {
                        break;
                    }
                    ancestor = ancestor.base_name();
                }
                Some(ResponseCode::NXDomain)
            }
            Err(other) => panic!("{name} {record_type}: {other}"),
        }
    }

    #[tokio::test]
    async fn the_index_answers_every_negative_question_as_hickory_does() {
        let directory =
            std::env::temp_dir().join(format!("dns64d-zone-index-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join("example.zone");
        std::fs::write(&file, ZONE).unwrap();
        let config = ZoneConfig {
            name: Name::from_ascii("example.").unwrap(),
            file: file.clone(),
            dns64: true,
        };
        let zone = load_zone(&config).await.unwrap();
        std::fs::remove_dir_all(&directory).unwrap();
        let origin = LowerName::new(&config.name);
        let names = [
            "example.",
            "ns.example.",
            "v4.example.",
            "V4.Example.",
            "text.example.",
            "alias.example.",
            "a.b.ent.example.",
            "b.ent.example.",
            "ent.example.",
            "x.ent.example.",
            "x.wild.example.",
            "y.x.wild.example.",
            "wild.example.",
            "*.wild.example.",
            "*.x.wild.example.",
            "named.wild.example.",
            "sub.example.",
            "ns.sub.example.",
            "deep.below.sub.example.",
            "nope.example.",
            "x.nope.example.",
        ];
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::NS,
            RecordType::DS,
            RecordType::CNAME,
            RecordType::MX,
            RecordType::SOA,
        ];
        let (mut nodata, mut nxdomain) = (0, 0);
        for name in names {
            let name = Name::from_ascii(name).unwrap();
            let lower = LowerName::new(&name);
            for record_type in types {
                let expected = hickory_says(&zone, &name, record_type).await;
                let may_answer = zone.index.may_answer(&origin, &lower, record_type);
                assert_eq!(
                    may_answer,
                    expected.is_none(),
                    "{name} {record_type}: hickory says {expected:?}"
                );
                if let Some(rcode) = expected {
                    if rcode == ResponseCode::NXDomain {
                        nxdomain += 1;
                    } else {
                        nodata += 1;
                    }
                    assert_eq!(
                        zone.index.negative_rcode(&origin, &lower),
                        rcode,
                        "{name} {record_type}"
                    );
                }
            }
        }
        // Both kinds of negative answer were compared, and many of them.
        assert!(
            nodata > 40 && nxdomain > 10,
            "{nodata} NODATA, {nxdomain} NXDOMAIN"
        );
    }
}
