//! `rmsynth3d` and `rmclean3d` (per island, `dimension: 3d`): RM synthesis and RM-CLEAN on every
//! pixel of the island's Q/U mosaics, written with RM-Tools' names and FITS conventions (FDEP
//! axis, LAMSQ0, `<unit>/RMSF`). As in Arrakis, 3D uses no Stokes I model: the weights come from
//! the per-channel noise of Q and U in an annulus around the mosaic centre.
//!
//! Decision (Arrakis quirk, fixed): Arrakis hands its negative `cutoff` (σ units in 1D) to
//! rmclean3d as an absolute flux, which cleans every pixel for `max_iter` iterations. Here a
//! negative cutoff means |cutoff| × the theoretical FDF noise, as in 1D; it is recorded in the
//! FDF header as `DFDFTH`.

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
    version: 3,
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

fn write_cube(ctx: &ActionCtx, name: &str, c: &Cube) -> Result<(), StageError> {
    Ok(c.write(out_path(ctx, name)?)?)
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
        let npix = q.nx * q.ny;
        let s = rmsynth3d(&q.data, &u.data, npix, &freqs, &weights, &p);
        // Theoretical FDF noise: sqrt(Σ w²σ²) / Σ w over the channels that carry weight.
        let (mut sw, mut sw2s2) = (0.0, 0.0);
        for (w, r) in weights.iter().zip(&rms) {
            if w.is_finite() && r.is_finite() {
                sw += w;
                sw2s2 += w * w * r * r;
            }
        }
        let dfdf = sw2s2.sqrt() / sw;

        let nphi = s.axes.phi.len();
        let nphi2 = s.axes.phi2.len();
        let (rmsf_re, rmsf_im, fwhm) = s.rmsf_cubes();
        let unit = q.header.get_str("BUNIT").unwrap_or_default();
        let mut hf = fdep_header(&q.header, nphi, s.axes.dphi, s.axes.phi[nphi / 2], s.lam0);
        hf.set_str("BUNIT", &format!("{unit}/RMSF"), "");
        hf.set_f64("DFDFTH", dfdf, "theoretical FDF noise (arrakis)");
        let cube = |data: Vec<f32>, n: usize, header: &Header| Cube {
            nx: q.nx,
            ny: q.ny,
            nchan: n,
            data,
            header: header.clone(),
        };
        let tot = |re: &[f32], im: &[f32]| -> Vec<f32> {
            re.iter().zip(im).map(|(a, b)| a.hypot(*b)).collect()
        };
        write_cube(ctx, "fdf_tot", &cube(tot(&s.fdf_re, &s.fdf_im), nphi, &hf))?;
        let (max_pi, peak_rm) = peak_maps(&s.fdf_re, &s.fdf_im, &s.axes.phi, npix);
        write_cube(ctx, "fdf_real", &cube(s.fdf_re, nphi, &hf))?;
        write_cube(ctx, "fdf_im", &cube(s.fdf_im, nphi, &hf))?;

        let mut hr = fdep_header(
            &q.header,
            nphi2,
            s.axes.dphi,
            s.axes.phi2[nphi2 / 2],
            s.lam0,
        );
        hr.set_str("BUNIT", "", "");
        write_cube(ctx, "rmsf_tot", &cube(tot(&rmsf_re, &rmsf_im), nphi2, &hr))?;
        write_cube(ctx, "rmsf_real", &cube(rmsf_re, nphi2, &hr))?;
        write_cube(ctx, "rmsf_im", &cube(rmsf_im, nphi2, &hr))?;
        let mut hw = hr.clone();
        hw.set_str("BUNIT", "rad/m^2", "");
        Image {
            shape: vec![q.nx, q.ny],
            data: fwhm,
            header: hw,
        }
        .write(out_path(ctx, "rmsf_fwhm")?)?;

        // Peak maps: the depth axis left in as a degenerate axis, as RM-Tools writes them.
        let mut hp = hf.clone();
        hp.set_str("BUNIT", &unit, "");
        hp.set_str("CTYPE3", "DEGENERATE", "Axis left in to avoid FITS errors");
        hp.set_str("CUNIT3", "", "");
        hp.set_f64(
            "CRVAL3",
            s.axes.phi[0],
            "[rad/m^2] Coordinate value at reference point",
        );
        write_cube(ctx, "max_pi", &cube(max_pi, 1, &hp))?;
        hp.set_str("BUNIT", "rad/m^2", "");
        hp.set_str("BTYPE", "FDEP", "");
        write_cube(ctx, "peak_rm", &cube(peak_rm, 1, &hp))?;
        Ok(())
    }
}

/// `rmclean3d` (per island).
pub struct RmClean3d;

impl Builtin for RmClean3d {
    fn contract(&self) -> &'static Contract {
        &CLEAN_CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let read = |slot: &str| -> Result<Cube, StageError> { Ok(Cube::read(single(ctx, slot)?)?) };
        let (fr, fi) = (read("fdf_real")?, read("fdf_im")?);
        let (rr, ri) = (read("rmsf_real")?, read("rmsf_im")?);
        let fwhm = Image::read(single(ctx, "rmsf_fwhm")?)?;
        let npix = fr.nx * fr.ny;
        let h = &fr.header;
        let fpath = single(ctx, "fdf_real")?;
        let dphi = h.require_f64("CDELT3", fpath)?;
        let crpix = h.require_f64("CRPIX3", fpath)?;
        let crval = h.require_f64("CRVAL3", fpath)?;
        let phi: Vec<f64> = (0..fr.nchan)
            .map(|k| (((k as f64 + 1.0 - crpix) * dphi + crval) as f32) as f64)
            .collect();
        let cutoff = ctx.f64(&CUTOFF)?;
        let cutoff = if cutoff < 0.0 {
            let dfdf = h.get_f64("DFDFTH").ok_or_else(|| {
                StageError::file(fpath, None, "no DFDFTH keyword, so a negative (σ) cutoff has no noise to scale; rebuild rmsynth3d or give an absolute cutoff")
            })?;
            -cutoff * dfdf
        } else {
            cutoff
        };
        // Declared in [0, inf): the conversion cannot wrap.
        let max_iter = ctx.i64(&MAX_ITER)? as usize;
        let gain = ctx.f64(&GAIN)?;
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
        let tot = |re: &[f32], im: &[f32]| -> Vec<f32> {
            re.iter().zip(im).map(|(a, b)| a.hypot(*b)).collect()
        };
        write_cube(ctx, "clean_tot", &cube(tot(&c.clean_re, &c.clean_im)))?;
        write_cube(ctx, "cc_tot", &cube(tot(&c.cc_re, &c.cc_im)))?;
        write_cube(ctx, "clean_real", &cube(c.clean_re))?;
        write_cube(ctx, "clean_im", &cube(c.clean_im))?;
        write_cube(ctx, "cc_real", &cube(c.cc_re))?;
        write_cube(ctx, "cc_im", &cube(c.cc_im))?;
        let mut hn = hc.clone();
        hn.set_str("BUNIT", "Iterations", "");
        hn.set_str("CTYPE3", "DEGENERATE", "Axis left in to avoid FITS errors");
        hn.set_str("CUNIT3", "", "");
        Cube {
            nx: fr.nx,
            ny: fr.ny,
            nchan: 1,
            data: c.n_iter,
            header: hn,
        }
        .write(out_path(ctx, "n_iter")?)?;
        Ok(())
    }
}
