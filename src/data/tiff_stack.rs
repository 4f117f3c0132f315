//! 3D TIFF stacks: one greyscale page per z plane (ZYX, the Cell Tracking
//! Challenge's Fluo-N3DH-* layout; ImageJ hyperstacks with one channel and
//! one time point), and the voxel spacing ImageJ records: `spacing=` in the
//! image description (z) and the XResolution tag (pixels per unit in xy).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use tiff::decoder::ifd::Value;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{colortype, Rational, TiffEncoder};
use tiff::tags::{ResolutionUnit, Tag};
use tiff::ColorType;

use super::tiff_io::{image_budget, labels_of, limits, pixels_of, write_atomically};
use super::volume::{Spacing, Volume};
use super::DataError;

/// The number of pages (z planes) of a TIFF: 1 for a 2D image.
pub fn depth(path: &Path) -> Result<usize, DataError> {
    Ok(stack_header(path)?.0)
}

/// The number of pages and the voxel spacing where the file says it, from
/// the headers alone (no pixel is decoded).
pub fn stack_header(path: &Path) -> Result<(usize, Option<Spacing>), DataError> {
    let mut dec = open(path, image_budget())?;
    let spacing = spacing(&mut dec);
    let mut pages = 1;
    while dec.more_images() {
        dec.next_image().map_err(|e| tiff_err(path, e))?;
        pages += 1;
    }
    Ok((pages, spacing))
}

/// A greyscale stack as float32, and its spacing where the file says it.
pub fn read_stack(path: &Path) -> Result<(Volume<f32>, Option<Spacing>), DataError> {
    let (w, h, pages, spacing) = decode_pages(path)?;
    let mut data = Vec::with_capacity(w * h * pages.len());
    for page in pages {
        data.extend(pixels_of(path, page)?.to_f32());
    }
    check_len(path, w, h, data.len())?;
    let d = data.len() / (w * h);
    Ok((Volume::new(d, h, w, data), spacing))
}

/// An instance label volume (unsigned integer labels; 0 is background).
pub fn read_label_stack(path: &Path) -> Result<Volume<u32>, DataError> {
    let (w, h, pages, _) = decode_pages(path)?;
    let mut data = Vec::with_capacity(w * h * pages.len());
    for page in pages {
        data.extend(labels_of(path, page)?);
    }
    check_len(path, w, h, data.len())?;
    let d = data.len() / (w * h);
    Ok(Volume::new(d, h, w, data))
}

/// Writes labels as a uint16 stack (uint32 where a label needs it), with
/// ImageJ's description and, given a spacing, its calibration.
pub fn write_label_stack(
    path: &Path,
    labels: &Volume<u32>,
    spacing: Option<Spacing>,
) -> Result<(), DataError> {
    if labels.data.iter().all(|&v| v <= u16::MAX as u32) {
        let data: Vec<u16> = labels.data.iter().map(|&v| v as u16).collect();
        write_pages::<colortype::Gray16>(path, labels, &data, spacing)
    } else {
        write_pages::<colortype::Gray32>(path, labels, &labels.data, spacing)
    }
}

/// Writes a float32 stack, with ImageJ's description and calibration.
pub fn write_stack_f32(
    path: &Path,
    image: &Volume<f32>,
    spacing: Option<Spacing>,
) -> Result<(), DataError> {
    write_pages::<colortype::Gray32Float>(path, image, &image.data, spacing)
}

fn write_pages<C: colortype::ColorType>(
    path: &Path,
    shape: &Volume<impl Copy + Default>,
    data: &[C::Inner],
    spacing: Option<Spacing>,
) -> Result<(), DataError>
where
    [C::Inner]: tiff::encoder::TiffValue,
{
    let (w, h, d) = (shape.width as u32, shape.height as u32, shape.depth);
    let plane = shape.width * shape.height;
    let mut description = format!("ImageJ=1.11a\nimages={d}\nslices={d}\n");
    if let Some(s) = spacing {
        description.push_str(&format!("unit=micron\nspacing={}\n", s.z));
    }
    description.push_str("loop=false\n");
    write_atomically(path, |out| {
        let mut enc = TiffEncoder::new(out)?;
        for z in 0..d {
            let mut image = enc.new_image::<C>(w, h)?;
            if z == 0 {
                image
                    .encoder()
                    .write_tag(Tag::ImageDescription, description.as_str())?;
            }
            if let Some(s) = spacing {
                image.resolution(ResolutionUnit::None, per_unit(s.xy));
            }
            image.write_data(&data[z * plane..(z + 1) * plane])?;
        }
        Ok(())
    })
}

