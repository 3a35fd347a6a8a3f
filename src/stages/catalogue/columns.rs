//! Every column of the catalogue, in Arrakis's output order, with its unit, UCD, type and
//! description: the one table the CSV, FITS and VOTable writers and the README's column list
//! follow. Definitions: `../shared/science/catalogue.md` §1; where arrakis differs from the
//! Python Arrakis on purpose, the description says so ("arrakis:").

/// How a column is stored (the RMTable standard's dtypes where it has the column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// float64.
    F64,
    /// float32 (the RMTable blanks Arrakis leaves at the standard's type).
    F32,
    /// int64.
    I64,
    /// int32.
    I32,
    /// Boolean.
    Bool,
    /// String.
    Str,
}

/// One column's metadata.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    /// Name.
    pub name: &'static str,
    /// Unit as written in FITS (empty: none).
    pub unit: &'static str,
    /// IVOA UCD.
    pub ucd: &'static str,
    /// Storage type.
    pub kind: Kind,
    /// What it holds.
    pub description: &'static str,
}

const fn c(
    name: &'static str,
    unit: &'static str,
    ucd: &'static str,
    kind: Kind,
    description: &'static str,
) -> ColumnSpec {
    ColumnSpec {
        name,
        unit,
        ucd,
        kind,
        description,
    }
}

use Kind::{Bool, Str, F32, F64, I32, I64};

const FLUX_I: &str = "phot.flux.density;phys.polarization.stokes.I";

