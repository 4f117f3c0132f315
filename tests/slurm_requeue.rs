//! Slurm tasks that outlive their time limit or are preempted, against a
//! real Slurm (tests/common/slurm.rs): the time-limit warning makes a run
//! checkpoint and requeue its job, a requeued task continues its run, and
//! every step is recorded once. Slurm holds a requeued job for two minutes
//! before it may start again (BeginTime); the tests, like an impatient
//! administrator, release it a few seconds later with `scontrol update
//! StartTime=now`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::slurm::Cluster;
use common::{recorded_steps, stdout_json, write_files};
use esx::store::query::{events, list_runs, metrics, RunInfo};
use esx::store::RunStatus;

fn tiny() -> String {
    common::tiny_experiment(1, 64, 0)
}

/// squeue or scontrol against the test cluster.
fn slurm(cluster: &Cluster, tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until no task of `job` is pending or running, releasing requeued
/// tasks held for their BeginTime; returns how many releases it made and
/// what squeue said along the way.
fn follow(cluster: &Cluster, job: &str, limit: Duration) -> (usize, String) {
    const HOLD: Duration = Duration::from_secs(3);
    let mut held: std::collections::HashMap<String, Instant> = Default::default();
    let deadline = Instant::now() + limit;
    let mut released = 0;
    let mut seen: Vec<String> = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "job {job} did not end in {limit:?}; squeue said, in turn:\n{}",
            seen.join("\n")
        );
        // Every state (`-t all`): a task being requeued passes through
        // states squeue hides by default, and both tasks of a sweep are
        // warned at the same check, so by default the job could look gone.
        let states = slurm(
            cluster,
            "squeue",
            &["-h", "-j", job, "-r", "-t", "all", "-o", "%i %T %r"],
        );
        let snapshot = states.split_whitespace().collect::<Vec<_>>().join(" ");
        if seen.last() != Some(&snapshot) {
            seen.push(snapshot);
        }
        let active = states.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(esx::store::heartbeat::slurm_state_is_active)
        });
        if !states.trim().is_empty() && !active {
            return (released, seen.join("\n"));
        }
        for line in states.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [task, "PENDING", "BeginTime"] = fields[..] {
                // Not in the second of the requeue: the node revokes the
                // job's credential as it ends, and a start within the same
                // second is refused ("Job credential revoked": the task
                // fails; seen in CI).
                let since = *held.entry(task.to_string()).or_insert_with(Instant::now);
                if since.elapsed() >= HOLD {
                    slurm(
                        cluster,
                        "scontrol",
                        &["update", &format!("JobId={task}"), "StartTime=now"],
                    );
                    held.remove(task);
                    released += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sweep_runs(sweep_dir: &Path) -> Vec<RunInfo> {
    let mut runs: Vec<RunInfo> = list_runs(sweep_dir)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    runs.sort_by_key(|r| r.sweep_index);
    runs
}

fn event_kinds(dir: &Path) -> Vec<(String, String)> {
    events(dir)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.detail))
        .collect()
}

/// Seconds one training step of the tiny experiment takes here, on one
/// thread as a task with one CPU trains.
fn seconds_per_step(work: &Path) -> f64 {
    let out = common::esx(work)
        .args(["run", "tiny.toml", "epochs=1", "train.steps_per_epoch=60"])
        .args(["--runs", "calibration", "--json", "-q"])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let run = stdout_json(&out);
    let walls: Vec<f64> = metrics(&work.join(run["dir"].as_str().unwrap()), Some(&["loss"]))
        .unwrap()
        .iter()
        .filter(|m| m.split == "step")
        .map(|m| m.wall)
        .collect();
    (walls[walls.len() - 1] - walls[10]) / (walls.len() - 11) as f64
}

