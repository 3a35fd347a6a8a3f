//! Bad beam cubes and catalogues on the real pipeline: each gets a clear error naming the file and
//! what to do, only the targets that read the bad file fail (`--keep-going`), and unit names that
//! look like shell syntax or paths can never write outside the field directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use arrakis::fits::{Cube, Image};
use arrakis::simulate::{simulate, SimOptions};

const FIELD: &str = "BAD";

/// A small simulated field, made once per test and copied per case.
fn template(dir: &Path) -> PathBuf {
    let opts = SimOptions {
        beams: 2,
        sources: 6,
        nchan: 24,
        npix: 96,
        ..SimOptions::small(FIELD, 3)
    };
    simulate(dir, &opts).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A fresh copy of the template field under `root/name`: (its data directory, the field).
fn one_case(root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let clean = template(&root.join("template"));
    let data = root.join(name);
    copy_dir(&clean, &data.join(FIELD));
    let field = data.join(FIELD);
    (data, field)
}

fn cube_path(field: &Path, stokes: char, beam: u32) -> PathBuf {
    field.join(format!(
        "image.restored.{stokes}.{FIELD}.contcube.beam{beam:02}.conv.fits"
    ))
}

/// Build the copied field with `--keep-going`: (exit code, stderr+stdout, report).
fn build_case(data: &Path) -> (Option<i32>, String, BTreeMap<String, String>) {
    build_with(data, &[])
}

fn build_with(data: &Path, extra: &[&str]) -> (Option<i32>, String, BTreeMap<String, String>) {
    let args: Vec<&str> = ["--keep-going"].iter().chain(extra).copied().collect();
    let (out, r) = build_real(&data.join("cache"), data, FIELD, &args);
    (out.status.code(), text(&out), r)
}

/// Rewrite one header card (80 characters) of a FITS file in place.
fn set_card(path: &Path, key: &str, card: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (0..bytes.len() / 80)
        .map(|i| i * 80)
        .find(|&o| bytes[o..o + 8] == *format!("{key:<8}").as_bytes())
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()));
    bytes[at..at + 80].copy_from_slice(format!("{card:<80}").as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Read a beam cube, change it, write it back in place.
fn rewrite_cube(field: &Path, stokes: char, change: impl FnOnce(&mut Cube)) -> PathBuf {
    let p = cube_path(field, stokes, 0);
    let mut c = Cube::read(&p).unwrap();
    change(&mut c);
    std::fs::remove_file(&p).unwrap();
    c.write(&p).unwrap();
    p
}

/// Drop the last four channels of a cube.
fn drop_channels(c: &mut Cube) {
    c.nchan -= 4;
    c.data.truncate(c.nx * c.ny * c.nchan);
}

type Corrupt = fn(&Path);

#[test]
fn bad_beam_cubes_fail_only_their_targets_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = template(&tmp.path().join("template"));
    // A clean build, for which targets exist and for the other targets' bytes.
    let good = tmp.path().join("good");
    copy_dir(&clean, &good.join(FIELD));
    let (code, t, good_report) = build_case(&good);
    assert_eq!(code, Some(0), "{t}");
    let good_bytes = snapshot(&good.join(FIELD));

    // (what is wrong, how to make it, fragments the error must contain)
    let cases: Vec<(&str, Corrupt, Vec<&str>)> = vec![
        (
            "truncated file",
            |f| {
                let p = cube_path(f, 'q', 0);
                let n = std::fs::metadata(&p).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                file.set_len(n / 2).unwrap();
            },
            vec!["beam00.conv.fits", "truncated"],
        ),
        (
            "two axes instead of three",
            |f| {
                let p = cube_path(f, 'q', 0);
                let c = Cube::read(&p).unwrap();
                let plane = c.data[..c.nx * c.ny].to_vec();
                std::fs::remove_file(&p).unwrap();
                Image {
                    shape: vec![c.nx, c.ny],
                    data: plane,
                    header: c.header,
                }
                .write(&p)
                .unwrap();
            },
            vec!["beam00.conv.fits", "expected a 3-axis cube"],
        ),
        (
            "missing WCS key",
            |f| {
                rewrite_cube(f, 'q', |c| c.header.remove("CRVAL1"));
            },
            vec!["beam00.conv.fits", "CRVAL1"],
        ),
        (
            "integer data",
            |f| {
                set_card(
                    &cube_path(f, 'q', 0),
                    "BITPIX",
                    "BITPIX  =                   16",
                )
            },
            vec!["beam00.conv.fits", "BITPIX = 16", "floating-point"],
        ),
        (
            "all-NaN cube",
            |f| {
                rewrite_cube(f, 'q', |c| c.data.iter_mut().for_each(|v| *v = f32::NAN));
            },
            vec!["beam00.conv.fits", "blank"],
        ),
        (
            "Stokes cubes with different channel counts",
            |f| {
                rewrite_cube(f, 'u', drop_channels);
            },
            vec!["beam00.conv.txt", "channel 20", "only 20 channels"],
        ),
        (
            "Stokes U with fewer channels, consistent weights",
            |f| {
                let p = rewrite_cube(f, 'u', drop_channels);
                let nchan = Cube::read(&p).unwrap().nchan;
                let w = p.with_file_name(
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .replace("image.", "weights.")
                        .replace(".fits", ".txt"),
                );
                let text = std::fs::read_to_string(&w).unwrap();
                let kept: Vec<&str> = text.lines().take(1 + nchan).collect();
                std::fs::write(&w, kept.join("\n") + "\n").unwrap();
            },
            vec!["beam00.conv.fits", "has 20", "NAXIS3"],
        ),
    ];
    for (i, (what, corrupt, want)) in cases.into_iter().enumerate() {
        let data = tmp.path().join(format!("case{i}"));
        copy_dir(&clean, &data.join(FIELD));
        corrupt(&data.join(FIELD));
        let (code, t, report) = build_case(&data);
        eprintln!("=== {what}: exit {code:?}\n{t}");
        assert_eq!(
            code,
            Some(1),
            "{what}: a bad cube must fail the build:\n{t}"
        );
        for w in &want {
            assert!(t.contains(w), "{what}: the error lacks '{w}':\n{t}");
        }
        assert!(!t.contains("panicked"), "{what}: {t}");
        // Only targets downstream of beam 0 fail; every other target ran and wrote what a clean
        // build writes.
        let failed = with_status(&report, "failed");
        assert!(!failed.is_empty(), "{what}: nothing failed");
        let ran = with_status(&report, "ran");
        assert!(
            ran.iter().any(|id| id.starts_with("cutout/beam01")),
            "{what}: beam 01's cutouts must still run: {report:?}"
        );
        let bytes = snapshot(&data.join(FIELD));
        for id in &ran {
            assert_eq!(good_report.get(id).map(String::as_str), Some("ran"), "{id}");
        }
        let mut same = 0;
        for (p, b) in &bytes {
            if p.starts_with("cutouts/") && p.contains("beam01") {
                assert_eq!(good_bytes.get(p), Some(b), "{what}: {p} differs");
                same += 1;
            }
        }
        assert!(same > 0, "{what}: no beam-01 cutouts to compare");
    }
}

