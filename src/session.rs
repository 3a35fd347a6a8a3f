//! The build sequence every command that looks at a whole field shares (`build`, `status`,
//! `archive`): take the cache lock; load the rules and resolve the parameters; try the snapshot of
//! the last complete build; otherwise open the cache, read the field's records in one scan while
//! the units are read and the rules expanded, and hand back what an [`Engine`] is made from.
//!
//! Owns: [`FieldSpec`] (what the user asked for, parsed and ready), [`Front`] and [`Setup`] (rules,
//! parameters, units, graph), [`open`] and [`engine`], and the `ARRAKIS_TIMINGS` phase log.
//! Must never: print results or choose exit codes (the commands do); run a target (the
//! executors do).
//! Invariant: the lock is taken before anything is read, and the unit files are stat'ed before
//! they are read, so a snapshot never holds a signature newer than the contents the graph was
//! made from.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::{Cache, CacheError, CacheLock, ScannedStates};
use crate::config::{self, ConfigError, Params};
use crate::exec::Engine;
use crate::graph::Graph;
use crate::hash::Digest;
use crate::rules::expand::{expand, ExpandError};
use crate::rules::{self, RuleError, RuleSet};
use crate::snapshot::{self, Check, UnitFiles, Verified};
use crate::stages::builtin_version;
use crate::units::{Units, UnitsError};

/// Why a field cannot be loaded; the build has not started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A rule file is wrong.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// A config file or `--set` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `field.yaml` or a catalogue is wrong.
    #[error(transparent)]
    Units(#[from] UnitsError),
    /// The rules do not expand for this field.
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// The cache cannot be opened or read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The field's lock cannot be taken.
    #[error("{}: {why}", path.display())]
    FieldLock {
        /// The lock file.
        path: PathBuf,
        /// Why (who holds it).
        why: String,
    },
    /// The field directory is not there.
    #[error("field directory {} does not exist; pass --datadir pointing at the directory that holds {field}", dir.display())]
    NoField {
        /// The directory looked for.
        dir: PathBuf,
        /// The field.
        field: String,
    },
    /// The field directory cannot be resolved.
    #[error("cannot resolve {}: {source}", dir.display())]
    Resolve {
        /// The directory.
        dir: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Reading the cache's records stopped with a panic.
    #[error("reading the cache failed")]
    Scan,
}

/// A field and how to build it, as the command line gave it.
#[derive(Clone, Debug, Default)]
pub struct FieldSpec {
    /// Field name (a directory under `datadir`).
    pub field: String,
    /// Directory holding field directories.
    pub datadir: PathBuf,
    /// Rule directory (`None`: the compiled-in rules).
    pub rules: Option<PathBuf>,
    /// Pipeline config files, in order.
    pub configs: Vec<PathBuf>,
    /// `KEY=VALUE` overrides, in order.
    pub sets: Vec<String>,
    /// Only the first N islands.
    pub limit: Option<usize>,
}

impl FieldSpec {
    /// The field's directory: `datadir/field`; or, when there is none, `datadir` itself if it
    /// is that field (a build run from inside the field's directory as `arrakis build FIELD`,
    /// the default datadir `.` then being the field).
    pub fn dir(&self) -> PathBuf {
        let dir = self.datadir.join(&self.field);
        if dir.is_dir() {
            return dir;
        }
        let named = std::fs::canonicalize(&self.datadir)
            .ok()
            .and_then(|d| {
                d.file_name()
                    .map(|n| n == std::ffi::OsStr::new(&self.field))
            })
            .unwrap_or(false);
        let is_field =
            self.datadir.join("field.yaml").is_file() || crate::region::is_region(&self.datadir);
        if named && is_field {
            self.datadir.clone()
        } else {
            dir
        }
    }
}

/// Rules, parameters and the field directory: enough to check a snapshot.
pub struct Front {
    /// The rules.
    pub rules: RuleSet,
    /// Resolved parameters.
    pub params: Params,
    /// The field directory, canonical.
    pub field_dir: PathBuf,
    /// `--limit`, or the `limit` parameter.
    pub limit: Option<usize>,
}

/// Rules, parameters, units and graph of one field.
pub struct Setup {
    /// The rules.
    pub rules: RuleSet,
    /// Resolved parameters.
    pub params: Params,
    /// The field's units.
    pub units: Units,
    /// The expanded graph.
    pub graph: Graph,
}

/// With `ARRAKIS_TIMINGS` set, print how long a phase took and the resident memory (for
/// profiling the engine).
pub fn timing(phase: &str, since: Instant) {
    if std::env::var_os("ARRAKIS_TIMINGS").is_some() {
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
            })
            .unwrap_or_default();
        eprintln!(
            "timing: {phase}: {:.3} s (rss {rss} kB)",
            since.elapsed().as_secs_f64()
        );
    }
}

