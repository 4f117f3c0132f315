//! Ctrl-C and SIGTERM: the first asks training to stop at the next step
//! (checkpoint, mark interrupted); a second Ctrl-C exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Registers SIGINT and SIGTERM handlers for this process.
    pub fn install() -> std::io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            flag.clone(),
        )?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
        Ok(Interrupt(flag))
    }

    /// A flag nothing sets (library callers and tests).
    pub fn never() -> Interrupt {
        Interrupt(Arc::new(AtomicBool::new(false)))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks for a stop (tests, or a caller with its own signal handling).
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
