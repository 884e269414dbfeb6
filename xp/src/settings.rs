//! What the relay runs with, from the command line and the `key = value`
//! file beside the exe (`dns64d-xp.conf`, or `--config FILE`).
//!
//! Command line: `dns64d-xp COMMAND [--listen ADDR]... [--upstream ADDR]...
//! [--config FILE]`, with `--listen` and `--upstream` meaning what they mean
//! for dns64d (repeatable; the command line replaces the file's list).
//!
//! File keys (one per line, `#` starts a comment, blank lines ignored):
//!
//! | key | value | default |
//! |---|---|---|
//! | `listen` | address, repeatable | `127.0.0.1:53` |
//! | `upstream` | IPv6 address, repeatable | discovered |
//! | `timeout_ms` | 100–30000 | 2000 |
//! | `skip_failed_s` | 0–3600 | 30 |
//! | `log_max_kb` | 16–65536 | 1024 |

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV6};

use crate::address::{self, AddressError};
use crate::upstreams::MAX_UPSTREAMS;

/// The most listen addresses.
pub const MAX_LISTEN: usize = 4;

/// The default listen address: where XP's resolver is pointed.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// A number-valued key with its default and allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The key as written in the file.
    pub key: &'static str,
    /// The value when not given.
    pub default: u32,
    /// The smallest allowed value.
    pub min: u32,
    /// The largest allowed value.
    pub max: u32,
}

/// How long one attempt waits for an upstream.
pub const TIMEOUT_MS: Limit = Limit {
    key: "timeout_ms",
    default: 2_000,
    min: 100,
    max: 30_000,
};

/// How long a failed upstream is skipped.
pub const SKIP_FAILED_S: Limit = Limit {
    key: "skip_failed_s",
    default: 30,
    min: 0,
    max: 3_600,
};

/// The log file's size cap; at the cap it is renamed to `.log.1`.
pub const LOG_MAX_KB: Limit = Limit {
    key: "log_max_kb",
    default: 1_024,
    min: 16,
    max: 65_536,
};

/// What the invocation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Relay in the foreground, logging to the console (and the log file).
    Run,
    /// Register the Windows service (with the given flags).
    Install,
    /// Remove the Windows service.
    Uninstall,
    /// Started by the Service Control Manager.
    Service,
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// The parsed command line, borrowing its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arguments<'a> {
    /// The command.
    pub command: Command,
    /// `--config FILE`.
    pub config: Option<&'a str>,
    listen: [&'a str; MAX_LISTEN],
    listen_count: usize,
    upstream: [&'a str; MAX_UPSTREAMS],
    upstream_count: usize,
}

impl<'a> Arguments<'a> {
    /// The `--listen` values.
    pub fn listen(&self) -> &[&'a str] {
        self.listen.get(..self.listen_count).unwrap_or(&[])
    }

    /// The `--upstream` values.
    pub fn upstream(&self) -> &[&'a str] {
        self.upstream.get(..self.upstream_count).unwrap_or(&[])
    }
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    CommandLine,
    /// The file, at this line (1-based).
    Line(usize),
}

/// Where the upstream list came from (logged at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamSource {
    /// `--upstream`.
    CommandLine,
    /// `upstream =` in the file.
    File,
    /// Neither: the edge discovers them.
    None,
}

