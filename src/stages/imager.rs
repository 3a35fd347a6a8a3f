//! The imaging stage (per beam, `imaging: true`, imager cluster config), two builtins:
//! - `wsclean` (per beam): WSClean on the beam's measurement set (fix_ms's, unless
//!   `skip_fix_ms`) as Arrakis runs it: one run for Stokes I (`-pol i -join-channels`,
//!   multiscale allowed) and one joined run for Q and U (`-pol qu -join-polarizations
//!   -join-channels -squared-channel-joining`, auto-mask and auto-threshold squared and rounded
//!   up to 2 decimals, no multiscale; `disable_pol_local_rms` / `disable_pol_force_mask_rounds`
//!   drop those options there). A run whose output reports a flux in KJy has diverged: it is
//!   stopped and run once more with the image 1024 pixels larger (Arrakis's rule; a second
//!   divergence fails the target). The channel images of each Stokes are stacked into a cube as
//!   they are, with every channel's restoring beam listed in `beams.json` (and fix_ms's
//!   polarisation-axis angle).
//! - `imager` (per beam and Stokes): every channel smoothed to the beam's common resolution
//!   (Arrakis's beamcon step: the smallest beam enclosing the restoring beams of every channel
//!   of I, Q and U; channels whose beam is above `psf_cutoff` arcsec, or has none, are blanked),
//!   the common beam in the cube's header with `INSTRUMENT_RECEPTOR_ANGLE` (the polarisation
//!   axis, for linmos's holography), and the LINMOS weights (1 / mad_std² per channel; `nan` for
//!   a blanked channel, as Arrakis writes it).
//!
//! WSClean runs as an external program (no shell) in a scratch directory inside the field
//! directory, removed afterwards. The measurement set of beam NN is the one whose name
//! contains `beamNN` among those `ms_glob_pattern` matches (Arrakis reads FEED1 instead).
//! Must never: pass a name through a shell; leave the scratch directory behind.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rayon::prelude::*;

use super::fix_ms::{beam_ms, unpack};
use super::io::{out_path, write_text};
use super::params::{
    ABSMEM, AUTO_MASK, AUTO_THRESHOLD, DATA_COLUMN, DISABLE_POL_FORCE_MASK_ROUNDS,
    DISABLE_POL_LOCAL_RMS, FORCE_MASK_ROUNDS, GRIDDER, LOCAL_RMS, LOCAL_RMS_WINDOW, MGAIN, MINUV,
    MS_GLOB_PATTERN, MULTISCALE, MULTISCALE_SCALES, MULTISCALE_SCALE_BIAS, NCHAN, NITER, NMITER,
    NO_MF_WEIGHTING, PARALLEL, PSF_CUTOFF, ROBUST, SCALE, SIZE, TAPER, WSCLEAN,
};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Cube, Image};
use crate::rules::{Contract, SlotSpec};
use crate::science::resolution::{common_beam, convolve_to, Beam};
use crate::science::stats::mad_sigma;

static WSCLEAN_CONTRACT: Contract = Contract {
    name: "wsclean",
    version: 2,
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
        &DISABLE_POL_LOCAL_RMS,
        &DISABLE_POL_FORCE_MASK_ROUNDS,
    ],
    inputs: &[
        SlotSpec::optional(
            "ms",
            "the measurement sets of the beam, imaged as they are (skip_fix_ms)",
        ),
        SlotSpec::optional("fixed", "fix_ms's measurement set of the beam (a tar)"),
        SlotSpec::optional("info", "fix_ms's result (the polarisation-axis angle)"),
    ],
    outputs: &["i", "q", "u", "beams"],
    open: false,
};

static IMAGER_CONTRACT: Contract = Contract {
    name: "imager",
    version: 2,
    params: &[&PSF_CUTOFF],
    inputs: &[
        SlotSpec::required("i", "the beam's Stokes I channel images, stacked"),
        SlotSpec::required("q", "the beam's Stokes Q channel images, stacked"),
        SlotSpec::required("u", "the beam's Stokes U channel images, stacked"),
        SlotSpec::required("beams", "every channel's restoring beam (beams.json)"),
    ],
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
    /// No local-RMS thresholding in the Q/U run.
    pub disable_pol_local_rms: bool,
    /// No forced mask rounds in the Q/U run.
    pub disable_pol_force_mask_rounds: bool,
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

/// The WSClean command line of one run on one beam: `stokes` is `i`, or `qu` for the joined
/// polarisation run.
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
    if pol && stokes.len() > 1 {
        push(&["-join-polarizations"]);
    }
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
    if p.local_rms && !(pol && p.disable_pol_local_rms) {
        push(&["-local-rms"]);
        if let Some(w) = p.local_rms_window {
            push(&["-local-rms-window", &num(w)]);
        }
    }
    if let Some(n) = p
        .force_mask_rounds
        .filter(|_| !(pol && p.disable_pol_force_mask_rounds))
    {
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
        disable_pol_local_rms: ctx.bool(&DISABLE_POL_LOCAL_RMS)?,
        disable_pol_force_mask_rounds: ctx.bool(&DISABLE_POL_FORCE_MASK_ROUNDS)?,
    })
}

