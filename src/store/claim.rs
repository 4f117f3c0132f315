//! One writer per run (and one launcher per sweep), for real: the writer
//! holds an exclusive lock on a lock file in the directory for as long as it
//! lives, and the kernel releases it when the process ends, however it ends.
//! Checking and claiming are one step (`try_lock`): of two processes that
//! start together, exactly one gets the run; the other learns who has it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

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
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Claimed {
                    what: what.to_string(),
                    holder: holder(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
        let me = format!("{} {} {doing}\n", std::process::id(), hostname());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.flush());
        written.map_err(|e| StoreError::io(&path, e))?;
        Ok(Claim { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// "being resumed by pid 4242 on node7", from the holder's lock file (it
/// writes it just after locking: a racing reader may find it empty a moment).
fn holder(file: &mut File) -> String {
    for _ in 0..50 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let mut parts = text.split_whitespace();
            if let (Some(pid), Some(host), Some(doing)) = (parts.next(), parts.next(), parts.next())
            {
                return format!("being {doing} by pid {pid} on {host}");
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
}
