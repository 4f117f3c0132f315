//! The Slurm launcher: one sbatch array job per launch, array task i = point
//! i, written as a script into `<sweep>/slurm/`; `--wait` follows the tasks
//! through squeue (sacct needs accounting, which many clusters lack). Points
//! whose tasks are still pending or running in an earlier job are not
//! submitted again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::task::Task;
use super::{Sweep, SweepError, SweepRecord};
use crate::progress::Reporter;
use crate::train::slurm_job::MAX_REQUEUES_ENV;
use crate::train::Interrupt;

#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub mem: Option<String>,
    pub cpus_per_task: Option<usize>,
    pub gpus_per_task: Option<usize>,
    /// At most this many array tasks at once (`--array=…%K`).
    pub array_parallelism: Option<usize>,
    pub wait: bool,
    /// Seconds between squeue polls while waiting.
    pub poll_seconds: f64,
    /// Seconds before the time limit at which Slurm warns a task (SIGUSR1):
    /// the run checkpoints and requeues its job. None: no warning asked.
    pub signal_before: Option<u32>,
    /// How many times a task may requeue itself.
    pub max_requeues: u32,
    /// Passed to sbatch as they are (`#SBATCH` lines): account, qos…
    pub sbatch_args: Vec<String>,
    /// Shell lines run before `esx run` in every task (`module load …`).
    pub setup: Vec<String>,
}

/// The default warning before a task's time limit, in seconds.
pub const SIGNAL_BEFORE: u32 = 120;

impl SlurmOptions {
    /// Refuses what cannot be written into a script as given.
    pub fn check(&self) -> Result<(), SweepError> {
        // A value written into an `#SBATCH` line: one line, no quote (a
        // newline would add a directive of its own).
        for (flag, value) in [
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
        ] {
            let Some(v) = value else { continue };
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == '"') {
                return Err(SweepError::Launcher(format!(
                    "--{flag} `{}`: one word, without quotes or line breaks",
                    crate::text::printable(&crate::text::shorten(v, 60))
                )));
            }
        }
        for arg in &self.sbatch_args {
            if !arg.starts_with('-') || arg.contains('\n') {
                return Err(SweepError::Launcher(format!(
                    "--sbatch-arg `{}`: give one sbatch option, e.g. --sbatch-arg=--account=lab",
                    crate::text::shorten(arg, 60)
                )));
            }
        }
        for line in &self.setup {
            if line.contains('\n') {
                return Err(SweepError::Launcher(format!(
                    "--setup `{}`: one line each (repeat --setup for more)",
                    crate::text::shorten(line, 60)
                )));
            }
        }
        Ok(())
    }
}

/// Writes the array script for `tasks`, submits it and records the launch.
pub fn submit(
    sweep: &Sweep,
    record: &SweepRecord,
    tasks: &[Task],
    options: &SlurmOptions,
    exe: &Path,
) -> Result<String, SweepError> {
    let folder = sweep.dir.join("slurm");
    std::fs::create_dir_all(&folder).map_err(|e| SweepError::io(&folder, e))?;
    let n = record.launches()?.len();
    let script_path = folder.join(format!("array-{n}.sbatch"));
    let script = script(sweep, tasks, options, exe, &folder)?;
    std::fs::write(&script_path, script).map_err(|e| SweepError::io(&script_path, e))?;
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(&script_path)
        .output()
        .map_err(|e| {
            SweepError::Launcher(format!(
                "cannot run sbatch ({e}); is Slurm installed and on PATH?"
            ))
        })?;
    if !output.status.success() {
        return Err(SweepError::Launcher(format!(
            "sbatch {} failed: {}",
            script_path.display(),
            one_line(&output.stderr)
        )));
    }
    // --parsable prints "jobid" or "jobid;cluster".
    let text = String::from_utf8_lossy(&output.stdout);
    let job = text.trim().split(';').next().unwrap_or("").to_string();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
        return Err(SweepError::Launcher(format!(
            "sbatch printed `{}` instead of a job id",
            text.trim()
        )));
    }
    let indices: Vec<usize> = tasks.iter().map(|t| t.index).collect();
    record.add_launch("slurm", Some(&job), &indices, Some(&script_path))?;
    Ok(job)
}

