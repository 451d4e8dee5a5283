//! Name-map files (`parity.name_map.v1`): how one family's names on the
//! RIGHT (a GGUF conversion) become LEFT's (Hugging Face), and which
//! tensors' rows the converter permuted for RoPE. `--map-preset llama` is
//! `presets/llama.json`, compiled in; `--map-file FILE` reads a user's copy.
//!
//! ```json
//! {"schema": "parity.name_map.v1", "description": "…",
//!  "rename": [["^blk\\.(\\d+)\\.attn_q\\.weight$", "model.layers.$1.self_attn.q_proj.weight"], …],
//!  "unpermute_rope": {"model.layers.*.self_attn.q_proj.weight": "{arch}.attention.head_count", …}}
//! ```
//!
//! `rename` rules apply in order, each to the result of the last (then any
//! `--map`). `unpermute_rope` names tensors (LEFT's names, globs) whose rows
//! RIGHT holds as llama.cpp's converter permuted them, and the GGUF metadata
//! key holding the head count it permuted with (`{arch}` is RIGHT's
//! `general.architecture`): RIGHT's rows are put back in Hugging Face order
//! before comparing ([`unpermute_rows`]).

use crate::error::{Error, Result};
use crate::select::NameMap;
use std::path::Path;

pub const SCHEMA: &str = "parity.name_map.v1";

/// The presets compiled in: name → the file's text.
pub const PRESETS: &[(&str, &str)] = &[("llama", include_str!("../../presets/llama.json"))];

#[derive(Clone, Debug)]
pub struct MapFile {
    /// `preset llama` or the file's path, for messages.
    pub origin: String,
    pub renames: Vec<NameMap>,
    /// (glob over LEFT's names, metadata key template).
    pub unpermute: Vec<(glob::Pattern, String)>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    schema: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    rename: Vec<(String, String)>,
    #[serde(default)]
    /// In file order (serde_json's map preserves it).
    unpermute_rope: serde_json::Map<String, serde_json::Value>,
}

impl MapFile {
    /// `--map-preset NAME`.
    pub fn preset(name: &str) -> Result<MapFile> {
        let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            return Err(Error::Usage(format!("--map-preset {name}: no such preset (known: {})", known.join(", "))));
        };
        Self::parse(text.as_bytes(), format!("preset {name}"), None)
    }

    /// `--map-file FILE`.
    pub fn load(path: &Path) -> Result<MapFile> {
        let text = crate::format::file::read_small(path, 16 << 20)?;
        Self::parse(&text, path.display().to_string(), Some(path))
    }

    fn parse(text: &[u8], origin: String, path: Option<&Path>) -> Result<MapFile> {
        let bad = |m: String| match path {
            Some(p) => Error::json(p, m),
            None => Error::Usage(format!("{origin}: {m}")),
        };
        let raw: Raw = serde_json::from_slice(text).map_err(|e| bad(format!("not a {SCHEMA} file: {e}")))?;
        if raw.schema != SCHEMA {
            return Err(bad(format!("schema '{}', expected '{SCHEMA}'", raw.schema)));
        }
        let renames = raw
            .rename
            .iter()
            .enumerate()
            .map(|(i, (re, rep))| NameMap::new(re, rep, format!("{origin}: rename[{i}] {re} → {rep}")))
            .collect::<Result<Vec<_>>>()?;
        let mut unpermute = Vec::new();
        for (glob, key) in &raw.unpermute_rope {
            let key = key.as_str().ok_or_else(|| bad(format!("unpermute_rope.\"{glob}\": the value must be a metadata key (a string)")))?;
            let pattern = glob::Pattern::new(glob).map_err(|e| bad(format!("unpermute_rope: '{glob}' is not a glob: {e}")))?;
            unpermute.push((pattern, key.to_string()));
        }
        Ok(MapFile { origin, renames, unpermute })
    }

    /// RIGHT's name after the file's renames.
    pub fn rename(&self, name: &str) -> String {
        self.renames.iter().fold(name.to_string(), |n, m| m.apply(&n))
    }

    /// The metadata key template for a tensor whose rows were permuted.
    pub fn heads_key(&self, name: &str) -> Option<&str> {
        self.unpermute.iter().find(|(g, _)| g.matches(name)).map(|(_, k)| k.as_str())
    }
}

/// RIGHT's rows put back in Hugging Face order. convert_hf_to_gguf.py's
/// `permute(w, n_head)` reshapes the rows as `[n_head, 2, rows/n_head/2]`
/// and swaps the last two axes: GGUF row `h·2m + 2i + t` holds Hugging Face
/// row `h·2m + t·m + i` (m = rows / n_head / 2). This is the inverse: an
/// exact copy of whole rows (`row_bytes` each), no arithmetic.
pub fn unpermute_rows(gguf: &[u8], rows: usize, heads: usize, row_bytes: usize) -> Vec<u8> {
    let m = rows / heads / 2;
    let mut hf = vec![0u8; gguf.len()];
    for h in 0..heads {
        for t in 0..2 {
            for i in 0..m {
                let from = h * 2 * m + 2 * i + t;
                let to = h * 2 * m + t * m + i;
                hf[to * row_bytes..(to + 1) * row_bytes].copy_from_slice(&gguf[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    hf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_llama_preset_parses_and_renames_as_convert_hf_to_gguf_names() {
        let p = MapFile::preset("llama").unwrap();
        assert_eq!(p.rename("blk.3.attn_q.weight"), "model.layers.3.self_attn.q_proj.weight");
        assert_eq!(p.rename("blk.12.ffn_down.weight"), "model.layers.12.mlp.down_proj.weight");
        assert_eq!(p.rename("token_embd.weight"), "model.embed_tokens.weight");
        assert_eq!(p.rename("output.weight"), "lm_head.weight");
        assert_eq!(p.rename("output_norm.weight"), "model.norm.weight");
        assert_eq!(p.heads_key("model.layers.3.self_attn.k_proj.weight"), Some("{arch}.attention.head_count_kv"));
        assert_eq!(p.heads_key("model.layers.3.self_attn.v_proj.weight"), None);
        assert!(MapFile::preset("gpt9").unwrap_err().to_string().contains("known: llama"));
    }

    /// The inverse of the converter's permutation, written here as numpy's
    /// reshape/swapaxes would do it on row indices.
    #[test]
    fn unpermuting_undoes_the_converters_permutation() {
        let (rows, heads) = (12, 3);
        let m = rows / heads / 2;
        // permute: out[h][i][t] = in[h][t][i]  (reshape [h, 2, m] → swap → [h, m, 2])
        let hf: Vec<u8> = (0..rows as u8).collect();
        let mut gguf = vec![0u8; rows];
        for h in 0..heads {
            for t in 0..2 {
                for i in 0..m {
                    gguf[h * 2 * m + i * 2 + t] = hf[h * 2 * m + t * m + i];
                }
            }
        }
        assert_eq!(unpermute_rows(&gguf, rows, heads, 1), hf);
        assert_ne!(gguf, hf);
    }
}
