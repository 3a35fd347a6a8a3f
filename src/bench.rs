//! Benchmarks run by `arrakis bench`.
//!
//! `bench engine`: the engine's own overhead on a synthetic field with the pipeline's shape
//! (`benches/engine_rules/`: 36 beams × 3 Stokes cutout targets with one output per island in the
//! beam; per island 3 mosaics and frion; per component rmsynth and rmclean; one catalogue), every
//! action the `stamp` builtin. Each phase runs the real binary as a child process so wall time and
//! peak memory (`wait4` rusage) are the whole program's.
//! Must never: be run from tests (timings belong in BENCHMARKS.md, not in assertions).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

const RULES: &[(&str, &str)] = &[
    (
        "cutout.yaml",
        include_str!("../benches/engine_rules/cutout.yaml"),
    ),
    (
        "linmos.yaml",
        include_str!("../benches/engine_rules/linmos.yaml"),
    ),
    (
        "frion.yaml",
        include_str!("../benches/engine_rules/frion.yaml"),
    ),
    (
        "rmsynth.yaml",
        include_str!("../benches/engine_rules/rmsynth.yaml"),
    ),
    (
        "rmclean.yaml",
        include_str!("../benches/engine_rules/rmclean.yaml"),
    ),
    (
        "catalogue.yaml",
        include_str!("../benches/engine_rules/catalogue.yaml"),
    ),
];

const FIELD: &str = "BENCH_0000-00A";

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

