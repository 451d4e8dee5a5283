//! What a failing stage looks like, as bounded summaries a page can draw:
//! a histogram of log10|diff| (and, for float stages of one dtype, of the
//! ULP distance), a heatmap of the largest |diff| per cell and
//! the largest |diff| per row and per column.
//!
//! Bounded: whatever the stage's size, a histogram has [`BINS`] + 4 bins, a
//! heatmap at most [`GRID`]×[`GRID`] cells and a profile at most
//! [`PROFILE_POINTS`] points, so the page stays small.
//!
//! Deterministic: bins are fixed (not fitted to the data), cells and points
//! hold maxima and the histograms counts; parts merge by adding counts and
//! taking maxima, both exact, so the summaries depend neither on the number
//! of threads nor on how the stage was cut into pieces ([`gather`] on a
//! stage in memory, [`gather_stages`] streaming one of any size).
//!
//! A |diff| that is not finite (a NaN or an inf on either side) is counted
//! in its own bin and marks its cell and point with +inf.
//!
//! Integer stages of one dtype take |diff| from the integers (the nearest
//! f64 of the exact difference), not from their f64 decodes: I64 values
//! one apart beyond 2⁵³ decode to one f64 and would plot as no difference.

use super::metrics::{Bytes, Stage};
use crate::error::Result;
use crate::format::dtype::DType;
use rayon::prelude::*;

/// The smallest decade the histogram resolves: |diff| below 10^MIN_DECADE
/// (but above 0) goes to the "below" bin.
pub const MIN_DECADE: i32 = -12;
/// |diff| at or above 10^MAX_DECADE goes to the "above" bin.
pub const MAX_DECADE: i32 = 4;
/// Bins per decade: half decades.
pub const PER_DECADE: i32 = 2;
/// The fixed log bins between 10^MIN_DECADE and 10^MAX_DECADE.
pub const BINS: usize = ((MAX_DECADE - MIN_DECADE) * PER_DECADE) as usize;
/// The heatmap's largest side, in cells.
pub const GRID: usize = 64;
/// A profile's largest number of points.
pub const PROFILE_POINTS: usize = 256;

/// Counts of |diff| over every element: exactly 0, below 10^MIN_DECADE,
/// the half-decade bins, at or above 10^MAX_DECADE, and not finite. The
/// counts add up to the element count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    pub zero: u64,
    pub below: u64,
    /// `bins[k]` counts 10^(MIN_DECADE + k/PER_DECADE) ≤ |diff| < the next edge.
    pub bins: Vec<u64>,
    pub above: u64,
    pub non_finite: u64,
}

impl Histogram {
    fn empty() -> Histogram {
        Histogram { bins: vec![0; BINS], ..Histogram::default() }
    }

    fn add(&mut self, d: f64) {
        if !d.is_finite() {
            self.non_finite += 1;
        } else if d == 0.0 {
            self.zero += 1;
        } else {
            let at = ((d.log10() - MIN_DECADE as f64) * PER_DECADE as f64).floor();
            if at < 0.0 {
                self.below += 1;
            } else if at >= BINS as f64 {
                self.above += 1;
            } else {
                self.bins[at as usize] += 1;
            }
        }
    }

    fn merge(&mut self, o: &Histogram) {
        self.zero += o.zero;
        self.below += o.below;
        self.above += o.above;
        self.non_finite += o.non_finite;
        for (a, b) in self.bins.iter_mut().zip(&o.bins) {
            *a += b;
        }
    }

    /// The lower edge of `bins[k]`, as a power of ten.
    pub fn edge(k: usize) -> f64 {
        MIN_DECADE as f64 + k as f64 / PER_DECADE as f64
    }

    /// Every bin in order with its label: `0`, `<1e-12`, `1e-12`, …, `≥1e4`, `non-finite`.
    pub fn labelled(&self) -> Vec<(String, u64)> {
        let mut out = vec![("0".to_string(), self.zero), (format!("<1e{MIN_DECADE}"), self.below)];
        for (k, &c) in self.bins.iter().enumerate() {
            let e = Self::edge(k);
            let label = if e.fract() == 0.0 { format!("1e{e}") } else { format!("3e{}", e.floor()) };
            out.push((label, c));
        }
        out.push((format!("≥1e{MAX_DECADE}"), self.above));
        out.push(("non-finite".to_string(), self.non_finite));
        out
    }

    pub fn total(&self) -> u64 {
        self.zero + self.below + self.above + self.non_finite + self.bins.iter().sum::<u64>()
    }
}

