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
    check_extent(&a);
    check_extent(&b);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views' extents were checked against their slices' lengths,
    // and `c` holds m × n elements.
    unsafe { gemm_raw(c.as_mut_ptr(), n, a, b, accumulate, parallelism) }
}

/// Columns per thread below which splitting the product by columns does not pay.
const SPLIT_MIN_COLUMNS: usize = 2048;

/// As `matmul`, but with a wide b (many columns: the pixels of one image) the
/// columns are split into one block per thread, each a single-threaded
/// product: at batch 1 this keeps every core busy where gemm's own
/// threading, which splits the small output-channel dimension, does not.
pub fn matmul_wide<T: Elem>(c: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool, threads: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let blocks = threads.min(n / SPLIT_MIN_COLUMNS);
    if blocks < 2 || m == 0 || k == 0 {
        return matmul(c, a, b, accumulate, threads);
    }
    assert_eq!(k, b.rows, "inner dimensions");
    assert!(c.len() >= m * n, "output too small");
    check_extent(&a);
    check_extent(&b);
    let dst = SendPtr(c.as_mut_ptr());
    rayon::scope(|s| {
        for t in 0..blocks {
            let (j0, j1) = (n * t / blocks, n * (t + 1) / blocks);
            let block = Mat {
                data: &b.data[j0 * b.col_stride..],
                cols: j1 - j0,
                ..b
            };
            let dst = &dst;
            s.spawn(move |_| {
                // SAFETY: blocks write disjoint column ranges j0..j1 of the
                // m × n output (row stride n); the views' extents were checked.
                unsafe {
                    gemm_raw(
                        dst.0.add(j0),
                        n,
                        a,
                        block,
                        accumulate,
                        gemm::Parallelism::None,
                    )
                }
            });
        }
    });
}

pub(crate) struct SendPtr<T>(pub *mut T);
// SAFETY: used only to hand disjoint parts of one output buffer to threads
// that all finish inside the scope that borrows it.
unsafe impl<T> Sync for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}

fn check_extent<T>(v: &Mat<T>) {
    if v.rows > 0 && v.cols > 0 {
        assert!((v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride < v.data.len());
    }
}

/// An output view: element (i, j) at `ptr + i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub struct Dst<T> {
    pub ptr: *mut T,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// dst += sign · a · b, single-threaded, any strides.
///
/// # Safety
/// `dst` must be valid for writes over a.rows × b.cols elements at its
/// strides, not aliased by `a` or `b`; the views' extents must lie inside
/// their slices.
pub unsafe fn gemm_add<T: Elem>(dst: Dst<T>, a: Mat<T>, b: Mat<T>, sign: T) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    if a.rows == 0 || b.cols == 0 || a.cols == 0 {
        return;
    }
    check_extent(&a);
    check_extent(&b);
    gemm_strided(dst, a, b, true, sign, gemm::Parallelism::None);
}

/// dst (a.rows × b.cols, row stride `dst_rs`) = a · b (+= when `accumulate`).
///
/// # Safety
/// `dst` must be valid for writes over that extent, and the views' extents
/// must lie inside their slices.
unsafe fn gemm_raw<T: Elem>(
    dst: *mut T,
    dst_rs: usize,
    a: Mat<T>,
    b: Mat<T>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let dst = Dst {
        ptr: dst,
        row_stride: dst_rs,
        col_stride: 1,
    };
    gemm_strided(dst, a, b, accumulate, T::one(), parallelism);
}

/// dst = (dst when `read_dst`) + sign · a · b: the one call into gemm.
///
/// # Safety
/// As `gemm_add`.
unsafe fn gemm_strided<T: Elem>(
    dst: Dst<T>,
    a: Mat<T>,
    b: Mat<T>,
    read_dst: bool,
    sign: T,
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        a.rows,
        b.cols,
        a.cols,
        dst.ptr,
        dst.col_stride as isize,
        dst.row_stride as isize,
        read_dst,
        a.data.as_ptr(),
        a.col_stride as isize,
        a.row_stride as isize,
        b.data.as_ptr(),
        b.col_stride as isize,
        b.row_stride as isize,
        T::one(),
        sign,
        false,
        false,
        false,
        parallelism,
    );
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

    #[test]
    fn wide_products_split_by_columns_equal_the_plain_product() {
        let (m, k, n) = (5, 7, 3 * SPLIT_MIN_COLUMNS + 17);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        for accumulate in [false, true] {
            let mut plain = vec![1.0; m * n];
            let mut wide = vec![1.0; m * n];
            matmul(
                &mut plain,
                Mat::new(&a, m, k),
                Mat::new(&b, k, n),
                accumulate,
                1,
            );
            matmul_wide(
                &mut wide,
                Mat::new(&a, m, k),
                Mat::new(&b, k, n),
                accumulate,
                3,
            );
            assert_eq!(plain, wide);
            // Transposed b (column stride ≠ 1) too.
            let bt: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.11).cos()).collect();
            matmul(
                &mut plain,
                Mat::new(&a, m, k),
                Mat::new(&bt, n, k).t(),
                accumulate,
                1,
            );
            matmul_wide(
                &mut wide,
                Mat::new(&a, m, k),
                Mat::new(&bt, n, k).t(),
                accumulate,
                3,
            );
            assert_eq!(plain, wide);
        }
    }
}
