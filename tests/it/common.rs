//! Helpers shared by the integration tests: a small field layout, the engine test rules, and
//! running the real binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The engine test rule directory.
pub fn engine_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/engine_rules")
}

/// Write a field with `side`×`side` beams 0.8 deg apart and `islands` islands spread over them,
/// the first `doubles` of which have two components. Beam cubes are small text files.
pub fn make_field(
    datadir: &Path,
    name: &str,
    side: usize,
    islands: usize,
    doubles: usize,
) -> PathBuf {
    let dir = datadir.join(name);
    std::fs::create_dir_all(dir.join("catalogue")).unwrap();
    let mut y = format!("field: {name}\nbeams:\n");
    let mut beam = 0;
    for r in 0..side {
        for c in 0..side {
            y.push_str(&format!(
                "  - {{beam: {beam}, ra_deg: {}, dec_deg: {}}}\n",
                180.0 + 0.8 * c as f64,
                -30.0 + 0.8 * r as f64
            ));
            for s in ["i", "q", "u"] {
                std::fs::write(
                    dir.join(format!("cube.{s}.beam{beam:02}.txt")),
                    format!("cube {s} beam {beam}\n"),
                )
                .unwrap();
            }
            beam += 1;
        }
    }
    std::fs::write(dir.join("field.yaml"), y).unwrap();
    let span = 0.8 * (side.max(1) - 1) as f64;
    let mut isl = String::from("Source_ID,RA,Dec\n");
    let mut comp = String::from("Gaussian_ID,Source_ID,RA,Dec\n");
    for i in 0..islands {
        let f = (i as f64 + 0.5) / islands as f64;
        let ra = 180.0 + span * f;
        let dec = -30.0 + span * ((i * 7919) % islands) as f64 / islands as f64;
        let id = format!("J{i:04}");
        isl.push_str(&format!("{id},{ra},{dec}\n"));
        comp.push_str(&format!("{id}_c1,{id},{ra},{dec}\n"));
        if i < doubles {
            comp.push_str(&format!("{id}_c2,{id},{ra},{dec}\n"));
        }
    }
    std::fs::write(dir.join("catalogue/islands.csv"), isl).unwrap();
    std::fs::write(dir.join("catalogue/components.csv"), comp).unwrap();
    dir
}

/// A row for a simulated field's `components.csv`, in the order of its `header` line: the given
/// id, island, tile, position (deg), flux (mJy) and axes (arcsec); the columns not named here
/// are left empty.
#[allow(clippy::too_many_arguments)]
pub fn component_row(
    header: &str,
    id: &str,
    island: &str,
    tile: &str,
    ra: f64,
    dec: f64,
    flux_mjy: f64,
    axes: (f64, f64),
) -> String {
    let cells: Vec<String> = header
        .trim()
        .split(',')
        .map(|h| match h {
            "Gaussian_ID" => id.to_string(),
            "Source_ID" | "Source_Name" => island.to_string(),
            "Tile_ID" => tile.to_string(),
            "RA" => ra.to_string(),
            "Dec" => dec.to_string(),
            "Total_flux_Gaussian" | "Peak_flux" => flux_mjy.to_string(),
            "Maj" => axes.0.to_string(),
            "Min" => axes.1.to_string(),
            "PA" => "0".to_string(),
            "S_Code" => "S".to_string(),
            "N_Gaus" => "1".to_string(),
            _ => String::new(),
        })
        .collect();
    format!("{}\n", cells.join(","))
}

/// A command for the real binary with `cache` as its cache.
pub fn arrakis(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_arrakis"));
    c.arg("--cache").arg(cache);
    c.env_remove("ARRAKIS_CACHE").env_remove("ARRAKIS_RULES");
    // The catalogue's header carries the date it was made: fixed here, so builds made on either
    // side of midnight are the same bytes (tests compare them).
    c.env("SOURCE_DATE_EPOCH", "1796342400");
    c
}

