//! One writer per run (and one launcher per sweep), for real: the writer
//! holds an exclusive lock on a lock file in the directory for as long as it
//! lives, and the kernel releases it when the process ends, however it ends.
//! Checking and claiming are one step (`try_lock`): of two processes that
//! start together, exactly one gets the run; the other learns who has it.
//!
//! The lock belongs to the open file, and a child process holds a copy of
//! every open file from fork until exec closes it (the store runs git, a
//! sweep starts runs). A claim released while some thread was starting a
//! child can stay locked for those moments; so a claim that finds the lock
//! taken by this very process, yet held by none of its claims, waits for it.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::provenance::hostname;
use super::StoreError;

/// A run's lock file, beside its database.
pub const RUN_LOCK: &str = "run.lock";
/// A sweep's lock file, beside its sweep.db.
pub const SWEEP_LOCK: &str = "sweep.lock";

/// An exclusive claim on a directory; dropped, it is released.
#[derive(Debug)]
pub struct Claim {
    _file: File,
    path: PathBuf,
    /// The lock file's canonical path, in HELD while the claim lives.
    held: PathBuf,
}

/// The lock files this process's live claims hold.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// How long a lock held by this process's own child-to-be may take to go.
const FORK_WINDOW: Duration = Duration::from_secs(5);

fn held() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Claim {
    fn drop(&mut self) {
        held().remove(&self.held);
    }
}

impl Claim {
    /// Claims `dir` through its lock file `name` for `doing` ("trained",
    /// "resumed", "run"), or says which process holds it. `what` names the
    /// thing in the error ("run 1a2b", "sweep 3c4d").
    pub fn take(dir: &Path, name: &str, what: &str, doing: &str) -> Result<Claim, StoreError> {
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let canonical = std::fs::canonicalize(&path).map_err(|e| StoreError::io(&path, e))?;
        let mine = held().contains(&canonical);
        let since = Instant::now();
        loop {
            let taken = match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => holder(&mut file),
                Err(TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
            };
            let by_me =
                taken.ends_with(&format!("by pid {} on {}", std::process::id(), hostname()));
            if mine || !by_me || since.elapsed() > FORK_WINDOW {
                return Err(StoreError::Claimed {
                    what: what.to_string(),
                    holder: taken,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        held().insert(canonical.clone());
        let me = format!("{} {} {doing}\n", std::process::id(), hostname());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.flush());
        written.map_err(|e| StoreError::io(&path, e))?;
        Ok(Claim {
            _file: file,
            path,
            held: canonical,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// "being resumed by pid 4242 on node7", from the holder's lock file (it
/// writes it just after locking: a racing reader may find it empty a moment,
/// or still holding the line of a previous holder that has ended).
fn holder(file: &mut File) -> String {
    for _ in 0..50 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let mut parts = text.split_whitespace();
            if let (Some(pid), Some(host), Some(doing)) = (parts.next(), parts.next(), parts.next())
            {
                let ended = host == hostname()
                    && pid
                        .parse()
                        .is_ok_and(|pid| !super::provenance::process_alive(pid, None));
                if !ended {
                    return format!("being {doing} by pid {pid} on {host}");
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "in use by another process".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_fails_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = Claim::take(dir.path(), RUN_LOCK, "run ab12", "resumed").unwrap();
        let err = Claim::take(dir.path(), RUN_LOCK, "run ab12", "resumed").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("run ab12 is being resumed by pid ")
                && text.contains(&std::process::id().to_string())
                && text.contains(&hostname()),
            "{text}"
        );
        drop(first);
        Claim::take(dir.path(), RUN_LOCK, "run ab12", "trained").unwrap();
    }

    /// A child started by another thread holds a copy of the lock file from
    /// fork to exec (here stretched to 300 ms): a claim released meanwhile
    /// and taken again must wait for the exec, not fail (a flaky
    /// "is being resumed by pid <self>" in the store's tests before).
    #[test]
    fn a_claim_released_while_a_child_is_starting_can_be_taken_again() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let first = Claim::take(dir.path(), RUN_LOCK, "run ab12", "trained").unwrap();
        let starter = std::thread::spawn(|| {
            let mut child = std::process::Command::new("true");
            // SAFETY: the hook only sleeps (nanosleep is async-signal-safe).
            unsafe {
                child.pre_exec(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                });
            }
            child.status().unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        let again = Claim::take(dir.path(), RUN_LOCK, "run ab12", "resumed");
        assert!(starter.join().unwrap().success());
        again.expect("the child's copy of the lock went at its exec");
    }
}
