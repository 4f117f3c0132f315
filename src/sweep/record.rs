//! `sweep.db`: a sweep's own record, beside its runs: what it is (id, the
//! experiment, base overrides, axes, mode), its planned points, and every
//! launch (local or a Slurm job id with the points it was given).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{Sweep, SweepError};
use crate::store::provenance::now;

pub const SWEEP_DB: &str = "sweep.db";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sweep (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created REAL NOT NULL,
        experiment TEXT NOT NULL,
        cwd TEXT NOT NULL,
        command TEXT NOT NULL,
        base_overrides TEXT NOT NULL,
        axes TEXT NOT NULL,
        mode TEXT NOT NULL,
        config TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS points (
        idx INTEGER PRIMARY KEY,
        overrides TEXT NOT NULL,
        swept TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS launches (
        id INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        launcher TEXT NOT NULL,
        job_id TEXT,
        points TEXT NOT NULL,
        script TEXT
    );";

/// One launch of some of a sweep's points.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Launch {
    pub wall: f64,
    pub launcher: String,
    pub job_id: Option<String>,
    pub points: Vec<usize>,
}

/// The record as a run reads it: the sweep's id and one point's values.
pub struct SweepRecord {
    pub id: String,
    pub dir: PathBuf,
}

impl SweepRecord {
    /// Creates the folder and record on first use; on later uses checks that
    /// the record is this sweep's.
    pub fn create_or_open(sweep: &Sweep, command: &[String]) -> Result<SweepRecord, SweepError> {
        std::fs::create_dir_all(&sweep.dir).map_err(|e| SweepError::io(&sweep.dir, e))?;
        let path = sweep.dir.join(SWEEP_DB);
        let mut conn = Connection::open(&path).map_err(|e| bad(&path, e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| bad(&path, e))?;
        let tx = conn.transaction().map_err(|e| bad(&path, e))?;
        tx.execute_batch(SCHEMA).map_err(|e| bad(&path, e))?;
        let existing: Option<String> = tx
            .query_row("SELECT id FROM sweep", [], |r| r.get(0))
            .optional()
            .map_err(|e| bad(&path, e))?;
        match existing {
            Some(id) if id != sweep.id => {
                return Err(SweepError::BadRecord {
                    path,
                    why: format!("it records sweep {id}"),
                })
            }
            Some(_) => {}
            None => {
                let axes: Vec<(String, String)> = sweep
                    .axes
                    .iter()
                    .map(|a| (a.key.clone(), a.spec.to_string()))
                    .collect();
                let cwd = std::env::current_dir().unwrap_or_default();
                tx.execute(
                    "INSERT INTO sweep (id, name, created, experiment, cwd, command,
                        base_overrides, axes, mode, config)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        sweep.id,
                        sweep.base.config.name,
                        now(),
                        sweep.experiment.display().to_string(),
                        cwd.display().to_string(),
                        json(command),
                        json(&sweep.base_overrides),
                        json(&axes),
                        json(&sweep.mode),
                        sweep.base.to_toml(),
                    ],
                )
                .map_err(|e| bad(&path, e))?;
                let mut stmt = tx
                    .prepare("INSERT INTO points (idx, overrides, swept) VALUES (?1, ?2, ?3)")
                    .map_err(|e| bad(&path, e))?;
                for p in &sweep.points {
                    stmt.execute(params![
                        p.index as i64,
                        json(&p.overrides()),
                        serde_json::Value::Object(p.swept_json()).to_string()
                    ])
                    .map_err(|e| bad(&path, e))?;
                }
            }
        }
        tx.commit().map_err(|e| bad(&path, e))?;
        Ok(SweepRecord {
            id: sweep.id.clone(),
            dir: sweep.dir.clone(),
        })
    }

    /// Records a launch of `points`.
    pub fn add_launch(
        &self,
        launcher: &str,
        job_id: Option<&str>,
        points: &[usize],
        script: Option<&Path>,
    ) -> Result<(), SweepError> {
        let path = self.dir.join(SWEEP_DB);
        let conn = open(&path, false)?;
        conn.execute(
            "INSERT INTO launches (wall, launcher, job_id, points, script) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now(),
                launcher,
                job_id,
                json(&points),
                script.map(|s| s.display().to_string())
            ],
        )
        .map_err(|e| bad(&path, e))?;
        Ok(())
    }

    /// Every launch so far, oldest first.
    pub fn launches(&self) -> Result<Vec<Launch>, SweepError> {
        let path = self.dir.join(SWEEP_DB);
        let conn = open(&path, true)?;
        let mut stmt = conn
            .prepare("SELECT wall, launcher, job_id, points FROM launches ORDER BY id")
            .map_err(|e| bad(&path, e))?;
        let rows = stmt
            .query_map([], |r| {
                let points: String = r.get(3)?;
                Ok(Launch {
                    wall: r.get(0)?,
                    launcher: r.get(1)?,
                    job_id: r.get(2)?,
                    points: serde_json::from_str(&points).unwrap_or_default(),
                })
            })
            .map_err(|e| bad(&path, e))?;
        rows.collect::<Result<_, _>>().map_err(|e| bad(&path, e))
    }

    /// What a run of this sweep records about itself: the sweep id and the
    /// swept values of point `index` (read-only, so any number of runs may
    /// read at once, on any node).
    pub fn membership(
        dir: &Path,
        index: usize,
    ) -> Result<crate::store::SweepMembership, SweepError> {
        let path = dir.join(SWEEP_DB);
        if !path.is_file() {
            return Err(SweepError::BadRecord {
                path: dir.to_path_buf(),
                why: format!("it has no {SWEEP_DB}"),
            });
        }
        let conn = open(&path, true)?;
        let id: String = conn
            .query_row("SELECT id FROM sweep", [], |r| r.get(0))
            .map_err(|e| bad(&path, e))?;
        let swept: Option<String> = conn
            .query_row(
                "SELECT swept FROM points WHERE idx = ?1",
                [index as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| bad(&path, e))?;
        let swept = swept.ok_or_else(|| SweepError::BadRecord {
            path: path.clone(),
            why: format!("sweep {id} has no point {index}"),
        })?;
        Ok(crate::store::SweepMembership {
            id,
            index,
            swept: serde_json::from_str(&swept).unwrap_or_default(),
        })
    }
}

fn open(path: &Path, read_only: bool) -> Result<Connection, SweepError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| bad(path, e))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(|e| bad(path, e))?;
    Ok(conn)
}

fn bad(path: &Path, e: rusqlite::Error) -> SweepError {
    SweepError::BadRecord {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
