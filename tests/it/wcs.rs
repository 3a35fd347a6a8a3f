//! The WCS as real cubes carry it: CDELT with a PC matrix, a CD matrix, CROTA2 — pixel → world
//! against astropy, the round trip, and clear refusals of what arrakis does not read.

use std::path::Path;
use std::process::Command;

use crate::common::python;
use arrakis::fits::Header;
use arrakis::wcs::Wcs;
use serde_json::{json, Value};

fn header(cards: &[(&str, Value)]) -> Header {
    let mut h = Header::default();
    for (k, v) in cards {
        match v {
            Value::String(s) => h.set_str(k, s, ""),
            Value::Number(n) => h.set_f64(k, n.as_f64().unwrap(), ""),
            _ => unreachable!(),
        }
    }
    h
}

fn base(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut v: Vec<(&str, Value)> = vec![
        ("CTYPE1", json!("RA---SIN")),
        ("CTYPE2", json!("DEC--SIN")),
        ("CRVAL1", json!(189.375)),
        ("CRVAL2", json!(-25.0)),
        ("CRPIX1", json!(51.0)),
        ("CRPIX2", json!(48.5)),
        ("CTYPE3", json!("FREQ")),
        ("CRVAL3", json!(887.5e6)),
        ("CRPIX3", json!(1.0)),
        ("CDELT3", json!(1e6)),
    ];
    v.extend(extra.iter().cloned());
    v
}

#[test]
fn rotated_headers_map_pixels_as_astropy_does() {
    let rho: f64 = 23.0;
    let (s, c) = rho.to_radians().sin_cos();
    let cases: Vec<(&str, Vec<(&str, Value)>)> = vec![
        (
            "cdelt",
            base(&[("CDELT1", json!(-0.01)), ("CDELT2", json!(0.01))]),
        ),
        (
            "pc",
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.012)),
                ("PC1_1", json!(c)),
                ("PC1_2", json!(-s)),
                ("PC2_1", json!(s)),
                ("PC2_2", json!(c)),
            ]),
        ),
        (
            "cd",
            base(&[
                ("CD1_1", json!(-0.01 * c)),
                ("CD1_2", json!(0.01 * s)),
                ("CD2_1", json!(0.01 * s)),
                ("CD2_2", json!(0.01 * c)),
            ]),
        ),
        (
            "crota2",
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.01)),
                ("CROTA2", json!(-37.0)),
            ]),
        ),
        (
            "skewed_pc_near_pole",
            vec![
                ("CTYPE1", json!("RA---SIN")),
                ("CTYPE2", json!("DEC--SIN")),
                ("CRVAL1", json!(10.0)),
                ("CRVAL2", json!(-82.0)),
                ("CRPIX1", json!(40.0)),
                ("CRPIX2", json!(60.0)),
                ("CDELT1", json!(-0.02)),
                ("CDELT2", json!(0.02)),
                ("PC1_1", json!(0.9)),
                ("PC1_2", json!(0.2)),
                ("PC2_1", json!(-0.1)),
                ("PC2_2", json!(1.1)),
                ("CTYPE3", json!("FREQ")),
                ("CRVAL3", json!(1.3e9)),
                ("CRPIX3", json!(1.0)),
                ("CDELT3", json!(1e6)),
            ],
        ),
    ];
    let pixels: Vec<[f64; 2]> = vec![
        [0.0, 0.0],
        [50.0, 47.5],
        [99.0, 0.0],
        [13.25, 88.75],
        [99.0, 99.0],
    ];
    let dir = tempfile::tempdir().unwrap();
    let spec: Vec<Value> = cases
        .iter()
        .map(|(_, cards)| {
            let m: serde_json::Map<String, Value> = cards
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            json!({"cards": m, "pixels": pixels})
        })
        .collect();
    let cases_path = dir.path().join("cases.json");
    let out_path = dir.path().join("out.json");
    std::fs::write(&cases_path, serde_json::to_string(&spec).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/wcs_ref.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&cases_path)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "astropy reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Vec<[f64; 2]>> =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    for ((name, cards), want) in cases.iter().zip(&reference) {
        let w = Wcs::from_header(&header(cards), Path::new(name)).unwrap();
        for (p, r) in pixels.iter().zip(want) {
            let (ra, dec) = w.pix_to_world(p[0], p[1]);
            let dra = ((ra - r[0] + 180.0).rem_euclid(360.0) - 180.0) * dec.to_radians().cos();
            assert!(
                dra.abs() < 1e-9 && (dec - r[1]).abs() < 1e-9,
                "{name}: pixel {p:?} -> ({ra}, {dec}), astropy ({}, {})",
                r[0],
                r[1]
            );
            let (x, y) = w.world_to_pix(ra, dec).unwrap();
            assert!(
                (x - p[0]).abs() < 1e-7 && (y - p[1]).abs() < 1e-7,
                "{name}: round trip {p:?} -> ({x}, {y})"
            );
        }
        // Written back and read again, the mapping is the same.
        let mut h = Header::default();
        w.to_header(&mut h);
        let again = Wcs::from_header(&h, Path::new(name)).unwrap();
        let (a, b) = again.pix_to_world(13.25, 88.75);
        let (c2, d) = w.pix_to_world(13.25, 88.75);
        assert!((a - c2).abs() < 1e-9 && (b - d).abs() < 1e-9, "{name}");
    }
}

#[test]
fn projections_arrakis_does_not_read_are_refused_by_name() {
    for (cards, needle) in [
        (
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.01)),
                ("CTYPE1", json!("RA---TAN")),
            ]),
            "CTYPE1 is 'RA---TAN'",
        ),
        (
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.01)),
                ("PV2_1", json!(0.1)),
            ]),
            "PV2_1",
        ),
        (
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.01)),
                ("LONPOLE", json!(0.0)),
            ]),
            "LONPOLE",
        ),
        (
            base(&[
                ("CDELT1", json!(-0.01)),
                ("CDELT2", json!(0.01)),
                ("PC1_1", json!(0.0)),
                ("PC2_1", json!(0.0)),
            ]),
            "singular",
        ),
    ] {
        let e = Wcs::from_header(&header(&cards), Path::new("cube.fits"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("cube.fits"), "{e}");
    }
}
