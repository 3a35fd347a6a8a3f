//! The local executor: dynamic scheduling of a graph on a rayon pool.
//!
//! Owns: the scheduling loop (a target is evaluated as soon as every target it reads from has
//! finished; there are no barriers between stages), `-j N`, keep-going and stop-on-failure,
//! Ctrl-C handling (nothing new starts; running targets finish and are recorded), and the per
//! target outcomes that reports are made of. Dry runs and `status` use the same loop without
//! running actions.
//! Must never: write a record for a target whose outputs are not all in place; record a failure
//! caused by the user's interrupt.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Instant;

use crate::cache::{hostname, RunStatus, TargetRecord};
use crate::progress::Progress;

use super::action::{job_for, run_target};
use super::slurm::{RemoteTask, SlurmRunner};
use super::worker;
use super::{interrupted, Done, Engine, Evaluation, StaleClass, UpInput, Verdict};
use crate::rules::spec::Resources;

/// How a target takes part in a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Evaluate and run if stale.
    Run,
    /// Evaluate only (an upstream target of `--only`): if stale, dependents cannot run.
    CheckOnly,
    /// Its stage is skipped (Arrakis's `skip_*`): not run; its outputs are taken as they are.
    TakeAsIs,
    /// Not part of this build.
    Ignore,
}

/// Options of one build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Worker threads.
    pub jobs: usize,
    /// Let independent targets go on after any failure (per-source rules always do).
    pub keep_going: bool,
    /// Evaluate only; run nothing.
    pub dry_run: bool,
    /// No progress output.
    pub quiet: bool,
    /// Keep this file up to date with the live counts (`status` reads it during the build).
    pub live: Option<std::path::PathBuf>,
}

/// What happened to a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Its action ran and succeeded.
    Ran,
    /// It was up to date.
    Skipped,
    /// Its action failed, or it could not run because an input is missing or failed.
    Failed,
    /// Dry run: it would run.
    WouldRun,
    /// Stale, and its outputs of an earlier run with the same key came back from the content
    /// store instead of running.
    Restored,
}

impl Status {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ran => "ran",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::WouldRun => "would_run",
            Status::Restored => "restored",
        }
    }
}

/// The outcome of one target in one build.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What happened.
    pub status: Status,
    /// Seconds spent in its action (0 when not run).
    pub seconds: f64,
    /// CPU seconds spent on it here (checking, running, hashing, recording; see
    /// [`crate::cputime`]), plus its Slurm worker's.
    pub cpu: f64,
    /// Bytes hashed for it (inputs whose stat signature did not answer, outputs).
    pub hashed_bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether the failure was only that an input was unavailable.
    pub blocked: bool,
    /// Why it ran or would run.
    pub reasons: Vec<String>,
    /// Which kind of not-up-to-date, when it was not.
    pub class: Option<StaleClass>,
    /// Seconds from the build's start to when a worker took it up (for a Slurm-run target:
    /// its commit less its action's seconds).
    pub started: f64,
    /// Seconds from the build's start to when it was done (for a Slurm-run target: when its
    /// receipt was committed).
    pub finished: f64,
}

/// The result of a build.
pub struct BuildResult {
    /// Per target, `None` when it was not reached (not selected, or the build stopped first).
    pub outcomes: Vec<Option<Outcome>>,
    /// Ctrl-C stopped the build.
    pub interrupted: bool,
    /// A failure stopped the build before every target was reached.
    pub stopped: bool,
    /// Wall time.
    pub seconds: f64,
    /// A cache or file-system error that stopped the build.
    pub fatal: Option<String>,
}

/// What a job reports for each target it processed: the outcome (`None` when the target was
/// left alone because of Ctrl-C) and a fatal error, if any.
struct Msg {
    ti: usize,
    outcome: Option<Outcome>,
    fatal: Option<String>,
    deferred: Option<Deferred>,
}

/// The reports of one batch of targets a worker processed, and how long it took.
struct Batch {
    msgs: Vec<Msg>,
    seconds: f64,
}

/// A batch whose targets took less than this each (up to date, or quick actions) lets its
/// stage hand out bigger batches, so a no-op build is not dominated by scheduling.
const QUICK_S: f64 = 1e-3;

/// The ready targets of a build, per stage, and what the build has learnt of each stage.
///
/// Which stage goes next: the earliest stage with ready targets keeps one batch in flight (it
/// reads the cold inputs: cutouts stream the beam cubes), and every other worker takes the
/// latest stage with ready targets (depth first: an island's mosaic is made while the next
/// beam is cut, its outputs read back while still in memory, and the build's working set stays
/// small). With one worker, stages go in order. While the earliest stage's next target would
/// wait for the disk (its cube still being read ahead), a free worker takes a later stage's
/// target instead, if there is one: the core computes while the disk reads, instead of one
/// worker waiting in a page fault (a quarter of the cores' time in a cold build's cutout
/// phase) and the later stages' work piling up until the cubes are all cut.
struct Ready {
    queues: Vec<VecDeque<usize>>,
    /// Targets of each stage handed out and not yet reported.
    flying: Vec<usize>,
    /// The largest batch each stage may get now: 1 while its targets take time (so each
    /// choice is made when a worker is free), doubling while batches come back quickly.
    chunk: Vec<usize>,
    /// Whether an action of the stage ran in this build.
    ran: Vec<bool>,
    /// Whether the earliest stage's next target would wait for the disk now (set by the
    /// scheduler before each choice).
    head_waits: bool,
}

impl Ready {
    fn new(stages: usize) -> Self {
        Ready {
            queues: vec![VecDeque::new(); stages],
            flying: vec![0; stages],
            chunk: vec![1; stages],
            ran: vec![false; stages],
            head_waits: false,
        }
    }

    fn push(&mut self, stage: usize, gi: usize) {
        self.queues[stage].push_back(gi);
    }

    /// The stage the next batch comes from.
    fn stage(&self) -> Option<usize> {
        let head = self.queues.iter().position(|q| !q.is_empty())?;
        let last = self.queues.iter().rposition(|q| !q.is_empty())?;
        if self.flying[head] == 0 && !(self.head_waits && last != head) {
            return Some(head);
        }
        Some(last)
    }

    /// How many batches may be in flight: one per worker, so that each choice is made when a
    /// worker is free; two per worker while the next stage's batches come back quickly (a
    /// worker finishing one then finds the next queued instead of waiting for the scheduler).
    fn in_flight_cap(&self, jobs: usize) -> usize {
        match self.stage() {
            Some(s) if self.chunk[s] > 1 => 2 * jobs,
            _ => jobs,
        }
    }

    /// The next batch for a free worker, all of one stage.
    fn pick(&mut self, jobs: usize) -> Option<Vec<usize>> {
        let stage = self.stage()?;
        let q = &mut self.queues[stage];
        let n = (q.len() / (jobs * 4)).clamp(1, 256).min(self.chunk[stage]);
        self.flying[stage] += n;
        Some(q.drain(..n).collect())
    }

    /// A batch of `count` targets of `stage` came back after `seconds`; `ran`: an action ran.
    fn finished(&mut self, stage: usize, count: usize, seconds: f64, ran: bool) {
        self.flying[stage] -= count;
        self.ran[stage] |= ran;
        self.chunk[stage] = if seconds > QUICK_S * count as f64 {
            1
        } else {
            (self.chunk[stage] * 2).min(256)
        };
    }

