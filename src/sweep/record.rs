//! `sweep.db`: a sweep's own record, beside its runs: what it is (id, the
//! experiment, base overrides, axes, mode), its planned points, and every
//! launch (local or a Slurm job id with the points it was given).

use std::collections::HashMap;
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
    );
    CREATE TABLE IF NOT EXISTS search (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        settings TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS proposals (
        idx INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        how TEXT NOT NULL,
        finished INTEGER NOT NULL,
        running INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rungs (
        id INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        idx INTEGER NOT NULL,
        run_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        value REAL NOT NULL,
        threshold REAL NOT NULL,
        others INTEGER NOT NULL,
        decision TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS results (
        idx INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        run_id TEXT,
        status TEXT NOT NULL,
        objective REAL,
        best_idx INTEGER,
        best REAL
    );";

/// How a point came to be: planned with the grid or the random draws, or
/// proposed by TPE from `finished` results and `running` trials.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Proposal {
    pub index: usize,
    pub how: String,
    pub finished: usize,
    pub running: usize,
}

/// One rung decision as the sweep records it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RungRecord {
    pub index: usize,
    pub run_id: String,
    pub epoch: u32,
    pub value: f64,
    pub threshold: f64,
    pub others: usize,
    pub pruned: bool,
}

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
        // The search as run now (a TPE search may have been given more trials).
        tx.execute(
            "INSERT OR REPLACE INTO search (id, settings) VALUES (1, ?1)",
            [json(&sweep.search)],
        )
        .map_err(|e| bad(&path, e))?;
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

    /// Records a point proposed after the sweep was created (TPE), with how.
    pub fn add_point(&self, point: &super::Point, proposal: &Proposal) -> Result<(), SweepError> {
        let path = self.dir.join(SWEEP_DB);
        let mut conn = open(&path, false)?;
        let tx = conn.transaction().map_err(|e| bad(&path, e))?;
        tx.execute(
            "INSERT INTO points (idx, overrides, swept) VALUES (?1, ?2, ?3)",
            params![
                point.index as i64,
                json(&point.overrides()),
                serde_json::Value::Object(point.swept_json()).to_string()
            ],
        )
        .map_err(|e| bad(&path, e))?;
        tx.execute(
            "INSERT INTO proposals (idx, wall, how, finished, running) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                proposal.index as i64,
                now(),
                proposal.how,
                proposal.finished as i64,
                proposal.running as i64
            ],
        )
        .map_err(|e| bad(&path, e))?;
        tx.commit().map_err(|e| bad(&path, e))
    }

    /// The points recorded so far (a TPE sweep's proposals), in index order.
    /// Where `sweep.db` is gone but runs of sweep `id` are in its folder,
    /// their points are rebuilt from them (each run records its sweep, point
    /// and values): a search run again goes on from them instead of
    /// proposing, and running, every point again.
    pub fn recorded_points(dir: &Path, id: &str) -> Result<Vec<super::Point>, SweepError> {
        let path = dir.join(SWEEP_DB);
        if !path.is_file() {
            return points_of_runs(dir, id);
        }
        let rows = read(&path, |conn| {
            let mut stmt = conn.prepare("SELECT idx, swept FROM points ORDER BY idx")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        let mut points = Vec::new();
        for (idx, swept) in rows {
            let swept: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&swept)
                .map_err(|e| SweepError::BadRecord {
                    path: path.clone(),
                    why: format!("point {idx}: {e}"),
                })?;
            let values = swept
                .into_iter()
                .map(|(k, v)| (k, json_to_toml(&v)))
                .collect();
            points.push(super::Point {
                index: idx as usize,
                values,
            });
        }
        Ok(points)
    }

    /// The search a sweep records (None for a folder without sweep.db).
    pub fn search(dir: &Path) -> Result<Option<super::Search>, SweepError> {
        let path = dir.join(SWEEP_DB);
        if !path.is_file() {
            return Ok(None);
        }
        let text: Option<String> = read(&path, |conn| {
            conn.query_row("SELECT settings FROM search WHERE id = 1", [], |r| r.get(0))
                .optional()
                .or_else(|e| match e {
                    // A sweep.db from before searches: a plain sweep.
                    rusqlite::Error::SqliteFailure(_, Some(ref m))
                        if m.contains("no such table") =>
                    {
                        Ok(None)
                    }
                    e => Err(e),
                })
        })?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| SweepError::BadRecord {
                path: path.clone(),
                why: format!("its search: {e}"),
            })
        })
        .transpose()
    }

    /// How many points the sweep under `dir` will have: a search's trials,
    /// else its planned grid (None for a folder without sweep.db).
    pub fn planned(dir: &Path) -> Result<Option<usize>, SweepError> {
        if let Some(trials) = Self::search(dir)?.and_then(|s| s.trials) {
            return Ok(Some(trials));
        }
        let path = dir.join(SWEEP_DB);
        if !path.is_file() {
            return Ok(None);
        }
        let n: i64 = read(&path, |conn| {
            conn.query_row("SELECT count(*) FROM points", [], |r| r.get(0))
        })?;
        Ok(Some(n as usize))
    }

    /// Records a rung decision of point `index`'s run `run_id` (written by
    /// the run itself, wherever it runs).
    pub fn add_rung(
        dir: &Path,
        index: usize,
        run_id: &str,
        d: &super::decision::Decision,
    ) -> Result<(), SweepError> {
        let path = dir.join(SWEEP_DB);
        let conn = open(&path, false)?;
        conn.execute(
            "INSERT INTO rungs (wall, idx, run_id, epoch, value, threshold, others, decision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now(),
                index as i64,
                run_id,
                d.epoch,
                d.value,
                d.threshold,
                d.others as i64,
                if d.prune { "prune" } else { "continue" }
            ],
        )
        .map_err(|e| bad(&path, e))?;
        Ok(())
    }

    /// Every rung decision so far, oldest first.
    pub fn rungs(dir: &Path) -> Result<Vec<RungRecord>, SweepError> {
        let path = dir.join(SWEEP_DB);
        read(&path, |conn| {
            let mut stmt = conn.prepare(
                "SELECT idx, run_id, epoch, value, threshold, others, decision FROM rungs ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RungRecord {
                    index: r.get::<_, i64>(0)? as usize,
                    run_id: r.get(1)?,
                    epoch: r.get(2)?,
                    value: r.get(3)?,
                    threshold: r.get(4)?,
                    others: r.get::<_, i64>(5)? as usize,
                    pruned: r.get::<_, String>(6)? == "prune",
                })
            })?;
            rows.collect()
        })
    }

    /// How each proposed point came to be, by index.
    pub fn proposals(dir: &Path) -> Result<Vec<Proposal>, SweepError> {
        let path = dir.join(SWEEP_DB);
        read(&path, |conn| {
            let mut stmt =
                conn.prepare("SELECT idx, how, finished, running FROM proposals ORDER BY idx")?;
            let rows = stmt.query_map([], |r| {
                Ok(Proposal {
                    index: r.get::<_, i64>(0)? as usize,
                    how: r.get(1)?,
                    finished: r.get::<_, i64>(2)? as usize,
                    running: r.get::<_, i64>(3)? as usize,
                })
            })?;
            rows.collect()
        })
    }

    /// Each recorded result's point and (run id, status).
    pub fn results(&self) -> Result<HashMap<usize, (Option<String>, String)>, SweepError> {
        let path = self.dir.join(SWEEP_DB);
        read(&path, |conn| {
            let mut stmt = conn.prepare("SELECT idx, run_id, status FROM results")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as usize, (r.get(1)?, r.get(2)?)))
            })?;
            rows.collect()
        })
    }

    /// Records how point `index` ended and the best point so far.
    pub fn set_result(
        &self,
        index: usize,
        run_id: Option<&str>,
        status: &str,
        objective: Option<f64>,
        best: Option<(usize, f64)>,
    ) -> Result<(), SweepError> {
        let path = self.dir.join(SWEEP_DB);
        let conn = open(&path, false)?;
        conn.execute(
            "INSERT OR REPLACE INTO results (idx, wall, run_id, status, objective, best_idx, best)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                index as i64,
                now(),
                run_id,
                status,
                objective,
                best.map(|b| b.0 as i64),
                best.map(|b| b.1)
            ],
        )
        .map_err(|e| bad(&path, e))?;
        Ok(())
    }

    /// Every launch so far, oldest first.
    pub fn launches(&self) -> Result<Vec<Launch>, SweepError> {
        let path = self.dir.join(SWEEP_DB);
        read(&path, |conn| {
            let mut stmt =
                conn.prepare("SELECT wall, launcher, job_id, points FROM launches ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                let points: String = r.get(3)?;
                Ok(Launch {
                    wall: r.get(0)?,
                    launcher: r.get(1)?,
                    job_id: r.get(2)?,
                    points: serde_json::from_str(&points).unwrap_or_default(),
                })
            })?;
            rows.collect()
        })
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
        let (id, swept): (String, Option<String>) = read(&path, |conn| {
            let id = conn.query_row("SELECT id FROM sweep", [], |r| r.get(0))?;
            let swept = conn
                .query_row(
                    "SELECT swept FROM points WHERE idx = ?1",
                    [index as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok((id, swept))
        })?;
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

/// A swept value read back from its JSON record.
/// The points of sweep `id` its runs in `dir` record, in index order (the
/// first attempt's values where a point was tried more than once).
fn points_of_runs(dir: &Path, id: &str) -> Result<Vec<super::Point>, SweepError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut runs: Vec<crate::store::query::RunInfo> = crate::store::query::list_runs(dir)?
        .into_iter()
        .flatten()
        .filter(|r| r.sweep_id.as_deref() == Some(id))
        .collect();
    runs.sort_by(|a, b| a.created.total_cmp(&b.created));
    let mut by_index: std::collections::BTreeMap<usize, super::Point> = Default::default();
    for r in runs {
        let (Some(index), Some(swept)) = (r.sweep_index, r.swept) else {
            continue;
        };
        let Ok(index) = usize::try_from(index) else {
            continue;
        };
        by_index.entry(index).or_insert_with(|| super::Point {
            index,
            values: swept
                .into_iter()
                .map(|(k, v)| (k, json_to_toml(&v)))
                .collect(),
        });
    }
    // Indices from 0 with no gap: a proposal lost with sweep.db (a gap)
    // ends the rebuilt history there.
    let mut points = Vec::new();
    for (i, (index, point)) in by_index.into_iter().enumerate() {
        if index != i {
            break;
        }
        points.push(point);
    }
    Ok(points)
}

fn json_to_toml(v: &serde_json::Value) -> toml::Value {
    match v {
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        serde_json::Value::Array(a) => toml::Value::Array(a.iter().map(json_to_toml).collect()),
        other => toml::Value::String(other.to_string()),
    }
}

fn open(path: &Path, read_only: bool) -> Result<Connection, SweepError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| bad(path, e))?;
    conn.busy_timeout(BUSY).map_err(|e| bad(path, e))?;
    Ok(conn)
}

/// Reads sweep.db from any process, as runs' databases are read (one
/// transaction; a dead writer's journal rolled back).
fn read<T>(
    path: &Path,
    read: impl Fn(&Connection) -> rusqlite::Result<T>,
) -> Result<T, SweepError> {
    crate::store::read_db::read_file(path, BUSY, |e| e, |e: &rusqlite::Error| Some(e), read)
        .map_err(|e| bad(path, e))
}

const BUSY: Duration = Duration::from_secs(30);

fn bad(path: &Path, e: rusqlite::Error) -> SweepError {
    SweepError::BadRecord {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
