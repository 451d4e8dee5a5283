//! `parity apply` (SPEC §11): every step kind, templating, layers, each
//! layout, deterministic bytes whatever the thread count, resume, force, a
//! kill at any moment, a second apply refused, and bad plans.

use parity::apply::{apply, ApplyOptions};
use parity::format::checkpoint::Checkpoint;
use parity::format::tensor::Tensor;
use parity::ops::Implementation;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod checkpoint_support;
use checkpoint_support::{write_file, write_sharded, Model};

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v)
}

fn ramp(n: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - n as f32 / 2.0) * scale + offset).collect()
}


/// A small model: three layers of a weight, a bias and a norm, an embedding.
fn model(n: usize) -> Model {
    let mut m = Model::new();
    m.insert("model.embed_tokens.weight".into(), f32t(&[8, n], &ramp(8 * n, 0.01, 0.0)));
    for l in 0..3 {
        m.insert(format!("model.layers.{l}.mlp.up_proj.weight"), f32t(&[n, n], &ramp(n * n, 0.001 * (l + 1) as f32, 0.0)));
        m.insert(format!("model.layers.{l}.mlp.up_proj.bias"), f32t(&[n], &ramp(n, 0.1, 0.5)));
        m.insert(format!("model.layers.{l}.norm.weight"), f32t(&[n], &vec![1.0; n]));
    }
    m
}

/// A plan directory: `base/` (two shards), `extra.safetensors`, the plan.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(plan: &str) -> Case {
        Case::with_model(plan, &model(8))
    }
    fn with_model(plan: &str, m: &Model) -> Case {
        let dir = tempfile::tempdir().unwrap();
        write_sharded(&dir.path().join("base"), m, 2);
        let mut extra = Model::new();
        extra.insert("lm_head.weight".into(), f32t(&[8, 8], &ramp(64, 0.5, 0.0)));
        extra.insert("model.embed_tokens.weight".into(), f32t(&[2], &[9.0, 9.0]));
        write_file(&dir.path().join("extra.safetensors"), &extra);
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Case { dir }
    }
    fn plan(&self) -> PathBuf {
        self.dir.path().join("plan.yaml")
    }
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn run(&self, opts: ApplyOptions) -> parity::apply::ApplyOutcome {
        apply(&self.plan(), &ApplyOptions { out: Some(self.out()), ..opts }).unwrap_or_else(|e| panic!("apply: {e}"))
    }
    fn output(&self) -> Checkpoint {
        Checkpoint::open(&self.out()).unwrap()
    }
}

fn read(ck: &Checkpoint, name: &str) -> Tensor {
    let loc = ck.get(name).unwrap_or_else(|| panic!("{name} not in the output"));
    let mut bytes = vec![0u8; loc.len];
    ck.region(loc).read_at(0, &mut bytes).unwrap();
    Tensor::from_bytes(loc.dtype, loc.shape.clone(), bytes)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
        }
    }
    out
}

const HEAD: &str = "schema: parity.plan.v1\ninputs: {base: base/, extra: extra.safetensors}\noutput: {path: out/, shard_size: 300}\n";

