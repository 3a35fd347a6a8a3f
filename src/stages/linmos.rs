//! `linmos` (per island and Stokes): the primary-beam-weighted, inverse-variance mosaic of the
//! island's cutouts (yandasoft linmos's weighting) on the grid of the largest cutout, with its
//! weight cube.
//!
//! Must never: write anywhere but its temporary outputs.

use std::path::Path;

use super::io::{memo_by_file, read_weights};
use super::params::LINMOS_CUTOFF;
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{Cube, Image};
use crate::rules::{Contract, SlotSpec};
use crate::science::primary_beam::{
    offset_lm_deg, primary_beam_fwhm_deg, primary_beam_with_fwhm, BeamModel,
};
use crate::science::regrid::{sample, stencil, Stencil};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "linmos",
    version: 3,
    params: &[&LINMOS_CUTOFF],
    inputs: &[
        SlotSpec::required(
            "cutouts",
            "the island's cutout of this Stokes parameter in every beam",
        ),
        SlotSpec::required(
            "weights",
            "each cutout's channel weights, in the same order",
        ),
        SlotSpec::optional("holography", "a holography primary-beam model (FITS)"),
    ],
    outputs: &["mosaic", "weight"],
    open: false,
};

/// The beam number in a cutout's name (`....beamNN.conv.fits`).
fn beam_number(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    let rest = &name[name.rfind(".beam")? + 5..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Read a holography primary-beam model: a float FITS image with axes (l, m, FREQ[, BEAM]):
/// axes 1 and 2 are offsets from the beam pointing in degrees (CTYPE `L-OFFSET`, `M-OFFSET`;
/// l towards the east), axis 3 is frequency in Hz, and the optional axis 4 (CTYPE `BEAM`) numbers
/// the beams (CRVAL4 at CRPIX4, step 1). Without axis 4 one pattern serves every beam.
pub fn read_beam_model(path: &Path) -> Result<BeamModel, StageError> {
    let img = Image::read(path)?;
    let h = &img.header;
    let bad = |what: String| {
        StageError::file(
            path,
            None,
            format!(
                "{what}; a holography model has axes (L-OFFSET deg, M-OFFSET deg, FREQ Hz[, BEAM])"
            ),
        )
    };
    if !(img.shape.len() == 3 || img.shape.len() == 4) {
        return Err(bad(format!("{} axes", img.shape.len())));
    }
    let axis = |i: usize| -> Result<(f64, f64), StageError> {
        let key = |k: &str| format!("{k}{i}");
        let crval = h.get_f64(&key("CRVAL")).unwrap_or(0.0);
        let crpix = h.get_f64(&key("CRPIX")).unwrap_or(1.0);
        let cdelt = h
            .get_f64(&key("CDELT"))
            .filter(|d| *d != 0.0)
            .ok_or_else(|| bad(format!("{} is missing or zero", key("CDELT"))))?;
        // Value of the first sample (pixel 1) and the step.
        Ok((crval + (1.0 - crpix) * cdelt, cdelt))
    };
    for (i, want) in [(1, "L-OFFSET"), (2, "M-OFFSET"), (3, "FREQ"), (4, "BEAM")] {
        if i > img.shape.len() {
            break;
        }
        let got = h.get_str(&format!("CTYPE{i}")).unwrap_or_default();
        if got.trim() != want {
            return Err(bad(format!(
                "CTYPE{i} is '{}', expected '{want}'",
                got.trim()
            )));
        }
    }
    let (l0, dl) = axis(1)?;
    let (m0, dm) = axis(2)?;
    let (f0, df) = if img.shape[2] > 1 {
        axis(3)?
    } else {
        (h.get_f64("CRVAL3").unwrap_or(0.0), 1.0)
    };
    let (shared, beam0, nb) = if img.shape.len() == 4 {
        let (b0, db) = axis(4)?;
        if db != 1.0 || b0 < 0.0 || b0.fract() != 0.0 {
            return Err(bad(
                "the BEAM axis must count beams from a whole number in steps of 1".into(),
            ));
        }
        (false, b0 as usize, img.shape[3])
    } else {
        (true, 0, 1)
    };
    Ok(BeamModel {
        shape: [img.shape[0], img.shape[1], img.shape[2], nb],
        data: img.data,
        l0_deg: l0,
        dl_deg: dl,
        m0_deg: m0,
        dm_deg: dm,
        f0_hz: f0,
        df_hz: df,
        beam0,
        shared,
    })
}

/// `linmos`: out = Σ w_b B_b I_b / Σ w_b B_b² per pixel and channel on the grid of the largest
/// cutout, w_b the beam's channel weight (inverse variance), B_b the Gaussian primary beam about
/// the beam's pointing (the cutout's CRVAL); beams whose B_b is below `linmos_cutoff` are left
/// out, and pixels with no beam left are blank. Also writes Σ w_b B_b² as the weight cube.
pub struct Linmos;

impl Builtin for Linmos {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let cutoff = ctx.f64(&LINMOS_CUTOFF)?;
        let images = ctx.input("cutouts");
        let weights = ctx.input("weights");
        if images.is_empty() || images.len() != weights.len() {
            return Err(StageError::data(format!(
                "{}: {} cutouts but {} weight files",
                ctx.target,
                images.len(),
                weights.len()
            )));
        }
        // One model serves every island: parsed once per process, not once per target.
        let holography = match ctx.input("holography").first() {
            Some(p) => Some(memo_by_file(p, || read_beam_model(p))?),
            None => None,
        };
        let mut cubes = Vec::new();
        let mut beam_numbers = Vec::new();
        for p in images {
            beam_numbers.push(beam_number(p).ok_or_else(|| {
                StageError::file(
                    p,
                    None,
                    "cannot tell the beam of this cutout (expected '.beamNN.' in its name)",
                )
            })?);
            let c = Cube::read(p)?;
            let w = Wcs::from_header(&c.header, p)?;
            cubes.push((c, w));
        }
        let nchan = cubes[0].0.nchan;
        if let Some(k) = cubes.iter().position(|(c, _)| c.nchan != nchan) {
            return Err(StageError::data(format!(
                "{}: cutout {} has {} channels but {} has {nchan}; every beam must have the same channels (check NAXIS3 of the beam cubes)",
                ctx.target,
                images[k].display(),
                cubes[k].0.nchan,
                images[0].display()
            )));
        }
        let ws: Vec<Vec<f64>> = weights
            .iter()
            .map(|p| read_weights(p, nchan).map(|cw| cw.w))
            .collect::<Result<_, _>>()?;
        let (ref_i, _) = cubes
            .iter()
            .enumerate()
            .max_by_key(|(_, (c, _))| c.nx * c.ny)
            .ok_or_else(|| StageError::data(format!("{}: no cutouts", ctx.target)))?;
        let (out_nx, out_ny) = (cubes[ref_i].0.nx, cubes[ref_i].0.ny);
        let out_wcs = cubes[ref_i].1.clone();
        let mut out = vec![f32::NAN; out_nx * out_ny * nchan];
        let mut wout = vec![0f32; out_nx * out_ny * nchan];
        let freqs: Vec<f64> = (0..nchan).map(|ch| out_wcs.freq(ch)).collect();
        let fwhms: Vec<f64> = freqs.iter().map(|&f| primary_beam_fwhm_deg(f)).collect();
        let mut places: Vec<Option<(Stencil, f64, f64)>> = Vec::with_capacity(cubes.len());
        for y in 0..out_ny {
            for x in 0..out_nx {
                let (ra, dec) = out_wcs.pix_to_world(x as f64, y as f64);
                // Where this sky position falls in each beam's cutout (as an interpolation
                // stencil), and how far from its pointing.
                places.clear();
                places.extend(cubes.iter().map(|(c, w)| {
                    let (px, py) = w.world_to_pix(ra, dec)?;
                    let (l, m) = offset_lm_deg(ra, dec, w.crval_ra, w.crval_dec);
                    Some((stencil(c.nx, c.ny, px, py)?, l, m))
                }));
                // `ch` indexes the weights, the cubes and the output alike.
                #[allow(clippy::needless_range_loop)]
                for ch in 0..nchan {
                    let freq = freqs[ch];
                    let (mut num, mut den) = (0.0, 0.0);
                    for (b, place) in places.iter().enumerate() {
                        let Some((st, l, m)) = place else {
                            continue;
                        };
                        let (l, m) = (*l, *m);
                        let pb = match &holography {
                            Some(model) => model
                                .response(beam_numbers[b], l, m, freq)
                                .ok_or_else(|| {
                                    StageError::data(format!(
                                        "{}: the holography model has no beam {}; give a model that covers every beam, or drop holofile to use the Gaussian beam",
                                        ctx.target, beam_numbers[b]
                                    ))
                                })?,
                            None => primary_beam_with_fwhm((l * l + m * m).sqrt(), fwhms[ch]),
                        };
                        let w = ws[b][ch];
                        if pb < cutoff || w <= 0.0 || !w.is_finite() {
                            continue;
                        }
                        let v = sample(cubes[b].0.view(), ch, st);
                        if !v.is_finite() {
                            continue;
                        }
                        num += w * pb * v;
                        den += w * pb * pb;
                    }
                    let k = (ch * out_ny + y) * out_nx + x;
                    if den > 0.0 {
                        out[k] = (num / den) as f32;
                        wout[k] = den as f32;
                    }
                }
            }
        }
        let mut header = cubes[ref_i].0.header.clone();
        header.history(if holography.is_some() {
            "arrakis linmos: sum w B I / sum w B^2 (holography primary beams)"
        } else {
            "arrakis linmos: sum w B I / sum w B^2 (Gaussian primary beam, FWHM 1.09 lambda/D)"
        });
        for (name, path, _) in &ctx.outputs {
            let data = if *name == "mosaic" {
                out.clone()
            } else {
                wout.clone()
            };
            let mut h = header.clone();
            if *name != "mosaic" {
                h.set_str("BUNIT", "", "sum of w B^2");
            }
            Cube {
                nx: out_nx,
                ny: out_ny,
                nchan,
                data,
                header: h,
            }
            .write(path)?;
        }
        Ok(())
    }
}
