//! `rmsynth3d` and `rmclean3d` (per island, `dimension: 3d`): RM synthesis and RM-CLEAN on every
//! pixel of the island's Q/U mosaics, written with RM-Tools' names and FITS conventions (FDEP
//! axis, LAMSQ0, `<unit>/RMSF`). As in Arrakis, 3D uses no Stokes I model: the weights come from
//! the per-channel noise of Q and U in an annulus around the mosaic centre.
//!
//! Decision (Arrakis quirk, fixed): Arrakis hands its negative `cutoff` (σ units in 1D) to
//! rmclean3d as an absolute flux, which cleans every pixel for `max_iter` iterations. Here a
//! negative cutoff means |cutoff| × the theoretical FDF noise, as in 1D; it is recorded in the
//! FDF header as `DFDFTH`.

use std::path::{Path, PathBuf};

use super::io::{out_path, single, stokes_input, write_text};
use super::params::{
    CUTOFF, DPHI, FIT_RMSF, GAIN, MAX_ITER, N_SAMPLES, PHI_MAX, SYNTH3D_METHOD, WEIGHT_TYPE,
};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Cube, Header, Image};
use crate::rules::{Contract, SlotSpec};
use crate::science::background::centre_annulus_rms;
use crate::science::rm3d::{peak_maps, rmclean3d, rmsynth3d, Synth3dParams, Transform};
use crate::science::stats::nanmedian;
use crate::wcs::Wcs;

static SYNTH_CONTRACT: Contract = Contract {
    name: "rmsynth3d",
    version: 4,
    params: &[
        &DPHI,
        &PHI_MAX,
        &N_SAMPLES,
        &WEIGHT_TYPE,
        &FIT_RMSF,
        &SYNTH3D_METHOD,
    ],
    inputs: &[
        SlotSpec::required(
            "mosaics",
            "the island's Q and U mosaics (linmos; I is ignored)",
        ),
        SlotSpec::optional(
            "ion_q",
            "the FRion-corrected Q mosaic, read instead of the plain one",
        ),
        SlotSpec::optional(
            "ion_u",
            "the FRion-corrected U mosaic, read instead of the plain one",
        ),
    ],
    outputs: &[
        "fdf_real",
        "fdf_im",
        "fdf_tot",
        "rmsf_real",
        "rmsf_im",
        "rmsf_tot",
        "rmsf_fwhm",
        "max_pi",
        "peak_rm",
        "noise",
    ],
    open: false,
};

static CLEAN_CONTRACT: Contract = Contract {
    name: "rmclean3d",
    version: 2,
    params: &[&CUTOFF, &MAX_ITER, &GAIN],
    inputs: &[
        SlotSpec::required("fdf_real", "rmsynth3d's dirty FDF, real part"),
        SlotSpec::required("fdf_im", "rmsynth3d's dirty FDF, imaginary part"),
        SlotSpec::required("rmsf_real", "rmsynth3d's RMSF, real part"),
        SlotSpec::required("rmsf_im", "rmsynth3d's RMSF, imaginary part"),
        SlotSpec::required("rmsf_fwhm", "rmsynth3d's RMSF FWHM map"),
    ],
    outputs: &[
        "clean_real",
        "clean_im",
        "clean_tot",
        "cc_real",
        "cc_im",
        "cc_tot",
        "n_iter",
    ],
    open: false,
};

/// A header for a Faraday-depth cube of `n` samples, from the mosaic's header.
fn fdep_header(base: &Header, n: usize, dphi: f64, phi_mid: f64, lam0: f64) -> Header {
    let mut h = base.clone();
    for k in ["DATAMAX", "DATAMIN"] {
        h.remove(k);
    }
    h.set_str("CTYPE3", "FDEP", "Faraday depth (linear)");
    h.set_str("CUNIT3", "rad/m^2", "");
    h.set_f64(
        "CDELT3",
        dphi,
        "[rad/m^2] Coordinate increment at reference point",
    );
    h.set_f64("CRPIX3", (n / 2 + 1) as f64, "");
    h.set_f64(
        "CRVAL3",
        phi_mid,
        "[rad/m^2] Coordinate value at reference point",
    );
    h.set_f64("LAMSQ0", lam0, "Lambda^2_0, in m^2");
    h
}