#[test]
fn every_step_kind_does_what_the_spec_says() {
    let plan = format!(
        "{HEAD}steps:
  - id: halve
    operation: scale
    target: {{match: model.layers.0.mlp.up_proj.bias}}
    inputs: {{x: 'base:{{name}}'}}
    params: {{factor: 0.5}}
  - id: to_bf16
    operation: cast
    target: {{match: 'model.layers.*.norm.weight', layers: '1..3'}}
    inputs: {{x: 'base:{{name}}'}}
    params: {{to: BF16}}
    expect: {{dtype: BF16, shape: [8]}}
  - id: backup
    operation: copy
    target: {{match: 're:model\\.layers\\.2\\.mlp\\.up_proj\\.weight'}}
    output: 'backup.{{layer}}.{{key}}'
  - id: move
    operation: rename
    target: {{match: model.layers.1.mlp.up_proj.bias}}
    output: 'model.layers.1.mlp.up_proj.bias_renamed'
  - id: drop
    operation: delete
    target: {{match: model.layers.2.mlp.up_proj.bias}}
  - id: take
    operation: merge_missing
    inputs: {{extra: extra}}
  - id: twice
    operation: add
    target: {{match: model.layers.0.mlp.up_proj.bias}}
    inputs: {{a: 'base:{{name}}', b: 'base:{{name}}'}}
  - id: checks
    assert: {{match: 'model.layers.*.norm.weight', count: 3, finite: true}}
  - id: gone
    assert: {{match: model.layers.2.mlp.up_proj.bias, exists: false}}
  - id: same
    assert: {{match: backup.2.model_layers_2_mlp_up_proj_weight, equal: {{to: 'base:model.layers.2.mlp.up_proj.weight', max_abs: 0}}}}
"
    );
    let case = Case::new(&plan);
    let o = case.run(ApplyOptions::default());
    assert!(o.failure.is_none(), "{:?}", o.failure);
    let out = case.output();
    let m = model(8);
    // scale, then add reading the scaled value: a later step sees earlier results.
    let b0: Vec<f32> = m["model.layers.0.mlp.up_proj.bias"].to_f32_vec().iter().map(|x| x * 0.5 + x * 0.5).collect();
    assert_eq!(read(&out, "model.layers.0.mlp.up_proj.bias").to_f32_vec(), b0);
    assert_eq!(read(&out, "model.layers.0.norm.weight").dtype, parity::format::dtype::DType::F32, "layers 1..3 only");
    assert_eq!(read(&out, "model.layers.1.norm.weight").dtype, parity::format::dtype::DType::BF16);
    assert_eq!(read(&out, "backup.2.model_layers_2_mlp_up_proj_weight").data, m["model.layers.2.mlp.up_proj.weight"].data);
    assert!(out.get("model.layers.1.mlp.up_proj.bias").is_none());
    assert_eq!(read(&out, "model.layers.1.mlp.up_proj.bias_renamed").data, m["model.layers.1.mlp.up_proj.bias"].data);
    assert!(out.get("model.layers.2.mlp.up_proj.bias").is_none());
    assert!(out.get("lm_head.weight").is_some(), "merge_missing takes what the model lacks");
    assert_eq!(read(&out, "model.embed_tokens.weight").shape, vec![8, 8], "the model wins on overlap");
    // Untouched tensors are copied byte for byte.
    assert_eq!(read(&out, "model.layers.2.mlp.up_proj.weight").data, m["model.layers.2.mlp.up_proj.weight"].data);
    // The layout: shards of at most ~300 bytes, an index with total_size, config copied.
    let f = files(&case.out());
    assert!(f.keys().filter(|k| k.ends_with(".safetensors")).count() > 3, "{:?}", f.keys());
    let index: serde_json::Value = serde_json::from_slice(&f["model.safetensors.index.json"]).unwrap();
    assert_eq!(index["metadata"]["total_size"].as_u64().unwrap(), out.total_bytes());
    assert_eq!(f["config.json"], b"{\"model_type\": \"test\"}\n");
    // The manifest: every (step, tensor) with a status and every file's sha256.
    let manifest: serde_json::Value = serde_json::from_slice(&f["manifest.json"]).unwrap();
    assert_eq!(manifest["schema"], "parity.manifest.v1");
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["implementation"], "fast");
    let actions = manifest["actions"].as_array().unwrap();
    let halve = actions.iter().find(|a| a["step"] == "halve").unwrap();
    assert_eq!(halve["status"], "applied");
    assert_eq!(halve["sha256"].as_str().unwrap().len(), 64);
    for file in manifest["files"].as_array().unwrap() {
        let bytes = &f[file["path"].as_str().unwrap()];
        assert_eq!(file["sha256"], parity::format::tensor::sha256_hex(bytes));
    }
}

