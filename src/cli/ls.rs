//! `esx ls [ROOT] [--where EXPR] [--sort KEY] [--sweep ID] [--json]`.

use std::path::PathBuf;

use esx::store::filter::{sort_runs, Expr};
use esx::store::query::list_runs;

use super::{print_json, RunsDir};

/// List runs, newest last
#[derive(clap::Args)]
pub struct Args {
    /// Runs directory (default: --runs)
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub runs: RunsDir,
    /// Keep runs matching EXPR, e.g. 'params.lr<1e-3 and status=completed'
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Sort by a field (created, name, params.lr, max.val/iou…); prefix - for descending
    #[arg(
        long,
        value_name = "KEY",
        default_value = "created",
        allow_hyphen_values = true
    )]
    pub sort: String,
    /// Only the runs of this sweep (id or prefix)
    #[arg(long, value_name = "ID")]
    pub sweep: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let root = args.runs.or(args.root);
    let filter = args.filter.as_deref().map(Expr::parse).transpose()?;
    let mut runs = Vec::new();
    for result in list_runs(&root)? {
        match result {
            Ok(run) => runs.push(run),
            Err(e) => eprintln!("esx: warning: skipped {e}"),
        }
    }
    runs.retain(|r| {
        let in_sweep = match &args.sweep {
            Some(s) => r
                .sweep_id
                .as_deref()
                .is_some_and(|id| id.starts_with(s.as_str())),
            None => true,
        };
        in_sweep && filter.as_ref().is_none_or(|f| f.matches(r))
    });
    sort_runs(&mut runs, &args.sort);
    if args.json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        if args.sweep.is_some() || filter.is_some() {
            eprintln!("no run under {} matches", root.display());
        } else {
            eprintln!("no runs under {}", root.display());
        }
        return Ok(());
    }
    print!("{}", esx::view::runs_table(&runs));
    Ok(())
}
