//! `esx export RUN|ROOT --format csv|json [--out FILE]`: metrics for scripts.

use std::path::PathBuf;

use anyhow::Context;
use esx::store::query::export_rows;
use esx::store::select::resolve_targets;

use super::select_args::SelectArgs;
use super::RunsDir;

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum Format {
    Csv,
    Json,
}

/// Export the metrics of one run or of every run under a root
#[derive(clap::Args)]
pub struct Args {
    /// A run (id, prefix or directory) or a runs directory (default: --runs)
    pub target: Option<String>,
    #[command(flatten)]
    pub runs: RunsDir,
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let target = resolve_targets(args.target.as_deref(), &args.runs.runs)?;
    let selection = args.select.selection(target.roots, target.runs)?;
    let found = selection.select()?;
    for e in &found.unreadable {
        eprintln!("esx: warning: skipped {e}");
    }
    let rows = export_rows(&found.runs)?;
    let text = match args.format {
        Format::Csv => esx::view::metrics_csv(&rows),
        Format::Json => {
            let objects: Vec<_> = rows
                .iter()
                .map(|(run, m)| {
                    serde_json::json!({"run": run, "step": m.step, "epoch": m.epoch,
                        "split": m.split, "key": m.key, "value": m.value, "wall": m.wall})
                })
                .collect();
            serde_json::to_string_pretty(&objects)? + "\n"
        }
    };
    match args.out {
        Some(path) => esx::output::write(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}
