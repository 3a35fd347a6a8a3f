//! The frion stage against FRion itself: θ(λ²) and the corrected Q/U from FRion's own Python
//! functions on the same time series (to 1e-10), the corrected cubes against FRion's
//! `apply_correction_to_files` on the same mosaics, and on a simulated field with an injected
//! ionosphere: RMs are the intrinsic ones after correction and offset by RM_ion without it.

use std::path::Path;

use crate::common::*;
use arrakis::science::frion::{complex_div, modulation};
use arrakis::simulate::{simulate, SimOptions};
use serde_json::{json, Value};

fn racs_low_freqs(n: usize) -> Vec<f64> {
    (0..n).map(|k| 743.5e6 + 1e6 * k as f64).collect()
}

#[test]
fn theta_and_correction_agree_with_frion() {
    let tmp = tempfile::tempdir().unwrap();
    let freqs = racs_low_freqs(288);
    // (times, RM_ion): even and odd sample counts, uneven spacing, strong variation, two samples.
    let uniform =
        |n: usize, step: f64| -> Vec<f64> { (0..n).map(|k| 5e9 + step * k as f64).collect() };
    let uneven = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|k| 5e9 + 300.0 * k as f64 + 70.0 * (k as f64 * 1.3).sin())
            .collect()
    };
    let wave = |t: &[f64], base: f64, amp: f64| -> Vec<f64> {
        t.iter()
            .map(|x| base + amp * ((x - t[0]) / 2000.0).sin())
            .collect()
    };
    let cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
        (uniform(16, 60.0), wave(&uniform(16, 60.0), 3.0, 0.4)),
        (uniform(15, 300.0), wave(&uniform(15, 300.0), 1.2, 0.3)),
        (uneven(10), wave(&uneven(10), -2.0, 2.5)),
        (uneven(7), wave(&uneven(7), 0.5, 1.0)),
        (uniform(2, 600.0), vec![1.0, 1.5]),
    ];
    let py = python();
    for (n, (times, rms)) in cases.iter().enumerate() {
        let q: Vec<f64> = (0..freqs.len())
            .map(|k| 0.05 * (k as f64 * 0.7).cos())
            .collect();
        let u: Vec<f64> = (0..freqs.len())
            .map(|k| -0.03 * (k as f64 * 0.3).sin())
            .collect();
        let input = tmp.path().join(format!("case{n}.json"));
        std::fs::write(
            &input,
            json!({"times": times, "rms": rms, "freqs": freqs, "q": q, "u": u}).to_string(),
        )
        .unwrap();
        let out = std::process::Command::new(&py)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/py/frion_ref.py"
            ))
            .arg("series")
            .arg(&input)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = modulation(times, rms, &freqs);
        let col = |k: &str| -> Vec<f64> {
            theirs[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (tre, tim, tq, tu) = (col("theta_re"), col("theta_im"), col("q"), col("u"));
        let mut worst = 0.0f64;
        for c in 0..freqs.len() {
            worst = worst
                .max((ours[c].0 - tre[c]).abs())
                .max((ours[c].1 - tim[c]).abs());
            let (cq, cu) = complex_div(q[c], u[c], ours[c].0, ours[c].1);
            worst = worst.max((cq - tq[c]).abs()).max((cu - tu[c]).abs());
        }
        eprintln!("case {n}: largest difference from FRion {worst:e}");
        assert!(
            worst <= 1e-10,
            "case {n} ({} samples): θ or corrected Q/U differ from FRion by {worst:e}",
            times.len()
        );
    }
}

/// Mean of (recovered − injected RM) over Faraday-thin components detected above SNR 10.
fn mean_rm_offset(dir: &Path, field: &str) -> (f64, usize) {
    let truth = read_csv(&dir.join("truth.csv"));
    let cat = catalogue_by_id(dir, field);
    let d: Vec<f64> = truth
        .iter()
        .filter(|t| f(t, "fracpol") > 0.0 && f(t, "fracpol2") == 0.0)
        .filter_map(|t| {
            let row = cat.get(&t["cat_id"])?;
            (f(row, "snr_polint") > 10.0).then(|| f(row, "rm") - f(t, "rm"))
        })
        .collect();
    (d.iter().sum::<f64>() / d.len() as f64, d.len())
}