/// Pixels per unit as a rational (six decimals).
fn per_unit(xy: f64) -> Rational {
    Rational {
        n: (1e6 / xy).round() as u32,
        d: 1_000_000,
    }
}

fn tiff_err(path: &Path, e: tiff::TiffError) -> DataError {
    DataError::Tiff {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn open(path: &Path, budget: u64) -> Result<Decoder<BufReader<File>>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(Decoder::new(BufReader::new(file))
        .map_err(|e| tiff_err(path, e))?
        .with_limits(limits(budget)))
}

/// Every page, each of the first page's size and single-channel, within the
/// memory budget as float32 (checked before each page is decoded).
fn decode_pages(
    path: &Path,
) -> Result<(usize, usize, Vec<DecodingResult>, Option<Spacing>), DataError> {
    let budget = image_budget();
    let mut dec = open(path, budget)?;
    let (w, h) = dec.dimensions().map_err(|e| tiff_err(path, e))?;
    let spacing = spacing(&mut dec);
    let mut pages = Vec::new();
    loop {
        let z = pages.len();
        let size = dec.dimensions().map_err(|e| tiff_err(path, e))?;
        if size != (w, h) {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: format!(
                    "plane {z} is {}×{} but plane 0 is {w}×{h}; a stack's planes share one size",
                    size.0, size.1
                ),
            });
        }
        match dec.colortype().map_err(|e| tiff_err(path, e))? {
            ColorType::Gray(_) => {}
            other => {
                return Err(DataError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "plane {z} has colour type {other:?}; esx needs single-channel greyscale stacks"
                    ),
                })
            }
        }
        let bytes = (z as u64 + 1) * w as u64 * h as u64 * 4;
        if bytes > budget {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                what: format!(
                    "a stack of more than {z} planes of {w}×{h} ({} MB as float32)",
                    bytes / 1_000_000
                ),
                budget_mb: budget / 1_000_000,
            });
        }
        pages.push(dec.read_image().map_err(|e| tiff_err(path, e))?);
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| tiff_err(path, e))?;
    }
    Ok((w as usize, h as usize, pages, spacing))
}

