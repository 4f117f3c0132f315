//! Copies of what a run recorded, as plain files.

use std::path::{Path, PathBuf};

use super::query::{image_pngs, images};
use super::StoreError;

/// Writes every picture of a run as `out/epochNNN_KIND.png`; returns the paths.
pub fn write_images(run_dir: &Path, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
    std::fs::create_dir_all(out).map_err(|e| StoreError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let infos = images(run_dir)?;
    let ids: Vec<i64> = infos.iter().map(|i| i.id).collect();
    let mut written = Vec::new();
    for (info, png) in infos.iter().zip(image_pngs(run_dir, &ids)?) {
        let path = out.join(format!("epoch{:03}_{}.png", info.epoch, info.kind));
        crate::output::write(&path, &png).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e,
        })?;
        written.push(path);
    }
    Ok(written)
}
