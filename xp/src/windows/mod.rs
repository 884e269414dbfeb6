//! The Windows edge of dns64d-xp: the process entry point, the commands
//! (`run`, `install`, `uninstall`, `service`), and the wiring of settings,
//! upstream discovery, log and relay.
//!
//! There is no Rust std and no C runtime start-up: std needs Windows 10
//! APIs, and mingw's crt2.o is linked out (`-nostartfiles`, see build.rs),
//! so `mainCRTStartup` below is the entry point and every import is a
//! Win32 function XP has (checked by `xp/check-pe.py` in CI).

mod discover;
pub(crate) mod log;
mod net;
mod relay;
mod service;
mod system;

use core::fmt::Write;
use core::net::SocketAddrV6;
use core::sync::atomic::Ordering;

use dns64d_xp::address::WELL_KNOWN_SITE_LOCAL;
use dns64d_xp::settings::{self, Arguments, Command, Settings, UpstreamSource};
use dns64d_xp::text::{self, Buffer};
use dns64d_xp::upstreams::{MAX_UPSTREAMS, Upstreams};
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::Win32::System::Environment::GetCommandLineW;
use windows_sys::Win32::System::Threading::ExitProcess;

use log::log;
use system::Global;

/// Exit codes (also the service-specific exit code).
mod exit {
    /// Clean stop.
    pub const OK: u32 = 0;
    /// Something else failed (Winsock start, install, the SCM).
    pub const FAILURE: u32 = 1;
    /// Bad command line or configuration file.
    pub const USAGE: u32 = 2;
}

/// The longest command line handled, in bytes of UTF-8.
const COMMAND_LINE_LEN: usize = 4096;
/// The largest configuration file.
const CONFIG_FILE_LEN: usize = 16 * 1024;

/// The command line and file text (all zero at start, so in .bss, not in
/// the file).
struct Inputs {
    line: [u8; COMMAND_LINE_LEN],
    split: [u8; COMMAND_LINE_LEN],
    file: [u8; CONFIG_FILE_LEN],
}

static INPUTS: Global<Inputs> = Global::new(Inputs {
    line: [0; COMMAND_LINE_LEN],
    split: [0; COMMAND_LINE_LEN],
    file: [0; CONFIG_FILE_LEN],
});

/// The settings, handed from `main` to the service thread.
static SETTINGS: Global<Option<Settings>> = Global::new(None);

const USAGE: &str = concat!(
    "usage: dns64d-xp COMMAND [--listen ADDR]... [--upstream ADDR]... [--config FILE]\r\n",
    "\r\n",
    "commands:\r\n",
    "  run        relay in the foreground, logging to the console (Ctrl+C stops)\r\n",
    "  install    register the Windows service dns64d-xp with these flags (then: net start dns64d-xp)\r\n",
    "  uninstall  stop and remove the service\r\n",
    "\r\n",
    "  --listen ADDR     address to answer on, UDP and TCP (default 127.0.0.1:53; repeatable)\r\n",
    "  --upstream ADDR   IPv6 DNS server, [2001:db8::53]:53 or 2001:db8::53 (repeatable); default:\r\n",
    "                    the file's, else the IPv6 DNS servers of the adapters that are up,\r\n",
    "                    else fec0:0:0:ffff::1, ::2, ::3\r\n",
    "  --config FILE     key = value file (default dns64d-xp.conf beside the exe, if present)\r\n",
);

/// The process entry point (named so for the linker; see build.rs).
#[unsafe(no_mangle)]
pub extern "C" fn mainCRTStartup() -> ! {
    let code = main();
    // SAFETY: ExitProcess takes an integer and has no preconditions; it
    // does not return.
    unsafe { ExitProcess(code) }
}

/// Panics cannot unwind without std; end the process with code 101 as
/// Rust's std does. Nothing in the relay panics on input (no unwrap or
/// unchecked indexing on packet or configuration data).
#[panic_handler]
fn panic(_information: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: as in `mainCRTStartup`.
    unsafe { ExitProcess(101) }
}

/// core is built for unwinding; its (unused) unwind paths name this
/// symbol in unoptimised builds. Never called: the panic handler exits.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Referenced by libgcc's frame registration on i686 (normally provided
/// by crtbegin.o, linked out with the C runtime start-up). No frames are
/// registered: nothing unwinds.
#[cfg(target_arch = "x86")]
#[unsafe(no_mangle)]
pub extern "C" fn __register_frame_info(_begin: *const u8, _object: *mut u8) {}

