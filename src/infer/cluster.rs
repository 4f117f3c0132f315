//! EmbedSeg's greedy seed clustering (Cluster_2d.cluster):
//! foreground = seed > fg_thresh; while the highest unclaimed seed is ≥
//! seed_thresh, take its embedding as centre and its sigma as bandwidth
//! (s = exp(10σ)), propose every foreground pixel with φ > 0.5; keep the
//! proposal (labelling all its pixels) if it has ≥ min_size pixels and more
//! than half of them are unclaimed; claim the proposal and the seed either way.
//!
//! Only foreground pixels are visited, seeds in decreasing order (ties to the
//! first pixel in row-major order, as torch.argmax), and each proposal only
//! looks at pixels whose embeddings lie within its radius, through a grid
//! over embedding space. Deterministic.

use std::collections::HashMap;

use super::prediction::Prediction;
use crate::data::Grid;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClusterParams {
    pub seed_thresh: f32,
    pub fg_thresh: f32,
    pub min_size: usize,
}

impl ClusterParams {
    pub fn from_config(c: &crate::config::ClusterConfig) -> ClusterParams {
        ClusterParams {
            seed_thresh: c.seed_thresh as f32,
            fg_thresh: c.fg_thresh as f32,
            min_size: c.min_size,
        }
    }
}

/// Embedding-space grid cells, in pixels.
const CELL: f32 = 8.0;

pub fn cluster(p: &Prediction, params: &ClusterParams) -> Grid<u32> {
    let (w, h) = (p.width, p.height);
    let fg: Vec<u32> = (0..w * h)
        .filter(|&i| p.seed[i] > params.fg_thresh)
        .map(|i| i as u32)
        .collect();
    let mut labels = Grid::filled(w, h, 0u32);
    if fg.is_empty() {
        return labels;
    }
    // Embeddings of the foreground, in pixel units, and a grid over them.
    let ex: Vec<f32> = fg.iter().map(|&i| p.ex[i as usize]).collect();
    let ey: Vec<f32> = fg.iter().map(|&i| p.ey[i as usize]).collect();
    let cell_of = |x: f32, y: f32| ((x / CELL).floor() as i32, (y / CELL).floor() as i32);
    let mut grid: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
    for k in 0..fg.len() {
        grid.entry(cell_of(ex[k], ey[k]))
            .or_default()
            .push(k as u32);
    }
    let mut order: Vec<u32> = (0..fg.len() as u32).collect();
    order.sort_by(|&a, &b| {
        p.seed[fg[b as usize] as usize]
            .total_cmp(&p.seed[fg[a as usize] as usize])
            .then(a.cmp(&b))
    });
    let mut claimed = vec![false; fg.len()];
    let mut instance = vec![0u32; fg.len()];
    let mut next_id = 1u32;
    let mut proposal: Vec<u32> = Vec::new();
    for &seed in &order {
        let s = seed as usize;
        if claimed[s] {
            continue;
        }
        let i = fg[s] as usize;
        if p.seed[i] < params.seed_thresh {
            break;
        }
        claimed[s] = true;
        // φ = exp(−Σ s_a (e_a − c_a)²) in grid units; in pixels s_a·PIXEL².
        let (sx, sy) = p.bandwidth(i);
        let (cx, cy) = (ex[s], ey[s]);
        // φ > 0.5 ⇔ sx·dx² + sy·dy² < ln 2: within ln2/s_min of the centre per axis.
        let reach = (std::f32::consts::LN_2 / sx.min(sy)).sqrt();
        let (x0, y0) = cell_of(cx - reach, cy - reach);
        let (x1, y1) = cell_of(cx + reach, cy + reach);
        proposal.clear();
        // Gather candidates cell by cell, then restore pixel order for determinism.
        for gy in y0..=y1 {
            for gx in x0..=x1 {
                let Some(members) = grid.get(&(gx, gy)) else {
                    continue;
                };
                for &k in members {
                    let (dx, dy) = (ex[k as usize] - cx, ey[k as usize] - cy);
                    if ((-(sx * dx * dx + sy * dy * dy)) as f64).exp() > 0.5 {
                        proposal.push(k);
                    }
                }
            }
        }
        if proposal.len() >= params.min_size {
            let unclaimed = proposal.iter().filter(|&&k| !claimed[k as usize]).count();
            if 2 * unclaimed > proposal.len() {
                for &k in &proposal {
                    instance[k as usize] = next_id;
                }
                next_id += 1;
            }
        }
        for &k in &proposal {
            claimed[k as usize] = true;
        }
    }
    for (k, &i) in fg.iter().enumerate() {
        labels.data[i as usize] = instance[k];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prediction whose embeddings put each blob's pixels on its centre.
    fn two_blobs(size: usize) -> (Prediction, Grid<u32>) {
        let mut truth = Grid::filled(size, size, 0u32);
        let centres = [(5.0f32, 5.0f32), (14.0, 5.0)]; // (x, y): side by side along x
        let mut p = Prediction::empty(size, size, 2);
        for y in 0..size {
            for x in 0..size {
                let i = y * size + x;
                for (id, &(cx, cy)) in centres.iter().enumerate() {
                    if (x as f32 - cx).abs() <= 3.0 && (y as f32 - cy).abs() <= 3.0 {
                        truth.data[i] = id as u32 + 1;
                        p.ex[i] = cx;
                        p.ey[i] = cy;
                        p.seed[i] = 0.95 - 0.001 * (x as f32 - cx).abs();
                    }
                }
                if truth.data[i] == 0 {
                    p.ex[i] = x as f32;
                    p.ey[i] = y as f32;
                }
                p.sigma[0][i] = 1.2;
                p.sigma[1][i] = 1.2;
            }
        }
        (p, truth)
    }

    #[test]
    fn recovers_each_instance_once() {
        let (p, truth) = two_blobs(20);
        let params = ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: 10,
        };
        let labels = cluster(&p, &params);
        // The labelling equals the truth up to renumbering.
        let mut map = HashMap::new();
        for (a, b) in labels.data.iter().zip(&truth.data) {
            assert_eq!(
                *map.entry(*b).or_insert(*a),
                *a,
                "one predicted label per true label"
            );
        }
        assert_eq!(map.len(), 3);
        assert_eq!(labels, cluster(&p, &params), "deterministic");
    }

    #[test]
    fn small_proposals_and_low_seeds_are_dropped() {
        let (p, _) = two_blobs(20);
        let params = ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: 50,
        };
        assert!(
            cluster(&p, &params).data.iter().all(|&v| v == 0),
            "49-pixel blobs < min_size"
        );
        let params = ClusterParams {
            seed_thresh: 0.99,
            fg_thresh: 0.5,
            min_size: 10,
        };
        assert!(
            cluster(&p, &params).data.iter().all(|&v| v == 0),
            "no seed reaches 0.99"
        );
    }
}
