//! SPEC §9 as a table: every class of bad input to `check`, `replay`,
//! `gate`, `--tolerances`, `diff` (checkpoints and indexes) and `apply`
//! (plans, their inputs and the output's manifest), run through
//! the real binary. Each row spoils a fresh copy of small, valid fixtures and
//! must end with
//!
//! * exit 2 — a setup error — or exit 1 where the SPEC makes it a gate
//!   failure (a stage whose shape differs, a golden case that disagrees);
//! * for exit 2, exactly one line on stderr, naming the file and the
//!   tensor / stage / key where there is one;
//! * no panic;
//! * nothing created, changed or removed on disk (every file's size, mtime
//!   and mode compared before and after).
//!
//! Rows are checked all together, and every failing row is reported at once.

use parity::format::bundle::{self, Bundle};
use parity::format::tensor::Tensor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod matrix_support;
use matrix_support::{run_with_timeout, snapshot};

const A: &str = "small.a.weight";
const B: &str = "small.b.weight";

/// What a row must end with.
enum Expect {
    /// Setup error: exit 2, one line on stderr holding every needle.
    Refused(&'static [&'static str]),
    /// A gate fails: exit 1, every needle on stdout.
    Fails(&'static [&'static str]),
}

use Expect::{Fails, Refused};

/// One class of bad input: how to spoil the fixture, the arguments to run.
struct Row {
    class: &'static str,
    setup: fn(&Fx) -> Vec<String>,
    expect: Expect,
}

fn row(class: &'static str, expect: Expect, setup: fn(&Fx) -> Vec<String>) -> Row {
    Row { class, setup, expect }
}

// ---------------------------------------------------------------------------
// The fixture: small valid inputs for every command, in one directory.
//
//   left.json + left.safetensors      svf_small's f32 oracle (the baseline)
//   right.json + right.safetensors    the same (the candidate)
//   components.safetensors            both reports' inputs
//   tol.json                          a valid tolerance file
//   golden/                           svf_small with its manifest lines
//   ckpt/a, ckpt/b                    two HF sharded checkpoints (index + 2 shards)

struct Fx {
    dir: tempfile::TempDir,
}

const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/svf_small");
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";
const INDEX: &str = "model.safetensors.index.json";
/// A valid surgery plan over ckpt/a (SPEC §11): a scale, a cast, asserts.
const PLAN_HEAD: &str = "schema: parity.plan.v1\ninputs: {base: a/, other: b/}\noutput: {path: out/}\n";
const PLAN: &str = concat!(
    "schema: parity.plan.v1\ninputs: {base: a/, other: b/}\noutput: {path: out/}\nsteps:\n",
    "  - {id: halve, operation: scale, target: {layers: '0..1', match: 'model.layers.*.mlp.up_proj.weight'}, inputs: {x: 'base:{name}'}, params: {factor: 0.5}}\n",
    "  - {id: norm_ok, assert: {match: model.norm.weight, shape: [4], dtype: F32, finite: true}}\n",
);

