//! The Slurm executor: stale targets packed into batches, submitted as Slurm jobs (job arrays
//! when several batches go at once) that run `arrakis worker`, and followed until their receipts
//! come back.
//!
//! Owns: job scripts with dask-jobqueue's meaning of every `cluster_kwargs` key, batch sizing
//! from `target_duration` and recorded durations, the bound on jobs in flight from
//! `adapt_kwargs`, job states (`squeue -t all`, then `scontrol show job`), retries, and cancelling
//! its jobs on Ctrl-C.
//! Must never: open or write the cache (the scheduler commits verified receipts); accept a
//! receipt whose key or output hashes do not match; pass anything through a shell (sbatch and
//! friends get argv lists; the job script's only variables are Slurm's and the user's prologue).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::action::TargetJob;
use super::worker::{
    read_receipt, receipt_files, receipt_path, verify_outputs, Manifest, ManifestEntry,
};
use crate::cache::OutputRecord;
use crate::config::cluster::{slurm_mem, ClusterConfig};
use crate::hash::Digest;

/// The job script for one job of `cfg`, running `worker_command`: dask-jobqueue's layout
/// (shebang, blank line, `#SBATCH` header, prologue, command).
pub fn job_script(cfg: &ClusterConfig, worker_command: &str) -> String {
    let s = &cfg.slurm;
    let mut header = vec![format!("#SBATCH -J {}", s.job_name)];
    if let Some(dir) = &s.log_directory {
        header.push(format!("#SBATCH -e {dir}/{}-%J.err", s.job_name));
        header.push(format!("#SBATCH -o {dir}/{}-%J.out", s.job_name));
    }
    if let Some(q) = &s.queue {
        header.push(format!("#SBATCH -p {q}"));
    }
    if let Some(a) = &s.account {
        header.push(format!("#SBATCH -A {a}"));
    }
    header.push("#SBATCH -n 1".into());
    header.push(format!(
        "#SBATCH --cpus-per-task={}",
        s.job_cpu.unwrap_or(s.cores)
    ));
    header.push(format!(
        "#SBATCH --mem={}",
        s.job_mem
            .clone()
            .unwrap_or_else(|| slurm_mem(s.memory_bytes))
    ));
    header.push(format!("#SBATCH -t {}", s.walltime));
    header.retain(|line| {
        !s.job_directives_skip
            .iter()
            .any(|skip| line.contains(skip.as_str()))
    });
    header.extend(
        s.job_extra_directives
            .iter()
            .map(|d| format!("#SBATCH {d}")),
    );
    format!(
        "{}\n\n{}\n{}\n{}\n",
        s.shebang,
        header.join("\n"),
        s.job_script_prologue.join("\n"),
        worker_command
    )
}

/// The worker command line a job runs for `manifest` (`{task}` in it becomes the array index).
pub fn worker_command(cfg: &ClusterConfig, exe: &Path, manifest: &str) -> String {
    let mut cmd = format!(
        "{} worker --manifest {} --parallel {}",
        sh_quote(&exe.to_string_lossy()),
        sh_quote(manifest),
        cfg.parallel_per_job()
    );
    if let Some(dir) = &cfg.slurm.local_directory {
        // Left unquoted on purpose: `$LOCALDIR` is the node's scratch, expanded by the job's shell.
        cmd.push_str(&format!(" --local-directory {dir}"));
    }
    cmd
}

/// Single-quote for the job script (paths we generate; never user data).
fn sh_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-{}+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A target handed to the cluster.
pub struct RemoteTask {
    /// Index in the graph.
    pub ti: usize,
    /// The key it must be run with.
    pub key: Digest,
    /// What to run.
    pub job: TargetJob,
    /// Expected seconds (recorded duration, or a default).
    pub expect_s: f64,
    /// Submissions so far.
    pub attempts: u32,
}

/// A target the cluster finished (or gave up on).
pub struct RemoteDone {
    /// Index in the graph.
    pub ti: usize,
    /// Verified outputs, seconds and host; or why it failed.
    pub result: Result<(Vec<OutputRecord>, f64, String), super::Failure>,
}

