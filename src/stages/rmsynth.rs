//! `rmsynth` (1D, per component): the spectrum at the component from the island's I/Q/U mosaics,
//! per-channel background and noise from an annulus, channel rejection as Arrakis does it, then
//! RM-Tools' synthesis and peak measurement (the science kernels).
//!
//! A component whose spectrum cannot be measured (outside the mosaic, all channels blank) is a
//! recorded result with `rmsynth1d: false` and a reason, not a failed target.

use std::path::PathBuf;

use super::io::{components, out_path, single, stokes_input, write_npy, Component};
use super::params::{
    DPHI, FIT_FUNCTION, FIT_RMSF, NO_STOKES_I, N_SAMPLES, PHI_MAX, POLY_ORD, WEIGHT_TYPE,
};
use super::products::{Beam, Measured, Noise, SpectrumProduct, SynthOutcome, SynthProduct};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::PlaneReader;
use crate::rules::{Contract, SlotSpec};
use crate::science::background::{annulus_pixels, annulus_stats_with, rms_outliers, runs};
use crate::science::rm_synthesis::{run_rmsynth, Spectrum, SynthParams};
use crate::science::stokes_i::FitFunction;
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "rmsynth",
    version: 5,
    params: &[
        &DPHI,
        &PHI_MAX,
        &N_SAMPLES,
        &POLY_ORD,
        &WEIGHT_TYPE,
        &FIT_FUNCTION,
        &FIT_RMSF,
        &NO_STOKES_I,
    ],
    inputs: &[
        SlotSpec::required("mosaics", "the island's Stokes I, Q and U mosaics (linmos)"),
        SlotSpec::optional(
            "ion_q",
            "the FRion-corrected Q mosaic, read instead of the plain one",
        ),
        SlotSpec::optional(
            "ion_u",
            "the FRion-corrected U mosaic, read instead of the plain one",
        ),
        SlotSpec::required(
            "components",
            "the component catalogue (position, major axis)",
        ),
    ],
    outputs: &["json", "fdf", "rmsf"],
    open: false,
};

fn synth_params(ctx: &ActionCtx) -> Result<SynthParams, StageError> {
    let fit_function = ctx.str(&FIT_FUNCTION)?;
    Ok(SynthParams {
        poly_ord: ctx.i64(&POLY_ORD)? as i32,
        fit_function: FitFunction::parse(fit_function).ok_or_else(|| {
            StageError::data(format!(
                "fit_function '{fit_function}' is not log or linear"
            ))
        })?,
        n_samples: ctx.f64(&N_SAMPLES)?,
        dphi: ctx.opt_f64(&DPHI)?,
        phi_max: ctx.opt_f64(&PHI_MAX)?,
        weight_variance: ctx.str(&WEIGHT_TYPE)? == "variance",
        fit_rmsf: ctx.bool(&FIT_RMSF)?,
    })
}

/// `rmsynth` (1D, per component).
pub struct RmSynth;

