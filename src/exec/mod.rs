//! The build engine: deciding whether a target is up to date, running its action with atomic
//! outputs, and committing its record.
//!
//! Owns: [`Engine`] (evaluation of one target against its record, source-file hashing through the
//! stat cache with a per-build memo so no file is hashed twice, running one target), and the
//! interrupt flag. The schedulers (`local`) decide *when* targets are evaluated.
//! Must never: know what a stage computes; accept an output that was not completely written (every
//! output goes to a temporary file in its own directory and is renamed into place only after the
//! action succeeded); commit a record before all of a target's outputs are in place.
//! Invariants (DESIGN.md §2): a target runs iff its key differs from its record's, its last run
//! failed, or a recorded output is missing or no longer has its recorded digest.

pub mod action;
mod error;
pub mod local;
mod prefetch;
mod records;
pub mod slurm;
pub mod worker;

pub use error::{EngineError, Failure, RestoreError, SetupError};
use records::Ahead;
pub use records::{FinalRecords, Sigs, States};

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::cache::{
    outputs_id, Cache, CacheError, FileRecord, InputRecord, RunStatus, TargetState,
};
use crate::graph::{Graph, InputFile};
use crate::hash::{hash_file, Digest, KeyHasher, StatSig};
use crate::rules::RuleSet;

/// Set by the Ctrl-C handler: schedulers start nothing new once it is set.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// What a finished target leaves for its dependents.
#[derive(Clone, Debug)]
pub enum Done {
    /// The digests of its outputs, in graph order.
    Outputs(Vec<Digest>),
    /// Up to date with the record read at the start of the build: its outputs' digests are
    /// that record's ([`Engine::read_digest`]), not copied (on a big field most targets end so).
    Recorded,
    /// Dry run: it would run, so its outputs are not known yet.
    Unknown,
    /// It failed or could not run; dependents cannot run. The string says why.
    Unavailable(String),
}

/// One upstream output as seen by a dependent.
#[derive(Clone, Debug)]
pub enum UpInput {
    /// Its digest.
    Known(Digest),
    /// Dry run: the producer would run first.
    Unknown,
    /// The producer failed or could not run.
    Unavailable(String),
}

impl Done {
    /// Output `k` of finished target `ti`, as its dependents see it.
    pub fn output(&self, engine: &Engine, ti: u32, k: u32) -> UpInput {
        let known = |d: Option<Digest>| {
            d.map(UpInput::Known)
                .unwrap_or(UpInput::Unavailable("output index out of range".into()))
        };
        match self {
            Done::Outputs(d) => known(d.get(k as usize).copied()),
            Done::Recorded => known(engine.read_digest(ti as usize, k as usize)),
            Done::Unknown => UpInput::Unknown,
            Done::Unavailable(why) => UpInput::Unavailable(why.clone()),
        }
    }
}

/// Why a target is not up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleClass {
    /// No record: never built (or forgotten).
    Missing,
    /// The last run failed.
    Failed,
    /// Recorded, but something changed.
    Stale,
}

/// The decision for one target.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Nothing to do; the recorded outputs are valid.
    UpToDate,
    /// It must run, for these reasons.
    Run {
        /// Human-readable reasons (`explain` prints them).
        reasons: Vec<String>,
        /// Which kind of not-up-to-date.
        class: StaleClass,
    },
    /// It cannot run: an input file is missing (`upstream: false`) or comes from a target that
    /// failed (`upstream: true`).
    Blocked {
        /// Why.
        why: String,
        /// Whether the cause is an upstream target rather than this target's own inputs.
        upstream: bool,
    },
}

/// The result of evaluating one target.
#[derive(Debug)]
pub struct Evaluation<'e> {
    /// The key, when every input is known.
    pub key: Option<Digest>,
    /// Inputs as they go into the key (empty when up to date: nothing needs them).
    pub inputs: Vec<InputRecord>,
    /// The decision.
    pub verdict: Verdict,
    /// The target's record, if any: borrowed from the records read in bulk at the start of the
    /// build, owned when read from the cache on its own.
    pub record: Option<Cow<'e, TargetState>>,
    /// Large sources left unhashed because the target runs anyway (it was never built): their
    /// digests come from the action's own read ([`crate::hash::witness`]); evaluate again once
    /// it has run for the key. `key` is `None` meanwhile.
    pub pending: Vec<crate::hash::witness::Asked>,
}

