//! Man pages from the clap definition: `dns64d --write-man-pages DIR` writes
//! `dns64d.8` and one `dns64d-NAME.8` per visible subcommand, so `--help` and
//! `man dns64d` come from the same source and a new flag reaches both.
//! `deploy/package.sh` runs it; `dns64d.toml(5)` is made there from README's
//! option table (`deploy/package/toml-man.py`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Command;

/// Man section of a system daemon.
const SECTION: &str = "8";

/// Writes the page of `command` and of each of its visible subcommands into
/// `directory` (created if missing) and prints each path written.
pub fn write(command: Command, directory: &Path) -> ExitCode {
    match write_pages(command, directory) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err((path, error)) => {
            eprintln!(
                "dns64d: cannot write the man page {}: {error}",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Sections clap does not know, appended to the page of the daemon itself.
const DAEMON_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reload the configuration; a bad one is rejected and the old one keeps serving.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting queries, answer those in flight, exit 0.
.SH EXIT STATUS
0 on a clean stop or a valid \fB\-\-check\-config\fR, 2 for a configuration error, 1 for
any other failure.
.SH ENVIRONMENT
.TP
\fBDNS64D_\fR\fISECTION\fR\fB__\fR\fIKEY\fR
Any configuration key, for example \fBDNS64D_CACHE__MAX_ENTRIES=5000\fR; between the file and
the flags in priority.
.TP
\fBRUST_LOG\fR
A log filter that overrides \fBlog.level\fR.
.SH FILES
.TP
\fI/etc/dns64d/dns64d.toml\fR
The configuration of \fBdns64d.service\fR; every key is in \fBdns64d.toml\fR(5).
.TP
\fIdns64d.service\fR, \fIdns64d\-shim.service\fR
The systemd units: the network DNS64 server, and the per\-host shim (\fB\-\-shim\fR).
.SH SEE ALSO
\fBdns64d.toml\fR(5), \fBsystemctl\fR(1), RFC 6147 (DNS64), RFC 6052 (IPv6 addressing of
IPv4/IPv6 translators), RFC 7050 (discovery of the NAT64 prefix)
"#;

/// The pages written, or the path that failed and why.
fn write_pages(
    command: Command,
    directory: &Path,
) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    std::fs::create_dir_all(directory).map_err(|error| (directory.to_path_buf(), error))?;
    // clap's own `help` subcommand needs no page: `--help` covers it.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let name = command.get_name().to_string();
    let version = command.get_version().unwrap_or_default().to_string();
    let mut pages = vec![(name.clone(), command.clone(), DAEMON_SECTIONS)];
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let page = format!("{name}-{}", subcommand.get_name());
        pages.push((page, subcommand.clone(), ""));
    }
    let mut written = Vec::new();
    for (page, command, extra) in pages {
        let path = directory.join(format!("{page}.{SECTION}"));
        let mut roff = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut roff)
            .and_then(|()| std::fs::write(&path, page_text(&roff, &page, &version, extra)))
            .map_err(|error| (path.clone(), error))?;
        written.push(path);
    }
    Ok(written)
}

/// clap_mangen's page with its `.TH` line written whole (clap_mangen leaves the
/// empty date unquoted, which shifts the source and manual into the wrong
/// fields) and `extra` appended.
fn page_text(roff: &[u8], page: &str, version: &str, extra: &str) -> String {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len() + extra.len() + 80);
    for line in text.lines() {
        if line.starts_with(".TH ") {
            out.push_str(&format!(
                ".TH {} {SECTION} \"\" \"dns64d {version}\" \"System Administration\"\n",
                page.to_uppercase()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command shaped like dns64d's: a visible flag, a hidden one and a
    /// subcommand.
    fn command() -> Command {
        Command::new("dns64d")
            .version("1.2.3")
            .about("A DNS64 server")
            .arg(
                clap::Arg::new("config")
                    .long("config")
                    .help("TOML configuration file"),
            )
            .arg(clap::Arg::new("secret").long("secret-flag").hide(true))
            .subcommand(Command::new("ctl").about("Talk to a running dns64d"))
    }

    #[test]
    fn writes_one_page_per_command_with_visible_flags_only() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let paths = write_pages(command(), directory.path()).expect("pages written");
        let names: Vec<_> = paths
            .iter()
            .map(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["dns64d.8", "dns64d-ctl.8"]);
        let main = std::fs::read_to_string(&paths[0]).expect("dns64d.8");
        assert!(
            main.starts_with(".ie \\n(.g .ds Aq"),
            "roff preamble: {main:.80}"
        );
        assert!(
            main.contains("\n.TH DNS64D 8 \"\" \"dns64d 1.2.3\" \"System Administration\"\n"),
            "{main}"
        );
        assert!(main.contains("\\-\\-config"), "{main}");
        assert!(
            !main.contains("secret"),
            "hidden flags stay out of the page: {main}"
        );
        let ctl = std::fs::read_to_string(&paths[1]).expect("dns64d-ctl.8");
        assert!(main.contains("\n.SH SEE ALSO\n"), "{main}");
        assert!(ctl.contains("Talk to a running dns64d"), "{ctl}");
        assert!(ctl.contains("\n.TH DNS64D-CTL 8 "), "{ctl}");
        assert!(!ctl.contains(".SH SIGNALS"), "{ctl}");
    }
}
