//! `parity diff` (SPEC §10): one test per promise — each status, each
//! layout, resharding invariance, transposed layouts, dtypes compared by
//! value, the tolerance file's "tensors" globs, --layers, --map, partitions
//! merged back byte for byte, every output format parsed back, bad inputs.

use parity::diff::outcome::{DiffOutcome, Status};
use parity::diff::{diff, DiffOptions, Limit};
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;

mod checkpoint_support;
use checkpoint_support::{write_file, write_sharded, Model};

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v)
}

fn bf16t(shape: &[usize], v: &[f32]) -> Tensor {
    let bits: Vec<u16> = v.iter().map(|&x| parity::numeric::round::f32_to_bf16_bits(x)).collect();
    Tensor::from_u16_bits(DType::BF16, shape.to_vec(), &bits)
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - n as f32 / 3.0) * scale).collect()
}

/// A small model with layer-numbered names.
fn model() -> Model {
    let mut m = Model::new();
    m.insert("model.embed_tokens.weight".into(), f32t(&[8, 4], &ramp(32, 0.25)));
    for l in 0..3 {
        m.insert(format!("model.layers.{l}.mlp.up_proj.weight"), f32t(&[6, 4], &ramp(24, 0.125 * (l + 1) as f32)));
        m.insert(format!("model.layers.{l}.input_layernorm.weight"), f32t(&[4], &[1.0, 1.5, 0.5, 2.0]));
    }
    m.insert("model.norm.weight".into(), f32t(&[4], &[1.0, 1.0, 0.75, 1.25]));
    m
}


fn run(left: &Path, right: &Path, opts: &DiffOptions) -> DiffOutcome {
    diff(left, right, opts).unwrap_or_else(|e| panic!("diff: {e}"))
}

fn status(o: &DiffOutcome, name: &str) -> Status {
    o.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} not listed")).status
}

struct Pair {
    dir: tempfile::TempDir,
}

impl Pair {
    fn new(left: &Model, right: &Model) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        write_sharded(&dir.path().join("left"), left, 2);
        write_sharded(&dir.path().join("right"), right, 3);
        Pair { dir }
    }
    fn left(&self) -> PathBuf {
        self.dir.path().join("left")
    }
    fn right(&self) -> PathBuf {
        self.dir.path().join("right")
    }
    fn diff(&self, opts: &DiffOptions) -> DiffOutcome {
        run(&self.left(), &self.right(), opts)
    }
}

#[test]
fn each_status_is_given_where_it_belongs() {
    let left = model();
    let mut right = left.clone();
    right.insert("model.layers.0.mlp.up_proj.weight".into(), f32t(&[6, 4], &ramp(24, 0.125).iter().map(|x| x + 1e-3).collect::<Vec<_>>()));
    right.insert("model.layers.1.mlp.up_proj.weight".into(), f32t(&[4, 6], &ramp(24, 0.25)));
    right.insert("model.norm.weight".into(), f32t(&[4], &[1.0, 1.0, 0.75, 1.25]).clone());
    // -0.0 for +0.0: other bytes, equal values.
    right.insert("model.layers.2.input_layernorm.weight".into(), f32t(&[4], &[-0.0, 0.0, 1.0, 2.0]));
    let mut l2 = left.clone();
    l2.insert("model.layers.2.input_layernorm.weight".into(), f32t(&[4], &[0.0, 0.0, 1.0, 2.0]));
    right.remove("model.embed_tokens.weight");
    right.insert("lm_head.weight".into(), f32t(&[8, 4], &ramp(32, 0.5)));
    let o = Pair::new(&l2, &right).diff(&DiffOptions::default());
    assert_eq!(status(&o, "model.norm.weight"), Status::Identical);
    assert_eq!(status(&o, "model.layers.2.input_layernorm.weight"), Status::Within);
    assert_eq!(status(&o, "model.layers.0.mlp.up_proj.weight"), Status::Differs);
    assert_eq!(status(&o, "model.layers.1.mlp.up_proj.weight"), Status::ShapeMismatch);
    assert_eq!(status(&o, "model.embed_tokens.weight"), Status::OnlyLeft);
    assert_eq!(status(&o, "lm_head.weight"), Status::OnlyRight);
    assert!(!o.passed());
    assert_eq!(o.summary.total, o.tensors.len());
    assert_eq!(o.result, "FAIL");
    let d = o.tensors.iter().find(|t| t.name == "model.layers.0.mlp.up_proj.weight").unwrap();
    assert!(d.failures.iter().any(|f| f.starts_with("max_abs")), "{:?}", d.failures);
    let m = d.metrics.as_ref().unwrap();
    // 1e-3 added in f32: the max difference is that step as f32 rounds it.
    let max_abs = m.max_abs.as_f64();
    assert!((max_abs - 1e-3).abs() < 1e-6, "{max_abs}");
    assert!(m.sqnr_db.0.is_finite() && m.cosine.0 > 0.99);
}

