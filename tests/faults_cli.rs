//! Races, faults and hostile input, as an unlucky or hostile user meets
//! them (issue 18): two processes on one run or sweep, commands with nothing
//! to do, inputs that would panic or exhaust memory, bad values in images,
//! full disks, and the messages all of these give.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, recorded_steps as steps, succeeds, write_files};
use esx::store::query::{list_runs, metrics, read_run};
use esx::store::RunStatus;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("esx")
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    spawn_with(dir, &[], args)
}

fn spawn_with(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("ESX_RUNS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("esx starts")
}

/// (exit status, stderr) of a finished child.
fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn tiny(dir: &Path) {
    write_files(dir, &[("tiny.toml", &common::tiny_experiment(1, 64, 0))]);
}

fn only_run(root: &Path) -> PathBuf {
    let runs: Vec<_> = list_runs(root)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(runs.len(), 1, "one run under {}", root.display());
    runs[0].dir.clone()
}

/// A run of 3 epochs × 12 steps interrupted with Ctrl-C in its second epoch.
fn interrupted_run(dir: &Path) -> PathBuf {
    tiny(dir);
    let mut child = spawn(
        dir,
        &[
            "run",
            "-q",
            "tiny.toml",
            "epochs=3",
            "train.steps_per_epoch=12",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let run_dir = loop {
        assert!(Instant::now() < deadline, "the run never reached step 14");
        let found = list_runs(&dir.join("runs"))
            .ok()
            .and_then(|r| r.into_iter().filter_map(Result::ok).next());
        if let Some(r) = found {
            if steps(&r.dir).iter().any(|&s| s >= 14) {
                break r.dir;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Interrupted);
    run_dir
}

#[test]
fn two_resumes_started_together_train_the_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(dir.path());
    let id = read_run(&run_dir).unwrap().id;
    let a = spawn(dir.path(), &["run", "-q", "--resume", &id]);
    let b = spawn(dir.path(), &["run", "-q", "--resume", &id]);
    let (a, b) = (finish(a), finish(b));
    let (won, lost) = if a.0 == Some(0) { (a, b) } else { (b, a) };
    assert_eq!(won.0, Some(0), "one resume trains: {won:?} / {lost:?}");
    assert_eq!(lost.0, Some(1), "the other is refused: {lost:?}");
    assert_eq!(lost.1.lines().count(), 1, "{}", lost.1);
    assert!(
        lost.1
            .contains(&format!("run {id} is being resumed by pid")),
        "{}",
        lost.1
    );
    assert_eq!(
        steps(&run_dir),
        (1..=36).collect::<Vec<_>>(),
        "every step once"
    );
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Completed);
}

#[test]
fn two_sweeps_of_one_command_run_each_point_once() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    let args = ["sweep", "tiny.toml", "lr=1e-3,5e-4", "--jobs", "1"];
    let a = spawn(dir.path(), &args);
    let b = spawn(dir.path(), &args);
    let (a, b) = (finish(a), finish(b));
    let (won, lost) = if a.0 == Some(0) { (a, b) } else { (b, a) };
    assert_eq!(won.0, Some(0), "{won:?} / {lost:?}");
    assert_eq!(lost.0, Some(1), "{lost:?}");
    assert!(lost.1.contains("is being run by pid"), "{}", lost.1);
    let runs: Vec<_> = list_runs(&dir.path().join("runs"))
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(runs.len(), 2, "two points, two runs");
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
}

#[test]
fn a_resume_that_cannot_start_leaves_the_run_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(dir.path());
    let id = read_run(&run_dir).unwrap().id;
    let before = steps(&run_dir);
    // A file where the dataset was: the resume fails before it trains.
    std::fs::rename(dir.path().join("data"), dir.path().join("elsewhere")).unwrap();
    write_files(dir.path(), &[("data/tiny", "not a dataset")]);
    let err = fails(dir.path(), &["run", "--resume", &id]);
    assert!(err.contains("data/tiny"), "{err}");
    let info = read_run(&run_dir).unwrap();
    assert_eq!(
        info.status,
        RunStatus::Interrupted,
        "still interrupted, not failed"
    );
    assert_eq!(steps(&run_dir), before, "nothing recorded was lost");
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    std::fs::rename(dir.path().join("elsewhere"), dir.path().join("data")).unwrap();
    succeeds(dir.path(), &["run", "-q", "--resume", &id]);
    assert_eq!(steps(&run_dir), (1..=36).collect::<Vec<_>>());
    assert_eq!(only_run(&dir.path().join("runs")), run_dir);
}

/// A TIFF whose header claims `w`×`h` 8-bit pixels, with only `data` after
/// it (compression 1: none, 8: deflate).
fn hostile_tiff(w: u32, h: u32, compression: u16, data: &[u8]) -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, 8),
        (259, 3, compression as u32),
        (262, 3, 1),
        (273, 4, 8 + 2 + 8 * 12 + 4),
        (278, 4, h),
        (279, 4, data.len() as u32),
    ];
    let mut out = b"II".to_vec();
    out.extend(42u16.to_le_bytes());
    out.extend(8u32.to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    out.extend(0u32.to_le_bytes());
    out.extend(data);
    out
}