/// Why the command line or the file is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsError<'a> {
    /// A word that is no command or flag.
    UnknownArgument(&'a str),
    /// A second command word.
    SecondCommand(&'a str),
    /// A flag without its value.
    MissingValue(&'static str),
    /// More values than the relay keeps.
    TooMany {
        /// Where.
        origin: Origin,
        /// The key or flag.
        key: &'static str,
        /// The most allowed.
        max: usize,
    },
    /// An address that cannot be used.
    Address {
        /// Where.
        origin: Origin,
        /// The key or flag.
        key: &'static str,
        /// The value as written.
        value: &'a str,
        /// Why.
        error: AddressError,
    },
    /// A number that is no number or out of range.
    Number {
        /// The line.
        line: usize,
        /// The value as written.
        value: &'a str,
        /// The key and its range.
        limit: Limit,
    },
    /// A key the file does not know.
    UnknownKey {
        /// The line.
        line: usize,
        /// The key as written.
        key: &'a str,
    },
    /// A line that is not `key = value`.
    NotKeyValue {
        /// The line.
        line: usize,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandLine => formatter.write_str("command line"),
            Self::Line(line) => write!(formatter, "line {line}"),
        }
    }
}

impl fmt::Display for SettingsError<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownArgument(argument) => write!(
                formatter,
                "unknown argument {argument:?}; commands: run, install, uninstall, help; flags: --listen ADDR, --upstream ADDR, --config FILE"
            ),
            Self::SecondCommand(argument) => {
                write!(formatter, "a second command {argument:?}; give one")
            }
            Self::MissingValue(flag) => write!(formatter, "{flag} needs a value"),
            Self::TooMany { origin, key, max } => {
                write!(formatter, "{origin}: more than {max} values for {key}")
            }
            Self::Address {
                origin,
                key,
                value,
                error,
            } => write!(formatter, "{origin}: {key} {value:?}: {error}"),
            Self::Number { line, value, limit } => write!(
                formatter,
                "line {line}: {} = {value:?}: expected a whole number from {} to {}",
                limit.key, limit.min, limit.max
            ),
            Self::UnknownKey { line, key } => write!(
                formatter,
                "line {line}: unknown key {key:?}; known: listen, upstream, timeout_ms, skip_failed_s, log_max_kb"
            ),
            Self::NotKeyValue { line } => write!(formatter, "line {line}: expected `key = value`"),
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse_arguments<'a>(
    arguments: impl IntoIterator<Item = &'a str>,
) -> Result<Arguments<'a>, SettingsError<'a>> {
    let mut parsed = Arguments {
        command: Command::Help,
        config: None,
        listen: [""; MAX_LISTEN],
        listen_count: 0,
        upstream: [""; MAX_UPSTREAMS],
        upstream_count: 0,
    };
    let mut command = None;
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        let (flag, inline) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (argument, None),
        };
        let mut value = |name: &'static str| {
            inline
                .or_else(|| arguments.next())
                .ok_or(SettingsError::MissingValue(name))
        };
        match flag {
            "--listen" => {
                let text = value("--listen")?;
                push(
                    &mut parsed.listen,
                    &mut parsed.listen_count,
                    text,
                    "--listen",
                )?;
            }
            "--upstream" => {
                let text = value("--upstream")?;
                push(
                    &mut parsed.upstream,
                    &mut parsed.upstream_count,
                    text,
                    "--upstream",
                )?;
            }
            "--config" => parsed.config = Some(value("--config")?),
            "-h" | "--help" | "/?" | "help" => set_command(&mut command, Command::Help, argument)?,
            "-V" | "--version" | "version" => {
                set_command(&mut command, Command::Version, argument)?
            }
            "run" => set_command(&mut command, Command::Run, argument)?,
            "install" => set_command(&mut command, Command::Install, argument)?,
            "uninstall" => set_command(&mut command, Command::Uninstall, argument)?,
            "service" => set_command(&mut command, Command::Service, argument)?,
            _ => return Err(SettingsError::UnknownArgument(argument)),
        }
    }
    parsed.command = command.unwrap_or(Command::Help);
    Ok(parsed)
}

fn set_command<'a>(
    slot: &mut Option<Command>,
    command: Command,
    word: &'a str,
) -> Result<(), SettingsError<'a>> {
    if slot.is_some() {
        return Err(SettingsError::SecondCommand(word));
    }
    *slot = Some(command);
    Ok(())
}

fn push<'a, const N: usize>(
    list: &mut [&'a str; N],
    count: &mut usize,
    text: &'a str,
    key: &'static str,
) -> Result<(), SettingsError<'a>> {
    let slot = list.get_mut(*count).ok_or(SettingsError::TooMany {
        origin: Origin::CommandLine,
        key,
        max: N,
    })?;
    *slot = text;
    *count += 1;
    Ok(())
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    listen: [SocketAddr; MAX_LISTEN],
    listen_count: usize,
    upstreams: [SocketAddrV6; MAX_UPSTREAMS],
    upstream_count: usize,
    /// Where the upstreams came from.
    pub upstream_source: UpstreamSource,
    /// How long one attempt waits, in milliseconds.
    pub timeout_ms: u32,
    /// How long a failed upstream is skipped, in seconds.
    pub skip_failed_s: u32,
    /// The log file's cap in KiB.
    pub log_max_kb: u32,
}

