//! RM-Tools' four commands, as RM-Tools users type them: `rmsynth1d`, `rmclean1d` (one text
//! spectrum) and `rmsynth3d`, `rmclean3d` (FITS cubes). Same flags, same defaults, same output
//! files (names, columns, `key=value` and JSON keys in RM-Tools' order); the kernels are the
//! pipeline's (`science::rm_synthesis`, `rm_clean`, `rm3d`), which agree with RM-Tools to ~1e-6.
//!
//! Must never: take a default from the pipeline's parameter table (the same file must give
//! RM-Tools' answer); write an output other than by temp-file-then-rename.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::cli::{Rmclean1dArgs, Rmclean3dArgs, Rmsynth1dArgs, Rmsynth3dArgs};
use crate::pyfmt::{g, repr_f64, savetxt};
use crate::science::rm_clean::{clean_spectrum, CleanInput, CleanParams};
use crate::science::rm_synthesis::{run_rmsynth, SynthParams};
use crate::science::stokes_i::FitFunction;

/// RM-Tools' order of the peak measurements that open both `_RMsynth` and `_RMclean`.
const PEAK_KEYS: &[&str] = &[
    "dFDFcorMAD",
    "phiPeakPIfit_rm2",
    "dPhiPeakPIfit_rm2",
    "ampPeakPIfit",
    "ampPeakPIfitEff",
    "dAmpPeakPIfit",
    "snrPIfit",
    "indxPeakPIfit",
    "peakFDFimagFit",
    "peakFDFrealFit",
    "polAngleFit_deg",
    "dPolAngleFit_deg",
    "polAngle0Fit_deg",
    "dPolAngle0Fit_deg",
];

/// RM-Tools' order of the rest of the `_RMsynth` keys (`run_rmsynth`'s mDict).
const RMSYNTH_KEYS: &[&str] = &[
    "Ifreq0",
    "polyCoeffs",
    "polyCoefferr",
    "polyOrd",
    "IfitStat",
    "IfitChiSqRed",
    "fit_function",
    "lam0Sq_m2",
    "freq0_Hz",
    "fwhmRMSF",
    "dQU",
    "dFDFth",
    "units",
    "min_freq",
    "max_freq",
    "N_channels",
    "median_channel_width",
    "fracPol",
    "sigmaAddQ",
    "dSigmaAddMinusQ",
    "dSigmaAddPlusQ",
    "sigmaAddU",
    "dSigmaAddMinusU",
    "dSigmaAddPlusU",
    "sigmaAddC",
    "dSigmaAddMinusC",
    "dSigmaAddPlusC",
];

/// RM-Tools' order of the rest of the `_RMclean` keys (`run_rmclean`'s mDict_cl).
const RMCLEAN_KEYS: &[&str] = &[
    "cleanCutoff",
    "nIter",
    "mom2CCFDF",
    "dPhiObserved_rm2",
    "dAmpObserved",
    "dPolAngleFitObserved_deg",
    "dPolAngleFit0Observed_deg",
];

/// `os.path.splitext(path)[0]`: the path without its last extension (a leading dot of the file
/// name is not an extension).
fn prefix_of(path: &Path) -> String {
    let s = path.to_string_lossy().to_string();
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    match s[name_start..].rfind('.') {
        Some(dot) if s[name_start..][..dot].chars().any(|c| c != '.') => {
            s[..name_start + dot].to_string()
        }
        _ => s,
    }
}

