//! Replays the committed seeds and every saved crash input through the same
//! checks the fuzz targets run, on stable and without libFuzzer:
//!
//!     cargo test --manifest-path fuzz/Cargo.toml --test replay

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    let mut failed = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|entry| entry.expect("dir entry").path())
            .collect();
        paths.sort();
        for path in paths {
            if !path.is_file() || path.extension().is_some_and(|ext| ext == "md") {
                continue;
            }
            let data = fs::read(&path).expect("read input");
            eprintln!("replaying {}", path.display());
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for {target}");
    assert!(
        failed.is_empty(),
        "{} input(s) failed: {failed:#?}",
        failed.len()
    );
}

#[test]
fn request_path_inputs() {
    replay("request_path", dns64d_fuzz::request_path::check);
}

#[test]
fn synthesis_inputs() {
    replay("synthesis", dns64d_fuzz::synthesis::check);
}
