//! The Windows service: `install` / `uninstall` through the Service
//! Control Manager, and the SCM protocol when started as one
//! (StartServiceCtrlDispatcherW, RegisterServiceCtrlHandlerExW,
//! SetServiceStatus; stop and shutdown handled). All of it exists on XP.

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use dns64d_xp::text::{self, Buffer};
use windows_sys::Win32::Foundation::{ERROR_SERVICE_SPECIFIC_ERROR, NO_ERROR};
use windows_sys::Win32::Storage::FileSystem::DELETE;
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, CloseServiceHandle, ControlService, CreateServiceW, DeleteService,
    OpenSCManagerW, OpenServiceW, RegisterServiceCtrlHandlerExW, SC_HANDLE, SC_MANAGER_CONNECT,
    SC_MANAGER_CREATE_SERVICE, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP, SERVICE_ALL_ACCESS,
    SERVICE_AUTO_START, SERVICE_CONFIG_DESCRIPTION, SERVICE_CONTROL_INTERROGATE,
    SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_DESCRIPTIONW, SERVICE_ERROR_NORMAL,
    SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STOP,
    SERVICE_STOP_PENDING, SERVICE_STOPPED, SERVICE_TABLE_ENTRYW, SERVICE_WIN32_OWN_PROCESS,
    SetServiceStatus, StartServiceCtrlDispatcherW,
};

use super::system;

/// The service's name (`net start dns64d-xp`).
pub const NAME: &str = "dns64d-xp";
const DISPLAY_NAME: &str = "dns64d-xp DNS relay";
const DESCRIPTION: &str = "Answers DNS on 127.0.0.1:53 by relaying to the network's IPv6 DNS servers (XP's resolver speaks only IPv4).";

/// Set by the control handler (or Ctrl+C in the foreground): the relay
/// loop ends within its poll interval.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The status handle from RegisterServiceCtrlHandlerExW.
static STATUS_HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

/// NUL-terminated UTF-16 of a short constant.
fn wide<const N: usize>(text: &str) -> [u16; N] {
    let mut out = [0u16; N];
    // Truncation cannot happen for the constants used (checked by length).
    let _ = text::utf8_to_utf16(text, &mut out);
    out
}

/// Why install or uninstall failed.
#[derive(Debug, Clone, Copy)]
pub struct ServiceError {
    /// The failing call.
    pub call: &'static str,
    /// GetLastError.
    pub code: u32,
}

impl core::fmt::Display for ServiceError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(formatter, "{} failed with error {}", self.call, self.code)?;
        match self.code {
            5 => formatter.write_str(" (access denied: run it as an administrator)"),
            1060 => formatter.write_str(" (the service is not installed)"),
            1072 => formatter.write_str(
                " (the service is marked for deletion: close the Services window and try again)",
            ),
            1073 => formatter.write_str(" (already installed: `dns64d-xp uninstall` first)"),
            _ => Ok(()),
        }
    }
}

fn failed(call: &'static str) -> ServiceError {
    ServiceError {
        call,
        code: system::last_error(),
    }
}

/// A service handle closed on drop.
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: an open SCM handle, closed once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn open_manager(access: u32) -> Result<Handle, ServiceError> {
    // SAFETY: null machine and database mean the local active database.
    let manager = unsafe { OpenSCManagerW(core::ptr::null(), core::ptr::null(), access) };
    if manager.is_null() {
        return Err(failed("OpenSCManagerW"));
    }
    Ok(Handle(manager))
}

/// Registers the service to start automatically as LocalSystem, running
/// `"<this exe>" service <flags>`.
pub fn install(flags: &[&str]) -> Result<(), ServiceError> {
    let mut exe = Buffer::new();
    let mut command = Buffer::<1024>::new();
    let too_long = ServiceError {
        call: "building the service command line",
        code: 206,
    };
    system::exe_path(&mut exe).ok_or(too_long)?;
    text::push_argument(&mut command, exe.as_str()).ok_or(too_long)?;
    text::push_argument(&mut command, "service").ok_or(too_long)?;
    for flag in flags {
        text::push_argument(&mut command, flag).ok_or(too_long)?;
    }
    let mut command_wide = [0u16; 1024];
    text::utf8_to_utf16(command.as_str(), &mut command_wide).ok_or(too_long)?;
    let name: [u16; 16] = wide(NAME);
    let display: [u16; 32] = wide(DISPLAY_NAME);
    let mut description: [u16; 160] = wide(DESCRIPTION);
    let manager = open_manager(SC_MANAGER_CREATE_SERVICE)?;
    // SAFETY: NUL-terminated strings; null group, tag, dependencies,
    // account (LocalSystem) and password.
    let service = unsafe {
        CreateServiceW(
            manager.0,
            name.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            SERVICE_WIN32_OWN_PROCESS,
            SERVICE_AUTO_START,
            SERVICE_ERROR_NORMAL,
            command_wide.as_ptr(),
            core::ptr::null(),
            core::ptr::null_mut(),
            core::ptr::null(),
            core::ptr::null(),
            core::ptr::null(),
        )
    };
    if service.is_null() {
        return Err(failed("CreateServiceW"));
    }
    let service = Handle(service);
    let info = SERVICE_DESCRIPTIONW {
        lpDescription: description.as_mut_ptr(),
    };
    // SAFETY: a service handle and a description structure. Without the
    // description the service still works; the failure is ignored.
    unsafe {
        ChangeServiceConfig2W(
            service.0,
            SERVICE_CONFIG_DESCRIPTION,
            (&raw const info).cast(),
        )
    };
    let mut line = Buffer::<1100>::new();
    // Writing to a Buffer never fails.
    let _ = core::fmt::Write::write_fmt(
        &mut line,
        format_args!("service command line: {}", command.as_str()),
    );
    system::print(line.as_str());
    Ok(())
}

