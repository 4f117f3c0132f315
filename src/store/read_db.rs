//! One read of a run's database, from a process that is not its writer.
//!
//! A read runs as one transaction, so its several queries see one state of
//! the run. A writer killed mid-transaction in rollback mode leaves a hot
//! journal that a read-only connection may not roll back (WAL mode: a
//! wal-index it may not recover); SQLite says so on the statement that takes
//! the read's lock. (Before reads were one transaction each statement took
//! its own, and a writer dying between two failed the read halfway.) The
//! read is then done again over a read-write connection, which rolls the
//! journal back (SQLite does so only when no writer holds the database).
//!
//! A reader without write access to the run's folder (a read-only mount, a
//! colleague's runs) cannot make the `-shm` file a WAL database is read
//! through. Where the database has no `-wal` file (its writer closed it:
//! everything is in the database file) it is read as immutable, which
//! needs no file beside it and no lock. (With a live writer the `-shm`
//! exists and a read-only connection uses it.)

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema::check_readable;
use super::{StoreError, RUN_DB};

/// Runs `read` over the run database in `dir`; errors name the file.
pub fn read<T>(
    dir: &Path,
    read: impl Fn(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let path = dir.join(RUN_DB);
    read_file(
        &path,
        Duration::from_secs(10),
        |e| StoreError::open(&path, e),
        |e| match e {
            StoreError::Sqlite(e) => Some(e),
            _ => None,
        },
        |conn| {
            check_readable(conn)?;
            read(conn)
        },
    )
    .map_err(|e| e.at(&path))
}

/// Runs `read` as one transaction over the SQLite file at `path` (a run's
/// or a sweep's), read-only, and read-write once more where a dead writer's
/// journal must be rolled back first. `sqlite` finds the SQLite error in an
/// error of `read`'s.
pub(crate) fn read_file<T, E: From<rusqlite::Error>>(
    path: &Path,
    busy: Duration,
    open_error: impl Fn(rusqlite::Error) -> E,
    sqlite: impl Fn(&E) -> Option<&rusqlite::Error>,
    read: impl Fn(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let once = |flags| -> Result<T, E> {
        let conn = Connection::open_with_flags(path, flags).map_err(&open_error)?;
        conn.busy_timeout(busy)?;
        conn.execute_batch("BEGIN")?;
        let out = read(&conn)?;
        conn.execute_batch("COMMIT")?;
        Ok(out)
    };
    let immutable = || -> Result<T, E> {
        let conn = Connection::open_with_flags(
            immutable_uri(path),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(&open_error)?;
        conn.execute_batch("BEGIN")?;
        let out = read(&conn)?;
        conn.execute_batch("COMMIT")?;
        Ok(out)
    };
    match once(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Err(e) if sqlite(&e).is_some_and(needs_rollback) => once(OpenFlags::SQLITE_OPEN_READ_WRITE),
        Err(e) if sqlite(&e).is_some_and(cannot_write_beside) && !has_wal(path) => immutable(),
        other => other,
    }
}

/// SQLite could not make or write the files beside the database.
fn cannot_write_beside(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|f| f.extended_code),
        Some(
            rusqlite::ffi::SQLITE_READONLY_DIRECTORY
                | rusqlite::ffi::SQLITE_READONLY_CANTINIT
                | rusqlite::ffi::SQLITE_CANTOPEN
                | rusqlite::ffi::SQLITE_READONLY
        )
    )
}

/// Whether `path` has a WAL file with frames in it.
fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `file:PATH?immutable=1`, the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(*b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri + "?immutable=1"
}

fn needs_rollback(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|f| f.extended_code),
        Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK | rusqlite::ffi::SQLITE_READONLY_RECOVERY)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hot journal by hand: the database and journal copied aside in the
    /// middle of a transaction whose cache spilled to the file, and put back
    /// once the writer has gone, as a killed writer leaves them.
    #[test]
    fn a_hot_journal_left_by_a_killed_writer_is_rolled_back_by_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(RUN_DB);
        let journal = dir.path().join("run.db-journal");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=DELETE; PRAGMA user_version=4;
                 CREATE TABLE t(x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        }
        let (hot_db, hot_journal) = {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "PRAGMA cache_size=1; BEGIN; INSERT INTO t SELECT 2 FROM (SELECT 1);
                 INSERT INTO t VALUES (zeroblob(100000));",
            )
            .unwrap();
            (
                std::fs::read(&db).unwrap(),
                std::fs::read(&journal).unwrap(),
            )
        };
        std::fs::write(&db, hot_db).unwrap();
        std::fs::write(&journal, hot_journal).unwrap();

        let calls = std::cell::Cell::new(0);
        let rows: i64 = read(dir.path(), |conn| {
            calls.set(calls.get() + 1);
            Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
        })
        .unwrap();
        assert_eq!(rows, 1, "the uncommitted rows are rolled back");
        assert!(!journal.exists(), "the journal is gone");
        assert_eq!(calls.get(), 1, "the read-only try failed before the read");
    }
}
