//! Copies of what a run recorded, as plain files.

use std::path::{Path, PathBuf};

use super::query::{image_png, images};
use super::StoreError;

/// Writes every picture of a run as `out/epochNNN_KIND.png`; returns the paths.
pub fn write_images(run_dir: &Path, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
    std::fs::create_dir_all(out).map_err(|e| StoreError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let mut written = Vec::new();
    for info in images(run_dir)? {
        let path = out.join(format!("epoch{:03}_{}.png", info.epoch, info.kind));
        std::fs::write(&path, image_png(run_dir, info.id)?).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e,
        })?;
        written.push(path);
    }
    Ok(written)
}