/// Load the rule set: a directory, or the compiled-in rules, checked against the builtins'
/// contracts.
pub fn load_rules(dir: Option<&Path>) -> Result<RuleSet, RuleError> {
    let reg = crate::stages::registry();
    match dir {
        Some(d) => RuleSet::load_dir(d, &reg),
        None => rules::embedded(&reg),
    }
}

/// Resolve the parameters the rules (and the engine) declare.
pub fn resolve_params(
    rules: &RuleSet,
    configs: &[PathBuf],
    sets: &[String],
) -> Result<Params, ConfigError> {
    config::resolve(&rules.param_decls(), configs, sets)
}

/// The per-field pipeline config every build, status and explain of the field reads first.
pub const FIELD_CONFIG: &str = "arrakis.yaml";

/// The config files a build of the field in `dir` reads, in order: the field's own
/// (`FIELD/arrakis.yaml`, when there is one) first, then `--config` files (and `--set` after
/// them all).
pub fn config_files(dir: &Path, configs: &[PathBuf]) -> Vec<PathBuf> {
    let own = dir.join(FIELD_CONFIG);
    own.is_file()
        .then_some(own)
        .into_iter()
        .chain(configs.iter().cloned())
        .collect()
}

/// Load rules and parameters and find the field directory.
pub fn load_front(spec: &FieldSpec) -> Result<Front, SessionError> {
    let t0 = Instant::now();
    // A region (a directory `arrakis region` made) runs the region's rules, a field the field's.
    let rules = load_rules(spec.rules.as_deref())?;
    let dir = spec.dir();
    let rules = if crate::region::is_region(&dir) {
        rules.for_region()
    } else {
        rules.for_field()
    };
    let configs = config_files(&dir, &spec.configs);
    let params = resolve_params(&rules, &configs, &spec.sets)?;
    timing("rules+config", t0);
    let limit = match spec.limit {
        Some(l) => Some(l),
        // Declared in [0, inf).
        None => params.engine_opt_i64(&config::LIMIT)?.map(|v| v as usize),
    };
    if !dir.is_dir() {
        return Err(SessionError::NoField {
            dir,
            field: spec.field.clone(),
        });
    }
    let field_dir = dir
        .canonicalize()
        .map_err(|source| SessionError::Resolve { dir, source })?;
    Ok(Front {
        rules,
        params,
        field_dir,
        limit,
    })
}

/// Read the units and expand the graph.
pub fn finish_setup(front: Front) -> Result<Setup, SessionError> {
    let Front {
        rules,
        params,
        field_dir,
        limit,
    } = front;
    let radius = params.engine_f64(&config::BEAM_RADIUS_DEG)?;
    let t0 = Instant::now();
    let units = Units::load(
        &field_dir,
        radius,
        limit,
        &crate::units::Needs::of_rules(&rules),
    )?;
    timing("units", t0);
    let t0 = Instant::now();
    let graph = expand(&rules, &params, &units, &field_dir, &builtin_version)?;
    timing("expand", t0);
    Ok(Setup {
        rules,
        params,
        units,
        graph,
    })
}

/// Load everything needed to build one field (without the cache).
pub fn load_setup(spec: &FieldSpec) -> Result<Setup, SessionError> {
    finish_setup(load_front(spec)?)
}

/// The file a build leaves in the field directory: the absolute path of the cache that built it,
/// so that a build, status or explain from any directory finds that cache.
pub const CACHE_MARKER: &str = ".arrakis-cache";

/// Where a field command's cache is, and what the field says it was built with.
#[derive(Clone, Debug)]
pub struct ResolvedCache {
    /// The cache to use.
    pub dir: PathBuf,
    /// The cache recorded in the field (when it still exists).
    pub recorded: Option<PathBuf>,
}