#[test]
fn a_resharded_copy_is_all_identical_in_every_layout() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("model.safetensors");
    write_file(&single, &m);
    write_sharded(&dir.path().join("two"), &m, 2);
    write_sharded(&dir.path().join("five"), &m, 5);
    // A directory of shards with no index.
    let bare = dir.path().join("bare");
    write_sharded(&bare, &m, 3);
    std::fs::remove_file(bare.join("model.safetensors.index.json")).unwrap();
    let layouts = [single.clone(), dir.path().join("two"), dir.path().join("five"), bare];
    let mut hashes: Option<Vec<Option<String>>> = None;
    for l in &layouts {
        let o = run(&single, l, &DiffOptions::default());
        assert!(o.tensors.iter().all(|t| t.status == Status::Identical), "{}: {:?}", l.display(), o.summary);
        assert!(o.passed());
        let h: Vec<Option<String>> = o.tensors.iter().map(|t| t.content_hash_right.clone()).collect();
        assert!(o.tensors.iter().all(|t| t.content_hash_left == t.content_hash_right));
        if let Some(prev) = &hashes {
            assert_eq!(prev, &h, "content hashes do not depend on the layout");
        }
        hashes = Some(h);
    }
    let layouts_seen: Vec<String> = layouts.iter().map(|l| run(l, l, &DiffOptions::default()).left.layout).collect();
    assert_eq!(layouts_seen, ["single file", "sharded (index)", "sharded (index)", "shards (no index)"]);
}

