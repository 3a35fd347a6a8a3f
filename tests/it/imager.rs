//! The imager rule (`imaging: true`): the measurement set of each beam found by name, WSClean
//! run without a shell with the argv `stages::imager::wsclean_argv` builds (its exact form is
//! tested against Arrakis's settings in the unit tests), the channel images stacked into the
//! beam cube the cutout stage reads. The first test runs Debian's real WSClean on a tiny
//! measurement set written with python-casacore and follows it to the catalogue; the second
//! stands in for WSClean (tests/py/fake_wsclean.py) on a whole simulated field, to check
//! which beams are imaged again when a measurement set changes.

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// Debian's python3 with python-casacore (`ARRAKIS_CASACORE_PYTHON` to override).
fn casacore_python() -> std::path::PathBuf {
    let p = std::env::var_os("ARRAKIS_CASACORE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/python3".into());
    let ok = std::process::Command::new(&p)
        .args(["-c", "import casacore.tables"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import casacore: install python3-casacore and wsclean (`bash .ci/run` does), or set ARRAKIS_CASACORE_PYTHON",
        p.display()
    );
    p
}

/// A field of one beam at (189, -25) with one island of one component at its centre, as the
/// tiny measurement sets of `make_ms.py` see it: its directory.
fn one_source_field(data: &std::path::Path, field: &str) -> std::path::PathBuf {
    let dir = data.join(field);
    std::fs::create_dir_all(dir.join("catalogue")).unwrap();
    std::fs::write(
        dir.join("field.yaml"),
        format!("field: {field}\nbeams:\n  - {{beam: 0, ra_deg: 189.0, dec_deg: -25.0}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("catalogue/islands.csv"),
        format!("Source_ID,Source_Name,Tile_ID,RA,Dec,Total_flux_Source,Peak_flux,N_Gaus,S_Code\nJ123600-250000,J123600-250000,{field},189.0,-25.0,1000.0,1000.0,1,S\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("catalogue/components.csv"),
        format!("Gaussian_ID,Source_ID,Source_Name,Tile_ID,RA,Dec,Total_flux_Gaussian,Peak_flux,Maj,Min,PA,S_Code,N_Gaus\nJ123600-250000_c1,J123600-250000,J123600-250000,{field},189.0,-25.0,1000.0,1000.0,10,10,0,S,1\n"),
    )
    .unwrap();
    dir
}

#[test]
fn real_wsclean_images_a_tiny_measurement_set_into_the_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "TINY";
    let dir = one_source_field(data, field);
    // I = 1 Jy, Q = 0.3, U = -0.2: p = 0.3606, RM = 0.
    let out = std::process::Command::new(casacore_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/make_ms.py"))
        .arg(dir.join("scienceData.TINY.SB1.beam00_averaged_cal.leakage.ms"))
        .args(["16", "1.0", "0.3", "-0.2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Arrakis's settings, less what the stock WSClean 3.1 lacks (force_mask_rounds, -gridder),
    // on a small image.
    let (out, r) = build_real(
        &data.join("cache"),
        data,
        field,
        &[
            "--set",
            "imaging=true",
            "--set",
            "nchan=16",
            "--set",
            "size=160",
            "--set",
            "scale=3",
            "--set",
            "niter=200",
            "--set",
            "force_mask_rounds=null",
            "--set",
            "gridder=null",
            "--set",
            "skip_frion=true",
            // In WSClean's convention already.
            "--set",
            "skip_fix_ms=true",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        with_status(&r, "ran")
            .iter()
            .filter(|id| id.starts_with("imager/"))
            .count(),
        3,
        "{r:?}"
    );
    let cat = catalogue_by_id(&dir, field);
    let row = &cat["J123600-250000_c1"];
    let (i, p, rm, rm_err) = (
        f(row, "stokesI"),
        f(row, "fracpol"),
        f(row, "rm"),
        f(row, "rm_err"),
    );
    eprintln!("WSClean -> arrakis: I {i}, p {p}, RM {rm} ± {rm_err}");
    assert!((i - 1.0).abs() < 0.02, "Stokes I {i}, injected 1.0");
    assert!(
        (p - 0.3606).abs() < 0.01,
        "fractional polarisation {p}, injected 0.3606"
    );
    assert!(
        rm.abs() < (3.0 * rm_err).max(0.5),
        "RM {rm} ± {rm_err}, injected 0"
    );
}

/// FWHM (pixels) along the major and minor axes of the source around the brightest pixel of a
/// plane: from the second moments of the pixels above 30 % of the peak within 12 pixels.
fn source_shape(plane: &[f32], nx: usize) -> (f64, f64) {
    let (k, peak) = plane
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .fold((0, f32::MIN), |m, (k, &v)| if v > m.1 { (k, v) } else { m });
    let (px, py) = ((k % nx) as i64, (k / nx) as i64);
    let ny = (plane.len() / nx) as i64;
    let (mut s, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for y in (py - 12).max(0)..(py + 13).min(ny) {
        for x in (px - 12).max(0)..(px + 13).min(nx as i64) {
            let v = plane[(y * nx as i64 + x) as usize];
            if v.is_finite() && v > 0.3 * peak {
                let (v, dx, dy) = (v as f64, (x - px) as f64, (y - py) as f64);
                s += v;
                sx += v * dx;
                sy += v * dy;
                sxx += v * dx * dx;
                syy += v * dy * dy;
                sxy += v * dx * dy;
            }
        }
    }
    let (mx, my) = (sx / s, sy / s);
    let (a, b, c) = (sxx / s - mx * mx, syy / s - my * my, sxy / s - mx * my);
    let mean = 0.5 * (a + b);
    let diff = (0.25 * (a - b) * (a - b) + c * c).sqrt();
    let k = 2.0 * (2.0 * 2f64.ln()).sqrt();
    (k * (mean + diff).sqrt(), k * (mean - diff).max(0.0).sqrt())
}

/// The same measure on a Gaussian of the given beam (degrees) sampled like the image, so that
/// the cut at 30 % biases both alike.
fn gaussian_shape(bmaj: f64, bmin: f64, bpa: f64, cell: f64, nx: usize) -> (f64, f64) {
    let beam = arrakis::science::resolution::Beam { bmaj, bmin, bpa };
    let [xx, yy, xy] = beam.covariance();
    let (a, b, c) = (xx / cell / cell, yy / cell / cell, -xy / cell / cell);
    let det = a * b - c * c;
    let centre = (nx / 2) as f64;
    let plane: Vec<f32> = (0..nx * nx)
        .map(|p| {
            let (x, y) = ((p % nx) as f64 - centre, (p / nx) as f64 - centre);
            (-0.5 * (b * x * x + a * y * y - 2.0 * c * x * y) / det).exp() as f32
        })
        .collect();
    source_shape(&plane, nx)
}

#[test]
fn fix_ms_then_real_wsclean_give_the_injected_angle_at_one_resolution() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "TINYFIX";
    let dir = one_source_field(data, field);
    // ASKAP's correlations for a polarisation axis at P = 20 deg of I = 1, Q = 0.3, U = -0.2:
    // p = 0.3606, angle 0.5 atan2(U, Q) = -16.85 deg (163.15).
    let python = casacore_python();
    let ms = dir.join("scienceData.TINYFIX.SB1.beam00_averaged_cal.leakage.ms");
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/make_ms.py"))
        .arg(&ms)
        .args(["16", "1.0", "0.3", "-0.2", "--askap", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(ms.join("table.f1")).ok();
    let python_set = format!("casacore_python={}", python.display());
    let sets = [
        "--set",
        "imaging=true",
        "--set",
        "nchan=16",
        "--set",
        "size=160",
        "--set",
        "scale=3",
        "--set",
        "niter=200",
        "--set",
        "force_mask_rounds=null",
        "--set",
        "gridder=null",
        "--set",
        "skip_frion=true",
        "--set",
        &python_set,
    ];
    let (out, r) = build_real(&data.join("cache"), data, field, &sets);
    assert!(out.status.success(), "{}", text(&out));
    for id in ["fix_ms/beam00", "wsclean/beam00", "imager/beam00.q"] {
        assert_eq!(r.get(id).map(String::as_str), Some("ran"), "{id}: {r:?}");
    }
    // The original set is untouched (fix_ms wrote a new one).
    assert_eq!(std::fs::read(ms.join("table.f1")).ok(), before);
    let info = std::fs::read_to_string(dir.join("imaging/beam00.fix_ms.json")).unwrap();
    assert!(info.contains("\"pol_axis_deg\": 20.0"), "{info}");

    let row = &catalogue_by_id(&dir, field)["J123600-250000_c1"];
    let (i, p, angle) = (f(row, "stokesI"), f(row, "fracpol"), f(row, "polangle"));
    eprintln!("fix_ms + WSClean -> arrakis: I {i}, p {p}, angle {angle}");
    assert!((i - 1.0).abs() < 0.03, "Stokes I {i}, injected 1.0");
    assert!((p - 0.3606).abs() < 0.015, "p {p}, injected 0.3606");
    let d = (angle - 163.15).rem_euclid(180.0);
    assert!(
        d.min(180.0 - d) < 2.0,
        "polarisation angle {angle}, injected 163.15 (-16.85)"
    );

    // Every channel of every smoothed cube has the common beam in its header; the channels
    // WSClean made had beams of their own.
    let mut spread_before = 0.0f64;
    for stokes in ["i", "q", "u"] {
        let cube = arrakis::fits::Cube::read(&dir.join(format!(
            "image.restored.{stokes}.{field}.contcube.beam00.conv.fits"
        )))
        .unwrap();
        let h = &cube.header;
        let (bmaj, bmin, bpa) = (
            h.get_f64("BMAJ").unwrap(),
            h.get_f64("BMIN").unwrap(),
            h.get_f64("BPA").unwrap(),
        );
        assert_eq!(h.get_f64("INSTRUMENT_RECEPTOR_ANGLE"), Some(20.0));
        let cell = h.get_f64("CDELT2").unwrap();
        let want = gaussian_shape(bmaj, bmin, bpa, cell, 64);
        let plane = cube.nx * cube.ny;
        let raw =
            arrakis::fits::Cube::read(&dir.join(format!("imaging/beam00.channels.{stokes}.fits")))
                .unwrap();
        let mut sizes = Vec::new();
        for c in 0..cube.nchan {
            let chan = &cube.data[c * plane..(c + 1) * plane];
            // Q and U of this source: Q positive, U negative (flip U to measure it).
            let chan: Vec<f32> = chan
                .iter()
                .map(|v| if stokes == "u" { -v } else { *v })
                .collect();
            let got = source_shape(&chan, cube.nx);
            // I is bright (1 Jy); Q and U (0.3, 0.2 Jy) are measured through more noise.
            let tol = if stokes == "i" { 0.04 } else { 0.12 };
            eprintln!("{stokes} {c}: {got:?} vs {want:?}");
            assert!(
                (got.0 / want.0 - 1.0).abs() < tol && (got.1 / want.1 - 1.0).abs() < tol,
                "Stokes {stokes} channel {c}: source {got:?} px, common beam {want:?} px"
            );
            let r: Vec<f32> = raw.data[c * plane..(c + 1) * plane]
                .iter()
                .map(|v| if stokes == "u" { -v } else { *v })
                .collect();
            sizes.push(source_shape(&r, raw.nx).0);
        }
        let (lo, hi) = sizes
            .iter()
            .fold((f64::MAX, 0f64), |m, s| (m.0.min(*s), m.1.max(*s)));
        spread_before = spread_before.max(hi / lo - 1.0);
    }
    assert!(
        spread_before > 0.05,
        "WSClean's channel beams hardly differ ({spread_before})"
    );

    // psf_cutoff between the channels' beams: only the smoothing reruns (WSClean's images are
    // up to date); the channels whose beam is above it are blank, with weight nan, and the
    // common beam is smaller.
    let beams: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("imaging/beam00.beams.json")).unwrap(),
    )
    .unwrap();
    let bmaj = |s: &str, c: usize| beams["beams"][s][c][0].as_f64().unwrap() * 3600.0;
    let mut all: Vec<f64> = (0..16).map(|c| bmaj("i", c)).collect();
    all.sort_by(f64::total_cmp);
    let cutoff = (all[7] + all[8]) / 2.0;
    let old_beam = arrakis::fits::Cube::read(&dir.join(format!(
        "image.restored.i.{field}.contcube.beam00.conv.fits"
    )))
    .unwrap()
    .header
    .get_f64("BMAJ")
    .unwrap();
    let cut = format!("psf_cutoff={cutoff}");
    let mut with_cut: Vec<&str> = sets.to_vec();
    with_cut.extend(["--set", &cut]);
    let (out, r) = build_real(&data.join("cache"), data, field, &with_cut);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(r["wsclean/beam00"], "skipped", "{r:?}");
    assert_eq!(r["imager/beam00.i"], "ran", "{r:?}");
    for stokes in ["i", "q", "u"] {
        let cube = arrakis::fits::Cube::read(&dir.join(format!(
            "image.restored.{stokes}.{field}.contcube.beam00.conv.fits"
        )))
        .unwrap();
        assert!(cube.header.get_f64("BMAJ").unwrap() < old_beam);
        let weights = std::fs::read_to_string(dir.join(format!(
            "weights.restored.{stokes}.{field}.contcube.beam00.conv.txt"
        )))
        .unwrap();
        let plane = cube.nx * cube.ny;
        for c in 0..16 {
            let blank = cube.data[c * plane..(c + 1) * plane]
                .iter()
                .all(|v| v.is_nan());
            assert_eq!(
                blank,
                bmaj(stokes, c) > cutoff,
                "Stokes {stokes} channel {c}"
            );
            let w = weights.lines().nth(c + 1).unwrap();
            assert_eq!(w.ends_with(" nan"), blank, "{w}");
        }
    }
    assert!(catalogue_by_id(&dir, field).contains_key("J123600-250000_c1"));
}

/// A simulated field whose beam cubes are set aside (in the returned directory) as what the
/// stand-in WSClean "images", with a stand-in measurement set per beam and the stand-in
/// program in the field directory: (field directory, cubes, program).
fn field_for_fake_wsclean(
    data: &std::path::Path,
    opts: &SimOptions,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let field = &opts.field;
    let dir = simulate(data, opts).unwrap();
    let cubes = data.join("truth-cubes");
    std::fs::create_dir_all(&cubes).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        if n.starts_with("image.restored.") || n.starts_with("weights.restored.") {
            std::fs::rename(&p, cubes.join(&n)).unwrap();
        }
    }
    for b in 0..opts.beams {
        let ms = dir.join(format!(
            "scienceData.{field}.SB1.beam{b:02}_averaged_cal.leakage.ms"
        ));
        std::fs::create_dir_all(ms.join("ANTENNA")).unwrap();
        std::fs::write(ms.join("table.dat"), format!("main table of beam {b}")).unwrap();
        std::fs::write(ms.join("ANTENNA/table.dat"), "antennas").unwrap();
    }
    let stub = dir.join("wsclean");
    python_stub(&stub, "fake_wsclean.py");
    (dir, cubes, stub)
}

#[test]
fn a_diverging_wsclean_run_is_rerun_once_larger() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let opts = SimOptions {
        beams: 1,
        sources: 3,
        nchan: 8,
        npix: 64,
        ..SimOptions::small("RACS_DIV", 3)
    };
    let (_dir, cubes, stub) = field_for_fake_wsclean(data, &opts);
    let log = data.join("wsclean.log");
    let wsclean = format!("wsclean={}", stub.display());
    let run = |diverge: &str| {
        let report = data.join("div-report.json");
        let out = arrakis(&data.join("cache"))
            .args(["build", "RACS_DIV", "--quiet", "--datadir"])
            .arg(data)
            .arg("--report")
            .arg(&report)
            .args([
                "--set",
                "imaging=true",
                "--set",
                &wsclean,
                "--set",
                "nchan=8",
            ])
            .args(["--set", "size=200", "--set", "force_mask_rounds=null"])
            .args(["--set", "skip_fix_ms=true", "--force", "wsclean"])
            .env("FAKE_WSCLEAN_CUBES", &cubes)
            .env("FAKE_WSCLEAN_LOG", &log)
            .env("FAKE_WSCLEAN_DIVERGE", diverge)
            .output()
            .unwrap();
        (out, read_report(&report))
    };
    // The I run diverges at 200 pixels: stopped, and run again at 1224; the Q/U run does not.
    let (out, r) = run("i:200");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(r["wsclean/beam00"], "ran");
    let calls = std::fs::read_to_string(&log).unwrap();
    let sizes: Vec<&str> = calls
        .lines()
        .map(|l| l.split("-size ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    assert_eq!(sizes, ["200", "1224", "200"], "{calls}");
    let beams = std::fs::read_to_string(data.join("RACS_DIV/imaging/beam00.beams.json")).unwrap();
    assert!(
        beams.contains("\"i\": 1224") && beams.contains("\"qu\": 200"),
        "{beams}"
    );
    // Diverging twice fails the target, saying so.
    let (out, r) = run("i:200,i:1224");
    assert!(!out.status.success());
    assert_eq!(r["wsclean/beam00"], "failed");
    assert!(
        text(&out).contains("WSClean diverged twice (a flux in KJy): at size 200"),
        "{}",
        text(&out)
    );
}

#[test]
fn imaging_makes_the_beam_cubes_the_cutouts_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_IMG";
    // Keep the simulated cubes aside as what "WSClean" will produce, and give the field
    // measurement sets instead.
    let (dir, cubes, stub) = field_for_fake_wsclean(data, &SimOptions::small(field, 6));
    let log = data.join("wsclean.log");
    let cache = data.join("cache");
    let sets = [
        "--set",
        "imaging=true",
        "--set",
        &format!("wsclean={}", stub.display()),
        "--set",
        "nchan=72",
        "--set",
        "force_mask_rounds=null",
        // Not real measurement sets: image them as they are.
        "--set",
        "skip_fix_ms=true",
    ];
    let run = |extra: &[&str]| {
        let report = data.join("img-report.json");
        let out = arrakis(&cache)
            .args(["build", field, "--quiet", "--datadir"])
            .arg(data)
            .arg("--report")
            .arg(&report)
            .args(sets)
            .args(extra)
            .env("FAKE_WSCLEAN_CUBES", &cubes)
            .env("FAKE_WSCLEAN_LOG", &log)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        read_report(&report)
    };
    let r = run(&[]);
    let imaged = with_status(&r, "ran")
        .into_iter()
        .filter(|id| id.starts_with("imager/"))
        .count();
    assert_eq!(imaged, 12, "4 beams x I, Q, U: {r:?}");
    // Two WSClean runs per beam: I, and Q with U joined.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 8, "{calls}");
    assert!(
        calls.contains("-pol qu -join-polarizations") && calls.contains("-squared-channel-joining"),
        "{calls}"
    );
    assert!(
        calls.contains("-channels-out 72") && calls.contains("-weight briggs -0.5"),
        "{calls}"
    );
    // The cube holds the channel planes WSClean wrote, smoothed to the common beam: every
    // channel had the simulation's beam, so only the rounding up of the common beam (to 0.1
    // arcsec) convolves them, by a hair.
    let made = arrakis::fits::Cube::read(&dir.join(format!(
        "image.restored.u.{field}.contcube.beam02.conv.fits"
    )))
    .unwrap();
    let truth = arrakis::fits::Cube::read(&cubes.join(format!(
        "image.restored.u.{field}.contcube.beam02.conv.fits"
    )))
    .unwrap();
    assert_eq!(
        (made.nx, made.ny, made.nchan),
        (truth.nx, truth.ny, truth.nchan)
    );
    let peak = truth
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    let worst = made
        .data
        .iter()
        .zip(&truth.data)
        .map(|(a, b)| {
            if a.is_nan() && b.is_nan() {
                0.0
            } else {
                (a - b).abs()
            }
        })
        .fold(0f32, f32::max);
    assert!(
        worst < 0.01 * peak,
        "smoothed planes differ from the images by {worst} (peak {peak})"
    );
    assert!(dir.join(format!("{field}.catalogue.csv")).exists());
    // No scratch directory is left behind.
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".arrakis-imager")));

    // A measurement set changes: that beam is imaged again, the others are not.
    std::fs::write(
        dir.join(format!(
            "scienceData.{field}.SB1.beam01_averaged_cal.leakage.ms/table.dat"
        )),
        "recalibrated",
    )
    .unwrap();
    let r = run(&[]);
    let mut again: Vec<String> = with_status(&r, "ran")
        .into_iter()
        .filter(|id| id.starts_with("imager/") || id.starts_with("wsclean/"))
        .collect();
    again.sort();
    // WSClean ran again for that beam alone; it made the same images (the stand-in copies the
    // same cubes), so early cutoff leaves the smoothing and everything after it up to date.
    assert_eq!(again, ["wsclean/beam01"], "{r:?}");
}