/// Sources at least this large are hashed from the action's own read when the target runs
/// anyway; smaller ones (catalogues, shared by many targets) are hashed first, as before.
const DEFER_HASH_MIN_BYTES: u64 = 1 << 20;

/// Files a build read to hash them ([`Engine::hashed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Hashed {
    /// Number of files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The digest of one source path once known (`Some(None)`: the file does not exist).
type DigestCell = Mutex<Option<Option<Digest>>>;

/// Everything needed to evaluate and run the targets of one graph.
pub struct Engine<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// The rules the graph was expanded from (for actions).
    pub rules: &'a RuleSet,
    /// The cache.
    pub cache: &'a Cache,
    /// Source digests of this build, one cell per path: a second target reading the same file
    /// meanwhile waits for the first one's hash instead of hashing it too.
    memo: Mutex<rustc_hash::FxHashMap<String, std::sync::Arc<DigestCell>>>,
    /// Files read to hash them this build (sources the stat cache could not answer, outputs
    /// whose signature changed; not the outputs of actions), and their bytes.
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    /// Records read in bulk.
    states: Option<States>,
    /// Outputs found unchanged by [`Engine::check_outputs_ahead`].
    ahead: Option<Ahead>,
    /// The field directory, opened once: outputs are stat'ed relative to it.
    field_fd: Option<crate::hash::DirFd>,
    /// Every source path stat'ed this build, with the signature it had before it was read
    /// (`None`: it did not exist; racy signatures made untrustworthy), for the snapshot.
    sources_seen: Mutex<Vec<(PathBuf, Option<StatSig>)>>,
    /// A directory input was read: its contents are not in `sources_seen`, so no snapshot.
    read_directory: AtomicBool,
    /// Sources hashed in the timestamp tick of their last write (kept out of the stat cache),
    /// with the signature and digest they had: [`Engine::settle_sources`] checks them again.
    racy_sources: Mutex<Vec<(PathBuf, StatSig, Digest)>>,
    /// Output signatures of the records written this build, by target index (`None`: a failure
    /// record); the other targets' records are as `states` says.
    written: Mutex<rustc_hash::FxHashMap<u32, Option<Box<[StatSig]>>>>,
    /// Targets to run even when up to date (`--force`, `--forceall`), by index; empty: none.
    pub forced: Vec<bool>,
    /// Keep the outputs a target is about to replace in the content store, and restore a
    /// stale target's outputs from it when its key was built before (`crate::store`).
    pub use_store: bool,
    /// Entries this build added to the content store.
    pub kept: AtomicU64,
    /// Whether the content store was empty when first asked (see [`Engine::evaluate_with`]).
    store_empty: std::sync::OnceLock<bool>,
}