impl Fx {
    fn new() -> Fx {
        let fx = Fx { dir: tempfile::tempdir().unwrap() };
        let small = Path::new(SMALL);
        std::fs::copy(small.join("components.safetensors"), fx.path("components.safetensors")).unwrap();
        for side in ["left", "right"] {
            std::fs::copy(small.join("oracle_f32.safetensors"), fx.path(&format!("{side}.safetensors"))).unwrap();
            let mut r: Value = serde_json::from_slice(&std::fs::read(small.join("oracle_f32.json")).unwrap()).unwrap();
            r["stage_bundle"] = format!("{side}.safetensors").into();
            std::fs::write(fx.path(&format!("{side}.json")), serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        }
        std::fs::write(fx.path("tol.json"), r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_bf16": {"max_ulp": 1}}}}"#).unwrap();

        let golden = fx.path("golden");
        std::fs::create_dir_all(golden.join("svf_small")).unwrap();
        for f in std::fs::read_dir(small).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, golden.join("svf_small").join(f.file_name().unwrap())).unwrap();
        }
        fx.write_manifest();

        for (name, scale) in [("a", 1.0f32), ("b", 1.0)] {
            write_checkpoint(&fx.path(&format!("ckpt/{name}")), scale);
        }
        fx.write("ckpt/plan.yaml", PLAN);
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// An argument: the absolute path of `rel`.
    fn arg(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    /// `parity check left.json right.json` and more arguments.
    fn check(&self, more: &[&str]) -> Vec<String> {
        let mut a = vec!["check".into(), self.arg("left.json"), self.arg("right.json")];
        a.extend(more.iter().map(|s| s.to_string()));
        a
    }

    /// `parity replay right.json --out out.json` and more arguments.
    fn replay(&self, more: &[&str]) -> Vec<String> {
        let mut a = vec!["replay".into(), self.arg("right.json"), "--out".into(), self.arg("out.json")];
        a.extend(more.iter().map(|s| s.to_string()));
        a
    }

    fn gate(&self) -> Vec<String> {
        vec!["gate".into(), self.arg("golden")]
    }

    fn diff(&self) -> Vec<String> {
        vec!["diff".into(), self.arg("ckpt/a"), self.arg("ckpt/b")]
    }

    /// `parity apply ckpt/plan.yaml` (base ckpt/a, output ckpt/out/) and more arguments.
    fn apply(&self, more: &[&str]) -> Vec<String> {
        let mut a = vec!["apply".into(), self.arg("ckpt/plan.yaml")];
        a.extend(more.iter().map(|s| s.to_string()));
        a
    }

    /// The plan with its steps replaced by `steps` (YAML, indented as a list).
    fn plan_steps(&self, steps: &str) -> Vec<String> {
        self.write("ckpt/plan.yaml", format!("{PLAN_HEAD}steps:\n{steps}"));
        self.apply(&[])
    }

    fn edit_json(&self, rel: &str, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_slice(&std::fs::read(self.path(rel)).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(self.path(rel), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(rel), bytes).unwrap();
    }

    fn edit_bytes(&self, rel: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let mut b = std::fs::read(self.path(rel)).unwrap();
        f(&mut b);
        self.write(rel, b);
    }

    /// Replace a file by a directory of the same name.
    fn make_dir(&self, rel: &str) {
        let _ = std::fs::remove_file(self.path(rel));
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }

    /// Replace a file by a FIFO of the same name (nothing ever writes it: a
    /// reader that opens it would wait forever).
    fn make_fifo(&self, rel: &str) {
        let _ = std::fs::remove_file(self.path(rel));
        let ok = Command::new("mkfifo").arg(self.path(rel)).status().unwrap().success();
        assert!(ok, "mkfifo");
    }

    /// A safetensors file with this exact header text and `data` bytes of zeros.
    fn raw_safetensors(&self, rel: &str, header: &str, data: usize) {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.resize(b.len() + data, 0);
        self.write(rel, b);
    }

    /// Rewrite a safetensors file's tensors (key → tensor) through `f`.
    fn edit_tensors(&self, rel: &str, f: impl FnOnce(&mut BTreeMap<String, Tensor>)) {
        let mut m: BTreeMap<String, Tensor> = {
            let b = Bundle::open(&self.path(rel)).unwrap();
            let keys: Vec<String> = b.keys().map(str::to_string).collect();
            keys.into_iter().map(|k| (k.clone(), b.get(&k).unwrap().to_owned())).collect()
        };
        f(&mut m);
        let entries: Vec<(String, &Tensor)> = m.iter().map(|(k, t)| (k.clone(), t)).collect();
        bundle::write(&self.path(rel), &entries).unwrap();
    }

    /// The golden copy's manifest, regenerated over its current files.
    fn write_manifest(&self) {
        let golden = self.path("golden");
        let mut lines = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(golden.join("svf_small")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let hash = parity::format::tensor::sha256_hex(&std::fs::read(&f).unwrap());
            lines.push_str(&format!("{hash}  svf_small/{}\n", f.file_name().unwrap().to_string_lossy()));
        }
        std::fs::write(golden.join("MANIFEST.sha256"), lines).unwrap();
    }

    fn add_manifest_line(&self, line: &str) {
        let mut text = std::fs::read_to_string(self.path("golden/MANIFEST.sha256")).unwrap();
        text.push_str(line);
        text.push('\n');
        self.write("golden/MANIFEST.sha256", text);
    }
}

/// A small model as a Hugging Face sharded checkpoint: index + two shards.
fn write_checkpoint(dir: &Path, scale: f32) {
    std::fs::create_dir_all(dir).unwrap();
    let t = |n: usize, k: f32| Tensor::from_f32(vec![n], &(0..n).map(|i| (i as f32 - 2.0) * k * scale).collect::<Vec<_>>());
    let shards: [(&str, Vec<(String, Tensor)>); 2] = [
        (SHARD1, vec![("model.embed.weight".into(), t(8, 0.5)), ("model.layers.0.mlp.up_proj.weight".into(), t(6, 0.25))]),
        (SHARD2, vec![("model.layers.1.mlp.up_proj.weight".into(), t(6, 0.125)), ("model.norm.weight".into(), t(4, 1.0))]),
    ];
    let mut weight_map = serde_json::Map::new();
    for (file, tensors) in &shards {
        let entries: Vec<(String, &Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
        bundle::write(&dir.join(file), &entries).unwrap();
        for (k, _) in tensors {
            weight_map.insert(k.clone(), (*file).into());
        }
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join(INDEX), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// Running a row.

/// `parity diff <a bad PyTorch fixture> ckpt/a`, the fixture copied in.
fn torch_bad(fx: &Fx, name: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/bad").join(name);
    std::fs::copy(src, fx.path(name)).unwrap();
    vec!["diff".into(), fx.arg(name), fx.arg("ckpt/a")]
}

/// A small GGUF file (one metadata value, one F32 tensor `w` of 32 values,
/// or two), spoiled by the fields set.
struct Gguf {
    version: u32,
    count: Option<u64>,
    key_len: Option<u64>,
    kv_type: u32,
    ty: u32,
    ne: Vec<u64>,
    offset: u64,
    twice: bool,
    cut: Option<usize>,
    name: &'static str,
}

impl Gguf {
    fn ok() -> Gguf {
        Gguf { version: 3, count: None, key_len: None, kv_type: 4, ty: 0, ne: vec![32, 1], offset: 0, twice: false, cut: None, name: "w" }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(self.version.to_le_bytes());
        let n = if self.twice { 2u64 } else { 1 };
        b.extend(self.count.unwrap_or(n).to_le_bytes());
        b.extend(1u64.to_le_bytes());
        let key = b"llama.attention.head_count";
        b.extend(self.key_len.unwrap_or(key.len() as u64).to_le_bytes());
        b.extend(key);
        b.extend(self.kv_type.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        for _ in 0..n {
            b.extend((self.name.len() as u64).to_le_bytes());
            b.extend(self.name.as_bytes());
            b.extend((self.ne.len() as u32).to_le_bytes());
            for d in &self.ne {
                b.extend(d.to_le_bytes());
            }
            b.extend(self.ty.to_le_bytes());
            b.extend(self.offset.to_le_bytes());
        }
        b.resize(b.len().div_ceil(32) * 32 + 1024, 0);
        if let Some(c) = self.cut {
            b.truncate(c);
        }
        b
    }
}

/// `parity diff m.gguf ckpt/a` with `m.gguf` written from `g`.
fn gguf_bad(fx: &Fx, g: Gguf) -> Vec<String> {
    fx.write("m.gguf", g.bytes());
    vec!["diff".into(), fx.arg("m.gguf"), fx.arg("ckpt/a")]
}

fn run_row(r: &Row) -> Result<(), String> {
    let fx = Fx::new();
    let args = (r.setup)(&fx);
    let shown = |args: &[String]| args.iter().map(|a| a.replace(&fx.dir.path().to_string_lossy().into_owned(), "$DIR")).collect::<Vec<_>>().join(" ");
    let before = snapshot(fx.dir.path());
    let out = run_with_timeout(Command::new(env!("CARGO_BIN_EXE_parity")).args(&args).current_dir(fx.dir.path()))
        .map_err(|e| format!("{e}\n    parity {}", shown(&args)))?;
    let after = snapshot(fx.dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code().ok_or_else(|| format!("killed by a signal: {:?}", out.status))?;
    let mut problems = Vec::new();
    if stderr.contains("panicked") || stdout.contains("panicked") {
        problems.push("panicked".to_string());
    }
    let (want, needles, text) = match r.expect {
        Refused(n) => (2, n, &stderr),
        Fails(n) => (1, n, &stdout),
    };
    if code != want {
        problems.push(format!("exit {code}, expected {want}"));
    }
    if want == 2 && stderr.lines().count() != 1 {
        problems.push(format!("{} lines on stderr, expected one", stderr.lines().count()));
    }
    for n in needles {
        if !text.contains(n) {
            problems.push(format!("{n:?} not in the output"));
        }
    }
    if before != after {
        let changed: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| k.strip_prefix(fx.dir.path()).unwrap().display().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        problems.push(format!("files created, changed or removed: {changed:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n    parity {}\n    stderr: {}", problems.join("; "), shown(&args), stderr.trim_end()))
    }
}

// ---------------------------------------------------------------------------
// The table.

fn rows() -> Vec<Row> {
    vec![
        // ---- check: the report ----
        row("check: report does not exist", Refused(&["nope.json", "No such file"]), |fx| {
            vec!["check".into(), fx.arg("left.json"), fx.arg("nope.json")]
        }),
        row("check: report is a directory", Refused(&["right.json", "is a directory"]), |fx| {
            fx.make_dir("right.json");
            fx.check(&[])
        }),
        row("check: report is a FIFO", Refused(&["right.json", "FIFO"]), |fx| {
            fx.make_fifo("right.json");
            fx.check(&[])
        }),
        row("check: report is a device (/dev/zero)", Refused(&["/dev/zero", "device"]), |fx| {
            vec!["check".into(), fx.arg("left.json"), "/dev/zero".into()]
        }),
        row("check: report is empty", Refused(&["right.json", "malformed JSON"]), |fx| {
            fx.write("right.json", "");
            fx.check(&[])
        }),
        row("check: report JSON cut short", Refused(&["right.json", "malformed JSON"]), |fx| {
            fx.edit_bytes("right.json", |b| b.truncate(b.len() / 2));
            fx.check(&[])
        }),
        row("check: report is not a JSON object", Refused(&["right.json", "not a parity report"]), |fx| {
            fx.write("right.json", "[1, 2]");
            fx.check(&[])
        }),
        row("check: report schema unknown", Refused(&["right.json", "parity.report.v9"]), |fx| {
            fx.edit_json("right.json", |v| v["schema"] = "parity.report.v9".into());
            fx.check(&[])
        }),
        row("check: report lacks \"tensors\"", Refused(&["right.json", "tensors"]), |fx| {
            fx.edit_json("right.json", |v| {
                v.as_object_mut().unwrap().remove("tensors");
            });
            fx.check(&[])
        }),
        row("check: report stage with an unknown dtype", Refused(&["right.json", A, "final_f32", "F31"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["final_f32"]["dtype"] = "F31".into());
            fx.check(&[])
        }),
        row("check: report stage shape not an array", Refused(&["right.json", A, "source_f32"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["source_f32"]["shape"] = "6x4".into());
            fx.check(&[])
        }),
        row("check: report tensor without a name", Refused(&["right.json", "#2", "name"]), |fx| {
            fx.edit_json("right.json", |v| {
                v["tensors"][1].as_object_mut().unwrap().remove("name");
            });
            fx.check(&[])
        }),
        row("check: report lists a tensor twice", Refused(&["right.json", A, "listed twice"]), |fx| {
            fx.edit_json("right.json", |v| {
                let t = v["tensors"][0].clone();
                v["tensors"].as_array_mut().unwrap().push(t);
            });
            fx.check(&[])
        }),
        row("check: report holding a key twice", Refused(&["right.json", "key 'schema' appears twice"]), |fx| {
            fx.edit_bytes("right.json", |b| {
                let at = b.iter().position(|&c| c == b'{').unwrap() + 1;
                b.splice(at..at, br#""schema": "parity.report.v1", "#.iter().copied());
            });
            fx.check(&[])
        }),
        row("check: report key not a safe name", Refused(&["right.json", A, "not a safe name"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["key"] = "small.a".into());
            fx.check(&[])
        }),
        row("check: report key used by two tensors", Refused(&["right.json", B, "used by two tensors"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][1]["key"] = "small_a_weight".into());
            fx.check(&[])
        }),
        row("check: report sha256 not 64 hex digits", Refused(&["right.json", A, "scaled_s", "64 hex"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["scaled_s"]["sha256"] = "xyz".into());
            fx.check(&[])
        }),
        row("check: stage_bundle escapes with ..", Refused(&["right.json", "stage_bundle", "escapes"]), |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = "../right.safetensors".into());
            fx.check(&[])
        }),
        row("check: stage_bundle is absolute", Refused(&["right.json", "stage_bundle", "escapes"]), |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = "/etc/passwd".into());
            fx.check(&[])
        }),
        row("check: stage_bundle is empty", Refused(&["right.json", "stage_bundle", "empty"]), |fx| {
            fx.edit_json("right.json", |v| v["stage_bundle"] = "".into());
            fx.check(&[])
        }),
        row("check: tensor name holding a newline", Refused(&["right.json", "evil\\nname", "missing from this report"]), |fx| {
            fx.edit_json("left.json", |v| v["tensors"][0]["name"] = "evil\nname".into());
            fx.check(&[])
        }),
        // ---- check: the stage bundle ----
        row("check: bundle does not exist", Refused(&["right.safetensors", "No such file"]), |fx| {
            std::fs::remove_file(fx.path("right.safetensors")).unwrap();
            fx.check(&[])
        }),
        row("check: bundle is a directory", Refused(&["right.safetensors", "is a directory"]), |fx| {
            fx.make_dir("right.safetensors");
            fx.check(&[])
        }),
        row("check: bundle is a FIFO", Refused(&["right.safetensors", "FIFO"]), |fx| {
            fx.make_fifo("right.safetensors");
            fx.check(&[])
        }),
        row("check: bundle shorter than the header length", Refused(&["right.safetensors", "not a safetensors file"]), |fx| {
            fx.write("right.safetensors", [1u8, 2, 3]);
            fx.check(&[])
        }),
        row("check: bundle header length hostile", Refused(&["right.safetensors", "header length"]), |fx| {
            fx.edit_bytes("right.safetensors", |b| b[..8].copy_from_slice(&u64::MAX.to_le_bytes()));
            fx.check(&[])
        }),
        row("check: bundle header not JSON", Refused(&["right.safetensors", "invalid safetensors header"]), |fx| {
            fx.raw_safetensors("right.safetensors", "{not json", 0);
            fx.check(&[])
        }),
        row("check: bundle header not UTF-8", Refused(&["right.safetensors", "UTF-8"]), |fx| {
            fx.raw_safetensors("right.safetensors", "{\"\u{0}\"", 0);
            fx.edit_bytes("right.safetensors", |b| b[9] = 0xff);
            fx.check(&[])
        }),
        row("check: bundle header not an object", Refused(&["right.safetensors", "invalid safetensors header"]), |fx| {
            fx.raw_safetensors("right.safetensors", "[1, 2, 3]", 0);
            fx.check(&[])
        }),
        row("check: bundle offsets past the end", Refused(&["right.safetensors", "tensor.x.s", "past the end"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"F32","shape":[250000],"data_offsets":[0,1000000]}}"#, 16);
            fx.check(&[])
        }),
        row("check: bundle shape product overflows", Refused(&["right.safetensors", "tensor.x.s", "overflows"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#, 16);
            fx.check(&[])
        }),
        row("check: bundle dtype unknown", Refused(&["right.safetensors", "tensor.x.s", "unknown dtype 'F31'"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"F31","shape":[4],"data_offsets":[0,16]}}"#, 16);
            fx.check(&[])
        }),
        row("check: bundle dtype parity does not read", Refused(&["right.safetensors", "tensor.x.s", "U16"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"U16","shape":[8],"data_offsets":[0,16]}}"#, 16);
            fx.check(&[])
        }),
        row("check: bundle shape disagrees with the data length", Refused(&["right.safetensors", "tensor.x.s", "needs 20 bytes"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#, 16);
            fx.check(&[])
        }),
        row("check: bundle tensors overlap", Refused(&["right.safetensors", "tensor.x.t", "overlap"]), |fx| {
            let h = r#"{"tensor.x.s":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"tensor.x.t":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
            fx.raw_safetensors("right.safetensors", h, 24);
            fx.check(&[])
        }),
        row("check: bundle tensors leave a gap", Refused(&["right.safetensors", "tensor.x.t", "gap"]), |fx| {
            let h = r#"{"tensor.x.s":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"tensor.x.t":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#;
            fx.raw_safetensors("right.safetensors", h, 24);
            fx.check(&[])
        }),
        row("check: bundle lists a tensor twice", Refused(&["right.safetensors", "tensor.x.s", "listed twice"]), |fx| {
            let h = r#"{"tensor.x.s":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"tensor.x.s":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
            fx.raw_safetensors("right.safetensors", h, 16);
            fx.check(&[])
        }),
        row("check: bundle entry without data_offsets", Refused(&["right.safetensors", "tensor.x.s", "data_offsets"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"tensor.x.s":{"dtype":"F32","shape":[2]}}"#, 8);
            fx.check(&[])
        }),
        row("check: bundle __metadata__ not strings", Refused(&["right.safetensors", "__metadata__"]), |fx| {
            fx.raw_safetensors("right.safetensors", r#"{"__metadata__":{"format":1},"tensor.x.s":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8);
            fx.check(&[])
        }),
        row("check: bundle truncated", Refused(&["right.safetensors", "tensor 'tensor.small_", "truncated"]), |fx| {
            fx.edit_bytes("right.safetensors", |b| b.truncate(b.len() - 100));
            fx.check(&[])
        }),
        row("check: bundle padded after its last tensor", Refused(&["right.safetensors", "truncated or padded"]), |fx| {
            fx.edit_bytes("right.safetensors", |b| b.extend_from_slice(&[0; 8]));
            fx.check(&[])
        }),
        row("check: bundle lacks a stage its report lists", Refused(&["right.safetensors", A, "u_scaled", "missing from the bundle"]), |fx| {
            fx.edit_tensors("right.safetensors", |m| {
                m.remove("tensor.small_a_weight.u_scaled");
            });
            fx.check(&[])
        }),
        row("check: bundle stage dtype differs from its report", Refused(&["right.safetensors", A, "final_f32", "bundle holds F32"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["final_f32"]["dtype"] = "F64".into());
            fx.check(&[])
        }),
        row("check: bundle stage shape differs from its report", Refused(&["right.safetensors", A, "matmul_pre_norm", "bundle holds F32 [6, 4]"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["matmul_pre_norm"]["shape"] = json!([24]));
            fx.check(&[])
        }),
        row("check --verify-hashes: bundle bytes not the ones its report hashes", Refused(&["right.safetensors", B, "final_bf16", "right.json", "does not describe"]), |fx| {
            fx.edit_bytes("right.safetensors", |b| *b.last_mut().unwrap() ^= 1);
            fx.check(&["--verify-hashes"])
        }),
        row("check: reports claim equal final hashes for different bytes", Refused(&["right.safetensors", B, "final_bf16", "does not describe"]), |fx| {
            fx.edit_bytes("right.safetensors", |b| *b.last_mut().unwrap() ^= 1);
            fx.check(&[])
        }),
        // ---- check: the pair of reports ----
        row("check: required stage missing from a report", Refused(&["right.json", A, "matmul_pre_norm", "required stage missing"]), |fx| {
            fx.edit_json("right.json", |v| {
                v["tensors"][0]["stages"].as_object_mut().unwrap().remove("matmul_pre_norm");
            });
            fx.check(&[])
        }),
        row("check: tensor missing from the right report", Refused(&["right.json", B, "missing from this report"]), |fx| {
            fx.edit_json("right.json", |v| {
                v["tensors"].as_array_mut().unwrap().pop();
            });
            fx.check(&[])
        }),
        row("check: operation differs between the sides", Refused(&["right.json", A, "operation 'cast'"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["operation"] = "cast".into());
            fx.check(&[])
        }),
        row("check: params differ between the sides", Refused(&["right.json", A, "params differ", "final_shape"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["params"]["final_shape"] = json!([4, 6]));
            fx.check(&[])
        }),
        row("check: unknown parameter in a report", Refused(&["right.json", A, "final_shap"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["params"]["final_shap"] = json!([6, 4]));
            fx.check(&[])
        }),
        row("check: final_sha256 not the final stage's hash", Refused(&["right.json", A, "final_bf16", "final_sha256"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["final_sha256"] = "0".repeat(64).into());
            fx.check(&[])
        }),
        row("check --strict-hash: final_sha256 missing from the right report", Refused(&["right.json", A, "no final_sha256 in the right report"]), |fx| {
            fx.edit_json("right.json", |v| {
                v["tensors"][0].as_object_mut().unwrap().remove("final_sha256");
            });
            fx.check(&["--strict-hash"])
        }),
        row("check --strict-stage-tolerances: a stage's shape differs (a gate failure)", Fails(&[A, "final_f32", "FAIL"]), |fx| {
            fx.edit_tensors("right.safetensors", |m| m.get_mut("tensor.small_a_weight.final_f32").unwrap().shape = vec![24]);
            fx.edit_json("right.json", |v| v["tensors"][0]["stages"]["final_f32"]["shape"] = json!([24]));
            fx.check(&["--strict-stage-tolerances"])
        }),
        // ---- check: flags ----
        row("check --select matching nothing", Refused(&["--select 'nothing_here' matches no tensor"]), |fx| fx.check(&["--select", "nothing_here"])),
        row("check --select: a second pattern matching nothing", Refused(&["--select 'nothing_here' matches no tensor"]), |fx| {
            fx.check(&["--select", A, "--select", "nothing_here"])
        }),
        row("check --stages naming no stage", Refused(&["--stages", "'final_f33'"]), |fx| fx.check(&["--stages", "final_f33"])),
        row("check --stages empty", Refused(&["--stages"]), |fx| fx.check(&["--stages", ","])),
        row("check --top-diffs not a number", Refused(&["--top-diffs"]), |fx| fx.check(&["--top-diffs", "many"])),
        row("check: an unknown flag", Refused(&["--strict-hsah"]), |fx| fx.check(&["--strict-hsah"])),
        row("check --output in a missing directory", Refused(&["nodir", "out.txt"]), |fx| fx.check(&["--output", "nodir/out.txt"])),
        row("check --output is a directory", Refused(&["outdir"]), |fx| {
            fx.make_dir("outdir");
            fx.check(&["--output", "outdir"])
        }),
        // ---- --tolerances ----
        row("--tolerances: file does not exist", Refused(&["nope.tol.json", "No such file"]), |fx| fx.check(&["--tolerances", "nope.tol.json"])),
        row("--tolerances: file is a directory", Refused(&["tol.json", "is a directory"]), |fx| {
            fx.make_dir("tol.json");
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: file is a FIFO", Refused(&["tol.json", "FIFO"]), |fx| {
            fx.make_fifo("tol.json");
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: file is a device", Refused(&["/dev/zero", "device"]), |fx| fx.check(&["--tolerances", "/dev/zero"])),
        row("--tolerances: malformed JSON", Refused(&["tol.json", "malformed JSON"]), |fx| {
            fx.write("tol.json", "{\"schema\": ");
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: unknown schema", Refused(&["tol.json", "parity.tolerances.v9"]), |fx| {
            fx.edit_json("tol.json", |v| v["schema"] = "parity.tolerances.v9".into());
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: misspelt operation", Refused(&["tol.json", "svf_aply", "did you mean 'svf_apply'"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_aply": {"final_bf16": {"max_ulp": 1}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: a limit given twice", Refused(&["tol.json", "operations.svf_apply.final_bf16.max_abs' appears twice"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_bf16": {"max_abs": 1e-3, "max_abs": 10}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: stage the operation does not have", Refused(&["tol.json", "svf_apply", "final_bf17"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_bf17": {"max_ulp": 1}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: unknown limit", Refused(&["tol.json", "svf_apply", "max_abz"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_f32": {"max_abz": 1}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: limit of the wrong type", Refused(&["tol.json", "operations.svf_apply.final_bf16"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_bf16": {"max_ulp": "one"}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: negative limit", Refused(&["tol.json", "final_f32", "max_abs"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_f32": {"max_abs": -1}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: min_cosine out of range", Refused(&["tol.json", "final_f32", "min_cosine"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"svf_apply": {"final_f32": {"min_cosine": 2}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        row("--tolerances: incomplete tolerance for an operation of one's own", Refused(&["tol.json", "my_rmsnorm.out", "incomplete"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "operations": {"my_rmsnorm": {"out": {"max_abs": 1}}}}"#);
            fx.check(&["--tolerances", "tol.json"])
        }),
        // ---- replay ----
        row("replay: report does not exist", Refused(&["nope.json", "No such file"]), |fx| {
            vec!["replay".into(), fx.arg("nope.json"), "--out".into(), fx.arg("out.json")]
        }),
        row("replay: report names no components", Refused(&["right.json", "components"]), |fx| {
            fx.edit_json("right.json", |v| {
                v.as_object_mut().unwrap().remove("components");
            });
            fx.replay(&[])
        }),
        row("replay: components file does not exist", Refused(&["components.safetensors", "No such file"]), |fx| {
            std::fs::remove_file(fx.path("components.safetensors")).unwrap();
            fx.replay(&[])
        }),
        row("replay: components is a directory", Refused(&["components.safetensors", "is a directory"]), |fx| {
            fx.make_dir("components.safetensors");
            fx.replay(&[])
        }),
        row("replay: components is a FIFO", Refused(&["components.safetensors", "FIFO"]), |fx| {
            fx.make_fifo("components.safetensors");
            fx.replay(&[])
        }),
        row("replay: components path escapes", Refused(&["right.json", "components", "escapes"]), |fx| {
            fx.edit_json("right.json", |v| v["components"] = "../components.safetensors".into());
            fx.replay(&[])
        }),
        row("replay: components lack an input", Refused(&["components.safetensors", A, "tensor.small_a_weight.u'"]), |fx| {
            fx.edit_tensors("components.safetensors", |m| {
                m.remove("tensor.small_a_weight.u");
            });
            fx.replay(&[])
        }),
        row("replay: components offsets past the end", Refused(&["components.safetensors", "tensor.small_b_weight.v", "past the end"]), |fx| {
            fx.edit_bytes("components.safetensors", |b| b.truncate(b.len() - 4));
            fx.replay(&[])
        }),
        row("replay: component of the wrong shape", Refused(&["right.json", "components.safetensors", A, "v has shape [2, 8]"]), |fx| {
            fx.edit_tensors("components.safetensors", |m| m.get_mut("tensor.small_a_weight.v").unwrap().shape = vec![2, 8]);
            fx.replay(&[])
        }),
        row("replay: unknown operation", Refused(&["right.json", A, "unknown operation 'svf_aply'"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["operation"] = "svf_aply".into());
            fx.replay(&[])
        }),
        row("replay: unknown parameter", Refused(&["right.json", A, "final_shap"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["params"]["final_shap"] = json!([6, 4]));
            fx.replay(&[])
        }),
        row("replay: parameter of the wrong type", Refused(&["right.json", A, "final_shape"]), |fx| {
            fx.edit_json("right.json", |v| v["tensors"][0]["params"]["final_shape"] = "6x4".into());
            fx.replay(&[])
        }),
        row("replay --out is a directory", Refused(&["outdir", "is a directory"]), |fx| {
            fx.make_dir("outdir");
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("outdir")]
        }),
        row("replay --out is the report being replayed", Refused(&["right.json", "the report being replayed"]), |fx| {
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("right.json")]
        }),
        row("replay --out is the replayed report's bundle", Refused(&["right.safetensors", "its stage bundle"]), |fx| {
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("right.safetensors")]
        }),
        row("replay --out is the components", Refused(&["components.safetensors", "its components"]), |fx| {
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("components.safetensors")]
        }),
        row("replay --out whose bundle would be the components", Refused(&["c_stages.safetensors", "its components"]), |fx| {
            std::fs::rename(fx.path("components.safetensors"), fx.path("c_stages.safetensors")).unwrap();
            fx.edit_json("right.json", |v| v["components"] = "c_stages.safetensors".into());
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("c.json")]
        }),
        row("replay --out in a missing directory", Refused(&["nodir"]), |fx| {
            vec!["replay".into(), fx.arg("right.json"), "--out".into(), fx.arg("nodir/out.json")]
        }),
        row("replay --out whose bundle path is a directory", Refused(&["out_stages.safetensors", "is a directory"]), |fx| {
            fx.make_dir("out_stages.safetensors");
            fx.replay(&[])
        }),
        row("replay --impl unknown", Refused(&["--impl"]), |fx| fx.replay(&["--impl", "fastest"])),
        row("replay --select matching nothing", Refused(&["--select 'nothing_here' matches no tensor"]), |fx| fx.replay(&["--select", "nothing_here"])),
        // ---- gate ----
        row("gate: golden directory does not exist", Refused(&["nogolden"]), |fx| vec!["gate".into(), fx.arg("nogolden")]),
        row("gate: no manifest", Refused(&["MANIFEST.sha256", "No such file"]), |fx| {
            std::fs::remove_file(fx.path("golden/MANIFEST.sha256")).unwrap();
            fx.gate()
        }),
        row("gate: manifest is a FIFO", Refused(&["MANIFEST.sha256", "FIFO"]), |fx| {
            fx.make_fifo("golden/MANIFEST.sha256");
            fx.gate()
        }),
        row("gate: manifest line malformed", Refused(&["MANIFEST.sha256", "line 7"]), |fx| {
            fx.add_manifest_line("just one field");
            fx.gate()
        }),
        row("gate: manifest path escapes the golden directory", Refused(&["MANIFEST.sha256", "escapes"]), |fx| {
            fx.add_manifest_line(&format!("{}  ../tol.json", "0".repeat(64)));
            fx.gate()
        }),
        row("gate: manifest path is absolute", Refused(&["MANIFEST.sha256", "escapes"]), |fx| {
            fx.add_manifest_line(&format!("{}  /etc/passwd", "0".repeat(64)));
            fx.gate()
        }),
        row("gate: a golden file changed", Refused(&["oracle_f32.safetensors", "sha256 differs"]), |fx| {
            fx.edit_bytes("golden/svf_small/oracle_f32.safetensors", |b| *b.last_mut().unwrap() ^= 1);
            fx.gate()
        }),
        row("gate: a file the manifest does not list", Refused(&["extra.json", "not covered"]), |fx| {
            fx.write("golden/svf_small/extra.json", "{}");
            fx.gate()
        }),
        row("gate: a listed file is gone", Refused(&["NOTE.md", "No such file"]), |fx| {
            std::fs::remove_file(fx.path("golden/svf_small/NOTE.md")).unwrap();
            fx.gate()
        }),
        row("gate: a listed file is a FIFO", Refused(&["NOTE.md", "FIFO"]), |fx| {
            fx.make_fifo("golden/svf_small/NOTE.md");
            fx.gate()
        }),
        row("gate: a listed file is a link out of the golden directory", Refused(&["NOTE.md", "symbolic link"]), |fx| {
            std::fs::remove_file(fx.path("golden/svf_small/NOTE.md")).unwrap();
            std::os::unix::fs::symlink(fx.path("tol.json"), fx.path("golden/svf_small/NOTE.md")).unwrap();
            let hash = parity::format::tensor::sha256_hex(&std::fs::read(fx.path("tol.json")).unwrap());
            let text = std::fs::read_to_string(fx.path("golden/MANIFEST.sha256")).unwrap();
            let text: String = text.lines().map(|l| if l.ends_with("NOTE.md") { format!("{hash}  svf_small/NOTE.md\n") } else { format!("{l}\n") }).collect();
            fx.write("golden/MANIFEST.sha256", text);
            fx.gate()
        }),
        row("gate: a folder that is no case", Refused(&["empty", "no case"]), |fx| {
            std::fs::create_dir(fx.path("golden/empty")).unwrap();
            fx.gate()
        }),
        row("gate: a case without its f64 oracle", Refused(&["oracle_f64.json", "missing"]), |fx| {
            std::fs::remove_file(fx.path("golden/svf_small/oracle_f64.json")).unwrap();
            fx.write_manifest();
            fx.gate()
        }),
        row("gate: a case's oracle report malformed", Refused(&["oracle_f32.json", "malformed JSON"]), |fx| {
            fx.write("golden/svf_small/oracle_f32.json", "{");
            fx.write_manifest();
            fx.gate()
        }),
        row("gate: --case matching nothing", Refused(&["golden", "no golden case"]), |fx| {
            let mut a = fx.gate();
            a.extend(["--case".into(), "nothing_here".into()]);
            a
        }),
        row("gate: the oracle disagrees with parity (a gate failure)", Fails(&["svf_small", "FAIL", "final_f32"]), |fx| {
            // A consistent but wrong oracle: its final_f32 moved by 1.0, its
            // report rehashed, its manifest regenerated.
            let bundle = "golden/svf_small/oracle_f32.safetensors";
            fx.edit_tensors(bundle, |m| {
                let t = m.get_mut("tensor.small_a_weight.final_f32").unwrap();
                let v: Vec<f32> = t.to_f32_vec().iter().map(|x| x + 1.0).collect();
                *t = Tensor::from_f32(t.shape.clone(), &v);
            });
            let sha = Bundle::open(&fx.path(bundle)).unwrap().get("tensor.small_a_weight.final_f32").unwrap().sha256();
            fx.edit_json("golden/svf_small/oracle_f32.json", |v| v["tensors"][0]["stages"]["final_f32"]["sha256"] = sha.into());
            fx.write_manifest();
            fx.gate()
        }),
        // ---- diff: checkpoints and indexes ----
        row("diff: index names a shard that does not exist", Refused(&[INDEX, SHARD2, "does not exist"]), |fx| {
            std::fs::remove_file(fx.path(&format!("ckpt/b/{SHARD2}"))).unwrap();
            fx.diff()
        }),
        row("diff: index shard path escapes", Refused(&[INDEX, "escapes", "no flag permits"]), |fx| {
            fx.edit_json(&format!("ckpt/b/{INDEX}"), |v| v["weight_map"]["model.norm.weight"] = format!("../a/{SHARD2}").into());
            fx.diff()
        }),
        row("diff: index names a tensor its shard lacks", Refused(&[SHARD1, "model.ghost.weight", "absent from this shard"]), |fx| {
            fx.edit_json(&format!("ckpt/b/{INDEX}"), |v| v["weight_map"]["model.ghost.weight"] = SHARD1.into());
            fx.diff()
        }),
        row("diff: index misplaces a tensor", Refused(&[SHARD2, "model.norm.weight", "places it in"]), |fx| {
            fx.edit_json(&format!("ckpt/b/{INDEX}"), |v| v["weight_map"]["model.norm.weight"] = SHARD1.into());
            fx.diff()
        }),
        row("diff: index mapping a tensor twice", Refused(&[INDEX, "weight_map.model.norm.weight' appears twice"]), |fx| {
            fx.edit_bytes(&format!("ckpt/b/{INDEX}"), |b| {
                let text = String::from_utf8(b.clone()).unwrap().replacen("\"weight_map\": {", &format!("\"weight_map\": {{\"model.norm.weight\": \"{SHARD1}\", "), 1);
                *b = text.into_bytes();
            });
            fx.diff()
        }),
        row("diff: a shard tensor the index does not list", Refused(&[SHARD2, "model.norm.weight", "not in"]), |fx| {
            fx.edit_json(&format!("ckpt/b/{INDEX}"), |v| {
                v["weight_map"].as_object_mut().unwrap().remove("model.norm.weight");
            });
            fx.diff()
        }),
        row("diff: a tensor in two shards (no index)", Refused(&["model.embed.weight", "also in"]), |fx| {
            std::fs::remove_file(fx.path(&format!("ckpt/b/{INDEX}"))).unwrap();
            std::fs::copy(fx.path(&format!("ckpt/b/{SHARD1}")), fx.path("ckpt/b/copy.safetensors")).unwrap();
            fx.diff()
        }),
        row("diff: index is not JSON", Refused(&[INDEX, "not JSON"]), |fx| {
            fx.write(&format!("ckpt/b/{INDEX}"), "{ not json");
            fx.diff()
        }),
        row("diff: index without weight_map", Refused(&[INDEX, "weight_map"]), |fx| {
            fx.write(&format!("ckpt/b/{INDEX}"), "{}");
            fx.diff()
        }),
        row("diff: weight_map value not a file name", Refused(&[INDEX, "model.norm.weight", "shard file name"]), |fx| {
            fx.edit_json(&format!("ckpt/b/{INDEX}"), |v| v["weight_map"]["model.norm.weight"] = json!(2));
            fx.diff()
        }),
        row("diff: shard truncated", Refused(&[SHARD2, "model.norm.weight", "truncated"]), |fx| {
            fx.edit_bytes(&format!("ckpt/b/{SHARD2}"), |b| b.truncate(b.len() - 3));
            fx.diff()
        }),
        row("diff: shard header length hostile", Refused(&[SHARD2, "header length"]), |fx| {
            fx.edit_bytes(&format!("ckpt/b/{SHARD2}"), |b| b[..8].copy_from_slice(&u64::MAX.to_le_bytes()));
            fx.diff()
        }),
        row("diff: shard shape product overflows", Refused(&[SHARD2, "model.norm.weight", "overflows"]), |fx| {
            fx.raw_safetensors(&format!("ckpt/b/{SHARD2}"), r#"{"model.norm.weight":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#, 16);
            fx.diff()
        }),
        row("diff: shard dtype unknown", Refused(&[SHARD2, "model.norm.weight", "unknown dtype 'Q4'"]), |fx| {
            fx.raw_safetensors(&format!("ckpt/b/{SHARD2}"), r#"{"model.norm.weight":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}}"#, 16);
            fx.diff()
        }),
        row("diff: shard is a directory", Refused(&[SHARD2, "is a directory"]), |fx| {
            fx.make_dir(&format!("ckpt/b/{SHARD2}"));
            fx.diff()
        }),
        row("diff: shard is a FIFO", Refused(&[SHARD2, "FIFO"]), |fx| {
            fx.make_fifo(&format!("ckpt/b/{SHARD2}"));
            fx.diff()
        }),
        row("diff: checkpoint is a FIFO", Refused(&["model.fifo", "FIFO"]), |fx| {
            fx.make_fifo("model.fifo");
            vec!["diff".into(), fx.arg("ckpt/a"), fx.arg("model.fifo")]
        }),
        row("diff: checkpoint is an empty directory", Refused(&["emptyckpt", "not a checkpoint"]), |fx| {
            std::fs::create_dir(fx.path("emptyckpt")).unwrap();
            vec!["diff".into(), fx.arg("ckpt/a"), fx.arg("emptyckpt")]
        }),
        row("diff: checkpoint does not exist", Refused(&["nowhere", "No such file"]), |fx| vec!["diff".into(), fx.arg("ckpt/a"), fx.arg("nowhere")]),
        row("diff: .npy without the numpy magic", Refused(&["x.npy"]), |fx| {
            fx.write("x.npy", b"not numpy at all, just text");
            vec!["diff".into(), fx.arg("x.npy"), fx.arg("x.npy")]
        }),
        // ---- diff: PyTorch checkpoints (tests/fixtures/pytorch/make_bad.py) ----
        row("diff: .pt whose pickle calls os.system (nothing runs)", Refused(&["exploit.pt", "global 'posix.system' is not allowed"]), |fx| {
            torch_bad(fx, "exploit.pt")
        }),
        row("diff: legacy .pt whose pickle calls os.system", Refused(&["exploit_legacy.pt", "global 'posix.system'"]), |fx| {
            torch_bad(fx, "exploit_legacy.pt")
        }),
        row("diff: .pt with an opcode torch refuses (protocol 4 FRAME)", Refused(&["protocol4.pt", "opcode 0x95"]), |fx| {
            torch_bad(fx, "protocol4.pt")
        }),
        row("diff: .pt zip cut in half", Refused(&["truncated.pt", "truncated"]), |fx| torch_bad(fx, "truncated.pt")),
        row("diff: .pt without its data/0 record", Refused(&["missing_record.pt", "tensor 'w'", "'archive/data/0' is missing"]), |fx| {
            torch_bad(fx, "missing_record.pt")
        }),
        row("diff: .pt with a deflated storage record (refused)", Refused(&["deflated.pt", "tensor 'w'", "compressed"]), |fx| {
            torch_bad(fx, "deflated.pt")
        }),
        row("diff: .pt storage shorter than its tensors need", Refused(&["short_storage.pt", "tensor 'w'", "record holds 8"]), |fx| {
            torch_bad(fx, "short_storage.pt")
        }),
        row("diff: .pt view past its storage", Refused(&["past_storage.pt", "tensor 'w'", "needs 28 bytes"]), |fx| {
            torch_bad(fx, "past_storage.pt")
        }),
        row("diff: .pt stride that overflows", Refused(&["stride_overflow.pt", "tensor 'w'", "overflows"]), |fx| {
            torch_bad(fx, "stride_overflow.pt")
        }),
        row("diff: .pt storage claiming 2^61 elements", Refused(&["huge_storage.pt", "tensor 'w'", "claims"]), |fx| {
            torch_bad(fx, "huge_storage.pt")
        }),
        row("diff: .pt big-endian", Refused(&["big_endian.pt", "little-endian"]), |fx| torch_bad(fx, "big_endian.pt")),
        row("diff: .pt dict key that is a tuple", Refused(&["tuple_key.pt", "tuple key"]), |fx| torch_bad(fx, "tuple_key.pt")),
        row("diff: .pt two tensors one name after flattening", Refused(&["duplicate_name.pt", "tensor 'a.b'", "two tensors"]), |fx| {
            torch_bad(fx, "duplicate_name.pt")
        }),
        row("diff: .pt nested 300 lists deep", Refused(&["deep.pt", "nested deeper than 256"]), |fx| torch_bad(fx, "deep.pt")),
        row("diff: legacy .pt cut inside a storage", Refused(&["legacy.pt", "truncated"]), |fx| {
            std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/golden/pytorch_legacy/model.pt"), fx.path("legacy.pt")).unwrap();
            fx.edit_bytes("legacy.pt", |b| b.truncate(b.len() - 100));
            vec!["diff".into(), fx.arg("legacy.pt"), fx.arg("ckpt/a")]
        }),
        row("diff: pytorch_model.bin.index.json naming a missing shard", Refused(&["pytorch_model.bin.index.json", "tensor 'w'", "does not exist"]), |fx| {
            std::fs::create_dir_all(fx.path("bin")).unwrap();
            fx.write("bin/pytorch_model.bin.index.json", r#"{"weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}"#);
            vec!["diff".into(), fx.arg("bin"), fx.arg("ckpt/a")]
        }),
        // ---- diff: GGUF headers (issue 25) ----
        row("diff: GGUF version 1", Refused(&["m.gguf", "GGUF version 1"]), |fx| {
            gguf_bad(fx, Gguf { version: 1, ..Gguf::ok() })
        }),
        row("diff: GGUF tensor count past the end", Refused(&["m.gguf", "tensors claimed"]), |fx| {
            gguf_bad(fx, Gguf { count: Some(u64::MAX / 2), ..Gguf::ok() })
        }),
        row("diff: GGUF string length past the end", Refused(&["m.gguf", "are left"]), |fx| {
            gguf_bad(fx, Gguf { key_len: Some(1 << 40), ..Gguf::ok() })
        }),
        row("diff: GGUF unknown metadata value type", Refused(&["m.gguf", "unknown metadata value type 13"]), |fx| {
            gguf_bad(fx, Gguf { kv_type: 13, ..Gguf::ok() })
        }),
        row("diff: GGUF unknown ggml type id", Refused(&["m.gguf", "tensor 'w'", "unknown ggml type id 99"]), |fx| {
            gguf_bad(fx, Gguf { ty: 99, ..Gguf::ok() })
        }),
        row("diff: GGUF type parity does not dequantize (IQ2_XXS)", Refused(&["m.gguf", "tensor 'w'", "IQ2_XXS"]), |fx| {
            gguf_bad(fx, Gguf { ty: 16, ne: vec![256, 1], ..Gguf::ok() })
        }),
        row("diff: GGUF misaligned data offset", Refused(&["m.gguf", "tensor 'w'", "not a multiple of the alignment"]), |fx| {
            gguf_bad(fx, Gguf { offset: 4, ..Gguf::ok() })
        }),
        row("diff: GGUF data offset past the end", Refused(&["m.gguf", "tensor 'w'", "past the end"]), |fx| {
            gguf_bad(fx, Gguf { offset: 1 << 20, ..Gguf::ok() })
        }),
        row("diff: GGUF tensor of 5 dimensions", Refused(&["m.gguf", "tensor 'w'", "5 dimensions"]), |fx| {
            gguf_bad(fx, Gguf { ne: vec![32, 1, 1, 1, 1], ..Gguf::ok() })
        }),
        row("diff: GGUF dimensions whose product overflows", Refused(&["m.gguf", "tensor 'w'", "overflow"]), |fx| {
            gguf_bad(fx, Gguf { ne: vec![1 << 40, 1 << 40], ..Gguf::ok() })
        }),
        row("diff: GGUF rows not whole Q8_0 blocks", Refused(&["m.gguf", "tensor 'w'", "blocks"]), |fx| {
            gguf_bad(fx, Gguf { ty: 8, ne: vec![33, 1], ..Gguf::ok() })
        }),
        row("diff: GGUF two tensors with one name", Refused(&["m.gguf", "tensor 'w'", "two tensors"]), |fx| {
            gguf_bad(fx, Gguf { twice: true, ..Gguf::ok() })
        }),
        row("diff: GGUF cut inside its header", Refused(&["m.gguf", "truncated"]), |fx| {
            gguf_bad(fx, Gguf { cut: Some(40), ..Gguf::ok() })
        }),
        row("diff --map-preset llama: the GGUF lacks the head count", Refused(&["m.gguf", "tensor 'blk.0.attn_q.weight'", "head count"]), |fx| {
            gguf_bad(fx, Gguf { name: "blk.0.attn_q.weight", ne: vec![32, 4], ..Gguf::ok() });
            vec!["diff".into(), fx.arg("ckpt/a"), fx.arg("m.gguf"), "--map-preset".into(), "llama".into()]
        }),
        row("diff --map-preset that does not exist", Refused(&["--map-preset gpt9", "known: llama"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--map-preset".into(), "gpt9".into()]);
            a
        }),
        row("diff --map-file that is not a name map", Refused(&["tol.json", "parity.name_map.v1"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--map-file".into(), fx.arg("tol.json")]);
            a
        }),
        row("diff --tolerances without a tensors section", Refused(&["tol.json", "\"tensors\""]), |fx| {
            let mut a = fx.diff();
            a.extend(["--tolerances".into(), fx.arg("tol.json")]);
            a
        }),
        row("diff --map with an invalid regex", Refused(&["--map", "invalid regex"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--map".into(), "([=x".into()]);
            a
        }),
        row("diff --layers backwards", Refused(&["--layers"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--layers".into(), "4..2".into()]);
            a
        }),
        row("diff --partition out of range", Refused(&["--partition"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--partition".into(), "0/3".into()]);
            a
        }),
        row("diff --top-diffs with a format that does not list them", Refused(&["--top-diffs", "--format json"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--top-diffs".into(), "3".into()]);
            a
        }),
        row("diff --output is a directory", Refused(&["outdir"]), |fx| {
            fx.make_dir("outdir");
            let mut a = fx.diff();
            a.extend(["--output".into(), fx.arg("outdir")]);
            a
        }),
        // ---- apply: plans and manifests ----
        row("apply: plan does not exist", Refused(&["noplan.yaml", "No such file"]), |fx| vec!["apply".into(), fx.arg("ckpt/noplan.yaml")]),
        row("apply: plan is a directory", Refused(&["plandir"]), |fx| {
            fx.make_dir("ckpt/plandir");
            vec!["apply".into(), fx.arg("ckpt/plandir")]
        }),
        row("apply: plan is a FIFO", Refused(&["plan.yaml", "FIFO"]), |fx| {
            std::fs::remove_file(fx.path("ckpt/plan.yaml")).unwrap();
            fx.make_fifo("ckpt/plan.yaml");
            fx.apply(&[])
        }),
        row("apply: plan is not YAML", Refused(&["plan.yaml", "not YAML"]), |fx| {
            fx.write("ckpt/plan.yaml", "schema: parity.plan.v1\nsteps: [\n");
            fx.apply(&[])
        }),
        row("apply: plan of another schema", Refused(&["plan.yaml", "parity.plan.v2"]), |fx| {
            fx.write("ckpt/plan.yaml", PLAN.replace("parity.plan.v1", "parity.plan.v2"));
            fx.apply(&[])
        }),
        row("apply: plan with an unknown key", Refused(&["plan.yaml", "bogus"]), |fx| {
            fx.plan_steps("  - {id: d, operation: delete, target: {match: model.norm.weight}, bogus: 1}\n")
        }),
        row("apply: unknown operation", Refused(&["plan.yaml", "step 'x'", "unknown operation 'scal'"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scal, target: {match: model.norm.weight}, inputs: {x: 'base:{name}'}}\n")
        }),
        row("apply: unknown parameter", Refused(&["plan.yaml", "step 'x'", "parameter 'factr'"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'base:{name}'}, params: {factr: 2}}\n")
        }),
        row("apply: parameter of the wrong type", Refused(&["plan.yaml", "step 'x'", "factor"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'base:{name}'}, params: {factor: two}}\n")
        }),
        row("apply: target matching nothing", Refused(&["step 'x'", "matches no tensor"]), |fx| {
            fx.plan_steps("  - {id: x, operation: delete, target: {match: 'model.nothing.*'}}\n")
        }),
        row("apply: regex target that does not compile", Refused(&["step 'x'", "re:"]), |fx| {
            fx.plan_steps("  - {id: x, operation: delete, target: {match: 're:model.(('}}\n")
        }),
        row("apply: layers range backwards", Refused(&["step 'x'", "layers"]), |fx| {
            fx.plan_steps("  - {id: x, operation: delete, target: {layers: '3..1', match: 'model.layers.*.mlp.up_proj.weight'}}\n")
        }),
        row("apply: template naming a missing tensor", Refused(&["step 'x'", "model.norm.weight.missing", "no such tensor"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'base:{name}.missing'}, params: {factor: 2}}\n")
        }),
        row("apply: template naming an unknown input", Refused(&["step 'x'", "no input named 'nowhere'"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'nowhere:{name}'}, params: {factor: 2}}\n")
        }),
        row("apply: duplicate step ids", Refused(&["step 'd'", "duplicate step id"]), |fx| {
            fx.plan_steps("  - {id: d, operation: delete, target: {match: model.norm.weight}}\n  - {id: d, operation: delete, target: {match: model.embed.weight}}\n")
        }),
        row("apply: JSON plan holding a key twice", Refused(&["plan.json", "key 'schema' appears twice"]), |fx| {
            fx.write("ckpt/plan.json", r#"{"schema": "parity.plan.v1", "schema": "parity.plan.v1", "inputs": {"base": "a/"}, "steps": []}"#);
            vec!["apply".into(), fx.arg("ckpt/plan.json")]
        }),
        row("apply: input path escaping the plan's directory", Refused(&["plan.yaml", "escapes"]), |fx| {
            fx.write("ckpt/plan.yaml", PLAN.replace("other: b/", "other: ../golden/svf_small/components.safetensors"));
            fx.apply(&[])
        }),
        row("apply: input checkpoint missing", Refused(&["nothere"]), |fx| {
            fx.write("ckpt/plan.yaml", PLAN.replace("other: b/", "other: nothere/"));
            fx.apply(&[])
        }),
        row("apply: input index names a missing shard", Refused(&[INDEX, SHARD2]), |fx| {
            std::fs::remove_file(fx.path(&format!("ckpt/a/{SHARD2}"))).unwrap();
            fx.apply(&[])
        }),
        row("apply: expectation on shape fails from headers", Fails(&["norm_ok"]), |fx| {
            fx.write("ckpt/plan.yaml", PLAN.replace("shape: [4]", "shape: [5]"));
            fx.apply(&["--dry-run"])
        }),
        row("apply: --out is a file", Refused(&["afile", "not a directory"]), |fx| {
            fx.write("ckpt/afile", "x");
            fx.apply(&["--out", &fx.arg("ckpt/afile")])
        }),
        row("apply: corrupt manifest in the output", Refused(&["manifest.json", "--force"]), |fx| {
            fx.make_dir("ckpt/out");
            fx.write("ckpt/out/manifest.json", "{ corrupt");
            fx.apply(&[])
        }),
        row("apply: manifest of another schema", Refused(&["manifest.json"]), |fx| {
            fx.make_dir("ckpt/out");
            fx.write("ckpt/out/manifest.json", r#"{"schema": "parity.manifest.v9"}"#);
            fx.apply(&[])
        }),
        row("apply: --impl unknown", Refused(&["--impl"]), |fx| fx.apply(&["--impl", "fastest"])),
        // ---- outputs that would land on an input (issue 22, defects 1 and 3) ----
        row("diff --output is a shard of the right checkpoint", Refused(&[SHARD1, "the right checkpoint", "an input of this run"]), |fx| {
            let mut a = fx.diff();
            a.extend(["--output".into(), fx.arg(&format!("ckpt/b/{SHARD1}"))]);
            a
        }),
        row("diff --output is a symbolic link to the left index", Refused(&["link.json", "the left checkpoint", INDEX]), |fx| {
            std::os::unix::fs::symlink(fx.path(&format!("ckpt/a/{INDEX}")), fx.path("link.json")).unwrap();
            let mut a = fx.diff();
            a.extend(["--output".into(), fx.arg("link.json")]);
            a
        }),
        row("diff --output is a hard link to a left shard", Refused(&["hard.json", "the left checkpoint", SHARD2]), |fx| {
            std::fs::hard_link(fx.path(&format!("ckpt/a/{SHARD2}")), fx.path("hard.json")).unwrap();
            let mut a = fx.diff();
            a.extend(["--output".into(), fx.arg("hard.json")]);
            a
        }),
        row("diff --output is the tolerance profile", Refused(&["tol.json", "the tolerance profile"]), |fx| {
            fx.write("tol.json", r#"{"schema": "parity.tolerances.v1", "tensors": {"*": {"max_abs": 0}}}"#);
            let mut a = fx.diff();
            a.extend(["--tolerances".into(), fx.arg("tol.json"), "--output".into(), fx.arg("tol.json")]);
            a
        }),
        row("inspect --output is the checkpoint inspected", Refused(&[SHARD1, "an input of this run"]), |fx| {
            let f = fx.arg(&format!("ckpt/a/{SHARD1}"));
            vec!["inspect".into(), f.clone(), "--output".into(), f]
        }),
        row("inspect --output is the inspected report's bundle", Refused(&["right.safetensors", "stage bundle"]), |fx| {
            vec!["inspect".into(), fx.arg("right.json"), "--output".into(), fx.arg("right.safetensors")]
        }),
        row("check --output is the right report", Refused(&["right.json", "the right report"]), |fx| fx.check(&["--output", &fx.arg("right.json")])),
        row("check --output is the left report's bundle", Refused(&["left.safetensors", "stage bundle"]), |fx| fx.check(&["--output", &fx.arg("left.safetensors")])),
        row("check --output is the reports' components", Refused(&["components.safetensors", "components"]), |fx| fx.check(&["--output", &fx.arg("components.safetensors")])),
        row("check --suggest-tolerances is the tolerance profile", Refused(&["tol.json", "the tolerance profile"]), |fx| {
            let tol = fx.arg("tol.json");
            fx.check(&["--tolerances", &tol, "--suggest-tolerances", &tol])
        }),
        row("check --suggest-tolerances and --output are one file", Refused(&["same.json", "--output and --suggest-tolerances"]), |fx| {
            let same = fx.arg("same.json");
            fx.check(&["--output", &same, "--suggest-tolerances", &same])
        }),
        row("merge-results --output is one of the parts", Refused(&["part.json", "a partition's result"]), |fx| {
            fx.write("part.json", "{}");
            vec!["merge-results".into(), fx.arg("part.json"), "--output".into(), fx.arg("part.json")]
        }),
        row("apply: a single-file base inside the output directory", Refused(&[SHARD1, "plan input 'base'", "never writes over its input"]), |fx| {
            fx.write("ckpt/plan.yaml", format!("schema: parity.plan.v1\ninputs: {{base: a/{SHARD1}}}\noutput: {{path: a/, layout: single}}\nsteps: []\n"));
            fx.apply(&[])
        }),
        row("apply: the base is a symbolic link into the output directory", Refused(&["model.safetensors", "plan input 'base'"]), |fx| {
            std::fs::create_dir_all(fx.path("ckpt/out")).unwrap();
            std::fs::copy(fx.path(&format!("ckpt/a/{SHARD1}")), fx.path("ckpt/out/model.safetensors")).unwrap();
            std::os::unix::fs::symlink(fx.path("ckpt/out/model.safetensors"), fx.path("ckpt/base.safetensors")).unwrap();
            fx.write("ckpt/plan.yaml", "schema: parity.plan.v1\ninputs: {base: base.safetensors}\noutput: {path: out/, layout: single}\nsteps: []\n");
            fx.apply(&[])
        }),
        row("apply: the output directory holds a hard link to the base", Refused(&["model.safetensors", "plan input 'base'"]), |fx| {
            std::fs::create_dir_all(fx.path("ckpt/out")).unwrap();
            std::fs::hard_link(fx.path(&format!("ckpt/a/{SHARD1}")), fx.path("ckpt/out/model.safetensors")).unwrap();
            fx.write("ckpt/plan.yaml", format!("schema: parity.plan.v1\ninputs: {{base: a/{SHARD1}}}\noutput: {{path: out/, layout: single}}\nsteps: []\n"));
            fx.apply(&[])
        }),
        row("apply --save-stages is a shard of the base", Refused(&[SHARD2, "plan input 'base'"]), |fx| fx.apply(&["--save-stages", &fx.arg(&format!("ckpt/a/{SHARD2}"))])),
        // ---- apply: checks a dry run makes (issue 22, defects 5, 7, 8) ----
        row("apply --dry-run: an operation reaching an I64 tensor", Refused(&["plan.yaml", "step 'x'", "model.norm.weight", "I64", "F64, F32, F16 or BF16"]), |fx| {
            fx.edit_tensors(&format!("ckpt/a/{SHARD2}"), |m| {
                m.insert("model.norm.weight".into(), Tensor::from_i64(vec![4], &[0, 1, 2, 3]));
            });
            fx.plan_steps("  - {id: x, operation: cast, target: {match: 'model.*'}, inputs: {x: 'base:{name}'}, params: {to: BF16}}\n");
            fx.apply(&["--dry-run"])
        }),
        row("apply: scale of an I64 tensor", Refused(&["plan.yaml", "step 'x'", "I64", "a float dtype"]), |fx| {
            fx.edit_tensors(&format!("ckpt/a/{SHARD2}"), |m| {
                m.insert("model.norm.weight".into(), Tensor::from_i64(vec![4], &[0, 1, 2, 3]));
            });
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'base:{name}'}, params: {factor: 2.0}}\n");
            fx.apply(&[])
        }),
        row("apply: YAML plan holding a key twice", Refused(&["plan.yaml", "factor", "appears twice"]), |fx| {
            fx.plan_steps("  - {id: x, operation: scale, target: {match: model.norm.weight}, inputs: {x: 'base:{name}'}, params: {factor: 2.0, factor: 3.0}}\n")
        }),
        row("apply --stages naming no stage of the plan", Refused(&["--stages", "bogus", "output"]), |fx| fx.apply(&["--save-stages", &fx.arg("r.json"), "--stages", "bogus"])),
        row("apply --stages without --save-stages", Refused(&["--save-stages"]), |fx| fx.apply(&["--stages", "output"])),
        // ---- inspect: combinations it cannot honour (defects 6 and 12) ----
        row("inspect --headers --check", Refused(&["--headers", "--check"]), |fx| {
            vec!["inspect".into(), fx.arg("ckpt/a"), "--headers".into(), "--check".into(), "finite".into()]
        }),
        row("inspect --format junit", Refused(&["inspect", "junit"]), |fx| vec!["inspect".into(), fx.arg("ckpt/a"), "--format".into(), "junit".into()]),
        row("inspect --format html", Refused(&["inspect", "html"]), |fx| vec!["inspect".into(), fx.arg("ckpt/a"), "--format".into(), "html".into()]),
    ]
}

#[test]
fn every_bad_input_is_one_line_exit_2_no_panic_and_touches_nothing() {
    let rows = rows();
    let classes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.class).collect();
    assert_eq!(classes.len(), rows.len(), "each class once");
    assert!(rows.len() >= 60, "{} classes", rows.len());
    // Rows are independent (each spoils its own copy): run them two at a time.
    let check = |part: &[Row]| -> Vec<String> {
        part.iter().filter_map(|r| run_row(r).err().map(|e| format!("{}: {e}", r.class))).collect()
    };
    let (first, second) = rows.split_at(rows.len() / 2);
    let failures: Vec<String> = std::thread::scope(|s| {
        let other = s.spawn(|| check(second));
        let mut f = check(first);
        f.extend(other.join().unwrap());
        f
    });
    assert!(failures.is_empty(), "{} of {} classes misbehave:\n\n{}", failures.len(), rows.len(), failures.join("\n\n"));
}

/// The fixture itself is valid: each row's failure comes from its spoil.
#[test]
fn the_unspoiled_fixture_passes_every_command() {
    let fx = Fx::new();
    let run = |args: Vec<String>| {
        let out = Command::new(env!("CARGO_BIN_EXE_parity")).args(&args).current_dir(fx.dir.path()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let tol = fx.arg("tol.json");
    for args in [
        fx.check(&["--strict-stage-tolerances", "--strict-hash", "--verify-hashes", "--tolerances", &tol]),
        fx.gate(),
        fx.diff(),
        fx.replay(&[]),
        fx.apply(&["--dry-run"]),
        fx.apply(&[]),
    ] {
        let (code, stderr) = run(args.clone());
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
}