struct Run {
    seconds: f64,
    max_rss_mib: f64,
    ran: usize,
    skipped: usize,
    work_seconds: f64,
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

fn run_phase(dir: &Path, jobs: usize, extra: &[&str]) -> Result<Run> {
    let exe = std::env::current_exe()?;
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let start = Instant::now();
    let child = Command::new(exe)
        .arg("--cache")
        .arg(dir.join("cache"))
        .args([
            "build",
            FIELD,
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
fn timed<T>(n: usize, mut f: impl FnMut() -> T) -> (T, f64, f64) {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
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

/// Write `n` RACS-low spectra (288 channels, 743.5–1030.5 MHz): a curved power-law Stokes I,
/// one Faraday-thin component, Gaussian noise; deterministic for a given index.
pub fn write_racs_spectra(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for s in 0..n {
        let mut state = 0x5EED_0000_u64 + s as u64;
        let mut uniform = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let rm = -300.0 + 600.0 * uniform();
        let (p, psi) = (0.02 + 0.1 * uniform(), std::f64::consts::PI * uniform());
        let mut text = String::new();
        for k in 0..288 {
            let f = 743.5e6 + 1e6 * k as f64;
            let x: f64 = f / 887.5e6;
            let i = 0.05 * x.powf(-0.8);
            let l2 = (crate::science::C_M_S / f).powi(2);
            let sigma = 0.0005;
            let mut g = || {
                (-2.0 * uniform().max(1e-300).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * uniform()).cos()
            };
            let (ni, nq, nu) = (g(), g(), g());
            text.push_str(&format!(
                "{f:.17e} {:.17e} {:.17e} {:.17e} {sigma:.17e} {sigma:.17e} {sigma:.17e}\n",
                i + sigma * ni,
                p * i * (2.0 * (psi + rm * l2)).cos() + sigma * nq,
                p * i * (2.0 * (psi + rm * l2)).sin() + sigma * nu
            ));
        }
        let path = dir.join(format!("spec{s:04}.dat"));
        std::fs::write(&path, text)?;
        files.push(path);
    }
    Ok(files)
}

/// Run a reference script (written into `dir` from its embedded text) with the Python that has
/// RM-Tools (`python`, else `$ARRAKIS_PYTHON`, else the venv `.ci/run` makes); its stdout.
fn run_reference(
    python: Option<&Path>,
    dir: &Path,
    (name, text): (&str, &str),
    args: &[std::ffi::OsString],
) -> Result<String> {
    let py = python
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ARRAKIS_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/opt/arrakis-venv/bin/python"));
    let script = dir.join(name);
    std::fs::write(&script, text)?;
    let out = Command::new(&py)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (set ARRAKIS_PYTHON to a Python with RM-Tools)",
                py.display()
            )
        })?;
    if !out.status.success() {
        return Err(anyhow!(
            "{name} failed under {}: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `arrakis bench rm1d`: RM synthesis + RM-CLEAN per spectrum, arrakis vs RM-Tools' API on the
/// same spectra in the same run (Arrakis settings: poly_ord 3, n_samples 5, fitted RMSF,
/// cutoff −8, gain 0.1).
pub fn rm1d(n: usize, python: Option<&Path>, rounds: usize, no_reference: bool) -> Result<i32> {
    use crate::science::rm_clean::CleanParams;
    use crate::science::rm_synthesis::SynthParams;
    use crate::science::stokes_i::FitFunction;
    let tmp = tempfile::tempdir()?;
    let files = write_racs_spectra(tmp.path(), n)?;
    let data: Vec<_> = files
        .iter()
        .map(|f| crate::stages::rm1d::read_spectrum(f).map_err(|e| anyhow!(e)))
        .collect::<Result<_>>()?;
    let p = SynthParams {
        poly_ord: 3,
        fit_function: FitFunction::Log,
        n_samples: 5.0,
        dphi: None,
        phi_max: None,
        weight_variance: true,
        fit_rmsf: true,
    };
    let c = CleanParams {
        cutoff: -8.0,
        max_iter: 10000,
        gain: 0.1,
        window: None,
    };
    let (sink, _, fastest) = timed(rounds, || {
        let mut sink = 0.0;
        for d in &data {
            let (s, cs) = crate::stages::rm1d::synth_and_clean(d, &p, &c);
            sink += s.peak.phiPeakPIfit_rm2 + cs.peak.ampPeakPIfit;
        }
        sink
    });
    std::hint::black_box(sink);
    let ours = fastest / n as f64;
    if no_reference {
        println!(
            "arrakis: {:.3} ms per spectrum (1 thread, best of {})",
            ours * 1e3,
            rounds.max(1)
        );
        return Ok(0);
    }
    let settings = tmp.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"poly_ord": 3, "n_samples": 5, "fit_rmsf": true, "cutoff": -8, "max_iter": 10000, "gain": 0.1}"#,
    )?;
    let mut args = vec![settings.into_os_string()];
    args.extend(files.iter().map(|f| f.clone().into_os_string()));
    let out = run_reference(
        python,
        tmp.path(),
        (
            "rmtools_bench.py",
            include_str!("../tests/py/rmtools_bench.py"),
        ),
        &args,
    )?;
    let theirs: f64 = out.trim().parse().context("RM-Tools benchmark output")?;
    println!("| RM synthesis + RM-CLEAN, 1 spectrum (288 ch, 815 depths) | ms per spectrum |");
    println!("|---|---:|");
    println!("| arrakis (1 thread) | {:.3} |", ours * 1e3);
    println!(
        "| RM-Tools 1.5.0 run_rmsynth + run_rmclean | {:.3} |",
        theirs * 1e3
    );
    println!("| ratio | {:.0}x |", theirs / ours);
    Ok(0)
}

/// One build of a benchmark field by the real binary: wall time, targets run, Slurm jobs.
struct FieldBuild {
    seconds: f64,
    ran: usize,
    work_seconds: f64,
    jobs: usize,
    peak_in_flight: usize,
}

fn build_field(
    root: &Path,
    field: &str,
    jobs: usize,
    extra: &[&std::ffi::OsStr],
) -> Result<FieldBuild> {
    let exe = std::env::current_exe()?;
    let report = root.join("report.json");
    let start = Instant::now();
    let out = Command::new(exe)
        .arg("--cache")
        .arg(root.join("cache"))
        .args([
            "build",
            field,
            "--quiet",
            "-j",
            &jobs.to_string(),
            "--datadir",
        ])
        .arg(root.join("data"))
        .arg("--report")
        .arg(&report)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()?;
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(anyhow!("benchmark build {extra:?} failed:\n{stderr}"));
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    let mut b = FieldBuild {
        seconds,
        ran: 0,
        work_seconds: 0.0,
        jobs: 0,
        peak_in_flight: 0,
    };
    for t in v["targets"].as_array().into_iter().flatten() {
        if t["status"].as_str() == Some("ran") {
            b.ran += 1;
            b.work_seconds += t["seconds"].as_f64().unwrap_or(0.0);
        }
    }
    // "arrakis: N Slurm job(s) submitted, at most M in flight"
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("arrakis: ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            if w.len() >= 8 && w[1] == "Slurm" {
                b.jobs += w[0].parse::<usize>().unwrap_or(0);
                b.peak_in_flight = b.peak_in_flight.max(w[6].parse().unwrap_or(0));
            }
        }
    }
    Ok(b)
}

/// Every file under `dir` with its bytes' hash, by relative path.
fn tree_hashes(dir: &Path) -> Result<std::collections::BTreeMap<PathBuf, blake3::Hash>> {
    let mut m = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(dir) {
        let e = e?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir)?.to_path_buf();
            m.insert(rel, blake3::hash(&std::fs::read(e.path())?));
        }
    }
    Ok(m)
}

