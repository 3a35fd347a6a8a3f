//! `arrakis build` and `arrakis demo`: the build, its per-stage table, the `--report` JSON and
//! the dry run's list.
//!
//! Must never: decide what runs (the engine does) or how (the executors do).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use super::{absolute, EXIT_FAILED, EXIT_INTERRUPTED};
use crate::cli::{BuildArgs, FieldArgs};
use crate::config::cluster::{ClusterClass, ClusterConfig};
use crate::config::Params;
use crate::exec::local::{self, BuildOptions, BuildResult, Mode, Status};
use crate::exec::slurm::SlurmRunner;
use crate::graph::Graph;
use crate::session::{self, default_jobs, timing, FieldOpened, FieldSpec, Front, Setup, Want};

/// The targets `--force` (stage names, rule names or target ids) and `--forceall` name, by
/// index.
fn forced_targets(graph: &Graph, names: &[String], all: bool) -> Result<Vec<bool>> {
    let n = graph.targets.len();
    if all {
        return Ok(vec![true; n]);
    }
    let mut forced = vec![false; n];
    let stages = graph.stages();
    for name in names {
        if stages.iter().any(|s| s == name) {
            for (i, f) in forced.iter_mut().enumerate() {
                *f |= graph.stage_of(i) == name;
            }
        } else if let Some(r) = graph.rules.iter().position(|r| &r.name == name) {
            // A rule of a stage that has several (wsclean of the imager stage).
            for (f, t) in forced.iter_mut().zip(&graph.targets) {
                *f |= t.rule as usize == r;
            }
        } else if let Some(i) = graph.targets.iter().position(|t| &t.id == name) {
            forced[i] = true;
        } else {
            let rules: Vec<&str> = graph
                .rules
                .iter()
                .filter(|r| r.name != r.stage)
                .map(|r| r.name.as_str())
                .collect();
            return Err(anyhow!(
                "--force {name}: no stage, rule or target of that name{} (stages: {}{})",
                crate::diag::did_you_mean(
                    name,
                    stages
                        .iter()
                        .map(|s| s.as_str())
                        .chain(rules.iter().copied())
                ),
                stages.join(", "),
                if rules.is_empty() {
                    String::new()
                } else {
                    format!("; rules: {}", rules.join(", "))
                }
            ));
        }
    }
    Ok(forced)
}

/// Files that parameters name (`holofile`) and that targets about to run read: a missing one is
/// a mistake in the value, said once before anything runs, naming where the value was set and
/// the nearest file in its directory (rather than failing every target that reads it).
fn check_named_files(
    graph: &Graph,
    modes: &[Mode],
    params: &Params,
    cache: &crate::cache::Cache,
) -> Result<()> {
    // (rule, parameter) -> (the paths missing, how many paths it names)
    let mut named: BTreeMap<(usize, &str), (Vec<&str>, usize)> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (ti, t) in graph.targets.iter().enumerate() {
        if !matches!(modes[ti], Mode::Run | Mode::CheckOnly) {
            continue;
        }
        let rule = &graph.rules[t.rule as usize];
        for (spec, param) in &rule.param_files {
            for slot in t.inputs.iter().filter(|s| s.spec == *spec && !s.optional) {
                for f in &slot.files {
                    let crate::graph::InputFile::Source(rel) = f else {
                        continue;
                    };
                    if !seen.insert((t.rule, rel.as_str())) {
                        continue;
                    }
                    let entry = named.entry((t.rule as usize, param)).or_default();
                    entry.1 += 1;
                    if !graph.field_dir.join(rel).exists()
                        && cache.archived(&graph.field, rel)?.is_none()
                    {
                        entry.0.push(rel);
                    }
                }
            }
        }
    }
    for ((ri, param), (gone, checked)) in named {
        // Some of a pattern's files missing is missing data (those targets fail, the rest
        // build); all of them missing is a wrong value.
        let Some(first) = gone.first().filter(|_| gone.len() == checked) else {
            continue;
        };
        let value = match params.get(param) {
            Some(crate::config::params::ParamValue::Str(v)) => v.clone(),
            Some(v) => v.display(),
            None => String::new(),
        };
        let set_at = match params.origin(param) {
            Some(crate::config::Origin::File(f)) => {
                let line = std::fs::read_to_string(f)
                    .ok()
                    .and_then(|text| crate::diag::line_of(&text, &[param]));
                format!("{}: key {param}", crate::diag::location(f, line))
            }
            Some(crate::config::Origin::Set) => format!("--set {param}"),
            _ => format!("parameter {param} (its default)"),
        };
        let path = graph.field_dir.join(first);
        let nearest = path
            .parent()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .and_then(|entries| {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
                let want = path.file_name()?.to_str()?;
                crate::diag::nearest(want, names.iter().map(String::as_str))
            });
        let rule = &graph.rules[ri].name;
        let what = if checked == 1 {
            let near = nearest
                .map(|name| match value.rfind('/') {
                    Some(i) => format!(" (did you mean '{}{name}'?)", &value[..=i]),
                    None => format!(" (did you mean '{name}'?)"),
                })
                .unwrap_or_default();
            format!(
                "names {}, which does not exist{near}; rule '{rule}' reads it",
                path.display()
            )
        } else {
            let near = nearest
                .map(|name| format!("; the nearest name there is '{name}'"))
                .unwrap_or_default();
            format!(
                "names {checked} files (for the targets of rule '{rule}'), and none exists: {} does not exist{near}",
                path.display()
            )
        };
        // What else serves where the file is the ionosphere's (a field `init` set up has none).
        let instead = if param == "ion_file" {
            " (or, without that file: --set ion_source=ionex to predict the ionosphere from IONEX maps in the field's IONEXdata/, or --set skip_frion=true to build without the correction)"
        } else {
            ""
        };
        return Err(anyhow!(
            "{set_at}: '{value}' {what}. Paths are relative to the field directory {} (or absolute); correct the value{instead}. Nothing was built",
            graph.field_dir.display()
        ));
    }
    Ok(())
}

