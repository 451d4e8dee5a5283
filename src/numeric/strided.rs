//! The fast layout kernel: contiguous runs are copied whole, and a
//! transposition is done in cache-sized tiles (used by `transpose` and
//! `slice`, and to read a PyTorch checkpoint's strided views in logical
//! order; `identity`, `reshape`, `concat` and `split` copy whole blocks).
//!
//! A transpose or a slice is a strided view of its input (an offset and, per output
//! axis, a step in input elements) copied out contiguously by
//! [`strided_copy`]. Before copying, axes of length 1 are dropped and axes
//! that are contiguous in the input are merged, so a row slice becomes a few
//! long `memcpy`s and a batched matrix transpose becomes a loop of 2-D tiled
//! transposes. Elements are moved as `[u8; N]` for the dtype's width `N`
//! (1, 2, 4 or 8 bytes), so bits pass through untouched whatever they encode.


/// Copy the strided view (`offset`, and per output axis a step in input
/// elements) of `src` out into a new contiguous buffer of `shape`.
pub(crate) fn strided_copy(src: &[u8], es: usize, shape: &[usize], steps: &[usize], offset: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut dst = vec![0u8; n * es];
    if n == 0 {
        return dst;
    }
    let (shape, steps) = simplify(shape, steps);
    match es {
        1 => copy_as::<1>(src, &mut dst, &shape, &steps, offset),
        2 => copy_as::<2>(src, &mut dst, &shape, &steps, offset),
        4 => copy_as::<4>(src, &mut dst, &shape, &steps, offset),
        8 => copy_as::<8>(src, &mut dst, &shape, &steps, offset),
        _ => unreachable!("every dtype is 1, 2, 4 or 8 bytes wide"),
    }
    dst
}

/// Drop axes of length 1 and merge neighbours that are contiguous in the
/// input (outer step = inner step × inner length): the same view with as few
/// axes as possible, so runs are as long as possible.
fn simplify(shape: &[usize], steps: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_steps: Vec<usize> = Vec::with_capacity(shape.len());
    for (&len, &step) in shape.iter().zip(steps) {
        if len == 1 {
            continue;
        }
        match (out_shape.last_mut(), out_steps.last_mut()) {
            (Some(prev_len), Some(prev_step)) if *prev_step == step * len => {
                *prev_len *= len;
                *prev_step = step;
            }
            _ => {
                out_shape.push(len);
                out_steps.push(step);
            }
        }
    }
    (out_shape, out_steps)
}

/// View bytes as elements of `N` bytes.
fn elems<const N: usize>(b: &[u8]) -> &[[u8; N]] {
    assert_eq!(b.len() % N, 0);
    // SAFETY: [u8; N] has size N and alignment 1, and b.len() is a multiple
    // of N, so the new slice covers exactly b's bytes.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<[u8; N]>(), b.len() / N) }
}

fn elems_mut<const N: usize>(b: &mut [u8]) -> &mut [[u8; N]] {
    assert_eq!(b.len() % N, 0);
    // SAFETY: as in `elems`; the borrow of b is exclusive and moves into the result.
    unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<[u8; N]>(), b.len() / N) }
}

fn copy_as<const N: usize>(src: &[u8], dst: &mut [u8], shape: &[usize], steps: &[usize], offset: usize) {
    let (src, dst) = (elems::<N>(src), elems_mut::<N>(dst));
    let rank = shape.len();
    if rank == 0 {
        dst[0] = src[offset];
        return;
    }
    // A transposition of the last two axes: tile it, so both the reads (down
    // a column of the input) and the writes stay within a few cache lines.
    if rank >= 2 && steps[rank - 2] == 1 && steps[rank - 1] != 1 {
        let (rows, cols) = (shape[rank - 2], shape[rank - 1]);
        let col_step = steps[rank - 1];
        for_each_outer(&shape[..rank - 2], &steps[..rank - 2], offset, |k, base| {
            transpose_tile(&src[base..], &mut dst[k * rows * cols..(k + 1) * rows * cols], rows, cols, col_step);
        });
        return;
    }
    let (len, step) = (shape[rank - 1], steps[rank - 1]);
    for_each_outer(&shape[..rank - 1], &steps[..rank - 1], offset, |k, base| {
        let out = &mut dst[k * len..(k + 1) * len];
        if step == 1 {
            out.copy_from_slice(&src[base..base + len]);
        } else {
            for (i, o) in out.iter_mut().enumerate() {
                *o = src[base + i * step];
            }
        }
    });
}

/// Call `f(k, base)` for every index of the outer axes in row-major order:
/// `k` counts them, `base` is the input element where that index starts.
fn for_each_outer(shape: &[usize], steps: &[usize], offset: usize, mut f: impl FnMut(usize, usize)) {
    let count: usize = shape.iter().product();
    let mut ix = vec![0usize; shape.len()];
    let mut base = offset;
    for k in 0..count {
        f(k, base);
        // Odometer: advance the last axis, carrying into earlier ones.
        for d in (0..shape.len()).rev() {
            ix[d] += 1;
            base += steps[d];
            if ix[d] < shape[d] {
                break;
            }
            base -= steps[d] * shape[d];
            ix[d] = 0;
        }
    }
}

/// dst[r][c] = src[r + c·col_step] for a [rows, cols] output, in 32×32 tiles.
fn transpose_tile<const N: usize>(src: &[[u8; N]], dst: &mut [[u8; N]], rows: usize, cols: usize, col_step: usize) {
    const T: usize = 32;
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            for c in c0..(c0 + T).min(cols) {
                for r in r0..(r0 + T).min(rows) {
                    dst[r * cols + c] = src[r + c * col_step];
                }
            }
        }
    }
}
