//! Running one target's action with atomic outputs.
//!
//! Owns: running a builtin or an external command into temporary outputs (named by
//! `crate::atomic`), rendering of external command argv templates, and the rename of finished
//! outputs into place.
//! Must never: pass anything through a shell; leave a temporary file behind after a failure it
//! survives; rename an output into place before the action has succeeded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::atomic::{free_bytes, temp_path_for};
use crate::cache::OutputRecord;
use crate::config::params::ParamValue;
use crate::graph::InputFile;
use crate::hash::{hash_file, StatSig};
use crate::rules::spec::Action;
use crate::stages::{builtin, ActionCtx};

use super::Engine;
use crate::stages::StageError;

/// Why a target's action failed (recorded as its error text).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The builtin failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// An external command could not be rendered or run, or failed.
    #[error("{0}")]
    Command(String),
    /// The action succeeded but an output could not be checked or moved into place.
    #[error("{0}")]
    Output(String),
    /// The action names something this binary does not have.
    #[error("{0}")]
    Unknown(String),
    /// The action failed on a (nearly) full filesystem.
    #[error("{source}\n  the filesystem holding {} has only {free} bytes free: the disk is full (no space left on device); free some space and build again (nothing half-written was kept)", dir.display())]
    DiskFull {
        /// What the action reported.
        source: Box<ActionError>,
        /// The output directory.
        dir: PathBuf,
        /// Bytes free there.
        free: u64,
    },
}

/// A failed action whose output directory is (nearly) out of space: say so, whatever the tool
/// reported (cfitsio says only "error writing to FITS file"). Nearly: under 64 MiB free (a
/// share of the disk would misfire on big disks, where a few percent is still hundreds of GB).
fn with_full_disk_note(e: ActionError, outputs: &[(&str, PathBuf, Option<&str>)]) -> ActionError {
    for (_, tmp, _) in outputs {
        let Some(dir) = tmp.parent() else { continue };
        if let Some(free) = free_bytes(dir) {
            if free < 64 << 20 {
                return ActionError::DiskFull {
                    source: Box::new(e),
                    dir: dir.to_path_buf(),
                    free,
                };
            }
        }
    }
    e
}

/// The outcome of running one target.
pub struct RunResult {
    /// The outputs, in place, with digests and signatures; `Err` on failure.
    pub outputs: Result<Vec<OutputRecord>, ActionError>,
    /// Wall time of the action.
    pub seconds: f64,
}

fn tail(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_end();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// What an argv template is rendered with: the target's variables, parameters and files, and
/// the response files `{list:...}` placeholders made (removed when this is dropped, that is once
/// the command is done, whatever happened).
struct Rendering<'a> {
    vars: &'a [(String, String)],
    field_dir: &'a Path,
    params: &'a [(String, ParamValue)],
    inputs: &'a [(&'a str, Vec<PathBuf>)],
    outputs: &'a [(&'a str, PathBuf, Option<&'a str>)],
    lists: Vec<PathBuf>,
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        for l in &self.lists {
            let _ = std::fs::remove_file(l);
        }
    }
}

