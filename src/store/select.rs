//! Which runs a command means: run ids, unique id prefixes, run directories,
//! a sweep, a `--where` filter and tags. `ls`, `show`, `export`, `report` and
//! `watch` all come through here, so they agree on what an id matches and say
//! the same thing when it matches nothing.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::filter::Expr;
use super::query::{read_run, scan, RunInfo};
use super::{StoreError, RUN_DB};

/// The runs to act on: every run under the roots, narrowed down.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub roots: Vec<PathBuf>,
    /// Run ids, unique prefixes or run directories; empty: all.
    pub runs: Vec<String>,
    /// A sweep id or prefix.
    pub sweep: Option<String>,
    pub filter: Option<Expr>,
    /// Runs carrying every one of these tags.
    pub tags: Vec<String>,
}

/// What a selection found: the runs, oldest first, and the run databases that
/// could not be read (left out, for the caller to warn about).
#[derive(Debug, Default)]
pub struct Selected {
    pub runs: Vec<RunInfo>,
    pub unreadable: Vec<StoreError>,
}

impl Selected {
    /// Run ids held by more than one folder (a run directory copied), with
    /// their folders: worth a warning wherever runs are listed.
    pub fn copies(&self) -> Vec<StoreError> {
        let mut by_id: std::collections::BTreeMap<&str, Vec<PathBuf>> = Default::default();
        for r in &self.runs {
            by_id.entry(&r.id).or_default().push(r.dir.clone());
        }
        by_id
            .into_iter()
            .filter(|(_, dirs)| dirs.len() > 1)
            .map(|(id, dirs)| StoreError::SameId {
                id: id.to_string(),
                dirs,
            })
            .collect()
    }
}

impl Selection {
    /// Every run under one root.
    pub fn all(root: impl Into<PathBuf>) -> Selection {
        Selection {
            roots: vec![root.into()],
            ..Selection::default()
        }
    }

    /// Whether anything beyond the roots narrows the runs down.
    pub fn is_narrowed(&self) -> bool {
        !self.runs.is_empty()
            || self.sweep.is_some()
            || self.filter.is_some()
            || !self.tags.is_empty()
    }

    /// The run directories selected by id and sweep alone, without reading
    /// more than each run's directory name; filters and tags need `select`.
    pub fn dirs(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut dirs = Vec::new();
        for root in &self.roots {
            dirs.extend(scan(root)?);
        }
        dedup_dirs(&mut dirs);
        if self.runs.is_empty() {
            return Ok(dirs);
        }
        let mut picked = Vec::new();
        for arg in &self.runs {
            picked.push(match as_run_dir(arg) {
                Some(dir) => dir,
                None => pick_by_id(arg, &dirs, &self.roots_text())?,
            });
        }
        dedup_dirs(&mut picked);
        Ok(picked)
    }

