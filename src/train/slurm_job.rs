//! Training inside a Slurm job. A job that Slurm requeues (after esx asked
//! for it at the time-limit warning, or after a preemption) starts its
//! script again with the same job id: `esx run` then continues the run that
//! job was training instead of starting a new one. A run stopped by the
//! time-limit warning (SIGUSR1), or by the SIGTERM of a preemption, requeues
//! its own job, at most `ESX_MAX_REQUEUES` times (the sweep script sets it
//! from --max-requeues). A SIGTERM from scancel requeues nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::store::provenance::slurm_job;
use crate::store::query::{list_runs, RunInfo};
use crate::store::{Claim, RunWriter, StoreError};

/// The variable the Slurm launcher's script sets from `--max-requeues`.
pub const MAX_REQUEUES_ENV: &str = "ESX_MAX_REQUEUES";
/// How many times a run requeues itself when nothing says otherwise.
pub const DEFAULT_MAX_REQUEUES: u32 = 3;

/// The Slurm job this process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: String,
    /// How many times Slurm has started this job again (SLURM_RESTART_COUNT).
    pub restarts: u32,
    pub max_requeues: u32,
}

impl SlurmJob {
    /// The job from Slurm's environment, if this process runs in one.
    pub fn current() -> Option<SlurmJob> {
        let var = |k: &str| std::env::var(k).ok();
        SlurmJob::from_vars(
            slurm_job().as_deref(),
            var("SLURM_RESTART_COUNT").as_deref(),
            var(MAX_REQUEUES_ENV).as_deref(),
        )
    }

    fn from_vars(id: Option<&str>, restarts: Option<&str>, max: Option<&str>) -> Option<SlurmJob> {
        let id =
            id.filter(|j| !j.is_empty() && j.chars().all(|c| c.is_ascii_digit() || c == '_'))?;
        Some(SlurmJob {
            id: id.to_string(),
            restarts: restarts.and_then(|r| r.trim().parse().ok()).unwrap_or(0),
            max_requeues: max
                .and_then(|m| m.trim().parse().ok())
                .unwrap_or(DEFAULT_MAX_REQUEUES),
        })
    }

    /// The run this job trained before Slurm started it again: the newest
    /// run under `root` recorded with this job id. None on a first start.
    pub fn continued_run(&self, root: &Path) -> Option<RunInfo> {
        if self.restarts == 0 || !root.is_dir() {
            return None;
        }
        let mut mine: Vec<RunInfo> = list_runs(root)
            .ok()?
            .into_iter()
            .filter_map(Result::ok)
            .filter(|r| r.slurm_job.as_deref() == Some(self.id.as_str()))
            .collect();
        mine.sort_by(|a, b| a.created.total_cmp(&b.created));
        mine.pop()
    }

    /// Whether Slurm is preempting this job (its record has a PreemptTime):
    /// told apart from a user's scancel, whose SIGTERM is the same.
    pub fn preempted(&self) -> bool {
        Command::new("scontrol")
            .args(["-o", "show", "job", &self.id])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .is_some_and(|o| preempt_time_set(&String::from_utf8_lossy(&o.stdout)))
    }

    /// Requeues this job so that it continues `run_dir` (recorded as an
    /// event first: Slurm stops this process as it requeues); `why` says
    /// what stopped it. Err says why the job was not requeued.
    pub fn requeue(&self, run_dir: &Path, why: &str) -> Result<String, String> {
        if self.restarts >= self.max_requeues {
            return Err(format!(
                "job {} has been requeued {} time{}, the most {MAX_REQUEUES_ENV} allows; \
                 the run stays interrupted (esx run --resume continues it)",
                self.id,
                self.restarts,
                if self.restarts == 1 { "" } else { "s" }
            ));
        }
        let what = format!(
            "job {}: requeue {} of {} ({why})",
            self.id,
            self.restarts + 1,
            self.max_requeues
        );
        let _ = annotate(run_dir, "requeued", &what);
        let out = Command::new("scontrol")
            .args(["requeue", &self.id])
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            // Slurm may stop scontrol with the rest of the job as it requeues.
            Ok(o) if o.status.success() || o.status.code().is_none() => Ok(what),
            // PreemptMode=REQUEUE: Slurm requeued it already.
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("pending") => {
                Ok(format!("job {}: requeued by Slurm ({why})", self.id))
            }
            Ok(o) => {
                let why = format!(
                    "scontrol requeue {} failed: {}",
                    self.id,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let _ = annotate(run_dir, "requeue-failed", &why);
                Err(why)
            }
            Err(e) => {
                let why = format!("cannot run scontrol ({e})");
                let _ = annotate(run_dir, "requeue-failed", &why);
                Err(why)
            }
        }
    }
}

/// `PreemptTime=2026-…` in `scontrol -o show job` output (None: not preempted).
fn preempt_time_set(record: &str) -> bool {
    record
        .split_whitespace()
        .find_map(|f| f.strip_prefix("PreemptTime="))
        .is_some_and(|t| t != "None" && t != "Unknown" && !t.is_empty())
}

fn annotate(run_dir: &Path, kind: &str, detail: &str) -> Result<(), StoreError> {
    let mut w = RunWriter::annotate(run_dir)?;
    w.log_event(kind, detail)?;
    w.close()
}

/// Claims a run whose previous process was this job's before Slurm started
/// it again: on a network filesystem the dead node's lock may outlive it
/// until the server's lease expires, so the claim is retried a while.
pub fn claim_requeued(dir: &Path, patience: Duration) -> Result<Claim, StoreError> {
    let until = Instant::now() + patience;
    loop {
        match RunWriter::claim(dir) {
            Err(StoreError::Claimed { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_comes_from_slurms_variables() {
        assert_eq!(SlurmJob::from_vars(None, Some("1"), None), None);
        assert_eq!(SlurmJob::from_vars(Some("12a"), None, None), None);
        assert_eq!(
            SlurmJob::from_vars(Some("12_3"), None, None).unwrap().id,
            "12_3"
        );
        let job = SlurmJob::from_vars(Some("1234"), None, None).unwrap();
        assert_eq!((job.restarts, job.max_requeues), (0, DEFAULT_MAX_REQUEUES));
        let job = SlurmJob::from_vars(Some("7"), Some("2"), Some("5")).unwrap();
        assert_eq!(
            (job.id.as_str(), job.restarts, job.max_requeues),
            ("7", 2, 5)
        );
    }

    #[test]
    fn a_job_at_its_requeue_limit_is_not_requeued() {
        let job = SlurmJob::from_vars(Some("7"), Some("2"), Some("2")).unwrap();
        let err = job
            .requeue(Path::new("/nonexistent"), "time limit")
            .unwrap_err();
        assert!(
            err.starts_with("job 7 has been requeued 2 times, the most ESX_MAX_REQUEUES allows"),
            "{err}"
        );
    }

    #[test]
    fn a_preemption_is_told_from_a_cancel_by_its_preempt_time() {
        let cancelled =
            "JobId=5 JobName=x JobState=COMPLETING Reason=None PreemptTime=None SuspendTime=None";
        let preempted =
            "JobId=3 JobState=COMPLETING PreemptTime=2026-12-01T19:28:26 SuspendTime=None";
        assert!(!preempt_time_set(cancelled));
        assert!(preempt_time_set(preempted));
        assert!(!preempt_time_set("JobId=3 JobState=RUNNING"));
    }

    #[test]
    fn a_first_start_continues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let job = SlurmJob::from_vars(Some("7"), Some("0"), None).unwrap();
        assert!(job.continued_run(dir.path()).is_none());
    }
}
