//! `rmsynth` (1D, per component): the spectrum at the component from the island's I/Q/U mosaics,
//! per-channel background and noise from an annulus, channel rejection as Arrakis does it, then
//! RM-Tools' synthesis and peak measurement (the science kernels).
//!
//! A component whose spectrum cannot be measured (outside the mosaic, all channels blank) is a
//! recorded result with `rmsynth1d: false` and a reason, not a failed target.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::io::{components, out_path, single, stokes_input, write_json, write_npy, Component};
use super::{ActionCtx, Builtin};
use crate::fits::Cube;
use crate::science::rm_synthesis::{run_rmsynth, Spectrum, SynthParams};
use crate::science::stats::{clipped_mean_std, mad_sigma, nanmedian};
use crate::science::stokes_i::FitFunction;
use crate::wcs::Wcs;

/// Background and noise per channel from an annulus around a pixel: from 1.5 source sizes (the
/// larger of the beam and the component's major axis, so an extended source's wings stay out)
/// to 3.5 beams further; iterative 3σ clipping with mean and population standard deviation.
/// Pixels within `r_in` of the island's other components (`others`) are left out too.
fn annulus_stats(
    c: &Cube,
    x0: f64,
    y0: f64,
    pix_per_beam: f64,
    source_pix: f64,
    others: &[(f64, f64)],
) -> (Vec<f64>, Vec<f64>) {
    let r_in = 1.5 * pix_per_beam.max(source_pix);
    let r_out = r_in + 3.5 * pix_per_beam;
    let mut idx = Vec::new();
    for y in 0..c.ny {
        for x in 0..c.nx {
            let r = ((x as f64 - x0).powi(2) + (y as f64 - y0).powi(2)).sqrt();
            let near_other = others
                .iter()
                .any(|&(ox, oy)| ((x as f64 - ox).powi(2) + (y as f64 - oy).powi(2)).sqrt() < r_in);
            if r > r_in && r < r_out && !near_other {
                idx.push((y, x));
            }
        }
    }
    let mut bkg = vec![f64::NAN; c.nchan];
    let mut rms = vec![f64::NAN; c.nchan];
    for ch in 0..c.nchan {
        let v: Vec<f64> = idx
            .iter()
            .map(|&(y, x)| c.at(ch, y, x) as f64)
            .filter(|v| v.is_finite())
            .collect();
        if v.len() < 3 {
            continue;
        }
        if let Some((mean, std)) = clipped_mean_std(v, 3.0, 3) {
            bkg[ch] = mean;
            rms[ch] = std;
        }
    }
    let med = nanmedian(&rms);
    rms.iter_mut().filter(|r| r.is_nan()).for_each(|r| *r = med);
    (bkg, rms)
}

