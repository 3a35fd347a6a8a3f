//! Every pipeline parameter the builtins and the rule files read: name, type, default, allowed
//! values and help, each written once here. A rule lists the ones it reads by name; the builtin's
//! contract says which it must list; `arrakis params` prints them; `configs/default.yaml` is this
//! table written out (a test keeps it so).
//!
//! Must never: hold a value that depends on a field. Names are Arrakis's (its
//! `.default_config.yaml` and CLI), so its config files work unchanged.
//! Invariant: changing a default here changes the keys of every target whose rule lists the
//! parameter (the resolved value is in the key), and nothing else.

use crate::config::params::{DefaultValue as D, ParamSpec, ParamType as T, Range};

pub use crate::config::{BEAM_RADIUS_DEG, LIMIT};

// --- switches the rule files test (`when:`, input `when:`/`unless:`) --------------------------

/// 1D (per component) or 3D (per island) RM synthesis.
pub static DIMENSION: ParamSpec = ParamSpec::new(
    "dimension",
    T::String,
    D::Str("1d"),
    "RM synthesis per component (1d) or per island pixel (3d)",
)
.choices(&["1d", "3d"]);
/// Make the beam cubes with WSClean.
pub static IMAGING: ParamSpec = ParamSpec::new(
    "imaging",
    T::Bool,
    D::Bool(false),
    "make the beam cubes with WSClean (the imager rule)",
);
/// Skip the ionospheric Faraday-rotation correction (Arrakis's `skip_frion`: its pipeline then
/// runs RM synthesis with `ion = not skip_frion`; Arrakis's own `ion` key is ignored, by Arrakis
/// and here).
pub static SKIP_FRION: ParamSpec = ParamSpec::new(
    "skip_frion",
    T::Bool,
    D::Bool(false),
    "skip the FRion correction: RM synthesis reads the uncorrected Q/U mosaics (Arrakis's skip_frion)",
);

// --- imager (WSClean; Arrakis's imaging defaults) ----------------------------------------------

/// The WSClean program.
pub static WSCLEAN: ParamSpec = ParamSpec::new(
    "wsclean",
    T::String,
    D::Str("wsclean"),
    "the WSClean program",
);
/// Which measurement sets are the beams'.
pub static MS_GLOB_PATTERN: ParamSpec = ParamSpec::new(
    "ms_glob_pattern",
    T::String,
    D::Str("scienceData*_averaged_cal.leakage.ms"),
    "glob of the beams' measurement sets (the name must also hold beamNN)",
);
/// The beam cubes' file names (relative to the field directory; `{stokes}`, `{field}` and
/// `{beam}` are filled in per target).
pub static CUBE_NAME: ParamSpec = ParamSpec::new(
    "cube_name",
    T::String,
    D::Str("image.restored.{stokes}.{field}.contcube.beam{beam}.conv.fits"),
    "file name of a beam cube in the field directory; {stokes} (i, q, u), {field} and {beam} (two digits) are filled in",
);
/// The beam cubes' channel weights files.
pub static WEIGHTS_NAME: ParamSpec = ParamSpec::new(
    "weights_name",
    T::String,
    D::Str("weights.restored.{stokes}.{field}.contcube.beam{beam}.conv.txt"),
    "file name of a beam cube's channel weights in the field directory; {stokes}, {field} and {beam} are filled in",
);
/// Briggs robustness.
pub static ROBUST: ParamSpec = ParamSpec::new(
    "robust",
    T::Float,
    D::Float(-0.5),
    "Briggs robust weighting",
);
/// Output channels.
pub static NCHAN: ParamSpec = ParamSpec::new(
    "nchan",
    T::Int,
    D::Int(36),
    "output channels of the beam cube",
)
.range(Range::at_least(1.0));
/// Image size.
pub static SIZE: ParamSpec =
    ParamSpec::new("size", T::Int, D::Int(6144), "image size (pixels)").range(Range::at_least(1.0));