/// The file WSClean writes for channel `c` of polarisation `pol` (`""` for a single-pol run,
/// `"Q"`, `"U"` in the joined run): `{name}-{c:04}-Q-image.fits`, without the channel part
/// when there is one channel.
pub fn channel_image(name: &Path, nchan: usize, c: usize, pol: &str) -> PathBuf {
    let chan = if nchan > 1 {
        format!("-{c:04}")
    } else {
        String::new()
    };
    let pol = if pol.is_empty() {
        String::new()
    } else {
        format!("-{pol}")
    };
    PathBuf::from(format!("{}{chan}{pol}-image.fits", name.display()))
}

/// Stack WSClean's channel images of one polarisation into a cube with a FREQ axis; with each
/// channel's restoring beam (degrees; an image without one gets zeros).
pub fn stack_channels(
    name: &Path,
    nchan: usize,
    pol: &str,
) -> Result<(Cube, Vec<Beam>), StageError> {
    let mut data = Vec::new();
    let mut freqs = Vec::new();
    let mut beams = Vec::new();
    let mut first: Option<Image> = None;
    for c in 0..nchan {
        let p = channel_image(name, nchan, c, pol);
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
        let bmaj = img.header.get_f64("BMAJ").unwrap_or(0.0);
        beams.push(Beam {
            bmaj,
            bmin: img.header.get_f64("BMIN").unwrap_or(bmaj),
            bpa: img.header.get_f64("BPA").unwrap_or(0.0),
        });
        data.extend_from_slice(&img.data[..nx * ny]);
        if first.is_none() {
            first = Some(img);
        }
    }
    let first = first.ok_or_else(|| StageError::data("no channel images (nchan is 0)"))?;
    let mut header = first.header.clone();
    for k in [
        "CTYPE4", "CRVAL4", "CDELT4", "CRPIX4", "CUNIT4", "BMAJ", "BMIN", "BPA",
    ] {
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
    header.history("arrakis wsclean: channel images stacked (own beams, in beams.json)");
    Ok((
        Cube {
            nx: first.shape[0],
            ny: first.shape[1],
            nchan,
            data,
            header,
        },
        beams,
    ))
}

/// How a WSClean run ended.
enum RunEnd {
    Done,
    /// It reported a flux in KJy (Arrakis's sign of divergence) and was stopped.
    Diverged(String),
}

/// Run WSClean, watching its output for divergence.
fn run_watched(argv: &[String], dir: &Path) -> Result<RunEnd, StageError> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            StageError::Program(format!(
                "cannot run WSClean ('{}': {e}); install it (Debian: apt-get install wsclean) or set the parameter wsclean to its path",
                argv[0]
            ))
        })?;
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut diverged = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(line) = line else { break };
        if line.contains("KJy") {
            diverged = Some(line);
            let _ = child.kill();
            break;
        }
        tail.push_back(line);
        if tail.len() > 15 {
            tail.pop_front();
        }
    }
    let status = child
        .wait()
        .map_err(|e| StageError::Program(format!("WSClean: {e}")))?;
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).to_string();
    if let Some(line) = diverged {
        return Ok(RunEnd::Diverged(line));
    }
    if !status.success() {
        let mut log: Vec<String> = tail.into_iter().collect();
        log.extend(
            err.lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(str::to_string),
        );
        return Err(StageError::Program(format!(
            "WSClean failed ({status}): {}\n  {}",
            argv.join(" "),
            log.join("\n  ")
        )));
    }
    Ok(RunEnd::Done)
}

/// Run WSClean; on divergence once more with `-size` 1024 pixels larger (Arrakis's rule). The
/// run's image size.
fn run_with_retry(argv: &[String], dir: &Path) -> Result<usize, StageError> {
    let size_at = argv.iter().position(|a| a == "-size");
    let size = size_at
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    match run_watched(argv, dir)? {
        RunEnd::Done => Ok(size),
        RunEnd::Diverged(first) => {
            let mut again = argv.to_vec();
            let bigger = (size + 1024).to_string();
            if let Some(i) = size_at {
                again[i + 1] = bigger.clone();
                again[i + 2] = bigger;
            }
            match run_watched(&again, dir)? {
                RunEnd::Done => Ok(size + 1024),
                RunEnd::Diverged(second) => Err(StageError::Program(format!(
                    "WSClean diverged twice (a flux in KJy): at size {size} ('{}') and at {} ('{}'); lower mgain or niter, or image with a mask",
                    first.trim(),
                    size + 1024,
                    second.trim()
                ))),
            }
        }
    }
}

