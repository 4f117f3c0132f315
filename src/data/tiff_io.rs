//! Single-channel 2D TIFF images and label masks, through the `tiff` crate.
//! Anything else (RGB, stacks, unusual sample formats) is refused by name.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::{colortype, TiffEncoder};
use tiff::ColorType;

use super::{DataError, Grid};

/// Pixels as stored, before normalisation.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

/// An image as read from disk.
#[derive(Clone, Debug, PartialEq)]
pub struct RawImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Pixels,
}

impl Pixels {
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Pixels::U8(v) => v.iter().map(|&x| x as f32).collect(),
            Pixels::U16(v) => v.iter().map(|&x| x as f32).collect(),
            Pixels::F32(v) => v.clone(),
        }
    }
}

impl RawImage {
    pub fn to_f32(&self) -> Grid<f32> {
        Grid::new(self.width, self.height, self.pixels.to_f32())
    }
}

fn decode(path: &Path) -> Result<(usize, usize, DecodingResult), DataError> {
    let (w, h, channels, data) = decode_any(path)?;
    if channels != 1 {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "an RGB image; esx needs single-channel greyscale (convert it first)".into(),
        });
    }
    Ok((w, h, data))
}

/// Width, height, interleaved channels (1 grey, 3 RGB, 4 RGBA) and samples.
fn decode_any(path: &Path) -> Result<(usize, usize, usize, DecodingResult), DataError> {
    let tiff_err = |e: tiff::TiffError| DataError::Tiff {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let budget = image_budget();
    let mut dec = Decoder::new(BufReader::new(file))
        .map_err(tiff_err)?
        .with_limits(limits(budget));
    let (w, h) = dec.dimensions().map_err(tiff_err)?;
    let colortype = dec.colortype().map_err(tiff_err)?;
    // Sized from the header before anything is allocated: a header that
    // claims 50,000² pixels (or a small deflated file that would inflate to
    // gigabytes) is refused by name. As float32, which esx works in.
    let samples = w as u64 * h as u64 * colortype.num_samples() as u64;
    if samples * 4 > budget {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: format!(
                "a {w}×{h} image ({} MB as float32)",
                samples * 4 / 1_000_000
            ),
            budget_mb: budget / 1_000_000,
        });
    }
    let channels = match colortype {
        ColorType::Gray(_) => 1,
        ColorType::RGB(_) => 3,
        ColorType::RGBA(_) => 4,
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: format!("colour type {other:?}; esx needs single-channel greyscale"),
            })
        }
    };
    let data = dec.read_image().map_err(tiff_err)?;
    if dec.more_images() {
        let mut planes = 1;
        while dec.more_images() && dec.next_image().is_ok() {
            planes += 1;
        }
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: format!("a 3D stack of {planes} planes; esx handles 2D images"),
        });
    }
    Ok((w as usize, h as usize, channels, data))
}

/// The most bytes one decoded image may take: a quarter of the memory
/// available now (/proc/meminfo), at least 64 MB. Decoding and the
/// conversions after it hold a few copies.
pub fn image_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024);
    (available / 4).max(64 << 20)
}

pub(super) fn limits(budget: u64) -> Limits {
    let mut l = Limits::default();
    l.decoding_buffer_size = budget as usize;
    l.intermediate_buffer_size = budget as usize;
    l.ifd_value_size = 64 << 20;
    l
}

/// Width and height from the header alone.
pub fn dimensions(path: &Path) -> Result<(usize, usize), DataError> {
    let tiff_err = |e: tiff::TiffError| DataError::Tiff {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut dec = Decoder::new(BufReader::new(file))
        .map_err(tiff_err)?
        .with_limits(limits(image_budget()));
    let (w, h) = dec.dimensions().map_err(tiff_err)?;
    Ok((w as usize, h as usize))
}

/// Reads a greyscale image: uint8, uint16 or float (other integer types are
/// converted to float32).
pub fn read_image(path: &Path) -> Result<RawImage, DataError> {
    let (width, height, data) = decode(path)?;
    let pixels = pixels_of(path, data)?;
    check_len(path, width, height, pixels_len(&pixels))?;
    Ok(RawImage {
        width,
        height,
        pixels,
    })
}

/// Greyscale samples as esx keeps them: uint8 and uint16 as they are,
/// other numbers as float32 (which must be finite).
pub(super) fn pixels_of(path: &Path, data: DecodingResult) -> Result<Pixels, DataError> {
    let pixels = match data {
        DecodingResult::U8(v) => Pixels::U8(v),
        DecodingResult::U16(v) => Pixels::U16(v),
        DecodingResult::F32(v) => Pixels::F32(v),
        DecodingResult::F64(v) => Pixels::F32(v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I8(v) => Pixels::F32(v.into_iter().map(f32::from).collect()),
        DecodingResult::I16(v) => Pixels::F32(v.into_iter().map(f32::from).collect()),
        DecodingResult::U32(v) => Pixels::F32(v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I32(v) => Pixels::F32(v.into_iter().map(|x| x as f32).collect()),
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: format!("sample format {}", sample_name(&other)),
            })
        }
    };
    if let Pixels::F32(v) = &pixels {
        check_finite(path, v)?;
    }
    Ok(pixels)
}