/// Pixel size.
pub static SCALE: ParamSpec =
    ParamSpec::new("scale", T::Float, D::Float(2.5), "pixel size (arcsec)")
        .range(Range::above(0.0));
/// Major-cycle gain.
pub static MGAIN: ParamSpec = ParamSpec::new("mgain", T::Float, D::Float(0.7), "major-cycle gain")
    .range(Range::open_closed(0.0, 1.0));
/// Minor iterations.
pub static NITER: ParamSpec = ParamSpec::new(
    "niter",
    T::Int,
    D::Int(500_000),
    "maximum minor-cycle iterations",
)
.range(Range::at_least(0.0));
/// Major iterations.
pub static NMITER: ParamSpec = ParamSpec::new(
    "nmiter",
    T::Int,
    D::Int(15),
    "maximum major-cycle iterations (null: WSClean's default)",
)
.nullable()
.range(Range::at_least(0.0));
/// Auto-mask level.
pub static AUTO_MASK: ParamSpec = ParamSpec::new(
    "auto_mask",
    T::Float,
    D::Float(4.0),
    "auto-mask level (sigma; null: none)",
)
.nullable()
.range(Range::above(0.0));
/// Auto-threshold level.
pub static AUTO_THRESHOLD: ParamSpec = ParamSpec::new(
    "auto_threshold",
    T::Float,
    D::Float(1.0),
    "auto-threshold level (sigma; null: none)",
)
.nullable()
.range(Range::above(0.0));
/// Local RMS.
pub static LOCAL_RMS: ParamSpec = ParamSpec::new(
    "local_rms",
    T::Bool,
    D::Bool(true),
    "thresholds against the local RMS",
);
/// Local RMS window.
pub static LOCAL_RMS_WINDOW: ParamSpec = ParamSpec::new(
    "local_rms_window",
    T::Float,
    D::Float(60.0),
    "local RMS window (beams; null: WSClean's default)",
)
.nullable()
.range(Range::above(0.0));
/// Forced mask rounds (Arrakis's modified WSClean only).
pub static FORCE_MASK_ROUNDS: ParamSpec = ParamSpec::new(
    "force_mask_rounds",
    T::Int,
    D::Int(8),
    "mask rounds (needs Arrakis's modified WSClean; null for a stock one)",
)
.nullable()
.range(Range::at_least(0.0));
/// Gridder.
pub static GRIDDER: ParamSpec = ParamSpec::new(
    "gridder",
    T::String,
    D::Str("wgridder"),
    "WSClean gridder (null: WSClean's default)",
)
.nullable();
/// Taper.
pub static TAPER: ParamSpec = ParamSpec::new(
    "taper",
    T::Float,
    D::Null,
    "Gaussian taper (arcsec; null: none)",
)
.nullable()
.range(Range::above(0.0));
/// Minimum uv distance.
pub static MINUV: ParamSpec = ParamSpec::new(
    "minuv",
    T::Float,
    D::Float(200.0),
    "minimum uv distance (wavelengths; null: none)",
)
.nullable()
.range(Range::at_least(0.0));
/// Parallel deconvolution.
pub static PARALLEL: ParamSpec = ParamSpec::new(
    "parallel",
    T::Int,
    D::Null,
    "parallel deconvolution sub-image size (pixels; null: off)",
)
.nullable()
.range(Range::at_least(1.0));
/// Multiscale clean.
pub static MULTISCALE: ParamSpec = ParamSpec::new(
    "multiscale",
    T::Bool,
    D::Bool(false),
    "multiscale CLEAN (Stokes I only)",
);
/// Multiscale scale bias.
pub static MULTISCALE_SCALE_BIAS: ParamSpec = ParamSpec::new(
    "multiscale_scale_bias",
    T::Float,
    D::Null,
    "multiscale scale bias (null: WSClean's default)",
)
.nullable()
.range(Range::above(0.0));
/// Multiscale scales.
pub static MULTISCALE_SCALES: ParamSpec = ParamSpec::new(
    "multiscale_scales",
    T::String,
    D::Str("0,2,4,8,16,32,64,128"),
    "multiscale scales (pixels, comma-separated; Arrakis's file has the typo '...,64,12')",
)
.nullable();
/// Memory limit.
pub static ABSMEM: ParamSpec = ParamSpec::new(
    "absmem",
    T::Float,
    D::Null,
    "WSClean memory limit (GB; null: none)",
)
.nullable()
.range(Range::above(0.0));
/// Data column.
pub static DATA_COLUMN: ParamSpec = ParamSpec::new(
    "data_column",
    T::String,
    D::Str("CORRECTED_DATA"),
    "measurement-set column to image",
);
/// No multi-frequency weighting.
pub static NO_MF_WEIGHTING: ParamSpec = ParamSpec::new(
    "no_mf_weighting",
    T::Bool,
    D::Bool(false),
    "turn off multi-frequency weighting",
);
/// Arrakis's `--skip_fix_ms`.
pub static SKIP_FIX_MS: ParamSpec = ParamSpec::new(
    "skip_fix_ms",
    T::Bool,
    D::Bool(false),
    "image the measurement sets as they are, without fix_ms (their correlations already in WSClean's convention and the beam pointing in FIELD)",
);
/// The Python with python-casacore that fix_ms runs.
pub static CASACORE_PYTHON: ParamSpec = ParamSpec::new(
    "casacore_python",
    T::String,
    D::Str("python3"),
    "the Python (with python-casacore and numpy) fix_ms runs to read and write measurement sets",
);
/// Arrakis's `--psf_cutoff`.
pub static PSF_CUTOFF: ParamSpec = ParamSpec::new(
    "psf_cutoff",
    T::Float,
    D::Null,
    "channels whose restoring beam's major axis exceeds this (arcsec) are blanked, and the rest smoothed to their common beam (null: no cutoff)",
)
.nullable()
.range(Range::above(0.0));
/// Arrakis's `--disable_pol_local_rms`.
pub static DISABLE_POL_LOCAL_RMS: ParamSpec = ParamSpec::new(
    "disable_pol_local_rms",
    T::Bool,
    D::Bool(false),
    "no local-RMS thresholding in the Q/U cleaning",
);
/// Arrakis's `--disable_pol_force_mask_rounds`.
pub static DISABLE_POL_FORCE_MASK_ROUNDS: ParamSpec = ParamSpec::new(
    "disable_pol_force_mask_rounds",
    T::Bool,
    D::Bool(false),
    "no forced mask rounds in the Q/U cleaning",
);

