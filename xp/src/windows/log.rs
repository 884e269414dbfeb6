//! The log: lines with a local timestamp, to the console when running in
//! the foreground and to `dns64d-xp.log` beside the exe when running as a
//! service. At `log_max_kb` the file is renamed to `dns64d-xp.log.1`
//! (replacing the previous one) and a new one is started, so the two never
//! hold more than twice the cap.

use core::fmt::{self, Write};

use dns64d_xp::text::{self, Buffer};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE, SYSTEMTIME};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_APPEND_DATA, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, GetFileSize,
    MOVEFILE_REPLACE_EXISTING, MoveFileExW, OPEN_ALWAYS, WriteFile,
};
use windows_sys::Win32::System::SystemInformation::GetLocalTime;

use super::system::{self, Global, PATH_LEN};

/// Where log lines go.
pub struct Log {
    to_console: bool,
    file: HANDLE,
    file_size: u32,
    max_bytes: u32,
    path: [u16; PATH_LEN],
    rotated_path: [u16; PATH_LEN],
}

static LOG: Global<Log> = Global::new(Log {
    to_console: true,
    file: INVALID_HANDLE_VALUE,
    file_size: 0,
    max_bytes: 0,
    path: [0; PATH_LEN],
    rotated_path: [0; PATH_LEN],
});

/// Sends log lines to the console (foreground) or not (service).
pub fn set_console(to_console: bool) {
    // SAFETY: `Global::get` needs no other reference to LOG alive. The log
    // is used only by the relay's thread (the main thread, or the service
    // thread while the main one waits in the dispatcher; the console and
    // service control handlers never log), and no function here holds its
    // reference while calling another that takes one.
    unsafe { LOG.get() }.to_console = to_console;
}

/// Opens (or reopens) `dns64d-xp.log` beside the exe for appending, capped
/// at `max_kb`. If it cannot, lines go to the console only (none for a
/// service): the relay works on without a log.
pub fn open_file(max_kb: u32) {
    // SAFETY: as in `set_console`.
    let log = unsafe { LOG.get() };
    let mut path = Buffer::new();
    let mut rotated = Buffer::new();
    if system::beside_exe("dns64d-xp.log", &mut path).is_none()
        || system::beside_exe("dns64d-xp.log.1", &mut rotated).is_none()
        || text::utf8_to_utf16(path.as_str(), &mut log.path).is_none()
        || text::utf8_to_utf16(rotated.as_str(), &mut log.rotated_path).is_none()
    {
        return;
    }
    log.max_bytes = max_kb.saturating_mul(1024);
    // A false return leaves no file open: lines go to the console only.
    let _ = log.reopen();
}

impl Log {
    fn reopen(&mut self) -> bool {
        if self.file != INVALID_HANDLE_VALUE {
            // SAFETY: our open handle, closed once.
            unsafe { CloseHandle(self.file) };
        }
        // SAFETY: a NUL-terminated path; append-only access.
        self.file = unsafe {
            CreateFileW(
                self.path.as_ptr(),
                FILE_APPEND_DATA,
                FILE_SHARE_READ,
                core::ptr::null(),
                OPEN_ALWAYS,
                FILE_ATTRIBUTE_NORMAL,
                core::ptr::null_mut(),
            )
        };
        if self.file == INVALID_HANDLE_VALUE {
            return false;
        }
        // SAFETY: an open handle; the high part is not asked for (capped far below 4 GiB).
        let size = unsafe { GetFileSize(self.file, core::ptr::null_mut()) };
        self.file_size = if size == u32::MAX { 0 } else { size };
        true
    }

    fn write_file(&mut self, line: &[u8]) {
        if self.file == INVALID_HANDLE_VALUE {
            return;
        }
        let length = line.len() as u32;
        if self.file_size.saturating_add(length) > self.max_bytes {
            // SAFETY: our open handle, closed before the rename.
            unsafe { CloseHandle(self.file) };
            self.file = INVALID_HANDLE_VALUE;
            // SAFETY: two NUL-terminated paths. A failed rename leaves the
            // old file, which is then appended to beyond the cap.
            unsafe {
                MoveFileExW(
                    self.path.as_ptr(),
                    self.rotated_path.as_ptr(),
                    MOVEFILE_REPLACE_EXISTING,
                )
            };
            if !self.reopen() {
                return;
            }
        }
        let mut written = 0;
        // SAFETY: `line` is valid for its length; the handle is open.
        unsafe {
            WriteFile(
                self.file,
                line.as_ptr(),
                length,
                &mut written,
                core::ptr::null_mut(),
            )
        };
        self.file_size = self.file_size.saturating_add(written);
    }
}

/// Logs one line: `2026-12-06 01:02:03 message`.
pub fn line(arguments: fmt::Arguments<'_>) {
    // SAFETY: as in `set_console`.
    let log = unsafe { LOG.get() };
    let mut time = SYSTEMTIME::default();
    // SAFETY: `time` is a live, writable SYSTEMTIME; GetLocalTime only writes it.
    unsafe { GetLocalTime(&mut time) };
    let mut text = Buffer::<512>::new();
    // Writing to a Buffer never fails; it cuts off what does not fit.
    let _ = write!(
        text,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}\r\n",
        time.wYear, time.wMonth, time.wDay, time.wHour, time.wMinute, time.wSecond, arguments
    );
    if !text.as_str().ends_with("\r\n") {
        // The message was cut: end the line anyway.
        let mut ended = Buffer::<514>::new();
        let _ = write!(ended, "{}\r\n", text.as_str().trim_end());
        emit(log, ended.as_bytes());
    } else {
        emit(log, text.as_bytes());
    }
}

fn emit(log: &mut Log, bytes: &[u8]) {
    if log.to_console {
        system::console(bytes);
    }
    log.write_file(bytes);
}

/// `log!("format", args)`: one log line.
macro_rules! log {
    ($($argument:tt)*) => {
        $crate::windows::log::line(format_args!($($argument)*))
    };
}
pub(crate) use log;
