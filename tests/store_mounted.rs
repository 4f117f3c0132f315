//! The run store on a filesystem that is not a local disk, found by itself:
//! a FUSE mount (bindfs, the user-space kind that sshfs, ceph-fuse and
//! GlusterFS clients are) gets a rollback journal, no WAL files, and keeps
//! its guarantees when the writer is killed. This machine's kernel has no NFS
//! client, so no NFS export can be mounted over loopback; FUSE is the real
//! mount at hand (.ci/run installs bindfs; without it or /dev/fuse the test
//! says why it did not run).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{recorded_steps, succeeds, train_until_step, write_files};
use esx::store::query::read_run;
use esx::store::RunStatus;

struct FuseMount(PathBuf);

impl FuseMount {
    fn mount(source: &Path, at: &Path) -> Option<FuseMount> {
        std::fs::create_dir_all(source).unwrap();
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("bindfs")
            .arg(source)
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a FUSE filesystem here (bindfs, /dev/fuse, root)");
            return None;
        }
        Some(FuseMount(at.to_path_buf()))
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_store_on_a_fuse_mount_uses_a_rollback_journal_and_survives_a_killed_writer() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("tiny.toml", &common::tiny_experiment(1, 64, 0))],
    );
    let Some(mount) = FuseMount::mount(&dir.path().join("backing"), &dir.path().join("mnt")) else {
        return;
    };
    let runs = mount.0.join("runs");
    let args = ["tiny.toml", "epochs=1", "train.steps_per_epoch=400"];
    let (mut child, run_dir) = train_until_step(dir.path(), &runs, &args, 20);
    let names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("-wal") || n.ends_with("-shm")),
        "no WAL files on a FUSE mount: {names:?}"
    );
    let show = succeeds(dir.path(), &["show", run_dir.to_str().unwrap()]);
    assert!(
        show.contains("journal    delete (run directory on fuse)"),
        "{show}"
    );
    let seen = recorded_steps(&run_dir).len();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    let info = read_run(&run_dir).expect("the store reads after the kill");
    assert_eq!(info.status, RunStatus::Crashed);
    assert_eq!(info.journal, "delete");
    let steps = recorded_steps(&run_dir);
    assert!(steps.len() >= seen, "{} < {seen}", steps.len());
    assert_eq!(steps, (1..=steps.len() as i64).collect::<Vec<_>>());
    let conn = rusqlite::Connection::open(run_dir.join("run.db")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