// --- cutout, linmos --------------------------------------------------------------------------

/// Cutout padding.
pub static PAD: ParamSpec = ParamSpec::new(
    "pad",
    T::Float,
    D::Float(3.0),
    "padding around the components, in beam widths (BMAJ)",
)
.range(Range::at_least(0.0));
/// Primary-beam cutoff of linmos.
pub static LINMOS_CUTOFF: ParamSpec = ParamSpec::new(
    "linmos_cutoff",
    T::Float,
    D::Float(0.01),
    "primary-beam level below which a beam is left out of a mosaic",
)
.range(Range::closed(0.0, 1.0));
/// How linmos regrids each beam's cutout onto the mosaic's grid.
pub static LINMOS_REGRID: ParamSpec = ParamSpec::new(
    "linmos_regrid",
    T::String,
    D::Str("cubic"),
    "how linmos interpolates each beam's cutout onto the mosaic's grid: cubic (keeps more of a beam-sized peak between pixels), or yandasoft's linmos.regrid.method default linear (what Arrakis's parsets get), or nearest",
)
.choices(&["cubic", "linear", "nearest"]);
/// Holography model.
pub static HOLOFILE: ParamSpec = ParamSpec::new(
    "holofile",
    T::String,
    D::Null,
    "holography primary-beam model (FITS; null: Gaussian beams)",
)
.nullable();