#[test]
fn svf_apply_runs_from_components_with_final_shape_from_the_target() {
    let sample = (parity::ops::svf_apply::SVF_APPLY.sample)(5, &[8, 8, 8]);
    let mut m = model(8);
    m.insert("model.layers.0.mlp.up_proj.weight".into(), sample.inputs["source"].clone());
    let case = Case::with_model(
        "schema: parity.plan.v1
inputs: {base: base, svf: svf.safetensors}
steps:
  - id: svf
    operation: svf_apply
    target: {match: model.layers.0.mlp.up_proj.weight}
    inputs: {source: 'base:{name}', u: 'svf:tensor.{key}.u', s: 'svf:tensor.{key}.s', v: 'svf:tensor.{key}.v', offsets: 'svf:tensor.{key}.offsets'}
    expect: {dtype: BF16, shape: [8, 8]}
",
        &m,
    );
    let key = "model_layers_0_mlp_up_proj_weight";
    let comps: Model = ["u", "s", "v", "offsets"].iter().map(|x| (format!("tensor.{key}.{x}"), sample.inputs[*x].clone())).collect();
    write_file(&case.dir.path().join("svf.safetensors"), &comps);
    let dry = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), dry_run: true, ..ApplyOptions::default() }).unwrap();
    assert_eq!(dry.rows[0].shape.as_deref(), Some(&[8usize, 8][..]));
    assert!(!case.out().exists(), "a dry run writes nothing");
    let stages = case.dir.path().join("stages.json");
    case.run(ApplyOptions { save_stages: Some(stages.clone()), ..ApplyOptions::default() });
    let direct = parity::ops::svf_apply::SVF_APPLY
        .run(Implementation::Fast, "w", &sample.inputs, &serde_json::json!({"final_shape": [8, 8]}).as_object().unwrap().clone())
        .unwrap();
    assert_eq!(read(&case.output(), "model.layers.0.mlp.up_proj.weight").data, direct.get("final_bf16").unwrap().data);
    // The stage report: one tensor STEP/NAME with the resolved params.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&stages).unwrap()).unwrap();
    assert_eq!(report["tensors"][0]["name"], "svf/model.layers.0.mlp.up_proj.weight");
    assert_eq!(report["tensors"][0]["params"]["final_shape"], serde_json::json!([8, 8]));
    let checked = parity::check::check(&stages, &stages, &parity::check::CheckOptions::default()).unwrap();
    assert_eq!(checked.tensors[0].stages.len(), 10);
}

#[test]
fn output_bytes_do_not_depend_on_threads_or_a_rerun() {
    let plan = format!("{HEAD}steps:\n  - id: s\n    operation: scale\n    target: {{match: 'model.layers.*.mlp.up_proj.weight'}}\n    inputs: {{x: 'base:{{name}}'}}\n    params: {{factor: 3.0}}\n");
    let case = Case::with_model(&plan, &model(64));
    let run = |threads: &str, out: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_parity"))
            .args(["apply", case.plan().to_str().unwrap(), "--out", out.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (a, b) = (case.dir.path().join("a"), case.dir.path().join("b"));
    run("1", &a);
    run("2", &b);
    assert_eq!(files(&a), files(&b));
    // A rerun skips everything and changes nothing.
    run("2", &a);
    assert_eq!(files(&a), files(&b));
    // A single-file layout holds the same tensors.
    std::fs::write(case.plan(), plan.replace("output: {path: out/, shard_size: 300}", "output: {path: out/, layout: single}")).unwrap();
    let single = case.dir.path().join("single");
    run("2", &single);
    assert!(single.join("model.safetensors").is_file() && !single.join("model.safetensors.index.json").exists());
    let o = parity::diff::diff(&a, &single, &parity::diff::DiffOptions::default()).unwrap();
    assert!(o.tensors.iter().all(|t| t.status == parity::diff::outcome::Status::Identical));
}

#[test]
fn a_changed_output_is_an_error_unless_force() {
    let plan = format!("{HEAD}steps:\n  - id: s\n    operation: scale\n    target: {{match: model.layers.0.mlp.up_proj.bias}}\n    inputs: {{x: 'base:{{name}}'}}\n    params: {{factor: 2.0}}\n");
    let case = Case::new(&plan);
    case.run(ApplyOptions::default());
    let before = files(&case.out());
    let shard = case.out().join(before.keys().find(|k| k.starts_with("model-0")).unwrap());
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, &bytes).unwrap();
    let err = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), ..ApplyOptions::default() }).unwrap_err();
    assert!(matches!(err, parity::Error::HashMismatch { .. }), "{err}");
    case.run(ApplyOptions { force: true, ..ApplyOptions::default() });
    assert_eq!(files(&case.out()), before);
    // A manifest of another plan is refused too.
    std::fs::write(case.plan(), plan.replace("factor: 2.0", "factor: 4.0")).unwrap();
    let err = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), ..ApplyOptions::default() }).unwrap_err().to_string();
    assert!(err.contains("manifest.json") && err.contains("another plan"), "{err}");
}

