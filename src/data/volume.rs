//! A z-major 3D array (z, then y, then x): image stacks and label volumes.

#[derive(Clone, Debug, PartialEq)]
pub struct Volume<T> {
    pub depth: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<T>,
}

impl<T: Copy + Default> Volume<T> {
    pub fn new(depth: usize, height: usize, width: usize, data: Vec<T>) -> Volume<T> {
        assert_eq!(
            data.len(),
            depth * height * width,
            "volume data must be depth × height × width"
        );
        Volume {
            depth,
            height,
            width,
            data,
        }
    }

    pub fn filled(depth: usize, height: usize, width: usize, value: T) -> Volume<T> {
        Volume::new(depth, height, width, vec![value; depth * height * width])
    }

    #[inline]
    pub fn get(&self, z: usize, y: usize, x: usize) -> T {
        self.data[(z * self.height + y) * self.width + x]
    }

    #[inline]
    pub fn set(&mut self, z: usize, y: usize, x: usize, v: T) {
        self.data[(z * self.height + y) * self.width + x] = v;
    }

    /// The z-th plane, row-major.
    pub fn plane(&self, z: usize) -> &[T] {
        let n = self.height * self.width;
        &self.data[z * n..(z + 1) * n]
    }
}

/// The physical size of a voxel: `z` between planes, `xy` within one, in
/// the file's unit (which cancels in their ratio).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spacing {
    pub z: f64,
    pub xy: f64,
}

impl Spacing {
    /// z spacing over xy spacing: EmbedSeg's `anisotropy_factor`.
    pub fn anisotropy(&self) -> f64 {
        self.z / self.xy
    }
}
