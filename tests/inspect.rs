//! `parity inspect`: every statistic against hand-computed values, every
//! check passing and failing, ties across shards, header-only mode reading no
//! data, every output format parsed back, bad input.

use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use parity::inspect::{inspect, Checks, Extreme::{Float, Int}, InspectOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use proptest::prelude::*;

mod proptest_support;

fn write_file(path: &Path, m: &BTreeMap<String, Tensor>) {
    let tensors: Vec<(String, &Tensor)> = m.iter().map(|(k, t)| (k.clone(), t)).collect();
    parity::format::bundle::write(path, &tensors).unwrap();
}

fn one(name: &str, t: Tensor) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let mut m = BTreeMap::new();
    m.insert(name.to_string(), t);
    write_file(&p, &m);
    (dir, p)
}

#[test]
fn statistics_match_hand_computed_values() {
    let sub = f32::from_bits(1); // the smallest f32 subnormal
    let v = [1.0f32, -3.0, 0.0, -0.0, 2.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, sub];
    let (_d, p) = one("w", Tensor::from_f32(vec![9], &v));
    let o = inspect(&p, &InspectOptions::default()).unwrap();
    let s = o.tensors[0].stats.as_ref().unwrap();
    // Finite values: 1, -3, 0, -0, 2, sub → n = 6.
    let finite = [1.0f64, -3.0, 0.0, -0.0, 2.0, sub as f64];
    let mean = finite.iter().sum::<f64>() / 6.0;
    let var = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 6.0;
    assert_eq!((s.min, s.max, s.abs_max), (Some(Float(-3.0)), Some(Float(2.0)), Some(Float(3.0))));
    assert!((s.mean.unwrap() - mean).abs() < 1e-15 && (s.std.unwrap() - var.sqrt()).abs() < 1e-15, "{s:?}");
    assert_eq!((s.nan, s.pos_inf, s.neg_inf, s.zeros, s.subnormals), (1, 1, 1, 2, 1));
}

#[test]
fn low_precision_and_integer_dtypes_are_decoded() {
    // bf16 bits: 1.0 = 0x3F80, -2.0 = 0xC000, subnormal 0x0001, NaN 0x7FC0.
    let (_d, p) = one("b", Tensor::from_u16_bits(DType::BF16, vec![4], &[0x3F80, 0xC000, 0x0001, 0x7FC0]));
    let s = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
    assert_eq!((s.min, s.max, s.nan, s.subnormals), (Some(Float(-2.0)), Some(Float(1.0)), 1, 1));
    // f16: 65504 (max), 0x0001 subnormal.
    let (_d, p) = one("h", Tensor::from_u16_bits(DType::F16, vec![2], &[0x7BFF, 0x0001]));
    let s = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
    assert_eq!((s.max, s.subnormals), (Some(Float(65504.0)), 1));
    // fp8 e4m3fn: 0x7E = 448, 0x7F = NaN.
    let (_d, p) = one("q", Tensor::from_bytes(DType::F8E4M3, vec![2], vec![0x7E, 0x7F]));
    let s = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
    assert_eq!((s.max, s.nan), (Some(Float(448.0)), 1));
    let (_d, p) = one("i", Tensor::from_i64(vec![3], &[-5, 0, 7]));
    let s = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
    assert_eq!((s.min, s.max, s.zeros, s.subnormals), (Some(Int(-5)), Some(Int(7)), 1, 0));
    // Empty: no figures, no failure.
    let (_d, p) = one("e", Tensor::from_f32(vec![0, 3], &[]));
    let o = inspect(&p, &InspectOptions { checks: "finite,nonzero".parse().unwrap(), ..Default::default() }).unwrap();
    assert_eq!(o.tensors[0].stats.as_ref().unwrap().mean, None);
    assert!(o.failures.is_empty());
}

