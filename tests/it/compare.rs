//! `arrakis compare`: a clean build of a simulated field passes against its truth and against
//! itself; an RM moved by 10σ and a lost component fail with exit 1, naming them; the JUnit
//! file is XML a JUnit reader takes; bad input exits 2.

use std::path::Path;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// `arrakis compare ARGS`: exit code and stdout + stderr.
fn compare(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .arg("compare")
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

/// Rewrite `from` into `to` with `edit` applied to the rows (header kept).
fn edited(from: &Path, to: &Path, edit: impl Fn(&mut Vec<csv::StringRecord>, &csv::StringRecord)) {
    let mut r = csv::Reader::from_path(from).unwrap();
    let headers = r.headers().unwrap().clone();
    let mut rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    edit(&mut rows, &headers);
    let mut w = csv::Writer::from_path(to).unwrap();
    w.write_record(&headers).unwrap();
    for row in rows {
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn compare_passes_a_clean_build_and_names_what_regressed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_CMP";
    let dir = simulate(data, &SimOptions::small(field, 2)).unwrap();
    let (out, _) = build_real(&data.join("cache"), data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let cat = dir.join(format!("{field}.catalogue.csv"));
    let truth = dir.join("truth.csv");
    let (junit, md) = (data.join("junit.xml"), data.join("cmp.md"));
    let os = |p: &Path| p.as_os_str().to_owned();
    let s = |x: &str| std::ffi::OsString::from(x);

    // Against the truth: passes, and the JUnit file lists every check, none failed.
    let args = [
        os(&cat),
        s("--truth"),
        os(&truth),
        s("--junit"),
        os(&junit),
        s("--markdown"),
        os(&md),
    ];
    let (code, t) = compare(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("passed"), "{t}");
    let x = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&x).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert!(cases > 10, "{x}");
    assert_eq!(suite.attribute("tests"), Some(cases.to_string().as_str()));
    assert_eq!(suite.attribute("failures"), Some("0"));
    assert!(std::fs::read_to_string(&md).unwrap().contains(": passed"));

    // Against itself: passes.
    let (code, t) = compare(&[
        cat.as_os_str(),
        s("--reference").as_os_str(),
        cat.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{t}");

    // One RM moved by 10σ (the component brightest in polarisation: surely pulled against
    // the truth): both checks fail, naming it and the values.
    let moved = data.join("moved.csv");
    let rows = read_csv(&cat);
    let num = |k: usize, c: &str| rows[k][c].parse::<f64>().unwrap_or(f64::NAN);
    let k = (0..rows.len())
        .max_by(|&a, &b| num(a, "snr_polint").total_cmp(&num(b, "snr_polint")))
        .unwrap();
    let victim = rows[k]["cat_id"].clone();
    let rm = num(k, "rm") + 10.0 * num(k, "rm_err");
    edited(&cat, &moved, |rows, h| {
        let (c_id, c_rm) = (
            h.iter().position(|x| x == "cat_id").unwrap(),
            h.iter().position(|x| x == "rm").unwrap(),
        );
        for r in rows.iter_mut() {
            if r[c_id] == victim {
                let mut row: Vec<String> = r.iter().map(String::from).collect();
                row[c_rm] = format!("{rm}");
                *r = csv::StringRecord::from(row);
            }
        }
    });
    let (code, t) = compare(&[
        moved.as_os_str(),
        s("--truth").as_os_str(),
        truth.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains(&victim) && t.contains("pull"), "{victim}: {t}");
    let args = [
        os(&moved),
        s("--reference"),
        os(&cat),
        s("--junit"),
        os(&junit),
    ];
    let (code, t) = compare(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains(&format!("{victim}: ")) && t.contains("rm moved beyond"),
        "{t}"
    );
    let x = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&x).unwrap();
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.attribute("message").unwrap_or("").to_string())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains(&victim), "{failed:?}");
    // With a looser tolerance for rm it passes.
    let args = [
        os(&moved),
        s("--reference"),
        os(&cat),
        s("--tolerance"),
        s("rm=20sigma"),
    ];
    let (code, t) = compare(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{t}");

    // A component lost.
    let lost = data.join("lost.csv");
    edited(&cat, &lost, |rows, _| {
        rows.remove(0);
    });
    let first = csv::Reader::from_path(&cat)
        .unwrap()
        .records()
        .next()
        .unwrap()
        .unwrap()[0]
        .to_string();
    let (code, t) = compare(&[
        lost.as_os_str(),
        s("--reference").as_os_str(),
        cat.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("1 lost") && t.contains(&first), "{t}");

    // Bad input: exit 2, naming the file or the option.
    let (code, t) = compare(&[
        s("nope.csv").as_os_str(),
        s("--truth").as_os_str(),
        truth.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("nope.csv"), "{t}");
    let (code, t) = compare(&[cat.as_os_str(), s("--truth").as_os_str(), cat.as_os_str()]);
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("no column 'fracpol2'"), "{t}");
    let args = [
        os(&cat),
        s("--reference"),
        os(&cat),
        s("--tolerance"),
        s("rn=1"),
    ];
    let (code, t) = compare(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("no column 'rn'"), "{t}");
}

#[test]
fn a_change_to_one_stages_code_reruns_that_stage_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_CODE";
    simulate(data, &SimOptions::small(field, 3)).unwrap();
    let (out, _) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    // The key holds a digest of each stage's code (build.rs); the tests' builds let
    // ARRAKIS_TEST_CODE_CHANGED stand for an edit of rmclean's.
    let report = data.join("code.json");
    let run = |changed: Option<&str>| {
        let mut c = arrakis(&cache);
        c.args(["build", field, "--quiet", "--datadir"])
            .arg(data)
            .arg("--report")
            .arg(&report);
        if let Some(name) = changed {
            c.env("ARRAKIS_TEST_CODE_CHANGED", name);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        read_report(&report)
    };
    let r = run(Some("rmclean"));
    // The edit left rmclean's bytes as they were, so what reads them stays up to date.
    assert_eq!(stages_that_ran(&r), ["rmclean"], "{r:?}");
    assert!(run(Some("rmclean")).values().all(|s| s == "skipped"));
    // Back to the code as it was: rmclean's earlier outputs come back from the content store.
    let r = run(None);
    let made: std::collections::BTreeSet<&str> = r
        .iter()
        .filter(|(_, s)| *s != "skipped")
        .map(|(id, _)| id.split('/').next().unwrap())
        .collect();
    assert_eq!(made.into_iter().collect::<Vec<_>>(), ["rmclean"], "{r:?}");
}

#[test]
fn the_accepted_demo_catalogue_holds_without_vector_instructions() {
    // `.ci/run` compares the demo built with this CPU's widest kernels against the accepted
    // catalogue; here the same field built with none (ARRAKIS_SIMD=scalar) must agree within
    // the default tolerances too, so the accepted catalogue does not depend on the CI machine.
    let tmp = tempfile::tempdir().unwrap();
    let out = arrakis(&tmp.path().join("cache"))
        .env("ARRAKIS_SIMD", "scalar")
        .args(["demo", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // The per-stage table: CPU seconds and bytes hashed (the demo's first build hashes every
    // beam cube before cutting it).
    let header = t.lines().find(|l| l.starts_with("stage ")).unwrap_or("");
    assert!(header.contains("cpu-s") && header.contains("hashed"), "{t}");
    let cutout: Vec<&str> = t
        .lines()
        .find(|l| l.starts_with("cutout "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(
        cutout.len() == 7 && cutout[4].parse::<f64>().is_ok() && cutout[6] == "MB",
        "{t}"
    );
    let accepted =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/accepted/RACS_DEMO.catalogue.csv");
    let cat = tmp.path().join("RACS_DEMO/RACS_DEMO.catalogue.csv");
    let (code, t) = compare(&[
        cat.as_os_str(),
        "--reference".as_ref(),
        accepted.as_os_str(),
    ]);
    assert_eq!(
        code,
        Some(0),
        "the demo field no longer reproduces .ci/accepted/RACS_DEMO.catalogue.csv; if the change \
         is intended, accept the new catalogue (README, CI regression runs):\n{t}"
    );
    // A cap that is not an instruction set is refused before anything runs.
    let out = arrakis(&tmp.path().join("cache"))
        .env("ARRAKIS_SIMD", "avx3")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("ARRAKIS_SIMD"), "{}", text(&out));
}
