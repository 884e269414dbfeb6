//! The Windows service for dns64d.exe (Windows 10 and later): the Service
//! Control Manager's protocol through the windows-service crate, so the
//! shim runs as a real service without NSSM or WinSW.
//!
//! - `dns64d install-service [flags]` registers the service `dns64d`
//!   (automatic start, LocalSystem) running `dns64d.exe run-service [flags]`;
//! - `dns64d uninstall-service` stops and removes it;
//! - `run-service` is what the SCM starts: it hands the process to the
//!   service dispatcher, whose thread runs `main`'s `run` with the flags.
//!   Stop and shutdown end it as Ctrl+C does in a console; the log goes to
//!   `dns64d.log` beside the exe (a service has no console).
//!
//! Windows XP and Vista have their own relay with its own service code:
//! `xp/` (dns64d-xp.exe).

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState as ScmState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::{Arguments, ServiceState};

/// The service's name (`sc query dns64d`, `net start dns64d`).
const NAME: &str = "dns64d";

/// The process's arguments for the service thread (without `run-service`).
static ARGUMENTS: OnceLock<Vec<OsString>> = OnceLock::new();
/// The status handle, once the service registered its control handler.
static STATUS: OnceLock<ServiceStatusHandle> = OnceLock::new();
/// Woken by a stop or shutdown request from the SCM.
static STOP: OnceLock<tokio::sync::Notify> = OnceLock::new();

/// Handles `install-service`, `uninstall-service` and `run-service`;
/// `None` for every other command line (the normal flags).
pub fn command() -> Option<ExitCode> {
    let arguments: Vec<OsString> = std::env::args_os().collect();
    let program = arguments
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("dns64d"));
    let flags = arguments.get(2..).unwrap_or(&[]);
    match arguments.get(1).and_then(|word| word.to_str()) {
        Some("install-service") => Some(install(&program, flags)),
        Some("uninstall-service") => Some(uninstall()),
        Some("run-service") => Some(run_service(program, flags)),
        _ => None,
    }
}

/// Resolves when the SCM asked the service to stop (never outside one).
pub async fn stop_requested() {
    stop_signal().notified().await;
}

fn stop_signal() -> &'static tokio::sync::Notify {
    STOP.get_or_init(tokio::sync::Notify::new)
}

/// Tells the SCM about a state change (no-op outside a service).
pub fn report(state: ServiceState) {
    let (current_state, controls_accepted) = match state {
        ServiceState::Ready | ServiceState::Reloading => (
            ScmState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        ),
        ServiceState::Stopping => (ScmState::StopPending, ServiceControlAccept::empty()),
    };
    set_status(current_state, controls_accepted, ServiceExitCode::Win32(0));
}

fn set_status(
    current_state: ScmState,
    controls_accepted: ServiceControlAccept,
    exit_code: ServiceExitCode,
) {
    let Some(handle) = STATUS.get() else { return };
    let wait_hint = match current_state {
        ScmState::StartPending | ScmState::StopPending => Duration::from_secs(10),
        _ => Duration::ZERO,
    };
    let status = ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state,
        controls_accepted,
        exit_code,
        checkpoint: 0,
        wait_hint,
        process_id: None,
    };
    if let Err(error) = handle.set_service_status(status) {
        tracing::warn!(%error, "SetServiceStatus failed");
    }
}

fn install(program: &OsString, flags: &[OsString]) -> ExitCode {
    // Check the flags now rather than at the first start.
    let check = std::iter::once(program.clone()).chain(flags.iter().cloned());
    if let Err(error) = Arguments::try_parse_from(check) {
        eprintln!("dns64d: install-service: {error}");
        return ExitCode::from(2);
    }
    let executable_path = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("dns64d: install-service: cannot find this program's path: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut launch_arguments = vec![OsString::from("run-service")];
    launch_arguments.extend(flags.iter().cloned());
    let info = ServiceInfo {
        name: OsString::from(NAME),
        display_name: OsString::from("dns64d DNS64 server"),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path,
        launch_arguments,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let result = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CREATE_SERVICE)
        .and_then(|manager| {
            let service = manager.create_service(&info, ServiceAccess::CHANGE_CONFIG)?;
            service.set_description(
                "DNS64 server / per-host DNS shim (dns64d): answers DNS and forwards over IPv6",
            )
        });
    match result {
        Ok(()) => {
            println!("installed the service {NAME}; start it with: sc.exe start {NAME}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "dns64d: install-service: {error} (run it as an administrator; `uninstall-service` first if it exists)"
            );
            ExitCode::FAILURE
        }
    }
}

fn uninstall() -> ExitCode {
    let result = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .and_then(|manager| {
            let service = manager.open_service(
                NAME,
                ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE,
            )?;
            // Not running is fine: deleting is what matters.
            let _ = service.stop();
            service.delete()
        });
    match result {
        Ok(()) => {
            println!("removed the service {NAME}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dns64d: uninstall-service: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_service(program: OsString, flags: &[OsString]) -> ExitCode {
    let mut arguments = vec![program];
    arguments.extend(flags.iter().cloned());
    // Set once, before the dispatcher starts the service thread.
    let _ = ARGUMENTS.set(arguments);
    match service_dispatcher::start(NAME, ffi_service_main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "dns64d: run-service is for the Service Control Manager ({error}); in a console run dns64d with its flags"
            );
            ExitCode::FAILURE
        }
    }
}

define_windows_service!(ffi_service_main, service_main);

/// The service thread: register for stop requests, log to a file, run.
fn service_main(_start_arguments: Vec<OsString>) {
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop_signal().notify_one();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(NAME, handler) else {
        return;
    };
    // Set once: this thread runs once per process.
    let _ = STATUS.set(handle);
    set_status(
        ScmState::StartPending,
        ServiceControlAccept::empty(),
        ServiceExitCode::Win32(0),
    );
    log_to_file();
    let arguments = ARGUMENTS.get().cloned().unwrap_or_default();
    let code = match Arguments::try_parse_from(arguments) {
        Ok(arguments) => crate::run(arguments),
        Err(error) => {
            eprintln!("dns64d: {error}");
            ExitCode::from(2)
        }
    };
    let exit_code = if code == ExitCode::SUCCESS {
        ServiceExitCode::Win32(0)
    } else {
        ServiceExitCode::ServiceSpecific(1)
    };
    set_status(ScmState::Stopped, ServiceControlAccept::empty(), exit_code);
}

/// Points standard error (where dns64d logs) at `dns64d.log` beside the exe.
fn log_to_file() {
    use std::os::windows::io::IntoRawHandle;
    let Some(path) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("dns64d.log"))
    else {
        return;
    };
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let handle = file.into_raw_handle();
    // SAFETY: `handle` is an open file handle we own and keep open for the
    // process's life; std's stderr looks the standard handle up on each write.
    unsafe {
        windows_sys::Win32::System::Console::SetStdHandle(
            windows_sys::Win32::System::Console::STD_ERROR_HANDLE,
            handle,
        );
    }
}
