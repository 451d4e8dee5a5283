//! Writing a safetensors file tensor by tensor, so a model is never held in
//! memory: the header is computed from the tensors' dtypes and shapes alone,
//! then each tensor's bytes are streamed in.
//!
//! Deterministic: tensors in name order, offsets tiling the data from 0, the
//! header's keys sorted, `__metadata__` `{"format": "pt"}` (what Hugging Face
//! loaders expect), the header padded with spaces to a multiple of 8 bytes.

use super::dtype::DType;
use super::tensor::numel;
use std::io::Write;

/// One tensor to be written: its name, dtype and shape.
#[derive(Clone, Debug)]
pub struct TensorToWrite {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorToWrite {
    pub fn bytes(&self) -> usize {
        numel(&self.shape) * self.dtype.size()
    }
}

/// The 8-byte length and the header of a file holding `tensors` (sorted by
/// name here), and the tensors in the order their bytes must follow.
pub fn header(tensors: &[TensorToWrite]) -> (Vec<u8>, Vec<TensorToWrite>) {
    let mut sorted = tensors.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut at = 0usize;
    for t in &sorted {
        let end = at + t.bytes();
        map.insert(t.name.clone(), serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [at, end]}));
        at = end;
    }
    // serde_json's Map keeps insertion order (preserve_order): sort the keys
    // so the header does not depend on how it was built.
    let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let map: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
    let mut json = serde_json::to_vec(&serde_json::Value::Object(map)).expect("a header serialises");
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    (out, sorted)
}

/// Stream a whole file: the header, then each tensor's bytes from `fill`
/// (which must write exactly that tensor's byte count).
pub fn write(
    w: &mut dyn Write,
    tensors: &[TensorToWrite],
    mut fill: impl FnMut(&TensorToWrite, &mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (head, order) = header(tensors);
    w.write_all(&head)?;
    for t in &order {
        fill(t, w)?;
    }
    Ok(())
}
