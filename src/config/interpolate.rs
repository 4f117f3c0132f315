//! `${a.b}` (another key) and `${env:NAME}` (the environment) in string values.
//! A string that is exactly one `${a.b}` takes the target's value and type;
//! otherwise targets are formatted into the string.

use std::collections::HashMap;

use super::value_text::inline_toml;
use super::ConfigError;

/// The longest a string may grow by interpolation: five keys that each
/// repeat the next 200 times would otherwise expand to 2.5 GB.
const MAX_TEXT: usize = 1 << 20;

/// The longest chain of keys referring to keys (each link is a call deeper).
const MAX_DEPTH: usize = 100;

pub fn interpolate(table: &mut toml::Table) -> Result<(), ConfigError> {
    let source = table.clone();
    let mut resolver = Resolver {
        source: &source,
        done: HashMap::new(),
        stack: Vec::new(),
    };
    for (key, value) in table.iter_mut() {
        *value = resolver.resolve_value(key, value)?;
    }
    Ok(())
}

struct Resolver<'a> {
    source: &'a toml::Table,
    done: HashMap<String, toml::Value>,
    stack: Vec<String>,
}

impl Resolver<'_> {
    fn resolve_value(
        &mut self,
        path: &str,
        value: &toml::Value,
    ) -> Result<toml::Value, ConfigError> {
        Ok(match value {
            toml::Value::String(s) if s.contains("${") => self.resolve_string(path, s)?,
            toml::Value::Array(items) => toml::Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.resolve_value(&format!("{path}[{i}]"), v))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => toml::Value::Table(
                t.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve_value(&format!("{path}.{k}"), v)?)))
                    .collect::<Result<_, ConfigError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn resolve_string(&mut self, path: &str, s: &str) -> Result<toml::Value, ConfigError> {
        let err = |why: String| ConfigError::Interpolation {
            key: path.to_string(),
            why,
        };
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| err(format!("unclosed `${{` in \"{s}\"")))?;
            let target = after[..end].trim();
            let whole = out.is_empty() && start == 0 && after[end + 1..].is_empty();
            let value = self.lookup(path, target)?;
            if whole {
                return Ok(value);
            }
            let piece = match value {
                toml::Value::String(v) => v,
                other => inline_toml(&other),
            };
            if out.len() + piece.len() > MAX_TEXT {
                return Err(err(format!(
                    "its interpolation grows past {} MB",
                    MAX_TEXT >> 20
                )));
            }
            out.push_str(&piece);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(toml::Value::String(out))
    }

    fn lookup(&mut self, from: &str, target: &str) -> Result<toml::Value, ConfigError> {
        let err = |why: String| ConfigError::Interpolation {
            key: from.to_string(),
            why,
        };
        if let Some(name) = target.strip_prefix("env:") {
            return std::env::var(name)
                .map(toml::Value::String)
                .map_err(|_| err(format!("environment variable {name} is not set")));
        }
        if target.is_empty() {
            return Err(err("empty `${}`".into()));
        }
        if let Some(v) = self.done.get(target) {
            return Ok(v.clone());
        }
        if let Some(pos) = self.stack.iter().position(|k| k == target) {
            let mut chain: Vec<String> = self.stack[pos..].to_vec();
            chain.push(target.to_string());
            return Err(err(format!("cycle {}", chain.join(" → "))));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(format!(
                "a chain of more than {MAX_DEPTH} interpolated keys (at `{target}`)"
            )));
        }
        let raw = find(self.source, target)
            .ok_or_else(|| {
                err(format!(
                    "`${{{target}}}` refers to a missing key `{target}`"
                ))
            })?
            .clone();
        self.stack.push(target.to_string());
        let resolved = self.resolve_value(target, &raw);
        self.stack.pop();
        let resolved = resolved?;
        self.done.insert(target.to_string(), resolved.clone());
        Ok(resolved)
    }
}

fn find<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(doc: &str) -> Result<toml::Table, ConfigError> {
        let mut t: toml::Table = toml::from_str(doc).unwrap();
        interpolate(&mut t).map(|_| t)
    }

    #[test]
    fn whole_references_keep_type_and_partial_ones_format() {
        let t = resolve("a = 3\nb = '${a}'\nc = 'run-${a}-${d.e}'\n[d]\ne = 'x'").unwrap();
        assert_eq!(t["b"], toml::Value::Integer(3));
        assert_eq!(t["c"], toml::Value::String("run-3-x".into()));
    }

    #[test]
    fn chains_resolve_and_cycles_fail() {
        let t = resolve("a = '${b}'\nb = '${c}'\nc = 1.5").unwrap();
        assert_eq!(t["a"], toml::Value::Float(1.5));
        let e = resolve("a = '${b}'\nb = '${a}'").unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = resolve("a = '${nope.x}'").unwrap_err().to_string();
        assert!(e.contains("missing key `nope.x`"), "{e}");
    }

    /// Five keys each repeating the next 200 times (2.5 GB expanded), and a
    /// chain 30,000 keys deep: each one line, at once, no overflow.
    #[test]
    fn expansion_and_chains_are_bounded() {
        let mut doc = String::new();
        for i in 1..5 {
            doc += &format!("e{i} = '{}'\n", format!("${{e{}}}", i + 1).repeat(200));
        }
        doc += "e5 = 'xxxxx'\n";
        let e = resolve(&doc).unwrap_err().to_string();
        assert!(e.contains("grows past 1 MB"), "{e}");
        let mut doc = String::new();
        for i in 0..30_000 {
            doc += &format!("k{i} = '${{k{}}}'\n", i + 1);
        }
        doc += "k30000 = 1\n";
        let e = resolve(&doc).unwrap_err().to_string();
        assert!(e.contains("more than 100 interpolated keys"), "{e}");
        // A chain within the bound resolves.
        let mut doc = String::new();
        for i in 0..90 {
            doc += &format!("k{i} = '${{k{}}}'\n", i + 1);
        }
        doc += "k90 = 7\n";
        assert_eq!(resolve(&doc).unwrap()["k0"], toml::Value::Integer(7));
    }

    #[test]
    fn environment_variables() {
        std::env::set_var("ESX_TEST_INTERP", "hello");
        let t = resolve("a = '${env:ESX_TEST_INTERP}/x'").unwrap();
        assert_eq!(t["a"], toml::Value::String("hello/x".into()));
        let e = resolve("a = '${env:ESX_SURELY_UNSET_VAR}'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ESX_SURELY_UNSET_VAR"), "{e}");
    }
}
