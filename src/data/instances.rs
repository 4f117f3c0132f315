//! A batch's instances as the loss on a device needs them: which image
//! each lies in, its id, pixel count and centre. Built from the labels on
//! the host once per batch — by the loader threads, beside augmentation,
//! so that the training thread only uploads it.

use std::collections::BTreeMap;

/// The batch's instances, in image order and by id within an image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceTable {
    pub image: Vec<u32>,
    pub id: Vec<u32>,
    pub pixels: Vec<f64>,
    /// (x, y) in pixels: the single marked centre pixel, else the mean.
    pub centre: Vec<f64>,
    /// 1 / (instances in the same image): per-image means become one sum.
    pub per_image: Vec<f64>,
}

/// One instance's sums while the image is read.
#[derive(Clone, Copy, Default)]
struct Sums {
    pixels: u64,
    x: u64,
    y: u64,
    marked: u32,
    at: usize,
}

impl InstanceTable {
    /// From `n` images of h × w: `labels` their instance ids (0 background),
    /// `centers` non-zero at marked centre pixels.
    pub fn of(labels: &[u32], centers: &[u32], n: usize, h: usize, w: usize) -> InstanceTable {
        let p = h * w;
        let mut out = InstanceTable::default();
        for b in 0..n {
            let lab = &labels[b * p..(b + 1) * p];
            let ctr = &centers[b * p..(b + 1) * p];
            let found = sums(lab, ctr, w);
            let k = found.len() as f64;
            for (id, s) in found {
                out.image.push(b as u32);
                out.id.push(id);
                out.pixels.push(s.pixels as f64);
                if s.marked == 1 {
                    out.centre.push((s.at % w) as f64);
                    out.centre.push((s.at / w) as f64);
                } else {
                    out.centre.push(s.x as f64 / s.pixels as f64);
                    out.centre.push(s.y as f64 / s.pixels as f64);
                }
                out.per_image.push(1.0 / k);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// Each instance's sums by id, in increasing id: a table indexed by id
/// where ids are small (the usual case), else a map.
fn sums(lab: &[u32], ctr: &[u32], w: usize) -> Vec<(u32, Sums)> {
    let max = lab.iter().copied().max().unwrap_or(0) as usize;
    let add = |s: &mut Sums, i: usize| {
        s.pixels += 1;
        s.x += (i % w) as u64;
        s.y += (i / w) as u64;
        if ctr[i] != 0 {
            s.marked += 1;
            s.at = i;
        }
    };
    if max <= 4 * lab.len() + 1024 {
        let mut table = vec![Sums::default(); max + 1];
        for (i, &id) in lab.iter().enumerate() {
            if id != 0 {
                add(&mut table[id as usize], i);
            }
        }
        table
            .into_iter()
            .enumerate()
            .filter(|(id, s)| *id != 0 && s.pixels > 0)
            .map(|(id, s)| (id as u32, s))
            .collect()
    } else {
        let mut map: BTreeMap<u32, Sums> = BTreeMap::new();
        for (i, &id) in lab.iter().enumerate() {
            if id != 0 {
                add(map.entry(id).or_default(), i);
            }
        }
        map.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_worked_batch() {
        // Image 0 (3 × 4): id 7 on three pixels with one marked centre, id 2
        // on two pixels. Image 1: one huge id (the map path), no centre.
        #[rustfmt::skip]
        let labels = vec![
            7, 7, 0, 2,
            0, 7, 0, 2,
            0, 0, 0, 0,
            0, 0, 0, 0,
            0, 4_000_000_000, 4_000_000_000, 0,
            0, 0, 0, 0,
        ];
        let mut centers = vec![0; 24];
        centers[1] = 1;
        let t = InstanceTable::of(&labels, &centers, 2, 3, 4);
        assert_eq!(t.image, vec![0, 0, 1]);
        assert_eq!(t.id, vec![2, 7, 4_000_000_000]);
        assert_eq!(t.pixels, vec![2.0, 3.0, 2.0]);
        // id 2: mean (3, 0.5); id 7: its marked pixel (1, 0); the last: mean (1.5, 1).
        assert_eq!(t.centre, vec![3.0, 0.5, 1.0, 0.0, 1.5, 1.0]);
        assert_eq!(t.per_image, vec![0.5, 0.5, 1.0]);
    }

    #[test]
    fn two_marked_pixels_mean_the_mean() {
        let labels = vec![1, 1, 1, 0];
        let centers = vec![1, 0, 1, 0];
        let t = InstanceTable::of(&labels, &centers, 1, 1, 4);
        assert_eq!(t.centre, vec![1.0, 0.0]);
    }
}
