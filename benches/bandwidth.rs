//! `cargo bench --bench bandwidth`: `parity check`'s end-to-end throughput
//! next to the machine's read bandwidth, measured in one run so that the
//! ratios between them hold whatever the machine's mood.
//!
//! * `memory/two_threads`: two threads each summing its own 256 MiB buffer
//!   (anonymous memory, touched beforehand) — the machine's two-stream read
//!   bandwidth.
//! * `bundles/pread_two_threads`, `bundles/mmap_two_threads`: two threads
//!   reading both stage bundles of a case from the page cache, summing every
//!   word — the fastest any reader of those files can go, by positional reads
//!   into small buffers and by mapping the pages.
//! * `check/strict_stage_tolerances`: `parity::compare::check` on the same
//!   case, as `parity check LEFT RIGHT --strict-stage-tolerances` runs it.
//!
//! * `checkpoints/pread_two_threads`, `diff/atol`: the same read of every
//!   shard of two sharded checkpoints (`PARITY_BENCH_CHECKPOINTS=DIR` with
//!   `left/` and `right/`, written by benches/diff_checkpoints.py or, a
//!   PyTorch `.bin` against its safetensors twin, benches/pytorch_checkpoints.py), and
//!   `parity::diff::diff` on them with `--atol 1e-6`.
//!
//! The bundle benches need a case: `PARITY_BENCH_CASE=DIR` holding
//! `python.json` and `rust.json` (benches/qwen_case.py writes one; see
//! benches/README.md). Without it only `memory` runs. Every throughput counts
//! the bytes of both bundles (or both buffers) once.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes per read in the pread bench: the comparer's chunk (64 Ki f32).
const READ: usize = 256 << 10;

/// Sum of the little-endian u64 words: cheap work that must read every byte.
#[inline(never)]
fn sum_words(bytes: &[u8]) -> u64 {
    let (words, _) = bytes.as_chunks::<8>();
    words.iter().fold(0u64, |s, w| s.wrapping_add(u64::from_le_bytes(*w)))
}

fn memory(c: &mut Criterion) {
    const SIZE: usize = 256 << 20;
    // Filled (so every page is touched and resident) before timing.
    let buffers: Vec<Vec<u8>> = (0..2u8).map(|t| vec![t + 1; SIZE]).collect();
    let mut group = c.benchmark_group("memory");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes((2 * SIZE) as u64));
    group.bench_function("two_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = buffers.iter().map(|buf| s.spawn(move || sum_words(buf))).collect();
                handles.into_iter().map(|h| h.join().unwrap()).fold(0u64, u64::wrapping_add)
            })
        })
    });
    group.finish();
}

struct Case {
    left: PathBuf,
    right: PathBuf,
    bundles: [PathBuf; 2],
    bytes: u64,
}

fn case() -> Option<Case> {
    let dir = PathBuf::from(std::env::var_os("PARITY_BENCH_CASE")?);
    let bundle = |report: &Path| -> PathBuf {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).expect("report")).expect("report JSON");
        dir.join(v["stage_bundle"].as_str().expect("stage_bundle"))
    };
    let (left, right) = (dir.join("python.json"), dir.join("rust.json"));
    let bundles = [bundle(&left), bundle(&right)];
    let bytes = bundles.iter().map(|p| std::fs::metadata(p).expect("bundle").len()).sum();
    Some(Case { left, right, bundles, bytes })
}

/// Both files, cut into `READ`-byte pieces dealt out to two threads in turn.
fn two_threads(files: &[File], read: impl Fn(&File, u64, usize) -> u64 + Sync) -> u64 {
    let pieces: Vec<(usize, u64, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, file)| {
            let len = file.metadata().unwrap().len() as usize;
            (0..len).step_by(READ).map(move |o| (f, o as u64, READ.min(len - o)))
        })
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (pieces, read) = (&pieces, &read);
                s.spawn(move || {
                    pieces.iter().skip(t).step_by(2).fold(0u64, |acc, &(f, o, n)| acc.wrapping_add(read(&files[f], o, n)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold(0u64, u64::wrapping_add)
    })
}

fn bundles(c: &mut Criterion) {
    let Some(case) = case() else {
        eprintln!("bandwidth: set PARITY_BENCH_CASE=DIR (a case from benches/qwen_case.py) for the bundle and check benches");
        return;
    };
    let files = case.bundles.clone().map(|p| File::open(p).expect("bundle"));
    let mut group = c.benchmark_group("bundles");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(case.bytes));
    group.bench_function("pread_two_threads", |b| {
        b.iter(|| {
            two_threads(&files, |file, offset, n| {
                thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ]));
                BUF.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    file.read_exact_at(&mut buf[..n], offset).expect("read");
                    sum_words(&buf[..n])
                })
            })
        })
    });
    group.bench_function("mmap_two_threads", |b| {
        b.iter(|| {
            // Mapped afresh each time: a reader pays for mapping the pages.
            // SAFETY: read-only maps of files nobody truncates during the bench.
            let maps = files.each_ref().map(|f| unsafe { memmap2::Mmap::map(f) }.expect("map"));
            let sum = two_threads(&files, |file, offset, n| {
                let m = if std::ptr::eq(file, &files[0]) { &maps[0] } else { &maps[1] };
                sum_words(&m[offset as usize..offset as usize + n])
            });
            drop(maps);
            sum
        })
    });
    group.finish();

    let mut group = c.benchmark_group("check");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(case.bytes));
    let mut opts = parity::check::CheckOptions::default();
    opts.modes.strict_stage_tolerances = true;
    group.bench_function("strict_stage_tolerances", |b| {
        b.iter(|| {
            let outcome = parity::check::check(&case.left, &case.right, &opts).expect("the case checks");
            black_box(outcome.tensor_count())
        })
    });
    group.finish();
}

