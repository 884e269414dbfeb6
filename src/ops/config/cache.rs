//! `[cache]`: bounds, TTL clamps, serve-stale (RFC 8767) and prefetch.

use std::time::Duration;

use super::ConfigError;
use super::schema::RawCache;

/// The smallest `cache.max_memory`: 1 MiB (64 KiB per shard of each cache).
const MIN_MEMORY: usize = 1 << 20;

/// Validated `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: usize,
    /// Most bytes the two caches take together: half for the answer cache,
    /// half for the fast path's response cache (`None`: bounded by
    /// `max_entries` only).
    pub max_memory: Option<usize>,
    /// Lower bound on cached TTLs, seconds.
    pub min_ttl: u32,
    /// Upper bound on cached TTLs, seconds.
    pub max_ttl: u32,
    /// Upper bound on negative TTLs, seconds.
    pub negative_max_ttl: u32,
    /// Serve-stale (RFC 8767): seconds after expiry an answer may still be served (0: off).
    pub stale_max_ttl: u32,
    /// The TTL of stale answers, seconds (RFC 8767 §4).
    pub stale_answer_ttl: u32,
    /// How long a client waits for the upstream before a stale answer (RFC 8767 §5).
    pub stale_client_timeout: Duration,
    /// Whether answers asked for late in their TTL are refreshed in the background.
    pub prefetch: bool,
    /// The last part of a TTL, in percent, in which a query triggers the refresh.
    pub prefetch_threshold_percent: u8,
}

/// The serve-stale and prefetch bounds of `[cache]`.
pub(super) fn check_stale_and_prefetch(cache: &CacheConfig) -> Result<(), ConfigError> {
    if cache.stale_answer_ttl == 0 || cache.stale_answer_ttl > 3600 {
        return Err(ConfigError::invalid(
            "cache.stale_answer_ttl",
            cache.stale_answer_ttl,
            "must be between 1 and 3600 seconds (RFC 8767 §4 suggests 30)",
        ));
    }
    let timeout_ms = cache.stale_client_timeout.as_millis();
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "cache.stale_client_timeout_ms",
            timeout_ms,
            "must be between 1 and 60000 milliseconds (RFC 8767 §5 suggests 1800)",
        ));
    }
    if !(1..=50).contains(&cache.prefetch_threshold_percent) {
        return Err(ConfigError::invalid(
            "cache.prefetch_threshold_percent",
            cache.prefetch_threshold_percent,
            "must be between 1 and 50 (percent of the TTL)",
        ));
    }
    Ok(())
}

/// Checks `[cache]`.
pub(super) fn validate(raw: &RawCache) -> Result<CacheConfig, ConfigError> {
    let cache = CacheConfig {
        max_entries: raw.max_entries,
        max_memory: raw
            .max_memory
            .map(|size| usize::try_from(size.0).unwrap_or(usize::MAX)),
        min_ttl: raw.min_ttl,
        max_ttl: raw.max_ttl,
        negative_max_ttl: raw.negative_max_ttl,
        stale_max_ttl: raw.stale_max_ttl,
        stale_answer_ttl: raw.stale_answer_ttl,
        stale_client_timeout: Duration::from_millis(raw.stale_client_timeout_ms),
        prefetch: raw.prefetch,
        prefetch_threshold_percent: raw.prefetch_threshold_percent,
    };
    check_stale_and_prefetch(&cache)?;
    if let Some(bytes) = cache.max_memory
        && bytes < MIN_MEMORY
    {
        return Err(ConfigError::invalid(
            "cache.max_memory",
            bytes,
            format!(
                "must be at least {MIN_MEMORY} bytes (\"1m\"); leave it out to bound the cache by cache.max_entries alone"
            ),
        ));
    }
    if cache.min_ttl > cache.max_ttl {
        return Err(ConfigError::invalid(
            "cache.min_ttl",
            cache.min_ttl,
            format!("is larger than cache.max_ttl ({})", cache.max_ttl),
        ));
    }
    Ok(cache)
}