/// Float images must hold numbers: one NaN makes every crop of its frame
/// NaN, and training then fails far from the cause (or predict finds
/// nothing). Refused, naming the image and how many pixels.
fn check_finite(path: &Path, values: &[f32]) -> Result<(), DataError> {
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(DataError::NonFinite {
            path: path.to_path_buf(),
            bad,
            total: values.len(),
        });
    }
    Ok(())
}

/// Reads an image for prediction: greyscale as `read_image`, RGB(A) turned
/// into luminance (0.299 R + 0.587 G + 0.114 B, alpha ignored). The flag says
/// whether a conversion happened, so the caller can warn.
pub fn read_image_as_grey(path: &Path) -> Result<(RawImage, bool), DataError> {
    let (width, height, channels, data) = decode_any(path)?;
    if channels == 1 {
        return Ok((read_image(path)?, false));
    }
    let values: Vec<f32> = match data {
        DecodingResult::U8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::F32(v) => v,
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: format!("RGB sample format {}", sample_name(&other)),
            })
        }
    };
    check_len(path, width, height, values.len() / channels)?;
    check_finite(path, &values)?;
    let grey = values
        .chunks_exact(channels)
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect();
    Ok((
        RawImage {
            width,
            height,
            pixels: Pixels::F32(grey),
        },
        true,
    ))
}

/// Reads an instance label mask (uint8, uint16 or uint32; 0 is background).
pub fn read_labels(path: &Path) -> Result<Grid<u32>, DataError> {
    let (width, height, data) = decode(path)?;
    let labels = labels_of(path, data)?;
    check_len(path, width, height, labels.len())?;
    Ok(Grid::new(width, height, labels))
}

/// Label samples as u32: unsigned integers, or signed ones without a
/// negative value.
pub(super) fn labels_of(path: &Path, data: DecodingResult) -> Result<Vec<u32>, DataError> {
    Ok(match data {
        DecodingResult::U8(v) => v.into_iter().map(u32::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(u32::from).collect(),
        DecodingResult::U32(v) => v,
        DecodingResult::I16(v) if v.iter().all(|&x| x >= 0) => {
            v.into_iter().map(|x| x as u32).collect()
        }
        DecodingResult::I32(v) if v.iter().all(|&x| x >= 0) => {
            v.into_iter().map(|x| x as u32).collect()
        }
        other => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: format!(
                    "a label mask of sample format {}; masks are unsigned integer labels",
                    sample_name(&other)
                ),
            })
        }
    })
}

fn check_len(path: &Path, w: usize, h: usize, n: usize) -> Result<(), DataError> {
    if n != w * h || n == 0 {
        return Err(DataError::Tiff {
            path: path.to_path_buf(),
            why: format!("expected {w}×{h} samples, found {n} (truncated or multi-sample)"),
        });
    }
    Ok(())
}

pub(super) fn pixels_len(p: &Pixels) -> usize {
    match p {
        Pixels::U8(v) => v.len(),
        Pixels::U16(v) => v.len(),
        Pixels::F32(v) => v.len(),
    }
}

fn sample_name(d: &DecodingResult) -> &'static str {
    match d {
        DecodingResult::U8(_) => "uint8",
        DecodingResult::U16(_) => "uint16",
        DecodingResult::U32(_) => "uint32",
        DecodingResult::U64(_) => "uint64",
        DecodingResult::I8(_) => "int8",
        DecodingResult::I16(_) => "int16",
        DecodingResult::I32(_) => "int32",
        DecodingResult::I64(_) => "int64",
        DecodingResult::F16(_) => "float16",
        DecodingResult::F32(_) => "float32",
        DecodingResult::F64(_) => "float64",
    }
}

