//! `rmsynth3d` and `rmclean3d` (per island, `dimension: 3d`): RM synthesis and RM-CLEAN on every
//! pixel of the island's Q/U mosaics, written with RM-Tools' names and FITS conventions (FDEP
//! axis, LAMSQ0, `<unit>/RMSF`). As in Arrakis, 3D uses no Stokes I model: the weights come from
//! the per-channel noise of Q and U in an annulus around the mosaic centre.
//!
//! Decision (Arrakis quirk, fixed): Arrakis hands its negative `cutoff` (σ units in 1D) to
//! rmclean3d as an absolute flux, which cleans every pixel for `max_iter` iterations. Here a
//! negative cutoff means |cutoff| × the theoretical FDF noise, as in 1D; it is recorded in the
//! FDF header as `DFDFTH`.

use super::io::{out_path, single, stokes_input};
use super::{ActionCtx, Builtin};
use crate::fits::{Cube, Header, Image};
use crate::science::rm3d::{peak_maps, rmclean3d, rmsynth3d, Synth3dParams, Transform};
use crate::science::stats::{clipped_mean_std, nanmedian};
use crate::wcs::Wcs;

/// Per-channel background rms of a cube in the annulus 1.5 to 5 beams (BMIN) from the centre
/// pixel: zeros count as blank, iterative 3σ clipping with mean and population std (Arrakis's
/// `cubelet_bane`). Empty channels are NaN.
pub fn channel_rms(c: &Cube, pix_per_beam: f64) -> Vec<f64> {
    let (cy, cx) = ((c.ny / 2) as f64, (c.nx / 2) as f64);
    let mut idx = Vec::new();
    for y in 0..c.ny {
        for x in 0..c.nx {
            let r = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
            if r > 1.5 * pix_per_beam && r < 5.0 * pix_per_beam {
                idx.push((y, x));
            }
        }
    }
    (0..c.nchan)
        .map(|ch| {
            let v: Vec<f64> = idx
                .iter()
                .map(|&(y, x)| c.at(ch, y, x) as f64)
                .filter(|v| v.is_finite() && *v != 0.0)
                .collect();
            clipped_mean_std(v, 3.0, 1).map_or(f64::NAN, |(_, std)| std)
        })
        .collect()
}

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

fn write_cube(ctx: &ActionCtx, name: &str, c: &Cube) -> Result<(), String> {
    c.write(out_path(ctx, name)?).map_err(|e| e.to_string())
}

fn param_f64(ctx: &ActionCtx, k: &str) -> Option<f64> {
    ctx.param(k).and_then(|v| v.as_f64())
}

/// `rmsynth3d` (per island).
pub struct RmSynth3d;

impl Builtin for RmSynth3d {
    fn name(&self) -> &'static str {
        "rmsynth3d"
    }
    fn version(&self) -> u32 {
        3
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let (qp, up) = (
            stokes_input(ctx, &["ion_q", "mosaics"], 1)?,
            stokes_input(ctx, &["ion_u", "mosaics"], 2)?,
        );
        let q = Cube::read(qp).map_err(|e| e.to_string())?;
        let u = Cube::read(up).map_err(|e| e.to_string())?;
        if (q.nx, q.ny, q.nchan) != (u.nx, u.ny, u.nchan) {
            return Err(format!(
                "{} and {} differ in shape; Q and U must match",
                qp.display(),
                up.display()
            ));
        }
        if q.data.iter().all(|v| !v.is_finite()) || u.data.iter().all(|v| !v.is_finite()) {
            return Err(format!(
                "{} or {} is blank throughout: nothing to synthesise",
                qp.display(),
                up.display()
            ));
        }
        let wcs = Wcs::from_header(&q.header, qp).map_err(|e| e.to_string())?;
        let freqs: Vec<f64> = (0..q.nchan).map(|c| wcs.freq(c)).collect();
        let pixscale = wcs.cdelt_x.abs().max(wcs.cdelt_y.abs());
        let bmin = q.header.get_f64("BMIN").unwrap_or(3.0 * pixscale);
        let ppb = bmin / pixscale;
        let (rq, ru) = (channel_rms(&q, ppb), channel_rms(&u, ppb));
        let mut rms: Vec<f64> = rq.iter().zip(&ru).map(|(a, b)| a.max(*b)).collect();
        let med = nanmedian(&rms);
        rms.iter_mut().filter(|r| r.is_nan()).for_each(|r| *r = med);
        let variance = ctx
            .param("weight_type")
            .and_then(|v| v.as_str().map(|s| s == "variance"))
            .unwrap_or(true);
        let weights: Vec<f64> = rms
            .iter()
            .map(|r| if variance { 1.0 / (r * r) } else { 1.0 })
            .collect();
        let p = Synth3dParams {
            dphi: param_f64(ctx, "dphi"),
            phi_max: param_f64(ctx, "phi_max"),
            n_samples: param_f64(ctx, "n_samples").unwrap_or(5.0),
            fit_rmsf: ctx
                .param("fit_rmsf")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            transform: match ctx.param("synth3d_method").and_then(|v| v.as_str()) {
                Some("direct") => Transform::Direct,
                Some("nufft") => Transform::Nufft,
                _ => Transform::Auto,
            },
        };
        let mut noise = String::new();
        for r in &rms {
            noise.push_str(&format!("{r:.9e}\n"));
        }
        std::fs::write(out_path(ctx, "noise")?, noise).map_err(|e| e.to_string())?;
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
        .write(out_path(ctx, "rmsf_fwhm")?)
        .map_err(|e| e.to_string())?;

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
    fn name(&self) -> &'static str {
        "rmclean3d"
    }
    fn version(&self) -> u32 {
        2
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let read = |slot: &str| -> Result<Cube, String> {
            Cube::read(single(ctx, slot)?).map_err(|e| e.to_string())
        };
        let (fr, fi) = (read("fdf_real")?, read("fdf_im")?);
        let (rr, ri) = (read("rmsf_real")?, read("rmsf_im")?);
        let fwhm = Image::read(single(ctx, "rmsf_fwhm")?).map_err(|e| e.to_string())?;
        let npix = fr.nx * fr.ny;
        let h = &fr.header;
        let fpath = single(ctx, "fdf_real")?;
        let dphi = h.require_f64("CDELT3", fpath).map_err(|e| e.to_string())?;
        let crpix = h.require_f64("CRPIX3", fpath).map_err(|e| e.to_string())?;
        let crval = h.require_f64("CRVAL3", fpath).map_err(|e| e.to_string())?;
        let phi: Vec<f64> = (0..fr.nchan)
            .map(|k| (((k as f64 + 1.0 - crpix) * dphi + crval) as f32) as f64)
            .collect();
        let cutoff = param_f64(ctx, "cutoff").unwrap_or(-8.0);
        let cutoff = if cutoff < 0.0 {
            let dfdf = h.get_f64("DFDFTH").ok_or_else(|| {
                format!("{}: no DFDFTH keyword, so a negative (σ) cutoff has no noise to scale; rebuild rmsynth3d or give an absolute cutoff", fpath.display())
            })?;
            -cutoff * dfdf
        } else {
            cutoff
        };
        let max_iter = ctx
            .param("max_iter")
            .and_then(|v| v.as_i64())
            .unwrap_or(10000)
            .max(0) as usize;
        let gain = param_f64(ctx, "gain").unwrap_or(0.1);
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
        .write(out_path(ctx, "n_iter")?)
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}
