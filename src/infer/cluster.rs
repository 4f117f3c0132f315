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

use crate::data::Grid;
use crate::prediction::Prediction;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClusterParams {
    pub seed_thresh: f32,
    pub fg_thresh: f32,
    pub min_size: usize,
}

/// `cluster.min_size = "auto"` where no dataset says more (a bare
/// checkpoint with the defaults): EmbedSeg's default `min_object_size`.
pub const MIN_SIZE_WITHOUT_DATA: usize = 10;

impl ClusterParams {
    pub fn from_config(c: &crate::config::ClusterConfig) -> ClusterParams {
        ClusterParams {
            seed_thresh: c.seed_thresh as f32,
            fg_thresh: c.fg_thresh as f32,
            min_size: c.min_size.fixed().unwrap_or(MIN_SIZE_WITHOUT_DATA),
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
    let seeds: Vec<f32> = fg.iter().map(|&i| p.seed[i as usize]).collect();
    let order = seed_order(&seeds, params.seed_thresh);
    if order.is_empty() {
        return labels;
    }
    let ex: Vec<f32> = fg.iter().map(|&i| p.ex[i as usize]).collect();
    let ey: Vec<f32> = fg.iter().map(|&i| p.ey[i as usize]).collect();
    let grid = CellGrid::new(&ex, &ey);
    let ln2 = std::f32::consts::LN_2;
    let instance = greedy(&order, fg.len(), params.min_size, |s, proposal| {
        // φ = exp(−(sx·dx² + sy·dy²)) > 0.5  ⇔  sx·dx² + sy·dy² < ln 2.
        let (sx, sy) = p.bandwidth(fg[s] as usize);
        let (cx, cy) = (ex[s], ey[s]);
        grid.within(cx, cy, (ln2 / sx).sqrt(), (ln2 / sy).sqrt(), |k| {
            let (dx, dy) = (ex[k] - cx, ey[k] - cy);
            if sx * dx * dx + sy * dy * dy < ln2 {
                proposal.push(k as u32);
            }
        });
    });
    for (k, &i) in fg.iter().enumerate() {
        labels.data[i as usize] = instance[k];
    }
    labels
}

/// The foreground pixels that can become seeds (at or above `seed_thresh`),
/// highest seed first, ties to the first pixel (as torch.argmax).
pub(crate) fn seed_order(seeds: &[f32], seed_thresh: f32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..seeds.len() as u32)
        .filter(|&k| seeds[k as usize] >= seed_thresh)
        .collect();
    order.sort_by(|&a, &b| {
        seeds[b as usize]
            .total_cmp(&seeds[a as usize])
            .then(a.cmp(&b))
    });
    order
}

/// The greedy pass: for each seed in `order` not yet claimed, claim it and
/// its proposal (`propose(seed, out)` lists the foreground pixels within its
/// bandwidth); the proposal becomes an instance if it has ≥ `min_size`
/// pixels, more than half of them unclaimed. Instance ids per foreground
/// pixel (0: none), numbered from 1 in the order found.
pub(crate) fn greedy(
    order: &[u32],
    n_fg: usize,
    min_size: usize,
    mut propose: impl FnMut(usize, &mut Vec<u32>),
) -> Vec<u32> {
    let mut claimed = vec![false; n_fg];
    let mut instance = vec![0u32; n_fg];
    let mut next_id = 1u32;
    let mut proposal: Vec<u32> = Vec::new();
    for &seed in order {
        let s = seed as usize;
        if claimed[s] {
            continue;
        }
        claimed[s] = true;
        proposal.clear();
        propose(s, &mut proposal);
        if proposal.len() >= min_size {
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
    instance
}

/// Foreground pixels bucketed by embedding position into CELL-sized cells:
/// members sorted by cell, one start offset per cell (CSR), plus the list of
/// occupied cells for boxes larger than it.
struct CellGrid {
    x0: f32,
    y0: f32,
    cols: usize,
    rows: usize,
    start: Vec<u32>,
    members: Vec<u32>,
    occupied: Vec<u32>,
}

impl CellGrid {
    fn new(ex: &[f32], ey: &[f32]) -> CellGrid {
        let fold = |v: &[f32]| {
            v.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                })
        };
        let ((x0, x1), (y0, y1)) = (fold(ex), fold(ey));
        let cols = ((x1 - x0) / CELL) as usize + 1;
        let rows = ((y1 - y0) / CELL) as usize + 1;
        let cell =
            |k: usize| ((ey[k] - y0) / CELL) as usize * cols + ((ex[k] - x0) / CELL) as usize;
        let mut count = vec![0u32; cols * rows + 1];
        for k in 0..ex.len() {
            count[cell(k) + 1] += 1;
        }
        for c in 1..count.len() {
            count[c] += count[c - 1];
        }
        let start = count.clone();
        let mut fill = count;
        let mut members = vec![0u32; ex.len()];
        for k in 0..ex.len() {
            let c = cell(k);
            members[fill[c] as usize] = k as u32;
            fill[c] += 1;
        }
        let occupied = (0..cols * rows)
            .filter(|&c| start[c + 1] > start[c])
            .map(|c| c as u32)
            .collect();
        CellGrid {
            x0,
            y0,
            cols,
            rows,
            start,
            members,
            occupied,
        }
    }

    /// Calls `f` for every member of the cells overlapping the box centre ± reach.
    fn within(&self, cx: f32, cy: f32, rx: f32, ry: f32, mut f: impl FnMut(usize)) {
        let col = |x: f32| (((x - self.x0) / CELL).floor().max(0.0) as usize).min(self.cols - 1);
        let row = |y: f32| (((y - self.y0) / CELL).floor().max(0.0) as usize).min(self.rows - 1);
        if cx + rx < self.x0 || cy + ry < self.y0 {
            return;
        }
        let (c0, c1, r0, r1) = (col(cx - rx), col(cx + rx), row(cy - ry), row(cy + ry));
        let mut visit = |c: usize| {
            for &k in &self.members[self.start[c] as usize..self.start[c + 1] as usize] {
                f(k as usize);
            }
        };
        if (c1 - c0 + 1) * (r1 - r0 + 1) > self.occupied.len() {
            for &c in &self.occupied {
                let (r, cc) = (c as usize / self.cols, c as usize % self.cols);
                if (r0..=r1).contains(&r) && (c0..=c1).contains(&cc) {
                    visit(c as usize);
                }
            }
        } else {
            for r in r0..=r1 {
                for c in c0..=c1 {
                    visit(r * self.cols + c);
                }
            }
        }
    }
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
        let mut map = std::collections::HashMap::new();
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
    fn a_very_wide_bandwidth_stays_fast() {
        // sigma −2: exp(−20)·pixel² makes a reach of ~10⁷ px; one cluster takes all.
        let (mut p, _) = two_blobs(20);
        p.sigma
            .iter_mut()
            .for_each(|plane| plane.iter_mut().for_each(|v| *v = -2.0));
        let params = ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: 10,
        };
        // Without the occupied-cells walk this visits ~10¹⁴ empty cells (hangs).
        let labels = cluster(&p, &params);
        let ids: std::collections::BTreeSet<u32> =
            labels.data.iter().copied().filter(|&v| v > 0).collect();
        assert_eq!(ids.len(), 1, "one proposal covers every foreground pixel");
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
