//! TOML values as text: read from an override's or a sweep's words, and
//! written inline.

/// A value as TOML if it is one, else the text itself as a string.
pub fn parse_scalar(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut table) if table.len() == 1 => table.remove("v").unwrap_or_else(|| text.into()),
        _ => toml::Value::String(text.to_string()),
    }
}

/// A value in TOML's inline syntax.
pub fn inline_toml(value: &toml::Value) -> String {
    match value {
        toml::Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => {
            format!("{x:.1}")
        }
        // A basic string with JSON's escapes, which TOML shares: one line, one quote style.
        toml::Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        toml::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(inline_toml).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}
