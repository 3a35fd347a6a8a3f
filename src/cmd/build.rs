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
use crate::session::{self, default_jobs, timing, FieldSpec, Front, Loaded, Opened, Want};

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

/// `arrakis build`.
pub fn build(cache: Option<&Path>, wait: bool, args: &BuildArgs) -> Result<i32> {
    if !args.more_fields.is_empty() {
        return build_fields(cache, wait, args);
    }
    let spec = FieldSpec::from(&args.field);
    let resolved = session::resolve_cache(cache, &spec);
    let cache_dir = resolved.dir.as_path();
    let want = Want {
        every_stage: args.until.is_none() && args.only.is_none(),
        use_snapshot: !args.full_check && args.force.is_empty() && !args.forceall,
    };
    let loaded = match session::open(cache_dir, wait, &spec, want)? {
        Opened::UpToDate {
            front,
            verified,
            seconds,
        } => {
            if !args.dry_run {
                session::record_cache(&front.field_dir, cache_dir);
            }
            return up_to_date(&front, &verified, args, seconds);
        }
        Opened::Loaded(l) => l,
    };
    let Loaded {
        cache,
        setup,
        states,
        unit_files,
        fingerprint,
    } = *loaded;
    // A cache with no record of a field whose outputs are on disk would redo every target.
    // When the field records another cache that still exists, refused before anything runs,
    // naming it; with no record of any cache (a field built by an older arrakis), said.
    // (A build killed before its first record leaves this very cache recorded: it resumes.)
    if states.is_empty() && !args.new_cache && !args.dry_run {
        let this = std::fs::canonicalize(cache_dir).unwrap_or_else(|_| absolute(cache_dir));
        let other = resolved.recorded.as_ref().filter(|r| **r != this);
        if let Some(example) = session::an_existing_output(&setup.graph) {
            match other {
                Some(r) => {
                    return Err(anyhow!(
                        "the cache {} holds no record of field {}, but its outputs are on disk ({}); it was built with the cache {} (recorded in {}): building would run every target again. Pass --cache {} (or no --cache), or --new-cache to build it again into this cache",
                        this.display(),
                        setup.graph.field,
                        example.display(),
                        r.display(),
                        setup.graph.field_dir.join(session::CACHE_MARKER).display(),
                        r.display()
                    ))
                }
                None if resolved.recorded.is_none() => eprintln!(
                    "arrakis: note: the cache {} holds no record of field {}, whose outputs are on disk ({}): every target runs again. If it was built with another cache, stop (Ctrl-C) and pass --cache with that directory",
                    this.display(),
                    setup.graph.field,
                    example.display()
                ),
                None => {}
            }
        }
    }
    // One build writes a field at a time, whatever cache it uses.
    let _field_lock = if args.dry_run {
        None
    } else {
        Some(session::FieldLock::acquire(
            &setup.graph.field_dir,
            cache_dir,
            wait,
        )?)
    };
    if !args.dry_run {
        session::record_cache(&setup.graph.field_dir, cache_dir);
        cache.note_field_dir(&setup.graph.field, &setup.graph.field_dir)?;
    }
    print_notes(&setup.params, &setup.graph.orphans, args.quiet);
    let rejected = &setup.graph.units.rejected;
    print_rejected(rejected);
    if !args.quiet {
        note_changed_params(cache_dir, &setup.graph.field, &setup.params);
    }
    if !args.dry_run {
        save_params(cache_dir, &setup.graph.field, &setup.params);
    }
    let graph = &setup.graph;
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
        live: Some(crate::progress::Live::path(cache_dir, &graph.field)),
    };
    let mut engine = session::engine(&setup, &cache, states, opts.jobs, |ti| {
        modes[ti] != Mode::Ignore
    });
    engine.forced = forced;
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
            Ok(Some(SlurmRunner::new(
                c,
                cache_dir,
                field,
                args.retries,
                patience,
            )?))
        }
        clusters.default = runner(&dask, cache_dir, &graph.field, args)?;
        clusters.imager = runner(&imager, cache_dir, &graph.field, args)?;
    }
    let t0 = Instant::now();
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
    let t0 = Instant::now();
    cache.flush()?;
    timing("flush", t0);
    let complete = !args.dry_run
        && rejected.is_empty()
        && !res.interrupted
        && !res.stopped
        && res.fatal.is_none()
        && res
            .outcomes
            .iter()
            .all(|o| matches!(o, Some(o) if matches!(o.status, Status::Ran | Status::Skipped)));
    if let (true, Some(fp), Some(uf)) = (complete, &fingerprint, &unit_files) {
        let t0 = Instant::now();
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
        print_would_run(graph, &res)?;
        return Ok(0);
    }
    print_summary(graph, &res, args.quiet);
    if !rejected.is_empty() {
        eprintln!(
            "arrakis: {} catalogue row(s) refused (listed above; the rest of the field was built)",
            rejected.len()
        );
    }
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
    let rejected_rows = rejected.len();
    // The process exits next: freeing a large graph piece by piece would only cost time.
    std::mem::forget(res);
    std::mem::forget(engine);
    std::mem::forget(setup);
    Ok(if failed > 0 || rejected_rows > 0 {
        EXIT_FAILED
    } else {
        0
    })
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