    /// Up to `k` targets next in line of the earliest stage with ready targets (the stage that
    /// reads cold inputs).
    fn next_up(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.queues
            .iter()
            .find(|q| !q.is_empty())
            .into_iter()
            .flat_map(move |q| q.iter().take(k).copied())
    }

    /// Whether an action of `stage` ran in this build.
    fn ran(&self, stage: usize) -> bool {
        self.ran[stage]
    }
}

/// The source files of a build and how many of its targets are still to read each.
#[derive(Default)]
struct SourceReaders {
    index: HashMap<std::path::PathBuf, u32>,
    paths: Vec<std::path::PathBuf>,
    /// Readers not yet done.
    left: Vec<u32>,
    /// Whether the action of a reader ran (a file only checked by its signature was not read).
    read: Vec<bool>,
    /// Whether it was asked to be read ahead.
    asked: Vec<bool>,
    /// Its size, once looked at (0 if it cannot be).
    size: Vec<Option<u64>>,
}

impl SourceReaders {
    /// One more target reads `path`; its number.
    fn reader(&mut self, path: std::path::PathBuf) -> u32 {
        let next = self.paths.len() as u32;
        let i = *self.index.entry(path.clone()).or_insert(next);
        if i == next {
            self.paths.push(path);
            self.left.push(0);
            self.read.push(false);
            self.asked.push(false);
            self.size.push(None);
        }
        self.left[i as usize] += 1;
        i
    }

    /// The path of source `i`.
    fn path(&self, i: u32) -> &std::path::Path {
        &self.paths[i as usize]
    }

    /// The size of source `i` (a stat the first time).
    fn size(&mut self, i: u32) -> u64 {
        let i = i as usize;
        *self.size[i]
            .get_or_insert_with(|| std::fs::metadata(&self.paths[i]).map_or(0, |m| m.len()))
    }

    /// A target that reads `of` is done (`ran`: its action ran); the sources no target is left
    /// to read and that an action read.
    fn done(&mut self, of: &[u32], ran: bool) -> Vec<std::path::PathBuf> {
        let mut free = Vec::new();
        for &i in of {
            let i = i as usize;
            self.left[i] -= 1;
            self.read[i] |= ran;
            if self.left[i] == 0 && self.read[i] {
                free.push(self.paths[i].clone());
            }
        }
        free
    }
}

/// What the build asks the read-ahead thread ([`super::prefetch`]) for: the large sources of
/// the targets next in line of the earliest stage (the beam cubes of the next cutouts), as far
/// ahead as a byte budget allows (at least the next target's, however large); and the small
/// sources of a stage (channel weights, catalogues) all at once when its first action runs,
/// since each read of a small cold file waits a disk round trip on the critical path. Asks
/// for nothing until a stage's actions run (a no-op build reads nothing).
struct ReadAhead {
    sources: SourceReaders,
    /// Per target: the sources it reads; whether its large sources were asked for; the bytes
    /// that asked for, counted until it is done.
    of: Vec<Vec<u32>>,
    asked: Vec<bool>,
    /// Per target: run elsewhere (a cluster job), so never read ahead of here.
    elsewhere: Vec<bool>,
    bytes: Vec<u64>,
    /// Bytes asked for of targets not yet done, and the most there may be.
    ahead: u64,
    budget: u64,
    /// Stages whose small sources were asked for.
    small_asked: Vec<bool>,
}

/// The most targets read ahead of, per worker (the byte budget usually stops it first).
const READ_AHEAD_TARGETS: usize = 64;

/// How many bytes of sources may be read ahead: half the memory available when the build
/// starts (the other half for the outputs the build writes meanwhile), at most 16 GiB and at
/// least 256 MiB. Reading far ahead early matters on disks that serve reads and writes mixed
/// at half the speed of either alone: the cubes come in while little has been written yet,
/// and the write-back of the outputs then has the disk to itself.
fn read_ahead_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb << 10);
    (available / 2).clamp(256 << 20, 16 << 30)
}

impl ReadAhead {
    fn new(targets: usize, stages: usize) -> Self {
        ReadAhead {
            sources: SourceReaders::default(),
            of: vec![Vec::new(); targets],
            asked: vec![false; targets],
            elsewhere: vec![false; targets],
            bytes: vec![0; targets],
            ahead: 0,
            budget: read_ahead_budget(),
            small_asked: vec![false; stages],
        }
    }

    /// Target `gi` reads source `path`.
    fn reads(&mut self, gi: usize, path: std::path::PathBuf) {
        let i = self.sources.reader(path);
        self.of[gi].push(i);
    }

    /// The small sources of `targets` (a stage whose first action runs) not yet asked for.
    fn small(
        &mut self,
        stage: usize,
        targets: impl Iterator<Item = usize>,
    ) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        if std::mem::replace(&mut self.small_asked[stage], true) {
            return files;
        }
        for gi in targets.filter(|&gi| !self.elsewhere[gi]) {
            for k in 0..self.of[gi].len() {
                let i = self.of[gi][k];
                if !self.sources.asked[i as usize]
                    && self.sources.size(i) < super::prefetch::SMALL_BYTES
                {
                    self.sources.asked[i as usize] = true;
                    files.push(self.sources.path(i).to_path_buf());
                }
            }
        }
        files
    }

    /// Ask for target `gi`'s sources if the budget allows (`None`: it does not, and targets
    /// after it wait too); `Some(empty)` if they were asked for already.
    fn next(&mut self, gi: usize) -> Option<Vec<std::path::PathBuf>> {
        if self.asked[gi] || self.elsewhere[gi] {
            return Some(Vec::new());
        }
        let new: Vec<u32> = self.of[gi]
            .iter()
            .copied()
            .filter(|&i| !self.sources.asked[i as usize])
            .collect();
        let bytes: u64 = new.iter().map(|&i| self.sources.size(i)).sum();
        if self.ahead > 0 && self.ahead + bytes > self.budget {
            return None;
        }
        self.asked[gi] = true;
        self.bytes[gi] = bytes;
        self.ahead += bytes;
        Some(
            new.into_iter()
                .map(|i| {
                    self.sources.asked[i as usize] = true;
                    self.sources.path(i).to_path_buf()
                })
                .collect(),
        )
    }

    /// Whether target `gi` would wait for the disk if it ran now: one of its large sources is
    /// still to be read in, or being read in, by `pf` (asked first: a build that reads nothing
    /// ahead, a no-op, stats no source here).
    fn waits(&mut self, gi: usize, pf: &super::prefetch::Prefetcher) -> bool {
        (0..self.of[gi].len()).any(|k| {
            let i = self.of[gi][k];
            pf.pending(self.sources.path(i)) && self.sources.size(i) >= super::prefetch::SMALL_BYTES
        })
    }

    /// Target `gi` is done (`ran`: its action ran): the sources whose pages may go.
    fn done(&mut self, gi: usize, ran: bool) -> Vec<std::path::PathBuf> {
        self.ahead -= std::mem::take(&mut self.bytes[gi]);
        self.sources.done(&self.of[gi], ran)
    }
}

