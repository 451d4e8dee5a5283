//! Checkpoints for the `diff` and `apply` tests: a safetensors file, and a
//! Hugging Face sharded directory (shards in name order, an index, a config).
#![allow(dead_code)]

use parity::format::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

pub type Model = BTreeMap<String, Tensor>;

pub fn write_file(path: &Path, m: &Model) {
    let tensors: Vec<(String, &Tensor)> = m.iter().map(|(k, t)| (k.clone(), t)).collect();
    parity::format::bundle::write(path, &tensors).unwrap();
}

/// `shards` files of near-equal tensor counts, `model.safetensors.index.json`
/// and a `config.json` (a non-tensor file apply copies).
pub fn write_sharded(dir: &Path, m: &Model, shards: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let names: Vec<&String> = m.keys().collect();
    let per = names.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (i, part) in names.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        let sub: Model = part.iter().map(|n| ((*n).clone(), m[*n].clone())).collect();
        write_file(&dir.join(&file), &sub);
        for n in part {
            weight_map.insert((*n).clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    std::fs::write(dir.join("config.json"), b"{\"model_type\": \"test\"}\n").unwrap();
}