impl Settings {
    /// Builds the settings from the command line and the file's text (if
    /// any): the file first, then `--listen` / `--upstream` replace its
    /// lists. Upstreams are checked against the final listen addresses.
    pub fn build<'a>(
        arguments: &Arguments<'a>,
        file: Option<&'a str>,
    ) -> Result<Self, SettingsError<'a>> {
        let unspecified = SocketAddrV6::new(core::net::Ipv6Addr::UNSPECIFIED, 0, 0, 0);
        let mut settings = Settings {
            listen: [DEFAULT_LISTEN; MAX_LISTEN],
            listen_count: 0,
            upstreams: [unspecified; MAX_UPSTREAMS],
            upstream_count: 0,
            upstream_source: UpstreamSource::None,
            timeout_ms: TIMEOUT_MS.default,
            skip_failed_s: SKIP_FAILED_S.default,
            log_max_kb: LOG_MAX_KB.default,
        };
        let mut file_upstreams: [(usize, &str); MAX_UPSTREAMS] = [(0, ""); MAX_UPSTREAMS];
        let mut file_upstream_count = 0;
        let replace_listen = !arguments.listen().is_empty();
        for (index, line) in file.unwrap_or("").lines().enumerate() {
            let number = index + 1;
            let line = line
                .split_once('#')
                .map_or(line, |(before, _)| before)
                .trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(SettingsError::NotKeyValue { line: number })?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "listen" if replace_listen => {}
                "listen" => settings.push_listen(value, Origin::Line(number), "listen")?,
                "upstream" => {
                    let slot = file_upstreams.get_mut(file_upstream_count).ok_or(
                        SettingsError::TooMany {
                            origin: Origin::Line(number),
                            key: "upstream",
                            max: MAX_UPSTREAMS,
                        },
                    )?;
                    *slot = (number, value);
                    file_upstream_count += 1;
                }
                "timeout_ms" => settings.timeout_ms = number_in(TIMEOUT_MS, value, number)?,
                "skip_failed_s" => {
                    settings.skip_failed_s = number_in(SKIP_FAILED_S, value, number)?
                }
                "log_max_kb" => settings.log_max_kb = number_in(LOG_MAX_KB, value, number)?,
                _ => return Err(SettingsError::UnknownKey { line: number, key }),
            }
        }
        for text in arguments.listen() {
            settings.push_listen(text, Origin::CommandLine, "--listen")?;
        }
        if settings.listen_count == 0 {
            settings.listen_count = 1;
        }
        if !arguments.upstream().is_empty() {
            settings.upstream_source = UpstreamSource::CommandLine;
            for text in arguments.upstream() {
                settings.push_upstream(text, Origin::CommandLine, "--upstream")?;
            }
        } else if file_upstream_count > 0 {
            settings.upstream_source = UpstreamSource::File;
            for &(line, text) in file_upstreams.get(..file_upstream_count).unwrap_or(&[]) {
                settings.push_upstream(text, Origin::Line(line), "upstream")?;
            }
        }
        Ok(settings)
    }

    fn push_listen<'a>(
        &mut self,
        text: &'a str,
        origin: Origin,
        key: &'static str,
    ) -> Result<(), SettingsError<'a>> {
        let address = address::parse_listen(text).map_err(|error| SettingsError::Address {
            origin,
            key,
            value: text,
            error,
        })?;
        let slot = self
            .listen
            .get_mut(self.listen_count)
            .ok_or(SettingsError::TooMany {
                origin,
                key,
                max: MAX_LISTEN,
            })?;
        *slot = address;
        self.listen_count += 1;
        Ok(())
    }

    fn push_upstream<'a>(
        &mut self,
        text: &'a str,
        origin: Origin,
        key: &'static str,
    ) -> Result<(), SettingsError<'a>> {
        let address = address::parse_upstream(text, self.listen()).map_err(|error| {
            SettingsError::Address {
                origin,
                key,
                value: text,
                error,
            }
        })?;
        let slot = self
            .upstreams
            .get_mut(self.upstream_count)
            .ok_or(SettingsError::TooMany {
                origin,
                key,
                max: MAX_UPSTREAMS,
            })?;
        *slot = address;
        self.upstream_count += 1;
        Ok(())
    }

    /// The addresses to listen on (UDP and TCP each).
    pub fn listen(&self) -> &[SocketAddr] {
        self.listen.get(..self.listen_count).unwrap_or(&[])
    }

    /// The configured upstreams; empty when the edge is to discover them.
    pub fn upstreams(&self) -> &[SocketAddrV6] {
        self.upstreams.get(..self.upstream_count).unwrap_or(&[])
    }
}

