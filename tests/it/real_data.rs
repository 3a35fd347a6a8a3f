//! Real data's ways in: beam cubes named as CASDA serves them, read through the `cube_name` and
//! `weights_name` parameters, give the catalogue of the native layout.

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

#[test]
fn casda_cube_names_through_parameters_give_the_native_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_1237+00A";
    let native = tmp.path().join("native");
    let dir = simulate(&native, &SimOptions::small(field, 5)).unwrap();
    let (out, r) = build_real(&native.join("cache"), &native, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "failed").is_empty());

    // The same inputs under CASDA's names, in a field of their own.
    let casda = tmp.path().join("casda");
    let cdir = casda.join(field);
    std::fs::create_dir_all(cdir.join("catalogue")).unwrap();
    for f in [
        "field.yaml",
        "catalogue/islands.csv",
        "catalogue/components.csv",
    ] {
        std::fs::copy(dir.join(f), cdir.join(f)).unwrap();
    }
    std::fs::create_dir_all(cdir.join("ionosphere")).unwrap();
    std::fs::copy(
        dir.join("ionosphere/rm_ion.txt"),
        cdir.join("ionosphere/rm_ion.txt"),
    )
    .unwrap();
    let mut renamed = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let native_prefix = format!(".{field}.contcube.");
        if (name.starts_with("image.restored.") || name.starts_with("weights.restored."))
            && name.contains(&native_prefix)
        {
            let casda_name = name.replace(&native_prefix, &format!(".SB61234.contcube.{field}."));
            std::fs::copy(dir.join(&name), cdir.join(casda_name)).unwrap();
            renamed += 1;
        }
    }
    assert_eq!(
        renamed,
        4 * 3 * 2,
        "cubes and weights of 4 beams × 3 Stokes"
    );
    let (out, r) = build_real(
        &casda.join("cache"),
        &casda,
        field,
        &[
            "--set",
            "cube_name=image.restored.{stokes}.SB61234.contcube.{field}.beam{beam}.conv.fits",
            "--set",
            "weights_name=weights.restored.{stokes}.SB61234.contcube.{field}.beam{beam}.conv.txt",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "failed").is_empty());
    let cat = format!("{field}.catalogue.csv");
    assert!(
        std::fs::read(dir.join(&cat)).unwrap() == std::fs::read(cdir.join(&cat)).unwrap(),
        "the CASDA-named field's catalogue differs from the native one"
    );
    // A name that matches no file fails those targets, naming the file.
    let (out, _) = build_real(
        &casda.join("cache"),
        &casda,
        field,
        &["--set", "cube_name=image.{stokes}.beam{beam}.fits"],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("image.i.beam00.fits") && t.contains("does not exist"),
        "{t}"
    );
}

/// A CSV catalogue written as a FITS binary table (numeric columns as float64, the rest text),
/// as CASDA serves catalogues.
fn csv_to_fits(csv_path: &std::path::Path, fits_path: &std::path::Path) {
    use arrakis::fits::{Column, Header};
    let rows = read_csv(csv_path);
    let header: Vec<String> = std::fs::read_to_string(csv_path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.to_string())
        .collect();
    let cols: Vec<(String, String, Column)> = header
        .iter()
        .map(|h| {
            let cells: Vec<&String> = rows.iter().map(|r| &r[h]).collect();
            let nums: Option<Vec<f64>> = cells.iter().map(|c| c.parse().ok()).collect();
            let col = match nums {
                Some(v) if h != "SBID" => Column::F64(v),
                _ => Column::Str(cells.iter().map(|c| c.to_string()).collect()),
            };
            (h.clone(), String::new(), col)
        })
        .collect();
    arrakis::fits::write_table(fits_path, "CATALOGUE", &cols, &Header::default()).unwrap();
}

