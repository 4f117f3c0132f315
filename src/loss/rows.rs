//! Row-wise sort and cumulative sum from candle's ops, for any device and
//! any row length: what the Lovász hinge needs on the GPU.
//!
//! - candle's `arg_sort_last_dim` sorts a row inside one CUDA block, in
//!   shared memory (4 bytes a column, without the opt-in beyond 48 KiB):
//!   rows longer than 8,192 fail there. Rows are sorted here as a bitonic
//!   network: chunks of CHUNK sorted by candle's kernel, then the merge
//!   stages wider than a chunk as compare-exchanges over whole tensors.
//! - candle's `cumsum` multiplies by a dense n×n triangle (17 GB for a
//!   256×256 crop). Here rows are summed in blocks of BLOCK by one small
//!   triangle, then the block totals, recursively: O(n·BLOCK).

use candle_core::{DType, Device, Result, Tensor};

/// The longest row candle's CUDA arg_sort takes (8,192 u32 indices: 32 KiB).
pub const CHUNK: usize = 8192;

/// Columns summed by one triangle product.
const BLOCK: usize = 128;

/// The permutation that sorts each row of `keys` (R, N) in decreasing
/// order, as (R, N) u32 column indices. Ties come in no particular order.
pub fn argsort_rows_desc(keys: &Tensor) -> Result<Tensor> {
    argsort_rows_desc_in_chunks(keys, CHUNK)
}

/// `argsort_rows_desc` with chunks of `chunk` (a power of two) columns.
pub fn argsort_rows_desc_in_chunks(keys: &Tensor, chunk: usize) -> Result<Tensor> {
    assert!(chunk.is_power_of_two(), "chunks are a power of two");
    let (rows, n) = keys.dims2()?;
    // Ascending order of −key is decreasing order of key.
    let ascending = keys.neg()?.contiguous()?;
    if n <= chunk {
        return ascending.arg_sort_last_dim(true);
    }
    let (dev, dtype) = (keys.device(), keys.dtype());
    let len = n.next_power_of_two();
    let mut k = if len > n {
        // Padding sorts after every real key.
        let pad = Tensor::full(f64::INFINITY, (rows, len - n), dev)?.to_dtype(dtype)?;
        Tensor::cat(&[&ascending, &pad], 1)?
    } else {
        ascending
    };
    let mut idx = Tensor::arange(0u32, len as u32, dev)?
        .unsqueeze(0)?
        .broadcast_as((rows, len))?
        .contiguous()?;
    // Chunks sorted in alternating directions: every pair is bitonic.
    (k, idx) = sort_chunks(&k, &idx, chunk, chunk)?;
    let mut size = 2 * chunk;
    while size <= len {
        let mut half = size / 2;
        while half >= chunk {
            (k, idx) = compare_exchange(&k, &idx, size, half)?;
            half /= 2;
        }
        // Each chunk is now bitonic and in place relative to the others.
        (k, idx) = sort_chunks(&k, &idx, chunk, size)?;
        size *= 2;
    }
    idx.narrow(1, 0, n)?.contiguous()
}

