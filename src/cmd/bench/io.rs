//! `arrakis bench io`: the cube reader, cutouts and input hashing on big beam cubes against
//! reading the same files through.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::slurm::build_field;
use super::*;

/// Seconds to read `path` to the end in 1 MiB blocks (what `cat FILE > /dev/null` does).
fn read_through(path: &Path) -> Result<f64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    while f.read(&mut buf)? > 0 {}
    Ok(t0.elapsed().as_secs_f64())
}

/// `arrakis bench io`: cutout and input-hashing throughput on big beam cubes, against reading
/// the same files through (`cat`) in the same run, page cache warm.
pub fn io(npix: usize, nchan: usize, sources: usize, dir: Option<&Path>) -> Result<i32> {
    let tmp;
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let _ = std::fs::remove_dir_all(root.join("cache"));
    let _ = std::fs::remove_dir_all(root.join("data"));
    let field = "BENCH_IO";
    let opts = crate::simulate::SimOptions {
        beams: 1,
        sources,
        nchan,
        npix,
        ..crate::simulate::SimOptions::small(field, 3)
    };
    eprintln!("bench io: simulating one beam of {npix}² px × {nchan} channels, {sources} islands");
    let fdir = crate::simulate::simulate(&root.join("data"), &opts).map_err(|e| anyhow!(e))?;
    let cubes: Vec<PathBuf> = ["i", "q", "u"]
        .iter()
        .map(|s| {
            fdir.join(format!(
                "image.restored.{s}.{field}.contcube.beam00.conv.fits"
            ))
        })
        .collect();
    let bytes: u64 = cubes
        .iter()
        .map(|c| std::fs::metadata(c).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mb = bytes as f64 / 1e6;
    // Warm the page cache, then time the plain read of the three cubes.
    for c in &cubes {
        read_through(c)?;
    }
    let cat: f64 = (0..3)
        .map(|_| cubes.iter().map(|c| read_through(c)).sum::<Result<f64>>())
        .collect::<Result<Vec<f64>>>()
        .map(median)?;
    // The cube reader alone: every plane of the three cubes, as the cutout stage reads rows.
    let reader = median(
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                for c in &cubes {
                    let mut r = crate::fits::PlaneReader::open(c).map_err(|e| anyhow!(e))?;
                    let mut buf = vec![0f32; r.nx * r.ny];
                    for k in 0..r.nchan {
                        r.read_plane(k, &mut buf).map_err(|e| anyhow!(e))?;
                    }
                    std::hint::black_box(&buf);
                }
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<f64>>>()?,
    );
    // The three cutout targets (one per Stokes cube), as a build runs them.
    let b = build_field(
        &root,
        field,
        2,
        &[
            std::ffi::OsStr::new("--until"),
            std::ffi::OsStr::new("cutout"),
        ],
    )?;
    let cutouts = walkdir::WalkDir::new(fdir.join("cutouts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "fits"))
        .count();
    // Input hashing: arrakis's file hash (memory-mapped, multithreaded BLAKE3 for big files)
    // against single-threaded BLAKE3 over a buffered read.
    let hash_mt = median(
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                for c in &cubes {
                    crate::hash::hash_file(c)?;
                }
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<f64>>>()?,
    );
    let hash_1t = {
        use std::io::Read;
        let t0 = Instant::now();
        for c in &cubes {
            let mut h = blake3::Hasher::new();
            let mut f = std::fs::File::open(c)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        t0.elapsed().as_secs_f64()
    };
    println!(
        "{:.0} MB in 3 beam cubes ({npix}² px × {nchan} ch); {sources} islands, {cutouts} cutout files\n",
        mb
    );
    println!("| what | seconds | MB/s | vs cat |");
    println!("|---|---:|---:|---:|");
    let row = |what: &str, s: f64| {
        println!("| {what} | {s:.3} | {:.0} | {:.2} |", mb / s, cat / s);
    };
    row("cat (read through, 1 thread)", cat);
    row("cube reader: every plane (1 thread)", reader);
    row(
        "cutout: 3 targets, seconds summed (1 thread each)",
        b.work_seconds,
    );
    row("cutout build wall (-j 2, 3 targets + beams)", b.seconds);
    row("hash: arrakis hash_file (mmap, rayon)", hash_mt);
    row("hash: BLAKE3 one thread, buffered read", hash_1t);
    Ok(0)
}