#[test]
fn checks_pass_and_fail_naming_the_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = BTreeMap::new();
    a.insert("ok".to_string(), Tensor::from_f32(vec![3], &[1.0, -2.0, 3.0]));
    a.insert("zeros".to_string(), Tensor::from_f32(vec![2], &[0.0, -0.0]));
    a.insert("big".to_string(), Tensor::from_f32(vec![3], &[65519.0, 65520.0, 1e6]));
    a.insert("nan".to_string(), Tensor::from_f32(vec![2], &[1.0, f32::NAN]));
    write_file(&dir.path().join("model-00001-of-00002.safetensors"), &a);
    let mut b = BTreeMap::new();
    b.insert("tied".to_string(), Tensor::from_f32(vec![3], &[1.0, -2.0, 3.0]));
    write_file(&dir.path().join("model-00002-of-00002.safetensors"), &b);
    let run = |checks: &str| inspect(dir.path(), &InspectOptions { checks: checks.parse().unwrap(), ..Default::default() }).unwrap();
    let o = run("finite");
    assert_eq!(o.failures.len(), 1);
    assert!(o.failures[0].starts_with("nan: not finite"), "{:?}", o.failures);
    let o = run("nonzero");
    assert!(o.failures.len() == 1 && o.failures[0].starts_with("zeros: all 2"), "{:?}", o.failures);
    // f16 overflow: 65519.99 rounds to 65504; 65520 is the tie that rounds to inf.
    let o = run("fits=F16");
    let big = o.tensors.iter().find(|t| t.name == "big").unwrap().stats.clone().unwrap();
    assert_eq!(big.overflow[0].count, 2);
    assert_eq!(big.overflow[0].largest, Some(Float(1e6)));
    assert!(o.failures.iter().any(|f| f.starts_with("big: 2 value(s) do not fit F16")), "{:?}", o.failures);
    let o = run("fits=BF16");
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    let o = run("fits=F8_E4M3");
    assert!(o.failures.iter().any(|f| f.starts_with("big: 3 value(s)")), "{:?}", o.failures);
    // Ties across shards, a failure only with `unique`.
    let o = run("unique");
    assert_eq!(o.identical_groups, vec![vec!["ok".to_string(), "tied".to_string()]]);
    assert!(o.failures.iter().any(|f| f.contains("ok, tied")));
    assert!(run("finite").identical_groups.is_empty(), "ties are looked for with unique");
    assert!("finite,nonzero,fits=F16,unique".parse::<Checks>().is_ok());
    assert!("finit".parse::<Checks>().unwrap_err().to_string().contains("did you mean 'finite'"));
    assert!("fits=F32".parse::<Checks>().is_err());
}

/// `fits=F` flags a value exactly when casting it to F gives ±inf (or NaN,
/// e4m3fn): one rounding rule for `inspect` and `cast`. Per format, the
/// largest finite value, the tie above it (RNE: to the even neighbour) and
/// the f32 values on either side of the tie, both signs, hand-derived:
/// * e4m3fn: max 448 = 1.110·2⁸ (even), next code 480 is NaN → 464 rounds to 448;
/// * e5m2: max 57344 = 1.11·2¹⁵ (odd), next 2¹⁶ is inf → 61440 overflows;
/// * f16: max 65504 = 1.1111111111·2¹⁵ (odd) → 65520 overflows;
/// * bf16: max 0x7F7F (odd) → the tie 0x7F7F8000 (as f32 bits) overflows.
#[test]
fn fits_flags_what_the_cast_overflows_and_ties_round_to_even() {
    let below = |x: f32| f32::from_bits(x.to_bits() - 1);
    let above = |x: f32| f32::from_bits(x.to_bits() + 1);
    let tie_bf16 = f32::from_bits(0x7F7F_8000);
    let table: [(&str, [(f32, bool); 5]); 4] = [
        ("F8_E4M3", [(448.0, false), (below(464.0), false), (464.0, false), (above(464.0), true), (480.0, true)]),
        ("F8_E5M2", [(57344.0, false), (below(61440.0), false), (61440.0, true), (above(61440.0), true), (65536.0, true)]),
        ("F16", [(65504.0, false), (below(65520.0), false), (65520.0, true), (above(65520.0), true), (65536.0, true)]),
        ("BF16", [(f32::from_bits(0x7F7F_0000), false), (below(tie_bf16), false), (tie_bf16, true), (above(tie_bf16), true), (f32::MAX, true)]),
    ];
    for (format, rows) in table {
        let mut v: Vec<f32> = rows.iter().flat_map(|&(x, _)| [x, -x]).collect();
        // Non-finite inputs are counted as such, never as overflows.
        v.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        let (_d, p) = one("w", Tensor::from_f32(vec![v.len()], &v));
        let o = inspect(&p, &InspectOptions { checks: format!("fits={format}").parse().unwrap(), ..Default::default() }).unwrap();
        let over = &o.tensors[0].stats.as_ref().unwrap().overflow[0];
        let flagged: Vec<f32> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(over.count, 2 * flagged.len() as u64, "{format}: {over:?}");
        assert_eq!(over.largest, flagged.iter().map(|&x| x as f64).reduce(f64::max).map(Float), "{format}");
        // The same table through parity's cast (the fast path ml_dtypes is
        // checked against) and the half crate: it overflows exactly there.
        for (x, over) in rows {
            for x in [x, -x] {
                let cast_over = match format {
                    "F8_E4M3" => parity::numeric::round::f32_to_f8e4m3fn(x) & 0x7F == 0x7F,
                    "F8_E5M2" => parity::numeric::round::f32_to_f8e5m2(x) & 0x7F >= 0x7C,
                    "F16" => half::f16::from_f32(x).is_infinite(),
                    _ => half::bf16::from_f32(x).is_infinite(),
                };
                assert_eq!(cast_over, over, "{format} {x}");
            }
        }
    }
}

