//! A running run's pulse, and how readers on any host judge it. The writer
//! stamps `run.heartbeat` at every flush; a thread of its own stamps it every
//! `EVERY` as well, so a long validation or a slow first step never looks
//! dead. A run recorded as running is crashed when
//! - on this host, its process is gone (pid and start time, as before);
//! - on another host, its heartbeat is older than `STALE_AFTER`, or, for a
//!   Slurm task whose heartbeat is late, squeue no longer knows its job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};

use super::provenance::{hostname, now, process_alive};
use super::RunStatus;

/// How often a running run stamps its heartbeat (`ESX_HEARTBEAT_SECONDS`
/// overrides it, for tests).
pub const EVERY: Duration = Duration::from_secs(30);

/// A run on another host whose heartbeat is older than this is crashed: ten
/// missed beats, room for clocks that disagree and filesystem caches.
pub const STALE_AFTER: f64 = 300.0;

/// A Slurm task's heartbeat this late sends a reader to ask squeue.
const LATE_AFTER: f64 = 90.0;

fn every() -> Duration {
    std::env::var("ESX_HEARTBEAT_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(EVERY, Duration::from_secs_f64)
}

/// The thread that stamps a run's heartbeat; dropped, it stops.
pub struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts stamping `db` for this process. A beat that cannot be written
    /// (a busy or full disk) is skipped: the next flush or beat tries again.
    pub fn start(db: PathBuf) -> Heartbeat {
        Heartbeat::start_every(db, every())
    }

    fn start_every(db: PathBuf, period: Duration) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let pid = std::process::id();
        let host = hostname();
        let thread = std::thread::Builder::new()
            .name("esx-heartbeat".into())
            .spawn(move || {
                let Ok(conn) = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)
                else {
                    return;
                };
                let _ = conn.busy_timeout(Duration::from_secs(5));
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let _ = conn.execute(
                        "UPDATE run SET heartbeat = ?1
                         WHERE status = 'running' AND pid = ?2 AND host = ?3",
                        params![now(), pid, host],
                    );
                }
            })
            .ok();
        Heartbeat {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a reader knows of a run recorded as running.
pub struct Recorded<'a> {
    pub host: &'a str,
    pub pid: u32,
    pub pid_start: Option<i64>,
    pub heartbeat: Option<f64>,
    pub created: f64,
    pub slurm_job: Option<&'a str>,
}

/// Running or crashed, by the rules above.
pub fn judge(run: &Recorded) -> RunStatus {
    if run.host == hostname() {
        return if process_alive(run.pid, run.pid_start) {
            RunStatus::Running
        } else {
            RunStatus::Crashed
        };
    }
    let age = now() - run.heartbeat.unwrap_or(run.created);
    if age > STALE_AFTER {
        return RunStatus::Crashed;
    }
    if let Some(job) = run.slurm_job.filter(|_| age > LATE_AFTER) {
        if slurm_job_active(job) == Some(false) {
            return RunStatus::Crashed;
        }
    }
    RunStatus::Running
}

/// States in which a Slurm job may still start or is still going.
pub fn slurm_state_is_active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
    )
}

/// Whether squeue knows `job` as pending or running; None when squeue
/// cannot say (not installed, controller down). Answers are kept a few
/// seconds, so a listing of many runs asks once per job.
fn slurm_job_active(job: &str) -> Option<bool> {
    /// Job id → when squeue was asked and what it said.
    type Answers = HashMap<String, (Instant, Option<bool>)>;
    static ASKED: Mutex<Option<Answers>> = Mutex::new(None);
    let mut asked = ASKED.lock().unwrap_or_else(|e| e.into_inner());
    let asked = asked.get_or_insert_with(HashMap::new);
    if let Some((at, answer)) = asked.get(job) {
        if at.elapsed() < Duration::from_secs(5) {
            return *answer;
        }
    }
    let answer = ask_squeue(job);
    asked.insert(job.to_string(), (Instant::now(), answer));
    answer
}

fn ask_squeue(job: &str) -> Option<bool> {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-j", job, "-o", "%T"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return err.contains("Invalid job id").then_some(false);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().any(|s| slurm_state_is_active(s.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elsewhere(heartbeat: f64) -> RunStatus {
        judge(&Recorded {
            host: "node-that-is-not-this-one",
            pid: 1,
            pid_start: None,
            heartbeat: Some(heartbeat),
            created: heartbeat,
            slurm_job: None,
        })
    }

    #[test]
    fn a_run_on_another_host_lives_by_its_heartbeat() {
        assert_eq!(elsewhere(now() - 10.0), RunStatus::Running);
        assert_eq!(elsewhere(now() - STALE_AFTER + 30.0), RunStatus::Running);
        assert_eq!(elsewhere(now() - STALE_AFTER - 1.0), RunStatus::Crashed);
    }

    #[test]
    fn the_thread_stamps_a_running_run_between_flushes_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("run.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE run (status TEXT, heartbeat REAL, pid INTEGER, host TEXT);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO run VALUES ('running', 0.0, ?1, ?2)",
            params![std::process::id(), hostname()],
        )
        .unwrap();
        let beat = || -> f64 {
            conn.query_row("SELECT heartbeat FROM run", [], |r| r.get(0))
                .unwrap()
        };
        let pulse = Heartbeat::start_every(db.clone(), Duration::from_millis(20));
        let started = now();
        let deadline = Instant::now() + Duration::from_secs(5);
        while beat() < started && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(beat() >= started, "the heartbeat advanced");
        drop(pulse);
        let last = beat();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(beat(), last, "a dropped heartbeat stamps no more");
        // A run that has ended is never stamped again.
        conn.execute("UPDATE run SET status = 'completed', heartbeat = 1.0", [])
            .unwrap();
        let pulse = Heartbeat::start_every(db, Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(100));
        drop(pulse);
        assert_eq!(beat(), 1.0);
    }

    #[test]
    fn a_run_on_this_host_lives_by_its_process() {
        let me = std::process::id();
        let run = |pid, pid_start| {
            judge(&Recorded {
                host: &hostname(),
                pid,
                pid_start,
                heartbeat: Some(0.0),
                created: 0.0,
                slurm_job: None,
            })
        };
        assert_eq!(
            run(me, super::super::provenance::process_start(me)),
            RunStatus::Running
        );
        assert_eq!(run(me, Some(-1)), RunStatus::Crashed);
    }
}
