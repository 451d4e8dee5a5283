//! What a pass accumulates: per-lane partial sums and maxima, the
//! non-finite tallies, the accumulator merged in block order, and the
//! metrics derived from its sums (SQNR, cosine).


use super::*;

/// Interleaved accumulators: element `j` of a block goes to lane `j % LANES`.
/// Eight f64 lanes are one AVX-512 register ([`fused`] uses the same lanes).
pub(super) const LANES: usize = 8;

/// The lanes' sum, in a fixed pairwise order.
#[inline(always)]
pub(super) fn lane_sum(x: &[f64; LANES]) -> f64 {
    ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))
}

/// The lanes' maximum (lanes start at 0 and never hold NaN).
#[inline(always)]
pub(super) fn lane_max(x: &[f64; LANES]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| if v > m { v } else { m })
}

#[derive(Default)]
pub(super) struct Lanes {
    pub(super) abs: [f64; LANES],
    pub(super) sq: [f64; LANES],
    pub(super) dot: [f64; LANES],
    pub(super) ll: [f64; LANES],
    pub(super) rr: [f64; LANES],
    pub(super) max_abs: [f64; LANES],
    pub(super) max_rel: [f64; LANES],
    pub(super) compared: [u64; LANES],
    pub(super) over: [u64; LANES],
    pub(super) outside: [u64; LANES],
}

impl Lanes {
    /// LANES elements, one per lane. Branch-free (selects, which become
    /// masked SIMD instructions): a pair with a non-finite side contributes
    /// zeros (the non-finite rules handle it).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // index loops over lanes are what vectorises
    pub(super) fn add(&mut self, x: &[f64; LANES], y: &[f64; LANES], lim: &Limits) {
        // One pass per lane with every figure in it: the finiteness test is
        // a mask register, not a materialised bool array (which the
        // compiler spilled to bytes and reloaded per figure).
        let (rtol, atol, close) = match lim.allclose {
            Some((r, a)) => (r, a, true),
            None => (0.0, 0.0, false),
        };
        for k in 0..LANES {
            let finite = x[k].abs() < f64::INFINITY && y[k].abs() < f64::INFINITY;
            let lv = if finite { x[k] } else { 0.0 };
            let rv = if finite { y[k] } else { 0.0 };
            let d = rv - lv;
            let a = d.abs();
            self.abs[k] += a;
            self.sq[k] += d * d;
            self.dot[k] += lv * rv;
            self.ll[k] += lv * lv;
            self.rr[k] += rv * rv;
            self.max_abs[k] = if a > self.max_abs[k] { a } else { self.max_abs[k] };
            // 0/0 (equal zeros, or a masked pair) is NaN and never wins;
            // a difference against a zero left value is inf, "infinitely relative".
            let rel = a / lv.abs();
            self.max_rel[k] = if rel > self.max_rel[k] { rel } else { self.max_rel[k] };
            self.compared[k] += finite as u64;
            self.over[k] += (finite & (a > lim.max_abs)) as u64;
            // (allclose off: atol = rtol = 0 and the count is not kept.)
            self.outside[k] += (close & finite & (a > atol + rtol * lv.abs())) as u64;
        }
    }

    /// The block's sums (lanes added pairwise, a fixed order), its maxima,
    /// and its counts added into `p`.
    pub(super) fn fold(&self, p: &mut Partial) -> (BlockSums, f64, f64) {
        p.tally.compared += self.compared.iter().sum::<u64>();
        p.tally.over_max_abs += self.over.iter().sum::<u64>();
        p.tally.outside_allclose += self.outside.iter().sum::<u64>();
        let sums = BlockSums {
            abs: lane_sum(&self.abs),
            sq: lane_sum(&self.sq),
            dot: lane_sum(&self.dot),
            ll: lane_sum(&self.ll),
            rr: lane_sum(&self.rr),
        };
        (sums, lane_max(&self.max_abs), lane_max(&self.max_rel))
    }
}