/// The columns Arrakis writes, in its order (its `catalog` column, a duplicate of catalog_name
/// that breaks its own VOTable writer, is left out), then arrakis's own.
pub static COLUMNS: &[ColumnSpec] = &[
    c("cat_id", "", "meta.id;meta.main", Str, "Gaussian ID"),
    c("ra", "deg", "pos.eq.ra;meta.main", F64, "Right ascension (J2000) of the component fit"),
    c("dec", "deg", "pos.eq.dec;meta.main", F64, "Declination (J2000) of the component fit"),
    c("ra_err", "arcsec", "stat.error;pos.eq.ra", F64, "Error in right ascension"),
    c("dec_err", "arcsec", "stat.error;pos.eq.dec", F64, "Error in declination"),
    c("total_I_flux", "Jy", "phot.flux.density;arith.sum;phys.polarization.stokes.I", F64, "Total Stokes I flux density of the Gaussian (source finder)"),
    c("total_I_flux_err", "Jy", "stat.error;phot.flux.density;arith.sum;phys.polarization.stokes.I", F64, "Error in total_I_flux"),
    c("peak_I_flux", "Jy/beam", "phot.flux.density;stat.max;phys.polarization.stokes.I", F64, "Peak Stokes I flux density of the Gaussian (source finder)"),
    c("peak_I_flux_err", "Jy/beam", "stat.error;phot.flux.density;stat.max;phys.polarization.stokes.I", F64, "Error in peak_I_flux"),
    c("maj_axis", "arcsec", "phys.angSize.smajAxis", F64, "FWHM major axis of the fitted (convolved) Gaussian"),
    c("maj_axis_err", "arcsec", "stat.error;phys.angSize.smajAxis", F64, "Error in maj_axis"),
    c("min_axis", "arcsec", "phys.angSize.sminAxis", F64, "FWHM minor axis of the fitted (convolved) Gaussian"),
    c("min_axis_err", "arcsec", "stat.error;phys.angSize.sminAxis", F64, "Error in min_axis"),
    c("pa", "deg", "phys.angSize;pos.posAng", F64, "Position angle of the fitted Gaussian"),
    c("pa_err", "deg", "stat.error;phys.angSize;pos.posAng", F64, "Error in pa"),
    c("dc_maj_axis", "arcsec", "phys.angSize.smajAxis", F64, "FWHM major axis of the deconvolved Gaussian"),
    c("dc_maj_axis_err", "arcsec", "stat.error;phys.angSize.smajAxis", F64, "Error in dc_maj_axis"),
    c("dc_min_axis", "arcsec", "phys.angSize.sminAxis", F64, "FWHM minor axis of the deconvolved Gaussian"),
    c("dc_min_axis_err", "arcsec", "stat.error;phys.angSize.sminAxis", F64, "Error in dc_min_axis"),
    c("dc_pa", "deg", "phys.angSize;pos.posAng", F64, "Position angle of the deconvolved Gaussian"),
    c("dc_pa_err", "deg", "stat.error;phys.angSize;pos.posAng", F64, "Error in dc_pa"),
    c("stokesI_err", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.stokes.I", F64, "Noise of the band-averaged Stokes I: mean channel noise / sqrt(channels)"),
    c("stokesQ_err", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.stokes.Q", F64, "Noise of the band-averaged Stokes Q: mean channel noise / sqrt(channels)"),
    c("stokesU_err", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.stokes.U", F64, "Noise of the band-averaged Stokes U: mean channel noise / sqrt(channels)"),
    c("stokesI_bkg", "Jy/beam", FLUX_I, F64, "Mean annulus background of Stokes I over the used channels"),
    c("stokesQ_bkg", "Jy/beam", "phot.flux.density;phys.polarization.stokes.Q", F64, "Mean annulus background of Stokes Q over the used channels"),
    c("stokesU_bkg", "Jy/beam", "phot.flux.density;phys.polarization.stokes.U", F64, "Mean annulus background of Stokes U over the used channels"),
    c("beamdist", "deg", "pos.angDistance;instr.beam", F64, "Angular distance from the tile centre"),
    c("N_Gaus", "", "meta.number", I64, "Number of Gaussians in the source (source finder)"),
    c("source_id", "", "meta.id", Str, "Source (island) ID"),
    c("tile_id", "", "meta.id", Str, "Tile the source was found in"),
    c("sbid", "", "meta.id", Str, "ASKAP scheduling block ID of the observation"),
    c("start_time", "d", "time.start", F64, "Start of the observation (MJD)"),
    c("separation_tile_centre", "deg", "pos.angDistance", F64, "Angular distance from the tile centre"),
    c("s_code", "", "meta.code.class", Str, "Source structure code of the source finder (S: single, M: multiple Gaussians in one island, C: several islands)"),
    c("rm", "rad/m2", "phys.polarization.rotMeasure;meta.main", F64, "Rotation measure: Faraday depth of the peak of the cleaned FDF"),
    c("rm_err", "rad/m2", "stat.error;phys.polarization.rotMeasure", F64, "Error in rm: RMSF FWHM x FDF noise / (2 x peak)"),
    c("polint", "Jy/beam", "phot.flux.density;phys.polarization.linear", F64, "Polarised intensity at the cleaned FDF peak, bias-corrected (George+2012)"),
    c("polint_err", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.linear", F64, "Error in polint (theoretical FDF noise)"),
    c("stokesQ", "Jy/beam", "phot.flux.density;phys.polarization.stokes.Q", F64, "Stokes Q of the cleaned FDF peak at the reference wavelength"),
    c("stokesU", "Jy/beam", "phot.flux.density;phys.polarization.stokes.U", F64, "Stokes U of the cleaned FDF peak at the reference wavelength"),
    c("polangle", "deg", "pos.posAng;phys.polarization.linear", F64, "Polarisation angle at the reference wavelength"),
    c("polangle_err", "deg", "stat.error;pos.posAng;phys.polarization.linear", F64, "Error in polangle"),
    c("derot_polangle", "deg", "pos.posAng;phys.polarization.linear", F64, "Polarisation angle derotated to zero wavelength"),
    c("derot_polangle_err", "deg", "stat.error;pos.posAng;phys.polarization.linear", F64, "Error in derot_polangle"),
    c("fracpol", "", "phys.polarization.linear", F64, "Fractional polarisation polint / stokesI. arrakis: from the cleaned FDF, like polint (Arrakis takes the dirty one; see fracpol_dirty)"),
    c("reffreq_pol", "Hz", "em.freq;phys.polarization", F64, "Reference frequency of the polarisation values (c / sqrt(refwave_sq_pol))"),
    c("reffreq_beam", "Hz", "em.freq;instr.beam", F64, "Frequency of the beam size (as reffreq_pol)"),
    c("reffreq_I", "Hz", "em.freq;phys.polarization.stokes.I", F64, "Frequency of stokesI (as reffreq_pol)"),
    c("fdf_noise_th", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.linear", F64, "Theoretical noise of the FDF"),
    c("rmsf_fwhm", "rad/m2", "instr.rmsf;stat.fwhm", F64, "FWHM of the RMSF (fitted when fit_rmsf is on)"),
    c("refwave_sq_pol", "m2", "em.wl;arith.squared", F64, "Reference wavelength squared of the polarisation values"),
    c("stokesI", "Jy/beam", FLUX_I, F64, "Stokes I model at reffreq_I (1 when the Stokes I fit failed)"),
    c("stokesI_fit_flag_is_negative", "", "meta.code.qual", Bool, "The Stokes I model is negative somewhere in the band"),
    c("stokesI_fit_flag_is_close_to_zero", "", "meta.code.qual", Bool, "The Stokes I model is below the channel noise somewhere in the band"),
    c("stokesI_fit_flag_is_not_finite", "", "meta.code.qual", Bool, "The Stokes I fitter met non-finite values. arrakis: decoded by bit (Arrakis compares thresholds)"),
    c("stokesI_fit_flag_is_not_normal", "", "meta.code.qual", Bool, "The Stokes I fitter stopped abnormally (iteration limit, tolerances, failure)"),
    c("stokesI_chi2_red", "", "stat.fit.chi2;phot.flux.density;phys.polarization.stokes.I", F64, "Reduced chi-square of the Stokes I model"),
    c("snr_polint", "", "stat.snr;phot.flux.density;phys.polarization.linear", F64, "Signal-to-noise of the cleaned FDF peak (not bias-corrected) over fdf_noise_th"),
    c("minfreq", "Hz", "em.freq;stat.min", F64, "Lowest frequency of a used channel"),
    c("maxfreq", "Hz", "em.freq;stat.max", F64, "Highest frequency of a used channel"),
    c("channelwidth", "Hz", "em.freq;instr.bandwidth", F64, "Median channel width"),
    c("Nchan", "", "meta.number", I64, "Number of channels used"),
    c("rm_width", "rad/m2", "phys.polarization.rotMeasure;stat.fwhm", F64, "Second moment of the clean components (Faraday complexity)"),
    c("stokesI_model_coef", "", "stat.fit.param;phys.polarization.stokes.I", Str, "Stokes I model coefficients C5..C0 (highest order first)"),
    c("stokesI_model_coef_err", "", "stat.error;stat.fit.param;phys.polarization.stokes.I", Str, "Errors of the Stokes I model coefficients. arrakis: from the analytic Jacobian"),
    c("stokesI_model_order", "", "meta.number;stat.fit", F64, "Order of the Stokes I model"),
    c("noise_chan", "Jy/beam", "stat.error;instr.det.noise", F64, "Median per-channel noise of Q and U"),
    c("fdf_noise_mad", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.linear", F64, "Noise of the cleaned FDF from the median absolute deviation"),
    c("fdf_noise_rms", "Jy/beam", "stat.error;phot.flux.density;phys.polarization.linear", F64, "Theoretical FDF noise (as fdf_noise_th)"),
    c("beam_maj", "deg", "pos.angResolution;instr.beam;phys.angSize.smajAxis", F64, "Restoring beam major axis FWHM of the mosaic"),
    c("beam_min", "deg", "pos.angResolution;instr.beam;phys.angSize.sminAxis", F64, "Restoring beam minor axis FWHM of the mosaic"),
    c("beam_pa", "deg", "pos.angResolution;instr.beam;pos.posAng", F64, "Restoring beam position angle, in [0, 180)"),
    c("l_tile_centre", "deg", "pos.eq.ra;pos.offset", F64, "Offset from the tile centre along the rotated l axis (45 deg + pol axis)"),
    c("m_tile_centre", "deg", "pos.eq.dec;pos.offset", F64, "Offset from the tile centre along the rotated m axis (45 deg + pol axis)"),
    c("sigma_add", "", "stat.stdev;phys.polarization.rotMeasure", F64, "Extra scatter of q and u about the Faraday-thin model, in units of the noise. arrakis: median of sqrt(Q^2+U^2) by quadrature (Arrakis: 1000 unseeded draws)"),
    c("sigma_add_err", "", "stat.error;stat.stdev;phys.polarization.rotMeasure", F64, "Standard deviation of sigma_add"),
    c("snr_flag", "", "meta.code.qual", Bool, "snr_polint below snr_cut"),
    c("leakage_flag", "", "meta.code.qual", Bool, "fracpol below the leakage envelope at the source's distance from the tile centre"),
    c("channel_flag", "", "meta.code.qual", Bool, "Fewer than half the catalogue's largest number of channels"),
    c("stokesI_fit_flag", "", "meta.code.qual", Bool, "Stokes I model negative, below the noise, or failed. arrakis: a failed fit (I = 1) is flagged"),
    c("complex_sigma_add_flag", "", "meta.code", Bool, "sigma_add above 10 x sigma_add_err"),
    c("complex_M2_CC_flag", "", "meta.code", Bool, "rm_width above rmsf_fwhm"),
    c("local_rm_flag", "", "meta.code", Bool, "rm a 3-sigma outlier among its neighbours (Voronoi bins of good sources). arrakis: computed (always False in Arrakis)"),
    c("is_blended_flag", "", "meta.code", Bool, "Another Gaussian of the same source lies within the beam"),
    c("blend_ratio", "", "phot.flux.density;arith.ratio", F64, "total_I_flux / (total_I_flux + that of the blended neighbours)"),
    c("N_blended", "", "meta.number", I64, "Number of Gaussians blended with this one"),
    c("spectral_index", "", "spect.index", F64, "Spectral index (C1 of the log Stokes I model; blank for a linear model)"),
    c("spectral_index_err", "", "stat.error;spect.index", F64, "Error in spectral_index"),
    c("int_time", "s", "time.duration;obs.exposure", F64, "Integration time of the observation"),
    c("epoch", "d", "time.epoch", F64, "Middle of the observation (MJD)"),
    c("l", "deg", "pos.galactic.lon", F64, "Galactic longitude"),
    c("b", "deg", "pos.galactic.lat", F64, "Galactic latitude"),
    c("pos_err", "deg", "stat.error;pos", F64, "Position error: the larger of ra_err and dec_err. arrakis: per row, in deg (Arrakis: one value for the table, arcsec)"),
    c("rm_method", "", "meta.note", Str, "RM determination method"),
    c("telescope", "", "instr.tel", Str, "Telescope"),
    c("pol_bias", "", "meta.note", Str, "Polarisation bias correction method"),
    c("ionosphere", "", "meta.note", Str, "Ionospheric correction method. arrakis: None when the correction was off"),
    c("flux_type", "", "meta.note", Str, "Flux measurement type"),
    c("aperture", "deg", "phys.angSize", F64, "Integration aperture (0: single-pixel spectra)"),
    c("leakage", "", "phys.polarization.linear", F64, "Leakage envelope at separation_tile_centre, floored at 0"),
    c("complex_flag", "", "meta.code", Bool, "complex_sigma_add_flag or complex_M2_CC_flag"),
    c("rm_width_err", "rad/m2", "stat.error;phys.polarization.rotMeasure;stat.fwhm", F32, "Error in rm_width (not measured)"),
    c("fracpol_err", "", "stat.error;phys.polarization.linear", F64, "Error in fracpol: polint_err / stokesI. arrakis: measured (blank in Arrakis)"),
    c("stokesV", "Jy", "phot.flux.density;phys.polarization.stokes.V", F32, "Stokes V (not measured)"),
    c("stokesV_err", "Jy", "stat.error;phot.flux.density;phys.polarization.stokes.V", F32, "Error in stokesV (not measured)"),
    c("obs_interval", "d", "time.interval", F64, "Span of the observation (int_time in days). arrakis: filled (blank in Arrakis)"),
    c("Ncomp", "", "meta.number", I32, "Number of RM components"),
    c("complex_test", "", "meta.note", Str, "Faraday complexity test. arrakis: complex_flag also uses the second moment (complex_M2_CC_flag)"),
    c("catalog_name", "", "meta.note", Str, "Name of the catalogue"),
    c("dataref", "", "meta.bib.bibcode", Str, "Data reference"),
    c("type", "", "src.class", Str, "Source classification"),
    c("notes", "", "meta.note", Str, "Notes"),
    // arrakis's own.
    c("fracpol_dirty", "", "phys.polarization.linear", F64, "Fractional polarisation from the dirty FDF (Arrakis's fracpol)"),
    c("dirty_rm", "rad/m2", "phys.polarization.rotMeasure", F64, "Faraday depth of the dirty FDF peak"),
    c("dirty_polint", "Jy/beam", "phot.flux.density;phys.polarization.linear", F64, "Bias-corrected polarised intensity of the dirty FDF peak"),
    c("stokesI_fit_stat", "", "meta.code.qual", I64, "RM-Tools IfitStat: fitter status + 64 (below noise) + 128 (negative); 9 failed"),
    c("rmsynth_failed", "", "meta.code.qual", Bool, "The spectrum could not be measured (see failure_reason); every measured value is blank"),
    c("failure_reason", "", "meta.note", Str, "Why the spectrum could not be measured"),
];

/// The number of columns Arrakis writes that the catalogue has (its 114 less `catalog`).
pub const ARRAKIS_COLUMNS: usize = 113;

/// The column called `name`.
pub fn spec(name: &str) -> Option<&'static ColumnSpec> {
    COLUMNS.iter().find(|c| c.name == name)
}

/// The column table as Markdown (`CATALOGUE.md` is this text; a test keeps them equal).
pub fn markdown() -> String {
    let mut s = String::from(
        "# The catalogue's columns\n\nGenerated from `src/stages/catalogue/columns.rs` (a test keeps this file equal to it).\nColumns 1-113 are Arrakis's, in its order; the rest are arrakis's own. \"arrakis:\" marks a\ndefinition that differs from the Python Arrakis on purpose.\n\n| # | name | unit | UCD | type | description |\n|---:|---|---|---|---|---|\n",
    );
    for (i, c) in COLUMNS.iter().enumerate() {
        let kind = match c.kind {
            Kind::F64 => "float64",
            Kind::F32 => "float32",
            Kind::I64 => "int64",
            Kind::I32 => "int32",
            Kind::Bool => "bool",
            Kind::Str => "string",
        };
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {kind} | {} |\n",
            i + 1,
            c.name,
            c.unit,
            c.ucd,
            c.description.replace('|', "/")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_md_is_the_column_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/CATALOGUE.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == markdown(),
            "CATALOGUE.md is out of date: regenerate it with `cargo run -- columns > CATALOGUE.md`"
        );
    }

    #[test]
    fn names_are_unique_and_arrakis_columns_come_first() {
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names[0], "cat_id");
        assert_eq!(names[ARRAKIS_COLUMNS - 1], "notes");
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
    }
}