impl Rendering<'_> {
    /// A path as the command gets it: relative to the field directory, where it runs (short
    /// argument lists), or absolute when it lies outside.
    fn shown(&self, p: &Path) -> String {
        p.strip_prefix(self.field_dir)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or(p)
            .to_string_lossy()
            .to_string()
    }

    /// The files of `in:X` or `out:X`.
    fn files_of(&self, name: &str) -> Option<Vec<String>> {
        if let Some(i) = name.strip_prefix("in:") {
            return self
                .inputs
                .iter()
                .find(|(k, _)| *k == i)
                .map(|(_, v)| v.iter().map(|p| self.shown(p)).collect());
        }
        if let Some(o) = name.strip_prefix("out:") {
            return Some(
                self.outputs
                    .iter()
                    .filter(|(k, _, _)| *k == o)
                    .map(|(_, p, _)| self.shown(p))
                    .collect(),
            );
        }
        None
    }

    /// Write the files of `{list:in:X}`/`{list:out:X}` one per line into a temporary file beside
    /// the target's first output (a response file, for lists too long for a command line).
    fn list_file(&mut self, name: &str, files: &[String]) -> Result<String, ActionError> {
        let beside = self
            .outputs
            .first()
            .map(|(_, p, _)| p.with_file_name(format!("{}.list", name.replace(':', "-"))))
            .ok_or_else(|| {
                ActionError::Command(format!("'{{list:{name}}}' in a rule with no outputs"))
            })?;
        let path = crate::atomic::temp_path_for(&beside);
        let mut text = files.join("\n");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| {
            ActionError::Command(format!("cannot write the list {}: {e}", path.display()))
        })?;
        self.lists.push(path.clone());
        Ok(self.shown(&path))
    }

    /// Render one argv template element. Whole-element `{in:X}`/`{out:X}` expand to one
    /// argument per file; inside a longer string they must name exactly one file.
    /// `{list:in:X}`/`{list:out:X}` are the path of a file listing them.
    fn arg(&mut self, arg: &str) -> Result<Vec<String>, ActionError> {
        if arg.starts_with('{') && arg.ends_with('}') && !arg.starts_with("{{") {
            if let Some(files) = self.files_of(&arg[1..arg.len() - 1]) {
                return Ok(files);
            }
        }
        let mut out = String::new();
        let mut rest = arg;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i] as char;
            if rest[i + 1..].starts_with(c) {
                out.push(c);
                rest = &rest[i + 2..];
                continue;
            }
            let end = rest[i..]
                .find('}')
                .ok_or_else(|| ActionError::Command(format!("unclosed '{{' in '{arg}'")))?
                + i;
            let name = &rest[i + 1..end];
            let value = if let Some(listed) = name.strip_prefix("list:") {
                let files = self
                    .files_of(listed)
                    .ok_or_else(|| ActionError::Command(format!("no files for '{{{name}}}'")))?;
                self.list_file(listed, &files)?
            } else if let Some(files) = self.files_of(name) {
                if files.len() != 1 {
                    return Err(ActionError::Command(format!(
                        "'{{{name}}}' stands for {} files inside '{arg}'; use it as a whole argument",
                        files.len()
                    )));
                }
                files[0].clone()
            } else if let Some(p) = name.strip_prefix("param:") {
                self.params
                    .iter()
                    .find(|(k, _)| k == p)
                    .map(|(_, v)| v.display())
                    .unwrap_or_default()
            } else if name == "fielddir" {
                self.field_dir.to_string_lossy().to_string()
            } else {
                self.vars
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| ActionError::Command(format!("no value for '{{{name}}}'")))?
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(vec![out])
    }
}

/// Everything needed to run one target's action, without the graph or the cache: what the
/// local executor runs directly and what a Slurm batch manifest carries to `arrakis worker`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TargetJob {
    /// Target id.
    pub id: String,
    /// Rule name.
    pub rule: String,
    /// The field directory (absolute).
    pub field_dir: PathBuf,
    /// The action.
    pub action: JobAction,
    /// The unit's template variables.
    pub vars: Vec<(String, String)>,
    /// The parameters the rule declares, sorted by name.
    pub params: Vec<(String, ParamValue)>,
    /// Input slots in declared order: (slot name, absolute paths).
    pub inputs: Vec<(String, Vec<PathBuf>)>,
    /// Outputs in declared order.
    pub outputs: Vec<JobOutput>,
}

/// A target's action.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum JobAction {
    /// A builtin stage by name.
    Builtin(String),
    /// An argv template.
    Command(Vec<String>),
}

/// One output of a job.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct JobOutput {
    /// The rule's output name.
    pub name: String,
    /// Path relative to the field directory.
    pub rel: String,
    /// The finer unit's label of an `each:` output.
    pub each: Option<String>,
}