/// The sbatch script: directives, then one case per array task.
fn script(
    sweep: &Sweep,
    tasks: &[Task],
    options: &SlurmOptions,
    exe: &Path,
    folder: &Path,
) -> Result<String, SweepError> {
    let quote = |s: &str| -> Result<String, SweepError> {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .map_err(|_| SweepError::Launcher(format!("cannot quote `{s}` for the shell")))
    };
    let cwd = std::env::current_dir().map_err(|e| SweepError::io(Path::new("."), e))?;
    let indices: Vec<usize> = tasks.iter().map(|t| t.index).collect();
    let mut array = compact_ranges(&indices);
    if let Some(k) = options.array_parallelism {
        let _ = write!(array, "%{k}");
    }
    let mut s = String::from("#!/bin/bash\n");
    // sbatch reads directive values as shell words: one with a space is
    // quoted (SlurmOptions::check refused quotes and line breaks; the
    // folder is checked here).
    let output = cwd.join(folder).join("%A_%a.out").display().to_string();
    if output.chars().any(|c| c.is_control() || c == '"') {
        return Err(SweepError::Launcher(format!(
            "the sweep's folder {} holds a quote or a line break, which an #SBATCH line cannot carry",
            crate::text::printable(&output)
        )));
    }
    let mut directive = |flag: &str, value: &str| {
        if value.contains(char::is_whitespace) {
            let _ = writeln!(s, "#SBATCH --{flag}=\"{value}\"");
        } else {
            let _ = writeln!(s, "#SBATCH --{flag}={value}");
        }
    };
    directive("job-name", &format!("esx-{}", sweep.id));
    directive("array", &array);
    directive("output", &output);
    if let Some(p) = &options.partition {
        directive("partition", p);
    }
    if let Some(t) = &options.time {
        directive("time", t);
    }
    if let Some(m) = &options.mem {
        directive("mem", m);
    }
    if let Some(c) = options.cpus_per_task {
        directive("cpus-per-task", &c.to_string());
    }
    if let Some(g) = options.gpus_per_task {
        directive("gpus-per-task", &g.to_string());
    }
    // A requeued task appends to its output rather than starting it over.
    directive("open-mode", "append");
    if let Some(before) = options.signal_before {
        directive("signal", &format!("B:USR1@{before}"));
    }
    if options.signal_before.is_some() || options.max_requeues > 0 {
        s.push_str("#SBATCH --requeue\n");
    }
    for arg in &options.sbatch_args {
        let _ = writeln!(s, "#SBATCH {arg}");
    }
    let _ = writeln!(
        s,
        "\n# Written by `esx sweep --launcher slurm`: sweep {}, {} of its {} points.\n\
         # Each task trains one point with `esx run` and records it under {}.",
        sweep.id,
        tasks.len(),
        sweep.points.len(),
        sweep.dir.display()
    );
    let _ = writeln!(s, "cd {} || exit 1", quote(&cwd.display().to_string())?);
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    // Read by `esx run`: at the time-limit warning it requeues its job at
    // most this many times; the requeued task continues the same run.
    let _ = writeln!(s, "export {}={}", MAX_REQUEUES_ENV, options.max_requeues);
    if !options.setup.is_empty() {
        s.push_str("# --setup\n");
        for line in &options.setup {
            let _ = writeln!(s, "{line}");
        }
    }
    s.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
    // Slurm hands each task its GPUs as CUDA_VISIBLE_DEVICES, so it sees cuda:0.
    let extra: Vec<String> = match options.gpus_per_task {
        Some(g) if g > 0 => vec!["device=cuda:0".into()],
        _ => Vec::new(),
    };
    for task in tasks {
        let mut line = quote(&exe.display().to_string())?;
        for arg in task.args(sweep, &extra) {
            line.push(' ');
            line.push_str(&quote(&arg)?);
        }
        let _ = writeln!(s, "  {}) exec {line} ;;", task.index);
    }
    s.push_str(
        "  *) echo \"esx: no point $SLURM_ARRAY_TASK_ID in this script\" >&2; exit 2 ;;\nesac\n",
    );
    Ok(s)
}

/// `[0,1,2,5,7,8]` → `0-2,5,7-8`.
fn compact_ranges(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

fn is_active(state: &str) -> bool {
    crate::store::heartbeat::slurm_state_is_active(state)
}

/// Array task index → state for `job`, one line per task (`squeue -r`);
/// None once Slurm has forgotten the job.
fn task_states(job: &str) -> Result<Option<BTreeMap<usize, String>>, SweepError> {
    let output = Command::new("squeue")
        .args(["-j", job, "-t", "all", "-r", "-h", "-o", "%i %T"])
        .output()
        .map_err(|e| SweepError::Launcher(format!("cannot run squeue ({e})")))?;
    if !output.status.success() {
        let err = one_line(&output.stderr);
        if err.contains("Invalid job id") {
            return Ok(None);
        }
        return Err(SweepError::Launcher(format!(
            "squeue -j {job} failed: {err}"
        )));
    }
    let mut states = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((id, state)) = line.trim().split_once(' ') else {
            continue;
        };
        if let Some(index) = id
            .split_once('_')
            .and_then(|(_, i)| i.parse::<usize>().ok())
        {
            states.insert(index, state.trim().to_string());
        }
    }
    Ok(Some(states))
}

