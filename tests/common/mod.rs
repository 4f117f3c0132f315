//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod slurm;

use std::path::Path;

use assert_cmd::Command;
use esx::store::{NewRun, RunWriter};

/// A reference fixture set: tests/fixtures/NAME.
pub struct Fixtures(std::path::PathBuf);

impl Fixtures {
    pub fn new(name: &str) -> Fixtures {
        Fixtures(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
    }

    /// A safetensors file's tensors, on the CPU.
    pub fn load(&self, file: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
        candle_core::safetensors::load(self.0.join(file), &candle_core::Device::Cpu)
            .expect("fixture loads")
    }

    /// reference.json: the values the fixtures' maker computed.
    pub fn reference(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.0.join("reference.json")).unwrap()).unwrap()
    }
}

/// A loss fixture's prediction (as a variable), labels and centres, and the
/// weights the fixtures were made with (make_fixtures.py, make_fixtures_3d.py).
pub fn loss_inputs(
    f: &std::collections::HashMap<String, candle_core::Tensor>,
) -> (candle_core::Var, Vec<u32>, Vec<u32>, esx::loss::LossWeights) {
    let pred = candle_core::Var::from_tensor(&f["prediction"]).unwrap();
    let labels: Vec<u32> = f["labels"].flatten_all().unwrap().to_vec1().unwrap();
    let centers: Vec<u32> = f["centers"].flatten_all().unwrap().to_vec1().unwrap();
    let w = esx::loss::LossWeights {
        w_inst: 1.0,
        w_var: 10.0,
        w_seed: 1.0,
        foreground_weight: 10.0,
    };
    (pred, labels, centers, w)
}

/// Each term of `v` equals the fixture's `want[term]` to 1e-12 relative.
pub fn assert_terms(v: &esx::loss::LossValues, want: &serde_json::Value, what: &str) {
    for (got, key) in [
        (v.instance, "instance"),
        (v.var, "var"),
        (v.seed, "seed"),
        (v.value, "total"),
    ] {
        let expected = want[key].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= 1e-12 * expected.abs(),
            "{what} {key}: {got} vs {expected}"
        );
    }
}

fn host(t: &candle_core::Tensor) -> Vec<f64> {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a − b| / (max |b| + 1e-12)
pub fn rel_err(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f64 {
    let (a, b) = (host(a), host(b));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())) + 1e-12;
    a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The model fixture's checks after a training pass `train`: every
/// `after.NAME` running statistic of `w`, and every `grad.NAME` gradient of
/// Σ train · r, within `tol` (rel_err). Returns how many of each.
pub fn assert_running_and_grads(
    w: &esx::model::Weights,
    train: &candle_core::Tensor,
    out: &std::collections::HashMap<String, candle_core::Tensor>,
    tol: f64,
) -> (usize, usize) {
    let tensors: std::collections::HashMap<String, candle_core::Tensor> =
        w.named_tensors().into_iter().collect();
    let mut running = 0;
    for (name, want) in out.iter().filter(|(k, _)| k.starts_with("after.")) {
        let e = rel_err(&tensors[&name["after.".len()..]], want);
        assert!(e < tol, "{name} differs by {e:e}");
        running += 1;
    }
    let r = out["r"].to_dtype(train.dtype()).unwrap();
    let grads = (train * r).unwrap().sum_all().unwrap().backward().unwrap();
    let params: std::collections::HashMap<String, candle_core::Var> =
        w.trainable().into_iter().collect();
    let mut checked = 0;
    for (name, want) in out.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let var = &params[&name["grad.".len()..]];
        let got = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let e = rel_err(got, want);
        assert!(e < tol, "{name} differs by {e:e}");
        checked += 1;
    }
    (running, checked)
}

