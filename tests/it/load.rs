//! Load: a 10 000-island simulated field (small cubes: 9 beams of 192² px × 8 channels) builds to
//! completion on the local executor within the memory goal (peak RSS under 500 MiB), and a second
//! build is a no-op. Wall time, peak memory and cache size are printed (`--nocapture`), never
//! asserted.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

const MEMORY_GOAL_MIB: f64 = 500.0;

/// Run a build to the end: (wall seconds, peak RSS MiB, report).
fn timed_build(
    cache: &Path,
    data: &Path,
    field: &str,
) -> (f64, f64, std::collections::BTreeMap<String, String>) {
    let report = data.join("load-report.json");
    let t0 = Instant::now();
    let child = arrakis(cache)
        .args(["build", field, "--quiet", "--set", "pad=1", "--datadir"])
        .arg(data)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (ok, peak) = arrakis::cmd::bench::wait_with_peak_rss(child);
    let wall = t0.elapsed().as_secs_f64();
    assert!(ok, "the build failed");
    (wall, peak, read_report(&report))
}

#[test]
fn ten_thousand_islands_build_within_memory_and_rebuild_as_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "LOAD10K";
    let opts = SimOptions {
        beams: 9,
        sources: 10_000,
        nchan: 8,
        npix: 192,
        ..SimOptions::small(field, 11)
    };
    let t0 = Instant::now();
    simulate(tmp.path(), &opts).unwrap();
    let sim = t0.elapsed().as_secs_f64();
    let cache = tmp.path().join("cache");

    let (wall, peak, r) = timed_build(&cache, tmp.path(), field);
    assert!(with_status(&r, "failed").is_empty());
    let ran = with_status(&r, "ran").len();
    assert_eq!(ran, r.len(), "a cold build runs every target");
    assert!(
        r.keys().filter(|id| id.starts_with("rmclean/")).count() >= 10_000,
        "every island's components are measured"
    );
    assert!(
        peak < MEMORY_GOAL_MIB,
        "peak RSS {peak:.0} MiB over the {MEMORY_GOAL_MIB} MiB goal"
    );
    let cat = read_csv(
        &tmp.path()
            .join(field)
            .join(format!("{field}.catalogue.csv")),
    );
    assert_eq!(
        cat.len(),
        with_status(&r, "ran")
            .iter()
            .filter(|id| id.starts_with("rmclean/"))
            .count()
    );

    let (wall2, peak2, r2) = timed_build(&cache, tmp.path(), field);
    assert!(
        with_status(&r2, "ran").is_empty(),
        "the second build ran targets"
    );
    assert_eq!(with_status(&r2, "skipped").len(), r.len());
    let cache_mib = arrakis::cmd::bench::dir_size(&cache) as f64 / (1024.0 * 1024.0);
    let field_mib =
        arrakis::cmd::bench::dir_size(&tmp.path().join(field)) as f64 / (1024.0 * 1024.0);
    println!(
        "load: {} targets; simulate {sim:.1} s; cold build {wall:.1} s, peak RSS {peak:.0} MiB; \
         no-op build {wall2:.2} s, peak RSS {peak2:.0} MiB; cache {cache_mib:.0} MiB; field {field_mib:.0} MiB",
        r.len()
    );
}
