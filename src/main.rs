//! The `esx` binary: parse arguments, run one subcommand, print errors on one line.

mod cli;

// Large tensors are allocated and freed every step; mimalloc keeps the pages
// instead of returning them to the kernel and faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: libmimalloc-sys does not name it; in
/// mimalloc's option enum (v2 and v3) it comes just before
/// `use_numa_nodes`, which it names (see the test below).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the process: by default mimalloc hands the pages
/// of freed tensors back after 10 ms and the next step faults them in again,
/// each 2 MB page zeroed by the kernel (a fifth of inference time at 512²
/// went to clear_page). Training and inference free and reallocate the same
/// sizes every step, so the memory is reused, not grown.
fn keep_freed_memory() {
    // SAFETY: setting an option is allowed at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Errors are one line: candle (and anyhow) append a captured backtrace to
/// an error's message whenever RUST_BACKTRACE is set, as it is on many
/// machines. RUST_LIB_BACKTRACE=0 stops that capture for library errors
/// while panics keep their backtraces; a user's own setting wins.
fn one_line_errors() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in main, before any thread starts.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") }
    }
}

/// candle's CPU ops (the elementwise ones esx still leaves to it, e.g. the
/// gradient sums of backprop) run on a pool of its own beside rayon's, whose
/// threads spin 25,000 times after every op before they sleep: on two cores
/// that spinning takes a core from the rayon workers of the next convolution
/// (measured: backward 12 % faster with a limit of 1). A user's own setting wins.
fn quiet_candle_pool() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: called first thing in main, before any thread starts.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1") }
    }
}

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`esx ls | head`) like other Unix tools.
    // SAFETY: restoring the default disposition of SIGPIPE before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    one_line_errors();
    quiet_candle_pool();
    keep_freed_memory();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("esx: error: {}", usage_error_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match cli.command.exec() {
        Ok(code) => code,
        Err(e) => {
            let causes = e.chain().map(|c| c.to_string());
            eprintln!("esx: error: {}", esx::text::one_line(causes, 400));
            ExitCode::FAILURE
        }
    }
}

/// clap's usage error on one line: its message, the values it suggests and
/// the usage, without the pointer to --help.
fn usage_error_line(rendered: &str) -> String {
    let mut message = Vec::new();
    let mut usage = None;
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_string());
        } else if !line.starts_with("For more information") {
            message.push(
                line.strip_prefix("error:")
                    .unwrap_or(line)
                    .trim()
                    .to_string(),
            );
        }
    }
    let mut text = message.join(" ");
    if let Some(u) = usage {
        text += &format!(" (usage: {u})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fit_on_one_line() {
        let rendered = "error: invalid value 'bayes' for '--method <METHOD>'\n  [possible values: grid, random, tpe]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_line(rendered),
            "invalid value 'bayes' for '--method <METHOD>' [possible values: grid, random, tpe]"
        );
        let rendered = "error: the following required arguments were not provided:\n  <FILE>\n\nUsage: esx run <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_line(rendered),
            "the following required arguments were not provided: <FILE> (usage: esx run <FILE>)"
        );
    }

    #[test]
    fn purge_delay_is_the_option_before_use_numa_nodes() {
        assert_eq!(
            libmimalloc_sys::mi_option_use_numa_nodes - 1,
            MI_OPTION_PURGE_DELAY
        );
        keep_freed_memory();
        // SAFETY: reading an option is allowed at any time.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
