//! `esx bench …`: print throughput figures.

use super::print_json;

/// Measure throughput and print figures (benchmarks, not tests)
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub which: Which,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum Which {
    /// Run store: metric ingest, ls over many runs, config end to end
    Store {
        /// Scalars to ingest
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Runs to create and list
        #[arg(long = "count", default_value_t = 1000)]
        count: usize,
    },
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let figures = match args.which {
        Which::Store { rows, count } => esx::bench::store::run(&esx::bench::store::StoreBench {
            rows,
            runs: count,
            exe: std::env::current_exe()?,
        })?,
    };
    if args.json {
        return print_json(&figures);
    }
    for f in &figures {
        println!("{}", f.line());
    }
    Ok(())
}
