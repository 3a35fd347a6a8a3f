//! Regions: overlapping fields of one simulated sky (`--sky-seed`) merged by `arrakis region`.
//! Every component once (none lost, none twice), the components both fields imaged measured on
//! the joint mosaic with a smaller polint_err than either field alone, a second run a no-op, and
//! a third field added reruns only the islands it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// Field `name` of sky 7 centred at `ra`, Dec −25 (the noise of `seed`).
fn field(data: &Path, name: &str, ra: f64, seed: u64) {
    simulate(
        data,
        &SimOptions {
            centre: Some((ra, -25.0)),
            sky_seed: Some(7),
            ..SimOptions::small(name, seed)
        },
    )
    .unwrap();
}

/// A position key that identifies a simulated component across fields (they share positions).
fn key(row: &std::collections::HashMap<String, String>) -> (i64, i64) {
    (
        (f(row, "ra") * 1e5).round() as i64,
        (f(row, "dec") * 1e5).round() as i64,
    )
}

fn by_position(
    dir: &Path,
    name: &str,
) -> BTreeMap<(i64, i64), std::collections::HashMap<String, String>> {
    let rows = read_csv(&dir.join(name).join(format!("{name}.catalogue.csv")));
    let n = rows.len();
    let m: BTreeMap<_, _> = rows.into_iter().map(|r| (key(&r), r)).collect();
    assert_eq!(m.len(), n, "{name}: two rows at one position");
    m
}

fn region(cache: &Path, data: &Path, fields: &str, report: &Path) -> std::process::Output {
    arrakis(cache)
        .args(["region", "R", "--quiet", "--fields", fields, "--datadir"])
        .arg(data)
        .arg("--report")
        .arg(report)
        .output()
        .unwrap()
}

#[test]
fn overlapping_fields_merge_into_one_catalogue_measured_deeper_in_the_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    field(data, "A", 189.375, 1);
    field(data, "B", 190.375, 2);
    let report = data.join("region.json");
    let out = region(&cache, data, "A,B", &report);
    assert!(out.status.success(), "{}", text(&out));
    let (a, b, r) = (
        by_position(data, "A"),
        by_position(data, "B"),
        by_position(data, "R"),
    );
    // Every component of either field once, and nothing else.
    let union: BTreeSet<_> = a.keys().chain(b.keys()).copied().collect();
    let got: BTreeSet<_> = r.keys().copied().collect();
    assert_eq!(got, union, "the region holds each field's components once");
    let both: Vec<_> = a.keys().filter(|k| b.contains_key(k)).copied().collect();
    assert!(both.len() >= 5, "the fields overlap: {} shared", both.len());
    assert_eq!(r.len(), a.len() + b.len() - both.len());
    // Measured on the joint mosaic: deeper than either field alone.
    for k in &both {
        let (ea, eb, er) = (
            f(&a[k], "polint_err"),
            f(&b[k], "polint_err"),
            f(&r[k], "polint_err"),
        );
        assert!(
            er < ea.min(eb),
            "{}: polint_err {er} in the region, {ea} in A, {eb} in B",
            r[k]["cat_id"]
        );
    }
    // Each row keeps the tile it came from: its own field's centre for beamdist.
    for (k, row) in &r {
        let tile = row["tile_id"].as_str();
        let own = if tile == "A" { &a } else { &b };
        assert!(tile == "A" || tile == "B", "tile_id {tile}");
        assert!(
            (f(row, "beamdist") - f(&own[k], "beamdist")).abs() < 1e-9,
            "{}: beamdist from tile {tile}",
            row["cat_id"]
        );
    }
    // Again: nothing to do.
    let out = region(&cache, data, "A,B", &report);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&read_report(&report), "ran").is_empty());
    assert!(!text(&out).contains("was made of"), "{}", text(&out));

    // A third field that overlaps B only: the islands it holds rerun, nothing else; the
    // region's new membership is said.
    field(data, "C", 191.375, 3);
    let out = region(&cache, data, "A,B,C", &report);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("region R was made of A, B (matched within 3\")")
            && text(&out).contains("made again, of A, B, C"),
        "{}",
        text(&out)
    );
    let ran = with_status(&read_report(&report), "ran");
    let islands = read_csv(&data.join("R/catalogue/islands.csv"));
    let with_c: BTreeSet<String> = islands
        .iter()
        .filter(|i| i["Region_Fields"].split(';').any(|f| f == "C"))
        .map(|i| i["Source_ID"].clone())
        .collect();
    assert!(with_c.len() > 5 && with_c.len() < islands.len());
    let merged: BTreeSet<String> = ran
        .iter()
        .filter_map(|id| id.strip_prefix("merge/"))
        .map(|u| u.rsplit_once('.').unwrap().0.to_string())
        .collect();
    assert_eq!(merged, with_c, "merge reran exactly the islands C holds");
    let comps = read_csv(&data.join("R/catalogue/components.csv"));
    for id in ran.iter().filter_map(|id| id.strip_prefix("rmsynth/")) {
        let c = comps.iter().find(|c| c["Gaussian_ID"] == id).unwrap();
        assert!(with_c.contains(&c["Source_ID"]), "rmsynth {id} reran");
    }
    let r3 = by_position(data, "R");
    let c = by_position(data, "C");
    let union3: BTreeSet<_> = union.iter().chain(c.keys()).copied().collect();
    assert_eq!(r3.keys().copied().collect::<BTreeSet<_>>(), union3);
}

#[test]
fn a_region_of_fields_that_are_not_there_or_not_built_is_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    field(data, "A", 189.375, 1);
    let run = |args: &[&str]| {
        arrakis(&cache)
            .args(["region", "R", "--datadir"])
            .arg(data)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--fields", "A,NOPE", "--no-field-builds"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("NOPE: no field here"), "{}", text(&out));
    let out = run(&["--fields", "A", "--no-field-builds"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("field A has no FRion-corrected mosaics")
            && text(&out).contains("arrakis build A"),
        "{}",
        text(&out)
    );
    let out = arrakis(&cache)
        .args(["region", "A", "--fields", "A", "--datadir"])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("cannot be named after one of its fields"),
        "{}",
        text(&out)
    );
}