struct Batch {
    tasks: Vec<RemoteTask>,
    /// squeue's id: `123` or `123_4`.
    job: String,
    /// The job's own id (an array task's unique id), once squeue has shown it.
    raw_id: Option<String>,
    submitted: Instant,
    state: String,
    cancelled_by_us: bool,
    /// Slurm says it ended (its targets may have finished earlier, from their receipts).
    ended: bool,
    /// A pending reason already reported (nodes drained or down), so it is said once.
    reported_wait: Option<String>,
}

/// sbatch failing for reasons that may pass (controller down or restarting, sbatch missing for
/// a while): when it started, when to try next, and the current delay.
struct Outage {
    since: Instant,
    retry_at: Instant,
    delay: Duration,
}

/// Why sbatch did not take a job.
struct SbatchFailure {
    message: String,
    /// Worth trying again later (the controller, not the request, is the problem).
    transient: bool,
}

/// Submits and follows the jobs of one cluster config.
pub struct SlurmRunner<'a> {
    cfg: &'a ClusterConfig,
    work_dir: PathBuf,
    receipts: PathBuf,
    field: String,
    exe: PathBuf,
    retries: u32,
    queue: VecDeque<RemoteTask>,
    batches: Vec<Batch>,
    serial: u64,
    last_squeue: Option<Instant>,
    /// Per rule: (sum of seconds, count) of finished targets.
    durations: HashMap<String, (f64, usize)>,
    messages: Vec<String>,
    /// Jobs submitted in this build (array tasks count one each).
    pub jobs_submitted: usize,
    /// The most jobs in flight at once.
    pub peak_in_flight: usize,
    /// How long sbatch may keep failing transiently before the queued targets fail.
    sbatch_patience: Duration,
    outage: Option<Outage>,
}

const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
];

/// squeue reasons of a pending job that no wait will cure.
const IMPOSSIBLE: &[&str] = &[
    "PartitionConfig",
    "BadConstraints",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxWallDurationPerJobLimit",
];