/// The job for target `ti` of the engine's graph.
pub fn job_for(engine: &Engine, ti: usize) -> Result<TargetJob, ActionError> {
    let g = engine.graph;
    let t = &g.targets[ti];
    let info = &g.rules[t.rule as usize];
    let field_dir = g.field_dir.as_path();
    let inputs = t
        .inputs
        .iter()
        .map(|slot| {
            let files =
                slot.files
                    .iter()
                    .map(|f| match f {
                        InputFile::Source(rel) => field_dir.join(rel),
                        InputFile::Output { target, output } => field_dir
                            .join(&g.targets[*target as usize].outputs[*output as usize].rel),
                    })
                    .filter(|p| !slot.optional || p.exists())
                    .collect();
            (info.input_names[slot.spec as usize].clone(), files)
        })
        .collect();
    let outputs = t
        .outputs
        .iter()
        .enumerate()
        .map(|(k, o)| JobOutput {
            name: info.output_names[o.spec as usize].clone(),
            rel: o.rel.clone(),
            each: g.each_label(ti, k).map(str::to_string),
        })
        .collect();
    let action = match engine.rules.get(&info.name).map(|r| &r.action) {
        Some(Action::Builtin(name)) => JobAction::Builtin(name.clone()),
        Some(Action::Command(argv)) => JobAction::Command(argv.clone()),
        None => {
            return Err(ActionError::Unknown(format!(
                "rule '{}' is not loaded",
                info.name
            )))
        }
    };
    Ok(TargetJob {
        id: t.id.clone(),
        rule: info.name.clone(),
        field_dir: field_dir.to_path_buf(),
        action,
        vars: g.vars(ti),
        params: info.params.clone(),
        inputs,
        outputs,
    })
}

/// Run target `ti` of the engine's graph (see [`run_job`]).
pub fn run_target(engine: &Engine, ti: usize) -> RunResult {
    match job_for(engine, ti) {
        Ok(job) => run_job(&job),
        Err(e) => RunResult {
            outputs: Err(e),
            seconds: 0.0,
        },
    }
}

/// Run a job: create output directories, run the action into temporary paths, then hash and
/// rename every output into place. On failure every temporary file is removed.
pub fn run_job(job: &TargetJob) -> RunResult {
    let start = Instant::now();
    let field_dir = job.field_dir.as_path();
    let inputs: Vec<(&str, Vec<PathBuf>)> = job
        .inputs
        .iter()
        .map(|(n, f)| (n.as_str(), f.clone()))
        .collect();
    let mut outputs: Vec<(&str, PathBuf, Option<&str>)> = Vec::with_capacity(job.outputs.len());
    // Outputs of one target mostly share a directory: make each directory once.
    let mut made: Option<PathBuf> = None;
    for o in &job.outputs {
        let fin = field_dir.join(&o.rel);
        if let Some(dir) = fin.parent().filter(|d| made.as_deref() != Some(*d)) {
            made = Some(dir.to_path_buf());
            if let Err(e) = std::fs::create_dir_all(dir) {
                return RunResult {
                    outputs: Err(ActionError::Output(format!(
                        "cannot create directory {}: {e}",
                        dir.display()
                    ))),
                    seconds: start.elapsed().as_secs_f64(),
                };
            }
        }
        outputs.push((o.name.as_str(), temp_path_for(&fin), o.each.as_deref()));
    }
    // A writer that holds an output's bytes whole (the FITS writer) leaves their digest, so
    // the output is not read back to hash it.
    let _asked: Vec<_> = outputs
        .iter()
        .map(|(_, tmp, _)| crate::hash::witness::want(tmp))
        .collect();
    let result = match &job.action {
        JobAction::Builtin(name) => match builtin(name) {
            Some(b) => {
                let ctx = ActionCtx {
                    field_dir,
                    target: &job.id,
                    vars: &job.vars,
                    params: &job.params,
                    inputs: inputs.clone(),
                    outputs: outputs.clone(),
                };
                b.run(&ctx).map_err(ActionError::from)
            }
            None => Err(ActionError::Unknown(format!(
                "builtin '{name}' is not part of this arrakis"
            ))),
        },
        JobAction::Command(argv) => {
            run_command(argv, &job.vars, field_dir, &job.params, &inputs, &outputs)
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let cleanup = |outputs: &[(&str, PathBuf, Option<&str>)]| {
        for (_, tmp, _) in outputs {
            let _ = std::fs::remove_file(tmp);
        }
    };
    if let Err(e) = result {
        // Look at the free space before the partial outputs are removed.
        let e = with_full_disk_note(e, &outputs);
        cleanup(&outputs);
        return RunResult {
            outputs: Err(e),
            seconds,
        };
    }
    let mut records = Vec::with_capacity(outputs.len());
    for ((name, tmp, _), o) in outputs.iter().zip(&job.outputs) {
        let fin = field_dir.join(&o.rel);
        let step = || -> Result<OutputRecord, ActionError> {
            let digest = written_digest(tmp).map_err(|e| {
                ActionError::Output(match e.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "the action succeeded but did not write output '{name}' ({})",
                        o.rel
                    ),
                    _ => format!("cannot read output '{name}' {}: {e}", tmp.display()),
                })
            })?;
            std::fs::rename(tmp, &fin).map_err(|e| {
                ActionError::Output(format!(
                    "cannot move output into place at {}: {e}",
                    fin.display()
                ))
            })?;
            let sig = StatSig::of_path(&fin)
                .map_err(|e| ActionError::Output(format!("cannot stat {}: {e}", fin.display())))?
                .ok_or_else(|| {
                    ActionError::Output(format!(
                        "{} vanished right after it was written",
                        fin.display()
                    ))
                })?;
            Ok(OutputRecord {
                name: name.to_string(),
                path: o.rel.clone(),
                digest,
                sig,
            })
        };
        match step() {
            Ok(r) => records.push(r),
            Err(e) => {
                cleanup(&outputs);
                return RunResult {
                    outputs: Err(e),
                    seconds,
                };
            }
        }
    }
    RunResult {
        outputs: Ok(records),
        seconds,
    }
}