fn checkpoints(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("PARITY_BENCH_CHECKPOINTS").map(PathBuf::from) else {
        eprintln!("bandwidth: set PARITY_BENCH_CHECKPOINTS=DIR (from benches/diff_checkpoints.py) for the diff benches");
        return;
    };
    let shards: Vec<PathBuf> = ["left", "right"]
        .iter()
        .flat_map(|side| {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(side))
                .expect("checkpoint dir")
                .map(|e| e.unwrap().path())
                // safetensors shards, or PyTorch ones (benches/pytorch_checkpoints.py).
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors" || e == "bin"))
                .collect();
            v.sort();
            v
        })
        .collect();
    let files: Vec<File> = shards.iter().map(|p| File::open(p).expect("shard")).collect();
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let mut group = c.benchmark_group("checkpoints");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("pread_two_threads", |b| {
        b.iter(|| {
            two_threads(&files, |file, offset, n| {
                thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ]));
                BUF.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    file.read_exact_at(&mut buf[..n], offset).expect("read");
                    sum_words(&buf[..n])
                })
            })
        })
    });
    group.finish();
    let mut group = c.benchmark_group("diff");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Bytes(bytes));
    let opts = parity::diff::DiffOptions { limit: parity::diff::Limit::AllClose { atol: 1e-6, rtol: 0.0 }, ..Default::default() };
    group.bench_function("atol", |b| {
        b.iter(|| black_box(parity::diff::diff(&dir.join("left"), &dir.join("right"), &opts).expect("diff").tensors.len()))
    });
    group.finish();
}

/// GGUF dequantization kernels (issue 25): 64 MiB of F32 output per type,
/// from random blocks whose f16 scales are finite; throughput in bytes of
/// F32 written, the unit benches/gguf_bench.py reports for numpy. Run it
/// with PARITY_SIMD=avx512|avx2|portable to measure each path.
fn dequantize(c: &mut Criterion) {
    use parity::format::gguf::quant::{dequantize, GgmlType};
    let mut group = c.benchmark_group("dequantize");
    group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(3));
    for id in [2u32, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23] {
        let ty = GgmlType::from_id(id).unwrap();
        let (block, size) = ty.block();
        let n = ((64u64 << 20) / 4 / block) as usize;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut raw: Vec<u8> = (0..n * size as usize).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
        // Finite f16 scales: clear each block's f16 exponent top bit where ggml keeps them.
        for b in raw.chunks_exact_mut(size as usize) {
            for &off in scale_offsets(ty) {
                b[off + 1] &= 0x3b;
            }
        }
        let mut out = vec![0f32; n * block as usize];
        group.throughput(Throughput::Bytes((out.len() * 4) as u64));
        group.bench_function(ty.name(), |bch| bch.iter(|| dequantize(ty, black_box(&raw), black_box(&mut out))));
    }
    group.finish();
}

/// Where each type keeps its f16 scales in a block (ggml-common.h).
fn scale_offsets(ty: parity::format::gguf::quant::GgmlType) -> &'static [usize] {
    match ty.name() {
        "Q4_1" | "Q5_1" | "Q4_K" | "Q5_K" => &[0, 2],
        "Q2_K" => &[80, 82],
        "Q3_K" => &[108],
        "Q6_K" => &[208],
        _ => &[0],
    }
}

criterion_group!(benches, memory, bundles, checkpoints, dequantize);
criterion_main!(benches);
