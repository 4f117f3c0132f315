//! `esx sweep --launcher slurm` against a real Slurm: tests/slurm/cluster.sh
//! starts a private single-node cluster (munged, slurmctld, slurmd) and stops
//! it by pid afterwards. It needs root and Debian's Slurm packages, which
//! .ci/run installs; there ESX_SLURM_TEST=required makes their absence a
//! failure, elsewhere the test says why it did not run.

mod common;

use std::path::Path;

use common::slurm::Cluster;
use common::{repo, stdout_json as json, write_files};
use esx::store::query::list_runs;
use esx::store::RunStatus;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_sweep_runs_as_a_slurm_array_job_and_resubmits_only_what_did_not_complete() {
    // A folder with a space: the script's #SBATCH --output must quote it.
    let work = tempfile::Builder::new()
        .prefix("esx work ")
        .tempdir()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(state.path()) else {
        return;
    };
    copy_dir(
        &repo().join("experiments"),
        &work.path().join("experiments"),
    );

    // Four one-epoch quickstart runs, two at a time (one core each).
    let args = [
        "sweep",
        "experiments/quickstart.toml",
        "epochs=1",
        "train.steps_per_epoch=4",
        "seed=1,2,3,4",
        "--launcher",
        "slurm",
        "--cpus-per-task",
        "1",
        "--wait",
        "--poll",
        "0.2",
        "--json",
    ];
    let out = cluster.esx(work.path(), &args);
    let report = json(&out);
    assert!(
        out.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = report["id"].as_str().unwrap();
    let job = report["job_id"].as_str().expect("a job was submitted");
    let sweep_dir = work.path().join("runs").join(id);
    let script = std::fs::read_to_string(sweep_dir.join("slurm/array-0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3") && script.contains("--cpus-per-task=1"));
    let runs: Vec<_> = list_runs(&sweep_dir)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    let mut indices: Vec<i64> = runs.iter().filter_map(|r| r.sweep_index).collect();
    indices.sort();
    assert_eq!(indices, [0, 1, 2, 3]);
    for i in 0..4 {
        assert!(sweep_dir.join(format!("slurm/{job}_{i}.out")).is_file());
    }
    let listed = cluster.esx(work.path(), &["ls", "--sweep", id]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        listed.lines().filter(|l| l.contains("completed")).count(),
        4,
        "{listed}"
    );

    // The same command again submits nothing.
    let again = json(&cluster.esx(work.path(), &args));
    assert!(again["job_id"].is_null());
    assert_eq!(again["skipped"], 4);

    // A point that fails is reported from its run and is the only one resubmitted.
    write_files(
        work.path(),
        &[(
            "experiments/broken.toml",
            "defaults = [\"quickstart.toml\"]\n",
        )],
    );
    let args = [
        "sweep",
        "experiments/broken.toml",
        "epochs=1",
        "train.steps_per_epoch=2",
        r#"data.sequences=["01"],["07"]"#,
        "--launcher",
        "slurm",
        "--wait",
        "--poll",
        "0.2",
    ];
    let out = cluster.esx(work.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("#1 failed: sequence folder data/synthetic-fluo/07 does not exist"),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = cluster.esx(work.path(), &json_args);
    let report = json(&out);
    let launched: Vec<u64> = report["launched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["index"].as_u64().unwrap())
        .collect();
    assert_eq!(launched, [1]);
    let script = std::fs::read_to_string(
        work.path()
            .join("runs")
            .join(report["id"].as_str().unwrap())
            .join("slurm/array-1.sbatch"),
    )
    .unwrap();
    assert!(script.contains("#SBATCH --array=1\n"), "{script}");
}

#[test]
fn array_tasks_obey_the_pruner_and_a_tpe_search_proposes_as_tasks_end() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(state.path()) else {
        return;
    };
    // One good learning rate among four that learn nothing in an epoch:
    // ASHA at epoch 1 keeps the best third. The tasks decide from each
    // other's stores; the launcher only waits.
    let experiment = esx::bench::sweep::tiny_experiment(4, 2)
        + "\n[sweep]\nlr = [1e-3, 2e-2, 3e-2, 4e-2, 5e-2]\n\n[search]\nprune = \"asha\"\nmin_epochs = 1\nreduction = 3\n";
    write_files(work.path(), &[("tiny.toml", &experiment)]);
    let slurm = [
        "--launcher",
        "slurm",
        "--cpus-per-task",
        "1",
        "--wait",
        "--poll",
        "0.2",
        "--json",
    ];
    let out = cluster.esx(
        work.path(),
        &[
            &["sweep", "tiny.toml", "--array-parallelism", "2"][..],
            &slurm,
        ]
        .concat(),
    );
    let report = json(&out);
    assert!(
        out.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweep_dir = work
        .path()
        .join("runs")
        .join(report["id"].as_str().unwrap());
    let runs: Vec<_> = list_runs(&sweep_dir)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs.len(), 5);
    let pruned = runs
        .iter()
        .filter(|r| r.status == RunStatus::Pruned)
        .count();
    assert!(pruned >= 1, "no task was pruned: {report:#}");
    assert!(runs
        .iter()
        .all(|r| matches!(r.status, RunStatus::Pruned | RunStatus::Completed)));
    let statuses: Vec<&str> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "pruned").count(), pruned);

    // TPE on Slurm: each proposal its own job, at most two at a time.
    let out = cluster.esx(
        work.path(),
        &[
            &[
                "sweep",
                "tiny.toml",
                "lr=loguniform(1e-4,1e-2)",
                "--method",
                "tpe",
                "--trials",
                "3",
                "--prune",
                "none",
                "--array-parallelism",
                "2",
            ][..],
            &slurm,
        ]
        .concat(),
    );
    let report = json(&out);
    assert!(
        out.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = report["job_id"].as_str().unwrap();
    assert_eq!(jobs.split(',').count(), 3, "one job per proposal: {jobs}");
    let sweep_dir = work
        .path()
        .join("runs")
        .join(report["id"].as_str().unwrap());
    let runs: Vec<_> = list_runs(&sweep_dir)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    // Without --wait a TPE search cannot go on: refused before anything is recorded.
    let out = cluster.esx(
        work.path(),
        &[
            "sweep",
            "tiny.toml",
            "lr=loguniform(1e-4,1e-2)",
            "--method",
            "tpe",
            "--trials",
            "2",
            "--launcher",
            "slurm",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --wait"));
}

/// `esx watch` follows a sweep's root while Slurm tasks write it: the
/// frames go from running runs to every point done.
#[test]
fn watch_follows_a_sweep_that_slurm_runs() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(state.path()) else {
        return;
    };
    write_files(
        work.path(),
        &[("tiny.toml", &common::tiny_experiment(1, 64, 0))],
    );
    let args = [
        "sweep",
        "tiny.toml",
        "seed=1,2",
        "epochs=3",
        "--launcher",
        "slurm",
        "--cpus-per-task",
        "1",
        "--json",
    ];
    let out = cluster.esx(work.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    // A run held still (SIGSTOP: the test's cluster is this machine) as soon
    // as its store names its process, so that a frame of it running is
    // there to see however fast the machine trains; let go once seen.
    let held = loop {
        let found = common::newest_run(&work.path().join("runs"))
            .and_then(|d| esx::store::query::read_run(&d).ok())
            .filter(|r| r.pid > 0);
        if let Some(run) = found {
            let pid = run.pid.to_string();
            let stopped = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status();
            assert!(stopped.is_ok_and(|s| s.success()), "kill -STOP {pid}");
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no run started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let mut held = Some(held);
    let mut saw_running = false;
    loop {
        let out = cluster.esx(
            work.path(),
            &["watch", "--once", "--sweep", &id, "--size", "100x30"],
        );
        let frame = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success() || frame.is_empty(), "{frame}");
        saw_running |= frame.contains("1 running") || frame.contains("2 running");
        if saw_running {
            if let Some(pid) = held.take() {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid])
                    .status();
            }
        }
        if frame.contains("2 of 2 done") {
            assert!(frame.contains("2 runs: 2 completed"), "{frame}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never finished; last frame:\n{frame}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(saw_running, "no frame showed a run mid-way");
}
