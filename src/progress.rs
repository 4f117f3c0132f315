//! The reporting handle library code is given: progress bars and warnings go
//! through it, so only the binary decides what reaches the terminal.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Reporter {
    show_bars: bool,
    current: Mutex<Option<ProgressBar>>,
    warnings: Mutex<Vec<String>>,
    print_warnings: bool,
    print_notes: bool,
}

impl Reporter {
    /// Bars on stderr when it is a terminal and not `quiet`; warnings always printed.
    pub fn terminal(quiet: bool) -> Reporter {
        Reporter {
            show_bars: !quiet && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            print_warnings: true,
            print_notes: !quiet,
        }
    }

    /// Prints nothing; warnings are kept for the caller (tests, library users).
    pub fn silent() -> Reporter {
        Reporter {
            show_bars: false,
            current: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            print_warnings: false,
            print_notes: false,
        }
    }

    /// Starts a counted stage; returns its bar (hidden when bars are off).
    pub fn stage(&self, label: &str, total: u64) -> ProgressBar {
        let bar = if self.show_bars {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        *self.current.lock().expect("progress lock") = Some(bar.clone());
        bar
    }

    /// A bar with a custom template (training shows loss and images/s).
    pub fn custom(&self, total: u64, template: &str) -> ProgressBar {
        let bar = if self.show_bars {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        *self.current.lock().expect("progress lock") = Some(bar.clone());
        bar
    }

    /// A line for the user: printed above any bar, and kept.
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        if self.print_warnings {
            let line = format!("esx: warning: {}", crate::text::printable(&message));
            match &*self.current.lock().expect("progress lock") {
                Some(bar) if !bar.is_hidden() => bar.suspend(|| eprintln!("{line}")),
                _ => eprintln!("{line}"),
            }
        }
        self.warnings.lock().expect("progress lock").push(message);
    }

    /// An informational line (not a warning), shown unless quiet.
    pub fn note(&self, message: impl AsRef<str>) {
        if self.print_notes {
            match &*self.current.lock().expect("progress lock") {
                Some(bar) if !bar.is_hidden() => {
                    bar.suspend(|| eprintln!("{}", crate::text::printable(message.as_ref())))
                }
                _ => eprintln!("{}", crate::text::printable(message.as_ref())),
            }
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("progress lock").clone()
    }
}