#[test]
fn content_hashes_differ_when_a_byte_dtype_or_shape_differs() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Model::new();
    a.insert("x".into(), f32t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    a.insert("y".into(), f32t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    let mut b = a.clone();
    b.insert("x".into(), f32t(&[2, 2], &[1.0, 2.0, 3.0, 4.000001]));
    write_file(&dir.path().join("a.safetensors"), &a);
    write_file(&dir.path().join("b.safetensors"), &b);
    let o = run(&dir.path().join("a.safetensors"), &dir.path().join("b.safetensors"), &DiffOptions::default());
    let x = &o.tensors[0];
    assert_ne!(x.content_hash_left, x.content_hash_right);
    let y = &o.tensors[1];
    assert_eq!(y.content_hash_left, y.content_hash_right);
    // Same bytes under another shape: another content hash.
    let h = |dt: DType, shape: &[usize]| parity::compare::metrics::content_hash(dt, shape, 7);
    assert_ne!(h(DType::F32, &[2, 2]), h(DType::F32, &[4]));
    assert_ne!(h(DType::F32, &[4]), h(DType::I32, &[4]));
}

#[test]
fn a_tensor_stored_transposed_is_recognised() {
    let left = model();
    let mut right = left.clone();
    let w = &left["model.layers.0.mlp.up_proj.weight"]; // [6, 4]
    let v = w.to_f32_vec();
    let t: Vec<f32> = (0..24).map(|k| v[(k % 6) * 4 + k / 6]).collect();
    right.insert("model.layers.0.mlp.up_proj.weight".into(), f32t(&[4, 6], &t));
    let mut wrong = t.clone();
    wrong[3] += 1.0;
    right.insert("model.layers.1.mlp.up_proj.weight".into(), f32t(&[4, 6], &wrong));
    let o = Pair::new(&left, &right).diff(&DiffOptions::default());
    let a = o.tensors.iter().find(|t| t.name == "model.layers.0.mlp.up_proj.weight").unwrap();
    assert_eq!(a.status, Status::ShapeMismatch);
    assert!(a.transposed.as_ref().unwrap().matches);
    let b = o.tensors.iter().find(|t| t.name == "model.layers.1.mlp.up_proj.weight").unwrap();
    let tr = b.transposed.as_ref().unwrap();
    assert!(!tr.matches && tr.metrics.is_some());
    let text = parity::render::diff::render(&o, parity::render::Format::Text);
    assert!(text.contains("RIGHT holds LEFT transposed"), "{text}");
}

#[test]
fn dtypes_are_compared_by_value_and_reported() {
    let mut left = Model::new();
    let exact: Vec<f32> = vec![1.0, -2.5, 0.15625, 3.0e-3f32];
    let exact: Vec<f32> = exact.iter().map(|&x| bf(x)).collect();
    left.insert("exact".into(), f32t(&[4], &exact));
    left.insert("rounded".into(), f32t(&[4], &[1.0, 1.001, 2.0, 3.0]));
    let mut right = Model::new();
    right.insert("exact".into(), bf16t(&[4], &exact));
    right.insert("rounded".into(), bf16t(&[4], &[1.0, 1.001, 2.0, 3.0]));
    let o = Pair::new(&left, &right).diff(&DiffOptions::default());
    let e = &o.tensors[0];
    assert_eq!((e.status, e.dtype_left.as_deref(), e.dtype_right.as_deref()), (Status::Within, Some("F32"), Some("BF16")));
    assert_eq!(o.tensors[1].status, Status::Differs);
    // bf16 keeps 8 bits: 1.001 becomes 1.0.
    let loose = DiffOptions { limit: Limit::AllClose { atol: 0.0, rtol: 1e-2 }, ..DiffOptions::default() };
    assert_eq!(Pair::new(&left, &right).diff(&loose).tensors[1].status, Status::Within);
}

/// The bf16 value of x, as an f32 (every bf16 is an f32).
fn bf(x: f32) -> f32 {
    f32::from_bits((parity::numeric::round::f32_to_bf16_bits(x) as u32) << 16)
}

#[test]
fn nan_and_inf_must_sit_in_the_same_places() {
    let mut left = Model::new();
    left.insert("a".into(), f32t(&[3], &[f32::NAN, 1.0, f32::INFINITY]));
    left.insert("b".into(), f32t(&[3], &[f32::NAN, 1.0, 2.0]));
    let mut right = left.clone();
    right.insert("b".into(), f32t(&[3], &[1.0, f32::NAN, 2.0]));
    let o = Pair::new(&left, &right).diff(&DiffOptions { limit: Limit::AllClose { atol: 10.0, rtol: 0.0 }, ..DiffOptions::default() });
    assert_eq!(o.tensors[0].status, Status::Identical);
    assert_eq!(o.tensors[1].status, Status::Differs);
    assert!(o.tensors[1].failures[0].contains("non-finite mismatch"), "{:?}", o.tensors[1].failures);
}

#[test]
fn empty_tensors_compare_as_identical() {
    let mut left = Model::new();
    left.insert("empty".into(), f32t(&[0, 4], &[]));
    let o = Pair::new(&left, &left.clone()).diff(&DiffOptions::default());
    assert_eq!(o.tensors[0].status, Status::Identical);
}

#[test]
fn allclose_reports_the_mismatch_fraction_torch_style() {
    let mut left = Model::new();
    left.insert("w".into(), f32t(&[4], &[1.0, 2.0, 3.0, 4.0]));
    let mut right = Model::new();
    right.insert("w".into(), f32t(&[4], &[1.0, 2.0, 3.5, 4.0]));
    let o = Pair::new(&left, &right).diff(&DiffOptions { limit: Limit::AllClose { atol: 0.1, rtol: 0.0 }, ..DiffOptions::default() });
    let t = &o.tensors[0];
    assert_eq!(t.status, Status::Differs);
    assert!(t.failures.iter().any(|f| f.contains("1 / 4 elements outside")), "{:?}", t.failures);
}

#[test]
fn the_tolerance_file_s_tensors_globs_relax_only_what_they_match() {
    let left = model();
    let mut right = left.clone();
    for l in 0..3 {
        let k = format!("model.layers.{l}.mlp.up_proj.weight");
        let v: Vec<f32> = left[&k].to_f32_vec().iter().map(|x| x + 5e-4).collect();
        right.insert(k, f32t(&[6, 4], &v));
    }
    let v: Vec<f32> = left["model.norm.weight"].to_f32_vec().iter().map(|x| x + 5e-4).collect();
    right.insert("model.norm.weight".into(), f32t(&[4], &v));
    let pair = Pair::new(&left, &right);
    let file = pair.dir.path().join("tol.json");
    std::fs::write(
        &file,
        r#"{"schema": "parity.tolerances.v1", "tensors": {"model.layers.0.*": {"max_abs": 1e-4}, "model.layers.*.mlp.*": {"max_abs": 1e-3}}}"#,
    )
    .unwrap();
    let profile = parity::ops::builtin_profile().merge_file(&file).unwrap();
    let o = pair.diff(&DiffOptions { profile: Some(profile), ..DiffOptions::default() });
    // The first matching glob wins: layer 0 is held to 1e-4.
    assert_eq!(status(&o, "model.layers.0.mlp.up_proj.weight"), Status::Differs);
    assert_eq!(status(&o, "model.layers.1.mlp.up_proj.weight"), Status::Within);
    assert_eq!(status(&o, "model.layers.2.mlp.up_proj.weight"), Status::Within);
    assert_eq!(status(&o, "model.norm.weight"), Status::Differs, "no glob matches: exact");
    let l1 = o.tensors.iter().find(|t| t.name == "model.layers.1.mlp.up_proj.weight").unwrap();
    assert_eq!(l1.limits.as_ref().unwrap().source, "tensors.\"model.layers.*.mlp.*\"");
    let l0 = o.tensors.iter().find(|t| t.name == "model.layers.0.mlp.up_proj.weight").unwrap();
    assert!(l0.failures[0].starts_with("max_abs") && l0.failures[0].contains("> 1e-4"), "{:?}", l0.failures);
}

#[test]
fn layers_keep_a_half_open_range_and_tensors_without_a_layer() {
    let m = model();
    let pair = Pair::new(&m, &m);
    let o = pair.diff(&DiffOptions { layers: Some("1..2".parse().unwrap()), ..DiffOptions::default() });
    let names: Vec<&str> = o.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.embed_tokens.weight",
            "model.layers.1.input_layernorm.weight",
            "model.layers.1.mlp.up_proj.weight",
            "model.norm.weight"
        ]
    );
}

