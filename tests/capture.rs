//! `parity::capture`, the API a Rust port records its forward pass with
//! (docs/capture.md): one test per promise. Names as the Python capture
//! gives them, values bit for bit with the hash the report states, written
//! as they are recorded, nothing under the final names until finish, and
//! each refusal one error naming the report, the tensor and the stage.

mod proptest_support;
use half::{bf16, f16};
use parity::capture::{Capture, Element};
use parity::format::bundle::Bundle;
use parity::format::dtype::DType;
use parity::format::report::{LoadedReport, SCHEMA_JSON};
use parity::Error;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn report_in(dir: &Path) -> PathBuf {
    dir.join("rust.json")
}

fn names(path: &Path) -> Vec<(String, String)> {
    LoadedReport::load(path).unwrap().report.tensors.iter().map(|t| (t.name.clone(), t.key.clone())).collect()
}

/// Every file in a directory, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The error's parts, for a refusal that names a tensor (and a stage).
fn tensor_error(e: Error) -> (PathBuf, String, Option<String>, String) {
    let line = e.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    match e {
        Error::Tensor { path, tensor, stage, message } => (path, tensor, stage, message),
        other => panic!("expected Error::Tensor, got {other:?}"),
    }
}

#[test]
fn a_name_recorded_again_is_numbered_as_the_python_capture_numbers_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    let x = [1f32, 2.0];
    for expected in ["block", "block#2", "block#3"] {
        assert_eq!(run.output("block", "Block", &x, &[2]).unwrap(), expected);
    }
    assert_eq!(run.record("other", "Block").name(), "other");
    run.output("model", "Model", &x, &[2]).unwrap();
    run.finish().unwrap();
    let listed: Vec<String> = names(&path).into_iter().map(|(n, _)| n).collect();
    assert_eq!(listed, ["block", "block#2", "block#3", "model"], "a record never finished is not listed");
}

#[test]
fn keys_are_safe_names_and_a_collision_takes_the_next_free_suffix() {
    // `fc#2` and `fc.2` are both `fc_2` as safe names; the later one is `fc_2__2`,
    // as in parity_oracle.capture.
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    for name in ["fc.2", "fc", "fc", "encoder.layer.0.attention"] {
        run.output(name, "Linear", &[0f32], &[1]).unwrap();
    }
    run.finish().unwrap();
    let expected = [("fc.2", "fc_2"), ("fc", "fc"), ("fc#2", "fc_2__2"), ("encoder.layer.0.attention", "encoder_layer_0_attention")];
    assert_eq!(names(&path), expected.map(|(n, k)| (n.to_string(), k.to_string())));
}

#[test]
fn the_report_is_valid_against_the_published_schema_and_lists_stages_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::builder(&path, "port", "rust-bf16").version("candle", "0.9.1").expected_stages(4).create().unwrap();
    let mask = [true, false, true];
    let ids = [7i32, -1, 3];
    let out = [bf16::from_f32(0.5), bf16::from_f32(-2.0), bf16::from_f32(3.0)];
    run.record("head", "Head").param("k", 3).param("why", "a test").stage("mask", &mask, &[3]).unwrap().stage("ids", &ids, &[3]).unwrap().stage("output", &out, &[1, 3]).unwrap().finish().unwrap();
    let written = run.finish().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let problems: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");

    let t = &written.tensors[0];
    assert_eq!(t.stages.keys().collect::<Vec<_>>(), ["mask", "ids", "output"]);
    assert_eq!(t.stages.values().map(|s| s.dtype).collect::<Vec<_>>(), [DType::BOOL, DType::I32, DType::BF16]);
    assert_eq!(t.final_sha256.as_ref(), Some(&t.stages["output"].sha256));
    assert_eq!(t.params, serde_json::json!({"k": 3, "why": "a test"}).as_object().unwrap().clone());
    assert_eq!(written.producer.versions["candle"], "0.9.1");
    assert_eq!(written.producer.versions["parity"], env!("CARGO_PKG_VERSION"));
    assert_eq!(LoadedReport::load(&path).unwrap().report, written, "what finish returns is what it wrote");
}

#[test]
fn data_whose_length_is_not_the_shapes_is_refused_naming_report_tensor_and_stage() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    let e = run.output("encoder.layer.0", "Layer", &[0f32; 10], &[3, 4]).unwrap_err();
    let line = e.to_string();
    let (p, tensor, stage, message) = tensor_error(e);
    assert_eq!((p, tensor.as_str(), stage.as_deref()), (path.clone(), "encoder.layer.0", Some("output")));
    assert_eq!(message, "data has 10 elements but shape [3, 4] needs 12");
    assert_eq!(line, format!("{}: tensor 'encoder.layer.0' stage 'output': data has 10 elements but shape [3, 4] needs 12", path.display()));

    let (.., message) = tensor_error(run.output("big", "Op", &[0u8; 1], &[usize::MAX, 2]).unwrap_err());
    assert!(message.contains("more elements than a usize can count"), "{message}");
    // A scalar is shape [] with one element.
    run.output("scalar", "Op", &[1.5f64], &[]).unwrap();
}