/// `arrakis bench slurm`: the same simulated field built by the local executor and by the Slurm
/// executor on the cluster `sbatch` reaches, in the same run; wall time, jobs submitted, the
/// scheduling overhead per target, and a byte comparison of the two output trees.
pub fn slurm(
    sim: &crate::simulate::SimOptions,
    dir: Option<&Path>,
    dask_config: Option<&Path>,
    jobs: Option<usize>,
) -> Result<i32> {
    let tmp;
    let dir = match dir {
        Some(d) => std::path::absolute(d)?,
        None => {
            // Under the working directory, not /tmp: Slurm jobs must see the same files.
            tmp = tempfile::tempdir_in(".").context("cannot make a scratch directory here")?;
            tmp.path().to_path_buf()
        }
    };
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let (local, remote) = (dir.join("local"), dir.join("slurm"));
    for root in [&local, &remote] {
        let _ = std::fs::remove_dir_all(root);
        crate::simulate::simulate(&root.join("data"), sim).map_err(|e| anyhow!(e))?;
    }
    let config = match dask_config {
        Some(c) => c.to_path_buf(),
        None => {
            let c = dir.join("bench-slurm.yaml");
            std::fs::write(
                &c,
                format!(
                    "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 2\n  processes: 2\n  memory: 4GiB\n  walltime: '01:00:00'\n  job_name: arrakis-bench\n  log_directory: {}\nadapt_kwargs:\n  minimum: 1\n  maximum_jobs: 4\n  target_duration: 10s\n  interval: 1s\n",
                    dir.join("logs").display()
                ),
            )?;
            c
        }
    };
    eprintln!(
        "bench slurm: {} sources, {} beams, {}² px × {} channels; local -j {jobs}; Slurm config {}",
        sim.sources,
        sim.beams,
        sim.npix,
        sim.nchan,
        config.display()
    );
    let l = build_field(&local, &sim.field, jobs, &[])?;
    let s = build_field(
        &remote,
        &sim.field,
        jobs,
        &["--dask-config".as_ref(), config.as_os_str()],
    )?;
    let same = tree_hashes(&local.join("data"))? == tree_hashes(&remote.join("data"))?;
    println!("| executor | wall s | targets run | action CPU s | Slurm jobs | most in flight |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| local (-j {jobs}) | {:.2} | {} | {:.2} | 0 | |",
        l.seconds, l.ran, l.work_seconds
    );
    println!(
        "| Slurm | {:.2} | {} | {:.2} | {} | {} |",
        s.seconds, s.ran, s.work_seconds, s.jobs, s.peak_in_flight
    );
    println!(
        "\nScheduling overhead per target: {:.1} ms ((Slurm wall − local wall) / targets); outputs {}.",
        1e3 * (s.seconds - l.seconds) / s.ran.max(1) as f64,
        if same {
            "byte-identical"
        } else {
            "DIFFER"
        }
    );
    Ok(if same { 0 } else { 1 })
}

