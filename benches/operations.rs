//! `cargo bench`: every operation of the catalog at its realistic sizes —
//! fast vs reference time and the fast kernel's error against the reference —
//! plus the comparer's throughput and sha256 throughput.
//!
//! The error table is printed once per operation and size before timing
//! (criterion measures time only) and saved to
//! `target/criterion/parity-errors.md`. Quick run: `PARITY_BENCH_QUICK=1
//! cargo bench` uses only the smallest size of each operation.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parity::compare::gate::compare_stage;
use parity::format::dtype::DType;
use parity::numeric::rng::SplitMix64;
use parity::ops::{Implementation, REGISTRY};
use parity::format::tensor::{sha256_hex, Tensor};
use std::fmt::Write;
use std::time::Duration;

fn quick() -> bool {
    std::env::var_os("PARITY_BENCH_QUICK").is_some()
}

fn dims_name(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// Fast vs reference, per operation and size: time (criterion) and error.
fn operations(c: &mut Criterion) {
    let mut errors = String::from("| operation | dims | stage | max_abs | mean_abs | max_ulp | not bit-equal | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for op in REGISTRY {
        let sizes = if quick() { &op.bench_dims[..1.min(op.bench_dims.len())] } else { op.bench_dims };
        for dims in sizes {
            let sample = (op.sample)(42, dims);
            let run = |i: Implementation| op.run(i, "bench", &sample.inputs, &sample.params);
            let fast = run(Implementation::Fast).expect("fast runs on its own sample");
            let reference = run(Implementation::Reference).expect("reference runs on its own sample");
            for stage in op.stages {
                let (Some(r), Some(f)) = (reference.get(stage.name), fast.get(stage.name)) else { continue };
                let g = compare_stage(r.view(), f.view(), &stage.tolerance, 0);
                let m = g.metrics.as_ref();
                let _ = writeln!(
                    errors,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    op.name,
                    op.dims.replace(['[', ']'], "").split(", ").zip(dims.iter()).map(|(n, d)| format!("{n}={d}")).collect::<Vec<_>>().join(" "),
                    stage.name,
                    m.map_or("-".into(), |m| format!("{:.2e}", m.max_abs)),
                    m.map_or("-".into(), |m| format!("{:.2e}", m.mean_abs)),
                    m.and_then(|m| m.max_ulp).map_or("-".into(), |u| u.to_string()),
                    m.and_then(|m| m.not_bit_equal).map_or("-".into(), |n| format!("{n}/{}", m.unwrap().numel)),
                    g.verdict.name()
                );
            }
            let mut group = c.benchmark_group(format!("{}/{}", op.name, dims_name(dims)));
            group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
            group.bench_function("fast", |b| b.iter(|| run(Implementation::Fast).unwrap()));
            group.bench_function("reference", |b| b.iter(|| run(Implementation::Reference).unwrap()));
            group.finish();
        }
    }
    println!("\nfast vs reference error, per stage:\n{errors}");
    let _ = std::fs::create_dir_all("target/criterion");
    let _ = std::fs::write("target/criterion/parity-errors.md", errors);
}

/// Two stages that differ slightly everywhere, as a port's do.
/// Two sides of one stage: `right` is `left` perturbed by `rel` (relative,
/// normal), then rounded to the dtype. With rel = 1e-6 every f32 element
/// differs; with rel = 0 every one is equal (the equal-block shortcut).
fn stage_pair(dtype: DType, n: usize, rel: f64) -> (Tensor, Tensor) {
    let mut rng = SplitMix64::new(7);
    let a = rng.normal_vec_f32(n, 0.02);
    let b: Vec<f32> = a.iter().map(|x| x * (1.0 + (rel * rng.normal()) as f32)).collect();
    match dtype {
        DType::F32 => (Tensor::from_f32(vec![n], &a), Tensor::from_f32(vec![n], &b)),
        DType::BF16 => {
            let bits = |v: &[f32]| v.iter().map(|&x| parity::numeric::round::f32_to_bf16_bits(x)).collect::<Vec<_>>();
            (Tensor::from_u16_bits(DType::BF16, vec![n], &bits(&a)), Tensor::from_u16_bits(DType::BF16, vec![n], &bits(&b)))
        }
        _ => unreachable!(),
    }
}

/// The comparer's one-pass metrics on tensors in memory, in bytes read per
/// second (both sides): 16 Mi elements a side, beyond the 32 MiB L3, so the
/// data comes from DRAM as a big checkpoint's would. `differ`: every element
/// differs (f32 by ~1e-6, bf16 by ~1e-2 relative); `equal`: bit-identical
/// sides (copied inputs, element-wise stages computed alike). The IDs end
/// in the SIMD path measured (`PARITY_SIMD=avx512|avx2|portable` forces one;
/// `parity doctor` lists what the CPU has), so each path keeps its own history.
fn comparer(c: &mut Criterion) {
    let path = parity::compare::metrics::simd_path().name();
    let mut group = c.benchmark_group("comparer");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let n = if quick() { 3072 * 1024 } else { 16 << 20 };
    for (dtype, kind, rel) in [(DType::F32, "differ", 1e-6), (DType::BF16, "differ", 1e-2), (DType::F32, "equal", 0.0)] {
        let (a, b) = stage_pair(dtype, n, rel);
        let tol = parity::compare::tolerance::Tolerance::gate(1e-3, 1e-5);
        group.throughput(Throughput::Bytes(2 * a.data.len() as u64));
        group.bench_with_input(BenchmarkId::new("compare_stage", format!("{}-{kind}/{path}", dtype.name())), &(a, b), |bench, (a, b)| {
            bench.iter(|| compare_stage(a.view(), b.view(), &tol, 0))
        });
    }
    group.finish();
}

/// sha256 over stage bytes (sha2 picks SHA-NI at run time where the CPU has it).
fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha256");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let data = vec![0x5Au8; 64 << 20];
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("64MiB", |b| b.iter(|| sha256_hex(&data)));
    group.finish();
}

/// The fast matmul in FLOP/s (criterion's elements/s = FLOP/s), on the
/// Qwen-MLP GEMM shape that `svf_apply` runs; `benches/torch_matmul.py` times
/// PyTorch's CPU matmul on the same shapes for comparison.
fn gemm_flops(c: &mut Criterion) {
    let op = parity::ops::find("matmul").expect("matmul is registered");
    let mut group = c.benchmark_group("gemm_flops");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for dims in [[1024usize, 1024, 1024], [3072, 1024, 1024]] {
        let sample = (op.sample)(3, &dims);
        let [m, k, n] = dims;
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(dims_name(&dims), |b| b.iter(|| op.run(Implementation::Fast, "gemm", &sample.inputs, &sample.params).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, comparer, hashing, gemm_flops, operations);
criterion_main!(benches);
