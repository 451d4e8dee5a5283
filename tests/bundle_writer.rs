//! The streaming bundle writer (`replay`, `apply --save-stages`): tensors
//! appended one at a time after room reserved for the header, the header
//! written last — read back by parity, by the safetensors crate, and the
//! same bytes for the same tensors.

use parity::format::bundle::{header_room, Bundle, BundleWriter};
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use std::path::Path;

/// Tensors of mixed widths and odd sizes, so later ones start at offsets
/// that are not multiples of their element size.
fn mixed() -> Vec<(String, Tensor)> {
    vec![
        ("tensor.a.bf16_odd".into(), Tensor::from_u16_bits(DType::BF16, vec![3], &[0x3f80, 0xbf80, 0x0001])),
        ("tensor.a.f64".into(), Tensor::from_f64(vec![2], &[1.5, -f64::MIN_POSITIVE])),
        ("tensor.a.empty".into(), Tensor::from_f32(vec![0, 4], &[])),
        ("tensor.b.f32".into(), Tensor::from_f32(vec![2, 2], &[f32::NAN, f32::INFINITY, -0.0, 1e-45])),
        ("tensor.b.fp8".into(), Tensor::from_bytes(DType::F8E4M3, vec![5], vec![1, 2, 3, 4, 0x7f])),
    ]
}

fn write(path: &Path, room: u64, tensors: &[(String, Tensor)]) {
    let mut w = BundleWriter::create(path, room).unwrap();
    for (k, t) in tensors {
        w.append(k, t).unwrap();
    }
    w.finish().unwrap().commit().unwrap();
}

fn read_back(path: &Path, tensors: &[(String, Tensor)]) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("the safetensors crate refuses it: {e}"));
    assert_eq!(st.len(), tensors.len());
    let bundle = Bundle::open(path).unwrap();
    for (k, t) in tensors {
        let view = st.tensor(k).unwrap();
        assert_eq!(view.data(), t.data.as_slice(), "{k} through the safetensors crate");
        assert_eq!(view.shape(), t.shape.as_slice(), "{k}");
        let (key, name) = k.strip_prefix("tensor.").unwrap().split_once('.').unwrap();
        let ours = bundle.read_named("t", key, name).unwrap().unwrap();
        assert_eq!(&ours, t, "{k} through parity's reader");
        assert_eq!(bundle.get(k).unwrap().data, t.data.as_slice(), "{k} through the map");
    }
}

#[test]
fn tensors_appended_one_at_a_time_read_back_whole_at_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = mixed();
    let path = dir.path().join("b.safetensors");
    write(&path, header_room(tensors.iter().map(|(k, _)| k.as_str())), &tensors);
    read_back(&path, &tensors);
    // The data starts right after the reserved room, 8-aligned; the header
    // is padded to it with spaces.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n as u64, header_room(tensors.iter().map(|(k, _)| k.as_str())));
    assert_eq!(n % 8, 0);
    let header = &bytes[8..8 + n];
    let json_end = header.iter().rposition(|&c| c != b' ').unwrap();
    assert!(header[json_end] == b'}' && json_end + 1 < n, "the JSON, then spaces to the room's end");
    assert_eq!(bytes[8 + n..8 + n + 6], tensors[0].1.data[..], "data in the order appended");
}

#[test]
fn a_header_that_outgrows_its_room_costs_a_copy_not_a_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = mixed();
    let path = dir.path().join("b.safetensors");
    write(&path, 8, &tensors);
    read_back(&path, &tensors);
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["b.safetensors"], "no temporary left behind");
}

#[test]
fn the_same_tensors_in_the_same_order_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = mixed();
    let room = header_room(tensors.iter().map(|(k, _)| k.as_str()));
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    write(&a, room, &tensors);
    write(&b, room, &tensors);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_key_appended_twice_is_refused_and_nothing_is_left_under_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.safetensors");
    let t = Tensor::from_f32(vec![1], &[1.0]);
    let mut w = BundleWriter::create(&path, 256).unwrap();
    w.append("tensor.a.x", &t).unwrap();
    let err = w.append("tensor.a.x", &t).unwrap_err().to_string();
    assert!(err.contains("b.safetensors") && err.contains("'tensor.a.x' written twice"), "{err}");
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the temporary is removed");
}

#[test]
fn a_run_s_stages_are_written_widest_first_so_they_stay_aligned() {
    use parity::format::report::write::{RunWriter, TensorRun};
    use parity::format::stages::Stages;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let stages = Stages(vec![
        ("narrow".into(), Tensor::from_u16_bits(DType::BF16, vec![3], &[1, 2, 3])),
        ("single".into(), Tensor::from_f32(vec![2], &[1.0, 2.0])),
        ("double".into(), Tensor::from_f64(vec![1], &[3.0])),
    ]);
    let run = TensorRun {
        name: "w".into(),
        key: "w".into(),
        operation: "identity".into(),
        params: Default::default(),
        stages,
        final_stage: "narrow".into(),
        historical_final_sha256: None,
    };
    let keys = ["tensor.w.narrow", "tensor.w.single", "tensor.w.double"];
    let mut w = RunWriter::create(&report, keys).unwrap();
    w.push(&run).unwrap();
    let producer = parity::replay::producer(parity::ops::Implementation::Fast);
    let written = w.finish(producer, None, None).unwrap();
    // The report keeps the declared order; the bundle puts F64, then F32, then BF16.
    assert_eq!(written.tensors[0].stages.keys().collect::<Vec<_>>(), ["narrow", "single", "double"]);
    let bytes = std::fs::read(dir.path().join("r_stages.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let start = |k: &str| st.tensor(k).unwrap().data().as_ptr() as usize - bytes.as_ptr() as usize;
    let data0 = start("tensor.w.double");
    assert_eq!((data0 % 8, start("tensor.w.single") - data0, start("tensor.w.narrow") - data0), (0, 8, 16));
}

#[test]
fn header_room_fits_escaped_keys_and_never_exceeds_the_safetensors_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.safetensors");
    let keys = ["tensor.a\"quoted\\.x", "tensor.\u{1}ctl.y"];
    let t = Tensor::from_f32(vec![2, 3, 4, 5, 6, 7, 8, 9], &vec![0.5; 362880]);
    let room = header_room(keys);
    let mut w = BundleWriter::create(&path, room).unwrap();
    for k in keys {
        w.append(k, &t).unwrap();
    }
    w.finish().unwrap().commit().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()), room, "the header fit its room (no copy)");
    safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let many = vec!["tensor.k.stage_name_of_some_length"; 400_000];
    let cap = header_room(many.iter().copied());
    assert!(cap <= parity::format::safetensors_header::MAX_HEADER && cap % 8 == 0, "{cap}");
}
