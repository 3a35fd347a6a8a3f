//! `rmclean` (1D, per component): Hogbom RM-CLEAN of the dirty FDF that `rmsynth` wrote, and
//! the clean-peak parameters.

use ndarray::Array2;
use serde_json::{json, Value};

use super::io::{out_path, read_npy, write_json, write_npy};
use super::{ActionCtx, Builtin};
use crate::science::rm_clean::{clean_spectrum, CleanInput, CleanParams};

/// `rmclean` (1D, per component).
pub struct RmClean;

impl Builtin for RmClean {
    fn name(&self) -> &'static str {
        "rmclean"
    }
    fn version(&self) -> u32 {
        3
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let synth_path = ctx.input("synth").first().ok_or("input 'synth' missing")?;
        let synth: Value = serde_json::from_str(
            &std::fs::read_to_string(synth_path)
                .map_err(|e| format!("{}: {e}", synth_path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", synth_path.display()))?;
        let mut out = json!({"cat_id": synth["cat_id"], "rmclean1d": false});
        if synth["rmsynth1d"] == json!(true) {
            let fdf = read_npy(ctx.input("fdf").first().ok_or("input 'fdf' missing")?)?;
            let rmsf = read_npy(ctx.input("rmsf").first().ok_or("input 'rmsf' missing")?)?;
            let row = |a: &Array2<f64>, r: usize| a.row(r).to_vec();
            let lsq: Vec<f64> = synth["lambda_sq"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
                .unwrap_or_default();
            let f = |k: &str| synth["synth"][k].as_f64().unwrap_or(f64::NAN);
            let p = CleanParams {
                cutoff: ctx.param("cutoff").and_then(|v| v.as_f64()).unwrap_or(-8.0),
                max_iter: ctx
                    .param("max_iter")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(10000)
                    .max(0) as usize,
                gain: ctx.param("gain").and_then(|v| v.as_f64()).unwrap_or(0.1),
                window: ctx.param("window").and_then(|v| v.as_f64()),
            };
            let (phi, fre, fim, rre, rim) = (
                row(&fdf, 0),
                row(&fdf, 1),
                row(&fdf, 2),
                row(&rmsf, 1),
                row(&rmsf, 2),
            );
            let (summary, result) = clean_spectrum(
                &CleanInput {
                    fdf_re: &fre,
                    fdf_im: &fim,
                    rmsf_re: &rre,
                    rmsf_im: &rim,
                    phi: &phi,
                    lambda_sq: &lsq,
                    fwhm_rmsf: f("fwhmRMSF"),
                    dfdf_th: f("dFDFth"),
                    lam0_sq: f("lam0Sq_m2"),
                },
                &p,
            );
            write_npy(
                out_path(ctx, "fdf")?,
                &[
                    &phi,
                    &result.clean_re,
                    &result.clean_im,
                    &result.cc_re,
                    &result.cc_im,
                    &result.resid_re,
                    &result.resid_im,
                ],
            )?;
            out["rmclean1d"] = json!(true);
            out["clean"] = serde_json::to_value(summary).map_err(|e| e.to_string())?;
        } else {
            write_npy(out_path(ctx, "fdf")?, &[&[]])?;
        }
        write_json(out_path(ctx, "json")?, &out)
    }
}
