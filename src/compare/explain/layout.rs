//! Layout tests: RIGHT is LEFT transposed, shifted by one row or column, or
//! with its rows or columns in another order.
//!
//! A tensor is seen as a stack of matrices: its last axis is the columns,
//! the one before it the rows, any others a batch. Permutations are looked
//! for over all leading axes flattened into rows (heads of a `[H·d, n]`
//! weight are blocks of rows), or over the columns.

use super::*;
use crate::numeric::rng::SplitMix64;

/// The stack-of-matrices view of a shape: (batch, rows, cols).
fn geometry(shape: &[usize]) -> (usize, usize, usize) {
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let rows = if shape.len() >= 2 { shape[shape.len() - 2].max(1) } else { 1 };
    let n: usize = shape.iter().product();
    (n / (rows * cols).max(1), rows, cols)
}

/// Where LEFT's element `k` lies in RIGHT when RIGHT holds each matrix transposed.
fn transposed_index(k: usize, rows: usize, cols: usize) -> usize {
    let rc = rows * cols;
    let (b, rem) = (k / rc, k % rc);
    let (i, j) = (rem / cols, rem % cols);
    b * rc + j * rows + i
}

/// Shapes that differ only by their last two axes swapped: does transposing
/// RIGHT make the stage pass, or remove nearly all of the difference?
pub(super) fn transposed_shapes(ls: &[usize], rs: &[usize], l: &[f64], r: &[f64], tol: &Tolerance) -> Option<Explanation> {
    let nd = ls.len();
    let swapped = nd >= 2
        && rs.len() == nd
        && ls[..nd - 2] == rs[..nd - 2]
        && ls[nd - 2] == rs[nd - 1]
        && ls[nd - 1] == rs[nd - 2];
    if !swapped {
        return None;
    }
    let (_, rows, cols) = geometry(ls);
    // "Before": the two sides read in memory order, as a reshape would see them.
    let before = residual(l.len(), |k| Some((l[k], r[k])));
    let after = residual(l.len(), |k| Some((l[k], r[transposed_index(k, rows, cols)])));
    let passes = after.non_finite_mismatched == 0 && after.max_abs <= tol.max_abs && after.mean_abs <= tol.mean_abs;
    if !(fits(&after, &before) || (passes && after.max_abs < before.max_abs)) {
        return None;
    }
    Some(Explanation {
        bug: Bug::Transposed { square: false },
        evidence: format!("right {} holds left {} with its last two axes swapped", numbers::shape(rs), numbers::shape(ls)),
        fixup: "transposing right",
        before,
        residual: after,
        confidence: removed(&after, &before),
        hint: "a weight stored as [in, out] read as [out, in]?",
    })
}

/// The layout tests on equal shapes. More than one can fit — with two rows
/// nearly equal, swapping the other two looks like a shift by one whose
/// residual is their small difference — so every test runs and the one that
/// leaves the smallest residual max_abs is named; on a tie the simpler
/// (earlier) one wins, so a rotation by one, which both a shift and a
/// permutation undo exactly, is called a shift.
pub(super) fn explain(shape: &[usize], l: &[f64], r: &[f64], before: Residual) -> Option<Explanation> {
    let candidates = [
        square_transposed(shape, l, r, before),
        shifted(shape, l, r, before, Axis::Rows),
        shifted(shape, l, r, before, Axis::Columns),
        permuted(shape, l, r, before, Axis::Rows),
        permuted(shape, l, r, before, Axis::Columns),
    ];
    candidates.into_iter().fold(None, best)
}

fn square_transposed(shape: &[usize], l: &[f64], r: &[f64], before: Residual) -> Option<Explanation> {
    let (_, rows, cols) = geometry(shape);
    if shape.len() < 2 || rows != cols || rows < 2 {
        return None;
    }
    let after = candidate(l.len(), |k| Some((l[k], r[transposed_index(k, rows, cols)])), &before)?;
    Some(Explanation {
        bug: Bug::Transposed { square: true },
        evidence: "the shapes agree but right[i, j] = left[j, i]".into(),
        fixup: "transposing right",
        before,
        residual: after,
        confidence: removed(&after, &before),
        hint: "a square weight whose orientation shape alone cannot tell?",
    })
}

/// RIGHT's row (column) i is LEFT's i − 1, or i + 1; the row a shift has no
/// partner for is left out of the residual.
fn shifted(shape: &[usize], l: &[f64], r: &[f64], before: Residual, axis: Axis) -> Option<Explanation> {
    let (_, rows, cols) = geometry(shape);
    let (len, stride) = match axis {
        Axis::Rows if shape.len() >= 2 => (rows, cols),
        Axis::Rows => return None,
        Axis::Columns => (cols, 1),
    };
    if len < 3 {
        return None;
    }
    // Both directions can fit (rows that nearly repeat every other row):
    // the one that leaves less is named, +1 on a tie.
    let mut found = None;
    for by in [1i64, -1] {
        let after = candidate(
            l.len(),
            |k| {
                let pos = (k / stride) % len;
                match by {
                    1 if pos >= 1 => Some((l[k - stride], r[k])),
                    -1 if pos + 1 < len => Some((l[k + stride], r[k])),
                    _ => None,
                }
            },
            &before,
        );
        if let Some(after) = after {
            let one = axis.singular();
            let evidence = if by == 1 {
                format!("right {one} i = left {one} i − 1 ({one} 0 not compared)")
            } else {
                format!("right {one} i = left {one} i + 1 (the last {one} not compared)")
            };
            found = best(found, Some(Explanation {
                bug: Bug::Shifted { axis, by },
                evidence,
                fixup: "shifting back",
                before,
                residual: after,
                confidence: removed(&after, &before),
                hint: "an off-by-one in an index, a slice or a roll?",
            }));
        }
    }
    found
}

