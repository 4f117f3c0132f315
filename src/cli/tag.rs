//! `esx tag RUN TAG… [--remove]`: label a run, even while it trains.

use esx::store::query::read_run;
use esx::store::select::resolve_run_to_write;
use esx::store::tags::check_tag;
use esx::store::RunWriter;

use super::RunsDir;

/// Add tags to a run (or remove them); `--where tag=T` finds them
#[derive(clap::Args)]
pub struct Args {
    /// Run id (or unique prefix), or a run directory
    pub run: String,
    /// Tags: one word each
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// Remove these tags instead
    #[arg(long)]
    pub remove: bool,
    #[command(flatten)]
    pub runs: RunsDir,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    for tag in &args.tags {
        check_tag(tag)?;
    }
    let dir = resolve_run_to_write(&args.run, &args.runs.runs)?;
    let mut w = RunWriter::annotate(&dir)?;
    if args.remove {
        let absent = w.remove_tags(&args.tags)?;
        if !absent.is_empty() {
            eprintln!("esx: the run had no tag {}", absent.join(", "));
        }
    } else {
        w.add_tags(&args.tags)?;
    }
    w.close()?;
    let run = read_run(&dir)?;
    let tags = if run.tags.is_empty() {
        "no tags".to_string()
    } else {
        format!("tags {}", run.tags.join(" "))
    };
    println!("run {}: {tags}", run.id);
    Ok(())
}
