//! 3D stacks as a user drives them today (issue 32, data side): `esx synth
//! --3d` writes a Fluo-N3DH-like dataset, `esx prepare sizes` and `esx
//! prepare centers` read it with its anisotropy; training refuses it in one
//! line and records nothing, as it does stacks mixed with 2D frames or a
//! mask of other planes than its image.

mod common;

use common::{fails, json, succeeds};
use esx::data::tiff_io::write_labels;
use esx::data::tiff_stack::read_label_stack;
use esx::data::Grid;

fn synth(d: &std::path::Path) {
    succeeds(
        d,
        &[
            "synth",
            "n3dh",
            "--3d",
            "--depth",
            "16",
            "--size",
            "48",
            "--frames",
            "2",
            "--sequences",
            "1",
            "--anisotropy",
            "2.5",
            "-q",
        ],
    );
}

#[test]
fn synthetic_stacks_give_3d_sizes_and_centre_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d);
    let sizes = json(d, &["prepare", "sizes", "n3dh"]);
    assert_eq!(sizes["frame_depth"], 16);
    let crop = sizes["auto_crop_size"].as_array().unwrap();
    assert_eq!(crop.len(), 3);
    let depth = crop[0].as_u64().unwrap();
    assert!(
        depth.is_multiple_of(8) && (8..=16).contains(&depth),
        "{crop:?}"
    );
    assert_eq!(crop[1], crop[2]);
    assert!(sizes["auto_min_size"].as_u64().unwrap() >= 1);
    let text = succeeds(d, &["prepare", "sizes", "n3dh"]);
    assert!(
        text.contains("extent z") && text.contains("crop depth"),
        "{text}"
    );

    let report = json(d, &["prepare", "centers", "n3dh", "-q"]);
    assert_eq!(report["anisotropy"], 2.5, "from the stacks' metadata");
    assert!(report["anisotropy_from"]
        .as_str()
        .unwrap()
        .contains("t000.tif"));
    let instances = report["instances"].as_u64().unwrap();
    assert!(instances > 2, "{report}");
    // One centre voxel per instance, inside it.
    let labels = read_label_stack(&d.join("n3dh/01_GT/SEG/man_seg000.tif")).unwrap();
    let centres = read_label_stack(&d.join("n3dh/01_GT/INSTANCE_CENTERS/man_seg000.tif")).unwrap();
    assert_eq!(centres.depth, 16);
    let marked: Vec<(usize, u32)> = centres
        .data
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0)
        .map(|(i, &v)| (i, v))
        .collect();
    assert!(!marked.is_empty());
    assert!(marked.iter().all(|&(i, v)| labels.data[i] == v));
    // Current on a second call; a given anisotropy rewrites them.
    assert_eq!(json(d, &["prepare", "centers", "n3dh", "-q"])["written"], 0);
    let again = json(
        d,
        &["prepare", "centers", "n3dh", "-q", "--anisotropy", "1"],
    );
    assert_eq!(
        (again["written"].as_u64(), again["anisotropy"].as_f64()),
        (Some(2), Some(1.0))
    );
}

#[test]
fn bad_3d_input_is_one_line_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d);
    let e = fails(d, &["prepare", "centers", "n3dh", "--anisotropy", "0"]);
    assert!(e.contains("`0`: expected a positive number"), "{e}");
    let e = fails(d, &["prepare", "centers", "n3dh", "--anisotropy", "-2"]);
    assert!(e.contains("positive number"), "{e}");
    let e = fails(d, &["synth", "x", "--3d", "--depth", "4", "-q"]);
    assert!(e.contains("depth ≥ 8"), "{e}");

    let experiment = "defaults = [\"model/erfnet\", \"loss/embedseg\", \"train/quick\"]\n\
                      epochs = 1\n[data]\nroot = \"n3dh\"\nsequences = [\"01\"]\n";
    std::fs::write(d.join("e.toml"), experiment).unwrap();
    let groups = common::repo().join("experiments");
    for sub in ["model", "loss", "train"] {
        let to = d.join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(groups.join(sub)).unwrap().flatten() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    for args in [
        vec!["run", "e.toml", "-q"],
        vec![
            "run",
            "e.toml",
            "-q",
            "data.crop_size=32",
            "cluster.min_size=5",
        ],
    ] {
        let e = fails(d, &args);
        assert!(
            e.contains("is a 3D stack of 16 planes") && e.contains("does not train"),
            "{e}"
        );
    }
    assert!(!d.join("runs").exists() || std::fs::read_dir(d.join("runs")).unwrap().count() == 0);

    // A 2D mask for a stack.
    let mask = d.join("n3dh/01_GT/SEG/man_seg001.tif");
    write_labels(&mask, &Grid::filled(48, 48, 1u32)).unwrap();
    let e = fails(d, &["prepare", "sizes", "n3dh"]);
    assert!(
        e.contains("t001.tif is a 3D stack of 16 planes")
            && e.contains("man_seg001.tif is a 2D image"),
        "{e}"
    );
    // A 2D frame among stacks.
    std::fs::copy(&mask, d.join("n3dh/01/t001.tif")).unwrap();
    for args in [
        vec!["prepare", "sizes", "n3dh"],
        vec!["run", "e.toml", "-q"],
    ] {
        let e = fails(d, &args);
        assert!(e.contains("mix 2D images and 3D stacks"), "{e}");
    }
    assert!(!d.join("runs").exists() || std::fs::read_dir(d.join("runs")).unwrap().count() == 0);
}
