//! `imager` (per beam and Stokes, `imaging: true`, imager cluster config): WSClean on the beam's
//! measurement set with Arrakis's imaging parameters, then the channel images stacked into the
//! beam cube the cutout stage reads, and its LINMOS weights (1 / mad_std² per channel).
//!
//! WSClean runs as an external program (no shell) in a scratch directory inside the field
//! directory, removed afterwards. Decisions: one run per Stokes parameter (Q and U use Arrakis's
//! polarisation settings: squared channel joining, auto-mask and auto-threshold squared and
//! rounded up to 2 decimals, no multiscale); the measurement set of beam NN is the one whose name
//! contains `beamNN` among those `ms_glob_pattern` matches (Arrakis reads FEED1 instead); the
//! channel images are not yet smoothed to a common resolution: the cube carries the largest
//! channel beam as BMAJ/BMIN/BPA.
//! Must never: pass a name through a shell; leave the scratch directory behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::io::{out_path, write_text};
use super::params::{
    ABSMEM, AUTO_MASK, AUTO_THRESHOLD, DATA_COLUMN, FORCE_MASK_ROUNDS, GRIDDER, LOCAL_RMS,
    LOCAL_RMS_WINDOW, MGAIN, MINUV, MS_GLOB_PATTERN, MULTISCALE, MULTISCALE_SCALES,
    MULTISCALE_SCALE_BIAS, NCHAN, NITER, NMITER, NO_MF_WEIGHTING, PARALLEL, ROBUST, SCALE, SIZE,
    TAPER, WSCLEAN,
};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Cube, Image};
use crate::rules::{Contract, SlotSpec};
use crate::science::stats::mad_sigma;

static CONTRACT: Contract = Contract {
    name: "imager",
    version: 1,
    params: &[
        &WSCLEAN,
        &MS_GLOB_PATTERN,
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
    ],
    inputs: &[SlotSpec::required(
        "ms",
        "the measurement sets of the beam (one must match ms_glob_pattern)",
    )],
    outputs: &["cube", "weights"],
    open: false,
};