/// Points whose tasks in earlier launches are still pending or running.
pub fn queued_points(record: &SweepRecord) -> Result<BTreeSet<usize>, SweepError> {
    let mut queued = BTreeSet::new();
    for launch in record.launches()? {
        let Some(job) = launch.job_id.filter(|_| launch.launcher == "slurm") else {
            continue;
        };
        if let Ok(Some(states)) = task_states(&job) {
            queued.extend(
                states
                    .into_iter()
                    .filter(|(_, s)| is_active(s))
                    .map(|(i, _)| i),
            );
        }
    }
    Ok(queued)
}

/// Follows `job` until none of its tasks is pending or running, printing each
/// task's changes of state. Ctrl-C stops the waiting, not the job.
pub fn wait(
    job: &str,
    poll_seconds: f64,
    reporter: &Reporter,
    interrupt: &Interrupt,
) -> Result<(), SweepError> {
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    loop {
        let Some(states) = task_states(job)? else {
            return Ok(());
        };
        for (index, state) in &states {
            if seen.get(index) != Some(state) {
                reporter.note(format!("job {job} task {index}: {}", state.to_lowercase()));
                seen.insert(*index, state.clone());
            }
        }
        if !states.values().any(|s| is_active(s)) {
            return Ok(());
        }
        let until = std::time::Instant::now() + Duration::from_secs_f64(poll_seconds);
        while std::time::Instant::now() < until {
            if interrupt.requested() {
                reporter.note(format!(
                    "stopped waiting; job {job} goes on (scancel {job} cancels it)"
                ));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A TPE search on Slurm: one single-task array job per proposal, at most
/// `--array-parallelism` (default 4) at once; when a task leaves the queue
/// its result is read from its store and the next point is proposed and
/// submitted. Returns the job ids submitted. Ctrl-C stops proposing and
/// waiting; the jobs already submitted go on.
pub fn run_source(
    sweep: &Sweep,
    record: &SweepRecord,
    source: &mut dyn super::source::TaskSource,
    options: &SlurmOptions,
    exe: &Path,
    reporter: &Reporter,
    interrupt: &Interrupt,
) -> Result<Vec<String>, SweepError> {
    let parallel = options.array_parallelism.unwrap_or(4).max(1);
    let mut live: Vec<(usize, String)> = Vec::new();
    let mut jobs = Vec::new();
    let mut failure = None;
    let mut exhausted = false;
    loop {
        while live.len() < parallel && !exhausted && failure.is_none() && !interrupt.requested() {
            match source.next() {
                Ok(Some(task)) => {
                    let job = submit(sweep, record, std::slice::from_ref(&task), options, exe)?;
                    reporter.note(format!(
                        "#{} submitted as job {job}: {}",
                        task.index,
                        task.point.label()
                    ));
                    live.push((task.index, job.clone()));
                    jobs.push(job);
                }
                Ok(None) => exhausted = true,
                Err(e) => failure = Some(e),
            }
        }
        if live.is_empty() || interrupt.requested() {
            break;
        }
        let until = std::time::Instant::now() + Duration::from_secs_f64(options.poll_seconds);
        while std::time::Instant::now() < until && !interrupt.requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut still = Vec::new();
        for (index, job) in live {
            let active =
                task_states(&job)?.is_some_and(|states| states.values().any(|s| is_active(s)));
            if active {
                still.push((index, job));
                continue;
            }
            reporter.note(format!("#{index} (job {job}) ended"));
            if let Err(e) = source.ended(index) {
                if failure.is_none() {
                    reporter.warn(format!("{e}; submitting no more points"));
                    failure = Some(e);
                }
            }
        }
        live = still;
    }
    if interrupt.requested() && !live.is_empty() {
        reporter.note("stopped proposing; the jobs submitted go on (scancel cancels them)");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(jobs),
    }
}

/// The output file Slurm writes for a task of `job`.
pub fn task_output(sweep_dir: &Path, job: &str, index: usize) -> PathBuf {
    sweep_dir.join("slurm").join(format!("{job}_{index}.out"))
}

fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_are_compact() {
        assert_eq!(compact_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(compact_ranges(&[3]), "3");
        assert_eq!(compact_ranges(&[4, 3, 3]), "3-4");
    }

    /// A value with a line break would write an #SBATCH line of its own.
    #[test]
    fn values_that_would_inject_directives_are_refused() {
        for bad in ["gpu\n#SBATCH --exclusive", "a\"b", "", "x\ry"] {
            let o = SlurmOptions {
                partition: Some(bad.into()),
                ..SlurmOptions::default()
            };
            let e = o.check().unwrap_err().to_string();
            assert!(e.contains("--partition"), "{e}");
        }
        let o = SlurmOptions {
            mem: Some("4G\n#SBATCH --x".into()),
            ..SlurmOptions::default()
        };
        assert!(o.check().is_err());
        let fine = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            ..SlurmOptions::default()
        };
        assert!(fine.check().is_ok());
    }
}