/// One field of a build, loaded, checked and with its modes decided.
struct Prepared {
    setup: Setup,
    unit_files: Option<crate::snapshot::UnitFiles>,
    fingerprint: Option<crate::hash::Digest>,
    modes: Vec<Mode>,
    forced: Vec<bool>,
}

/// Refuse `build A B` where the fields cannot be several: Arrakis's `datadir field` order
/// (`arrakis build . RACS_X`), or a field named twice. `Some(exit code)` when refused.
fn refuse_fields(args: &BuildArgs, names: &[String]) -> Option<i32> {
    let first = &args.field.field;
    if !args.field.datadir.join(first).join("field.yaml").is_file()
        && Path::new(first).join(&names[1]).is_dir()
    {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        eprintln!("arrakis: error: '{first}' is a directory of fields, not a field");
        if let Some(h) = super::hints::for_args(&argv) {
            eprintln!("hint: {h}");
        }
        return Some(super::EXIT_BAD_INPUT);
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(f) = names.iter().find(|f| !seen.insert(f.as_str())) {
        eprintln!("arrakis: error: field '{f}' is named twice: name each field once");
        return Some(super::EXIT_BAD_INPUT);
    }
    None
}

/// Load a field's checks and modes: the cache-mismatch refusal, the `--until`/`--only`/`skip_*`/
/// `--force` modes, the files parameters name (before the lock, the notes and the parameters'
/// record, so a mistaken value leaves no trace), its lock.
fn prepare(
    cache_dir: &Path,
    wait: bool,
    args: &BuildArgs,
    loaded: session::FieldLoaded,
    cache: &crate::cache::Cache,
) -> Result<(
    Prepared,
    crate::cache::ScannedStates,
    Option<session::FieldLock>,
)> {
    let session::FieldLoaded {
        setup,
        states,
        unit_files,
        fingerprint,
    } = loaded;
    let graph = &setup.graph;
    // A cache with no record of a field whose outputs are on disk would redo every target.
    // When the field records another cache that still exists, refused before anything runs,
    // naming it; with no record of any cache (a field built by an older arrakis), said.
    // (A build killed before its first record leaves this very cache recorded: it resumes.)
    if states.is_empty() && !args.new_cache && !args.dry_run {
        let this = std::fs::canonicalize(cache_dir).unwrap_or_else(|_| absolute(cache_dir));
        let recorded = session::recorded_cache(&graph.field_dir);
        let other = recorded.as_ref().filter(|r| **r != this);
        if let Some(example) = session::an_existing_output(graph) {
            match other {
                Some(r) => {
                    return Err(anyhow!(
                        "the cache {} holds no record of field {}, but its outputs are on disk ({}); it was built with the cache {} (recorded in {}): building would run every target again. Pass --cache {} (or no --cache), or --new-cache to build it again into this cache",
                        this.display(),
                        graph.field,
                        example.display(),
                        r.display(),
                        graph.field_dir.join(session::CACHE_MARKER).display(),
                        r.display()
                    ))
                }
                None if recorded.is_none() => eprintln!(
                    "arrakis: note: the cache {} holds no record of field {}, whose outputs are on disk ({}): every target runs again. If it was built with another cache, stop (Ctrl-C) and pass --cache with that directory",
                    this.display(),
                    graph.field,
                    example.display()
                ),
                None => {}
            }
        }
    }
    let flag = |p: &crate::config::params::ParamSpec| {
        matches!(
            setup.params.get(p.name),
            Some(crate::config::params::ParamValue::Bool(true))
        )
    };
    // Arrakis's imager_only: as --until imager (when neither --until nor --only is given).
    let until = match (&args.until, &args.only) {
        (None, None) if flag(&crate::config::IMAGER_ONLY) => {
            if !graph.stages().iter().any(|s| s == "imager") {
                return Err(anyhow!(
                    "imager_only is set, but this build has no imager stage (imaging: false): set imaging: true, or remove imager_only"
                ));
            }
            Some("imager".to_string())
        }
        _ => args.until.clone(),
    };
    let selected = graph.select(until.as_deref(), args.only.as_deref())?;
    let mut modes = local::modes_for(graph, &selected, args.only.is_some());
    // Arrakis's skip_* keys: the stage's targets are not run; their outputs are taken as they are.
    for (spec, stages) in crate::config::SKIP_STAGES {
        if flag(spec) {
            for (i, m) in modes.iter_mut().enumerate() {
                if *m == Mode::Run && stages.contains(&graph.stage_of(i)) {
                    *m = Mode::TakeAsIs;
                }
            }
        }
    }
    let forced = forced_targets(graph, &args.force, args.forceall)?;
    check_named_files(graph, &modes, &setup.params, cache)?;
    // One build writes a field at a time, whatever cache it uses.
    let lock = if args.dry_run {
        None
    } else {
        Some(session::FieldLock::acquire(
            &graph.field_dir,
            cache_dir,
            wait,
        )?)
    };
    if let Some(l) = &lock {
        // What a build killed mid-way left (its temporary outputs, the imager's scratch
        // copies) goes before anything is written: no one else writes the field now.
        l.remove_killed_leftovers(args.quiet);
    }
    if !args.dry_run {
        session::record_cache(&graph.field_dir, cache_dir);
        cache.note_field_dir(&graph.field, &graph.field_dir)?;
    }
    print_notes(&setup.params, &graph.orphans, args.quiet);
    print_rejected(&graph.units.rejected);
    if !args.quiet {
        note_changed_params(cache_dir, &graph.field, &setup.params);
    }
    if !args.dry_run {
        save_params(cache_dir, &graph.field, &setup.params);
    }
    Ok((
        Prepared {
            setup,
            unit_files,
            fingerprint,
            modes,
            forced,
        },
        states,
        lock,
    ))
}

/// `arrakis build`: one field, or several (`arrakis build A B C`) under one scheduler, on one
/// cache.
pub fn build(cache: Option<&Path>, wait: bool, args: &BuildArgs) -> Result<i32> {
    let names: Vec<String> = std::iter::once(args.field.field.clone())
        .chain(args.more_fields.iter().cloned())
        .collect();
    let many = names.len() > 1;
    if many {
        if let Some(rc) = refuse_fields(args, &names) {
            return Ok(rc);
        }
    }
    let specs: Vec<FieldSpec> = names
        .iter()
        .map(|n| FieldSpec {
            field: n.clone(),
            ..FieldSpec::from(&args.field)
        })
        .collect();
    let resolved = session::resolve_cache(cache, &specs[0]);
    let cache_dir = resolved.dir.as_path();
    let want = Want {
        every_stage: args.until.is_none() && args.only.is_none(),
        use_snapshot: !args.full_check && args.force.is_empty() && !args.forceall,
    };
    let (cache, opened) = session::open_fields(cache_dir, wait, &specs, want)?;
    // The fields the snapshot answered, and those to evaluate.
    let mut answered = Vec::new();
    let mut to_build = Vec::new();
    for (name, o) in names.iter().zip(opened) {
        match o {
            FieldOpened::UpToDate {
                front,
                verified,
                seconds,
            } => {
                if !args.dry_run {
                    session::record_cache(&front.field_dir, cache_dir);
                    session::tidy_after_kill(&front.field_dir, cache_dir, args.quiet);
                }
                answered.push((name.as_str(), front, verified, seconds));
            }
            FieldOpened::Loaded(l) => to_build.push(*l),
        }
    }
    let Some(cache) = cache else {
        return up_to_date(&answered, &names, args);
    };
    let mut preps = Vec::with_capacity(to_build.len());
    let mut states = Vec::with_capacity(to_build.len());
    // Held to the end of the build (released, not forgotten, below).
    let mut locks = Vec::with_capacity(to_build.len());
    for l in to_build {
        let (p, s, lock) = prepare(cache_dir, wait, args, l, &cache)?;
        preps.push(p);
        states.push(s);
        locks.push(lock);
    }
    let load = |p: &Option<PathBuf>| -> Result<ClusterConfig> {
        match p {
            Some(p) => {
                let c = ClusterConfig::load(p)?;
                for u in &c.unused {
                    eprintln!("arrakis: unused cluster config key {u}");
                }
                Ok(c)
            }
            None => Ok(ClusterConfig::local_default()),
        }
    };
    let dask = load(&args.dask_config)?;
    let imager = load(&args.imager_dask_config)?;
    let opts = BuildOptions {
        jobs: args.jobs.or(dask.local_jobs).unwrap_or_else(default_jobs),
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        quiet: args.quiet,
        // `arrakis status FIELD` follows a build of that one field.
        live: (!many).then(|| crate::progress::Live::path(cache_dir, &names[0])),
    };
    // The content store's budget: the first field's (one store per cache).
    let budget = preps[0].setup.params.store_budget()?;
    let engines: Vec<_> = preps
        .iter()
        .zip(states)
        .map(|(p, s)| {
            let mut e = session::engine(&p.setup, &cache, s, opts.jobs, |ti| {
                p.modes[ti] != Mode::Ignore
            });
            e.forced = p.forced.clone();
            e.use_store = !args.dry_run && budget > 0;
            e
        })
        .collect();
    let built: Vec<String> = preps.iter().map(|p| p.setup.graph.field.clone()).collect();
    let mut clusters = local::Clusters::default();
    if !args.dry_run {
        fn runner<'c>(
            c: &'c ClusterConfig,
            cache_dir: &Path,
            fields: &[String],
            args: &BuildArgs,
        ) -> Result<Option<SlurmRunner<'c>>> {
            if c.class != ClusterClass::Slurm {
                return Ok(None);
            }
            let patience = std::time::Duration::from_secs(args.sbatch_patience);
            Ok(Some(SlurmRunner::new(
                c,
                cache_dir,
                fields,
                args.retries,
                patience,
            )?))
        }
        clusters.default = runner(&dask, cache_dir, &built, args)?;
        clusters.imager = runner(&imager, cache_dir, &built, args)?;
    }
    let parts: Vec<local::Part> = engines
        .iter()
        .zip(&preps)
        .map(|(engine, p)| local::Part {
            engine,
            modes: &p.modes,
        })
        .collect();
    let t0 = Instant::now();
    let results = local::build_parts(&parts, &opts, &mut clusters);
    timing("build loop", t0);
    for r in clusters.default.iter().chain(clusters.imager.iter()) {
        if r.jobs_submitted > 0 {
            eprintln!(
                "arrakis: {} Slurm job(s) submitted, at most {} in flight",
                r.jobs_submitted, r.peak_in_flight
            );
        }
    }
    let kept: u64 = engines
        .iter()
        .map(|e| e.kept.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    if kept > 0 {
        let t0 = Instant::now();
        // Best effort: a store over its budget costs disk, not correctness.
        if let Err(e) = crate::store::evict_if_over(&cache, budget) {
            eprintln!("arrakis: warning: {e}");
        }
        timing("content store eviction", t0);
    }
    let t0 = Instant::now();
    cache.flush()?;
    timing("flush", t0);
    for ((p, res), engine) in preps.iter().zip(&results).zip(&engines) {
        let complete = !args.dry_run
            && p.setup.graph.units.rejected.is_empty()
            && !res.interrupted
            && !res.stopped
            && res.fatal.is_none()
            && res
                .outcomes
                .iter()
                .all(|o| matches!(o, Some(o) if matches!(o.status, Status::Ran | Status::Skipped | Status::Restored)));
        if let (true, Some(fp), Some(uf)) = (complete, &p.fingerprint, &p.unit_files) {
            let t0 = Instant::now();
            // Only a shortcut for the next build: failing to write it loses nothing.
            if let Err(e) = crate::snapshot::write(engine, fp, uf) {
                eprintln!("arrakis: warning: {e}; the next build evaluates every target (check the cache directory's free space and permissions)");
            }
            timing("snapshot write", t0);
        }
    }
    let built_fields: Vec<(&Graph, &BuildResult)> =
        preps.iter().map(|p| &p.setup.graph).zip(&results).collect();
    let seconds = results.first().map_or(0.0, |r| r.seconds);
    let interrupted = results.iter().any(|r| r.interrupted);
    if let Some(path) = &args.report {
        let mut hashed = crate::exec::Hashed::default();
        for e in &engines {
            let h = e.hashed();
            hashed.files += h.files;
            hashed.bytes += h.bytes;
        }
        let mut targets = Vec::new();
        for (name, _, v, _) in &answered {
            targets.extend(verified_rows(v, many.then_some(*name)));
        }
        for (g, res) in &built_fields {
            targets.extend(built_rows(g, res, many));
        }
        let fields = many.then_some(&names[..]);
        write_report_of(
            path,
            &names[0],
            fields,
            targets,
            hashed,
            interrupted,
            seconds,
        )?;
    }
    if args.dry_run {
        print_would_run(&built_fields, many, seconds)?;
        return Ok(0);
    }
    let mut tally = Tally::default();
    for (name, _, v, _) in &answered {
        if !args.quiet {
            eprintln!(
                "arrakis: {name}: nothing changed since its last complete build ({} files checked by stat)",
                v.files_checked
            );
        }
        tally.add_verified(v);
    }
    for (g, res) in &built_fields {
        tally.add_built(g, res, many);
    }
    let stopped = results.iter().any(|r| r.stopped);
    let fatal = results.iter().any(|r| r.fatal.is_some());
    let ending = if interrupted {
        " (interrupted: rerun to finish)"
    } else if stopped && fatal {
        " (stopped: see below)"
    } else if stopped {
        " (stopped after a failure; --keep-going runs the rest)"
    } else {
        ""
    };
    tally.print(seconds, ending, args.quiet);
    if !args.quiet {
        for (g, res) in &built_fields {
            print_products(g, res);
        }
    }
    let rejected: usize = preps
        .iter()
        .map(|p| p.setup.graph.units.rejected.len())
        .sum();
    if rejected > 0 {
        eprintln!(
            "arrakis: {rejected} catalogue row(s) refused (listed above; the rest of the {} built)",
            if many { "fields was" } else { "field was" }
        );
    }
    if let Some(f) = results.iter().find_map(|r| r.fatal.as_ref()) {
        return Err(anyhow!("build stopped: {f}"));
    }
    if interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    let failed = results
        .iter()
        .flat_map(|r| r.outcomes.iter().flatten())
        .any(|o| o.status == Status::Failed);
    // The process exits next: freeing a large graph piece by piece would only cost time.
    std::mem::forget(results);
    std::mem::forget(parts);
    std::mem::forget(engines);
    std::mem::forget(preps);
    drop(locks);
    Ok(if failed || rejected > 0 {
        EXIT_FAILED
    } else {
        0
    })
}

