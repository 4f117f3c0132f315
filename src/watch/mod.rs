//! `esx watch`: follow runs while they train, in the terminal. Every refresh
//! reads the run stores afresh and read-only (a reader never blocks a
//! writer), so new runs and new epochs appear by themselves; `--once` draws
//! the same frame as plain text.

mod app;
mod board;
mod draw;
mod view;

use std::fmt;

pub use app::{interactive, snapshot};
pub use board::{Board, Row, SweepProgress};
pub use view::View;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--metric {0}: expected SPLIT/KEY, e.g. val/iou or train/loss")]
    BadMetric(String),
    #[error("--metric {metric}: no run records it; these do: {known}")]
    UnknownMetric { metric: String, known: String },
    #[error("esx watch needs a terminal and stdout is not one; use --once for a plain-text frame")]
    NoTerminal,
    #[error("--size {0}: expected COLSxROWS, at least 20x5, e.g. 100x30")]
    BadSize(String),
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// A metric as SPLIT/KEY (`val/iou`, `step/loss`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Metric {
    pub split: String,
    pub key: String,
}

impl Metric {
    pub fn new(split: &str, key: &str) -> Metric {
        Metric {
            split: split.into(),
            key: key.into(),
        }
    }

    pub fn parse(text: &str) -> Result<Metric, WatchError> {
        match text.split_once('/') {
            Some((s, k)) if !s.is_empty() && !k.is_empty() && !k.contains('/') => {
                Ok(Metric::new(s, k))
            }
            _ => Err(WatchError::BadMetric(crate::text::shorten(text, 40))),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.split, self.key)
    }
}

/// `COLSxROWS`.
pub fn parse_size(text: &str) -> Result<(u16, u16), WatchError> {
    let bad = || WatchError::BadSize(crate::text::shorten(text, 20));
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u16, u16) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w < 20 || h < 5 {
        return Err(bad());
    }
    Ok((w, h))
}
