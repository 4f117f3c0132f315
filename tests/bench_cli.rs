//! `esx bench parity` and `esx bench train` as the GPU check drives them:
//! one JSON object a line, each as soon as it is measured, the trajectory's
//! verdict, and bad shapes refused in one line.

mod common;

use common::{fails, succeeds};

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn parity_prints_json_lines_and_a_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let out = succeeds(
        dir.path(),
        &[
            "bench", "parity", "--device", "cpu", "--batch", "1", "--size", "32", "--dtype", "f64",
            "--steps", "3", "--json",
        ],
    );
    let figures = lines(&out);
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "esx setup");
    for want in [
        "f64 output eval [1,1,32,32]",
        "f64 loss total",
        "f64 gradients",
        "f64 one Adam step",
        "f64 trajectory step 1",
        "f64 trajectory step 3",
        "f64 trajectory level, 3 steps",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let level = figures
        .iter()
        .find(|f| f["name"] == "f64 trajectory level, 3 steps")
        .unwrap();
    assert!(
        level["detail"].as_str().unwrap().starts_with("ok"),
        "{level}"
    );
    // Three steps of f64 part by far less than the bound.
    assert!(level["value"].as_f64().unwrap() < 1e-6, "{level}");
}

#[test]
fn bad_shapes_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(
        dir.path(),
        &["bench", "train", "--train", "2x30", "--infer", ""],
    );
    assert!(
        err.contains("2x30") && err.contains("multiple of 8"),
        "{err}"
    );
    let err = fails(
        dir.path(),
        &["bench", "train", "--train", "0x64", "--infer", ""],
    );
    assert!(err.contains("0x64"), "{err}");
    let err = fails(dir.path(), &["bench", "train", "--train", "2by64"]);
    assert!(err.contains("2by64"), "{err}");
}