/// Where each product goes: the stage's declared output, or RM-Tools' file name for the CLI.
type PathOf<'a> = dyn Fn(&str) -> Result<PathBuf, StageError> + 'a;

/// RM-Tools' file names for the products (rmsynth3d's and rmclean3d's `writefits`).
pub fn rmtools_name(product: &str) -> &'static str {
    match product {
        "fdf_real" => "FDF_real_dirty.fits",
        "fdf_im" => "FDF_im_dirty.fits",
        "fdf_tot" => "FDF_tot_dirty.fits",
        "rmsf_real" => "RMSF_real.fits",
        "rmsf_im" => "RMSF_im.fits",
        "rmsf_tot" => "RMSF_tot.fits",
        "rmsf_fwhm" => "RMSF_FWHM.fits",
        "max_pi" => "FDF_maxPI.fits",
        "peak_rm" => "FDF_peakRM.fits",
        "clean_real" => "FDF_clean_real.fits",
        "clean_im" => "FDF_clean_im.fits",
        "clean_tot" => "FDF_clean_tot.fits",
        "cc_real" => "FDF_CC_real.fits",
        "cc_im" => "FDF_CC_im.fits",
        "cc_tot" => "FDF_CC_tot.fits",
        "n_iter" => "CLEAN_nIter.fits",
        _ => "unknown.fits",
    }
}

/// |re + i·im| of every sample.
fn tot(re: &[f32], im: &[f32]) -> Vec<f32> {
    re.iter().zip(im).map(|(a, b)| a.hypot(*b)).collect()
}

/// Writes products where `path_of` says and remembers what it wrote.
struct Products<'a, 'b> {
    path_of: &'a PathOf<'b>,
    written: Vec<PathBuf>,
}

impl<'a, 'b> Products<'a, 'b> {
    fn new(path_of: &'a PathOf<'b>) -> Self {
        Products {
            path_of,
            written: Vec::new(),
        }
    }
    fn cube(&mut self, name: &str, c: &Cube) -> Result<(), StageError> {
        let p = (self.path_of)(name)?;
        c.write(&p)?;
        self.written.push(p);
        Ok(())
    }
    fn image(&mut self, name: &str, i: &Image) -> Result<(), StageError> {
        let p = (self.path_of)(name)?;
        i.write(&p)?;
        self.written.push(p);
        Ok(())
    }
}

/// What a 3D synthesis reads, however it was found.
struct Synth3dInput<'a> {
    q: &'a Cube,
    u: &'a Cube,
    /// Stokes I model cube: Q and U are divided by it and the FDF scaled by I at ν0.
    i: Option<&'a Cube>,
    freqs: &'a [f64],
    weights: &'a [f64],
    /// Per-channel noise (for the theoretical FDF noise, DFDFTH), when known.
    rms: Option<&'a [f64]>,
    params: Synth3dParams,
    rmsf: bool,
}

