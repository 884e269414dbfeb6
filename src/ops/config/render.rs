//! The effective configuration as TOML, for `--check-config`.

use super::Config;
use super::schema::RawServers;

impl Config {
    /// The effective configuration as TOML (for `--check-config`).
    pub fn to_toml(&self) -> String {
        let mut effective = self.raw.clone();
        effective.upstream.servers = RawServers::List(
            self.upstream
                .servers
                .iter()
                .map(|server| {
                    self.upstream
                        .encrypted
                        .iter()
                        .find(|encrypted| encrypted.address == *server)
                        .map_or_else(|| server.to_string(), ToString::to_string)
                })
                .collect(),
        );
        let mut text = toml::to_string_pretty(&effective)
            .unwrap_or_else(|error| format!("# cannot render: {error}\n"));
        for warning in &self.warnings {
            text.push_str(&format!("# warning: {warning}\n"));
        }
        if self.raw.dns64.exclude_ipv4.is_none() {
            text.push_str("\n# dns64.exclude_ipv4 is not set: built-in exclusions per prefix\n");
            for prefix in &self.dns64.prefixes {
                let ranges: Vec<String> = prefix
                    .excluded_ipv4
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                text.push_str(&format!("#   {}: {}\n", prefix.prefix, ranges.join(", ")));
            }
        }
        text
    }
}