/// See `__register_frame_info`.
#[cfg(target_arch = "x86")]
#[unsafe(no_mangle)]
pub extern "C" fn __deregister_frame_info(_begin: *const u8) -> *mut u8 {
    core::ptr::null_mut()
}

fn main() -> u32 {
    // SAFETY: `main` runs once, before any other user of the inputs.
    let inputs = unsafe { INPUTS.get() };
    // SAFETY: GetCommandLineW returns the process's NUL-terminated line,
    // valid for the process's life.
    let wide = unsafe { GetCommandLineW() };
    let mut length = 0;
    // SAFETY: reads up to the NUL of that line.
    while unsafe { *wide.add(length) } != 0 {
        length += 1;
    }
    // SAFETY: `length` units before the NUL.
    let wide = unsafe { core::slice::from_raw_parts(wide, length) };
    let Some(line) = text::utf16_to_utf8(wide, &mut inputs.line) else {
        system::print_error("dns64d-xp: the command line is too long");
        return exit::USAGE;
    };
    let Some(mut words) = text::split_command_line(line, &mut inputs.split) else {
        system::print_error("dns64d-xp: the command line is too long");
        return exit::USAGE;
    };
    words.next(); // the program name
    let flags = words.clone();
    let arguments = match settings::parse_arguments(words) {
        Ok(arguments) => arguments,
        Err(error) => {
            error_line(format_args!("dns64d-xp: {error}"));
            return exit::USAGE;
        }
    };
    match arguments.command {
        Command::Help => {
            system::standard_output(USAGE.as_bytes());
            exit::OK
        }
        Command::Version => {
            system::print(concat!("dns64d-xp ", env!("CARGO_PKG_VERSION")));
            exit::OK
        }
        Command::Install => {
            // Check the flags and the file now, not at the first start.
            if let Err(code) = load_settings(&arguments, &mut inputs.file) {
                return code;
            }
            let mut list = [""; 32];
            let mut count = 0;
            for (slot, flag) in list.iter_mut().zip(flags.skip(1)) {
                *slot = flag;
                count += 1;
            }
            match service::install(&list[..count]) {
                Ok(()) => {
                    system::print(
                        "installed the service dns64d-xp; start it with: net start dns64d-xp",
                    );
                    exit::OK
                }
                Err(error) => {
                    error_line(format_args!("dns64d-xp: install: {error}"));
                    exit::FAILURE
                }
            }
        }
        Command::Uninstall => match service::uninstall() {
            Ok(()) => {
                system::print("removed the service dns64d-xp");
                exit::OK
            }
            Err(error) => {
                error_line(format_args!("dns64d-xp: uninstall: {error}"));
                exit::FAILURE
            }
        },
        Command::Run => {
            let settings = match load_settings(&arguments, &mut inputs.file) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            // SAFETY: `console_handler` has the HandlerRoutine signature
            // and only stores an atomic, which is sound on the thread
            // Windows runs it on.
            unsafe { SetConsoleCtrlHandler(Some(console_handler), 1) };
            serve(&settings, None)
        }
        Command::Service => {
            // A service has no console: everything, configuration errors
            // included, goes to the log file, and the SCM is told the exit
            // code (the service thread runs even for a bad configuration).
            log::set_console(false);
            SERVICE_MODE.store(true, Ordering::SeqCst);
            log::open_file(settings::LOG_MAX_KB.default);
            if let Ok(settings) = load_settings(&arguments, &mut inputs.file) {
                log::open_file(settings.log_max_kb);
                // SAFETY: only `main` uses it until the dispatcher starts the service thread.
                *unsafe { SETTINGS.get() } = Some(settings);
            }
            match service::dispatch(service_body) {
                Ok(()) => exit::OK,
                Err(error) => {
                    error_line(format_args!(
                        "dns64d-xp: {error}: `service` is for the Service Control Manager; use `run` in a console"
                    ));
                    exit::FAILURE
                }
            }
        }
    }
}

/// Runs on the service thread once the SCM started the service.
fn service_body(reporter: &service::Reporter) -> u32 {
    // SAFETY: the main thread is inside StartServiceCtrlDispatcherW and
    // no longer touches the settings.
    match unsafe { SETTINGS.get() } {
        Some(settings) => serve(settings, Some(reporter)),
        None => exit::USAGE,
    }
}

