//! A port in plain Rust f32 recording its forward pass with
//! `parity::capture` — the Rust side of `oracle/examples/capture_mlp.py`.
//!
//! ```sh
//! cargo run --release --example capture_mlp -- examples/data/mlp.safetensors /tmp/rust.json
//! python3 oracle/examples/capture_mlp.py examples/data/mlp.safetensors /tmp/torch.json
//! parity check /tmp/torch.json /tmp/rust.json --atol 1e-5 --rtol 1e-5
//! ```
//!
//! The block is a transformer's MLP half, `norm(x + fc2(gelu(fc1(x))))`,
//! with its weights and input read from a safetensors file. Each module's
//! output is recorded under the name PyTorch's `named_modules()` gives it
//! (`fc1`, `act`, `fc2`, `norm`, and the root as `model`), with its class
//! name as operation, in the order PyTorch's forward hooks fire: a child
//! before its parent, so the root comes last. That is all the port has to
//! agree on with the PyTorch capture for `parity check` to pair them.

use parity::capture::Capture;
use std::path::Path;
use std::process::ExitCode;

/// The example's entry point: a setup error is one line and exit code 2,
/// as for `parity` itself.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, out] = args.as_slice() else {
        eprintln!("usage: capture_mlp WEIGHTS.safetensors OUT.json");
        return ExitCode::from(2);
    };
    match run(Path::new(weights), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture_mlp: {e}");
            ExitCode::from(2)
        }
    }
}

/// Read the weights and input, run the block once, and write the report
/// `out` with its bundle (`tests/capture_example.rs` runs this too).
pub fn run(weights: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)?;
    let load = |name: &str| -> Result<(Vec<f32>, Vec<usize>), String> {
        let t = file.tensor(name).map_err(|e| format!("{}: {name}: {e}", weights.display()))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(format!("{}: {name} is {:?}, not F32", weights.display(), t.dtype()));
        }
        let values = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        Ok((values, t.shape().to_vec()))
    };
    let linear = |prefix: &str| -> Result<Linear, String> {
        let (weight, shape) = load(&format!("{prefix}.weight"))?;
        let (bias, _) = load(&format!("{prefix}.bias"))?;
        Ok(Linear { weight, bias, d_out: shape[0], d_in: shape[1] })
    };
    let model = Mlp {
        fc1: linear("fc1")?,
        fc2: linear("fc2")?,
        norm: LayerNorm { weight: load("norm.weight")?.0, bias: load("norm.bias")?.0, eps: 1e-5 },
    };
    let (x, shape) = load("input")?;

    // `reads`: the capture refuses to write its report or bundle over the weights.
    let mut capture = Capture::builder(out, "capture_mlp example", "rust-f32").reads(weights).create()?;
    let y = model.forward(&x, &shape, &mut capture)?;
    let report = capture.finish()?;
    println!("wrote {} ({} tensors, output {:?}, y[0] = {})", out.display(), report.tensors.len(), shape, y[0]);
    Ok(())
}

/// `y = x Wᵀ + b` over the last dimension, summed in f32 in index order.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl Linear {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = Vec::with_capacity(x.len() / self.d_in * self.d_out);
        for row in x.chunks_exact(self.d_in) {
            for (w, b) in self.weight.chunks_exact(self.d_in).zip(&self.bias) {
                y.push(row.iter().zip(w).fold(0f32, |acc, (x, w)| acc + x * w) + b);
            }
        }
        y
    }
}

/// `nn.LayerNorm` over the last dimension (biased variance), its mean and
/// variance taken in f64.
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f64,
}

impl LayerNorm {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let d = self.weight.len();
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(d) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((&v, &w), &b) in row.iter().zip(&self.weight).zip(&self.bias) {
                y.push(((v as f64 - mean) * inv * w as f64 + b as f64) as f32);
            }
        }
        y
    }
}

/// `nn.GELU()`'s default, the exact form `x·Φ(x) = x/2·(1 + erf(x/√2))`,
/// in f64 and rounded once (torch evaluates it in f32: a few ULPs apart).
fn gelu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| (0.5 * v as f64 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2))) as f32).collect()
}

/// erf by its Taylor series, to about 1e-11 on |x| ≤ 4 (the series'
/// largest term there is ~1e5); beyond, |erf| is within 2e-8 of 1, which
/// an f32 cannot tell from 1. (Rust's std has no erf.)
fn erf(x: f64) -> f64 {
    if x.abs() > 4.0 {
        return x.signum();
    }
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

/// The block, recording each module's output as PyTorch would name it.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    norm: LayerNorm,
}

impl Mlp {
    fn forward(&self, x: &[f32], shape: &[usize], run: &mut Capture) -> parity::Result<Vec<f32>> {
        // Every dimension but the last is a row; the modules change only the last.
        let with_last = |d: usize| [&shape[..shape.len() - 1], &[d]].concat();
        let hidden = with_last(self.fc1.d_out);

        let h = self.fc1.forward(x);
        run.output("fc1", "Linear", &h, &hidden)?;
        let a = gelu(&h);
        run.output("act", "GELU", &a, &hidden)?;
        let f = self.fc2.forward(&a);
        run.output("fc2", "Linear", &f, shape)?;
        // The residual add is no module: PyTorch's capture does not see it either.
        let r: Vec<f32> = x.iter().zip(&f).map(|(x, f)| x + f).collect();
        let y = self.norm.forward(&r);
        run.output("norm", "LayerNorm", &y, shape)?;
        run.output("model", "MLP", &y, shape)?;
        Ok(y)
    }
}
