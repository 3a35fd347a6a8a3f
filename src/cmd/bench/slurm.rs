//! `arrakis bench slurm`: one simulated field built with the local executor and with the
//! Slurm executor; the outputs must agree byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

/// One build of a benchmark field by the real binary: wall time, targets run, Slurm jobs.
pub(crate) struct FieldBuild {
    pub(crate) seconds: f64,
    pub(crate) ran: usize,
    pub(crate) work_seconds: f64,
    pub(crate) jobs: usize,
    pub(crate) peak_in_flight: usize,
}

pub(crate) fn build_field(
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