/// Set when started by the SCM: errors go to the log file.
static SERVICE_MODE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Prints an error to the console and, for the service, the log.
fn error_line(arguments: core::fmt::Arguments<'_>) {
    let mut line = Buffer::<600>::new();
    // Writing to a Buffer never fails.
    let _ = line.write_fmt(arguments);
    if SERVICE_MODE.load(Ordering::SeqCst) {
        log!("{}", line.as_str());
    } else {
        system::print_error(line.as_str());
    }
}

/// Reads the file (the `--config` one, or `dns64d-xp.conf` beside the exe
/// if present) and builds the settings; errors are printed.
fn load_settings<'a>(
    arguments: &Arguments<'a>,
    file_buffer: &'a mut [u8],
) -> Result<Settings, u32> {
    let mut default_path = Buffer::new();
    let (path, required) = match arguments.config {
        Some(path) => (path, true),
        None => {
            if system::beside_exe("dns64d-xp.conf", &mut default_path).is_none() {
                return Settings::build(arguments, None).map_err(|error| {
                    error_line(format_args!("dns64d-xp: {error}"));
                    exit::USAGE
                });
            }
            (default_path.as_str(), false)
        }
    };
    let file = match system::read_text(path, file_buffer) {
        Ok(text) => Some(text),
        Err(system::ReadError::Open(_)) if !required => None,
        Err(error) => {
            error_line(format_args!("dns64d-xp: cannot read {path}: {error:?}"));
            return Err(exit::USAGE);
        }
    };
    Settings::build(arguments, file).map_err(|error| {
        if file.is_some()
            && !matches!(
                error,
                settings::SettingsError::Address {
                    origin: settings::Origin::CommandLine,
                    ..
                }
            )
        {
            error_line(format_args!("dns64d-xp: {path}: {error}"));
        } else {
            error_line(format_args!("dns64d-xp: {error}"));
        }
        exit::USAGE
    })
}

/// Starts Winsock, picks the upstreams, binds and relays until stopped.
fn serve(settings: &Settings, reporter: Option<&service::Reporter>) -> u32 {
    if let Err(code) = net::start() {
        log!("cannot start Winsock 2.2 (error {code})");
        return exit::FAILURE;
    }
    let mut found = [WELL_KNOWN_SITE_LOCAL[0]; MAX_UPSTREAMS];
    let (list, source): (&[SocketAddrV6], &str) = match settings.upstream_source {
        UpstreamSource::CommandLine => (settings.upstreams(), "command line"),
        UpstreamSource::File => (settings.upstreams(), "configuration file"),
        UpstreamSource::None => {
            match discover::adapter_dns_servers(settings.listen(), &mut found) {
                Ok(count) if count > 0 => (&found[..count], "the adapters' IPv6 DNS servers"),
                Ok(_) => (
                    &WELL_KNOWN_SITE_LOCAL[..],
                    "well-known site-local (no adapter has an IPv6 DNS server)",
                ),
                Err(code) => {
                    log!("GetAdaptersAddresses failed with error {code}");
                    (
                        &WELL_KNOWN_SITE_LOCAL[..],
                        "well-known site-local (the adapters could not be read)",
                    )
                }
            }
        }
    };
    let upstreams = Upstreams::new(list, settings.skip_failed_s.saturating_mul(1000));
    let mut relay = match relay::Relay::bind(
        settings.listen(),
        upstreams.clone(),
        settings.timeout_ms,
        settings.upstream_source == UpstreamSource::None,
    ) {
        Ok(relay) => relay,
        Err(error) => {
            log!("dns64d-xp: {error}");
            return error.exit_code();
        }
    };
    if let Some(reporter) = reporter {
        reporter.running();
    }
    let mut line = Buffer::<400>::new();
    for (index, address) in settings.listen().iter().enumerate() {
        let _ = write!(line, "{}{address}", if index == 0 { "" } else { ", " });
    }
    let _ = write!(line, " (UDP and TCP) -> upstreams from {source}:");
    for address in upstreams.addresses() {
        let _ = write!(line, " {address}");
    }
    log!(
        "dns64d-xp {} relaying {}",
        env!("CARGO_PKG_VERSION"),
        line.as_str()
    );
    relay.serve(&service::STOP);
    log!("stopped");
    exit::OK
}

/// Ctrl+C, Ctrl+Break or closing the console: stop the relay loop.
unsafe extern "system" fn console_handler(_event: u32) -> windows_sys::core::BOOL {
    service::STOP.store(true, Ordering::SeqCst);
    1
}
