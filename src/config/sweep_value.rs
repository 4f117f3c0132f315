//! Sweep values: `a,b,c`, `choice(a, b)`, `range(start, stop[, step])`,
//! `uniform(a, b)` and `loguniform(a, b)`, on the command line or in a file's
//! `[sweep]` table (where a TOML list also means "these values").

use std::fmt;

use super::value_text::{inline_toml, parse_scalar};

#[derive(Clone, Debug, PartialEq)]
pub enum SweepSpec {
    /// `a,b,c` or a TOML list.
    List(Vec<toml::Value>),
    /// `choice(a, b, …)`: a list for grids, a categorical for random search.
    Choice(Vec<toml::Value>),
    /// `range(start, stop, step)`: stop excluded, as Python's and Hydra's.
    Range {
        start: toml::Value,
        stop: toml::Value,
        step: toml::Value,
    },
    /// Random search only.
    Uniform(f64, f64),
    /// Random search only: uniform in log space.
    LogUniform(f64, f64),
}

impl SweepSpec {
    /// Some(spec) when `text` is a sweep value, None when it is a plain value.
    pub fn parse(text: &str) -> Result<Option<SweepSpec>, String> {
        let text = text.trim();
        for name in ["range", "choice", "uniform", "loguniform"] {
            if let Some(args) = text
                .strip_prefix(name)
                .and_then(|r| r.trim_start().strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
            {
                let args: Vec<toml::Value> = split_top_level(args)
                    .iter()
                    .map(|a| parse_scalar(a.trim()))
                    .collect();
                return Self::from_call(name, args).map(Some);
            }
        }
        let parts = split_top_level(text);
        if parts.len() > 1 {
            let values = parts.iter().map(|p| parse_scalar(p.trim())).collect();
            return Ok(Some(SweepSpec::List(values)));
        }
        Ok(None)
    }

    /// A `[sweep]` table entry: a TOML list, or a string holding a sweep value.
    pub fn from_toml(value: &toml::Value) -> Result<SweepSpec, String> {
        match value {
            toml::Value::Array(items) if !items.is_empty() => Ok(SweepSpec::List(items.clone())),
            toml::Value::Array(_) => Err("an empty list sweeps over nothing".into()),
            toml::Value::String(s) => match SweepSpec::parse(s)? {
                Some(spec) => Ok(spec),
                None => Err(format!(
                    "`{s}` is a single value, not a sweep (use a list, range(…) or choice(…))"
                )),
            },
            other => Err(format!(
                "`{other}` is a single value, not a sweep (use a list, range(…) or choice(…))"
            )),
        }
    }

    fn from_call(name: &str, args: Vec<toml::Value>) -> Result<SweepSpec, String> {
        let number = |v: &toml::Value| -> Result<f64, String> {
            match v {
                toml::Value::Integer(i) => Ok(*i as f64),
                toml::Value::Float(x) => Ok(*x),
                other => Err(format!("{name}(…) takes numbers, got `{other}`")),
            }
        };
        match name {
            "choice" if !args.is_empty() => Ok(SweepSpec::Choice(args)),
            "choice" => Err("choice() needs at least one value".into()),
            "range" => {
                let (start, stop, step) = match args.len() {
                    1 => (
                        toml::Value::Integer(0),
                        args[0].clone(),
                        toml::Value::Integer(1),
                    ),
                    2 => (args[0].clone(), args[1].clone(), toml::Value::Integer(1)),
                    3 => (args[0].clone(), args[1].clone(), args[2].clone()),
                    _ => {
                        return Err(
                            "range takes (stop), (start, stop) or (start, stop, step)".into()
                        )
                    }
                };
                let (a, b, s) = (number(&start)?, number(&stop)?, number(&step)?);
                if s == 0.0 || !s.is_finite() || !a.is_finite() || !b.is_finite() {
                    return Err("range needs finite bounds and a non-zero step".into());
                }
                let spec = SweepSpec::Range { start, stop, step };
                // Counted, not listed: range(0, 1, 1e-12) would be 10^12 values.
                let n = spec.range_len(a, b, s);
                if n == 0.0 {
                    return Err(format!("{spec} is empty"));
                }
                if n > MAX_VALUES as f64 {
                    return Err(format!(
                        "this range holds {n:.3e} values; an axis takes at most {MAX_VALUES} (for a continuous axis use uniform(…) or loguniform(…))"
                    ));
                }
                Ok(spec)
            }
            "uniform" | "loguniform" => {
                if args.len() != 2 {
                    return Err(format!("{name} takes (low, high)"));
                }
                let (a, b) = (number(&args[0])?, number(&args[1])?);
                if a >= b || a.is_nan() || b.is_nan() {
                    return Err(format!("{name}({a}, {b}) needs low < high"));
                }
                if name == "loguniform" {
                    if a <= 0.0 {
                        return Err(format!("loguniform({a}, {b}) needs positive bounds"));
                    }
                    Ok(SweepSpec::LogUniform(a, b))
                } else {
                    Ok(SweepSpec::Uniform(a, b))
                }
            }
            _ => unreachable!("caller passes a known name"),
        }
    }

    /// The grid values; empty for the random-search-only distributions.
    pub fn values(&self) -> Vec<toml::Value> {
        match self {
            SweepSpec::List(v) | SweepSpec::Choice(v) => v.clone(),
            SweepSpec::Range { start, stop, step } => range_values(start, stop, step),
            SweepSpec::Uniform(..) | SweepSpec::LogUniform(..) => Vec::new(),
        }
    }

    pub fn is_grid(&self) -> bool {
        !matches!(self, SweepSpec::Uniform(..) | SweepSpec::LogUniform(..))
    }
}

/// The most values one axis may take (a grid takes at most as many points).
pub const MAX_VALUES: usize = 10_000;

/// How many values a float range(a, b, s) holds (it may be huge).
fn range_len(a: f64, b: f64, s: f64) -> f64 {
    // A small tolerance, so that range(0.5, 2, 0.5) stops before 2.
    let n = ((b - a) / s - 1e-9).ceil();
    if n.is_nan() {
        f64::INFINITY
    } else {
        n.max(0.0)
    }
}

impl SweepSpec {
    /// How many values this range holds: exactly for integers, else as
    /// `range_len` counts them (`a`, `b`, `s` its bounds as floats).
    fn range_len(&self, a: f64, b: f64, s: f64) -> f64 {
        match self {
            SweepSpec::Range {
                start: toml::Value::Integer(a),
                stop: toml::Value::Integer(b),
                step: toml::Value::Integer(s),
            } => {
                let (span, s) = (i128::from(*b) - i128::from(*a), i128::from(*s));
                let n = if (span > 0) == (s > 0) && span != 0 {
                    (span.abs() + s.abs() - 1) / s.abs()
                } else {
                    0
                };
                n as f64
            }
            _ => range_len(a, b, s),
        }
    }
}

fn range_values(start: &toml::Value, stop: &toml::Value, step: &toml::Value) -> Vec<toml::Value> {
    if let (toml::Value::Integer(a), toml::Value::Integer(b), toml::Value::Integer(s)) =
        (start, stop, step)
    {
        let (a, b, s) = (*a, *b, *s);
        let mut out = Vec::new();
        let mut v = a;
        // At most MAX_VALUES: parsing refused longer ranges.
        while ((s > 0 && v < b) || (s < 0 && v > b)) && out.len() < MAX_VALUES {
            out.push(toml::Value::Integer(v));
            v = match v.checked_add(s) {
                Some(next) => next,
                None => break,
            };
        }
        return out;
    }
    let f = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let (Some(a), Some(b), Some(s)) = (f(start), f(stop), f(step)) else {
        return Vec::new();
    };
    // Count steps with a small tolerance so that range(0.5, 2, 0.5) stops before 2.
    let n = (range_len(a, b, s) as usize).min(MAX_VALUES);
    (0..n)
        .map(|i| toml::Value::Float(clean_float(a + i as f64 * s)))
        .collect()
}

/// Drops the float noise of repeated addition (0.30000000000000004 → 0.3).
fn clean_float(x: f64) -> f64 {
    format!("{x:.14e}").parse().unwrap_or(x)
}

/// Splits on commas outside brackets, braces, parentheses and quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut current = String::new();
    for c in text.chars() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' | '(' => depth += 1,
                ']' | '}' | ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            },
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// A value inside a sweep list: quoted whenever it holds a character that
/// splitting on commas treats specially.
fn format_item(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s)
            if s.trim() != s || s.contains(['\'', '"', '[', ']', '(', ')', '{', '}', ',']) =>
        {
            inline_toml(value)
        }
        other => format_value(other),
    }
}

