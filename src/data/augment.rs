//! Training augmentation: the 8 symmetries of the square (quarter turns and a
//! flip) applied alike to image, labels and centres, and optional intensity jitter.

use rand::Rng;

use super::Grid;

/// One of the 8 symmetries: `turns` quarter turns counter-clockwise (as
/// numpy's rot90), then a left-right flip if `flip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dihedral {
    pub turns: u8,
    pub flip: bool,
}

impl Dihedral {
    pub const ALL: [Dihedral; 8] = [
        Dihedral {
            turns: 0,
            flip: false,
        },
        Dihedral {
            turns: 1,
            flip: false,
        },
        Dihedral {
            turns: 2,
            flip: false,
        },
        Dihedral {
            turns: 3,
            flip: false,
        },
        Dihedral {
            turns: 0,
            flip: true,
        },
        Dihedral {
            turns: 1,
            flip: true,
        },
        Dihedral {
            turns: 2,
            flip: true,
        },
        Dihedral {
            turns: 3,
            flip: true,
        },
    ];

    pub fn random(rng: &mut impl Rng) -> Dihedral {
        Dihedral::ALL[rng.random_range(0..8)]
    }

    /// The source pixel (y, x) of output pixel (i, j), for a source of h × w.
    #[inline]
    pub fn source(self, i: usize, j: usize, h: usize, w: usize) -> (usize, usize) {
        // Undo the flip first (it was applied last), in the rotated frame.
        let rotated_width = if self.turns % 2 == 1 { h } else { w };
        let j = if self.flip { rotated_width - 1 - j } else { j };
        match self.turns % 4 {
            0 => (i, j),
            1 => (j, w - 1 - i),
            2 => (h - 1 - i, w - 1 - j),
            _ => (h - 1 - j, i),
        }
    }

    /// `source` for fractional coordinates (the map is affine): where a point
    /// (y, x) of the transformed image lies in the source of h × w.
    pub fn source_point(self, i: f64, j: f64, h: usize, w: usize) -> (f64, f64) {
        let (h, w) = (h as f64, w as f64);
        let rotated_width = if self.turns % 2 == 1 { h } else { w };
        let j = if self.flip {
            rotated_width - 1.0 - j
        } else {
            j
        };
        match self.turns % 4 {
            0 => (i, j),
            1 => (j, w - 1.0 - i),
            2 => (h - 1.0 - i, w - 1.0 - j),
            _ => (h - 1.0 - j, i),
        }
    }

    /// Quarter and three-quarter turns exchange the x and y axes.
    pub fn swaps_axes(self) -> bool {
        self.turns % 2 == 1
    }

    pub fn apply<T: Copy + Default>(self, g: &Grid<T>) -> Grid<T> {
        let (h, w) = (g.height, g.width);
        let (oh, ow) = if self.turns % 2 == 1 { (w, h) } else { (h, w) };
        let mut data = Vec::with_capacity(h * w);
        for i in 0..oh {
            for j in 0..ow {
                let (y, x) = self.source(i, j, h, w);
                data.push(g.get(y, x));
            }
        }
        Grid::new(ow, oh, data)
    }
}

/// Scales intensities by U(0.8, 1.2) and shifts them by U(−0.1, 0.1).
pub fn jitter_intensity(image: &mut Grid<f32>, rng: &mut impl Rng) {
    let scale: f32 = rng.random_range(0.8..1.2);
    let shift: f32 = rng.random_range(-0.1..0.1);
    for v in &mut image.data {
        *v = *v * scale + shift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Grid<u32> {
        // 2 rows × 3 columns: [[1 2 3] [4 5 6]]
        Grid::new(3, 2, vec![1, 2, 3, 4, 5, 6])
    }

    #[test]
    fn matches_numpy_rot90_and_fliplr() {
        // np.rot90([[1,2,3],[4,5,6]]) = [[3,6],[2,5],[1,4]]
        let r = Dihedral {
            turns: 1,
            flip: false,
        }
        .apply(&g());
        assert_eq!(
            (r.width, r.height, r.data.clone()),
            (2, 3, vec![3, 6, 2, 5, 1, 4])
        );
        // k=2: [[6,5,4],[3,2,1]]; k=3: [[4,1],[5,2],[6,3]]
        assert_eq!(
            Dihedral {
                turns: 2,
                flip: false
            }
            .apply(&g())
            .data,
            vec![6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            Dihedral {
                turns: 3,
                flip: false
            }
            .apply(&g())
            .data,
            vec![4, 1, 5, 2, 6, 3]
        );
        // np.fliplr(np.rot90(x)) = [[6,3],[5,2],[4,1]]
        assert_eq!(
            Dihedral {
                turns: 1,
                flip: true
            }
            .apply(&g())
            .data,
            vec![6, 3, 5, 2, 4, 1]
        );
    }

    #[test]
    fn source_point_agrees_with_source_on_pixels() {
        for d in Dihedral::ALL {
            let (h, w) = (3, 5);
            let (oh, ow) = if d.swaps_axes() { (w, h) } else { (h, w) };
            for i in 0..oh {
                for j in 0..ow {
                    let (y, x) = d.source(i, j, h, w);
                    assert_eq!(
                        d.source_point(i as f64, j as f64, h, w),
                        (y as f64, x as f64),
                        "{d:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_eight_symmetries_are_distinct() {
        let sq = Grid::new(3, 3, (0..9).collect::<Vec<u32>>());
        let outs: std::collections::HashSet<Vec<u32>> =
            Dihedral::ALL.iter().map(|d| d.apply(&sq).data).collect();
        assert_eq!(outs.len(), 8);
    }
}