/// Writes through a uniquely named temporary file and renames, so readers
/// never see half a file and concurrent writers never collide.
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> tiff::TiffResult<()>,
) -> Result<(), DataError> {
    let target = crate::output::target(path).map_err(|e| DataError::io(path, e))?;
    let path = target.as_path();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let tmp = crate::output::shared_temp_file(parent).map_err(|e| DataError::io(parent, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut out = BufWriter::new(file);
    write(&mut out).map_err(|e| DataError::Tiff {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    out.into_inner()
        .map_err(|e| DataError::io(&tmp_path, e.into_error()))?
        .sync_data()
        .ok();
    tmp_path
        .persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// Writes labels as uint16 (CTC's format); larger labels as uint32.
pub fn write_labels(path: &Path, labels: &Grid<u32>) -> Result<(), DataError> {
    let (w, h) = (labels.width as u32, labels.height as u32);
    write_atomically(path, |out| {
        let mut enc = TiffEncoder::new(out)?;
        if labels.data.iter().all(|&v| v <= u16::MAX as u32) {
            let data: Vec<u16> = labels.data.iter().map(|&v| v as u16).collect();
            enc.write_image::<colortype::Gray16>(w, h, &data)
        } else {
            enc.write_image::<colortype::Gray32>(w, h, &labels.data)
        }
    })
}

pub fn write_f32(path: &Path, image: &Grid<f32>) -> Result<(), DataError> {
    let (w, h) = (image.width as u32, image.height as u32);
    write_atomically(path, |out| {
        TiffEncoder::new(out)?.write_image::<colortype::Gray32Float>(w, h, &image.data)
    })
}

pub fn write_raw(path: &Path, image: &RawImage) -> Result<(), DataError> {
    let (w, h) = (image.width as u32, image.height as u32);
    write_atomically(path, |out| {
        let mut enc = TiffEncoder::new(out)?;
        match &image.pixels {
            Pixels::U8(v) => enc.write_image::<colortype::Gray8>(w, h, v),
            Pixels::U16(v) => enc.write_image::<colortype::Gray16>(w, h, v),
            Pixels::F32(v) => enc.write_image::<colortype::Gray32Float>(w, h, v),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_sample_format() {
        let dir = tempfile::tempdir().unwrap();
        for pixels in [
            Pixels::U8(vec![0, 7, 255, 3, 4, 5]),
            Pixels::U16(vec![0, 700, 65535, 3, 4, 5]),
            Pixels::F32(vec![0.0, -1.5, 3.25, 1e6, 4.0, 5.0]),
        ] {
            let img = RawImage {
                width: 3,
                height: 2,
                pixels,
            };
            let p = dir.path().join("x.tif");
            write_raw(&p, &img).unwrap();
            assert_eq!(read_image(&p).unwrap(), img);
        }
        let labels = Grid::new(2, 2, vec![0, 1, 70000, 2]);
        let p = dir.path().join("l.tif");
        write_labels(&p, &labels).unwrap();
        assert_eq!(read_labels(&p).unwrap(), labels);
    }

    #[test]
    fn refuses_rgb_stacks_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let rgb = dir.path().join("rgb.tif");
        let f = File::create(&rgb).unwrap();
        TiffEncoder::new(f)
            .unwrap()
            .write_image::<colortype::RGB8>(2, 1, &[1, 2, 3, 4, 5, 6])
            .unwrap();
        assert!(read_image(&rgb).unwrap_err().to_string().contains("RGB"));
        let (grey, converted) = read_image_as_grey(&rgb).unwrap();
        assert!(converted);
        let expect = [
            0.299 * 1.0 + 0.587 * 2.0 + 0.114 * 3.0,
            0.299 * 4.0 + 0.587 * 5.0 + 0.114 * 6.0,
        ];
        assert_eq!(grey.pixels, Pixels::F32(expect.to_vec()));

        let stack = dir.path().join("stack.tif");
        let mut enc = TiffEncoder::new(File::create(&stack).unwrap()).unwrap();
        for _ in 0..3 {
            enc.write_image::<colortype::Gray8>(2, 2, &[1, 2, 3, 4])
                .unwrap();
        }
        drop(enc);
        let e = read_image(&stack).unwrap_err().to_string();
        assert!(
            e.contains("3D stack of 3 planes") && e.contains("stack.tif"),
            "{e}"
        );

        let junk = dir.path().join("junk.tif");
        std::fs::write(&junk, b"II*\0garbage").unwrap();
        assert!(read_image(&junk)
            .unwrap_err()
            .to_string()
            .contains("junk.tif"));

        let good = dir.path().join("good.tif");
        write_raw(
            &good,
            &RawImage {
                width: 64,
                height: 64,
                pixels: Pixels::U16(vec![9; 4096]),
            },
        )
        .unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.tif");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_image(&cut).is_err(), "a truncated TIFF is an error");
    }
}
