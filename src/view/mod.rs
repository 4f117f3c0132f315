//! Text renderings for the terminal: aligned tables, run details, CSV.
//! Library code never prints; commands print what these return.

mod infer;
mod runs;
mod sweep;
mod table;

pub use infer::{imported, predictions, scores, tuning};
pub use runs::{epoch_line, lineage, metrics_csv, run_details, run_summary, runs_table};
pub use sweep::{local_launcher_line, sweep_plan, sweep_summary, tpe_preview};
pub use table::Table;

/// A Unix time as local `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(secs: f64) -> String {
    chrono::DateTime::from_timestamp(secs.floor() as i64, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// Seconds as `45s`, `3m12s`, `1h02m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A metric value with 4 significant digits, `-` when missing.
pub fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if (1e-3..1e5).contains(&x.abs()) => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{x:.digits$}")
        }
        Some(x) => format!("{x:.3e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_numbers() {
        assert_eq!(duration(45.2), "45s");
        assert_eq!(duration(192.0), "3m12s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(number(Some(0.71234)), "0.7123");
        assert_eq!(number(Some(123.456)), "123.5");
        assert_eq!(number(Some(1e-5)), "1.000e-5");
        assert_eq!(number(None), "-");
        assert_eq!(number(Some(0.0)), "0");
        assert_eq!(number(Some(-0.0)), "0");
        assert_eq!(number(Some(99999.0)), "99999");
    }
}