#[test]
fn tasks_past_their_time_limit_requeue_themselves_and_complete_every_step_once() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(state.path()) else {
        return;
    };
    write_files(work.path(), &[("tiny.toml", &tiny())]);
    // Slurm checks time limits every 30 s: with a 1-minute limit and a
    // warning 30 s before it, a task gets its SIGUSR1 30 to 60 s in. Runs of
    // about 75 s of training so need at least one requeue.
    let per_step = seconds_per_step(work.path());
    let steps_per_epoch = ((75.0 / per_step) / 3.0).ceil().max(20.0) as u64;
    let per_epoch = format!("train.steps_per_epoch={steps_per_epoch}");
    let out = cluster.esx(
        work.path(),
        &[
            "sweep",
            "tiny.toml",
            "epochs=3",
            &per_epoch,
            "seed=1,2",
            "--launcher",
            "slurm",
            "--cpus-per-task",
            "1",
            "--time",
            "1",
            "--signal-before",
            "30",
            "--max-requeues",
            "5",
            "--sbatch-arg=--comment=esx-requeue-test",
            "--setup",
            "echo setup-line-ran",
            "--json",
        ],
    );
    let report = stdout_json(&out);
    let job = report["job_id"]
        .as_str()
        .expect("a job was submitted")
        .to_string();
    let sweep_dir = work
        .path()
        .join("runs")
        .join(report["id"].as_str().unwrap());
    let script = std::fs::read_to_string(sweep_dir.join("slurm/array-0.sbatch")).unwrap();
    for line in [
        "#SBATCH --signal=B:USR1@30\n",
        "#SBATCH --requeue\n",
        "#SBATCH --open-mode=append\n",
        "#SBATCH --comment=esx-requeue-test\n",
        "export ESX_MAX_REQUEUES=5\n",
        "# --setup\necho setup-line-ran\n",
    ] {
        assert!(script.contains(line), "{line:?} not in\n{script}");
    }

    let (released, squeue) = follow(&cluster, &job, Duration::from_secs(480));
    assert!(
        released >= 2,
        "both tasks were requeued ({released} releases)"
    );
    let total = 3 * steps_per_epoch as i64;
    let runs = sweep_runs(&sweep_dir);
    assert_eq!(
        runs.len(),
        2,
        "one run per point, continued across requeues"
    );
    for run in &runs {
        let index = run.sweep_index.unwrap();
        let log = std::fs::read_to_string(sweep_dir.join(format!("slurm/{job}_{index}.out")))
            .unwrap_or_default();
        let what = format!(
            "run {} (#{index}), events {:?}, squeue said, in turn:\n{squeue}\nlog:\n{log}\nSlurm's logs:\n{}",
            run.id,
            event_kinds(&run.dir),
            cluster.log_about(&job)
        );
        assert_eq!(run.status, RunStatus::Completed, "{what}: {:?}", run.error);
        assert_eq!(
            recorded_steps(&run.dir),
            (1..=total).collect::<Vec<_>>(),
            "{what}: every step once"
        );
        let kinds = event_kinds(&run.dir);
        assert!(
            kinds
                .iter()
                .any(|(k, d)| k == "interrupted" && d.contains("time limit")),
            "{what}: {kinds:?}"
        );
        assert!(
            kinds
                .iter()
                .any(|(k, d)| k == "requeued" && d.contains("requeue 1 of 5")),
            "{what}: {kinds:?}"
        );
        assert!(
            log.matches("setup-line-ran").count() >= 2,
            "{what}: the output is appended across restarts:\n{log}"
        );
        assert_eq!(
            run.slurm_job.as_deref(),
            Some(format!("{job}_{index}").as_str())
        );
    }
}

