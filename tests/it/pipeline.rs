//! The science pipeline end to end on a small simulated field (4 beams, 20 islands): recovered
//! RMs and fractions against the injected truth, flagged channels, an island outside every beam,
//! and incremental behaviour of the real stages.

use std::path::Path;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// The stages a change to linmos reruns (in the report's order).
const FROM_LINMOS: [&str; 6] = [
    "catalogue",
    "frion",
    "linmos",
    "rmclean",
    "rmsynth",
    "validate",
];

#[test]
fn simulated_field_is_recovered_and_rebuilds_incrementally() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_CI";
    let dir = simulate(data, &SimOptions::small(field, 7)).unwrap();
    // An island far outside every beam: reported, not built, nothing crashes.
    let mut isl = std::fs::read_to_string(dir.join("catalogue/islands.csv")).unwrap();
    isl.push_str("J0000-8000_far,J0000-8000_far,RACS_CI,10.0,-80.0,5.0,5.0,1,S\n");
    std::fs::write(dir.join("catalogue/islands.csv"), isl).unwrap();
    let mut comp = std::fs::read_to_string(dir.join("catalogue/components.csv")).unwrap();
    let header = comp.lines().next().unwrap().to_string();
    comp.push_str(&component_row(
        &header,
        "J0000-8000_far_c1",
        "J0000-8000_far",
        "RACS_CI",
        10.0,
        -80.0,
        5.0,
        (60.0, 50.0),
    ));
    std::fs::write(dir.join("catalogue/components.csv"), comp).unwrap();

    // Every file the field holds before its first build is an input of some target.
    let before: Vec<u64> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let (out, r) = build_real(&cache, data, field, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("outside every beam") && t.contains("J0000-8000_far"),
        "{t}"
    );
    // Each input hashed once, though many targets read the catalogues and the ionosphere file
    // (two at a time: the second waits for the first one's digest).
    assert_eq!(
        hashed(data),
        (before.len() as u64, before.iter().sum::<u64>()),
        "files and bytes hashed by the first build"
    );
    assert!(with_status(&r, "failed").is_empty());
    assert!(!r.keys().any(|id| id.contains("J0000-8000_far")));

    let truth = read_csv(&dir.join("truth.csv"));
    let recovered = || {
        let cat = catalogue_by_id(&dir, field);
        assert_eq!(cat.len(), truth.len(), "one catalogue row per component");
        let mut checked = 0;
        for t in &truth {
            let row = &cat[&t["cat_id"]];
            let (p_true, p2) = (f(t, "fracpol"), f(t, "fracpol2"));
            if p_true <= 0.0 || p2 > 0.0 || f(row, "snr_polint") <= 10.0 {
                continue;
            }
            checked += 1;
            let (rm, rm_err, rm_true) = (f(row, "rm"), f(row, "rm_err"), f(t, "rm"));
            assert!(
                (rm - rm_true).abs() < 3.0 * rm_err.max(0.05) && (rm - rm_true).abs() < 5.0,
                "{}: RM {rm} ± {rm_err}, injected {rm_true}",
                t["cat_id"]
            );
            // Within 10 % of the injected fraction, or within 3σ where the measurement is noisier
            // than that (near SNR 10 the noise alone is 10 %).
            let (fp, fp_err) = (f(row, "fracpol"), f(row, "fracpol_err"));
            assert!(
                (fp - p_true).abs() < (0.1 * p_true).max(3.0 * fp_err),
                "{}: fracpol {fp} ± {fp_err}, injected {p_true}",
                t["cat_id"]
            );
        }
        assert!(
            checked >= 8,
            "only {checked} Faraday-thin sources above SNR 10; the test would say little"
        );
    };
    recovered();

    // A changed RM-CLEAN cutoff reruns RM-CLEAN and the catalogue only.
    let (out, r) = build_real(&cache, data, field, &["--set", "cutoff=-5"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stages_that_ran(&r),
        ["catalogue", "rmclean", "validate"],
        "{r:?}"
    );
    assert_eq!(
        hashed(data),
        (0, 0),
        "the stat cache answers for every input"
    );
    let both = ["--set", "cutoff=-5", "--set", "n_samples=8"];
    // n_samples reruns RM synthesis, RM-CLEAN and the catalogue.
    let (out, r) = build_real(&cache, data, field, &both);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stages_that_ran(&r),
        ["catalogue", "rmclean", "rmsynth", "validate"],
        "{r:?}"
    );
    // Rewriting a beam cube with the same bytes reruns nothing.
    let cube = dir.join(format!(
        "image.restored.q.{field}.contcube.beam02.conv.fits"
    ));
    let bytes = std::fs::read(&cube).unwrap();
    std::fs::remove_file(&cube).unwrap();
    std::fs::write(&cube, bytes).unwrap();
    let (out, r) = build_real(&cache, data, field, &both);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    let size = std::fs::metadata(&cube).unwrap().len();
    assert_eq!(
        hashed(data),
        (1, size),
        "only the rewritten cube is read again"
    );
    // A no-op build that evaluates every target reads no file.
    let (out, r) = build_real(
        &cache,
        data,
        field,
        &[&both[..], &["--full-check"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    assert_eq!(hashed(data), (0, 0), "a no-op build hashes nothing");
    // yandasoft's default regridding (Arrakis's): linmos and what follows rerun, the mosaics
    // change, and the sources are recovered as well.
    // Every island's I mosaic (those reached by one beam alone are its own pixels either way).
    let mosaics = || -> Vec<Vec<u8>> {
        let mut ids: Vec<&String> = truth.iter().map(|t| &t["source_id"]).collect();
        ids.dedup();
        ids.iter()
            .map(|id| {
                let name = format!("{id}.cutout.image.restored.i.{field}.contcube.linmos.fits");
                std::fs::read(dir.join("cutouts").join(id).join(name)).unwrap()
            })
            .collect()
    };
    let before = mosaics();
    let linear = [&both[..], &["--set", "linmos_regrid=linear"]].concat();
    let (out, r) = build_real(&cache, data, field, &linear);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stages_that_ran(&r), FROM_LINMOS, "{r:?}");
    let changed = mosaics()
        .iter()
        .zip(&before)
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 0, "no mosaic changed with linmos_regrid=linear");
    recovered();
}