/// Stops the service if it runs and removes it.
pub fn uninstall() -> Result<(), ServiceError> {
    let manager = open_manager(SC_MANAGER_CONNECT)?;
    let name: [u16; 16] = wide(NAME);
    // SAFETY: an open manager and a NUL-terminated name.
    let service = unsafe {
        OpenServiceW(
            manager.0,
            name.as_ptr(),
            SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE,
        )
    };
    if service.is_null() {
        return Err(failed("OpenServiceW"));
    }
    let service = Handle(service);
    let mut status = SERVICE_STATUS::default();
    // SAFETY: an open service handle. Failing means it was not running.
    unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &mut status) };
    // SAFETY: an open service handle with DELETE access.
    if unsafe { DeleteService(service.0) } == 0 {
        return Err(failed("DeleteService"));
    }
    Ok(())
}

/// What the service runs once the SCM started it: a function given the
/// status reporter, returning the exit code (0 = clean stop).
pub type ServiceBody = fn(&Reporter) -> u32;

static BODY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Hands the process to the SCM, which calls `body` on its own thread;
/// returns when the service has stopped. Error 1063 means this was not
/// started by the SCM.
pub fn dispatch(body: ServiceBody) -> Result<(), ServiceError> {
    BODY.store(body as *mut (), Ordering::SeqCst);
    let mut name: [u16; 16] = wide(NAME);
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            lpServiceName: core::ptr::null_mut(),
            lpServiceProc: None,
        },
    ];
    // SAFETY: a table ending in a null entry; it and `name` outlive the call,
    // which returns only when the service stopped.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        return Err(failed("StartServiceCtrlDispatcherW"));
    }
    Ok(())
}

/// Reports the service's state to the SCM.
pub struct Reporter(());

impl Reporter {
    /// Tells the SCM the service is starting (within `wait_ms`).
    pub fn starting(&self, wait_ms: u32) {
        report(SERVICE_START_PENDING, 0, 0, wait_ms);
    }

    /// Tells the SCM the service is running and accepts stop and shutdown.
    pub fn running(&self) {
        report(
            SERVICE_RUNNING,
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN,
            0,
            0,
        );
    }
}

fn report(state: u32, accepted: u32, exit_code: u32, wait_ms: u32) {
    let handle = STATUS_HANDLE.load(Ordering::SeqCst);
    if handle.is_null() {
        return;
    }
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: accepted,
        dwWin32ExitCode: if exit_code == 0 {
            NO_ERROR
        } else {
            ERROR_SERVICE_SPECIFIC_ERROR
        },
        dwServiceSpecificExitCode: exit_code,
        dwCheckPoint: 0,
        dwWaitHint: wait_ms,
    };
    // SAFETY: a status handle from RegisterServiceCtrlHandlerExW.
    unsafe { SetServiceStatus(handle, &status) };
}

unsafe extern "system" fn service_main(
    _argument_count: u32,
    _arguments: *mut windows_sys::core::PWSTR,
) {
    let name: [u16; 16] = wide(NAME);
    // SAFETY: a NUL-terminated name and a handler with the documented signature.
    let handle = unsafe {
        RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(control_handler), core::ptr::null())
    };
    if handle.is_null() {
        return;
    }
    STATUS_HANDLE.store(handle, Ordering::SeqCst);
    let body = BODY.load(Ordering::SeqCst);
    if body.is_null() {
        report(SERVICE_STOPPED, 0, 1, 0);
        return;
    }
    // SAFETY: BODY holds a `ServiceBody` stored by `dispatch`.
    let body: ServiceBody = unsafe { core::mem::transmute::<*mut (), ServiceBody>(body) };
    let reporter = Reporter(());
    reporter.starting(5_000);
    let exit_code = body(&reporter);
    report(SERVICE_STOPPED, 0, exit_code, 0);
}

unsafe extern "system" fn control_handler(
    control: u32,
    _event_type: u32,
    _event_data: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            STOP.store(true, Ordering::SeqCst);
            report(SERVICE_STOP_PENDING, 0, 0, 1_000);
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => windows_sys::Win32::Foundation::ERROR_CALL_NOT_IMPLEMENTED,
    }
}
