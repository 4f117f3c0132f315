//! One file per subcommand: its arguments and a call into the library.

mod bench;
mod config;
mod eval;
mod export;
mod import;
mod ls;
mod model_args;
mod note;
mod predict;
mod prepare;
mod report;
mod run;
mod select_args;
mod show;
mod sweep;
mod synth;
mod tag;
mod tune;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train, sweep and compare EmbedSeg cell segmentation models.
#[derive(Parser)]
#[command(name = "esx", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    Run(run::Args),
    Sweep(Box<sweep::Args>),
    Report(report::Args),
    Config(config::Args),
    Ls(ls::Args),
    Show(show::Args),
    Watch(watch::Args),
    Tag(tag::Args),
    Note(note::Args),
    Export(export::Args),
    Synth(synth::Args),
    Prepare(prepare::Args),
    Predict(predict::Args),
    Eval(eval::Args),
    Tune(tune::Args),
    Import(import::Args),
    Bench(bench::Args),
}

impl Command {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(a) => return run::exec(a),
            Command::Sweep(a) => return sweep::exec(*a),
            Command::Report(a) => report::exec(a),
            Command::Config(a) => config::exec(a),
            Command::Ls(a) => ls::exec(a),
            Command::Tag(a) => tag::exec(a),
            Command::Note(a) => note::exec(a),
            Command::Show(a) => show::exec(a),
            Command::Watch(a) => watch::exec(a),
            Command::Export(a) => export::exec(a),
            Command::Synth(a) => synth::exec(a),
            Command::Prepare(a) => prepare::exec(a),
            Command::Predict(a) => predict::exec(a),
            Command::Eval(a) => eval::exec(a),
            Command::Tune(a) => tune::exec(a),
            Command::Import(a) => import::exec(a),
            Command::Bench(a) => bench::exec(a),
        }?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--runs DIR`: the store root every run-reading command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct RunsDir {
    /// Runs directory (the store root)
    #[arg(
        long = "runs",
        value_name = "DIR",
        default_value = "runs",
        env = "ESX_RUNS"
    )]
    pub runs: PathBuf,
}

impl RunsDir {
    /// The positional ROOT if given, else --runs.
    pub fn or(&self, positional: Option<PathBuf>) -> PathBuf {
        positional.unwrap_or_else(|| self.runs.clone())
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses command-line overrides, naming the one at fault.
pub fn parse_overrides(texts: &[String]) -> anyhow::Result<Vec<esx::config::Override>> {
    Ok(texts
        .iter()
        .map(|t| esx::config::Override::parse(t))
        .collect::<Result<_, _>>()?)
}

/// A stack's anisotropy: z spacing over xy spacing, a positive number.
pub fn parse_anisotropy(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(a) if a.is_finite() && a > 0.0 => Ok(a),
        _ => Err(format!(
            "`{s}`: expected a positive number (z spacing over xy spacing)"
        )),
    }
}

/// Parses a config enum from its config spelling (`approx-medoid`, `GT`, …).
pub fn parse_enum<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|e| e.to_string())
}