impl fmt::Display for SweepSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: &[toml::Value]| v.iter().map(format_item).collect::<Vec<_>>().join(",");
        match self {
            SweepSpec::List(v) => write!(f, "{}", join(v)),
            SweepSpec::Choice(v) => write!(f, "choice({})", join(v)),
            SweepSpec::Range { start, stop, step } => write!(
                f,
                "range({},{},{})",
                format_value(start),
                format_value(stop),
                format_value(step)
            ),
            SweepSpec::Uniform(a, b) => write!(f, "uniform({a:?},{b:?})"),
            SweepSpec::LogUniform(a, b) => write!(f, "loguniform({a:?},{b:?})"),
        }
    }
}

/// Formats a value so that an override's `parse_value` gives it back:
/// strings bare where that reads back the same (not as a sweep, not as
/// another TOML value), TOML-quoted otherwise.
pub fn format_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s)
            if matches!(SweepSpec::parse(s), Ok(None)) && parse_scalar(s) == *value =>
        {
            s.clone()
        }
        other => inline_toml(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> SweepSpec {
        SweepSpec::parse(text).unwrap().unwrap()
    }

    #[test]
    fn float_ranges_exclude_stop_without_float_noise() {
        let v = spec("range(0.5,2,0.5)").values();
        assert_eq!(v, vec![0.5.into(), 1.0.into(), 1.5.into()]);
        let v = spec("range(0.1, 0.4, 0.1)").values();
        assert_eq!(v, vec![0.1.into(), 0.2.into(), 0.3.into()]);
    }

    #[test]
    fn integer_ranges_stay_integers() {
        assert_eq!(
            spec("range(3)").values(),
            vec![0.into(), 1.into(), 2.into()]
        );
        assert_eq!(
            spec("range(5,0,-2)").values(),
            vec![5.into(), 3.into(), 1.into()]
        );
    }

    #[test]
    fn lists_and_choices() {
        assert_eq!(spec("1e-3,1e-4").values(), vec![1e-3.into(), 1e-4.into()]);
        assert_eq!(spec("choice(a, b)").values(), vec!["a".into(), "b".into()]);
        assert_eq!(SweepSpec::parse("[1,2]").unwrap(), None);
    }

    #[test]
    fn bad_calls_say_why() {
        assert!(SweepSpec::parse("range(1,1)")
            .unwrap_err()
            .contains("empty"));
        assert!(SweepSpec::parse("range(0,1,0)").is_err());
        assert!(SweepSpec::parse("loguniform(0,1)").is_err());
        assert!(SweepSpec::parse("uniform(2,1)").is_err());
        assert!(SweepSpec::parse("range(a,b)").is_err());
    }

    /// Counted before anything is listed: these would be 10^12 values, 10^8
    /// values, an overflowing capacity and an i64 overflow.
    #[test]
    fn ranges_beyond_an_axis_are_refused_without_listing_them() {
        for text in [
            "range(0,1,1e-12)",
            "range(0,1e8)",
            "range(0,1e308,1e-300)",
            "range(-9223372036854775808,9223372036854775807)",
        ] {
            let err = SweepSpec::parse(text).unwrap_err();
            assert!(err.contains("at most 10000"), "{text}: {err}");
        }
        // The largest allowed still lists every value.
        let v = spec("range(10000)").values();
        assert_eq!((v.len(), v[9999].as_integer()), (10000, Some(9999)));
        assert!(SweepSpec::parse("range(10001)").is_err());
        let v = spec("range(9223372036854775806,9223372036854775807,5)").values();
        assert_eq!(v.len(), 1, "no overflow past the end");
    }
}