/// Rename island `old` (and its components) to `new` in the field's catalogues.
fn rename_island(field: &Path, old: &str, new: &str) {
    for f in ["catalogue/islands.csv", "catalogue/components.csv"] {
        let p = field.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(old), "{old} not in {f}");
        // Quoted, so commas and quotes in the name survive CSV.
        let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                l.split(',')
                    .map(|cell| {
                        if cell == old {
                            quoted(new)
                        } else if let Some(rest) = cell.strip_prefix(old) {
                            quoted(&format!("{new}{rest}"))
                        } else {
                            cell.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        std::fs::write(&p, out.join("\n") + "\n").unwrap();
    }
}

/// Every file under `root`, as paths relative to it.
fn all_files(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| {
            e.path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect()
}

/// Names that a shell, cfitsio's extended file-name syntax or a careless path join would read as
/// something else. Each must build as a literal name, inside the field directory.
const NASTY: &str = "J1 $(touch PWNED); `touch PWNED2` | rm -rf ~ & [1] *?'\"q\" >x, <y #z";

#[test]
fn island_names_with_shell_and_fits_syntax_stay_literal_and_inside_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, field) = one_case(tmp.path(), "nasty");
    let isl = std::fs::read_to_string(field.join("catalogue/islands.csv")).unwrap();
    let first = isl
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    rename_island(&field, &first, NASTY);

    let (code, t, report) = build_case(&data);
    assert_eq!(code, Some(0), "{t}");
    assert!(with_status(&report, "failed").is_empty(), "{report:?}");
    assert!(
        report.keys().any(|id| id.contains(NASTY)),
        "the renamed island has no targets: {report:?}"
    );
    // Nothing was run through a shell, nothing escaped the field directory.
    let everything = all_files(tmp.path());
    assert!(
        !everything
            .iter()
            .any(|p| p.ends_with("PWNED") || p.ends_with("PWNED2")),
        "{everything:?}"
    );
    let ours: Vec<&String> = everything.iter().filter(|p| p.contains(NASTY)).collect();
    assert!(!ours.is_empty());
    for p in &ours {
        assert!(
            p.starts_with(&format!("nasty/{FIELD}/")),
            "{p} is outside the field"
        );
    }
    // The mosaics of the renamed island are real cubes, and the catalogue names it literally.
    let mosaic = field.join(format!(
        "cutouts/{NASTY}/{NASTY}.cutout.image.restored.i.{FIELD}.contcube.linmos.fits"
    ));
    assert!(mosaic.is_file(), "{ours:?}");
    let cube = Cube::read(&mosaic).unwrap();
    assert!(cube.data.iter().any(|v| v.is_finite()));
    let cat = read_csv(&field.join(format!("{FIELD}.catalogue.csv")));
    assert!(
        cat.iter().any(|row| row.values().any(|v| v == NASTY)),
        "the catalogue lacks the literal name"
    );
}

#[test]
fn a_zero_size_cutout_gives_a_flagged_catalogue_row_not_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, field) = one_case(tmp.path(), "edge");
    // Within beam_radius_deg (1.5° here) of beam 0's centre, so assigned to it, but beyond the
    // edge of its image (±1.1°): every cutout of it is empty.
    let fy = std::fs::read_to_string(field.join("field.yaml")).unwrap();
    let beam0 = fy.lines().find(|l| l.contains("beam: 0")).unwrap();
    let num = |key: &str| -> f64 {
        let at = beam0.find(key).unwrap() + key.len();
        beam0[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (ra, dec) = (num("ra_deg:"), num("dec_deg:") + 1.35);
    let name = "J_edge";
    let mut isl = std::fs::read_to_string(field.join("catalogue/islands.csv")).unwrap();
    isl.push_str(&format!("{name},{name},{FIELD},{ra},{dec},5.0,5.0,1,S\n"));
    std::fs::write(field.join("catalogue/islands.csv"), isl).unwrap();
    let mut comp = std::fs::read_to_string(field.join("catalogue/components.csv")).unwrap();
    let header = comp.lines().next().unwrap().to_string();
    comp.push_str(&component_row(
        &header,
        &format!("{name}_c1"),
        name,
        FIELD,
        ra,
        dec,
        5.0,
        (60.0, 50.0),
    ));
    std::fs::write(field.join("catalogue/components.csv"), comp).unwrap();

    let (code, t, report) = build_with(&data, &["--set", "beam_radius_deg=1.5"]);
    assert_eq!(code, Some(0), "{t}");
    assert!(with_status(&report, "failed").is_empty(), "{report:?}");
    let cat = read_csv(&field.join(format!("{FIELD}.catalogue.csv")));
    let row = cat
        .iter()
        .find(|row| row.values().any(|v| v == "J_edge_c1"))
        .expect("the edge component has a catalogue row");
    assert_eq!(row["rmsynth_failed"], "true", "{row:?}");
    assert!(
        row["failure_reason"].contains("outside its island's mosaic"),
        "{row:?}"
    );
    // Its cutout is the documented blank 1×1 cube, which the mosaic ignores.
    let cut = Cube::read(&field.join(format!(
        "cutouts/{name}/{name}.cutout.image.restored.i.{FIELD}.contcube.beam00.conv.fits"
    )))
    .unwrap();
    assert_eq!((cut.nx, cut.ny), (1, 1));
    assert!(cut.data.iter().all(|v| v.is_nan()));
}

/// A wrong `field.yaml` stops the build before anything runs, naming the file and line: a beam
/// off the sky, a beam listed twice, no beams, a misspelt key.
#[test]
fn a_bad_field_yaml_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, field) = one_case(tmp.path(), "yaml");
    let path = field.join("field.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    let beam_line = good
        .lines()
        .position(|l| l.trim_start().starts_with("- {beam: 1"))
        .unwrap()
        + 1;
    let cases: Vec<(String, String)> = vec![
        (
            good.replace("- {beam: 1, ra_deg: ", "- {beam: 1, ra_deg: 1"),
            format!("field.yaml:{beam_line}"),
        ),
        (
            good.replace("- {beam: 1,", "- {beam: 0,"),
            format!("field.yaml:{beam_line}: beam 0 is listed twice"),
        ),
        (
            good.lines()
                .filter(|l| !l.trim_start().starts_with("- {beam"))
                .map(|l| format!("{l}\n"))
                .collect(),
            "no beams".to_string(),
        ),
        (
            good.replace("pol_axis_deg:", "pol_axis_dg:"),
            "did you mean 'pol_axis_deg'".to_string(),
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, &text).unwrap();
        let (code, t, r) = build_case(&data);
        assert_eq!(code, Some(2), "{want}: {t}");
        assert!(t.contains(&want) && t.contains("field.yaml"), "{want}: {t}");
        assert!(r.is_empty() || with_status(&r, "ran").is_empty(), "{r:?}");
    }
}
