//! Agreement with RM-Tools (the numerical reference): the same spectra through arrakis's kernels
//! and through RM-Tools' Python API (`tests/py/rmtools_ref.py`, in the venv `.ci/run` makes).
//! Covers both weightings, both Stokes I models, fixed and default Faraday axes, a fitted RMSF,
//! flagged (NaN) channels, a spectrum without Stokes I, and RM-CLEAN with and without a window.

use std::path::{Path, PathBuf};

use crate::common::python;
use std::process::Command;

use arrakis::science::rm_clean::{run_rmclean, CleanParams};
use arrakis::science::rm_synthesis::{run_rmsynth, SynthParams};
use arrakis::science::stokes_i::FitFunction;
use arrakis::stages::rm1d::read_spectrum;
use serde_json::Value;

/// A small deterministic generator (SplitMix64 + Box–Muller), so spectra are the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

struct Case {
    name: &'static str,
    components: Vec<(f64, f64, f64)>, // (fractional pol, RM, psi0 rad)
    stokes_i: bool,
    nan_channels: Vec<usize>,
    poly_ord: i32,
    fit_function: &'static str,
    weight_type: &'static str,
    dphi: Option<f64>,
    phi_max: Option<f64>,
    n_samples: f64,
    fit_rmsf: bool,
    cutoff: f64,
    window: Option<f64>,
    noise: f64,
}

impl Default for Case {
    /// Arrakis's settings on a Faraday-thin source with Stokes I and no flagged channels.
    fn default() -> Case {
        Case {
            name: "",
            components: vec![],
            stokes_i: true,
            nan_channels: vec![],
            poly_ord: 3,
            fit_function: "log",
            weight_type: "variance",
            dphi: None,
            phi_max: None,
            n_samples: 5.0,
            fit_rmsf: false,
            cutoff: -8.0,
            window: None,
            noise: 0.002,
        }
    }
}