/// `arrakis bench rm3d`: 3D RM synthesis of an `npix`² × 288-channel RACS-low cube (815
/// Faraday depths with the Arrakis settings) and 3D RM-CLEAN of its first `clean_npix`² pixels,
/// arrakis's kernels vs RM-Tools' `run_rmsynth` / `do_rmclean_hogbom` on the same cube in the
/// same run. Reports wall times, the ratio, and the synthesis's achieved GFLOP/s (8 flops per
/// channel × depth × pixel).
pub fn rm3d(npix: usize, clean_npix: usize, python: Option<&Path>, repeats: usize) -> Result<i32> {
    use crate::fits::{Cube, Header};
    use crate::science::rm3d::{rmclean3d, rmsynth3d, Synth3dParams, Transform};
    let repeats = repeats.max(1);
    let nchan = 288;
    let freqs: Vec<f64> = (0..nchan).map(|k| 743.5e6 + 1e6 * k as f64).collect();
    let l2 = crate::science::rm_synthesis::lambda_sq(&freqs);
    let n = npix * npix;
    let mut rng = crate::simulate::Rng::new(42);
    let sigma: Vec<f64> = (0..nchan)
        .map(|c| 0.001 * (1.0 + 0.2 * (c as f64 / 11.0).sin()))
        .collect();
    let mut q = vec![0f32; nchan * n];
    let mut u = vec![0f32; nchan * n];
    // Noise everywhere and a Faraday-thin source in every pixel (RM from −200 to 200 and
    // amplitude from 5 to 50 σ of the FDF), so that CLEAN has work in every pixel.
    for c in 0..nchan {
        for i in 0..n {
            let (mut qv, mut uv) = (sigma[c] * rng.gauss(), sigma[c] * rng.gauss());
            let rm = -200.0 + 400.0 * (i as f64 * 0.618_034).fract();
            let amp = 0.0003 + 0.003 * (i as f64 * 0.414_214).fract();
            qv += amp * (2.0 * rm * l2[c]).cos();
            uv += amp * (2.0 * rm * l2[c]).sin();
            q[c * n + i] = qv as f32;
            u[c * n + i] = uv as f32;
        }
    }
    let tmp = tempfile::tempdir()?;
    let mut header = Header::default();
    crate::wcs::Wcs {
        crval_ra: 180.0,
        crval_dec: -30.0,
        crpix_x: npix as f64 / 2.0,
        crpix_y: npix as f64 / 2.0,
        cdelt_x: -0.001,
        cdelt_y: 0.001,
        crval_freq: freqs[0],
        crpix_freq: 1.0,
        cdelt_freq: 1e6,
    }
    .to_header(&mut header);
    let (qf, uf, nf) = (
        tmp.path().join("q.fits"),
        tmp.path().join("u.fits"),
        tmp.path().join("noise.dat"),
    );
    for (path, data) in [(&qf, &q), (&uf, &u)] {
        Cube {
            nx: npix,
            ny: npix,
            nchan,
            data: data.clone(),
            header: header.clone(),
        }
        .write(path)
        .map_err(|e| anyhow!(e.to_string()))?;
    }
    std::fs::write(
        &nf,
        sigma
            .iter()
            .map(|s| format!("{s:.9e}\n"))
            .collect::<String>(),
    )?;
    let weights: Vec<f64> = sigma.iter().map(|s| 1.0 / (s * s)).collect();
    let params = |transform| Synth3dParams {
        dphi: None,
        phi_max: None,
        n_samples: 5.0,
        fit_rmsf: false,
        transform,
    };
    // The default (auto: the NUFFT for this cube) first, so that its first run pays for fresh
    // memory as a one-off `rmsynth3d` does; then the direct transform.
    let p = params(Transform::Auto);
    let (s, ours_synth_first, ours_synth) =
        timed(repeats, || rmsynth3d(&q, &u, n, &freqs, &weights, &p));
    let nphi = s.axes.phi.len();
    let auto = Transform::Auto.resolve(nphi, nchan);
    let p = params(Transform::Direct);
    let (direct, direct_first, direct_fastest) =
        timed(repeats, || rmsynth3d(&q, &u, n, &freqs, &weights, &p));
    // How far the default's FDF is from the direct transform's, relative to each pixel's peak.
    let mut worst = 0f64;
    for i in 0..n {
        let amp =
            |v: (&[f32], &[f32]), k: usize| (v.0[k * n + i] as f64).hypot(v.1[k * n + i] as f64);
        let peak = (0..nphi)
            .map(|k| amp((&direct.fdf_re, &direct.fdf_im), k))
            .fold(0.0, f64::max);
        let diff = (0..nphi)
            .map(|k| {
                let (dr, di) = (
                    s.fdf_re[k * n + i] as f64 - direct.fdf_re[k * n + i] as f64,
                    s.fdf_im[k * n + i] as f64 - direct.fdf_im[k * n + i] as f64,
                );
                dr.hypot(di)
            })
            .fold(0.0, f64::max);
        worst = worst.max(diff / peak);
    }
    drop(direct);
    // By the direct transform's count: 8 flops per channel × depth × pixel.
    let gflops_in = |secs: f64| 8.0 * nchan as f64 * nphi as f64 * n as f64 / secs / 1e9;
    let gflops = gflops_in(direct_fastest);

    // CLEAN of the first clean_npix² pixels, 8σ absolute cutoff.
    let dfdf = 1.0 / weights.iter().sum::<f64>().sqrt();
    let cutoff = 8.0 * dfdf;
    let m = clean_npix.min(npix);
    let pick = |v: &[f32], depth: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(depth * m * m);
        for k in 0..depth {
            for y in 0..m {
                let row = k * n + y * npix;
                out.extend_from_slice(&v[row..row + m]);
            }
        }
        out
    };
    let nphi2 = s.axes.phi2.len();
    let (rmsf_re, rmsf_im, fwhm) = s.rmsf_cubes();
    let (fr, fi) = (pick(&s.fdf_re, nphi), pick(&s.fdf_im, nphi));
    let (rr, ri) = (pick(&rmsf_re, nphi2), pick(&rmsf_im, nphi2));
    let fwhm = pick(&fwhm, 1);
    let (c, ours_clean_first, ours_clean) = timed(repeats, || {
        rmclean3d(
            (&fr, &fi),
            (&rr, &ri),
            &fwhm,
            &s.axes.phi,
            m * m,
            cutoff,
            1000,
            0.1,
        )
    });
    let ours_iters: f64 = c.n_iter.iter().map(|&x| x as f64).sum();

    let args: Vec<std::ffi::OsString> = vec![
        qf.into(),
        uf.into(),
        nf.into(),
        format!("{cutoff:e}").into(),
        m.to_string().into(),
        repeats.to_string().into(),
    ];
    let out = run_reference(
        python,
        tmp.path(),
        (
            "rmtools3d_bench.py",
            include_str!("../tests/py/rmtools3d_bench.py"),
        ),
        &args,
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let threads = rayon::current_num_threads();
    println!(
        "3D cube {npix}x{npix}x{nchan}, {nphi} Faraday depths (RM-Tools: {}); CLEAN on {m}x{m} pixels, cutoff 8 sigma, gain 0.1",
        g("nphi")
    );
    println!(
        "First run in the process (what a one-off run costs, page faults included) and fastest of {repeats} (memory reused):"
    );
    println!("| kernel | run | arrakis ({threads} threads) | RM-Tools | ratio |");
    println!("|---|---|---:|---:|---:|");
    for (what, run, ours, theirs) in [
        (
            format!("{auto:?}, the default"),
            "first",
            ours_synth_first,
            g("synth_first_s"),
        ),
        (
            format!("{auto:?}, the default"),
            "fastest",
            ours_synth,
            g("synth_s"),
        ),
        (
            "Direct".to_string(),
            "first",
            direct_first,
            g("synth_first_s"),
        ),
        (
            "Direct".to_string(),
            "fastest",
            direct_fastest,
            g("synth_s"),
        ),
    ] {
        let gf = gflops_in(ours);
        println!(
            "| RM synthesis 3D ({what}), s | {run} | {ours:.3} ({gf:.1} GFLOP/s) | {theirs:.3} | {:.1}x |",
            theirs / ours
        );
    }
    let iters = g("clean_iters").max(1.0);
    for (run, ours, theirs) in [
        ("first", ours_clean_first, g("clean_first_s")),
        ("fastest", ours_clean, g("clean_s")),
    ] {
        let (ours_it, theirs_it) = (ours / ours_iters.max(1.0), theirs / iters);
        println!(
            "| RM-CLEAN 3D, µs per iteration | {run} | {:.2} ({ours_iters:.0} iterations) | {:.2} ({iters:.0} iterations) | {:.0}x |",
            ours_it * 1e6,
            theirs_it * 1e6,
            theirs_it / ours_it
        );
    }
    println!(
        "\nThe default's FDF differs from the direct transform's by at most {worst:.1e} of the pixel's peak |FDF| (GFLOP/s above: the direct transform's 8 flops per channel × depth × pixel, whichever way it was computed)"
    );
    if let Some((peak, how)) = fp32_peak_gflops() {
        println!(
            "FP32 peak of this CPU ≈ {peak:.0} GFLOP/s ({how}); the direct transform at {gflops:.1} GFLOP/s by the 8-flop count is {:.0} % of it (the kernel does half those flops: the symmetric depth axis gives ±φ from one product, so {:.0} % of peak in flops executed)",
            100.0 * gflops / peak,
            50.0 * gflops / peak
        );
    }
    Ok(0)
}

