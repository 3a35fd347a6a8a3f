//! `arrakis status`, `explain`, `dag` and `params`: what a build would do and why, without
//! running anything.
//!
//! Must never: write a record or an output.

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::cli::{DagArgs, ExplainArgs, ParamsArgs, StatusArgs};
use crate::config::Origin;
use crate::exec::local::{self, BuildOptions, BuildResult, Mode, Status};
use crate::exec::{Engine, StaleClass};
use crate::session::{self, default_jobs, FieldSpec, Loaded, Opened, Want};

/// A dry run over every target of `engine`: what is up to date, stale, failed or missing.
pub(crate) fn evaluate_all(engine: &Engine) -> BuildResult {
    let modes = vec![Mode::Run; engine.graph.targets.len()];
    let opts = BuildOptions {
        jobs: default_jobs(),
        keep_going: true,
        dry_run: true,
        quiet: true,
        live: None,
    };
    local::build(engine, &modes, &opts)
}

/// `arrakis status`.
pub fn status(cache: Option<&Path>, wait: bool, args: &StatusArgs) -> Result<i32> {
    let want = Want {
        every_stage: true,
        use_snapshot: true,
    };
    let spec = FieldSpec::from(&args.field);
    let resolved = session::resolve_cache(cache, &spec);
    let cache_dir = resolved.dir.as_path();
    let opened = match session::open(cache_dir, wait, &spec, want) {
        Ok(o) => o,
        Err(session::SessionError::Cache(e @ crate::cache::CacheError::Busy { .. })) => {
            // A build holds the cache: its live counts, if it is building this field.
            return match crate::progress::Live::read_running(cache_dir, &spec.field) {
                Some(live) => {
                    print_live(&live);
                    Ok(0)
                }
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let loaded = match opened {
        Opened::UpToDate { verified, .. } => {
            // Nothing changed since the last complete build: every target is up to date.
            let stages: Vec<String> = verified.stages.iter().map(|(n, _)| n.clone()).collect();
            let rows: Vec<[usize; 5]> = verified
                .stages
                .iter()
                .map(|(_, n)| [*n as usize, 0, 0, 0, 0])
                .collect();
            eprintln!("arrakis: nothing changed since the last complete build");
            print_status(&stages, &rows);
            return Ok(0);
        }
        Opened::Loaded(l) => l,
    };
    let Loaded {
        cache,
        setup,
        states,
        ..
    } = *loaded;
    // Catalogue rows refused for their names are not targets: said here as a build says them.
    crate::cmd::build::print_rejected(&setup.graph.units.rejected);
    let engine = session::engine(&setup, &cache, states, default_jobs(), |_| true);
    let res = evaluate_all(&engine);
    let graph = &setup.graph;
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
    // Why: the not-up-to-date targets counted by the kind of their first reason.
    let mut why: Vec<(String, usize)> = Vec::new();
    let mut example: Option<&str> = None;
    for (i, o) in res.outcomes.iter().enumerate() {
        let Some(o) = o else { continue };
        if o.status == Status::WouldRun && example.is_none() {
            example = Some(&graph.targets[i].id);
        }
        let kind = match (o.status, o.reasons.first(), &o.error) {
            (Status::WouldRun, Some(r), _) => reason_kind(r),
            (Status::Failed, _, Some(e)) => format!("cannot run: {}", reason_kind(e)),
            _ => continue,
        };
        match why.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => why.push((kind, 1)),
        }
    }
    if !why.is_empty() {
        why.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let explain = crate::diag::field_command("explain", &graph.field_dir, &graph.field);
        let target = example.unwrap_or("TARGET");
        println!("why not up to date (first reason; `{explain} {target}` for one target):");
        for (k, n) in why.iter().take(12) {
            println!("{n:>8}  {k}");
        }
        if why.len() > 12 {
            println!("     ...  and {} more kinds", why.len() - 12);
        }
    }
    Ok(0)
}

/// A reason with what varies per target taken out, so that reasons can be counted: "parameter
/// cutoff changed from -8.0 to -5.0" → "parameter cutoff changed from -8.0 to -5.0" (the same for
/// every target), "input 'clean' comes from rmclean/X, which will run first" → "an input is
/// rebuilt first".
pub(crate) fn reason_kind(reason: &str) -> String {
    if reason.contains("which will run first") {
        return "an input is rebuilt first".into();
    }
    if let Some(rest) = reason.strip_prefix("input '") {
        let slot = rest.split('\'').next().unwrap_or("");
        let what = if reason.contains("missing") || reason.contains("does not exist") {
            "is missing"
        } else if reason.contains("failed") {
            "failed"
        } else {
            "changed"
        };
        return format!("input '{slot}' {what}");
    }
    if reason.starts_with("output ")
        || reason.contains("was modified")
        || reason.contains("was deleted")
    {
        return "an output was modified or deleted".into();
    }
    if reason.starts_with("the last run failed") {
        return "the last run failed".into();
    }
    // Parameters, never built, action changed: the same text for every target.
    reason.to_string()
}

/// The live counts of a running build (what `status` shows while the build holds the cache).
pub(crate) fn print_live(live: &crate::progress::Live) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(live.updated_unix);
    eprintln!(
        "arrakis: a build of {} is {} (pid {} on {}, started {:.0} s ago; counts as of {:.1} s ago)",
        live.field,
        if live.finished { "finishing" } else { "running" },
        live.pid,
        live.host,
        (now - live.started_unix).max(0.0),
        (now - live.updated_unix).max(0.0)
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "stage", "to-run", "done", "ran", "running", "failed", "left"
    );
    for s in &live.stages {
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            s.name,
            s.total,
            s.done,
            s.ran,
            s.running,
            s.failed,
            s.total.saturating_sub(s.done)
        );
    }
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

/// `arrakis explain`.
pub fn explain(cache: Option<&Path>, wait: bool, args: &ExplainArgs) -> Result<i32> {
    let spec = FieldSpec::from(&args.field);
    let resolved = session::resolve_cache(cache, &spec);
    let cache_dir = resolved.dir.as_path();
    let setup = session::load_setup(&spec)?;
    let graph = &setup.graph;
    let Some(ti) = graph.find(&args.target) else {
        let ids = graph.targets.iter().map(|t| t.id.as_str());
        return Err(anyhow!(
            "no target '{}' in field {}{}; `{} --dot` lists them",
            args.target,
            graph.field,
            crate::diag::did_you_mean(&args.target, ids),
            crate::diag::field_command("dag", &graph.field_dir, &graph.field)
        ));
    };
    let cache = match session::open_cache(cache_dir, wait) {
        Ok(c) => c,
        Err(e @ crate::cache::CacheError::Busy { .. }) => {
            return match crate::progress::Live::read_running(cache_dir, &graph.field) {
                Some(live) => {
                    print_live(&live);
                    eprintln!("arrakis: why {} would run is known once the build releases the cache (or: arrakis --wait explain ...)", graph.targets[ti].id);
                    Ok(0)
                }
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let engine = Engine::new(graph, &setup.rules, &cache);
    let mut selected = vec![false; graph.targets.len()];
    selected[ti] = true;
    let modes = local::modes_for(graph, &selected, false);
    let opts = BuildOptions {
        jobs: default_jobs(),
        keep_going: true,
        dry_run: true,
        quiet: true,
        live: None,
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
    let (mut shown, mut more) = (0, 0);
    while let Some(d) = frontier.pop() {
        if !seen.insert(d) {
            continue;
        }
        if let Some(o) = &res.outcomes[d] {
            if o.status == Status::WouldRun || o.status == Status::Failed {
                if shown >= 10 {
                    more += 1;
                    continue;
                }
                shown += 1;
                println!("upstream {}:", graph.targets[d].id);
                for r in describe(d) {
                    println!("  {r}");
                }
                frontier.extend(graph.targets[d].deps.iter().map(|&x| x as usize));
            }
        }
    }
    if more > 0 {
        println!(
            "... and at least {more} more upstream target(s) that will run (`{} -n` lists them all)",
            crate::diag::field_command("build", &graph.field_dir, &graph.field)
        );
    }
    Ok(0)
}

/// `arrakis dag`.
pub fn dag(args: &DagArgs) -> Result<i32> {
    let setup = session::load_setup(&FieldSpec::from(&args.field))?;
    print!("{}", setup.graph.to_dot());
    Ok(0)
}

/// `arrakis columns`: the catalogue's column table as Markdown (CATALOGUE.md).
pub fn columns() -> Result<i32> {
    print!("{}", crate::stages::catalogue::columns_markdown());
    Ok(0)
}

/// `arrakis params`.
pub fn params(args: &ParamsArgs) -> Result<i32> {
    let rules = session::load_rules(args.rules.as_deref())?;
    let params = session::resolve_params(&rules, &args.config, &args.sets)?;
    let readers = rules.param_readers();
    if args.yaml {
        print!(
            "{}",
            crate::config::to_yaml(&rules.param_decls(), &params, &readers)
        );
        return Ok(0);
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
