//! Instance centres in label volumes: the voxel the offsets of an instance
//! should point to, with distances in physical proportions (z scaled by the
//! anisotropy, EmbedSeg's `anisotropy_factor`).

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::centers::median;
use super::medoid_3d::{medoid_3d, Point};
use super::volume::Volume;
use crate::config::CenterMethod;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Center3d {
    pub id: u32,
    pub z: usize,
    pub y: usize,
    pub x: usize,
    /// False only for a centroid that falls outside its (non-convex) instance.
    pub inside: bool,
}

/// Each instance's voxels in z-major order, by id.
pub fn instance_voxels(labels: &Volume<u32>) -> BTreeMap<u32, Vec<[u32; 3]>> {
    let mut out: BTreeMap<u32, Vec<[u32; 3]>> = BTreeMap::new();
    let (h, w) = (labels.height, labels.width);
    for (k, &id) in labels.data.iter().enumerate() {
        if id != 0 {
            let (z, r) = (k / (h * w), k % (h * w));
            out.entry(id)
                .or_default()
                .push([z as u32, (r / w) as u32, (r % w) as u32]);
        }
    }
    out
}

/// The centre of every instance, instances in parallel.
pub fn centers_3d(labels: &Volume<u32>, anisotropy: f64, method: CenterMethod) -> Vec<Center3d> {
    let instances: Vec<(u32, Vec<[u32; 3]>)> = instance_voxels(labels).into_iter().collect();
    instances
        .par_iter()
        .map(|(id, voxels)| center_of(*id, voxels, labels, anisotropy, method))
        .collect()
}

fn center_of(
    id: u32,
    voxels: &[[u32; 3]],
    labels: &Volume<u32>,
    anisotropy: f64,
    method: CenterMethod,
) -> Center3d {
    let points: Vec<Point> = voxels
        .iter()
        .map(|v| [v[0] as f64 * anisotropy, v[1] as f64, v[2] as f64])
        .collect();
    let pick = |i: usize| Center3d {
        id,
        z: voxels[i][0] as usize,
        y: voxels[i][1] as usize,
        x: voxels[i][2] as usize,
        inside: true,
    };
    match method {
        CenterMethod::Medoid => pick(medoid_3d(&points)),
        CenterMethod::ApproxMedoid => {
            // EmbedSeg's: the voxel nearest the coordinate-wise median.
            let m: Point =
                std::array::from_fn(|a| median(&points.iter().map(|p| p[a]).collect::<Vec<_>>()));
            let d = |p: &Point| (0..3).map(|a| (p[a] - m[a]).powi(2)).sum::<f64>();
            let i = (0..points.len())
                .min_by(|&a, &b| d(&points[a]).total_cmp(&d(&points[b])))
                .expect("an instance has voxels");
            pick(i)
        }
        CenterMethod::Centroid => {
            let n = voxels.len() as f64;
            let mean =
                |a: usize| (voxels.iter().map(|v| v[a] as f64).sum::<f64>() / n).round() as usize;
            let (z, y, x) = (mean(0), mean(1), mean(2));
            Center3d {
                id,
                z,
                y,
                x,
                inside: labels.get(z, y, x) == id,
            }
        }
    }
}

/// The centre volume: 0 everywhere, the instance id at its centre voxel. A
/// centre outside its instance is left out (the loss then uses the mean).
pub fn center_volume(shape: (usize, usize, usize), centers: &[Center3d]) -> Volume<u32> {
    let mut v = Volume::filled(shape.0, shape.1, shape.2, 0u32);
    for c in centers.iter().filter(|c| c.inside) {
        v.set(c.z, c.y, c.x, c.id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::medoid_3d::medoid_3d_brute_force;

    /// A volume with two instances: a solid box (id 4) and a U whose centroid
    /// lies in its gap (id 9).
    fn two_instances() -> Volume<u32> {
        let mut v = Volume::filled(6, 8, 12, 0u32);
        for z in 1..4 {
            for y in 1..4 {
                for x in 1..5 {
                    v.set(z, y, x, 4);
                }
            }
        }
        for z in 0..6 {
            for y in 5..8 {
                v.set(z, y, 7, 9);
                v.set(z, y, 11, 9);
            }
            for x in 7..12 {
                v.set(z, 7, x, 9);
            }
        }
        v
    }

    #[test]
    fn every_method_finds_a_centre_per_instance() {
        let v = two_instances();
        let voxels = instance_voxels(&v);
        assert_eq!(voxels.keys().copied().collect::<Vec<_>>(), vec![4, 9]);
        for anisotropy in [1.0, 3.0] {
            let medoids = centers_3d(&v, anisotropy, CenterMethod::Medoid);
            for (c, (id, vox)) in medoids.iter().zip(&voxels) {
                // The medoid is the brute-force one, in scaled coordinates.
                let points: Vec<Point> = vox
                    .iter()
                    .map(|p| [p[0] as f64 * anisotropy, p[1] as f64, p[2] as f64])
                    .collect();
                let k = medoid_3d_brute_force(&points);
                assert_eq!(
                    (c.id, c.z, c.y, c.x),
                    (
                        *id,
                        vox[k][0] as usize,
                        vox[k][1] as usize,
                        vox[k][2] as usize
                    )
                );
                assert_eq!(v.get(c.z, c.y, c.x), c.id);
            }
            for c in centers_3d(&v, anisotropy, CenterMethod::ApproxMedoid) {
                assert_eq!(v.get(c.z, c.y, c.x), c.id, "{c:?}");
            }
        }
        let centroids = centers_3d(&v, 1.0, CenterMethod::Centroid);
        // The box's centroid: z 2, y 2, x 2.5 rounded to 3 (half away from 0).
        assert_eq!(
            centroids[0],
            Center3d {
                id: 4,
                z: 2,
                y: 2,
                x: 3,
                inside: true
            }
        );
        // The U's centroid falls in its gap and is marked outside.
        assert!(!centroids[1].inside, "{:?}", centroids[1]);
        let image = center_volume((6, 8, 12), &centroids);
        assert_eq!(image.data.iter().filter(|&&id| id != 0).count(), 1);
        assert_eq!(image.get(2, 2, 3), 4);
    }
}
