//! Which SQLite journal a run database uses. WAL needs shared memory (the
//! `-shm` file, mapped by every connection) that only processes of one host
//! can share, so a run directory on a network or cluster filesystem (NFS,
//! Lustre, GPFS, BeeGFS, CephFS, SMB, FUSE mounts…) gets a rollback journal
//! instead, whose locks the filesystem carries between hosts. Local disks
//! keep WAL: readers never wait for the writer there. `ESX_JOURNAL`
//! (auto, wal, delete) overrides the choice.

use std::fmt;
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// The environment variable that overrides the choice.
pub const ENV: &str = "ESX_JOURNAL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    /// Write-ahead log: readers never block the writer; one host only.
    Wal,
    /// Rollback journal (`journal_mode = DELETE`): safe wherever the
    /// filesystem's locks work, including across hosts.
    Delete,
}

impl JournalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Wal => "wal",
            JournalMode::Delete => "delete",
        }
    }
}

/// The mode chosen for a directory and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalChoice {
    pub mode: JournalMode,
    pub why: String,
}

impl fmt::Display for JournalChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.mode.as_str(), self.why)
    }
}

/// What kind of filesystem holds a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filesystem {
    pub name: String,
    /// Shared between hosts, or served by a user-space process: no WAL.
    pub network: bool,
}

/// The journal for a database in `dir`: `ESX_JOURNAL`, else by filesystem.
pub fn choose(dir: &Path) -> Result<JournalChoice, StoreError> {
    let set = std::env::var(ENV).ok();
    let fs = filesystem(dir);
    choose_for(set.as_deref(), &fs)
}

fn choose_for(set: Option<&str>, fs: &Filesystem) -> Result<JournalChoice, StoreError> {
    let forced = |mode| JournalChoice {
        mode,
        why: format!("{ENV}={}", mode.as_str()),
    };
    match set.map(str::trim) {
        Some("wal") => Ok(forced(JournalMode::Wal)),
        Some("delete") => Ok(forced(JournalMode::Delete)),
        None | Some("") | Some("auto") => Ok(if fs.network {
            JournalChoice {
                mode: JournalMode::Delete,
                why: format!("{} is a network filesystem", fs.name),
            }
        } else {
            JournalChoice {
                mode: JournalMode::Wal,
                why: format!("{} is a local filesystem", fs.name),
            }
        }),
        Some(other) => Err(StoreError::BadJournal(other.to_string())),
    }
}

/// Puts a writing connection in `choice`'s mode. Rollback mode syncs fully
/// at every commit (a network filesystem's client caches writes); WAL's
/// NORMAL keeps every committed transaction through a process crash.
pub fn apply(conn: &Connection, choice: &JournalChoice) -> rusqlite::Result<()> {
    match choice.mode {
        JournalMode::Wal => {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")
        }
        JournalMode::Delete => {
            conn.pragma_update(None, "journal_mode", "DELETE")?;
            conn.pragma_update(None, "synchronous", "FULL")
        }
    }
}

/// The journal mode a database file is in, as any connection reports it.
pub fn mode_of(conn: &Connection) -> rusqlite::Result<String> {
    conn.pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
        .map(|m| m.to_lowercase())
}

/// The filesystem `path` is on (Linux statfs magic numbers; elsewhere
/// unknown, taken as local).
pub fn filesystem(path: &Path) -> Filesystem {
    match magic(path) {
        Some(m) => classify(m),
        None => Filesystem {
            name: "an unknown filesystem".into(),
            network: false,
        },
    }
}

#[cfg(target_os = "linux")]
fn magic(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is NUL-terminated and `st` is a plain C struct statfs fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as u64 & 0xFFFF_FFFF)
}

#[cfg(not(target_os = "linux"))]
fn magic(_path: &Path) -> Option<u64> {
    None
}

/// Network and cluster filesystems (linux/magic.h and the vendors' own).
const NETWORK: &[(u64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x0BD0_0BD0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x1983_0326, "beegfs"),
    (0x00C3_6400, "cephfs"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "afs"),
    (0x7461_636F, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0xAAD7_AAEA, "panfs"),
    (0x7375_7245, "coda"),
    (0x2003_0528, "orangefs"),
];

const LOCAL: &[(u64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
];

fn classify(magic: u64) -> Filesystem {
    if let Some((_, name)) = NETWORK.iter().find(|(m, _)| *m == magic) {
        return Filesystem {
            name: (*name).into(),
            network: true,
        };
    }
    let name = LOCAL
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("filesystem 0x{magic:x}"), |(_, n)| (*n).into());
    Filesystem {
        name,
        network: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(name: &str, network: bool) -> Filesystem {
        Filesystem {
            name: name.into(),
            network,
        }
    }

    #[test]
    fn auto_picks_a_rollback_journal_on_network_filesystems_only() {
        let nfs = choose_for(None, &fs("nfs", true)).unwrap();
        assert_eq!(nfs.mode, JournalMode::Delete);
        assert_eq!(nfs.why, "nfs is a network filesystem");
        let ext4 = choose_for(Some("auto"), &fs("ext4", false)).unwrap();
        assert_eq!(ext4.mode, JournalMode::Wal);
        assert_eq!(ext4.to_string(), "wal (ext4 is a local filesystem)");
    }

    #[test]
    fn the_variable_overrides_the_filesystem_and_bad_values_are_named() {
        let c = choose_for(Some("wal"), &fs("lustre", true)).unwrap();
        assert_eq!(c.to_string(), "wal (ESX_JOURNAL=wal)");
        let c = choose_for(Some("delete"), &fs("ext4", false)).unwrap();
        assert_eq!(c.mode, JournalMode::Delete);
        let e = choose_for(Some("foo"), &fs("ext4", false)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ESX_JOURNAL=foo: expected auto, wal or delete"
        );
    }

    #[test]
    fn magic_numbers_name_the_filesystems() {
        assert_eq!(classify(0x6969), fs("nfs", true));
        assert_eq!(classify(0x0BD0_0BD0), fs("lustre", true));
        assert_eq!(classify(0x4750_4653), fs("gpfs", true));
        assert_eq!(classify(0x1983_0326), fs("beegfs", true));
        assert_eq!(classify(0x00C3_6400), fs("cephfs", true));
        assert_eq!(classify(0xEF53), fs("ext4", false));
        assert_eq!(classify(0x1234), fs("filesystem 0x1234", false));
    }

    #[test]
    fn this_machines_temporary_directory_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let found = filesystem(dir.path());
        assert!(!found.name.is_empty());
        if cfg!(target_os = "linux") {
            assert_ne!(found.name, "an unknown filesystem");
        }
    }
}