/// The end of a build the snapshot answered, for every field: every target up to date.
fn up_to_date(
    answered: &[(&str, Front, crate::snapshot::Verified, f64)],
    names: &[String],
    args: &BuildArgs,
) -> Result<i32> {
    let many = names.len() > 1;
    let seconds: f64 = answered.iter().map(|a| a.3).sum();
    for (_, front, v, _) in answered {
        print_notes(&front.params, &v.orphans, args.quiet);
    }
    if let Some(path) = &args.report {
        let targets = answered
            .iter()
            .flat_map(|(name, _, v, _)| verified_rows(v, many.then_some(*name)))
            .collect();
        let nothing = crate::exec::Hashed::default();
        let fields = many.then_some(names);
        write_report_of(path, &names[0], fields, targets, nothing, false, seconds)?;
    }
    if args.dry_run {
        eprintln!("arrakis: 0 target(s) would run ({seconds:.3} s)");
        return Ok(0);
    }
    if args.quiet {
        return Ok(0);
    }
    let mut tally = Tally::default();
    let mut files = 0;
    for (_, _, v, _) in answered {
        tally.add_verified(v);
        files += v.files_checked;
    }
    let what = if many {
        format!(
            "in the {} fields since their last complete builds",
            names.len()
        )
    } else {
        "since the last complete build".to_string()
    };
    eprintln!(
        "arrakis: nothing changed {what} ({files} files checked by stat; --full-check evaluates every target)"
    );
    tally.print(seconds, "", false);
    Ok(0)
}

