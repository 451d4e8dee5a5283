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