/// Candidates examined around each vector's place in the sorted keys.
const WINDOW: usize = 32;

/// RIGHT's rows (columns) are LEFT's in another order. Each vector gets two
/// keys, its dot products with two fixed pseudo-random weight vectors; a
/// vector and its noisy copy have nearly equal keys, two different vectors
/// almost surely not. RIGHT's vectors are matched to LEFT's by key (sorted
/// keys, a window around each), then the match is verified element by
/// element through the residual.
fn permuted(shape: &[usize], l: &[f64], r: &[f64], before: Residual, axis: Axis) -> Option<Explanation> {
    let n = l.len();
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let (count, len) = match axis {
        Axis::Rows => (n / cols, cols),
        Axis::Columns => (cols, n / cols),
    };
    if count < 2 || len < 2 {
        return None;
    }
    let at = |v: usize, t: usize| match axis {
        Axis::Rows => v * cols + t,
        Axis::Columns => t * cols + v,
    };
    // A screen before the keys: a fit puts RIGHT's vector that holds the
    // largest difference in the place of some *other* LEFT vector, all of
    // whose elements are then within the bound of a fit. If no LEFT vector
    // is, no permutation fits (exact; typically one element per candidate
    // decides, where the keys read the whole stage).
    let bound = before.max_abs * MAX_RATIO;
    let worst = match axis {
        Axis::Rows => before.at / cols,
        Axis::Columns => before.at % cols,
    };
    let close = |u: usize| {
        (0..len).all(|t| {
            let (a, b) = (l[at(u, t)], r[at(worst, t)]);
            !(a.is_finite() && b.is_finite()) || (b - a).abs() <= bound
        })
    };
    if !(0..count).into_par_iter().any(|u| u != worst && close(u)) {
        return None;
    }
    let mut rng = SplitMix64::new(0x5eed_0f_7e57);
    let w: Vec<(f64, f64)> = (0..len).map(|_| (2.0 * rng.uniform() - 1.0, 2.0 * rng.uniform() - 1.0)).collect();
    let keys = |x: &[f64]| -> Vec<(f64, f64)> {
        (0..count)
            .into_par_iter()
            .map(|v| {
                let (mut a, mut b) = (0.0, 0.0);
                for (t, (w1, w2)) in w.iter().enumerate() {
                    let e = x[at(v, t)];
                    if e.is_finite() {
                        a += w1 * e;
                        b += w2 * e;
                    }
                }
                (a, b)
            })
            .collect()
    };
    let (lk, rk) = rayon::join(|| keys(l), || keys(r));
    let mut sorted: Vec<usize> = (0..count).collect();
    sorted.sort_by(|&a, &b| lk[a].0.total_cmp(&lk[b].0).then(a.cmp(&b)));
    let sorted_first: Vec<f64> = sorted.iter().map(|&v| lk[v].0).collect();
    let order: Vec<usize> = (0..count)
        .into_par_iter()
        .map(|v| {
            let (a, b) = rk[v];
            let pos = sorted_first.partition_point(|&x| x < a);
            let span = pos.saturating_sub(WINDOW)..(pos + WINDOW).min(count);
            let distance = |u: usize| (lk[u].0 - a).abs() + (lk[u].1 - b).abs();
            sorted[span].iter().copied().min_by(|&x, &y| distance(x).total_cmp(&distance(y)).then(x.cmp(&y))).unwrap_or(v)
        })
        .collect();
    let moved = order.iter().enumerate().filter(|(v, u)| *v != **u).count();
    if moved == 0 {
        return None;
    }
    let mut seen = vec![false; count];
    for &u in &order {
        if std::mem::replace(&mut seen[u], true) {
            return None; // not a bijection: no permutation explains it
        }
    }
    let after = candidate(
        n,
        |k| {
            let (v, t) = match axis {
                Axis::Rows => (k / cols, k % cols),
                Axis::Columns => (k % cols, k / cols),
            };
            Some((l[at(order[v], t)], r[k]))
        },
        &before,
    )?;
    let block = block_size(&order);
    let shown: Vec<usize> = order.iter().step_by(block).map(|u| u / block).collect();
    let one = axis.singular();
    let evidence = if block > 1 {
        format!(
            "{moved} of {count} {} moved, in blocks of {block}: right block i is left block order[i], order = {}",
            axis.name(),
            list(&shown)
        )
    } else {
        format!("{moved} of {count} {} moved: right {one} i is left {one} order[i], order = {}", axis.name(), list(&shown))
    };
    Some(Explanation {
        bug: Bug::Permuted { axis, moved, block, order: shown },
        evidence,
        fixup: "reordering right",
        before,
        residual: after,
        confidence: removed(&after, &before),
        hint: if block > 1 {
            "heads (or experts) laid out in another order: a reshape or split along the wrong axis?"
        } else {
            "a gather, an index map or a sort in another order?"
        },
    })
}

/// The largest block size b < len (a divisor of it) such that the
/// permutation moves whole blocks of b consecutive vectors, in order inside.
fn block_size(order: &[usize]) -> usize {
    let n = order.len();
    (2..=n / 2)
        .rev()
        .filter(|b| n % b == 0)
        .find(|&b| {
            order.chunks(b).all(|blk| blk[0] % b == 0 && blk.iter().enumerate().all(|(t, &u)| u == blk[0] + t))
        })
        .unwrap_or(1)
}

/// `[3, 0, 1, 2]`, the first 16 entries and a count of the rest.
fn list(v: &[usize]) -> String {
    let head: Vec<String> = v.iter().take(16).map(|x| x.to_string()).collect();
    if v.len() > 16 {
        format!("[{}, … {} more]", head.join(", "), v.len() - 16)
    } else {
        format!("[{}]", head.join(", "))
    }
}