/// The cache recorded in a field directory, if the file is there and names a directory that
/// exists.
pub fn recorded_cache(field_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(field_dir.join(CACHE_MARKER)).ok()?;
    let p = PathBuf::from(text.trim());
    (p.is_absolute() && p.is_dir()).then_some(p)
}

/// The cache for a field command: the one given (`--cache` or `ARRAKIS_CACHE`), else the one
/// that last built the field, else `./cache`.
pub fn resolve_cache(explicit: Option<&Path>, spec: &FieldSpec) -> ResolvedCache {
    let recorded = recorded_cache(&spec.dir());
    let dir = match (explicit, &recorded) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(r)) => r.clone(),
        (None, None) => PathBuf::from("cache"),
    };
    ResolvedCache { dir, recorded }
}

/// Record (atomically) which cache builds the field, if it is not already recorded.
pub fn record_cache(field_dir: &Path, cache_dir: &Path) {
    let abs = std::fs::canonicalize(cache_dir).unwrap_or_else(|_| cache_dir.to_path_buf());
    if recorded_cache(field_dir).as_deref() == Some(abs.as_path()) {
        return;
    }
    // Best effort: without it, a build from elsewhere needs --cache.
    let _ = crate::atomic::write_atomic(
        &field_dir.join(CACHE_MARKER),
        format!("{}\n", abs.display()).as_bytes(),
    );
}

/// One output of the field's targets that exists on disk, if any (a field built before).
pub fn an_existing_output(graph: &crate::graph::Graph) -> Option<PathBuf> {
    graph
        .targets
        .iter()
        .flat_map(|t| t.outputs.iter())
        .map(|o| graph.field_dir.join(&o.rel))
        .find(|p| p.exists())
}

/// The field's lock: `FIELD/.arrakis.lock`, held by a build for its duration, so that two builds
/// cannot write one field at once even through two caches. It names its holder while held and
/// is emptied when let go, so a holder still named when the lock is taken was killed.
pub struct FieldLock {
    file: std::fs::File,
    field_dir: PathBuf,
    killed: Option<u32>,
}

/// The field lock's file in `field_dir`.
fn field_lock_path(field_dir: &Path) -> PathBuf {
    field_dir.join(".arrakis.lock")
}

impl Drop for FieldLock {
    fn drop(&mut self) {
        // Let go cleanly: nothing of this process is left in the field.
        let _ = self.file.set_len(0);
    }
}

impl FieldLock {
    /// Take the lock; with `wait`, queue behind the holder; otherwise fail naming it.
    pub fn acquire(
        field_dir: &Path,
        cache_dir: &Path,
        wait: bool,
    ) -> Result<FieldLock, SessionError> {
        use std::io::{Read, Seek, Write};
        let path = field_lock_path(field_dir);
        let io = |e: std::io::Error| SessionError::FieldLock {
            path: path.clone(),
            why: e.to_string(),
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if wait {
            f.lock().map_err(io)?;
        } else if f.try_lock().is_err() {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            return Err(SessionError::FieldLock {
                path: path.clone(),
                why: format!(
                    "another arrakis process is building this field ({}); wait for it to finish, or pass --wait to queue behind it",
                    holder.trim()
                ),
            });
        }
        let mut before = String::new();
        let _ = f.rewind().and_then(|_| f.read_to_string(&mut before));
        let killed = killed_holder(&before);
        let abs = std::fs::canonicalize(cache_dir).unwrap_or_else(|_| cache_dir.to_path_buf());
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = write!(
            f,
            "pid {} on host {} with cache {}",
            std::process::id(),
            crate::cache::hostname(),
            abs.display()
        );
        let _ = f.flush();
        Ok(FieldLock {
            file: f,
            field_dir: field_dir.to_path_buf(),
            killed,
        })
    }

    /// The process of this host that held the lock before and died holding it (killed, or
    /// ended without letting go), if any: what it was writing may be left in the field.
    pub fn killed_holder(&self) -> Option<u32> {
        self.killed
    }

    /// Remove what the killed holder ([`FieldLock::killed_holder`]) left in the field:
    /// its temporary outputs and scratch directories (only its own: a Slurm job of that build
    /// may still be writing). Said on stderr unless `quiet`; a failure to remove is a note, not
    /// an error (`arrakis gc` removes them later).
    pub fn remove_killed_leftovers(&self, quiet: bool) {
        let Some(pid) = self.killed else { return };
        let field_dir = &self.field_dir;
        match crate::atomic::remove_leftovers(field_dir, Some(pid)) {
            Ok(r) if r == Default::default() || quiet => {}
            Ok(r) => eprintln!(
                "arrakis: removed what a build killed mid-way (pid {pid}) left in {}: {r}",
                field_dir.display()
            ),
            Err(e) => eprintln!(
                "arrakis: note: what a build killed mid-way (pid {pid}) left in {} stays (`arrakis gc` removes it): {e}",
                field_dir.display()
            ),
        }
    }
}

/// For a build the snapshot answered, which takes no lock: when the field's lock names a
/// holder that was killed, take the lock and remove what that holder left
/// ([`FieldLock::remove_killed_leftovers`]). One `stat` when the lock is empty (the lock of a
/// build that ended cleanly), as it nearly always is.
pub fn tidy_after_kill(field_dir: &Path, cache_dir: &Path, quiet: bool) {
    let path = field_lock_path(field_dir);
    if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
        return;
    }
    let named = std::fs::read_to_string(&path).unwrap_or_default();
    if killed_holder(&named).is_some() {
        if let Ok(lock) = FieldLock::acquire(field_dir, cache_dir, false) {
            lock.remove_killed_leftovers(quiet);
        }
    }
}