/// Catalogue rows whose names cannot name files: errors (shown even with -q), the build goes on
/// without them and fails at the end.
pub(crate) fn print_rejected(rejected: &[String]) {
    for r in rejected.iter().take(20) {
        eprintln!("arrakis: error: {r}");
    }
    if rejected.len() > 20 {
        eprintln!(
            "arrakis: error: ... and {} more catalogue rows refused for their names",
            rejected.len() - 20
        );
    }
}

/// A dry run's answer: each target that would run and why (stdout; `FIELD:` before the id when
/// several fields are built), and the count.
fn print_would_run(fields: &[(&Graph, &BuildResult)], many: bool, seconds: f64) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0;
    for (graph, res) in fields {
        let field = if many {
            format!("{}:", graph.field)
        } else {
            String::new()
        };
        for (i, o) in res.outcomes.iter().enumerate() {
            let Some(o) = o else { continue };
            let id = &graph.targets[i].id;
            match o.status {
                Status::WouldRun => {
                    n += 1;
                    let why = o.reasons.first().map(|s| s.as_str()).unwrap_or("");
                    writeln!(out, "{field}{id}\t{why}")?;
                }
                Status::Failed => {
                    let e = o.error.as_deref().unwrap_or("");
                    writeln!(out, "{field}{id}\tcannot run: {e}")?;
                }
                _ => {}
            }
        }
    }
    eprintln!("arrakis: {n} target(s) would run ({seconds:.3} s)");
    Ok(())
}

