//! Which SIMD path the kernels take, and a way to compile one kernel for
//! each.
//!
//! Three paths ([`SimdPath`]): AVX-512 and AVX2+FMA on x86-64, chosen at run
//! time, and portable Rust for every target. The best one the CPU has is
//! taken unless the `PARITY_SIMD` environment variable (`avx512`, `avx2`,
//! `portable`; read once per process) forces one; a forced path the CPU
//! lacks is refused, never replaced (the command line exits 2 naming it).
//!
//! Two kinds of kernel follow the choice:
//! * the comparer's fused block kernels (`compare::metrics::fused`), written
//!   with intrinsics per path;
//! * every other hot loop — codecs, casts, element-wise operations, merges —
//!   written once in plain Rust and compiled three times by
//!   [`simd_kernel!`](crate::simd_kernel): with AVX-512, with AVX2+FMA, and
//!   for the baseline target, so the compiler vectorises the same source
//!   for each. The three give the same bits: Rust never contracts
//!   `a * b + c` into an FMA nor reorders a float sum, whatever features are
//!   enabled, so each path does the same IEEE operations on the same values
//!   in the same order (tests/simd_paths.rs holds them to it). One thing
//!   IEEE 754 leaves open: an operation on two NaNs returns one of them, and
//!   which (payload and sign) follows the instruction's operand order, which
//!   the compiler may pick differently per path; the result is a NaN on
//!   every path, only its payload may differ. This is
//!   what the `multiversion` crate generates; written out here (20 lines)
//!   because the path must follow `PARITY_SIMD` and tests must force each
//!   one, where that crate dispatches on its own detection.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A SIMD path. Every kernel gives the same bits on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    /// x86-64 with AVX-512 (F, DQ, BW, VL) and AVX2+FMA: sixteen pairs a
    /// step in the comparer, 512-bit vectors in compiled kernels.
    Avx512,
    /// x86-64 with AVX2 and FMA: eight pairs a step.
    Avx2,
    /// Plain Rust, for every target.
    Portable,
}

impl SimdPath {
    /// Best first.
    pub const ALL: [SimdPath; 3] = [SimdPath::Avx512, SimdPath::Avx2, SimdPath::Portable];

    /// The name `PARITY_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Avx512 => "avx512",
            SimdPath::Avx2 => "avx2",
            SimdPath::Portable => "portable",
        }
    }

    /// The CPU features the path needs.
    pub fn needs(self) -> &'static str {
        match self {
            SimdPath::Avx512 => "x86-64 with avx512f, avx512dq, avx512bw, avx512vl, avx2 and fma",
            SimdPath::Avx2 => "x86-64 with avx2 and fma",
            SimdPath::Portable => "nothing",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => {
                use std::arch::is_x86_feature_detected as has;
                has!("avx512f") && has!("avx512dq") && has!("avx512bw") && has!("avx512vl") && has!("avx2") && has!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            SimdPath::Avx512 | SimdPath::Avx2 => false,
            SimdPath::Portable => true,
        }
    }

    /// The best path this CPU has.
    pub fn detected() -> SimdPath {
        SimdPath::ALL.into_iter().find(|p| p.supported()).unwrap_or(SimdPath::Portable)
    }
}

/// The path in use, and whether `PARITY_SIMD` forced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimdChoice {
    pub path: SimdPath,
    pub forced: bool,
}

static CHOICE: OnceLock<Result<SimdChoice, String>> = OnceLock::new();

/// The path `PARITY_SIMD` forces (read once per process), or the best one
/// the CPU has when it is unset or empty; a one-line error when it names an
/// unknown path or one this CPU lacks.
pub fn simd_choice() -> Result<SimdChoice, String> {
    choice().clone()
}

fn choice() -> &'static Result<SimdChoice, String> {
    CHOICE.get_or_init(|| choose(std::env::var_os("PARITY_SIMD").as_deref(), SimdPath::supported))
}

/// What `PARITY_SIMD=var` chooses on a CPU that runs the paths `has` accepts.
fn choose(var: Option<&std::ffi::OsStr>, has: impl Fn(SimdPath) -> bool) -> Result<SimdChoice, String> {
    let value = var.map(|v| v.to_string_lossy().trim().to_ascii_lowercase()).unwrap_or_default();
    let mut runs = SimdPath::ALL.into_iter().filter(|&p| p == SimdPath::Portable || has(p));
    if value.is_empty() {
        return Ok(SimdChoice { path: runs.next().unwrap_or(SimdPath::Portable), forced: false });
    }
    let supported = || runs.map(SimdPath::name).collect::<Vec<_>>().join(", ");
    match SimdPath::ALL.into_iter().find(|p| p.name() == value) {
        Some(path) if path == SimdPath::Portable || has(path) => Ok(SimdChoice { path, forced: true }),
        Some(path) => Err(format!(
            "PARITY_SIMD={value}: this CPU lacks that path (it needs {}); this CPU has: {}",
            path.needs(),
            supported()
        )),
        None => Err(format!("PARITY_SIMD={value} is not a SIMD path (avx512, avx2 or portable; this CPU has: {})", supported())),
    }
}

