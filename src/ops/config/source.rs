//! Where a configuration value came from, so an error can say so: the
//! file with line and column (spans from `toml_edit`), the `DNS64D_…`
//! environment variable, the command-line flag, or the built-in default.
//! Also turns figment's deserialization errors (written for Rust types:
//! `u32`, `usize`) into errors naming the key, the value and what is
//! allowed, and rejects `DNS64D_` variables that name no key.
//!
//! Plain functions over text; the loading itself stays in `config`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Value};

use super::{ConfigError, RawConfig, TOP_LEVEL_KEYS};

/// The prefix of the environment variables read as configuration.
pub(crate) const ENV_PREFIX: &str = "DNS64D_";

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Not known (the value was checked outside [`super::load`]).
    #[default]
    Unknown,
    /// In the configuration file, at a line and column (both from 1).
    File {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1 (in characters).
        column: usize,
    },
    /// In an environment variable.
    Environment {
        /// The variable's name.
        variable: String,
    },
    /// On the command line.
    Flag {
        /// The flag, e.g. `--upstream`.
        flag: &'static str,
    },
    /// The built-in default (of the profile in use).
    Default,
}

impl fmt::Display for Origin {
    /// Empty when unknown, else the place followed by `": "`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => Ok(()),
            Self::File { path, line, column } => {
                write!(formatter, "{}:{line}:{column}: ", path.display())
            }
            Self::Environment { variable } => {
                write!(formatter, "environment variable {variable}: ")
            }
            Self::Flag { flag } => write!(formatter, "flag {flag}: "),
            Self::Default => write!(formatter, "built-in default: "),
        }
    }
}

/// The sources a configuration was merged from, to find where a key was set.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    /// The file and its text.
    pub file: Option<(PathBuf, String)>,
    /// The `DNS64D_…` variables, names as given.
    pub environment: Vec<String>,
    /// Keys set by flags, with the flag.
    pub flags: Vec<(&'static str, &'static str)>,
}

impl Sources {
    /// Where `key` (`dns64.prefixes`, `listeners[1].address`) was set; with
    /// `value`, the element of a list holding that string is pointed at.
    pub(crate) fn origin(&self, key: &str, value: Option<&str>) -> Origin {
        self.find(key, value, false)
    }

    /// Where `key` itself was written (for an unknown key: the key, not its value).
    pub(crate) fn origin_of_key(&self, key: &str) -> Origin {
        self.find(key, None, true)
    }

    fn find(&self, key: &str, value: Option<&str>, at_key: bool) -> Origin {
        let segments = key_segments(key);
        if segments.is_empty() {
            return Origin::Unknown;
        }
        if let Some((_, flag)) = self
            .flags
            .iter()
            .find(|(flagged, _)| key == *flagged || key.starts_with(&format!("{flagged}.")))
        {
            return Origin::Flag { flag };
        }
        // The environment wins over the file: a variable naming the key or a
        // section holding it.
        let names: Vec<String> = segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Key(name) => Some(name.to_ascii_uppercase()),
                Segment::Index(_) => None,
            })
            .collect();
        for length in (1..=names.len()).rev() {
            let wanted = format!("{ENV_PREFIX}{}", names[..length].join("__"));
            if let Some(variable) = self
                .environment
                .iter()
                .find(|variable| variable.eq_ignore_ascii_case(&wanted))
            {
                return Origin::Environment {
                    variable: variable.clone(),
                };
            }
        }
        if let Some((path, text)) = &self.file {
            if let Some(span) = span_of(text, &segments, value, at_key) {
                let (line, column) = line_and_column(text, span.start);
                return Origin::File {
                    path: path.clone(),
                    line,
                    column,
                };
            }
        }
        Origin::Default
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// `listeners[1].address` → `listeners`, 1, `address`.
fn key_segments(key: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next() {
            if !name.is_empty() {
                segments.push(Segment::Key(name.to_string()));
            }
        }
        for piece in pieces {
            if let Ok(index) = piece.trim_end_matches(']').parse() {
                segments.push(Segment::Index(index));
            }
        }
    }
    segments
}