/// The non-finite facts of one chunk.
#[derive(Default)]
pub(super) struct NonFiniteState {
    pub(super) left: NonFiniteCounts,
    pub(super) right: NonFiniteCounts,
    pub(super) mismatched: u64,
    pub(super) first: Option<usize>,
}

/// The cold path: at least one side is NaN or ±inf at index `i`.
#[cold]
#[inline(never)]
pub(super) fn non_finite_pair(nf: &mut NonFiniteState, top: &mut TopK, i: usize, lv: f64, rv: f64) {
    pub(super) fn class(v: f64, counts: &mut NonFiniteCounts) -> u8 {
        if v.is_nan() {
            counts.nan += 1;
            1
        } else if v == f64::INFINITY {
            counts.pos_inf += 1;
            2
        } else if v == f64::NEG_INFINITY {
            counts.neg_inf += 1;
            3
        } else {
            0
        }
    }
    let (lc, rc) = (class(lv, &mut nf.left), class(rv, &mut nf.right));
    if lc != rc {
        nf.mismatched += 1;
        nf.first.get_or_insert(i);
        // A non-finite mismatch outranks every finite difference in the top list.
        top.offer(Candidate { key: f64::INFINITY, key_int: 0, index: i, left: lv, right: rv, exact: None });
    }
}

/// The running total, merged chunk by chunk in index order.
pub(super) struct Acc {
    pub(super) sums: BlockSums,
    pub(super) tally: Tally,
    pub(super) top: Vec<Candidate>,
    pub(super) top_k: usize,
    pub(super) allclose: bool,
    /// Both dtypes are integers: the exact fields of the tally hold.
    pub(super) int: bool,
    /// Each side's block digests, streamed in block order (when hashing).
    pub(super) hashers: Option<Box<(xxhash_rust::xxh3::Xxh3, xxhash_rust::xxh3::Xxh3)>>,
}

impl Acc {
    pub(super) fn new(limits: &Limits, int: bool) -> Acc {
        Acc {
            sums: BlockSums::default(),
            tally: Tally::default(),
            top: Vec::new(),
            top_k: limits.top_k,
            allclose: limits.allclose.is_some(),
            int,
            hashers: limits.hash.then(|| Box::new((xxhash_rust::xxh3::Xxh3::new(), xxhash_rust::xxh3::Xxh3::new()))),
        }
    }

    pub(super) fn merge(&mut self, p: Partial) {
        // Block sums are added one by one in index order: the same additions in
        // the same order whatever the chunk size and the thread count.
        for b in &p.blocks {
            self.sums.abs += b.abs;
            self.sums.sq += b.sq;
            self.sums.dot += b.dot;
            self.sums.ll += b.ll;
            self.sums.rr += b.rr;
        }
        self.tally.merge(&p.tally);
        if let Some(h) = &mut self.hashers {
            for (a, b) in &p.digests {
                h.0.update(&a.to_le_bytes());
                h.1.update(&b.to_le_bytes());
            }
        }
        if self.top_k > 0 {
            self.top.extend(p.top.heap.into_vec());
            self.top.sort_unstable();
            self.top.truncate(self.top_k);
        }
    }