/// Run the synthesis and write every product through `path_of`; returns the paths written.
fn write_synth3d(inp: &Synth3dInput, path_of: &PathOf) -> Result<Vec<PathBuf>, StageError> {
    let q = inp.q;
    let npix = q.nx * q.ny;
    let mut out = Products::new(path_of);
    let divided;
    let (qd, ud) = match inp.i {
        Some(i) => {
            let div =
                |x: &[f32]| -> Vec<f32> { x.iter().zip(&i.data).map(|(a, b)| a / b).collect() };
            divided = (div(&q.data), div(&inp.u.data));
            (&divided.0, &divided.1)
        }
        None => (&q.data, &inp.u.data),
    };
    let mut s = rmsynth3d(qd, ud, npix, inp.freqs, inp.weights, &inp.params);
    if let Some(i) = inp.i {
        // RM-Tools: I at ν0 is the mean of the two channel planes about ν0 (the nearest one
        // when ν0 falls on a channel).
        let f0 = if s.lam0 > 0.0 {
            crate::science::C_M_S / s.lam0.sqrt()
        } else {
            inp.freqs.iter().sum::<f64>() / inp.freqs.len() as f64
        };
        let idx = (0..inp.freqs.len())
            .min_by(|&a, &b| {
                (inp.freqs[a] - f0)
                    .abs()
                    .total_cmp(&(inp.freqs[b] - f0).abs())
            })
            .unwrap_or(0);
        let plane = |c: usize| &i.data[c * npix..(c + 1) * npix];
        let last = inp.freqs.len() - 1;
        let (a, b) = if inp.freqs[idx] < f0 && idx < last {
            (idx, idx + 1)
        } else if inp.freqs[idx] > f0 && idx > 0 {
            (idx - 1, idx)
        } else {
            (idx, idx)
        };
        let i0: Vec<f32> = plane(a)
            .iter()
            .zip(plane(b))
            .map(|(x, y)| 0.5 * (x + y))
            .collect();
        for (k, v) in s.fdf_re.iter_mut().enumerate() {
            *v *= i0[k % npix];
        }
        for (k, v) in s.fdf_im.iter_mut().enumerate() {
            *v *= i0[k % npix];
        }
    }
    let nphi = s.axes.phi.len();
    let nphi2 = s.axes.phi2.len();
    let unit = q.header.get_str("BUNIT").unwrap_or_default();
    let mut hf = fdep_header(&q.header, nphi, s.axes.dphi, s.axes.phi[nphi / 2], s.lam0);
    hf.set_str("BUNIT", &format!("{unit}/RMSF"), "");
    if let Some(rms) = inp.rms {
        // Theoretical FDF noise: sqrt(Σ w²σ²) / Σ w over the channels that carry weight.
        let (mut sw, mut sw2s2) = (0.0, 0.0);
        for (w, r) in inp.weights.iter().zip(rms) {
            if w.is_finite() && r.is_finite() {
                sw += w;
                sw2s2 += w * w * r * r;
            }
        }
        hf.set_f64(
            "DFDFTH",
            sw2s2.sqrt() / sw,
            "theoretical FDF noise (arrakis)",
        );
    }
    let cube = |data: Vec<f32>, n: usize, header: &Header| Cube {
        nx: q.nx,
        ny: q.ny,
        nchan: n,
        data,
        header: header.clone(),
    };
    let rmsf = if inp.rmsf { Some(s.rmsf_cubes()) } else { None };
    out.cube("fdf_tot", &cube(tot(&s.fdf_re, &s.fdf_im), nphi, &hf))?;
    let (max_pi, peak_rm) = peak_maps(&s.fdf_re, &s.fdf_im, &s.axes.phi, npix);
    let phi0 = s.axes.phi[0];
    out.cube("fdf_real", &cube(s.fdf_re, nphi, &hf))?;
    out.cube("fdf_im", &cube(s.fdf_im, nphi, &hf))?;

    if let Some((rmsf_re, rmsf_im, fwhm)) = rmsf {
        let mut hr = fdep_header(
            &q.header,
            nphi2,
            s.axes.dphi,
            s.axes.phi2[nphi2 / 2],
            s.lam0,
        );
        hr.set_str("BUNIT", "", "");
        out.cube("rmsf_tot", &cube(tot(&rmsf_re, &rmsf_im), nphi2, &hr))?;
        out.cube("rmsf_real", &cube(rmsf_re, nphi2, &hr))?;
        out.cube("rmsf_im", &cube(rmsf_im, nphi2, &hr))?;
        let mut hw = hr.clone();
        hw.set_str("BUNIT", "rad/m^2", "");
        out.image(
            "rmsf_fwhm",
            &Image {
                shape: vec![q.nx, q.ny],
                data: fwhm,
                header: hw,
            },
        )?;
    }

    // Peak maps: the depth axis left in as a degenerate axis, as RM-Tools writes them.
    let mut hp = hf.clone();
    hp.set_str("BUNIT", &unit, "");
    hp.set_str("CTYPE3", "DEGENERATE", "Axis left in to avoid FITS errors");
    hp.set_str("CUNIT3", "", "");
    hp.set_f64(
        "CRVAL3",
        phi0,
        "[rad/m^2] Coordinate value at reference point",
    );
    out.cube("max_pi", &cube(max_pi, 1, &hp))?;
    hp.set_str("BUNIT", "rad/m^2", "");
    hp.set_str("BTYPE", "FDEP", "");
    out.cube("peak_rm", &cube(peak_rm, 1, &hp))?;
    Ok(out.written)
}