/// A dry run's answer: each target that would run and why (stdout), and the count.
fn print_would_run(graph: &Graph, res: &BuildResult) -> Result<()> {
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
    Ok(())
}

fn print_summary(graph: &Graph, res: &BuildResult, quiet: bool) {
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
    print_table(
        &stages,
        &per,
        &failures,
        blocked,
        res.seconds,
        ending,
        quiet,
    );
    if !quiet {
        print_products(graph, res);
    }
}

/// Where the catalogue and the validation plots are, when this build made them.
fn print_products(graph: &Graph, res: &BuildResult) {
    for (i, o) in res.outcomes.iter().enumerate() {
        let Some(o) = o else { continue };
        if o.status != Status::Ran {
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

/// The per-stage rows: ran, skipped, failed, cpu seconds.
fn print_stage_rows(stages: &[String], per: &[[f64; 4]]) {
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
}

/// The per-stage table and the closing line. `per`: ran, skipped, failed, cpu seconds.
#[allow(clippy::too_many_arguments)]
fn print_table(
    stages: &[String],
    per: &[[f64; 4]],
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
    print_notes(&front.params, &v.orphans, args.quiet);
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
    if args.quiet {
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
    print_table(&stages, &per, &[], 0, seconds, "", false);
    Ok(0)
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

/// `arrakis build A B C`: each field in turn, in this process; the exit code is the worst of
/// theirs (bad input stops at once).
fn build_fields(cache: Option<&Path>, wait: bool, args: &BuildArgs) -> Result<i32> {
    // Arrakis's `datadir field` order (`arrakis build . RACS_X`) is not two fields.
    let first = &args.field.field;
    if !args.field.datadir.join(first).join("field.yaml").is_file()
        && Path::new(first).join(&args.more_fields[0]).is_dir()
    {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        eprintln!("arrakis: error: '{first}' is a directory of fields, not a field");
        if let Some(h) = super::hints::for_args(&argv) {
            eprintln!("hint: {h}");
        }
        return Ok(super::EXIT_BAD_INPUT);
    }
    let mut worst = 0;
    let names: Vec<String> = std::iter::once(args.field.field.clone())
        .chain(args.more_fields.iter().cloned())
        .collect();
    let mut parts = Vec::new();
    for f in &names {
        let mut one = args.clone();
        one.field.field = f.clone();
        one.more_fields.clear();
        // Each field's report apart, then one report of them all.
        one.report = args.report.as_ref().map(|p| {
            let part = crate::atomic::temp_path_for(p);
            parts.push(part.clone());
            part
        });
        let rc = build(cache, wait, &one)?;
        if rc == super::EXIT_BAD_INPUT || rc == super::EXIT_INTERRUPTED {
            return Ok(rc);
        }
        worst = worst.max(rc);
    }
    if let Some(path) = &args.report {
        merge_reports(path, &names, &parts)?;
    }
    Ok(worst)
}

/// One report of several fields' builds: every target with its `field`, the summaries and
/// hashing summed.
fn merge_reports(path: &Path, names: &[String], parts: &[PathBuf]) -> Result<()> {
    use serde_json::{json, Value};
    let mut targets = Vec::new();
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    let (mut files, mut bytes, mut seconds, mut interrupted) = (0u64, 0u64, 0f64, false);
    for (name, part) in names.iter().zip(parts) {
        let Ok(text) = std::fs::read_to_string(part) else {
            continue;
        };
        let _ = std::fs::remove_file(part);
        let v: Value = serde_json::from_str(&text)?;
        for t in v["targets"].as_array().into_iter().flatten() {
            let mut t = t.clone();
            t["field"] = json!(name);
            targets.push(t);
        }
        for (k, n) in v["summary"].as_object().into_iter().flatten() {
            *summary.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
        files += v["hashed"]["files"].as_u64().unwrap_or(0);
        bytes += v["hashed"]["bytes"].as_u64().unwrap_or(0);
        seconds += v["seconds"].as_f64().unwrap_or(0.0);
        interrupted |= v["interrupted"].as_bool().unwrap_or(false);
    }
    let report = json!({
        "fields": names,
        "targets": targets,
        "summary": summary,
        "hashed": {"files": files, "bytes": bytes},
        "interrupted": interrupted,
        "seconds": seconds,
    });
    crate::atomic::write_atomic(path, &serde_json::to_vec_pretty(&report)?)
        .map_err(|e| anyhow!("cannot write the report {}: {e}", path.display()))
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