    pub(super) fn finish(self, left: Stage, right: Stage) -> Metrics {
        let content_hash = self.hashers.as_ref().map(|h| {
            (content_hash(left.dtype, left.shape, h.0.digest128()), content_hash(right.dtype, right.shape, h.1.digest128()))
        });
        let t = &self.tally;
        let shape = left.shape;
        let n = t.compared as f64;
        let s = self.sums;
        let same = left.dtype == right.dtype;
        // The true mean (and rms) cannot exceed the max; rounding in the sum
        // can push the computed one a hair above it, so clamp.
        // Integers: the exact Σ|d| rounded once to f64, then divided (two
        // roundings, so a mean of equal integers is exactly 0 and of any
        // differing one is ≥ 1/n > 0).
        let abs_sum = if self.int { t.abs_sum_int as f64 } else { s.abs };
        let mean_abs = if t.compared > 0 { (abs_sum / n).min(t.max_abs) } else { 0.0 };
        let rms = if t.compared > 0 { (s.sq / n).sqrt().min(t.max_abs) } else { 0.0 };
        let nmse = if s.ll > 0.0 {
            s.sq / s.ll
        } else if s.sq == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        Metrics {
            numel: left.numel() as u64,
            compared: t.compared,
            max_abs: t.max_abs,
            max_abs_int: self.int.then_some(t.max_abs_int),
            max_abs_index: t.max_abs_at.map(|i| unravel(i, shape)),
            mean_abs,
            rms,
            max_rel: t.max_rel,
            max_rel_index: t.max_rel_at.map(|i| unravel(i, shape)),
            cosine: cosine(s.dot, s.ll, s.rr),
            nmse,
            sqnr_db: sqnr_db(s.ll, s.sq),
            signal_sq: s.ll,
            error_sq: s.sq,
            max_ulp: same.then_some(t.max_ulp),
            not_bit_equal: same.then_some(t.not_bit_equal),
            bytes_equal: same && left.shape == right.shape && t.not_bit_equal == 0,
            over_max_abs: t.over_max_abs,
            outside_allclose: self.outside_allclose_opt(),
            non_finite: NonFinite {
                left: t.nf.left,
                right: t.nf.right,
                mismatched: t.nf.mismatched,
                first_mismatch: t.nf.first.map(|i| unravel(i, shape)),
            },
            top: self
                .top
                .iter()
                .map(|c| Divergence {
                    index: unravel(c.index, shape),
                    left: c.left,
                    right: c.right,
                    // Integers: the exact |d|'s nearest f64, not the
                    // difference of two rounded values.
                    abs_diff: if c.exact.is_some() { c.key_int as f64 } else { (c.right - c.left).abs() },
                    exact: c.exact,
                })
                .collect(),
            content_hash,
        }
    }

    pub(super) fn outside_allclose_opt(&self) -> Option<u64> {
        self.allclose.then_some(self.tally.outside_allclose)
    }
}


pub(super) fn add_counts(into: &mut NonFiniteCounts, from: &NonFiniteCounts) {
    into.nan += from.nan;
    into.pos_inf += from.pos_inf;
    into.neg_inf += from.neg_inf;
}

/// SQNR in dB from the merged block sums `ll = Σleft²` and `sq = Σd²`.
///
/// Both sums are the f64 block sums every other metric uses (gathered in
/// the one streaming pass, by every SIMD path alike, and merged in block
/// order), so SQNR is bit-identical whatever the thread count, chunk size
/// or kernel. Their relative error is that of an f64 sum (~n/1024·1e-16),
/// which moves the result by ~4.3·that in dB: far below the one decimal
/// people are shown. The ratio is taken directly when it is a normal f64;
/// when it would overflow or underflow (f64 stages with extreme ranges) the
/// logarithms are subtracted instead, so a tiny difference is a large
/// finite SQNR rather than a spurious +inf.
pub fn sqnr_db(ll: f64, sq: f64) -> f64 {
    if sq == 0.0 {
        return f64::INFINITY;
    }
    if ll == 0.0 {
        return f64::NEG_INFINITY;
    }
    let ratio = ll / sq;
    if ratio.is_finite() && ratio >= f64::MIN_POSITIVE {
        10.0 * ratio.log10()
    } else {
        10.0 * (ll.log10() - sq.log10())
    }
}

/// `dot / sqrt(ll·rr)`, with the degenerate cases defined (see module doc).
/// Taking one square root of the product (rather than the product of two
/// roots) makes a tensor's cosine with itself exactly 1: `sqrt(fl(x²)) = x`
/// for every x whose square neither overflows nor underflows.
pub(super) fn cosine(dot: f64, ll: f64, rr: f64) -> f64 {
    if ll == 0.0 && rr == 0.0 {
        return 1.0;
    }
    if ll == 0.0 || rr == 0.0 {
        return 0.0;
    }
    let p = ll * rr;
    let c = if p.is_finite() && p >= f64::MIN_POSITIVE { dot / p.sqrt() } else { dot / (ll.sqrt() * rr.sqrt()) };
    c.clamp(-1.0, 1.0)
}
