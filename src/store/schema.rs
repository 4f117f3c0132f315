//! The run database's schema, versioned with `PRAGMA user_version`.
//! Migrations only ever append: a database is brought forward one step at a
//! time inside a transaction, and one written by a newer esx is refused.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the run, its parameters, metrics (NaN stored as NULL), a per-key
    // summary, images and events.
    "CREATE TABLE run (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
        created REAL NOT NULL,
        ended REAL,
        heartbeat REAL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        host TEXT NOT NULL,
        git_commit TEXT,
        git_dirty INTEGER,
        command TEXT NOT NULL,
        cwd TEXT NOT NULL,
        experiment TEXT,
        config TEXT NOT NULL,
        overrides TEXT NOT NULL,
        error TEXT,
        sweep_id TEXT,
        sweep_index INTEGER,
        swept TEXT
    );
    CREATE TABLE params (key TEXT PRIMARY KEY, value TEXT NOT NULL, num REAL);
    CREATE TABLE metrics (
        step INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        split TEXT NOT NULL,
        key TEXT NOT NULL,
        value REAL,
        wall REAL NOT NULL
    );
    CREATE INDEX metrics_by_key ON metrics (split, key, step);
    CREATE TABLE summary (
        split TEXT NOT NULL,
        key TEXT NOT NULL,
        last REAL,
        last_step INTEGER NOT NULL,
        min REAL,
        max REAL,
        count INTEGER NOT NULL,
        PRIMARY KEY (split, key)
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        epoch INTEGER NOT NULL,
        kind TEXT NOT NULL,
        png BLOB NOT NULL,
        wall REAL NOT NULL
    );
    CREATE TABLE events (id INTEGER PRIMARY KEY, wall REAL NOT NULL, kind TEXT NOT NULL, detail TEXT);",
    // 2: a run may end `pruned` (SQLite cannot change a CHECK in place: the
    // table is rebuilt with its rows).
    "CREATE TABLE run_v2 (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'pruned')),
        created REAL NOT NULL,
        ended REAL,
        heartbeat REAL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        host TEXT NOT NULL,
        git_commit TEXT,
        git_dirty INTEGER,
        command TEXT NOT NULL,
        cwd TEXT NOT NULL,
        experiment TEXT,
        config TEXT NOT NULL,
        overrides TEXT NOT NULL,
        error TEXT,
        sweep_id TEXT,
        sweep_index INTEGER,
        swept TEXT
    );
    INSERT INTO run_v2 SELECT * FROM run;
    DROP TABLE run;
    ALTER TABLE run_v2 RENAME TO run;",
    // 3: the Slurm job a run trains in (its liveness can be asked of squeue).
    "ALTER TABLE run ADD COLUMN slurm_job TEXT;",
    // 4: a user's tags and notes on a run (written beside a live writer).
    "CREATE TABLE tags (tag TEXT PRIMARY KEY, wall REAL NOT NULL);
    CREATE TABLE notes (id INTEGER PRIMARY KEY, wall REAL NOT NULL, text TEXT NOT NULL);",
    // 5: a run may be `imported` (a model trained elsewhere, `esx import`).
    "CREATE TABLE run_v5 (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'pruned', 'imported')),
        created REAL NOT NULL,
        ended REAL,
        heartbeat REAL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        host TEXT NOT NULL,
        git_commit TEXT,
        git_dirty INTEGER,
        command TEXT NOT NULL,
        cwd TEXT NOT NULL,
        experiment TEXT,
        config TEXT NOT NULL,
        overrides TEXT NOT NULL,
        error TEXT,
        sweep_id TEXT,
        sweep_index INTEGER,
        swept TEXT,
        slurm_job TEXT
    );
    INSERT INTO run_v5 SELECT * FROM run;
    DROP TABLE run;
    ALTER TABLE run_v5 RENAME TO run;",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            known: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Refuses databases this build cannot read.
pub fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => Err(StoreError::NotARunDb),
        v if v > VERSION => Err(StoreError::NewerSchema {
            found: v,
            known: VERSION,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_version_database_keeps_its_run_and_may_end_pruned() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO run (id, name, status, created, pid, host, command, cwd, config, overrides)
             VALUES ('r1', 'n', 'completed', 1.0, 7, 'h', '[]', '/', '', '[]')",
            [],
        )
        .unwrap();
        assert!(conn
            .execute("UPDATE run SET status = 'pruned'", [])
            .is_err());
        migrate(&mut conn).unwrap();
        let (id, status): (String, String) = conn
            .query_row("SELECT id, status FROM run", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id.as_str(), status.as_str()), ("r1", "completed"));
        conn.execute("UPDATE run SET status = 'pruned'", [])
            .unwrap();
        assert!(conn.execute("UPDATE run SET status = 'bogus'", []).is_err());
    }

    #[test]
    fn a_fourth_version_database_keeps_its_runs_columns_and_may_hold_an_import() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO run (id, name, status, created, pid, host, command, cwd, config, overrides, slurm_job)
             VALUES ('r1', 'n', 'pruned', 1.0, 7, 'h', '[]', '/', 'c', '[]', '42')",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO tags (tag, wall) VALUES ('keep', 1.0)", [])
            .unwrap();
        assert!(conn
            .execute("UPDATE run SET status = 'imported'", [])
            .is_err());
        migrate(&mut conn).unwrap();
        let row: (String, String, String, String) = conn
            .query_row("SELECT id, status, config, slurm_job FROM run", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!(row, ("r1".into(), "pruned".into(), "c".into(), "42".into()));
        conn.execute("UPDATE run SET status = 'imported'", [])
            .unwrap();
        assert!(conn.execute("UPDATE run SET status = 'bogus'", []).is_err());
        let tags: i64 = conn
            .query_row("SELECT count(*) FROM tags", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tags, 1);
    }

    #[test]
    fn migrations_apply_once_and_newer_schemas_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::NewerSchema { .. })
        ));
    }
}
