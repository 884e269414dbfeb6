//! Logging set-up: started before the configuration is read (so its
//! warnings are seen), then switched to the configured format and level;
//! the level can be changed while serving (`dns64d ctl log-level`).
//! Colour only when stderr is a terminal and `NO_COLOR` is not set, so
//! files and journald get plain text.
//!
//! hickory's resolver logs a WARN for events of single queries, most of them
//! expected (the recursor's "lookup error … no records found" for every
//! NODATA, which every synthesized AAAA starts with). At `info` and `warn`
//! those crates log errors only ([`filter_directives`]); dns64d counts the
//! faults itself and logs them in rate-limited summaries (for example
//! `answering::recursive`'s). `debug`, or a directive that names a hickory
//! crate, shows them again.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::ops::config::{LogConfig, LogFormat, check_log_level};

/// The subscriber below the format layer.
type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// A format layer, replaceable once the configuration is known.
type FormatLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// Why a log level cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level is not a level or filter dns64d accepts.
    #[error("log level {level:?}: {reason}")]
    BadLevel {
        /// The level given.
        level: String,
        /// Why, and what is allowed.
        reason: String,
    },
    /// The subscriber is gone (never expected while running).
    #[error("cannot change the log level: {0}")]
    Reload(#[from] reload::Error),
}

/// Handles to change the running subscriber.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    format: reload::Handle<FormatLayer, Filtered>,
    /// `RUST_LOG` was set: it overrides `log.level` at start and on reload.
    from_environment: bool,
}

/// True if log lines should carry ANSI colours: a terminal, and `NO_COLOR`
/// unset or empty (<https://no-color.org>).
pub(crate) fn wants_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|value| value.is_empty())
}

fn colour() -> bool {
    wants_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn format_layer(format: LogFormat) -> FormatLayer {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour());
    match format {
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json()),
    }
}

/// Counts events of `N` kinds and says when to log them as one summary
/// line: the first event at once, then at most one line per interval, each
/// with the counts since the line before. For faults that can come with
/// every query (a dead name server, overload), so the log names them
/// without a line per query.
pub(crate) struct Summary<const N: usize> {
    counts: [AtomicU64; N],
    /// When the last line was logged, in seconds since the Unix epoch.
    last_line: AtomicU64,
    interval_seconds: u64,
}

impl<const N: usize> Summary<N> {
    /// A summary logged at most once per `interval_seconds`.
    pub(crate) const fn new(interval_seconds: u64) -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; N],
            last_line: AtomicU64::new(0),
            interval_seconds,
        }
    }

    /// Counts one event of kind `kind`; returns the counts since the last
    /// line when a line is due now (the caller logs them), and starts
    /// counting anew.
    pub(crate) fn record(&self, kind: usize) -> Option<[u64; N]> {
        if let Some(count) = self.counts.get(kind) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let last = self.last_line.load(Ordering::Relaxed);
        if now < last.saturating_add(self.interval_seconds)
            || self
                .last_line
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(std::array::from_fn(|index| {
            self.counts
                .get(index)
                .map_or(0, |count| count.swap(0, Ordering::Relaxed))
        }))
    }
}

/// Least seconds between two summary lines of one kind of fault.
pub(crate) const SUMMARY_INTERVAL_SECONDS: u64 = 60;

/// The crates whose warnings are about single queries.
const QUERY_LEVEL_CRATES: [&str; 3] = ["hickory_resolver", "hickory_net", "hickory_proto"];

/// The tracing filter for a `log.level`: as given, plus `CRATE=error` for
/// hickory's crates when the default level (the directive without a target)
/// is `info` or `warn` and no directive names a hickory crate. So the
/// default log has no line per query, and `debug` (or `hickory_resolver=warn`)
/// brings them back.
pub(crate) fn filter_directives(level: &str) -> String {
    let directives: Vec<&str> = level.split(',').map(str::trim).collect();
    let quiet_default = directives.iter().any(|directive| {
        !directive.contains('=')
            && (directive.eq_ignore_ascii_case("info") || directive.eq_ignore_ascii_case("warn"))
    });
    let names_hickory = directives
        .iter()
        .any(|directive| directive.contains("hickory"));
    if !quiet_default || names_hickory {
        return level.to_string();
    }
    let mut filter = level.to_string();
    for target in QUERY_LEVEL_CRATES {
        filter.push_str(&format!(",{target}=error"));
    }
    filter
}

