//! The comparer on arbitrary byte pairs of every dtype, differentially:
//! every kernel path this CPU has (AVX-512, AVX2, portable, and the general
//! pass with no fused kernel) must give the same metrics, bit for bit
//! (compared as their Debug text, so NaN equals NaN). For f32 and bf16 the
//! raw per-block kernel outputs are compared too, below the metrics.
//!
//! Input: [dtype pair][size][tolerance][left seed … | right mask …]. The
//! left tensor repeats the left seed; the right one is the left XOR the
//! repeated mask, so sparse differences (the interesting case) are cheap
//! for the fuzzer to find. Sizes reach past two fused blocks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::compare::metrics::{block_kernels, force_kernels, measure_with, Kernels, BLOCK};
use parity::compare::Tolerance;
use parity::format::dtype::DType;
use parity::format::tensor::TensorView;

const KERNELS: [Kernels; 4] = [Kernels::Portable, Kernels::General, Kernels::Avx2, Kernels::Avx512];

fn fill(seed: &[u8], n: usize) -> Vec<u8> {
    if seed.is_empty() {
        return vec![0; n];
    }
    seed.iter().copied().cycle().take(n).collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, rest) = data.split_at(4);
    let dtypes = DType::ALL;
    // Mostly like-typed pairs (the fast paths); a mixed pair now and then.
    let ld = dtypes[head[0] as usize % dtypes.len()];
    let rd = if head[0] >= 0xf0 { dtypes[(head[0] as usize / 7) % dtypes.len()] } else { ld };
    let n = match head[1] % 4 {
        0 => head[1] as usize / 4,                   // under one block: the general pass only
        1 => BLOCK,                                  // exactly one fused block
        2 => 2 * BLOCK + head[1] as usize / 4,       // two blocks and a tail
        _ => 3 * BLOCK + 1,
    };
    let tol = match head[2] % 5 {
        0 => Tolerance::gate(1e-3, 1e-5),
        1 => Tolerance::gate(0.0, 0.0),
        2 => Tolerance::gate(1e-3, 1e-5).with_allclose(1e-3, 1e-6, 0.0),
        3 => Tolerance::gate(1.0 / 1024.0, 1e-5).with_allclose(0.5, 1.0 / 1024.0, 0.0),
        _ => Tolerance::gate(f64::INFINITY, f64::INFINITY),
    };
    let top = (head[3] % 4) as usize;
    let split = rest.len() / 2;
    let (lseed, mask) = rest.split_at(split);
    let left = fill(lseed, n * ld.size());
    let right: Vec<u8> = if ld == rd {
        left.iter().zip(fill(mask, left.len())).map(|(a, b)| a ^ b).collect()
    } else {
        fill(mask, n * rd.size())
    };
    let shape = [n];
    let lv = TensorView { dtype: ld, shape: &shape, data: &left };
    let rv = TensorView { dtype: rd, shape: &shape, data: &right };

    let mut first: Option<String> = None;
    for k in KERNELS.into_iter().filter(|k| k.supported()) {
        force_kernels(k);
        // A chunk of one block, so chunk merging is exercised too.
        let m = format!("{:?}", measure_with(lv, rv, &tol, top, BLOCK, &|_| {}));
        match &first {
            None => first = Some(m),
            Some(p) => assert_eq!(&m, p, "{k:?} differs from the portable path on {ld:?}/{rd:?} n={n}"),
        }
    }
    force_kernels(Kernels::Best);

    if ld == rd && matches!(ld, DType::F32 | DType::BF16) && n >= BLOCK {
        let bytes = BLOCK * ld.size();
        let bounds = [tol.max_abs, 1e-12, tol.rtol.unwrap_or(0.0), tol.atol.unwrap_or(0.0)];
        let bf16 = ld == DType::BF16;
        let portable = block_kernels(Kernels::Portable, bf16, &left[..bytes], &right[..bytes], bounds);
        for k in [Kernels::Avx2, Kernels::Avx512].into_iter().filter(|k| k.supported()) {
            let raw = block_kernels(k, bf16, &left[..bytes], &right[..bytes], bounds);
            assert_eq!(raw, portable, "{k:?} block kernels differ from the portable ones on {ld:?}");
        }
    }
});
