//! The one writer of a run's database. Scalars are buffered and written in
//! short transactions (every `FLUSH_ROWS` rows or `FLUSH_EVERY`), so readers
//! never wait long and a crash loses at most the unflushed tail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};

use super::claim::{Claim, RUN_LOCK};
use super::heartbeat::Heartbeat;
use super::journal::{self, JournalChoice, JournalMode};
use super::params::{flatten_params, param_value};
use super::provenance::{git_state, hostname, new_id, now, process_start, slurm_job};
use super::schema::migrate;
use super::summary::{summarise, MetricRow};
use super::{RunStatus, StoreError, RUN_DB};

/// Space set aside in every run directory (`run.reserve`) while it trains:
/// on a full disk it is freed so that the run can still record how it
/// ended, and does not stay "running".
const RESERVE: &str = "run.reserve";
const RESERVE_BYTES: usize = 1 << 20;

const FLUSH_ROWS: usize = 4096;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// What a new run records about itself.
#[derive(Clone, Debug, Default)]
pub struct NewRun {
    pub name: String,
    /// The resolved configuration as TOML.
    pub config_toml: String,
    pub overrides: Vec<String>,
    pub experiment: Option<String>,
    /// The full command line.
    pub command: Vec<String>,
    pub sweep: Option<SweepMembership>,
    /// A journal mode forced by the caller (benchmarks); None: ESX_JOURNAL,
    /// else by filesystem.
    pub journal: Option<JournalMode>,
}

#[derive(Clone, Debug)]
pub struct SweepMembership {
    pub id: String,
    pub index: usize,
    /// The swept keys and this run's values.
    pub swept: serde_json::Map<String, serde_json::Value>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed,
    Failed(String),
    Interrupted,
    /// Stopped by its sweep's pruner at the end of an epoch.
    Pruned,
    /// A model trained elsewhere, recorded whole.
    Imported,
}

pub struct RunWriter {
    conn: Connection,
    id: String,
    dir: PathBuf,
    pending: Vec<MetricRow>,
    last_flush: Instant,
    finished: bool,
    /// The run's lock, held while this writer lives (not by annotators).
    _claim: Option<Claim>,
    /// A resumed run's record as it was, to put back if the resume gives up.
    before_resume: Option<RunRow>,
    /// Stamps the heartbeat between flushes while the run trains.
    heartbeat: Option<Heartbeat>,
}

/// The run row's fields a resume changes.
#[derive(Debug)]
struct RunRow {
    status: String,
    ended: Option<f64>,
    error: Option<String>,
    heartbeat: Option<f64>,
    pid: Option<i64>,
    pid_start: Option<i64>,
    host: Option<String>,
    slurm_job: Option<String>,
}

