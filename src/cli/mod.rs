//! The binary's own pieces: the man page writer and the Windows service
//! (SCM) glue. Everything else the binary runs is in the library.

pub mod man;
#[cfg(windows)]
pub mod windows_scm;
