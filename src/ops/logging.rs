//! Logging set-up: started before the configuration is read (so its
//! warnings are seen), then switched to the configured format and level;
//! the level can be changed while serving (`dns64d ctl log-level`).
//! Colour only when stderr is a terminal and `NO_COLOR` is not set, so
//! files and journald get plain text.

use std::io::IsTerminal;

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

impl Logging {
    /// Starts logging to stderr as text at `info` (or `RUST_LOG`), before
    /// the configuration is read. Call once.
    pub fn init() -> Self {
        let from_environment = std::env::var_os("RUST_LOG").is_some();
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
        let filter = EnvFilter::try_new(level).map_err(|error| LoggingError::BadLevel {
            level: level.to_string(),
            reason: error.to_string(),
        })?;
        self.filter.reload(filter)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