/// The pid a field lock's text names, if that process ran on this host and is gone.
fn killed_holder(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix("pid ")?;
    let (pid, rest) = rest.split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let host = rest.strip_prefix("on host ")?.split(' ').next()?;
    if host != crate::cache::hostname() || pid == std::process::id() {
        return None;
    }
    (!crate::cache::process_lives(pid)).then_some(pid)
}

/// Open the cache at `dir` (taking its lock).
pub fn open_cache(dir: &Path, wait: bool) -> Result<Cache, CacheError> {
    let t0 = Instant::now();
    let c = Cache::open(dir, wait)?;
    timing("cache open", t0);
    Ok(c)
}

/// The snapshot of the field's last complete build, if nothing it covers has changed.
fn snapshot_holds(lock: &CacheLock, front: &Front, fingerprint: &Digest) -> Option<Verified> {
    let t0 = Instant::now();
    // A store written or damaged since its last clean close is opened (and its damage found),
    // never hidden behind the snapshot.
    if !crate::cache::store_unchanged_since_close(lock.dir()) {
        timing(
            "snapshot check: the record store changed since it was closed",
            t0,
        );
        return None;
    }
    match snapshot::check(lock, &front.field_dir, fingerprint) {
        Check::UpToDate(v) => {
            timing("snapshot check: up to date", t0);
            Some(v)
        }
        Check::Changed(why) => {
            timing(&format!("snapshot check: {why}"), t0);
            None
        }
    }
}

/// How much of the sequence a command wants.
#[derive(Clone, Copy, Debug)]
pub struct Want {
    /// The command covers every stage (no `--until`/`--only`): the snapshot's fingerprint is
    /// worked out, and a snapshot may answer.
    pub every_stage: bool,
    /// Let an unchanged snapshot answer (not with `--full-check`, nor for `archive`, which needs
    /// the records).
    pub use_snapshot: bool,
}

/// A field whose targets are to be evaluated.
pub struct Loaded {
    /// The open cache.
    pub cache: Cache,
    /// Rules, parameters, units, graph.
    pub setup: Setup,
    /// The field's records, read in one scan ([`engine`] takes them).
    pub states: ScannedStates,
    /// The unit files' signatures, taken before they were read (for the snapshot).
    pub unit_files: Option<UnitFiles>,
    /// The snapshot fingerprint of this build, when it covers every stage.
    pub fingerprint: Option<Digest>,
}

/// What [`open`] found.
pub enum Opened {
    /// The snapshot says nothing changed since the last complete build.
    UpToDate {
        /// Rules and parameters (for notes and reports).
        front: Front,
        /// What the snapshot holds.
        verified: Verified,
        /// Seconds the check took.
        seconds: f64,
    },
    /// Everything loaded for evaluation.
    Loaded(Box<Loaded>),
}