/// FP32 peak: logical CPUs × clock × SIMD lanes (16 with AVX-512, 8 with AVX2) × 2 flops per
/// FMA × 2 FMA units per core. The clock is the one this core runs at, measured (a chain of
/// dependent adds, one per cycle), beside the nominal one from /proc/cpuinfo (what `lscpu`
/// reads), which in a virtual machine is the time-stamp counter's rate, not the boost clock
/// the cores actually run at.
fn fp32_peak_gflops() -> Option<(f64, String)> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let cpus = text.lines().filter(|l| l.starts_with("processor")).count();
    let nominal: Option<f64> = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
        .map(|mhz: f64| mhz / 1000.0);
    let flags = text.lines().find(|l| l.starts_with("flags"))?;
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let lanes = if has("avx512f") {
        16.0
    } else if has("avx2") && has("fma") {
        8.0
    } else {
        4.0
    };
    let ghz = measured_clock_ghz().or(nominal)?;
    let peak = cpus as f64 * ghz * lanes * 2.0 * 2.0;
    let clock = match nominal {
        Some(n) => format!("{ghz:.2} GHz measured, {n:.2} GHz nominal"),
        None => format!("{ghz:.2} GHz measured"),
    };
    Some((
        peak,
        format!("{cpus} CPUs × {clock} × {lanes} lanes × 2 flops/FMA × 2 FMA units"),
    ))
}