#[test]
fn map_renames_right_s_tensors_before_pairing() {
    let left = model();
    let right: Model = left.iter().map(|(k, t)| (k.replace("model.layers.", "blocks.").replace("mlp.up_proj", "ffn.w1"), t.clone())).collect();
    let pair = Pair::new(&left, &right);
    let plain = pair.diff(&DiffOptions::default());
    assert!(plain.summary.only_left > 0 && plain.summary.only_right > 0);
    let maps = vec![r"^blocks\.(\d+)\.=model.layers.$1.".parse().unwrap(), r"ffn\.w1=mlp.up_proj".parse().unwrap()];
    let o = pair.diff(&DiffOptions { maps, ..DiffOptions::default() });
    assert!(o.tensors.iter().all(|t| t.status == Status::Identical), "{:?}", o.summary);
    let t = o.tensors.iter().find(|t| t.name == "model.layers.2.mlp.up_proj.weight").unwrap();
    assert_eq!(t.right_name.as_deref(), Some("blocks.2.ffn.w1.weight"));
}

#[test]
fn select_takes_substrings_and_globs() {
    let m = model();
    let pair = Pair::new(&m, &m);
    let o = pair.diff(&DiffOptions { select: vec!["layernorm".into(), "*.norm.*".into()], ..DiffOptions::default() });
    assert_eq!(o.tensors.len(), 4);
}

#[test]
fn partitions_merge_back_into_the_unpartitioned_json_byte_for_byte() {
    let mut left = model();
    for i in 0..9 {
        left.insert(format!("extra.{i}.weight"), f32t(&[i + 1, 3], &ramp(3 * (i + 1), 0.5)));
    }
    let mut right = left.clone();
    right.insert("model.norm.weight".into(), f32t(&[4], &[1.0, 1.0, 0.75, 1.5]));
    right.remove("extra.3.weight");
    let pair = Pair::new(&left, &right);
    let whole = pair.diff(&DiffOptions::default()).to_json();
    for n in [1usize, 3, 8] {
        let mut files = Vec::new();
        let mut seen = 0;
        for k in 1..=n {
            let part = pair.diff(&DiffOptions { partition: Some(format!("{k}/{n}").parse().unwrap()), ..DiffOptions::default() });
            seen += part.tensors.len();
            let f = pair.dir.path().join(format!("part{k}of{n}.json"));
            std::fs::write(&f, part.to_json()).unwrap();
            files.push(f);
        }
        assert_eq!(seen, left.len(), "every pair in exactly one partition (N = {n})");
        files.reverse(); // the order given does not matter
        let merged = parity::diff::merge::merge(&files).unwrap();
        assert_eq!(merged.to_json(), whole, "N = {n}");
    }
}

