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
    // A name that matches no file: refused before anything runs, naming the parameter and the
    // first file, with the nearest name on disk.
    let (out, _) = build_real(
        &casda.join("cache"),
        &casda,
        field,
        &["--set", "cube_name=image.{stokes}.beam{beam}.fits"],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("image.i.beam00.fits")
            && t.contains("does not exist")
            && t.contains("--set cube_name")
            && t.contains("Nothing was built"),
        "{t}"
    );
    assert_eq!(out.status.code(), Some(2), "{t}");
}

/// The column names of a CSV catalogue, in order.
fn csv_header(csv_path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv_path).unwrap();
    text.lines()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// A CSV catalogue written as a FITS binary table (numeric columns as float64, the rest text),
/// as CASDA serves catalogues.
fn csv_to_fits(csv_path: &std::path::Path, fits_path: &std::path::Path) {
    use arrakis::fits::{Column, Header};
    let rows = read_csv(csv_path);
    let header = csv_header(csv_path);
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

/// A simulated field (seed 9) built natively without the ionosphere, and its cubes and weights
/// copied under CASDA's names (SB61234) into `base/casda-download`; returns (field dir, images).
fn native_and_casda(
    base: &std::path::Path,
    field: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let native = base.join("native");
    let dir = simulate(&native, &SimOptions::small(field, 9)).unwrap();
    let (out, _) = build_real(
        &native.join("cache"),
        &native,
        field,
        &["--set", "skip_frion=true"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let images = base.join("casda-download");
    std::fs::create_dir_all(&images).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let native_part = format!(".{field}.contcube.");
        if name.contains(&native_part) {
            let casda = name.replace(&native_part, &format!(".SB61234.contcube.{field}."));
            std::fs::copy(dir.join(&name), images.join(casda)).unwrap();
        }
    }
    (dir, images)
}

/// `arrakis init` on CASDA-named cubes and FITS catalogues, then `build`, gives the native
/// layout's catalogue byte for byte; running init again changes nothing; another field in the
/// way is refused; a catalogue without a needed column names it.
#[test]
fn init_sets_up_a_field_from_casda_products() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_1237+00A";
    let (dir, images) = native_and_casda(tmp.path(), field);
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

    // Built as it is, with no ionosphere given: refused before anything runs, saying what
    // else serves (IONEX maps, or no correction).
    let (out, _) = build_real(&data.join("cache"), &data, field, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("ion_file")
            && t.contains("--set ion_source=ionex")
            && t.contains("--set skip_frion=true")
            && t.contains("Nothing was built"),
        "{t}"
    );
    let (out, r) = build_real(
        &data.join("cache"),
        &data,
        field,
        &["--set", "skip_frion=true"],
    );
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

/// A CSV catalogue written as a VOTable (TABLEDATA), as Selavy and astropy write them: columns
/// renamed by `rename` (RACS name → name in the file) and dropped by `drop`, flux columns given
/// `flux_unit` (values converted from the CSV's mJy), a `comment` column with XML entities.
fn csv_to_votable(
    csv_path: &std::path::Path,
    xml_path: &std::path::Path,
    rename: &[(&str, &str, arrakis::init::Kind)],
    drop: &[&str],
    flux_unit: &str,
) {
    let rows = read_csv(csv_path);
    let mut header = csv_header(csv_path);
    header.retain(|h| !drop.contains(&h.as_str()));
    let scale = if flux_unit == "Jy" { 1e-3 } else { 1.0 };
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<VOTABLE version=\"1.3\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n<RESOURCE type=\"results\">\n<TABLE name=\"catalogue\">\n");
    let mut flux = Vec::new();
    for h in &header {
        let (name, kind) = rename
            .iter()
            .find(|(_, racs, _)| racs == h)
            .map(|(file, _, k)| (file.to_string(), Some(*k)))
            .unwrap_or((h.clone(), None));
        let unit = match kind {
            Some(arrakis::init::Kind::MilliJy) => {
                flux.push(h.clone());
                format!(" unit=\"{flux_unit}\"")
            }
            Some(arrakis::init::Kind::Arcsec) => " unit=\"arcsec\"".into(),
            Some(arrakis::init::Kind::Deg) => " unit=\"deg\"".into(),
            _ => String::new(),
        };
        x.push_str(&format!(
            "<FIELD name=\"{name}\" datatype=\"char\" arraysize=\"*\"{unit}/>\n"
        ));
    }
    x.push_str(
        "<FIELD name=\"comment\" datatype=\"char\" arraysize=\"*\"/>\n<DATA>\n<TABLEDATA>\n",
    );
    for r in &rows {
        x.push_str("<TR>");
        for h in &header {
            let v = &r[h];
            let v = if flux.contains(h) {
                (v.parse::<f64>().unwrap() * scale).to_string()
            } else {
                v.clone()
            };
            x.push_str(&format!("<TD>{v}</TD>"));
        }
        x.push_str("<TD>fit &amp; flagged &lt;none&gt;</TD></TR>\n");
    }
    x.push_str("</TABLEDATA>\n</DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n");
    std::fs::write(xml_path, x).unwrap();
}

/// VOTable catalogues with the RACS names give the native catalogue byte for byte; Selavy's
/// VOTables (its column names, fluxes in Jy here, no N_Gaus or S_Code) give the same
/// measurements; a VOTable in BINARY serialisation is refused with what to do.
#[test]
fn init_reads_votables_with_racs_or_selavy_names() {
    use arrakis::init::{SELAVY_COMPONENTS, SELAVY_ISLANDS};
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_1237+00A";
    let (dir, images) = native_and_casda(tmp.path(), field);
    let ff = arrakis::field_file::FieldFile::read(&dir.join("field.yaml")).unwrap();
    let centre = ff.centre.as_ref().unwrap();
    let setup = |name: &str, comp: &std::path::Path, isl: &std::path::Path| {
        let data = tmp.path().join(name);
        let out = arrakis(&data.join("cache"))
            .args(["init", field, "--datadir"])
            .arg(&data)
            .arg("--images")
            .arg(&images)
            .arg("--components")
            .arg(comp)
            .arg("--islands")
            .arg(isl)
            .args([
                "--sbid",
                "10009",
                "--pol-axis",
                "-45",
                "--scan-start",
                "2017-04-27T08:53:20",
            ])
            .args(["--scan-length", "900", "--centre"])
            .arg(format!("{},{}", centre.ra_deg, centre.dec_deg))
            .output()
            .unwrap();
        (data, out)
    };
    let cat = format!("{field}.catalogue.csv");

    // RACS names in a VOTable: the native catalogue, byte for byte.
    let (comp, isl) = (tmp.path().join("comp.xml"), tmp.path().join("isl.xml"));
    csv_to_votable(
        &dir.join("catalogue/components.csv"),
        &comp,
        &[],
        &[],
        "mJy",
    );
    csv_to_votable(&dir.join("catalogue/islands.csv"), &isl, &[], &[], "mJy");
    let (data, out) = setup("racs-vot", &comp, &isl);
    assert!(out.status.success(), "{}", text(&out));
    let (out, _) = build_real(
        &data.join("cache"),
        &data,
        field,
        &["--set", "skip_frion=true"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read(dir.join(&cat)).unwrap()
            == std::fs::read(data.join(field).join(&cat)).unwrap(),
        "a VOTable with the RACS names gives another catalogue than the native layout"
    );

    // Selavy's names and units: the same measurements.
    let (comp, isl) = (
        tmp.path().join("selavy-components.xml"),
        tmp.path().join("selavy-islands.xml"),
    );
    let racs_only = [
        "Source_Name",
        "Tile_ID",
        "SBID",
        "Obs_Start_Time",
        "N_Gaus",
        "S_Code",
        "Separation_Tile_Centre",
    ];
    csv_to_votable(
        &dir.join("catalogue/components.csv"),
        &comp,
        SELAVY_COMPONENTS,
        &racs_only,
        "Jy",
    );
    csv_to_votable(
        &dir.join("catalogue/islands.csv"),
        &isl,
        SELAVY_ISLANDS,
        &["Tile_ID", "S_Code"],
        "Jy",
    );
    let (data, out) = setup("selavy", &comp, &isl);
    assert!(out.status.success(), "{}", text(&out));
    let (out, _) = build_real(
        &data.join("cache"),
        &data,
        field,
        &["--set", "skip_frion=true"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let want = catalogue_by_id(&dir, field);
    let got = catalogue_by_id(&data.join(field), field);
    assert_eq!(want.len(), got.len());
    for (id, w) in &want {
        let g = &got[id];
        for col in [
            "rm",
            "rm_err",
            "fracpol",
            "polint",
            "stokesI",
            "total_I_flux",
            "peak_I_flux",
            "maj_axis",
            "dc_maj_axis",
            "ra_err",
            "N_Gaus",
            "s_code",
            "source_id",
            "sbid",
            "start_time",
        ] {
            let (a, b) = (&w[col], &g[col]);
            let same = match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1e-300) || x == y,
                _ => a == b,
            };
            assert!(same, "{id} {col}: native {a}, from Selavy's VOTable {b}");
        }
    }

    // BINARY serialisation: refused, saying what to write instead.
    let bin = tmp.path().join("binary.vot");
    std::fs::write(
        &bin,
        std::fs::read_to_string(&comp)
            .unwrap()
            .replace(
                "<TABLEDATA>",
                "<BINARY><STREAM encoding=\"base64\">AAAA</STREAM></BINARY><!--",
            )
            .replace("</TABLEDATA>", "-->"),
    )
    .unwrap();
    let (_, out) = setup("binary", &bin, &isl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("binary.vot") && t.contains("BINARY") && t.contains("TABLEDATA"),
        "{t}"
    );
}
