//! `esx synth` and `esx prepare` as a user drives them, on real TIFF files:
//! layout, idempotence, and a one-line error for each kind of bad input.

mod common;

use std::path::Path;
use std::time::SystemTime;

use common::{esx, fails, succeeds};
use esx::data::tiff_io::{read_image, read_labels, write_labels, write_raw, Pixels, RawImage};
use esx::data::Grid;

fn synth(dir: &Path, name: &str, frames: &str) -> std::path::PathBuf {
    succeeds(
        dir,
        &[
            "synth",
            name,
            "--frames",
            frames,
            "--size",
            "96",
            "--sequences",
            "1",
            "-q",
        ],
    );
    dir.join(name)
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn synth_writes_a_deterministic_ctc_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let a = synth(dir.path(), "a", "3");
    let b = synth(dir.path(), "b", "3");
    for rel in ["01/t000.tif", "01/t002.tif", "01_GT/SEG/man_seg001.tif"] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let img = read_image(&a.join("01/t000.tif")).unwrap();
    assert!(matches!(img.pixels, Pixels::U16(_)) && img.width == 96);
    succeeds(
        dir.path(),
        &[
            "synth", "d", "--kind", "dic", "--frames", "1", "--size", "64", "-q",
        ],
    );
    assert!(matches!(
        read_image(&dir.path().join("d/02/t000.tif"))
            .unwrap()
            .pixels,
        Pixels::U8(_)
    ));
}

#[test]
fn centres_and_crops_follow_the_seed_layout_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "2");
    let out = succeeds(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "64", "-q"],
    );
    assert!(out.contains("2 frames: 2 cropped"), "{out}");

    let labels = read_labels(&ds.join("01_GT/SEG/man_seg000.tif")).unwrap();
    let centers = read_labels(&ds.join("01_GT/INSTANCE_CENTERS/man_seg000.tif")).unwrap();
    let ids: std::collections::BTreeSet<u32> =
        labels.data.iter().copied().filter(|&v| v > 0).collect();
    let marked: Vec<(usize, u32)> = centers
        .data
        .iter()
        .copied()
        .enumerate()
        .filter(|p| p.1 > 0)
        .collect();
    assert_eq!(marked.len(), ids.len(), "one centre per instance");
    for &(i, id) in &marked {
        assert_eq!(labels.data[i], id, "centre inside its instance");
    }
    // Every instance has a crop; an instance away from the border sits at the crop's middle.
    let crops = ds.join("TRAIN_CROPS_64x64");
    for &(i, id) in &marked {
        let img = crops.join(format!("01/t000_{id}.tif"));
        let seg = crops.join(format!("01_SEG/man_seg000_{id}.tif"));
        let ctr = crops.join(format!("01_INSTANCE_CENTERS/man_seg000_{id}.tif"));
        assert!(
            img.is_file() && seg.is_file() && ctr.is_file(),
            "crops of {id}"
        );
        let crop_centers = read_labels(&ctr).unwrap();
        assert_eq!((crop_centers.width, crop_centers.height), (64, 64));
        let (y, x) = (i / 96, i % 96);
        if (32..=64).contains(&y) && (32..=64).contains(&x) {
            assert_eq!(crop_centers.get(32, 32), id, "instance {id} centred");
        }
        assert!(crop_centers.data.contains(&id), "its centre is in its crop");
    }
    let crop_img = read_image(&crops.join(format!("01/t000_{}.tif", marked[0].1))).unwrap();
    assert!(
        matches!(crop_img.pixels, Pixels::F32(_)),
        "crops hold normalised float32"
    );

    // Re-running rewrites nothing.
    let probe = crops.join(format!("01/t000_{}.tif", marked[0].1));
    let centre_file = ds.join("01_GT/INSTANCE_CENTERS/man_seg000.tif");
    let (t1, t2) = (mtime(&probe), mtime(&centre_file));
    let out = succeeds(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "64", "-q"],
    );
    assert!(out.contains("0 cropped, 2 already current"), "{out}");
    assert_eq!((mtime(&probe), mtime(&centre_file)), (t1, t2));

    // A different centre method is a change: centres and crops are redone.
    let out = succeeds(
        dir.path(),
        &[
            "prepare",
            "centers",
            "ds",
            "--method",
            "approx-medoid",
            "-q",
        ],
    );
    assert!(out.contains("2 written"), "{out}");
    let out = succeeds(
        dir.path(),
        &[
            "prepare",
            "crops",
            "ds",
            "--crop-size",
            "64",
            "--method",
            "approx-medoid",
            "-q",
        ],
    );
    assert!(out.contains("2 cropped"), "{out}");
}