/// The cluster executors of a build, per rule `resources` (None: that kind runs locally).
#[derive(Default)]
pub struct Clusters<'a> {
    /// For `resources: default` rules (`--dask-config`).
    pub default: Option<SlurmRunner<'a>>,
    /// For `resources: imager` rules (`--imager-dask-config`).
    pub imager: Option<SlurmRunner<'a>>,
}

impl<'a> Clusters<'a> {
    fn runner(&mut self, r: Resources) -> Option<&mut SlurmRunner<'a>> {
        match r {
            Resources::Default => self.default.as_mut(),
            Resources::Imager => self.imager.as_mut(),
        }
    }

    fn has(&self, r: Resources) -> bool {
        match r {
            Resources::Default => self.default.is_some(),
            Resources::Imager => self.imager.is_some(),
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut SlurmRunner<'a>> {
        self.default.iter_mut().chain(self.imager.iter_mut())
    }

    fn in_flight(&self) -> usize {
        self.default
            .iter()
            .chain(self.imager.iter())
            .map(|r| r.in_flight())
            .sum()
    }
}

/// Outputs whose stat signature was taken in the same timestamp tick as their last write: a
/// second write in that tick would leave the signature unchanged, so they are re-hashed once the
/// tick has passed (see [`settle`]).
fn racy_outputs(engine: &Engine, ti: usize) -> Vec<(usize, usize)> {
    let t = &engine.graph.targets[ti];
    match engine.cache.get_state(&engine.graph.field, &t.id) {
        Ok(Some(rec)) => rec
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.sig.is_racy())
            .map(|(k, _)| (ti, k))
            .collect(),
        _ => Vec::new(),
    }
}

/// Re-hash outputs recorded within the last timestamp tick, after that tick has passed. One
/// whose bytes changed since it was recorded gets a signature that never matches, so the next
/// build re-hashes it and sees the change.
fn settle(engine: &Engine, racy: &[(usize, usize)]) {
    if racy.is_empty() {
        return;
    }
    std::thread::sleep(std::time::Duration::from_millis(25));
    for &(ti, k) in racy {
        let t = &engine.graph.targets[ti];
        let Ok(Some(mut rec)) = engine.cache.get_state(&engine.graph.field, &t.id) else {
            continue;
        };
        let (Some(out), Some(o)) = (rec.outputs.get(k), t.outputs.get(k)) else {
            continue;
        };
        let now = crate::hash::hash_file(&engine.abs(&o.rel)).ok();
        if now != Some(out.digest) {
            rec.outputs[k].sig.size = u64::MAX;
            let _ = engine.put_state(ti, &rec);
        }
    }
}

/// A failed outcome with its error.
fn failed(why: &str) -> Outcome {
    Outcome {
        error: Some(why.to_string()),
        ..outcome(Status::Failed)
    }
}

fn outcome(status: Status) -> Outcome {
    Outcome {
        status,
        seconds: 0.0,
        cpu: 0.0,
        hashed_bytes: 0,
        error: None,
        blocked: false,
        reasons: Vec::new(),
        class: None,
        started: 0.0,
        finished: 0.0,
    }
}

/// A stale target handed to a cluster executor instead of run here.
pub struct Deferred {
    /// Its key.
    pub key: crate::hash::Digest,
    /// Inputs as they went into the key (for the record).
    pub inputs: Vec<crate::cache::InputRecord>,
    /// Why it runs.
    pub reasons: Vec<String>,
    /// Which kind of stale.
    pub class: StaleClass,
}

/// What processing one target came to.
enum Step {
    /// Decided here: the outcome (`None` when left alone because of Ctrl-C), what dependents
    /// get, and a fatal error if any.
    Finished(Option<Outcome>, Done, Option<String>),
    /// Stale, and its rule runs on a cluster: the scheduler hands it on.
    Deferred(Deferred),
}

/// Evaluate one target and, if stale and allowed, run it and commit its record; with `defer`,
/// a stale target is handed back instead. `receipts` are the receipt files waiting at the start
/// of the build.
#[allow(clippy::too_many_arguments)]
fn process(
    engine: &Engine,
    ti: usize,
    mode: Mode,
    dry_run: bool,
    results: &[OnceLock<Done>],
    defer: bool,
    receipts: &Receipts,
    running: &std::sync::atomic::AtomicU64,
) -> Step {
    let up = |t: u32, o: u32| -> UpInput {
        match results[t as usize].get() {
            Some(d) => d.output(engine, t, o),
            None => UpInput::Unavailable("not evaluated".into()),
        }
    };
    // Large unknown sources of a target that runs anyway are hashed by its action's read (not
    // for cluster rules, whose receipts carry the key, nor while receipts wait).
    let defer_sources = !dry_run && !defer && mode == Mode::Run && receipts.is_empty();
    let ev: Evaluation = match engine.evaluate_with(ti, &up, defer_sources) {
        Ok(ev) => ev,
        Err(e) => {
            let msg = e.to_string();
            let mut o = outcome(Status::Failed);
            o.error = Some(msg.clone());
            return Step::Finished(Some(o), Done::Unavailable(msg.clone()), Some(msg));
        }
    };
    let take_as_is = |why: String| -> Step {
        match engine.outputs_as_they_are(ti) {
            Ok(d) => {
                let mut o = outcome(Status::Skipped);
                o.reasons = vec![format!("stage skipped: outputs taken as they are ({why})")];
                Step::Finished(Some(o), Done::Outputs(d), None)
            }
            Err(e) => {
                let stage = engine.graph.stage_of(ti);
                let key = crate::config::SKIP_STAGES
                    .iter()
                    .find(|(_, stages)| stages.contains(&stage))
                    .map_or("its skip_ key", |(p, _)| p.name);
                let msg = format!(
                    "stage {stage} is skipped ({key}), but {e}: build once without {key} to make it"
                );
                let mut o = outcome(Status::Failed);
                o.error = Some(msg.clone());
                Step::Finished(Some(o), Done::Unavailable(msg), None)
            }
        }
    };
    match ev.verdict {
        Verdict::Run { reasons, .. } if mode == Mode::TakeAsIs => take_as_is(reasons.join("; ")),
        Verdict::Blocked { why, .. } if mode == Mode::TakeAsIs => take_as_is(why),
        Verdict::UpToDate => {
            let done = Engine::done_up_to_date(ev.record.as_ref());
            Step::Finished(Some(outcome(Status::Skipped)), done, None)
        }
        Verdict::Blocked { why, upstream } => {
            let mut o = outcome(Status::Failed);
            o.error = Some(if upstream {
                format!("not run: {why}")
            } else {
                why.clone()
            });
            o.blocked = upstream;
            Step::Finished(Some(o), Done::Unavailable(why), None)
        }
        Verdict::Run { reasons, class } => {
            if mode == Mode::CheckOnly {
                let why = format!(
                    "{} is not up to date ({}), and --only does not build it: build without --only, or with --until, first",
                    engine.graph.targets[ti].id,
                    reasons.join("; ")
                );
                let mut o = outcome(Status::Failed);
                o.error = Some(why.clone());
                o.class = Some(class);
                return Step::Finished(Some(o), Done::Unavailable(why), None);
            }
            if dry_run {
                let mut o = outcome(Status::WouldRun);
                let mut reasons = reasons;
                let (g, id) = (engine.graph, &engine.graph.targets[ti].id);
                if let Some(true) = ev
                    .key
                    .as_ref()
                    .map(|k| crate::store::holds(engine.cache, &g.field, id, k))
                {
                    reasons.push(
                        "the content store holds its outputs of an earlier run with this key: they would be restored, not recomputed".into(),
                    );
                }
                o.reasons = reasons;
                o.class = Some(class);
                return Step::Finished(Some(o), Done::Unknown, None);
            }
            if interrupted() {
                return Step::Finished(None, Done::Unavailable("interrupted".into()), None);
            }
            if !ev.pending.is_empty() {
                return run_then_key(engine, ti, &up, ev.pending, reasons, class, running);
            }
            let key = ev.key.unwrap_or(crate::hash::Digest([0; 32]));
            // Work a Slurm job finished after its coordinator died: take it, do not redo it.
            if let Some(outputs) = ingest_receipt(engine, ti, &key, receipts) {
                let seconds = outputs.1;
                let (mut o, done, fatal) =
                    commit(engine, ti, key, ev.inputs, Ok(outputs), reasons, class);
                if o.as_ref().is_some_and(|o| o.status == Status::Ran) {
                    o = Some(Outcome {
                        status: Status::Skipped,
                        seconds,
                        reasons: vec![
                            "finished by a Slurm job of an earlier build (receipt taken)".into(),
                        ],
                        ..outcome(Status::Skipped)
                    });
                }
                return Step::Finished(o, done, fatal);
            }
            // The content store: keep the outputs this run replaces; take back those of an
            // earlier run with this key.
            let mut reasons = reasons;
            if engine.use_store {
                match from_store(engine, ti, &key, ev.record.as_deref()) {
                    Ok(Some(outputs)) => {
                        let ok = Ok((outputs, 0.0, hostname()));
                        let (mut o, done, fatal) =
                            commit(engine, ti, key, ev.inputs, ok, reasons, class);
                        if let Some(o) = o.as_mut().filter(|o| o.status == Status::Ran) {
                            o.status = Status::Restored;
                        }
                        return Step::Finished(o, done, fatal);
                    }
                    Ok(None) => {}
                    Err(why) => reasons.push(why),
                }
            }
            // Inputs `arrakis archive` removed come back from the tarball first.
            if let Err(e) = engine.restore_inputs(ti) {
                let e = Err(super::Failure::of(e));
                let (o, done, fatal) = commit(engine, ti, key, ev.inputs, e, reasons, class);
                return Step::Finished(o, done, fatal);
            }
            if defer {
                return Step::Deferred(Deferred {
                    key,
                    inputs: ev.inputs,
                    reasons,
                    class,
                });
            }
            running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let run = run_target(engine, ti);
            running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let result = run
                .outputs
                .map(|o| (o, run.seconds, hostname()))
                .map_err(super::Failure::of);
            let (o, done, fatal) = commit(engine, ti, key, ev.inputs, result, reasons, class);
            Step::Finished(o, done, fatal)
        }
    }
}

