//! Per-component stages: `rmsynth` (spectrum extraction from the island mosaics, then RM
//! synthesis) and `rmclean`, and the field's `catalogue`.
//!
//! A component whose spectrum cannot be measured (outside the mosaic, all channels blank) is a
//! recorded result with `rmsynth1d: false` and a reason, not a failed target.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::{json, Value};

use super::imaging::{read_components, Component};
use super::{ActionCtx, Builtin};
use crate::fits::Cube;
use crate::science::rm_clean::{clean_spectrum, CleanInput, CleanParams};
use crate::science::rm_synthesis::{run_rmsynth, Spectrum, SynthParams};
use crate::science::stats::{mad_sigma, nanmedian};
use crate::science::stokes_i::FitFunction;
use crate::wcs::Wcs;

fn out_path<'a>(ctx: &'a ActionCtx, name: &str) -> Result<&'a PathBuf, String> {
    ctx.outputs
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, p, _)| p)
        .ok_or_else(|| format!("{}: no output '{name}'", ctx.target))
}

fn write_npy(path: &Path, rows: &[&[f64]]) -> Result<(), String> {
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let a = Array2::from_shape_vec((rows.len(), n), flat).map_err(|e| e.to_string())?;
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ndarray_npy::WriteNpyExt::write_npy(&a, std::io::BufWriter::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_npy(path: &Path) -> Result<Array2<f64>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    <Array2<f64> as ndarray_npy::ReadNpyExt>::read_npy(f)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_json(path: &Path, v: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

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
        let mut v: Vec<f64> = idx
            .iter()
            .map(|&(y, x)| c.at(ch, y, x) as f64)
            .filter(|v| v.is_finite())
            .collect();
        if v.len() < 3 {
            continue;
        }
        loop {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let kept: Vec<f64> = v
                .iter()
                .copied()
                .filter(|x| (x - mean).abs() <= 3.0 * std)
                .collect();
            if kept.len() == v.len() || kept.len() < 3 {
                bkg[ch] = mean;
                rms[ch] = std;
                break;
            }
            v = kept;
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

fn stokes_of(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_string_lossy().to_string();
    ["i", "q", "u"]
        .iter()
        .position(|s| name.contains(&format!(".restored.{s}.")))
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
        let mut cubes: [Option<(Cube, PathBuf)>; 3] = [None, None, None];
        for p in ctx.input("mosaics").iter().chain(ctx.input("ion")) {
            let Some(s) = stokes_of(p) else { continue };
            // Q and U from frion (when given) replace the uncorrected ones.
            let is_ion = p.to_string_lossy().contains(".ion.");
            if cubes[s].is_none() || is_ion {
                cubes[s] = Some((Cube::read(p).map_err(|e| e.to_string())?, p.clone()));
            }
        }
        let [Some((ci, pi)), Some((cq, _)), Some((cu, _))] = cubes else {
            return Err("the island's I, Q and U mosaics are not all among the inputs".into());
        };
        if cq.nchan != ci.nchan || cu.nchan != ci.nchan {
            return Err(format!(
                "the mosaics have {}, {} and {} channels; I, Q and U must match",
                ci.nchan, cq.nchan, cu.nchan
            ));
        }
        let wcs = Wcs::from_header(&ci.header, &pi).map_err(|e| e.to_string())?;
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
        1
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let id = ctx.var("component").ok_or("rmsynth runs per component")?;
        let comps = read_components(
            ctx.input("components")
                .first()
                .ok_or("input 'components' missing")?,
        )?;
        let comp = comps
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("component {id} is not in the catalogue"))?;
        let siblings: Vec<&Component> = comps.iter().filter(|c| c.island == comp.island).collect();
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

/// `rmclean` (1D, per component).
pub struct RmClean;

impl Builtin for RmClean {
    fn name(&self) -> &'static str {
        "rmclean"
    }
    fn version(&self) -> u32 {
        1
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
        let comps = read_components(
            ctx.input("components")
                .first()
                .ok_or("input 'components' missing")?,
        )?;
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
        let rows: Vec<&Component> = comps.iter().filter(|c| synth.contains_key(&c.id)).collect();
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
