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