/// Run `arrakis build FIELD` with the engine rules and extra args; returns the output and the
/// report as id → status.
pub fn build(
    cache: &Path,
    datadir: &Path,
    field: &str,
    extra: &[&str],
) -> (Output, BTreeMap<String, String>) {
    let report = datadir.join(format!("report-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let out = arrakis(cache)
        .args(["build", field, "--datadir"])
        .arg(datadir)
        .arg("--rules")
        .arg(engine_rules())
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()
        .unwrap();
    let statuses = read_report(&report);
    (out, statuses)
}

/// id → status from a report file (empty when there is none).
pub fn read_report(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Ids with status `status`.
pub fn with_status(m: &BTreeMap<String, String>, status: &str) -> Vec<String> {
    m.iter()
        .filter(|(_, s)| *s == status)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether a file in a field directory is arrakis's bookkeeping rather than an input or output:
/// a temporary output, the record of which cache built the field, the field's lock.
pub fn is_bookkeeping(name: &str) -> bool {
    name.starts_with(".arrakis-tmp-") || name == ".arrakis-cache" || name == ".arrakis.lock"
}

/// Every regular file under `dir` (relative path → bytes), skipping temporary outputs, reports
/// and the cache.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().is_file() && !is_bookkeeping(&name) {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .to_string();
            m.insert(rel, std::fs::read(e.path()).unwrap());
        }
    }
    m
}

/// stdout + stderr as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The reference venv's Python (`ARRAKIS_PYTHON`, which `.ci/run` sets; else the venv it makes).
pub fn python() -> PathBuf {
    let p = std::env::var_os("ARRAKIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/arrakis-venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: the science tests compare against Python references (RM-Tools, astropy, rmtable); run `bash .ci/run` once (it makes the venv) or set ARRAKIS_PYTHON",
        p.display()
    );
    p
}

/// Rows of a CSV file as maps from column name to text.
pub fn read_csv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = rdr
        .headers()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    rdr.records()
        .map(|r| {
            headers
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(|s| s.to_string()))
                .collect()
        })
        .collect()
}

/// A numeric column of a row (NaN if absent or not a number).
pub fn f(row: &std::collections::HashMap<String, String>, k: &str) -> f64 {
    row.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// The stages with at least one target that ran, in name order.
pub fn stages_that_ran(r: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = with_status(r, "ran")
        .iter()
        .map(|id| id.split('/').next().unwrap().to_string())
        .collect();
    set.into_iter().collect()
}

/// Build a field with the real rules, returning the output and the report's statuses.
pub fn build_real(
    cache: &Path,
    data: &Path,
    field: &str,
    extra: &[&str],
) -> (
    std::process::Output,
    std::collections::BTreeMap<String, String>,
) {
    let report = data.join("pipeline-report.json");
    let _ = std::fs::remove_file(&report);
    let out = arrakis(cache)
        .args(["build", field, "--quiet", "--datadir"])
        .arg(data)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()
        .unwrap();
    (out, read_report(&report))
}

/// The field's catalogue rows by `cat_id`.
pub fn catalogue_by_id(
    dir: &Path,
    field: &str,
) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    read_csv(&dir.join(format!("{field}.catalogue.csv")))
        .into_iter()
        .map(|row| (row["cat_id"].clone(), row))
        .collect()
}

/// An executable at `path` that runs the Python script `script` (under tests/py) with the
/// reference venv's Python: a stand-in for an external program.
pub fn python_stub(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    std::fs::write(
        path,
        format!(
            "#!{}\nexec(open({:?}).read())\n",
            python().display(),
            script
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Targets with an Ok record whose outputs are all in place, read straight from the cache.
pub fn recorded_ok(
    cache: &Path,
    field: &str,
    field_dir: &Path,
) -> std::collections::BTreeSet<String> {
    let c = arrakis::cache::Cache::open(cache, false)
        .unwrap_or_else(|e| panic!("the cache must open cleanly after a kill: {e}"));
    let mut out = std::collections::BTreeSet::new();
    for (f, id) in c.target_ids().unwrap() {
        if f != field {
            continue;
        }
        let rec = c.get_target(&f, &id).unwrap().unwrap();
        if rec.status == arrakis::cache::RunStatus::Ok
            && rec.outputs.iter().all(|o| field_dir.join(&o.path).exists())
        {
            out.insert(id);
        }
    }
    out
}

/// Send SIGINT (Ctrl-C) or SIGKILL to a running build and wait for it; a Ctrl-C'd build must exit
/// 130 (running targets finished, nothing new started) or 0 (it was done).
pub fn interrupt(
    child: &mut std::process::Child,
    sigint: bool,
    trial: usize,
) -> std::process::ExitStatus {
    if sigint {
        // A Ctrl-C is a press after the command has started: wait for its handler (a SIGINT
        // before `main` has run is the signal's default action in any program).
        wait_for_sigint_handler(child.id());
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(
            child.id() as i32,
            if sigint { libc::SIGINT } else { libc::SIGKILL },
        );
    }
    let status = child.wait().unwrap();
    if sigint {
        assert!(
            matches!(status.code(), Some(130) | Some(0)),
            "trial {trial}: SIGINT exit {status:?}"
        );
    }
    status
}

/// Wait (up to 10 s) until process `pid` catches SIGINT (`SigCgt` in /proc/PID/status), or has
/// ended.
fn wait_for_sigint_handler(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
        {
            return;
        }
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
        match caught {
            Some(mask) if mask & (1 << (libc::SIGINT - 1)) != 0 => return,
            None => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

/// The one-node Slurm is drained by one test; every other test that uses the cluster holds
/// this shared while it does.
static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Use the test cluster alongside other tests.
pub fn cluster_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|e| e.into_inner())
}

/// Have the test cluster to oneself (to drain its node).
pub fn cluster_exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    CLUSTER.write().unwrap_or_else(|e| e.into_inner())
}