fn write_spectrum(dir: &Path, c: &Case, seed: u64) -> PathBuf {
    let mut rng = Rng(seed);
    let mut text = String::new();
    for k in 0..288 {
        let f = 743.5e6 + 1e6 * k as f64;
        let x: f64 = f / 887.5e6;
        let i_true = 0.8 * x.powf(-0.7 + 0.2 * x.log10());
        let l2 = (299_792_458.0 / f).powi(2);
        let (mut q, mut u) = (0.0, 0.0);
        for &(p, rm, psi) in &c.components {
            q += p * i_true * (2.0 * (psi + rm * l2)).cos();
            u += p * i_true * (2.0 * (psi + rm * l2)).sin();
        }
        let sig = c.noise * (1.0 + 0.3 * (k as f64 / 40.0).sin());
        let (mut i, mut qn, mut un) = (
            i_true + sig * rng.gauss(),
            q + sig * rng.gauss(),
            u + sig * rng.gauss(),
        );
        if c.nan_channels.contains(&k) {
            i = f64::NAN;
            qn = f64::NAN;
            un = f64::NAN;
        }
        if c.stokes_i {
            text.push_str(&format!(
                "{f:.17e} {i:.17e} {qn:.17e} {un:.17e} {sig:.17e} {sig:.17e} {sig:.17e}\n"
            ));
        } else {
            text.push_str(&format!(
                "{f:.17e} {:.17e} {:.17e} {:.17e} {:.17e}\n",
                qn / i_true,
                un / i_true,
                sig / i_true,
                sig / i_true
            ));
        }
    }
    let p = dir.join(format!("{}.dat", c.name));
    std::fs::write(&p, text).unwrap();
    p
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn close(what: &str, case: &str, ours: f64, theirs: f64, abs: f64, rel: f64) {
    let ok =
        (ours - theirs).abs() <= abs + rel * theirs.abs() || (ours.is_nan() && theirs.is_nan());
    assert!(
        ok,
        "{case}: {what}: arrakis {ours} vs RM-Tools {theirs} (tolerance {abs} + {rel}·|ref|)"
    );
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn arr(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

#[test]
fn rm_synthesis_and_clean_agree_with_rm_tools() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let nan: Vec<usize> = vec![3, 4, 5, 100, 101, 200, 250, 251, 252, 253];
    let cases = [
        Case {
            name: "variance_log_default",
            components: vec![(0.06, 37.5, 0.4)],
            ..Case::default()
        },
        Case {
            name: "uniform_linear_fixed_axis",
            components: vec![(0.1, -120.0, 1.2)],
            poly_ord: 2,
            fit_function: "linear",
            weight_type: "uniform",
            dphi: Some(2.0),
            phi_max: Some(500.0),
            cutoff: -5.0,
            noise: 0.003,
            ..Case::default()
        },
        Case {
            name: "nan_channels_fitted_rmsf",
            components: vec![(0.08, 250.0, 2.0)],
            nan_channels: nan.clone(),
            fit_rmsf: true,
            ..Case::default()
        },
        Case {
            name: "dynamic_order_uniform_window",
            components: vec![(0.05, 5.0, 0.1), (0.03, 80.0, 0.9)],
            poly_ord: -3,
            weight_type: "uniform",
            n_samples: 10.0,
            cutoff: -6.0,
            window: Some(-3.0),
            noise: 0.001,
            ..Case::default()
        },
        Case {
            name: "no_stokes_i",
            components: vec![(0.07, 60.0, 0.3)],
            stokes_i: false,
            nan_channels: vec![50, 51],
            poly_ord: 2,
            phi_max: Some(1000.0),
            cutoff: -3.0,
            ..Case::default()
        },
        Case {
            name: "fifth_order_log",
            components: vec![(0.05, 12.0, 0.6)],
            poly_ord: 5,
            ..Case::default()
        },
        Case {
            name: "two_rm_complex",
            components: vec![(0.08, 20.0, 0.3), (0.06, 90.0, 1.4)],
            noise: 0.0005,
            ..Case::default()
        },
        Case {
            name: "linear_nan_variance",
            components: vec![(0.04, -33.0, 2.8)],
            nan_channels: nan,
            fit_function: "linear",
            dphi: Some(5.0),
            fit_rmsf: true,
            ..Case::default()
        },
    ];
    let mut spec = Vec::new();
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| write_spectrum(dir.path(), c, 1000 + i as u64))
        .collect();
    for (c, f) in cases.iter().zip(&files) {
        spec.push(serde_json::json!({
            "file": f, "poly_ord": c.poly_ord, "fit_function": c.fit_function, "n_samples": c.n_samples,
            "dphi": c.dphi, "phi_max": c.phi_max, "weight_type": c.weight_type, "fit_rmsf": c.fit_rmsf,
            "cutoff": c.cutoff, "max_iter": 10000, "gain": 0.1, "window": c.window,
        }));
    }
    let cases_json = dir.path().join("cases.json");
    let out_json = dir.path().join("out.json");
    std::fs::write(&cases_json, serde_json::to_string(&spec).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/rmtools_ref.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&cases_json)
        .arg(&out_json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "RM-Tools reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();

    for ((c, f), r) in cases.iter().zip(&files).zip(&reference) {
        let data = read_spectrum(f).unwrap();
        let p = SynthParams {
            poly_ord: c.poly_ord,
            fit_function: FitFunction::parse(c.fit_function).unwrap(),
            n_samples: c.n_samples,
            dphi: c.dphi,
            phi_max: c.phi_max,
            weight_variance: c.weight_type == "variance",
            fit_rmsf: c.fit_rmsf,
        };
        let (s, a) = run_rmsynth(&data.spectrum(), &p);
        let (cs, cr) = run_rmclean(
            &s,
            &a,
            &CleanParams {
                cutoff: c.cutoff,
                max_iter: 10000,
                gain: 0.1,
                window: c.window,
            },
        );
        let rs = &r["synth"];
        let n = c.name;
        // Axes and arrays.
        assert!(
            a.axes.phi == arr(&r["phi"]),
            "{n}: Faraday-depth axes differ"
        );
        let peak = arr(&r["fdf_re"])
            .iter()
            .zip(arr(&r["fdf_im"]))
            .map(|(x, y)| x.hypot(y))
            .fold(0.0, f64::max);
        let d =
            max_diff(&a.fdf_re, &arr(&r["fdf_re"])).max(max_diff(&a.fdf_im, &arr(&r["fdf_im"])));
        assert!(
            d <= 1e-5 * peak,
            "{n}: dirty FDF differs by {d} (peak {peak})"
        );
        let d = max_diff(&a.rmsf_re, &arr(&r["rmsf_re"]))
            .max(max_diff(&a.rmsf_im, &arr(&r["rmsf_im"])));
        assert!(d <= 1e-5, "{n}: RMSF differs by {d}");
        // Scalars.
        // RM-Tools makes uniform weights in float32, so λ0² agrees to float32 precision.
        close(
            "lam0Sq_m2",
            n,
            s.lam0Sq_m2,
            num(&rs["lam0Sq_m2"]),
            0.0,
            1e-7,
        );
        close(
            "fwhmRMSF",
            n,
            s.fwhmRMSF,
            num(&rs["fwhmRMSF"]),
            0.0,
            if c.fit_rmsf { 1e-4 } else { 1e-9 },
        );
        close("Ifreq0", n, s.Ifreq0, num(&rs["Ifreq0"]), 0.0, 1e-5);
        close("dFDFth", n, s.dFDFth, num(&rs["dFDFth"]), 0.0, 1e-5);
        close(
            "phiPeakPIfit_rm2",
            n,
            s.peak.phiPeakPIfit_rm2,
            num(&rs["phiPeakPIfit_rm2"]),
            0.01,
            0.0,
        );
        close(
            "dPhiPeakPIfit_rm2",
            n,
            s.peak.dPhiPeakPIfit_rm2,
            num(&rs["dPhiPeakPIfit_rm2"]),
            0.0,
            1e-4,
        );
        close(
            "ampPeakPIfit",
            n,
            s.peak.ampPeakPIfit,
            num(&rs["ampPeakPIfit"]),
            0.0,
            1e-5,
        );
        close(
            "ampPeakPIfitEff",
            n,
            s.peak.ampPeakPIfitEff,
            num(&rs["ampPeakPIfitEff"]),
            0.0,
            1e-5,
        );
        close(
            "snrPIfit",
            n,
            s.peak.snrPIfit,
            num(&rs["snrPIfit"]),
            0.0,
            1e-4,
        );
        close(
            "polAngleFit_deg",
            n,
            s.peak.polAngleFit_deg,
            num(&rs["polAngleFit_deg"]),
            0.01,
            0.0,
        );
        close(
            "polAngle0Fit_deg",
            n,
            s.peak.polAngle0Fit_deg,
            num(&rs["polAngle0Fit_deg"]),
            0.05,
            0.0,
        );
        close(
            "dPolAngle0Fit_deg",
            n,
            s.peak.dPolAngle0Fit_deg,
            num(&rs["dPolAngle0Fit_deg"]),
            0.0,
            1e-4,
        );
        close(
            "dFDFcorMAD",
            n,
            s.peak.dFDFcorMAD,
            num(&rs["dFDFcorMAD"]),
            0.0,
            1e-3,
        );
        close("fracPol", n, s.fracPol, num(&rs["fracPol"]), 0.0, 1e-5);
        // Faraday complexity (measure_qu_complexity): the posterior median of the extra scatter
        // and its percentiles, for q, u and both.
        let cx = &s.complexity;
        for (key, ours) in [
            ("sigmaAddQ", cx.sigmaAddQ),
            ("dSigmaAddMinusQ", cx.dSigmaAddMinusQ),
            ("dSigmaAddPlusQ", cx.dSigmaAddPlusQ),
            ("sigmaAddU", cx.sigmaAddU),
            ("dSigmaAddMinusU", cx.dSigmaAddMinusU),
            ("dSigmaAddPlusU", cx.dSigmaAddPlusU),
            ("sigmaAddC", cx.sigmaAddC),
            ("dSigmaAddMinusC", cx.dSigmaAddMinusC),
            ("dSigmaAddPlusC", cx.dSigmaAddPlusC),
        ] {
            // The scatter is measured about the dirty peak's model, whose RM and angle agree to
            // 0.01 rad/m² and 0.05°: that moves a near-zero scatter in its fourth digit.
            close(key, n, ours, num(&rs[key]), 1e-4, 2e-3);
        }
        // The Stokes I fit: coefficient errors (RM-Tools writes them as float32 text) and the
        // fit statistic.
        if c.stokes_i {
            close(
                "IfitChiSqRed",
                n,
                s.IfitChiSqRed,
                num(&rs["IfitChiSqRed"]),
                0.0,
                1e-4,
            );
            assert_eq!(
                s.IfitStat as i64 & 192,
                rs["IfitStat"].as_i64().unwrap() & 192,
                "{n}: IfitStat flags {} vs {}",
                s.IfitStat,
                rs["IfitStat"]
            );
            let parse =
                |t: &str| -> Vec<f64> { t.split(',').map(|x| x.trim().parse().unwrap()).collect() };
            // C5..C1 against RM-Tools' own; all six against RM-Tools' covariance moved to ν0
            // with the full propagation (RM-Tools' C0 error for a log model drops ln 10 factors).
            let theirs = parse(rs["polyCoefferr"].as_str().unwrap());
            let ours = parse(&s.polyCoefferr);
            let c0 = if c.fit_function == "log" { 5 } else { 6 };
            for (k, (a, b)) in ours.iter().zip(&theirs).enumerate().take(c0) {
                close(&format!("polyCoefferr[{k}]"), n, *a, *b, 1e-9, 1e-3);
            }
            let exact = arr(&r["polyCoefferr_propagated"]);
            for (k, (a, b)) in ours.iter().zip(&exact).enumerate() {
                close(
                    &format!("polyCoefferr[{k}] (propagated)"),
                    n,
                    *a,
                    *b,
                    1e-9,
                    1e-3,
                );
            }
        }
        assert_eq!(
            s.N_channels as i64,
            rs["N_channels"].as_i64().unwrap(),
            "{n}: N_channels"
        );
        assert_eq!(
            s.polyOrd as i64,
            rs["polyOrd"].as_i64().unwrap(),
            "{n}: polyOrd"
        );
        // RM-CLEAN.
        let rc = &r["clean"];
        close(
            "cleanCutoff",
            n,
            cs.cleanCutoff,
            num(&rc["cleanCutoff"]),
            0.0,
            1e-5,
        );
        let it = rc["nIter"].as_i64().unwrap();
        assert!(
            (cs.nIter as i64 - it).abs() <= 1,
            "{n}: nIter {} vs {it}",
            cs.nIter
        );
        close(
            "clean phiPeakPIfit_rm2",
            n,
            cs.peak.phiPeakPIfit_rm2,
            num(&rc["phiPeakPIfit_rm2"]),
            0.01,
            0.0,
        );
        close(
            "clean ampPeakPIfit",
            n,
            cs.peak.ampPeakPIfit,
            num(&rc["ampPeakPIfit"]),
            0.0,
            1e-3,
        );
        close(
            "mom2CCFDF",
            n,
            cs.mom2CCFDF,
            num(&rc["mom2CCFDF"]),
            0.05,
            1e-2,
        );
        let d = max_diff(&cr.clean_re, &arr(&r["clean_re"]))
            .max(max_diff(&cr.clean_im, &arr(&r["clean_im"])));
        assert!(
            d <= 1e-3 * peak,
            "{n}: clean FDF differs by {d} (peak {peak})"
        );
    }
}

/// A command installed in the reference venv (beside its Python).
fn venv_command(name: &str) -> Command {
    let py = python();
    Command::new(py.parent().unwrap().join(name))
}

fn run_ok(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Columns of a text file `np.savetxt` wrote (or ours).
fn columns(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<Vec<f64>> = text
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect();
    (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect()
}

/// Keys in file order of a JSON object Python wrote (NaN allowed), and the values.
fn py_json_pairs(path: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("NaN", "null");
    let v: Value = serde_json::from_str(&text).unwrap();
    let map = v.as_object().unwrap().clone();
    // serde_json's map is sorted: recover the order from the text.
    let mut keys: Vec<(usize, String)> = map
        .keys()
        .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|(_, k)| (k.clone(), map[&k].clone()))
        .collect()
}

/// `arrakis rmsynth1d -S` / `rmclean1d -S` against RM-Tools' own commands on the same files:
/// the same files with the same names, the same keys in the same order, the same numbers (to
/// RM-Tools' single precision), with RM-Tools' defaults and with its flags.
#[test]
fn rmtools_commands_write_what_rm_tools_writes() {
    let dir = tempfile::tempdir().unwrap();
    let case = Case {
        name: "src",
        components: vec![(0.08, 32.0, 0.4)],
        noise: 0.004,
        ..Case::default()
    };
    let flag_sets: [&[&str]; 3] = [
        &[],
        &[
            "-l", "400", "-d", "2", "-o", "1", "-f", "linear", "-w", "uniform", "-t", "-U",
            "mJy/beam",
        ],
        &["-i", "-s", "4"],
    ];
    for (n, flags) in flag_sets.iter().enumerate() {
        let ref_dir = dir.path().join(format!("rmtools{n}"));
        let our_dir = dir.path().join(format!("arrakis{n}"));
        for d in [&ref_dir, &our_dir] {
            std::fs::create_dir_all(d).unwrap();
            write_spectrum(d, &case, 7);
        }
        let mut c = venv_command("rmsynth1d");
        c.current_dir(&ref_dir)
            .arg("src.dat")
            .arg("-S")
            .args(*flags);
        run_ok(c, "RM-Tools rmsynth1d");
        let mut c = venv_command("rmclean1d");
        c.current_dir(&ref_dir).args(["src.dat", "-S", "-c", "-4"]);
        run_ok(c, "RM-Tools rmclean1d");
        let mut c = Command::new(env!("CARGO_BIN_EXE_arrakis"));
        c.current_dir(&our_dir)
            .args(["rmsynth1d", "src.dat", "-S"])
            .args(*flags);
        run_ok(c, "arrakis rmsynth1d");
        let mut c = Command::new(env!("CARGO_BIN_EXE_arrakis"));
        c.current_dir(&our_dir)
            .args(["rmclean1d", "src.dat", "-S", "-c", "-4"]);
        run_ok(c, "arrakis rmclean1d");

        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".dat") || n.ends_with(".json"))
                .collect();
            v.sort();
            v
        };
        let set = format!("flags {flags:?}");
        assert_eq!(names(&our_dir), names(&ref_dir), "{set}: the files written");
        for f in ["_FDFdirty", "_RMSF", "_weight", "_FDFclean", "_FDFmodel"] {
            let ours = columns(&our_dir.join(format!("src{f}.dat")));
            let theirs = columns(&ref_dir.join(format!("src{f}.dat")));
            assert_eq!(ours.len(), theirs.len(), "{set}: {f} columns");
            // CLEAN in single precision (RM-Tools) and double (arrakis) may part at the last
            // components near the cutoff.
            let tol = if f == "_FDFmodel" { 3e-3 } else { 1e-4 };
            for (a, b) in ours.iter().zip(&theirs) {
                let scale = b.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-30);
                assert!(
                    max_diff(a, b) / scale < tol,
                    "{set}: src{f}.dat differs by {} of its largest value",
                    max_diff(a, b) / scale
                );
            }
        }
        for f in ["_RMsynth", "_RMclean"] {
            let ours = py_json_pairs(&our_dir.join(format!("src{f}.json")));
            let theirs = py_json_pairs(&ref_dir.join(format!("src{f}.json")));
            let ok: Vec<&String> = ours.iter().map(|p| &p.0).collect();
            let tk: Vec<&String> = theirs.iter().map(|p| &p.0).collect();
            assert_eq!(ok, tk, "{set}: src{f}.json keys and their order");
            for ((k, a), (_, b)) in ours.iter().zip(&theirs) {
                // Without Stokes I RM-Tools fits its dummy I = 1 with zero errors: the fit's
                // status and errors are artefacts (arrakis reports the unit model as unfitted).
                if flags.contains(&"-i") && (k == "polyCoefferr" || k == "IfitStat") {
                    continue;
                }
                match (a, b) {
                    (Value::String(x), Value::String(y)) if k.starts_with("polyCoeff") => {
                        let p = |s: &str| -> Vec<f64> {
                            s.split(',').map(|v| v.parse().unwrap()).collect()
                        };
                        for (u, v) in p(x).iter().zip(p(y)) {
                            close(k, &set, *u, v, 1e-6, 5e-3);
                        }
                    }
                    (Value::String(x), Value::String(y)) => assert_eq!(x, y, "{set}: {f} {k}"),
                    // Noise from a median absolute deviation and the σ_add posteriors: float32
                    // sums in RM-Tools.
                    _ if k.contains("SigmaAdd")
                        || k == "dFDFcorMAD"
                        || k.starts_with("dAmpObs")
                        || k.contains("Observed") =>
                    {
                        close(k, &set, num(a), num(b), 0.0, 2e-2)
                    }
                    _ => close(k, &set, num(a), num(b), 1e-6, 2e-4),
                }
            }
        }
        // The key=value file holds the JSON's keys in the same order.
        let kv = std::fs::read_to_string(our_dir.join("src_RMsynth.dat")).unwrap();
        let kv_keys: Vec<&str> = kv.lines().map(|l| l.split('=').next().unwrap()).collect();
        let ref_kv = std::fs::read_to_string(ref_dir.join("src_RMsynth.dat")).unwrap();
        let ref_keys: Vec<&str> = ref_kv
            .lines()
            .map(|l| l.split('=').next().unwrap())
            .collect();
        assert_eq!(kv_keys, ref_keys, "{set}: _RMsynth.dat keys");
    }

    // rmclean1d before rmsynth1d -S: a clear error naming the missing file and what to run.
    let lone = dir.path().join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    write_spectrum(&lone, &case, 7);
    let out = Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .current_dir(&lone)
        .args(["rmclean1d", "src.dat"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("src_FDFdirty.dat") && err.contains("rmsynth1d -S src.dat"),
        "{err}"
    );
    // Flags RM-Tools has and arrakis does not implement are refused with the reason, and are
    // not in the help.
    let out = Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .current_dir(&lone)
        .args(["rmsynth1d", "src.dat", "-r"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("super-resolution"));
    let help = Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .args(["rmsynth1d", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for f in [
        "-l", "-d", "-s", "-o", "-w", "-t", "-i", "-S", "-p", "-v", "-U",
    ] {
        assert!(
            help.contains(&format!("{f}, ")) || help.contains(&format!("{f} ")),
            "{f} missing from help:\n{help}"
        );
    }
    assert!(
        !help.contains("-r,") && !help.contains("super-resolution"),
        "{help}"
    );
}

/// `arrakis rmsynth3d` / `rmclean3d` against RM-Tools' commands on the same FITS cubes: the same
/// file names and the same cubes (to single precision).
#[test]
fn rmtools_3d_commands_write_what_rm_tools_writes() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, numpy as np
from astropy.io import fits
d = sys.argv[1]
rng = np.random.default_rng(3)
nchan, ny, nx = 40, 6, 7
f = np.linspace(800e6, 1088e6, nchan)
l2 = (299792458.0 / f) ** 2
rm = np.linspace(-60, 80, nx * ny).reshape(ny, nx)
p = 0.05 * np.exp(2j * (0.3 + rm[None] * l2[:, None, None]))
q = (p.real + rng.normal(0, 0.002, p.shape)).astype(np.float32)
u = (p.imag + rng.normal(0, 0.002, p.shape)).astype(np.float32)
for sub in ("ref", "ours"):
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CDELT1"], h["CRPIX1"], h["CUNIT1"] = "RA---SIN", 180.0, -0.001, 4.0, "deg"
    h["CTYPE2"], h["CRVAL2"], h["CDELT2"], h["CRPIX2"], h["CUNIT2"] = "DEC--SIN", -30.0, 0.001, 3.0, "deg"
    h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"], h["CUNIT3"] = "FREQ", f[0], f[1] - f[0], 1.0, "Hz"
    h["BUNIT"] = "Jy/beam"
    fits.PrimaryHDU(q, h).writeto(f"{d}/{sub}/Q.fits")
    fits.PrimaryHDU(u, h).writeto(f"{d}/{sub}/U.fits")
    np.savetxt(f"{d}/{sub}/freqs.dat", f)
"#;
    for s in ["ref", "ours"] {
        std::fs::create_dir_all(dir.path().join(s)).unwrap();
    }
    let mut c = Command::new(python());
    c.arg("-c").arg(script).arg(dir.path());
    run_ok(c, "writing the cubes");
    let (r, o) = (dir.path().join("ref"), dir.path().join("ours"));
    let mut c = venv_command("rmsynth3d");
    c.current_dir(&r)
        .args(["Q.fits", "U.fits", "freqs.dat", "-l", "200", "-d", "4"]);
    run_ok(c, "RM-Tools rmsynth3d");
    let mut c = venv_command("rmclean3d");
    c.current_dir(&r)
        .args(["FDF_tot_dirty.fits", "RMSF_tot.fits", "-c", "0.01"]);
    run_ok(c, "RM-Tools rmclean3d");
    let mut c = Command::new(env!("CARGO_BIN_EXE_arrakis"));
    c.current_dir(&o).args([
        "rmsynth3d",
        "Q.fits",
        "U.fits",
        "freqs.dat",
        "-l",
        "200",
        "-d",
        "4",
    ]);
    run_ok(c, "arrakis rmsynth3d");
    let mut c = Command::new(env!("CARGO_BIN_EXE_arrakis"));
    c.current_dir(&o).args([
        "rmclean3d",
        "FDF_tot_dirty.fits",
        "RMSF_tot.fits",
        "-c",
        "0.01",
    ]);
    run_ok(c, "arrakis rmclean3d");
    let compare = r#"
import sys, os, numpy as np
from astropy.io import fits
r, o = sys.argv[1], sys.argv[2]
names = sorted(n for n in os.listdir(r) if n.endswith(".fits"))
assert names == sorted(n for n in os.listdir(o) if n.endswith(".fits")), (names, sorted(os.listdir(o)))
for n in names:
    if n in ("Q.fits", "U.fits"):
        continue
    a, b = fits.getdata(f"{o}/{n}").astype(float), fits.getdata(f"{r}/{n}").astype(float)
    a, b = np.squeeze(a), np.squeeze(b)
    assert a.shape == b.shape, (n, a.shape, b.shape)
    scale = max(np.nanmax(np.abs(b)), 1e-30)
    tol = 1e-3 if n == "CLEAN_nIter.fits" else 2e-4
    d = np.nanmax(np.abs(a - b)) / scale
    if n == "CLEAN_nIter.fits":
        d = np.mean(a != b)
        tol = 0.05
    assert d <= tol, f"{n}: differs by {d} (tolerance {tol})"
    ha, hb = fits.getheader(f"{o}/{n}"), fits.getheader(f"{r}/{n}")
    for k in ("CTYPE3", "CDELT3", "CRPIX3", "CRVAL3", "BUNIT"):
        # A degenerate depth axis (peak and iteration maps): only its type and the unit count.
        if hb.get("CTYPE3") == "DEGENERATE" and k not in ("CTYPE3", "BUNIT"):
            continue
        if k in hb:
            va, vb = ha.get(k), hb.get(k)
            ok = np.isclose(va, vb, rtol=1e-5) if isinstance(vb, float) else va == vb
            assert ok, f"{n}: {k} = {va!r}, RM-Tools {vb!r}"
print("ok", len(names))
"#;
    let mut c = Command::new(python());
    c.arg("-c").arg(compare).arg(&r).arg(&o);
    let out = run_ok(c, "comparing the cubes");
    assert!(out.starts_with("ok"), "{out}");
}
