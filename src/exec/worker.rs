//! `arrakis worker`: what a Slurm job runs. It reads a batch manifest, runs each target's action
//! with atomic outputs (the same `run_job` as the local executor), and leaves one receipt per
//! target for the coordinator.
//!
//! Owns: the manifest and receipt formats and their file names.
//! Must never: open the sled cache (only the coordinator does); write a receipt before the
//! target's outputs are renamed into place; write a receipt non-atomically.
//! Invariant: a receipt names the key the coordinator computed for the target, so a receipt
//! from an older build whose key no longer matches is never accepted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::action::{run_job, TargetJob};
use crate::atomic::write_atomic;
use crate::cache::OutputRecord;
use crate::hash::{hash_file, StatSig};

/// A batch of targets for one Slurm job (or one task of a job array).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The fields its targets belong to (for whoever reads the manifest).
    pub fields: Vec<String>,
    /// The targets, each with the key the coordinator computed.
    pub targets: Vec<ManifestEntry>,
}

/// One target of a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The target's key (hex).
    pub key: String,
    /// Where its receipt goes (absolute; receipts are per field).
    pub receipts_dir: PathBuf,
    /// What to run.
    pub job: TargetJob,
}

/// What a worker reports for one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// Target id.
    pub id: String,
    /// The key the manifest gave.
    pub key: String,
    /// The outputs, in place, with digests; or the error.
    pub outputs: Result<Vec<OutputRecord>, super::Failure>,
    /// Seconds the action took.
    pub seconds: f64,
    /// CPU seconds the worker spent on it (running, hashing its outputs).
    #[serde(default)]
    pub cpu_seconds: f64,
    /// The node it ran on.
    pub host: String,
    /// `SLURM_JOB_ID`, when run by Slurm.
    pub job_id: Option<String>,
}

/// The directory receipts of `field` go to, under the cache directory.
pub fn receipts_dir(cache_dir: &Path, field: &str) -> PathBuf {
    cache_dir.join("receipts").join(field)
}

/// The receipt file of target `id` (named by a hash, so any id makes a safe file name).
pub fn receipt_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!(
        "{}.json",
        &blake3::hash(id.as_bytes()).to_hex()[..32]
    ))
}

/// The receipt files in `dir` now (none if it does not exist).
pub fn receipt_files(dir: &Path) -> std::collections::HashSet<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Check the outputs a receipt names: each is in place with the digest the worker recorded.
/// Returns them with signatures taken here (the coordinator's view of the file system).
pub fn verify_outputs(
    field_dir: &Path,
    outs: &[OutputRecord],
) -> Result<Vec<OutputRecord>, super::Failure> {
    use super::Failure;
    let mut verified = Vec::with_capacity(outs.len());
    for o in outs {
        let p = field_dir.join(&o.path);
        let digest = hash_file(&p).map_err(|e| {
            Failure(format!(
                "the worker reported {} but it cannot be read here: {e}",
                p.display()
            ))
        })?;
        if digest != o.digest {
            return Err(Failure(format!(
                "{} does not have the bytes the worker reported (changed since, or a shared file system out of step)",
                p.display()
            )));
        }
        let sig = StatSig::of_path(&p)
            .map_err(|e| Failure(format!("cannot stat {}: {e}", p.display())))?
            .ok_or_else(|| Failure(format!("{} vanished", p.display())))?;
        verified.push(OutputRecord { sig, ..o.clone() });
    }
    Ok(verified)
}

/// Read a receipt; `None` if there is none or it cannot be parsed (a torn write cannot happen:
/// receipts are renamed into place).
pub fn read_receipt(path: &Path) -> Option<Receipt> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Run every target of the manifest at `path` on `parallel` threads; returns how many failed.
/// `{task}` in the path is replaced by `SLURM_ARRAY_TASK_ID` (job arrays).
pub fn run_manifest(
    path: &str,
    parallel: usize,
    local_dir: Option<&str>,
) -> Result<usize, super::SetupError> {
    use super::SetupError;
    let task = std::env::var("SLURM_ARRAY_TASK_ID").unwrap_or_else(|_| "0".into());
    let path = PathBuf::from(path.replace("{task}", &task));
    let text = std::fs::read(&path).map_err(|source| SetupError::Io {
        what: "cannot read the batch manifest",
        path: path.clone(),
        source,
    })?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| SetupError::Format {
        path: path.clone(),
        message: format!("not a batch manifest: {e}"),
    })?;
    if let Some(dir) = local_dir.filter(|d| !d.trim().is_empty()) {
        // Scratch space for external commands (dask's local_directory, e.g. $LOCALDIR).
        if std::fs::create_dir_all(dir).is_ok() {
            std::env::set_var("TMPDIR", dir);
        }
    }
    let dirs: std::collections::BTreeSet<&PathBuf> =
        m.targets.iter().map(|t| &t.receipts_dir).collect();
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
            what: "cannot create",
            path: dir.clone(),
            source,
        })?;
    }
    let host = crate::cache::hostname();
    let job_id = std::env::var("SLURM_JOB_ID").ok();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(parallel.max(1))
        .build()
        .map_err(|e| SetupError::Threads {
            threads: parallel,
            message: e.to_string(),
        })?;
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let fatal = std::sync::Mutex::new(None::<SetupError>);
    pool.scope(|s| {
        for entry in &m.targets {
            let (host, job_id, failed, fatal, dir) =
                (&host, &job_id, &failed, &fatal, &entry.receipts_dir);
            s.spawn(move |_| {
                if super::interrupted() {
                    return;
                }
                let (run, used) = crate::cputime::measure(|| run_job(&entry.job));
                // SIGTERM (scancel, walltime) reaches the actions too: their failure is the
                // job's, not the target's, so no receipt; the coordinator resubmits. A child can
                // die of the signal before our handler has run: give it a moment.
                if run.outputs.is_err() {
                    for _ in 0..10 {
                        if super::interrupted() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
                if super::interrupted() {
                    return;
                }
                if run.outputs.is_err() {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let receipt = Receipt {
                    id: entry.job.id.clone(),
                    key: entry.key.clone(),
                    outputs: run.outputs.map_err(super::Failure::of),
                    seconds: run.seconds,
                    cpu_seconds: used.cpu,
                    host: host.clone(),
                    job_id: job_id.clone(),
                };
                let bytes = serde_json::to_vec(&receipt).unwrap_or_default();
                let p = receipt_path(dir, &entry.job.id);
                if let Err(e) = write_atomic(&p, &bytes) {
                    if let Ok(mut f) = fatal.lock() {
                        f.get_or_insert(SetupError::Io {
                            what: "cannot write receipt",
                            path: p.clone(),
                            source: e,
                        });
                    }
                }
                eprintln!(
                    "arrakis worker: {} {}",
                    entry.job.id,
                    if receipt.outputs.is_ok() {
                        "done"
                    } else {
                        "failed"
                    }
                );
            });
        }
    });
    if let Some(e) = fatal.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(failed.into_inner())
}