/// One field of several opened on one cache: [`Loaded`] without the cache.
pub struct FieldLoaded {
    /// Rules, parameters, units, graph.
    pub setup: Setup,
    /// The field's records, read in one scan ([`engine`] takes them).
    pub states: ScannedStates,
    /// The unit files' signatures, taken before they were read (for the snapshot).
    pub unit_files: Option<UnitFiles>,
    /// The snapshot fingerprint of this build, when it covers every stage.
    pub fingerprint: Option<Digest>,
}

/// What [`open_fields`] found for one field.
pub enum FieldOpened {
    /// The snapshot says nothing changed since the field's last complete build.
    UpToDate {
        /// Rules and parameters (for notes and reports).
        front: Front,
        /// What the snapshot holds.
        verified: Verified,
        /// Seconds the check took.
        seconds: f64,
    },
    /// Everything loaded for evaluation.
    Loaded(Box<FieldLoaded>),
}

/// The build sequence: lock, rules and parameters, the snapshot shortcut, then the cache, the
/// records (one scan, alongside the expansion), units and graph.
pub fn open(
    cache_dir: &Path,
    wait: bool,
    spec: &FieldSpec,
    want: Want,
) -> Result<Opened, SessionError> {
    let (cache, mut fields) = open_fields(cache_dir, wait, std::slice::from_ref(spec), want)?;
    match (fields.pop(), cache) {
        (Some(FieldOpened::Loaded(l)), Some(cache)) => {
            let FieldLoaded {
                setup,
                states,
                unit_files,
                fingerprint,
            } = *l;
            Ok(Opened::Loaded(Box::new(Loaded {
                cache,
                setup,
                states,
                unit_files,
                fingerprint,
            })))
        }
        (
            Some(FieldOpened::UpToDate {
                front,
                verified,
                seconds,
            }),
            _,
        ) => Ok(Opened::UpToDate {
            front,
            verified,
            seconds,
        }),
        // open_fields opens the cache whenever a field is loaded, and answers every spec.
        _ => Err(SessionError::Scan),
    }
}

/// [`open`] for several fields on one cache (one lock): each field's snapshot is checked
/// first; the cache is opened (returned) only when a field needs evaluating, and then every
/// such field is loaded, its records read alongside its expansion. One answer per spec, in
/// order.
pub fn open_fields(
    cache_dir: &Path,
    wait: bool,
    specs: &[FieldSpec],
    want: Want,
) -> Result<(Option<Cache>, Vec<FieldOpened>), SessionError> {
    let lock = CacheLock::acquire(cache_dir, wait)?;
    // Every field's rules and parameters before anything else: bad input stops the build
    // before any field is touched.
    let fronts = specs
        .iter()
        .map(load_front)
        .collect::<Result<Vec<_>, _>>()?;
    let mut answers: Vec<Option<FieldOpened>> = Vec::with_capacity(specs.len());
    let mut to_load = Vec::new();
    for (k, front) in fronts.into_iter().enumerate() {
        let fingerprint = if want.every_stage {
            snapshot::fingerprint(&front.rules, &front.params, &front.field_dir, front.limit)
        } else {
            None
        };
        if let (Some(fp), true) = (&fingerprint, want.use_snapshot) {
            let t0 = Instant::now();
            if let Some(verified) = snapshot_holds(&lock, &front, fp) {
                answers.push(Some(FieldOpened::UpToDate {
                    front,
                    verified,
                    seconds: t0.elapsed().as_secs_f64(),
                }));
                continue;
            }
        }
        answers.push(None);
        to_load.push((k, front, fingerprint));
    }
    if to_load.is_empty() {
        return Ok((None, answers.into_iter().flatten().collect()));
    }
    let t0 = Instant::now();
    let cache = Cache::open_locked(lock)?;
    timing("cache open", t0);
    for (k, front, fingerprint) in to_load {
        // Stat'ed before they are read, so the snapshot never holds a signature newer than the
        // contents the graph was made from.
        let unit_files = snapshot::unit_files(&front.field_dir);
        let (setup, states) = load_with_records(&cache, &specs[k].field, front);
        let setup = setup?;
        let states = states.map_err(|_| SessionError::Scan)??;
        answers[k] = Some(FieldOpened::Loaded(Box::new(FieldLoaded {
            setup,
            states,
            unit_files,
            fingerprint,
        })));
    }
    Ok((Some(cache), answers.into_iter().flatten().collect()))
}

type Scanned = std::thread::Result<Result<ScannedStates, CacheError>>;