impl<'a> Engine<'a> {
    /// A new engine for one build.
    pub fn new(graph: &'a Graph, rules: &'a RuleSet, cache: &'a Cache) -> Engine<'a> {
        Engine {
            graph,
            rules,
            cache,
            memo: Mutex::new(rustc_hash::FxHashMap::default()),
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            states: None,
            ahead: None,
            field_fd: crate::hash::DirFd::open(&graph.field_dir).ok(),
            sources_seen: Mutex::new(Vec::new()),
            read_directory: AtomicBool::new(false),
            racy_sources: Mutex::new(Vec::new()),
            written: Mutex::new(rustc_hash::FxHashMap::default()),
            forced: Vec::new(),
            use_store: false,
            kept: AtomicU64::new(0),
            store_empty: std::sync::OnceLock::new(),
        }
    }

    /// Digests of target `ti`'s outputs as they are on disk (a stage skipped with Arrakis's
    /// `skip_*`: its outputs are taken as they are); an error names the first missing one.
    pub fn outputs_as_they_are(&self, ti: usize) -> Result<Vec<Digest>, String> {
        let t = &self.graph.targets[ti];
        t.outputs
            .iter()
            .map(|o| {
                let abs = self.abs(&o.rel);
                match self.file_digest(&abs) {
                    Ok(Some(d)) => Ok(d),
                    Ok(None) => Err(format!(
                        "{} does not exist, so it cannot be taken as it is",
                        abs.display()
                    )),
                    Err(e) => Err(e.to_string()),
                }
            })
            .collect()
    }

    /// Record target `ti` in the cache (and remember its output signatures for the snapshot).
    pub fn put_target(
        &self,
        ti: usize,
        record: &crate::cache::TargetRecord,
    ) -> Result<(), CacheError> {
        let t = &self.graph.targets[ti];
        self.cache.put_target(&self.graph.field, &t.id, record)?;
        self.remember(ti, record.status, record.outputs.iter().map(|o| o.sig));
        Ok(())
    }

    /// Replace the hot part of target `ti`'s record (and remember its signatures).
    pub fn put_state(&self, ti: usize, state: &TargetState) -> Result<(), CacheError> {
        let t = &self.graph.targets[ti];
        self.cache.put_state(&self.graph.field, &t.id, state)?;
        self.remember(ti, state.status, state.outputs.iter().map(|o| o.sig));
        Ok(())
    }

    fn remember(&self, ti: usize, status: RunStatus, sigs: impl Iterator<Item = StatSig>) {
        let sigs = (status == RunStatus::Ok).then(|| sigs.collect());
        if let Ok(mut w) = self.written.lock() {
            w.insert(ti as u32, sigs);
        }
    }

    /// The absolute path of a field-relative path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.graph.field_dir.join(rel)
    }

    /// Digest of a file no rule makes, through the stat cache; `None` when it does not exist.
    /// Each path is hashed at most once per build.
    pub fn source_digest(&self, rel: &str) -> Result<Option<Digest>, EngineError> {
        let cell = {
            let mut m = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(rel) {
                Some(c) => c.clone(),
                None => m.entry(rel.to_string()).or_default().clone(),
            }
        };
        // Held while hashing: others asking for this path wait for the digest.
        let mut slot = cell.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = *slot {
            return Ok(d);
        }
        let d = self.file_digest(&self.abs(rel))?;
        *slot = Some(d);
        Ok(d)
    }

    /// How many files this build read to hash them, and how many bytes: sources the stat cache
    /// could not answer and recorded outputs whose signature changed (not what actions wrote).
    /// A no-op build hashes nothing.
    pub fn hashed(&self) -> Hashed {
        Hashed {
            files: self.hashed_files.load(Ordering::Relaxed),
            bytes: self.hashed_bytes.load(Ordering::Relaxed),
        }
    }