/// ±1 for each block of `block` columns: + where position & `size` is 0
/// (that block sorts ascending in a bitonic merge of width `size`).
fn directions(len: usize, block: usize, size: usize, dev: &Device, dtype: DType) -> Result<Tensor> {
    let signs: Vec<f64> = (0..len / block)
        .map(|q| if (q * block) & size == 0 { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_vec(signs, len / block, dev)?.to_dtype(dtype)
}

/// Sorts every chunk of `chunk` columns, ascending or descending as a
/// bitonic merge of width `size` wants it; returns keys and indices.
fn sort_chunks(k: &Tensor, idx: &Tensor, chunk: usize, size: usize) -> Result<(Tensor, Tensor)> {
    let (rows, len) = k.dims2()?;
    let shape = (rows, len / chunk, chunk);
    let sign = directions(len, chunk, size, k.device(), k.dtype())?.reshape((1, len / chunk, 1))?;
    let k3 = k.reshape(shape)?;
    let order = k3
        .broadcast_mul(&sign)?
        .contiguous()?
        .arg_sort_last_dim(true)?;
    let k3 = k3.gather(&order, 2)?;
    let i3 = idx.reshape(shape)?.gather(&order, 2)?;
    Ok((k3.reshape((rows, len))?, i3.reshape((rows, len))?))
}

/// One stage of a bitonic merge of width `size`: column c is compared with
/// c + `half` within each half-block and the pair put in the block's order.
fn compare_exchange(
    k: &Tensor,
    idx: &Tensor,
    size: usize,
    half: usize,
) -> Result<(Tensor, Tensor)> {
    let (rows, len) = k.dims2()?;
    let blocks = len / size;
    let shape = (rows, blocks, size / (2 * half), 2, half);
    let sign = directions(len, size, size, k.device(), k.dtype())?.reshape((1, blocks, 1, 1, 1))?;
    let (k5, i5) = (k.reshape(shape)?, idx.reshape(shape)?);
    let (k_lo, k_hi) = (k5.narrow(3, 0, 1)?, k5.narrow(3, 1, 1)?);
    let (i_lo, i_hi) = (i5.narrow(3, 0, 1)?, i5.narrow(3, 1, 1)?);
    let swap = k_lo.broadcast_mul(&sign)?.gt(&k_hi.broadcast_mul(&sign)?)?;
    let pick = |a: &Tensor, b: &Tensor| -> Result<(Tensor, Tensor)> {
        Ok((swap.where_cond(b, a)?, swap.where_cond(a, b)?))
    };
    let (k_lo, k_hi) = pick(&k_lo, &k_hi)?;
    let (i_lo, i_hi) = pick(&i_lo, &i_hi)?;
    Ok((
        Tensor::cat(&[&k_lo, &k_hi], 3)?.reshape((rows, len))?,
        Tensor::cat(&[&i_lo, &i_hi], 3)?.reshape((rows, len))?,
    ))
}

/// Inclusive cumulative sums along each row of `x` (R, N).
pub fn cumsum_rows(x: &Tensor) -> Result<Tensor> {
    let (rows, n) = x.dims2()?;
    if n <= BLOCK {
        return x.contiguous()?.matmul(&triangle(n, x.device(), x.dtype())?);
    }
    let blocks = n.div_ceil(BLOCK);
    let padded = if blocks * BLOCK > n {
        x.pad_with_zeros(1, 0, blocks * BLOCK - n)?
    } else {
        x.contiguous()?
    };
    let within = padded
        .reshape((rows * blocks, BLOCK))?
        .matmul(&triangle(BLOCK, x.device(), x.dtype())?)?
        .reshape((rows, blocks, BLOCK))?;
    let totals = within.narrow(2, BLOCK - 1, 1)?.squeeze(2)?.contiguous()?;
    let before = (cumsum_rows(&totals)? - &totals)?;
    within
        .broadcast_add(&before.unsqueeze(2)?)?
        .reshape((rows, blocks * BLOCK))?
        .narrow(1, 0, n)
}

/// T (n, n) with T[i][j] = 1 for i ≤ j: x·T sums each row's prefix.
fn triangle(n: usize, dev: &Device, dtype: DType) -> Result<Tensor> {
    let ones: Vec<f32> = (0..n * n)
        .map(|ij| if ij / n <= ij % n { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(ones, (n, n), dev)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn keys(rows: usize, n: usize, seed: u64, distinct: bool) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..rows * n)
            .map(|_| {
                if distinct {
                    rng.random::<f64>()
                } else {
                    // Many ties.
                    rng.random_range(0..7) as f64
                }
            })
            .collect()
    }

    /// Sorted keys of each row through `order`, and whether `order` is a permutation.
    fn check_sorted(values: &[f64], order: &Tensor, rows: usize, n: usize) {
        let order: Vec<u32> = order.flatten_all().unwrap().to_vec1().unwrap();
        for r in 0..rows {
            let row = &order[r * n..(r + 1) * n];
            let mut seen = vec![false; n];
            for &i in row {
                assert!(!seen[i as usize], "row {r}: column {i} twice");
                seen[i as usize] = true;
            }
            let got: Vec<f64> = row.iter().map(|&i| values[r * n + i as usize]).collect();
            let mut want: Vec<f64> = values[r * n..(r + 1) * n].to_vec();
            want.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(got, want, "row {r} of {n}");
        }
    }

    #[test]
    fn bitonic_merges_of_chunks_sort_like_a_plain_sort() {
        // Lengths below, at and above a chunk, powers of two and not; ties too.
        for (rows, n, chunk) in [
            (3, 5, 4),
            (2, 64, 4),
            (3, 100, 8),
            (1, 1000, 16),
            (4, 129, 128),
        ] {
            for distinct in [true, false] {
                let v = keys(rows, n, (n * chunk) as u64, distinct);
                let t = Tensor::from_vec(v.clone(), (rows, n), &Device::Cpu).unwrap();
                check_sorted(
                    &v,
                    &argsort_rows_desc_in_chunks(&t, chunk).unwrap(),
                    rows,
                    n,
                );
                let t32 = t.to_dtype(DType::F32).unwrap();
                let v32: Vec<f64> = t32
                    .to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                check_sorted(
                    &v32,
                    &argsort_rows_desc_in_chunks(&t32, chunk).unwrap(),
                    rows,
                    n,
                );
            }
        }
    }

    #[test]
    fn the_default_chunk_sorts_a_whole_256_crop() {
        let (rows, n) = (2, 256 * 256);
        let v = keys(rows, n, 5, true);
        let t = Tensor::from_vec(v.clone(), (rows, n), &Device::Cpu).unwrap();
        check_sorted(&v, &argsort_rows_desc(&t).unwrap(), rows, n);
    }

    #[test]
    fn blocked_cumulative_sums_equal_a_running_sum() {
        for n in [1, 7, 128, 129, 1000, 128 * 128 + 5] {
            let v: Vec<f64> = keys(2, n, n as u64, false);
            let t = Tensor::from_vec(v.clone(), (2, n), &Device::Cpu).unwrap();
            let got: Vec<f64> = cumsum_rows(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for r in 0..2 {
                let mut acc = 0.0;
                for j in 0..n {
                    acc += v[r * n + j];
                    assert_eq!(got[r * n + j], acc, "n {n} row {r} column {j}");
                }
            }
        }
    }
}
