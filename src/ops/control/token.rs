//! The token of the loopback control port: 256 random bits, made at every
//! start and written to a file that only the server's user and the
//! administrators may read, so whoever can read the file may control the
//! server, as the socket's permissions decide on Unix. `dns64d ctl` reads
//! the file and sends the token first on every connection; the server
//! compares it in constant time.
//!
//! The file is mode 0640 on Unix (owner and group, as the socket's 0660).
//! On Windows it is created with a protected access list (nothing inherited
//! from the folder) granting full control to SYSTEM, the Administrators
//! group and the file's owner (the account dns64d runs as) only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bytes of randomness in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// Why the token file cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file does not exist: the server is not running (it writes the
    /// file when it starts and removes it when it stops).
    #[error(
        "no control token file {}: dns64d writes it when it starts, so it is not running, or runs with another `[control] token_file` (check the configuration, or pass --token-file)",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file may not be read by this user.
    #[error(
        "permission denied on the control token file {}: run as the user dns64d runs as, as root, or (on Windows) as Administrator",
        path.display()
    )]
    Permission {
        /// The file.
        path: PathBuf,
    },
    /// The file holds something other than a token.
    #[error(
        "the control token file {} does not hold a control token ({TOKEN_BYTES} bytes as {} hexadecimal digits); dns64d rewrites it at every start",
        path.display(),
        TOKEN_BYTES * 2
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// Another failure reading the file.
    #[error("cannot read the control token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server cannot write the file.
    #[error("cannot write the control token file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A control token: lowercase hexadecimal text of [`TOKEN_BYTES`] random bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Token(…)") // never in logs
    }
}

impl Token {
    /// A new random token (`rand`'s thread generator: a CSPRNG seeded by the
    /// operating system).
    pub(crate) fn random() -> Self {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        Self(data_encoding::HEXLOWER.encode(&bytes))
    }

    /// A token as written in the file or on the wire; `None` if `text` is
    /// not one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let valid = text.len() == TOKEN_BYTES * 2
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        valid.then(|| Self(text.to_string()))
    }

    /// The token as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time independent of where they
    /// differ (so the answer time does not leak the token byte by byte).
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if given.len() != expected.len() {
            return false; // the length is no secret
        }
        given
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// The written token file; removed when dropped (the server stops).
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), %error, "cannot remove the control token file");
        }
    }
}

/// Writes `token` to `path` (its directory is created if missing). An old
/// file is removed first, so the new one always gets the restricted
/// permissions rather than keeping an old file's.
pub(crate) fn write(path: &Path, token: &Token) -> Result<TokenFile, TokenError> {
    let error = |source| TokenError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory).map_err(error)?;
    }
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => return Err(error(source)),
        _ => {}
    }
    let mut file = create_private(path).map_err(error)?;
    let written = TokenFile {
        path: path.to_path_buf(),
    };
    file.write_all(format!("{}\n", token.as_str()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(error)?;
    Ok(written)
}

/// Reads the token from `path` (for `dns64d ctl`).
pub(crate) fn read(path: &Path) -> Result<Token, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => TokenError::Missing { path },
            std::io::ErrorKind::PermissionDenied => TokenError::Permission { path },
            std::io::ErrorKind::InvalidData => TokenError::Malformed { path },
            _ => TokenError::Read { path, source },
        }
    })?;
    Token::parse(&text).ok_or_else(|| TokenError::Malformed {
        path: path.to_path_buf(),
    })
}

/// Creates `path` (it must not exist) readable and writable by its owner,
/// readable by its group.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)?;
    // The umask may have taken bits away; set exactly these.
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    Ok(file)
}

/// Creates `path` (it must not exist) with a protected access list: full
/// control for SYSTEM, the Administrators group and the file's owner,
/// nothing for anyone else and nothing inherited.
#[cfg(windows)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::FromRawHandle;
    use windows_sys::Win32::Foundation::{GENERIC_WRITE, INVALID_HANDLE_VALUE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
    use windows_sys::Win32::Storage::FileSystem::{CREATE_NEW, CreateFileW, FILE_ATTRIBUTE_NORMAL};

    // D: the access list; P: protected (no inherited entries); A;;FA;;;X:
    // allow full access to X: SY SYSTEM, BA Administrators, OW the owner.
    let sddl: Vec<u16> = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)"
        .encode_utf16()
        .chain([0])
        .collect();
    let wide_path: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is a NUL-terminated UTF-16 string; `descriptor` receives
    // a LocalAlloc'd descriptor, freed below; the size output is optional.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let attributes = SECURITY_ATTRIBUTES {
        nLength: u32::try_from(std::mem::size_of::<SECURITY_ATTRIBUTES>())
            .expect("SECURITY_ATTRIBUTES is a few bytes"),
        lpSecurityDescriptor: descriptor,
        bInheritHandle: 0,
    };
    // SAFETY: `wide_path` is NUL-terminated; `attributes` and the descriptor
    // it points to live until after the call; no template file.
    let handle = unsafe {
        CreateFileW(
            wide_path.as_ptr(),
            GENERIC_WRITE,
            0,
            &attributes,
            CREATE_NEW,
            FILE_ATTRIBUTE_NORMAL,
            std::ptr::null_mut(),
        )
    };
    let creation_error = std::io::Error::last_os_error();
    // SAFETY: `descriptor` came from the conversion above and is freed once.
    unsafe { LocalFree(descriptor) };
    if handle == INVALID_HANDLE_VALUE {
        return Err(creation_error);
    }
    // SAFETY: `handle` is a valid file handle that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_handle(handle) })
}

/// Neither Unix permissions nor Windows access lists: the file is created
/// with the system's default permissions.
#[cfg(not(any(unix, windows)))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_64_hex_digits_and_differ() {
        let first = Token::random();
        let second = Token::random();
        assert_eq!(first.as_str().len(), 64);
        assert_eq!(Token::parse(first.as_str()), Some(first.clone()));
        assert_ne!(first, second);
        assert_eq!(format!("{first:?}"), "Token(…)");
    }

    #[test]
    fn tokens_parse_and_match_exactly() {
        let token = Token::parse(&format!("{}\n", "ab".repeat(32))).expect("a token");
        assert!(token.matches("ab".repeat(32).as_bytes()));
        for (name, text) in [
            ("short", "ab".repeat(31)),
            ("long", "ab".repeat(33)),
            ("upper case", "AB".repeat(32)),
            ("not hex", "xy".repeat(32)),
            ("empty", String::new()),
        ] {
            assert_eq!(Token::parse(&text), None, "{name}");
        }
        for (name, given) in [
            ("one digit off", format!("{}ac", "ab".repeat(31))),
            ("short", "ab".repeat(31)),
            ("empty", String::new()),
            ("upper case", "AB".repeat(32)),
        ] {
            assert!(!token.matches(given.as_bytes()), "{name}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn the_file_is_written_0640_read_back_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("control.token");
        let token = Token::random();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let written = write(&path, &token).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", token.as_str())
        );
        assert_eq!(read(&path).unwrap(), token);
        drop(written);
        assert!(!path.exists());
        let error = read(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "no control token file {}: dns64d writes it when it starts, so it is not running, or runs with another `[control] token_file` (check the configuration, or pass --token-file)",
                path.display()
            )
        );
        std::fs::write(&path, "not a token\n").unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            format!(
                "the control token file {} does not hold a control token (32 bytes as 64 hexadecimal digits); dns64d rewrites it at every start",
                path.display()
            )
        );
    }
}
