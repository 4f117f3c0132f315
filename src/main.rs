//! The `esx` binary: parse arguments, run one subcommand, print errors on one line.

mod cli;

// Large tensors are allocated and freed every step; mimalloc keeps the pages
// instead of returning them to the kernel and faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`esx ls | head`) like other Unix tools.
    // SAFETY: restoring the default disposition of SIGPIPE before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    match cli.command.exec() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("esx: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