/// The keys of `map` in the order of `groups` (one after another), then any others
/// alphabetically.
fn ordered<'a>(
    map: &'a serde_json::Map<String, Value>,
    groups: &[&[&'a str]],
) -> Vec<(&'a str, &'a Value)> {
    let order: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let mut out: Vec<(&str, &Value)> = order
        .iter()
        .filter_map(|k| map.get(*k).map(|v| (*k, v)))
        .collect();
    for (k, v) in map {
        if !order.contains(&k.as_str()) {
            out.push((k.as_str(), v));
        }
    }
    out
}

/// A value as Python's `str` prints it (the `key=value` files). `null` is a NaN the JSON
/// serialiser could not carry.
fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "nan".into(),
        Value::Bool(b) => (if *b { "True" } else { "False" }).into(),
        Value::Number(n) if n.is_f64() => repr_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `json.dump` of the pairs as Python writes them (`", "` and `": "` separators, `NaN`).
fn py_json(pairs: &[(&str, &Value)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let val = match v {
                Value::Null => "NaN".to_string(),
                Value::Number(n) if n.is_f64() => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    match repr_f64(x).as_str() {
                        "nan" => "NaN".into(),
                        "inf" => "Infinity".into(),
                        "-inf" => "-Infinity".into(),
                        s => s.to_string(),
                    }
                }
                other => other.to_string(),
            };
            format!("{}: {val}", Value::String(k.to_string()))
        })
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn key_value(pairs: &[(&str, &Value)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}\n", py_str(v)))
        .collect()
}

/// Read a JSON file as Python's `json` writes it (bare `NaN`, `Infinity` taken as null).
fn read_py_json(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text = crate::hash::read_regular_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut clean = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if in_str {
            clean.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let mut replaced = false;
        for tok in ["-Infinity", "Infinity", "NaN"] {
            if rest.starts_with(tok) {
                clean.push_str("null");
                rest = &rest[tok.len()..];
                replaced = true;
                break;
            }
        }
        if !replaced {
            if c == '"' {
                in_str = true;
            }
            clean.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    match serde_json::from_str::<Value>(&clean) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => bail!("{}: not a JSON object of measurements", path.display()),
        Err(e) => bail!("{}: not valid JSON ({e})", path.display()),
    }
}

fn num(m: &serde_json::Map<String, Value>, key: &str, path: &Path) -> Result<f64> {
    match m.get(key) {
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::Null) => Ok(f64::NAN),
        Some(_) => bail!("{}: key {key:?} is not a number", path.display()),
        None => bail!(
            "{}: no key {key:?}; rmclean1d needs the _RMsynth.json that rmsynth1d -S writes",
            path.display()
        ),
    }
}

/// A numeric text file as `np.loadtxt` reads it: whitespace-separated, `#` comments.
fn loadtxt(path: &Path, ncol: usize, hint: &str) -> Result<Vec<Vec<f64>>> {
    let text = crate::hash::read_regular_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("{}: no such file; {hint}", path.display())
        } else {
            anyhow!("{}: cannot read ({e})", path.display())
        }
    })?;
    let mut cols = vec![Vec::new(); ncol];
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let vals: Vec<&str> = line.split_whitespace().collect();
        if vals.len() != ncol {
            bail!(
                "{}:{}: {} columns where {ncol} were expected",
                path.display(),
                n + 1,
                vals.len()
            );
        }
        for (c, v) in vals.iter().enumerate() {
            let x: f64 = v
                .parse()
                .map_err(|_| anyhow!("{}:{}: {v:?} is not a number", path.display(), n + 1))?;
            cols[c].push(x);
        }
    }
    if cols[0].is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(cols)
}

fn save(path: &str, text: &str, verbose: bool) -> Result<()> {
    write_atomic(Path::new(path), text.as_bytes())
        .with_context(|| format!("{path}: cannot write"))?;
    if verbose {
        println!("> {path}");
    }
    Ok(())
}

