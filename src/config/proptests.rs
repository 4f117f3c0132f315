//! Property tests: the override grammar round-trips, and composition layers
//! files in defaults order with the experiment file and then overrides last.

use std::fs;

use proptest::prelude::*;

use super::compose;
use super::overrides::{Override, OverrideKind, OverrideValue};
use super::sweep_value::SweepSpec;

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z_][a-z0-9_-]{0,6}", 1..4).prop_map(|parts| parts.join("."))
}

fn scalar() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        "[ -~]{0,12}".prop_map(toml::Value::String),
        "[a-z][a-z0-9:/._-]{0,10}".prop_map(toml::Value::String),
    ]
}

fn value() -> impl Strategy<Value = OverrideValue> {
    prop_oneof![
        4 => scalar().prop_map(OverrideValue::Value),
        1 => prop::collection::vec(any::<i32>().prop_map(|i| toml::Value::Integer(i as i64)), 0..4)
            .prop_map(|v| OverrideValue::Value(toml::Value::Array(v))),
        1 => prop::collection::vec(scalar(), 2..4)
            .prop_map(|v| OverrideValue::Sweep(SweepSpec::List(v))),
        1 => prop::collection::vec(scalar(), 1..4)
            .prop_map(|v| OverrideValue::Sweep(SweepSpec::Choice(v))),
        1 => (0i64..10, 10i64..20, 1i64..4).prop_map(|(a, b, s)| OverrideValue::Sweep(SweepSpec::Range {
            start: a.into(), stop: b.into(), step: s.into()
        })),
    ]
}

fn an_override() -> impl Strategy<Value = Override> {
    prop_oneof![
        (key(), value()).prop_map(|(key, v)| Override {
            kind: OverrideKind::Set,
            key,
            value: Some(v)
        }),
        (key(), value()).prop_map(|(key, v)| Override {
            kind: OverrideKind::Add,
            key,
            value: Some(v)
        }),
        (key(), value()).prop_map(|(key, v)| Override {
            kind: OverrideKind::Upsert,
            key,
            value: Some(v)
        }),
        key().prop_map(|key| Override {
            kind: OverrideKind::Delete,
            key,
            value: None
        }),
    ]
}

proptest! {
    #[test]
    fn overrides_round_trip_through_their_text(o in an_override()) {
        let text = o.to_string();
        let back = Override::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, o, "text was {}", text);
    }
}

/// Keys the composition test writes, with a value generator each.
const KEYS: [&str; 4] = ["epochs", "batch_size", "seed", "model.sigma_init"];

fn write_layer(values: &[Option<u32>]) -> String {
    let mut top = String::new();
    let mut model = String::new();
    for (k, v) in KEYS.iter().zip(values) {
        let Some(v) = v else { continue };
        match k.strip_prefix("model.") {
            Some(leaf) => model.push_str(&format!("{leaf} = {v}.5\n")),
            None => top.push_str(&format!("{k} = {v}\n")),
        }
    }
    if !model.is_empty() {
        top.push_str(&format!("[model]\n{model}"));
    }
    top
}

fn layer() -> impl Strategy<Value = Vec<Option<u32>>> {
    prop::collection::vec(prop::option::of(1u32..1000), KEYS.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn later_layers_win_in_defaults_order(
        groups in prop::collection::vec(layer(), 0..4),
        base in layer(),
        own in layer(),
        cli in layer(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // base.toml: its own groups g0..gn, then its keys; exp.toml extends it.
        let mut entries = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            fs::create_dir_all(root.join(format!("g{i}"))).unwrap();
            fs::write(root.join(format!("g{i}/opt.toml")), write_layer(g)).unwrap();
            entries.push(format!("\"g{i}/opt\""));
        }
        fs::write(root.join("base.toml"), format!("defaults = [{}]\n{}", entries.join(", "), write_layer(&base))).unwrap();
        fs::write(root.join("exp.toml"), format!("defaults = [\"base.toml\"]\n{}", write_layer(&own))).unwrap();
        let overrides: Vec<Override> = KEYS.iter().zip(&cli)
            .filter_map(|(k, v)| v.map(|v| {
                let text = if k.starts_with("model.") { format!("++{k}={v}.5") } else { format!("++{k}={v}") };
                Override::parse(&text).unwrap()
            }))
            .collect();
        let composed = compose(&root.join("exp.toml"), &overrides, false).unwrap();
        let c = &composed.config;
        let actual = [c.epochs as f64, c.batch_size as f64, c.seed as f64, c.model.sigma_init];
        let defaults = [200.0, 2.0, 42.0, 1.0];
        for (i, k) in KEYS.iter().enumerate() {
            let mut expected = defaults[i];
            for layer in groups.iter().chain([&base, &own, &cli]) {
                if let Some(v) = layer[i] {
                    expected = if k.starts_with("model.") { v as f64 + 0.5 } else { v as f64 };
                }
            }
            prop_assert_eq!(actual[i], expected, "key {}", k);
        }
        let names: Vec<String> = composed.files.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        prop_assert_eq!(names.last().map(String::as_str), Some("exp.toml"));
        prop_assert_eq!(names.len(), groups.len() + 2);
    }
}