// --- frion -----------------------------------------------------------------------------------

/// The ionosphere file.
pub static ION_FILE: ParamSpec = ParamSpec::new(
    "ion_file",
    T::String,
    D::Str("ionosphere/rm_ion.txt"),
    "RM_ion time series or FRion prediction file ({source} for one per island)",
);
/// Where the ionospheric prediction comes from.
pub static ION_SOURCE: ParamSpec = ParamSpec::new(
    "ion_source",
    T::String,
    D::Str("file"),
    "where RM_ion comes from: file (ion_file), ionex (predicted per island from the IONEX maps in ionex_dir), frion_predict (FRion's program)",
)
.choices(&["file", "ionex", "frion_predict"]);
/// The IONEX maps.
pub static IONEX_DIR: ParamSpec = ParamSpec::new(
    "ionex_dir",
    T::String,
    D::Str("IONEXdata"),
    "directory of IONEX files (relative to the field directory, or absolute), as Arrakis's {datadir}/IONEXdata",
);
/// Observation start.
pub static ION_START: ParamSpec = ParamSpec::new(
    "ion_start",
    T::String,
    D::Null,
    "observation start, UTC (YYYY-MM-DDTHH:MM:SS; null: scan_start_mjd_s of field.yaml)",
)
.nullable();
/// Observation end.
pub static ION_END: ParamSpec = ParamSpec::new(
    "ion_end",
    T::String,
    D::Null,
    "observation end, UTC (null: scan start + scan_length_s of field.yaml)",
)
.nullable();
/// Ionosphere sampling.
pub static ION_TIMESTEP: ParamSpec = ParamSpec::new(
    "ion_timestep",
    T::Float,
    D::Float(300.0),
    "seconds between ionospheric RM samples",
)
.range(Range::above(0.0));
/// IONEX product.
pub static IONEX_PREFIX: ParamSpec = ParamSpec::new(
    "ionex_prefix",
    T::String,
    D::Str("codg"),
    "IONEX product tried first (then codg, jplg, casg, esag, upcg, igsg, as Arrakis)",
);
/// FRion's prediction program.
pub static FRION_PREDICT: ParamSpec = ParamSpec::new(
    "frion_predict",
    T::String,
    D::Str("frion_predict"),
    "FRion's prediction program",
);

// --- RM synthesis ----------------------------------------------------------------------------

/// Faraday-depth spacing.
pub static DPHI: ParamSpec = ParamSpec::new(
    "dphi",
    T::Float,
    D::Null,
    "Faraday-depth spacing (rad/m^2; null: from n_samples)",
)
.nullable()
.range(Range::above(0.0));
/// Largest Faraday depth.
pub static PHI_MAX: ParamSpec = ParamSpec::new(
    "phi_max",
    T::Float,
    D::Null,
    "largest |Faraday depth| (rad/m^2; null: from the channel width)",
)
.nullable()
.range(Range::above(0.0));
/// Samples across the RMSF.
pub static N_SAMPLES: ParamSpec = ParamSpec::new(
    "n_samples",
    T::Float,
    D::Float(5.0),
    "samples across the RMSF FWHM",
)
.range(Range::above(0.0));
/// Stokes I model order.
pub static POLY_ORD: ParamSpec = ParamSpec::new(
    "poly_ord",
    T::Int,
    D::Int(3),
    "Stokes I model order (negative: choose up to |poly_ord| by AIC)",
)
.range(Range::closed(-5.0, 5.0));
/// Channel weighting.
pub static WEIGHT_TYPE: ParamSpec = ParamSpec::new(
    "weight_type",
    T::String,
    D::Str("variance"),
    "channel weights: inverse variance, or uniform",
)
.choices(&["variance", "uniform"]);
/// Stokes I model.
pub static FIT_FUNCTION: ParamSpec = ParamSpec::new(
    "fit_function",
    T::String,
    D::Str("log"),
    "Stokes I model: polynomial in log space, or linear",
)
.choices(&["log", "linear"]);
/// Fit the RMSF.
pub static FIT_RMSF: ParamSpec = ParamSpec::new(
    "fit_rmsf",
    T::Bool,
    D::Bool(false),
    "fit a Gaussian to the RMSF main lobe for its FWHM",
);
/// No Stokes I.
pub static NO_STOKES_I: ParamSpec = ParamSpec::new(
    "no_stokes_i",
    T::Bool,
    D::Bool(false),
    "synthesise Q/U without dividing by a Stokes I model",
);
/// How the 3D FDF sum is evaluated.
pub static SYNTH3D_METHOD: ParamSpec = ParamSpec::new(
    "synth3d_method",
    T::String,
    D::Str("auto"),
    "3D FDF sum: direct (float32 matrix product), nufft (non-uniform FFT), auto (fewer flops)",
)
.choices(&["auto", "direct", "nufft"]);

