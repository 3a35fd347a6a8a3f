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

#[test]
fn real_wsclean_images_a_tiny_measurement_set_into_the_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "TINY";
    let dir = data.join(field);
    std::fs::create_dir_all(dir.join("catalogue")).unwrap();
    std::fs::write(
        dir.join("field.yaml"),
        "field: TINY\nbeams:\n  - {beam: 0, ra_deg: 189.0, dec_deg: -25.0}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("catalogue/islands.csv"),
        "Source_ID,Source_Name,Tile_ID,RA,Dec,Total_flux_Source,Peak_flux,N_Gaus,S_Code\nJ123600-250000,J123600-250000,TINY,189.0,-25.0,1000.0,1000.0,1,S\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("catalogue/components.csv"),
        "Gaussian_ID,Source_ID,Source_Name,Tile_ID,RA,Dec,Total_flux_Gaussian,Peak_flux,Maj,Min,PA,S_Code,N_Gaus\nJ123600-250000_c1,J123600-250000,J123600-250000,TINY,189.0,-25.0,1000.0,1000.0,10,10,0,S,1\n",
    )
    .unwrap();
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

#[test]
fn imaging_makes_the_beam_cubes_the_cutouts_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_IMG";
    let dir = simulate(data, &SimOptions::small(field, 6)).unwrap();
    // Keep the simulated cubes aside as what "WSClean" will produce, and give the field
    // measurement sets instead.
    let cubes = data.join("truth-cubes");
    std::fs::create_dir_all(&cubes).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        if n.starts_with("image.restored.") || n.starts_with("weights.restored.") {
            std::fs::rename(&p, cubes.join(&n)).unwrap();
        }
    }
    for b in 0..4 {
        let ms = dir.join(format!(
            "scienceData.{field}.SB1.beam{b:02}_averaged_cal.leakage.ms"
        ));
        std::fs::create_dir_all(ms.join("ANTENNA")).unwrap();
        std::fs::write(ms.join("table.dat"), format!("main table of beam {b}")).unwrap();
        std::fs::write(ms.join("ANTENNA/table.dat"), "antennas").unwrap();
    }
    let stub = dir.join("wsclean");
    python_stub(&stub, "fake_wsclean.py");
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
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 12);
    assert!(
        calls.contains("-pol q") && calls.contains("-squared-channel-joining"),
        "{calls}"
    );
    assert!(
        calls.contains("-channels-out 72") && calls.contains("-weight briggs -0.5"),
        "{calls}"
    );
    // The stacked cube holds the channel planes WSClean wrote.
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
    let same = made
        .data
        .iter()
        .zip(&truth.data)
        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
    assert!(same, "stacked planes differ from the images");
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
        .filter(|id| id.starts_with("imager/"))
        .collect();
    again.sort();
    assert_eq!(
        again,
        ["imager/beam01.i", "imager/beam01.q", "imager/beam01.u"],
        "{r:?}"
    );
}
