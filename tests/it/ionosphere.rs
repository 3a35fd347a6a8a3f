//! Ionosphere prediction from IONEX: the line-of-sight geometry against astropy, and a simulated
//! field whose injected rotation (per island, from IONEX maps `simulate --ionosphere` writes) the
//! frion stage recovers from those maps.

use std::process::{Command, Stdio};

use crate::common::python;
use arrakis::science::ionosphere::{az_el, j2000_to_itrf, ASKAP};

#[test]
fn line_of_sight_agrees_with_astropy() {
    // Directions and times across the sky and the years RACS observed.
    let mut rows = Vec::new();
    let mut x = 0.271_f64;
    let mut next = || {
        x = (x * 9301.0 + 0.4929).fract();
        x
    };
    for _ in 0..40 {
        let ra = 360.0 * next();
        let dec = -85.0 + 130.0 * next();
        let mjd = 58_500.0 + 2_500.0 * next();
        rows.push([ra, dec, mjd]);
    }
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/altaz_ref.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &rows).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: Vec<[f64; 2]> = serde_json::from_slice(&out.stdout).unwrap();
    let mut worst: f64 = 0.0;
    for (r, w) in rows.iter().zip(&want) {
        let (az, el) = az_el(&ASKAP, j2000_to_itrf(r[0], r[1], r[2] * 86_400.0));
        // Angular distance between the two (az, el) directions, degrees.
        let (a1, e1, a2, e2) = (
            az.to_radians(),
            el.to_radians(),
            w[0].to_radians(),
            w[1].to_radians(),
        );
        let c = e1.sin() * e2.sin() + e1.cos() * e2.cos() * (a1 - a2).cos();
        let d = c.clamp(-1.0, 1.0).acos().to_degrees();
        worst = worst.max(d);
    }
    eprintln!(
        "line of sight: at most {:.1} arcsec from astropy over {} directions",
        worst * 3600.0,
        rows.len()
    );
    // Nutation, aberration and polar motion are left out: under 60 arcsec together.
    assert!(worst < 60.0 / 3600.0, "{} arcsec", worst * 3600.0);
}

/// The effective RM of a FRion prediction file's θ at its lowest frequency: arg θ / 2λ².
fn effective_rm(path: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let row: Vec<f64> = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let l2 = (299_792_458.0 / row[0]).powi(2);
    row[2].atan2(row[1]) / (2.0 * l2)
}

#[test]
fn injected_rotation_is_recovered_per_island_from_ionex() {
    use crate::common::*;
    use arrakis::simulate::{simulate, SimOptions};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_IONEX";
    let sim = SimOptions {
        ionosphere: true,
        beams: 9,
        sources: 30,
        ..SimOptions::small(field, 21)
    };
    let dir = simulate(data, &sim).unwrap();
    let ionex = ["--set", "ion_source=ionex"];
    let (out, r) = build_real(&cache, data, field, &ionex);
    assert!(out.status.success(), "{}", text(&out));
    assert!(r.keys().any(|k| k.starts_with("frion/")), "{r:?}");

    // Per island: the rotation predicted from the IONEX maps against the one injected along its
    // own line of sight.
    let truth = read_csv(&dir.join("truth.csv"));
    let mut injected = std::collections::BTreeMap::new();
    for t in &truth {
        injected.insert(t["source_id"].clone(), f(t, "rm_ion"));
    }
    let (mut worst, mut n) = (0.0f64, 0);
    let (lo, hi) = injected
        .values()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    for (src, want) in &injected {
        let p = dir.join("cutouts").join(src).join(format!("{src}_ion.txt"));
        if !p.exists() {
            continue; // an island no beam covers
        }
        let got = effective_rm(&p);
        worst = worst.max((got - want).abs());
        n += 1;
    }
    eprintln!(
        "ionosphere: {n} islands, injected RM_ion {lo:.3} to {hi:.3} rad/m2, predicted from IONEX within {worst:.4} rad/m2"
    );
    assert!(n >= 20, "only {n} islands predicted");
    assert!(worst < 0.05, "an island's RM_ion is off by {worst} rad/m2");
    // The field-centre series (ion_source: file) is worse for the islands far from the centre,
    // so the per-island prediction is what the test measures.
    assert!(hi - lo > 0.05, "injected RM_ion spans only {lo}..{hi}");

    // A changed IONEX file reruns frion and what follows; its absence is an error naming what to
    // download.
    let ionex_file = std::fs::read_dir(dir.join("IONEXdata"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text0 = std::fs::read_to_string(&ionex_file).unwrap();
    std::fs::write(&ionex_file, format!("{text0}\n")).unwrap();
    let (out, r) = build_real(&cache, data, field, &ionex);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stages_that_ran(&r).contains(&"frion".to_string()), "{r:?}");
    let name = ionex_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    std::fs::rename(&ionex_file, dir.join("moved-away")).unwrap();
    let (out, _) = build_real(&cache, data, field, &ionex);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("no IONEX product in IONEXdata covers the scan") && t.contains(&name),
        "{t}"
    );
}