#[test]
fn partitions_are_balanced_by_bytes() {
    let mut m = Model::new();
    for i in 0..12 {
        m.insert(format!("t{i:02}"), f32t(&[64 * (i % 4 + 1)], &vec![0.5; 64 * (i % 4 + 1)]));
    }
    let pair = Pair::new(&m, &m);
    let loads: Vec<u64> = (1..=3)
        .map(|k| {
            let o = pair.diff(&DiffOptions { partition: Some(format!("{k}/3").parse().unwrap()), ..DiffOptions::default() });
            o.tensors.iter().map(|t| t.bytes_left.unwrap()).sum()
        })
        .collect();
    assert_eq!(loads, [2560, 2560, 2560], "{loads:?}");
}

#[test]
fn every_output_format_parses_back() {
    let left = model();
    let mut right = left.clone();
    right.insert("model.norm.weight".into(), f32t(&[4], &[1.0, 1.0, 0.75, 1.5]));
    right.insert("odd <name> & \"quotes\" | pipe".into(), f32t(&[1], &[1.0]));
    let o = Pair::new(&left, &right).diff(&DiffOptions::default());
    use parity::render::{diff::render, Format};
    // JSON: the same outcome back.
    let back: DiffOutcome = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    assert_eq!(back, o);
    let v: serde_json::Value = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    assert_eq!(v["schema"], "parity.diff.v1");
    assert_eq!(v["summary"]["differs"], 1);
    assert_eq!(v["result"], "FAIL");
    // JUnit: one testcase per tensor, failures for what is not ok.
    let xml = render(&o, Format::Junit);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == "testcase" => cases += 1,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == "failure" => failures += 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases, failures), (o.tensors.len(), 2));
    // Markdown: the counts table, then the failing tensors.
    let md = render(&o, Format::Markdown);
    assert!(md.contains("| differs | 1 |") && md.contains("| only_right | 1 |"), "{md}");
    let failing = md.find("### Failing tensors").unwrap();
    assert!(md[failing..].contains("model.norm.weight") && md.contains("\\| pipe"), "{md}");
    // Text: the summary and the verdict.
    let text = render(&o, Format::Text);
    assert!(text.contains("summary: ") && text.ends_with("Result: FAIL (exit 1)\n"), "{text}");
}

#[test]
fn a_differing_pair_is_explained_in_every_format() {
    // Two classic porting bugs, one noisy pair that fits none.
    let left = model();
    let mut right = left.clone();
    let halved: Vec<f32> = ramp(24, 0.125 * 2.0).iter().map(|x| x * 0.5).collect();
    right.insert("model.layers.1.mlp.up_proj.weight".into(), f32t(&[6, 4], &halved));
    right.insert("model.norm.weight".into(), f32t(&[4], &[2.0, 2.0, 1.75, 2.25]));
    let noisy: Vec<f32> = ramp(32, 0.25).iter().enumerate().map(|(i, x)| x + [1e-3, -2e-3, 5e-4, 0.0][i % 4]).collect();
    right.insert("model.embed_tokens.weight".into(), f32t(&[8, 4], &noisy));
    let o = Pair::new(&left, &right).diff(&DiffOptions::default());
    let bug = |name: &str| {
        let t = o.tensors.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t.status, Status::Differs, "{name}");
        t.explanation.as_ref().map(|e| e["bug"].as_str().unwrap().to_string())
    };
    assert_eq!(bug("model.layers.1.mlp.up_proj.weight").as_deref(), Some("constant_scale"));
    assert_eq!(bug("model.norm.weight").as_deref(), Some("constant_offset"));
    assert_eq!(bug("model.embed_tokens.weight"), None, "noise gets no explanation");
    let scale = o.tensors.iter().find(|t| t.name == "model.layers.1.mlp.up_proj.weight").unwrap();
    assert_eq!(scale.explanation.as_ref().unwrap()["params"]["c"], 0.5);
    use parity::render::{diff::render, Format};
    for f in [Format::Text, Format::Json, Format::Junit, Format::Markdown, Format::Html] {
        let out = render(&o, f);
        assert!(out.contains("constant scale c = 0.5"), "{}: {out}", f.name());
        assert!(out.contains("constant offset c = 1"), "{}: {out}", f.name());
    }
    // Identical, within and one-sided pairs are never examined.
    assert!(o.tensors.iter().filter(|t| t.status != Status::Differs).all(|t| t.explanation.is_none()));
}