impl<'a> SlurmRunner<'a> {
    /// A runner for `cfg`, keeping scripts and manifests under `cache_dir/slurm/<field>`.
    pub fn new(
        cfg: &'a ClusterConfig,
        cache_dir: &Path,
        field: &str,
        retries: u32,
        sbatch_patience: Duration,
    ) -> Result<SlurmRunner<'a>, super::SetupError> {
        use super::SetupError;
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| SetupError::Io { what, path, source }
        };
        let cache_dir = std::path::absolute(cache_dir).map_err(io("cannot resolve", cache_dir))?;
        let work_dir = cache_dir.join("slurm").join(field);
        let receipts = super::worker::receipts_dir(&cache_dir, field);
        for d in [&work_dir, &receipts] {
            std::fs::create_dir_all(d).map_err(io("cannot create", d))?;
        }
        if let Some(dir) = &cfg.slurm.log_directory {
            // Slurm does not create -o/-e directories; dask-jobqueue does, and so do we.
            std::fs::create_dir_all(dir)
                .map_err(io("cannot create log_directory", Path::new(dir)))?;
        }
        let exe = std::env::current_exe()
            .map_err(io("cannot find arrakis itself", Path::new("arrakis")))?;
        Ok(SlurmRunner {
            cfg,
            work_dir,
            receipts,
            field: field.to_string(),
            exe,
            retries,
            queue: VecDeque::new(),
            batches: Vec::new(),
            serial: 0,
            last_squeue: None,
            durations: HashMap::new(),
            messages: Vec::new(),
            jobs_submitted: 0,
            peak_in_flight: 0,
            sbatch_patience,
            outage: None,
        })
    }

    /// Queue a target for the cluster.
    pub fn submit(&mut self, task: RemoteTask) {
        self.queue.push_back(task);
    }

    /// Targets queued or running.
    pub fn in_flight(&self) -> usize {
        self.queue.len() + self.batches.iter().map(|b| b.tasks.len()).sum::<usize>()
    }

    /// Lines for the user (submissions, failures, retries) since the last call.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// Jobs not yet ended by Slurm's account: a job whose targets all reported is still in
    /// flight until it exits, and counts against the adapt bound until then.
    fn jobs_in_flight(&self) -> usize {
        self.batches.iter().filter(|b| !b.ended).count()
    }

    /// Follow jobs, take in receipts, retry or give up on failed jobs, and submit what is
    /// queued. Returns the targets that finished.
    pub fn poll(&mut self) -> Vec<RemoteDone> {
        let mut done = Vec::new();
        let interval = self
            .cfg
            .adapt
            .interval
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let due = self.last_squeue.is_none_or(|t| t.elapsed() >= interval);
        if due && self.jobs_in_flight() > 0 {
            self.last_squeue = Some(Instant::now());
            self.refresh_states();
        }
        // Receipts after states: a job seen finished has written every receipt it will write.
        self.take_receipts(&mut done);
        if due {
            self.settle_finished(&mut done);
        }
        self.submit_queued(&mut done);
        done
    }

    fn take_receipts(&mut self, done: &mut Vec<RemoteDone>) {
        // One directory listing per poll, not one open per target in flight.
        let present = receipt_files(&self.receipts);
        if present.is_empty() {
            return;
        }
        for b in &mut self.batches {
            let mut k = 0;
            while k < b.tasks.len() {
                let t = &b.tasks[k];
                let p = receipt_path(&self.receipts, &t.job.id);
                let listed = p.file_name().is_some_and(|n| present.contains(n));
                let Some(r) = listed.then(|| read_receipt(&p)).flatten() else {
                    k += 1;
                    continue;
                };
                if r.key != t.key.to_hex() {
                    // An older submission's receipt: not this run's.
                    let _ = std::fs::remove_file(&p);
                    k += 1;
                    continue;
                }
                let t = b.tasks.swap_remove(k);
                let result = match r.outputs {
                    Ok(outs) => {
                        verify_outputs(&t.job.field_dir, &outs).map(|o| (o, r.seconds, r.host))
                    }
                    Err(e) => Err(e),
                };
                if result.is_ok() {
                    let d = self.durations.entry(t.job.rule.clone()).or_default();
                    d.0 += r.seconds;
                    d.1 += 1;
                }
                let _ = std::fs::remove_file(&p);
                done.push(RemoteDone { ti: t.ti, result });
            }
        }
    }

    fn refresh_states(&mut self) {
        let mut ids: Vec<String> = self
            .batches
            .iter()
            .filter(|b| !b.ended)
            .map(|b| b.job.split('_').next().unwrap_or(&b.job).to_string())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return;
        }
        let out = Command::new("squeue")
            .args([
                "-h",
                "-r",
                "-t",
                "all",
                "-o",
                "%i|%A|%T|%r",
                "-j",
                &ids.join(","),
            ])
            .output();
        let Ok(out) = out else {
            self.messages
                .push("slurm: squeue could not run; will try again".into());
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut seen: HashMap<&str, (&str, &str, &str)> = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() == 4 {
                seen.insert(f[0].trim(), (f[1].trim(), f[2].trim(), f[3].trim()));
            }
        }
        for b in &mut self.batches {
            if b.ended {
                continue;
            }
            match seen.get(b.job.as_str()) {
                Some((raw, state, reason)) => {
                    b.raw_id = Some(raw.to_string());
                    b.state = state.to_string();
                    if *state == "PENDING" && IMPOSSIBLE.contains(reason) && !b.cancelled_by_us {
                        let _ = Command::new("scancel").arg(&b.job).output();
                        b.cancelled_by_us = true;
                        b.state = format!("IMPOSSIBLE:{reason}");
                    } else if *state == "PENDING"
                        && nodes_unavailable(reason)
                        && b.reported_wait.as_deref() != Some(*reason)
                    {
                        b.reported_wait = Some(reason.to_string());
                        self.messages.push(format!(
                            "slurm: job {} waits: {reason} (its nodes are drained or down); arrakis keeps waiting: resume them (scontrol update nodename=NODE state=resume) or press Ctrl-C to stop",
                            b.job
                        ));
                    }
                }
                None => {
                    // Not listed (yet, or any more): ask the controller directly.
                    // Once the controller has forgotten it too (after MinJobAge), the
                    // accounting database is the last word, when the cluster has one.
                    if b.submitted.elapsed() > Duration::from_secs(5) {
                        b.state = scontrol_state(&b.job)
                            .or_else(|| sacct_state(&b.job))
                            .unwrap_or_else(|| "VANISHED".into());
                    }
                }
            }
        }
    }

    fn settle_finished(&mut self, done: &mut Vec<RemoteDone>) {
        for b in &mut self.batches {
            let state = b.state.clone();
            let base = state.split_whitespace().next().unwrap_or("");
            let impossible = state.strip_prefix("IMPOSSIBLE:");
            if !TERMINAL.contains(&base) && impossible.is_none() && base != "VANISHED" {
                continue;
            }
            b.ended = true;
            if b.tasks.is_empty() {
                continue;
            }
            let job = b.raw_id.clone().unwrap_or_else(|| b.job.clone());
            if let Some(reason) = impossible {
                let msg = format!(
                    "Slurm job {job} can never start: it stays PENDING with reason {reason} (the request is more than any node or partition allows); arrakis cancelled it. Lower cluster_kwargs.cores / job_cpu, memory / job_mem or walltime, or change queue, in {}",
                    cfg_name(self.cfg)
                );
                self.messages.push(format!("slurm: {msg}"));
                for t in b.tasks.drain(..) {
                    done.push(RemoteDone {
                        ti: t.ti,
                        result: Err(super::Failure(msg.clone())),
                    });
                }
                continue;
            }
            let log = log_tail(self.cfg, &job);
            let why = end_reason(base, &job, &self.cfg.slurm.walltime);
            let mut requeued = 0;
            for mut t in b.tasks.drain(..) {
                if t.attempts <= self.retries {
                    requeued += 1;
                    t.attempts += 1;
                    self.queue.push_back(t);
                } else {
                    done.push(RemoteDone {
                        ti: t.ti,
                        result: Err(super::Failure(format!(
                            "{why}; gave up after {} attempt(s){}",
                            t.attempts,
                            if log.is_empty() {
                                String::new()
                            } else {
                                format!("; log tail:\n{log}")
                            }
                        ))),
                    });
                }
            }
            if requeued > 0 {
                self.messages
                    .push(format!("slurm: {why}; resubmitting {requeued} target(s)"));
            }
        }
        self.batches.retain(|b| !b.ended);
    }

    fn expected(&self, t: &RemoteTask) -> f64 {
        match self.durations.get(&t.job.rule) {
            Some((sum, n)) if *n > 0 => (sum / *n as f64).max(0.001),
            _ => t.expect_s,
        }
    }

    fn submit_queued(&mut self, done: &mut Vec<RemoteDone>) {
        let free = self
            .cfg
            .adapt
            .max_jobs
            .saturating_sub(self.jobs_in_flight());
        if self.queue.is_empty() || free == 0 {
            return;
        }
        if self
            .outage
            .as_ref()
            .is_some_and(|o| Instant::now() < o.retry_at)
        {
            return;
        }
        let slots = self.cfg.parallel_per_job() as f64;
        let target_s = self.cfg.adapt.target_duration.as_secs_f64().max(0.001);
        // Batches of about target_duration each, spread over the free jobs when work is short.
        let mut batches: Vec<Vec<RemoteTask>> = Vec::new();
        while !self.queue.is_empty() && batches.len() < free {
            let per = self.expected(&self.queue[0]);
            let by_time = ((target_s * slots / per).floor() as usize).max(1);
            let spread = self.queue.len().div_ceil(free - batches.len());
            let n = by_time.min(spread).max(1).min(self.queue.len());
            batches.push(self.queue.drain(..n).collect());
        }
        self.serial += 1;
        let serial = self.serial;
        let k = batches.len();
        let manifest_arg = if k == 1 {
            self.work_dir.join(format!("batch-{serial}.json"))
        } else {
            self.work_dir.join(format!("batch-{serial}-{{task}}.json"))
        };
        let mut write_err = None;
        for (i, tasks) in batches.iter().enumerate() {
            let m = Manifest {
                field: self.field.clone(),
                receipts_dir: self.receipts.clone(),
                targets: tasks
                    .iter()
                    .map(|t| ManifestEntry {
                        key: t.key.to_hex(),
                        job: t.job.clone(),
                    })
                    .collect(),
            };
            let path = PathBuf::from(
                manifest_arg
                    .to_string_lossy()
                    .replace("{task}", &i.to_string()),
            );
            let bytes = serde_json::to_vec(&m).unwrap_or_default();
            if let Err(e) = crate::atomic::write_atomic(&path, &bytes) {
                write_err = Some(format!(
                    "cannot write batch manifest {}: {e}",
                    path.display()
                ));
            }
        }
        let script = job_script(
            self.cfg,
            &worker_command(self.cfg, &self.exe, &manifest_arg.to_string_lossy()),
        );
        let script_path = self.work_dir.join(format!("job-{serial}.sh"));
        if write_err.is_none() {
            if let Err(e) = crate::atomic::write_atomic(&script_path, script.as_bytes()) {
                write_err = Some(format!(
                    "cannot write job script {}: {e}",
                    script_path.display()
                ));
            }
        }
        let submitted = match write_err {
            Some(e) => Err(SbatchFailure {
                message: e,
                transient: false,
            }),
            None => sbatch(&script_path, k, self.cfg, self.jobs_submitted > 0),
        };
        match submitted {
            Ok(id) => {
                if let Some(o) = self.outage.take() {
                    self.messages.push(format!(
                        "slurm: sbatch works again after {:.0} s",
                        o.since.elapsed().as_secs_f64()
                    ));
                }
                let n: usize = batches.iter().map(|b| b.len()).sum();
                self.messages.push(if k == 1 {
                    format!("slurm: submitted job {id} ({n} target(s))")
                } else {
                    format!("slurm: submitted job array {id} ({k} jobs, {n} targets)")
                });
                for (i, tasks) in batches.into_iter().enumerate() {
                    self.batches.push(Batch {
                        tasks,
                        job: if k == 1 {
                            id.clone()
                        } else {
                            format!("{id}_{i}")
                        },
                        raw_id: None,
                        submitted: Instant::now(),
                        state: "PENDING".into(),
                        cancelled_by_us: false,
                        reported_wait: None,
                        ended: false,
                    });
                }
                self.jobs_submitted += k;
                self.peak_in_flight = self.peak_in_flight.max(self.jobs_in_flight());
            }
            Err(f) if f.transient => {
                let now = Instant::now();
                let (since, delay) = match &self.outage {
                    Some(o) => (o.since, (o.delay * 2).min(MAX_SBATCH_DELAY)),
                    None => (now, FIRST_SBATCH_DELAY),
                };
                if now.duration_since(since) >= self.sbatch_patience {
                    let msg = format!(
                        "sbatch has failed for {:.0} s (last: {}); gave up on the queued targets. Check the Slurm controller (`scontrol ping`), then build again: finished targets are kept",
                        now.duration_since(since).as_secs_f64(),
                        f.message
                    );
                    self.messages.push(format!("slurm: {msg}"));
                    self.outage = None;
                    for t in batches.into_iter().flatten().chain(self.queue.drain(..)) {
                        done.push(RemoteDone {
                            ti: t.ti,
                            result: Err(super::Failure(msg.clone())),
                        });
                    }
                    return;
                }
                self.messages.push(format!(
                    "slurm: {}; retrying in {:.0} s (failing for {:.0} s of the {:.0} s allowed by --sbatch-patience)",
                    f.message,
                    delay.as_secs_f64(),
                    now.duration_since(since).as_secs_f64(),
                    self.sbatch_patience.as_secs_f64()
                ));
                // Back to the front of the queue, in their order.
                for t in batches.into_iter().flatten().rev() {
                    self.queue.push_front(t);
                }
                self.outage = Some(Outage {
                    since,
                    retry_at: now + delay,
                    delay,
                });
            }
            Err(f) => {
                self.messages.push(format!("slurm: {}", f.message));
                for t in batches.into_iter().flatten() {
                    done.push(RemoteDone {
                        ti: t.ti,
                        result: Err(super::Failure(f.message.clone())),
                    });
                }
            }
        }
    }

    /// Cancel every job still in flight (Ctrl-C); their targets are left unrecorded.
    pub fn cancel_all(&mut self) {
        let ids: Vec<String> = self
            .batches
            .iter()
            .filter(|b| !b.ended)
            .map(|b| b.job.clone())
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
            self.messages
                .push(format!("slurm: cancelled job(s) {}", ids.join(" ")));
        }
        self.batches.clear();
        self.queue.clear();
    }
}

