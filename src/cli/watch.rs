//! `esx watch [ROOT] [--sweep ID] [--where EXPR] [--metric SPLIT/KEY] [--once]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use esx::watch::{parse_size, Board, Metric, View};

use super::select_args::SelectArgs;
use super::RunsDir;

/// Follow runs live in the terminal: runs table, sweep progress, a chart
#[derive(clap::Args)]
pub struct Args {
    /// Runs directory (default: --runs)
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub runs: RunsDir,
    /// Only these runs (ids or unique prefixes; repeat or separate by commas)
    #[arg(long = "run", value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub run_ids: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The metric to chart, as SPLIT/KEY (default: the objective, val/iou)
    #[arg(long, value_name = "SPLIT/KEY")]
    pub metric: Option<String>,
    /// Print one frame as plain text and exit
    #[arg(long)]
    pub once: bool,
    /// The frame's size for --once (default: the terminal's, else 100x30)
    #[arg(long, value_name = "COLSxROWS", requires = "once")]
    pub size: Option<String>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let root = args.runs.or(args.root);
    let selection = args.select.selection(vec![root.clone()], args.run_ids)?;
    let view = View {
        metric: args.metric.as_deref().map(Metric::parse).transpose()?,
        roots: selection.roots_text(),
        ..View::default()
    };
    if !args.once {
        return Ok(esx::watch::interactive(&selection, view)?);
    }
    let (cols, rows) = match &args.size {
        Some(s) => parse_size(s)?,
        None => terminal_size().unwrap_or((100, 30)),
    };
    let board = Board::load(&selection)?;
    if let Some(m) = &view.metric {
        board.check_metric(m)?;
    }
    for e in &board.unreadable {
        eprintln!("esx: warning: skipped {e}");
    }
    if board.rows.is_empty() {
        eprintln!("{}", selection.nothing_found());
        return Ok(());
    }
    print!("{}", esx::watch::snapshot(&board, &view, cols, rows));
    Ok(())
}

fn terminal_size() -> Option<(u16, u16)> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    ratatui::crossterm::terminal::size().ok()
}
