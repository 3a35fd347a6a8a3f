//! Builtin actions: the stages the engine can run in-process, their contracts, and the context
//! each receives.
//!
//! Owns: the [`Builtin`] trait, [`ActionCtx`] with its typed parameter accessors, [`builtins`]
//! and [`registry`] (contracts and known parameters, for the rule loader). Each stage lives in its
//! own file, declares its contract (parameters from `params.rs`, input slots, outputs) and does
//! the I/O around a science kernel.
//! Must never: touch the cache, rename outputs into place or decide staleness (the engine does);
//! write anywhere but the temporary output paths it is given; fall back to a default of its own
//! for a parameter (defaults live in `params.rs`, once).
//! Invariant: a builtin's outputs are a deterministic function of its inputs' bytes, its
//! parameters and its unit; its contract's `version` is bumped whenever that function changes.

pub mod beams;
pub mod catalogue;
pub mod cutout;
pub mod error;
pub mod fix_ms;
pub mod frion;
pub mod imager;
pub mod io;
pub mod linmos;
pub mod merge;
pub mod params;
pub mod products;
pub mod rm1d;
pub mod rm3d;
pub mod rmclean;
pub mod rmsynth;
pub mod spectrum;
pub mod stamp;
pub mod validate;

use std::path::{Path, PathBuf};

pub use error::StageError;

use crate::config::params::{ParamSpec, ParamValue};
use crate::rules::{Contract, Registry};

/// Everything a builtin may look at while running one target.
pub struct ActionCtx<'a> {
    /// The field directory (inputs are relative to it).
    pub field_dir: &'a Path,
    /// The target id, for messages.
    pub target: &'a str,
    /// The unit's template variables (field, beam, source, component, foreach variables).
    pub vars: &'a [(String, String)],
    /// The parameters the rule declares, sorted by name.
    pub params: &'a [(String, ParamValue)],
    /// Input slots in declared order: (slot name, absolute paths).
    pub inputs: Vec<(&'a str, Vec<PathBuf>)>,
    /// Outputs: (output name, the temporary path to write, the label of the finer unit for an
    /// `each:` output).
    pub outputs: Vec<(&'a str, PathBuf, Option<&'a str>)>,
}

impl ActionCtx<'_> {
    /// The value of a unit variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A unit variable the rule's unit always has (`component` for a component rule).
    pub fn unit_var(&self, name: &str) -> Result<&str, StageError> {
        self.var(name)
            .ok_or_else(|| self.contract_error(format!("the target has no unit variable '{name}'")))
    }
    /// The files of an input slot (none when the slot is absent or conditional and off).
    pub fn input(&self, slot: &str) -> &[PathBuf] {
        self.inputs
            .iter()
            .find(|(k, _)| *k == slot)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    fn contract_error(&self, what: String) -> StageError {
        StageError::Contract {
            target: self.target.to_string(),
            what,
        }
    }

    /// The value of declared parameter `spec`: the contract check makes every rule pass every
    /// parameter its builtin declares, so a missing one is a bug, reported, never defaulted.
    fn value(&self, spec: &ParamSpec) -> Result<&ParamValue, StageError> {
        self.params
            .iter()
            .find(|(k, _)| k == spec.name)
            .map(|(_, v)| v)
            .ok_or_else(|| self.contract_error(format!("parameter '{}' was not passed", spec.name)))
    }
    fn typed<T>(
        &self,
        spec: &ParamSpec,
        get: impl Fn(&ParamValue) -> Option<T>,
    ) -> Result<Option<T>, StageError> {
        match self.value(spec)? {
            ParamValue::Null if spec.nullable => Ok(None),
            v => get(v).map(Some).ok_or_else(|| {
                self.contract_error(format!(
                    "parameter '{}' is {} where {} was declared",
                    spec.name,
                    v.display(),
                    spec.ty.name()
                ))
            }),
        }
    }
    fn required<T>(&self, spec: &ParamSpec, v: Option<T>) -> Result<T, StageError> {
        v.ok_or_else(|| self.contract_error(format!("parameter '{}' is null", spec.name)))
    }
    /// A float parameter.
    pub fn f64(&self, spec: &ParamSpec) -> Result<f64, StageError> {
        let v = self.typed(spec, ParamValue::as_f64)?;
        self.required(spec, v)
    }
    /// A nullable float parameter.
    pub fn opt_f64(&self, spec: &ParamSpec) -> Result<Option<f64>, StageError> {
        self.typed(spec, ParamValue::as_f64)
    }
    /// An integer parameter.
    pub fn i64(&self, spec: &ParamSpec) -> Result<i64, StageError> {
        let v = self.typed(spec, ParamValue::as_i64)?;
        self.required(spec, v)
    }
    /// A nullable integer parameter.
    pub fn opt_i64(&self, spec: &ParamSpec) -> Result<Option<i64>, StageError> {
        self.typed(spec, ParamValue::as_i64)
    }
    /// A boolean parameter.
    pub fn bool(&self, spec: &ParamSpec) -> Result<bool, StageError> {
        let v = self.typed(spec, ParamValue::as_bool)?;
        self.required(spec, v)
    }
    /// A string parameter.
    pub fn str(&self, spec: &ParamSpec) -> Result<&str, StageError> {
        match self.value(spec)? {
            ParamValue::Str(s) => Ok(s),
            v => Err(self.contract_error(format!(
                "parameter '{}' is {} where a string was declared",
                spec.name,
                v.display()
            ))),
        }
    }
    /// A nullable string parameter.
    pub fn opt_str(&self, spec: &ParamSpec) -> Result<Option<&str>, StageError> {
        match self.value(spec)? {
            ParamValue::Null if spec.nullable => Ok(None),
            _ => self.str(spec).map(Some),
        }
    }
}

