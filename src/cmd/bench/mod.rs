//! `arrakis bench`: measurements of the engine and the kernels against their floors and the
//! tools users compare with, printed as the tables `BENCHMARKS.md` quotes.
//!
//! `engine`: the engine's own overhead on a synthetic field of the pipeline's shape;
//! `rm1d`/`rm3d`: the kernels against RM-Tools in the same run; `slurm`: the same field on the
//! local and the Slurm executor; `io`: the cube reader, cutouts and hashing against reading
//! through; `smooth`: the imager's common-resolution step against RACS-tools' beamcon_2D;
//! `region`: many fields merged; `store`: going back to earlier parameters (the content store);
//! `field`: a RACS-shaped field cold beside its I/O floor. Each phase that times a build runs the real binary as a child process, so wall time
//! and peak memory (`wait4` rusage) are the whole program's.
//! Must never: be run from tests (timings belong in BENCHMARKS.md, not in assertions).

mod engine;
mod field;
mod io;
mod region;
mod science;
mod slurm;
mod smooth;
mod store;

pub use engine::{engine, write_field};
pub use field::field;
pub use io::io;
pub use region::region;
pub use science::{ionosphere, rm1d, rm3d, write_racs_spectra};
pub use slurm::slurm;
pub use smooth::smooth;
pub use store::store;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Result};

pub(crate) struct Run {
    seconds: f64,
    max_rss_mib: f64,
    ran: usize,
    skipped: usize,
    work_seconds: f64,
}

/// The directory a benchmark works in: `dir` when given, else a temporary directory (returned
/// too: it is removed when dropped).
pub(crate) fn work_dir(
    dir: Option<&Path>,
) -> Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    Ok(match dir {
        Some(d) => (None, d.to_path_buf()),
        None => {
            let tmp = tempfile::tempdir()?;
            let p = tmp.path().to_path_buf();
            (Some(tmp), p)
        }
    })
}

/// Wait for `child` (reaping it): whether it exited 0, and its peak RSS in MiB (from `wait4`).
pub fn wait_with_peak_rss(child: std::process::Child) -> (bool, f64) {
    let mut status = 0i32;
    // SAFETY: rusage is plain data filled by the kernel; the pid is our own child, reaped once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let ok = pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss as f64 / 1024.0)
}

pub(crate) fn run_phase(dir: &Path, jobs: usize, extra: &[&str]) -> Result<Run> {
    let exe = std::env::current_exe()?;
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let start = Instant::now();
    let child = Command::new(exe)
        .arg("--cache")
        .arg(dir.join("cache"))
        .args([
            "build",
            engine::FIELD,
            "--quiet",
            "-j",
            &jobs.to_string(),
            "--datadir",
        ])
        .arg(dir.join("data"))
        .arg("--rules")
        .arg(dir.join("rules"))
        .arg("--report")
        .arg(&report)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let (ok, max_rss_mib) = wait_with_peak_rss(child);
    let seconds = start.elapsed().as_secs_f64();
    if !ok {
        return Err(anyhow!("benchmark build {extra:?} failed"));
    }
    let mut run = Run {
        seconds,
        max_rss_mib,
        ran: 0,
        skipped: 0,
        work_seconds: 0.0,
    };
    if let Ok(text) = std::fs::read_to_string(&report) {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        for t in v["targets"].as_array().into_iter().flatten() {
            match t["status"].as_str() {
                Some("ran") => {
                    run.ran += 1;
                    run.work_seconds += t["seconds"].as_f64().unwrap_or(0.0);
                }
                Some("skipped") => run.skipped += 1,
                _ => {}
            }
        }
    }
    Ok(run)
}

/// Bytes in the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Run `f` `n` times (at least once), dropping each result before the next run so runs do not
/// overlap in memory: the last result, the first run's seconds and the fastest run's.
pub(crate) fn timed<T>(n: usize, mut f: impl FnMut() -> T) -> (T, f64, f64) {
    let (mut last, mut first, mut fastest) = (None, 0.0, f64::INFINITY);
    for k in 0..n.max(1) {
        drop(last.take());
        let t0 = Instant::now();
        last = Some(f());
        let secs = t0.elapsed().as_secs_f64();
        if k == 0 {
            first = secs;
        }
        fastest = fastest.min(secs);
    }
    (last.expect("ran at least once"), first, fastest)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
