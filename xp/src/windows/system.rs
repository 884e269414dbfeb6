//! Small Win32 helpers: the tick, random numbers, the exe's folder, whole
//! small files, console output, a global cell for single-threaded state.

use core::cell::UnsafeCell;
use core::fmt::Write;

use dns64d_xp::Tick;
use dns64d_xp::text::{self, Buffer};
use windows_sys::Win32::Foundation::{CloseHandle, GENERIC_READ, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Security::Authentication::Identity::RtlGenRandom;
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, OPEN_EXISTING, ReadFile, WriteFile,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_ERROR_HANDLE, STD_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::LibraryLoader::GetModuleFileNameW;
use windows_sys::Win32::System::SystemInformation::GetTickCount;

/// The longest path handled (MAX_PATH; XP's limit for most calls).
pub const PATH_LEN: usize = 260;

/// State used by one thread at a time (the relay's tables, the log); the
/// program is single-threaded except for the service control handler,
/// which only touches atomics.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: each `Global` is used by one thread at a time: the main thread,
// or the service's main thread after the dispatcher started it (the main
// thread then waits inside StartServiceCtrlDispatcherW and touches none).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// A cell with `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// The value, for the one thread using it.
    ///
    /// # Safety
    /// No other reference to the value may be alive (see the `Sync` note).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller guarantees exclusive use.
        unsafe { &mut *self.0.get() }
    }
}

/// Milliseconds since boot, wrapping every 49.7 days.
pub fn now() -> Tick {
    // SAFETY: GetTickCount takes no arguments and has no preconditions.
    unsafe { GetTickCount() }
}

/// Four random bytes from RtlGenRandom (advapi32's SystemFunction036,
/// present since XP). Falls back to the tick mixed with a counter if it
/// fails, which it does not on a working system.
pub fn random_u32() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: the buffer is the 4 bytes of `value`.
    let ok = unsafe { RtlGenRandom((&raw mut value).cast(), 4) };
    if ok {
        value
    } else {
        now().wrapping_mul(2_654_435_761)
    }
}

/// Writes `bytes` to standard error (log lines and errors; ignored without a console).
pub fn console(bytes: &[u8]) {
    write_standard(STD_ERROR_HANDLE, bytes);
}

/// Writes `bytes` to standard output (usage, version, command results).
pub fn standard_output(bytes: &[u8]) {
    write_standard(STD_OUTPUT_HANDLE, bytes);
}

fn write_standard(which: STD_HANDLE, bytes: &[u8]) {
    // SAFETY: GetStdHandle takes one of the STD_*_HANDLE constants, as
    // `which` is, and reads no memory of ours.
    let handle = unsafe { GetStdHandle(which) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return;
    }
    let mut written = 0;
    // SAFETY: `bytes` is valid for its length; a console that went away
    // only makes WriteFile fail, which changes nothing here.
    unsafe {
        WriteFile(
            handle,
            bytes.as_ptr(),
            bytes.len() as u32,
            &mut written,
            core::ptr::null_mut(),
        );
    }
}

/// Prints a line to standard output.
pub fn print(text: &str) {
    standard_output(text.as_bytes());
    standard_output(b"\r\n");
}

/// Prints a line to standard error.
pub fn print_error(text: &str) {
    console(text.as_bytes());
    console(b"\r\n");
}

/// The exe's own path as UTF-16 with its NUL and its UTF-8 form.
pub fn exe_path(utf8: &mut Buffer<{ PATH_LEN * 3 }>) -> Option<()> {
    let mut wide = [0u16; PATH_LEN];
    // SAFETY: the buffer holds PATH_LEN units; a null module is the exe.
    let length =
        unsafe { GetModuleFileNameW(core::ptr::null_mut(), wide.as_mut_ptr(), PATH_LEN as u32) }
            as usize;
    if length == 0 || length >= PATH_LEN {
        return None;
    }
    let mut bytes = [0u8; PATH_LEN * 3];
    let path = text::utf16_to_utf8(wide.get(..length)?, &mut bytes)?;
    utf8.clear();
    utf8.write_str(path).ok()
}

/// The exe's folder with `name` appended (`C:\dir\name`).
pub fn beside_exe(name: &str, out: &mut Buffer<{ PATH_LEN * 3 }>) -> Option<()> {
    let mut exe = Buffer::new();
    exe_path(&mut exe)?;
    let folder = exe
        .as_str()
        .rsplit_once('\\')
        .map_or("", |(folder, _)| folder);
    out.clear();
    write!(out, "{folder}\\{name}").ok()?;
    (out.as_bytes().len() == folder.len() + 1 + name.len()).then_some(())
}

/// Why a file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// It does not exist or cannot be opened (the Win32 error code).
    Open(u32),
    /// Larger than the buffer.
    TooLarge,
    /// Not UTF-8 text.
    NotText,
}

/// Reads a small text file whole into `buffer`.
pub fn read_text<'a>(path: &str, buffer: &'a mut [u8]) -> Result<&'a str, ReadError> {
    let mut wide = [0u16; PATH_LEN];
    let wide = text::utf8_to_utf16(path, &mut wide).ok_or(ReadError::TooLarge)?;
    // SAFETY: a NUL-terminated path; read-only, shared read.
    let handle = unsafe {
        CreateFileW(
            wide.as_ptr(),
            GENERIC_READ,
            FILE_SHARE_READ,
            core::ptr::null(),
            OPEN_EXISTING,
            FILE_ATTRIBUTE_NORMAL,
            core::ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return Err(ReadError::Open(last_error()));
    }
    let mut total = 0usize;
    let result = loop {
        let Some(rest) = buffer.get_mut(total..) else {
            break Err(ReadError::TooLarge);
        };
        if rest.is_empty() {
            break Err(ReadError::TooLarge);
        }
        let mut read = 0u32;
        // SAFETY: `rest` is valid for its length; the handle is open.
        let ok = unsafe {
            ReadFile(
                handle,
                rest.as_mut_ptr(),
                rest.len() as u32,
                &mut read,
                core::ptr::null_mut(),
            )
        };
        if ok == 0 {
            break Err(ReadError::Open(last_error()));
        }
        if read == 0 {
            break Ok(());
        }
        total += read as usize;
    };
    // SAFETY: the handle was opened above and is closed once.
    unsafe { CloseHandle(handle) };
    result?;
    let bytes = buffer.get(..total).ok_or(ReadError::TooLarge)?;
    // A UTF-8 byte-order mark (Notepad writes one) is skipped.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    core::str::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

/// GetLastError.
pub fn last_error() -> u32 {
    // SAFETY: GetLastError takes no arguments and reads thread state only.
    unsafe { windows_sys::Win32::Foundation::GetLastError() }
}