#[test]
fn a_run_killed_at_any_moment_reruns_to_the_same_bytes() {
    // Enough work that a kill lands inside it: 40 tensors of 256 KiB, scaled and cast.
    let mut m = Model::new();
    for l in 0..40 {
        m.insert(format!("model.layers.{l}.w"), f32t(&[256, 256], &ramp(65536, 1e-4, l as f32)));
    }
    let plan = "schema: parity.plan.v1\ninputs: {base: base}\noutput: {path: out/, shard_size: 1MiB}\nsteps:
  - {id: s, operation: scale, target: {match: 'model.layers.*.w'}, inputs: {x: 'base:{name}'}, params: {factor: 0.5}}
  - {id: c, operation: cast, target: {match: 'model.layers.*.w', layers: '0..20'}, inputs: {x: 'base:{name}'}, params: {to: BF16}}
";
    let case = Case::with_model(plan, &m);
    let reference = case.dir.path().join("reference");
    let bin = env!("CARGO_BIN_EXE_parity");
    let st = Command::new(bin).args(["apply", case.plan().to_str().unwrap(), "--out", reference.to_str().unwrap()]).output().unwrap();
    assert!(st.status.success());
    let want = files(&reference);
    let mut rng = parity::numeric::rng::SplitMix64::new(2026);
    for trial in 0..20 {
        let out = case.dir.path().join(format!("killed{trial}"));
        let mut child = Command::new(bin)
            .args(["apply", case.plan().to_str().unwrap(), "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = (rng.uniform() * 250.0) as u64;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever stands under a final name is whole: every shard the index
        // names opens and validates.
        if out.join("model.safetensors.index.json").exists() {
            Checkpoint::open(&out).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        }
        if out.join("manifest.json").exists() {
            let _: parity::format::manifest::Manifest = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        }
        let st = Command::new(bin).args(["apply", case.plan().to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
        assert!(st.status.success(), "trial {trial} (killed after {delay} ms): {}", String::from_utf8_lossy(&st.stderr));
        let got = files(&out);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "trial {trial}: no temporary survives the rerun");
        assert!(got == want, "trial {trial} (killed after {delay} ms): different bytes");
        assert!(!out.join(".parity-apply").exists(), "trial {trial}: the work files are gone");
    }
}

#[test]
fn a_second_apply_into_the_same_output_is_refused() {
    let plan = format!("{HEAD}steps:\n  - id: s\n    operation: delete\n    target: {{match: model.layers.0.norm.weight}}\n");
    let case = Case::new(&plan);
    std::fs::create_dir_all(case.out()).unwrap();
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(case.out().join(".parity-apply.lock")).unwrap();
    lock.lock().unwrap();
    let err = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), ..ApplyOptions::default() }).unwrap_err().to_string();
    assert!(err.contains("another parity apply"), "{err}");
    drop(lock);
    case.run(ApplyOptions::default());
}