#[test]
fn images_that_claim_more_than_the_machine_holds_are_refused_by_name() {
    for compression in [1u16, 8] {
        let dir = tempfile::tempdir().unwrap();
        let bomb = hostile_tiff(200_000, 200_000, compression, &[0x78, 0x9c, 0x03, 0x00]);
        for path in ["ds/01/t000.tif", "ds/01_GT/SEG/man_seg000.tif"] {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &bomb).unwrap();
        }
        let started = Instant::now();
        let err = fails(dir.path(), &["prepare", "centers", "ds"]);
        assert!(
            err.contains("man_seg000.tif")
                && err.contains("200000×200000")
                && err.contains("can spare"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "refused before reading"
        );
    }
}

#[test]
fn a_float_image_with_nan_pixels_is_refused_naming_it_and_the_count() {
    let dir = tempfile::tempdir().unwrap();
    succeeds(
        dir.path(),
        &[
            "synth",
            "ds",
            "--frames",
            "2",
            "--size",
            "64",
            "--sequences",
            "1",
        ],
    );
    let frame = dir.path().join("ds/01/t001.tif");
    let image = esx::data::tiff_io::read_image(&frame).unwrap();
    let mut values = image.to_f32();
    values.data[5] = f32::NAN;
    values.data[70] = f32::INFINITY;
    esx::data::tiff_io::write_f32(&frame, &values).unwrap();
    let err = fails(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "32", "-q"],
    );
    assert!(
        err.contains("t001.tif") && err.contains("2 of its 4096 pixels are NaN or infinite"),
        "{err}"
    );
}

#[test]
fn a_truncated_crop_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    succeeds(
        dir.path(),
        &[
            "synth",
            "ds",
            "--frames",
            "2",
            "--size",
            "64",
            "--sequences",
            "1",
        ],
    );
    let prepare = [
        "prepare",
        "crops",
        "ds",
        "--crop-size",
        "32",
        "-q",
        "--json",
    ];
    succeeds(dir.path(), &prepare);
    let crops = dir.path().join("ds/TRAIN_CROPS_32x32/01");
    let crop = std::fs::read_dir(&crops)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let full = std::fs::metadata(&crop).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&crop).unwrap();
    file.set_len(full / 2).unwrap();
    drop(file);
    let again: serde_json::Value = serde_json::from_str(&succeeds(dir.path(), &prepare)).unwrap();
    assert_eq!(again["written_frames"], 1, "{again}");
    assert_eq!(std::fs::metadata(&crop).unwrap().len(), full);
    esx::data::tiff_io::read_image(&crop).expect("whole again");
}

/// A tmpfs of `mb` MB mounted for the test, unmounted when dropped (needs
/// root; `None` elsewhere, and the test says it did not run).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: usize) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` to the last byte.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![7u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    let small = [7u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