/// Run target `ti`, never built, whose large sources `pending` are hashed by the action's own
/// read; then evaluate it again for its key (every source now known: through the digests the
/// read left, or hashed here if it left none) and commit.
#[allow(clippy::too_many_arguments)]
fn run_then_key(
    engine: &Engine,
    ti: usize,
    up: &dyn Fn(u32, u32) -> UpInput,
    pending: Vec<crate::hash::witness::Asked>,
    reasons: Vec<String>,
    class: StaleClass,
    running: &std::sync::atomic::AtomicU64,
) -> Step {
    running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let run = run_target(engine, ti);
    running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if let (Err(e), true) = (run.outputs.as_ref(), interrupted()) {
        // Stopped by Ctrl-C: not recorded (as in `commit`), and nothing more read to hash.
        let e = e.to_string();
        let mut o = failed(&e);
        o.reasons = reasons;
        o.class = Some(class);
        return Step::Finished(Some(o), Done::Unavailable(e), None);
    }
    let again = engine.evaluate(ti, up);
    drop(pending);
    let result = run
        .outputs
        .map(|o| (o, run.seconds, hostname()))
        .map_err(super::Failure::of);
    match again {
        Ok(ev) => match (ev.key, ev.verdict) {
            (Some(key), _) => {
                let (o, done, fatal) = commit(engine, ti, key, ev.inputs, result, reasons, class);
                Step::Finished(o, done, fatal)
            }
            // Blocked: an input went missing while it ran (no other verdict lacks a key
            // outside a dry run).
            (None, verdict) => {
                let why = match verdict {
                    Verdict::Blocked { why, .. } => why,
                    _ => "its inputs could not be known after it ran".to_string(),
                };
                Step::Finished(Some(failed(&why)), Done::Unavailable(why), None)
            }
        },
        Err(e) => {
            let msg = e.to_string();
            Step::Finished(
                Some(failed(&msg)),
                Done::Unavailable(msg.clone()),
                Some(msg),
            )
        }
    }
}

