//! Builtin actions: the registry of stages the engine can run in-process, and the context each
//! receives.
//!
//! Owns: the [`Builtin`] trait, [`ActionCtx`] and [`registry`]. Each stage lives in its own file
//! and does the I/O around a science kernel.
//! Must never: touch the cache, rename outputs into place or decide staleness (the engine does);
//! write anywhere but the temporary output paths it is given.
//! Invariant: a builtin's outputs are a deterministic function of its inputs' bytes, its
//! parameters and its unit; its `VERSION` is bumped whenever that function changes.

pub mod beams;
pub mod catalogue;
pub mod cutout;
pub mod frion;
pub mod imager;
pub mod io;
pub mod linmos;
pub mod rm1d;
pub mod rm3d;
pub mod rmclean;
pub mod rmsynth;
pub mod stamp;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::config::params::ParamValue;

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
    /// The value of a declared parameter.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    /// The files of an input slot.
    pub fn input(&self, slot: &str) -> &[PathBuf] {
        self.inputs
            .iter()
            .find(|(k, _)| *k == slot)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }
}

/// A stage the engine runs in-process.
pub trait Builtin: Sync {
    /// The name rules use (`builtin: NAME`).
    fn name(&self) -> &'static str;
    /// Bumped whenever the outputs for the same inputs and parameters change.
    fn version(&self) -> u32;
    /// Write every output to its temporary path. An `Err` fails the target with that message.
    fn run(&self, ctx: &ActionCtx) -> Result<(), String>;
}

static STAMP: stamp::Stamp = stamp::Stamp;
static BEAMS: beams::Beams = beams::Beams;
static CUTOUT: cutout::Cutout = cutout::Cutout;
static LINMOS: linmos::Linmos = linmos::Linmos;
static FRION: frion::Frion = frion::Frion;
static IMAGER: imager::Imager = imager::Imager;
static RMSYNTH: rmsynth::RmSynth = rmsynth::RmSynth;
static RMCLEAN: rmclean::RmClean = rmclean::RmClean;
static CATALOGUE: catalogue::Catalogue = catalogue::Catalogue;
static RMSYNTH3D: rm3d::RmSynth3d = rm3d::RmSynth3d;
static RMCLEAN3D: rm3d::RmClean3d = rm3d::RmClean3d;
static VALIDATE: validate::Validate = validate::Validate;

/// Every builtin, by name.
pub fn registry() -> &'static [&'static dyn Builtin] {
    static REG: [&dyn Builtin; 12] = [
        &STAMP, &BEAMS, &IMAGER, &CUTOUT, &LINMOS, &FRION, &RMSYNTH, &RMCLEAN, &RMSYNTH3D,
        &RMCLEAN3D, &CATALOGUE, &VALIDATE,
    ];
    &REG
}

/// The builtin named `name`.
pub fn builtin(name: &str) -> Option<&'static dyn Builtin> {
    registry().iter().copied().find(|b| b.name() == name)
}

/// Names of all builtins (for rule validation).
pub fn builtin_names() -> Vec<&'static str> {
    registry().iter().map(|b| b.name()).collect()
}

/// VERSION of the builtin named `name`.
pub fn builtin_version(name: &str) -> Option<u32> {
    builtin(name).map(|b| b.version())
}
