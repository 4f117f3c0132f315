//! What preparing crops will write and hold, checked before it starts: a
//! crop size far beyond the frames (all padding), crops that would not fit
//! the free disk, or frames padded beyond the memory at hand are refused
//! in one line naming `data.crop_size`, before anything is written.

use std::path::Path;

use rayon::prelude::*;

use super::ctc::Frame;
use super::tiff_io::{dimensions, read_labels};
use super::DataError;

/// Bytes a crop's three files take per pixel at most: the image as f32,
/// labels and centres as u32.
const BYTES_PER_PIXEL: u64 = 12;

/// A TIFF's header and tags, per file.
const FILE_OVERHEAD: u64 = 1024;

/// What the filesystem must keep free beyond the crops: a tenth of what is
/// free, at most 256 MB.
fn disk_margin(free: u64) -> u64 {
    (free / 10).min(256 << 20)
}

/// The largest crop for frames whose largest side is `side`: twice it
/// (the rest padding), a multiple of 8.
pub fn largest_crop(side: usize) -> usize {
    (2 * side).div_ceil(8) * 8
}

/// Bytes free to an unprivileged writer on the filesystem holding `path`
/// (or its nearest existing ancestor).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut at = path;
    while !at.exists() {
        at = at.parent()?;
    }
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct statvfs to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Memory available now (/proc/meminfo's MemAvailable), if known.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Refuses a crop size the dataset's `frames` cannot sensibly take, and
/// cropping `stale` frames into `dir` where disk or memory cannot hold it.
pub fn check_crops(
    frames: &[Frame],
    stale: &[&Frame],
    crop: usize,
    dir: &Path,
) -> Result<(), DataError> {
    let mut largest = (0, 0);
    for f in frames {
        let (w, h) = dimensions(&f.image)?;
        if w.max(h) > largest.0.max(largest.1) {
            largest = (w, h);
        }
    }
    let limit = largest_crop(largest.0.max(largest.1));
    if crop > limit {
        return Err(DataError::CropBeyondFrames {
            crop,
            w: largest.0,
            h: largest.1,
            limit,
        });
    }
    if stale.is_empty() {
        return Ok(());
    }
    // One crop per instance of every frame to crop.
    let instances: Vec<Result<u64, DataError>> = stale
        .par_iter()
        .map(|f| {
            let labels = read_labels(&f.mask)?;
            let mut ids: Vec<u32> = labels.data.iter().copied().filter(|&v| v != 0).collect();
            ids.sort_unstable();
            ids.dedup();
            Ok(ids.len() as u64)
        })
        .collect();
    let crops: u64 = instances.into_iter().sum::<Result<u64, DataError>>()?;
    let pixels = (crop * crop) as u64;
    let need = crops * (pixels * BYTES_PER_PIXEL + 3 * FILE_OVERHEAD);
    if let Some(free) = free_bytes(dir) {
        if need + disk_margin(free) > free {
            return Err(DataError::DiskBudget {
                crop,
                crops,
                need_mb: mb(need),
                free_mb: mb(free),
                path: dir.to_path_buf(),
            });
        }
    }
    // Each frame in flight holds its padded copy (image, labels, centres)
    // and one crop's windows.
    let mut frame_pixels = 0u64;
    for f in stale {
        let (w, h) = dimensions(&f.image)?;
        frame_pixels = frame_pixels.max((w.max(crop) * h.max(crop)) as u64);
    }
    let in_flight = rayon::current_num_threads().min(stale.len()) as u64;
    let hold = in_flight * (frame_pixels + pixels) * BYTES_PER_PIXEL * 2;
    if let Some(available) = available_memory() {
        if hold > available / 2 {
            return Err(DataError::MemoryBudget {
                crop,
                need_mb: mb(hold),
                available_mb: mb(available),
                frames: in_flight as usize,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_crop_is_twice_the_largest_side_in_eights() {
        assert_eq!(largest_crop(32), 64);
        assert_eq!(largest_crop(250), 504);
        assert_eq!(largest_crop(1), 8);
    }

    #[test]
    fn free_bytes_of_a_path_not_made_yet_is_its_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let here = free_bytes(dir.path()).unwrap();
        let deep = free_bytes(&dir.path().join("a/b/c")).unwrap();
        // The same filesystem (others may write meanwhile: within 64 MB).
        assert!(
            here > 0 && here.abs_diff(deep) < 64 << 20,
            "{here} vs {deep}"
        );
    }
}