/// What `wsclean` leaves for `imager`: every channel's restoring beam per Stokes, and fix_ms's
/// polarisation-axis angle.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct BeamsProduct {
    /// P (degrees) of the measurement set fix_ms rotated; `null` when it was imaged as it was.
    pub pol_axis_deg: Option<f64>,
    /// The image size each run (i, qu) ended with (1024 more than `size` after a divergence).
    pub sizes: std::collections::BTreeMap<String, usize>,
    /// Stokes (i, q, u) → per channel [BMAJ, BMIN, BPA] in degrees (0 when WSClean gave none).
    pub beams: std::collections::BTreeMap<String, Vec<[f64; 3]>>,
}

/// `wsclean` (per beam): the I run and the joined Q/U run, the channel images stacked.
pub struct Wsclean;

impl Builtin for Wsclean {
    fn contract(&self) -> &'static Contract {
        &WSCLEAN_CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let p = params_of(ctx)?;
        let beam = ctx.unit_var("beam")?;
        let scratch = ctx
            .field_dir
            .join(format!(".arrakis-imager-beam{beam}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| StageError::io(&scratch, e))?;
        let result = (|| {
            let (ms, pol_axis) = match ctx.input("fixed").first() {
                Some(tar) => {
                    let info = match ctx.input("info").first() {
                        Some(i) => {
                            let text = crate::hash::read_regular_string(i)
                                .map_err(|e| StageError::io(i, e))?;
                            let v: serde_json::Value = serde_json::from_str(text.trim())
                                .map_err(|e| StageError::file(i, None, e.to_string()))?;
                            v.get("pol_axis_deg").and_then(|x| x.as_f64())
                        }
                        None => None,
                    };
                    (unpack(tar, &scratch)?, info)
                }
                None => (beam_ms(ctx, "ms")?.clone(), None),
            };
            let mut beams = std::collections::BTreeMap::new();
            let mut sizes = std::collections::BTreeMap::new();
            let nchan = p.nchan.max(1) as usize;
            for (run, pols) in [("i", vec![("i", "")]), ("qu", vec![("q", "Q"), ("u", "U")])] {
                let name = scratch.join(format!("image.beam{beam}.{run}"));
                let argv = wsclean_argv(&p, run, &ms, &name, &scratch);
                sizes.insert(run.to_string(), run_with_retry(&argv, &scratch)?);
                for (stokes, tag) in pols {
                    let (cube, channel_beams) = stack_channels(&name, nchan, tag)?;
                    let mut cube = cube;
                    cube.header.set_str("STOKES", &stokes.to_uppercase(), "");
                    if let Some(angle) = pol_axis {
                        cube.header.set_f64(
                            "INSTRUMENT_RECEPTOR_ANGLE",
                            angle,
                            "deg: polarisation axis",
                        );
                    }
                    cube.write(out_path(ctx, stokes)?)?;
                    beams.insert(
                        stokes.to_string(),
                        channel_beams
                            .iter()
                            .map(|b| [b.bmaj, b.bmin, b.bpa])
                            .collect(),
                    );
                }
            }
            let product = BeamsProduct {
                pol_axis_deg: pol_axis,
                sizes,
                beams,
            };
            let text = serde_json::to_string_pretty(&product)
                .map_err(|e| StageError::data(e.to_string()))?;
            write_text(out_path(ctx, "beams")?, &(text + "\n"))
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

/// `imager` (per beam and Stokes): the Stokes's channels smoothed to the beam's common
/// resolution, and the LINMOS weights.
pub struct Imager;

impl Builtin for Imager {
    fn contract(&self) -> &'static Contract {
        &IMAGER_CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let stokes = ctx.unit_var("stokes")?;
        let cutoff_arcsec = ctx.opt_f64(&PSF_CUTOFF)?;
        let beams_path = ctx
            .input("beams")
            .first()
            .ok_or_else(|| StageError::data(format!("{}: no beams.json", ctx.target)))?;
        let text = crate::hash::read_regular_string(beams_path)
            .map_err(|e| StageError::io(beams_path, e))?;
        let product: BeamsProduct = serde_json::from_str(&text)
            .map_err(|e| StageError::file(beams_path, None, e.to_string()))?;
        let usable = |b: &Beam| b.is_valid() && cutoff_arcsec.is_none_or(|c| b.bmaj * 3600.0 <= c);
        let as_beam = |v: &[f64; 3]| Beam {
            bmaj: v[0],
            bmin: v[1],
            bpa: v[2],
        };
        let all: Vec<Beam> = product
            .beams
            .values()
            .flatten()
            .map(as_beam)
            .filter(usable)
            .collect();
        let target = common_beam(&all).ok_or_else(|| {
            StageError::data(format!(
                "{}: no channel of I, Q or U has a usable restoring beam{}; raise psf_cutoff (or set it to null)",
                ctx.target,
                match cutoff_arcsec {
                    Some(c) => format!(" at or below psf_cutoff = {c} arcsec"),
                    None => String::new(),
                }
            ))
        })?;
        let own = product.beams.get(stokes).ok_or_else(|| {
            StageError::file(beams_path, None, format!("no beams for Stokes {stokes}"))
        })?;
        let path = ctx.input(stokes).first().ok_or_else(|| {
            StageError::data(format!("{}: no Stokes {stokes} images", ctx.target))
        })?;
        let mut cube = Cube::read(path)?;
        if own.len() != cube.nchan {
            return Err(StageError::file(
                beams_path,
                None,
                format!(
                    "{} beams for Stokes {stokes} but {} has {} channels",
                    own.len(),
                    path.display(),
                    cube.nchan
                ),
            ));
        }
        let (dx, dy) = (
            cube.header.get_f64("CDELT1").unwrap_or(0.0).abs(),
            cube.header.get_f64("CDELT2").unwrap_or(0.0).abs(),
        );
        if dx == 0.0 || (dx - dy).abs() > 1e-9 * dx {
            return Err(StageError::file(
                path,
                None,
                format!(
                    "pixels of {dx} x {dy} deg: smoothing needs square pixels (CDELT1 = -CDELT2)"
                ),
            ));
        }
        let (nx, ny) = (cube.nx, cube.ny);
        let plane = nx * ny;
        cube.data
            .par_chunks_mut(plane)
            .zip(own.par_iter())
            .for_each(|(img, b)| {
                let b = as_beam(b);
                if !usable(&b) {
                    img.fill(f32::NAN);
                } else if (b.bmaj - target.bmaj).abs() > 1e-12
                    || (b.bmin - target.bmin).abs() > 1e-12
                    || (b.bpa - target.bpa).abs() > 1e-9
                {
                    let out = convolve_to(img, nx, ny, dx, b, target);
                    img.copy_from_slice(&out);
                }
            });
        cube.header
            .set_f64("BMAJ", target.bmaj, "deg: common beam of every channel");
        cube.header.set_f64("BMIN", target.bmin, "deg");
        cube.header.set_f64("BPA", target.bpa, "deg");
        cube.header.history(&format!(
            "arrakis imager: channels smoothed to {:.1}x{:.1} arcsec, PA {:.2}",
            target.bmaj * 3600.0,
            target.bmin * 3600.0,
            target.bpa
        ));
        let mut weights = String::from("# Channel Weight\n");
        for c in 0..cube.nchan {
            let v: Vec<f64> = cube.data[c * plane..(c + 1) * plane]
                .iter()
                .map(|&x| x as f64)
                .filter(|x| x.is_finite())
                .collect();
            if v.is_empty() {
                weights.push_str(&format!("{c} nan\n"));
                continue;
            }
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
            disable_pol_local_rms: false,
            disable_pol_force_mask_rounds: false,
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
        let q = wsclean_argv(&p, "qu", Path::new("m.ms"), Path::new("n"), Path::new("t")).join(" ");
        assert!(q.contains("-pol qu -join-polarizations -channels-out 36 -parallel-gridding 36 -join-channels -squared-channel-joining"), "{q}");
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
        // Arrakis's switches for the polarisation run only.
        p.force_mask_rounds = Some(8);
        p.disable_pol_local_rms = true;
        p.disable_pol_force_mask_rounds = true;
        let q = wsclean_argv(&p, "qu", Path::new("m.ms"), Path::new("n"), Path::new("t")).join(" ");
        assert!(
            !q.contains("-local-rms") && !q.contains("-force-mask-rounds"),
            "{q}"
        );
        let i = wsclean_argv(&p, "i", Path::new("m.ms"), Path::new("n"), Path::new("t")).join(" ");
        assert!(
            i.contains("-local-rms -local-rms-window 60 -force-mask-rounds 8"),
            "{i}"
        );
        p.force_mask_rounds = None;
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