#[test]
fn a_preempted_task_continues_its_run_and_sbatch_refusals_are_shown() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(state.path()) else {
        return;
    };
    write_files(work.path(), &[("tiny.toml", &tiny())]);
    let base = [
        "sweep",
        "tiny.toml",
        "epochs=3",
        "train.steps_per_epoch=40",
        "seed=1,2",
    ];
    let slurm_args = ["--launcher", "slurm", "--cpus-per-task", "1"];

    // An option sbatch does not know: its own message, nothing launched.
    let out = cluster.esx(
        work.path(),
        &[&base[..], &slurm_args, &["--sbatch-arg=--no-such-option=1"]].concat(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("esx: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("failed: sbatch: unrecognized option '--no-such-option=1'"),
        "{stderr}"
    );
    let sweep_dir = std::fs::read_dir(work.path().join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("sweep.db").is_file())
        .expect("the sweep is recorded");
    let conn = rusqlite::Connection::open(sweep_dir.join("sweep.db")).unwrap();
    let launched: i64 = conn
        .query_row("SELECT count(*) FROM launches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        launched, 0,
        "a refused submission is not recorded as launched"
    );
    // Not an option at all: refused before sbatch.
    let err = common::fails(
        work.path(),
        &[&base[..], &slurm_args, &["--sbatch-arg", "account=lab"]].concat(),
    );
    assert!(
        err.contains("--sbatch-arg `account=lab`: give one sbatch option"),
        "{err}"
    );

    // Preemption that requeues (PreemptMode=REQUEUE) is `scontrol requeue`
    // of a running task: SIGTERM, then the task starts again later.
    let out = cluster.esx(work.path(), &[&base[..], &slurm_args, &["--json"]].concat());
    let report = stdout_json(&out);
    let job = report["job_id"].as_str().expect("submitted").to_string();
    squeue_decides_for_late_heartbeats(&cluster, work.path(), &format!("{job}_1"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let task0 = loop {
        assert!(Instant::now() < deadline, "point 0 never reached step 50");
        // A run being created reads as no run a moment: skip it then.
        let started = list_runs(&sweep_dir).unwrap().into_iter().flatten();
        if let Some(run) = started.into_iter().find(|r| r.sweep_index == Some(0)) {
            if recorded_steps(&run.dir).len() >= 50 {
                break run;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    slurm(&cluster, "scontrol", &["requeue", &format!("{job}_0")]);
    follow(&cluster, &job, Duration::from_secs(300));
    let runs = sweep_runs(&sweep_dir);
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        assert_eq!(recorded_steps(&run.dir), (1..=120).collect::<Vec<_>>());
    }
    let kinds = event_kinds(&task0.dir);
    let interrupted: Vec<_> = kinds.iter().filter(|(k, _)| k == "interrupted").collect();
    assert_eq!(interrupted.len(), 1, "{kinds:?}");
    assert!(!interrupted[0].1.contains("time limit"), "{kinds:?}");
    assert!(
        !kinds.iter().any(|(k, _)| k == "requeued"),
        "Slurm requeued it, not esx: {kinds:?}"
    );
    assert!(kinds.iter().any(|(k, _)| k == "resumed"), "{kinds:?}");
}

/// Runs recorded as running on another host, heartbeat late (2 min) but not
/// stale: a reader asks squeue, and a job it does not know is crashed.
fn squeue_decides_for_late_heartbeats(cluster: &Cluster, work: &Path, live_job: &str) {
    let root = work.join("elsewhere");
    for (name, job) in [("live", live_job), ("gone", "424242")] {
        let new = esx::store::NewRun {
            name: name.into(),
            config_toml: "lr = 0.001\n".into(),
            command: vec!["esx".into()],
            ..Default::default()
        };
        let w = esx::store::RunWriter::create(&root, None, &new).unwrap();
        let db = w.dir().join("run.db");
        drop(w);
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute(
            "UPDATE run SET status = 'running', ended = NULL, error = NULL,
                host = 'node-elsewhere', heartbeat = ?1, slurm_job = ?2",
            rusqlite::params![esx::store::provenance::now() - 120.0, job],
        )
        .unwrap();
    }
    let out = cluster.esx(work, &["ls", root.to_str().unwrap()]);
    let ls = String::from_utf8_lossy(&out.stdout);
    let status = |name: &str| {
        ls.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_string)
    };
    assert_eq!(status("live").as_deref(), Some("running"), "{ls}");
    assert_eq!(status("gone").as_deref(), Some("crashed"), "{ls}");
}

/// A real preemption (PreemptMode=CANCEL: Slurm would not bring the job
/// back) of a plain `esx run` in a script of the user's own: the run tells
/// it from a scancel by the job's PreemptTime, checkpoints, requeues its job
/// and, started again, continues.
#[test]
fn a_preempted_run_in_a_users_own_script_requeues_itself_and_completes() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start_preempting(state.path()) else {
        return;
    };
    write_files(work.path(), &[("tiny.toml", &tiny())]);
    // Slurm preempts up to a minute after the preempting job is queued.
    let per_step = seconds_per_step(work.path());
    let steps_per_epoch = ((100.0 / per_step) / 3.0).ceil().max(20.0) as i64;
    let script = format!(
        "#!/bin/bash\n#SBATCH --partition=low\n#SBATCH --exclusive\n#SBATCH --requeue\n\
         #SBATCH --open-mode=append\n#SBATCH --output={out}\ncd {work} || exit 1\n\
         export RAYON_NUM_THREADS=1\n\
         exec {esx} run tiny.toml epochs=3 train.steps_per_epoch={steps_per_epoch} --runs runs -q\n",
        out = work.path().join("job.out").display(),
        work = work.path().display(),
        esx = assert_cmd::cargo::cargo_bin("esx").display(),
    );
    write_files(work.path(), &[("job.sbatch", &script)]);
    let job = slurm(
        &cluster,
        "sbatch",
        &[
            "--parsable",
            work.path().join("job.sbatch").to_str().unwrap(),
        ],
    )
    .trim()
    .to_string();
    assert!(
        job.chars().all(|c| c.is_ascii_digit()) && !job.is_empty(),
        "{job}"
    );
    let runs = work.path().join("runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    let run_dir = loop {
        assert!(Instant::now() < deadline, "the run never got going");
        let started = list_runs(&runs).ok().into_iter().flatten().flatten();
        if let Some(run) = started.into_iter().next() {
            if recorded_steps(&run.dir).len() >= 10 {
                break run.dir;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let high = slurm(
        &cluster,
        "sbatch",
        &[
            "--parsable",
            "--partition=high",
            "--exclusive",
            "--wrap",
            "sleep 1",
        ],
    );
    assert!(!high.trim().is_empty(), "the preempting job was submitted");
    follow(&cluster, &job, Duration::from_secs(420));

    let run = esx::store::query::read_run(&run_dir).unwrap();
    let log = std::fs::read_to_string(work.path().join("job.out")).unwrap_or_default();
    assert_eq!(run.status, RunStatus::Completed, "{:?}\n{log}", run.error);
    assert_eq!(
        recorded_steps(&run_dir),
        (1..=3 * steps_per_epoch).collect::<Vec<_>>(),
        "every step once"
    );
    let kinds = event_kinds(&run_dir);
    assert!(
        kinds
            .iter()
            .any(|(k, d)| k == "requeued" && d.contains("requeue 1 of 3 (preempted)")),
        "{kinds:?}\n{log}"
    );
    assert!(kinds.iter().any(|(k, _)| k == "resumed"), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .filter(|(k, _)| k == "interrupted")
            .all(|(_, d)| !d.contains("time limit")),
        "{kinds:?}"
    );
    assert_eq!(run.slurm_job.as_deref(), Some(job.as_str()));
    assert_eq!(list_runs(&runs).unwrap().len(), 1, "one run, continued");
}
