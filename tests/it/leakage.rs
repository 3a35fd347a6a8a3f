//! Leakage removal in linmos with ASKAP's holography model: `arrakis simulate --leakage`
//! injects instrumental leakage of Stokes I into Q and U and writes the holography cube that
//! describes it; a build with `holofile` removes it. One sky and one noise realisation (the same
//! seed) simulated without leakage, with leakage left in, and with leakage removed: the
//! corrected fractional polarisation is the leakage-free one, and far from the uncorrected one.

use std::path::Path;

use crate::common::*;
use arrakis::fits::{Cube, Image};
use arrakis::simulate::{simulate, SimOptions};

/// The options of one of the three fields (same seed: same sky and noise).
fn opts(field: &str, leakage: Option<f64>) -> SimOptions {
    SimOptions {
        sources: 30,
        leakage,
        ..SimOptions::small(field, 5)
    }
}

/// Fractional polarisation of every single-component-Faraday component, by id.
fn fracpols(dir: &Path, field: &str) -> std::collections::BTreeMap<String, f64> {
    catalogue_by_id(dir, field)
        .into_iter()
        .map(|(id, row)| (id, f(&row, "fracpol")))
        .collect()
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn holography_removes_the_injected_leakage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let fields = [
        ("CLEAN", None, false),
        ("LEFT_IN", Some(0.03), false),
        ("REMOVED", Some(0.03), true),
    ];
    let mut p = Vec::new();
    for (field, leakage, holo) in fields {
        let dir = simulate(data, &opts(field, leakage)).unwrap();
        let mut args = vec!["--set", "skip_frion=true"];
        if holo {
            args.extend(["--set", "holofile=holography.fits"]);
        }
        let (out, r) = build_real(&data.join(format!("cache-{field}")), data, field, &args);
        assert!(out.status.success(), "{field}: {}", text(&out));
        assert!(!with_status(&r, "ran").is_empty());
        p.push(fracpols(&dir, field));
    }
    let dir = data.join("REMOVED");
    // The model is in ASKAP's layout.
    let holo = Image::read(&dir.join("holography.fits")).unwrap();
    assert_eq!(holo.shape, vec![101, 101, 17, 4, 4]);
    for (i, want) in ["RA---SIN", "DEC--SIN", "FREQ", "STOKES", "BEAM"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            holo.header.get_str(&format!("CTYPE{}", i + 1)).as_deref(),
            Some(*want)
        );
    }
    // Q and U mosaics say the leakage was removed; I's do not.
    let mosaic = |stokes: &str| {
        let src = std::fs::read_dir(dir.join("cutouts"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        let src = src.to_string_lossy();
        Cube::read(&dir.join(format!(
            "cutouts/{src}/{src}.cutout.image.restored.{stokes}.REMOVED.contcube.linmos.fits"
        )))
        .unwrap()
    };
    let says = |c: &Cube| c.header.cards.iter().any(|c| c.contains("leakage of I"));
    assert!(says(&mosaic("q")) && says(&mosaic("u")) && !says(&mosaic("i")));

    // Against the truth, and against the same field built without leakage (same noise).
    let truth: Vec<_> = read_csv(&dir.join("truth.csv"))
        .into_iter()
        .filter(|t| f(t, "fracpol2") == 0.0)
        .collect();
    let (mut err_clean, mut err_left, mut err_removed) = (vec![], vec![], vec![]);
    let (mut by_leak_left, mut by_leak_removed) = (vec![], vec![]);
    for t in &truth {
        let id = &t["cat_id"];
        let (c, l, r) = (p[0][id], p[1][id], p[2][id]);
        if !(c.is_finite() && l.is_finite() && r.is_finite()) {
            continue;
        }
        let truth = f(t, "fracpol");
        err_clean.push(c - truth);
        err_left.push(l - truth);
        err_removed.push(r - truth);
        by_leak_left.push(l - c);
        by_leak_removed.push(r - c);
    }
    assert!(err_clean.len() >= 20, "{} components", err_clean.len());
    let (rc, rl, rr) = (rms(&err_clean), rms(&err_left), rms(&err_removed));
    let (ll, lr) = (rms(&by_leak_left), rms(&by_leak_removed));
    eprintln!(
        "fracpol rms error vs truth: no leakage {rc:.5}, left in {rl:.5}, removed {rr:.5}; \
         error the leakage makes (vs the leakage-free build): left in {ll:.6}, removed {lr:.6}"
    );
    // As accurate as without leakage...
    assert!(rr <= rc * 1.02 + 1e-5, "removed {rr} vs no leakage {rc}");
    assert!(
        by_leak_removed.iter().all(|d| d.abs() < 5e-4),
        "{by_leak_removed:?}"
    );
    // ...and the leakage it removed was real: left in, it moves fracpol many times more (the
    // noise, the same in all three, dominates the error against the truth at this SNR).
    assert!(rl > rc, "left in {rl} vs no leakage {rc}");
    assert!(ll > 3.0 * lr && ll > 1e-3, "left in {ll}, removed {lr}");
}

#[test]
fn a_holography_model_without_a_beam_fails_linmos_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let dir = simulate(
        data,
        &SimOptions {
            beams: 4,
            sources: 4,
            nchan: 16,
            npix: 80,
            leakage: Some(0.01),
            ..SimOptions::small("NOBEAM", 2)
        },
    )
    .unwrap();
    // Keep beams 0..2 of the model: beam 3 is missing.
    let holo = Image::read(&dir.join("holography.fits")).unwrap();
    let per_beam = holo.data.len() / 4;
    std::fs::remove_file(dir.join("holography.fits")).unwrap();
    Image {
        shape: vec![101, 101, 17, 4, 3],
        data: holo.data[..3 * per_beam].to_vec(),
        header: holo.header.clone(),
    }
    .write(&dir.join("holography.fits"))
    .unwrap();
    let (out, r) = build_real(
        &data.join("cache"),
        data,
        "NOBEAM",
        &[
            "--set",
            "holofile=holography.fits",
            "--set",
            "skip_frion=true",
        ],
    );
    assert!(!out.status.success());
    // The linmos targets of islands in beam 3 fail (and their dependents with them); the
    // cutouts were built.
    let failed = with_status(&r, "failed");
    assert!(failed.iter().any(|id| id.starts_with("linmos/")), "{r:?}");
    assert!(!failed.iter().any(|id| id.starts_with("cutout/")), "{r:?}");
    assert!(
        text(&out).contains("the holography model has no beam 3"),
        "{}",
        text(&out)
    );
}
