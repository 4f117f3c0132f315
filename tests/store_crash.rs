//! Crash safety of the run store, in both journal modes (WAL on local disks,
//! the rollback journal of network filesystems, forced with ESX_JOURNAL): a
//! writer SIGKILLed at random moments loses nothing it committed, reads as
//! crashed and leaves a database that passes integrity_check; readers in
//! other processes never fail while a writer writes or dies.
//!
//! Writer and readers are this test binary re-executed with `--ignored
//! --exact crash_child_…`: real separate processes that can be killed for real.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use esx::store::query::{list_runs, metrics, read_run};
use esx::store::{NewRun, RunStatus, RunWriter};
use rand::Rng;

const MODES: [&str; 2] = ["wal", "delete"];

fn new_run() -> NewRun {
    NewRun {
        name: "crash".into(),
        config_toml: "lr = 0.001\n".into(),
        command: vec!["test".into()],
        ..Default::default()
    }
}

/// The writer: logs scalars forever, printing how many are committed after
/// each flush, with an image and an event between flushes.
#[test]
#[ignore = "helper process for crash tests; run by them"]
fn crash_child_writer() {
    let Ok(root) = std::env::var("ESX_CRASH_ROOT") else {
        return;
    };
    let mut w = RunWriter::create(&PathBuf::from(root), None, &new_run()).unwrap();
    println!("dir {}", w.dir().display());
    let mut step = 0u64;
    loop {
        for _ in 0..100 {
            w.log_scalar(step, 0, "train", "loss", step as f64).unwrap();
            step += 1;
        }
        w.flush().unwrap();
        println!("committed {step}");
        if step.is_multiple_of(1000) {
            w.log_image(0, "panel", &[7u8; 2048]).unwrap();
            w.log_event("checkpoint", &step.to_string()).unwrap();
        }
    }
}

/// A reader: reads the run in ESX_CRASH_DIR until ESX_CRASH_UNTIL_FILE
/// exists, panicking (a failed process) on any error or on rows that go
/// back; prints its count of reads.
#[test]
#[ignore = "helper process for crash tests; run by them"]
fn crash_child_reader() {
    let Ok(dir) = std::env::var("ESX_CRASH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let stop = PathBuf::from(std::env::var("ESX_CRASH_UNTIL_FILE").unwrap());
    let root = dir.parent().unwrap().to_path_buf();
    let (mut reads, mut seen) = (0u64, 0usize);
    while !stop.exists() {
        let run = read_run(&dir).expect("read_run while writing");
        assert!(
            matches!(run.status, RunStatus::Running | RunStatus::Crashed),
            "{:?}",
            run.status
        );
        let rows = metrics(&dir, None).expect("metrics while writing");
        assert!(rows.len() >= seen, "row count never goes back");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.step, i as i64, "rows are whole and in order");
        }
        seen = rows.len();
        for r in list_runs(&root).unwrap() {
            r.expect("list_runs while writing");
        }
        reads += 1;
    }
    println!("reads {reads} rows {seen}");
}

/// The harness prints `test crash_child_writer ... ` before the child's own line.
fn run_dir(line: &str) -> Option<PathBuf> {
    line.split_once("dir ").map(|(_, d)| PathBuf::from(d))
}