/// The content store's part in running stale target `ti` with `key`: its current outputs (of
/// `record`) are kept under their key, then those of an earlier run with `key` are put back.
/// `Ok(Some)`: restored; `Ok(None)`: run it; `Err`: run it, and why the store could not serve
/// (a damaged entry, a file error), for its reasons.
fn from_store(
    engine: &Engine,
    ti: usize,
    key: &crate::hash::Digest,
    record: Option<&crate::cache::TargetState>,
) -> Result<Option<Vec<crate::cache::OutputRecord>>, String> {
    use crate::store::{self, Restored};
    let g = engine.graph;
    let t = &g.targets[ti];
    let rels: Vec<&str> = t.outputs.iter().map(|o| o.rel.as_str()).collect();
    if let Some(rec) = record {
        match store::keep(engine.cache, &g.field, &t.id, &g.field_dir, &rels, rec) {
            Ok(true) => {
                engine
                    .kept
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => return Err(format!("not kept in the content store: {e}")),
        }
    }
    // --force means run.
    if engine.forced.get(ti).copied().unwrap_or(false) {
        return Ok(None);
    }
    let info = &g.rules[t.rule as usize];
    let names: Vec<&str> = t
        .outputs
        .iter()
        .map(|o| info.output_names[o.spec as usize].as_str())
        .collect();
    let run = (g.field.as_str(), t.id.as_str(), key);
    match store::restore(engine.cache, run, &g.field_dir, &names, &rels) {
        Ok(Restored::Outputs(o)) => Ok(Some(o)),
        Ok(Restored::Miss) => Ok(None),
        Ok(Restored::Damaged(why)) => Err(format!(
            "the content store's copy was damaged ({why}): removed, running instead"
        )),
        Err(e) => Err(format!("the content store could not restore: {e}")),
    }
}

/// Receipt files present when the build started (so targets without one cost no file access).
type Receipts = std::collections::HashSet<std::ffi::OsString>;

/// A receipt left for target `ti` with this key whose outputs are intact: (outputs, seconds,
/// host). The receipt file is removed once its record is committed.
fn ingest_receipt(
    engine: &Engine,
    ti: usize,
    key: &crate::hash::Digest,
    receipts: &Receipts,
) -> Option<(Vec<crate::cache::OutputRecord>, f64, String)> {
    let t = &engine.graph.targets[ti];
    let dir = worker::receipts_dir(engine.cache.dir(), &engine.graph.field);
    let path = worker::receipt_path(&dir, &t.id);
    if !receipts.contains(path.file_name()?) {
        return None;
    }
    let r = worker::read_receipt(&path)?;
    if r.id != t.id || r.key != key.to_hex() {
        return None;
    }
    let verified = worker::verify_outputs(&engine.graph.field_dir, &r.outputs.ok()?).ok()?;
    let _ = std::fs::remove_file(&path);
    Some((verified, r.seconds, r.host))
}

/// Record the result of running target `ti` (locally or by a Slurm worker) and say what its
/// dependents get.
fn commit(
    engine: &Engine,
    ti: usize,
    key: crate::hash::Digest,
    inputs: Vec<crate::cache::InputRecord>,
    result: Result<(Vec<crate::cache::OutputRecord>, f64, String), super::Failure>,
    reasons: Vec<String>,
    class: StaleClass,
) -> (Option<Outcome>, Done, Option<String>) {
    let t = &engine.graph.targets[ti];
    let info = &engine.graph.rules[t.rule as usize];
    let mut record = TargetRecord {
        key,
        status: RunStatus::Ok,
        action: info.action.clone(),
        params: info
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.display()))
            .collect(),
        inputs,
        outputs: Vec::new(),
        seconds: 0.0,
        host: hostname(),
        error: None,
    };
    let mut o = outcome(Status::Ran);
    o.reasons = reasons;
    o.class = Some(class);
    match result {
        Ok((outputs, seconds, host)) => {
            o.seconds = seconds;
            record.seconds = seconds;
            record.host = host;
            let digests = outputs.iter().map(|r| r.digest).collect();
            // Written again: no longer an archived file.
            for out in outputs.iter().filter(|_| engine.cache.has_archived()) {
                if let Err(e) = engine.cache.forget_archived(&engine.graph.field, &out.path) {
                    let msg = e.to_string();
                    o.status = Status::Failed;
                    o.error = Some(msg.clone());
                    return (Some(o), Done::Unavailable(msg.clone()), Some(msg));
                }
            }
            record.outputs = outputs;
            if let Err(e) = engine.put_target(ti, &record) {
                let msg = e.to_string();
                o.status = Status::Failed;
                o.error = Some(msg.clone());
                return (Some(o), Done::Unavailable(msg.clone()), Some(msg));
            }
            (Some(o), Done::Outputs(digests), None)
        }
        Err(super::Failure(e)) => {
            o.status = Status::Failed;
            o.error = Some(e.clone());
            let mut fatal = None;
            // A failure caused by Ctrl-C (children get the signal too) is not recorded.
            if !interrupted() {
                record.status = RunStatus::Failed;
                record.error = Some(e.clone());
                if let Err(ce) = engine.put_target(ti, &record) {
                    fatal = Some(ce.to_string());
                }
            }
            (Some(o), Done::Unavailable(e), fatal)
        }
    }
}

/// Build the targets whose mode is not `Ignore`, on a pool of `opts.jobs` threads.
pub fn build(engine: &Engine, modes: &[Mode], opts: &BuildOptions) -> BuildResult {
    build_on(engine, modes, opts, &mut Clusters::default())
}

/// One field of a build: its engine and the mode of each of its targets.
pub struct Part<'e, 'a> {
    /// The field's engine.
    pub engine: &'e Engine<'a>,
    /// Per target of its graph.
    pub modes: &'e [Mode],
}

/// [`build`], with the targets of rules whose resources have a cluster executor run there: the
/// pool evaluates them, the cluster runs the stale ones, and their receipts are committed here.
pub fn build_on(
    engine: &Engine,
    modes: &[Mode],
    opts: &BuildOptions,
    clusters: &mut Clusters,
) -> BuildResult {
    let part = Part { engine, modes };
    let mut r = build_parts(std::slice::from_ref(&part), opts, clusters);
    r.pop().unwrap_or_else(|| BuildResult {
        outcomes: Vec::new(),
        interrupted: false,
        stopped: false,
        seconds: 0.0,
        fatal: None,
    })
}

