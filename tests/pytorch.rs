//! PyTorch checkpoints (issue 24) through the library and the binary: the
//! committed `torch.save` files of golden/pytorch_* (written by torch
//! itself; their safetensors twins written from numpy), strided views
//! gathered exactly (a property test against index arithmetic), names,
//! skipped values, `--map`, `apply` from a `.pt` input, and that a hostile
//! pickle runs nothing. Bad inputs are rows of tests/bad_inputs.rs.

use parity::format::bundle::Region;
use parity::format::checkpoint::{Checkpoint, Layout};
use parity::format::dtype::DType;
use parity::inspect::{inspect, InspectOptions};
use proptest::prelude::*;

mod proptest_support;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(rel)
}

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/bad").join(name)
}

fn parity(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).current_dir(cwd).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn all_bytes(ck: &Checkpoint, name: &str) -> Vec<u8> {
    let loc = ck.get(name).unwrap_or_else(|| panic!("{name} missing"));
    let mut b = vec![0u8; loc.len];
    ck.region(loc).read_at(0, &mut b).unwrap();
    b
}

/// Every tensor of a torch file reads as the same bytes as its twin's (which
/// numpy wrote): the views gathered in logical order, every dtype.
#[test]
fn zip_and_legacy_files_read_as_their_twins_tensor_by_tensor() {
    for case in ["pytorch_zip_views", "pytorch_legacy"] {
        let pt = Checkpoint::open(&golden(&format!("{case}/model.pt"))).unwrap();
        let twin = Checkpoint::open(&golden(&format!("{case}/twin.safetensors"))).unwrap();
        assert_eq!(pt.layout, Layout::PyTorch);
        assert_eq!(pt.names().collect::<Vec<_>>(), twin.names().collect::<Vec<_>>(), "{case}");
        for name in twin.names() {
            let (a, b) = (pt.get(name).unwrap(), twin.get(name).unwrap());
            assert_eq!((a.dtype, &a.shape), (b.dtype, &b.shape), "{case}: {name}");
            assert_eq!(all_bytes(&pt, name), all_bytes(&twin, name), "{case}: {name}");
        }
        // The views the case was made to hold, as torch lays them out.
        assert!(!pt.get("embed.weight_t").unwrap().is_contiguous());
        assert!(!pt.get("embed.column").unwrap().is_contiguous());
        assert!(!pt.get("block.1.permuted").unwrap().is_contiguous());
        assert!(pt.get("embed.rows").unwrap().is_contiguous(), "a row slice is a plain region at an offset");
        let (w, tied) = (pt.get("embed.weight").unwrap(), pt.get("lm_head.weight").unwrap());
        assert_eq!((w.shard, w.offset), (tied.shard, tied.offset), "tied weights: one storage, listed under each name");
        assert_eq!(pt.get("quant.zero").unwrap().dtype, DType::I16);
        assert_eq!(pt.get("fp8.e5m2").unwrap().dtype, DType::F8E5M2);
        assert_eq!(pt.get("step").unwrap().shape, Vec::<usize>::new());
    }
}

#[test]
fn a_training_checkpoint_names_tensors_by_path_and_counts_what_it_skips() {
    let path = golden("pytorch_training_checkpoint/checkpoint.pt");
    let o = inspect(&path, &InspectOptions::default()).unwrap();
    // epoch, note, lr, the two betas and params' one index: six non-tensor values.
    assert_eq!(o.skipped_values, 6);
    assert_eq!(o.layout, "pytorch zip");
    let names: Vec<&str> = o.tensors.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"model.embed.weight") && names.contains(&"optimizer.state.0.exp_avg"), "{names:?}");
    let (code, out, _) = parity(&["inspect", path.to_str().unwrap()], Path::new("."));
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().ends_with("(pytorch zip, 1 file, 24 tensors, 1.2 KiB; 6 non-tensor values skipped)"), "{out}");
}

