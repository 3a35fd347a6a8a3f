//! `rmclean` (1D, per component): Hogbom RM-CLEAN of the dirty FDF that `rmsynth` wrote, and
//! the clean-peak parameters.
//!
//! Must never: clean a component rmsynth could not measure (its product says why; the clean
//! product then records that there was nothing to clean).

use ndarray::Array2;

use super::io::{out_path, read_npy, single, write_npy};
use super::params::{CUTOFF, GAIN, MAX_ITER, WINDOW};
use super::products::{CleanProduct, SynthProduct};
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};
use crate::science::rm_clean::{clean_spectrum, CleanInput, CleanParams};

static CONTRACT: Contract = Contract {
    name: "rmclean",
    version: 3,
    params: &[&CUTOFF, &MAX_ITER, &GAIN, &WINDOW],
    inputs: &[
        SlotSpec::required("synth", "rmsynth's summary (_RMsynth.json)"),
        SlotSpec::required("fdf", "rmsynth's dirty FDF (_FDFdirty.npy)"),
        SlotSpec::required("rmsf", "rmsynth's RMSF (_RMSF.npy)"),
    ],
    outputs: &["json", "fdf"],
    open: false,
};

/// `rmclean` (1D, per component).
pub struct RmClean;

/// The CLEAN parameters of a target.
pub fn clean_params(ctx: &ActionCtx) -> Result<CleanParams, StageError> {
    Ok(CleanParams {
        cutoff: ctx.f64(&CUTOFF)?,
        // Declared in [0, inf): the conversion cannot wrap.
        max_iter: ctx.i64(&MAX_ITER)? as usize,
        gain: ctx.f64(&GAIN)?,
        window: ctx.opt_f64(&WINDOW)?,
    })
}

impl Builtin for RmClean {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let synth = SynthProduct::read_for_clean(single(ctx, "synth")?)?;
        let mut out = CleanProduct {
            cat_id: synth.cat_id,
            clean: None,
        };
        if let Some((summary, lambda_sq)) = &synth.measured {
            let fdf_path = single(ctx, "fdf")?;
            let rmsf_path = single(ctx, "rmsf")?;
            let (fdf, rmsf) = (read_npy(fdf_path)?, read_npy(rmsf_path)?);
            let rows = |a: &Array2<f64>, n: usize, path: &std::path::Path| {
                if a.nrows() < n {
                    return Err(StageError::file(
                        path,
                        None,
                        format!("{} rows where rmsynth writes {n}; rebuild it", a.nrows()),
                    ));
                }
                Ok((0..n).map(|r| a.row(r).to_vec()).collect::<Vec<_>>())
            };
            let f = rows(&fdf, 3, fdf_path)?;
            let r = rows(&rmsf, 3, rmsf_path)?;
            let (summary, result) = clean_spectrum(
                &CleanInput {
                    fdf_re: &f[1],
                    fdf_im: &f[2],
                    rmsf_re: &r[1],
                    rmsf_im: &r[2],
                    phi: &f[0],
                    lambda_sq,
                    fwhm_rmsf: summary.fwhmRMSF,
                    dfdf_th: summary.dFDFth,
                    lam0_sq: summary.lam0Sq_m2,
                },
                &clean_params(ctx)?,
            );
            write_npy(
                out_path(ctx, "fdf")?,
                &[
                    &f[0],
                    &result.clean_re,
                    &result.clean_im,
                    &result.cc_re,
                    &result.cc_im,
                    &result.resid_re,
                    &result.resid_im,
                ],
            )?;
            out.clean = Some(summary);
        } else {
            write_npy(out_path(ctx, "fdf")?, &[&[]])?;
        }
        Ok(out.write(out_path(ctx, "json")?)?)
    }
}