/// `arrakis init` on CASDA-named cubes and FITS catalogues, then `build`, gives the native
/// layout's catalogue byte for byte; running init again changes nothing; another field in the
/// way is refused; a catalogue without a needed column names it.
#[test]
fn init_sets_up_a_field_from_casda_products() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_1237+00A";
    let native = tmp.path().join("native");
    let dir = simulate(&native, &SimOptions::small(field, 9)).unwrap();
    let (out, _) = build_real(
        &native.join("cache"),
        &native,
        field,
        &["--set", "ion=false"],
    );
    assert!(out.status.success(), "{}", text(&out));

    let images = tmp.path().join("casda-download");
    std::fs::create_dir_all(&images).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let native_part = format!(".{field}.contcube.");
        if name.contains(&native_part) {
            let casda = name.replace(&native_part, &format!(".SB61234.contcube.{field}."));
            std::fs::copy(dir.join(&name), images.join(casda)).unwrap();
        }
    }
    let (comp, isl) = (tmp.path().join("comp.fits"), tmp.path().join("isl.fits"));
    csv_to_fits(&dir.join("catalogue/components.csv"), &comp);
    csv_to_fits(&dir.join("catalogue/islands.csv"), &isl);
    let ff = arrakis::field_file::FieldFile::read(&dir.join("field.yaml")).unwrap();
    let centre = ff.centre.as_ref().unwrap();
    let data = tmp.path().join("real");
    let init = |extra: &[&str]| {
        let mut c = arrakis(&data.join("cache"));
        c.args(["init", field, "--datadir"])
            .arg(&data)
            .arg("--images")
            .arg(&images)
            .arg("--components")
            .arg(&comp)
            .arg("--islands")
            .arg(&isl)
            .args([
                "--sbid",
                "61234",
                "--pol-axis",
                "-45",
                "--scan-start",
                "5e9",
            ])
            .args(["--scan-length", "900", "--centre"])
            .arg(format!("{},{}", centre.ra_deg, centre.dec_deg))
            .args(extra);
        c.output().unwrap()
    };
    let out = init(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("set up"), "{}", text(&out));
    let again = init(&[]);
    assert!(text(&again).contains("up to date"), "{}", text(&again));
    let written =
        arrakis::field_file::FieldFile::read(&data.join(field).join("field.yaml")).unwrap();
    // Beam centres from the cube headers (the simulator's field.yaml rounds them to 1e-6 deg).
    assert_eq!(written.beams.len(), ff.beams.len());
    for (a, b) in written.beams.iter().zip(&ff.beams) {
        assert!(
            a.beam == b.beam
                && (a.ra_deg - b.ra_deg).abs() < 1e-5
                && (a.dec_deg - b.dec_deg).abs() < 1e-5,
            "{a:?} vs {b:?}"
        );
    }
    let mut flagged = ff.flagged_channels.clone();
    flagged.sort();
    assert_eq!(written.flagged_channels, flagged);
    assert_eq!(written.nchan, ff.nchan);

    let (out, r) = build_real(&data.join("cache"), &data, field, &["--set", "ion=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "failed").is_empty());
    let cat = format!("{field}.catalogue.csv");
    assert!(
        std::fs::read(dir.join(&cat)).unwrap()
            == std::fs::read(data.join(field).join(&cat)).unwrap(),
        "init's field gives another catalogue than the native layout"
    );

    // Another field's field.yaml in the way: refused without --force.
    let yaml = data.join(field).join("field.yaml");
    let text0 = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text0.replace(&format!("field: {field}"), "field: OTHER"),
    )
    .unwrap();
    let out = init(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("another field"), "{}", text(&out));
    assert!(init(&["--force"]).status.success());

    // A catalogue without RA.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "Gaussian_ID,Source_ID,Ra,Dec\nA_c1,A,1,2\n").unwrap();
    let mut c = arrakis(&data.join("cache"));
    let out = c
        .args(["init", field, "--datadir"])
        .arg(&data)
        .arg("--images")
        .arg(&images)
        .arg("--components")
        .arg(&bad)
        .arg("--islands")
        .arg(&isl)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("bad.csv") && t.contains("no column 'RA'") && t.contains("did you mean 'Ra'"),
        "{t}"
    );
}
