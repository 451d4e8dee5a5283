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
//! hold maxima and the histogram counts, and parts are merged in index
//! order — the summaries do not depend on the number of threads.
//!
//! A |diff| that is not finite (a NaN or an inf on either side) is counted
//! in its own bin and marks its cell and point with +inf.

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

/// The ULP-distance histogram of two stages of one float dtype, from their
/// raw bytes (`l`, `r` decoded, to tell NaN and infinities).
fn ulp_histogram(dtype: DType, lraw: &[u8], rraw: &[u8], l: &[f64], r: &[f64]) -> UlpHistogram {
    let n = l.len().min(r.len());
    let parts: Vec<UlpHistogram> = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|c| {
            let mut h = UlpHistogram::empty();
            for k in c * SPAN..n.min((c + 1) * SPAN) {
                let (a, b) = (l[k], r[k]);
                if a.is_nan() || b.is_nan() || ((a.is_infinite() || b.is_infinite()) && a != b) {
                    h.non_finite += 1;
                    continue;
                }
                // i128: two i64 keys can be 2^64 apart (f64 ±max).
                let d = (dtype.ordered_key(lraw, k) as i128 - dtype.ordered_key(rraw, k) as i128).unsigned_abs();
                let bucket = if d == 0 { 0 } else { (128 - d.leading_zeros()) as usize };
                h.buckets[bucket.min(ULP_BUCKETS - 1)] += 1;
            }
            h
        })
        .collect();
    let mut out = UlpHistogram::empty();
    for p in parts {
        out.non_finite += p.non_finite;
        for (a, b) in out.buckets.iter_mut().zip(p.buckets) {
            *a += b;
        }
    }
    out
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
/// sides are of that one float dtype, for the ULP histogram.
pub fn gather(shape: &[usize], l: &[f64], r: &[f64], raw: Option<(DType, &[u8], &[u8])>) -> StagePlots {
    let n = l.len().min(r.len());
    let parts: Vec<Histogram> = (0..n.div_ceil(SPAN))
        .into_par_iter()
        .map(|c| {
            let mut h = Histogram::empty();
            for k in c * SPAN..n.min((c + 1) * SPAN) {
                h.add((r[k] - l[k]).abs());
            }
            h
        })
        .collect();
    let mut histogram = Histogram::empty();
    for p in &parts {
        histogram.merge(p);
    }
    let (heatmap, row_profile, column_profile) = match shape {
        [.., last] if shape.len() >= 2 && *last > 0 && n > 0 => {
            let (h, rp, cp) = grid(n / last, *last, l, r);
            (Some(h), Some(rp), Some(cp))
        }
        _ => (None, None, None),
    };
    let ulp = raw.filter(|(d, _, _)| d.is_float()).map(|(d, lraw, rraw)| ulp_histogram(d, lraw, rraw, l, r));
    StagePlots { histogram, ulp, heatmap, row_profile, column_profile }
}

/// The heatmap and both profiles in one pass over the rows, one grid row per
/// unit of parallel work; maxima do not depend on the order they are taken in.
fn grid(rows: usize, cols: usize, l: &[f64], r: &[f64]) -> (Heatmap, ErrorProfile, ErrorProfile) {
    let (gr, gc) = (rows.min(GRID), cols.min(GRID));
    let (pr, pc) = (rows.min(PROFILE_POINTS), cols.min(PROFILE_POINTS));
    struct Part {
        cells: Vec<f64>,
        columns: Vec<f64>,
        /// Row points from `first_point` on.
        first_point: usize,
        row_points: Vec<f64>,
    }
    let parts: Vec<Part> = (0..gr)
        .into_par_iter()
        .map(|g| {
            let (lo, hi) = (Heatmap::first_index(g, gr, rows), Heatmap::first_index(g + 1, gr, rows));
            let first_point = lo * pr / rows;
            let last_point = (hi.max(lo + 1) - 1) * pr / rows;
            let mut part = Part {
                cells: vec![0.0; gc],
                columns: vec![0.0; pc],
                first_point,
                row_points: vec![0.0; last_point + 1 - first_point],
            };
            for i in lo..hi {
                let mut row_max = 0.0f64;
                for j in 0..cols {
                    let k = i * cols + j;
                    let d = abs_diff(l[k], r[k]);
                    row_max = row_max.max(d);
                    let cell = &mut part.cells[j * gc / cols];
                    *cell = cell.max(d);
                    let col = &mut part.columns[j * pc / cols];
                    *col = col.max(d);
                }
                let p = &mut part.row_points[i * pr / rows - first_point];
                *p = p.max(row_max);
            }
            part
        })
        .collect();
    let mut cells = Vec::with_capacity(gr * gc);
    let mut columns = vec![0.0f64; pc];
    let mut row_points = vec![0.0f64; pr];
    for part in parts {
        cells.extend(part.cells);
        for (a, b) in columns.iter_mut().zip(part.columns) {
            *a = a.max(b);
        }
        for (k, v) in part.row_points.into_iter().enumerate() {
            let p = &mut row_points[part.first_point + k];
            *p = p.max(v);
        }
    }
    (
        Heatmap { rows, cols, grid_rows: gr, grid_cols: gc, cells },
        ErrorProfile { extent: rows, points: row_points },
        ErrorProfile { extent: cols, points: columns },
    )
}