impl RunWriter {
    /// Whether `parent` (made where missing) can take a new run: checked
    /// before the work that precedes recording one, so a read-only or
    /// missing runs folder is said before anything else.
    pub fn check_parent(parent: &Path) -> Result<(), StoreError> {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        let c = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes())
            .map_err(|e| StoreError::io(parent, std::io::Error::other(e)))?;
        // SAFETY: access(2) on a NUL-terminated path; it only checks.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            return Err(StoreError::io(parent, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Creates `parent/<prefix-><id>/run.db` and records the run as running.
    pub fn create(
        parent: &Path,
        prefix: Option<&str>,
        new: &NewRun,
    ) -> Result<RunWriter, StoreError> {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        let journal = match new.journal {
            Some(mode) => JournalChoice {
                mode,
                why: "chosen by the caller".into(),
            },
            None => journal::choose(parent)?,
        };
        let (id, dir) = loop {
            let id = new_id();
            let name = match prefix {
                Some(p) => format!("{p}-{id}"),
                None => id.clone(),
            };
            let dir = parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(&dir, e)),
            }
        };
        let claim = Claim::take(&dir, RUN_LOCK, &format!("run {id}"), "trained")?;
        set_aside(&dir)?;
        let mut conn = open_for_writing(&dir, Some(&journal))?;
        migrate(&mut conn)?;
        let cwd = std::env::current_dir().unwrap_or_default();
        let git = git_state(&cwd);
        let pid = std::process::id();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO run (id, name, status, created, heartbeat, pid, pid_start, host,
                git_commit, git_dirty, command, cwd, experiment, config, overrides,
                sweep_id, sweep_index, swept, slurm_job)
             VALUES (?1, ?2, 'running', ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                id,
                new.name,
                now(),
                pid,
                process_start(pid),
                hostname(),
                git.as_ref().map(|g| g.0.clone()),
                git.as_ref().map(|g| g.1),
                serde_json::to_string(&new.command).unwrap_or_default(),
                cwd.display().to_string(),
                new.experiment,
                new.config_toml,
                serde_json::to_string(&new.overrides).unwrap_or_default(),
                new.sweep.as_ref().map(|s| s.id.clone()),
                new.sweep.as_ref().map(|s| s.index as i64),
                new.sweep
                    .as_ref()
                    .map(|s| serde_json::Value::Object(s.swept.clone()).to_string()),
                slurm_job(),
            ],
        )?;
        let table: toml::Table = toml::from_str(&new.config_toml).unwrap_or_default();
        {
            let mut stmt =
                tx.prepare("INSERT INTO params (key, value, num) VALUES (?1, ?2, ?3)")?;
            for (key, value, num) in flatten_params(&table) {
                stmt.execute(params![key, value, num])?;
            }
        }
        tx.commit()?;
        let mut w = RunWriter::wrap(conn, id, dir, Some(claim));
        w.start_heartbeat();
        Ok(w)
    }

    /// Claims a run to continue it: fails, naming the holder, while another
    /// process has it. Check what needs checking while holding the claim,
    /// then `reopen`.
    pub fn claim(dir: &Path) -> Result<Claim, StoreError> {
        let what = match dir.file_name() {
            Some(name) => format!("run {}", name.to_string_lossy()),
            None => format!("run {}", dir.display()),
        };
        Claim::take(dir, RUN_LOCK, &what, "resumed")
    }

    /// Reopens a claimed run to continue it (resume): status back to running
    /// under this process, with a `resumed` event.
    pub fn reopen(dir: &Path, claim: Claim) -> Result<RunWriter, StoreError> {
        let journal = journal::choose(dir)?;
        set_aside(dir)?;
        let mut conn = open_for_writing(dir, Some(&journal))?;
        migrate(&mut conn)?;
        let (id, before) = conn.query_row(
            "SELECT id, status, ended, error, heartbeat, pid, pid_start, host, slurm_job FROM run",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    RunRow {
                        status: r.get(1)?,
                        ended: r.get(2)?,
                        error: r.get(3)?,
                        heartbeat: r.get(4)?,
                        pid: r.get(5)?,
                        pid_start: r.get(6)?,
                        host: r.get(7)?,
                        slurm_job: r.get(8)?,
                    },
                ))
            },
        )?;
        let pid = std::process::id();
        conn.execute(
            "UPDATE run SET status = 'running', ended = NULL, error = NULL, heartbeat = ?1,
                pid = ?2, pid_start = ?3, host = ?4, slurm_job = ?5",
            params![now(), pid, process_start(pid), hostname(), slurm_job()],
        )?;
        let mut w = RunWriter::wrap(conn, id, dir.to_path_buf(), Some(claim));
        w.before_resume = Some(before);
        w.log_event("resumed", &format!("on {}", hostname()))?;
        w.start_heartbeat();
        Ok(w)
    }

    /// A resume that failed before training changed anything: the run's
    /// record goes back to what it was, with the attempt as an event.
    pub fn give_up_resume(mut self, why: &str) -> Result<(), StoreError> {
        self.finished = true;
        drop(self.heartbeat.take());
        let Some(b) = self.before_resume.take() else {
            return self.finish_inner(&Outcome::Failed(why.to_string()));
        };
        self.flush()?;
        self.conn.execute(
            "UPDATE run SET status = ?1, ended = ?2, error = ?3, heartbeat = ?4, pid = ?5,
                pid_start = ?6, host = ?7, slurm_job = ?8",
            params![
                b.status,
                b.ended,
                b.error,
                b.heartbeat,
                b.pid,
                b.pid_start,
                b.host,
                b.slurm_job
            ],
        )?;
        self.log_event("resume-failed", why)
    }

    /// Opens a run to add results after the fact (evaluation, tuned
    /// thresholds) without touching its status, even while it trains.
    /// Errors name the database.
    pub fn annotate(dir: &Path) -> Result<RunWriter, StoreError> {
        let open = || -> Result<RunWriter, StoreError> {
            let mut conn = open_for_writing(dir, None)?;
            migrate(&mut conn)?;
            let id: String = conn.query_row("SELECT id FROM run", [], |r| r.get(0))?;
            let mut w = RunWriter::wrap(conn, id, dir.to_path_buf(), None);
            w.finished = true;
            Ok(w)
        };
        open().map_err(|e| e.at(&dir.join(super::RUN_DB)))
    }

    /// Adds tags (already there: kept as they were).
    pub fn add_tags(&mut self, tags: &[String]) -> Result<(), StoreError> {
        let db = self.dir.join(super::RUN_DB);
        let tx = self.conn.transaction().map_err(|e| named(&db, e))?;
        for tag in tags {
            tx.execute(
                "INSERT INTO tags (tag, wall) VALUES (?1, ?2) ON CONFLICT (tag) DO NOTHING",
                params![tag, now()],
            )
            .map_err(|e| named(&db, e))?;
        }
        tx.commit().map_err(|e| named(&db, e))
    }

    /// Removes tags; returns those the run did not have.
    pub fn remove_tags(&mut self, tags: &[String]) -> Result<Vec<String>, StoreError> {
        let db = self.dir.join(super::RUN_DB);
        let tx = self.conn.transaction().map_err(|e| named(&db, e))?;
        let mut absent = Vec::new();
        for tag in tags {
            let n = tx
                .execute("DELETE FROM tags WHERE tag = ?1", params![tag])
                .map_err(|e| named(&db, e))?;
            if n == 0 {
                absent.push(tag.clone());
            }
        }
        tx.commit().map_err(|e| named(&db, e))?;
        Ok(absent)
    }

    /// Adds a note (notes accumulate, each with its time).
    pub fn add_note(&mut self, text: &str) -> Result<(), StoreError> {
        let db = self.dir.join(super::RUN_DB);
        self.conn
            .execute(
                "INSERT INTO notes (wall, text) VALUES (?1, ?2)",
                params![now(), text],
            )
            .map_err(|e| named(&db, e))?;
        Ok(())
    }

    /// Flushes an annotating writer.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.flush()
    }

    /// Forgets every scalar of `split` (a new evaluation replaces the last).
    pub fn clear_split(&mut self, split: &str) -> Result<(), StoreError> {
        self.flush()?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM metrics WHERE split = ?1", params![split])?;
        tx.execute("DELETE FROM summary WHERE split = ?1", params![split])?;
        tx.commit()?;
        Ok(())
    }

    fn wrap(conn: Connection, id: String, dir: PathBuf, claim: Option<Claim>) -> RunWriter {
        RunWriter {
            conn,
            id,
            dir,
            pending: Vec::with_capacity(FLUSH_ROWS),
            last_flush: Instant::now(),
            finished: false,
            _claim: claim,
            before_resume: None,
            heartbeat: None,
        }
    }

    fn start_heartbeat(&mut self) {
        self.heartbeat = Some(Heartbeat::start(self.dir.join(RUN_DB)));
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Buffers one scalar; written within `FLUSH_EVERY` or `FLUSH_ROWS` rows.
    pub fn log_scalar(
        &mut self,
        step: u64,
        epoch: u32,
        split: &str,
        key: &str,
        value: f64,
    ) -> Result<(), StoreError> {
        self.pending.push(MetricRow {
            step,
            epoch,
            split: split.to_string(),
            key: key.to_string(),
            value,
            wall: now(),
        });
        if self.pending.len() >= FLUSH_ROWS || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered scalars in one transaction and updates the summary.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.last_flush = Instant::now();
        let db = self.dir.join(RUN_DB);
        self.write_pending().map_err(|e| e.at(&db))
    }

    fn write_pending(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO metrics (step, epoch, split, key, value, wall) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &self.pending {
                let value = (!r.value.is_nan()).then_some(r.value);
                insert.execute(params![
                    r.step as i64,
                    r.epoch,
                    r.split,
                    r.key,
                    value,
                    r.wall
                ])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO summary (split, key, last, last_step, min, max, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (split, key) DO UPDATE SET
                    last = excluded.last, last_step = excluded.last_step,
                    min = CASE WHEN summary.min IS NULL OR excluded.min < summary.min
                               THEN coalesce(excluded.min, summary.min) ELSE summary.min END,
                    max = CASE WHEN summary.max IS NULL OR excluded.max > summary.max
                               THEN coalesce(excluded.max, summary.max) ELSE summary.max END,
                    count = summary.count + excluded.count",
            )?;
            for s in summarise(&self.pending) {
                upsert.execute(params![
                    s.split,
                    s.key,
                    s.last,
                    s.last_step as i64,
                    s.min,
                    s.max,
                    s.count
                ])?;
            }
            if !self.finished {
                tx.execute("UPDATE run SET heartbeat = ?1", params![now()])?;
            }
        }
        tx.commit()?;
        self.pending.clear();
        Ok(())
    }

    pub fn log_image(&mut self, epoch: u32, kind: &str, png: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO images (epoch, kind, png, wall) VALUES (?1, ?2, ?3, ?4)",
                params![epoch, kind, png, now()],
            )
            .map_err(|e| self.at_db(e))?;
        Ok(())
    }

    pub fn log_event(&mut self, kind: &str, detail: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO events (wall, kind, detail) VALUES (?1, ?2, ?3)",
                params![now(), kind, detail],
            )
            .map_err(|e| self.at_db(e))?;
        Ok(())
    }

    /// Forgets everything logged after `step` (and images after `epoch`), so
    /// that a resumed run redoes those steps without duplicates.
    pub fn truncate_after(&mut self, step: u64, epoch: u32) -> Result<(), StoreError> {
        self.flush()?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM metrics WHERE step > ?1", params![step as i64])?;
        tx.execute("DELETE FROM images WHERE epoch > ?1", params![epoch])?;
        tx.commit()?;
        self.rebuild_summary()
    }

    /// The per-key summary from the metrics as they are.
    fn rebuild_summary(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM summary", [])?;
        tx.execute(
            "INSERT INTO summary (split, key, last, last_step, min, max, count)
             SELECT m.split, m.key,
                    (SELECT value FROM metrics l WHERE l.split = m.split AND l.key = m.key
                     ORDER BY l.step DESC, l.rowid DESC LIMIT 1),
                    max(m.step), min(m.value), max(m.value), count(*)
             FROM metrics m GROUP BY m.split, m.key",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Updates a recorded parameter (e.g. a threshold tuned after training).
    pub fn set_param(&mut self, key: &str, value: &toml::Value) -> Result<(), StoreError> {
        let (text, num) = param_value(value);
        self.conn.execute(
            "INSERT INTO params (key, value, num) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, num = excluded.num",
            params![key, text, num],
        )?;
        Ok(())
    }

    /// Flushes and records how the run ended.
    pub fn finish(mut self, outcome: Outcome) -> Result<(), StoreError> {
        self.finish_inner(&outcome)
    }

    fn finish_inner(&mut self, outcome: &Outcome) -> Result<(), StoreError> {
        self.finished = true;
        drop(self.heartbeat.take());
        let mut flushed = self.flush();
        if flushed.is_err() {
            // Likely a full disk: free the reserve and try once more.
            let _ = std::fs::remove_file(self.dir.join(RESERVE));
            flushed = self.flush();
        }
        let (status, mut error) = match outcome {
            Outcome::Completed => (RunStatus::Completed, None),
            Outcome::Failed(m) => (RunStatus::Failed, Some(m.clone())),
            Outcome::Interrupted => (RunStatus::Interrupted, None),
            Outcome::Pruned => (RunStatus::Pruned, None),
            Outcome::Imported => (RunStatus::Imported, None),
        };
        // Scalars that could not be written make a completed run failed.
        let status = match (&flushed, status) {
            (
                Err(e),
                RunStatus::Completed
                | RunStatus::Interrupted
                | RunStatus::Pruned
                | RunStatus::Imported,
            ) => {
                error = Some(format!("its last scalars were not recorded: {e}"));
                RunStatus::Failed
            }
            (_, s) => s,
        };
        let update = |conn: &Connection| {
            conn.execute(
                "UPDATE run SET status = ?1, ended = ?2, error = ?3",
                params![status.as_str(), now(), error],
            )
        };
        if update(&self.conn).is_err() {
            let _ = std::fs::remove_file(self.dir.join(RESERVE));
            update(&self.conn).map_err(|e| self.at_db(e))?;
        }
        let _ = std::fs::remove_file(self.dir.join(RESERVE));
        flushed
    }

    /// A database error, naming the database.
    fn at_db(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from(e).at(&self.dir.join(RUN_DB))
    }

    /// Takes back what the end of `epoch` recorded (its train and val
    /// means), when its checkpoints could not be written: the store then
    /// still agrees with them (a resume redoes the epoch).
    pub fn forget_epoch_end(&mut self, epoch: u32) -> Result<(), StoreError> {
        self.pending
            .retain(|r| !(r.epoch == epoch && (r.split == "train" || r.split == "val")));
        let db = self.dir.join(RUN_DB);
        self.conn
            .execute(
                "DELETE FROM metrics WHERE epoch = ?1 AND split IN ('train', 'val')",
                params![epoch],
            )
            .map_err(|e| StoreError::from(e).at(&db))?;
        self.rebuild_summary().map_err(|e| e.at(&db))
    }
}

impl Drop for RunWriter {
    /// A run must never stay "running" after its writer is gone.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish_inner(&Outcome::Failed(
                "esx stopped without finishing the run".into(),
            ));
        }
    }
}

/// Sets `RESERVE_BYTES` aside in the run directory (written, not sparse).
fn set_aside(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(RESERVE);
    std::fs::write(&path, vec![0u8; RESERVE_BYTES]).map_err(|e| StoreError::io(&path, e))
}

/// Opens (or creates) a run's database, putting it in the journal mode
/// `choice` (an annotator, writing beside a live writer, keeps the mode the
/// file has).
fn open_for_writing(dir: &Path, choice: Option<&JournalChoice>) -> Result<Connection, StoreError> {
    let path = dir.join(RUN_DB);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| StoreError::open(&path, e))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    if let Some(choice) = choice {
        journal::apply(&conn, choice).map_err(|e| StoreError::from(e).at(&path))?;
    }
    Ok(conn)
}

/// An SQLite error of the database at `db`, naming it.
fn named(db: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::from(e).at(db)
}