#[test]
fn numpy_arrays_are_checkpoints_too() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.0f32, -2.0, 0.5, 8.0, 0.0, 3.25];
    let npy = |descr: &str, shape: &str, data: &[u8]| {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    };
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let npdir = dir.path().join("arrays");
    std::fs::create_dir(&npdir).unwrap();
    std::fs::write(npdir.join("w.npy"), npy("<f4", "(2, 3)", &data)).unwrap();
    let mut m = Model::new();
    m.insert("w".into(), f32t(&[2, 3], &values));
    let st = dir.path().join("w.safetensors");
    write_file(&st, &m);
    let o = run(&st, &npdir, &DiffOptions::default());
    assert_eq!((o.tensors[0].status, o.right.layout.as_str()), (Status::Identical, "numpy"));
    assert_eq!(run(&st, &npdir.join("w.npy"), &DiffOptions::default()).tensors[0].status, Status::Identical);
    // An .npz of stored members.
    let npz = dir.path().join("m.npz");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&npz).unwrap());
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file("w.npy", stored).unwrap();
        std::io::Write::write_all(&mut z, &npy("<f4", "(2, 3)", &data)).unwrap();
        z.finish().unwrap();
    }
    assert_eq!(run(&st, &npz, &DiffOptions::default()).tensors[0].status, Status::Identical);
    // Refused: Fortran order, object arrays, big-endian.
    for (descr, fortran) in [("<f4", "True"), ("|O", "False"), (">f4", "False")] {
        let mut bytes = npy(descr, "(2, 3)", &data);
        if fortran == "True" {
            let s = String::from_utf8_lossy(&bytes).replace("False", "True ").into_bytes();
            bytes = s;
        }
        std::fs::write(npdir.join("w.npy"), &bytes).unwrap();
        let err = diff(&st, &npdir, &DiffOptions::default()).unwrap_err().to_string();
        assert!(err.contains("w.npy") && err.contains("tensor 'w'"), "{err}");
    }
}

/// A `.npy` file in numpy's format (version 1.0): `descr` and `shape` as
/// numpy writes them, then the data.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// An uncompressed `.npz` of `(member name, .npy bytes)`.
fn npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        z.start_file(*name, stored).unwrap();
        std::io::Write::write_all(&mut z, bytes).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn two_lone_arrays_pair_whatever_their_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.0f32, -2.0, 0.5, 8.0, 0.0, 3.25];
    let f32s: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    // The same values as F16 (each exact in F16), bits from the IEEE layout:
    // 1 = 0x3C00, -2 = 0xC000, 0.5 = 0x3800, 8 = 0x4800, 0 = 0, 3.25 = 0x4280.
    let f16s: Vec<u8> = [0x3C00u16, 0xC000, 0x3800, 0x4800, 0x0000, 0x4280].iter().flat_map(|b| b.to_le_bytes()).collect();
    let (a, f16) = (dir.path().join("a.npy"), dir.path().join("f16.npy"));
    std::fs::write(&a, npy("<f4", "(2, 3)", &f32s)).unwrap();
    std::fs::write(&f16, npy("<f2", "(2, 3)", &f16s)).unwrap();
    let o = run(&a, &f16, &DiffOptions::default());
    assert_eq!(o.tensors.len(), 1, "one pair, not only_left + only_right");
    let t = &o.tensors[0];
    assert_eq!((t.name.as_str(), t.right_name.as_deref(), t.status), ("a", Some("f16"), Status::Within));
    assert!(o.passed());
    // And through the binary: exit 0, the pair named in the text.
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(["diff", a.to_str().unwrap(), f16.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("RIGHT's name: f16") && text.contains("(numpy, 1 file, 1 tensor, 24 B)"), "{text}");

    // np.savez(f, x) names a positional array arr_0: unnamed too.
    let z = dir.path().join("z.npz");
    npz(&z, &[("arr_0.npy", npy("<f4", "(2, 3)", &f32s))]);
    assert_eq!(run(&a, &z, &DiffOptions::default()).tensors[0].status, Status::Identical);
    // A value that differs is a differs pair, not two one-sided tensors.
    let mut moved = f32s.clone();
    moved[..4].copy_from_slice(&2.0f32.to_le_bytes());
    let b = dir.path().join("b.npy");
    std::fs::write(&b, npy("<f4", "(2, 3)", &moved)).unwrap();
    assert_eq!(run(&a, &b, &DiffOptions::default()).tensors.iter().map(|t| t.status).collect::<Vec<_>>(), [Status::Differs]);

    // Named arrays keep pairing by name: an .npz member the user named,
    // and a directory of .npy files (each named by its file).
    let named = dir.path().join("named.npz");
    npz(&named, &[("w.npy", npy("<f4", "(2, 3)", &f32s))]);
    let sides = |o: &DiffOutcome| o.tensors.iter().map(|t| (t.name.clone(), t.status)).collect::<Vec<_>>();
    assert_eq!(sides(&run(&a, &named, &DiffOptions::default())), [("a".to_string(), Status::OnlyLeft), ("w".to_string(), Status::OnlyRight)]);
    let npdir = dir.path().join("arrays");
    std::fs::create_dir(&npdir).unwrap();
    std::fs::write(npdir.join("v.npy"), npy("<f4", "(2, 3)", &f32s)).unwrap();
    assert_eq!(sides(&run(&a, &npdir, &DiffOptions::default())), [("a".to_string(), Status::OnlyLeft), ("v".to_string(), Status::OnlyRight)]);
}