// --- RM-CLEAN --------------------------------------------------------------------------------

/// CLEAN cutoff.
pub static CUTOFF: ParamSpec = ParamSpec::new(
    "cutoff",
    T::Float,
    D::Float(-8.0),
    "CLEAN cutoff (negative: multiples of the theoretical FDF noise; positive: absolute)",
);
/// CLEAN iterations.
pub static MAX_ITER: ParamSpec = ParamSpec::new(
    "max_iter",
    T::Int,
    D::Int(10_000),
    "maximum CLEAN iterations",
)
.range(Range::at_least(0.0));
/// CLEAN loop gain.
pub static GAIN: ParamSpec = ParamSpec::new("gain", T::Float, D::Float(0.1), "CLEAN loop gain")
    .range(Range::open_closed(0.0, 1.0));
/// CLEAN window.
pub static WINDOW: ParamSpec = ParamSpec::new(
    "window",
    T::Float,
    D::Null,
    "deeper CLEAN within the RMSF of found components, to this threshold (as cutoff; null: off)",
)
.nullable();

// --- spectra for RM-Tools ------------------------------------------------------------------

/// Write each component's spectrum for RM-Tools.
pub static WRITE_SPECTRA: ParamSpec = ParamSpec::new(
    "write_spectra",
    T::Bool,
    D::Bool(false),
    "write each component's spectrum as RM-Tools' rmsynth1d reads it (_spectrum.dat)",
);
/// What the spectrum files do with rejected channels.
pub static SPECTRUM_BLANKS: ParamSpec = ParamSpec::new(
    "spectrum_blanks",
    T::String,
    D::Str("drop"),
    "channels rmsynth rejected in the spectrum files: left out (drop) or written as NaN (nan)",
)
.choices(&["drop", "nan"]);

// --- catalogue and validation ----------------------------------------------------------------

/// Detection threshold.
pub static SNR_CUT: ParamSpec = ParamSpec::new(
    "snr_cut",
    T::Float,
    D::Float(8.0),
    "polarised SNR below which a component is flagged (snr_flag)",
)
.range(Range::at_least(0.0));
/// Leakage envelope and plot: source selection.
pub static LEAKAGE_SNR: ParamSpec = ParamSpec::new(
    "leakage_snr",
    T::Float,
    D::Float(30.0),
    "band-integrated Stokes I SNR (stokesI/stokesI_err) of the sources the leakage envelope is fitted to and the leakage plot shows",
)
.range(Range::at_least(0.0));
/// Leakage envelope and plot: bins.
pub static LEAKAGE_BINS: ParamSpec = ParamSpec::new(
    "leakage_bins",
    T::Int,
    D::Int(16),
    "distance bins of the fractional-polarisation medians the leakage envelope is fitted to",
)
.range(Range::at_least(1.0));
/// Leakage envelope: polynomial degree.
pub static LEAKAGE_DEGREE: ParamSpec = ParamSpec::new(
    "leakage_degree",
    T::Int,
    D::Int(4),
    "degree of the polynomial leakage envelope (leakage, leakage_flag)",
)
.range(Range::closed(0.0, 10.0));