#[test]
fn failed_asserts_and_expectations_exit_1_naming_the_step() {
    for (step, needle) in [
        ("assert: {match: 'model.layers.*.norm.weight', count: 2}", "matches 3 tensor(s), expected 2"),
        ("assert: {match: model.embed_tokens.weight, shape: [4, 4]}", "expected [4, 4]"),
        ("assert: {match: model.embed_tokens.weight, dtype: BF16}", "expected BF16"),
        ("assert: {match: model.layers.0.norm.weight, iszero: true}", "iszero is false"),
        ("assert: {match: model.nothing, exists: true}", "matches no tensor"),
        ("assert: {match: model.layers.0.norm.weight, equal: {to: 'base:model.layers.0.mlp.up_proj.bias', max_abs: 0.01}}", "max |diff|"),
        ("operation: cast\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'base:{name}'}\n    params: {to: F16}\n    expect: {dtype: BF16}", "expect: dtype F16, expected BF16"),
        ("operation: scale\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'base:{name}'}\n    params: {factor: 2}\n    expect: {sha256: '00'}", "expect: sha256"),
    ] {
        let case = Case::new(&format!("{HEAD}steps:\n  - id: the_step\n    {step}\n"));
        let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(["apply", case.plan().to_str().unwrap()]).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{step}: {stdout}{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout.contains("FAIL: step 'the_step'") && stdout.contains(needle), "{step}: {stdout}");
        assert!(!case.out().join("manifest.json").exists() || !stdout.contains("wrote"), "{step}");
    }
}

fn refused(plan: &str, extra_args: &[&str], needles: &[&str]) {
    let case = Case::new(plan);
    let mut args = vec!["apply".to_string(), case.plan().to_str().unwrap().to_string()];
    args.extend(extra_args.iter().map(|a| a.replace("{dir}", case.dir.path().to_str().unwrap())));
    let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{plan}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} missing from {stderr}");
    }
    let outputs: Vec<String> = files(case.dir.path()).into_keys().filter(|k| !matches!(k.as_str(), "plan.yaml" | "extra.safetensors")).collect();
    assert!(outputs.is_empty() && !case.out().exists() || extra_args.iter().any(|a| a.contains("{dir}")), "nothing written: {outputs:?}");
}