/// The byte range of the value at `segments` in a TOML text (or of the
/// nearest enclosing item that exists).
fn span_of(
    text: &str,
    segments: &[Segment],
    value: Option<&str>,
    at_key: bool,
) -> Option<Range<usize>> {
    let document = ImDocument::parse(text).ok()?;
    let mut item = Step::Table(document.as_table());
    let mut best = None;
    for segment in segments {
        let next = match (item, segment) {
            (Step::Table(table), Segment::Key(key))
            | (Step::Item(Item::Table(table)), Segment::Key(key)) => {
                let Some((key, found)) = table.get_key_value(key) else {
                    break;
                };
                best = key.span().or(best);
                if at_key
                    && segments
                        .last()
                        .is_some_and(|last| std::ptr::eq(last, segment))
                {
                    return best;
                }
                Step::Item(found)
            }
            (Step::Item(Item::ArrayOfTables(tables)), Segment::Index(index)) => {
                let Some(table) = tables.get(*index) else {
                    break;
                };
                Step::Table(table)
            }
            (Step::Item(Item::Value(value)), segment) | (Step::Value(value), segment) => {
                match (value, segment) {
                    (Value::InlineTable(table), Segment::Key(key)) => match table.get(key) {
                        Some(value) => Step::Value(value),
                        None => break,
                    },
                    (Value::Array(array), Segment::Index(index)) => match array.get(*index) {
                        Some(value) => Step::Value(value),
                        None => break,
                    },
                    _ => break,
                }
            }
            _ => break,
        };
        best = next.span().or(best);
        item = next;
    }
    if let (
        Some(wanted),
        Step::Item(Item::Value(Value::Array(array))) | Step::Value(Value::Array(array)),
    ) = (value, item)
    {
        if let Some(element) = array
            .iter()
            .find(|element| element.as_str() == Some(wanted))
        {
            return element.span().or(best);
        }
    }
    best
}

/// Where a walk down a TOML document is.
#[derive(Clone, Copy)]
enum Step<'a> {
    Table(&'a toml_edit::Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl Step<'_> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Self::Table(table) => table.span(),
            Self::Item(item) => item.span(),
            Self::Value(value) => value.span(),
        }
    }
}

/// Line and column (from 1, the column in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

/// Parses the file's text, so a syntax error names file, line and column.
pub(crate) fn check_syntax(path: &Path, text: &str) -> Result<(), ConfigError> {
    match ImDocument::parse(text) {
        Ok(_) => Ok(()),
        Err(error) => {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_and_column(text, span.start));
            Err(ConfigError::Syntax {
                file: path.to_path_buf(),
                line,
                column,
                message: error.message().trim().to_string(),
            })
        }
    }
}

/// Rejects every `DNS64D_…` variable that names no top-level key, naming
/// the nearest key there is (`DNS64D_CACHE_MAX_ENTRIES` is probably
/// `DNS64D_CACHE__MAX_ENTRIES`). Keys inside a known section are checked by
/// the schema (unknown fields are rejected there).
pub(crate) fn check_environment(variables: &[String]) -> Result<(), ConfigError> {
    for variable in variables {
        let Some(rest) = strip_prefix_ignore_case(variable, ENV_PREFIX) else {
            continue;
        };
        let top = rest.split("__").next().unwrap_or_default();
        if TOP_LEVEL_KEYS
            .iter()
            .any(|known| top.eq_ignore_ascii_case(known))
        {
            continue;
        }
        return Err(ConfigError::UnknownVariable {
            variable: variable.clone(),
            nearest: nearest_variable(rest),
        });
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// The known variable closest to `rest` (the name after `DNS64D_`).
fn nearest_variable(rest: &str) -> String {
    let wanted = rest.to_ascii_uppercase();
    variable_names()
        .into_iter()
        .min_by_key(|candidate| strsim::levenshtein(candidate, &wanted))
        .map(|name| format!("{ENV_PREFIX}{name}"))
        .unwrap_or_default()
}

/// Every key as a variable name after the prefix: `CACHE__MAX_ENTRIES`.
fn variable_names() -> Vec<String> {
    let mut names = Vec::new();
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(RawConfig::default()) else {
        return TOP_LEVEL_KEYS
            .iter()
            .map(|key| key.to_ascii_uppercase())
            .collect();
    };
    for key in TOP_LEVEL_KEYS {
        let upper = key.to_ascii_uppercase();
        if let Some(toml::Value::Table(section)) = table.get(key) {
            for field in section.keys() {
                names.push(format!("{upper}__{}", field.to_ascii_uppercase()));
            }
        }
        names.push(upper);
    }
    names
}

/// Turns figment's error (written for Rust types) into one naming the key,
/// the value and what is allowed; the origin is added by the caller.
pub(crate) fn translate(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let key = error.path.join(".");
    match &error.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            ConfigError::Invalid {
                origin: Origin::Unknown,
                key,
                value: actual_text(actual),
                reason: format!("expected {}", describe_expected(expected)),
            }
        }
        Kind::UnknownVariant(value, allowed) => ConfigError::Invalid {
            origin: Origin::Unknown,
            key,
            value: format!("{value:?}"),
            reason: format!("allowed: {}", quoted_list(allowed)),
        },
        Kind::UnknownField(field, allowed) => ConfigError::UnknownKey {
            origin: Origin::Unknown,
            key: if error.path.last() == Some(field) || key.is_empty() {
                if key.is_empty() { field.clone() } else { key }
            } else {
                format!("{key}.{field}")
            },
            allowed: allowed.join(", "),
        },
        Kind::MissingField(field) => ConfigError::Invalid {
            origin: Origin::Unknown,
            key: key.clone(),
            value: "(a table without it)".into(),
            reason: format!("`{field}` is required"),
        },
        _ => ConfigError::Load(Box::new(error)),
    }
}

