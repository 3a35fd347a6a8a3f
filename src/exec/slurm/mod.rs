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

mod query;
mod script;

use query::*;
pub use script::{job_script, worker_command};

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
    /// Where its receipt will be (absolute: its field's receipts directory).
    pub receipts: PathBuf,
}

/// A target the cluster finished (or gave up on).
pub struct RemoteDone {
    /// Index in the graph.
    pub ti: usize,
    /// Verified outputs, seconds and host; or why it failed.
    pub result: Result<(Vec<OutputRecord>, f64, String), super::Failure>,
    /// CPU seconds its worker spent (0 when it did not report).
    pub cpu: f64,
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
    fields: Vec<String>,
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
    /// A runner for `cfg` for the targets of `fields`, keeping scripts and manifests under
    /// `cache_dir/slurm/<field>` (one field) or `cache_dir/slurm/fields-<digest of the names>`.
    pub fn new(
        cfg: &'a ClusterConfig,
        cache_dir: &Path,
        fields: &[String],
        retries: u32,
        sbatch_patience: Duration,
    ) -> Result<SlurmRunner<'a>, super::SetupError> {
        use super::SetupError;
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| SetupError::Io { what, path, source }
        };
        let cache_dir = std::path::absolute(cache_dir).map_err(io("cannot resolve", cache_dir))?;
        let work_dir = cache_dir.join("slurm").join(match fields {
            [one] => one.clone(),
            _ => format!(
                "fields-{}",
                &blake3::hash(fields.join("\n").as_bytes()).to_hex()[..16]
            ),
        });
        std::fs::create_dir_all(&work_dir).map_err(io("cannot create", &work_dir))?;
        for f in fields {
            let d = super::worker::receipts_dir(&cache_dir, f);
            std::fs::create_dir_all(&d).map_err(io("cannot create", &d))?;
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
            fields: fields.to_vec(),
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
        // One listing of each field's receipts directory per poll, not one open per target in
        // flight.
        let mut listings: HashMap<PathBuf, std::collections::HashSet<std::ffi::OsString>> =
            HashMap::new();
        for b in &mut self.batches {
            let mut k = 0;
            while k < b.tasks.len() {
                let t = &b.tasks[k];
                let present = listings
                    .entry(t.receipts.clone())
                    .or_insert_with(|| receipt_files(&t.receipts));
                let p = receipt_path(&t.receipts, &t.job.id);
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
                done.push(RemoteDone {
                    ti: t.ti,
                    result,
                    cpu: r.cpu_seconds,
                });
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
                        cpu: 0.0,
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
                        cpu: 0.0,
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
                fields: self.fields.clone(),
                targets: tasks
                    .iter()
                    .map(|t| ManifestEntry {
                        key: t.key.to_hex(),
                        receipts_dir: t.receipts.clone(),
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
                            cpu: 0.0,
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
                        cpu: 0.0,
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
