//! `esx show RUN [--json]`: everything a run recorded.

use esx::store::query::{events, images, read_run};
use esx::store::select::resolve_run;

use super::{print_json, RunsDir};

/// Show one run: identity, status, config, metric summary, images, events
#[derive(clap::Args)]
pub struct Args {
    /// Run id (or unique prefix), or a run directory
    pub run: String,
    #[command(flatten)]
    pub runs: RunsDir,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Write the run's pictures into DIR as epochNNN_KIND.png
    #[arg(long, value_name = "DIR")]
    pub images: Option<std::path::PathBuf>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let dir = resolve_run(&args.run, &args.runs.runs)?;
    let info = read_run(&dir)?;
    let images = images(&dir)?;
    let events = events(&dir)?;
    if let Some(out) = &args.images {
        let written = esx::store::export::write_images(&dir, out)?;
        eprintln!("wrote {} pictures to {}", written.len(), out.display());
    }
    if args.json {
        return print_json(&serde_json::json!({
            "run": info,
            "images": images,
            "events": events,
        }));
    }
    print!("{}", esx::view::run_details(&info, &images, &events));
    Ok(())
}
