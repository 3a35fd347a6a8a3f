//! `arrakis bench field`: a RACS-shaped simulated field built cold, beside its I/O floor
//! measured in the same run on a quiet disk (everything written before it written back): every
//! input byte read once (the beam cubes evicted from the page cache first, as the build's are)
//! and every output byte written once, per stage and overall.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use rayon::prelude::*;

use crate::graph::{Graph, InputFile};
use crate::simulate::{simulate, SimOptions};

const FIELD: &str = "BENCH_FIELD";

/// Drop a file's pages from the page cache (written back first), so the next read comes from
/// the disk.
fn evict(path: &Path) {
    drop_pages(path, true);
}

/// Advise the kernel to drop `path`'s pages from the page cache, after writing them back when
/// `sync` (without it, dirty pages stay).
fn drop_pages(path: &Path, sync: bool) {
    if let Ok(f) = std::fs::File::open(path) {
        use std::os::fd::AsRawFd;
        if sync {
            let _ = f.sync_all();
        }
        // SAFETY: advice on a descriptor we own; it changes no data.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// Drop every file under `dir` from the page cache (written back already: see `quiet`), so
/// that a measurement does not pay for reclaiming the memory they hold.
fn evict_tree(dir: &Path) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_type().is_file() {
            drop_pages(e.path(), false);
        }
    }
}

/// How long ext4 without a journal goes on skipping a deleted inode when it creates a file: a
/// minute after the deletion, six while the inode's table block is dirty (as it is while files
/// near it are being made). Every skipped inode costs a buffer lookup, so for minutes after the
/// tens of thousands of files a run removes, making files is slow: a forced linmos took a
/// quarter more CPU, rmsynth a fifth (its files are small). A field's first build does not
/// meet that, so a run does not start its measurements until this long after the last run's
/// clean-up (on such a filesystem).
const RECENTLY_DELETED_S: u64 = 360;

/// Whether the filesystem holding `dir` is ext4 without a journal (see [`RECENTLY_DELETED_S`]):
/// its device has an entry in `/proc/fs/ext4` and none in `/proc/fs/jbd2`.
fn skips_recently_deleted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(dir) else {
        return false;
    };
    let dev = md.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let Ok(block) = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    let Some(name) = block.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !Path::new("/proc/fs/ext4").join(name).exists() {
        return false;
    }
    let journal = format!("{name}-");
    match std::fs::read_dir("/proc/fs/jbd2") {
        Ok(entries) => !entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&journal)),
        // No jbd2 at all: no filesystem here has a journal.
        Err(_) => true,
    }
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fewer files removed than this leave nothing measurable behind (a small field's run).
const MANY_REMOVED: usize = 2_000;

/// Remove what an earlier run left (a killed run's scratch and set-aside outputs), then, on a
/// filesystem that skips recently deleted inodes, wait until [`RECENTLY_DELETED_S`] have
/// passed since the last clean-up of many files (`root/cleaned-at`: its time and how many).
fn settle(root: &Path) -> Result<()> {
    let mut removed = 0;
    for e in std::fs::read_dir(root)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "floor-scratch" || name.starts_with("set-aside-") {
            removed += remove_counting(&e.path())?;
        }
    }
    if removed > 0 {
        record_clean_up(root, removed)?;
    }
    if let Some((wait, age)) = wait_before_measuring(root, unix_now()) {
        eprintln!(
            "bench field: waiting {wait} s: the last run removed its files {age} s ago, and this filesystem (ext4 without a journal) makes files slowly for {} min after many are deleted, which a field's first build does not meet",
            RECENTLY_DELETED_S / 60
        );
        std::thread::sleep(std::time::Duration::from_secs(wait));
    }
    Ok(())
}

/// Remove `dir` and everything under it; how many files it held (none if it is not there).
fn remove_counting(dir: &Path) -> Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let files = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .count();
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(files)
}

/// Note in `root/cleaned-at` that `files` were removed now.
fn record_clean_up(root: &Path, files: usize) -> Result<()> {
    std::fs::write(root.join("cleaned-at"), format!("{} {files}\n", unix_now()))?;
    Ok(())
}