#[test]
fn map_strips_a_prefix_so_a_training_checkpoint_pairs_with_a_state_dict() {
    let (code, out, err) = parity(
        &[
            "diff",
            golden("pytorch_zip_views/twin.safetensors").to_str().unwrap(),
            golden("pytorch_training_checkpoint/checkpoint.pt").to_str().unwrap(),
            "--map",
            "^model\\.=",
            "--format",
            "json",
        ],
        Path::new("."),
    );
    assert_eq!(code, 1, "the optimizer's two tensors are only_right: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let statuses: std::collections::BTreeMap<String, String> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(statuses.values().filter(|s| *s == "identical").count(), 22, "{statuses:?}");
    assert_eq!(statuses.values().filter(|s| *s == "only_right").count(), 2, "{statuses:?}");
}

#[test]
fn a_bin_directory_with_its_index_is_a_sharded_checkpoint() {
    let ck = Checkpoint::open(&golden("pytorch_sharded_bin/left")).unwrap();
    assert_eq!((ck.layout, ck.shards().len(), ck.len()), (Layout::PyTorch, 2, 17));
    assert_eq!(ck.layout_name(), "pytorch sharded (index)");
    assert!(ck.files().iter().any(|f| f.ends_with("pytorch_model.bin.index.json")), "the index is an input a writer must not replace");
}

#[test]
fn a_pickle_that_would_run_a_command_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["exploit.pt", "exploit_legacy.pt"] {
        std::fs::copy(bad(f), dir.path().join(f)).unwrap();
        for cmd in ["inspect", "diff"] {
            let mut args = vec![cmd, f];
            if cmd == "diff" {
                args.push(f);
            }
            let (code, _, err) = parity(&args, dir.path());
            assert_eq!(code, 2, "{err}");
            assert!(err.contains("global 'posix.system' is not allowed") && err.contains(f), "{err}");
            assert!(!dir.path().join("PWNED").exists(), "the pickle's command ran");
        }
    }
    // The same file under Python's own unpickler would create PWNED: the
    // fixture is a real exploit, not a file that fails for another reason.
    let raw = std::fs::read(bad("exploit_legacy.pt")).unwrap();
    let needle = b"touch PWNED";
    assert!(raw.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn apply_reads_a_pt_input_and_writes_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(golden("pytorch_zip_views/model.pt"), dir.path().join("model.pt")).unwrap();
    let plan = "schema: parity.plan.v1\ninputs: {base: model.pt}\noutput: {path: out/, layout: single}\nsteps:\n  - {id: half, operation: scale, target: {match: embed.weight_t}, inputs: {x: 'base:{name}'}, params: {factor: 0.5}}\n";
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let (code, _, err) = parity(&["apply", "plan.yaml"], dir.path());
    assert_eq!(code, 0, "{err}");
    let out = Checkpoint::open(&dir.path().join("out/model.safetensors")).unwrap();
    let twin = Checkpoint::open(&golden("pytorch_zip_views/twin.safetensors")).unwrap();
    // Copied tensors (strided views included) are the twin's bytes.
    for name in ["block.1.permuted", "embed.column", "lm_head.weight", "fp8.e4m3", "position_ids"] {
        assert_eq!(all_bytes(&out, name), all_bytes(&twin, name), "{name}");
    }
    // The scaled transpose: each value halved (exact in f32), in logical order.
    let halved: Vec<f32> = all_bytes(&twin, "embed.weight_t").chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) * 0.5).collect();
    let got: Vec<f32> = all_bytes(&out, "embed.weight_t").chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(halved.len(), got.len());
    for (a, b) in halved.iter().zip(&got) {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{a} vs {b}");
    }
}

/// A strided view's logical bytes, by index arithmetic on the storage.
fn reference(storage: &[u8], elem: usize, offset: usize, shape: &[usize], strides: &[usize]) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * elem);
    for flat in 0..numel {
        let (mut rest, mut at) = (flat, offset);
        for k in (0..shape.len()).rev() {
            at += (rest % shape[k]) * strides[k];
            rest /= shape[k];
        }
        out.extend_from_slice(&storage[at * elem..(at + 1) * elem]);
    }
    out
}

proptest! {
    #![proptest_config(proptest_support::cases(256))]

    /// Any view of a storage (random rank, sizes, strides including 0 and
    /// overlapping ones, offset), read whole or from any byte on, gives the
    /// elements in row-major order.
    #[test]
    fn a_strided_region_reads_the_view_in_logical_order(
        shape in prop::collection::vec(1usize..5, 0..4),
        stride_seed in prop::collection::vec(0usize..7, 4),
        offset in 0usize..5,
        elem in prop::sample::select(vec![1usize, 2, 4, 8]),
        cut in any::<prop::sample::Index>(),
    ) {
        let strides: Vec<usize> = (0..shape.len()).map(|k| stride_seed[k]).collect();
        let last = offset + shape.iter().zip(&strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>();
        let storage: Vec<u8> = (0..(last + 1) * elem).map(|i| (i * 37 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage");
        // The storage behind 3 header bytes: offsets are absolute.
        let mut file_bytes = vec![0xAAu8; 3];
        file_bytes.extend_from_slice(&storage);
        std::fs::write(&path, &file_bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let want = reference(&storage, elem, offset, &shape, &strides);
        let region = Region::strided(&file, &path, (3 + offset * elem) as u64, want.len(), &shape, &strides, elem);
        let mut got = vec![0u8; want.len()];
        region.read_at(0, &mut got).unwrap();
        prop_assert_eq!(&got, &want);
        // From any byte (not only element boundaries) to the end.
        let start = cut.index(want.len() + 1);
        let mut tail = vec![0u8; want.len() - start];
        region.read_at(start, &mut tail).unwrap();
        prop_assert_eq!(&tail[..], &want[start..]);
    }
}

/// Inputs the `pytorch` fuzz target found (tests/fixtures/pytorch/fuzz):
/// each is refused with exit 2, one line, no panic.
#[test]
fn fuzz_findings_are_refused_not_panics() {
    // A legacy storage whose element count is near 2^64: `pos + 8 + bytes`
    // overflowed (fuzz run 2026-12-07, 89,725 executions in).
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/fuzz/legacy_count_overflow.pt");
    let (code, _, err) = parity(&["inspect", f.to_str().unwrap()], Path::new("."));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run past the end of the file") && err.lines().count() == 1 && !err.contains("panicked"), "{err}");
}

/// A fuzz finding (2026-12-07, the `pytorch` target, 6.3M executions in, a
/// SIGSEGV): a legacy file whose protocol-version pickle was a list nested
/// 100k+ deep was printed in the error message with `{:?}`, which recursed
/// as deep. The message now names the value's type only.
#[test]
fn a_deep_value_where_the_protocol_version_should_be_is_named_by_its_type() {
    let mut bytes = vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02];
    let n = 200_000;
    bytes.extend(std::iter::repeat_n(b']', n));
    bytes.extend(std::iter::repeat_n(b'a', n - 1));
    bytes.push(b'.');
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deep.pt"), &bytes).unwrap();
    let (code, _, err) = parity(&["inspect", "deep.pt"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("legacy protocol version is a list") && err.lines().count() == 1, "{err}");
}
