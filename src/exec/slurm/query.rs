//! Talking to Slurm: `sbatch` (with its failures sorted into refused, retry later, or nodes
//! unavailable), `scontrol show job`, `sacct` where accounting works, and the tail of a job's
//! log for an error message.
//!
//! Must never: use a shell; block longer than one command.

use std::process::Command;
use std::time::Duration;

use super::*;

/// The first wait after sbatch fails transiently; it doubles up to [`MAX_SBATCH_DELAY`].
pub(super) const FIRST_SBATCH_DELAY: Duration = Duration::from_secs(1);
pub(super) const MAX_SBATCH_DELAY: Duration = Duration::from_secs(60);

/// sbatch's words for a controller that cannot take jobs just now (as opposed to a request it
/// will never take).
pub(super) const TRANSIENT_SBATCH: &[&str] = &[
    "unable to contact slurm controller",
    "socket timed out",
    "temporarily unable",
    "temporarily unavailable",
    "connection refused",
    "zero bytes were transmitted",
    "not responding",
    "try again",
    "communication connection failure",
    "slurmctld",
];

/// A pending reason meaning the job's nodes are drained, down or otherwise not available.
pub(super) fn nodes_unavailable(reason: &str) -> bool {
    [
        "ReqNodeNotAvail",
        "NodeDown",
        "DRAINED",
        "DOWN",
        "Nodes required for job",
    ]
    .iter()
    .any(|w| reason.contains(w))
}

/// Submit `script` (as an array of `k` when k > 1); the job id, or sbatch's complaint with the
/// config key to change. `worked_before`: sbatch has taken a job in this build, so its absence
/// now is an outage, not a missing installation.
pub(super) fn sbatch(
    script: &Path,
    k: usize,
    cfg: &ClusterConfig,
    worked_before: bool,
) -> Result<String, SbatchFailure> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if k > 1 {
        cmd.arg(format!("--array=0-{}", k - 1));
    }
    let out = cmd.arg(script).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SbatchFailure {
            message: "sbatch not found: install slurm-client, or use a LocalCluster config"
                .to_string(),
            transient: worked_before,
        },
        _ => SbatchFailure {
            message: format!("cannot run sbatch: {e}"),
            transient: true,
        },
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id: String = stdout
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if out.status.success() && !id.is_empty() {
        return Ok(id);
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lower = msg.to_ascii_lowercase();
    if TRANSIENT_SBATCH.iter().any(|w| lower.contains(w))
        || (worked_before && out.status.code() == Some(127))
    {
        return Err(SbatchFailure {
            message: format!("sbatch failed: \"{msg}\""),
            transient: true,
        });
    }
    let key = if lower.contains("memory") || lower.contains("--mem") {
        "cluster_kwargs.memory (or job_mem)"
    } else if lower.contains("partition") {
        "cluster_kwargs.queue"
    } else if lower.contains("account") {
        "cluster_kwargs.account"
    } else if lower.contains("time limit") || lower.contains("--time") {
        "cluster_kwargs.walltime"
    } else if lower.contains("gres") || lower.contains("qos") {
        "cluster_kwargs.job_extra_directives"
    } else if lower.contains("cpu") || lower.contains("node configuration") {
        "cluster_kwargs.cores (or job_cpu), memory"
    } else {
        "cluster_kwargs"
    };
    Err(SbatchFailure {
        message: format!(
            "sbatch rejected the job: \"{msg}\"; change {key} in {}",
            cfg_name(cfg)
        ),
        transient: false,
    })
}

/// A job's state from `scontrol show job` (for jobs squeue no longer lists).
pub(super) fn scontrol_state(job: &str) -> Option<String> {
    let out = Command::new("scontrol")
        .args(["show", "job", job])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string)
}

/// Why a job that ended without a receipt for some of its targets failed them, in words.
pub(super) fn end_reason(state: &str, job: &str, walltime: &str) -> String {
    match state {
        "COMPLETED" => format!("job {job} completed without writing a receipt for it"),
        "TIMEOUT" => format!(
            "job {job} ran out of walltime ({walltime}); raise cluster_kwargs.walltime or lower adapt_kwargs.target_duration"
        ),
        "OUT_OF_MEMORY" => format!(
            "job {job} ran out of memory (OUT_OF_MEMORY); raise cluster_kwargs.memory (or job_mem)"
        ),
        "NODE_FAIL" => format!("job {job} was lost with its node (NODE_FAIL)"),
        "PREEMPTED" => format!("job {job} was preempted"),
        "BOOT_FAIL" => format!("job {job} could not start: its node failed to boot (BOOT_FAIL)"),
        "CANCELLED" => format!("job {job} ended CANCELLED (scancel, or by an administrator)"),
        "FAILED" => format!("job {job} ended FAILED (its batch script exited non-zero)"),
        "VANISHED" => format!(
            "job {job} is no longer known to Slurm (not in squeue, scontrol or sacct)"
        ),
        other => format!("job {job} ended {other}"),
    }
}

/// Whether `sacct` can answer: a cluster without slurmdbd prints "Slurm accounting storage is
/// disabled" and exits 1. Asked once per process.
pub(super) fn accounting_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("sacct")
            .args(["-n", "-X", "-P", "-o", "JobID", "-j", "1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// A job's final state from the accounting database (`sacct`), if the cluster keeps one.
pub(super) fn sacct_state(job: &str) -> Option<String> {
    if !accounting_available() {
        return None;
    }
    let out = Command::new("sacct")
        .args(["-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", job])
        .output()
        .ok()?;
    parse_sacct(&String::from_utf8_lossy(&out.stdout), job)
}

/// The state of `job` (`123` or an array task `123_4`) in `sacct -X -n -P -o
/// JobID,State,ExitCode` output. sacct writes `CANCELLED by 0` for a cancelled job; the words
/// after the state are dropped.
pub(super) fn parse_sacct(text: &str, job: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut f = line.split('|');
        let id = f.next()?.trim();
        let state = f.next()?.split_whitespace().next()?;
        (id == job).then(|| state.to_string())
    })
}

/// The last lines of a job's logs (`.err` then `.out`), where dask-jobqueue's settings put them.
pub(super) fn log_tail(cfg: &ClusterConfig, raw_id: &str) -> String {
    let s = &cfg.slurm;
    let files: Vec<PathBuf> = match &s.log_directory {
        Some(dir) => vec![
            Path::new(dir).join(format!("{}-{raw_id}.err", s.job_name)),
            Path::new(dir).join(format!("{}-{raw_id}.out", s.job_name)),
        ],
        None => vec![PathBuf::from(format!("slurm-{raw_id}.out"))],
    };
    let mut out = String::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            if !tail.is_empty() {
                out.push_str(&format!("  [{}]\n  {}\n", f.display(), tail.join("\n  ")));
            }
        }
    }
    out.trim_end().to_string()
}