/// The path in use. Panics with [`simd_choice`]'s line when `PARITY_SIMD`
/// names a path this CPU cannot run (the command line refuses it earlier).
pub fn simd_path() -> SimdPath {
    match choice() {
        Ok(c) => c.path,
        Err(e) => panic!("{e}"),
    }
}


static FORCED: AtomicU8 = AtomicU8::new(0);

/// Make every later [`simd_kernel!`](crate::simd_kernel) call take `path`
/// (None: back to [`simd_path`]). For tests that hold the paths to the same
/// bits; panics on a path this CPU cannot run.
#[doc(hidden)]
pub fn force_path(path: Option<SimdPath>) {
    if let Some(p) = path {
        assert!(p.supported(), "force_path({p:?}): this CPU cannot run it");
    }
    let code = match path {
        None => 0,
        Some(SimdPath::Avx512) => 1,
        Some(SimdPath::Avx2) => 2,
        Some(SimdPath::Portable) => 3,
    };
    FORCED.store(code, Ordering::Relaxed);
}

/// The path a [`simd_kernel!`](crate::simd_kernel) call takes now.
#[doc(hidden)]
#[inline(always)]
pub fn kernel_path() -> SimdPath {
    match FORCED.load(Ordering::Relaxed) {
        1 => SimdPath::Avx512,
        2 => SimdPath::Avx2,
        3 => SimdPath::Portable,
        _ => simd_path(),
    }
}

/// Define a function whose body is compiled for each [`SimdPath`] and run
/// on the one in use ([`kernel_path`]). The body is plain Rust over slices
/// and numbers; keep it free of `mul_add` and of intrinsics, which would
/// make the paths differ.
///
/// Generic parameters go in square brackets after the name (a closure the
/// body applies per element is inlined into each path):
/// `simd_kernel! { fn map[F: Fn(f32) -> f32](x: &mut [f32], f: F) { … } }`.
#[macro_export]
macro_rules! simd_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $crate::simd_kernel! { $(#[$meta])* $vis fn $name[]($($arg: $ty),*) $(-> $ret)? $body }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident[$($gen:tt)*]($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<$($gen)*>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
            unsafe fn avx512<$($gen)*>($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$($gen)*>($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
            match $crate::numeric::simd::kernel_path() {
                // SAFETY: a path is only ever chosen or forced where the CPU
                // has its features (SimdPath::supported).
                #[cfg(target_arch = "x86_64")]
                $crate::numeric::simd::SimdPath::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::numeric::simd::SimdPath::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{choose, SimdChoice, SimdPath};
    use std::ffi::OsStr;

    #[test]
    fn parity_simd_forces_a_path_the_cpu_has_and_refuses_others() {
        let avx2_only = |p: SimdPath| p == SimdPath::Avx2;
        let pick = |v: Option<&str>| choose(v.map(OsStr::new), avx2_only);
        assert_eq!(pick(None), Ok(SimdChoice { path: SimdPath::Avx2, forced: false }));
        assert_eq!(pick(Some(" ")), Ok(SimdChoice { path: SimdPath::Avx2, forced: false }));
        assert_eq!(pick(Some("AVX2")), Ok(SimdChoice { path: SimdPath::Avx2, forced: true }));
        assert_eq!(pick(Some("portable")), Ok(SimdChoice { path: SimdPath::Portable, forced: true }));
        let lacks = pick(Some("avx512")).unwrap_err();
        assert_eq!(lacks, "PARITY_SIMD=avx512: this CPU lacks that path (it needs x86-64 with avx512f, avx512dq, avx512bw, avx512vl, avx2 and fma); this CPU has: avx2, portable");
        assert!(pick(Some("neon")).unwrap_err().starts_with("PARITY_SIMD=neon is not a SIMD path"));
        let none = |_: SimdPath| false;
        assert_eq!(choose(None, none), Ok(SimdChoice { path: SimdPath::Portable, forced: false }));
        assert!(choose(Some(OsStr::new("avx2")), none).is_err());
    }
}
