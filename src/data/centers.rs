//! Instance centres: the pixel the offsets of an instance should point to.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::medoid::medoid;
use super::Grid;
use crate::config::CenterMethod;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Center {
    pub id: u32,
    pub y: usize,
    pub x: usize,
    /// False only for a centroid that falls outside its (non-convex) instance.
    pub inside: bool,
}

/// Each instance's pixels in row-major order, by id.
pub fn instance_pixels(labels: &Grid<u32>) -> BTreeMap<u32, Vec<(u32, u32)>> {
    let mut out: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    for y in 0..labels.height {
        for x in 0..labels.width {
            let id = labels.get(y, x);
            if id != 0 {
                out.entry(id).or_default().push((y as u32, x as u32));
            }
        }
    }
    out
}

/// The centre of every instance, instances in parallel.
pub fn centers(labels: &Grid<u32>, method: CenterMethod) -> Vec<Center> {
    let instances: Vec<(u32, Vec<(u32, u32)>)> = instance_pixels(labels).into_iter().collect();
    instances
        .par_iter()
        .map(|(id, pixels)| center_of(*id, pixels, labels, method))
        .collect()
}

fn center_of(id: u32, pixels: &[(u32, u32)], labels: &Grid<u32>, method: CenterMethod) -> Center {
    let ys: Vec<f64> = pixels.iter().map(|p| p.0 as f64).collect();
    let xs: Vec<f64> = pixels.iter().map(|p| p.1 as f64).collect();
    let pick = |i: usize| Center {
        id,
        y: pixels[i].0 as usize,
        x: pixels[i].1 as usize,
        inside: true,
    };
    match method {
        CenterMethod::Medoid => pick(medoid(&ys, &xs)),
        CenterMethod::ApproxMedoid => {
            // EmbedSeg's: the pixel nearest the coordinate-wise median.
            let (my, mx) = (median(&ys), median(&xs));
            let i = (0..pixels.len())
                .min_by(|&a, &b| {
                    let da = (ys[a] - my).powi(2) + (xs[a] - mx).powi(2);
                    let db = (ys[b] - my).powi(2) + (xs[b] - mx).powi(2);
                    da.total_cmp(&db)
                })
                .expect("an instance has pixels");
            pick(i)
        }
        CenterMethod::Centroid => {
            let n = pixels.len() as f64;
            let y = (ys.iter().sum::<f64>() / n).round() as usize;
            let x = (xs.iter().sum::<f64>() / n).round() as usize;
            Center {
                id,
                y,
                x,
                inside: labels.get(y, x) == id,
            }
        }
    }
}

/// numpy's median: the mean of the two middle values for even counts.
pub(super) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The centre image: 0 everywhere, the instance id at its centre. A centre
/// outside its instance is left out (the loss then uses the instance's mean).
pub fn center_image(width: usize, height: usize, centers: &[Center]) -> Grid<u32> {
    let mut g = Grid::filled(width, height, 0u32);
    for c in centers.iter().filter(|c| c.inside) {
        g.set(c.y, c.x, c.id);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rows: &[&str]) -> Grid<u32> {
        let h = rows.len();
        let w = rows[0].len();
        let data = rows
            .iter()
            .flat_map(|r| {
                r.bytes()
                    .map(|b| if b == b'.' { 0 } else { (b - b'0') as u32 })
            })
            .collect();
        Grid::new(w, h, data)
    }

    #[test]
    fn every_method_on_a_plain_blob() {
        let g = labels(&["....", ".11.", ".11.", "...."]);
        for m in [
            CenterMethod::Medoid,
            CenterMethod::ApproxMedoid,
            CenterMethod::Centroid,
        ] {
            let c = centers(&g, m);
            assert_eq!(c.len(), 1);
            assert_eq!(g.get(c[0].y, c[0].x), 1, "{m:?} inside");
        }
    }

    #[test]
    fn medoid_and_approx_stay_inside_rings_crescents_and_split_instances() {
        let mut g = Grid::filled(61, 61, 0u32);
        for y in 0..61 {
            for x in 0..61 {
                let (dy, dx) = (y as i32 - 30, x as i32 - 30);
                let r2 = dy * dy + dx * dx;
                if (400..=784).contains(&r2) {
                    g.set(y, x, 1); // a ring around the image centre
                }
                if (1..=30).contains(&r2) && dx < 0 {
                    g.set(y, x, 2); // a half disc inside it
                }
                if !(3..=57).contains(&y) && x < 5 {
                    g.set(y, x, 3); // two far apart pieces
                }
            }
        }
        for m in [CenterMethod::Medoid, CenterMethod::ApproxMedoid] {
            for c in centers(&g, m) {
                assert_eq!(g.get(c.y, c.x), c.id, "{m:?} centre of {} outside", c.id);
                assert!(c.inside);
            }
        }
        let centroids = centers(&g, CenterMethod::Centroid);
        let ring = centroids.iter().find(|c| c.id == 1).unwrap();
        assert!(!ring.inside, "the ring's centroid is its hole");
        assert_eq!(
            center_image(61, 61, &centroids)
                .data
                .iter()
                .filter(|&&v| v == 1)
                .count(),
            0
        );
    }

    #[test]
    fn approx_medoid_is_nearest_to_the_coordinate_median() {
        // An L: the coordinate-wise median is (3.5, 0); (3, 0) and (4, 0) tie, the first wins.
        let g = labels(&["1...", "1...", "1...", "1...", "1111"]);
        let c = centers(&g, CenterMethod::ApproxMedoid)[0];
        assert_eq!((c.y, c.x), (3, 0));
    }
}