fn integrity(run_dir: &Path) {
    let conn = rusqlite::Connection::open(run_dir.join("run.db")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_disk_that_fills_while_the_store_writes_fails_the_run_on_record_in_both_journal_modes() {
    for journal in ["wal", "delete"] {
        disk_fills_while_the_store_writes(journal);
    }
}

fn disk_fills_while_the_store_writes(journal: &str) {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), 100) else {
        return;
    };
    let runs = disk.0.join("runs");
    let runs_arg = runs.to_str().unwrap().to_string();
    let child = spawn_with(
        dir.path(),
        &[("ESX_JOURNAL", journal)],
        &[
            "run",
            "-q",
            "--runs",
            &runs_arg,
            "tiny.toml",
            "epochs=1",
            "train.steps_per_epoch=400",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let run_dir = loop {
        assert!(Instant::now() < deadline, "the run never got going");
        let found = list_runs(&runs)
            .ok()
            .and_then(|r| r.into_iter().filter_map(Result::ok).next());
        if let Some(r) = found.filter(|r| steps(&r.dir).len() >= 2) {
            break r.dir;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    fill(&disk.0);
    let (code, err) = finish(child);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("run.db") && err.contains("full"),
        "names the database and the cause: {err}"
    );
    let info = read_run(&run_dir).unwrap();
    assert_eq!(
        info.status,
        RunStatus::Failed,
        "{journal}: not left running"
    );
    assert!(info.error.unwrap_or_default().contains("full"));
    assert_eq!(info.journal, journal);
    assert!(
        steps(&run_dir).len() >= 2,
        "{journal}: the recorded steps stay"
    );
    integrity(&run_dir);
}

#[test]
fn a_checkpoint_that_does_not_fit_fails_the_run_and_the_store_agrees() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    // The last checkpoint (weights + Adam's moments in f64) is ~45 MB.
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), 30) else {
        return;
    };
    let runs = disk.0.join("runs");
    let out = common::esx(dir.path())
        .args(["run", "-q", "--runs", runs.to_str().unwrap(), "tiny.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("safetensors") && err.contains("No space left"),
        "{err}"
    );
    let run_dir = only_run(&runs);
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    // No half-written checkpoint, no best checkpoint, and no epoch end
    // recorded that no checkpoint holds.
    let left: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let ends = metrics(&run_dir, None)
        .unwrap()
        .into_iter()
        .filter(|m| m.split == "val" || m.split == "train")
        .count();
    assert_eq!(ends, 0, "the epoch's end was taken back");
    assert_eq!(steps(&run_dir).len(), 3, "its steps are kept");
    integrity(&run_dir);
}

#[test]
fn what_a_kill_during_a_checkpoint_leaves_is_removed_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(dir.path());
    let id = read_run(&run_dir).unwrap().id;
    // What SIGKILL in the middle of writing `last` leaves.
    let partial = run_dir.join("checkpoints/last.safetensors.tmp");
    std::fs::write(&partial, vec![0u8; 1 << 20]).unwrap();
    succeeds(dir.path(), &["run", "-q", "--resume", &id]);
    assert!(!partial.exists());
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Completed);
}

#[test]
fn nothing_to_do_and_input_beyond_reason_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Pictures every epoch.
    write_files(
        dir.path(),
        &[("tiny.toml", &common::tiny_experiment(1, 64, 1))],
    );
    // A name of 65,536 characters: recorded, listed (cut), not a panic.
    let name = "n".repeat(65_536);
    succeeds(
        dir.path(),
        &["run", "-q", "tiny.toml", &format!("name=\"{name}\"")],
    );
    let listed = succeeds(dir.path(), &["ls"]);
    assert!(
        listed.lines().count() == 2 && listed.contains("nnn…"),
        "{listed}"
    );
    let id = read_run(&only_run(&dir.path().join("runs"))).unwrap().id;

    let err = fails(dir.path(), &["run", "tiny.toml", "epochs=0"]);
    assert!(err.contains("`epochs` = 0: must be at least 1"), "{err}");
    let err = fails(dir.path(), &["run", "tiny.toml", "threads=1000000000000"]);
    assert!(
        err.contains("`threads`") && err.contains("at most 1024"),
        "{err}"
    );
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let err = fails(dir.path(), &["eval", &id, "empty"]);
    assert!(
        err.contains("empty holds no sequence") && err.contains("nothing to evaluate"),
        "{err}"
    );
    assert!(
        !metrics(&only_run(&dir.path().join("runs")), None)
            .unwrap()
            .iter()
            .any(|m| m.split == "test"),
        "no evaluation recorded"
    );
    let err = fails(dir.path(), &["report", "--epoch", "99"]);
    assert!(
        err.contains("--epoch 99") && err.contains("epochs with pictures: 1, 2"),
        "{err}"
    );
    write_files(dir.path(), &[("afile", "x")]);
    let err = fails(dir.path(), &["ls", "afile"]);
    assert!(err.contains("afile is not a directory"), "{err}");
    // A 100 kB key is said once, shortened.
    let key = "k".repeat(100_000);
    let err = fails(dir.path(), &["run", "tiny.toml", &format!("{key}=1")]);
    assert!(
        err.len() < 600 && err.contains("(100000 characters)"),
        "{} bytes",
        err.len()
    );
}

