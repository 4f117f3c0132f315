//! A size a config gives as a number, or as "auto": computed from the
//! objects in the dataset's masks when a run starts (data::object_sizes).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoSize {
    Auto,
    Fixed(usize),
}

impl AutoSize {
    /// The number, where the config gave one (or a run resolved "auto").
    pub fn fixed(self) -> Option<usize> {
        match self {
            AutoSize::Auto => None,
            AutoSize::Fixed(n) => Some(n),
        }
    }

    pub fn is_auto(self) -> bool {
        self == AutoSize::Auto
    }
}

impl fmt::Display for AutoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoSize::Auto => f.write_str("auto"),
            AutoSize::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for AutoSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AutoSize::Auto => s.serialize_str("auto"),
            AutoSize::Fixed(n) => s.serialize_u64(*n as u64),
        }
    }
}

struct AutoSizeVisitor;

impl Visitor<'_> for AutoSizeVisitor {
    type Value = AutoSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a positive whole number or \"auto\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AutoSize, E> {
        usize::try_from(v)
            .map(AutoSize::Fixed)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AutoSize, E> {
        usize::try_from(v)
            .map(AutoSize::Fixed)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AutoSize, E> {
        if v == "auto" {
            Ok(AutoSize::Auto)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for AutoSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AutoSize, D::Error> {
        d.deserialize_any(AutoSizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        a: AutoSize,
    }

    #[test]
    fn numbers_and_auto_round_trip_and_others_are_refused() {
        for (text, value) in [
            ("a = 64", AutoSize::Fixed(64)),
            ("a = \"auto\"", AutoSize::Auto),
        ] {
            let t: T = toml::from_str(text).unwrap();
            assert_eq!(t.a, value);
            assert_eq!(toml::to_string(&t).unwrap().trim(), text);
        }
        for bad in ["a = \"big\"", "a = -3", "a = 1.5"] {
            let err = toml::from_str::<T>(bad).unwrap_err().to_string();
            assert!(
                err.contains("a positive whole number or \"auto\""),
                "{bad}: {err}"
            );
        }
    }
}