#[test]
fn a_stage_name_outside_the_reports_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    run.output("fc1", "Linear", &[0f32], &[1]).unwrap();
    for bad in ["", "out.put", "out-put", "ausgabe·1", "a b"] {
        let refused = run.record("fc1", "Linear").stage(bad, &[0f32], &[1]).err();
        let (p, tensor, stage, message) = tensor_error(refused.unwrap_or_else(|| panic!("{bad:?} was accepted")));
        // A refused record does not count as a call: the next one is still #2.
        assert_eq!((p.as_path(), tensor.as_str(), stage.as_deref()), (path.as_path(), "fc1#2", Some(bad)));
        assert!(message.contains("[A-Za-z0-9_]+"), "{message}");
    }
}

#[test]
fn a_stage_given_twice_in_one_call_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Capture::create(report_in(dir.path()), "port", "rust-f32").unwrap();
    let refused = run.record("fc1", "Linear").stage("output", &[0f32], &[1]).unwrap().stage("output", &[1f32], &[1]).err().unwrap();
    let (_, tensor, stage, message) = tensor_error(refused);
    assert_eq!((tensor.as_str(), stage.as_deref(), message.as_str()), ("fc1", Some("output"), "stage given twice for this call"));
}

#[test]
fn a_call_with_no_stage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    let (p, tensor, stage, message) = tensor_error(run.record("fc1", "Linear").finish().unwrap_err());
    assert_eq!((p, tensor.as_str(), stage), (path, "fc1", None));
    assert!(message.starts_with("no stages"), "{message}");
}

#[test]
fn an_empty_name_an_empty_operation_and_a_name_ending_like_a_repeated_call_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Capture::create(report_in(dir.path()), "port", "rust-f32").unwrap();
    for (name, operation, says) in [
        ("", "Linear", "a name must not be empty"),
        ("fc1#2", "Linear", "ends like a repeated call"),
        ("fc1#12", "Linear", "ends like a repeated call"),
        ("fc1", "", "operation must not be empty"),
    ] {
        let (_, tensor, stage, message) = tensor_error(run.output(name, operation, &[0f32], &[1]).unwrap_err());
        assert_eq!((tensor.as_str(), stage), (name, None));
        assert!(message.contains(says), "{name:?} {operation:?}: {message}");
    }
    // `#` elsewhere in a name is a name like any other.
    assert_eq!(run.output("fc1#", "Linear", &[0f32], &[1]).unwrap(), "fc1#");
    assert_eq!(run.output("a#b", "Linear", &[0f32], &[1]).unwrap(), "a#b");
}

#[test]
fn a_parameter_given_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Capture::create(report_in(dir.path()), "port", "rust-f32").unwrap();
    let refused = run.record("fc1", "Linear").param("bias", true).param("bias", false).stage("output", &[0f32], &[1]).err().unwrap();
    let (_, tensor, stage, message) = tensor_error(refused);
    assert_eq!((tensor.as_str(), stage, message.as_str()), ("fc1", None, "parameter 'bias' given twice"));
}

#[test]
fn a_refused_record_writes_nothing_and_the_capture_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    run.output("fc1", "Linear", &[1f32, 2.0], &[2]).unwrap();
    run.output("fc2", "Linear", &[1f32, 2.0], &[3]).unwrap_err();
    run.record("fc2", "Linear").stage("output", &[1f32, 2.0], &[2]).unwrap().stage("bad.name", &[0u8], &[1]).unwrap_err();
    assert_eq!(run.output("fc2", "Linear", &[3f32, 4.0], &[2]).unwrap(), "fc2");
    run.finish().unwrap();
    let bundle = Bundle::open(&dir.path().join("rust_stages.safetensors")).unwrap();
    assert_eq!(bundle.keys().collect::<Vec<_>>(), ["tensor.fc1.output", "tensor.fc2.output"]);
    assert_eq!(bundle.get("tensor.fc2.output").unwrap().to_f64_vec(), [3.0, 4.0]);
}