#[test]
fn outputs_replace_only_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    succeeds(dir.path(), &["run", "-q", "tiny.toml"]);
    let fifo = dir.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path of our own temporary folder.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = fails(dir.path(), &["report", "--out", "pipe"]);
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO is left alone"
    );
    std::os::unix::fs::symlink("reports/page.html", dir.path().join("latest.html")).unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    succeeds(dir.path(), &["report", "--out", "latest.html"]);
    let link = std::fs::symlink_metadata(dir.path().join("latest.html")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let page = std::fs::read_to_string(dir.path().join("reports/page.html")).unwrap();
    assert!(page.contains("<html"), "its target is the report");
}

#[test]
fn a_read_only_runs_folder_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    let Some(disk) = Tmpfs::mount(&dir.path().join("ro"), 1) else {
        return;
    };
    let ok = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&disk.0)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "remount read-only");
    let runs = disk.0.join("runs");
    let err = fails(
        dir.path(),
        &["run", "--runs", runs.to_str().unwrap(), "tiny.toml"],
    );
    assert_eq!(err.matches("Read-only file system").count(), 1, "{err}");
    assert!(err.contains("ro/runs"), "{err}");
}

/// The crop size is checked before anything is written (issue 33): beyond
/// what the schema allows, beyond the frames (all padding: 4096 on 64×64
/// frames once wrote 53 GB), beyond the free disk.
#[test]
fn a_crop_size_beyond_the_frames_or_the_disk_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    let err = fails(d, &["run", "-q", "tiny.toml", "data.crop_size=65536"]);
    assert!(
        err.contains("data.crop_size") && err.contains("8192"),
        "{err}"
    );
    assert!(!d.join("runs").exists() || only_runs(&d.join("runs")) == 0);

    let err = fails(d, &["run", "-q", "tiny.toml", "data.crop_size=4096"]);
    assert!(
        err.contains("data.crop_size 4096") && err.contains("64×64") && err.contains("at most 128"),
        "{err}"
    );
    let crops = d.join("data/tiny/TRAIN_CROPS_4096x4096");
    assert!(!crops.exists() || std::fs::read_dir(&crops).unwrap().next().is_none());
    // The run that asked is recorded as failed, with the reason.
    let info = read_run(&only_run(&d.join("runs"))).unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert!(info
        .error
        .unwrap_or_default()
        .contains("data.crop_size 4096"));
    let err = fails(d, &["prepare", "crops", "data/tiny", "--crop-size", "4096"]);
    assert!(err.contains("at most 128"), "{err}");

    // On a 6 MB disk, crops of 128² (≈200 kB each, one per cell) do not fit.
    let Some(disk) = Tmpfs::mount(&d.join("disk"), 6) else {
        return;
    };
    let small = disk.0.join("tiny");
    std::fs::create_dir_all(&small).unwrap();
    let src = d.join("data/tiny");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("TRAIN_CROPS")
        {
            continue;
        }
        let ok = Command::new("cp")
            .arg("-r")
            .arg(entry.path())
            .arg(&small)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let small_arg = small.to_str().unwrap();
    let err = fails(d, &["prepare", "crops", small_arg, "--crop-size", "128"]);
    assert!(
        err.contains("data.crop_size 128")
            && err.contains("MB free")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!small.join("TRAIN_CROPS_128x128").exists());
}

fn only_runs(root: &Path) -> usize {
    list_runs(root).map_or(0, |r| r.len())
}

/// A read-only bind mount of `src` at `at`, unmounted when dropped (needs
/// root; `None` elsewhere).
struct ReadOnlyView(PathBuf);

