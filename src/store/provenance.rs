//! Where and how a run was started: ids, host, process identity, git state.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A fresh id: 8 characters of [0-9a-z], like W&B's.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The Slurm job this process runs in, if any, as squeue and scontrol name
/// it: `ARRAYJOB_TASK` for an array task (its own SLURM_JOB_ID is an
/// internal id; the array's SLURM_JOB_ID of its last task would name the
/// whole array), else the job id.
pub fn slurm_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok();
    slurm_job_from(
        var("SLURM_JOB_ID").as_deref(),
        var("SLURM_ARRAY_JOB_ID").as_deref(),
        var("SLURM_ARRAY_TASK_ID").as_deref(),
    )
}

fn slurm_job_from(job: Option<&str>, array: Option<&str>, task: Option<&str>) -> Option<String> {
    fn number(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    }
    match (number(array), number(task)) {
        (Some(a), Some(t)) => Some(format!("{a}_{t}")),
        _ => number(job).map(str::to_string),
    }
}

/// The start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat): with the pid it identifies a process even after pid reuse.
pub fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that started a run on this host still runs.
pub fn process_alive(pid: u32, start: Option<i64>) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match (start, process_start(pid)) {
        (Some(recorded), Some(current)) => recorded == current,
        _ => true,
    }
}

/// The git commit of `dir`'s checkout and whether tracked files differ from it.
pub fn git_state(dir: &Path) -> Option<(String, bool)> {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"])?;
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some((commit, dirty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_task_is_named_by_its_array_and_index() {
        assert_eq!(
            slurm_job_from(Some("12"), None, None).as_deref(),
            Some("12")
        );
        assert_eq!(
            slurm_job_from(Some("13"), Some("12"), Some("1")).as_deref(),
            Some("12_1")
        );
        assert_eq!(slurm_job_from(None, None, None), None);
        assert_eq!(slurm_job_from(Some("x"), None, None), None);
    }

    #[test]
    fn ids_are_short_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 8);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        let me = std::process::id();
        assert!(process_alive(me, process_start(me)));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid, Some(-1)));
    }
}