#[test]
fn a_whole_number_difference_reads_whole() {
    // A pair off by exactly 255 (a u8 range) and one off by 1000.3.
    let mut left = Model::new();
    left.insert("a".into(), f32t(&[2], &[0.0, 1.0]));
    left.insert("b".into(), f32t(&[1], &[0.0]));
    let mut right = left.clone();
    right.insert("a".into(), f32t(&[2], &[255.0, 1.0]));
    right.insert("b".into(), Tensor::from_f64(vec![1], &[1000.3]));
    let o = Pair::new(&left, &right).diff(&DiffOptions::default());
    let failures = |name: &str| o.tensors.iter().find(|t| t.name == name).unwrap().failures.clone();
    // mean_abs of a: (255 + 0) / 2 = 127.5.
    assert_eq!(failures("a"), ["max_abs 255 > 0", "mean_abs 1.3e2 > 0"]);
    assert_eq!(failures("b")[0], "max_abs 1e3 > 0");
    let text = parity::render::diff::render(&o, parity::render::Format::Text);
    assert!(text.contains("255 at (0,)"), "{text}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let left = model();
    let mut right = left.clone();
    right.insert("model.norm.weight".into(), f32t(&[4], &[1.0, 1.0, 0.75, 1.5]));
    let pair = Pair::new(&left, &right);
    let out = |threads: &str| {
        Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["diff", pair.left().to_str().unwrap(), pair.right().to_str().unwrap(), "--format", "json"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(out("1"), out("2"));
}

// ---------------------------------------------------------------------------
// Bad input: one line naming the file and the tensor, exit 2, no panic.

fn parity(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(args).output().unwrap();
    (out.status.code().expect("no signal"), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn refused(args: &[&str], needles: &[&str]) {
    let (code, stderr) = parity(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {n:?} missing from {stderr}");
    }
}

#[test]
fn broken_checkpoints_are_setup_errors_naming_file_and_tensor() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_sharded(&good, &m, 2);
    let g = good.to_str().unwrap();
    let fresh = |name: &str| {
        let d = dir.path().join(name);
        write_sharded(&d, &m, 2);
        d
    };
    let index = |d: &Path| d.join("model.safetensors.index.json");
    let edit_index = |d: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(index(d)).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(index(d), serde_json::to_vec(&v).unwrap()).unwrap();
    };

    let d = fresh("missing_shard");
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["model.safetensors.index.json", "model-00002-of-00002.safetensors", "does not exist"]);

    let d = fresh("escaping");
    edit_index(&d, &|v| v["weight_map"]["model.norm.weight"] = "../good/model-00002-of-00002.safetensors".into());
    refused(&["diff", g, d.to_str().unwrap()], &["model.safetensors.index.json", "escapes"]);

    let d = fresh("absent");
    edit_index(&d, &|v| v["weight_map"]["model.ghost.weight"] = "model-00001-of-00002.safetensors".into());
    refused(&["diff", g, d.to_str().unwrap()], &["model-00001-of-00002.safetensors", "model.ghost.weight", "absent from this shard"]);

    let d = fresh("twice");
    let mut extra = Model::new();
    extra.insert("model.norm.weight".into(), m["model.norm.weight"].clone());
    write_file(&d.join("model-00001-of-00002.safetensors"), &{
        let mut first: Model = m.iter().take(4).map(|(k, v)| (k.clone(), v.clone())).collect();
        first.extend(extra);
        first
    });
    refused(&["diff", g, d.to_str().unwrap()], &["model-00002-of-00002.safetensors", "model.norm.weight", "also in"]);

    let d = fresh("bare_twice");
    std::fs::remove_file(index(&d)).unwrap();
    std::fs::copy(d.join("model-00001-of-00002.safetensors"), d.join("model-copy.safetensors")).unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["also in", "each tensor once"]);

    let d = fresh("truncated");
    let shard = d.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 3]).unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["model-00002-of-00002.safetensors", "truncated"]);

    let d = fresh("hostile");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(d.join("model-00002-of-00002.safetensors"), &bytes).unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["model-00002-of-00002.safetensors", "header length"]);

    let d = fresh("not_json");
    std::fs::write(index(&d), b"{ not json").unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["model.safetensors.index.json", "not JSON"]);

    let d = dir.path().join("empty_dir");
    std::fs::create_dir(&d).unwrap();
    refused(&["diff", g, d.to_str().unwrap()], &["empty_dir", "not a checkpoint"]);
    refused(&["diff", g, dir.path().join("nowhere").to_str().unwrap()], &["nowhere"]);
}

