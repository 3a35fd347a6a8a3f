//! Benchmarks run by `arrakis bench`.

use std::path::Path;

use anyhow::Result;

/// Engine overhead benchmark (see `arrakis bench engine --help`).
pub fn engine(
    _islands: usize,
    _beams: usize,
    _dir: Option<&Path>,
    _jobs: Option<usize>,
) -> Result<i32> {
    Ok(0)
}
