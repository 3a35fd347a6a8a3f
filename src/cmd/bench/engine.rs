//! `arrakis bench engine`: the engine's overhead (no-op, dry run, `--full-check`, a parameter
//! change) on a synthetic field with the pipeline's shape (`benches/engine_rules/`, every action
//! the `stamp` builtin), beside the floor: every file of the field stat'ed once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::*;

const RULES: &[(&str, &str)] = &[
    (
        "cutout.yaml",
        include_str!("../../../benches/engine_rules/cutout.yaml"),
    ),
    (
        "linmos.yaml",
        include_str!("../../../benches/engine_rules/linmos.yaml"),
    ),
    (
        "frion.yaml",
        include_str!("../../../benches/engine_rules/frion.yaml"),
    ),
    (
        "rmsynth.yaml",
        include_str!("../../../benches/engine_rules/rmsynth.yaml"),
    ),
    (
        "rmclean.yaml",
        include_str!("../../../benches/engine_rules/rmclean.yaml"),
    ),
    (
        "catalogue.yaml",
        include_str!("../../../benches/engine_rules/catalogue.yaml"),
    ),
];

pub(crate) const FIELD: &str = "BENCH_0000-00A";

/// Write the synthetic field: beams on a square footprint 0.9 deg apart, islands spread evenly
/// over it, every third island with two components. Beam cubes are small stand-in files.
pub fn write_field(datadir: &Path, islands: usize, beams: usize) -> Result<PathBuf> {
    let dir = datadir.join(FIELD);
    std::fs::create_dir_all(dir.join("catalogue"))?;
    let side = (beams as f64).sqrt().ceil() as usize;
    let mut y = format!("field: {FIELD}\nbeams:\n");
    for b in 0..beams {
        let (r, c) = (b / side, b % side);
        y.push_str(&format!(
            "  - {{beam: {b}, ra_deg: {:.4}, dec_deg: {:.4}}}\n",
            180.0 + 0.9 * c as f64,
            -30.0 + 0.9 * r as f64
        ));
        for s in ["i", "q", "u"] {
            std::fs::write(
                dir.join(format!(
                    "image.restored.{s}.{FIELD}.contcube.beam{b:02}.conv.fits"
                )),
                format!("stand-in cube {s} {b}\n").repeat(64),
            )?;
        }
    }
    std::fs::write(dir.join("field.yaml"), y)?;
    let span = 0.9 * (side - 1) as f64;
    let mut isl = String::from("Source_ID,RA,Dec\n");
    let mut comp = String::from("Gaussian_ID,Source_ID,RA,Dec\n");
    // A low-discrepancy spread keeps the number of beams per island realistic (1 to 4).
    for i in 0..islands {
        let x = (i as f64 + 0.5) / islands as f64;
        let yv = (i as f64 * 0.618_033_988_75).fract();
        let (ra, dec) = (180.0 + span * x, -30.0 + span * yv);
        let id = format!("RACS_B{i:06}");
        isl.push_str(&format!("{id},{ra:.5},{dec:.5}\n"));
        comp.push_str(&format!("{id}_c1,{id},{ra:.5},{dec:.5}\n"));
        if i % 3 == 0 {
            comp.push_str(&format!("{id}_c2,{id},{ra:.5},{dec:.5}\n"));
        }
    }
    std::fs::write(dir.join("catalogue/islands.csv"), isl)?;
    std::fs::write(dir.join("catalogue/components.csv"), comp)?;
    Ok(dir)
}

/// The least a no-op build can cost: every file under the field directory stat'ed once, relative
/// to the field directory, on `jobs` threads (the snapshot check's own way of stat'ing), with the
/// paths prepared beforehand. Also one file stat'ed as many times, which separates the kernel's
/// per-call cost from the cost of looking up many distinct names in the dentry cache.
struct StatFloor {
    files: usize,
    seconds: f64,
    same_file_seconds: f64,
}