/// Several fields in one build: one scheduler over every field's targets (a field's tail
/// overlaps the next one's start), one pool, one cluster executor per kind for all of them (a
/// Slurm batch may hold several fields' targets). A target is known by a global index: its
/// field's offset plus its index in that field's graph. Returns one result per part, in order;
/// a fatal error, an interrupt or a stop after a failure is every part's.
pub fn build_parts(
    parts: &[Part],
    opts: &BuildOptions,
    clusters: &mut Clusters,
) -> Vec<BuildResult> {
    let start = Instant::now();
    // offsets[p]..offsets[p + 1]: part p's targets.
    let mut offsets = vec![0usize];
    for p in parts {
        offsets.push(offsets.last().unwrap_or(&0) + p.engine.graph.targets.len());
    }
    let n = *offsets.last().unwrap_or(&0);
    let locate = |gi: usize| -> (usize, usize) {
        let p = offsets.partition_point(|&o| o <= gi) - 1;
        (p, gi - offsets[p])
    };
    let mode_of = |gi: usize| {
        let (p, ti) = locate(gi);
        parts[p].modes[ti]
    };
    let results: Vec<OnceLock<Done>> = (0..n).map(|_| OnceLock::new()).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    // The stages of every part, in the order they first appear.
    let mut stages: Vec<String> = Vec::new();
    for p in parts {
        for s in p.engine.graph.stages() {
            if !stages.contains(&s) {
                stages.push(s);
            }
        }
    }
    let stage_idx: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut target_stage: Vec<usize> = Vec::with_capacity(n);
    for p in parts {
        let g = p.engine.graph;
        target_stage.extend((0..g.targets.len()).map(|i| stage_idx[g.stage_of(i)]));
    }
    let mut totals = vec![0u64; stages.len()];
    for gi in 0..n {
        if matches!(mode_of(gi), Mode::Run | Mode::TakeAsIs) {
            totals[target_stage[gi]] += 1;
        }
    }
    let mut progress = Progress::new(
        stages.iter().cloned().zip(totals).collect(),
        opts.quiet || opts.dry_run,
    );
    // Actions running now, per stage (the workers count them; the progress shows them).
    let running: Vec<std::sync::atomic::AtomicU64> = (0..stages.len())
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    if let (Some(path), false, [one]) = (&opts.live, opts.dry_run, parts) {
        progress = progress.with_live(path.clone(), &one.engine.graph.field);
    }
    let mut pending: Vec<u32> = Vec::with_capacity(n);
    for p in parts {
        pending.extend(p.engine.graph.targets.iter().map(|t| {
            t.deps
                .iter()
                .filter(|&&d| p.modes[d as usize] != Mode::Ignore)
                .count() as u32
        }));
    }
    // Ready targets per stage, each in the order it became ready.
    let mut ready = Ready::new(stages.len());
    for gi in (0..n).filter(|&gi| mode_of(gi) != Mode::Ignore && pending[gi] == 0) {
        ready.push(target_stage[gi], gi);
    }
    let start_pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("arrakis-worker-{i}"))
            .build()
    };
    let each = |outcomes: Vec<Option<Outcome>>, interrupted, stopped, fatal: Option<String>| {
        let seconds = start.elapsed().as_secs_f64();
        let mut outcomes = outcomes.into_iter();
        parts
            .iter()
            .map(|p| BuildResult {
                outcomes: outcomes
                    .by_ref()
                    .take(p.engine.graph.targets.len())
                    .collect(),
                interrupted,
                stopped,
                seconds,
                fatal: fatal.clone(),
            })
            .collect::<Vec<_>>()
    };
    // Where threads are scarce (ulimit -u, -v), one worker rather than none.
    let pool = start_pool(opts.jobs.max(1)).or_else(|e| {
        if opts.jobs > 1 {
            eprintln!(
                "arrakis: note: cannot start {} workers ({e}); running one at a time ({})",
                opts.jobs,
                crate::limits::thread_hint()
            );
            start_pool(1)
        } else {
            Err(e)
        }
    });
    let pool = match pool {
        Ok(p) => p,
        Err(e) => {
            let fatal = format!(
                "cannot start the worker pool: {e} ({})",
                crate::limits::thread_hint()
            );
            return each(outcomes, false, true, Some(fatal));
        }
    };
    let (tx, rx) = mpsc::channel::<Batch>();
    let mut stopped = false;
    let mut fatal: Option<String> = None;
    let mut was_interrupted = false;
    let mut finished_at: Vec<(usize, Instant)> = Vec::new();
    let jobs = opts.jobs.max(1);
    let remote_rule: Vec<Vec<bool>> = parts
        .iter()
        .map(|p| {
            let g = p.engine.graph;
            g.rules.iter().map(|r| clusters.has(r.resources)).collect()
        })
        .collect();
    // Each field's receipts directory (absolute: Slurm jobs write there), and the receipts in
    // it now.
    let receipt_dirs: Vec<std::path::PathBuf> = parts
        .iter()
        .map(|p| {
            let e = p.engine;
            let d = worker::receipts_dir(e.cache.dir(), &e.graph.field);
            std::path::absolute(&d).unwrap_or(d)
        })
        .collect();
    let receipts: Vec<Receipts> = receipt_dirs
        .iter()
        .map(|d| worker::receipt_files(d))
        .collect();
    let mut deferred_of: HashMap<usize, Deferred> = HashMap::new();
    // Recorded durations seed batch sizes, one lookup per rule of each part.
    let mut seen_rule: HashMap<(usize, u32), f64> = HashMap::new();
    // Read-ahead of the cold sources of the targets next in line (see `Ready::next_up`).
    let prefetch = (!opts.dry_run).then(super::prefetch::Prefetcher::start);
    // Each source file (one no rule makes) with the build's targets still to read it, and per
    // target the sources it reads: once the last is done, and an action read it, its pages go.
    let mut ahead = ReadAhead::new(n, stages.len());
    if prefetch.is_some() {
        for gi in (0..n).filter(|&gi| mode_of(gi) != Mode::Ignore) {
            let (p, ti) = locate(gi);
            let g = parts[p].engine.graph;
            // A target run elsewhere (Slurm) reads its sources there: not read ahead here.
            ahead.elsewhere[gi] = remote_rule[p][g.targets[ti].rule as usize];
            for f in g.targets[ti].inputs.iter().flat_map(|s| &s.files) {
                if let crate::graph::InputFile::Source(rel) = f {
                    ahead.reads(gi, g.field_dir.join(rel));
                }
            }
        }
    }
    pool.in_place_scope(|scope| {
        let mut in_flight = 0usize;
        let mut batches = 0usize;
        loop {
            if interrupted() && !was_interrupted {
                was_interrupted = true;
                progress.println(&format!(
                    "arrakis: interrupted; waiting for {in_flight} target(s) in flight (Ctrl-C again to abandon them)"
                ));
                for r in clusters.all() {
                    r.cancel_all();
                    for m in r.take_messages() {
                        progress.println(&m);
                    }
                }
                deferred_of.clear();
            }
            // Hand out ready targets, one batch per worker (so the next choice is made when a
            // worker is free, with everything that became ready meanwhile): see `Ready::pick`.
            loop {
                // Whether the next target of the earliest stage would wait for its sources to
                // be read in (see `Ready`).
                let next = ready.next_up(1).next();
                ready.head_waits = match (&prefetch, next) {
                    (Some(pf), Some(gi)) => ahead.waits(gi, pf),
                    _ => false,
                };
                if stopped || was_interrupted || batches >= ready.in_flight_cap(jobs) {
                    break;
                }
                let Some(batch) = ready.pick(jobs) else { break };
                in_flight += batch.len();
                batches += 1;
                let tx = tx.clone();
                let (results, running, target_stage) = (&results, &running, &target_stage);
                let (offsets, remote_rule, receipts) = (&offsets, &remote_rule, &receipts);
                let dry = opts.dry_run;
                scope.spawn(move |_| {
                    let mut msgs = Vec::with_capacity(batch.len());
                    let batch_began = Instant::now();
                    for gi in batch {
                        let (p, ti) = locate(gi);
                        let Part { engine, modes } = parts[p];
                        let field_results = &results[offsets[p]..offsets[p + 1]];
                        let defer = remote_rule[p][engine.graph.targets[ti].rule as usize];
                        let running = &running[target_stage[gi]];
                        let began = start.elapsed().as_secs_f64();
                        let (step, used) = crate::cputime::measure(|| {
                            process(
                                engine,
                                ti,
                                modes[ti],
                                dry,
                                field_results,
                                defer,
                                &receipts[p],
                                running,
                            )
                        });
                        msgs.push(match step {
                            Step::Finished(mut outcome, done, fatal) => {
                                if let Some(o) = outcome.as_mut() {
                                    o.cpu += used.cpu;
                                    o.hashed_bytes += used.hashed_bytes;
                                    o.started = began;
                                    o.finished = start.elapsed().as_secs_f64();
                                }
                                let _ = results[gi].set(done);
                                Msg { ti: gi, outcome, fatal, deferred: None }
                            }
                            Step::Deferred(d) => Msg {
                                ti: gi,
                                outcome: None,
                                fatal: None,
                                deferred: Some(d),
                            },
                        });
                    }
                    let _ = tx.send(Batch {
                        msgs,
                        seconds: batch_began.elapsed().as_secs_f64(),
                    });
                });
            }
            // The targets next in line of a stage whose actions are running have their sources
            // read ahead while the workers compute (a no-op build asks for nothing).
            if let Some(pf) = &prefetch {
                let busy = |s: usize| {
                    running[s].load(std::sync::atomic::Ordering::Relaxed) > 0 || ready.ran(s)
                };
                let mut files = Vec::new();
                for s in (0..stages.len()).filter(|&s| busy(s)) {
                    let of_stage = (0..n).filter(|&gi| target_stage[gi] == s);
                    files.extend(ahead.small(s, of_stage));
                }
                for gi in ready.next_up(jobs * READ_AHEAD_TARGETS) {
                    if !busy(target_stage[gi]) {
                        continue;
                    }
                    match ahead.next(gi) {
                        Some(f) => files.extend(f),
                        None => break,
                    }
                }
                pf.will_need(files);
            }
            let remote = clusters.in_flight();
            if in_flight == 0 && remote == 0 {
                break;
            }
            let mut msgs = Vec::new();
            let tick = std::time::Duration::from_millis(200);
            if in_flight > 0 {
                // Woken at least every tick, so the progress shows the running counts.
                let mut took = |b: Batch| {
                    batches -= 1;
                    in_flight -= b.msgs.len();
                    let ran = b.msgs.iter().any(|m| {
                        m.outcome
                            .as_ref()
                            .is_some_and(|o| o.status == Status::Ran)
                    });
                    if let Some(first) = b.msgs.first() {
                        ready.finished(target_stage[first.ti], b.msgs.len(), b.seconds, ran);
                    }
                    msgs.extend(b.msgs);
                };
                match rx.recv_timeout(tick) {
                    Ok(b) => took(b),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) if remote == 0 => break,
                    Err(_) => {}
                }
                progress.set_running(
                    running
                        .iter()
                        .map(|r| r.load(std::sync::atomic::Ordering::Relaxed)),
                );
                // Take every report that is already waiting before handing out more work.
                while let Ok(more) = rx.try_recv() {
                    took(more);
                }
            } else {
                std::thread::sleep(tick);
            }
            // Stale targets of cluster rules go to their executor.
            let mut local_msgs = Vec::with_capacity(msgs.len());
            for mut msg in msgs {
                let Some(d) = msg.deferred.take() else {
                    local_msgs.push(msg);
                    continue;
                };
                let gi = msg.ti;
                let (p, ti) = locate(gi);
                let engine = parts[p].engine;
                let g = engine.graph;
                let t = &g.targets[ti];
                let expect_s = *seen_rule.entry((p, t.rule)).or_insert_with(|| {
                    engine
                        .cache
                        .get_target(&g.field, &t.id)
                        .ok()
                        .flatten()
                        .map(|r| r.seconds)
                        .filter(|s| *s > 0.0)
                        .unwrap_or(1.0)
                });
                match job_for(engine, ti) {
                    Ok(job) => {
                        if let Some(r) = clusters.runner(g.rules[t.rule as usize].resources) {
                            r.submit(RemoteTask {
                                ti: gi,
                                key: d.key,
                                job,
                                expect_s,
                                attempts: 1,
                                receipts: receipt_dirs[p].clone(),
                            });
                        }
                        deferred_of.insert(gi, d);
                    }
                    Err(e) => {
                        let (o, done, fatal) = commit(
                            engine,
                            ti,
                            d.key,
                            d.inputs,
                            Err(super::Failure::of(e)),
                            d.reasons,
                            d.class,
                        );
                        let _ = results[gi].set(done);
                        local_msgs.push(Msg {
                            ti: gi,
                            outcome: o,
                            fatal,
                            deferred: None,
                        });
                    }
                }
            }
            // Receipts the clusters verified are committed here, in the only process with the cache.
            for r in clusters.all() {
                for done in r.poll() {
                    let Some(d) = deferred_of.remove(&done.ti) else {
                        continue;
                    };
                    let (p, ti) = locate(done.ti);
                    let ((mut o, dn, fatal), used) = crate::cputime::measure(|| {
                        commit(
                            parts[p].engine,
                            ti,
                            d.key,
                            d.inputs,
                            done.result,
                            d.reasons,
                            d.class,
                        )
                    });
                    if let Some(o) = o.as_mut() {
                        o.cpu += done.cpu + used.cpu;
                        o.hashed_bytes += used.hashed_bytes;
                        o.finished = start.elapsed().as_secs_f64();
                        o.started = (o.finished - o.seconds).max(0.0);
                    }
                    let _ = results[done.ti].set(dn);
                    local_msgs.push(Msg {
                        ti: done.ti,
                        outcome: o,
                        fatal,
                        deferred: None,
                    });
                }
                for m in r.take_messages() {
                    progress.println(&m);
                }
            }
            for msg in local_msgs {
                let gi = msg.ti;
                if let Some(pf) = &prefetch {
                    let ran = msg.outcome.as_ref().is_some_and(|o| o.status == Status::Ran);
                    pf.done_with(ahead.done(gi, ran));
                }
                let (p, ti) = locate(gi);
                let Part { engine, modes } = parts[p];
                let g = engine.graph;
                if let Some(f) = msg.fatal {
                    fatal.get_or_insert(f);
                    stopped = true;
                }
                let Some(o) = msg.outcome else { continue };
                // An input of --only's stage that is stale: said, and the build stops with it
                // (the target is not one of the build's own, so no FAILED line counts it).
                if modes[ti] == Mode::CheckOnly && o.status == Status::Failed && !o.blocked {
                    if let Some(e) = &o.error {
                        fatal.get_or_insert_with(|| e.clone());
                    }
                }
                if matches!(o.status, Status::Ran | Status::Restored) && !opts.dry_run {
                    finished_at.push((gi, Instant::now()));
                }
                let counted = matches!(modes[ti], Mode::Run | Mode::TakeAsIs);
                if counted {
                    let (ran, failed) = (o.status == Status::Ran, o.status == Status::Failed);
                    progress.finished(target_stage[gi], ran, failed, false);
                    if failed && !o.blocked {
                        let id = &g.targets[ti].id;
                        let id = if parts.len() > 1 {
                            format!("{}: {id}", g.field)
                        } else {
                            id.clone()
                        };
                        let e = o.error.as_deref().unwrap_or("");
                        progress.println(&format!("FAILED {id}: {e}"));
                    }
                }
                let rule_keeps_going = g.rules[g.targets[ti].rule as usize].keep_going;
                if o.status == Status::Failed && !o.blocked && !opts.keep_going && !rule_keeps_going
                {
                    stopped = true;
                }
                if counted {
                    outcomes[gi] = Some(o);
                }
                for &d in &g.dependents[ti] {
                    let d = d as usize;
                    if modes[d] == Mode::Ignore {
                        continue;
                    }
                    let gd = offsets[p] + d;
                    pending[gd] -= 1;
                    if pending[gd] == 0 {
                        ready.push(target_stage[gd], gd);
                    }
                }
            }
        }
    });
    progress.finish();
    // Only targets that finished in the last moments can have outputs within the racy window.
    let recent: Vec<usize> = finished_at
        .iter()
        .rev()
        .take_while(|(_, at)| at.elapsed() < std::time::Duration::from_millis(100))
        .map(|(gi, _)| *gi)
        .collect();
    for (p, part) in parts.iter().enumerate() {
        let racy: Vec<(usize, usize)> = recent
            .iter()
            .map(|&gi| locate(gi))
            .filter(|&(q, _)| q == p)
            .flat_map(|(_, ti)| racy_outputs(part.engine, ti))
            .collect();
        settle(part.engine, &racy);
        part.engine.settle_sources();
    }
    each(outcomes, was_interrupted, stopped, fatal)
}

