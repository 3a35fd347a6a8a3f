//! `arrakis gc` and `arrakis archive`: forgetting what no longer exists, and Arrakis's cleanup
//! done safely (the transaction itself is `crate::archive::archive_field`).
//!
//! Must never: remove a file the cache still needs without the archive transaction.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::inspect::evaluate_all;
use crate::cli::{ArchiveArgs, FieldArgs, GcArgs};
use crate::session::{self, default_jobs, FieldSpec, Loaded, Opened, Want};

/// `arrakis archive`: tar the per-beam cutouts of an up-to-date field and remove them.
pub fn archive(cache: Option<&Path>, wait: bool, args: &ArchiveArgs) -> Result<i32> {
    let spec = FieldSpec::from(&args.field);
    let resolved = session::resolve_cache(cache, &spec);
    let cache_dir = resolved.dir.as_path();
    let want = Want {
        every_stage: true,
        // The transaction reads the records; a snapshot cannot stand in for them.
        use_snapshot: false,
    };
    let Opened::Loaded(loaded) = session::open(cache_dir, wait, &spec, want)? else {
        unreachable!("a session opened without the snapshot always loads");
    };
    let Loaded {
        cache,
        setup,
        states,
        ..
    } = *loaded;
    let graph = &setup.graph;
    // It removes files of the field: no build may write it meanwhile, whatever its cache.
    let field_lock = session::FieldLock::acquire(&graph.field_dir, cache_dir, wait)?;
    // What a build killed mid-way left is not archived: it goes, as a build would remove it.
    field_lock.remove_killed_leftovers(false);
    let engine = session::engine(&setup, &cache, states, default_jobs(), |_| true);
    let res = evaluate_all(&engine);
    let done = crate::archive::archive_field(&engine, &cache, &res, args.remove_beam_cubes)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "archived {} per-beam cutout file(s) ({:.1} MiB) into {}; removed them{}",
        done.files,
        mib(done.bytes),
        graph.field_dir.join(crate::archive::TARBALL).display(),
        if args.remove_beam_cubes {
            format!(
                "; removed {} beam cube(s) ({:.1} MiB, no copy kept)",
                done.cubes,
                mib(done.cube_bytes)
            )
        } else {
            String::new()
        }
    );
    Ok(0)
}

/// The directory of a field `gc` names, found as a build finds it ([`FieldSpec::dir`]).
fn named_field_dir(args: &GcArgs, field: &str) -> PathBuf {
    FieldSpec {
        field: field.to_string(),
        datadir: args.datadir.clone(),
        ..Default::default()
    }
    .dir()
}

/// The cache `gc` tidies: the one given (`--cache`, `ARRAKIS_CACHE`); else the one the named
/// fields record, as a build finds it (they must agree); else `./cache`. It must exist: gc
/// makes no cache.
fn gc_cache(explicit: Option<&Path>, args: &GcArgs) -> std::result::Result<PathBuf, String> {
    let dir = match explicit {
        Some(d) => d.to_path_buf(),
        None => {
            let recorded: std::collections::BTreeSet<PathBuf> = args
                .fields
                .iter()
                .filter_map(|f| session::recorded_cache(&named_field_dir(args, f)))
                .collect();
            let mut caches = recorded.into_iter();
            match (caches.next(), caches.next()) {
                (None, _) => PathBuf::from("cache"),
                (Some(one), None) => one,
                (Some(a), Some(b)) => {
                    return Err(format!(
                        "the fields named were built with different caches ({} and {}): tidy each with its own cache (--cache DIR and the fields built with it)",
                        a.display(),
                        b.display()
                    ))
                }
            }
        }
    };
    if !dir.is_dir() {
        return Err(format!(
            "no cache at {}: nothing to tidy (gc makes no cache); pass --cache DIR, the cache your builds use (a built field names its own in FIELD/{})",
            super::absolute(&dir).display(),
            session::CACHE_MARKER
        ));
    }
    Ok(dir)
}

