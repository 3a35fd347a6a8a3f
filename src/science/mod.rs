//! Numerical kernels with no I/O: RM synthesis and the RMSF, RM-CLEAN, the Stokes I model fit,
//! and the small fitting and statistics helpers they share.
//!
//! Owns: the science, as arrays in and arrays out, following the RM-Tools conventions restated in
//! `../shared/science/rm-synthesis-and-frion.md`.
//! Must never: open a file, read a parameter file or know about targets.

pub mod background;
pub mod complexity;
pub mod flags;
pub mod frion;
pub mod geomag;
pub mod ionex;
pub mod ionosphere;
pub mod lane_fft;
pub mod layout;
pub mod lm;
pub mod nufft;
pub mod primary_beam;
pub mod regrid;
pub mod resolution;
pub mod rm3d;
pub mod rm_clean;
pub mod rm_synthesis;
pub mod sigma_add;
pub mod simd;
pub mod sky;
pub mod stats;
pub mod stokes_i;

/// Reads a JSON null as NaN: a summary written with serde_json has its NaN values as null
/// (JSON has no NaN), and reading it back must give the same numbers. Used as
/// `#[serde(deserialize_with = "crate::science::nan_if_null")]` on the summaries' float fields;
/// a missing field is still an error.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Speed of light in m/s (exact, as astropy's constant).
pub const C_M_S: f64 = 299_792_458.0;
