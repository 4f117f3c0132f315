//! The watch loop: the board read again every refresh, keys handed to the
//! view, and the two ways out — an interactive terminal or one plain-text
//! frame.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::Terminal;

use super::board::Board;
use super::view::{charted_curves, Action, View};
use super::{draw, WatchError};
use crate::store::select::Selection;

/// How often the run stores are read again.
const REFRESH: Duration = Duration::from_secs(1);

/// One frame of `cols`×`rows` as plain text, trailing blanks trimmed.
pub fn snapshot(board: &Board, view: &View, cols: u16, rows: u16) -> String {
    let curves = charted_curves(board, view);
    let mut terminal = match Terminal::new(TestBackend::new(cols, rows)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    if let Err(never) = terminal.draw(|f| draw::frame(f, board, view, &curves)) {
        match never {}
    }
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..rows {
        let line: String = (0..cols).map(|x| buffer[(x, y)].symbol()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Follows the selection in the terminal until `q`. Errors that can be
/// known beforehand (no terminal, no such root, an unknown metric) come
/// before the terminal is touched; the terminal is restored on every way out.
pub fn interactive(selection: &Selection, mut view: View) -> Result<(), WatchError> {
    if !std::io::stdout().is_terminal() {
        return Err(WatchError::NoTerminal);
    }
    let mut board = Board::load(selection)?;
    if let Some(m) = &view.metric {
        board.check_metric(m)?;
    }
    view.settle(&board);
    let mut terminal = ratatui::try_init()?;
    let result = follow(&mut terminal, selection, &mut board, &mut view);
    ratatui::restore();
    result
}

fn follow(
    terminal: &mut ratatui::DefaultTerminal,
    selection: &Selection,
    board: &mut Board,
    view: &mut View,
) -> Result<(), WatchError> {
    let mut loaded = Instant::now();
    let mut curves = charted_curves(board, view);
    loop {
        terminal.draw(|f| draw::frame(f, board, view, &curves))?;
        let wait = REFRESH.saturating_sub(loaded.elapsed());
        let mut changed = false;
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => match view.key(k, board) {
                    Action::Quit => return Ok(()),
                    Action::Changed => changed = true,
                    Action::Nothing => {}
                },
                _ => {}
            }
        }
        if loaded.elapsed() >= REFRESH {
            match Board::load(selection) {
                Ok(fresh) => {
                    *board = fresh;
                    view.message = None;
                }
                Err(e) => view.message = Some(e.to_string()),
            }
            view.settle(board);
            loaded = Instant::now();
            changed = true;
        }
        if changed {
            curves = charted_curves(board, view);
        }
    }
}
