//! The metric columns of the runs and groups tables: which value of a run
//! each shows, and which way is better.

use crate::report::collect::ReportRun;

/// A metric column of the runs table.
pub(super) struct Column {
    pub title: &'static str,
    pub split: &'static str,
    pub key: &'static str,
    pub best: bool,
    pub higher_is_better: bool,
}

pub(super) const COLUMNS: &[Column] = &[
    Column {
        title: "best val IoU",
        split: "val",
        key: "iou",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val IoU",
        split: "val",
        key: "iou",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "best val AP50",
        split: "val",
        key: "ap50",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val AP50",
        split: "val",
        key: "ap50",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "best val SEG",
        split: "val",
        key: "seg",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val SEG",
        split: "val",
        key: "seg",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "tuned val AP50",
        split: "val",
        key: "ap50_tuned",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "tuned val SEG",
        split: "val",
        key: "seg_tuned",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "final train loss",
        split: "train",
        key: "loss",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final val loss",
        split: "val",
        key: "loss",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final inst",
        split: "train",
        key: "inst",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final var",
        split: "train",
        key: "var",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final seed",
        split: "train",
        key: "seed",
        best: false,
        higher_is_better: false,
    },
];

impl Column {
    /// Its heading, sorting ascending first where lower is better.
    pub fn th(&self) -> String {
        let asc = if self.higher_is_better {
            ""
        } else {
            " data-asc"
        };
        format!("<th{asc}>{}</th>", self.title)
    }

    /// The run's value in this column, if finite.
    pub fn value(&self, r: &ReportRun) -> Option<f64> {
        let v = if self.best {
            if self.higher_is_better {
                r.max(self.split, self.key)
            } else {
                r.min(self.split, self.key)
            }
        } else {
            r.last(self.split, self.key)
        };
        v.filter(|v| v.is_finite())
    }
}

/// The metric columns some run has a value for.
pub(super) fn present_columns(runs: &[ReportRun]) -> Vec<&'static Column> {
    COLUMNS
        .iter()
        .filter(|c| {
            runs.iter()
                .any(|r| r.info.summary(c.split, c.key).is_some())
        })
        .collect()
}
