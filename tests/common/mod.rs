//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;

/// The built `esx` binary, run in `dir`.
pub fn esx(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("esx").expect("the esx binary is built");
    cmd.current_dir(dir)
        .env_remove("ESX_RUNS")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs esx expecting failure; returns stderr, checked to be one line.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = esx(dir).args(args).output().expect("esx runs");
    assert!(!out.status.success(), "esx {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(
        err.lines().count(),
        1,
        "one-line error expected, got:\n{err}"
    );
    err
}

/// Runs esx expecting success; returns stdout.
pub fn succeeds(dir: &Path, args: &[&str]) -> String {
    let out = esx(dir).args(args).output().expect("esx runs");
    assert!(
        out.status.success(),
        "esx {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes files given as (relative path, contents) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The repository's own experiments folder.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