/// The digest of an output just written: the one its writer left for the bytes it wrote, if
/// the file still has the signature it had then; otherwise read and hashed. (Test builds
/// check a left digest against the file.)
fn written_digest(tmp: &Path) -> std::io::Result<crate::hash::Digest> {
    let left = StatSig::of_path(tmp)?.and_then(|sig| crate::hash::witness::take(tmp, sig));
    match left {
        Some(d) => {
            debug_assert_eq!(Some(d), hash_file(tmp).ok(), "{}", tmp.display());
            Ok(d)
        }
        None => hash_file(tmp),
    }
}

fn run_command(
    argv: &[String],
    vars: &[(String, String)],
    field_dir: &Path,
    params: &[(String, ParamValue)],
    inputs: &[(&str, Vec<PathBuf>)],
    outputs: &[(&str, PathBuf, Option<&str>)],
) -> Result<(), ActionError> {
    let mut rendering = Rendering {
        vars,
        field_dir,
        params,
        inputs,
        outputs,
        lists: Vec::new(),
    };
    let mut args = Vec::new();
    for a in argv {
        args.extend(rendering.arg(a)?);
    }
    let Some((prog, rest)) = args.split_first() else {
        return Err(ActionError::Command("empty command".into()));
    };
    let out = Command::new(prog)
        .args(rest)
        .current_dir(field_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            ActionError::Command(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("program '{prog}' not found; install it or put it on PATH")
                }
                _ => format!("cannot start '{prog}': {e}"),
            })
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut log = out.stdout.clone();
    log.extend_from_slice(&out.stderr);
    let status = match (
        out.status.code(),
        std::os::unix::process::ExitStatusExt::signal(&out.status),
    ) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    };
    Err(ActionError::Command(format!(
        "command '{prog}' failed ({status}): {}",
        tail(&log, 2000)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_placeholders_become_response_files_removed_after_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let field = dir.path();
        let ins: Vec<PathBuf> = (0..3).map(|k| field.join(format!("in{k}.txt"))).collect();
        for p in &ins {
            std::fs::write(p, "x").unwrap();
        }
        let out = crate::atomic::temp_path_for(&field.join("out.txt"));
        let outputs = vec![("o", out.clone(), None)];
        let inputs = vec![("all", ins.clone())];
        // The command copies the list it is given into the output: the list must hold the
        // inputs, one per line, and be gone afterwards.
        let argv: Vec<String> = ["cp", "{list:in:all}", "{out:o}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        run_command(&argv, &[], field, &[], &inputs, &outputs).unwrap();
        let listed = std::fs::read_to_string(&out).unwrap();
        // Relative to the field directory, where the command runs.
        assert_eq!(listed, "in0.txt\nin1.txt\nin2.txt\n");
        let left: Vec<String> = std::fs::read_dir(field)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".list"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // Inside a longer argument too (`@{list:in:X}`, a response-file flag).
        let mut r = Rendering {
            vars: &[],
            field_dir: field,
            params: &[],
            inputs: &inputs,
            outputs: &outputs,
            lists: Vec::new(),
        };
        let a = r.arg("@{list:in:all}").unwrap();
        assert_eq!(
            a,
            vec![format!(
                "@{}",
                r.lists[0].strip_prefix(field).unwrap().display()
            )]
        );
        let listed = r.lists[0].clone();
        drop(r);
        assert!(!listed.exists(), "removed with the rendering");
    }
}
