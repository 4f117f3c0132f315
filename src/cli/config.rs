//! `esx config FILE [OVERRIDES…] [--json]`: print the resolved configuration.

use std::path::PathBuf;

use super::{parse_overrides, print_json};

/// Compose an experiment file with overrides and print the resolved config
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (TOML)
    pub file: PathBuf,
    /// Overrides: key=value, +key=value, ++key=value, ~key, group=option
    pub overrides: Vec<String>,
    /// Print JSON (config, files layered, overrides)
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let overrides = parse_overrides(&args.overrides)?;
    let composed = esx::config::compose(&args.file, &overrides, false)?;
    if args.json {
        return print_json(&serde_json::json!({
            "config": composed.config,
            "files": composed.files,
            "overrides": composed.overrides,
        }));
    }
    for f in &composed.files {
        println!("# layered: {}", f.display());
    }
    for o in &composed.overrides {
        println!("# override: {o}");
    }
    print!("{}", composed.to_toml());
    Ok(())
}