impl ReadOnlyView {
    fn mount(src: &Path, at: &Path) -> Option<ReadOnlyView> {
        std::fs::create_dir_all(at).unwrap();
        let run = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let (s, a) = (src.to_str().unwrap(), at.to_str().unwrap());
        if !run(&["--bind", s, a]) {
            eprintln!("skipped: cannot bind-mount here (not root?)");
            return None;
        }
        let view = ReadOnlyView(at.to_path_buf());
        assert!(run(&["-o", "remount,ro,bind", a]), "remount read-only");
        Some(view)
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A lab's runs folder read by colleagues, or mounted read-only: every
/// reader reads WAL runs without write access (issue 33 item 2), whether
/// the files a WAL database is read through are there (a live writer, or
/// readers before) or not (its writer closed it).
#[test]
fn wal_runs_are_read_without_write_access() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    succeeds(d, &["run", "-q", "tiny.toml", "epochs=1"]);
    let run = only_run(&d.join("runs"));
    let id = read_run(&run).unwrap().id;
    let beside = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("run.db-"))
            .collect();
        names.sort();
        names
    };
    let Some(view) = ReadOnlyView::mount(&d.join("runs"), &d.join("ro")) else {
        return;
    };
    let ro = view.0.to_str().unwrap();
    let ro_run = view.0.join(run.file_name().unwrap());
    for files in ["left by readers", "none (the last connection closed)"] {
        if files.starts_with("none") {
            // The last connection, read-write, checkpoints and removes them.
            let conn = rusqlite::Connection::open(run.join("run.db")).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal", "the run is in WAL mode");
            drop(conn);
            assert!(beside(&run).is_empty(), "{:?}", beside(&run));
        }
        let before = beside(&ro_run);
        let listed = succeeds(d, &["ls", "--runs", ro]);
        assert!(
            listed.contains(&id) && listed.contains("completed"),
            "{files}: {listed}"
        );
        let shown = succeeds(d, &["show", "--runs", ro, &id]);
        assert!(shown.contains("completed"), "{files}: {shown}");
        let csv = succeeds(d, &["export", "--runs", ro, "--format", "csv"]);
        assert!(csv.lines().count() > 3, "{files}: {csv}");
        let frame = succeeds(d, &["watch", ro, "--once"]);
        assert!(
            frame.contains(&id) && frame.contains("completed"),
            "{files}: {frame}"
        );
        let out = d.join("report.html");
        succeeds(d, &["report", ro, "--out", out.to_str().unwrap()]);
        assert!(std::fs::read_to_string(&out).unwrap().contains(&id));
        assert_eq!(
            beside(&ro_run),
            before,
            "{files}: nothing made beside the database"
        );
    }
}

/// Sweep axes are counted before they are listed (issue 33 item 3): a
/// range of 10^12, 10^8 or "inf" values is one line at once, not gigabytes.
#[test]
fn huge_sweep_ranges_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    for axis in [
        "lr=range(0,1,1e-12)",
        "seed=range(0,1e8)",
        "lr=range(0,1e308,1e-300)",
    ] {
        let err = fails(dir.path(), &["sweep", "tiny.toml", axis, "--dry-run"]);
        assert!(err.contains("at most 10000"), "{axis}: {err}");
    }
}

