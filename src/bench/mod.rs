//! Throughput benchmarks behind `esx bench`: they print figures, they do not
//! pass or fail. Each returns its measurements for the command to print.

pub mod data;
pub mod parity;
pub mod predict;
pub mod report;
pub mod search;
pub mod sides;
pub mod store;
pub mod sweep;
pub mod train;
pub mod trajectory;

use std::time::{Duration, Instant};

use serde::Serialize;

/// One measured figure and the target it is judged against, if any.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub target: Option<String>,
    pub detail: String,
}

impl Figure {
    /// A measurement that could not be made: NaN, and why.
    pub fn failed(name: String, why: &dyn std::fmt::Display) -> Figure {
        Figure {
            name,
            value: f64::NAN,
            unit: String::new(),
            target: None,
            detail: format!("FAILED: {}", crate::text::one_line([why.to_string()], 300)),
        }
    }

    /// Whether this figure says a check failed or a measurement could not
    /// be made (its detail starts with FAILED).
    pub fn is_failure(&self) -> bool {
        self.detail.starts_with("FAILED")
    }

    pub fn line(&self) -> String {
        let target = self
            .target
            .as_ref()
            .map(|t| format!("  (target {t})"))
            .unwrap_or_default();
        format!(
            "{:<34} {:>12} {:<8}{}  {}",
            self.name,
            fmt_value(self.value),
            self.unit,
            target,
            self.detail
        )
    }
}

fn fmt_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Runs `f` `n` times and returns the median duration.
pub fn median_time(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