/// The measurements: `_{stem}.dat` and `.json` with -S; printed as JSON when nothing else
/// was asked for (RM-Tools prints nothing then).
fn measurements(
    prefix: &str,
    stem: &str,
    pairs: &[(&str, &Value)],
    o: &crate::cli::Output1dArgs,
) -> Result<i32> {
    if o.save {
        if o.verbose {
            println!("Saving the measurements on the FDF in 'key=val' and JSON formats.");
        }
        save(
            &format!("{prefix}_{stem}.dat"),
            &key_value(pairs),
            o.verbose,
        )?;
        save(&format!("{prefix}_{stem}.json"), &py_json(pairs), o.verbose)?;
    }
    if !(o.save || o.verbose || o.plots) {
        println!("{}", py_json(pairs));
    }
    Ok(0)
}

const RULE: &str =
    "--------------------------------------------------------------------------------";

/// `arrakis rmsynth1d`.
pub fn rmsynth1d(a: &Rmsynth1dArgs) -> Result<i32> {
    if a.axis.super_resolution {
        bail!("-r/--super-resolution (Rudnick & Cotton's RMSF optimisation) is not implemented in arrakis; use RM-Tools' rmsynth1d -r for it");
    }
    let mut data = crate::stages::rm1d::read_spectrum(&a.file)?;
    if a.no_stokes_i {
        data.i = None;
        data.di = None;
    }
    if a.out.verbose {
        println!("Reading the data file '{}':", a.file.display());
        if data.i.is_none() {
            println!("Warn: no Stokes I data in use.");
        }
    }
    let p = SynthParams {
        poly_ord: a.poly_ord,
        fit_function: if a.fit_function == "linear" {
            FitFunction::Linear
        } else {
            FitFunction::Log
        },
        n_samples: a.n_samples,
        dphi: a.axis.dphi,
        phi_max: a.axis.phi_max,
        weight_variance: a.weight_type == "variance",
        fit_rmsf: a.axis.fit_rmsf,
    };
    let (s, arr) = run_rmsynth(&data.spectrum(), &p);
    let mut m = match serde_json::to_value(&s)? {
        Value::Object(m) => m,
        _ => unreachable!("a struct serialises to an object"),
    };
    m.insert("units".into(), Value::String(a.units.clone()));
    let pairs = ordered(&m, &[PEAK_KEYS, RMSYNTH_KEYS]);
    if a.out.verbose {
        let f = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let u = &a.units;
        println!(
            "PhiArr = {:.2} to {:.2} by {:.2} ({} chans).",
            arr.axes.phi[0],
            arr.axes.phi[arr.axes.phi.len() - 1],
            arr.axes.dphi,
            arr.axes.phi.len()
        );
        println!("Weight type is '{}'.", a.weight_type);
        println!("\n{RULE}\nRESULTS:\n");
        println!("FWHM RMSF = {} rad/m^2", g(f("fwhmRMSF"), 4));
        println!(
            "Pol Angle = {} (+/-{}) deg",
            g(f("polAngleFit_deg"), 4),
            g(f("dPolAngleFit_deg"), 4)
        );
        println!(
            "Pol Angle 0 = {} (+/-{}) deg",
            g(f("polAngle0Fit_deg"), 4),
            g(f("dPolAngle0Fit_deg"), 4)
        );
        println!(
            "Peak FD = {} (+/-{}) rad/m^2",
            g(f("phiPeakPIfit_rm2"), 4),
            g(f("dPhiPeakPIfit_rm2"), 4)
        );
        println!("freq0_GHz = {} ", g(f("freq0_Hz") / 1e9, 4));
        println!("I freq0 = {} {u}", g(f("Ifreq0"), 4));
        println!(
            "Peak PI = {} (+/-{}) {u}",
            g(f("ampPeakPIfit"), 4),
            g(f("dAmpPeakPIfit"), 4)
        );
        println!("QU Noise = {} {u}", g(f("dQU"), 4));
        println!("FDF Noise (theory)   = {} {u}", g(f("dFDFth"), 4));
        println!("FDF Noise (Corrected MAD) = {} {u}", g(f("dFDFcorMAD"), 4));
        println!("FDF SNR = {} ", g(f("snrPIfit"), 4));
        println!(
            "sigma_add (combined) = {} (+{}, -{})",
            g(f("sigmaAddC"), 4),
            g(f("dSigmaAddPlusC"), 4),
            g(f("dSigmaAddMinusC"), 4)
        );
        println!("Fitted polynomial order = {} ", s.polyOrd);
        println!("\n{RULE}");
    }
    let prefix = prefix_of(&a.file);
    if a.out.plots {
        let files = super::rmtools_plots::synth1d(&prefix, &data, &arr, &s, &a.units)?;
        for f in files {
            println!("plot: {f}");
        }
    }
    if a.out.save {
        if a.out.verbose {
            println!("Saving the dirty FDF, RMSF weight arrays to ASCII files.");
        }
        save(
            &format!("{prefix}_FDFdirty.dat"),
            &savetxt(&[&arr.axes.phi, &arr.fdf_re, &arr.fdf_im]),
            a.out.verbose,
        )?;
        save(
            &format!("{prefix}_RMSF.dat"),
            &savetxt(&[&arr.axes.phi2, &arr.rmsf_re, &arr.rmsf_im]),
            a.out.verbose,
        )?;
        save(
            &format!("{prefix}_weight.dat"),
            &savetxt(&[&data.freq_hz, &arr.weights]),
            a.out.verbose,
        )?;
    }
    measurements(&prefix, "RMsynth", &pairs, &a.out)
}