    fn count_hash(&self, bytes: u64) {
        self.hashed_files.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn file_digest(&self, abs: &Path) -> Result<Option<Digest>, EngineError> {
        let io = |source| EngineError::Io {
            path: abs.to_path_buf(),
            source,
        };
        // One stat: a no-op build's floor is a stat per source file.
        let seen = |sig: Option<StatSig>| {
            if let Ok(mut v) = self.sources_seen.lock() {
                v.push((abs.to_path_buf(), sig));
            }
        };
        let md = match std::fs::metadata(abs) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                seen(None);
                return Ok(None);
            }
            Err(e) => return Err(io(e)),
        };
        if let Some(kind) = crate::hash::special_kind(&md.file_type()) {
            return Err(io(crate::hash::special_file_error(kind)));
        }
        if md.is_dir() {
            self.read_directory.store(true, Ordering::Relaxed);
            return self.dir_digest(abs).map(Some);
        }
        let sig = StatSig::from_metadata(&md);
        seen(Some(sig.untrusted_if_racy()));
        if let Some(rec) = self.cache.get_file(abs)? {
            if rec.sig == sig {
                return Ok(Some(rec.digest));
            }
        }
        // Hashed by the action that read it (a deferred source), or read here to hash it.
        let digest = match crate::hash::witness::take(abs, sig) {
            Some(d) => d,
            None => hash_file(abs).map_err(io)?,
        };
        self.count_hash(sig.size);
        // A signature taken in the same tick as a write could hide a second write: don't keep it.
        if !sig.is_racy() {
            self.cache.put_file(abs, &FileRecord { sig, digest })?;
        } else if let Ok(mut v) = self.racy_sources.lock() {
            v.push((abs.to_path_buf(), sig, digest));
        }
        Ok(Some(digest))
    }

    /// Sources hashed in the same timestamp tick as their last write were kept out of the stat
    /// cache (a second write in that tick would go unseen), so the next build would hash them
    /// again: a catalogue edited just before `arrakis build`. Once the tick has passed, each is
    /// hashed once more (not counted in the build's hashed files); one unchanged since goes into
    /// the stat cache, and into the snapshot's list, with its settled signature.
    pub fn settle_sources(&self) {
        let racy = match self.racy_sources.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => return,
        };
        let Some(newest) = racy.iter().map(|(_, s, _)| *s).max_by_key(|s| s.mtime_ns) else {
            return;
        };
        for _ in 0..10 {
            if !newest.is_racy() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for (abs, sig, digest) in racy {
            let Ok(Some(now)) = StatSig::of_path(&abs) else {
                continue;
            };
            if now != sig || now.is_racy() || hash_file(&abs).ok() != Some(digest) {
                continue;
            }
            if self
                .cache
                .put_file(&abs, &FileRecord { sig, digest })
                .is_err()
            {
                continue;
            }
            if let Ok(mut seen) = self.sources_seen.lock() {
                for e in seen.iter_mut().filter(|e| e.0 == abs) {
                    e.1 = Some(sig);
                }
            }
        }
    }

    /// Digest of a directory input (a measurement set is a directory of tables): every file
    /// under it, in path order, by relative path and content digest (each through the stat
    /// cache, so an unchanged MS costs one `stat` per file).
    fn dir_digest(&self, dir: &Path) -> Result<Digest, EngineError> {
        let mut h = blake3::Hasher::new();
        h.update(b"arrakis-dir-v1\0");
        for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let e = e.map_err(|err| EngineError::Io {
                path: dir.to_path_buf(),
                source: err.into(),
            })?;
            if !e.file_type().is_file() {
                continue;
            }
            let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
            let Some(d) = self.file_digest(e.path())? else {
                continue;
            };
            h.update(rel.to_string_lossy().as_bytes());
            h.update(b"\0");
            h.update(&d.0);
        }
        Ok(Digest(*h.finalize().as_bytes()))
    }

    /// Evaluate target `ti`, given what its upstream targets left (`upstream(t)` is only called
    /// for targets `ti` depends on, which have finished).
    pub fn evaluate(
        &self,
        ti: usize,
        upstream: &dyn Fn(u32, u32) -> UpInput,
    ) -> Result<Evaluation<'_>, EngineError> {
        self.evaluate_with(ti, upstream, false)
    }

    /// Whether source `rel` can be left unhashed until the action has read it: a regular file
    /// of at least [`DEFER_HASH_MIN_BYTES`] that neither this build nor the stat cache knows.
    fn defer_source(&self, rel: &str) -> Result<bool, EngineError> {
        let known = {
            let m = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            m.contains_key(rel)
        };
        if known {
            return Ok(false);
        }
        let abs = self.abs(rel);
        let Ok(md) = std::fs::metadata(&abs) else {
            return Ok(false);
        };
        if !md.is_file() || md.len() < DEFER_HASH_MIN_BYTES {
            return Ok(false);
        }
        let sig = StatSig::from_metadata(&md);
        Ok(!self.cache.get_file(&abs)?.is_some_and(|r| r.sig == sig))
    }

    /// [`Engine::evaluate`]; with `defer_sources`, a target with no record (it runs whatever
    /// its key) leaves its large unknown sources unhashed ([`Evaluation::pending`]): the
    /// action's read hashes them. Not while the content store holds anything (a target with
    /// no record could still find its outputs there by key).
    pub fn evaluate_with(
        &self,
        ti: usize,
        upstream: &dyn Fn(u32, u32) -> UpInput,
        defer_sources: bool,
    ) -> Result<Evaluation<'_>, EngineError> {
        let t = &self.graph.targets[ti];
        let rule = &self.graph.rules[t.rule as usize];
        let record = match &self.states {
            Some(v) => v.get(ti).map(Cow::Borrowed),
            None => self
                .cache
                .get_state(&self.graph.field, &t.id)?
                .map(Cow::Owned),
        };
        // Borrowed (slot, path, digest) triples: owned records are only made when needed.
        let mut refs: Vec<(&str, &str, Digest)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let mut blocked: Option<(String, bool)> = None;
        let mut pending = Vec::new();
        let defer_sources = defer_sources
            && record.is_none()
            && (!self.use_store
                || *self
                    .store_empty
                    .get_or_init(|| self.cache.stored_is_empty()));
        let mut key = KeyHasher::new();
        key.rule(&rule.name);
        key.action(&rule.action);
        for (name, value) in &rule.params {
            key.param(name, &value.canonical());
        }
        for slot in &t.inputs {
            let sname = &rule.input_names[slot.spec as usize];
            let first = refs.len();
            for f in &slot.files {
                match f {
                    InputFile::Output { target, output } => {
                        let up = &self.graph.targets[*target as usize];
                        let rel = &up.outputs[*output as usize].rel;
                        match upstream(*target, *output) {
                            UpInput::Known(d) => refs.push((sname, rel, d)),
                            UpInput::Unknown => {
                                if unknown.len() < 3 {
                                    unknown.push(format!(
                                        "input '{sname}' comes from {}, which will run first",
                                        up.id
                                    ));
                                }
                            }
                            UpInput::Unavailable(why) => {
                                blocked.get_or_insert_with(|| (format!("input '{sname}' comes from {}, which did not complete ({why})", up.id), true));
                            }
                        }
                    }
                    InputFile::Source(rel) if defer_sources && self.defer_source(rel)? => {
                        pending.push(crate::hash::witness::want(&self.abs(rel)));
                    }
                    InputFile::Source(rel) => match self.source_digest(rel)? {
                        Some(d) => refs.push((sname, rel, d)),
                        None if slot.optional => {}
                        None => match self.cache.archived(&self.graph.field, rel)? {
                            // Removed by `arrakis archive`: its content is what it was.
                            Some(a) => refs.push((sname, rel, a.digest)),
                            None => {
                                blocked.get_or_insert_with(|| {
                                    let why = format!(
                                        "input file {} (input '{sname}') does not exist",
                                        self.abs(rel).display()
                                    );
                                    (why, false)
                                });
                            }
                        },
                    },
                }
            }
            let files = &refs[first..];
            if files.is_empty() && slot.optional {
                key.input_slot(sname, 0);
                key.input_absent();
            } else {
                key.input_slot(sname, files.len());
            }
            for (_, rel, d) in files {
                key.input_file(rel, d);
            }
        }
        let owned = |refs: &[(&str, &str, Digest)]| -> Vec<InputRecord> {
            refs.iter()
                .map(|(s, p, d)| InputRecord {
                    slot: s.to_string(),
                    path: p.to_string(),
                    digest: *d,
                })
                .collect()
        };
        if let Some((why, upstream)) = blocked {
            return Ok(Evaluation {
                key: None,
                inputs: owned(&refs),
                verdict: Verdict::Blocked { why, upstream },
                record,
                pending: Vec::new(),
            });
        }
        if !pending.is_empty() && unknown.is_empty() {
            return Ok(Evaluation {
                key: None,
                inputs: Vec::new(),
                verdict: Verdict::Run {
                    reasons: vec!["never built (no record in the cache)".into()],
                    class: StaleClass::Missing,
                },
                record,
                pending,
            });
        }
        if !unknown.is_empty() {
            let class = match &record {
                None => StaleClass::Missing,
                Some(r) if r.status == RunStatus::Failed => StaleClass::Failed,
                Some(_) => StaleClass::Stale,
            };
            return Ok(Evaluation {
                key: None,
                inputs: owned(&refs),
                verdict: Verdict::Run {
                    reasons: unknown,
                    class,
                },
                record,
                pending,
            });
        }
        let key = key.finish();
        let verdict = match &record {
            None => Verdict::Run {
                reasons: vec!["never built (no record in the cache)".into()],
                class: StaleClass::Missing,
            },
            Some(r) if r.status == RunStatus::Failed => {
                let full = self.cache.get_target(&self.graph.field, &t.id)?;
                let error = full
                    .and_then(|f| f.error)
                    .unwrap_or_else(|| "unknown error".into());
                Verdict::Run {
                    reasons: vec![format!("the last run failed: {error}")],
                    class: StaleClass::Failed,
                }
            }
            Some(r) if r.key != key => Verdict::Run {
                reasons: self.key_diff(ti, &owned(&refs))?,
                class: StaleClass::Stale,
            },
            Some(r) => match self.check_outputs(ti, r.as_ref())? {
                Some(reasons) => Verdict::Run {
                    reasons,
                    class: StaleClass::Stale,
                },
                None => Verdict::UpToDate,
            },
        };
        let verdict = match verdict {
            Verdict::UpToDate if self.forced.get(ti).copied().unwrap_or(false) => Verdict::Run {
                reasons: vec!["forced (--force/--forceall): up to date, run on purpose".into()],
                class: StaleClass::Stale,
            },
            v => v,
        };
        let inputs = match verdict {
            Verdict::UpToDate => Vec::new(),
            _ => owned(&refs),
        };
        Ok(Evaluation {
            key: Some(key),
            inputs,
            verdict,
            record,
            pending: Vec::new(),
        })
    }

    /// Why the key differs from the record's: parameters, action, inputs.
    fn key_diff(&self, ti: usize, inputs: &[InputRecord]) -> Result<Vec<String>, EngineError> {
        let t = &self.graph.targets[ti];
        let rule = &self.graph.rules[t.rule as usize];
        let Some(rec) = self.cache.get_target(&self.graph.field, &t.id)? else {
            return Ok(vec!["never built (no record in the cache)".into()]);
        };
        let mut reasons = Vec::new();
        if rec.action != rule.action {
            // `builtin:NAME:vVERSION+CODE`: say which part moved.
            let builtin = |a: &str| {
                let rest = a.strip_prefix("builtin:")?;
                let (name, v) = rest.split_once(":v")?;
                let (version, code) = v.split_once('+').unwrap_or((v, ""));
                Some((name.to_string(), version.to_string(), code.to_string()))
            };
            reasons.push(match (builtin(&rec.action), builtin(&rule.action)) {
                (Some((a, va, _)), Some((b, vb, _))) if a == b && va == vb => format!(
                    "the code of builtin {b} changed since it ran: this arrakis computes its outputs differently, or a file the stage calls was edited"
                ),
                _ => format!("the action changed from {} to {}", rec.action, rule.action),
            });
        }
        let old: HashMap<&str, &str> = rec
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in &rule.params {
            let now = v.display();
            match old.get(k.as_str()) {
                Some(o) if *o == now => {}
                Some(o) => reasons.push(format!("parameter {k} changed from {o} to {now}")),
                None => reasons.push(format!("parameter {k} is new (value {now})")),
            }
        }
        for (k, o) in &old {
            if !rule.params.iter().any(|(n, _)| n == k) {
                reasons.push(format!("parameter {k} (was {o}) is no longer read"));
            }
        }
        let old_in: HashMap<(&str, &str), &Digest> = rec
            .inputs
            .iter()
            .map(|i| ((i.slot.as_str(), i.path.as_str()), &i.digest))
            .collect();
        let new_in: HashMap<(&str, &str), &Digest> = inputs
            .iter()
            .map(|i| ((i.slot.as_str(), i.path.as_str()), &i.digest))
            .collect();
        for i in inputs {
            match old_in.get(&(i.slot.as_str(), i.path.as_str())) {
                Some(d) if **d == i.digest => {}
                Some(d) => reasons.push(format!(
                    "input '{}' {} changed (content {} -> {})",
                    i.slot,
                    i.path,
                    d.short(),
                    i.digest.short()
                )),
                None => reasons.push(format!("input '{}' {} is new", i.slot, i.path)),
            }
        }
        for i in &rec.inputs {
            if !new_in.contains_key(&(i.slot.as_str(), i.path.as_str())) {
                reasons.push(format!(
                    "input '{}' {} is no longer an input",
                    i.slot, i.path
                ));
            }
        }
        if reasons.is_empty() {
            reasons.push("the order of inputs or the rule's definition changed".into());
        }
        Ok(reasons)
    }

    /// `None` when every recorded output is present with its recorded digest; otherwise why not.
    /// Outputs whose stat signature changed but whose bytes did not (a `touch`) get their record
    /// refreshed so the next check is a stat again.
    fn check_outputs(
        &self,
        ti: usize,
        rec: &TargetState,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let t = &self.graph.targets[ti];
        if rec.outputs.len() != t.outputs.len()
            || rec.outputs_id != outputs_id(t.outputs.iter().map(|o| o.rel.as_str()))
        {
            return Ok(Some(vec!["its set of outputs changed".into()]));
        }
        let mut refreshed: Option<TargetState> = None;
        // Checked ahead against this very record (the one read in bulk)?
        let ahead = self.ahead.as_ref().filter(|_| {
            self.states
                .as_ref()
                .and_then(|s| s.get(ti))
                .is_some_and(|r| std::ptr::eq(r, rec))
        });
        for (k, (out, o)) in rec.outputs.iter().zip(&t.outputs).enumerate() {
            // The absolute path is only built when needed (a hash, an error).
            let io = |source| EngineError::Io {
                path: self.abs(&o.rel),
                source,
            };
            if ahead.is_some_and(|a| a.unchanged(ti, k)) {
                continue;
            }
            let sig = match &self.field_fd {
                Some(d) => d.stat(&o.rel),
                None => StatSig::of_path(&self.abs(&o.rel)),
            };
            let Some(sig) = sig.map_err(io)? else {
                // Removed by `arrakis archive` with these very bytes: not stale.
                if self
                    .cache
                    .archived(&self.graph.field, &o.rel)?
                    .is_some_and(|a| a.digest == out.digest)
                {
                    continue;
                }
                return Ok(Some(vec![format!("output {} is missing", o.rel)]));
            };
            if sig == out.sig {
                continue;
            }
            let d = hash_file(&self.abs(&o.rel)).map_err(io)?;
            self.count_hash(sig.size);
            if d != out.digest {
                return Ok(Some(vec![format!(
                    "output {} was modified (content {} -> {})",
                    o.rel,
                    out.digest.short(),
                    d.short()
                )]));
            }
            if !sig.is_racy() {
                refreshed.get_or_insert_with(|| rec.clone()).outputs[k].sig = sig;
            }
        }
        if let Some(r) = refreshed {
            self.put_state(ti, &r)?;
        }
        Ok(None)
    }

    /// Put back the input files of target `ti` that `arrakis archive` removed, from their
    /// tarball, checking each against the digest it had. An input removed without a copy is an
    /// error that says how to get it back.
    pub fn restore_inputs(&self, ti: usize) -> Result<(), RestoreError> {
        if !self.cache.has_archived() {
            return Ok(());
        }
        let t = &self.graph.targets[ti];
        for slot in &t.inputs {
            for f in &slot.files {
                let rel = match f {
                    InputFile::Output { target, output } => {
                        &self.graph.targets[*target as usize].outputs[*output as usize].rel
                    }
                    InputFile::Source(rel) => rel,
                };
                let abs = self.abs(rel);
                if abs.exists() {
                    continue;
                }
                let Some(a) = self.cache.archived(&self.graph.field, rel)? else {
                    continue;
                };
                let Some(tar) = &a.tar else {
                    return Err(RestoreError::NoCopy(abs));
                };
                crate::archive::restore(&self.graph.field_dir.join(tar), rel, &a, &abs)?;
                self.cache.forget_archived(&self.graph.field, rel)?;
            }
        }
        Ok(())
    }

    /// What an up-to-date target leaves its dependents, given the record it was evaluated
    /// with: a record read in bulk is lent ([`Done::Recorded`]; re-checking outputs only ever
    /// refreshes signatures, never digests), one read on its own is copied.
    pub fn done_up_to_date(rec: Option<&Cow<'_, TargetState>>) -> Done {
        match rec {
            Some(Cow::Borrowed(_)) => Done::Recorded,
            Some(Cow::Owned(r)) => Done::Outputs(r.outputs.iter().map(|o| o.digest).collect()),
            None => Done::Outputs(Vec::new()),
        }
    }

    /// Digest of output `k` of target `ti` in the record read at the start of the build.
    pub fn read_digest(&self, ti: usize, k: usize) -> Option<Digest> {
        let rec = self.states.as_ref()?.get(ti)?;
        rec.outputs.get(k).map(|o| o.digest)
    }
}