/// (files, bytes) the last `build_real` read to hash them, from its report.
fn hashed(data: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(data.join("pipeline-report.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let h = &v["hashed"];
    (h["files"].as_u64().unwrap(), h["bytes"].as_u64().unwrap())
}

/// The files a build writes, checked by others' readers: astropy (WCS, cutout pixels against the
/// beam cubes, mosaic fluxes, catalogue units), the `rmtable` package, and Debian's `fitsverify`.
#[test]
fn fits_outputs_pass_astropy_rmtable_and_fitsverify() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_FITS";
    let dir = simulate(data, &SimOptions::small(field, 11)).unwrap();
    let (out, r) = build_real(&data.join("cache"), data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "failed").is_empty(), "{r:?}");

    // The catalogue's column table, for the script to check every column against.
    let spec: Vec<serde_json::Value> = arrakis::stages::catalogue::COLUMNS
        .iter()
        .map(|c| {
            serde_json::json!({"name": c.name, "unit": c.unit, "ucd": c.ucd, "kind": format!("{:?}", c.kind)})
        })
        .collect();
    let spec_path = data.join("columns.json");
    std::fs::write(&spec_path, serde_json::to_string(&spec).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_fits.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(&dir)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "astropy check failed:\n{}",
        text(&out)
    );

    let fitsverify = ["/usr/bin/fitsverify", "/usr/local/bin/fitsverify"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("fitsverify not found: `apt-get install fitsverify` (.ci/run does)");
    let files: Vec<_> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
        .collect();
    assert!(files.len() > 100, "{} FITS files", files.len());
    for chunk in files.chunks(64) {
        let out = std::process::Command::new(fitsverify)
            .arg("-q")
            .args(chunk)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && !t.contains("verification FAILED"),
            "{t}"
        );
        assert_eq!(t.matches("verification OK").count(), chunk.len(), "{t}");
        assert!(!t.contains("warning"), "fitsverify warns:\n{t}");
    }
}

/// `arrakis demo`, the README's first command: a catalogue on the first run, nothing rebuilt on
/// the second.
#[test]
fn demo_builds_a_catalogue_then_rebuilds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
            .arg("demo")
            .current_dir(tmp.path())
            .env_remove("ARRAKIS_CACHE")
            .env_remove("ARRAKIS_RULES")
            .output()
            .unwrap()
    };
    let first = run();
    let t = text(&first);
    assert!(first.status.success(), "{t}");
    assert!(t.contains("ran 139, skipped 0, failed 0"), "{t}");
    let cat = tmp.path().join("demo/RACS_DEMO/RACS_DEMO.catalogue.csv");
    assert!(t.contains(&*cat.to_string_lossy()), "{t}");
    assert_eq!(read_csv(&cat).len(), 22);
    let second = run();
    let t = text(&second);
    assert!(
        second.status.success() && t.contains("ran 0, skipped 139, failed 0"),
        "{t}"
    );
}