/// `arrakis rmclean1d`.
pub fn rmclean1d(a: &Rmclean1dArgs) -> Result<i32> {
    let prefix = prefix_of(&a.file);
    let hint = format!(
        "rmclean1d cleans what `arrakis rmsynth1d -S {}` writes: run that first",
        a.file.display()
    );
    let fdf = loadtxt(Path::new(&format!("{prefix}_FDFdirty.dat")), 3, &hint)?;
    let rmsf_path = format!("{prefix}_RMSF.dat");
    let rmsf = loadtxt(Path::new(&rmsf_path), 3, &hint)?;
    let weight = loadtxt(Path::new(&format!("{prefix}_weight.dat")), 2, &hint)?;
    let jpath = PathBuf::from(format!("{prefix}_RMsynth.json"));
    if !jpath.exists() {
        bail!("{}: no such file; {hint}", jpath.display());
    }
    let synth = read_py_json(&jpath)?;
    if rmsf[0].len() != 2 * fdf[0].len() + 1 {
        bail!(
            "{rmsf_path}: {} rows; the RMSF of a {}-sample FDF has {} (were the files written by one rmsynth1d run?)",
            rmsf[0].len(),
            fdf[0].len(),
            2 * fdf[0].len() + 1
        );
    }
    let lambda_sq: Vec<f64> = weight[0]
        .iter()
        .map(|f| (crate::science::C_M_S / f).powi(2))
        .collect();
    let units = synth
        .get("units")
        .and_then(Value::as_str)
        .unwrap_or("Jy/beam")
        .to_string();
    let inp = CleanInput {
        fdf_re: &fdf[1],
        fdf_im: &fdf[2],
        rmsf_re: &rmsf[1],
        rmsf_im: &rmsf[2],
        phi: &fdf[0],
        lambda_sq: &lambda_sq,
        fwhm_rmsf: num(&synth, "fwhmRMSF", &jpath)?,
        dfdf_th: num(&synth, "dFDFth", &jpath)?,
        lam0_sq: num(&synth, "lam0Sq_m2", &jpath)?,
    };
    let c = CleanParams {
        cutoff: a.cutoff,
        max_iter: a.max_iter,
        gain: a.gain,
        window: a.window,
    };
    let (cs, r) = clean_spectrum(&inp, &c);
    let m = match serde_json::to_value(&cs)? {
        Value::Object(m) => m,
        _ => unreachable!("a struct serialises to an object"),
    };
    let pairs = ordered(&m, &[PEAK_KEYS, RMCLEAN_KEYS]);
    if a.out.verbose {
        let f = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let sf = |k: &str| num(&synth, k, &jpath).unwrap_or(f64::NAN);
        let u = &units;
        println!("Expected RMS noise = {} flux units", g(inp.dfdf_th, 4));
        if a.cutoff < 0.0 {
            println!("Using a sigma cutoff of {}.", repr_f64(-a.cutoff));
        }
        println!("Absolute value = {}", g(cs.cleanCutoff, 4));
        println!("\n{RULE}\nRESULTS:\n");
        println!("FWHM RMSF = {} rad/m^2", g(inp.fwhm_rmsf, 4));
        println!(
            "Pol Angle = {} (+/-{} observed, +- {} theoretical) deg",
            g(f("polAngleFit_deg"), 4),
            g(f("dPolAngleFitObserved_deg"), 4),
            g(f("dPolAngleFit_deg"), 4)
        );
        println!(
            "Pol Angle 0 = {} (+/-{} observed, +- {} theoretical) deg",
            g(f("polAngle0Fit_deg"), 4),
            g(f("dPolAngleFit0Observed_deg"), 4),
            g(f("dPolAngle0Fit_deg"), 4)
        );
        println!(
            "Peak FD = {} (+/-{} observed, +- {} theoretical) rad/m^2",
            g(f("phiPeakPIfit_rm2"), 4),
            g(f("dPhiObserved_rm2"), 4),
            g(f("dPhiPeakPIfit_rm2"), 4)
        );
        println!("freq0_GHz = {} ", g(sf("freq0_Hz") / 1e9, 4));
        println!("I freq0 = {} {u}", g(sf("Ifreq0"), 4));
        println!(
            "Peak PI = {} (+/-{} observed, +- {} theoretical) {u}",
            g(f("ampPeakPIfit"), 4),
            g(f("dAmpObserved"), 4),
            g(f("dAmpPeakPIfit"), 4)
        );
        println!("QU Noise = {} {u}", g(sf("dQU"), 4));
        println!("FDF Noise (theory)   = {} {u}", g(inp.dfdf_th, 4));
        println!("FDF Noise (Corrected MAD) = {} {u}", g(f("dFDFcorMAD"), 4));
        println!("FDF SNR = {} ", g(f("snrPIfit"), 4));
        println!("\n{RULE}");
    }
    if a.out.plots {
        let file = super::rmtools_plots::clean1d(&prefix, &fdf, &r, cs.cleanCutoff, &units)?;
        println!("plot: {file}");
    }
    if a.out.save {
        if a.out.verbose {
            println!("Saving the clean FDF and component model to ASCII files.");
        }
        save(
            &format!("{prefix}_FDFclean.dat"),
            &savetxt(&[&fdf[0], &r.clean_re, &r.clean_im]),
            a.out.verbose,
        )?;
        save(
            &format!("{prefix}_FDFmodel.dat"),
            &savetxt(&[&fdf[0], &r.cc_re, &r.cc_im]),
            a.out.verbose,
        )?;
    }
    measurements(&prefix, "RMclean", &pairs, &a.out)
}

