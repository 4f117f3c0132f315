//! `esx note RUN TEXT`: write down what a run taught you, even while it trains.

use esx::store::select::resolve_run_to_write;
use esx::store::RunWriter;

use super::RunsDir;

/// Add a note to a run (notes accumulate, each with its time)
#[derive(clap::Args)]
pub struct Args {
    /// Run id (or unique prefix), or a run directory
    pub run: String,
    /// The note
    pub text: String,
    #[command(flatten)]
    pub runs: RunsDir,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let text = args.text.trim();
    if text.is_empty() {
        anyhow::bail!("the note is empty");
    }
    let dir = resolve_run_to_write(&args.run, &args.runs.runs)?;
    let mut w = RunWriter::annotate(&dir)?;
    w.add_note(text)?;
    w.close()?;
    println!("noted on run {}", esx::store::query::read_run(&dir)?.id);
    Ok(())
}