/// Modes for a build: `--until`/`--only` selections from [`crate::graph::Graph::select`]. With
/// `only`, the selected targets' ancestors are checked but not run; otherwise ancestors run too.
pub fn modes_for(graph: &crate::graph::Graph, selected: &[bool], only: bool) -> Vec<Mode> {
    let n = graph.targets.len();
    let mut modes: Vec<Mode> = selected
        .iter()
        .map(|&s| if s { Mode::Run } else { Mode::Ignore })
        .collect();
    // Ancestors, walking backwards (targets are in topological order).
    for i in (0..n).rev() {
        if modes[i] == Mode::Ignore {
            continue;
        }
        for &d in &graph.targets[i].deps {
            let d = d as usize;
            if modes[d] == Mode::Ignore {
                modes[d] = if only { Mode::CheckOnly } else { Mode::Run };
            }
        }
    }
    modes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-ahead asks for the next targets' sources while their bytes fit the budget (and
    /// for the next target's however large when nothing is ahead), for a stage's small sources
    /// all at once and once, never for a target run elsewhere; a target done gives its bytes
    /// back, and a source goes once its last reader is done.
    #[test]
    fn read_ahead_keeps_to_its_budget_and_asks_for_small_sources_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: String, len: usize| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).unwrap();
            p
        };
        let cubes: Vec<_> = (0..4).map(|k| file(format!("cube{k}"), 3 << 20)).collect();
        let weights: Vec<_> = (0..4).map(|k| file(format!("w{k}"), 100)).collect();
        // Targets 0-3 (stage 0) read a cube each; 4-7 (stage 1) two weights each; 8 runs
        // elsewhere and reads cube 3 too.
        let mut ra = ReadAhead::new(9, 2);
        ra.budget = 7 << 20;
        for k in 0..4 {
            ra.reads(k, cubes[k].clone());
            ra.reads(4 + k, weights[k].clone());
            ra.reads(4 + k, weights[(k + 1) % 4].clone());
        }
        ra.reads(8, cubes[3].clone());
        ra.elsewhere[8] = true;
        // Two cubes fit in 7 MiB, a third does not.
        assert_eq!(ra.next(0), Some(vec![cubes[0].clone()]));
        assert_eq!(ra.next(1), Some(vec![cubes[1].clone()]));
        assert_eq!(ra.next(2), None);
        assert_eq!(ra.next(0), Some(vec![]), "asked for once");
        // Target 0 done: its bytes back, its cube let go of (its action read it).
        assert_eq!(ra.done(0, true), vec![cubes[0].clone()]);
        assert_eq!(ra.next(2), Some(vec![cubes[2].clone()]));
        // Nothing ahead: the next target's sources, however large.
        let _ = (ra.done(1, true), ra.done(2, true));
        ra.budget = 1 << 20;
        assert_eq!(ra.next(3), Some(vec![cubes[3].clone()]));
        assert_eq!(ra.next(8), Some(vec![]), "not for a target run elsewhere");
        // The second stage's weights at once, each once; nothing the second time.
        assert_eq!(ra.small(1, 4..8), weights);
        assert!(ra.small(1, 4..8).is_empty());
        // Cube 3 goes once its last reader is done.
        assert!(ra.done(3, true).is_empty());
        assert_eq!(ra.done(8, false), vec![cubes[3].clone()]);
        assert_eq!(ra.ahead, 0);
    }

    /// The earliest stage with ready targets keeps one batch in flight; other workers go depth
    /// first; with one worker stages go in order.
    #[test]
    fn the_head_stage_keeps_one_in_flight_and_the_rest_go_depth_first() {
        let mut r = Ready::new(3);
        for gi in 0..4 {
            r.push(0, gi);
        }
        r.push(1, 10);
        r.push(2, 20);
        r.push(2, 21);
        // Nothing in flight: the head (stage 0) first, then the deepest stage, in ready order.
        assert_eq!(r.pick(2), Some(vec![0]));
        assert_eq!(r.pick(2), Some(vec![20]));
        // The head still has one in flight: depth first again.
        assert_eq!(r.pick(2), Some(vec![21]));
        assert_eq!(r.pick(2), Some(vec![10]));
        assert_eq!(r.pick(2), Some(vec![1]));
        // The head's batch comes back: the head is taken up again before the others.
        r.finished(0, 1, 0.5, true);
        r.finished(0, 1, 0.5, true);
        r.push(2, 22);
        assert_eq!(r.pick(2), Some(vec![2]));
        assert_eq!(r.pick(2), Some(vec![22]));
        assert_eq!(r.next_up(5).collect::<Vec<_>>(), vec![3]);
        assert!(r.ran(0) && !r.ran(1));
        assert_eq!(r.pick(2), Some(vec![3]));
        assert_eq!(r.pick(2), None);
        assert_eq!(r.next_up(5).count(), 0);
    }

    /// While the head's next target would wait for the disk, a free worker takes a later
    /// stage's target if there is one, and the head's otherwise; once its cube is in, the head
    /// is taken up again.
    #[test]
    fn a_worker_computes_while_the_head_waits_for_the_disk() {
        let mut r = Ready::new(3);
        for gi in 0..3 {
            r.push(0, gi);
        }
        r.push(1, 10);
        r.push(2, 20);
        r.head_waits = true;
        assert_eq!(r.pick(2), Some(vec![20]));
        assert_eq!(r.pick(2), Some(vec![10]));
        // Nothing else to do: the head, waiting or not.
        assert_eq!(r.pick(2), Some(vec![0]));
        r.finished(0, 1, 0.5, true);
        r.push(2, 21);
        r.head_waits = false;
        assert_eq!(r.pick(2), Some(vec![1]));
        assert_eq!(r.pick(2), Some(vec![21]));
    }

    /// Batches grow while they come back quickly (a no-op build) and fall back to one target
    /// when targets take time (each choice made when a worker is free).
    #[test]
    fn batches_grow_while_quick_and_shrink_when_targets_take_time() {
        let mut r = Ready::new(1);
        for gi in 0..10_000 {
            r.push(0, gi);
        }
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let b = r.pick(2).unwrap();
            sizes.push(b.len());
            r.finished(0, b.len(), 1e-5 * b.len() as f64, false);
        }
        assert_eq!(sizes, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 256]);
        let b = r.pick(2).unwrap();
        r.finished(0, b.len(), 0.01 * b.len() as f64, true);
        assert_eq!(r.pick(2).unwrap().len(), 1);
        // Few left: never more than a quarter of a worker's share.
        let mut r = Ready::new(1);
        for gi in 0..16 {
            r.push(0, gi);
        }
        r.chunk[0] = 256;
        assert_eq!(r.pick(2).unwrap().len(), 2);
    }

    /// A source is let go of once its last reader is done, and only if an action read it.
    #[test]
    fn sources_go_after_their_last_reader_and_only_if_read() {
        let mut s = SourceReaders::default();
        let cube = s.reader("cube.fits".into());
        let cat = s.reader("cat.csv".into());
        assert_eq!(s.reader("cube.fits".into()), cube);
        let skipped = s.reader("skipped.fits".into());
        assert!(s
            .done(&[cube, cat], true)
            .iter()
            .any(|p| p.ends_with("cat.csv")));
        assert_eq!(
            s.done(&[cube], false),
            vec![std::path::PathBuf::from("cube.fits")]
        );
        assert!(s.done(&[skipped], false).is_empty());
    }
}
