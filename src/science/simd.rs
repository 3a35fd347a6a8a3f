//! Which vector instructions the hand-written kernels use: the widest this CPU has, or fewer when
//! `ARRAKIS_SIMD` says so (`scalar`, `avx2`, `avx512`). The cap exists to check that results do
//! not depend on the CPU (the same field built with `ARRAKIS_SIMD=scalar` and without agrees
//! with the accepted catalogue within `arrakis compare`'s default tolerances: a CI test) and to
//! debug a kernel; it is not a parameter (results differ only by rounding) and is not in any
//! target's key. The FFT and GEMM crates pick their own instructions.

use std::sync::OnceLock;

/// The environment variable that caps the instruction set.
pub const ENV: &str = "ARRAKIS_SIMD";

/// An instruction-set level, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust loops (which the compiler may still vectorise with SSE2).
    Scalar,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F.
    Avx512,
}

/// Reads a cap as `ARRAKIS_SIMD` spells it.
pub fn parse(s: &str) -> Result<Level, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "scalar" | "none" | "off" => Ok(Level::Scalar),
        "avx2" => Ok(Level::Avx2),
        "avx512" | "avx512f" => Ok(Level::Avx512),
        other => Err(format!(
            "{ENV}={other:?} is not an instruction set: use scalar, avx2 or avx512 (or unset it for the widest this CPU has)"
        )),
    }
}

/// Checks `ARRAKIS_SIMD` (called once at start-up, so a typo is an error, not a silent default).
pub fn check_env() -> Result<(), String> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => parse(&v).map(|_| ()),
        _ => Ok(()),
    }
}

fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// The level the kernels use: what the CPU has, capped by `ARRAKIS_SIMD` (read once).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var(ENV)
            .ok()
            .and_then(|v| parse(&v).ok())
            .unwrap_or(Level::Avx512);
        detected().min(cap)
    })
}

/// True when the AVX-512F kernels may run (the CPU has it and no cap forbids it).
pub fn avx512() -> bool {
    level() >= Level::Avx512
}

/// True when the AVX2+FMA kernels may run.
pub fn avx2_fma() -> bool {
    level() >= Level::Avx2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_read_and_typos_refused() {
        assert_eq!(parse("scalar"), Ok(Level::Scalar));
        assert_eq!(parse(" AVX2 "), Ok(Level::Avx2));
        assert_eq!(parse("avx512"), Ok(Level::Avx512));
        let e = parse("avx3").unwrap_err();
        assert!(
            e.contains("ARRAKIS_SIMD") && e.contains("scalar, avx2 or avx512"),
            "{e}"
        );
        assert!(Level::Scalar < Level::Avx2 && Level::Avx2 < Level::Avx512);
    }
}