/// The seconds to wait at `now` before measuring, and the seconds since the last clean-up,
/// if that removed many files ([`MANY_REMOVED`]) under [`RECENTLY_DELETED_S`] ago on a
/// filesystem that skips recently deleted inodes.
fn wait_before_measuring(root: &Path, now: u64) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(root.join("cleaned-at")).ok()?;
    let mut words = text.split_whitespace();
    let at = words.next()?.parse::<u64>().ok()?;
    let files = words.next()?.parse::<usize>().ok()?;
    let age = now.saturating_sub(at);
    (files >= MANY_REMOVED && age < RECENTLY_DELETED_S && skips_recently_deleted(root))
        .then_some((RECENTLY_DELETED_S - age, age))
}

/// Read each file to its end with `jobs` threads (1 MiB reads, as `cat`); seconds.
fn read_all(files: &[(PathBuf, u64)], pool: &rayon::ThreadPool) -> Result<f64> {
    let t0 = Instant::now();
    pool.install(|| {
        files.par_iter().try_for_each(|(p, _)| -> Result<()> {
            let mut f = std::fs::File::open(p).with_context(|| p.display().to_string())?;
            let mut buf = vec![0u8; 1 << 20];
            while f.read(&mut buf)? > 0 {}
            Ok(())
        })
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Write files of these sizes under `scratch` with `jobs` threads (1 MiB writes, no fsync, as
/// the build writes) into a new directory `scratch` (removed later, all at once); seconds.
fn write_all(sizes: &[u64], scratch: &Path, pool: &rayon::ThreadPool) -> Result<f64> {
    std::fs::create_dir_all(scratch)?;
    let t0 = Instant::now();
    pool.install(|| {
        sizes
            .par_iter()
            .enumerate()
            .try_for_each(|(k, &n)| -> Result<()> {
                let mut f = std::fs::File::create(scratch.join(format!("{k}.out")))?;
                let buf = vec![0x5au8; 1 << 20];
                let mut left = n;
                while left > 0 {
                    let m = left.min(buf.len() as u64) as usize;
                    f.write_all(&buf[..m])?;
                    left -= m as u64;
                }
                Ok(())
            })
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// What one stage reads and writes.
#[derive(Default)]
struct StageIo {
    targets: usize,
    /// Distinct files read, with sizes; `cold`: files no rule makes (evicted before the floor).
    reads: BTreeMap<PathBuf, u64>,
    cold: BTreeSet<PathBuf>,
    writes: Vec<u64>,
}

fn stage_io(graph: &Graph) -> Vec<(String, StageIo)> {
    let mut by: Vec<(String, StageIo)> = graph
        .stages()
        .into_iter()
        .map(|s| (s, StageIo::default()))
        .collect();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    for (i, t) in graph.targets.iter().enumerate() {
        let Some(k) = by.iter().position(|(s, _)| s == graph.stage_of(i)) else {
            continue;
        };
        let io = &mut by[k].1;
        io.targets += 1;
        for f in t.inputs.iter().flat_map(|s| &s.files) {
            let (p, cold) = match f {
                InputFile::Source(rel) => (graph.field_dir.join(rel), true),
                InputFile::Output { target, output } => (
                    graph
                        .field_dir
                        .join(&graph.targets[*target as usize].outputs[*output as usize].rel),
                    false,
                ),
            };
            if p.is_file() && !io.reads.contains_key(&p) {
                let n = size(&p);
                io.reads.insert(p.clone(), n);
                if cold {
                    io.cold.insert(p);
                }
            }
        }
        for o in &t.outputs {
            io.writes.push(size(&graph.field_dir.join(&o.rel)));
        }
    }
    by.retain(|(_, io)| io.targets > 0);
    by
}

/// Per stage from the build's report: (Σ wall seconds of its actions, CPU seconds, bytes hashed).
fn report_by_stage(report: &Path) -> Result<BTreeMap<String, (f64, f64, f64)>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let mut m: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for t in v["targets"].as_array().into_iter().flatten() {
        let e = m
            .entry(t["stage"].as_str().unwrap_or("").to_string())
            .or_default();
        e.0 += t["seconds"].as_f64().unwrap_or(0.0);
        e.1 += t["cpu_seconds"].as_f64().unwrap_or(0.0);
        e.2 += t["hashed_bytes"].as_f64().unwrap_or(0.0);
    }
    Ok(m)
}

/// `arrakis bench field`.
pub fn field(
    beams: usize,
    npix: usize,
    nchan: usize,
    sources: usize,
    jobs: usize,
    dir: Option<&Path>,
    build_with: Option<&Path>,
) -> Result<i32> {
    if let Some(p) = build_with.filter(|p| !p.is_file()) {
        return Err(anyhow!(
            "--build-with {}: no such file; give the path of an arrakis binary to time",
            p.display()
        ));
    }
    let (_tmp, root) = super::work_dir(dir)?;
    let data = root.join("data");
    let fdir = data.join(FIELD);
    if !fdir.join("field.yaml").is_file() {
        eprintln!(
            "bench field: simulating {beams} beams × 3 Stokes × {nchan} channels × {npix}² px, {sources} islands in {}",
            data.display()
        );
        let t0 = Instant::now();
        simulate(
            &data,
            &SimOptions {
                beams,
                sources,
                nchan,
                npix,
                ..SimOptions::small(FIELD, 26)
            },
        )
        .map_err(|e| anyhow!(e))?;
        eprintln!(
            "bench field: simulated in {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let spec = crate::session::FieldSpec {
        field: FIELD.into(),
        datadir: data.clone(),
        rules: None,
        configs: Vec::new(),
        sets: Vec::new(),
        limit: None,
    };
    let setup = crate::session::load_setup(&spec).map_err(|e| anyhow!(e))?;
    let graph = &setup.graph;
    settle(&root)?;
    // Cold: no cache, no outputs, the inputs out of the page cache. An earlier run's outputs
    // are set aside (renamed) and removed only after the measurements: ext4 creates files
    // slowly for minutes after thousands were deleted (see `settle`), which a real first build
    // of a field does not meet.
    let aside = root.join(format!("set-aside-{}", std::process::id()));
    let mut moved = BTreeSet::new();
    // Directories holding inputs stay.
    let holds_inputs: BTreeSet<PathBuf> = graph
        .targets
        .iter()
        .flat_map(|t| t.inputs.iter().flat_map(|s| &s.files))
        .filter_map(|f| match f {
            InputFile::Source(rel) => Path::new(rel)
                .components()
                .next()
                .map(|c| graph.field_dir.join(c)),
            _ => None,
        })
        .collect();
    for t in &graph.targets {
        for o in &t.outputs {
            let first = Path::new(&o.rel).components().next();
            let top = first.map(|c| graph.field_dir.join(c));
            let whole = |d: &PathBuf| {
                d.is_dir()
                    && Path::new(&o.rel).components().count() > 1
                    && !holds_inputs.contains(d)
            };
            match top.filter(whole) {
                Some(dir) if moved.insert(dir.clone()) => {
                    std::fs::create_dir_all(&aside)?;
                    let to = aside.join(dir.file_name().unwrap_or_default());
                    std::fs::rename(&dir, &to)?;
                }
                Some(_) => {}
                None => {
                    let _ = std::fs::remove_file(graph.field_dir.join(&o.rel));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(root.join("cache"));
    let sources_in: BTreeSet<PathBuf> = graph
        .targets
        .iter()
        .flat_map(|t| t.inputs.iter().flat_map(|s| &s.files))
        .filter_map(|f| match f {
            InputFile::Source(rel) => Some(graph.field_dir.join(rel)),
            _ => None,
        })
        .filter(|p| p.is_file())
        .collect();
    // SAFETY: sync() takes no arguments and only starts writeback.
    unsafe { libc::sync() };
    for p in &sources_in {
        evict(p);
    }
    eprintln!(
        "bench field: cold build of {} targets with -j {jobs}{}",
        graph.targets.len(),
        build_with.map_or(String::new(), |p| format!(" by {}", p.display()))
    );
    let report = root.join("report.json");
    let t0 = Instant::now();
    let exe = match build_with {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?,
    };
    let child = Command::new(&exe)
        .arg("--cache")
        .arg(root.join("cache"))
        .args([
            "build",
            FIELD,
            "--quiet",
            "-j",
            &jobs.to_string(),
            "--datadir",
        ])
        .arg(&data)
        .arg("--report")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} for the benchmark build (--build-with takes an arrakis binary)",
                exe.display()
            )
        })?;
    let (ok, rss) = super::wait_with_peak_rss(child);
    let build_s = t0.elapsed().as_secs_f64();
    if !ok {
        return Err(anyhow!("the benchmark build failed"));
    }
    let per = report_by_stage(&report)?;
    let io = stage_io(graph);
    // Every floor is measured on a quiet disk: the build's outputs (and each floor's) are
    // written back first, as its sources were before the build.
    // SAFETY: sync() takes no arguments; it returns once the write-back is done.
    let quiet = || unsafe { libc::sync() };

    // The floors, in the same run: each stage's inputs read (files no rule makes evicted
    // first) and its output bytes written; overall, every input once and every output once.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    // No earlier run's scratch is left (see `settle`).
    let scratch_root = root.join("floor-scratch");
    let mut floors = 0;
    let mut scratch = || {
        floors += 1;
        scratch_root.join(floors.to_string())
    };
    let mut rows = Vec::new();
    for (stage, s) in &io {
        quiet();
        for p in &s.cold {
            evict(p);
        }
        // The floors' files so far out of memory (see `evict_tree`).
        evict_tree(&scratch_root);
        let reads: Vec<(PathBuf, u64)> = s.reads.iter().map(|(p, n)| (p.clone(), *n)).collect();
        let r = read_all(&reads, &pool)?;
        let w = write_all(&s.writes, &scratch(), &pool)?;
        rows.push((stage.clone(), r + w));
    }
    quiet();
    for p in &sources_in {
        evict(p);
    }
    evict_tree(&scratch_root);
    let all_reads: Vec<(PathBuf, u64)> = sources_in
        .iter()
        .map(|p| {
            (
                p.clone(),
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    let all_writes: Vec<u64> = io.iter().flat_map(|(_, s)| s.writes.clone()).collect();
    let floor_r = read_all(&all_reads, &pool)?;
    let floor_w = write_all(&all_writes, &scratch(), &pool)?;
    // Each stage again by itself, as its floor was measured (its files no rule makes evicted,
    // the rest in the page cache): in the cold build stages overlap, and a stage's actions
    // also wait there for the cores the others use. Its outputs are set aside (renamed, not
    // deleted: see above) so that it writes new files as in the cold build.
    let mut alone: BTreeMap<String, f64> = BTreeMap::new();
    let again = root.join("report-alone.json");
    let mut set_aside = 0usize;
    for (stage, s) in &io {
        for (i, t) in graph.targets.iter().enumerate() {
            if graph.stage_of(i) != stage {
                continue;
            }
            for o in &t.outputs {
                let from = graph.field_dir.join(&o.rel);
                if from.is_file() {
                    std::fs::create_dir_all(&aside)?;
                    set_aside += 1;
                    std::fs::rename(&from, aside.join(format!("alone-{set_aside}")))?;
                }
            }
        }
        quiet();
        for p in &s.cold {
            evict(p);
        }
        // The bench's own files (floors, outputs set aside) out of memory: some 30 GB were
        // written by now, and reclaiming their pages inside the stage took up to twice its
        // time (linmos alone 3.5-8.4 s in consecutive runs; 3.6 s with them evicted).
        evict_tree(&scratch_root);
        evict_tree(&aside);
        let ok = Command::new(&exe)
            .arg("--cache")
            .arg(root.join("cache"))
            .args(["build", FIELD, "--quiet", "-j", &jobs.to_string()])
            .args(["--force", stage, "--only", stage, "--datadir"])
            .arg(&data)
            .arg("--report")
            .arg(&again)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .status()?
            .success();
        if !ok {
            return Err(anyhow!("the {stage} stage by itself failed"));
        }
        let wall = report_by_stage(&again)?.get(stage).map_or(0.0, |v| v.0);
        alone.insert(stage.clone(), wall / jobs as f64);
    }
    // Deletions only now (see above), and when and how many (see `settle`).
    let removed = remove_counting(&scratch_root)? + remove_counting(&aside)?;
    record_clean_up(&root, removed)?;
    let floor = floor_r + floor_w;

    let gb = |b: f64| b / 1e9;
    println!(
        "field: {beams} beams × 3 Stokes × {nchan} ch × {npix}² px, {sources} islands; {} targets; -j {jobs}",
        graph.targets.len()
    );
    println!(
        "{:<11} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7}",
        "stage",
        "targets",
        "read GB",
        "write GB",
        "floor s",
        "stage s",
        "cpu s",
        "hash GB",
        "×floor",
        "alone s",
        "×floor"
    );
    for ((stage, s), (_, f)) in io.iter().zip(&rows) {
        let (wall, cpu, hashed) = per.get(stage).copied().unwrap_or_default();
        // The stage's share of the pool: its actions' wall time over the jobs.
        let share = wall / jobs as f64;
        let by_itself = alone.get(stage).copied().unwrap_or(f64::NAN);
        println!(
            "{:<11} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>7.1} {:>8.2} {:>7.1}",
            stage,
            s.targets,
            gb(s.reads.values().sum::<u64>() as f64),
            gb(s.writes.iter().sum::<u64>() as f64),
            f,
            share,
            cpu,
            gb(hashed),
            share / f.max(1e-9),
            by_itself,
            by_itself / f.max(1e-9)
        );
    }
    let (cpu, hashed) = per.values().fold((0.0, 0.0), |a, v| (a.0 + v.1, a.1 + v.2));
    println!(
        "{:<11} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>7.1}",
        "whole build",
        graph.targets.len(),
        gb(all_reads.iter().map(|r| r.1).sum::<u64>() as f64),
        gb(all_writes.iter().sum::<u64>() as f64),
        floor,
        build_s,
        cpu,
        gb(hashed),
        build_s / floor.max(1e-9)
    );
    println!(
        "floor: read {floor_r:.2} s + write {floor_w:.2} s; peak memory {rss:.0} MiB; stage s = its actions' wall time / jobs in the cold build; alone s = the same with the stage built again by itself (--force S --only S), as its floor is measured"
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_runs_leftovers_go_and_a_recent_clean_up_of_many_files_is_waited_for_where_the_filesystem_needs_it(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Nothing left, no clean-up recorded: nothing removed, no wait.
        settle(root).unwrap();
        assert!(!root.join("cleaned-at").exists());
        assert_eq!(wait_before_measuring(root, 1_000_000), None);
        for d in [
            "floor-scratch/1",
            "set-aside-4242/cutouts",
            "data/BENCH_FIELD",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            for k in 0..3 {
                std::fs::write(root.join(d).join(format!("f{k}")), b"x").unwrap();
            }
        }
        // A few files: removed and counted, too few to wait for.
        settle(root).unwrap();
        assert!(!root.join("floor-scratch").exists());
        assert!(!root.join("set-aside-4242").exists());
        assert!(
            root.join("data/BENCH_FIELD/f0").is_file(),
            "the field stays"
        );
        let marker = std::fs::read_to_string(root.join("cleaned-at")).unwrap();
        assert_eq!(marker.split_whitespace().nth(1), Some("6"), "{marker}");
        // Many files removed 100 s ago: the rest of the window, only where ext4 has no
        // journal; a few, long enough ago, or a marker that is not a time and a count: none.
        let skips = skips_recently_deleted(root);
        let wait_at = |marker: &str, now: u64| {
            std::fs::write(root.join("cleaned-at"), marker).unwrap();
            wait_before_measuring(root, now)
        };
        assert_eq!(
            wait_at("1000000 40000\n", 1_000_100),
            skips.then_some((RECENTLY_DELETED_S - 100, 100))
        );
        assert_eq!(wait_at("1000000 6\n", 1_000_100), None);
        assert_eq!(
            wait_at("1000000 40000", 1_000_000 + RECENTLY_DELETED_S),
            None
        );
        assert_eq!(wait_at("yesterday 40000", 1_000_100), None);
        assert_eq!(wait_at("1000000", 1_000_100), None);
    }
}