/// Against RMextract itself on the maps `simulate --ionosphere` writes: the same time samples, and
/// RM_ion equal to 1e-3 when the geomagnetic model is given RMextract's geocentric latitude;
/// arrakis's geodetic latitude moves it by about 1 % (reported).
#[test]
fn prediction_agrees_with_rmextract() {
    use arrakis::science::ionex::IonexMaps;
    use arrakis::science::ionosphere::{geometry, geometry_as_rmextract, rm_ion, time_grid, ASKAP};
    use arrakis::simulate::{simulate, SimOptions};
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimOptions {
        ionosphere: true,
        ..SimOptions::small("RACS_RMX", 3)
    };
    let dir = simulate(tmp.path(), &sim).unwrap();
    let ionex_dir = dir.join("IONEXdata");
    let file = std::fs::read_dir(&ionex_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let maps = IonexMaps::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let field = arrakis::field_file::FieldFile::read(&dir.join("field.yaml")).unwrap();
    let start = field.scan_start_mjd_s.unwrap();
    let end = start + field.scan_length_s.unwrap();
    let cases: Vec<[f64; 4]> = [(189.375, -25.0), (188.0, -26.2), (190.6, -23.9)]
        .iter()
        .map(|&(ra, dec)| [ra, dec, start, end])
        .collect();
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/rmextract_ref.py"
        ))
        .arg(&ionex_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &cases).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "RMextract: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let (mut parity, mut fixed) = (0.0f64, 0.0f64);
    for (c, t) in cases.iter().zip(&theirs) {
        let times: Vec<f64> = serde_json::from_value(t["times"].clone()).unwrap();
        let rms: Vec<f64> = serde_json::from_value(t["rm"].clone()).unwrap();
        assert_eq!(
            times,
            time_grid(c[2], c[3], 300.0),
            "RMextract's time samples"
        );
        for (&t, &want) in times.iter().zip(&rms) {
            let g = geometry_as_rmextract(&ASKAP, c[0], c[1], t);
            let ours = rm_ion(
                &g,
                maps.vtec(t, g.pierce.geocentric_lat_deg, g.pierce.lon_deg),
            );
            parity = parity.max((ours / want - 1.0).abs());
            let g = geometry(&ASKAP, c[0], c[1], t);
            let ours = rm_ion(
                &g,
                maps.vtec(t, g.pierce.geocentric_lat_deg, g.pierce.lon_deg),
            );
            fixed = fixed.max((ours / want - 1.0).abs());
        }
    }
    eprintln!(
        "RM_ion against RMextract: {:.1e} relative with its geocentric-latitude quirk, {:.2} % with the geodetic latitude arrakis uses",
        parity,
        fixed * 100.0
    );
    assert!(parity < 1e-3, "{parity}");
    assert!(fixed < 0.03, "{fixed}");
}
