//! Crash safety of the real science pipeline on a simulated field: the coordinator killed with
//! SIGKILL (and every fifth time SIGINT) at 50 moments chosen by a fixed-seed generator across a
//! cold build, with the local executor and with the Slurm executor. Every rerun completes, every
//! output equals a clean build's bytes, no target that was recorded before the kill runs again,
//! the cache always opens cleanly, and (local executor) the rebuild removes what the killed build
//! was writing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// Digest of every file under `dir` except the given inputs, by relative path.
fn outputs(dir: &Path, inputs: &[String]) -> BTreeMap<String, blake3::Hash> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .ok()?
                .to_string_lossy()
                .to_string();
            let name = e.file_name().to_string_lossy().to_string();
            (!inputs.contains(&rel) && !is_bookkeeping(&name))
                .then(|| (rel, blake3::hash(&std::fs::read(e.path()).unwrap())))
        })
        .collect()
}

/// A copy of the pristine field made of hard links (builds never write their inputs).
fn link_copy(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A fixed-seed generator of fractions in [0, 1).
fn fractions(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The pristine field's files, relative to it (inputs, not outputs).
fn input_files(pristine: &Path) -> Vec<String> {
    walkdir::WalkDir::new(pristine)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(pristine)
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect()
}

/// The outputs under `dir` equal `reference`, file for file.
fn assert_clean_bytes(
    dir: &Path,
    inputs: &[String],
    reference: &BTreeMap<String, blake3::Hash>,
    trial: usize,
) {
    let got = outputs(dir, inputs);
    for (k, v) in reference {
        assert_eq!(
            got.get(k),
            Some(v),
            "trial {trial}: {k} differs from a clean build"
        );
    }
    assert_eq!(
        got.len(),
        reference.len(),
        "trial {trial}: other files than a clean build"
    );
}

#[test]
fn killed_pipeline_builds_resume_to_clean_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_KILL";
    let pristine = simulate(&tmp.path().join("pristine"), &SimOptions::small(field, 21)).unwrap();
    let inputs = input_files(&pristine);

    // The reference: a clean build, and how long one takes (the least of three: a build slowed
    // by a hiccup of the machine would put most kills after the end, and the trials would
    // test little).
    let mut span = f64::INFINITY;
    for k in 0..3 {
        let clean = tmp.path().join(format!("clean{k}"));
        std::fs::create_dir_all(&clean).unwrap();
        link_copy(&pristine, &clean);
        let t0 = Instant::now();
        let (out, _) = build_real(
            &tmp.path().join(format!("cache-clean{k}")),
            &clean,
            field,
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        span = span.min(t0.elapsed().as_secs_f64());
    }
    let reference = outputs(&tmp.path().join("clean0").join(field), &inputs);

    let mut next = fractions(0x5EED);
    let (trials, mut mid_build) = (50, 0);
    for trial in 0..trials {
        let data = tmp.path().join(format!("t{trial}"));
        std::fs::create_dir_all(&data).unwrap();
        link_copy(&pristine, &data);
        let cache = data.join("cache");
        let mut child = arrakis(&cache)
            .args(["build", field, "--quiet", "--datadir"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(next() * span * 1.1));
        let sigint = trial % 5 == 4;
        let status = interrupt(&mut child, sigint, trial);
        let dir = data.join(field);
        let before = recorded_ok(&cache, field, &dir);
        if !before.is_empty() && status.code() != Some(0) {
            mid_build += 1;
        }
        let (out, r) = build_real(&cache, &data, field, &[]);
        assert!(out.status.success(), "trial {trial}: {}", text(&out));
        let ran: Vec<&String> = r
            .iter()
            .filter(|(_, s)| *s == "ran")
            .map(|(id, _)| id)
            .collect();
        let redone: Vec<&&String> = ran.iter().filter(|id| before.contains(**id)).collect();
        assert!(
            redone.is_empty(),
            "trial {trial}: recorded targets ran again: {redone:?}"
        );
        assert_clean_bytes(&dir, &inputs, &reference, trial);
        // What the killed build was writing went when the next build took the field.
        let left: Vec<_> = walkdir::WalkDir::new(&dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy();
                arrakis::atomic::leftover_pid(&name, e.file_type().is_dir()).is_some()
            })
            .map(|e| e.path().display().to_string())
            .collect();
        assert!(
            left.is_empty(),
            "trial {trial}: the killed build's leftovers are still there after the rebuild: {left:?}"
        );
        std::fs::remove_dir_all(&data).unwrap();
    }
    assert!(
        mid_build >= trials / 3,
        "only {mid_build} of {trials} kills landed mid-build (a kill counts when the build had not finished and the cache already held records: if builds finish within the first kill moments or records reach disk too late — sled's flush_every_ms in cache.rs — the trials test nothing)"
    );
}

/// Jobs of `job_name` still pending or running.
fn live_jobs(job_name: &str) -> usize {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-n", job_name, "-o", "%i"])
        .output()
        .expect("squeue: start the test cluster with `bash .ci/slurm-up` (.ci/run does)");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The same on the Slurm executor. Kills come in groups of five on one field, each build
/// resuming the last one's state (a SIGKILLed coordinator leaves its jobs running; a SIGINTed one
/// cancels them); after each group a build runs to the end and must redo no recorded target and
/// give a clean build's bytes. Records only ever grow from one kill to the next.
#[test]
fn killed_slurm_builds_resume_to_clean_bytes() {
    let _cluster = cluster_shared();
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_SKILL";
    let opts = SimOptions {
        beams: 2,
        sources: 8,
        nchan: 24,
        npix: 96,
        ..SimOptions::small(field, 5)
    };
    let pristine = simulate(&tmp.path().join("pristine"), &opts).unwrap();
    let inputs = input_files(&pristine);
    let job = "arrakis-killtrials";
    let cfg = tmp.path().join("slurm.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 2\n  processes: 2\n  memory: 2GiB\n  walltime: '00:10:00'\n  job_name: {job}\n  log_directory: {}\nadapt_kwargs:\n  maximum_jobs: 4\n  target_duration: 1s\n  interval: 200ms\n",
            tmp.path().join("logs").display()
        ),
    )
    .unwrap();
    let slurm = ["--dask-config", cfg.to_str().unwrap()];

    let clean = tmp.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    link_copy(&pristine, &clean);
    let (out, _) = build_real(&tmp.path().join("cache-clean"), &clean, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let reference = outputs(&clean.join(field), &inputs);
    // How long a cold Slurm build takes, to spread the kills over it.
    let timed = tmp.path().join("timed");
    std::fs::create_dir_all(&timed).unwrap();
    link_copy(&pristine, &timed);
    let t0 = Instant::now();
    let (out, _) = build_real(&timed.join("cache"), &timed, field, &slurm);
    assert!(out.status.success(), "{}", text(&out));
    let span = t0.elapsed().as_secs_f64();
    assert_clean_bytes(&timed.join(field), &inputs, &reference, 0);

    let mut next = fractions(0x51A7);
    let (groups, per_group, mut mid_build) = (10, 5, 0);
    for g in 0..groups {
        let data = tmp.path().join(format!("g{g}"));
        std::fs::create_dir_all(&data).unwrap();
        link_copy(&pristine, &data);
        let cache = data.join("cache");
        let dir = data.join(field);
        let mut recorded = std::collections::BTreeSet::new();
        for k in 0..per_group {
            let trial = g * per_group + k;
            let mut child = arrakis(&cache)
                .args(["build", field, "--quiet", "--datadir"])
                .arg(&data)
                .args(slurm)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_secs_f64(next() * span * 0.4));
            let status = interrupt(&mut child, trial % 5 == 4, trial);
            let now = recorded_ok(&cache, field, &dir);
            let lost: Vec<&String> = recorded.difference(&now).collect();
            assert!(lost.is_empty(), "trial {trial}: records lost: {lost:?}");
            if status.code() != Some(0) && now.len() > recorded.len() {
                mid_build += 1;
            }
            recorded = now;
        }
        let (out, r) = build_real(&cache, &data, field, &slurm);
        assert!(out.status.success(), "group {g}: {}", text(&out));
        let redone: Vec<&String> = r
            .iter()
            .filter(|(id, s)| *s == "ran" && recorded.contains(*id))
            .map(|(id, _)| id)
            .collect();
        assert!(
            redone.is_empty(),
            "group {g}: recorded targets ran again: {redone:?}"
        );
        assert_clean_bytes(&dir, &inputs, &reference, g);
        // Orphaned jobs of the killed builds finish before their directory goes.
        let t1 = Instant::now();
        while live_jobs(job) > 0 && t1.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_clean_bytes(&dir, &inputs, &reference, g);
        std::fs::remove_dir_all(&data).unwrap();
    }
    assert!(
        mid_build >= groups * per_group / 3,
        "only {mid_build} of {} kills landed mid-build",
        groups * per_group
    );
}