/// The per-stage counts of a build, over one field or several.
#[derive(Default)]
struct Tally {
    stages: Vec<String>,
    /// Per stage: ran, skipped, failed, cpu seconds, restored from the content store.
    per: Vec<[f64; 6]>,
    /// (target, error) of the failures that were not only a missing input.
    failures: Vec<(String, String)>,
    /// Targets that failed because an input failed or is missing.
    blocked: usize,
}

impl Tally {
    fn stage(&mut self, name: &str) -> usize {
        match self.stages.iter().position(|s| s == name) {
            Some(s) => s,
            None => {
                self.stages.push(name.to_string());
                self.per.push([0.0; 6]);
                self.stages.len() - 1
            }
        }
    }

    /// A field the snapshot answered: every target skipped.
    fn add_verified(&mut self, v: &crate::snapshot::Verified) {
        for (name, n) in &v.stages {
            let s = self.stage(name);
            self.per[s][1] += *n as f64;
        }
    }

    /// A field built: its outcomes (failures named `FIELD: id` when `many`).
    fn add_built(&mut self, graph: &Graph, res: &BuildResult, many: bool) {
        let local = graph.stages();
        let index: Vec<usize> = local.iter().map(|s| self.stage(s)).collect();
        for (i, o) in res.outcomes.iter().enumerate() {
            let Some(o) = o else { continue };
            let s = index[local
                .iter()
                .position(|x| x == graph.stage_of(i))
                .unwrap_or(0)];
            match o.status {
                Status::Ran => self.per[s][0] += 1.0,
                Status::Skipped => self.per[s][1] += 1.0,
                Status::Failed => {
                    self.per[s][2] += 1.0;
                    if o.blocked {
                        self.blocked += 1;
                    } else {
                        let id = &graph.targets[i].id;
                        let id = if many {
                            format!("{}: {id}", graph.field)
                        } else {
                            id.clone()
                        };
                        self.failures
                            .push((id, o.error.clone().unwrap_or_default()));
                    }
                }
                Status::Restored => self.per[s][4] += 1.0,
                Status::WouldRun => {}
            }
            self.per[s][3] += o.cpu;
            self.per[s][5] += o.hashed_bytes as f64;
        }
    }