/// A stage the engine runs in-process.
pub trait Builtin: Sync {
    /// What the builtin reads and writes, and its name and version.
    fn contract(&self) -> &'static Contract;
    /// Write every output to its temporary path. An `Err` fails the target with that message.
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError>;
    /// The name rules use (`builtin: NAME`).
    fn name(&self) -> &'static str {
        self.contract().name
    }
    /// Bumped whenever the outputs for the same inputs and parameters change.
    fn version(&self) -> u32 {
        self.contract().version
    }
}

static STAMP: stamp::Stamp = stamp::Stamp;
static BEAMS: beams::Beams = beams::Beams;
static CUTOUT: cutout::Cutout = cutout::Cutout;
static LINMOS: linmos::Linmos = linmos::Linmos;
static FRION: frion::Frion = frion::Frion;
static MERGE: merge::Merge = merge::Merge;
static IMAGER: imager::Imager = imager::Imager;
static WSCLEAN: imager::Wsclean = imager::Wsclean;
static FIX_MS: fix_ms::FixMs = fix_ms::FixMs;
static RMSYNTH: rmsynth::RmSynth = rmsynth::RmSynth;
static RMCLEAN: rmclean::RmClean = rmclean::RmClean;
static CATALOGUE: catalogue::Catalogue = catalogue::Catalogue;
static RMSYNTH3D: rm3d::RmSynth3d = rm3d::RmSynth3d;
static RMCLEAN3D: rm3d::RmClean3d = rm3d::RmClean3d;
static VALIDATE: validate::Validate = validate::Validate;
static SPECTRUM: spectrum::Spectrum = spectrum::Spectrum;

/// Every builtin.
pub fn builtins() -> &'static [&'static dyn Builtin] {
    static REG: [&dyn Builtin; 16] = [
        &STAMP, &BEAMS, &FIX_MS, &WSCLEAN, &IMAGER, &CUTOUT, &LINMOS, &FRION, &MERGE, &RMSYNTH,
        &RMCLEAN, &RMSYNTH3D, &RMCLEAN3D, &CATALOGUE, &VALIDATE, &SPECTRUM,
    ];
    &REG
}

/// What the rule loader checks rules against: every builtin's contract and every known
/// parameter.
pub fn registry() -> Registry<'static> {
    static CONTRACTS: std::sync::OnceLock<Vec<&'static Contract>> = std::sync::OnceLock::new();
    Registry {
        builtins: CONTRACTS.get_or_init(|| builtins().iter().map(|b| b.contract()).collect()),
        params: params::ALL,
    }
}

/// The builtin named `name`.
pub fn builtin(name: &str) -> Option<&'static dyn Builtin> {
    builtins().iter().copied().find(|b| b.name() == name)
}

/// Per builtin: (name, its stage module, the digest of that module's code and everything it
/// calls in this crate), made by `build.rs` with `crate::code_digest`.
pub static STAGE_CODE: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/stage_code.rs"));

/// The digest of the code of the builtin named `name` (see [`STAGE_CODE`]).
/// `ARRAKIS_TEST_CODE_CHANGED=NAME[,NAME]` stands for an edit of those builtins' code (for
/// tests: it can only make targets run again, never skip one).
pub fn builtin_code(name: &str) -> Option<String> {
    static CHANGED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let changed = CHANGED.get_or_init(|| {
        std::env::var("ARRAKIS_TEST_CODE_CHANGED")
            .map(|v| v.split(',').map(|c| c.trim().to_string()).collect())
            .unwrap_or_default()
    });
    let (_, _, digest) = STAGE_CODE.iter().find(|(n, _, _)| *n == name)?;
    let edited = if changed.iter().any(|c| c == name) {
        "+edited"
    } else {
        ""
    };
    Some(format!("{digest}{edited}"))
}

/// The implementation part of the key of the builtin named `name`: its VERSION and the digest
/// of its code, so a change to a stage's code reruns that stage (and what reads it) without a
/// VERSION bump.
pub fn builtin_version(name: &str) -> Option<String> {
    let b = builtin(name)?;
    Some(match builtin_code(name) {
        Some(code) => format!("{}+{code}", b.version()),
        None => b.version().to_string(),
    })
}
