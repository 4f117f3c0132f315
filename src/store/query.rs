//! Reading runs: every command that shows runs (ls, show, export, report, watch)
//! reads through here (which runs: `select`). Readers open databases
//! read-only and never block the writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::heartbeat::{self, Recorded};
use super::provenance::now;
use super::{read_db, RunStatus, StoreError, RUN_DB};

/// One run as recorded, with the derived status (crashed) and summaries.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub name: String,
    pub status: RunStatus,
    pub created: f64,
    pub ended: Option<f64>,
    pub heartbeat: Option<f64>,
    pub pid: u32,
    pub host: String,
    /// The Slurm job it last trained in.
    pub slurm_job: Option<String>,
    /// The database's journal mode (wal, delete) and the filesystem its
    /// directory is on.
    pub journal: String,
    pub filesystem: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub command: Vec<String>,
    pub cwd: String,
    pub experiment: Option<String>,
    pub config: String,
    pub overrides: Vec<String>,
    pub error: Option<String>,
    pub sweep_id: Option<String>,
    pub sweep_index: Option<i64>,
    pub swept: Option<serde_json::Map<String, serde_json::Value>>,
    pub dir: PathBuf,
    pub params: BTreeMap<String, Param>,
    /// Per split and key: last, min, max, count.
    pub summary: Vec<Summary>,
    /// The user's tags, sorted, and notes, oldest first.
    pub tags: Vec<String>,
    pub notes: Vec<Note>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub wall: f64,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Param {
    pub value: String,
    pub num: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub split: String,
    pub key: String,
    pub last: Option<f64>,
    pub last_step: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MetricPoint {
    pub step: i64,
    pub epoch: i64,
    pub split: String,
    pub key: String,
    pub value: Option<f64>,
    pub wall: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    pub id: i64,
    pub epoch: i64,
    pub kind: String,
    pub bytes: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub wall: f64,
    pub kind: String,
    pub detail: String,
}

impl RunInfo {
    /// Seconds from start to end (or to now, while running).
    pub fn duration(&self) -> f64 {
        let end = match self.status {
            RunStatus::Running => now(),
            _ => self.ended.or(self.heartbeat).unwrap_or(self.created),
        };
        (end - self.created).max(0.0)
    }

    /// The swept keys and this run's values as text (`lr`, `0.001`).
    pub fn swept_values(&self) -> impl Iterator<Item = (&str, String)> {
        self.swept
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), value_text(v)))
    }

    pub fn summary(&self, split: &str, key: &str) -> Option<&Summary> {
        self.summary
            .iter()
            .find(|s| s.split == split && s.key == key)
    }
}

/// A recorded JSON value as a user wrote it: strings without quotes.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads one run's record.
pub fn read_run(dir: &Path) -> Result<RunInfo, StoreError> {
    read_db::read(dir, |conn| read_with(conn, dir))
}