#[test]
fn injected_ionosphere_is_removed_and_matches_frion_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_ION";
    let sim = SimOptions {
        ionosphere: true,
        ..SimOptions::small(field, 11)
    };
    let dir = simulate(data, &sim).unwrap();
    // The per-island prediction from the IONEX maps the simulation wrote.
    let ionex = ["--set", "ion_source=ionex"];
    let (out, r) = build_real(&cache, data, field, &ionex);
    assert!(out.status.success(), "{}", text(&out));
    assert!(r.keys().any(|k| k.starts_with("frion/")), "{r:?}");

    // The corrected cubes equal FRion's correction of the same mosaics with our prediction file.
    let py = python();
    let mut checked = 0;
    for src in std::fs::read_dir(dir.join("cutouts")).unwrap().take(3) {
        let src = src.unwrap().path();
        let s = src.file_name().unwrap().to_string_lossy().to_string();
        let p = |stokes: &str, ion: &str| {
            src.join(format!(
                "{s}.cutout.image.restored.{stokes}.{field}.contcube.linmos{ion}.fits"
            ))
        };
        let out = std::process::Command::new(&py)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/py/frion_ref.py"
            ))
            .arg("files")
            .args([p("q", ""), p("u", "")])
            .arg(src.join(format!("{s}_ion.txt")))
            .args([p("q", ".ion"), p("u", ".ion")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{s}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (diff, big) = (
            v["max_abs_diff"].as_f64().unwrap(),
            v["max_abs"].as_f64().unwrap(),
        );
        eprintln!("{s}: corrected cubes differ from FRion's by at most {diff:e}");
        // float32 on disk: at most one rounding step of the largest value apart.
        assert!(
            diff <= big * f32::EPSILON as f64,
            "{s}: arrakis and FRion corrected cubes differ by {diff:e} (largest |value| {big:e})"
        );
        checked += 1;
    }
    assert!(checked > 0);

    // With the correction, RMs are the injected ones; without it, offset by RM_ion.
    let truth = read_csv(&dir.join("truth.csv"));
    let rm_ion_mean = truth.iter().map(|t| f(t, "rm_ion")).sum::<f64>() / truth.len() as f64;
    let (corrected, n) = mean_rm_offset(&dir, field);
    assert!(n >= 8, "only {n} components to check");
    eprintln!("mean RM offset after correction {corrected:.3} over {n} components");
    assert!(
        corrected.abs() < 0.5,
        "after correction the mean RM offset is {corrected:.3} rad/m² over {n} components"
    );
    let (out, r) = build_real(&cache, data, field, &["--set", "skip_frion=true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stages_that_ran(&r),
        ["catalogue", "rmclean", "rmsynth", "validate"],
        "{r:?}"
    );
    let (raw, _) = mean_rm_offset(&dir, field);
    eprintln!("mean RM offset without correction {raw:.3}; RM_ion averages {rm_ion_mean:.3}");
    assert!(
        (raw - rm_ion_mean).abs() < 0.5,
        "without correction the mean RM offset is {raw:.3} rad/m²; RM_ion averages {rm_ion_mean:.3}"
    );

    // The field centre's time series (ion_source: file) reruns frion and what follows, not the
    // mosaics, and corrects nearly as well on this small field; so does a changed series.
    let reruns_frion_on = || {
        let (out, r) = build_real(&cache, data, field, &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            stages_that_ran(&r),
            ["catalogue", "frion", "rmclean", "rmsynth", "validate"],
            "{r:?}"
        );
    };
    reruns_frion_on();
    let (centre, _) = mean_rm_offset(&dir, field);
    assert!(centre.abs() < 0.5, "{centre}");
    let ion_text = std::fs::read_to_string(dir.join("ionosphere/rm_ion.txt")).unwrap();
    let first = ion_text.lines().find(|l| !l.starts_with('#')).unwrap();
    std::fs::write(
        dir.join("ionosphere/rm_ion.txt"),
        ion_text.replacen(first, &format!("{first}1"), 1),
    )
    .unwrap();
    reruns_frion_on();
}

#[test]
fn frion_predict_runs_as_an_external_program_or_says_what_to_provide() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_PRED";
    let dir = simulate(data, &SimOptions::small(field, 12)).unwrap();
    std::fs::create_dir_all(dir.join("IONEXdata")).unwrap();
    std::fs::write(dir.join("IONEXdata/codg0010.21i"), "an IONEX map").unwrap();
    let times = [
        "--set",
        "ion_start=2021-01-01T10:00:00",
        "--set",
        "ion_end=2021-01-01T10:15:00",
    ];

    // Without the program: the frion targets fail saying what to install or provide.
    let mut args = vec![
        "--keep-going",
        "--set",
        "ion_source=frion_predict",
        "--set",
        "frion_predict=/nonexistent/frion_predict",
    ];
    args.extend(times);
    let (out, _) = build_real(&cache, data, field, &args);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("cannot run FRion's")
            && t.contains("ion_source: ionex")
            && t.contains("IONEXdata"),
        "{t}"
    );
    // Without the observation's times: said so.
    let (out, _) = build_real(
        &cache,
        data,
        field,
        &["--keep-going", "--set", "ion_source=frion_predict"],
    );
    assert!(text(&out).contains("ion_start"), "{}", text(&out));

    // With it (a stand-in that writes FRion's format for RM_ion = 2): the prediction is used.
    let stub = data.join("frion_predict");
    python_stub(&stub, "fake_frion_predict.py");
    let prog = format!("frion_predict={}", stub.display());
    let mut args = vec!["--set", "ion_source=frion_predict", "--set", prog.as_str()];
    args.extend(times);
    let (out, r) = build_real(&cache, data, field, &args);
    assert!(out.status.success(), "{}", text(&out));
    let src = with_status(&r, "ran")
        .into_iter()
        .find_map(|id| id.strip_prefix("frion/").map(str::to_string))
        .expect("frion ran");
    let pred = std::fs::read_to_string(
        dir.join("cutouts")
            .join(&src)
            .join(format!("{src}_ion.txt")),
    )
    .unwrap();
    let first: Vec<f64> = pred
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let l2 = (299_792_458.0 / first[0]).powi(2);
    assert!(
        (first[1] - (4.0 * l2).cos()).abs() < 1e-12 && (first[2] - (4.0 * l2).sin()).abs() < 1e-12,
        "{first:?}"
    );
    // A new IONEX file on disk reruns frion.
    std::fs::write(dir.join("IONEXdata/codg0020.21i"), "another day").unwrap();
    let (out, r) = build_real(&cache, data, field, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stages_that_ran(&r).contains(&"frion".to_string()), "{r:?}");
}