#[test]
fn figures_do_not_depend_on_the_thread_count() {
    let v: Vec<f32> = (0..3_000_000u64).map(|i| ((i * 7919) % 10007) as f32 * 1e-3 - 5.0).collect();
    let (_d, p) = one("w", Tensor::from_f32(vec![v.len()], &v));
    let run = |threads: &str| {
        Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["inspect", p.to_str().unwrap(), "--format", "json"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn header_only_mode_reads_no_data() {
    // A header claiming 4 GiB of data in a sparse file: reading it would take
    // seconds and find zeros; --headers must not read it at all.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.safetensors");
    let header = br#"{"w":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&p, &bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(bytes.len() as u64 + 4294967296).unwrap();
    let t0 = std::time::Instant::now();
    let o = inspect(&p, &InspectOptions { headers_only: true, ..Default::default() }).unwrap();
    assert!(o.tensors[0].stats.is_none() && o.tensors[0].bytes == 4294967296);
    assert_eq!(o.tensors[0].offset, 8 + header.len() as u64);
    // Not a timing promise: reading 4 GiB takes far longer than this bound.
    assert!(t0.elapsed().as_secs() < 2);
}

#[test]
fn every_output_format_parses_back() {
    let (_d, p) = one("model.layers.3.w", Tensor::from_f32(vec![2], &[1.0, 2.0]));
    let o = inspect(&p, &InspectOptions::default()).unwrap();
    use parity::render::{inspect::render, Format};
    let v: serde_json::Value = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    assert_eq!(v["schema"], "parity.inspect.v1");
    assert_eq!(v["tensors"][0]["stats"]["mean"], 1.5);
    assert_eq!(v["layers"][0]["layer"], 3);
    let md = render(&o, Format::Markdown);
    // Names as code, as in every command's Markdown; whole numbers whole.
    assert!(md.lines().any(|l| l.starts_with("| `model.layers.3.w` | F32 | [2] | 8 | 1 | 2 | 1.5e0 |")), "{md}");
    let text = render(&o, Format::Text);
    assert!(text.contains("layer 3: 1 tensor, 8 B"), "{text}");
    assert!(text.contains("(single file, 1 file, 1 tensor, 8 B)"), "{text}");
}

#[test]
fn bad_input_is_a_one_line_setup_error_and_a_failed_check_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"\x05\x00\x00\x00\x00\x00\x00\x00{oops").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(["inspect", bad.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.safetensors") && err.lines().count() == 1, "{err}");
    let (_d, p) = one("w", Tensor::from_f32(vec![2], &[1.0, f32::NAN]));
    let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(["inspect", p.to_str().unwrap(), "--check", "finite"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(["inspect", p.to_str().unwrap(), "--check", "bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// The reference figures of a list of values, computed here the plain way:
/// counts by classification, extremes by comparison, mean and variance in
/// two passes over the finite values.
fn reference(v: &[f64], min_normal: f64) -> (u64, u64, u64, u64, u64, Option<(f64, f64, f64, f64, f64)>) {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let nan = v.iter().filter(|x| x.is_nan()).count() as u64;
    let pinf = v.iter().filter(|&&x| x == f64::INFINITY).count() as u64;
    let ninf = v.iter().filter(|&&x| x == f64::NEG_INFINITY).count() as u64;
    let zeros = v.iter().filter(|&&x| x == 0.0).count() as u64;
    let sub = v.iter().filter(|&&x| x != 0.0 && x.abs() < min_normal).count() as u64;
    let figures = (!finite.is_empty()).then(|| {
        let n = finite.len() as f64;
        let mean = finite.iter().sum::<f64>() / n;
        let var = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let am = finite.iter().map(|x| x.abs()).fold(0.0, f64::max);
        (min, max, am, mean, var.sqrt())
    });
    (nan, pinf, ninf, zeros, sub, figures)
}

/// Values as their dtype stores them, and what each decodes to (half's and
/// Rust's own conversions, not parity's).
fn stored(dtype: DType, bits: &[u32]) -> (Tensor, Vec<f64>) {
    let n = bits.len();
    match dtype {
        DType::F32 => {
            let v: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            (Tensor::from_f32(vec![n], &v), v.iter().map(|&x| x as f64).collect())
        }
        DType::F16 => {
            let h: Vec<u16> = bits.iter().map(|&b| b as u16).collect();
            (Tensor::from_u16_bits(DType::F16, vec![n], &h), h.iter().map(|&b| half::f16::from_bits(b).to_f64()).collect())
        }
        DType::BF16 => {
            let h: Vec<u16> = bits.iter().map(|&b| (b >> 16) as u16).collect();
            (Tensor::from_u16_bits(DType::BF16, vec![n], &h), h.iter().map(|&b| half::bf16::from_bits(b).to_f64()).collect())
        }
        _ => {
            let v: Vec<f64> = bits.iter().map(|&b| f32::from_bits(b) as f64 * 1.000_000_1).collect();
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (Tensor::from_bytes(DType::F64, vec![n], bytes), v)
        }
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(40))]

    /// Every figure of a float tensor against the plain computation: counts,
    /// min, max and max |x| exactly; mean and std to within rounding (the
    /// vectorised pass sums in lanes and blocks, the reference in order).
    /// Lengths cross the block (2,048) and lane (8) boundaries; values are
    /// ordinary, or any bits (NaN, ±inf, subnormals, ±0).
    #[test]
    fn float_statistics_match_the_plain_computation(
        dtype in prop::sample::select(vec![DType::F32, DType::F16, DType::BF16, DType::F64]),
        len in prop_oneof![0usize..40, 2040usize..2060, 4090usize..4200],
        special in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut s = seed | 1;
        let bits: Vec<u32> = (0..len).map(|_| {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            if special && s % 5 == 0 { (s >> 32) as u32 } else { (((s >> 40) as f32 / 1e6) - 3.0 + 100.0).to_bits() }
        }).collect();
        // F16 takes the low 16 bits of the f32 pattern: make ordinary values f16s too.
        let bits: Vec<u32> = if dtype == DType::F16 && !special { bits.iter().map(|&b| half::f16::from_f32(f32::from_bits(b)).to_bits() as u32).collect() } else { bits };
        let (t, values) = stored(dtype, &bits);
        let (_d, p) = one("w", t);
        let st = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
        let min_normal = match dtype { DType::F16 => 2f64.powi(-14), DType::F64 => f64::MIN_POSITIVE, _ => f32::MIN_POSITIVE as f64 };
        let (nan, pinf, ninf, zeros, sub, figures) = reference(&values, min_normal);
        prop_assert_eq!((st.nan, st.pos_inf, st.neg_inf, st.zeros, st.subnormals), (nan, pinf, ninf, zeros, sub));
        match figures {
            None => prop_assert_eq!((st.min, st.mean, st.std), (None, None, None)),
            Some((min, max, am, mean, std)) => {
                prop_assert_eq!((st.min, st.max, st.abs_max), (Some(Float(min)), Some(Float(max)), Some(Float(am))));
                let (m, sd) = (st.mean.unwrap(), st.std.unwrap());
                prop_assert!((m - mean).abs() <= 1e-12 * am.max(f64::MIN_POSITIVE), "mean {m} vs {mean}");
                prop_assert!((sd - std).abs() <= 1e-9 * std + 1e-12 * am, "std {sd} vs {std}");
            }
        }
    }
}

/// Values far from zero with a tiny spread keep their standard deviation
/// (the one-pass Σx² − (Σx)²/n would lose it to cancellation: at 1e8 with
/// a spread of 1e-3, f64 has ~1e-8 absolute resolution of x², far too little).
#[test]
fn a_large_offset_with_a_tiny_spread_keeps_its_std() {
    let v: Vec<f64> = (0..10_000).map(|i| 1e8 + ((i % 3) as f64 - 1.0) * 1e-3).collect();
    let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (_d, p) = one("w", Tensor::from_bytes(DType::F64, vec![v.len()], bytes));
    let s = inspect(&p, &InspectOptions::default()).unwrap().tensors[0].stats.clone().unwrap();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64).sqrt();
    assert!((s.std.unwrap() - std).abs() <= 1e-6 * std, "{:?} vs {std}", s.std);
}