/// ImageJ's calibration of the first page: z from `spacing=` in the
/// description, xy from XResolution (1 where absent). None without a
/// usable z spacing.
fn spacing(dec: &mut Decoder<BufReader<File>>) -> Option<Spacing> {
    let description = dec.get_tag_ascii_string(Tag::ImageDescription).ok()?;
    let z = description
        .lines()
        .find_map(|l| l.trim().strip_prefix("spacing="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|z| z.is_finite() && *z > 0.0)?;
    let xy = match dec.find_tag(Tag::XResolution).ok().flatten() {
        Some(Value::Rational(n, d)) if n > 0 && d > 0 => d as f64 / n as f64,
        _ => 1.0,
    };
    Some(Spacing { z, xy })
}

fn check_len(path: &Path, w: usize, h: usize, n: usize) -> Result<(), DataError> {
    if n == 0 || !n.is_multiple_of(w * h) {
        return Err(DataError::Tiff {
            path: path.to_path_buf(),
            why: format!(
                "expected planes of {w}×{h} samples, found {n} samples (truncated or multi-sample)"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tiff_io::{read_labels, write_labels};
    use crate::data::Grid;

    fn labels() -> Volume<u32> {
        let mut v = Volume::filled(5, 6, 7, 0u32);
        for z in 1..4 {
            for y in 2..5 {
                for x in 1..6 {
                    v.set(z, y, x, if x < 3 { 1 } else { 70_000 + z as u32 });
                }
            }
        }
        v
    }

    #[test]
    fn stacks_round_trip_with_their_spacing() {
        let dir = tempfile::tempdir().unwrap();
        let spacing = Spacing { z: 2.5, xy: 0.5 };
        let p = dir.path().join("mask.tif");
        let v = labels();
        write_label_stack(&p, &v, Some(spacing)).unwrap();
        assert_eq!(read_label_stack(&p).unwrap(), v);
        assert_eq!(depth(&p).unwrap(), 5);

        let img = Volume::new(3, 4, 2, (0..24).map(|k| k as f32 * 0.5).collect());
        let q = dir.path().join("image.tif");
        write_stack_f32(&q, &img, Some(spacing)).unwrap();
        let (back, s) = read_stack(&q).unwrap();
        assert_eq!(back, img);
        let s = s.unwrap();
        assert_eq!((s.z, s.xy), (2.5, 0.5));
        assert_eq!(s.anisotropy(), 5.0);

        // No calibration: no spacing; a plane's worth of labels fits u16.
        write_stack_f32(&q, &img, None).unwrap();
        assert_eq!(read_stack(&q).unwrap().1, None);
        let small = Volume::new(2, 1, 2, vec![0, 1, 2, 65_535]);
        write_label_stack(&p, &small, None).unwrap();
        assert_eq!(read_label_stack(&p).unwrap(), small);
    }

    /// A stack written by another implementation (tifffile, as ImageJ
    /// writes hyperstacks; tools/reference/make_stack_fixture.py) reads as
    /// it wrote it, spacing included.
    #[test]
    fn reads_an_imagej_hyperstack_written_by_tifffile() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stack");
        let v = read_label_stack(&dir.join("imagej_zyx.tif")).unwrap();
        let want: Vec<u32> = std::fs::read_to_string(dir.join("imagej_zyx.txt"))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!((v.depth, v.height, v.width), (3, 4, 5));
        assert_eq!(v.data, want);
        let (_, spacing) = read_stack(&dir.join("imagej_zyx.tif")).unwrap();
        assert_eq!(spacing, Some(Spacing { z: 2.5, xy: 0.5 }));
    }

    /// A 2D image is a stack of depth 1, so one reader serves both.
    #[test]
    fn a_2d_image_is_a_stack_of_one_plane() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("frame.tif");
        let g = Grid::new(3, 2, vec![0u32, 1, 1, 0, 2, 2]);
        write_labels(&p, &g).unwrap();
        assert_eq!(depth(&p).unwrap(), 1);
        let v = read_label_stack(&p).unwrap();
        assert_eq!((v.depth, v.height, v.width), (1, 2, 3));
        assert_eq!(v.data, g.data);
        assert_eq!(read_labels(&p).unwrap(), g);
    }

    /// Planes of different sizes, and an RGB plane, are refused by name.
    #[test]
    fn planes_that_differ_are_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mixed.tif");
        write_atomically(&p, |out| {
            let mut enc = TiffEncoder::new(out)?;
            enc.write_image::<colortype::Gray16>(4, 4, &[0u16; 16])?;
            enc.write_image::<colortype::Gray16>(4, 3, &[0u16; 12])?;
            Ok(())
        })
        .unwrap();
        let err = read_label_stack(&p).unwrap_err().to_string();
        assert!(
            err.contains("mixed.tif") && err.contains("plane 1 is 4×3"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);

        write_atomically(&p, |out| {
            let mut enc = TiffEncoder::new(out)?;
            enc.write_image::<colortype::Gray8>(2, 2, &[0u8; 4])?;
            enc.write_image::<colortype::RGB8>(2, 2, &[0u8; 12])?;
            Ok(())
        })
        .unwrap();
        let err = read_stack(&p).unwrap_err().to_string();
        assert!(err.contains("plane 1 has colour type RGB"), "{err}");
    }
}