impl RmSynth {
    fn measure(
        ctx: &ActionCtx,
        comp: &Component,
        siblings: &[&Component],
    ) -> Result<SynthOutcome, StageError> {
        // Q and U from frion (when `ion` is on) stand in for the uncorrected ones.
        let slots = ["ion_q", "ion_u", "mosaics"];
        // Mapped, not read whole: the annulus and the component's pixel are all rmsynth takes
        // from each plane.
        let read = |s: usize| -> Result<(PlaneReader, &PathBuf), StageError> {
            let p = stokes_input(ctx, &slots, s)?;
            Ok((PlaneReader::open(p)?, p))
        };
        let failed = |reason: &str| {
            Ok(SynthOutcome::Failed {
                reason: reason.to_string(),
            })
        };
        let ((mut ci, pi), (mut cq, pq), (mut cu, pu)) = (read(0)?, read(1)?, read(2)?);
        for (c, p) in [(&cq, pq), (&cu, pu)] {
            if (c.nx, c.ny) != (ci.nx, ci.ny) {
                return Err(StageError::data(format!(
                    "{} is {}x{} pixels but {} is {}x{}; an island's I, Q and U mosaics share one grid: rebuild its linmos targets",
                    p.display(),
                    c.nx,
                    c.ny,
                    pi.display(),
                    ci.nx,
                    ci.ny
                )));
            }
        }
        if cq.nchan != ci.nchan || cu.nchan != ci.nchan {
            return Err(StageError::data(format!(
                "the Stokes I, Q and U mosaics have {}, {} and {} channels ({}); they must match: check NAXIS3 of the field's image.restored.i/q/u beam cubes",
                ci.nchan,
                cq.nchan,
                cu.nchan,
                pi.display()
            )));
        }
        let wcs = Wcs::from_header(&ci.header, pi)?;
        let bmin = ci.header.get_f64("BMIN").unwrap_or(wcs.cdelt_y.abs() * 3.0);
        let Some((px, py)) = wcs.world_to_pix(comp.ra, comp.dec) else {
            return failed("component is on the far side of the mosaic's projection");
        };
        let (xi, yi) = (px.round(), py.round());
        if xi < 0.0 || yi < 0.0 || xi >= ci.nx as f64 || yi >= ci.ny as f64 {
            return failed("component lies outside its island's mosaic");
        }
        let (xi, yi) = (xi as usize, yi as usize);
        let ppb = bmin / wcs.cdelt_y.abs();
        let others: Vec<(f64, f64)> = siblings
            .iter()
            .filter(|c| c.id != comp.id)
            .filter_map(|c| wcs.world_to_pix(c.ra, c.dec))
            .collect();
        let freq: Vec<f64> = (0..ci.nchan).map(|c| wcs.freq(c)).collect();
        // Stokes I, Q, U.
        let mut spec: [Vec<f64>; 3] = Default::default();
        let mut noise: [Vec<f64>; 3] = Default::default();
        let mut background: [Vec<f64>; 3] = Default::default();
        let at = annulus_pixels(
            ci.nx,
            ci.ny,
            xi as f64,
            yi as f64,
            ppb,
            comp.maj_arcsec / 3600.0 / wcs.cdelt_y.abs(),
            &others,
        );
        let nchan = ci.nchan;
        let runs = runs(&at);
        let mut got = Vec::new();
        for (k, c) in [&mut ci, &mut cq, &mut cu].into_iter().enumerate() {
            let (bkg, rms) = annulus_stats_with(nchan, |ch, v| c.gather_finite(ch, &runs, v))?;
            // The component's own pixel: a run of one.
            let centre = [yi * c.nx + xi].map(|k| k..k + 1);
            let mut s = Vec::with_capacity(nchan);
            for (ch, b) in bkg.iter().enumerate() {
                got.clear();
                c.gather(ch, &centre, &mut got)?;
                let v = got[0] as f64;
                s.push(if v == 0.0 || !v.is_finite() {
                    f64::NAN
                } else {
                    v - b
                });
            }
            spec[k] = s;
            noise[k] = rms;
            background[k] = bkg;
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
                    background[k][ch] = f64::NAN;
                }
            }
        }
        let finite = |v: &[f64]| v.iter().filter(|x| x.is_finite()).count();
        if finite(&spec[0]) == 0 || finite(&spec[1]) < 2 || finite(&spec[2]) < 2 {
            return failed("fewer than 2 usable channels");
        }
        let no_i = ctx.bool(&NO_STOKES_I)?;
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
        let [si, sq, su] = spec;
        Ok(SynthOutcome::Measured(Box::new(Measured {
            synth: summary,
            beam: Beam {
                bmaj: ci.header.get_f64("BMAJ"),
                bmin: ci.header.get_f64("BMIN"),
                bpa: ci.header.get_f64("BPA"),
            },
            pixel: [xi, yi],
            noise: Noise::from_channels(&noise, &background),
            spectrum: SpectrumProduct {
                freq_hz: freq,
                i: si,
                q: sq,
                u: su,
                di: noise[0].clone(),
                dq: noise[1].clone(),
                du: noise[2].clone(),
            },
            lambda_sq: arrays.lambda_sq,
        })))
    }
}

impl Builtin for RmSynth {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let id = ctx.unit_var("component")?;
        let comps = components(single(ctx, "components")?)?;
        let comp = comps.get(id).ok_or_else(|| {
            StageError::data(format!("component {id} is not in catalogue/components.csv (was it removed since the build started?)"))
        })?;
        let siblings = comps.of_island(&comp.island);
        let outcome = Self::measure(ctx, comp, &siblings)?;
        if matches!(outcome, SynthOutcome::Failed { .. }) {
            write_npy(out_path(ctx, "fdf")?, &[&[]])?;
            write_npy(out_path(ctx, "rmsf")?, &[&[]])?;
        }
        let product = SynthProduct {
            cat_id: comp.id.clone(),
            source_id: comp.island.clone(),
            ra: comp.ra,
            dec: comp.dec,
            outcome,
        };
        Ok(product.write(out_path(ctx, "json")?)?)
    }
}