/// `arrakis rmsynth3d`'s inputs (RM-Tools' command line).
pub struct Synth3dFiles {
    /// Stokes Q cube.
    pub q: PathBuf,
    /// Stokes U cube.
    pub u: PathBuf,
    /// Stokes I model cube.
    pub i: Option<PathBuf>,
    /// Channel frequencies, Hz.
    pub freqs: Vec<f64>,
    /// Per-channel noise.
    pub noise: Option<Vec<f64>>,
    /// Variance weights (1/noise²; uniform without a noise file, as RM-Tools).
    pub variance: bool,
    /// Synthesis settings.
    pub params: Synth3dParams,
    /// Write the RMSF cubes too.
    pub rmsf: bool,
    /// Output directory.
    pub out: PathBuf,
    /// Output name prefix.
    pub prefix: String,
}

/// `arrakis rmsynth3d`: RM synthesis of FITS cubes into RM-Tools' files.
pub fn synth3d_files(o: &Synth3dFiles) -> Result<Vec<PathBuf>, StageError> {
    let q = Cube::read(&o.q)?;
    let u = Cube::read(&o.u)?;
    let i = o.i.as_ref().map(|p| Cube::read(p)).transpose()?;
    for (c, p) in [(Some(&u), &o.u), (i.as_ref(), o.i.as_ref().unwrap_or(&o.u))] {
        if let Some(c) = c {
            if (c.nx, c.ny, c.nchan) != (q.nx, q.ny, q.nchan) {
                return Err(StageError::file(
                    p,
                    None,
                    format!(
                        "{}x{}x{} where the Q cube {} is {}x{}x{}; the cubes must match",
                        c.nx,
                        c.ny,
                        c.nchan,
                        o.q.display(),
                        q.nx,
                        q.ny,
                        q.nchan
                    ),
                ));
            }
        }
    }
    if o.freqs.len() != q.nchan {
        return Err(StageError::data(format!(
            "{} frequencies for {} channels of {}; the frequency file needs one line per channel",
            o.freqs.len(),
            q.nchan,
            o.q.display()
        )));
    }
    if let Some(n) = &o.noise {
        if n.len() != q.nchan {
            return Err(StageError::data(format!(
                "{} noise values for {} channels of {}; the noise file needs one line per channel",
                n.len(),
                q.nchan,
                o.q.display()
            )));
        }
    }
    let weights: Vec<f64> = match (&o.noise, o.variance) {
        (Some(n), true) => n.iter().map(|r| 1.0 / (r * r)).collect(),
        _ => vec![1.0; q.nchan],
    };
    let inp = Synth3dInput {
        q: &q,
        u: &u,
        i: i.as_ref(),
        freqs: &o.freqs,
        weights: &weights,
        rms: o.noise.as_deref(),
        params: o.params.clone(),
        rmsf: o.rmsf,
    };
    let path_of = |name: &str| -> Result<PathBuf, StageError> {
        Ok(o.out.join(format!("{}{}", o.prefix, rmtools_name(name))))
    };
    write_synth3d(&inp, &path_of)
}

/// `rmsynth3d` (per island).
pub struct RmSynth3d;

