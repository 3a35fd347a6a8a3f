//! Numerical kernels with no I/O: RM synthesis and the RMSF, RM-CLEAN, the Stokes I model fit,
//! and the small fitting and statistics helpers they share.
//!
//! Owns: the science, as arrays in and arrays out, following the RM-Tools conventions restated in
//! `../shared/science/rm-synthesis-and-frion.md`.
//! Must never: open a file, read a parameter file or know about targets.

pub mod frion;
pub mod lane_fft;
pub mod lm;
pub mod nufft;
pub mod primary_beam;
pub mod rm3d;
pub mod rm_clean;
pub mod rm_synthesis;
pub mod stats;
pub mod stokes_i;

/// Speed of light in m/s (exact, as astropy's constant).
pub const C_M_S: f64 = 299_792_458.0;