/// The field's records read while the rules are expanded: the two are independent.
fn load_with_records(
    cache: &Cache,
    field: &str,
    front: Front,
) -> (Result<Setup, SessionError>, Scanned) {
    std::thread::scope(|s| {
        let scan_records = move || {
            let t0 = Instant::now();
            let r = cache.scan_states(field);
            timing("scan records", t0);
            r
        };
        // Without room for a thread (ulimit -u or -v), one after the other.
        match std::thread::Builder::new().spawn_scoped(s, scan_records) {
            Ok(scan) => {
                let setup = finish_setup(front);
                (setup, scan.join())
            }
            Err(_) => (finish_setup(front), Ok(scan_records())),
        }
    })
}

/// An engine over a loaded field: the records read in bulk, and the recorded outputs of the
/// targets `check` selects stat'ed ahead in directory order on `jobs` threads.
pub fn engine<'a>(
    setup: &'a Setup,
    cache: &'a Cache,
    states: ScannedStates,
    jobs: usize,
    check: impl Fn(usize) -> bool + Sync,
) -> Engine<'a> {
    let mut engine = Engine::new(&setup.graph, &setup.rules, cache).with_states(states);
    let t0 = Instant::now();
    engine.check_outputs_ahead(check, jobs);
    timing("outputs checked ahead", t0);
    engine
}

/// All cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid of this host that was running a moment ago and is gone now.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_field_lock_names_a_holder_that_died_holding_it_and_what_it_left_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (field, cache) = (dir.path().join("F"), dir.path().join("cache"));
        std::fs::create_dir_all(&field).unwrap();
        let lock_file = field_lock_path(&field);
        let host = crate::cache::hostname();
        let dead = dead_pid();
        let me = std::process::id();
        let said = |text: String| {
            std::fs::write(&lock_file, text).unwrap();
            FieldLock::acquire(&field, &cache, false).unwrap()
        };

        // Let go cleanly: the lock is emptied, so the next holder finds no one killed.
        let lock = FieldLock::acquire(&field, &cache, false).unwrap();
        assert_eq!(lock.killed_holder(), None);
        assert!(std::fs::read_to_string(&lock_file)
            .unwrap()
            .starts_with(&format!("pid {me} on host {host}")));
        drop(lock);
        assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), "");
        assert_eq!(
            FieldLock::acquire(&field, &cache, false)
                .unwrap()
                .killed_holder(),
            None
        );

        // A holder of this host that is gone, one that still runs (pid 1), one of another
        // host (whose processes cannot be asked), and text that names no one.
        let lock = said(format!("pid {dead} on host {host} with cache /c"));
        assert_eq!(lock.killed_holder(), Some(dead));
        drop(lock);
        assert_eq!(
            said(format!("pid 1 on host {host} with cache /c")).killed_holder(),
            None
        );
        assert_eq!(
            said(format!("pid {dead} on host not-{host} with cache /c")).killed_holder(),
            None
        );
        assert_eq!(said("garbage".into()).killed_holder(), None);

        // What the killed holder left goes; another process's stays.
        std::fs::write(field.join(format!(".arrakis-tmp-{dead}-0-x.fits")), b"half").unwrap();
        std::fs::write(field.join(format!(".arrakis-tmp-{me}-0-x.fits")), b"mine").unwrap();
        std::fs::create_dir(field.join(format!(".arrakis-imager-beam00-{dead}"))).unwrap();
        let lock = said(format!("pid {dead} on host {host} with cache /c"));
        lock.remove_killed_leftovers(true);
        let mut left: Vec<String> = std::fs::read_dir(&field)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!(".arrakis-tmp-{me}-0-x.fits"),
                ".arrakis.lock".into()
            ]
        );
    }

    #[test]
    fn a_zombie_is_not_a_running_process() {
        use crate::cache::process_lives;
        // A child killed and not yet waited for is a zombie: gone, though its pid exists.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(process_lives(pid));
        child.kill().unwrap();
        let start = std::time::Instant::now();
        while process_lives(pid) && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !process_lives(pid),
            "a killed, unreaped child counts as running"
        );
        // SAFETY: signal 0 only asks whether the process exists: the zombie still does.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, 0) }, 0);
        child.wait().unwrap();
        assert!(!process_lives(pid));
    }
}
