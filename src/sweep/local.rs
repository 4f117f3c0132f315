//! The local launcher: a pool of `jobs` child `esx run` processes, each with
//! its share of the cores (RAYON_NUM_THREADS) and, given `--gpus`, the CUDA
//! device of its slot. A child that fails or crashes only ends its own point.
//! Ctrl-C reaches the children from the terminal; SIGTERM to the launcher is
//! passed on as SIGTERM, which the children take as "checkpoint and stop".

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::source::TaskSource;
use super::state::PointStatus;
use super::task::{Task, TaskOutcome};
use super::{Sweep, SweepError};
use crate::progress::Reporter;
use crate::train::Interrupt;

#[derive(Clone, Debug)]
pub struct LocalOptions {
    pub jobs: usize,
    /// Threads per child (RAYON_NUM_THREADS).
    pub threads: usize,
    /// CUDA devices handed to the job slots round robin.
    pub gpus: Vec<usize>,
}

impl LocalOptions {
    /// `jobs` children (default: one per `threads_each` cores, where
    /// `threads_each` is the config's `threads` or 1), each given cores/jobs
    /// threads (at least one).
    pub fn new(jobs: Option<usize>, config_threads: usize, gpus: Vec<usize>) -> LocalOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = jobs.unwrap_or_else(|| cores / config_threads.max(1)).max(1);
        LocalOptions {
            jobs,
            threads: (cores / jobs).max(1),
            gpus,
        }
    }
}

struct Live {
    task: Task,
    pid: u32,
    started: Instant,
    log: PathBuf,
}

/// Runs the tasks of `source`, `options.jobs` at a time, asking it for the
/// next one as soon as a slot frees; returns how each child ended (none is
/// started once an interrupt arrives). A source error (an objective no run
/// records) starts nothing more: the running children finish, then it is
/// returned.
pub fn run(
    sweep: &Sweep,
    source: &mut dyn TaskSource,
    options: &LocalOptions,
    exe: &Path,
    reporter: &Reporter,
    interrupt: &Interrupt,
    on_start: &mut dyn FnMut(&Task) -> Result<(), SweepError>,
) -> Result<Vec<TaskOutcome>, SweepError> {
    let logs = sweep.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| SweepError::io(&logs, e))?;
    let (tx, rx) = mpsc::channel::<(usize, Option<i32>)>();
    let mut slots: Vec<Option<Live>> = (0..options.jobs).map(|_| None).collect();
    let mut outcomes = Vec::new();
    let mut forwarded = false;
    let mut done = 0usize;
    let mut failure: Option<SweepError> = None;
    let mut exhausted = false;
    loop {
        if !interrupt.requested() {
            while failure.is_none() && !exhausted {
                let Some(slot) = slots.iter().position(Option::is_none) else {
                    break;
                };
                let task = match source.next() {
                    Ok(Some(task)) => task,
                    Ok(None) => {
                        exhausted = true;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                on_start(&task)?;
                let live = spawn(sweep, &task, slot, options, exe, &logs, tx.clone())?;
                reporter.note(format!(
                    "#{} {} {}",
                    task.index,
                    if task.resume.is_some() {
                        "resumed"
                    } else {
                        "started"
                    },
                    task.point.label()
                ));
                slots[slot] = Some(live);
            }
        } else if !forwarded {
            forwarded = true;
            for live in slots.iter().flatten() {
                // SAFETY: kill(2) on the pid of a child we have not yet reaped.
                unsafe {
                    libc::kill(live.pid as i32, libc::SIGTERM);
                }
            }
            if slots.iter().any(Option::is_some) {
                reporter.note(
                    "stopping: the running points checkpoint and stop (Ctrl-C again to kill them)",
                );
            }
        }
        if slots.iter().all(Option::is_none) {
            break;
        }
        let Ok((slot, exit)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let Some(live) = slots[slot].take() else {
            continue;
        };
        done += 1;
        let seconds = live.started.elapsed().as_secs_f64();
        let ended = source.ended(live.task.index);
        let status = super::state::point_states(&sweep.dir, &sweep.id, live.task.index + 1)
            .ok()
            .and_then(|s| s.into_iter().nth(live.task.index))
            .map(|s| s.status);
        reporter.note(format!(
            "[{done}/{}] #{} {} after {seconds:.1} s{}",
            source.total(),
            live.task.index,
            match (exit, status) {
                (Some(0), Some(PointStatus::Pruned)) => "pruned",
                (Some(0), _) => "completed",
                (Some(130), _) => "interrupted",
                _ => "failed",
            },
            match exit {
                Some(0) | Some(130) => String::new(),
                _ => format!(": {}", last_line(&live.log)),
            }
        ));
        if let Err(e) = ended {
            if failure.is_none() {
                reporter.warn(format!("{e}; starting no more points"));
                failure = Some(e);
            }
        }
        outcomes.push(TaskOutcome {
            index: live.task.index,
            exit,
            seconds,
            log: live.log,
        });
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(outcomes),
    }
}

/// The device a job slot's run gets: with `--gpus`, the slot's GPU round
/// robin (a resumed run keeps the device it recorded).
fn device_override(options: &LocalOptions, slot: usize, resumed: bool) -> Vec<String> {
    if options.gpus.is_empty() || resumed {
        return Vec::new();
    }
    vec![format!(
        "device=cuda:{}",
        options.gpus[slot % options.gpus.len()]
    )]
}

fn spawn(
    sweep: &Sweep,
    task: &Task,
    slot: usize,
    options: &LocalOptions,
    exe: &Path,
    logs: &Path,
    done: mpsc::Sender<(usize, Option<i32>)>,
) -> Result<Live, SweepError> {
    let args = task.args(
        sweep,
        &device_override(options, slot, task.resume.is_some()),
    );
    let log = logs.join(format!("{}.log", task.index));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| SweepError::io(&log, e))?;
    let _ = writeln!(
        file,
        "== {} {} {}",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        exe.display(),
        args.join(" ")
    );
    let err = file.try_clone().map_err(|e| SweepError::io(&log, e))?;
    let mut child = Command::new(exe)
        .args(&args)
        .env("RAYON_NUM_THREADS", options.threads.to_string())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| SweepError::io(exe, e))?;
    let pid = child.id();
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code());
        let _ = done.send((slot, code));
    });
    Ok(Live {
        task: task.clone(),
        pid,
        started: Instant::now(),
        log,
    })
}

/// The last non-empty line of a child's log: its error message.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_go_to_the_job_slots_round_robin() {
        let options = LocalOptions::new(Some(3), 1, vec![0, 2]);
        let devices: Vec<Vec<String>> = (0..3)
            .map(|slot| device_override(&options, slot, false))
            .collect();
        assert_eq!(
            devices,
            [["device=cuda:0"], ["device=cuda:2"], ["device=cuda:0"]]
        );
        assert!(
            device_override(&options, 1, true).is_empty(),
            "a resumed run keeps its device"
        );
        assert!(device_override(&LocalOptions::new(Some(2), 1, vec![]), 0, false).is_empty());
    }
}