    /// Reads and narrows the selected runs, oldest first. An id that matches
    /// no run or several, or a sweep with no runs, is an error; a filter that
    /// keeps nothing is an empty selection.
    pub fn select(&self) -> Result<Selected, StoreError> {
        let read: Vec<_> = self.dirs()?.par_iter().map(|d| read_run(d)).collect();
        let mut selected = Selected::default();
        for result in read {
            match result {
                Ok(run) => selected.runs.push(run),
                Err(e) => selected.unreadable.push(e),
            }
        }
        let runs = &mut selected.runs;
        if let Some(sweep) = &self.sweep {
            runs.retain(|r| {
                r.sweep_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(sweep.as_str()))
            });
            if runs.is_empty() {
                return Err(StoreError::NoSuchSweep {
                    arg: sweep.clone(),
                    roots: self.roots_text(),
                });
            }
        }
        runs.retain(|r| {
            self.tags.iter().all(|t| r.tags.contains(t))
                && self.filter.as_ref().is_none_or(|f| f.matches(r))
        });
        runs.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(selected)
    }

    /// What to say when the selection found no run.
    pub fn nothing_found(&self) -> String {
        if self.is_narrowed() {
            format!("no run under {} matches", self.roots_text())
        } else {
            format!("no runs under {}", self.roots_text())
        }
    }

    /// The roots as error messages name them.
    pub fn roots_text(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// RUN on the command line: a run directory, its run.db, or a unique id prefix
/// of a run under `root`.
pub fn resolve_run(arg: &str, root: &Path) -> Result<PathBuf, StoreError> {
    match as_run_dir(arg) {
        Some(dir) => Ok(dir),
        None => pick_by_id(arg, &scan(root)?, &root.display().to_string()),
    }
}

/// RUN for a command that writes to it (tag, note): as `resolve_run`, and
/// by the id each run records, not only its folder's name, so that a copy
/// of the run in a folder named otherwise makes the id ambiguous instead of
/// one of the two being written to silently.
pub fn resolve_run_to_write(arg: &str, root: &Path) -> Result<PathBuf, StoreError> {
    if let Some(dir) = as_run_dir(arg) {
        return Ok(dir);
    }
    let picked = pick_by_id(arg, &scan(root)?, &root.display().to_string())?;
    let id = read_run(&picked)?.id;
    let holders: Vec<PathBuf> = scan(root)?
        .par_iter()
        .filter(|d| read_run(d).is_ok_and(|r| r.id == id))
        .cloned()
        .collect();
    if holders.len() > 1 {
        return Err(StoreError::SameId { id, dirs: holders });
    }
    Ok(picked)
}

/// RUN|ROOT: a run directory, a directory of runs, or a run id prefix under
/// `root`; None means every run under `root`.
pub fn resolve_targets(target: Option<&str>, root: &Path) -> Result<Selection, StoreError> {
    let Some(arg) = target else {
        return Ok(Selection::all(root));
    };
    let path = Path::new(arg);
    if path.is_dir() && !path.join(RUN_DB).is_file() {
        return Ok(Selection::all(path));
    }
    Ok(Selection {
        runs: vec![resolve_run(arg, root)?.display().to_string()],
        ..Selection::all(root)
    })
}

/// The run id a directory name carries (`<id>` or `<index>-<id>` in sweeps).
pub fn dir_id(dir: &Path) -> Option<&str> {
    let name = dir.file_name()?.to_str()?;
    Some(name.rsplit_once('-').map_or(name, |(_, id)| id))
}

/// `arg` as a run directory (or its run.db), if it names one.
fn as_run_dir(arg: &str) -> Option<PathBuf> {
    let path = Path::new(arg);
    if path.is_file() && path.file_name().is_some_and(|n| n == RUN_DB) {
        return Some(path.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    path.join(RUN_DB).is_file().then(|| path.to_path_buf())
}

fn pick_by_id(arg: &str, dirs: &[PathBuf], roots: &str) -> Result<PathBuf, StoreError> {
    let matches: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| !arg.is_empty() && dir_id(d).is_some_and(|id| id.starts_with(arg)))
        .collect();
    match matches.as_slice() {
        [] => Err(StoreError::NoSuchRun {
            arg: arg.to_string(),
            roots: roots.to_string(),
        }),
        [one] => Ok(one.to_path_buf()),
        [first, ..] if matches.iter().all(|d| dir_id(d) == dir_id(first)) => {
            Err(StoreError::SameId {
                id: dir_id(first).unwrap_or(arg).to_string(),
                dirs: matches.iter().map(|d| d.to_path_buf()).collect(),
            })
        }
        _ => Err(StoreError::AmbiguousRun {
            arg: arg.to_string(),
            candidates: matches
                .iter()
                .filter_map(|d| dir_id(d))
                .map(str::to_string)
                .collect(),
        }),
    }
}

/// Overlapping roots, or an id given twice, name a run twice.
fn dedup_dirs(dirs: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewRun, RunWriter, SweepMembership};

    fn run_in(root: &Path, name: &str, sweep: Option<&str>) -> RunWriter {
        let new = NewRun {
            name: name.into(),
            config_toml: format!("name = '{name}'\n"),
            overrides: vec![],
            experiment: None,
            command: vec!["esx".into()],
            sweep: sweep.map(|id| SweepMembership {
                id: id.into(),
                index: 0,
                swept: Default::default(),
            }),
            journal: None,
        };
        RunWriter::create(root, None, &new).unwrap()
    }

    #[test]
    fn ids_prefixes_dirs_sweeps_tags_and_filters_narrow_one_way() {
        let root = tempfile::tempdir().unwrap();
        let a = run_in(root.path(), "a", Some("sweepone"));
        let mut b = run_in(root.path(), "b", Some("sweepone"));
        let c = run_in(root.path(), "c", None);
        b.add_tags(&["best".to_string()]).unwrap();
        let names = |sel: &Selection| -> Vec<String> {
            sel.select()
                .unwrap()
                .runs
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        let all = Selection::all(root.path());
        assert_eq!(names(&all), ["a", "b", "c"]);
        let by_id = Selection {
            runs: vec![a.id()[..6].to_string(), c.dir().display().to_string()],
            ..all.clone()
        };
        assert_eq!(names(&by_id), ["a", "c"]);
        let sweep = Selection {
            sweep: Some("sweepo".into()),
            ..all.clone()
        };
        assert_eq!(names(&sweep), ["a", "b"]);
        let tagged = Selection {
            tags: vec!["best".into()],
            ..all.clone()
        };
        assert_eq!(names(&tagged), ["b"]);
        let filtered = Selection {
            filter: Some(Expr::parse("name!=b").unwrap()),
            ..sweep.clone()
        };
        assert_eq!(names(&filtered), ["a"]);
        // The same id twice, or a run both by id and by directory, is one run.
        let twice = Selection {
            runs: vec![a.id().to_string(), a.dir().display().to_string()],
            ..all.clone()
        };
        assert_eq!(names(&twice), ["a"]);
    }

    #[test]
    fn an_id_that_matches_nothing_or_several_and_an_empty_sweep_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let _a = run_in(root.path(), "a", None);
        let _b = run_in(root.path(), "b", None);
        let all = Selection::all(root.path());
        let err = Selection {
            runs: vec!["zzzz".into()],
            ..all.clone()
        }
        .select()
        .unwrap_err();
        assert!(matches!(err, StoreError::NoSuchRun { .. }), "{err}");
        assert!(err.to_string().contains("`zzzz`"), "{err}");
        // Run ids are hex; the empty prefix matches every run.
        let err = resolve_run("", root.path()).unwrap_err();
        assert!(matches!(err, StoreError::NoSuchRun { .. }), "{err}");
        let err = Selection {
            sweep: Some("nosweep".into()),
            ..all.clone()
        }
        .select()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no runs of sweep `nosweep` under {}", root.path().display())
        );
        let none = Selection {
            filter: Some(Expr::parse("name=zz").unwrap()),
            ..all
        };
        assert!(none.select().unwrap().runs.is_empty());
    }

    #[test]
    fn an_unreadable_run_db_is_left_out_and_reported() {
        let root = tempfile::tempdir().unwrap();
        let _a = run_in(root.path(), "a", None);
        let junk = root.path().join("junk");
        std::fs::create_dir(&junk).unwrap();
        std::fs::write(junk.join(RUN_DB), b"not a database at all, just some bytes").unwrap();
        let found = Selection::all(root.path()).select().unwrap();
        assert_eq!(found.runs.len(), 1);
        assert_eq!(found.unreadable.len(), 1);
        assert!(
            found.unreadable[0].to_string().contains("junk"),
            "{}",
            found.unreadable[0]
        );
    }
}