/// Recursive inputs are bounded (issue 33 items 4–6): an interpolation
/// bomb, a diamond of defaults 30 deep (2^30 visits), a defaults chain
/// 30,000 deep, and `--where` nested 10,000 deep or joining 5,000 terms;
/// each one line (or, for the diamond, the composed config), at once.
#[test]
fn recursive_configs_and_filters_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    let mut bomb = std::fs::read_to_string(d.join("tiny.toml")).unwrap();
    bomb = bomb.replace("name = \"tiny\"", "name = \"${b1}\"");
    let mut tables = String::from("\n[bomb]\n");
    for i in 1..5 {
        tables += &format!("b{i} = '{}'\n", format!("${{bomb.b{}}}", i + 1).repeat(200));
    }
    tables += "b5 = 'xxxxx'\n";
    bomb = bomb.replace("${b1}", "${bomb.b1}") + &tables;
    write_files(d, &[("bomb.toml", &bomb)]);
    let err = fails(d, &["config", "bomb.toml"]);
    assert!(err.contains("grows past 1 MB"), "{err}");

    // e0 → [e1, e1] → … → e30: 2^30 paths, 31 files.
    for i in 0..30 {
        let next = format!("e{}", i + 1);
        write_files(
            d,
            &[(
                &format!("e{i}.toml"),
                &format!("defaults = [\"{next}\", \"{next}\"]\n"),
            )],
        );
    }
    write_files(d, &[("e30.toml", "epochs = 7\n")]);
    let composed = succeeds(d, &["config", "e0.toml"]);
    assert!(composed.contains("epochs = 7"), "{composed}");

    // c0 → c1 → … → c30000.
    for i in 0..30_000 {
        std::fs::write(
            d.join(format!("c{i}.toml")),
            format!("defaults = [\"c{}\"]\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(d.join("c30000.toml"), "epochs = 3\n").unwrap();
    let err = fails(d, &["config", "c0.toml"]);
    assert!(err.contains("more than 64 files deep"), "{err}");

    std::fs::create_dir(d.join("runs")).unwrap();
    for filter in [
        format!(
            "{}status=completed{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        ),
        format!("{}status=completed", "not ".repeat(30_000)),
        vec!["status=completed"; 5_000].join(" and "),
    ] {
        let err = fails(d, &["ls", "--where", &filter]);
        assert!(
            err.contains("more than 100 deep") || err.contains("more than 1000 terms"),
            "{err}"
        );
    }
}

/// What a user names or notes reaches the terminal escaped (issue 33 item
/// 9): an escape sequence, a bell or a carriage return in a run's name,
/// tags or notes neither clears the screen nor breaks a table's lines.
#[test]
fn control_characters_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    let name = "evil\u{1b}[2J\u{7}\rname";
    succeeds(
        d,
        &[
            "run",
            "-q",
            "tiny.toml",
            "epochs=1",
            &format!("name={name}"),
        ],
    );
    let run = only_run(&d.join("runs"));
    let id = read_run(&run).unwrap().id;
    succeeds(
        d,
        &["note", &id, "a\u{1b}]0;title\u{7} note\nwith a newline"],
    );
    for args in [vec!["ls"], vec!["show", &id], vec!["watch", "--once"]] {
        let out = succeeds(d, &args);
        let raw: Vec<char> = out
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(raw.is_empty(), "{args:?} printed {raw:?}:\n{out}");
        assert!(out.contains("evil\\x1b[2J\\x07\\rname"), "{args:?}:\n{out}");
    }
    let shown = succeeds(d, &["show", &id]);
    assert!(
        shown.contains("a\\x1b]0;title\\x07 note\\nwith a newline"),
        "{shown}"
    );
}

/// A copied run directory is no silent duplicate (issue 33 item 10): `ls`
/// warns of the id in two folders, and `tag`/`note` by id refuse it,
/// naming both folders, whether or not the copy's folder carries the id.
#[test]
fn a_copied_run_is_named_as_such_and_not_written_to_silently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    succeeds(d, &["run", "-q", "tiny.toml", "epochs=1"]);
    let run = only_run(&d.join("runs"));
    let id = read_run(&run).unwrap().id;
    for copy in [d.join("runs/old").join(&id), d.join("runs/backup")] {
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        let ok = Command::new("cp")
            .arg("-r")
            .arg(&run)
            .arg(&copy)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let out = esx_output(d, &["ls"]);
        assert!(
            out.1.contains(&format!("run {id} is in 2 folders")),
            "{}",
            out.1
        );
        for args in [vec!["tag", &id, "x"], vec!["note", &id, "hello"]] {
            let err = fails(d, &args);
            assert!(
                err.contains("2 folders") && err.contains("name the folder"),
                "{err}"
            );
        }
        // Named by its folder, each is written.
        succeeds(d, &["tag", copy.to_str().unwrap(), "copy"]);
        std::fs::remove_dir_all(&copy).unwrap();
    }
    succeeds(d, &["tag", &id, "original"]);
}

/// (stdout, stderr) of a successful esx.
fn esx_output(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env_remove("ESX_RUNS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Ground truth without a single object scores nothing (issue 33 item
/// 11): AP and SEG over no object are undefined, and nothing is recorded.
#[test]
fn eval_against_empty_masks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    succeeds(d, &["run", "-q", "tiny.toml", "epochs=1"]);
    let run = only_run(&d.join("runs"));
    let id = read_run(&run).unwrap().id;
    let empty = d.join("empty");
    let ok = Command::new("cp")
        .arg("-r")
        .arg(d.join("data/tiny"))
        .arg(&empty)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    for entry in std::fs::read_dir(empty.join("01_GT/SEG")).unwrap() {
        let path = entry.unwrap().path();
        let mask = esx::data::tiff_io::read_labels(&path).unwrap();
        let zero = esx::data::Grid::filled(mask.width, mask.height, 0u32);
        esx::data::tiff_io::write_labels(&path, &zero).unwrap();
    }
    let err = fails(d, &["eval", &id, empty.to_str().unwrap()]);
    assert!(err.contains("hold no object"), "{err}");
    assert!(
        metrics(&run, None)
            .unwrap()
            .iter()
            .all(|m| m.split != "test"),
        "nothing recorded"
    );
}

/// A grid sweep whose objective no run records says so and fails (issue
/// 33 item 11), naming what the runs do record.
#[test]
fn a_sweep_objective_no_run_records_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny(d);
    let out = Command::new(bin())
        .current_dir(d)
        .args([
            "sweep",
            "tiny.toml",
            "lr=1e-3,1e-4",
            "epochs=1",
            "--objective",
            "val/nosuch",
            "-q",
        ])
        .env_remove("ESX_RUNS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("val/nosuch") && err.contains("val/iou"),
        "{err}"
    );
}