/// Counts of the ULP distance between the two sides' values (same float
/// dtype): `buckets[0]` is distance 0, `buckets[k]` (k ≥ 1) counts
/// distances in [2^(k−1), 2^k); a NaN on either side, or an infinity
/// against another value, is `non_finite`. Equal infinities are distance 0.
/// The counts add up to the element count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UlpHistogram {
    pub buckets: Vec<u64>,
    pub non_finite: u64,
}

/// Buckets of [`UlpHistogram`]: 0, then one per power of two up to 2^64.
pub const ULP_BUCKETS: usize = 65;

impl UlpHistogram {
    fn empty() -> UlpHistogram {
        UlpHistogram { buckets: vec![0; ULP_BUCKETS], non_finite: 0 }
    }

    pub fn total(&self) -> u64 {
        self.non_finite + self.buckets.iter().sum::<u64>()
    }

    /// The buckets up to the last non-empty one (at least `0` and `1`), then
    /// `non-finite`, with labels: `0`, `1`, `2–3`, `4–7`, …, `2^20–2^21−1`.
    pub fn labelled(&self) -> Vec<(String, u64)> {
        let last = self.buckets.iter().rposition(|&c| c > 0).unwrap_or(0).max(1);
        let mut out: Vec<(String, u64)> = self.buckets[..=last]
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                let label = match k {
                    0 => "0".to_string(),
                    1 => "1".to_string(),
                    k if k <= 10 => format!("{}–{}", 1u64 << (k - 1), (1u64 << k) - 1),
                    k => format!("2^{}–2^{}", k - 1, k),
                };
                (label, c)
            })
            .collect();
        out.push(("non-finite".to_string(), self.non_finite));
        out
    }
}

/// The largest |diff| per cell of a grid laid over a 2-D view of the stage
/// (rows: every axis but the last, flattened; columns: the last axis).
/// Cell `(g, h)` covers the rows `i` with `i · grid_rows / rows = g` and the
/// columns likewise; `cells` is row-major, `+inf` where a |diff| is not finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub rows: usize,
    pub cols: usize,
    pub grid_rows: usize,
    pub grid_cols: usize,
    pub cells: Vec<f64>,
}

impl Heatmap {
    /// The first tensor row (or column, with `extent` = cols) in grid cell `g`.
    pub fn first_index(g: usize, grid: usize, extent: usize) -> usize {
        (g * extent).div_ceil(grid)
    }
}

/// The largest |diff| per row (or per column), downsampled: point `p` holds
/// the maximum over the rows `i` with `i · points.len() / extent = p`.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorProfile {
    pub extent: usize,
    pub points: Vec<f64>,
}

/// Everything drawn for one failing stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlots {
    pub histogram: Histogram,
    /// For float stages of the same dtype on both sides.
    pub ulp: Option<UlpHistogram>,
    /// For stages of two or more axes.
    pub heatmap: Option<Heatmap>,
    pub row_profile: Option<ErrorProfile>,
    pub column_profile: Option<ErrorProfile>,
}

/// Elements per unit of parallel work of the histogram.
const SPAN: usize = 1 << 14;

/// |right − left| with every non-finite outcome as +inf (NaN included), so
/// `max` keeps it.
fn abs_diff(a: f64, b: f64) -> f64 {
    let d = (b - a).abs();
    if d.is_finite() {
        d
    } else {
        f64::INFINITY
    }
}

/// The plots of a stage pair already decoded to f64 (same shape, `l.len()`
/// elements each); `raw` — the dtype and both sides' bytes — when both
/// sides are of that one dtype: for the ULP histogram of a float dtype,
/// for the exact differences of an integer one.
pub fn gather(shape: &[usize], l: &[f64], r: &[f64], raw: Option<(DType, &[u8], &[u8])>) -> StagePlots {
    let n = l.len().min(r.len());
    let columns = ColumnMap::new(shape, n);
    let raw = raw.filter(|(d, _, _)| d.is_float() || d.is_integer());
    let ulp = raw.is_some_and(|(d, _, _)| d.is_float());
    let acc = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|c| {
            let span = c * SPAN..n.min((c + 1) * SPAN);
            let size = raw.map_or(0, |(d, _, _)| d.size());
            let bytes = raw.map(|(d, lr, rr)| (d, &lr[span.start * size..span.end * size], &rr[span.start * size..span.end * size]));
            Accumulator::of(shape, n, span.start, &l[span.clone()], &r[span], bytes, &columns)
        })
        .reduce(|| Accumulator::empty(shape, n, ulp), Accumulator::merge);
    acc.finish()
}

