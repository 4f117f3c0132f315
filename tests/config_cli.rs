//! `esx config` as a user drives it: the shipped experiments compose, and every
//! kind of bad input gets a one-line error naming the file, position or key.

mod common;

use common::{fails, repo, succeeds, write_files};

fn toml_of(stdout: &str) -> toml::Table {
    toml::from_str(stdout).expect("esx config prints TOML")
}

#[test]
fn hela_base_with_the_users_lr_override() {
    let out = succeeds(
        repo(),
        &["config", "experiments/hela_base.toml", "+lr=1e-4"],
    );
    let t = toml_of(&out);
    assert_eq!(t["lr"].as_float(), Some(1e-4));
    assert_eq!(t["epochs"].as_integer(), Some(200));
    assert_eq!(t["data"]["root"].as_str(), Some("data/DIC-C2DH-HeLa"));
    assert_eq!(t["model"]["n_sigma"].as_integer(), Some(2));
    assert!(out.contains("# layered: experiments/data/hela.toml"));
}

#[test]
fn shipped_experiments_compose() {
    let t = toml_of(&succeeds(
        repo(),
        &["config", "experiments/quickstart.toml"],
    ));
    assert_eq!(t["data"]["synthetic"]["kind"].as_str(), Some("fluo"));
    let t = toml_of(&succeeds(
        repo(),
        &["config", "experiments/sigma_init.toml"],
    ));
    assert_eq!(t["name"].as_str(), Some("sigma-init"));
    assert_eq!(
        t["data"]["root"].as_str(),
        Some("data/DIC-C2DH-HeLa"),
        "extends hela_base"
    );
    assert_eq!(
        t["sweep"]["model.sigma_init"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn group_swap_and_json() {
    let out = succeeds(
        repo(),
        &[
            "config",
            "experiments/hela_base.toml",
            "data=synthetic",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["data"]["root"], "data/synthetic-fluo");
    assert_eq!(
        v["config"]["lr"], 5e-4,
        "the schema default when no file sets lr"
    );
    assert!(v["files"][0]
        .as_str()
        .unwrap()
        .ends_with("data/synthetic.toml"));
    assert_eq!(v["overrides"][0], "data=synthetic");
}

#[test]
fn set_upsert_delete_and_interpolation() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "e.toml",
            "epochs = 7\nname = 'run-${epochs}-${env:ESX_TEST_USER}'\n[data]\nroot = '${env:ESX_TEST_DATA}/hela'\n",
        )],
    );
    let mut cmd = common::esx(dir.path());
    cmd.env("ESX_TEST_USER", "ada")
        .env("ESX_TEST_DATA", "/scratch");
    let out = cmd
        .args([
            "config",
            "e.toml",
            "batch_size=8",
            "++seed=3",
            "~epochs",
            "+model.sigma_init=0.5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = toml_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(t["batch_size"].as_integer(), Some(8));
    assert_eq!(t["seed"].as_integer(), Some(3));
    assert_eq!(
        t["epochs"].as_integer(),
        Some(200),
        "deleted: back to the schema default"
    );
    assert_eq!(t["model"]["sigma_init"].as_float(), Some(0.5));
    assert_eq!(t["data"]["root"].as_str(), Some("/scratch/hela"));
}

#[test]
fn malformed_toml_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("bad.toml", "epochs = 3\nlr = = 2\n")]);
    let err = fails(dir.path(), &["config", "bad.toml"]);
    assert!(err.contains("bad.toml:2:6"), "{err}");
}

#[test]
fn malformed_group_file_is_named_too() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("e.toml", "defaults = ['model/x']\n"),
            ("model/x.toml", "[model\n"),
        ],
    );
    let err = fails(dir.path(), &["config", "e.toml"]);
    assert!(err.contains("model/x.toml:1:"), "{err}");
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["config", "nope.toml"]);
    assert!(err.contains("nope.toml not found"), "{err}");
    write_files(dir.path(), &[("e.toml", "defaults = ['base']\n")]);
    let err = fails(dir.path(), &["config", "e.toml"]);
    assert!(
        err.contains("base.toml not found") && err.contains("defaults of e.toml"),
        "{err}"
    );
}

#[test]
fn defaults_cycle() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("a.toml", "defaults = ['b']\n"),
            ("b.toml", "defaults = ['a.toml']\n"),
        ],
    );
    let err = fails(dir.path(), &["config", "a.toml"]);
    assert!(
        err.contains("defaults cycle: a.toml → b.toml → a.toml"),
        "{err}"
    );
}

#[test]
fn unknown_group_option_lists_the_available_ones() {
    let err = fails(
        repo(),
        &["config", "experiments/hela_base.toml", "data=synthtic"],
    );
    assert!(
        err.contains("`synthtic`") && err.contains("available: hela, synthetic"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("e.toml", "defaults = ['data/none']\n"),
            ("data/a.toml", ""),
        ],
    );
    let err = fails(dir.path(), &["config", "e.toml"]);
    assert!(
        err.contains("`none`") && err.contains("available: a"),
        "{err}"
    );
}