impl Builtin for RmSynth3d {
    fn contract(&self) -> &'static Contract {
        &SYNTH_CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let (qp, up) = (
            stokes_input(ctx, &["ion_q", "mosaics"], 1)?,
            stokes_input(ctx, &["ion_u", "mosaics"], 2)?,
        );
        let q = Cube::read(qp)?;
        let u = Cube::read(up)?;
        if (q.nx, q.ny, q.nchan) != (u.nx, u.ny, u.nchan) {
            return Err(StageError::data(format!(
                "{} and {} differ in shape; Q and U must match",
                qp.display(),
                up.display()
            )));
        }
        if q.data.iter().all(|v| !v.is_finite()) || u.data.iter().all(|v| !v.is_finite()) {
            return Err(StageError::data(format!(
                "{} or {} is blank throughout: nothing to synthesise",
                qp.display(),
                up.display()
            )));
        }
        let wcs = Wcs::from_header(&q.header, qp)?;
        let freqs: Vec<f64> = (0..q.nchan).map(|c| wcs.freq(c)).collect();
        let pixscale = wcs.cdelt_x.abs().max(wcs.cdelt_y.abs());
        let bmin = q.header.get_f64("BMIN").unwrap_or(3.0 * pixscale);
        let ppb = bmin / pixscale;
        let (rq, ru) = (
            centre_annulus_rms(q.view(), ppb),
            centre_annulus_rms(u.view(), ppb),
        );
        let mut rms: Vec<f64> = rq.iter().zip(&ru).map(|(a, b)| a.max(*b)).collect();
        let med = nanmedian(&rms);
        rms.iter_mut().filter(|r| r.is_nan()).for_each(|r| *r = med);
        let variance = ctx.str(&WEIGHT_TYPE)? == "variance";
        let weights: Vec<f64> = rms
            .iter()
            .map(|r| if variance { 1.0 / (r * r) } else { 1.0 })
            .collect();
        let p = Synth3dParams {
            dphi: ctx.opt_f64(&DPHI)?,
            phi_max: ctx.opt_f64(&PHI_MAX)?,
            n_samples: ctx.f64(&N_SAMPLES)?,
            fit_rmsf: ctx.bool(&FIT_RMSF)?,
            transform: match ctx.str(&SYNTH3D_METHOD)? {
                "direct" => Transform::Direct,
                "nufft" => Transform::Nufft,
                _ => Transform::Auto,
            },
        };
        let mut noise = String::new();
        for r in &rms {
            noise.push_str(&format!("{r:.9e}\n"));
        }
        write_text(out_path(ctx, "noise")?, &noise)?;
        let inp = Synth3dInput {
            q: &q,
            u: &u,
            i: None,
            freqs: &freqs,
            weights: &weights,
            rms: Some(&rms),
            params: p,
            rmsf: true,
        };
        write_synth3d(&inp, &|name: &str| Ok(out_path(ctx, name)?.clone()))?;
        Ok(())
    }
}

/// `arrakis rmclean3d`'s inputs (RM-Tools' command line, the sibling files resolved).
pub struct Clean3dFiles {
    /// Dirty FDF, real part.
    pub fdf_real: PathBuf,
    /// Dirty FDF, imaginary part.
    pub fdf_im: PathBuf,
    /// RMSF, real part.
    pub rmsf_real: PathBuf,
    /// RMSF, imaginary part.
    pub rmsf_im: PathBuf,
    /// RMSF FWHM map.
    pub rmsf_fwhm: PathBuf,
    /// Cutoff (negative: multiples of DFDFTH).
    pub cutoff: f64,
    /// Iteration limit per pixel.
    pub max_iter: usize,
    /// Loop gain.
    pub gain: f64,
    /// Output directory.
    pub out: PathBuf,
    /// Output name prefix.
    pub prefix: String,
}