#[test]
fn bad_plans_are_setup_errors_naming_the_step() {
    let step = |s: &str| format!("{HEAD}steps:\n  - id: bad\n    {s}\n");
    refused(&step("operation: scal\n    target: {match: model.embed_tokens.weight}"), &[], &["plan.yaml", "step 'bad'", "unknown operation 'scal'", "did you mean 'scale'"]);
    refused(
        &step("operation: scale\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'base:{name}'}\n    params: {factr: 2}"),
        &[],
        &["plan.yaml", "parameter 'factr'", "did you mean 'factor'"],
    );
    refused(&step("operation: delete\n    target: {match: 'model.nothing.*'}"), &[], &["step 'bad'", "matches no tensor"]);
    refused(
        &step("operation: scale\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'base:{name}.missing'}\n    params: {factor: 2}"),
        &[],
        &["step 'bad'", "model.embed_tokens.weight.missing", "no such tensor"],
    );
    refused(
        &step("operation: scale\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'extra:{name}_nope'}\n    params: {factor: 2}"),
        &[],
        &["extra.safetensors", "model.embed_tokens.weight_nope", "step 'bad'"],
    );
    refused(&format!("{HEAD}steps:\n  - {{id: a, operation: delete, target: {{match: model.embed_tokens.weight}}}}\n  - {{id: a, operation: delete, target: {{match: model.layers.0.norm.weight}}}}\n"), &[], &["step 'a'", "duplicate step id"]);
    refused(&HEAD.replace("extra: extra.safetensors", "extra: ../elsewhere.safetensors").replace("output", "steps: []\noutput"), &[], &["plan.yaml", "escapes"]);
    refused(&step("operation: scale\n    target: {match: model.embed_tokens.weight}\n    inputs: {x: 'base:{layer}'}\n    params: {factor: 2}"), &[], &["step 'bad'", "{layer}", "no layer number"]);
    refused(&step("operation: copy\n    target: {match: model.embed_tokens.weight}"), &[], &["step 'bad'", "needs an 'output'"]);
    // Found by the plan fuzz target: an assert's `equal.to` naming an
    // unknown input panicked in resolution instead of being refused on load.
    refused(&step("assert: {match: model.embed_tokens.weight, equal: {to: 'nowhere:{name}', max_abs: 0}}"), &[], &["step 'bad'", "no input named 'nowhere'"]);
    refused(&step("operation: delete\n    assert: {match: x}\n    target: {match: model.embed_tokens.weight}"), &[], &["both 'operation' and 'assert'"]);
    refused(&format!("{HEAD}steps:\n  - id: x\n    operation: delete\n    target: {{match: model.embed_tokens.weight}}\n    bogus: 1\n"), &[], &["plan.yaml", "bogus"]);
    refused("schema: parity.plan.v2\ninputs: {base: base}\nsteps: []\n", &[], &["plan.yaml", "parity.plan.v2"]);
    refused("schema: parity.plan.v1\ninputs: {base: base}\nsteps: [\n", &[], &["plan.yaml", "not YAML"]);
    // The output is a file.
    let case = Case::new(&step("operation: delete\n    target: {match: model.embed_tokens.weight}"));
    std::fs::write(case.dir.path().join("file"), b"x").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parity"))
        .args(["apply", case.plan().to_str().unwrap(), "--out", case.dir.path().join("file").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read(case.dir.path().join("file")).unwrap(), b"x");
    // A corrupt manifest.
    let case = Case::new(&step("operation: delete\n    target: {match: model.embed_tokens.weight}"));
    std::fs::create_dir_all(case.out()).unwrap();
    std::fs::write(case.out().join("manifest.json"), b"{ corrupt").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parity")).args(["apply", case.plan().to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("manifest.json") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(case.out().join("manifest.json")).unwrap(), b"{ corrupt", "no half-updated manifest");
}

#[test]
fn a_plan_in_json_runs_like_the_same_plan_in_yaml() {
    let yaml = format!("{HEAD}steps:\n  - id: s\n    operation: scale\n    target: {{match: model.layers.0.mlp.up_proj.bias}}\n    inputs: {{x: 'base:{{name}}'}}\n    params: {{factor: 2.0}}\n");
    let case = Case::new(&yaml);
    case.run(ApplyOptions::default());
    let from_yaml = files(&case.out());
    let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    std::fs::write(case.dir.path().join("plan.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let out = case.dir.path().join("json_out");
    apply(&case.dir.path().join("plan.json"), &ApplyOptions { out: Some(out.clone()), ..ApplyOptions::default() }).unwrap();
    let mut from_json = files(&out);
    let mut from_yaml = from_yaml;
    // The manifests differ only in the plan's own sha256.
    from_json.remove("manifest.json");
    from_yaml.remove("manifest.json");
    assert_eq!(from_json, from_yaml);
}

#[test]
fn data_asserts_check_what_headers_could_not_tell() {
    // transpose's output shape is known only at run: the shape assert is made then.
    let plan = format!(
        "{HEAD}steps:\n  - {{id: t, operation: transpose, target: {{match: model.embed_tokens.weight}}, inputs: {{x: 'base:{{name}}'}}}}\n  - {{id: the_step, assert: {{match: model.embed_tokens.weight, shape: [8, 8]}}}}\n"
    );
    let case = Case::with_model(&plan, &{
        let mut m = model(8);
        m.insert("model.embed_tokens.weight".into(), f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        m
    });
    let o = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), ..ApplyOptions::default() }).unwrap();
    assert!(o.failure.as_ref().is_some_and(|(s, m)| s == "the_step" && m.contains("[3, 2]")), "{:?}", o.failure);
    // A copy's expected sha256 needs its bytes.
    let plan = format!("{HEAD}steps:\n  - {{id: c, operation: copy, target: {{match: model.layers.0.norm.weight}}, output: 'x.{{key}}', expect: {{sha256: '00'}}}}\n");
    let c2 = Case::new(&plan);
    let o = apply(&c2.plan(), &ApplyOptions { out: Some(c2.out()), ..ApplyOptions::default() }).unwrap();
    assert!(o.failure.as_ref().is_some_and(|(s, m)| s == "c" && m.contains("sha256")), "{:?}", o.failure);
    // Equal infinities are no difference.
    let mut m = model(8);
    m.insert("model.inf".into(), f32t(&[3], &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN]));
    let plan = format!("{HEAD}steps:\n  - {{id: e, assert: {{match: model.inf, equal: {{to: 'base:model.inf', max_abs: 0}}}}}}\n");
    let case = Case::with_model(&plan, &m);
    let o = apply(&case.plan(), &ApplyOptions { out: Some(case.out()), ..ApplyOptions::default() }).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
}

/// Independent actions run side by side (a window at a time) but a step
/// reading an earlier step's output waits for it, and everything is recorded
/// in plan order: scale three weights, then cast the scaled ones.
#[test]
fn a_step_that_reads_an_earlier_step_s_output_sees_it_whatever_runs_side_by_side() {
    let plan = format!(
        "{HEAD}steps:
  - id: triple
    operation: scale
    target: {{match: 'model.layers.*.mlp.up_proj.weight'}}
    inputs: {{x: 'base:{{name}}'}}
    params: {{factor: 3}}
  - id: to_bf16
    operation: cast
    target: {{match: 'model.layers.*.mlp.up_proj.weight'}}
    inputs: {{x: 'base:{{name}}'}}
    params: {{to: BF16}}
"
    );
    let case = Case::new(&plan);
    let outcome = case.run(ApplyOptions::default());
    assert!(outcome.failure.is_none());
    let ck = case.output();
    for l in 0..3 {
        let t = read(&ck, &format!("model.layers.{l}.mlp.up_proj.weight"));
        // x·3 rounds once to f32 (scale's rule), then once to bf16 (RNE).
        let want: Vec<u16> = ramp(64, 0.001 * (l + 1) as f32, 0.0).iter().map(|&x| parity::numeric::round::f32_to_bf16_bits(x * 3.0)).collect();
        let got: Vec<u16> = t.data.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(t.dtype, parity::format::dtype::DType::BF16);
        assert_eq!(got, want, "layer {l}");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(case.out().join("manifest.json")).unwrap()).unwrap();
    let order: Vec<(String, String)> = manifest["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["step"].as_str().unwrap().to_string(), a["tensor"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> = ["triple", "to_bf16"]
        .iter()
        .flat_map(|s| (0..3).map(move |l| (s.to_string(), format!("model.layers.{l}.mlp.up_proj.weight"))))
        .collect();
    assert_eq!(order, want, "recorded in plan order");
}

/// The first action of a window to break its expectation stops the run
/// there, as one-at-a-time execution would: the actions after it, though
/// computed beside it, are not recorded.
#[test]
fn an_expectation_broken_inside_a_window_stops_at_that_action() {
    let case = Case::new(&format!(
        "{HEAD}steps:
  - id: triple
    operation: scale
    target: {{match: 'model.layers.*.mlp.up_proj.weight'}}
    inputs: {{x: 'base:{{name}}'}}
    params: {{factor: 3}}
    expect: {{sha256: '00'}}
"
    ));
    let outcome = case.run(ApplyOptions::default());
    let (step, what) = outcome.failure.expect("the expectation fails");
    assert_eq!(step, "triple");
    assert!(what.contains("model.layers.0.mlp.up_proj.weight"), "{what}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(case.out().join("manifest.json")).unwrap()).unwrap();
    let actions = manifest["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["status"], "failed");
    assert_eq!(actions[0]["tensor"], "model.layers.0.mlp.up_proj.weight");
}
