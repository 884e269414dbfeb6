//! `[[zones]]`: the local zones served authoritatively.

use std::path::PathBuf;

use hickory_proto::rr::Name;

use super::ConfigError;
use super::schema::RawZone;
use super::values::parse_domains;

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

/// Checks `[[zones]]`: names parse, none is listed twice.
pub(super) fn validate(raw: &[RawZone]) -> Result<Vec<ZoneConfig>, ConfigError> {
    let mut zones: Vec<ZoneConfig> = Vec::new();
    for (index, zone) in raw.iter().enumerate() {
        let key = format!("zones[{index}].name");
        let name = parse_domains(&key, std::slice::from_ref(&zone.name))?
            .pop()
            .expect("one name parsed");
        if zones.iter().any(|known| known.name == name) {
            return Err(ConfigError::invalid(&key, &zone.name, "listed twice"));
        }
        zones.push(ZoneConfig {
            name,
            file: zone.file.clone(),
            dns64: zone.dns64,
        });
    }
    Ok(zones)
}