/// Elements per piece of [`gather_stages`]: each worker holds one piece of
/// each side, raw and decoded (≤ 2 × 12 MiB for f32).
pub const PIECE: usize = 1 << 20;

/// The plots of a stage pair of any size (same shape), read piece by piece:
/// memory stays at a few pieces per worker, so a stage too large to hold
/// decoded (the explanations' limit) is still drawn. Gives exactly what
/// [`gather`] gives on the decoded stages: counts add and maxima are taken,
/// both exact and indifferent to the order of the pieces.
pub fn gather_stages(left: Stage, right: Stage) -> Result<StagePlots> {
    gather_in_pieces(left, right, PIECE)
}

/// [`gather_stages`] with pieces of `piece` elements (public so that tests
/// can cut a small stage into many pieces, rows split across them).
pub fn gather_in_pieces(left: Stage, right: Stage, piece: usize) -> Result<StagePlots> {
    let piece = piece.max(1);
    let n = left.numel().min(right.numel());
    let columns = ColumnMap::new(left.shape, n);
    let same = left.dtype == right.dtype && (left.dtype.is_float() || left.dtype.is_integer());
    let ulp = same && left.dtype.is_float();
    let acc = (0..n.div_ceil(piece))
        .into_par_iter()
        .map(|c| {
            let span = c * piece..n.min((c + 1) * piece);
            let (lraw, rraw) = (piece_bytes(&left, span.clone())?, piece_bytes(&right, span.clone())?);
            let decode = |dtype: DType, raw: &[u8]| {
                let mut v = vec![0.0; span.len()];
                dtype.decode_into(raw, &mut v);
                v
            };
            let (l, r) = (decode(left.dtype, &lraw), decode(right.dtype, &rraw));
            let bytes = same.then_some((left.dtype, lraw.as_slice(), rraw.as_slice()));
            Ok(Accumulator::of(left.shape, n, span.start, &l, &r, bytes, &columns))
        })
        .try_reduce(|| Accumulator::empty(left.shape, n, ulp), |a, b| Ok(a.merge(b)))?;
    Ok(acc.finish())
}

/// The bytes of elements `span` of a stage.
fn piece_bytes(stage: &Stage, span: std::ops::Range<usize>) -> Result<Vec<u8>> {
    let size = stage.dtype.size();
    let (from, to) = (span.start * size, span.end * size);
    Ok(match stage.bytes {
        Bytes::Memory(d) => d[from..to].to_vec(),
        Bytes::File(region) => {
            let mut buf = vec![0u8; to - from];
            region.read_at(from, &mut buf)?;
            buf
        }
    })
}

/// Each column's heatmap cell and column-profile point, worked out once per
/// stage (`j · GRID / cols` is two integer divisions per element otherwise).
struct ColumnMap {
    cell: Vec<u32>,
    point: Vec<u32>,
}

impl ColumnMap {
    fn new(shape: &[usize], n: usize) -> ColumnMap {
        match shape {
            [.., last] if shape.len() >= 2 && *last > 0 && n > 0 => {
                let cols = *last;
                let (gc, pc) = (cols.min(GRID), cols.min(PROFILE_POINTS));
                ColumnMap {
                    cell: (0..cols).map(|j| (j * gc / cols) as u32).collect(),
                    point: (0..cols).map(|j| (j * pc / cols) as u32).collect(),
                }
            }
            _ => ColumnMap { cell: Vec::new(), point: Vec::new() },
        }
    }
}

/// The plots of some of a stage's elements, to be merged with the rest.
struct Accumulator {
    histogram: Histogram,
    ulp: Option<UlpHistogram>,
    grid: Option<Grid>,
}

/// The heatmap's cells and both profiles as running maxima.
struct Grid {
    rows: usize,
    cols: usize,
    gr: usize,
    gc: usize,
    pr: usize,
    cells: Vec<f64>,
    columns: Vec<f64>,
    row_points: Vec<f64>,
}

impl Accumulator {
    /// Nothing seen yet, for a stage of `shape` with `n` elements; `ulp`
    /// when both sides are of one float dtype.
    fn empty(shape: &[usize], n: usize, ulp: bool) -> Accumulator {
        let grid = match shape {
            [.., last] if shape.len() >= 2 && *last > 0 && n > 0 => {
                let (rows, cols) = (n / last, *last);
                let (gr, gc, pr, pc) = (rows.min(GRID), cols.min(GRID), rows.min(PROFILE_POINTS), cols.min(PROFILE_POINTS));
                Some(Grid { rows, cols, gr, gc, pr, cells: vec![0.0; gr * gc], columns: vec![0.0; pc], row_points: vec![0.0; pr] })
            }
            _ => None,
        };
        Accumulator { histogram: Histogram::empty(), ulp: ulp.then(UlpHistogram::empty), grid }
    }

