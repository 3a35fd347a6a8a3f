//! `dimension: 3d` on a simulated field: RM synthesis and RM-CLEAN of every mosaic pixel
//! against RM-Tools' rmsynth3d and rmclean3d on the same cubes, RM-Tools' FITS conventions, the
//! injected RMs found in the peak-RM maps, and a CLEAN parameter change rerunning only CLEAN.

use std::path::Path;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};
use serde_json::Value;

fn reference(args: &[&std::ffi::OsStr]) -> Value {
    let out = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/rmtools3d_ref.py"
        ))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header_value(path: &Path, key: &str) -> String {
    let (h, _) = arrakis::fits::read_header(path).unwrap();
    h.get_str(key)
        .or_else(|| h.get_f64(key).map(|v| v.to_string()))
        .unwrap_or_default()
}

#[test]
fn rm_synthesis_and_clean_in_3d_agree_with_rm_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_3D";
    let dir = simulate(data, &SimOptions::small(field, 5)).unwrap();
    // The NUFFT (what `auto` picks for full-size cubes; the direct transform is checked against
    // the 1D synthesis pixel by pixel in the unit tests).
    let set = ["--set", "dimension=3d", "--set", "synth3d_method=nufft"];
    let (out, r) = build_real(&cache, data, field, &set);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "failed").is_empty(), "{r:?}");
    let ran = stages_that_ran(&r);
    assert!(
        ran.contains(&"rmsynth3d".to_string()) && !ran.contains(&"catalogue".to_string()),
        "{ran:?}"
    );

    let truth = read_csv(&dir.join("truth.csv"));
    let mut compared = 0;
    let mut peaks_checked = 0;
    for t in &truth {
        let src = &t["source_id"];
        let sdir = dir.join("cutouts").join(src);
        let prefix = sdir.join(format!("{src}_"));
        let p = |name: &str| sdir.join(format!("{src}_{name}"));
        // FITS conventions of RM-Tools.
        let fdf = p("FDF_real_dirty.fits");
        assert_eq!(header_value(&fdf, "CTYPE3"), "FDEP");
        assert!(header_value(&fdf, "BUNIT").ends_with("/RMSF"));
        assert!(!header_value(&fdf, "LAMSQ0").is_empty());

        if compared < 3 {
            let cube = |s: &str| {
                sdir.join(format!(
                    "{src}.cutout.image.restored.{s}.{field}.contcube.linmos.ion.fits"
                ))
            };
            let (q, u, noise) = (cube("q"), cube("u"), p("noise.dat"));
            let pre = format!("{}", prefix.display());
            let v = reference(&[
                "synth".as_ref(),
                q.as_os_str(),
                u.as_os_str(),
                noise.as_os_str(),
                pre.as_ref(),
            ]);
            let g = |k: &str| v[k].as_f64().unwrap();
            eprintln!("{src}: {v}");
            assert!(((g("lam0_arrakis") - g("lam0_rmtools")) / g("lam0_rmtools")).abs() < 1e-9);
            assert!(g("dphi_rel") < 1e-9);
            // RM-Tools computes in float32 through a NUFFT of tolerance 1e-6.
            for k in [
                "fdf_rel",
                "fdf_im_rel",
                "rmsf_rel",
                "rmsf_im_rel",
                "max_pi_rel",
            ] {
                assert!(g(k) < 1e-4, "{src}: {k} = {}", g(k));
            }
            assert!(v["fdf_nan_same"].as_bool().unwrap());
            // Peak RM on the same grid: equal except where two depths are within rounding.
            let (n, eq) = (g("peak_rm_pixels"), g("peak_rm_equal"));
            assert!(eq >= 0.99 * n, "{src}: peak RM equal in {eq} of {n} pixels");
            compared += 1;
        }

        // The injected RM of a lone, bright, Faraday-thin source is at the brightest pixel.
        let lone = truth.iter().filter(|o| o["source_id"] == *src).count() == 1;
        if lone && f(t, "fracpol") > 0.04 && f(t, "fracpol2") == 0.0 && f(t, "stokesI") > 0.1 {
            let max_pi = arrakis::fits::Cube::read(&p("FDF_maxPI.fits")).unwrap();
            let peak = arrakis::fits::Cube::read(&p("FDF_peakRM.fits")).unwrap();
            let (best, _) = max_pi
                .data
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
            let dphi: f64 = header_value(&fdf, "CDELT3").parse().unwrap();
            let rm = peak.data[best] as f64;
            assert!(
                (rm - f(t, "rm")).abs() <= dphi,
                "{src}: peak RM {rm} at the brightest pixel, injected {}",
                f(t, "rm")
            );
            peaks_checked += 1;
        }
    }
    assert!(
        compared == 3 && peaks_checked >= 3,
        "{peaks_checked} peaks checked"
    );

    // An absolute CLEAN cutoff reruns CLEAN only; compare with rmclean3d on our dirty cubes.
    let (out, r) = build_real(
        &cache,
        data,
        field,
        &[&set[..], &["--set", "cutoff=0.0015"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stages_that_ran(&r), ["rmclean3d"], "{r:?}");
    let mut iterations = 0.0;
    for t in truth.iter().take(3) {
        let src = &t["source_id"];
        let pre = format!(
            "{}",
            dir.join("cutouts")
                .join(src)
                .join(format!("{src}_"))
                .display()
        );
        let v = reference(&[
            "clean".as_ref(),
            pre.as_ref(),
            "0.0015".as_ref(),
            "10000".as_ref(),
            "0.1".as_ref(),
        ]);
        eprintln!("{src}: {v}");
        let g = |k: &str| v[k].as_f64().unwrap();
        for k in ["clean_rel", "clean_im_rel", "cc_tot_rel"] {
            assert!(g(k) < 1e-4, "{src}: {k} = {}", g(k));
        }
        assert!(g("niter_equal") >= 0.99 * g("pixels"), "{src}: {v}");
        iterations += g("niter_total_arrakis");
    }
    assert!(
        iterations > 0.0,
        "CLEAN did nothing: the comparison would say little"
    );
}