/// The clock this core runs at, in GHz: the best of a few timings of 10⁸ dependent
/// register-to-register integer adds (one cycle each on every x86-64 core of the last decade;
/// adds of an immediate would not do, since recent Intel cores fold those at rename).
fn measured_clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let iterations: u64 = 10_000_000;
        let best = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                let mut x = 0u64;
                // SAFETY: register arithmetic only, on the registers named.
                unsafe {
                    std::arch::asm!(
                        "2:",
                        "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                        "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                        "add {x}, {y}", "add {x}, {y}",
                        "dec {n}",
                        "jnz 2b",
                        x = inout(reg) x,
                        y = in(reg) 1u64,
                        n = inout(reg) iterations => _,
                        options(nomem, nostack),
                    );
                }
                std::hint::black_box(x);
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(10.0 * iterations as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Seconds to read `path` to the end in 1 MiB blocks (what `cat FILE > /dev/null` does).
fn read_through(path: &Path) -> Result<f64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    while f.read(&mut buf)? > 0 {}
    Ok(t0.elapsed().as_secs_f64())
}

/// `arrakis bench io`: cutout and input-hashing throughput on big beam cubes, against reading
/// the same files through (`cat`) in the same run, page cache warm.
pub fn io(npix: usize, nchan: usize, sources: usize, dir: Option<&Path>) -> Result<i32> {
    let tmp;
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let _ = std::fs::remove_dir_all(root.join("cache"));
    let _ = std::fs::remove_dir_all(root.join("data"));
    let field = "BENCH_IO";
    let opts = crate::simulate::SimOptions {
        beams: 1,
        sources,
        nchan,
        npix,
        ..crate::simulate::SimOptions::small(field, 3)
    };
    eprintln!("bench io: simulating one beam of {npix}² px × {nchan} channels, {sources} islands");
    let fdir = crate::simulate::simulate(&root.join("data"), &opts).map_err(|e| anyhow!(e))?;
    let cubes: Vec<PathBuf> = ["i", "q", "u"]
        .iter()
        .map(|s| {
            fdir.join(format!(
                "image.restored.{s}.{field}.contcube.beam00.conv.fits"
            ))
        })
        .collect();
    let bytes: u64 = cubes
        .iter()
        .map(|c| std::fs::metadata(c).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mb = bytes as f64 / 1e6;
    // Warm the page cache, then time the plain read of the three cubes.
    for c in &cubes {
        read_through(c)?;
    }
    let cat: f64 = (0..3)
        .map(|_| cubes.iter().map(|c| read_through(c)).sum::<Result<f64>>())
        .collect::<Result<Vec<f64>>>()
        .map(median)?;
    // The cube reader alone: every plane of the three cubes, as the cutout stage reads rows.
    let reader = median(
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                for c in &cubes {
                    let mut r = crate::fits::PlaneReader::open(c).map_err(|e| anyhow!(e))?;
                    let mut buf = vec![0f32; r.nx * r.ny];
                    for k in 0..r.nchan {
                        r.read_plane(k, &mut buf).map_err(|e| anyhow!(e))?;
                    }
                    std::hint::black_box(&buf);
                }
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<f64>>>()?,
    );
    // The three cutout targets (one per Stokes cube), as a build runs them.
    let b = build_field(
        &root,
        field,
        2,
        &[
            std::ffi::OsStr::new("--until"),
            std::ffi::OsStr::new("cutout"),
        ],
    )?;
    let cutouts = walkdir::WalkDir::new(fdir.join("cutouts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "fits"))
        .count();
    // Input hashing: arrakis's file hash (memory-mapped, multithreaded BLAKE3 for big files)
    // against single-threaded BLAKE3 over a buffered read.
    let hash_mt = median(
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                for c in &cubes {
                    crate::hash::hash_file(c)?;
                }
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<f64>>>()?,
    );
    let hash_1t = {
        use std::io::Read;
        let t0 = Instant::now();
        for c in &cubes {
            let mut h = blake3::Hasher::new();
            let mut f = std::fs::File::open(c)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        t0.elapsed().as_secs_f64()
    };
    println!(
        "{:.0} MB in 3 beam cubes ({npix}² px × {nchan} ch); {sources} islands, {cutouts} cutout files\n",
        mb
    );
    println!("| what | seconds | MB/s | vs cat |");
    println!("|---|---:|---:|---:|");
    let row = |what: &str, s: f64| {
        println!("| {what} | {s:.3} | {:.0} | {:.2} |", mb / s, cat / s);
    };
    row("cat (read through, 1 thread)", cat);
    row("cube reader: every plane (1 thread)", reader);
    row(
        "cutout: 3 targets, seconds summed (1 thread each)",
        b.work_seconds,
    );
    row("cutout build wall (-j 2, 3 targets + beams)", b.seconds);
    row("hash: arrakis hash_file (mmap, rayon)", hash_mt);
    row("hash: BLAKE3 one thread, buffered read", hash_1t);
    Ok(0)
}
