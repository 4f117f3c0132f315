//! `esx watch` as a user drives it: `--once` frames over runs in every
//! state, narrowing, bad input, and the interactive UI in a real terminal
//! (tmux) following a sweep while it trains.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{as_if_crashed, esx, fails, recorded_run, succeeds, write_files};
use esx::store::{Outcome, RunWriter};

/// A run planned for `planned` epochs that has finished `done`, with a
/// validation IoU per epoch rising to `best`.
fn epochs_run(root: &Path, name: &str, planned: u32, done: u32, best: f64) -> RunWriter {
    let mut w = recorded_run(root, name, &format!("epochs = {planned}\n"), &[]);
    for e in 1..=done {
        let step = u64::from(e) * 10;
        w.log_scalar(step, e, "train", "loss", 1.0 / f64::from(e))
            .unwrap();
        w.log_scalar(step, e, "train", "images_per_s", 12.5)
            .unwrap();
        let iou = best * f64::from(e) / f64::from(done);
        w.log_scalar(step, e, "val", "iou", iou).unwrap();
    }
    w.flush().unwrap();
    w
}

/// The frame's line for the run called `name`.
fn line_of<'a>(frame: &'a str, name: &str) -> &'a str {
    frame
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{frame}"))
}

#[test]
fn once_shows_running_completed_failed_and_crashed_runs_with_their_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let done = epochs_run(&root, "finished", 4, 4, 0.8);
    let done_id = done.id().to_string();
    done.finish(Outcome::Completed).unwrap();
    epochs_run(&root, "broken", 4, 1, 0.3)
        .finish(Outcome::Failed("boom".into()))
        .unwrap();
    as_if_crashed(epochs_run(&root, "vanished", 4, 2, 0.4));
    // Held open by this process: running, two epochs of five done.
    let live = epochs_run(&root, "training", 5, 2, 0.6);

    let frame = succeeds(dir.path(), &["watch", "runs", "--once", "--size", "100x30"]);
    assert!(!frame.contains('\x1b'), "plain text, no escapes:\n{frame}");
    assert_eq!(frame.lines().count(), 30, "{frame}");
    assert!(frame.lines().all(|l| l.chars().count() <= 100), "{frame}");
    let head = frame.lines().next().unwrap();
    for part in [
        "4 runs",
        "1 completed",
        "1 failed",
        "1 crashed",
        "1 running",
    ] {
        assert!(head.contains(part), "{part} in {head}");
    }
    let row = line_of(&frame, "finished");
    assert!(
        row.contains(&done_id[..8]) && row.contains("completed"),
        "{row}"
    );
    assert!(
        row.contains("4/4") && row.contains("0.8000") && row.contains("12.5"),
        "{row}"
    );
    assert!(line_of(&frame, "broken").contains("failed"), "{frame}");
    assert!(line_of(&frame, "vanished").contains("crashed"), "{frame}");
    let row = line_of(&frame, "training");
    assert!(row.contains("running") && row.contains("2/5"), "{row}");
    let eta = row.split_whitespace().nth(6).unwrap();
    assert!(
        eta.ends_with('s') || eta.ends_with('m'),
        "an ETA while running: {row}"
    );
    // The chart of the objective, with a legend naming the runs.
    assert!(frame.contains("┌ val/iou · linear"), "{frame}");
    assert!(frame.contains(&live.id()[..8]), "{frame}");
    assert!(
        frame.contains('⠉') || frame.contains('⣀'),
        "braille curves:\n{frame}"
    );

    // Narrowing goes through the same selection as ls.
    let frame = succeeds(
        dir.path(),
        &["watch", "runs", "--once", "--where", "status=running"],
    );
    assert!(
        frame.lines().next().unwrap().contains("1 run: 1 running"),
        "{frame}"
    );
    succeeds(dir.path(), &["tag", &done_id, "best"]);
    let frame = succeeds(
        dir.path(),
        &["watch", "--runs", "runs", "--once", "--tag", "best"],
    );
    assert!(line_of(&frame, "finished").ends_with("best"), "{frame}");
    assert!(frame.contains("TAGS"), "{frame}");

    // Another metric, log scale is for the interactive keys; smaller frames fit.
    let frame = succeeds(
        dir.path(),
        &[
            "watch",
            "runs",
            "--once",
            "--metric",
            "train/loss",
            "--size",
            "80x24",
        ],
    );
    assert!(frame.contains("┌ train/loss · linear"), "{frame}");
    assert!(frame.lines().all(|l| l.chars().count() <= 80), "{frame}");
    assert_eq!(frame.lines().count(), 24);
    live.finish(Outcome::Completed).unwrap();
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("empty")).unwrap();
    let root = d.join("runs");
    recorded_run(&root, "a", "epochs = 2\n", &[1.0, 0.5])
        .finish(Outcome::Completed)
        .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["watch", "nowhere", "--once"],
            "runs directory nowhere does not exist",
        ),
        (
            &["watch", "runs", "--once", "--metric", "val/nope"],
            "--metric val/nope: no run records it; these do: val/iou, step/loss",
        ),
        (
            &["watch", "runs", "--once", "--metric", "iou"],
            "expected SPLIT/KEY",
        ),
        (
            &["watch", "runs", "--once", "--size", "10x2"],
            "--size 10x2",
        ),
        (
            &["watch", "runs", "--once", "--sweep", "nope"],
            "no runs of sweep `nope` under runs",
        ),
        (
            &["watch", "runs", "--once", "--run", "zzzz"],
            "no run matches `zzzz` under runs",
        ),
        (
            &["watch", "runs", "--once", "--tag", "a b"],
            "bad tag `a b`",
        ),
        // stdout is a pipe here: no terminal to draw on.
        (
            &["watch", "runs"],
            "esx watch needs a terminal and stdout is not one; use --once",
        ),
    ];
    for (args, needle) in cases {
        let err = fails(d, args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = esx(d).args(["watch", "empty", "--once"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "no runs under empty\n"
    );

    // A garbage run.db is named and left out; the other runs still show.
    std::fs::create_dir(root.join("junk")).unwrap();
    std::fs::write(root.join("junk/run.db"), "not a database, only some text").unwrap();
    let out = esx(d).args(["watch", "runs", "--once"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped") && stderr.contains("junk"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 run: 1 completed"));

    // Too small a terminal says so instead of drawing a garbled frame.
    let frame = succeeds(d, &["watch", "runs", "--once", "--size", "40x8"]);
    assert!(
        frame.starts_with("terminal 40×8 is too small for esx"),
        "{frame}"
    );
}

/// A tmux session running one command in a terminal of a fixed size.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let name = format!("esx-watch-{}", std::process::id());
        let status = Command::new("tmux")
            .current_dir(dir)
            // CI runs without a terminal of its own.
            .env("TERM", "xterm-256color")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "100",
                "-y",
                "30",
                command,
            ])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success());
        Tmux { name }
    }

    /// `tmux VERB -t SESSION ARGS…`, which must succeed; its stdout.
    fn tmux(&self, verb: &str, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args([verb, "-t", &self.name])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {verb} {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux("capture-pane", &["-p"])
    }

    fn keys(&self, keys: &str) {
        self.tmux("send-keys", &[keys]);
    }

    fn resize(&self, cols: u16, rows: u16) {
        self.tmux(
            "resize-window",
            &["-x", &cols.to_string(), "-y", &rows.to_string()],
        );
    }

    /// Waits for the screen to satisfy `ready`, at most `secs`.
    fn wait_for(&self, what: &str, secs: u64, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// A run's process held still (SIGSTOP) until dropped (SIGCONT), so that
/// a failing test leaves nothing stopped behind it.
struct Held(u32);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Waits for a run under `runs` other than `not` whose store names its
/// process, and holds that process still: the run's dir and the hold.
fn hold_new_run(runs: &Path, not: Option<&Path>) -> (std::path::PathBuf, Held) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = common::newest_run(runs)
            .filter(|d| Some(d.as_path()) != not)
            .and_then(|d| esx::store::query::read_run(&d).ok().map(|r| (d, r.pid)));
        if let Some((dir, pid)) = found.filter(|(_, pid)| *pid > 0) {
            let ok = Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill -STOP {pid}");
            return (dir, Held(pid));
        }
        assert!(
            Instant::now() < deadline,
            "no new run appeared under {runs:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The epoch the first run row of a frame shows, as in "2/4".
fn shown_epoch(screen: &str) -> u32 {
    screen
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/4").and_then(|e| e.parse().ok()))
        .unwrap_or_else(|| panic!("no epoch of 4 shown:\n{screen}"))
}

#[test]
fn the_terminal_ui_follows_a_sweep_while_it_trains_and_quits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let experiment = common::tiny_experiment(1, 64, 0).replace("epochs = 2", "epochs = 4");
    write_files(d, &[("tiny.toml", &experiment)]);
    std::fs::create_dir(d.join("runs")).unwrap();
    let esx_bin = assert_cmd::cargo::cargo_bin("esx");
    let tmux = Tmux::start(
        d,
        &format!(
            "{} watch runs; echo WATCH-EXIT=$?; stty -a | grep -o -- '-\\?icanon'; sleep 60",
            esx_bin.display()
        ),
    );
    tmux.wait_for("the waiting frame", 20, |s| {
        s.contains("no runs yet, waiting")
    });

    let mut sweep = std::process::Command::new(&esx_bin)
        .current_dir(d)
        .args([
            "sweep",
            "tiny.toml",
            "seed=1,2",
            "--jobs",
            "1",
            "--runs",
            "runs",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first run appears mid-way and its epochs count up to the end,
    // without a restart. Each run is held still (SIGSTOP) as soon as its
    // store names its process, so that the frame of a run mid-way is there
    // to see however fast the machine trains.
    let runs = d.join("runs");
    let (first_run, held) = hold_new_run(&runs, None);
    let first = tmux.wait_for("a running run", 60, |s| s.contains("1 run: 1 running"));
    assert!(first.contains("sweep "), "sweep progress:\n{first}");
    let mid_way = shown_epoch(&first);
    assert!(mid_way < 4, "a held run shows epoch {mid_way}/4:\n{first}");
    drop(held);
    let (_, held) = hold_new_run(&runs, Some(&first_run));
    let second = tmux.wait_for("the second run", 90, |s| {
        s.contains("2 runs: 1 completed, 1 running")
    });
    assert!(
        second.contains("4/4"),
        "the first run counted to its end:\n{second}"
    );
    drop(held);
    let ended = tmux.wait_for("both runs done", 90, |s| s.contains("2 runs: 2 completed"));
    assert!(ended.contains("2 of 2 done"), "{ended}");
    assert!(
        ended.contains("seed=1") && ended.contains("seed=2"),
        "{ended}"
    );
    assert!(sweep.wait().unwrap().success());

    // Keys: another metric, log scale, smoothing, and a run out of the chart.
    tmux.keys("m");
    let other = tmux.wait_for("another metric", 10, |s| !s.contains("┌ val/iou"));
    assert!(other.contains(" · linear"), "{other}");
    tmux.keys("l");
    tmux.wait_for("log scale", 10, |s| s.contains(" · log"));
    tmux.keys("s");
    tmux.wait_for("smoothing", 10, |s| s.contains("smoothing 0.6"));
    tmux.keys("Space");
    tmux.wait_for("one run charted", 10, |s| s.matches('●').count() == 1);

    // A run deleted while watched leaves the table; a tiny terminal says so.
    let gone = common::newest_run(&d.join("runs")).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
    tmux.wait_for("the deleted run gone", 10, |s| {
        s.contains("1 run: 1 completed")
    });
    tmux.resize(40, 10);
    tmux.wait_for("a too-small note", 10, |s| s.contains("is too small for"));
    tmux.resize(100, 30);
    tmux.wait_for("the frame again", 10, |s| s.contains("esx watch ·"));

    tmux.keys("q");
    let after = tmux.wait_for("watch to exit and stty to speak", 10, |s| {
        s.contains("WATCH-EXIT=") && s.contains("icanon")
    });
    assert!(after.contains("WATCH-EXIT=0"), "{after}");
    // The alternate screen is gone and the terminal is back in cooked mode.
    assert!(!after.contains("esx watch ·"), "{after}");
    let mode = after.lines().find(|l| l.contains("icanon")).unwrap_or("");
    assert_eq!(mode.trim(), "icanon", "{after}");
}