    fn print(&self, seconds: f64, ending: &str, quiet: bool) {
        let failures: Vec<(&str, &str)> = self
            .failures
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        print_table(
            &self.stages,
            &self.per,
            &failures,
            self.blocked,
            seconds,
            ending,
            quiet,
        );
    }
}

/// Where the catalogue and the validation plots are, when this build made them.
fn print_products(graph: &Graph, res: &BuildResult) {
    for (i, o) in res.outcomes.iter().enumerate() {
        let Some(o) = o else { continue };
        if !matches!(o.status, Status::Ran | Status::Restored) {
            continue;
        }
        let abs = |rel: &str| absolute(&graph.field_dir.join(rel)).display().to_string();
        let outs = &graph.targets[i].outputs;
        match graph.stage_of(i) {
            "catalogue" => {
                let all: Vec<String> = outs.iter().map(|f| abs(&f.rel)).collect();
                eprintln!("catalogue: {}", all.join(", "));
            }
            "validate" => {
                if let Some(f) = outs.iter().find(|f| f.rel.ends_with(".html")) {
                    eprintln!("plots: {} (open in a browser)", abs(&f.rel));
                }
            }
            _ => {}
        }
    }
}

/// Bytes as the table shows them: `-` for none, else B, kB, MB, GB (decimal).
fn size_cell(bytes: f64) -> String {
    if bytes <= 0.0 {
        return "-".into();
    }
    let (v, unit) = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
        .into_iter()
        .find(|(scale, _)| bytes >= *scale)
        .map_or((bytes, "B"), |(scale, u)| (bytes / scale, u));
    if unit == "B" {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// The per-stage rows: ran, skipped, failed, CPU seconds (checking, running and recording the
/// stage's targets), bytes hashed (and restored, when any target was).
fn print_stage_rows(stages: &[String], per: &[[f64; 6]]) {
    let restored = per.iter().any(|p| p[4] > 0.0);
    let extra = |v: String| {
        if restored {
            format!(" {v:>8}")
        } else {
            String::new()
        }
    };
    eprintln!(
        "{:<12} {:>8}{} {:>8} {:>8} {:>10} {:>10}",
        "stage",
        "ran",
        extra("restored".into()),
        "skipped",
        "failed",
        "cpu-s",
        "hashed"
    );
    for (s, name) in stages.iter().enumerate() {
        let p = per[s];
        if p[0] + p[1] + p[2] + p[4] > 0.0 {
            eprintln!(
                "{:<12} {:>8}{} {:>8} {:>8} {:>10.2} {:>10}",
                name,
                p[0],
                extra(p[4].to_string()),
                p[1],
                p[2],
                p[3],
                size_cell(p[5])
            );
        }
    }
}

/// The per-stage table and the closing line. `per`: ran, skipped, failed, CPU seconds,
/// restored, bytes hashed.
#[allow(clippy::too_many_arguments)]
fn print_table(
    stages: &[String],
    per: &[[f64; 6]],
    failures: &[(&str, &str)],
    blocked: usize,
    seconds: f64,
    ending: &str,
    quiet: bool,
) {
    let tot = |k: usize| per.iter().map(|p| p[k]).sum::<f64>();
    // -q: errors only.
    if quiet && tot(2) == 0.0 {
        return;
    }
    if !quiet {
        print_stage_rows(stages, per);
    }
    if !failures.is_empty() {
        eprintln!("failures:");
        for (id, e) in failures.iter().take(20) {
            eprintln!("  {id}: {e}");
        }
        if failures.len() > 20 {
            eprintln!("  ... and {} more (see --report)", failures.len() - 20);
        }
    }
    eprintln!(
        "arrakis: ran {}, {}skipped {}, failed {}{} in {:.2} s{ending}",
        tot(0),
        if tot(4) > 0.0 {
            format!("restored {}, ", tot(4))
        } else {
            String::new()
        },
        tot(1),
        tot(2),
        if blocked > 0 {
            format!(" ({blocked} because an input failed or is missing)")
        } else {
            String::new()
        },
        seconds,
    );
}

#[derive(Serialize)]
struct ReportTarget<'a> {
    /// Only when several fields are built.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    id: &'a str,
    stage: &'a str,
    status: &'static str,
    /// Wall seconds of its action.
    seconds: f64,
    /// CPU seconds spent on it (checking, running, hashing, recording).
    cpu_seconds: f64,
    /// Bytes hashed for it.
    hashed_bytes: u64,
    /// Seconds from the build's start to when a worker took it up and to when it was done
    /// (a timeline of the build: which stages overlapped, where workers waited).
    started_s: f64,
    finished_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct Report<'a> {
    /// The field (one field built).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// The fields (several built: each target names its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
    targets: Vec<ReportTarget<'a>>,
    summary: BTreeMap<&'static str, usize>,
    /// Files read to hash them (sources the stat cache could not answer, outputs whose
    /// signature changed): zero for a no-op build.
    hashed: crate::exec::Hashed,
    interrupted: bool,
    seconds: f64,
}

/// The report rows of a field the snapshot answered: every target skipped.
fn verified_rows<'a>(
    v: &'a crate::snapshot::Verified,
    field: Option<&'a str>,
) -> Vec<ReportTarget<'a>> {
    let names: Vec<&str> = v.stages.iter().map(|(n, _)| n.as_str()).collect();
    v.targets()
        .into_iter()
        .map(|(id, s)| ReportTarget {
            field,
            id,
            stage: names.get(s).copied().unwrap_or(""),
            status: Status::Skipped.as_str(),
            seconds: 0.0,
            cpu_seconds: 0.0,
            hashed_bytes: 0,
            started_s: 0.0,
            finished_s: 0.0,
            error: None,
        })
        .collect()
}

