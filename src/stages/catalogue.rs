//! `catalogue` (per field): one row per component with RMTable column names, as CSV and as a
//! FITS binary table with units.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::io::{components, out_path, single, Component};
use super::{ActionCtx, Builtin};

/// `catalogue`: one row per component, RMTable column names, as CSV and a FITS binary table.
pub struct Catalogue;

impl Builtin for Catalogue {
    fn name(&self) -> &'static str {
        "catalogue"
    }
    fn version(&self) -> u32 {
        1
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let comps = components(single(ctx, "components")?)?;
        let load = |p: &PathBuf| -> Result<Value, String> {
            serde_json::from_str(
                &std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            )
            .map_err(|e| format!("{}: {e}", p.display()))
        };
        let mut synth: HashMap<String, Value> = HashMap::new();
        for p in ctx.input("synth") {
            let v = load(p)?;
            synth.insert(v["cat_id"].as_str().unwrap_or("").to_string(), v);
        }
        let mut clean: HashMap<String, Value> = HashMap::new();
        for p in ctx.input("clean") {
            let v = load(p)?;
            clean.insert(v["cat_id"].as_str().unwrap_or("").to_string(), v);
        }
        let rows: Vec<&Component> = comps
            .list
            .iter()
            .filter(|c| synth.contains_key(&c.id))
            .collect();
        let snr_cut = ctx.param("snr_cut").and_then(|v| v.as_f64()).unwrap_or(8.0);
        // (name, unit, value per row)
        let num =
            |f: &dyn Fn(&Component) -> f64| -> Vec<f64> { rows.iter().map(|c| f(c)).collect() };
        let sv = |c: &Component, k: &str| synth[&c.id]["synth"][k].as_f64().unwrap_or(f64::NAN);
        let cv = |c: &Component, k: &str| {
            clean
                .get(&c.id)
                .and_then(|v| v["clean"][k].as_f64())
                .unwrap_or(f64::NAN)
        };
        let ok = |c: &Component| synth[&c.id]["rmsynth1d"] == json!(true);
        let spectral_index = |c: &Component| -> f64 {
            let coeffs = synth[&c.id]["synth"]["polyCoeffs"].as_str().unwrap_or("");
            let v: Vec<f64> = coeffs.split(',').filter_map(|s| s.parse().ok()).collect();
            if v.len() == 6 && synth[&c.id]["synth"]["fit_function"] == json!("log") {
                v[4]
            } else {
                f64::NAN
            }
        };
        let polint = num(&|c| cv(c, "ampPeakPIfitEff"));
        let stokes_i = num(&|c| sv(c, "Ifreq0"));
        let columns: Vec<(&str, &str, Vec<f64>)> = vec![
            ("ra", "deg", num(&|c| c.ra)),
            ("dec", "deg", num(&|c| c.dec)),
            ("rm", "rad/m2", num(&|c| cv(c, "phiPeakPIfit_rm2"))),
            ("rm_err", "rad/m2", num(&|c| cv(c, "dPhiPeakPIfit_rm2"))),
            ("polint", "Jy/beam", polint.clone()),
            ("polint_err", "Jy/beam", num(&|c| cv(c, "dAmpPeakPIfit"))),
            ("snr_polint", "", num(&|c| cv(c, "snrPIfit"))),
            ("stokesI", "Jy/beam", stokes_i.clone()),
            (
                "stokesI_err",
                "Jy/beam",
                num(&|c| synth[&c.id]["noise"]["dI"].as_f64().unwrap_or(f64::NAN)),
            ),
            (
                "fracpol",
                "",
                polint.iter().zip(&stokes_i).map(|(p, i)| p / i).collect(),
            ),
            (
                "fracpol_err",
                "",
                num(&|c| cv(c, "dAmpPeakPIfit") / sv(c, "Ifreq0")),
            ),
            ("polangle", "deg", num(&|c| cv(c, "polAngleFit_deg"))),
            ("polangle_err", "deg", num(&|c| cv(c, "dPolAngleFit_deg"))),
            ("derot_polangle", "deg", num(&|c| cv(c, "polAngle0Fit_deg"))),
            (
                "derot_polangle_err",
                "deg",
                num(&|c| cv(c, "dPolAngle0Fit_deg")),
            ),
            ("spectral_index", "", num(&spectral_index)),
            ("reffreq_pol", "Hz", num(&|c| sv(c, "freq0_Hz"))),
            ("reffreq_I", "Hz", num(&|c| sv(c, "freq0_Hz"))),
            ("rmsf_fwhm", "rad/m2", num(&|c| sv(c, "fwhmRMSF"))),
            ("lambda0_sq", "m2", num(&|c| sv(c, "lam0Sq_m2"))),
            ("minfreq", "Hz", num(&|c| sv(c, "min_freq"))),
            ("maxfreq", "Hz", num(&|c| sv(c, "max_freq"))),
            (
                "channelwidth",
                "Hz",
                num(&|c| sv(c, "median_channel_width")),
            ),
            ("noise_chan", "Jy/beam", num(&|c| sv(c, "dQU"))),
            ("fdf_noise_th", "Jy/beam", num(&|c| sv(c, "dFDFth"))),
            ("fdf_noise_mad", "Jy/beam", num(&|c| cv(c, "dFDFcorMAD"))),
            ("rm_width", "rad/m2", num(&|c| cv(c, "mom2CCFDF"))),
            ("dirty_rm", "rad/m2", num(&|c| sv(c, "phiPeakPIfit_rm2"))),
            (
                "dirty_polint",
                "Jy/beam",
                num(&|c| sv(c, "ampPeakPIfitEff")),
            ),
        ];
        let nchan: Vec<i64> = rows
            .iter()
            .map(|c| synth[&c.id]["synth"]["N_channels"].as_i64().unwrap_or(0))
            .collect();
        let ifit: Vec<i64> = rows
            .iter()
            .map(|c| synth[&c.id]["synth"]["IfitStat"].as_i64().unwrap_or(-1))
            .collect();
        let snr_flag: Vec<bool> = rows
            .iter()
            .map(|c| {
                let snr = cv(c, "snrPIfit");
                snr.is_nan() || snr < snr_cut
            })
            .collect();
        let ok_flag: Vec<bool> = rows.iter().map(|c| !ok(c)).collect();
        let ifit_flag: Vec<bool> = ifit.iter().map(|&s| s >= 64 || s == 9).collect();
        let reason: Vec<String> = rows
            .iter()
            .map(|c| synth[&c.id]["reason"].as_str().unwrap_or("").to_string())
            .collect();
        // CSV (quoted where a field needs it; empty where a value is not finite).
        let csv_err = |e: csv::Error| e.to_string();
        let mut w = csv::Writer::from_path(out_path(ctx, "csv")?).map_err(csv_err)?;
        let mut header = vec!["cat_id", "source_id"];
        header.extend(columns.iter().map(|c| c.0));
        header.extend([
            "Nchan",
            "stokesI_fit_stat",
            "snr_flag",
            "stokesI_fit_flag",
            "rmsynth_failed",
            "failure_reason",
        ]);
        w.write_record(&header).map_err(csv_err)?;
        for (r, c) in rows.iter().enumerate() {
            let mut rec = vec![c.id.clone(), c.island.clone()];
            rec.extend(columns.iter().map(|(_, _, v)| {
                if v[r].is_finite() {
                    v[r].to_string()
                } else {
                    String::new()
                }
            }));
            rec.extend([
                nchan[r].to_string(),
                ifit[r].to_string(),
                snr_flag[r].to_string(),
                ifit_flag[r].to_string(),
                ok_flag[r].to_string(),
                reason[r].clone(),
            ]);
            w.write_record(&rec).map_err(csv_err)?;
        }
        w.flush().map_err(|e| e.to_string())?;
        // FITS binary table.
        use crate::fits::Column;
        let mut cols: Vec<(String, String, Column)> = vec![
            (
                "cat_id".into(),
                "".into(),
                Column::Str(rows.iter().map(|c| c.id.clone()).collect()),
            ),
            (
                "source_id".into(),
                "".into(),
                Column::Str(rows.iter().map(|c| c.island.clone()).collect()),
            ),
        ];
        for (n, u, v) in columns {
            cols.push((n.to_string(), u.to_string(), Column::F64(v)));
        }
        cols.push(("Nchan".into(), "".into(), Column::I64(nchan)));
        cols.push(("stokesI_fit_stat".into(), "".into(), Column::I64(ifit)));
        cols.push(("snr_flag".into(), "".into(), Column::Bool(snr_flag)));
        cols.push((
            "stokesI_fit_flag".into(),
            "".into(),
            Column::Bool(ifit_flag),
        ));
        cols.push(("rmsynth_failed".into(), "".into(), Column::Bool(ok_flag)));
        cols.push(("failure_reason".into(), "".into(), Column::Str(reason)));
        let mut extra = crate::fits::Header::default();
        extra.set_str("FIELD", ctx.var("field").unwrap_or(""), "");
        extra.set_str("ORIGIN", "arrakis", "");
        crate::fits::write_table(out_path(ctx, "fits")?, "CATALOGUE", &cols, &extra)
            .map_err(|e| e.to_string())
    }
}