/// Channels whose noise is an outlier (5σ about the median, MAD scale, up to 5 rounds).
fn rms_outliers(rms: &[f64]) -> Vec<bool> {
    let mut bad: Vec<bool> = rms.iter().map(|r| !r.is_finite()).collect();
    for _ in 0..5 {
        let kept: Vec<f64> = rms
            .iter()
            .zip(&bad)
            .filter(|(_, b)| !**b)
            .map(|(r, _)| *r)
            .collect();
        let (med, sig) = (nanmedian(&kept), mad_sigma(&kept));
        let mut changed = false;
        for (i, r) in rms.iter().enumerate() {
            if !bad[i] && sig > 0.0 && (r - med).abs() > 5.0 * sig {
                bad[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    bad
}

fn synth_params(ctx: &ActionCtx) -> Result<SynthParams, String> {
    let f = |k: &str| ctx.param(k).cloned();
    let fit_function = f("fit_function")
        .and_then(|v| v.as_str().map(|s| s.to_string()))
        .unwrap_or_else(|| "log".into());
    Ok(SynthParams {
        poly_ord: f("poly_ord").and_then(|v| v.as_i64()).unwrap_or(3) as i32,
        fit_function: FitFunction::parse(&fit_function)
            .ok_or_else(|| format!("fit_function '{fit_function}' is not log or linear"))?,
        n_samples: f("n_samples").and_then(|v| v.as_f64()).unwrap_or(5.0),
        dphi: f("dphi").and_then(|v| v.as_f64()),
        phi_max: f("phi_max").and_then(|v| v.as_f64()),
        weight_variance: f("weight_type")
            .and_then(|v| v.as_str().map(|s| s == "variance"))
            .unwrap_or(true),
        fit_rmsf: f("fit_rmsf").and_then(|v| v.as_bool()).unwrap_or(false),
    })
}

/// `rmsynth` (1D, per component).
pub struct RmSynth;

impl RmSynth {
    fn measure(
        ctx: &ActionCtx,
        comp: &Component,
        siblings: &[&Component],
    ) -> Result<Value, String> {
        // Q and U from frion (when `ion` is on) stand in for the uncorrected ones.
        let slots = ["ion_q", "ion_u", "mosaics"];
        let read = |s: usize| -> Result<(Cube, &PathBuf), String> {
            let p = stokes_input(ctx, &slots, s)?;
            Ok((Cube::read(p).map_err(|e| e.to_string())?, p))
        };
        let ((ci, pi), (cq, _), (cu, _)) = (read(0)?, read(1)?, read(2)?);
        if cq.nchan != ci.nchan || cu.nchan != ci.nchan {
            return Err(format!(
                "the Stokes I, Q and U mosaics have {}, {} and {} channels ({}); they must match: check NAXIS3 of the field's image.restored.i/q/u beam cubes",
                ci.nchan,
                cq.nchan,
                cu.nchan,
                pi.display()
            ));
        }
        let wcs = Wcs::from_header(&ci.header, pi).map_err(|e| e.to_string())?;
        let bmin = ci.header.get_f64("BMIN").unwrap_or(wcs.cdelt_y.abs() * 3.0);
        let Some((px, py)) = wcs.world_to_pix(comp.ra, comp.dec) else {
            return Ok(
                json!({"rmsynth1d": false, "reason": "component is on the far side of the mosaic's projection"}),
            );
        };
        let (xi, yi) = (px.round(), py.round());
        if xi < 0.0 || yi < 0.0 || xi >= ci.nx as f64 || yi >= ci.ny as f64 {
            return Ok(
                json!({"rmsynth1d": false, "reason": "component lies outside its island's mosaic"}),
            );
        }
        let (xi, yi) = (xi as usize, yi as usize);
        let ppb = bmin / wcs.cdelt_y.abs();
        let others: Vec<(f64, f64)> = siblings
            .iter()
            .filter(|c| c.id != comp.id)
            .filter_map(|c| wcs.world_to_pix(c.ra, c.dec))
            .collect();
        let freq: Vec<f64> = (0..ci.nchan).map(|c| wcs.freq(c)).collect();
        let mut spec = Vec::new();
        let mut noise = Vec::new();
        for c in [&ci, &cq, &cu] {
            let (bkg, rms) = annulus_stats(
                c,
                xi as f64,
                yi as f64,
                ppb,
                comp.maj_arcsec / 3600.0 / wcs.cdelt_y.abs(),
                &others,
            );
            let s: Vec<f64> = (0..c.nchan)
                .map(|ch| {
                    let v = c.at(ch, yi, xi) as f64;
                    if v == 0.0 || !v.is_finite() {
                        f64::NAN
                    } else {
                        v - bkg[ch]
                    }
                })
                .collect();
            spec.push(s);
            noise.push(rms);
        }
        let mut bad = vec![false; ci.nchan];
        for r in &noise {
            for (b, o) in bad.iter_mut().zip(rms_outliers(r)) {
                *b |= o;
            }
        }
        for k in 0..3 {
            for ch in 0..ci.nchan {
                if bad[ch] || !spec[k][ch].is_finite() {
                    spec[k][ch] = f64::NAN;
                    noise[k][ch] = f64::NAN;
                }
            }
        }
        let finite = |v: &Vec<f64>| v.iter().filter(|x| x.is_finite()).count();
        if finite(&spec[0]) == 0 || finite(&spec[1]) < 2 || finite(&spec[2]) < 2 {
            return Ok(json!({"rmsynth1d": false, "reason": "fewer than 2 usable channels"}));
        }
        let no_i = ctx
            .param("no_stokes_i")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let p = synth_params(ctx)?;
        let s = Spectrum {
            freq_hz: &freq,
            i: (!no_i).then_some(spec[0].as_slice()),
            q: &spec[1],
            u: &spec[2],
            di: (!no_i).then_some(noise[0].as_slice()),
            dq: &noise[1],
            du: &noise[2],
        };
        let (summary, arrays) = run_rmsynth(&s, &p);
        write_npy(
            out_path(ctx, "fdf")?,
            &[&arrays.axes.phi, &arrays.fdf_re, &arrays.fdf_im],
        )?;
        write_npy(
            out_path(ctx, "rmsf")?,
            &[&arrays.axes.phi2, &arrays.rmsf_re, &arrays.rmsf_im],
        )?;
        let mean = |v: &Vec<f64>| crate::science::stats::nanmean(v);
        Ok(json!({
            "rmsynth1d": true,
            "synth": summary,
            "beam": {"BMAJ": ci.header.get_f64("BMAJ"), "BMIN": ci.header.get_f64("BMIN"), "BPA": ci.header.get_f64("BPA")},
            "pixel": [xi, yi],
            "noise": {"dI": mean(&noise[0]), "dQ": mean(&noise[1]), "dU": mean(&noise[2])},
            "spectrum": {"freq_hz": freq, "I": spec[0], "Q": spec[1], "U": spec[2], "dI": noise[0], "dQ": noise[1], "dU": noise[2]},
            "lambda_sq": arrays.lambda_sq,
        }))
    }
}

impl Builtin for RmSynth {
    fn name(&self) -> &'static str {
        "rmsynth"
    }
    fn version(&self) -> u32 {
        2
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let id = ctx.var("component").ok_or("rmsynth runs per component")?;
        let comps = components(single(ctx, "components")?)?;
        let comp = comps.get(id).ok_or_else(|| {
            format!("component {id} is not in catalogue/components.csv (was it removed since the build started?)")
        })?;
        let siblings = comps.of_island(&comp.island);
        let mut v = Self::measure(ctx, comp, &siblings)?;
        v["cat_id"] = json!(comp.id);
        v["source_id"] = json!(comp.island);
        v["ra"] = json!(comp.ra);
        v["dec"] = json!(comp.dec);
        if v["rmsynth1d"] == json!(false) {
            write_npy(out_path(ctx, "fdf")?, &[&[]])?;
            write_npy(out_path(ctx, "rmsf")?, &[&[]])?;
        }
        write_json(out_path(ctx, "json")?, &v)
    }
}
