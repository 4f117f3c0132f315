//! The command-line override grammar (Hydra's, in TOML values).
//!
//! ```text
//! key=value     set a key that exists in the composed files or the schema
//! +key=value    add a key the composed files do not set
//! ++key=value   add or set
//! ~key          delete
//! group=option  swap a group option (decided at composition, where groups are known)
//! ```
//! Values parse as TOML (`1e-4` is a float, `[1,2]` a list, `true` a bool) and
//! anything else is a string. `a=1,2,3`, `range(…)`, `choice(…)`, `uniform(…)` and
//! `loguniform(…)` are sweep values: they parse here and only `esx sweep` takes them.

use std::fmt;

pub use super::sweep_value::format_value;
use super::sweep_value::SweepSpec;
pub use super::value_text::{inline_toml, parse_scalar};
use super::ConfigError;

/// What an override does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideKind {
    Set,
    Add,
    Upsert,
    Delete,
}

/// The right-hand side of an override.
#[derive(Clone, Debug, PartialEq)]
pub enum OverrideValue {
    Value(toml::Value),
    Sweep(SweepSpec),
}

/// One parsed command-line override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub kind: OverrideKind,
    pub key: String,
    /// None only for deletions.
    pub value: Option<OverrideValue>,
}

impl Override {
    pub fn parse(text: &str) -> Result<Override, ConfigError> {
        let bad = |why: &str| ConfigError::BadOverride {
            text: text.to_string(),
            why: why.to_string(),
        };
        let (kind, rest) = if let Some(rest) = text.strip_prefix("++") {
            (OverrideKind::Upsert, rest)
        } else if let Some(rest) = text.strip_prefix('+') {
            (OverrideKind::Add, rest)
        } else if let Some(rest) = text.strip_prefix('~') {
            (OverrideKind::Delete, rest)
        } else {
            (OverrideKind::Set, text)
        };
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (rest, None),
        };
        validate_key(key).map_err(|why| bad(&why))?;
        let value = match (kind, value) {
            (OverrideKind::Delete, None) => None,
            (OverrideKind::Delete, Some(_)) => {
                return Err(bad("a deletion takes no value: write ~key"));
            }
            (_, None) => return Err(bad("expected key=value")),
            (_, Some(v)) => Some(parse_value(v).map_err(|why| bad(&why))?),
        };
        Ok(Override {
            kind,
            key: key.to_string(),
            value,
        })
    }

    /// The plain value, or an error saying sweeps belong to `esx sweep`.
    pub fn plain_value(&self) -> Result<Option<&toml::Value>, ConfigError> {
        match &self.value {
            None => Ok(None),
            Some(OverrideValue::Value(v)) => Ok(Some(v)),
            Some(OverrideValue::Sweep(_)) => Err(ConfigError::SweepOutsideSweep {
                text: self.to_string(),
            }),
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            OverrideKind::Set => "",
            OverrideKind::Add => "+",
            OverrideKind::Upsert => "++",
            OverrideKind::Delete => "~",
        };
        write!(f, "{prefix}{}", self.key)?;
        match &self.value {
            None => Ok(()),
            Some(OverrideValue::Value(v)) => write!(f, "={}", format_value(v)),
            Some(OverrideValue::Sweep(s)) => write!(f, "={s}"),
        }
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("missing key".into());
    }
    for part in key.split('.') {
        let mut chars = part.chars();
        let ok_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!(
                "`{key}` is not a key (letters, digits, _ and - separated by dots)"
            ));
        }
    }
    Ok(())
}

/// Parses an override's right-hand side: a sweep, a TOML value or a bare string.
pub fn parse_value(text: &str) -> Result<OverrideValue, String> {
    if let Some(spec) = SweepSpec::parse(text)? {
        return Ok(OverrideValue::Sweep(spec));
    }
    Ok(OverrideValue::Value(parse_scalar(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> toml::Value {
        match Override::parse(&format!("k={text}"))
            .unwrap()
            .value
            .unwrap()
        {
            OverrideValue::Value(v) => v,
            OverrideValue::Sweep(s) => panic!("unexpected sweep {s:?}"),
        }
    }

    #[test]
    fn values_parse_as_toml() {
        assert_eq!(value("1e-4"), toml::Value::Float(1e-4));
        assert_eq!(value("3"), toml::Value::Integer(3));
        assert_eq!(value("true"), toml::Value::Boolean(true));
        assert_eq!(value("[1,2]"), toml::Value::Array(vec![1.into(), 2.into()]));
        assert_eq!(value("synthetic"), toml::Value::String("synthetic".into()));
        assert_eq!(value("\"1.0\""), toml::Value::String("1.0".into()));
        assert_eq!(value("cuda:0"), toml::Value::String("cuda:0".into()));
    }

    #[test]
    fn prefixes_give_kinds() {
        assert_eq!(Override::parse("+lr=1").unwrap().kind, OverrideKind::Add);
        assert_eq!(
            Override::parse("++lr=1").unwrap().kind,
            OverrideKind::Upsert
        );
        assert_eq!(Override::parse("lr=1").unwrap().kind, OverrideKind::Set);
        let del = Override::parse("~model.n_sigma").unwrap();
        assert_eq!(del.kind, OverrideKind::Delete);
        assert_eq!(del.key, "model.n_sigma");
        assert!(del.value.is_none());
    }

    #[test]
    fn malformed_overrides_are_refused() {
        for bad in ["lr", "=3", "+lr", "a..b=1", "1a=2", "~lr=3", "a b=1"] {
            assert!(Override::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sweeps_are_recognised_and_refused_as_plain_values() {
        for text in ["lr=1e-3,1e-4", "x=range(0,3)", "x=choice(a,b)"] {
            let o = Override::parse(text).unwrap();
            assert!(matches!(o.value, Some(OverrideValue::Sweep(_))), "{text}");
            let err = o.plain_value().unwrap_err().to_string();
            assert!(err.contains("esx sweep"), "{err}");
        }
        // A comma inside a list or a string is not a sweep.
        assert!(matches!(
            Override::parse("x=[1,2]").unwrap().value,
            Some(OverrideValue::Value(_))
        ));
        assert!(matches!(
            Override::parse("x=\"a,b\"").unwrap().value,
            Some(OverrideValue::Value(_))
        ));
    }
}