/// `arrakis rmsynth3d`.
pub fn rmsynth3d(a: &Rmsynth3dArgs) -> Result<i32> {
    if a.axis.super_resolution {
        bail!("-r/--super-resolution (Rudnick & Cotton's RMSF optimisation) is not implemented in arrakis; use RM-Tools' rmsynth3d -r for it");
    }
    if a.extensions {
        bail!("-f (the Stokes parts as extensions of one file) is not written by arrakis; leave it out to get RM-Tools' separate files (FDF_real_dirty.fits, FDF_im_dirty.fits, FDF_tot_dirty.fits)");
    }
    let freqs = loadtxt(
        &a.freq_file,
        1,
        "give the channel frequencies in Hz, one per line",
    )?
    .remove(0);
    let noise = match &a.noise_file {
        Some(p) => Some(loadtxt(p, 1, "give one noise value per channel, one per line")?.remove(0)),
        None => None,
    };
    let out_dir = a.fits_q.parent().map(Path::to_path_buf).unwrap_or_default();
    let opts = crate::stages::rm3d::Synth3dFiles {
        q: a.fits_q.clone(),
        u: a.fits_u.clone(),
        i: a.fits_i.clone(),
        freqs,
        noise,
        variance: a.weight_type == "variance",
        params: crate::science::rm3d::Synth3dParams {
            dphi: a.axis.dphi,
            phi_max: a.axis.phi_max,
            n_samples: a.n_samples,
            fit_rmsf: a.axis.fit_rmsf,
            transform: crate::science::rm3d::Transform::Auto,
        },
        rmsf: !a.no_rmsf,
        out: out_dir,
        prefix: a.prefix.clone(),
    };
    let written = crate::stages::rm3d::synth3d_files(&opts)?;
    if a.verbose {
        for w in written {
            println!("> {}", w.display());
        }
    }
    Ok(0)
}