#[test]
fn bad_flags_are_setup_errors() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    write_sharded(&dir.path().join("a"), &m, 2);
    let a = dir.path().join("a");
    let a = a.to_str().unwrap();
    refused(&["diff", a, a, "--map", "([=x"], &["--map", "invalid regex"]);
    refused(&["diff", a, a, "--map", "noequals"], &["--map", "REGEX=REPLACEMENT"]);
    refused(&["diff", a, a, "--layers", "3"], &["--layers", "START..END"]);
    refused(&["diff", a, a, "--layers", "4..2"], &["--layers"]);
    refused(&["diff", a, a, "--partition", "0/3"], &["--partition", "1 ≤ K ≤ N"]);
    refused(&["diff", a, a, "--partition", "4/3"], &["--partition", "1 ≤ K ≤ N"]);
    refused(&["diff", a, a, "--select", "layers.", "--select", "nothing_like_this"], &["--select 'nothing_like_this' matches no tensor"]);
    let tol = dir.path().join("tol.json");
    std::fs::write(&tol, r#"{"schema": "parity.tolerances.v1", "operations": {}}"#).unwrap();
    refused(&["diff", a, a, "--tolerances", tol.to_str().unwrap()], &["tol.json", "\"tensors\""]);
    std::fs::write(&tol, r#"{"schema": "parity.tolerances.v1", "tensors": {"*": {"max_abz": 1}}}"#).unwrap();
    refused(&["diff", a, a, "--tolerances", tol.to_str().unwrap()], &["tol.json", "max_abz"]);
}

#[test]
fn merge_results_refuses_mismatched_or_missing_partitions() {
    let m = model();
    let mut other = m.clone();
    other.remove("model.norm.weight");
    let pair = Pair::new(&m, &m);
    let p = pair.dir.path();
    let (l, r) = (pair.left(), pair.right());
    let write = |name: &str, args: &[&str]| {
        let out = p.join(name);
        let mut all = vec!["diff", l.to_str().unwrap(), r.to_str().unwrap(), "--format", "json", "--output", out.to_str().unwrap()];
        all.extend(args);
        let (code, err) = parity(&all);
        assert_eq!(code, 0, "{err}");
        out
    };
    let p1 = write("p1.json", &["--partition", "1/2"]);
    let p2 = write("p2.json", &["--partition", "2/2"]);
    let whole = write("whole.json", &[]);
    let other3 = write("o.json", &["--partition", "2/3"]);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (code, _) = parity(&["merge-results", &s(&p1), &s(&p2), "--format", "json", "--output", &s(&p.join("merged.json"))]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(p.join("merged.json")).unwrap(), std::fs::read(&whole).unwrap());
    refused(&["merge-results", &s(&p1)], &["partition 2/2 is missing"]);
    refused(&["merge-results", &s(&p1), &s(&p1)], &["p1.json", "given twice"]);
    refused(&["merge-results", &s(&p1), &s(&other3)], &["o.json", "another run"]);
    refused(&["merge-results", &s(&whole)], &["whole.json", "not a partition"]);
    std::fs::write(p.join("junk.json"), b"[1, 2").unwrap();
    refused(&["merge-results", &s(&p.join("junk.json"))], &["junk.json", "not JSON"]);
}