fn cfg_name(cfg: &ClusterConfig) -> String {
    cfg.path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the cluster config".into())
}

/// The first wait after sbatch fails transiently; it doubles up to [`MAX_SBATCH_DELAY`].
const FIRST_SBATCH_DELAY: Duration = Duration::from_secs(1);
const MAX_SBATCH_DELAY: Duration = Duration::from_secs(60);

/// sbatch's words for a controller that cannot take jobs just now (as opposed to a request it
/// will never take).
const TRANSIENT_SBATCH: &[&str] = &[
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
fn nodes_unavailable(reason: &str) -> bool {
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
fn sbatch(
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
fn scontrol_state(job: &str) -> Option<String> {
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
fn end_reason(state: &str, job: &str, walltime: &str) -> String {
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
fn accounting_available() -> bool {
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
fn sacct_state(job: &str) -> Option<String> {
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
fn parse_sacct(text: &str, job: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut f = line.split('|');
        let id = f.next()?.trim();
        let state = f.next()?.split_whitespace().next()?;
        (id == job).then(|| state.to_string())
    })
}

/// The last lines of a job's logs (`.err` then `.out`), where dask-jobqueue's settings put them.
fn log_tail(cfg: &ClusterConfig, raw_id: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sacct_output_is_read_per_job_and_array_task() {
        let text = "466|COMPLETED|0:0\n467_0|OUT_OF_MEMORY|0:125\n467_1|CANCELLED by 0|0:15\n468|NODE_FAIL|0:0\n";
        assert_eq!(parse_sacct(text, "466").as_deref(), Some("COMPLETED"));
        assert_eq!(parse_sacct(text, "467_0").as_deref(), Some("OUT_OF_MEMORY"));
        assert_eq!(parse_sacct(text, "467_1").as_deref(), Some("CANCELLED"));
        assert_eq!(parse_sacct(text, "468").as_deref(), Some("NODE_FAIL"));
        assert_eq!(parse_sacct(text, "467"), None);
        assert_eq!(parse_sacct("", "1"), None);
    }

    #[test]
    fn every_terminal_state_has_a_reason_naming_the_job() {
        for state in TERMINAL.iter().chain(&["VANISHED"]) {
            let why = end_reason(state, "77_3", "01:00:00");
            assert!(why.contains("77_3"), "{state}: {why}");
        }
        assert!(end_reason("OUT_OF_MEMORY", "5", "1:00").contains("cluster_kwargs.memory"));
        assert!(end_reason("TIMEOUT", "5", "0-00:45:00").contains("0-00:45:00"));
        assert!(end_reason("NODE_FAIL", "5", "1:00").contains("NODE_FAIL"));
    }

    #[test]
    fn skip_and_extra_directives() {
        let cfg = ClusterConfig::parse(
            Path::new("c.yaml"),
            "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 2\n  memory: 3GB\n  job_directives_skip: ['--mem', '-J']\n  job_extra_directives: ['--mem=1G']\n",
        )
        .unwrap();
        let s = job_script(&cfg, "run");
        assert!(!s.contains("-J dask-worker"), "{s}");
        assert!(!s.contains("--mem=3G"), "{s}");
        assert!(
            s.contains("#SBATCH --mem=1G\n"),
            "extra directives are never skipped: {s}"
        );
        assert!(s.contains("#SBATCH --cpus-per-task=2\n"));
    }

    #[test]
    fn job_cpu_and_job_mem_override() {
        let cfg = ClusterConfig::parse(
            Path::new("c.yaml"),
            "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 2\n  memory: 3GB\n  job_cpu: 6\n  job_mem: 7G\n",
        )
        .unwrap();
        let s = job_script(&cfg, "run");
        assert!(
            s.contains("#SBATCH --cpus-per-task=6\n") && s.contains("#SBATCH --mem=7G\n"),
            "{s}"
        );
    }
}
