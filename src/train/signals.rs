//! Ctrl-C, SIGTERM and SIGUSR1: each asks training to stop at the next step
//! (checkpoint, mark interrupted); a second Ctrl-C exits at once. SIGUSR1 is
//! the warning Slurm sends before a job's time limit (`--signal=B:USR1@…`):
//! it also says the job should be requeued to go on; so does a SIGTERM that
//! Slurm sends to preempt the job (not one from scancel).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct Interrupt {
    stop: Arc<AtomicBool>,
    time_limit: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
}

impl Interrupt {
    /// Registers SIGINT, SIGTERM and SIGUSR1 handlers for this process.
    pub fn install() -> std::io::Result<Interrupt> {
        let it = Interrupt::never();
        signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            it.stop.clone(),
        )?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, it.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, it.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, it.terminated.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, it.time_limit.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, it.stop.clone())?;
        Ok(it)
    }

    /// A flag nothing sets (library callers and tests).
    pub fn never() -> Interrupt {
        Interrupt {
            stop: Arc::new(AtomicBool::new(false)),
            time_limit: Arc::new(AtomicBool::new(false)),
            terminated: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether the stop came from the time-limit warning (SIGUSR1).
    pub fn time_limit(&self) -> bool {
        self.time_limit.load(Ordering::Relaxed)
    }

    /// Whether a SIGTERM came (scancel, a preemption, a launcher passing
    /// its own on).
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::Relaxed)
    }

    /// Asks for a stop (tests, or a caller with its own signal handling).
    pub fn request(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
