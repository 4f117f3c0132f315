//! A run's resolved config as `params` rows (`a.b` → text and number), so
//! that `--where params.KEY` can filter on any key.

/// A param a run found rather than was given: what its "auto" sizes
/// became (`auto.…`) and what tuning chose (`tuned.…`). Runs that differ
/// only in these were set up alike. An imported run's origin (`import.…`)
/// and what a run's `init` resolved to (`init.…`) are facts, not choices.
pub fn found_by_the_run(key: &str) -> bool {
    ["auto.", "tuned.", "import.", "init."]
        .iter()
        .any(|p| key.starts_with(p))
}

/// Flattens a resolved config into `a.b` → (text, number) rows for filtering.
/// The sweep specification is not a parameter of the run.
pub fn flatten_params(table: &toml::Table) -> Vec<(String, String, Option<f64>)> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String, Option<f64>)>) {
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if key != "sweep" {
                    walk(&key, v, out);
                }
            }
        } else {
            let (text, num) = param_value(value);
            out.push((prefix.to_string(), text, num));
        }
    }
    let mut out = Vec::new();
    walk("", &toml::Value::Table(table.clone()), &mut out);
    out
}

pub(super) fn param_value(value: &toml::Value) -> (String, Option<f64>) {
    match value {
        toml::Value::String(s) => (s.clone(), None),
        toml::Value::Integer(i) => (i.to_string(), Some(*i as f64)),
        toml::Value::Float(x) => (x.to_string(), Some(*x)),
        toml::Value::Boolean(b) => (b.to_string(), Some(*b as i64 as f64)),
        other => (crate::config::overrides::inline_toml(other), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_flatten_nested_tables_and_skip_the_sweep() {
        let t: toml::Table =
            toml::from_str("lr = 1e-4\nname = 'x'\n[model]\nn_sigma = 2\n[sweep]\nlr = [1, 2]")
                .unwrap();
        let p = flatten_params(&t);
        assert!(p.contains(&("lr".into(), "0.0001".into(), Some(1e-4))));
        assert!(p.contains(&("model.n_sigma".into(), "2".into(), Some(2.0))));
        assert!(p.contains(&("name".into(), "x".into(), None)));
        assert!(!p.iter().any(|(k, _, _)| k.starts_with("sweep")));
    }
}