/// The report rows of a field built.
fn built_rows<'a>(graph: &'a Graph, res: &'a BuildResult, many: bool) -> Vec<ReportTarget<'a>> {
    let field = many.then_some(graph.field.as_str());
    res.outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let o = o.as_ref()?;
            Some(ReportTarget {
                field,
                id: &graph.targets[i].id,
                stage: graph.stage_of(i),
                status: o.status.as_str(),
                seconds: o.seconds,
                cpu_seconds: o.cpu,
                hashed_bytes: o.hashed_bytes,
                started_s: o.started,
                finished_s: o.finished,
                error: o.error.as_deref(),
            })
        })
        .collect()
}

fn write_report_of(
    path: &Path,
    field: &str,
    fields: Option<&[String]>,
    targets: Vec<ReportTarget>,
    hashed: crate::exec::Hashed,
    interrupted: bool,
    seconds: f64,
) -> Result<()> {
    let mut summary: BTreeMap<&'static str, usize> = BTreeMap::new();
    for k in ["ran", "skipped", "failed"] {
        summary.insert(k, 0);
    }
    for t in &targets {
        *summary.entry(t.status).or_default() += 1;
    }
    let report = Report {
        field: fields.is_none().then_some(field),
        fields,
        targets,
        summary,
        hashed,
        interrupted,
        seconds,
    };
    // Streamed: a report of a big field is tens of megabytes, never held whole.
    crate::atomic::write_atomic_with(path, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        serde_json::to_writer_pretty(&mut w, &report)?;
        w.flush()
    })
    .with_context(|| format!("cannot write the report {}", path.display()))
}

/// Where the parameters of a field's last build are kept (for [`note_changed_params`]).
fn params_file(cache_dir: &Path, field: &str) -> PathBuf {
    cache_dir.join("params").join(format!("{field}.json"))
}

/// name → (value, where it came from), as this build resolved them.
fn param_table(params: &Params) -> std::collections::BTreeMap<String, (String, String)> {
    params
        .iter()
        .map(|(k, v)| {
            let origin = match params.origin(k) {
                Some(crate::config::Origin::Default) | None => "default".to_string(),
                Some(crate::config::Origin::File(f)) => f.display().to_string(),
                Some(crate::config::Origin::Set) => "--set".to_string(),
            };
            (k.clone(), (v.display(), origin))
        })
        .collect()
}

/// Keep this build's parameters for the next build to compare with (best effort).
fn save_params(cache_dir: &Path, field: &str, params: &Params) {
    let path = params_file(cache_dir, field);
    if let Ok(text) = serde_json::to_vec_pretty(&param_table(params)) {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(cache_dir));
        let _ = crate::atomic::write_atomic(&path, &text);
    }
}

