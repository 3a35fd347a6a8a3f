//! `catalogue` (per field): one row per component with RMTable column names, as CSV and as a
//! FITS binary table with units.

use std::collections::HashMap;

use super::io::{components, out_path, single, Component};
use super::params::SNR_CUT;
use super::products::{CleanProduct, SynthProduct};
use super::{ActionCtx, Builtin, StageError};
use crate::rules::{Contract, SlotSpec};
use crate::science::rm_clean::CleanSummary;
use crate::science::rm_synthesis::SynthSummary;

static CONTRACT: Contract = Contract {
    name: "catalogue",
    version: 1,
    params: &[&SNR_CUT],
    inputs: &[
        SlotSpec::required("synth", "every component's rmsynth summary"),
        SlotSpec::required("clean", "every component's rmclean summary"),
        SlotSpec::required(
            "components",
            "the component catalogue (ids, islands, positions)",
        ),
    ],
    outputs: &["csv", "fits"],
    open: false,
};

/// `catalogue`: one row per component, RMTable column names, as CSV and a FITS binary table.
pub struct Catalogue;

impl Builtin for Catalogue {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let comps = components(single(ctx, "components")?)?;
        let mut synth: HashMap<String, SynthProduct> = HashMap::new();
        for p in ctx.input("synth") {
            let v = SynthProduct::read(p)?;
            synth.insert(v.cat_id.clone(), v);
        }
        let mut clean: HashMap<String, CleanSummary> = HashMap::new();
        for p in ctx.input("clean") {
            let v = CleanProduct::read(p)?;
            if let Some(c) = v.clean {
                clean.insert(v.cat_id, c);
            }
        }
        let rows: Vec<&Component> = comps
            .list
            .iter()
            .filter(|c| synth.contains_key(&c.id))
            .collect();
        let snr_cut = ctx.f64(&SNR_CUT)?;
        // (name, unit, value per row)
        let num =
            |f: &dyn Fn(&Component) -> f64| -> Vec<f64> { rows.iter().map(|c| f(c)).collect() };
        let summary =
            |c: &Component| -> Option<&SynthSummary> { synth[&c.id].measured().map(|m| &m.synth) };
        // Values of a component rmsynth could not measure, or rmclean did not clean, are blank.
        let sv = |c: &Component, f: fn(&SynthSummary) -> f64| summary(c).map_or(f64::NAN, f);
        let cv = |c: &Component, f: fn(&CleanSummary) -> f64| clean.get(&c.id).map_or(f64::NAN, f);
        let ok = |c: &Component| summary(c).is_some();
        let spectral_index = |c: &Component| -> f64 {
            let Some(s) = summary(c) else {
                return f64::NAN;
            };
            let v: Vec<f64> = s
                .polyCoeffs
                .split(',')
                .filter_map(|s| s.parse().ok())
                .collect();
            if v.len() == 6 && s.fit_function == "log" {
                v[4]
            } else {
                f64::NAN
            }
        };
        let polint = num(&|c| cv(c, |s| s.peak.ampPeakPIfitEff));
        let stokes_i = num(&|c| sv(c, |s| s.Ifreq0));
        let columns: Vec<(&str, &str, Vec<f64>)> = vec![
            ("ra", "deg", num(&|c| c.ra)),
            ("dec", "deg", num(&|c| c.dec)),
            ("rm", "rad/m2", num(&|c| cv(c, |s| s.peak.phiPeakPIfit_rm2))),
            (
                "rm_err",
                "rad/m2",
                num(&|c| cv(c, |s| s.peak.dPhiPeakPIfit_rm2)),
            ),
            ("polint", "Jy/beam", polint.clone()),
            (
                "polint_err",
                "Jy/beam",
                num(&|c| cv(c, |s| s.peak.dAmpPeakPIfit)),
            ),
            ("snr_polint", "", num(&|c| cv(c, |s| s.peak.snrPIfit))),
            ("stokesI", "Jy/beam", stokes_i.clone()),
            (
                "stokesI_err",
                "Jy/beam",
                num(&|c| synth[&c.id].measured().map_or(f64::NAN, |m| m.noise.di)),
            ),
            (
                "fracpol",
                "",
                polint.iter().zip(&stokes_i).map(|(p, i)| p / i).collect(),
            ),
            (
                "fracpol_err",
                "",
                num(&|c| cv(c, |s| s.peak.dAmpPeakPIfit) / sv(c, |s| s.Ifreq0)),
            ),
            (
                "polangle",
                "deg",
                num(&|c| cv(c, |s| s.peak.polAngleFit_deg)),
            ),
            (
                "polangle_err",
                "deg",
                num(&|c| cv(c, |s| s.peak.dPolAngleFit_deg)),
            ),
            (
                "derot_polangle",
                "deg",
                num(&|c| cv(c, |s| s.peak.polAngle0Fit_deg)),
            ),
            (
                "derot_polangle_err",
                "deg",
                num(&|c| cv(c, |s| s.peak.dPolAngle0Fit_deg)),
            ),
            ("spectral_index", "", num(&spectral_index)),
            ("reffreq_pol", "Hz", num(&|c| sv(c, |s| s.freq0_Hz))),
            ("reffreq_I", "Hz", num(&|c| sv(c, |s| s.freq0_Hz))),
            ("rmsf_fwhm", "rad/m2", num(&|c| sv(c, |s| s.fwhmRMSF))),
            ("lambda0_sq", "m2", num(&|c| sv(c, |s| s.lam0Sq_m2))),
            ("minfreq", "Hz", num(&|c| sv(c, |s| s.min_freq))),
            ("maxfreq", "Hz", num(&|c| sv(c, |s| s.max_freq))),
            (
                "channelwidth",
                "Hz",
                num(&|c| sv(c, |s| s.median_channel_width)),
            ),
            ("noise_chan", "Jy/beam", num(&|c| sv(c, |s| s.dQU))),
            ("fdf_noise_th", "Jy/beam", num(&|c| sv(c, |s| s.dFDFth))),
            (
                "fdf_noise_mad",
                "Jy/beam",
                num(&|c| cv(c, |s| s.peak.dFDFcorMAD)),
            ),
            ("rm_width", "rad/m2", num(&|c| cv(c, |s| s.mom2CCFDF))),
            (
                "dirty_rm",
                "rad/m2",
                num(&|c| sv(c, |s| s.peak.phiPeakPIfit_rm2)),
            ),
            (
                "dirty_polint",
                "Jy/beam",
                num(&|c| sv(c, |s| s.peak.ampPeakPIfitEff)),
            ),
        ];
        let nchan: Vec<i64> = rows
            .iter()
            .map(|c| summary(c).map_or(0, |s| s.N_channels as i64))
            .collect();
        let ifit: Vec<i64> = rows
            .iter()
            .map(|c| summary(c).map_or(-1, |s| s.IfitStat as i64))
            .collect();
        let snr_flag: Vec<bool> = rows
            .iter()
            .map(|c| {
                let snr = cv(c, |s| s.peak.snrPIfit);
                snr.is_nan() || snr < snr_cut
            })
            .collect();
        let ok_flag: Vec<bool> = rows.iter().map(|c| !ok(c)).collect();
        let ifit_flag: Vec<bool> = ifit.iter().map(|&s| s >= 64 || s == 9).collect();
        let reason: Vec<String> = rows
            .iter()
            .map(|c| match &synth[&c.id].outcome {
                super::products::SynthOutcome::Failed { reason } => reason.clone(),
                super::products::SynthOutcome::Measured(_) => String::new(),
            })
            .collect();
        // CSV (quoted where a field needs it; empty where a value is not finite).
        let csv_path = out_path(ctx, "csv")?;
        let csv_err = |e: csv::Error| StageError::file(csv_path, None, e.to_string());
        let mut w = csv::Writer::from_path(csv_path).map_err(csv_err)?;
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
        w.flush().map_err(|e| StageError::io(csv_path, e))?;
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
        Ok(crate::fits::write_table(
            out_path(ctx, "fits")?,
            "CATALOGUE",
            &cols,
            &extra,
        )?)
    }
}
