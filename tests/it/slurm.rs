//! The Slurm executor on a real Slurm (the one-node cluster `.ci/slurm-up` starts): the same
//! outputs and records as a local build, only stale targets resubmitted, the adapt bound on
//! jobs in flight, failed/cancelled/timed-out jobs retried, and a killed coordinator's finished
//! work taken from the receipts; sbatch outages waited out with backoff; a worker killed mid-batch
//! and a node drained during a build lose nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

fn require_slurm() {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false);
    assert!(ok, "no Slurm answers here: start the test cluster with `bash .ci/slurm-up` (as root; .ci/run does)");
}

/// A SLURMCluster config with a job name of its own (tests run side by side on one cluster):
/// small jobs, logs under `dir/logs`, and `kwargs` (YAML values) replacing or adding keys.
fn config(dir: &Path, job_name: &str, kwargs: &[(&str, String)], max_jobs: usize) -> PathBuf {
    let mut kw: Vec<(&str, String)> = vec![
        ("cores", "2".into()),
        ("processes", "2".into()),
        ("name", "spice-worker".into()),
        ("job_name", job_name.into()),
        ("memory", "1GiB".into()),
        ("walltime", "'00:10:00'".into()),
        ("log_directory", dir.join("logs").display().to_string()),
        ("interface", "ib0".into()),
    ];
    for (k, v) in kwargs {
        match kw.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => kw.push((k, v.clone())),
        }
    }
    let body: String = kw.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
    let p = dir.join(format!("{job_name}.yaml"));
    std::fs::write(
        &p,
        format!("cluster_class: \"dask_jobqueue.SLURMCluster\"\ncluster_kwargs:\n{body}adapt_kwargs:\n  maximum_jobs: {max_jobs}\n  target_duration: 2s\n  interval: 1s\n"),
    )
    .unwrap();
    p
}

/// A prologue that runs `cmd` in the first job to start only (decided by an atomic `mkdir`, so
/// two jobs starting together cannot both run it); `flag` then holds that job's id.
fn first_job_only(flag: &Path, cmd: &str) -> (&'static str, String) {
    (
        "job_script_prologue",
        format!(
            "['! mkdir {f}.once 2>/dev/null || {{ echo $SLURM_JOB_ID > {f}.tmp; mv {f}.tmp {f}; {cmd}; }}']",
            f = flag.display()
        ),
    )
}