#[test]
fn unknown_keys_name_their_file_and_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("e.toml", "[model]\nsigma_int = 2.0\n")]);
    let err = fails(dir.path(), &["config", "e.toml"]);
    assert!(
        err.contains("unknown key `model.sigma_int` in e.toml"),
        "{err}"
    );
    assert!(err.contains("did you mean `model.sigma_init`"), "{err}");
    let err = fails(dir.path(), &["config", "e.toml", "model.sigma_int=2"]);
    assert!(err.contains("did you mean `model.sigma_init`"), "{err}");
    let err = fails(repo(), &["config", "experiments/hela_base.toml", "lrr=1"]);
    assert!(
        err.contains("did you mean `lr`") && err.contains("+lrr="),
        "{err}"
    );
}

#[test]
fn add_on_a_key_a_file_sets_names_the_file() {
    let err = fails(
        repo(),
        &["config", "experiments/hela_base.toml", "+epochs=3"],
    );
    assert!(
        err.contains("already set in experiments/hela_base.toml"),
        "{err}"
    );
    assert!(
        err.contains("epochs=…") && err.contains("++epochs=…"),
        "{err}"
    );
    // A schema default does not count as set.
    succeeds(
        repo(),
        &["config", "experiments/hela_base.toml", "+lr=1e-4"],
    );
}

#[test]
fn wrong_types_name_key_expected_type_and_value() {
    let err = fails(
        repo(),
        &["config", "experiments/hela_base.toml", "epochs=many"],
    );
    assert!(
        err.contains("key `epochs`") && err.contains("integer") && err.contains("\"many\""),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("e.toml", "[data]\nsequences = '01'\n")]);
    let err = fails(dir.path(), &["config", "e.toml"]);
    assert!(
        err.contains("key `data.sequences` in e.toml: expected a list"),
        "{err}"
    );
    let err = fails(
        repo(),
        &["config", "experiments/hela_base.toml", "data.center=middle"],
    );
    assert!(
        err.contains("data.center") && err.contains("medoid"),
        "{err}"
    );
    let err = fails(
        repo(),
        &["config", "experiments/hela_base.toml", "data.crop_size=100"],
    );
    assert!(
        err.contains("data.crop_size") && err.contains("multiple of 8"),
        "{err}"
    );
}

#[test]
fn interpolation_cycles_and_missing_targets() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "cycle.toml",
                "name = '${data.root}'\n[data]\nroot = '${name}'\n",
            ),
            ("missing.toml", "name = 'x-${model.depth}'\n"),
            ("env.toml", "name = '${env:ESX_SURELY_NOT_SET}'\n"),
        ],
    );
    let err = fails(dir.path(), &["config", "cycle.toml"]);
    assert!(err.contains("cycle"), "{err}");
    let err = fails(dir.path(), &["config", "missing.toml"]);
    assert!(err.contains("missing key `model.depth`"), "{err}");
    let err = fails(dir.path(), &["config", "env.toml"]);
    assert!(err.contains("ESX_SURELY_NOT_SET"), "{err}");
}

#[test]
fn sweep_values_are_refused_outside_sweep() {
    for o in [
        "lr=1e-3,1e-4",
        "model.sigma_init=range(0.5,2,0.5)",
        "data=choice(hela,synthetic)",
    ] {
        let err = fails(repo(), &["config", "experiments/hela_base.toml", o]);
        assert!(err.contains("only `esx sweep`"), "{err}");
    }
}

#[test]
fn swapping_a_group_the_defaults_do_not_name() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("e.toml", "epochs = 1\n"),
            ("data/a.toml", "[data]\nroot = 'x'\n"),
        ],
    );
    let err = fails(dir.path(), &["config", "e.toml", "data=a"]);
    assert!(err.contains("+data=a"), "{err}");
    let t = toml_of(&succeeds(dir.path(), &["config", "e.toml", "+data=a"]));
    assert_eq!(t["data"]["root"].as_str(), Some("x"));
}

/// A file included twice is layered once, at its last place: the keys it
/// sets are the ones its last inclusion would set (and a diamond of
/// defaults does not multiply the work).
#[test]
fn a_file_included_twice_counts_at_its_last_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(
        d,
        &[
            ("a.toml", "defaults = [\"b\", \"c\", \"b\"]\n"),
            ("b.toml", "epochs = 11\nlr = 0.5\n"),
            ("c.toml", "epochs = 22\nbatch_size = 4\n"),
            ("a2.toml", "defaults = [\"b\", \"c\"]\n"),
        ],
    );
    let out = succeeds(d, &["config", "a.toml"]);
    assert!(
        out.contains("epochs = 11") && out.contains("batch_size = 4") && out.contains("lr = 0.5"),
        "{out}"
    );
    let out = succeeds(d, &["config", "a2.toml"]);
    assert!(out.contains("epochs = 22"), "{out}");
}