fn stat_floor(field_dir: &Path, jobs: usize) -> Result<StatFloor> {
    use rayon::prelude::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let mut paths = Vec::new();
    for e in walkdir::WalkDir::new(field_dir).sort_by_file_name() {
        let e = e.with_context(|| format!("cannot list {}", field_dir.display()))?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(field_dir)?;
            paths.push(CString::new(rel.as_os_str().as_bytes())?);
        }
    }
    if paths.is_empty() {
        return Err(anyhow!("{}: no files to stat", field_dir.display()));
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let chunk = paths.len().div_ceil(jobs * 64).max(1);
    let run = |same: bool| -> Result<f64> {
        let t0 = Instant::now();
        pool.install(|| {
            paths.par_chunks(chunk).try_for_each(|c| -> Result<()> {
                let dir = crate::hash::DirFd::open(field_dir)?;
                for p in c {
                    let p = if same { &paths[0] } else { p };
                    std::hint::black_box(dir.stat_c(p)?);
                }
                Ok(())
            })
        })?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let seconds = median((0..3).map(|_| run(false)).collect::<Result<_>>()?);
    let same_file_seconds = median((0..3).map(|_| run(true)).collect::<Result<_>>()?);
    Ok(StatFloor {
        files: paths.len(),
        seconds,
        same_file_seconds,
    })
}

/// `arrakis bench engine`.
pub fn engine(
    islands: usize,
    beams: usize,
    dir: Option<&Path>,
    jobs: Option<usize>,
    field_only: bool,
) -> Result<i32> {
    let tmp;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    let _ = std::fs::remove_dir_all(dir.join("data"));
    std::fs::create_dir_all(dir.join("rules"))?;
    for (name, text) in RULES {
        std::fs::write(dir.join("rules").join(name), text)?;
    }
    write_field(&dir.join("data"), islands, beams)?;
    if field_only {
        eprintln!(
            "wrote {}/data/{FIELD} and its rules in {}/rules",
            dir.display(),
            dir.display()
        );
        return Ok(0);
    }
    // Real inputs are not written within the 20 ms before a build: files that fresh are "racy"
    // (StatSig::is_racy), so the cold build's snapshot would not trust them and the first no-op
    // would go through full evaluation.
    std::thread::sleep(std::time::Duration::from_millis(50));
    eprintln!(
        "bench engine: {islands} islands, {beams} beams, -j {jobs}, in {}",
        dir.display()
    );

    let cold = run_phase(&dir, jobs, &[])?;
    let targets = cold.ran;
    let outputs = walkdir::WalkDir::new(dir.join("data").join(FIELD).join("cutouts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .count();
    let noops: Vec<Run> = (0..3)
        .map(|_| run_phase(&dir, jobs, &[]))
        .collect::<Result<_>>()?;
    if noops.iter().any(|r| r.ran > 0) {
        return Err(anyhow!(
            "a no-op build ran targets: the engine is not stable"
        ));
    }
    let dry: Vec<Run> = (0..3)
        .map(|_| run_phase(&dir, jobs, &["--dry-run"]))
        .collect::<Result<_>>()?;
    // The same no-op decided by evaluating every target instead of by the snapshot.
    let full: Vec<Run> = (0..3)
        .map(|_| run_phase(&dir, jobs, &["--full-check"]))
        .collect::<Result<_>>()?;
    let full_dry: Vec<Run> = (0..3)
        .map(|_| run_phase(&dir, jobs, &["--full-check", "--dry-run"]))
        .collect::<Result<_>>()?;
    if full.iter().any(|r| r.ran > 0) {
        return Err(anyhow!(
            "a --full-check no-op build ran targets: the snapshot and full evaluation disagree"
        ));
    }
    let floor = stat_floor(&dir.join("data").join(FIELD), jobs)?;
    let change = run_phase(&dir, jobs, &["--set", "cutoff=-5"])?;
    let cache_mib = dir_size(&dir.join("cache")) as f64 / (1024.0 * 1024.0);

    let noop = median(noops.iter().map(|r| r.seconds).collect());
    println!("| phase | wall s | peak RSS MiB | targets run | note |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| cold build | {:.2} | {:.0} | {} | {} output files under cutouts/ |",
        cold.seconds, cold.max_rss_mib, cold.ran, outputs
    );
    println!(
        "| no-op build (median of 3) | {:.3} | {:.0} | 0 | {} targets checked |",
        noop,
        noops.iter().map(|r| r.max_rss_mib).fold(0.0, f64::max),
        noops[0].skipped
    );
    println!(
        "| floor: stat each file of the field once, nothing else (median of 3) | {:.3} | | | {} files, {jobs} threads: {:.2} µs per file (one file stat'ed {} times: {:.2} µs); no-op / floor = {:.2} |",
        floor.seconds,
        floor.files,
        floor.seconds * 1e6 / floor.files.max(1) as f64,
        floor.files,
        floor.same_file_seconds * 1e6 / floor.files.max(1) as f64,
        noop / floor.seconds
    );
    println!(
        "| --dry-run (median of 3) | {:.3} | {:.0} | 0 | |",
        median(dry.iter().map(|r| r.seconds).collect()),
        dry.iter().map(|r| r.max_rss_mib).fold(0.0, f64::max)
    );
    println!(
        "| no-op, --full-check (median of 3) | {:.3} | {:.0} | 0 | every target evaluated |",
        median(full.iter().map(|r| r.seconds).collect()),
        full.iter().map(|r| r.max_rss_mib).fold(0.0, f64::max)
    );
    println!(
        "| --dry-run --full-check (median of 3) | {:.3} | {:.0} | 0 | |",
        median(full_dry.iter().map(|r| r.seconds).collect()),
        full_dry.iter().map(|r| r.max_rss_mib).fold(0.0, f64::max)
    );
    println!(
        "| --set cutoff=-5 | {:.3} | {:.0} | {} | actions took {:.3} s of CPU; overhead ≈ {:.3} s |",
        change.seconds,
        change.max_rss_mib,
        change.ran,
        change.work_seconds,
        (change.seconds - change.work_seconds / jobs as f64).max(0.0)
    );
    println!("| cache on disk | | | | {cache_mib:.1} MiB for {targets} targets |");
    Ok(0)
}
