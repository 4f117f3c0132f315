//! Crash safety of the run store: a writer SIGKILLed mid-stream loses nothing
//! it committed and reads as crashed; readers never fail while a writer writes.
//!
//! The writer is this test binary re-executed with `--ignored --exact
//! crash_child_writer`: a real separate process that can be killed for real.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use esx::store::query::{list_runs, metrics, read_run};
use esx::store::{NewRun, RunStatus, RunWriter};

fn new_run() -> NewRun {
    NewRun {
        name: "crash".into(),
        config_toml: "lr = 0.001\n".into(),
        command: vec!["test".into()],
        ..Default::default()
    }
}

/// The child: logs scalars forever, printing how many are committed after each flush.
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
    }
}

/// The harness prints `test crash_child_writer ... ` before the child's own line.
fn run_dir(line: &str) -> Option<PathBuf> {
    line.split_once("dir ").map(|(_, d)| PathBuf::from(d))
}

fn spawn_child(root: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ESX_CRASH_ROOT", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkilled_writer_keeps_every_committed_row_and_reads_as_crashed() {
    let root = tempfile::tempdir().unwrap();
    let mut child = spawn_child(root.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    let mut committed = 0u64;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(d) = run_dir(&line) {
            dir = Some(d);
        } else if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse().unwrap();
            if committed >= 5_000 {
                break;
            }
        }
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let dir = dir.expect("the child printed its run directory");

    let run = read_run(&dir).expect("the database opens after SIGKILL");
    assert_eq!(run.status, RunStatus::Crashed);
    let rows = metrics(&dir, None).unwrap();
    assert!(
        rows.len() as u64 >= committed,
        "{} rows < {committed} committed",
        rows.len()
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            (r.step, r.value),
            (i as i64, Some(i as f64)),
            "rows are intact and in order"
        );
    }
    assert_eq!(
        run.summary("train", "loss").unwrap().count as usize,
        rows.len()
    );
}

#[test]
fn readers_never_fail_while_a_writer_writes() {
    let root = tempfile::tempdir().unwrap();
    let mut child = spawn_child(root.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = lines
        .by_ref()
        .take(5)
        .find_map(|l| run_dir(&l.unwrap()))
        .expect("the child prints its run directory first");
    // Keep draining the child's output so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    let deadline = Instant::now() + Duration::from_secs(3);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (dir, root) = (dir.clone(), root.path().to_path_buf());
            std::thread::spawn(move || {
                let mut reads = 0;
                let mut seen = 0;
                while Instant::now() < deadline {
                    let run = read_run(&dir).expect("read_run while writing");
                    assert_eq!(run.status, RunStatus::Running);
                    let n = metrics(&dir, None).expect("metrics while writing").len();
                    assert!(n >= seen, "row count never goes back");
                    seen = n;
                    for r in list_runs(&root).unwrap() {
                        r.expect("list_runs while writing");
                    }
                    reads += 1;
                }
                (reads, seen)
            })
        })
        .collect();
    for r in readers {
        let (reads, seen) = r.join().expect("reader thread");
        assert!(
            reads > 3 && seen > 0,
            "readers made progress: {reads} reads, {seen} rows"
        );
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    drain.join().unwrap();
}
