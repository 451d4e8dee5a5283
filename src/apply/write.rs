//! Writing the output model: shards (or one file) tensor by tensor from
//! the inputs and the work files, each hashed while written; the index;
//! base's other files; the work files' own format.

use crate::error::{Error, Result};
use crate::format::checkpoint::{Checkpoint, INDEX};
use crate::format::manifest::{self, OutputFile};
use crate::format::safetensors_write::{self, TensorToWrite};
use crate::format::tensor::Tensor;
use crate::plan::OutputLayout;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::run::{Data, Run};

impl<'a> Run<'a> {
    /// The output model: shards (or one file), the index, base's other files.
    pub(super) fn write_output(&mut self, shard_size: u64) -> Result<()> {
        // Every output tensor with its final dtype and shape (computed ones
        // from their work files' headers).
        let mut planned: Vec<(TensorToWrite, Data<'a>)> = Vec::new();
        for (name, e) in &self.r.model {
            let data = self.data(&e.source);
            let (dtype, shape) = match &data {
                Data::Input(_, loc) => (loc.dtype, loc.shape.clone()),
                Data::Work(p) => {
                    let ck = Checkpoint::open(p)?;
                    let (_, loc) = ck.tensors().next().ok_or_else(|| Error::bundle(p, "empty work file"))?;
                    (loc.dtype, loc.shape.clone())
                }
            };
            planned.push((TensorToWrite { name: name.clone(), dtype, shape }, data));
        }
        let layout = self.plan.plan.output.layout;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut size = 0u64;
        for (i, (p, _)) in planned.iter().enumerate() {
            let b = p.bytes() as u64;
            if groups.is_empty() || (layout == OutputLayout::Sharded && size > 0 && size + b > shard_size) {
                groups.push(Vec::new());
                size = 0;
            }
            groups.last_mut().unwrap().push(i);
            size += b;
        }
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        let n = groups.len();
        let mut files = Vec::new();
        let mut weight_map = serde_json::Map::new();
        let mut tensor_sha: BTreeMap<String, String> = BTreeMap::new();
        // Per-tensor hashes only where the manifest records one (an action's output).
        let wanted: std::collections::BTreeSet<String> =
            self.manifest.actions.iter().filter(|d| d.sha256.is_none()).filter_map(|d| d.output.clone()).collect();
        let mut total = 0u64;
        // Shards are independent files: written in parallel (the sha256 of
        // each file, taken while writing, is most of the CPU time), collected
        // in shard order, so the result does not depend on the thread count.
        let written: Vec<Result<(OutputFile, Vec<(String, String)>)>> = {
            use rayon::prelude::*;
            groups
                .par_iter()
                .enumerate()
                .map(|(g, members)| {
                    let file = match layout {
                        OutputLayout::Single => "model.safetensors".to_string(),
                        OutputLayout::Sharded => format!("model-{:05}-of-{n:05}.safetensors", g + 1),
                    };
                    let path = self.out.join(&file);
                    let tensors: Vec<TensorToWrite> = members.iter().map(|&i| planned[i].0.clone()).collect();
                    let by_name: BTreeMap<&str, &Data> = members.iter().map(|&i| (planned[i].0.name.as_str(), &planned[i].1)).collect();
                    let mut hasher = HashingWriter::default();
                    let mut shas = Vec::new();
                    crate::format::atomic::write_with(&path, |w| {
                        let mut tee = Tee { a: w, b: &mut hasher };
                        safetensors_write::write(&mut tee, &tensors, |t, w| {
                            let mut h = wanted.contains(&t.name).then(Sha256::new);
                            copy_tensor(by_name[t.name.as_str()], t, w, h.as_mut())?;
                            if let Some(h) = h {
                                shas.push((t.name.clone(), crate::format::tensor::hex(&h.finalize())));
                            }
                            Ok(())
                        })
                    })?;
                    Ok((OutputFile { path: file, bytes: hasher.bytes, sha256: crate::format::tensor::hex(&hasher.h.finalize()) }, shas))
                })
                .collect()
        };
        for (g, w) in written.into_iter().enumerate() {
            let (file, shas) = w?;
            for &i in &groups[g] {
                weight_map.insert(planned[i].0.name.clone(), file.path.clone().into());
                total += planned[i].0.bytes() as u64;
            }
            tensor_sha.extend(shas);
            files.push(file);
        }
        if layout == OutputLayout::Sharded {
            let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            let text = serde_json::to_string_pretty(&index).expect("serialises") + "\n";
            crate::format::atomic::write_bytes(&self.out.join(INDEX), text.as_bytes())?;
            files.push(OutputFile { path: INDEX.into(), bytes: text.len() as u64, sha256: crate::format::tensor::sha256_hex(text.as_bytes()) });
        }
        if self.plan.plan.output.copy_files {
            files.extend(self.copy_base_files()?);
        }
        // The sha256 of every action's written tensor, as it stands in the output.
        for d in &mut self.manifest.actions {
            if let Some(o) = &d.output {
                if let Some(s) = tensor_sha.get(o) {
                    if d.sha256.is_none() {
                        d.sha256 = Some(s.clone());
                    }
                }
            }
        }
        // Files an earlier output listed that this one does not write (an
        // input changed its shard count) go, before the manifest says the
        // output is complete.
        for stale in &self.stale_files {
            if !files.iter().any(|f| &f.path == stale) {
                let _ = std::fs::remove_file(self.out.join(stale));
            }
        }
        self.manifest.files = files;
        // What the output was computed from, as it is now.
        self.manifest.inputs = self.fresh_inputs.clone();
        self.manifest.complete = true;
        self.save_manifest()
    }

    /// `copy_files: true`: base's other files (config, tokenizer, …) and
    /// its subdirectories (a sentence-transformers repo's `1_Pooling/`),
    /// byte for byte. Hidden entries, the manifest and base's own weights
    /// and index (top level) are not copied: the output has its own.
    pub(super) fn copy_base_files(&self) -> Result<Vec<OutputFile>> {
        let base = &self.r.inputs["base"].path;
        if !base.is_dir() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.copy_dir(base, Path::new(""), 0, &mut out)?;
        Ok(out)
    }

    pub(super) fn copy_dir(&self, dir: &Path, rel: &Path, depth: usize, out: &mut Vec<OutputFile>) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        // The output directory may sit inside base (`base: .`, `output: out/`):
        // it is never copied into itself.
        let own = std::fs::metadata(&self.out).ok().map(|m| (m.dev(), m.ino()));
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || std::fs::metadata(&p).ok().map(|m| (m.dev(), m.ino())) == own {
                continue;
            }
            let rel_name = rel.join(&name);
            if p.is_dir() {
                // Deep enough for any model repository; a link loop stops here.
                if depth < 8 {
                    let target = self.out.join(&rel_name);
                    std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
                    self.copy_dir(&p, &rel_name, depth + 1, out)?;
                }
                continue;
            }
            let top = depth == 0;
            if !p.is_file() || (top && (name.ends_with(".safetensors") || name == INDEX || name == manifest::FILE)) {
                continue;
            }
            // Streamed and hashed as written: a repository's other files
            // can be large (an `original/consolidated.00.pth`).
            let (mut from, _) = crate::format::file::open_regular(&p)?;
            let mut hasher = HashingWriter::default();
            crate::format::atomic::write_with(&self.out.join(&rel_name), |w| {
                let mut tee = Tee { a: w, b: &mut hasher };
                std::io::copy(&mut from, &mut tee).map(|_| ())
            })?;
            let shown = rel_name.to_string_lossy().into_owned();
            out.push(OutputFile { path: shown, bytes: hasher.bytes, sha256: crate::format::tensor::hex(&hasher.h.finalize()) });
        }
        Ok(())
    }
}

