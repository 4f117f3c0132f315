//! The picture grid: one row per run, one column per kind of training
//! picture, all at one epoch.

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
}

pub struct Pictures {
    /// The epoch asked for or chosen; None when the runs share none and
    /// each row shows its run's latest.
    pub epoch: Option<i64>,
    pub rows: Vec<PictureRow>,
}

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
    for &i in shown {
        let run = &runs[i];
        let at = epoch.or_else(|| epochs(run).last().copied());
        let ids: Vec<Option<i64>> = KINDS
            .iter()
            .map(|(kind, _)| {
                let e = at?;
                let im = run
                    .images
                    .iter()
                    .rev()
                    .find(|im| im.epoch == e && im.kind == *kind)?;
                Some(im.id)
            })
            .collect();
        let found: Vec<i64> = ids.iter().flatten().copied().collect();
        let mut pngs = query::image_pngs(&run.info.dir, &found)?.into_iter();
        let cells: Vec<Option<Vec<u8>>> =
            ids.iter().map(|id| id.and_then(|_| pngs.next())).collect();
        let any = cells.iter().any(Option::is_some);
        rows.push(PictureRow {
            run: i,
            epoch: at.filter(|_| any),
            cells,
        });
    }
    Ok(Pictures { epoch, rows })
}
