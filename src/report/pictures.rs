//! The picture grid: one row per run, one column per kind of training
//! picture, all at one epoch; and each row's timeline, the other epochs it
//! recorded, as many as the page's size budget allows (best runs first).

use super::collect::ReportRun;
use super::ReportError;
use crate::store::query;

/// The columns, in the order training records them, with their headings.
pub const KINDS: [(&str, &str); 7] = [
    ("seed", "seed map"),
    ("sigma", "cluster radius (σ)"),
    ("offset_hsv", "offset direction"),
    ("offset_x", "offset x"),
    ("offset_y", "offset y"),
    ("embedding", "embedded pixels"),
    ("instances", "instances"),
];

pub struct PictureRow {
    /// Index of the run in the report.
    pub run: usize,
    /// The epoch shown (None: the run recorded no pictures).
    pub epoch: Option<i64>,
    /// PNG bytes per kind; None where that picture is missing.
    pub cells: Vec<Option<Vec<u8>>>,
    /// Every epoch the timeline has, the shown one included, ascending;
    /// empty when the run recorded one epoch of pictures or none fit.
    pub timeline: Vec<Frame>,
    /// Epochs with pictures the run recorded (the timeline may hold fewer).
    pub recorded: usize,
}

/// One epoch of a row's timeline.
pub struct Frame {
    pub epoch: i64,
    /// As `PictureRow::cells`; the shown epoch's frame holds none (the
    /// row's cells are that frame).
    pub cells: Vec<Option<Vec<u8>>>,
}

pub struct Pictures {
    /// The epoch asked for or chosen; None when the runs share none and
    /// each row shows its run's latest.
    pub epoch: Option<i64>,
    pub rows: Vec<PictureRow>,
}

/// Bytes of PNG the timelines of one page may add (base64 makes them 4/3
/// larger): with `esx bench report`'s 100 runs the page stays under 20 MB.
pub const TIMELINE_BUDGET: u64 = 3_500_000;

fn epochs(run: &ReportRun) -> Vec<i64> {
    let mut e: Vec<i64> = run.images.iter().map(|i| i.epoch).collect();
    e.sort_unstable();
    e.dedup();
    e
}

/// The latest epoch that every run with pictures has pictures of.
pub fn common_epoch(runs: &[ReportRun]) -> Option<i64> {
    let mut with = runs.iter().map(epochs).filter(|e| !e.is_empty());
    let first = with.next()?;
    let common: Vec<i64> = with.fold(first, |acc, e| {
        acc.into_iter()
            .filter(|x| e.binary_search(x).is_ok())
            .collect()
    });
    common.last().copied()
}

/// Reads the pictures of `runs` (indices into the report) at `epoch`, or at
/// the common epoch, or each run's latest.
pub fn load(
    runs: &[ReportRun],
    shown: &[usize],
    epoch: Option<i64>,
) -> Result<Pictures, ReportError> {
    if let Some(e) = epoch {
        // An epoch no shown run has pictures of would show none, silently.
        let recorded: std::collections::BTreeSet<i64> =
            shown.iter().flat_map(|&i| epochs(&runs[i])).collect();
        if !recorded.contains(&e) {
            let list = recorded
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ReportError::NoPictures {
                epoch: e,
                recorded: if list.is_empty() { "none".into() } else { list },
            });
        }
    }
    let epoch = epoch.or_else(|| common_epoch(runs));
    let mut rows = Vec::with_capacity(shown.len());
    let mut budget = TIMELINE_BUDGET;
    for (n, &i) in shown.iter().enumerate() {
        let run = &runs[i];
        let at = epoch.or_else(|| epochs(run).last().copied());
        let cells = match at {
            Some(e) => cells_at(run, e)?,
            None => vec![None; KINDS.len()],
        };
        let any = cells.iter().any(Option::is_some);
        let at = at.filter(|_| any);
        let recorded = epochs(run);
        let share = budget / (shown.len() - n) as u64;
        let others = timeline_epochs(run, &recorded, at, share);
        let mut timeline = Vec::new();
        if !others.is_empty() {
            for e in recorded.iter().copied() {
                if Some(e) == at {
                    timeline.push(Frame {
                        epoch: e,
                        cells: vec![None; KINDS.len()],
                    });
                } else if others.contains(&e) {
                    let cells = cells_at(run, e)?;
                    let bytes: usize = cells.iter().flatten().map(Vec::len).sum();
                    budget = budget.saturating_sub(bytes as u64);
                    timeline.push(Frame { epoch: e, cells });
                }
            }
        }
        rows.push(PictureRow {
            run: i,
            epoch: at,
            cells,
            timeline,
            recorded: recorded.len(),
        });
    }
    Ok(Pictures { epoch, rows })
}

/// The image id of each kind at epoch `e` (the latest, if written twice).
fn ids_at(run: &ReportRun, e: i64) -> Vec<Option<&query::ImageInfo>> {
    KINDS
        .iter()
        .map(|(kind, _)| {
            run.images
                .iter()
                .rev()
                .find(|im| im.epoch == e && im.kind == *kind)
        })
        .collect()
}

/// The pictures of `run` at epoch `e`; none where the run was deleted since
/// its curves were read (the report goes on without them).
fn cells_at(run: &ReportRun, e: i64) -> Result<Vec<Option<Vec<u8>>>, ReportError> {
    let ids = ids_at(run, e);
    let found: Vec<i64> = ids.iter().flatten().map(|im| im.id).collect();
    let mut pngs = match query::image_pngs(&run.info.dir, &found) {
        Ok(pngs) => pngs.into_iter(),
        Err(_) if super::collect::vanished(&run.info.dir) => return Ok(vec![None; ids.len()]),
        Err(e) => return Err(e.into()),
    };
    Ok(ids.iter().map(|id| id.and_then(|_| pngs.next())).collect())
}

/// The epochs besides `shown` a row's timeline gets within `share` bytes:
/// all of them when they fit, else as many as fit, evenly spread over the
/// run (its first and last epochs first).
fn timeline_epochs(run: &ReportRun, recorded: &[i64], shown: Option<i64>, share: u64) -> Vec<i64> {
    let others: Vec<i64> = recorded
        .iter()
        .copied()
        .filter(|&e| Some(e) != shown)
        .collect();
    if shown.is_none() || others.is_empty() {
        return Vec::new();
    }
    let bytes = |e: i64| -> u64 {
        ids_at(run, e)
            .iter()
            .flatten()
            .map(|im| im.bytes as u64)
            .sum()
    };
    let each = others.iter().map(|&e| bytes(e)).max().unwrap_or(0).max(1);
    let fit = (share / each) as usize;
    if fit >= others.len() {
        return others;
    }
    if fit == 0 {
        return Vec::new();
    }
    if fit == 1 {
        return vec![others[0]];
    }
    let last = others.len() - 1;
    let mut picked: Vec<i64> = (0..fit).map(|k| others[k * last / (fit - 1)]).collect();
    picked.dedup();
    picked
}