#[test]
fn finishing_with_nothing_recorded_or_an_empty_producer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    match Capture::create(&path, "port", "rust-f32").unwrap().finish().unwrap_err() {
        Error::OutputNotWritable { path: p, message } => assert_eq!((p, message.as_str()), (path.clone(), "not written: no tensor was recorded")),
        other => panic!("{other:?}"),
    }
    for (name, implementation) in [("", "rust-f32"), ("port", "")] {
        match Capture::create(&path, name, implementation).err().unwrap() {
            Error::Json { path: p, message } => {
                assert_eq!(p, path);
                assert!(message.contains("must not be empty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(files(dir.path()), Vec::<String>::new(), "nothing left behind");
}

#[test]
fn a_capture_dropped_without_finish_leaves_no_report_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    {
        let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
        run.output("fc1", "Linear", &[1f32; 1000], &[10, 100]).unwrap();
        assert_eq!(files(dir.path()).len(), 1, "the bundle's temporary: {:?}", files(dir.path()));
    }
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn an_existing_report_is_replaced_only_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let bundle = dir.path().join("rust_stages.safetensors");
    let mut old = Capture::create(&path, "port", "old").unwrap();
    old.output("old", "Op", &[1f32], &[1]).unwrap();
    old.finish().unwrap();
    let before = (std::fs::read(&path).unwrap(), std::fs::read(&bundle).unwrap());

    // Recorded but dropped: the old pair stands.
    let mut dropped = Capture::create(&path, "port", "new").unwrap();
    dropped.output("new", "Op", &[2f32], &[1]).unwrap();
    assert_eq!((std::fs::read(&path).unwrap(), std::fs::read(&bundle).unwrap()), before, "untouched while recording");
    drop(dropped);
    assert_eq!((std::fs::read(&path).unwrap(), std::fs::read(&bundle).unwrap()), before, "untouched after a drop");
    assert_eq!(files(dir.path()), ["rust.json", "rust_stages.safetensors"]);

    let mut new = Capture::create(&path, "port", "new").unwrap();
    new.output("new", "Op", &[2f32], &[1]).unwrap();
    new.finish().unwrap();
    assert_eq!(names(&path), [("new".to_string(), "new".to_string())]);
    assert_eq!(files(dir.path()), ["rust.json", "rust_stages.safetensors"]);
}

#[test]
fn a_recorded_stage_is_on_disk_before_finish() {
    // Streamed: once recorded, a stage's bytes are in the bundle's temporary
    // (a stage larger than the 1 MiB write buffer goes straight to the file),
    // so a run holds no stage it has recorded.
    let dir = tempfile::tempdir().unwrap();
    let path = report_in(dir.path());
    let mut run = Capture::create(&path, "port", "rust-f32").unwrap();
    let big = vec![0.25f32; 3 << 20 >> 2]; // 3 MiB
    let on_disk = |dir: &Path| -> u64 { std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum() };
    run.output("a", "Op", &big, &[big.len()]).unwrap();
    assert!(on_disk(dir.path()) >= 3 << 20, "{} bytes on disk", on_disk(dir.path()));
    run.output("b", "Op", &big, &[big.len()]).unwrap();
    assert!(on_disk(dir.path()) >= 6 << 20, "{} bytes on disk", on_disk(dir.path()));
    run.finish().unwrap();
}

/// One recorded stage's data, of any element type a capture takes.
#[derive(Clone, Debug)]
enum Data {
    F64(Vec<f64>),
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl Data {
    /// The bytes the bundle must hold, made here from each value's own
    /// little-endian encoding (not through the capture's byte view).
    fn expected_bytes(&self) -> (DType, Vec<u8>) {
        match self {
            Data::F64(v) => (DType::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::F32(v) => (DType::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::BF16(v) => (DType::BF16, v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()),
            Data::F16(v) => (DType::F16, v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()),
            Data::I64(v) => (DType::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::I32(v) => (DType::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::U8(v) => (DType::U8, v.clone()),
            Data::Bool(v) => (DType::BOOL, v.iter().map(|&b| b as u8).collect()),
        }
    }
}

/// A shape of rank 0..=3 with up to 5 per dimension, and data of its size
/// in one element type, every bit pattern allowed (NaN payloads, -0, subnormals).
fn stage_data() -> impl Strategy<Value = (Vec<usize>, Data)> {
    prop::collection::vec(0usize..=5, 0..=3).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        let v = |n| prop::collection::vec(any::<u64>(), n);
        let data = prop_oneof![
            v(n).prop_map(|b| Data::F64(b.into_iter().map(f64::from_bits).collect())),
            v(n).prop_map(|b| Data::F32(b.into_iter().map(|x| f32::from_bits(x as u32)).collect())),
            v(n).prop_map(|b| Data::BF16(b.into_iter().map(|x| bf16::from_bits(x as u16)).collect())),
            v(n).prop_map(|b| Data::F16(b.into_iter().map(|x| f16::from_bits(x as u16)).collect())),
            v(n).prop_map(|b| Data::I64(b.into_iter().map(|x| x as i64).collect())),
            v(n).prop_map(|b| Data::I32(b.into_iter().map(|x| x as i32).collect())),
            v(n).prop_map(|b| Data::U8(b.into_iter().map(|x| x as u8).collect())),
            v(n).prop_map(|b| Data::Bool(b.into_iter().map(|x| x & 1 == 1).collect())),
        ];
        (Just(shape), data)
    })
}

fn stage<'d, 'c>(r: parity::capture::Record<'c, 'd>, name: &str, data: &'d Data, shape: &[usize]) -> parity::Result<parity::capture::Record<'c, 'd>> {
    fn add<'c, 'd, T: Element>(r: parity::capture::Record<'c, 'd>, name: &str, v: &'d [T], shape: &[usize]) -> parity::Result<parity::capture::Record<'c, 'd>> {
        r.stage(name, v, shape)
    }
    match data {
        Data::F64(v) => add(r, name, v, shape),
        Data::F32(v) => add(r, name, v, shape),
        Data::BF16(v) => add(r, name, v, shape),
        Data::F16(v) => add(r, name, v, shape),
        Data::I64(v) => add(r, name, v, shape),
        Data::I32(v) => add(r, name, v, shape),
        Data::U8(v) => add(r, name, v, shape),
        Data::Bool(v) => add(r, name, v, shape),
    }
}

proptest! {
    #![proptest_config(proptest_support::cases(48))]

    /// Whatever is recorded — any element type, any bits, tensors of one
    /// stage or several of mixed widths — reads back from the bundle bit
    /// for bit, with the dtype, shape and sha256 the report states.
    #[test]
    fn recorded_data_reads_back_bit_identical_with_the_stated_sha256(
        calls in prop::collection::vec(prop::collection::vec(stage_data(), 1..=4), 1..=5)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = report_in(dir.path());
        let mut run = Capture::create(&path, "port", "rust").unwrap();
        for (i, stages) in calls.iter().enumerate() {
            let mut r = run.record(&format!("layers.{i}"), "Layer");
            for (j, (shape, data)) in stages.iter().enumerate() {
                r = stage(r, &format!("s{j}"), data, shape).unwrap();
            }
            r.finish().unwrap();
        }
        run.finish().unwrap();

        let loaded = LoadedReport::load(&path).unwrap();
        let bundle = Bundle::open(&loaded.stage_bundle_path(false).unwrap()).unwrap();
        prop_assert_eq!(loaded.report.tensors.len(), calls.len());
        for (t, stages) in loaded.report.tensors.iter().zip(&calls) {
            prop_assert_eq!(t.stages.len(), stages.len());
            for ((name, entry), (shape, data)) in t.stages.iter().zip(stages) {
                let (dtype, bytes) = data.expected_bytes();
                let stored = bundle.read_named(&t.name, &t.key, name).unwrap().unwrap();
                prop_assert_eq!((stored.dtype, &stored.shape), (dtype, shape));
                prop_assert_eq!((entry.dtype, &entry.shape), (dtype, shape));
                prop_assert!(stored.data == bytes, "{} {}: bytes differ", t.name, name);
                let sha = parity::format::tensor::hex(&Sha256::digest(&bytes));
                prop_assert_eq!(&entry.sha256, &sha);
            }
        }
    }
}

#[test]
fn a_capture_refuses_to_write_over_a_file_the_port_reads() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    std::fs::write(&weights, b"the port's weights").unwrap();
    let x = [1f32, 2.0];
    // The report's path is the weights.
    let e = Capture::builder(&weights, "port", "rust-f32").reads(&weights).create().unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e:?}");
    // The bundle beside the report would be the weights, reached through a link.
    std::os::unix::fs::symlink(&weights, dir.path().join("r_stages.safetensors")).unwrap();
    let e = Capture::builder(dir.path().join("r.json"), "port", "rust-f32").reads(&weights).create().unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e:?}");
    // An input that appears under the report's name while the capture runs.
    let later = dir.path().join("later.json");
    let mut run = Capture::builder(&later, "port", "rust-f32").reads(dir.path().join("in.json")).create().unwrap();
    run.output("fc", "Linear", &x, &[2]).unwrap();
    std::fs::write(dir.path().join("in.json"), b"read by the port").unwrap();
    std::fs::hard_link(dir.path().join("in.json"), &later).unwrap();
    assert!(matches!(run.finish().unwrap_err(), Error::OutputIsInput { .. }));
    assert_eq!(std::fs::read(&weights).unwrap(), b"the port's weights");
    assert_eq!(std::fs::read(dir.path().join("in.json")).unwrap(), b"read by the port");
}