/// Sets every parameter and buffer of `w` from the fixtures' u8 codes and
/// their affine maps (reference.json's weight_maps); every code is used.
pub fn decode_weights(w: &esx::model::Weights, fixtures: &Fixtures) {
    let codes = fixtures.load("model_weights_u8.safetensors");
    let maps = fixtures.reference()["weight_maps"].clone();
    let mut seen = 0;
    for map in [&w.params, &w.buffers] {
        for (name, var) in map.data().lock().unwrap().iter() {
            let q = codes
                .get(name)
                .unwrap_or_else(|| panic!("{name} in the fixture"));
            let m = &maps[name];
            let (offset, scale) = (m[0].as_f64().unwrap(), m[1].as_f64().unwrap());
            let q = q.to_dtype(var.dtype()).unwrap();
            let value = ((q * scale).unwrap() + offset).unwrap();
            var.set(&value).unwrap();
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        codes.len(),
        "every reference tensor has a place in esx's model"
    );
}

/// The built `esx` binary, run in `dir`.
pub fn esx(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("esx").expect("the esx binary is built");
    cmd.current_dir(dir)
        .env_remove("ESX_RUNS")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs esx expecting failure; returns stderr, checked to be one line.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = esx(dir).args(args).output().expect("esx runs");
    assert!(!out.status.success(), "esx {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(
        err.lines().count(),
        1,
        "one-line error expected, got:\n{err}"
    );
    err
}

/// Runs esx expecting success; returns stdout.
pub fn succeeds(dir: &Path, args: &[&str]) -> String {
    let out = esx(dir).args(args).output().expect("esx runs");
    assert!(
        out.status.success(),
        "esx {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Step numbers of a run's recorded training losses, in order.
pub fn recorded_steps(run_dir: &Path) -> Vec<i64> {
    esx::store::query::metrics(run_dir, Some(&["loss"]))
        .unwrap()
        .iter()
        .filter(|m| m.split == "step")
        .map(|m| m.step)
        .collect()
}

/// Writes files given as (relative path, contents) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The repository's own experiments folder.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny experiment on a synthetic dataset (`data/tiny`, 4 frames per
/// sequence, 32-pixel crops, 2 epochs of 3 steps) that trains in about a second.
pub fn tiny_experiment(sequences: usize, size: usize, vis_every: u32) -> String {
    let names: Vec<String> = (1..=sequences).map(|s| format!("\"{s:02}\"")).collect();
    format!(
        r#"
name = "tiny"
seed = 5
epochs = 2
batch_size = 2
lr = 1e-3

[data]
root = "data/tiny"
sequences = [{first}]
crop_size = 32
val_fraction = 0.25

[data.synthetic]
kind = "fluo"
sequences = {sequences}
frames = 4
size = {size}
seed = 2

[train]
steps_per_epoch = 3

[log]
vis_every = {vis_every}
"#,
        first = names[0]
    )
}

/// A model file holding what a 3D EmbedSeg model (BranchedERFNet_3d) has
/// first: a 5-dimensional kernel.
pub fn write_3d_model(path: &Path) {
    let k3d = candle_core::Tensor::zeros(
        (13, 1, 3, 3, 3),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    candle_core::safetensors::save(
        &[("encoder.initial_block.conv.weight".to_string(), k3d)]
            .into_iter()
            .collect(),
        path,
    )
    .unwrap();
}

/// Runs esx with `--json` added, expecting success; its stdout parsed.
pub fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&succeeds(dir, &all)).expect("--json prints JSON")
}

/// A command's stdout as JSON, or a panic showing what it printed.
pub fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The most recently created run under `root`.
pub fn newest_run(root: &Path) -> Option<std::path::PathBuf> {
    let mut runs: Vec<_> = esx::store::query::list_runs(root)
        .ok()?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    runs.sort_by(|a, b| a.created.total_cmp(&b.created));
    runs.pop().map(|r| r.dir)
}

/// Starts `esx run --runs RUNS -q ARGS` in `dir` and returns it once its
/// store holds training step `step`; the caller waits for it.
#[allow(clippy::zombie_processes)]
pub fn train_until_step(
    dir: &Path,
    runs: &Path,
    args: &[&str],
    step: i64,
) -> (std::process::Child, std::path::PathBuf) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("esx"))
        .current_dir(dir)
        .args(["run", "--runs", runs.to_str().unwrap(), "-q"])
        .args(args)
        .env_remove("ESX_RUNS")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never reached step {step}");
        }
        if let Some(d) = newest_run(runs) {
            if recorded_steps(&d).last().is_some_and(|&s| s >= step) {
                return (child, d);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A run under `root` with `losses` as its per-step training loss and one
/// validation IoU of 0.5, flushed; the writer stays open.
pub fn recorded_run(root: &Path, name: &str, config: &str, losses: &[f64]) -> RunWriter {
    let mut w = RunWriter::create(
        root,
        None,
        &NewRun {
            name: name.into(),
            config_toml: config.into(),
            ..NewRun::default()
        },
    )
    .unwrap();
    for (i, &v) in losses.iter().enumerate() {
        w.log_scalar(i as u64 + 1, 1, "step", "loss", v).unwrap();
    }
    w.log_scalar(losses.len() as u64, 1, "val", "iou", 0.5)
        .unwrap();
    w.flush().unwrap();
    w
}

/// Leaves the run as a process that died mid-run leaves it: recorded as
/// running, by a process that no longer exists.
pub fn as_if_crashed(w: RunWriter) {
    let dir = w.dir().to_path_buf();
    std::mem::forget(w);
    let db = rusqlite::Connection::open(dir.join("run.db")).unwrap();
    db.execute("UPDATE run SET pid = 2147483000, pid_start = NULL", [])
        .unwrap();
}

/// The text of the element that starts with `start` up to its closing tag
/// `end` (the first after it).
pub fn element<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the page"));
    let j = html[i..].find(end).expect("closed") + i;
    &html[i..j]
}
