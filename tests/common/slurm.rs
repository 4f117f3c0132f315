//! A private single-node Slurm for the tests that need one:
//! tests/slurm/cluster.sh starts it (munged, slurmctld, slurmd) and stops it
//! by pid afterwards. It needs root and Debian's Slurm packages, which
//! .ci/run installs; there ESX_SLURM_TEST=required makes their absence a
//! failure, elsewhere the test says why it did not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{esx, repo};

pub struct Cluster {
    dir: PathBuf,
    pub conf: PathBuf,
    /// One cluster at a time: each thinks it has the machine's cores.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
static CLUSTERS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

impl Cluster {
    /// Some(cluster) when Slurm can run here; None (with the reason printed)
    /// when it cannot and it is not required.
    pub fn start(dir: &Path) -> Option<Cluster> {
        Cluster::start_with(dir, &[])
    }

    /// A cluster whose `high` partition preempts (cancels) jobs in `low`.
    pub fn start_preempting(dir: &Path) -> Option<Cluster> {
        Cluster::start_with(dir, &[("ESX_SLURM_PREEMPT", "cancel")])
    }

    fn start_with(dir: &Path, envs: &[(&str, &str)]) -> Option<Cluster> {
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
            .envs(envs.iter().copied())
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

    pub fn esx(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        esx(dir)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap()
    }

    /// The controller's and the node's log lines that mention `job`, for a
    /// failing test to show what Slurm did.
    pub fn log_about(&self, job: &str) -> String {
        let mut out = String::new();
        for name in ["slurmctld.log", "slurmd.log"] {
            let text = std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default();
            out.push_str(&format!("-- {name}\n"));
            let (whole, task) = (format!("JobId={job}"), format!("{job}_"));
            for line in text
                .lines()
                .filter(|l| l.contains(&whole) || l.contains(&task))
            {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
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
