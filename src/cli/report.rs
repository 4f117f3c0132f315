//! `esx report ROOT… [--out FILE] [--runs ID…] [--sweep ID] [--where EXPR]
//! [--smooth A] [--epoch E] [--format html|png]`: one HTML page comparing runs.

use std::path::PathBuf;
use std::time::Instant;

use esx::report::groups::{Band, Grouping};
use esx::report::ReportOptions;

use super::print_json;
use super::select_args::SelectArgs;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The page alone
    Html,
    /// The page, and every chart as a PNG beside it
    Png,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum BandArg {
    /// From the lowest to the highest run
    Minmax,
    /// The mean ± one standard deviation
    Std,
}

/// Compare runs in one self-contained HTML page: table, curves, sweep plots, pictures, config diff
#[derive(clap::Args)]
pub struct Args {
    /// Runs directories to scan (default: $ESX_RUNS or runs/)
    pub roots: Vec<PathBuf>,
    /// Where to write the page (default: FIRST_ROOT/report.html)
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only these runs (ids or unique prefixes; repeat or separate by commas)
    #[arg(long = "runs", visible_alias = "run", value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub run_ids: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// EMA weight for the per-step training curves, 0 ≤ A < 1 (0.9: smooth)
    #[arg(long, value_name = "A", default_value_t = 0.0)]
    pub smooth: f64,
    /// Epoch of the pictures (default: the latest epoch every run has)
    #[arg(long, value_name = "E")]
    pub epoch: Option<i64>,
    /// Picture rows at most, best runs first
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub pictures: usize,
    /// Group runs with equal values of these parameters (default: runs that
    /// differ only in `seed`); `none`: no groups
    #[arg(long, value_name = "KEY[,KEY…]|none")]
    pub group_by: Option<String>,
    /// What a group's band spans around its mean
    #[arg(long, value_enum, default_value = "minmax")]
    pub band: BandArg,
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Print what was written as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let roots = if args.roots.is_empty() {
        vec![std::env::var_os("ESX_RUNS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("runs"))]
    } else {
        args.roots
    };
    let out = args.out.unwrap_or_else(|| roots[0].join("report.html"));
    let opts = ReportOptions {
        selection: args.select.selection(roots, args.run_ids)?,
        out,
        smooth: args.smooth,
        epoch: args.epoch,
        png: args.format == Format::Png,
        picture_rows: args.pictures,
        grouping: match &args.group_by {
            Some(text) => Grouping::parse(text)?,
            None => Grouping::Seeds,
        },
        band: match args.band {
            BandArg::Minmax => Band::MinMax,
            BandArg::Std => Band::Std,
        },
    };
    let start = Instant::now();
    let outcome = esx::report::write(&opts, &|w| eprintln!("esx: warning: {w}"))?;
    if args.json {
        return print_json(&outcome);
    }
    println!(
        "wrote {} ({} runs, {} charts, {} picture rows, {:.1} MB) in {:.2} s",
        outcome.out.display(),
        outcome.runs,
        outcome.charts,
        outcome.picture_rows,
        outcome.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    for png in &outcome.pngs {
        println!("wrote {}", png.display());
    }
    Ok(())
}
