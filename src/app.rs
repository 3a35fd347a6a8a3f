//! CLI glue: each subcommand as a function from parsed arguments to an exit code. Loads rules,
//! parameters and units, expands the graph, opens the cache, and prints results.
//!
//! Must never: contain engine or science logic (it calls the library modules for that).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::cache::Cache;
use crate::cli::{BuildArgs, DagArgs, ExplainArgs, FieldArgs, GcArgs, ParamsArgs, StatusArgs};
use crate::config::cluster::{ClusterClass, ClusterConfig};
use crate::config::{self, Origin, Params};
use crate::exec::action::TMP_PREFIX;
use crate::exec::local::{self, BuildOptions, BuildResult, Mode, Status};
use crate::exec::slurm::{job_script as slurm_script, worker_command, SlurmRunner};
use crate::exec::{Engine, StaleClass};
use crate::graph::Graph;
use crate::rules::{self, expand::expand, RuleSet};
use crate::stages::{builtin_names, builtin_version};
use crate::units::Units;

/// Exit code when targets failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code when interrupted.
pub const EXIT_INTERRUPTED: i32 = 130;

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

/// Load the rule set: a directory, or the compiled-in rules.
pub fn load_rules(dir: Option<&Path>) -> Result<RuleSet> {
    let names = builtin_names();
    Ok(match dir {
        Some(d) => RuleSet::load_dir(d, &names)?,
        None => rules::embedded(&names)?,
    })
}

/// What a build needs before it looks at the field's units: rules, parameters, the field
/// directory (enough to check a snapshot).
pub struct Front {
    /// The rules.
    pub rules: RuleSet,
    /// Resolved parameters.
    pub params: Params,
    /// The field directory, canonical.
    pub field_dir: PathBuf,
    /// `--limit` (or the `limit` parameter).
    pub limit: Option<usize>,
}

/// Load rules and parameters and find the field directory.
pub fn load_front(args: &FieldArgs) -> Result<Front> {
    let t0 = std::time::Instant::now();
    let rules = load_rules(args.rules.as_deref())?;
    let params = config::resolve(&rules, &args.config, &args.sets)?;
    timing("rules+config", t0);
    let limit = args.limit.or_else(|| {
        params
            .get("limit")
            .and_then(|v| v.as_i64())
            .map(|v| v.max(0) as usize)
    });
    let field_dir = args.datadir.join(&args.field);
    if !field_dir.is_dir() {
        return Err(anyhow!(
            "field directory {} does not exist; pass --datadir pointing at the directory that holds {}",
            field_dir.display(),
            args.field
        ));
    }
    let field_dir = field_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", field_dir.display()))?;
    Ok(Front {
        rules,
        params,
        field_dir,
        limit,
    })
}

/// Load everything needed to build one field.
pub fn load_setup(args: &FieldArgs) -> Result<Setup> {
    finish_setup(load_front(args)?)
}

/// Read the units and expand the graph.
fn finish_setup(front: Front) -> Result<Setup> {
    let Front {
        rules,
        params,
        field_dir,
        limit,
    } = front;
    let radius = params
        .get("beam_radius_deg")
        .and_then(|v| v.as_f64())
        .unwrap_or(1.0);
    let t0 = std::time::Instant::now();
    let units = Units::load(&field_dir, radius, limit)?;
    timing("units", t0);
    let t0 = std::time::Instant::now();
    let graph = expand(&rules, &params, &units, &field_dir, &builtin_version)?;
    timing("expand", t0);
    Ok(Setup {
        rules,
        params,
        units,
        graph,
    })
}

fn open_cache(dir: &Path, wait: bool) -> Result<Cache> {
    let t0 = std::time::Instant::now();
    let c = Cache::open(dir, wait)?;
    timing("cache open", t0);
    Ok(c)
}

/// With `ARRAKIS_TIMINGS` set, print how long a phase took (for profiling the engine).
pub fn timing(phase: &str, since: std::time::Instant) {
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

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Serialize)]
struct ReportTarget<'a> {
    id: &'a str,
    stage: &'a str,
    status: &'static str,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct Report<'a> {
    field: &'a str,
    targets: Vec<ReportTarget<'a>>,
    summary: BTreeMap<&'static str, usize>,
    /// Files read to hash them (sources the stat cache could not answer, outputs whose
    /// signature changed): zero for a no-op build.
    hashed: crate::exec::Hashed,
    interrupted: bool,
    seconds: f64,
}