/// Say, before anything runs, which parameters differ from the last build of the field (a
/// `--set` not retyped, a config left out): the targets that read them run again.
fn note_changed_params(cache_dir: &Path, field: &str, params: &Params) {
    type Table = std::collections::BTreeMap<String, (String, String)>;
    let Ok(text) = std::fs::read(params_file(cache_dir, field)) else {
        return;
    };
    let Ok(last) = serde_json::from_slice::<Table>(&text) else {
        return;
    };
    let now = param_table(params);
    let changed: Vec<String> = now
        .iter()
        .filter_map(|(k, (v, o))| {
            let (lv, lo) = last.get(k)?;
            (lv != v).then(|| format!("{k} {lv} ({lo}) -> {v} ({o})"))
        })
        .collect();
    if !changed.is_empty() {
        eprintln!(
            "arrakis: note: parameters differ from the last build of {field}: {}; what reads them runs again",
            changed.join(", ")
        );
    }
}

/// Unused config keys (not with `quiet`) and islands no beam covers (always: data that is not
/// processed is worth a line even with -q).
pub(crate) fn print_notes(params: &Params, orphans: &[String], quiet: bool) {
    // Keys sharing a reason on one line (an Arrakis config has dozens).
    let unused = if quiet { &[][..] } else { &params.unused[..] };
    let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, why) in unused {
        match by_reason.iter_mut().find(|(w, _)| *w == why.as_str()) {
            Some((_, keys)) => keys.push(k),
            None => by_reason.push((why, vec![k])),
        }
    }
    for (why, keys) in by_reason {
        let (s, verb) = if keys.len() == 1 {
            ("", "is")
        } else {
            ("s", "are")
        };
        eprintln!(
            "note: config key{s} {} {verb} not used ({why})",
            keys.join(", ")
        );
    }
    if !orphans.is_empty() {
        let n = orphans.len();
        let shown: Vec<&str> = orphans.iter().take(5).map(|s| s.as_str()).collect();
        eprintln!(
            "note: {n} island(s) lie outside every beam and are not built: {}{}",
            shown.join(", "),
            if n > 5 { ", ..." } else { "" }
        );
    }
}

/// `arrakis demo`: simulate a small field into `dir` (unless it is there already) and build it.
pub fn demo(cache_dir: Option<&Path>, a: &crate::cli::DemoArgs) -> Result<i32> {
    let field = "RACS_DEMO";
    let t0 = std::time::Instant::now();
    if !a.dir.join(field).join("field.yaml").exists() {
        let o = crate::simulate::SimOptions::small(field, 1);
        crate::simulate::simulate(&a.dir, &o).map_err(|e| anyhow!(e))?;
        eprintln!(
            "demo: simulated {field} (4 beams, 20 islands, 72 channels) in {}",
            a.dir.display()
        );
    }
    let args = BuildArgs {
        field: FieldArgs {
            field: field.into(),
            datadir: a.dir.clone(),
            rules: None,
            config: vec![],
            sets: vec![],
            limit: None,
        },
        dry_run: false,
        keep_going: true,
        force: vec![],
        forceall: false,
        jobs: a.jobs,
        until: None,
        only: None,
        report: None,
        quiet: false,
        full_check: false,
        dask_config: None,
        imager_dask_config: None,
        retries: 2,
        sbatch_patience: 600,
        new_cache: false,
        more_fields: vec![],
    };
    let code = build(cache_dir, false, &args)?;
    let cat = a.dir.join(field).join(format!("{field}.catalogue.csv"));
    if let Ok(mut rdr) = csv::Reader::from_path(&cat) {
        let headers = rdr.headers().cloned().unwrap_or_default();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let flags: Vec<Option<usize>> = crate::stages::catalogue::DETECTION_FLAGS
            .iter()
            .map(|f| col(f))
            .collect();
        let (mut rows, mut detected) = (0, 0);
        for rec in rdr.records().flatten() {
            rows += 1;
            let clear = |c: Option<usize>| c.and_then(|c| rec.get(c)) == Some("false");
            detected += usize::from(flags.iter().all(|&c| clear(c)));
        }
        println!(
            "catalogue: {} ({rows} components, {detected} polarised detections: SNR above the cut, no quality flag)",
            absolute(&cat).display()
        );
        println!(
            "also: {} (RMTable) and {} (VOTable)",
            absolute(&cat.with_extension("fits")).display(),
            absolute(&cat.with_extension("xml")).display()
        );
        if let Some(dir) = cat.parent() {
            let index = dir.join("validation/index.html");
            if index.exists() {
                println!("plots: {}", absolute(&index).display());
            }
        }
    }
    println!(
        "demo took {:.1} s; run it again and nothing is rebuilt; see `arrakis status {field} --datadir {}`",
        t0.elapsed().as_secs_f64(),
        a.dir.display()
    );
    Ok(code)
}
