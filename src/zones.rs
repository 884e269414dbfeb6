//! Local zones served authoritatively (`[[zones]]`), with DNS64 applied on
//! top like for upstream data. Zone files are parsed and looked up by
//! hickory-server's file/in-memory zone handler (wildcards per RFC 4592 and
//! in-zone CNAME chains included); this module picks the zone for a name,
//! turns hickory's lookup into an [`Answer`] with AA set and the SOA in
//! negative answers, recognises delegations, and reloads the files.
//!
//! A reload parses every file first and swaps all zones at once, so a broken
//! file leaves the old zones serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{
    AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, ZoneHandler, ZoneType,
};

use crate::answer::Answer;

/// One `[[zones]]` entry of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The zone's origin.
    pub name: Name,
    /// The RFC 1035 master file.
    pub file: PathBuf,
    /// Synthesize AAAA for A-only names in this zone.
    pub dns64: bool,
}

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
    soa: Option<Record>,
}

/// What the local zones say about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneAnswer {
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

/// The set of local zones; reloadable while serving.
#[derive(Default)]
pub struct LocalZones {
    zones: RwLock<Arc<Vec<Arc<LoadedZone>>>>,
}

impl LocalZones {
    /// Loads every zone file; the first error stops start-up.
    pub async fn load(configs: &[ZoneConfig]) -> Result<Self, ZoneError> {
        let zones = load_all(configs).await?;
        Ok(Self {
            zones: RwLock::new(Arc::new(zones)),
        })
    }

    /// True if no zone is configured.
    pub fn is_empty(&self) -> bool {
        self.zones
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }

    /// The zones loaded now.
    fn configs(&self) -> Vec<ZoneConfig> {
        let zones = self
            .zones
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        zones.iter().map(|zone| zone.config.clone()).collect()
    }

    /// Re-reads every zone file; on any error the old zones keep serving.
    pub async fn reload(&self) -> Result<usize, ZoneError> {
        self.replace(&self.configs()).await
    }

    /// Loads a new set of zones (a changed `[[zones]]`); on any error the old
    /// zones keep serving.
    pub async fn replace(&self, configs: &[ZoneConfig]) -> Result<usize, ZoneError> {
        let zones = load_all(configs).await?;
        let count = zones.len();
        *self
            .zones
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(zones);
        Ok(count)
    }

    /// The most specific zone containing `name`.
    fn zone_for(&self, name: &Name) -> Option<Arc<LoadedZone>> {
        let zones = Arc::clone(
            &self
                .zones
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        zones
            .iter()
            .filter(|zone| zone.config.name.zone_of(name))
            .max_by_key(|zone| zone.config.name.num_labels())
            .cloned()
    }

    /// True if `name` is inside a local zone whose `dns64` is off.
    pub fn forbids_dns64(&self, name: &Name) -> bool {
        self.zone_for(name).is_some_and(|zone| !zone.config.dns64)
    }

    /// Looks a question up in the local zones.
    pub async fn lookup(&self, name: &Name, record_type: RecordType) -> ZoneAnswer {
        let Some(zone) = self.zone_for(name) else {
            return ZoneAnswer::NotLocal;
        };
        let lower = LowerName::new(name);
        let result = zone
            .handler
            .lookup(&lower, record_type, None, LookupOptions::default())
            .await;
        let result = match result {
            LookupControlFlow::Continue(result) | LookupControlFlow::Break(result) => result,
            LookupControlFlow::Skip => return ZoneAnswer::NotLocal,
        };
        let negative = |code: ResponseCode| {
            let mut answer = Answer::empty(code);
            answer.authorities.extend(zone.soa.clone());
            answer.normalize_negative_soa();
            ZoneAnswer::Answer {
                answer,
                dns64: zone.config.dns64,
            }
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
                let mut answer = Answer::empty(ResponseCode::NoError);
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
                            Box::pin(self.lookup(&target, record_type)).await
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
            Err(LookupError::NameExists) => negative(ResponseCode::NoError),
            Err(LookupError::ResponseCode(ResponseCode::NXDomain))
                if covered_by_wildcard(&zone, name).await =>
            {
                // RFC 4592 §4.1: a name a wildcard matches exists; other types are NODATA.
                negative(ResponseCode::NoError)
            }
            Err(LookupError::ResponseCode(ResponseCode::Refused)) => ZoneAnswer::NotLocal,
            Err(LookupError::ResponseCode(code)) => negative(code),
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
    let handler = FileZoneHandler::try_from_config(
        config.name.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        None,
        &FileConfig {
            zone_path: config.file.clone(),
        },
        None, // not signed here: no NSEC/NSEC3 chain
    )
    .map_err(|reason| error(with_line(&config.file, &config.name, reason)))?;
    let soa = apex_soa(&handler, &config.name).await;
    if soa.is_none() {
        return Err(error(format!(
            "no SOA record at the zone apex {}",
            config.name
        )));
    }
    Ok(LoadedZone {
        config: config.clone(),
        handler,
        soa,
    })
}

/// Adds the line of the first error to hickory's parse message, which names
/// the problem but not where: the smallest prefix of the file, ending at a
/// line with balanced parentheses, that fails to parse ends at that line.
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
        if parsed.is_err() {
            return format!(
                "line {}: {reason} (the line reads: {})",
                index + 1,
                line.trim()
            );
        }
    }
    reason
}

/// True if a wildcard owner `*.<ancestor>` in the zone matches `name`
/// (hickory answers such names NXDOMAIN for types the wildcard lacks).
async fn covered_by_wildcard(zone: &LoadedZone, name: &Name) -> bool {
    let mut ancestor = name.base_name();
    while zone.config.name.zone_of(&ancestor) {
        let Ok(wildcard) = Name::from_ascii("*").and_then(|star| star.append_domain(&ancestor))
        else {
            return false;
        };
        let result = zone
            .handler
            .lookup(
                &LowerName::new(&wildcard),
                RecordType::ANY,
                None,
                LookupOptions::default(),
            )
            .await;
        match result {
            LookupControlFlow::Continue(Ok(_))
            | LookupControlFlow::Break(Ok(_))
            | LookupControlFlow::Continue(Err(LookupError::NameExists))
            | LookupControlFlow::Break(Err(LookupError::NameExists)) => return true,
            _ => {}
        }
        if ancestor == zone.config.name {
            break;
        }
        ancestor = ancestor.base_name();
    }
    false
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
