//! Row-major matrix products through the `gemm` crate.

use super::elem::Elem;

/// A matrix view: element (i, j) is at `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major rows × cols matrix.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// `c` (row-major a.rows × b.cols) = a · b, or += when `accumulate`.
/// `threads` > 1 lets gemm split the work over rayon's pool.
pub fn matmul<T: Elem>(c: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool, threads: usize) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(c.len() >= m * n, "output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = T::zero());
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views' extents were checked against their slices' lengths
    // below, and `c` holds m × n elements.
    unsafe {
        assert!((a.rows - 1) * a.row_stride + (a.cols - 1) * a.col_stride < a.data.len());
        assert!((b.rows - 1) * b.row_stride + (b.cols - 1) * b.col_stride < b.data.len());
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_transposed_views() {
        // a = [[1 2 3] [4 5 6]], b = [[1 0] [0 1] [1 1]]
        let a = [1.0f64, 2., 3., 4., 5., 6.];
        let b = [1.0f64, 0., 0., 1., 1., 1.];
        let mut c = [0.0f64; 4];
        matmul(&mut c, Mat::new(&a, 2, 3), Mat::new(&b, 3, 2), false, 1);
        assert_eq!(c, [4., 5., 10., 11.]);
        matmul(&mut c, Mat::new(&a, 2, 3), Mat::new(&b, 3, 2), true, 2);
        assert_eq!(c, [8., 10., 20., 22.]);
        // aᵀ · a is 3 × 3
        let mut d = [0.0f64; 9];
        matmul(&mut d, Mat::new(&a, 2, 3).t(), Mat::new(&a, 2, 3), false, 1);
        assert_eq!(d, [17., 22., 27., 22., 29., 36., 27., 36., 45.]);
    }
}