/// Jobs of `job_name` that are pending or running now.
fn live_jobs(job_name: &str) -> usize {
    let out = Command::new("squeue")
        .args([
            "-h",
            "-r",
            "-n",
            job_name,
            "-t",
            "PENDING,RUNNING,CONFIGURING,COMPLETING",
            "-o",
            "%i",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn wait_no_jobs(job_name: &str) {
    let t0 = Instant::now();
    while live_jobs(job_name) > 0 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every record of a cache as (field/target → key, outputs (path, digest), params, inputs).
fn records(cache: &Path) -> BTreeMap<String, String> {
    let c = arrakis::cache::Cache::open(cache, false).unwrap();
    c.target_ids()
        .unwrap()
        .into_iter()
        .map(|(field, id)| {
            let r = c.get_target(&field, &id).unwrap().unwrap();
            let outs: Vec<(String, String)> = r
                .outputs
                .iter()
                .map(|o| (o.path.clone(), o.digest.to_hex()))
                .collect();
            (
                format!("{field}/{id}"),
                format!(
                    "{} {:?} {:?} {:?} {:?}",
                    r.key.to_hex(),
                    r.status,
                    outs,
                    r.params,
                    r.inputs
                ),
            )
        })
        .collect()
}

fn submitted_targets(stderr: &str) -> usize {
    stderr
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("slurm: submitted job ")?;
            let inner = l.split('(').nth(1)?;
            let n = inner.split(" target").next()?;
            n.rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum()
}

#[test]
fn slurm_build_equals_local_build_and_resubmits_only_stale_targets() {
    let _cluster = cluster_shared();
    require_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let field = "RACS_SLURM";
    simulate(&base.join("local"), &SimOptions::small(field, 3)).unwrap();
    simulate(&base.join("slurm"), &SimOptions::small(field, 3)).unwrap();
    let (out, r) = {
        let report = base.join("local.json");
        let out = arrakis(&base.join("cache-local"))
            .args(["build", field, "--quiet", "--datadir"])
            .arg(base.join("local"))
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap();
        (out, read_report(&report))
    };
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(with_status(&r, "ran").len(), 139);

    let cfg = config(base, "arrakis-eq", &[], 3);
    // Watch the jobs in flight while the build runs.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(live_jobs("arrakis-eq"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let report = base.join("slurm.json");
    let out = arrakis(&base.join("cache-slurm"))
        .args(["build", field, "--quiet", "--datadir"])
        .arg(base.join("slurm"))
        .arg("--dask-config")
        .arg(&cfg)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(with_status(&read_report(&report), "ran").len(), 139, "{t}");
    assert!(t.contains("Slurm job(s) submitted"), "{t}");
    assert!(
        t.contains("unused cluster config key cluster_kwargs.interface"),
        "{t}"
    );
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        (1..=3).contains(&peak),
        "{peak} jobs in flight; maximum_jobs is 3"
    );
    assert_eq!(
        snapshot(&base.join("local").join(field)),
        snapshot(&base.join("slurm").join(field)),
        "the Slurm build wrote other bytes than the local one"
    );
    assert_eq!(
        records(&base.join("cache-local")),
        records(&base.join("cache-slurm"))
    );

    // A changed RM-CLEAN cutoff: only rmclean (22), the catalogue and validation are submitted.
    let out = arrakis(&base.join("cache-slurm"))
        .args(["build", field, "--quiet", "--datadir"])
        .arg(base.join("slurm"))
        .arg("--dask-config")
        .arg(&cfg)
        .arg("--report")
        .arg(&report)
        .args(["--set", "cutoff=-5"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let r = read_report(&report);
    let ran = with_status(&r, "ran");
    let stages: std::collections::BTreeSet<&str> =
        ran.iter().map(|id| id.split('/').next().unwrap()).collect();
    let stages: Vec<&str> = stages.into_iter().collect();
    assert_eq!(stages, ["catalogue", "rmclean", "validate"], "{r:?}");
    assert_eq!(submitted_targets(&t), 24, "{t}");
}

/// A temporary directory with an engine-rules field "F" (see `make_field`) under `data/`.
fn engine_field(
    side: usize,
    islands: usize,
    doubles: usize,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    require_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let data = base.join("data");
    make_field(&data, "F", side, islands, doubles);
    (tmp, base, data)
}

/// The field built under `data` has the bytes of a clean local build of the same field
/// (`make_field`'s side, islands, doubles).
fn equals_a_clean_local_build(base: &Path, data: &Path, shape: (usize, usize, usize)) {
    let clean = base.join("clean");
    make_field(&clean, "F", shape.0, shape.1, shape.2);
    let (o, _) = build(&base.join("cache-clean"), &clean, "F", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(snapshot(&data.join("F")), snapshot(&clean.join("F")));
}

/// Engine test rules (external commands), each target sleeping `delay` seconds.
fn engine_build(cache: &Path, data: &Path, cfg: &Path, report: &Path, delay: &str) -> Command {
    let mut c = arrakis(cache);
    c.args(["build", "F", "--quiet", "--rules"])
        .arg(engine_rules())
        .arg("--datadir")
        .arg(data)
        .arg("--dask-config")
        .arg(cfg)
        .arg("--report")
        .arg(report)
        .env("ARRAKIS_TEST_DELAY", delay);
    c
}

#[test]
fn cancelled_and_failing_jobs_are_retried_and_reported() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(2, 6, 2);
    let base = base.as_path();
    // The first job exits 3 before running anything; later jobs run.
    let flag = base.join("first-job-done");
    let cfg = config(base, "arrakis-retry", &[first_job_only(&flag, "exit 3")], 2);
    let report = base.join("r.json");
    let child = engine_build(&base.join("cache"), &data, &cfg, &report, "2")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cancel a job seen running other than the failing one (which squeue may still list
    // as running while its script exits 3), and only one that started within the last
    // second: its first target sleeps 2 s, so it cannot have finished its work already (a
    // job cancelled after its last receipt has nothing to retry and nothing to report).
    let t0 = Instant::now();
    let mut cancelled = None;
    while cancelled.is_none() && t0.elapsed() < Duration::from_secs(60) {
        let failing = std::fs::read_to_string(&flag).unwrap_or_default();
        if !failing.trim().is_empty() {
            let out = Command::new("squeue")
                .args([
                    "-h",
                    "-r",
                    "-n",
                    "arrakis-retry",
                    "-t",
                    "RUNNING",
                    "-o",
                    "%A %i %M",
                ])
                .output()
                .unwrap();
            let running = String::from_utf8_lossy(&out.stdout).to_string();
            // %A is the job's own id, %i the one to name it by (ARRAY_TASK for an array's
            // element: a bare array id would name every element).
            if let Some(id) = running.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (raw, id, elapsed) = (f.first()?, f.get(1)?, f.get(2)?);
                (*raw != failing.trim() && matches!(*elapsed, "0:00" | "0:01")).then_some(*id)
            }) {
                // Counted only once Slurm says the job was cancelled (scancel can come too late,
                // or be refused for a job that is completing); otherwise try another job.
                let _ = Command::new("scancel").arg(id).status();
                let t1 = Instant::now();
                while t1.elapsed() < Duration::from_secs(3) {
                    let out = Command::new("scontrol")
                        .args(["show", "job", id])
                        .output()
                        .unwrap();
                    let state = String::from_utf8_lossy(&out.stdout).to_string();
                    if state.contains("JobState=CANCELLED") {
                        cancelled = Some(id.to_string());
                        break;
                    }
                    if state.contains("JobState=COMPLETED") || state.contains("JobState=FAILED") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(cancelled.is_some(), "no job was ever seen running: {t}");
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ended FAILED"),
        "the exit-3 job is reported: {t}"
    );
    assert!(
        t.contains("ended CANCELLED"),
        "the cancelled job {cancelled:?} is reported: {t}"
    );
    assert!(t.contains("resubmitting"), "{t}");
    let r = read_report(&report);
    assert!(with_status(&r, "failed").is_empty(), "{r:?}");
    assert!(!with_status(&r, "ran").is_empty());
    wait_no_jobs("arrakis-retry");
}

#[test]
fn with_no_retries_left_targets_fail_with_the_job_and_its_log() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(1, 2, 0);
    let base = base.as_path();
    let cfg = config(
        base,
        "arrakis-fail",
        &[(
            "job_script_prologue",
            "['echo worker setup broke >&2', 'exit 4']".into(),
        )],
        2,
    );
    let report = base.join("r.json");
    let out = engine_build(&base.join("cache"), &data, &cfg, &report, "0")
        .args(["--retries", "1"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let r = read_report(&report);
    assert!(!with_status(&r, "failed").is_empty(), "{r:?}");
    let report_text = std::fs::read_to_string(&report).unwrap();
    assert!(
        report_text.contains("ended FAILED") && report_text.contains("gave up after 2 attempt"),
        "{report_text}"
    );
    assert!(
        report_text.contains("worker setup broke"),
        "the log tail is quoted: {report_text}"
    );
}

#[test]
fn impossible_and_rejected_requests_are_explained() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(1, 1, 0);
    let base = base.as_path();
    // More CPUs than any node has: accepted by sbatch, then pending forever.
    let cfg = config(base, "arrakis-big", &[("job_cpu", "64".into())], 2);
    let report = base.join("r.json");
    let out = engine_build(&base.join("cache"), &data, &cfg, &report, "0")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("can never start") && t.contains("cancelled it") && t.contains("job_cpu"),
        "{t}"
    );
    assert_eq!(live_jobs("arrakis-big"), 0, "the stuck job was cancelled");
    // More memory than any node has: sbatch refuses; its words and the key to change are quoted.
    let cfg = config(base, "arrakis-huge", &[("job_mem", "9000G".into())], 2);
    let out = engine_build(&base.join("cache2"), &data, &cfg, &report, "0")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("sbatch rejected the job") && t.contains("cluster_kwargs.memory"),
        "{t}"
    );
}

#[test]
fn a_killed_coordinator_loses_no_finished_work() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(2, 8, 2);
    let base = base.as_path();
    let cfg = config(base, "arrakis-kill", &[], 4);
    let cache = base.join("cache");
    let report = base.join("r.json");
    let mut child = engine_build(&cache, &data, &cfg, &report, "1")
        .spawn()
        .unwrap();
    // Kill it once some jobs are running.
    let t0 = Instant::now();
    while live_jobs("arrakis-kill") == 0 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Its jobs go on and leave receipts.
    wait_no_jobs("arrakis-kill");
    let receipts = std::fs::read_dir(cache.join("receipts/F"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(receipts > 0, "the orphaned jobs left no receipts");
    let out = engine_build(&cache, &data, &cfg, &report, "0")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let r = read_report(&report);
    let ran = with_status(&r, "ran").len();
    assert!(ran < r.len(), "everything ran again: {t}");
    assert_eq!(
        submitted_targets(&t),
        ran,
        "only what was left was submitted: {t}"
    );
    equals_a_clean_local_build(base, &data, (2, 8, 2));
}

#[test]
fn job_script_of_the_arrakis_configs() {
    let _cluster = cluster_shared();
    for (name, want) in [
        (
            "petrichor.yaml",
            "#!/usr/bin/env bash\n\n#SBATCH -J dask-worker\n#SBATCH -e spice_logs/dask-worker-%J.err\n#SBATCH -o spice_logs/dask-worker-%J.out\n#SBATCH -A OD-217087\n#SBATCH -n 1\n#SBATCH --cpus-per-task=16\n#SBATCH --mem=128G\n#SBATCH -t 1-00:00:00\n#SBATCH --qos express\nmodule load singularity\nunset SINGULARITY_BINDPATH\nARRAKIS worker --manifest CACHE/slurm/FIELD/batch-N.json --parallel 16 --local-directory $LOCALDIR\n",
        ),
        (
            "rm_petrichor.yaml",
            "#!/usr/bin/env bash\n\n#SBATCH -J dask-worker\n#SBATCH -e spice_logs/dask-worker-%J.err\n#SBATCH -o spice_logs/dask-worker-%J.out\n#SBATCH -A OD-217087\n#SBATCH -n 1\n#SBATCH --cpus-per-task=4\n#SBATCH --mem=256G\n#SBATCH -t 0-01:00:00\n#SBATCH --qos express\nmodule load singularity\nunset SINGULARITY_BINDPATH\nexport OMP_NUM_THREADS=1\nARRAKIS worker --manifest CACHE/slurm/FIELD/batch-N.json --parallel 4 --local-directory $LOCALDIR\n",
        ),
    ] {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_arrakis"))
            .arg("job-script")
            .arg("--dask-config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let got = String::from_utf8(out.stdout).unwrap().replace(env!("CARGO_BIN_EXE_arrakis"), "ARRAKIS");
        assert_eq!(got, want, "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cluster_kwargs.interface") && err.contains("cluster_kwargs.silence_logs"), "{err}");
    }
}

#[test]
fn a_job_over_its_walltime_is_retried() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(1, 1, 0);
    let base = base.as_path();
    let flag = base.join("slow-once");
    // The first job outlives its one-minute walltime; the retry runs normally.
    let cfg = config(
        base,
        "arrakis-walltime",
        &[
            ("walltime", "'00:01:00'".into()),
            first_job_only(&flag, "sleep 300"),
        ],
        1,
    );
    let report = base.join("r.json");
    let out = engine_build(&base.join("cache"), &data, &cfg, &report, "0")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ran out of walltime (00:01:00)") && t.contains("resubmitting"),
        "{t}"
    );
    assert!(with_status(&read_report(&report), "failed").is_empty());
}

#[test]
fn ctrl_c_cancels_the_builds_jobs() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(2, 6, 0);
    let base = base.as_path();
    let cfg = config(base, "arrakis-sigint", &[], 4);
    let report = base.join("r.json");
    let child = engine_build(&base.join("cache"), &data, &cfg, &report, "20")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while live_jobs("arrakis-sigint") == 0 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(live_jobs("arrakis-sigint") > 0, "no job was submitted");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(130), "{t}");
    assert!(t.contains("slurm: cancelled job(s)"), "{t}");
    let t1 = Instant::now();
    while live_jobs("arrakis-sigint") > 0 && t1.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        live_jobs("arrakis-sigint"),
        0,
        "jobs left behind after Ctrl-C"
    );
}

/// A stand-in `sbatch` first on PATH: while `flag` exists it fails as sbatch does when the
/// controller cannot be reached (or, if the flag says `missing`, as a shell whose sbatch has
/// gone); otherwise it runs the real one.
fn flaky_sbatch(dir: &Path, flag: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let real = Command::new("sh")
        .args(["-c", "command -v sbatch"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    let bin = dir.join("flaky-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nif [ -e '{f}' ]; then\n  cat '{f}' >> '{f}.seen'\n  if grep -q missing '{f}'; then echo 'sh: 1: sbatch: not found' >&2; exit 127; fi\n  echo 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)' >&2\n  exit 1\nfi\nexec '{real}' \"$@\"\n",
        f = flag.display()
    );
    std::fs::write(bin.join("sbatch"), script).unwrap();
    std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn sbatch_outages_are_waited_out_with_backoff() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(2, 8, 2);
    let base = base.as_path();
    let cfg = config(base, "arrakis-outage", &[], 2);
    let flag = base.join("outage");
    let path = flaky_sbatch(base, &flag);
    let report = base.join("r.json");
    let child = engine_build(&base.join("cache"), &data, &cfg, &report, "0.5")
        .env("PATH", &path)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first job is in, the controller "goes away" for 3 s, then sbatch itself is
    // missing for 3 s.
    let t0 = Instant::now();
    while live_jobs("arrakis-outage") == 0 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each phase lasts until sbatch has been called in it at least once (and at least 3 s): with
    // every job slot busy, a fixed 3 s can pass without a submission.
    let seen = base.join("outage.seen");
    let hold = |mode: &str| {
        std::fs::write(&flag, format!("{mode}\n")).unwrap();
        let t0 = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let calls = std::fs::read_to_string(&seen).unwrap_or_default();
            let hit = calls.lines().any(|l| l == mode);
            if (hit && t0.elapsed() >= Duration::from_secs(3))
                || t0.elapsed() > Duration::from_secs(120)
            {
                break;
            }
        }
    };
    hold("down");
    hold("missing");
    std::fs::remove_file(&flag).unwrap();
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("Unable to contact slurm controller") && t.contains("retrying in"),
        "the outage is reported: {t}"
    );
    assert!(t.contains("sbatch: not found"), "{t}");
    assert!(t.contains("sbatch works again"), "{t}");
    let r = read_report(&report);
    assert!(with_status(&r, "failed").is_empty(), "{r:?}");
    // Nothing lost: the result equals a clean local build.
    equals_a_clean_local_build(base, &data, (2, 8, 2));

    // An outage longer than --sbatch-patience fails the queued targets with what to do.
    std::fs::write(&flag, "down").unwrap();
    let (_tmp2, base2, data2) = engine_field(1, 2, 0);
    let out = engine_build(&base2.join("cache"), &data2, &cfg, &report, "0")
        .env("PATH", &path)
        .args(["--sbatch-patience", "3"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("sbatch has failed for") && t.contains("scontrol ping"),
        "{t}"
    );
    assert!(
        t.matches("retrying in").count() >= 2,
        "backoff retries: {t}"
    );
}

/// The cluster's one node.
fn node_name() -> String {
    let out = Command::new("sinfo")
        .args(["-h", "-o", "%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_node(state: &str) {
    let mut c = Command::new("scontrol");
    c.args([
        "update",
        &format!("nodename={}", node_name()),
        &format!("state={state}"),
    ]);
    if state == "drain" {
        c.arg("reason=arrakis-test");
    }
    assert!(
        c.status().unwrap().success(),
        "scontrol update state={state}"
    );
}

#[test]
fn a_killed_worker_and_a_drained_node_lose_nothing() {
    let _cluster = cluster_exclusive();
    let (_tmp, base, data) = engine_field(2, 8, 2);
    let base = base.as_path();
    let cfg = config(base, "arrakis-drain", &[], 2);
    let cache = base.join("cache");
    let report = base.join("r.json");
    let mut child = engine_build(&cache, &data, &cfg, &report, "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut s).unwrap();
        s
    });
    // SIGKILL the first worker process seen (a worker dying mid-batch), then drain the node.
    let manifests = cache.join("slurm");
    let t0 = Instant::now();
    let mut killed = false;
    while !killed && t0.elapsed() < Duration::from_secs(60) {
        let out = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                &format!("worker --manifest {}", manifests.display()),
            ])
            .status()
            .unwrap();
        killed = out.success();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(killed, "no worker was ever seen");
    set_node("drain");
    // Jobs submitted now wait for the node; the build says so and keeps waiting.
    std::thread::sleep(Duration::from_secs(6));
    set_node("resume");
    let status = child.wait().unwrap();
    let t = reader.join().unwrap();
    assert!(status.success(), "{t}");
    assert!(
        t.contains("resubmitting"),
        "the killed worker's job is retried: {t}"
    );
    assert!(
        t.contains("waits:")
            && (t.contains("DRAINED") || t.contains("ReqNodeNotAvail"))
            && t.contains("state=resume"),
        "the drained node is reported: {t}"
    );
    let r = read_report(&report);
    assert!(with_status(&r, "failed").is_empty(), "{r:?}");
    equals_a_clean_local_build(base, &data, (2, 8, 2));
}

/// field/id → status from a report of several fields (ids repeat across fields).
fn read_fields_report(path: &Path) -> BTreeMap<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let (f, id) = (t["field"].as_str().unwrap(), t["id"].as_str().unwrap());
            (
                format!("{f}/{id}"),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn several_fields_are_one_build_whose_slurm_jobs_mix_them() {
    let _cluster = cluster_shared();
    let (_tmp, base, data) = engine_field(2, 6, 2);
    make_field(&data, "G", 2, 5, 1);
    // One job at a time, each taking all that is queued: while it runs, what both fields make
    // ready waits for the next one.
    let cfg = config(
        &base,
        "arrakis-many",
        &[("walltime", "'00:05:00'".into())],
        1,
    );
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("target_duration: 2s", "target_duration: 600s");
    std::fs::write(&cfg, cfg_text).unwrap();
    let report = base.join("many.json");
    let run = |extra: &[&str]| {
        arrakis(&base.join("cache"))
            .args(["build", "F", "G", "--quiet", "--rules"])
            .arg(engine_rules())
            .arg("--datadir")
            .arg(&data)
            .arg("--dask-config")
            .arg(&cfg)
            .arg("--report")
            .arg(&report)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let r = read_fields_report(&report);
    assert!(r.keys().any(|k| k.starts_with("F/")) && r.keys().any(|k| k.starts_with("G/")));
    assert!(r.values().all(|s| s == "ran"), "{r:?}");
    // Some Slurm job ran targets of both fields.
    let mixed = std::fs::read_dir(base.join("cache/slurm"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("fields-"))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("batch-"))
        .any(|e| {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            let dirs: std::collections::BTreeSet<&str> = m["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["job"]["field_dir"].as_str().unwrap())
                .collect();
            dirs.len() == 2
        });
    assert!(mixed, "no Slurm job held targets of both fields: {t}");
    // The bytes of separate local builds.
    for f in ["F", "G"] {
        let clean = base.join(format!("clean-{f}"));
        let (islands, doubles) = if f == "F" { (6, 2) } else { (5, 1) };
        make_field(&clean, f, 2, islands, doubles);
        let (o, _) = build(&base.join("cache-clean"), &clean, f, &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(snapshot(&data.join(f)), snapshot(&clean.join(f)), "{f}");
    }
    // Again: nothing submitted; a changed cutoff reruns rmclean and the catalogue of both.
    let out = run(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(submitted_targets(&text(&out)), 0);
    let out = run(&["--set", "cutoff=-5"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&read_fields_report(&report), "ran");
    let stages: std::collections::BTreeSet<(&str, &str)> = ran
        .iter()
        .map(|k| {
            let mut p = k.split('/');
            (p.next().unwrap(), p.next().unwrap())
        })
        .collect();
    let want: std::collections::BTreeSet<(&str, &str)> = [
        ("F", "catalogue"),
        ("F", "rmclean"),
        ("G", "catalogue"),
        ("G", "rmclean"),
    ]
    .into();
    assert_eq!(stages, want);
}