pub(super) fn copy_tensor(data: &Data, t: &TensorToWrite, w: &mut dyn Write, mut h: Option<&mut Sha256>) -> std::io::Result<()> {
    let to_io = |e: Error| std::io::Error::other(e.to_string());
    match data {
        Data::Input(ck, loc) => {
            let region = ck.region(loc);
            if !region.is_strided() {
            let mut buf = vec![0u8; (4 << 20).min(loc.len.max(1))];
            let mut at = 0;
            while at < loc.len {
                let n = buf.len().min(loc.len - at);
                region.read_at(at, &mut buf[..n]).map_err(to_io)?;
                if let Some(h) = h.as_mut() {
                    h.update(&buf[..n]);
                }
                w.write_all(&buf[..n])?;
                at += n;
            }
            } else {
                // A strided view (PyTorch) is gathered whole, once.
                let bytes = ck.gathered(loc).map_err(to_io)?.expect("strided");
                if let Some(h) = h.as_mut() {
                    h.update(&bytes);
                }
                w.write_all(&bytes)?;
            }
        }
        Data::Work(p) => {
            let tensor = read_work(p).map_err(to_io)?;
            debug_assert_eq!(tensor.data.len(), t.bytes());
            if let Some(h) = h {
                h.update(&tensor.data);
            }
            w.write_all(&tensor.data)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct HashingWriter {
    h: Sha256,
    bytes: u64,
}

struct Tee<'w> {
    a: &'w mut dyn Write,
    b: &'w mut HashingWriter,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.a.write(buf)?;
        self.b.h.update(&buf[..n]);
        self.b.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.a.flush()
    }
}

/// A work file: one tensor, key `t`, written atomically; synced in a batch
/// before the manifest records it ([`Run::flush`]).
pub(super) fn write_work(path: &Path, t: &Tensor) -> Result<()> {
    crate::format::bundle::write_unsynced(path, &[("t".to_string(), t)])
}

pub(super) fn read_work(path: &Path) -> Result<Tensor> {
    let ck = Checkpoint::open(path)?;
    let (_, loc) = ck.tensors().next().ok_or_else(|| Error::bundle(path, "empty work file"))?;
    let mut bytes = vec![0u8; loc.len];
    ck.region(loc).read_at(0, &mut bytes)?;
    Ok(Tensor::from_bytes(loc.dtype, loc.shape.clone(), bytes))
}

pub(super) fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::format::tensor::hex(&h.finalize()))
}