/// The imaging parameters, by Arrakis's names (`None` = not given, the option is left out).
#[derive(Clone, Debug, Default)]
pub struct ImagingParams {
    /// WSClean program.
    pub wsclean: String,
    /// Briggs robustness.
    pub robust: f64,
    /// Output channels.
    pub nchan: i64,
    /// Image size in pixels.
    pub size: i64,
    /// Pixel size, arcsec.
    pub scale: f64,
    /// Major-cycle gain.
    pub mgain: f64,
    /// Minor iterations.
    pub niter: i64,
    /// Major iterations.
    pub nmiter: Option<i64>,
    /// Auto-mask level (σ).
    pub auto_mask: Option<f64>,
    /// Auto-threshold (σ).
    pub auto_threshold: Option<f64>,
    /// Local RMS thresholding.
    pub local_rms: bool,
    /// Local RMS window (beams).
    pub local_rms_window: Option<f64>,
    /// Forced mask rounds (Arrakis's modified WSClean only).
    pub force_mask_rounds: Option<i64>,
    /// Gridder.
    pub gridder: Option<String>,
    /// Gaussian taper, arcsec.
    pub taper: Option<f64>,
    /// Minimum uv distance, wavelengths.
    pub minuv: Option<f64>,
    /// Parallel deconvolution sub-image size.
    pub parallel: Option<i64>,
    /// Multiscale CLEAN (Stokes I only).
    pub multiscale: bool,
    /// Multiscale scale bias.
    pub multiscale_scale_bias: Option<f64>,
    /// Multiscale scales (comma separated).
    pub multiscale_scales: Option<String>,
    /// Absolute memory limit, GB.
    pub absmem: Option<f64>,
    /// Data column.
    pub data_column: String,
    /// No multi-frequency weighting.
    pub no_mf_weighting: bool,
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `x` rounded up to two decimals (Arrakis's `ceil2` for squared thresholds).
fn ceil2(x: f64) -> f64 {
    (x * 100.0 - 1e-9).ceil() / 100.0
}

/// The WSClean command line for one Stokes parameter of one beam.
pub fn wsclean_argv(
    p: &ImagingParams,
    stokes: &str,
    ms: &Path,
    name: &Path,
    temp: &Path,
) -> Vec<String> {
    let pol = stokes != "i";
    let mut a: Vec<String> = vec![p.wsclean.clone()];
    let mut push = |args: &[&str]| a.extend(args.iter().map(|s| s.to_string()));
    push(&["-name", &name.to_string_lossy()]);
    push(&["-pol", stokes]);
    push(&["-channels-out", &p.nchan.to_string()]);
    push(&["-parallel-gridding", &p.nchan.to_string()]);
    push(&["-join-channels"]);
    if pol {
        push(&["-squared-channel-joining"]);
    }
    push(&["-size", &p.size.to_string(), &p.size.to_string()]);
    push(&["-scale", &format!("{}asec", num(p.scale))]);
    push(&["-weight", "briggs", &num(p.robust)]);
    push(&["-niter", &p.niter.to_string()]);
    if let Some(n) = p.nmiter {
        push(&["-nmiter", &n.to_string()]);
    }
    push(&["-mgain", &num(p.mgain)]);
    let sq = |x: f64| if pol { ceil2(x * x) } else { x };
    if let Some(m) = p.auto_mask {
        push(&["-auto-mask", &num(sq(m))]);
    }
    if let Some(t) = p.auto_threshold {
        push(&["-auto-threshold", &num(sq(t))]);
    }
    if p.local_rms {
        push(&["-local-rms"]);
        if let Some(w) = p.local_rms_window {
            push(&["-local-rms-window", &num(w)]);
        }
    }
    if let Some(n) = p.force_mask_rounds {
        push(&["-force-mask-rounds", &n.to_string()]);
    }
    if let Some(g) = &p.gridder {
        push(&["-gridder", g]);
    }
    if let Some(m) = p.minuv.filter(|m| *m > 0.0) {
        push(&["-minuv-l", &num(m)]);
    }
    if let Some(t) = p.taper {
        push(&["-taper-gaussian", &format!("{}asec", num(t))]);
    }
    if let Some(n) = p.parallel {
        push(&["-parallel-deconvolution", &n.to_string()]);
    }
    if p.multiscale && !pol {
        push(&["-multiscale"]);
        if let Some(b) = p.multiscale_scale_bias {
            push(&["-multiscale-scale-bias", &num(b)]);
        }
        if let Some(s) = &p.multiscale_scales {
            push(&["-multiscale-scales", s]);
        }
    }
    push(&["-mem", "90"]);
    if let Some(m) = p.absmem {
        push(&["-abs-mem", &num(m)]);
    }
    push(&["-data-column", &p.data_column]);
    if p.no_mf_weighting {
        push(&["-no-mf-weighting"]);
    }
    push(&["-no-update-model-required", "-beam-fitting-size", "1.25"]);
    push(&["-temp-dir", &temp.to_string_lossy()]);
    push(&[&ms.to_string_lossy()]);
    a
}

/// The imaging parameters from a target's declared parameters.
pub fn params_of(ctx: &ActionCtx) -> Result<ImagingParams, StageError> {
    let owned = |v: Option<&str>| v.map(str::to_string);
    Ok(ImagingParams {
        wsclean: ctx.str(&WSCLEAN)?.to_string(),
        robust: ctx.f64(&ROBUST)?,
        nchan: ctx.i64(&NCHAN)?,
        size: ctx.i64(&SIZE)?,
        scale: ctx.f64(&SCALE)?,
        mgain: ctx.f64(&MGAIN)?,
        niter: ctx.i64(&NITER)?,
        nmiter: ctx.opt_i64(&NMITER)?,
        auto_mask: ctx.opt_f64(&AUTO_MASK)?,
        auto_threshold: ctx.opt_f64(&AUTO_THRESHOLD)?,
        local_rms: ctx.bool(&LOCAL_RMS)?,
        local_rms_window: ctx.opt_f64(&LOCAL_RMS_WINDOW)?,
        force_mask_rounds: ctx.opt_i64(&FORCE_MASK_ROUNDS)?,
        gridder: owned(ctx.opt_str(&GRIDDER)?),
        taper: ctx.opt_f64(&TAPER)?,
        minuv: ctx.opt_f64(&MINUV)?,
        parallel: ctx.opt_i64(&PARALLEL)?,
        multiscale: ctx.bool(&MULTISCALE)?,
        multiscale_scale_bias: ctx.opt_f64(&MULTISCALE_SCALE_BIAS)?,
        multiscale_scales: owned(ctx.opt_str(&MULTISCALE_SCALES)?),
        absmem: ctx.opt_f64(&ABSMEM)?,
        data_column: ctx.str(&DATA_COLUMN)?.to_string(),
        no_mf_weighting: ctx.bool(&NO_MF_WEIGHTING)?,
    })
}

/// Stack WSClean's channel images `{name}-{c:04}-image.fits` into a cube with a FREQ axis.
pub fn stack_channels(name: &Path, nchan: usize) -> Result<Cube, StageError> {
    let mut data = Vec::new();
    let mut freqs = Vec::new();
    let mut beam = (f64::NEG_INFINITY, 0.0, 0.0);
    let mut first: Option<Image> = None;
    for c in 0..nchan {
        let p = PathBuf::from(format!("{}-{c:04}-image.fits", name.display()));
        let img = Image::read(&p)?;
        let (nx, ny) = (img.shape[0], img.shape.get(1).copied().unwrap_or(1));
        if let Some(f) = &first {
            if (f.shape[0], f.shape[1]) != (nx, ny) {
                return Err(StageError::file(
                    &p,
                    None,
                    format!("{nx}x{ny} pixels, unlike channel 0"),
                ));
            }
        }
        let freq = img
            .header
            .get_f64("CRVAL3")
            .ok_or_else(|| StageError::file(&p, None, "no CRVAL3 (frequency)"))?;
        freqs.push(freq);
        let bmaj = img.header.get_f64("BMAJ").unwrap_or(f64::NAN);
        if bmaj > beam.0 {
            beam = (
                bmaj,
                img.header.get_f64("BMIN").unwrap_or(bmaj),
                img.header.get_f64("BPA").unwrap_or(0.0),
            );
        }
        data.extend_from_slice(&img.data[..nx * ny]);
        if first.is_none() {
            first = Some(img);
        }
    }
    let first = first.ok_or_else(|| StageError::data("no channel images (nchan is 0)"))?;
    let mut header = first.header.clone();
    for k in ["CTYPE4", "CRVAL4", "CDELT4", "CRPIX4", "CUNIT4"] {
        header.remove(k);
    }
    let cdelt = if nchan > 1 {
        freqs[1] - freqs[0]
    } else {
        header.get_f64("CDELT3").unwrap_or(1e6)
    };
    header.set_str("CTYPE3", "FREQ", "");
    header.set_f64("CRVAL3", freqs[0], "Hz");
    header.set_f64("CDELT3", cdelt, "Hz");
    header.set_f64("CRPIX3", 1.0, "");
    header.set_str("CUNIT3", "Hz", "");
    if beam.0.is_finite() {
        header.set_f64("BMAJ", beam.0, "deg (largest channel beam)");
        header.set_f64("BMIN", beam.1, "deg");
        header.set_f64("BPA", beam.2, "deg");
    }
    header.history("arrakis imager: WSClean channel images stacked into a cube");
    Ok(Cube {
        nx: first.shape[0],
        ny: first.shape[1],
        nchan,
        data,
        header,
    })
}

/// `imager` (per beam and Stokes).
pub struct Imager;

impl Builtin for Imager {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let p = params_of(ctx)?;
        let beam = ctx.unit_var("beam")?;
        let stokes = ctx.unit_var("stokes")?;
        let pattern = ctx.str(&MS_GLOB_PATTERN)?;
        let matcher = glob::Pattern::new(pattern).map_err(|e| {
            StageError::data(format!(
                "ms_glob_pattern '{pattern}' is not a glob pattern: {e}"
            ))
        })?;
        let ms: Vec<&PathBuf> = ctx
            .input("ms")
            .iter()
            .filter(|m| {
                m.file_name()
                    .is_some_and(|n| matcher.matches(&n.to_string_lossy()))
            })
            .collect();
        let ms = match ms.as_slice() {
            [one] => *one,
            [] => {
                return Err(StageError::data(format!(
                    "no measurement set for beam {beam} in {}: it must match ms_glob_pattern '{pattern}' and have 'beam{beam}' in its name",
                    ctx.field_dir.display()
                )))
            }
            many => {
                return Err(StageError::data(format!(
                    "{} measurement sets match beam {beam} and ms_glob_pattern '{pattern}': {:?}; keep one",
                    many.len(),
                    many
                )))
            }
        };
        let scratch = ctx.field_dir.join(format!(
            ".arrakis-imager-beam{beam}-{stokes}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&scratch).map_err(|e| StageError::io(&scratch, e))?;
        let result = (|| {
            let name = scratch.join(format!("image.beam{beam}.{stokes}"));
            let argv = wsclean_argv(&p, stokes, ms, &name, &scratch);
            let out = Command::new(&argv[0])
                .args(&argv[1..])
                .current_dir(&scratch)
                .output()
                .map_err(|e| {
                    StageError::Program(format!(
                        "cannot run WSClean ('{}': {e}); install it (Debian: apt-get install wsclean) or set the parameter wsclean to its path",
                        argv[0]
                    ))
                })?;
            if !out.status.success() {
                return Err(StageError::Program(format!(
                    "WSClean failed ({}): {}\n  {}",
                    out.status,
                    argv.join(" "),
                    super::io::output_tail(&out, 15)
                )));
            }
            let cube = stack_channels(&name, p.nchan.max(1) as usize)?;
            let plane = cube.nx * cube.ny;
            let mut weights = String::from("# Channel Weight\n");
            for c in 0..cube.nchan {
                let v: Vec<f64> = cube.data[c * plane..(c + 1) * plane]
                    .iter()
                    .map(|&x| x as f64)
                    .filter(|x| x.is_finite())
                    .collect();
                let rms = mad_sigma(&v);
                let w = if rms.is_finite() && rms > 0.0 {
                    1.0 / (rms * rms)
                } else {
                    0.0
                };
                weights.push_str(&format!("{c} {w:.6e}\n"));
            }
            cube.write(out_path(ctx, "cube")?)?;
            write_text(out_path(ctx, "weights")?, &weights)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrakis's default imaging settings (`.default_config.yaml`).
    fn arrakis_defaults() -> ImagingParams {
        ImagingParams {
            wsclean: "wsclean".into(),
            robust: -0.5,
            nchan: 36,
            size: 6144,
            scale: 2.5,
            mgain: 0.7,
            niter: 500000,
            nmiter: Some(15),
            auto_mask: Some(4.0),
            auto_threshold: Some(1.0),
            local_rms: true,
            local_rms_window: Some(60.0),
            force_mask_rounds: Some(8),
            gridder: Some("wgridder".into()),
            taper: None,
            minuv: Some(200.0),
            parallel: None,
            multiscale: false,
            multiscale_scale_bias: None,
            multiscale_scales: Some("0,2,4,8,16,32,64,128".into()),
            absmem: None,
            data_column: "CORRECTED_DATA".into(),
            no_mf_weighting: false,
        }
    }

    #[test]
    fn stokes_i_argv_with_arrakis_defaults() {
        let argv = wsclean_argv(
            &arrakis_defaults(),
            "i",
            Path::new("/d/sb.beam07.ms"),
            Path::new("/d/s/image.beam07.i"),
            Path::new("/d/s"),
        );
        assert_eq!(
            argv.join(" "),
            "wsclean -name /d/s/image.beam07.i -pol i -channels-out 36 -parallel-gridding 36 -join-channels -size 6144 6144 -scale 2.5asec -weight briggs -0.5 -niter 500000 -nmiter 15 -mgain 0.7 -auto-mask 4 -auto-threshold 1 -local-rms -local-rms-window 60 -force-mask-rounds 8 -gridder wgridder -minuv-l 200 -mem 90 -data-column CORRECTED_DATA -no-update-model-required -beam-fitting-size 1.25 -temp-dir /d/s /d/sb.beam07.ms"
        );
    }

    #[test]
    fn polarisation_argv_squares_thresholds_and_drops_multiscale() {
        let mut p = arrakis_defaults();
        p.multiscale = true;
        p.multiscale_scale_bias = Some(0.6);
        p.taper = Some(12.5);
        p.auto_mask = Some(3.3);
        p.force_mask_rounds = None;
        p.no_mf_weighting = true;
        let q = wsclean_argv(&p, "q", Path::new("m.ms"), Path::new("n"), Path::new("t")).join(" ");
        assert!(q.contains("-pol q -channels-out 36 -parallel-gridding 36 -join-channels -squared-channel-joining"), "{q}");
        // 3.3² = 10.89; 1² = 1.
        assert!(q.contains("-auto-mask 10.89 -auto-threshold 1 "), "{q}");
        assert!(
            !q.contains("multiscale") && !q.contains("force-mask"),
            "{q}"
        );
        assert!(
            q.contains("-taper-gaussian 12.5asec") && q.contains("-no-mf-weighting"),
            "{q}"
        );
        let i = wsclean_argv(&p, "i", Path::new("m.ms"), Path::new("n"), Path::new("t")).join(" ");
        assert!(
            i.contains(
                "-multiscale -multiscale-scale-bias 0.6 -multiscale-scales 0,2,4,8,16,32,64,128"
            ),
            "{i}"
        );
        assert!(i.contains("-auto-mask 3.3 "), "{i}");
    }
}
