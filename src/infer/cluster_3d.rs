//! EmbedSeg's greedy seed clustering on stacks (Cluster_3d.cluster): the 2D
//! pass (cluster.rs: seeds in decreasing order, a proposal within each
//! seed's bandwidth, kept when large enough and mostly unclaimed) with
//! embeddings and bandwidths along x, y and z. Embeddings are in xy pixels
//! (z scaled by the anisotropy), and proposals look only at foreground
//! voxels whose embeddings lie in the cells of a grid over embedding space
//! that the seed's ellipsoid reaches. Deterministic. Not yet used by a
//! command (issue 32).

use std::collections::HashMap;

use super::cluster::{greedy, seed_order, ClusterParams};
use crate::data::volume::Volume;
use crate::prediction_3d::Prediction3d;

/// Embedding-space grid cells, in xy pixels.
const CELL: f32 = 8.0;

pub fn cluster_3d(p: &Prediction3d, params: &ClusterParams) -> Volume<u32> {
    let mut labels = Volume::filled(p.depth, p.height, p.width, 0u32);
    let fg: Vec<u32> = (0..p.seed.len())
        .filter(|&i| p.seed[i] > params.fg_thresh)
        .map(|i| i as u32)
        .collect();
    let seeds: Vec<f32> = fg.iter().map(|&i| p.seed[i as usize]).collect();
    let order = seed_order(&seeds, params.seed_thresh);
    if order.is_empty() {
        return labels;
    }
    let at = |k: usize| {
        let i = fg[k] as usize;
        [p.ex[i], p.ey[i], p.ez[i]]
    };
    let cell = |e: [f32; 3]| e.map(|v| (v / CELL).floor() as i64);
    let mut cells: HashMap<[i64; 3], Vec<u32>> = HashMap::new();
    for k in 0..fg.len() {
        cells.entry(cell(at(k))).or_default().push(k as u32);
    }
    let ln2 = std::f32::consts::LN_2;
    let instance = greedy(&order, fg.len(), params.min_size, |s, proposal| {
        // φ = exp(−Σ s_a·d_a²) > 0.5  ⇔  Σ s_a·d_a² < ln 2.
        let bw = p.bandwidth(fg[s] as usize);
        let centre = at(s);
        let reach = bw.map(|b| (ln2 / b).sqrt());
        let lo = cell([0, 1, 2].map(|a| centre[a] - reach[a]));
        let hi = cell([0, 1, 2].map(|a| centre[a] + reach[a]));
        let boxes = (0..3)
            .map(|a| (hi[a] - lo[a] + 1) as usize)
            .product::<usize>();
        let mut test = |k: u32| {
            let e = at(k as usize);
            let d2: f32 = (0..3).map(|a| bw[a] * (e[a] - centre[a]).powi(2)).sum();
            if d2 < ln2 {
                proposal.push(k);
            }
        };
        if boxes > cells.len() {
            // A reach wider than the occupied cells: test them all.
            for (c, members) in &cells {
                if (0..3).all(|a| (lo[a]..=hi[a]).contains(&c[a])) {
                    members.iter().for_each(|&k| test(k));
                }
            }
        } else {
            for cx in lo[0]..=hi[0] {
                for cy in lo[1]..=hi[1] {
                    for cz in lo[2]..=hi[2] {
                        if let Some(members) = cells.get(&[cx, cy, cz]) {
                            members.iter().for_each(|&k| test(k));
                        }
                    }
                }
            }
        }
        // The same order whatever the cells' (a HashMap's) order.
        proposal.sort_unstable();
    });
    for (k, &i) in fg.iter().enumerate() {
        labels.data[i as usize] = instance[k];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: f64 = 2.0;

    /// Two 2×4×4 boxes touching along z in a 4×6×10 stack (anisotropy 2),
    /// each voxel embedded at its box's centre, seeds 0.95 inside.
    fn stacked_along_z() -> (Prediction3d, Volume<u32>) {
        let (d, h, w) = (4, 6, 10);
        let mut p = Prediction3d::empty((d, h, w), A, 3);
        let mut truth = Volume::filled(d, h, w, 0u32);
        for z in 0..4 {
            for y in 1..5 {
                for x in 3..7 {
                    let i = (z * h + y) * w + x;
                    let id = if z < 2 { 1 } else { 2 };
                    truth.data[i] = id;
                    p.seed[i] = 0.95;
                    p.ex[i] = 4.5;
                    p.ey[i] = 2.5;
                    // the boxes' centres: planes 0.5 and 2.5, × anisotropy
                    p.ez[i] = if id == 1 { 1.0 } else { 5.0 };
                }
            }
        }
        // Bandwidths of about 3 px: exp(10σ)·pixel² = 1/9.
        let sigma = ((1.0 / 9.0) / (crate::loss::xym::PIXEL * crate::loss::xym::PIXEL)).ln() / 10.0;
        for s in p.sigma.iter_mut() {
            s.iter_mut().for_each(|v| *v = sigma as f32);
        }
        (p, truth)
    }

    fn params(min_size: usize) -> ClusterParams {
        ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size,
        }
    }

    #[test]
    fn cells_touching_along_z_are_two_instances() {
        let (p, truth) = stacked_along_z();
        let labels = cluster_3d(&p, &params(10));
        // The first seed is the first voxel (ties to the lowest index).
        assert_eq!(labels.data, truth.data);
    }

    #[test]
    fn without_z_embeddings_they_merge() {
        // The same stack with every voxel embedded at one z: one instance.
        let (mut p, truth) = stacked_along_z();
        p.ez.iter_mut().for_each(|v| *v = 3.0);
        let labels = cluster_3d(&p, &params(10));
        let ids: std::collections::BTreeSet<u32> = labels.data.iter().copied().collect();
        assert_eq!(ids.len(), 2, "background and one merged instance");
        assert_eq!(
            labels.data.iter().filter(|&&v| v > 0).count(),
            truth.data.iter().filter(|&&v| v > 0).count()
        );
    }

    #[test]
    fn a_small_proposal_is_dropped_but_claims_its_voxels() {
        let (p, truth) = stacked_along_z();
        // Each box is 32 voxels: at min_size 33 neither is kept.
        assert!(cluster_3d(&p, &params(33)).data.iter().all(|&v| v == 0));
        assert_eq!(cluster_3d(&p, &params(32)).data, truth.data);
        // Nothing at or above the seed threshold: nothing.
        let strict = ClusterParams {
            seed_thresh: 0.96,
            ..params(1)
        };
        assert!(cluster_3d(&p, &strict).data.iter().all(|&v| v == 0));
    }
}