fn number_in<'a>(limit: Limit, value: &'a str, line: usize) -> Result<u32, SettingsError<'a>> {
    value
        .parse::<u32>()
        .ok()
        .filter(|number| (limit.min..=limit.max).contains(number))
        .ok_or(SettingsError::Number { line, value, limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Buffer;
    use core::fmt::Write;
    use core::net::Ipv6Addr;

    fn v6(text: &str, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(text.parse::<Ipv6Addr>().expect("test address"), port, 0, 0)
    }

    fn message(error: SettingsError<'_>) -> Buffer<256> {
        let mut text = Buffer::new();
        write!(text, "{error}").expect("never fails");
        text
    }

    #[test]
    fn command_lines() {
        let arguments = parse_arguments([
            "run",
            "--listen",
            "127.0.0.1:5353",
            "--upstream",
            "[2001:db8::53]:53",
            "--upstream=::1",
            "--config",
            "C:\\relay.conf",
        ])
        .expect("valid");
        assert_eq!(arguments.command, Command::Run);
        assert_eq!(arguments.listen(), &["127.0.0.1:5353"]);
        assert_eq!(arguments.upstream(), &["[2001:db8::53]:53", "::1"]);
        assert_eq!(arguments.config, Some("C:\\relay.conf"));
        let cases: &[(&str, &[&str], Result<Command, SettingsError<'_>>)] = &[
            ("nothing is help", &[], Ok(Command::Help)),
            (
                "install",
                &["install", "--upstream", "::1"],
                Ok(Command::Install),
            ),
            ("uninstall", &["uninstall"], Ok(Command::Uninstall)),
            ("service", &["service"], Ok(Command::Service)),
            ("version", &["--version"], Ok(Command::Version)),
            ("windows help", &["/?"], Ok(Command::Help)),
            (
                "missing value",
                &["run", "--upstream"],
                Err(SettingsError::MissingValue("--upstream")),
            ),
            (
                "unknown",
                &["run", "--verbose"],
                Err(SettingsError::UnknownArgument("--verbose")),
            ),
            (
                "two commands",
                &["run", "install"],
                Err(SettingsError::SecondCommand("install")),
            ),
            (
                "too many listeners",
                &[
                    "run", "--listen", "a", "--listen", "b", "--listen", "c", "--listen", "d",
                    "--listen", "e",
                ],
                Err(SettingsError::TooMany {
                    origin: Origin::CommandLine,
                    key: "--listen",
                    max: MAX_LISTEN,
                }),
            ),
        ];
        for (name, words, expected) in cases {
            let parsed = parse_arguments(words.iter().copied()).map(|arguments| arguments.command);
            assert_eq!(&parsed, expected, "{name}");
        }
    }

    #[test]
    fn defaults() {
        let arguments = parse_arguments(["run"]).expect("valid");
        let settings = Settings::build(&arguments, None).expect("valid");
        assert_eq!(settings.listen(), &[DEFAULT_LISTEN]);
        assert!(settings.upstreams().is_empty());
        assert_eq!(settings.upstream_source, UpstreamSource::None);
        assert_eq!(
            (
                settings.timeout_ms,
                settings.skip_failed_s,
                settings.log_max_kb
            ),
            (2_000, 30, 1_024)
        );
    }

    const FILE: &str = "# dns64d-xp.conf\n\
        listen = 127.0.0.1:53\n\
        \n\
        upstream = [2001:db8::53]:53   # the DNS64 server\n\
        upstream = 2001:db8::54\n\
        timeout_ms = 1500\n\
        skip_failed_s = 0\n\
        log_max_kb = 64\n";

    #[test]
    fn the_file_is_read_and_the_command_line_replaces_its_lists() {
        let plain = parse_arguments(["run"]).expect("valid");
        let settings = Settings::build(&plain, Some(FILE)).expect("valid");
        assert_eq!(
            settings.upstreams(),
            &[v6("2001:db8::53", 53), v6("2001:db8::54", 53)]
        );
        assert_eq!(settings.upstream_source, UpstreamSource::File);
        assert_eq!(
            (
                settings.timeout_ms,
                settings.skip_failed_s,
                settings.log_max_kb
            ),
            (1_500, 0, 64)
        );
        let flags = parse_arguments([
            "run",
            "--listen",
            "127.0.0.1:5353",
            "--upstream",
            "[::1]:5300",
        ])
        .expect("valid");
        let settings = Settings::build(&flags, Some(FILE)).expect("valid");
        assert_eq!(
            settings.listen(),
            &[SocketAddr::from(([127, 0, 0, 1], 5353))]
        );
        assert_eq!(settings.upstreams(), &[v6("::1", 5300)]);
        assert_eq!(settings.upstream_source, UpstreamSource::CommandLine);
        assert_eq!(
            settings.timeout_ms, 1_500,
            "the file's other keys still apply"
        );
    }

    #[test]
    fn file_errors_name_the_line_the_key_and_the_allowed_values() {
        let plain = parse_arguments(["run"]).expect("valid");
        let cases: &[(&str, &str)] = &[
            (
                "listen = 127.0.0.1\nupstream = 127.0.0.1\n",
                "line 2: upstream \"127.0.0.1\": an upstream must be an IPv6 address (the relay forwards over IPv6)",
            ),
            (
                "upstream = ::ffff:127.0.0.1\n",
                "line 1: upstream \"::ffff:127.0.0.1\": an IPv4-mapped address goes out over IPv4 (and may be the relay itself); use an IPv6 server",
            ),
            (
                "listen = [::1]:53\nupstream = ::1\n",
                "line 2: upstream \"::1\": it is the relay's own listen address (a loop)",
            ),
            (
                "\n\ntimeout_ms = 50\n",
                "line 3: timeout_ms = \"50\": expected a whole number from 100 to 30000",
            ),
            (
                "log_max_kb = lots\n",
                "line 1: log_max_kb = \"lots\": expected a whole number from 16 to 65536",
            ),
            (
                "upstreams = ::1\n",
                "line 1: unknown key \"upstreams\"; known: listen, upstream, timeout_ms, skip_failed_s, log_max_kb",
            ),
            ("upstream ::1\n", "line 1: expected `key = value`"),
            (
                "listen = 127.0.0.1:0\n",
                "line 1: listen \"127.0.0.1:0\": port 0 is not allowed",
            ),
        ];
        for &(file, expected) in cases {
            let error = Settings::build(&plain, Some(file)).expect_err(file);
            assert_eq!(message(error).as_str(), expected, "{file:?}");
        }
        let nine = "upstream = ::1\n".repeat_free::<9>();
        assert_eq!(
            Settings::build(&plain, Some(nine.as_str())).expect_err("nine"),
            SettingsError::TooMany {
                origin: Origin::Line(9),
                key: "upstream",
                max: MAX_UPSTREAMS
            }
        );
        let loopback = parse_arguments(["run", "--upstream", "::ffff:127.0.0.2"]).expect("valid");
        assert_eq!(
            message(Settings::build(&loopback, None).expect_err("loop")).as_str(),
            "command line: --upstream \"::ffff:127.0.0.2\": an IPv4-mapped address goes out over IPv4 (and may be the relay itself); use an IPv6 server"
        );
    }

    /// `str::repeat` needs an allocator; this repeats into a fixed buffer.
    trait RepeatFree {
        fn repeat_free<const COUNT: usize>(&self) -> Buffer<512>;
    }

    impl RepeatFree for str {
        fn repeat_free<const COUNT: usize>(&self) -> Buffer<512> {
            let mut buffer = Buffer::new();
            for _ in 0..COUNT {
                buffer.write_str(self).expect("never fails");
            }
            buffer
        }
    }
}
