//! `[control]` validated: where `dns64d ctl` reaches the running server.
//!
//! Two transports, one command protocol (`crate::ops::control`): a Unix socket
//! (`control.socket`, the default on Unix, where file permissions decide who
//! may use it), or a loopback TCP port (`control.address`, the default on
//! Windows, also selectable on Unix) where every connection starts with a
//! random token that the server writes at each start to `control.token_file`,
//! a file only its owner and the administrators may read.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;
use super::schema::{DEFAULT_CONTROL_SOCKET, RawControl};

/// The default `control.address` on Windows: loopback port 5364 ("53" and
/// "64"), below Windows' dynamic port range (49152–65535) and apart from
/// unbound-control's 8953.
pub const DEFAULT_CONTROL_ADDRESS: &str = "127.0.0.1:5364";

/// Where `dns64d ctl` reaches the running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEndpoint {
    /// A Unix socket (mode 0660: its owner and group may use it).
    UnixSocket(PathBuf),
    /// A loopback TCP port; each connection first sends the token the
    /// server wrote to `token_file`.
    Loopback {
        /// The loopback address and port.
        address: SocketAddr,
        /// The file holding the token.
        token_file: PathBuf,
    },
}

impl std::fmt::Display for ControlEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnixSocket(path) => write!(formatter, "{}", path.display()),
            Self::Loopback {
                address,
                token_file,
            } => write!(formatter, "{address} (token {})", token_file.display()),
        }
    }
}

/// The default `control.address`: the loopback port on Windows, `""` (the
/// Unix socket instead) elsewhere.
pub(super) fn default_address() -> String {
    if cfg!(windows) {
        DEFAULT_CONTROL_ADDRESS.to_string()
    } else {
        String::new()
    }
}

/// The default `control.socket`: `/run/dns64d/control.sock` on Unix, `""`
/// (none) where Unix sockets are not used.
pub(super) fn default_socket() -> PathBuf {
    if cfg!(unix) {
        PathBuf::from(DEFAULT_CONTROL_SOCKET)
    } else {
        PathBuf::new()
    }
}

/// The default `control.token_file`: `%ProgramData%\dns64d\control.token`
/// on Windows (`C:\ProgramData` if the variable is unset), beside the
/// socket in `/run/dns64d/` elsewhere.
pub fn default_token_file() -> PathBuf {
    if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
            .join("dns64d")
            .join("control.token")
    } else {
        PathBuf::from("/run/dns64d/control.token")
    }
}