/// Clean the cubes at `paths` (fdf_real, fdf_im, rmsf_real, rmsf_im, rmsf_fwhm) and write
/// every product through `path_of`.
fn write_clean3d(
    paths: [&Path; 5],
    cutoff: f64,
    max_iter: usize,
    gain: f64,
    path_of: &PathOf,
) -> Result<Vec<PathBuf>, StageError> {
    let read = |p: &Path| -> Result<Cube, StageError> {
        if !p.exists() {
            return Err(StageError::file(
                p,
                None,
                "no such file; rmclean3d reads the real and imaginary FDF and RMSF cubes and RMSF_FWHM.fits that rmsynth3d writes side by side",
            ));
        }
        Ok(Cube::read(p)?)
    };
    let (fr, fi) = (read(paths[0])?, read(paths[1])?);
    let (rr, ri) = (read(paths[2])?, read(paths[3])?);
    let fwhm = Image::read(paths[4])?;
    let npix = fr.nx * fr.ny;
    let h = &fr.header;
    let fpath = paths[0];
    let dphi = h.require_f64("CDELT3", fpath)?;
    let crpix = h.require_f64("CRPIX3", fpath)?;
    let crval = h.require_f64("CRVAL3", fpath)?;
    let phi: Vec<f64> = (0..fr.nchan)
        .map(|k| (((k as f64 + 1.0 - crpix) * dphi + crval) as f32) as f64)
        .collect();
    let cutoff = if cutoff < 0.0 {
        let dfdf = h.get_f64("DFDFTH").ok_or_else(|| {
            StageError::file(fpath, None, "no DFDFTH keyword, so a negative (σ) cutoff has no noise to scale; give an absolute cutoff (or, for rmsynth3d from the command line, a noise file with -n)")
        })?;
        -cutoff * dfdf
    } else {
        cutoff
    };
    let c = rmclean3d(
        (&fr.data, &fi.data),
        (&rr.data, &ri.data),
        &fwhm.data,
        &phi,
        npix,
        cutoff,
        max_iter,
        gain,
    );
    let mut hc = fr.header.clone();
    hc.history("RM-CLEAN3D output (arrakis rmclean3d, RM-Tools' Hogbom method)");
    hc.set_f64("CLEANCUT", cutoff, "absolute CLEAN cutoff used");
    let cube = |data: Vec<f32>| Cube {
        nx: fr.nx,
        ny: fr.ny,
        nchan: fr.nchan,
        data,
        header: hc.clone(),
    };
    let mut out = Products::new(path_of);
    out.cube("clean_tot", &cube(tot(&c.clean_re, &c.clean_im)))?;
    out.cube("cc_tot", &cube(tot(&c.cc_re, &c.cc_im)))?;
    out.cube("clean_real", &cube(c.clean_re))?;
    out.cube("clean_im", &cube(c.clean_im))?;
    out.cube("cc_real", &cube(c.cc_re))?;
    out.cube("cc_im", &cube(c.cc_im))?;
    let mut hn = hc.clone();
    hn.set_str("BUNIT", "Iterations", "");
    hn.set_str("CTYPE3", "DEGENERATE", "Axis left in to avoid FITS errors");
    hn.set_str("CUNIT3", "", "");
    out.cube(
        "n_iter",
        &Cube {
            nx: fr.nx,
            ny: fr.ny,
            nchan: 1,
            data: c.n_iter,
            header: hn,
        },
    )?;
    Ok(out.written)
}

/// `arrakis rmclean3d`: RM-CLEAN of rmsynth3d's files into RM-Tools' files.
pub fn clean3d_files(o: &Clean3dFiles) -> Result<Vec<PathBuf>, StageError> {
    write_clean3d(
        [
            &o.fdf_real,
            &o.fdf_im,
            &o.rmsf_real,
            &o.rmsf_im,
            &o.rmsf_fwhm,
        ],
        o.cutoff,
        o.max_iter,
        o.gain,
        &|name: &str| Ok(o.out.join(format!("{}{}", o.prefix, rmtools_name(name)))),
    )
}

/// `rmclean3d` (per island).
pub struct RmClean3d;

impl Builtin for RmClean3d {
    fn contract(&self) -> &'static Contract {
        &CLEAN_CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        // Declared in [0, inf): the conversion cannot wrap.
        let max_iter = ctx.i64(&MAX_ITER)? as usize;
        write_clean3d(
            [
                single(ctx, "fdf_real")?,
                single(ctx, "fdf_im")?,
                single(ctx, "rmsf_real")?,
                single(ctx, "rmsf_im")?,
                single(ctx, "rmsf_fwhm")?,
            ],
            ctx.f64(&CUTOFF)?,
            max_iter,
            ctx.f64(&GAIN)?,
            &|name: &str| Ok(out_path(ctx, name)?.clone()),
        )?;
        Ok(())
    }
}