impl Logging {
    /// Starts logging to stderr as text at `info` (or `RUST_LOG`), before
    /// the configuration is read. Call once.
    pub fn init() -> Self {
        let from_environment = std::env::var_os("RUST_LOG").is_some();
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(filter_directives("info")));
        let (filter, filter_handle) = reload::Layer::new(filter);
        let (format, format_handle) = reload::Layer::new(format_layer(LogFormat::Text));
        let subscriber = tracing_subscriber::registry().with(filter).with(format);
        if subscriber.try_init().is_err() {
            eprintln!("dns64d: a log subscriber was already installed");
        }
        Self {
            filter: filter_handle,
            format: format_handle,
            from_environment,
        }
    }

    /// Applies the configured format and level (`RUST_LOG` still wins).
    pub fn apply(&self, config: &LogConfig) {
        if let Err(error) = self.format.reload(format_layer(config.format)) {
            tracing::warn!(%error, "cannot switch the log format");
        }
        if !self.from_environment {
            if let Err(error) = self.set_level(&config.level) {
                tracing::warn!(%error, "cannot apply log.level");
            }
        }
    }

    /// Changes the level while running (a level such as `debug`, or
    /// directives such as `dns64d=debug,warn`).
    pub fn set_level(&self, level: &str) -> Result<(), LoggingError> {
        check_log_level(level).map_err(|reason| LoggingError::BadLevel {
            level: level.to_string(),
            reason,
        })?;
        let filter = EnvFilter::try_new(filter_directives(level)).map_err(|error| {
            LoggingError::BadLevel {
                level: level.to_string(),
                reason: error.to_string(),
            }
        })?;
        self.filter.reload(filter)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hickory_warnings_are_quiet_at_info_and_warn_only() {
        let quiet = ",hickory_resolver=error,hickory_net=error,hickory_proto=error";
        let cases = [
            ("default", "info", format!("info{quiet}")),
            ("warn", "warn", format!("warn{quiet}")),
            (
                "directives with a default",
                "dns64d=debug,warn",
                format!("dns64d=debug,warn{quiet}"),
            ),
            ("debug shows them", "debug", "debug".to_string()),
            ("error is quiet already", "error", "error".to_string()),
            ("only a target", "dns64d=info", "dns64d=info".to_string()),
            (
                "a hickory directive wins",
                "info,hickory_resolver=warn",
                "info,hickory_resolver=warn".to_string(),
            ),
        ];
        for (name, level, expected) in cases {
            assert_eq!(filter_directives(level), expected, "{name}");
            assert!(
                EnvFilter::try_new(filter_directives(level)).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_summary_is_due_at_the_first_event_then_once_per_interval() {
        let summary = Summary::<2>::new(3600);
        assert_eq!(
            summary.record(1),
            Some([0, 1]),
            "the first event is logged at once"
        );
        for _ in 0..100 {
            assert_eq!(summary.record(0), None, "then nothing within the interval");
        }
        summary.last_line.store(0, Ordering::Relaxed); // as if the interval had passed
        assert_eq!(
            summary.record(1),
            Some([100, 1]),
            "the counts since the last line"
        );
        assert_eq!(summary.record(5), None, "an unknown kind is not counted");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let cases = [
            ("terminal", true, None, true),
            ("file or journald", false, None, false),
            ("NO_COLOR=1", true, Some("1"), false),
            ("NO_COLOR empty", true, Some(""), true),
        ];
        for (name, terminal, no_color, expected) in cases {
            assert_eq!(
                wants_colour(terminal, no_color.map(std::ffi::OsStr::new)),
                expected,
                "{name}"
            );
        }
    }
}