fn child(name: &str, envs: &[(&str, &Path)], journal: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .env("ESX_JOURNAL", journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Readers {
    children: Vec<Child>,
    stop: PathBuf,
}

impl Readers {
    fn start(dir: &Path, scratch: &Path, n: usize, journal: &str) -> Readers {
        let stop = scratch.join("stop-readers");
        let children = (0..n)
            .map(|_| {
                child(
                    "crash_child_reader",
                    &[("ESX_CRASH_DIR", dir), ("ESX_CRASH_UNTIL_FILE", &stop)],
                    journal,
                )
            })
            .collect();
        Readers { children, stop }
    }

    /// Stops the readers, each of which must have succeeded; their counts of reads.
    fn finish(self) -> Vec<u64> {
        std::fs::write(&self.stop, "").unwrap();
        let mut counts = Vec::new();
        for c in self.children {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "a reader failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let reads: u64 = stdout
                .split_once("reads ")
                .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
                .expect("the reader printed its reads");
            counts.push(reads);
        }
        counts
    }
}

/// Starts a writer under `root` and returns it with its run directory.
fn start_writer(
    root: &Path,
    journal: &str,
) -> (
    Child,
    PathBuf,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut writer = child("crash_child_writer", &[("ESX_CRASH_ROOT", root)], journal);
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let dir = lines
        .by_ref()
        .take(5)
        .find_map(|l| run_dir(&l.unwrap()))
        .expect("the writer prints its run directory first");
    (writer, dir, lines)
}

fn integrity(dir: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("run.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_writer_killed_at_random_moments_keeps_every_committed_row_in_both_journal_modes() {
    let mut rng = rand::rng();
    for journal in MODES {
        for round in 0..3 {
            let root = tempfile::tempdir().unwrap();
            let (mut writer, dir, mut lines) = start_writer(root.path(), journal);
            let readers = Readers::start(&dir, root.path(), 2, journal);
            // Kill after a random number of commits, then a random few
            // milliseconds more, so the kill lands anywhere in a transaction.
            let target = rng.random_range(1..40u64) * 100;
            let mut committed = 0u64;
            for line in lines.by_ref() {
                if let Some(n) = line.unwrap().strip_prefix("committed ") {
                    committed = n.parse().unwrap();
                    if committed >= target {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..5000)));
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(writer.id() as i32, libc::SIGKILL) };
            writer.wait().unwrap();
            // The readers go on a moment over the dead writer's files.
            std::thread::sleep(Duration::from_millis(100));
            let reads: u64 = readers.finish().iter().sum();
            let what = format!("{journal} round {round}, killed after {committed} rows");
            assert!(reads > 0, "{what}: the readers read");

            let run = read_run(&dir).expect("the database opens after SIGKILL");
            assert_eq!(run.status, RunStatus::Crashed, "{what}");
            assert_eq!(run.journal, journal, "{what}");
            let rows = metrics(&dir, None).unwrap();
            assert!(
                rows.len() as u64 >= committed,
                "{what}: {} rows",
                rows.len()
            );
            for (i, r) in rows.iter().enumerate() {
                assert_eq!((r.step, r.value), (i as i64, Some(i as f64)), "{what}");
            }
            assert_eq!(
                run.summary("train", "loss").unwrap().count as usize,
                rows.len(),
                "{what}"
            );
            assert_eq!(integrity(&dir), "ok", "{what}");
        }
    }
}

#[test]
fn readers_in_other_processes_never_fail_while_a_writer_writes_in_both_journal_modes() {
    for journal in MODES {
        let root = tempfile::tempdir().unwrap();
        let (mut writer, dir, lines) = start_writer(root.path(), journal);
        // Keep draining the writer's output so it never blocks on a full pipe.
        let drain = std::thread::spawn(move || lines.map_while(Result::ok).last());
        let readers = Readers::start(&dir, root.path(), 3, journal);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let reads = readers.finish();
        unsafe { libc::kill(writer.id() as i32, libc::SIGKILL) };
        writer.wait().unwrap();
        let last = drain.join().unwrap().unwrap_or_default();
        let committed: u64 = last
            .strip_prefix("committed ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // Progress, not speed (a loaded machine reads a growing table slowly):
        // no reader is starved by the writer, nor the writer by them.
        assert!(
            reads.iter().all(|&n| n > 0) && committed > 0,
            "{journal}: every reader read ({reads:?}) and the writer wrote ({committed} rows)"
        );
        eprintln!("{journal}: {reads:?} reads by 3 readers while the writer committed {committed} rows in 3 s");
    }
}