fn write_report(
    path: &Path,
    graph: &Graph,
    res: &BuildResult,
    hashed: crate::exec::Hashed,
) -> Result<()> {
    let targets = res
        .outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let o = o.as_ref()?;
            Some(ReportTarget {
                id: &graph.targets[i].id,
                stage: graph.stage_of(i),
                status: o.status.as_str(),
                seconds: o.seconds,
                error: o.error.as_deref(),
            })
        })
        .collect();
    write_report_of(
        path,
        &graph.field,
        targets,
        hashed,
        res.interrupted,
        res.seconds,
    )
}

fn write_report_of(
    path: &Path,
    field: &str,
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
        field,
        targets,
        summary,
        hashed,
        interrupted,
        seconds,
    };
    // Streamed: a report of a big field is tens of megabytes, never held whole.
    crate::exec::action::write_atomic_with(path, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        serde_json::to_writer_pretty(&mut w, &report)?;
        w.flush()
    })
    .with_context(|| format!("cannot write the report {}", path.display()))
}

fn print_notes(params: &Params, orphans: &[String]) {
    for (k, why) in &params.unused {
        eprintln!("note: config key '{k}' is not used ({why})");
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

/// The snapshot of the field's last complete build, if nothing it covers has changed (with
/// `ARRAKIS_TIMINGS`, says how long the check took and why it failed).
fn snapshot_holds(
    lock: &crate::cache::CacheLock,
    front: &Front,
    fingerprint: &crate::hash::Digest,
) -> Option<crate::snapshot::Verified> {
    let t0 = std::time::Instant::now();
    match crate::snapshot::check(lock, &front.field_dir, fingerprint) {
        crate::snapshot::Check::UpToDate(v) => {
            timing("snapshot check: up to date", t0);
            Some(v)
        }
        crate::snapshot::Check::Changed(why) => {
            timing(&format!("snapshot check: {why}"), t0);
            None
        }
    }
}

/// `arrakis build`.
pub fn build(cache_dir: &Path, wait: bool, args: &BuildArgs) -> Result<i32> {
    let lock = crate::cache::CacheLock::acquire(cache_dir, wait)?;
    let front = load_front(&args.field)?;
    // A build of every stage may be answered by the snapshot of the last complete build.
    let fingerprint = if args.until.is_none() && args.only.is_none() {
        crate::snapshot::fingerprint(&front.rules, &front.params, &front.field_dir, front.limit)
    } else {
        None
    };
    if let (Some(fp), false) = (&fingerprint, args.full_check) {
        let t0 = std::time::Instant::now();
        if let Some(v) = snapshot_holds(&lock, &front, fp) {
            return up_to_date(&front, &v, args, t0.elapsed().as_secs_f64());
        }
    }
    let t0 = std::time::Instant::now();
    let cache = Cache::open_locked(lock)?;
    timing("cache open", t0);
    // Stat'ed before they are read, so the snapshot never holds a signature newer than the
    // contents the graph was made from.
    let unit_files = crate::snapshot::unit_files(&front.field_dir);
    // Read the field's records while the rules are expanded: the two are independent.
    let (setup, states) = std::thread::scope(|s| {
        let field = args.field.field.clone();
        let cache = &cache;
        let scan = s.spawn(move || {
            let t0 = std::time::Instant::now();
            let r = cache.scan_states(&field);
            timing("scan records", t0);
            r
        });
        let setup = finish_setup(front);
        (setup, scan.join())
    });
    let setup = setup?;
    let states = states.map_err(|_| anyhow!("reading the cache failed"))??;
    print_notes(&setup.params, &setup.graph.orphans);
    let graph = &setup.graph;
    let selected = graph
        .select(args.until.as_deref(), args.only.as_deref())
        .map_err(|e| anyhow!(e))?;
    let modes = local::modes_for(graph, &selected, args.only.is_some());
    let mut engine = Engine::new(graph, &setup.rules, &cache).with_states(states);
    let load = |p: &Option<PathBuf>| -> Result<ClusterConfig> {
        match p {
            Some(p) => {
                let c = ClusterConfig::load(p).map_err(|e| anyhow!(e.to_string()))?;
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
    };
    let t0 = std::time::Instant::now();
    engine.check_outputs_ahead(|ti| modes[ti] != Mode::Ignore, opts.jobs);
    timing("outputs checked ahead", t0);
    let mut clusters = local::Clusters::default();
    if !args.dry_run {
        fn runner<'c>(
            c: &'c ClusterConfig,
            cache_dir: &Path,
            field: &str,
            args: &BuildArgs,
        ) -> Result<Option<SlurmRunner<'c>>> {
            if c.class != ClusterClass::Slurm {
                return Ok(None);
            }
            let patience = std::time::Duration::from_secs(args.sbatch_patience);
            SlurmRunner::new(c, cache_dir, field, args.retries, patience)
                .map(Some)
                .map_err(|e| anyhow!(e))
        }
        clusters.default = runner(&dask, cache_dir, &graph.field, args)?;
        clusters.imager = runner(&imager, cache_dir, &graph.field, args)?;
    }
    let t0 = std::time::Instant::now();
    let res = local::build_on(&engine, &modes, &opts, &mut clusters);
    timing("build loop", t0);
    for r in clusters.default.iter().chain(clusters.imager.iter()) {
        if r.jobs_submitted > 0 {
            eprintln!(
                "arrakis: {} Slurm job(s) submitted, at most {} in flight",
                r.jobs_submitted, r.peak_in_flight
            );
        }
    }
    let t0 = std::time::Instant::now();
    cache.flush()?;
    timing("flush", t0);
    let complete = !args.dry_run
        && !res.interrupted
        && !res.stopped
        && res.fatal.is_none()
        && res
            .outcomes
            .iter()
            .all(|o| matches!(o, Some(o) if matches!(o.status, Status::Ran | Status::Skipped)));
    if let (true, Some(fp), Some(uf)) = (complete, &fingerprint, &unit_files) {
        let t0 = std::time::Instant::now();
        // Only a shortcut for the next build: failing to write it loses nothing.
        if let Err(e) = crate::snapshot::write(&engine, fp, uf) {
            eprintln!("arrakis: warning: {e}; the next build evaluates every target (check the cache directory's free space and permissions)");
        }
        timing("snapshot write", t0);
    }
    if let Some(path) = &args.report {
        write_report(path, graph, &res, engine.hashed())?;
    }
    if args.dry_run {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut n = 0;
        for (i, o) in res.outcomes.iter().enumerate() {
            let Some(o) = o else { continue };
            match o.status {
                Status::WouldRun => {
                    n += 1;
                    writeln!(
                        out,
                        "{}\t{}",
                        graph.targets[i].id,
                        o.reasons.first().map(|s| s.as_str()).unwrap_or("")
                    )?;
                }
                Status::Failed => {
                    writeln!(
                        out,
                        "{}\tcannot run: {}",
                        graph.targets[i].id,
                        o.error.as_deref().unwrap_or("")
                    )?;
                }
                _ => {}
            }
        }
        eprintln!("arrakis: {n} target(s) would run ({:.3} s)", res.seconds);
        return Ok(0);
    }
    print_summary(graph, &res);
    if let Some(f) = &res.fatal {
        return Err(anyhow!("build stopped: {f}"));
    }
    if res.interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    let failed = res
        .outcomes
        .iter()
        .flatten()
        .filter(|o| o.status == Status::Failed)
        .count();
    // The process exits next: freeing a large graph piece by piece would only cost time.
    std::mem::forget(res);
    std::mem::forget(engine);
    std::mem::forget(setup);
    Ok(if failed > 0 { EXIT_FAILED } else { 0 })
}

fn print_summary(graph: &Graph, res: &BuildResult) {
    let stages = graph.stages();
    let mut per: Vec<[f64; 4]> = vec![[0.0; 4]; stages.len()];
    let mut failures = Vec::new();
    for (i, o) in res.outcomes.iter().enumerate() {
        let Some(o) = o else { continue };
        let s = stages
            .iter()
            .position(|x| x == graph.stage_of(i))
            .unwrap_or(0);
        match o.status {
            Status::Ran => per[s][0] += 1.0,
            Status::Skipped => per[s][1] += 1.0,
            Status::Failed => {
                per[s][2] += 1.0;
                if !o.blocked {
                    failures.push((
                        graph.targets[i].id.as_str(),
                        o.error.as_deref().unwrap_or(""),
                    ));
                }
            }
            Status::WouldRun => {}
        }
        per[s][3] += o.seconds;
    }
    let blocked = res.outcomes.iter().flatten().filter(|o| o.blocked).count();
    let ending = if res.interrupted {
        " (interrupted: rerun to finish)"
    } else if res.stopped {
        " (stopped after a failure; --keep-going runs the rest)"
    } else {
        ""
    };
    print_table(&stages, &per, &failures, blocked, res.seconds, ending);
}

/// The per-stage table and the closing line. `per`: ran, skipped, failed, cpu seconds.
fn print_table(
    stages: &[String],
    per: &[[f64; 4]],
    failures: &[(&str, &str)],
    blocked: usize,
    seconds: f64,
    ending: &str,
) {
    eprintln!(
        "{:<12} {:>8} {:>8} {:>8} {:>10}",
        "stage", "ran", "skipped", "failed", "cpu-s"
    );
    for (s, name) in stages.iter().enumerate() {
        let p = per[s];
        if p[0] + p[1] + p[2] > 0.0 {
            eprintln!(
                "{:<12} {:>8} {:>8} {:>8} {:>10.2}",
                name, p[0], p[1], p[2], p[3]
            );
        }
    }
    let tot = |k: usize| per.iter().map(|p| p[k]).sum::<f64>();
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
        "arrakis: ran {}, skipped {}, failed {}{} in {:.2} s{ending}",
        tot(0),
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

/// The end of a build the snapshot answered: every target up to date.
fn up_to_date(
    front: &Front,
    v: &crate::snapshot::Verified,
    args: &BuildArgs,
    seconds: f64,
) -> Result<i32> {
    print_notes(&front.params, &v.orphans);
    if let Some(path) = &args.report {
        let names: Vec<&str> = v.stages.iter().map(|(n, _)| n.as_str()).collect();
        let targets = v
            .targets()
            .into_iter()
            .map(|(id, s)| ReportTarget {
                id,
                stage: names.get(s).copied().unwrap_or(""),
                status: Status::Skipped.as_str(),
                seconds: 0.0,
                error: None,
            })
            .collect();
        let nothing = crate::exec::Hashed::default();
        write_report_of(path, &args.field.field, targets, nothing, false, seconds)?;
    }
    if args.dry_run {
        eprintln!("arrakis: 0 target(s) would run ({seconds:.3} s)");
        return Ok(0);
    }
    eprintln!(
        "arrakis: nothing changed since the last complete build ({} files checked by stat; --full-check evaluates every target)",
        v.files_checked
    );
    let stages: Vec<String> = v.stages.iter().map(|(n, _)| n.clone()).collect();
    let per: Vec<[f64; 4]> = v
        .stages
        .iter()
        .map(|(_, n)| [0.0, *n as f64, 0.0, 0.0])
        .collect();
    print_table(&stages, &per, &[], 0, seconds, "");
    Ok(0)
}

/// An engine to evaluate every target with, as a build does: the field's records read in one
/// scan, the recorded outputs stat'ed ahead in directory order.
fn engine_for_all<'a>(
    graph: &'a Graph,
    rules: &'a crate::rules::RuleSet,
    cache: &'a Cache,
) -> Result<Engine<'a>> {
    let states = cache.scan_states(&graph.field)?;
    let mut engine = Engine::new(graph, rules, cache).with_states(states);
    engine.check_outputs_ahead(|_| true, default_jobs());
    Ok(engine)
}

/// A dry run over every target: what is up to date, stale, failed or missing.
fn evaluate_all(engine: &Engine) -> local::BuildResult {
    let modes = vec![Mode::Run; engine.graph.targets.len()];
    let opts = BuildOptions {
        jobs: default_jobs(),
        keep_going: true,
        dry_run: true,
        quiet: true,
    };
    local::build(engine, &modes, &opts)
}

/// `arrakis status`.
pub fn status(cache_dir: &Path, wait: bool, args: &StatusArgs) -> Result<i32> {
    let lock = crate::cache::CacheLock::acquire(cache_dir, wait)?;
    let front = load_front(&args.field)?;
    // Nothing changed since the last complete build: every target is up to date.
    let fp =
        crate::snapshot::fingerprint(&front.rules, &front.params, &front.field_dir, front.limit);
    if let Some(fp) = fp {
        if let Some(v) = snapshot_holds(&lock, &front, &fp) {
            let stages: Vec<String> = v.stages.iter().map(|(n, _)| n.clone()).collect();
            let rows: Vec<[usize; 5]> = v
                .stages
                .iter()
                .map(|(_, n)| [*n as usize, 0, 0, 0, 0])
                .collect();
            eprintln!("arrakis: nothing changed since the last complete build");
            print_status(&stages, &rows);
            return Ok(0);
        }
    }
    let cache = Cache::open_locked(lock)?;
    let setup = finish_setup(front)?;
    let graph = &setup.graph;
    let engine = engine_for_all(graph, &setup.rules, &cache)?;
    let res = evaluate_all(&engine);
    let stages = graph.stages();
    let mut rows: Vec<[usize; 5]> = vec![[0; 5]; stages.len()];
    for (i, o) in res.outcomes.iter().enumerate() {
        let Some(o) = o else { continue };
        let s = stages
            .iter()
            .position(|x| x == graph.stage_of(i))
            .unwrap_or(0);
        let col = match (o.status, o.class) {
            (Status::Skipped, _) => 0,
            (_, Some(StaleClass::Stale)) => 1,
            (_, Some(StaleClass::Failed)) => 2,
            (_, Some(StaleClass::Missing)) => 3,
            _ => 4,
        };
        rows[s][col] += 1;
    }
    print_status(&stages, &rows);
    Ok(0)
}

/// The `status` table: per stage, up to date / stale / failed / missing / blocked.
fn print_status(stages: &[String], rows: &[[usize; 5]]) {
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "stage", "up-to-date", "stale", "failed", "missing", "blocked"
    );
    for (name, r) in stages.iter().zip(rows) {
        println!(
            "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8}",
            name, r[0], r[1], r[2], r[3], r[4]
        );
    }
}