/// `arrakis gc`.
pub fn gc(explicit: Option<&Path>, wait: bool, args: &GcArgs) -> Result<i32> {
    let cache_dir = match gc_cache(explicit, args) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("arrakis: error: {why}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    };
    let cache_dir = cache_dir.as_path();
    let rules = session::load_rules(args.rules.as_deref())?;
    // With --repair: records that fail to decode are dropped; a store sled cannot open or read
    // is salvaged into a new one.
    let opened = session::open_cache(cache_dir, wait).and_then(|cache| {
        if args.repair {
            let n = cache.repair()?;
            cache.target_ids()?;
            eprintln!(
                "gc: dropped {n} unreadable record(s); their targets rebuild on the next build"
            );
        }
        Ok(cache)
    });
    let cache = match opened {
        Err(crate::cache::CacheError::Damaged { .. }) if args.repair => {
            let s = crate::cache::Cache::salvage(cache_dir, wait)?;
            eprintln!(
                "gc: the record store was damaged; salvaged {} target record(s), {} stat-cache entr{}, {} archive record(s) into a new store{}{}{}. Targets without a record rebuild on the next build. The damaged store is kept as {} (delete it when satisfied)",
                s.targets,
                s.files,
                if s.files == 1 { "y" } else { "ies" },
                s.archived,
                if s.dropped > 0 { format!("; dropped {} unreadable record(s)", s.dropped) } else { String::new() },
                if s.cut_bytes > 0 { format!("; the last {:.1} MiB of its log could not be read (records written there are lost)", s.cut_bytes as f64 / (1024.0 * 1024.0)) } else { String::new() },
                if s.incomplete { "; some records could not be read at all" } else { "" },
                s.kept.display()
            );
            session::open_cache(cache_dir, wait)?
        }
        r => r?,
    };
    let ids = cache.target_ids()?;
    let rule_names: std::collections::HashSet<&str> =
        rules.rules.iter().map(|r| r.name.as_str()).collect();
    // The fields to tidy: those named, in --datadir; else every field this cache has built,
    // wherever it is (and fields of older caches found in --datadir).
    let mut fields: Vec<(String, PathBuf)> = Vec::new();
    if args.fields.is_empty() {
        fields = cache.field_dirs()?;
        let mut seen: Vec<String> = ids.iter().map(|(f, _)| f.clone()).collect();
        seen.sort();
        seen.dedup();
        for f in seen {
            let dir = args.datadir.join(&f);
            if !fields.iter().any(|(n, _)| *n == f) && dir.join("field.yaml").exists() {
                fields.push((f, dir));
            }
        }
    } else {
        for f in &args.fields {
            // Absolute: its parent is the datadir the field is loaded from below.
            let dir = named_field_dir(args, f);
            fields.push((f.clone(), std::fs::canonicalize(&dir).unwrap_or(dir)));
        }
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
    let mut leftovers = crate::atomic::Removed::default();
    for (field, dir) in &fields {
        if !dir.is_dir() {
            eprintln!(
                "gc: note: field {field} was built in {}, which no longer exists; nothing to tidy there (its records are kept, in case the field comes back)",
                dir.display()
            );
            continue;
        }
        // Leftovers of killed processes first: they need nothing but the directory, and no
        // build writing the field meanwhile (whatever its cache).
        match session::FieldLock::acquire(dir, cache_dir, false) {
            Ok(_held) => {
                leftovers += crate::atomic::remove_leftovers(dir, None)?;
            }
            Err(e) => eprintln!("gc: note: temporary files and scratch directories of field {field} left alone: {e}"),
        }
        let fa = FieldArgs {
            field: field.clone(),
            datadir: dir.parent().map(Path::to_path_buf).unwrap_or_default(),
            rules: args.rules.clone(),
            config: args.config.clone(),
            sets: args.sets.clone(),
            limit: None,
        };
        let setup = match session::load_setup(&FieldSpec::from(&fa)) {
            Ok(s) => s,
            Err(e) if args.fields.is_empty() => {
                eprintln!(
                    "gc: note: field {field} ({}) cannot be loaded, so its records are kept: {e}",
                    dir.display()
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
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
    }
    let pruned = cache.prune_files()?;
    // The content store: within its budget (store_budget from --config/--set, else the
    // default), least recently used first.
    let params = session::resolve_params(&rules, &args.config, &args.sets)?;
    let budget = params.store_budget()?;
    let (removed, left) = crate::store::evict(&cache, budget)?;
    cache.flush()?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!("gc: forgot {forgotten} target record(s), removed {leftovers}, dropped {pruned} stat-cache entr(ies) of vanished files");
    eprintln!(
        "gc: content store: {} earlier run(s) of targets kept in {} object(s), {:.1} MiB of a {:.1} MiB budget (store_budget); evicted {} run(s), {} object(s), {:.1} MiB",
        left.entries,
        left.objects,
        mib(left.bytes),
        mib(budget),
        removed.entries,
        removed.objects,
        mib(removed.bytes)
    );
    Ok(0)
}