/// A value as it would be written in TOML.
fn actual_text(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Bool(value) => value.to_string(),
        Actual::Unsigned(value) => value.to_string(),
        Actual::Signed(value) => value.to_string(),
        Actual::Float(value) => value.to_string(),
        Actual::Char(value) => format!("{:?}", value.to_string()),
        Actual::Str(value) => format!("{value:?}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string(),
    }
}

fn quoted_list(words: &[&str]) -> String {
    words
        .iter()
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serde's expectation for a Rust type, in an operator's words.
pub(crate) fn describe_expected(expected: &str) -> String {
    let words = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "a boolean" | "bool" => "true or false",
        "a string" => "a string in quotes",
        "a sequence" => "a list in brackets, like [\"a\", \"b\"]",
        other => return other.to_string(),
    };
    words.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_with_line_and_column() {
        let text = "listen = [\"127.0.0.1:53\"]\n[dns64]\nprefixes = [\"64:ff9b::/96\", \"64:ff9b::/80\"]\n\n[[listeners]]\naddress = \"x\"\n";
        let sources = Sources {
            file: Some((PathBuf::from("d.toml"), text.into())),
            ..Sources::default()
        };
        let cases = [
            ("listen", None, (1, 10)),
            ("dns64.prefixes", Some("64:ff9b::/80"), (3, 29)),
            ("dns64.prefixes", None, (3, 12)),
            ("listeners[0].address", None, (6, 11)),
            ("cache.max_entries", None, (0, 0)),
        ];
        for (key, value, (line, column)) in cases {
            let origin = sources.origin(key, value);
            if line == 0 {
                assert_eq!(origin, Origin::Default, "{key}");
            } else {
                assert_eq!(
                    origin,
                    Origin::File {
                        path: "d.toml".into(),
                        line,
                        column
                    },
                    "{key}"
                );
            }
        }
    }

    #[test]
    fn environment_and_flags_come_before_the_file() {
        let sources = Sources {
            file: Some((PathBuf::from("d.toml"), "[cache]\nmax_entries = 1\n".into())),
            environment: vec!["DNS64D_CACHE__MAX_ENTRIES".into()],
            flags: vec![("upstream.servers", "--upstream")],
        };
        assert_eq!(
            sources.origin("cache.max_entries", None),
            Origin::Environment {
                variable: "DNS64D_CACHE__MAX_ENTRIES".into()
            }
        );
        assert_eq!(
            sources.origin("upstream.servers", Some("x")),
            Origin::Flag { flag: "--upstream" }
        );
    }

    #[test]
    fn unknown_variables_name_the_nearest_key() {
        let cases = [
            ("DNS64D_CACHE_MAX_ENTRIES", "DNS64D_CACHE__MAX_ENTRIES"),
            ("DNS64D_CACHEE__MAX_ENTRIES", "DNS64D_CACHE__MAX_ENTRIES"),
            ("DNS64D_LOG_LEVEL", "DNS64D_LOG__LEVEL"),
        ];
        for (variable, nearest) in cases {
            let error = check_environment(&[variable.to_string()]).expect_err(variable);
            assert_eq!(
                error.to_string(),
                format!(
                    "environment variable {variable} names no configuration key; did you mean {nearest}? (nested keys are joined with two underscores: DNS64D_SECTION__KEY)"
                )
            );
        }
        assert!(check_environment(&["DNS64D_CACHE__MAX_ENTRIES".into(), "PATH".into()]).is_ok());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let error = check_syntax(Path::new("d.toml"), "[cache]\nmax_entries = = 3\n")
            .expect_err("bad syntax");
        let text = error.to_string();
        assert!(text.starts_with("d.toml:2:"), "{text}");
    }
}
