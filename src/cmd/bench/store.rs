//! `arrakis bench store`: going back to earlier parameters with the content store. A simulated
//! field is built, then a parameter is changed and changed back, twice: the change costs a
//! recompute, the way back a restore; beside them a no-op, and the store's size against the
//! field's outputs (how much of it is hard links to outputs in place, how much is disk of its
//! own). Each phase is the real binary as a child process.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{anyhow, Result};

use super::median;
use super::region::{phase, Phase};
use crate::simulate::{simulate, SimOptions};

/// Bytes of the store's objects: (all, those that are also an output in place).
fn store_bytes(objects: &Path) -> (u64, u64) {
    let (mut all, mut linked) = (0, 0);
    for e in walkdir::WalkDir::new(objects).into_iter().flatten() {
        if let Ok(md) = e.metadata() {
            if md.is_file() {
                all += md.len();
                if md.nlink() > 1 {
                    linked += md.len();
                }
            }
        }
    }
    (all, linked)
}

/// `arrakis bench store`.
pub fn store(sources: usize, npix: usize, nchan: usize, dir: Option<&Path>) -> Result<i32> {
    let (_tmp, dir) = super::work_dir(dir)?;
    let data = dir.join("data");
    let field = "STORE";
    if !data.join(field).join("field.yaml").is_file() {
        simulate(
            &data,
            &SimOptions {
                sources,
                npix,
                nchan,
                ..SimOptions::small(field, 1)
            },
        )
        .map_err(|e| anyhow!(e))?;
    }
    let args = |sets: &[&str]| -> Vec<String> {
        let mut a = vec!["build".to_string(), field.to_string()];
        for s in sets {
            a.push("--set".into());
            a.push(s.to_string());
        }
        a
    };
    let mut rows: Vec<(String, Phase)> = Vec::new();
    rows.push(("cold build".into(), phase(&dir, &args(&[]))?));
    for (what, set) in [
        ("RM-CLEAN cutoff", "cutoff=-5"),
        ("cutout padding (every stage after cutout)", "pad=4"),
    ] {
        rows.push((
            format!("{what}: changed (recompute)"),
            phase(&dir, &args(&[set]))?,
        ));
        rows.push((format!("{what}: back (restore)"), phase(&dir, &args(&[]))?));
        rows.push((
            format!("{what}: changed again (restore)"),
            phase(&dir, &args(&[set]))?,
        ));
        rows.push((
            format!("{what}: back again (restore)"),
            phase(&dir, &args(&[]))?,
        ));
    }
    let mut noop = Vec::new();
    for _ in 0..3 {
        noop.push(phase(&dir, &args(&[]))?.seconds);
    }
    let islands = std::fs::read_to_string(data.join(field).join("catalogue/islands.csv"))?
        .lines()
        .count()
        .saturating_sub(1);
    println!("field {field}: {islands} islands, {npix}² pixels × {nchan} channels, 4 beams");
    println!("| phase | wall s | peak RSS MiB | targets | ran | restored |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, p) in &rows {
        println!(
            "| {name} | {:.3} | {:.0} | {} | {} | {} |",
            p.seconds, p.rss_mib, p.targets, p.ran, p.restored
        );
    }
    println!("| no-op (median of 3) | {:.3} | | | 0 | 0 |", median(noop));
    let (all, linked) = store_bytes(&crate::store::objects_dir(&dir.join("cache")));
    let outputs = super::dir_size(&data.join(field).join("cutouts"));
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "content store: {:.1} MiB ({:.1} MiB of it hard links to outputs in place, {:.1} MiB of its own); the field's cutouts directory: {:.1} MiB",
        mib(all),
        mib(linked),
        mib(all - linked),
        mib(outputs)
    );
    Ok(0)
}