    /// Elements `first..first + l.len()` of the stage, decoded (`l`, `r`)
    /// and, when both sides are of one float or integer dtype, raw (for
    /// the ULP histogram, or the exact integer differences).
    fn of(shape: &[usize], n: usize, first: usize, l: &[f64], r: &[f64], raw: Option<(DType, &[u8], &[u8])>, columns: &ColumnMap) -> Accumulator {
        let mut acc = Accumulator::empty(shape, n, raw.is_some_and(|(d, _, _)| d.is_float()));
        // |diff| of element k: from the integers for an integer dtype (the
        // exact |d| ≤ 2⁶⁴ − 1, rounded once), else from the decoded values.
        let int = raw.filter(|(d, _, _)| d.is_integer());
        let diff = |k: usize| match int {
            Some((d, lr, rr)) => {
                let (a, b) = (d.int(lr, k).expect("an integer dtype"), d.int(rr, k).expect("an integer dtype"));
                crate::numeric::int::abs_diff(a, b) as f64
            }
            None => abs_diff(l[k], r[k]),
        };
        if int.is_some() {
            for k in 0..l.len().min(r.len()) {
                acc.histogram.add(diff(k));
            }
        } else {
            for (a, b) in l.iter().zip(r) {
                acc.histogram.add((b - a).abs());
            }
        }
        if let (Some(h), Some((dtype, lraw, rraw))) = (acc.ulp.as_mut(), raw) {
            for (k, (&a, &b)) in l.iter().zip(r).enumerate() {
                if a.is_nan() || b.is_nan() || ((a.is_infinite() || b.is_infinite()) && a != b) {
                    h.non_finite += 1;
                    continue;
                }
                // i128: two i64 keys can be 2^64 apart (f64 ±max).
                let d = (dtype.ordered_key(lraw, k) as i128 - dtype.ordered_key(rraw, k) as i128).unsigned_abs();
                let bucket = if d == 0 { 0 } else { (128 - d.leading_zeros()) as usize };
                h.buckets[bucket.min(ULP_BUCKETS - 1)] += 1;
            }
        }
        if let Some(g) = acc.grid.as_mut() {
            // Row by row (the first and last may be partial): the row's
            // cell row and profile point are worked out once per row.
            let mut k = 0;
            while k < l.len() {
                let (i, j0) = ((first + k) / g.cols, (first + k) % g.cols);
                let len = (g.cols - j0).min(l.len() - k);
                let cell_row = i * g.gr / g.rows * g.gc;
                let mut row_max = 0.0f64;
                for j in j0..j0 + len {
                    let d = diff(k + j - j0);
                    row_max = row_max.max(d);
                    let cell = &mut g.cells[cell_row + columns.cell[j] as usize];
                    *cell = cell.max(d);
                    let col = &mut g.columns[columns.point[j] as usize];
                    *col = col.max(d);
                }
                let p = &mut g.row_points[i * g.pr / g.rows];
                *p = p.max(row_max);
                k += len;
            }
        }
        acc
    }

    /// Both parts together: counts add, maxima are taken (`f64::max` of
    /// non-negative values and +inf: exact, and the same in any order).
    fn merge(mut self, o: Accumulator) -> Accumulator {
        self.histogram.merge(&o.histogram);
        if let (Some(a), Some(b)) = (self.ulp.as_mut(), o.ulp) {
            a.non_finite += b.non_finite;
            for (x, y) in a.buckets.iter_mut().zip(b.buckets) {
                *x += y;
            }
        }
        if let (Some(a), Some(b)) = (self.grid.as_mut(), o.grid) {
            for (x, y) in a.cells.iter_mut().zip(b.cells).chain(a.columns.iter_mut().zip(b.columns)).chain(a.row_points.iter_mut().zip(b.row_points)) {
                *x = x.max(y);
            }
        }
        self
    }

    fn finish(self) -> StagePlots {
        let (heatmap, row_profile, column_profile) = match self.grid {
            Some(g) => (
                Some(Heatmap { rows: g.rows, cols: g.cols, grid_rows: g.gr, grid_cols: g.gc, cells: g.cells }),
                Some(ErrorProfile { extent: g.rows, points: g.row_points }),
                Some(ErrorProfile { extent: g.cols, points: g.columns }),
            ),
            None => (None, None, None),
        };
        StagePlots { histogram: self.histogram, ulp: self.ulp, heatmap, row_profile, column_profile }
    }
}
