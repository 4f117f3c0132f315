//! What the user has chosen to look at (cursor, charted runs, metric,
//! scale, smoothing) and the keys that change it.

use std::collections::BTreeSet;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::board::{curves, Board};
use super::Metric;

/// The smoothing weights `s` steps through (EMA on the past, as the report's).
pub const SMOOTHING: [f64; 4] = [0.0, 0.6, 0.9, 0.99];

/// What the user looks at; everything else comes from the board.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The metric asked for (None: the board's default).
    pub metric: Option<Metric>,
    /// The run under the cursor, by id; None in a plain-text frame.
    pub cursor: Option<String>,
    /// Runs picked for the chart; none picked charts them all.
    pub charted: BTreeSet<String>,
    pub log_y: bool,
    /// Index into SMOOTHING.
    pub smoothing: usize,
    /// What the runs are: the roots, as the header names them.
    pub roots: String,
    /// The last refresh's error (a root deleted while watched).
    pub message: Option<String>,
}

pub(super) enum Action {
    Quit,
    Changed,
    Nothing,
}

impl View {
    pub fn metric(&self, board: &Board) -> Metric {
        self.metric
            .clone()
            .unwrap_or_else(|| board.default_metric())
    }

    /// Row indices of the runs in the chart.
    pub fn charted_rows(&self, board: &Board) -> Vec<usize> {
        let picked: Vec<usize> = (0..board.rows.len())
            .filter(|&i| self.charted.contains(&board.rows[i].info.id))
            .collect();
        if picked.is_empty() {
            (0..board.rows.len()).collect()
        } else {
            picked
        }
    }

    pub fn cursor_row(&self, board: &Board) -> Option<usize> {
        self.cursor.as_deref().and_then(|id| board.index_of(id))
    }

    /// After a refresh: the cursor stays on its run, or lands on the first.
    pub(super) fn settle(&mut self, board: &Board) {
        if self.cursor_row(board).is_none() {
            self.cursor = board.rows.first().map(|r| r.info.id.clone());
        }
        self.charted.retain(|id| board.index_of(id).is_some());
    }

    pub(super) fn key(&mut self, key: KeyEvent, board: &Board) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let n = board.rows.len();
        let at = self.cursor_row(board).unwrap_or(0);
        let move_to = |view: &mut View, i: usize| {
            view.cursor = board.rows.get(i).map(|r| r.info.id.clone());
        };
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Char('c') if ctrl => return Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => move_to(self, at.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') if n > 0 => move_to(self, (at + 1).min(n - 1)),
            KeyCode::PageUp => move_to(self, at.saturating_sub(10)),
            KeyCode::PageDown if n > 0 => move_to(self, (at + 10).min(n - 1)),
            KeyCode::Home | KeyCode::Char('g') => move_to(self, 0),
            KeyCode::End | KeyCode::Char('G') if n > 0 => move_to(self, n - 1),
            KeyCode::Char(' ') | KeyCode::Enter => {
                if let Some(id) = self.cursor.clone() {
                    if !self.charted.remove(&id) {
                        self.charted.insert(id);
                    }
                }
            }
            KeyCode::Char('a') => {
                if self.charted.is_empty() {
                    self.charted = board.rows.iter().map(|r| r.info.id.clone()).collect();
                } else {
                    self.charted.clear();
                }
            }
            KeyCode::Char('m') | KeyCode::Tab => self.step_metric(board, 1),
            KeyCode::Char('M') | KeyCode::BackTab => self.step_metric(board, -1),
            KeyCode::Char('l') => self.log_y = !self.log_y,
            KeyCode::Char('s') => self.smoothing = (self.smoothing + 1) % SMOOTHING.len(),
            KeyCode::Char('r') => return Action::Changed,
            _ => return Action::Nothing,
        }
        Action::Changed
    }

    fn step_metric(&mut self, board: &Board, by: isize) {
        let all = &board.metrics;
        if all.is_empty() {
            return;
        }
        let now = self.metric(board);
        let at = all.iter().position(|m| *m == now).unwrap_or(0) as isize;
        let next = (at + by).rem_euclid(all.len() as isize) as usize;
        self.metric = Some(all[next].clone());
    }
}

/// The curves the chart draws, in the order of `View::charted_rows`.
pub fn charted_curves(board: &Board, view: &View) -> Vec<Vec<(f64, f64)>> {
    let dirs: Vec<&std::path::Path> = view
        .charted_rows(board)
        .into_iter()
        .map(|i| board.rows[i].info.dir.as_path())
        .collect();
    curves(&dirs, &view.metric(board))
}
