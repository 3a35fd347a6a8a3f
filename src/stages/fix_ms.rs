//! `fix_ms` (per beam, `imaging: true` unless `skip_fix_ms`): the beam's ASKAP measurement set
//! made ready for WSClean as a new measurement set (fixms's `fix_ms_dir` and `fix_ms_corrs`:
//! the beam's own pointing in FIELD, the correlations rotated by the polarisation-axis angle P
//! and scaled to WSClean's I = (XX+YY)/2 into `data_column`), stored as one tar file the imager
//! unpacks into its scratch directory (where Arrakis copies each set before imaging anyway),
//! and P with it. The work on the tables is python-casacore's (the script `fix_ms.py`, compiled
//! in), run with `casacore_python`.
//! Must never: write into the original measurement set; leave its scratch directory behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::io::{out_path, write_text};
use super::params::{CASACORE_PYTHON, DATA_COLUMN, MS_GLOB_PATTERN};
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};

static CONTRACT: Contract = Contract {
    name: "fix_ms",
    version: 1,
    params: &[&MS_GLOB_PATTERN, &CASACORE_PYTHON, &DATA_COLUMN],
    inputs: &[SlotSpec::required(
        "ms",
        "the measurement sets of the beam (one must match ms_glob_pattern)",
    )],
    outputs: &["ms", "info"],
    open: false,
};

/// The script, written next to the scratch set when it runs.
const SCRIPT: &str = include_str!("fix_ms.py");

/// The one measurement set of this beam among the slot's directories: the one whose name matches
/// `ms_glob_pattern` (and, from the rule's glob, holds `beamNN`).
pub fn beam_ms<'a>(ctx: &'a ActionCtx, slot: &str) -> Result<&'a PathBuf, StageError> {
    let beam = ctx.unit_var("beam")?;
    let pattern = ctx.str(&MS_GLOB_PATTERN)?;
    let matcher = glob::Pattern::new(pattern).map_err(|e| {
        StageError::data(format!(
            "ms_glob_pattern '{pattern}' is not a glob pattern: {e}"
        ))
    })?;
    let ms: Vec<&PathBuf> = ctx
        .input(slot)
        .iter()
        .filter(|m| {
            m.file_name()
                .is_some_and(|n| matcher.matches(&n.to_string_lossy()))
        })
        .collect();
    match ms.as_slice() {
        [one] => Ok(*one),
        [] => Err(StageError::data(format!(
            "no measurement set for beam {beam} in {}: it must match ms_glob_pattern '{pattern}' and have 'beam{beam}' in its name",
            ctx.field_dir.display()
        ))),
        many => Err(StageError::data(format!(
            "{} measurement sets match beam {beam} and ms_glob_pattern '{pattern}': {:?}; keep one",
            many.len(),
            many
        ))),
    }
}

/// A directory packed as an uncompressed tar with fixed headers (names sorted, no times or
/// owners), so the same set gives the same bytes.
pub fn pack_dir(dir: &Path, name: &str, out: &Path) -> Result<(), StageError> {
    let file = std::fs::File::create(out).map_err(|e| StageError::io(out, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(|e| StageError::data(format!("{}: {e}", dir.display())))?;
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
        let inside = Path::new(name).join(rel);
        if e.file_type().is_dir() {
            tar.append_dir(&inside, e.path())
        } else {
            tar.append_path_with_name(e.path(), &inside)
        }
        .map_err(|err| StageError::io(out, err))?;
    }
    tar.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all())
        .map_err(|e| StageError::io(out, e))
}

/// Unpack a set packed by [`pack_dir`] into `into`: the set's directory.
pub fn unpack(tar_path: &Path, into: &Path) -> Result<PathBuf, StageError> {
    let file = std::fs::File::open(tar_path).map_err(|e| StageError::io(tar_path, e))?;
    let mut a = tar::Archive::new(std::io::BufReader::new(file));
    let mut top: Option<PathBuf> = None;
    for entry in a.entries().map_err(|e| StageError::io(tar_path, e))? {
        let mut entry = entry.map_err(|e| StageError::io(tar_path, e))?;
        let path = entry
            .path()
            .map_err(|e| StageError::io(tar_path, e))?
            .to_path_buf();
        if top.is_none() {
            top = path.components().next().map(|c| into.join(c.as_os_str()));
        }
        entry
            .unpack_in(into)
            .map_err(|e| StageError::io(tar_path, e))?;
    }
    top.ok_or_else(|| StageError::file(tar_path, None, "an empty archive: no measurement set"))
}

/// `fix_ms` (per beam).
pub struct FixMs;

impl Builtin for FixMs {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let ms = beam_ms(ctx, "ms")?;
        let beam = ctx.unit_var("beam")?;
        let python = ctx.str(&CASACORE_PYTHON)?;
        let column = ctx.str(&DATA_COLUMN)?;
        let scratch = ctx
            .field_dir
            .join(format!(".arrakis-fix_ms-beam{beam}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| StageError::io(&scratch, e))?;
        let result = (|| {
            let script = scratch.join("fix_ms.py");
            write_text(&script, SCRIPT)?;
            let name = ms
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| format!("beam{beam}.ms"));
            let fixed = scratch.join(&name);
            let out = Command::new(python)
                .arg(&script)
                .arg(ms)
                .arg(&fixed)
                .arg(column)
                .output()
                .map_err(|e| {
                    StageError::Program(format!(
                        "cannot run '{python}' for fix_ms ({e}); install Python with python-casacore (Debian: apt-get install python3-casacore) or set casacore_python to one that has it"
                    ))
                })?;
            if !out.status.success() {
                return Err(StageError::Program(format!(
                    "fix_ms on {} failed ({}):\n  {}",
                    ms.display(),
                    out.status,
                    super::io::output_tail(&out, 12)
                )));
            }
            let info = String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with('{'))
                .map(str::to_string)
                .ok_or_else(|| {
                    StageError::Program(format!(
                        "fix_ms on {} printed no result:\n  {}",
                        ms.display(),
                        super::io::output_tail(&out, 12)
                    ))
                })?;
            pack_dir(&fixed, &name, out_path(ctx, "ms")?)?;
            write_text(out_path(ctx, "info")?, &(info + "\n"))
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}
