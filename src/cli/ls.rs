//! `esx ls [ROOT] [--where EXPR] [--sort KEY] [--sweep ID] [--json]`.

use std::path::PathBuf;

use esx::store::filter::sort_runs;

use super::select_args::SelectArgs;
use super::{print_json, RunsDir};

/// List runs, newest last
#[derive(clap::Args)]
pub struct Args {
    /// Runs directory (default: --runs)
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub runs: RunsDir,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Sort by a field (created, name, params.lr, max.val/iou…); prefix - for descending
    #[arg(
        long,
        value_name = "KEY",
        default_value = "created",
        allow_hyphen_values = true
    )]
    pub sort: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let root = args.runs.or(args.root);
    let selection = args.select.selection(vec![root.clone()], vec![])?;
    let found = selection.select()?;
    for e in &found.unreadable {
        eprintln!("esx: warning: skipped {e}");
    }
    for e in found.copies() {
        eprintln!("esx: warning: {}", esx::text::printable(&e.to_string()));
    }
    let mut runs = found.runs;
    sort_runs(&mut runs, &args.sort);
    if args.json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        eprintln!("{}", selection.nothing_found());
        return Ok(());
    }
    print!("{}", esx::view::runs_table(&runs));
    Ok(())
}