#[test]
fn missing_sequence_folder() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), "ds", "1");
    let err = fails(
        dir.path(),
        &["prepare", "centers", "ds", "--sequences", "07"],
    );
    assert!(
        err.contains("ds/07") && err.contains("sequences here: 01"),
        "{err}"
    );
    let err = fails(dir.path(), &["prepare", "centers", "nowhere"]);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn image_and_mask_of_different_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "1");
    write_raw(
        &ds.join("01/t000.tif"),
        &RawImage {
            width: 50,
            height: 40,
            pixels: Pixels::U8(vec![1; 2000]),
        },
    )
    .unwrap();
    let err = fails(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "32", "-q"],
    );
    assert!(
        err.contains("01/t000.tif is 50×40") && err.contains("man_seg000.tif is 96×96"),
        "{err}"
    );
}

#[test]
fn a_mask_without_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "2");
    std::fs::remove_file(ds.join("01/t001.tif")).unwrap();
    let err = fails(dir.path(), &["prepare", "centers", "ds"]);
    assert!(
        err.contains("man_seg001.tif has no image") && err.contains("01/t001.tif"),
        "{err}"
    );
}

#[test]
fn corrupt_and_truncated_tiffs() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "2");
    std::fs::write(ds.join("01_GT/SEG/man_seg000.tif"), b"not a tiff at all").unwrap();
    let err = fails(dir.path(), &["prepare", "centers", "ds", "-q"]);
    assert!(err.contains("man_seg000.tif: not a readable TIFF"), "{err}");
    let ds2 = synth(dir.path(), "ds2", "1");
    let img = ds2.join("01/t000.tif");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() / 3]).unwrap();
    let err = fails(
        dir.path(),
        &["prepare", "crops", "ds2", "--crop-size", "32", "-q"],
    );
    assert!(err.contains("ds2/01/t000.tif"), "{err}");
}

#[test]
fn an_rgb_image_and_a_stack_mask_for_a_2d_image_are_one_line_each() {
    use tiff::encoder::{colortype, TiffEncoder};
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "1");
    let f = std::fs::File::create(ds.join("01/t000.tif")).unwrap();
    TiffEncoder::new(f)
        .unwrap()
        .write_image::<colortype::RGB8>(96, 96, &vec![7u8; 96 * 96 * 3])
        .unwrap();
    let err = fails(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "32", "-q"],
    );
    assert!(err.contains("t000.tif: unsupported: an RGB image"), "{err}");

    let ds = synth(dir.path(), "ds2", "1");
    let mut enc =
        TiffEncoder::new(std::fs::File::create(ds.join("01_GT/SEG/man_seg000.tif")).unwrap())
            .unwrap();
    for _ in 0..2 {
        enc.write_image::<colortype::Gray16>(96, 96, &vec![1u16; 96 * 96])
            .unwrap();
    }
    drop(enc);
    let err = fails(dir.path(), &["prepare", "centers", "ds2", "-q"]);
    assert!(
        err.contains("t000.tif is a 2D image but its mask")
            && err.contains("man_seg000.tif is a 3D stack of 2 planes"),
        "{err}"
    );
}

#[test]
fn crop_larger_than_every_image_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), "ds", "2");
    let err = fails(
        dir.path(),
        &[
            "prepare",
            "crops",
            "ds",
            "--crop-size",
            "128",
            "--no-pad",
            "-q",
        ],
    );
    assert!(
        err.contains("crop size 128 is larger than every image (largest 96×96)"),
        "{err}"
    );
    // With padding (the default) it works, and the padding is reflected.
    let out = succeeds(
        dir.path(),
        &["prepare", "crops", "ds", "--crop-size", "128", "-q"],
    );
    assert!(out.contains("2 cropped"), "{out}");
}

#[test]
fn an_empty_mask_is_warned_about_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth(dir.path(), "ds", "2");
    write_labels(
        &ds.join("01_GT/SEG/man_seg001.tif"),
        &Grid::filled(96, 96, 0u32),
    )
    .unwrap();
    let out = esx(dir.path())
        .args(["prepare", "crops", "ds", "--crop-size", "32", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("man_seg001.tif: no instances in the mask; skipped"),
        "{stderr}"
    );
    assert!(!ds
        .join("TRAIN_CROPS_32x32/01")
        .read_dir()
        .unwrap()
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("t001_")
        }));
}