/// A holography model that is the Gaussian beam gives the Gaussian mosaics; editing the model
/// reruns linmos and what follows, never the cutouts.
#[test]
fn holography_beam_model_drives_linmos() {
    use arrakis::fits::{Cube, Header, Image};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_HOLO";
    let dir = simulate(data, &SimOptions::small(field, 5)).unwrap();
    let (out, _) = build_real(&cache, data, field, &["--until", "linmos"]);
    assert!(out.status.success(), "{}", text(&out));
    let mosaics: Vec<std::path::PathBuf> = walkdir::WalkDir::new(dir.join("cutouts"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| {
            p.to_string_lossy().ends_with(".linmos.fits") && p.to_string_lossy().contains(".image.")
        })
        .collect();
    let gaussian: Vec<Cube> = mosaics.iter().map(|p| Cube::read(p).unwrap()).collect();

    // The Gaussian beam (FWHM 1.09 λ/D, D = 12 m) sampled every 0.02° out to ±2.5°, at three
    // frequencies spanning the band, for beams 0..3.
    let write_model = |scale_beam2: f32| {
        let (n, step, freqs) = (251usize, 0.02f64, [740e6f64, 890e6, 1040e6]);
        let mut pix = Vec::new();
        for beam in 0..4 {
            for f in freqs {
                let fwhm = (1.09 * 299_792_458.0 / f / 12.0f64).to_degrees();
                for iy in 0..n {
                    for ix in 0..n {
                        let (l, m) = (-2.5 + step * ix as f64, -2.5 + step * iy as f64);
                        let v = (-4.0 * 2f64.ln() * (l * l + m * m) / (fwhm * fwhm)).exp() as f32;
                        pix.push(if beam == 2 { v * scale_beam2 } else { v });
                    }
                }
            }
        }
        let mut h = Header::default();
        for (i, (ctype, crval, cdelt)) in [
            ("L-OFFSET", -2.5, step),
            ("M-OFFSET", -2.5, step),
            ("FREQ", 740e6, 150e6),
            ("BEAM", 0.0, 1.0),
        ]
        .into_iter()
        .enumerate()
        {
            h.set_str(&format!("CTYPE{}", i + 1), ctype, "");
            h.set_f64(&format!("CRVAL{}", i + 1), crval, "");
            h.set_f64(&format!("CRPIX{}", i + 1), 1.0, "");
            h.set_f64(&format!("CDELT{}", i + 1), cdelt, "");
        }
        // cfitsio never overwrites: replace the file.
        let _ = std::fs::remove_file(dir.join("holo.fits"));
        Image {
            shape: vec![n, n, 3, 4],
            data: pix,
            header: h,
        }
        .write(&dir.join("holo.fits"))
        .unwrap();
    };
    write_model(1.0);
    let holo = ["--set", "holofile=holo.fits"];
    let (out, r) = build_real(&cache, data, field, &holo);
    assert!(out.status.success(), "{}", text(&out));
    // The same model named by its absolute path (as Arrakis configs give it): the same mosaics.
    let before: Vec<Vec<u8>> = mosaics.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let abs = format!("holofile={}", dir.join("holo.fits").display());
    let (out, _) = build_real(&cache, data, field, &["--set", &abs]);
    assert!(out.status.success(), "{}", text(&out));
    for (p, b) in mosaics.iter().zip(&before) {
        assert!(
            std::fs::read(p).unwrap() == *b,
            "{}: differs with an absolute holofile",
            p.display()
        );
    }
    let (out, _) = build_real(&cache, data, field, &holo);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stages_that_ran(&r), FROM_LINMOS, "{r:?}");
    for (p, g) in mosaics.iter().zip(&gaussian) {
        let h = Cube::read(p).unwrap();
        let peak = g
            .data
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |a, v| a.max(v.abs()));
        let worst = h
            .data
            .iter()
            .zip(&g.data)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Linear interpolation of the model between 0.02° samples and 150 MHz planes.
        assert!(
            worst < 0.02 * peak,
            "{}: differs by {worst} (peak {peak})",
            p.display()
        );
        assert!(h.header.cards.iter().any(|c| c.contains("holography")));
    }
    // A different model for beam 2 reruns linmos (and downstream), not the cutouts.
    write_model(0.5);
    let (out, r) = build_real(&cache, data, field, &holo);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stages_that_ran(&r).contains(&"linmos".to_string())
            && !stages_that_ran(&r).contains(&"cutout".to_string()),
        "{r:?}"
    );
    // A holofile that is not FITS: linmos fails with an error naming it.
    std::fs::write(dir.join("holo.fits"), b"not a FITS file").unwrap();
    let (out, r) = build_real(&cache, data, field, &holo);
    assert!(!out.status.success());
    assert!(text(&out).contains("holo.fits"), "{}", text(&out));
    assert!(!with_status(&r, "failed").is_empty());
    // A typo in the holofile: one error before anything runs, naming the parameter, where it
    // was set and the file it meant; not a failure per mosaic.
    let (out, _) = build_real(&cache, data, field, &["--set", "holofile=holo.fit"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("--set holofile: 'holo.fit'")
            && t.contains(&*dir.join("holo.fit").to_string_lossy())
            && t.contains("did you mean 'holo.fits'?")
            && t.contains("rule 'linmos'")
            && t.contains("Nothing was built")
            && t.matches("does not exist").count() == 1,
        "{t}"
    );
}