/// Every parameter above, and the engine's: what a rule may list by name.
pub static ALL: &[&ParamSpec] = &[
    &BEAM_RADIUS_DEG,
    &LIMIT,
    &DIMENSION,
    &IMAGING,
    &SKIP_FRION,
    &WSCLEAN,
    &MS_GLOB_PATTERN,
    &CUBE_NAME,
    &WEIGHTS_NAME,
    &ROBUST,
    &NCHAN,
    &SIZE,
    &SCALE,
    &MGAIN,
    &NITER,
    &NMITER,
    &AUTO_MASK,
    &AUTO_THRESHOLD,
    &LOCAL_RMS,
    &LOCAL_RMS_WINDOW,
    &FORCE_MASK_ROUNDS,
    &GRIDDER,
    &TAPER,
    &MINUV,
    &PARALLEL,
    &MULTISCALE,
    &MULTISCALE_SCALE_BIAS,
    &MULTISCALE_SCALES,
    &ABSMEM,
    &DATA_COLUMN,
    &NO_MF_WEIGHTING,
    &SKIP_FIX_MS,
    &CASACORE_PYTHON,
    &PSF_CUTOFF,
    &DISABLE_POL_LOCAL_RMS,
    &DISABLE_POL_FORCE_MASK_ROUNDS,
    &PAD,
    &LINMOS_CUTOFF,
    &LINMOS_REGRID,
    &HOLOFILE,
    &ION_FILE,
    &ION_SOURCE,
    &IONEX_DIR,
    &ION_START,
    &ION_END,
    &ION_TIMESTEP,
    &IONEX_PREFIX,
    &FRION_PREDICT,
    &DPHI,
    &PHI_MAX,
    &N_SAMPLES,
    &POLY_ORD,
    &WEIGHT_TYPE,
    &FIT_FUNCTION,
    &FIT_RMSF,
    &NO_STOKES_I,
    &SYNTH3D_METHOD,
    &CUTOFF,
    &MAX_ITER,
    &GAIN,
    &WINDOW,
    &WRITE_SPECTRA,
    &SPECTRUM_BLANKS,
    &SNR_CUT,
    &LEAKAGE_SNR,
    &LEAKAGE_BINS,
    &LEAKAGE_DEGREE,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `configs/default.yaml` is `arrakis params --yaml`: the table written out, not a second
    /// place for defaults.
    #[test]
    fn the_default_config_file_is_this_table_written_out() {
        let rules = crate::rules::embedded(&crate::stages::registry()).unwrap();
        let params = crate::session::resolve_params(&rules, &[], &[]).unwrap();
        let want = crate::config::to_yaml(&rules.param_decls(), &params, &rules.param_readers());
        let have = include_str!("../../configs/default.yaml");
        assert!(
            have == want,
            "configs/default.yaml is out of date: run `cargo run -- params --yaml > configs/default.yaml`"
        );
        // And it reads back to the defaults.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("default.yaml");
        std::fs::write(&f, have).unwrap();
        let again = crate::session::resolve_params(&rules, &[f], &[]).unwrap();
        let a: Vec<_> = params.iter().collect();
        let b: Vec<_> = again.iter().collect();
        assert_eq!(a, b);
    }

    #[test]
    fn every_parameter_once_with_a_valid_default() {
        let mut names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a parameter is listed twice");
        for p in ALL {
            assert!(!p.help.is_empty(), "{} has no help", p.name);
            p.decl()
                .default_value()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }
}