fn read_with(conn: &Connection, dir: &Path) -> Result<RunInfo, StoreError> {
    let json_list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    // Version 3 added slurm_job; older stores are read as they are.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let slurm_job = if version >= 3 { "slurm_job" } else { "NULL" };
    let mut info = conn
        .query_row(
            &format!(
                "SELECT id, name, status, created, ended, heartbeat, pid, pid_start, host,
                    git_commit, git_dirty, command, cwd, experiment, config, overrides, error,
                    sweep_id, sweep_index, swept, {slurm_job} FROM run"
            ),
            [],
            |r| {
                let status: String = r.get(2)?;
                let pid: u32 = r.get(6)?;
                let pid_start: Option<i64> = r.get(7)?;
                let host: String = r.get(8)?;
                let created: f64 = r.get(3)?;
                let heartbeat: Option<f64> = r.get(5)?;
                let slurm_job: Option<String> = r.get(20)?;
                let mut status = RunStatus::parse(&status);
                if status == RunStatus::Running {
                    status = heartbeat::judge(&Recorded {
                        host: &host,
                        pid,
                        pid_start,
                        heartbeat,
                        created,
                        slurm_job: slurm_job.as_deref(),
                    });
                }
                Ok(RunInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    status,
                    created,
                    ended: r.get(4)?,
                    heartbeat,
                    pid,
                    host,
                    slurm_job,
                    journal: String::new(),
                    filesystem: String::new(),
                    git_commit: r.get(9)?,
                    git_dirty: r.get(10)?,
                    command: json_list(r.get(11)?),
                    cwd: r.get(12)?,
                    experiment: r.get(13)?,
                    config: r.get(14)?,
                    overrides: json_list(r.get(15)?),
                    error: r.get(16)?,
                    sweep_id: r.get(17)?,
                    sweep_index: r.get(18)?,
                    swept: r
                        .get::<_, Option<String>>(19)?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                    dir: dir.to_path_buf(),
                    params: BTreeMap::new(),
                    summary: Vec::new(),
                    tags: Vec::new(),
                    notes: Vec::new(),
                })
            },
        )
        .optional()?
        .ok_or(StoreError::NotARunDb)?;
    if version >= 4 {
        let mut stmt = conn.prepare("SELECT tag FROM tags ORDER BY tag")?;
        info.tags = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT wall, text FROM notes ORDER BY id")?;
        info.notes = stmt
            .query_map([], |r| {
                Ok(Note {
                    wall: r.get(0)?,
                    text: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    info.journal = super::journal::mode_of(conn)?;
    info.filesystem = super::journal::filesystem(dir).name;
    let mut stmt = conn.prepare("SELECT key, value, num FROM params")?;
    info.params = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Param {
                    value: r.get(1)?,
                    num: r.get(2)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT split, key, last, last_step, min, max, count FROM summary ORDER BY split, key",
    )?;
    info.summary = stmt
        .query_map([], |r| {
            Ok(Summary {
                split: r.get(0)?,
                key: r.get(1)?,
                last: r.get(2)?,
                last_step: r.get(3)?,
                min: r.get(4)?,
                max: r.get(5)?,
                count: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(info)
}

/// Reads every run under `root` in parallel; unreadable ones come back as errors.
pub fn list_runs(root: &Path) -> Result<Vec<Result<RunInfo, StoreError>>, StoreError> {
    Ok(scan(root)?.par_iter().map(|d| read_run(d)).collect())
}

/// Metric points, optionally only some keys, ordered by split, key and step.
pub fn metrics(dir: &Path, keys: Option<&[&str]>) -> Result<Vec<MetricPoint>, StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt = conn.prepare(
            "SELECT step, epoch, split, key, value, wall FROM metrics ORDER BY split, key, step, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(MetricPoint {
                step: r.get(0)?,
                epoch: r.get(1)?,
                split: r.get(2)?,
                key: r.get(3)?,
                value: r.get(4)?,
                wall: r.get(5)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if keys.is_none_or(|k| k.contains(&row.key.as_str())) {
                out.push(row);
            }
        }
        Ok(out)
    })
}

/// (epoch, value) pairs, epochs ascending.
pub type EpochValues = Vec<(u32, f64)>;

/// One metric's value at the end of each epoch it was recorded in (the
/// epoch's last finite value); and every SPLIT/KEY the run records, for
/// naming them when `split`/`key` is not one.
pub fn metric_by_epoch(
    dir: &Path,
    split: &str,
    key: &str,
) -> Result<(EpochValues, Vec<String>), StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt = conn.prepare(
            "SELECT epoch, value FROM metrics WHERE split = ?1 AND key = ?2 AND value IS NOT NULL
             ORDER BY epoch, step, rowid",
        )?;
        let mut values: Vec<(u32, f64)> = Vec::new();
        for row in stmt.query_map([split, key], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
        })? {
            let (epoch, value) = row?;
            let epoch = epoch.max(0) as u32;
            match values.last_mut() {
                Some(last) if last.0 == epoch => last.1 = value,
                _ => values.push((epoch, value)),
            }
        }
        let mut keys_stmt =
            conn.prepare("SELECT split || '/' || key FROM summary ORDER BY split, key")?;
        let keys = keys_stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((values, keys))
    })
}

/// One metric's (step, epoch, value) points in step order.
pub type Curve = Vec<(i64, i64, f64)>;

/// Every metric of a run by (split, key).
pub type Curves = BTreeMap<(String, String), Curve>;

/// Every metric as curves, NaN (stored as NULL) left out. Reads the rows
/// without allocating per row, for reports over many long runs.
pub fn curves(dir: &Path) -> Result<Curves, StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt = conn.prepare(
            "SELECT split, key, step, epoch, value FROM metrics WHERE value IS NOT NULL
             ORDER BY split, key, step, rowid",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Curves::new();
        let mut current: Option<((String, String), Curve)> = None;
        while let Some(row) = rows.next()? {
            let split = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let key = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let point = (row.get(2)?, row.get(3)?, row.get(4)?);
            match &mut current {
                Some(((s, k), points)) if s == split && k == key => points.push(point),
                _ => {
                    if let Some((name, points)) = current.take() {
                        out.insert(name, points);
                    }
                    current = Some(((split.to_string(), key.to_string()), vec![point]));
                }
            }
        }
        if let Some((name, points)) = current {
            out.insert(name, points);
        }
        Ok(out)
    })
}