/// `arrakis rmclean3d`.
pub fn rmclean3d(a: &Rmclean3dArgs) -> Result<i32> {
    if a.window.is_some() {
        bail!("-w (a windowed second CLEAN) is 1D only in arrakis (rmclean1d -w); run rmclean3d without it");
    }
    if a.extensions {
        bail!("-f (the Stokes parts as extensions of one file) is not written by arrakis; leave it out to get RM-Tools' separate files");
    }
    let sibling = |p: &Path, from: &[&str], to: &str| -> PathBuf {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut new = name.clone();
        for f in from {
            new = new.replace(f, to);
        }
        p.with_file_name(new)
    };
    let f = &a.fits_fdf;
    let r = &a.fits_rmsf;
    let opts = crate::stages::rm3d::Clean3dFiles {
        fdf_real: sibling(f, &["_tot", "_im"], "_real"),
        fdf_im: sibling(f, &["_tot", "_real"], "_im"),
        rmsf_real: sibling(r, &["_tot", "_im"], "_real"),
        rmsf_im: sibling(r, &["_tot", "_real"], "_im"),
        rmsf_fwhm: sibling(r, &["_real", "_im", "_tot"], "_FWHM"),
        cutoff: a.cutoff,
        max_iter: a.max_iter,
        gain: a.gain,
        out: f.parent().map(Path::to_path_buf).unwrap_or_default(),
        prefix: a.prefix.clone(),
    };
    let written = crate::stages::rm3d::clean3d_files(&opts)?;
    if a.verbose {
        for w in written {
            println!("> {}", w.display());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_os_path_splitext() {
        assert_eq!(prefix_of(Path::new("a/src.dat")), "a/src");
        assert_eq!(prefix_of(Path::new("src.x.dat")), "src.x");
        assert_eq!(prefix_of(Path::new("src")), "src");
        assert_eq!(prefix_of(Path::new(".hidden")), ".hidden");
        assert_eq!(prefix_of(Path::new("d.d/src")), "d.d/src");
    }

    #[test]
    fn python_json_round_trips_nan() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        let m: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"a": 1.5, "s": "NaN here", "n": 2}"#).unwrap();
        let mut m2 = m.clone();
        m2.insert("z".into(), Value::Null);
        let pairs = ordered(&m2, &[&["n"], &["a"]]);
        let text = py_json(&pairs);
        assert_eq!(text, r#"{"n": 2, "a": 1.5, "s": "NaN here", "z": NaN}"#);
        std::fs::write(&p, &text).unwrap();
        let back = read_py_json(&p).unwrap();
        assert_eq!(back.get("s").unwrap(), "NaN here");
        assert!(back.get("z").unwrap().is_null());
        assert_eq!(key_value(&pairs), "n=2\na=1.5\ns=NaN here\nz=nan\n");
    }
}
