//! `arrakis bench region`: a region of simulated fields of one sky on a grid (1° apart, so every
//! field overlaps its neighbours), built as a user builds one: `arrakis build` of every field in
//! one run, then `arrakis region`, cold, as a no-op, and after a change of one parameter; each
//! phase the real binary as a child process (wall time, peak RSS from `wait4`, targets from the
//! report), with the region's targets, records and cache size.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Result};

use super::{dir_size, median, wait_with_peak_rss};
use crate::simulate::{simulate, SimOptions};

/// What one phase did.
pub(super) struct Phase {
    pub(super) seconds: f64,
    pub(super) rss_mib: f64,
    pub(super) ran: usize,
    pub(super) restored: usize,
    pub(super) targets: usize,
}

/// `arrakis ARGS --quiet --report ... --datadir DIR/data` with the cache `DIR/cache`, as a
/// child process.
pub(super) fn phase(dir: &Path, args: &[String]) -> Result<Phase> {
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let start = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(args)
        .arg("--quiet")
        .arg("--report")
        .arg(&report)
        .arg("--datadir")
        .arg(dir.join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let (ok, rss_mib) = wait_with_peak_rss(child);
    let seconds = start.elapsed().as_secs_f64();
    if !ok {
        return Err(anyhow!(
            "benchmark step `arrakis {}` failed",
            args.join(" ")
        ));
    }
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let targets = v["targets"].as_array().map(|a| a.len()).unwrap_or(0);
    let count = |status: &str| {
        v["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["status"] == status)
            .count()
    };
    Ok(Phase {
        seconds,
        rss_mib,
        ran: count("ran"),
        restored: count("restored"),
        targets,
    })
}

/// `arrakis bench region`.
pub fn region(
    side: usize,
    sources: usize,
    npix: usize,
    nchan: usize,
    dir: Option<&Path>,
) -> Result<i32> {
    let (_tmp, dir) = super::work_dir(dir)?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let mut names = Vec::new();
    let t0 = Instant::now();
    for row in 0..side {
        for col in 0..side {
            let name = format!("F{row:02}{col:02}");
            let dec = -25.0 + row as f64;
            let ra = 189.375 + col as f64 / dec.to_radians().cos();
            if !data.join(&name).join("field.yaml").is_file() {
                simulate(
                    &data,
                    &SimOptions {
                        sources,
                        npix,
                        nchan,
                        centre: Some((ra, dec)),
                        sky_seed: Some(1),
                        ..SimOptions::small(&name, (row * side + col + 1) as u64)
                    },
                )
                .map_err(|e| anyhow!(e))?;
            }
            names.push(name);
        }
    }
    eprintln!(
        "bench region: {} fields ({side}×{side}, 1° apart) simulated in {:.1} s under {}",
        names.len(),
        t0.elapsed().as_secs_f64(),
        data.display()
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut build = s(&["build"]);
    build.extend(names.iter().cloned());
    let fields = names.join(",");
    let region = s(&["region", "REGION", "--fields", &fields]);
    let mut rows: Vec<(String, Phase)> = Vec::new();
    rows.push((
        "fields: cold build (all fields, one run)".into(),
        phase(&dir, &build)?,
    ));
    rows.push((
        "region: cold (fields up to date)".into(),
        phase(&dir, &region)?,
    ));
    let mut noop = Vec::new();
    for _ in 0..3 {
        noop.push(phase(&dir, &region)?);
    }
    let secs = median(noop.iter().map(|p| p.seconds).collect());
    let p = noop
        .into_iter()
        .min_by(|a, b| {
            (a.seconds - secs)
                .abs()
                .total_cmp(&(b.seconds - secs).abs())
        })
        .expect("three runs");
    rows.push(("region: no-op (median of 3)".into(), p));
    let mut only = region.clone();
    only.push("--no-field-builds".into());
    let mut noop = Vec::new();
    for _ in 0..3 {
        noop.push(phase(&dir, &only)?.seconds);
    }
    let mut changed = region.clone();
    changed.extend(s(&["--set", "cutoff=-5"]));
    rows.push((
        "region: --set cutoff=-5 (fields and region)".into(),
        phase(&dir, &changed)?,
    ));
    let islands = std::fs::read_to_string(data.join("REGION/catalogue/islands.csv"))?
        .lines()
        .count()
        .saturating_sub(1);
    let comps = std::fs::read_to_string(data.join("REGION/catalogue/components.csv"))?
        .lines()
        .count()
        .saturating_sub(1);
    let field_comps: usize = names
        .iter()
        .map(|n| {
            std::fs::read_to_string(data.join(n).join("catalogue/components.csv"))
                .map(|t| t.lines().count().saturating_sub(1))
                .unwrap_or(0)
        })
        .sum();
    println!(
        "region of {} fields: {islands} islands, {comps} components ({field_comps} in the fields' catalogues)",
        names.len()
    );
    println!("| phase | wall s | peak RSS MiB | targets | ran |");
    println!("|---|---:|---:|---:|---:|");
    for (name, p) in &rows {
        println!(
            "| {name} | {:.3} | {:.0} | {} | {} |",
            p.seconds, p.rss_mib, p.targets, p.ran
        );
    }
    println!(
        "| region: no-op, --no-field-builds (median of 3) | {:.3} | | | 0 |",
        median(noop)
    );
    println!(
        "cache on disk: {:.1} MiB; field data and outputs: {:.1} MiB",
        dir_size(&dir.join("cache")) as f64 / 1048576.0,
        dir_size(&data) as f64 / 1048576.0
    );
    Ok(0)
}
