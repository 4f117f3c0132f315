//! `esx sweep --launcher slurm` against a real Slurm: tests/slurm/cluster.sh
//! starts a private single-node cluster (munged, slurmctld, slurmd) and stops
//! it by pid afterwards. It needs root and Debian's Slurm packages, which
//! .ci/run installs; there ESX_SLURM_TEST=required makes their absence a
//! failure, elsewhere the test says why it did not run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{esx, repo, write_files};
use esx::store::query::list_runs;
use esx::store::RunStatus;

struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    /// One cluster at a time: each thinks it has the machine's cores.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
static CLUSTERS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

impl Cluster {
    /// Some(cluster) when Slurm can run here; None (with the reason printed)
    /// when it cannot and it is not required.
    fn start(dir: &Path) -> Option<Cluster> {
        let required = std::env::var("ESX_SLURM_TEST").is_ok_and(|v| v == "required");
        let script = repo().join("tests/slurm/cluster.sh");
        let missing = ["munged", "slurmctld", "slurmd", "sbatch"]
            .into_iter()
            .find(|t| {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let why = match (missing, root) {
            (Some(tool), _) => Some(format!("{tool} is not installed")),
            (None, false) => Some("it needs root".to_string()),
            _ => None,
        };
        if let Some(why) = why {
            assert!(!required, "ESX_SLURM_TEST=required but {why}");
            eprintln!("slurm test not run: {why} (.ci/run installs Slurm and runs it as root)");
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        // Ports of our own, so a cluster already on this machine (or the
        // previous test's, still closing) is left alone.
        let nth = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = 20000 + (std::process::id() % 5000) as u16 * 4 + 2 * (nth % 2);
        let out = Command::new("bash")
            .arg(&script)
            .args(["start", dir.to_str().unwrap()])
            .env("ESX_SLURMCTLD_PORT", base.to_string())
            .env("ESX_SLURMD_PORT", (base + 1).to_string())
            .output()
            .unwrap();
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            _turn: turn,
        };
        assert!(
            out.status.success(),
            "cluster.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(cluster)
    }

    fn esx(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        esx(dir)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/slurm/cluster.sh"))
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}

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

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_sweep_runs_as_a_slurm_array_job_and_resubmits_only_what_did_not_complete() {
    let work = tempfile::tempdir().unwrap();
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