pub fn images(dir: &Path) -> Result<Vec<ImageInfo>, StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt =
            conn.prepare("SELECT id, epoch, kind, length(png) FROM images ORDER BY epoch, id")?;
        let rows = stmt.query_map([], |r| {
            Ok(ImageInfo {
                id: r.get(0)?,
                epoch: r.get(1)?,
                kind: r.get(2)?,
                bytes: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

pub fn image_png(dir: &Path, id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(image_pngs(dir, &[id])?.remove(0))
}

/// Several pictures of one run, in the order of `ids`, through one connection.
pub fn image_pngs(dir: &Path, ids: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt = conn.prepare("SELECT png FROM images WHERE id = ?1")?;
        ids.iter()
            .map(|&id| Ok(stmt.query_row([id], |r| r.get(0))?))
            .collect()
    })
}

pub fn events(dir: &Path) -> Result<Vec<Event>, StoreError> {
    read_db::read(dir, |conn| {
        let mut stmt =
            conn.prepare("SELECT wall, kind, coalesce(detail, '') FROM events ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Event {
                wall: r.get(0)?,
                kind: r.get(1)?,
                detail: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// The last recorded step of a run, for resuming without duplicates.
pub fn last_step(dir: &Path) -> Result<Option<i64>, StoreError> {
    read_db::read(dir, |conn| {
        Ok(conn.query_row("SELECT max(step) FROM metrics", [], |r| r.get(0))?)
    })
}

/// The last recorded (step, epoch) of a run: where results computed after
/// training are filed.
pub fn last_position(dir: &Path) -> Result<(i64, i64), StoreError> {
    read_db::read(dir, |conn| {
        Ok(conn.query_row(
            "SELECT coalesce(max(step), 0), coalesce(max(epoch), 0) FROM metrics WHERE split != 'test'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    })
}

/// Every metric row of the given runs, each with its run id.
pub fn export_rows(runs: &[RunInfo]) -> Result<Vec<(String, MetricPoint)>, StoreError> {
    let mut out = Vec::new();
    for run in runs {
        let rows = metrics(&run.dir, None)?;
        out.extend(rows.into_iter().map(|m| (run.id.clone(), m)));
    }
    Ok(out)
}

/// Every run directory under `root` (a run directory holds run.db; runs do
/// not nest, so the walk stops there).
pub fn scan(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if !root.is_dir() {
        return Err(if root.exists() {
            StoreError::RootNotADir(root.to_path_buf())
        } else {
            StoreError::NoRoot(root.to_path_buf())
        });
    }
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join(RUN_DB).is_file() {
            found.push(dir);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