/// `arrakis archive`: tar the per-beam cutouts of an up-to-date field and remove them (see
/// `crate::archive`).
pub fn archive(cache_dir: &Path, wait: bool, args: &crate::cli::ArchiveArgs) -> Result<i32> {
    const TAR: &str = "cutouts.tar";
    let setup = load_setup(&args.field)?;
    let cache = open_cache(cache_dir, wait)?;
    let graph = &setup.graph;
    let engine = engine_for_all(graph, &setup.rules, &cache)?;
    let res = evaluate_all(&engine);
    let cutouts: Vec<usize> = (0..graph.targets.len())
        .filter(|&i| graph.stage_of(i) == "cutout")
        .collect();
    let not_ready = cutouts
        .iter()
        .filter(|&&i| {
            res.outcomes[i]
                .as_ref()
                .is_none_or(|o| o.status != Status::Skipped)
        })
        .count();
    if not_ready > 0 {
        return Err(anyhow!(
            "{not_ready} cutout target(s) of {} are not up to date; run `arrakis build {}` first, then archive",
            graph.field,
            graph.field
        ));
    }
    // The files to archive: every cutout output still on disk, with its recorded digest.
    let mut members: Vec<(String, crate::hash::Digest)> = Vec::new();
    let mut cubes: Vec<String> = Vec::new();
    for &i in &cutouts {
        let t = &graph.targets[i];
        let rec = cache
            .get_state(&graph.field, &t.id)?
            .ok_or_else(|| anyhow!("{}: no record", t.id))?;
        for (o, r) in t.outputs.iter().zip(&rec.outputs) {
            if engine.abs(&o.rel).exists() {
                members.push((o.rel.clone(), r.digest));
            }
        }
        for slot in &t.inputs {
            for f in &slot.files {
                if let crate::graph::InputFile::Source(rel) = f {
                    if rel.ends_with(".fits") && !cubes.contains(rel) {
                        cubes.push(rel.clone());
                    }
                }
            }
        }
    }
    let names: Vec<String> = members.iter().map(|(r, _)| r.clone()).collect();
    let mut bytes = 0u64;
    if !members.is_empty() {
        let written =
            crate::archive::write_tarball(&graph.field_dir, TAR, &names).map_err(|e| anyhow!(e))?;
        for (rel, recorded) in &members {
            if written.get(rel).map(|a| a.digest) != Some(*recorded) {
                return Err(anyhow!(
                    "{} changed since it was built; rebuild (`arrakis build {}`) before archiving. {TAR} holds the current bytes, nothing was removed",
                    engine.abs(rel).display(),
                    graph.field
                ));
            }
        }
        for (rel, a) in &written {
            cache.put_archived(&graph.field, rel, a)?;
        }
        cache.flush()?;
        for rel in &names {
            let p = engine.abs(rel);
            bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let mut cube_bytes = 0u64;
    let mut removed_cubes = 0;
    if args.remove_beam_cubes {
        for rel in &cubes {
            let Some(digest) = engine.source_digest(rel)? else {
                continue;
            };
            cache.put_archived(
                &graph.field,
                rel,
                &crate::cache::ArchivedFile {
                    tar: None,
                    digest,
                    offset: 0,
                    size: 0,
                },
            )?;
            cache.flush()?;
            let p = engine.abs(rel);
            cube_bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            removed_cubes += 1;
        }
    }
    cache.flush()?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "archived {} per-beam cutout file(s) ({:.1} MiB) into {}; removed them{}",
        names.len(),
        mib(bytes),
        graph.field_dir.join(TAR).display(),
        if args.remove_beam_cubes {
            format!(
                "; removed {removed_cubes} beam cube(s) ({:.1} MiB, no copy kept)",
                mib(cube_bytes)
            )
        } else {
            String::new()
        }
    );
    Ok(0)
}

/// `arrakis explain`.
pub fn explain(cache_dir: &Path, wait: bool, args: &ExplainArgs) -> Result<i32> {
    let setup = load_setup(&args.field)?;
    let graph = &setup.graph;
    let Some(ti) = graph.find(&args.target) else {
        let ids = graph.targets.iter().map(|t| t.id.as_str());
        return Err(anyhow!(
            "no target '{}' in field {}{}; `arrakis dag {} --dot` lists them",
            args.target,
            graph.field,
            crate::diag::did_you_mean(&args.target, ids),
            graph.field
        ));
    };
    let cache = open_cache(cache_dir, wait)?;
    let engine = Engine::new(graph, &setup.rules, &cache);
    let mut selected = vec![false; graph.targets.len()];
    selected[ti] = true;
    let modes = local::modes_for(graph, &selected, false);
    let opts = BuildOptions {
        jobs: default_jobs(),
        keep_going: true,
        dry_run: true,
        quiet: true,
    };
    let res = local::build(&engine, &modes, &opts);
    let describe = |i: usize| -> Vec<String> {
        match &res.outcomes[i] {
            Some(o) if o.status == Status::Skipped => vec!["up to date".into()],
            Some(o) if o.status == Status::WouldRun => o.reasons.clone(),
            Some(o) => vec![format!("cannot run: {}", o.error.as_deref().unwrap_or(""))],
            None => vec!["not evaluated".into()],
        }
    };
    println!("{}:", graph.targets[ti].id);
    for r in describe(ti) {
        println!("  {r}");
    }
    // Follow the chain of upstream targets that will run, to the root cause.
    let mut frontier: Vec<usize> = graph.targets[ti].deps.iter().map(|&d| d as usize).collect();
    let mut seen = std::collections::HashSet::new();
    let mut shown = 0;
    while let Some(d) = frontier.pop() {
        if !seen.insert(d) || shown >= 10 {
            continue;
        }
        if let Some(o) = &res.outcomes[d] {
            if o.status == Status::WouldRun || o.status == Status::Failed {
                shown += 1;
                println!("upstream {}:", graph.targets[d].id);
                for r in describe(d) {
                    println!("  {r}");
                }
                frontier.extend(graph.targets[d].deps.iter().map(|&x| x as usize));
            }
        }
    }
    Ok(0)
}

/// `arrakis dag`.
pub fn dag(args: &DagArgs) -> Result<i32> {
    let setup = load_setup(&args.field)?;
    print!("{}", setup.graph.to_dot());
    Ok(0)
}

/// `arrakis params`.
pub fn params(args: &ParamsArgs) -> Result<i32> {
    let rules = load_rules(args.rules.as_deref())?;
    let params = config::resolve(&rules, &args.config, &args.sets)?;
    let mut readers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rules.rules {
        for p in r.params.keys() {
            readers.entry(p.clone()).or_default().push(r.name.clone());
        }
    }
    for (k, v) in params.iter() {
        let origin = match params.origin(k) {
            Some(Origin::Default) | None => "default".to_string(),
            Some(Origin::File(f)) => f.display().to_string(),
            Some(Origin::Set) => "--set".to_string(),
        };
        let by = readers
            .get(k)
            .map(|v| v.join(","))
            .unwrap_or_else(|| "engine".into());
        println!("{k} = {}\t[{origin}; read by {by}]", v.display());
    }
    for (k, why) in &params.unused {
        println!("# unused: {k} ({why})");
    }
    Ok(0)
}

/// `arrakis gc`.
pub fn gc(cache_dir: &Path, wait: bool, args: &GcArgs) -> Result<i32> {
    let rules = load_rules(args.rules.as_deref())?;
    let cache = open_cache(cache_dir, wait)?;
    if args.repair {
        let n = cache.repair()?;
        eprintln!("gc: dropped {n} unreadable record(s); their targets rebuild on the next build");
    }
    let ids = cache.target_ids()?;
    let rule_names: std::collections::HashSet<&str> =
        rules.rules.iter().map(|r| r.name.as_str()).collect();
    let mut fields: Vec<String> = args.fields.clone();
    if fields.is_empty() {
        let mut seen: Vec<String> = ids.iter().map(|(f, _)| f.clone()).collect();
        seen.sort();
        seen.dedup();
        fields = seen
            .into_iter()
            .filter(|f| args.datadir.join(f).join("field.yaml").exists())
            .collect();
    }
    let mut forgotten = 0;
    // Records of rules that no longer exist, in any field.
    for (f, id) in &ids {
        let rule = id.split('/').next().unwrap_or("");
        if !rule_names.contains(rule) {
            cache.remove_target(f, id)?;
            forgotten += 1;
        }
    }
    let mut removed_tmp = 0;
    for field in &fields {
        let fa = FieldArgs {
            field: field.clone(),
            datadir: args.datadir.clone(),
            rules: args.rules.clone(),
            config: args.config.clone(),
            sets: args.sets.clone(),
            limit: None,
        };
        let setup = load_setup(&fa)?;
        let live: std::collections::HashSet<&str> =
            setup.graph.targets.iter().map(|t| t.id.as_str()).collect();
        for (f, id) in &ids {
            if f == field
                && rule_names.contains(id.split('/').next().unwrap_or(""))
                && !live.contains(id.as_str())
            {
                cache.remove_target(f, id)?;
                forgotten += 1;
            }
        }
        removed_tmp += remove_temp_files(&setup.graph.field_dir)?;
    }
    let pruned = cache.prune_files()?;
    cache.flush()?;
    eprintln!("gc: forgot {forgotten} target record(s), removed {removed_tmp} temporary file(s), dropped {pruned} stat-cache entr(ies) of vanished files");
    Ok(0)
}

/// Remove leftover temporary outputs (from a killed build) under `dir`.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_type().is_file()
            && entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Absolute form of `p` (for messages).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `arrakis rmsynth1d` / `rmclean1d`.
pub fn rm1d(args: &crate::cli::Rm1dArgs, clean: bool) -> Result<i32> {
    use crate::cli::{FitFunctionArg, WeightTypeArg};
    use crate::science::stokes_i::FitFunction;
    let data = crate::stages::rm1d::read_spectrum(&args.file).map_err(|e| anyhow!(e))?;
    let p = crate::science::rm_synthesis::SynthParams {
        poly_ord: args.poly_ord,
        fit_function: match args.fit_function {
            FitFunctionArg::Log => FitFunction::Log,
            FitFunctionArg::Linear => FitFunction::Linear,
        },
        n_samples: args.n_samples,
        dphi: args.dphi,
        phi_max: args.phi_max,
        weight_variance: matches!(args.weight_type, WeightTypeArg::Variance),
        fit_rmsf: args.fit_rmsf,
    };
    let json = if clean {
        let c = crate::science::rm_clean::CleanParams {
            cutoff: args.cutoff,
            max_iter: args.max_iter,
            gain: args.gain,
            window: args.window,
        };
        let (s, cs) = crate::stages::rm1d::synth_and_clean(&data, &p, &c);
        serde_json::json!({"synth": s, "clean": cs})
    } else {
        serde_json::to_value(crate::stages::rm1d::synth(&data, &p).0)?
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(0)
}

/// `arrakis simulate`.
pub fn simulate(a: &crate::cli::SimulateArgs) -> Result<i32> {
    crate::units::check_unit_name(&a.field).map_err(|e| anyhow!("field name: {e}"))?;
    let o = crate::simulate::SimOptions {
        field: a.field.clone(),
        beams: a.beams.max(1),
        sources: a.sources,
        nchan: a.nchan.max(4),
        npix: a.npix.max(32),
        band: a.band.clone(),
        seed: a.seed,
        ionosphere: a.ionosphere,
    };
    let dir = crate::simulate::simulate(&a.datadir, &o).map_err(|e| anyhow!(e))?;
    eprintln!("simulated field {} in {}", a.field, dir.display());
    Ok(0)
}

/// `arrakis job-script --dask-config FILE`: the script one job of that config gets.
pub fn job_script(a: &crate::cli::JobScriptArgs) -> Result<i32> {
    let c = ClusterConfig::load(&a.dask_config).map_err(|e| anyhow!(e.to_string()))?;
    if c.class != ClusterClass::Slurm {
        return Err(anyhow!(
            "{}: cluster_class is not dask_jobqueue.SLURMCluster; a local cluster has no job script",
            a.dask_config.display()
        ));
    }
    for u in &c.unused {
        eprintln!("arrakis: unused cluster config key {u}");
    }
    let exe = std::env::current_exe()?;
    let manifest = "CACHE/slurm/FIELD/batch-N.json";
    print!("{}", slurm_script(&c, &worker_command(&c, &exe, manifest)));
    Ok(0)
}

/// `arrakis worker`: run a batch manifest (inside a Slurm job).
pub fn worker(a: &crate::cli::WorkerArgs) -> Result<i32> {
    let failed =
        crate::exec::worker::run_manifest(&a.manifest, a.parallel, a.local_directory.as_deref())
            .map_err(|e| anyhow!(e))?;
    // Failed targets are reported in their receipts; the job itself succeeded.
    if failed > 0 {
        eprintln!("arrakis worker: {failed} target(s) failed (see their receipts)");
    }
    Ok(0)
}

/// `arrakis demo`: simulate a small field into `dir` (unless it is there already) and build it.
pub fn demo(cache_dir: &Path, a: &crate::cli::DemoArgs) -> Result<i32> {
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
    let cache = cache_dir.to_path_buf();
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
    };
    let code = build(&cache, false, &args)?;
    let cat = a.dir.join(field).join(format!("{field}.catalogue.csv"));
    if let Ok(mut rdr) = csv::Reader::from_path(&cat) {
        let headers = rdr.headers().cloned().unwrap_or_default();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let flags = [
            col("snr_flag"),
            col("stokesI_fit_flag"),
            col("rmsynth_failed"),
        ];
        let (mut rows, mut detected) = (0, 0);
        for rec in rdr.records().flatten() {
            rows += 1;
            let clear = |c: Option<usize>| c.and_then(|c| rec.get(c)) == Some("false");
            detected += usize::from(flags.iter().all(|&c| clear(c)));
        }
        println!(
            "catalogue: {} ({rows} components, {detected} with polarised SNR above the cut and a good fit)",
            absolute(&cat).display()
        );
        println!("also: {}", absolute(&cat.with_extension("fits")).display());
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