/// Validates `[control]`: `None` when control is off. A Unix socket that
/// `control.address` makes unused is noted in `warnings`.
pub(super) fn validate(
    raw: &RawControl,
    warnings: &mut Vec<String>,
) -> Result<Option<ControlEndpoint>, ConfigError> {
    if !cfg!(unix) && !raw.socket.as_os_str().is_empty() {
        return Err(ConfigError::invalid(
            "control.socket",
            raw.socket.display(),
            format!(
                "Unix sockets are not used on this system; allowed: \"\" (control goes through control.address, a loopback address such as {DEFAULT_CONTROL_ADDRESS})"
            ),
        ));
    }
    let address_text = raw.address.trim();
    if address_text.is_empty() {
        if raw.socket.as_os_str().is_empty() {
            return Ok(None);
        }
        return Ok(Some(ControlEndpoint::UnixSocket(raw.socket.clone())));
    }
    let invalid = |reason: &str| ConfigError::invalid("control.address", &raw.address, reason);
    let address: SocketAddr = address_text.parse().map_err(|_| {
        invalid(&format!(
            "not a socket address; allowed: a loopback address and port such as {DEFAULT_CONTROL_ADDRESS} or [::1]:5364, or \"\" for {}",
            if cfg!(unix) {
                "the Unix socket control.socket"
            } else {
                "no control port"
            }
        ))
    })?;
    if !address.ip().is_loopback() {
        return Err(invalid(
            "not a loopback address; the control port takes commands from any local program that has the token, so it listens on 127.0.0.0/8 or ::1 only",
        ));
    }
    if address.port() == 0 {
        return Err(invalid(
            "port 0 is not allowed: dns64d ctl finds the server by this address, so it needs a fixed port (1-65535)",
        ));
    }
    if raw.token_file.as_os_str().is_empty() {
        return Err(ConfigError::invalid(
            "control.token_file",
            "",
            "a file is needed while control.address is set: the server writes its token there, and dns64d ctl reads it",
        ));
    }
    if !raw.socket.as_os_str().is_empty() && raw.socket != default_socket() {
        warnings.push(format!(
            "control.socket = {:?} is not used: control.address is set, so dns64d ctl reaches the server at {address}",
            raw.socket.display().to_string()
        ));
    }
    Ok(Some(ControlEndpoint::Loopback {
        address,
        token_file: raw.token_file.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(socket: &str, address: &str, token_file: &str) -> RawControl {
        RawControl {
            socket: PathBuf::from(socket),
            address: address.to_string(),
            token_file: PathBuf::from(token_file),
        }
    }

    #[test]
    fn endpoints_from_the_keys() {
        let loopback = |address: &str, token_file: &str| {
            Some(ControlEndpoint::Loopback {
                address: address.parse().unwrap(),
                token_file: PathBuf::from(token_file),
            })
        };
        let mut cases = vec![
            ("all empty: off", raw("", "", "/t"), None),
            (
                "an address",
                raw("", "127.0.0.1:5364", "/t"),
                loopback("127.0.0.1:5364", "/t"),
            ),
            (
                "another loopback address, spaces around",
                raw("", " 127.0.0.53:7000 ", "/t"),
                loopback("127.0.0.53:7000", "/t"),
            ),
            (
                "IPv6 loopback",
                raw("", "[::1]:5364", "/t"),
                loopback("[::1]:5364", "/t"),
            ),
        ];
        if cfg!(unix) {
            cases.push((
                "a socket",
                raw("/run/x.sock", "", "/t"),
                Some(ControlEndpoint::UnixSocket(PathBuf::from("/run/x.sock"))),
            ));
            cases.push((
                "the address wins over the socket",
                raw("/run/x.sock", "127.0.0.1:5364", "/t"),
                loopback("127.0.0.1:5364", "/t"),
            ));
        }
        for (name, raw, expected) in cases {
            let mut warnings = Vec::new();
            assert_eq!(validate(&raw, &mut warnings).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let mut cases = vec![
            (
                raw("", "localhost:5364", "/t"),
                "control.address = \"localhost:5364\": not a socket address; allowed: a loopback address and port such as 127.0.0.1:5364 or [::1]:5364, or \"\" for ",
            ),
            (
                raw("", "0.0.0.0:5364", "/t"),
                "control.address = \"0.0.0.0:5364\": not a loopback address; the control port takes commands from any local program that has the token, so it listens on 127.0.0.0/8 or ::1 only",
            ),
            (
                raw("", "[2001:db8::1]:5364", "/t"),
                "control.address = \"[2001:db8::1]:5364\": not a loopback address;",
            ),
            (
                raw("", "127.0.0.1:0", "/t"),
                "control.address = \"127.0.0.1:0\": port 0 is not allowed: dns64d ctl finds the server by this address, so it needs a fixed port (1-65535)",
            ),
            (
                raw("", "127.0.0.1:5364", ""),
                "control.token_file = \"\": a file is needed while control.address is set: the server writes its token there, and dns64d ctl reads it",
            ),
        ];
        if !cfg!(unix) {
            for address in ["", "127.0.0.1:5364"] {
                cases.push((
                    raw("/run/x.sock", address, "/t"),
                    "control.socket = \"/run/x.sock\": Unix sockets are not used on this system; allowed: \"\" (control goes through control.address, a loopback address such as 127.0.0.1:5364)",
                ));
            }
        }
        for (raw, expected) in cases {
            let error = validate(&raw, &mut Vec::new())
                .expect_err("rejected")
                .to_string();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn an_unused_socket_is_a_warning() {
        let mut warnings = Vec::new();
        validate(&raw("/run/x.sock", "127.0.0.1:5364", "/t"), &mut warnings).unwrap();
        assert_eq!(
            warnings,
            [
                "control.socket = \"/run/x.sock\" is not used: control.address is set, so dns64d ctl reaches the server at 127.0.0.1:5364"
            ]
        );
        // The default socket, left as it is, says nothing.
        let mut warnings = Vec::new();
        validate(
            &raw(DEFAULT_CONTROL_SOCKET, "127.0.0.1:5364", "/t"),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(warnings, Vec::<String>::new());
    }
}
