//! A row-major 2D array: images, labels, centre maps.

#[derive(Clone, Debug, PartialEq)]
pub struct Grid<T> {
    pub width: usize,
    pub height: usize,
    pub data: Vec<T>,
}

impl<T: Copy + Default> Grid<T> {
    pub fn new(width: usize, height: usize, data: Vec<T>) -> Grid<T> {
        assert_eq!(
            data.len(),
            width * height,
            "grid data must be width × height"
        );
        Grid {
            width,
            height,
            data,
        }
    }

    pub fn filled(width: usize, height: usize, value: T) -> Grid<T> {
        Grid::new(width, height, vec![value; width * height])
    }

    #[inline]
    pub fn get(&self, y: usize, x: usize) -> T {
        self.data[y * self.width + x]
    }

    #[inline]
    pub fn set(&mut self, y: usize, x: usize, v: T) {
        self.data[y * self.width + x] = v;
    }

    /// The window [y0, y0+h) × [x0, x0+w), which must lie inside.
    pub fn window(&self, y0: usize, x0: usize, h: usize, w: usize) -> Grid<T> {
        let mut data = Vec::with_capacity(h * w);
        for y in y0..y0 + h {
            data.extend_from_slice(&self.data[y * self.width + x0..y * self.width + x0 + w]);
        }
        Grid::new(w, h, data)
    }
}
