//! `arrakis archive`: the cleanup stage. Build, archive, build again: nothing runs; a change
//! that needs the archived cutouts gets them back from the tarball; a cutout parameter change
//! rebuilds the cutouts; beam cubes removed without a copy make a clear error when needed.

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

fn archive(cache: &std::path::Path, data: &std::path::Path, field: &str, extra: &[&str]) -> String {
    let out = arrakis(cache)
        .args(["archive", field, "--datadir"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

fn per_beam_cutouts(dir: &std::path::Path) -> usize {
    walkdir::WalkDir::new(dir.join("cutouts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".conv."))
        .count()
}

#[test]
fn archived_cutouts_make_nothing_stale_and_come_back_when_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let field = "RACS_ARC";
    let dir = simulate(data, &SimOptions::small(field, 4)).unwrap();
    let (out, _) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let before = per_beam_cutouts(&dir);
    assert!(before > 0);
    let catalogue = std::fs::read(dir.join(format!("{field}.catalogue.csv"))).unwrap();

    let t = archive(&cache, data, field, &[]);
    assert!(t.contains("cutouts.tar"), "{t}");
    assert_eq!(
        per_beam_cutouts(&dir),
        0,
        "the per-beam cutouts are removed"
    );
    assert!(dir.join("cutouts.tar").exists());

    // Nothing is stale.
    let (out, r) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");

    // linmos needs the cutouts again: they come back from the tarball, nothing re-cuts them.
    let (out, r) = build_real(&cache, data, field, &["--set", "linmos_cutoff=0.02"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = stages_that_ran(&r);
    assert!(
        ran.contains(&"linmos".to_string()) && !ran.contains(&"cutout".to_string()),
        "{ran:?}"
    );
    assert_eq!(per_beam_cutouts(&dir), before, "restored from the tarball");
    // Back to the original parameters: the same catalogue as before the archive.
    let (out, _) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(dir.join(format!("{field}.catalogue.csv"))).unwrap(),
        catalogue
    );

    // A cutout parameter: the cutouts are made again.
    archive(&cache, data, field, &[]);
    let (out, r) = build_real(&cache, data, field, &["--set", "pad=4"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stages_that_ran(&r).contains(&"cutout".to_string()), "{r:?}");

    // Beam cubes removed without a copy: nothing is stale, and a change that needs them says how
    // to get them back.
    let t = archive(
        &cache,
        data,
        field,
        &["--set", "pad=4", "--remove-beam-cubes"],
    );
    assert!(t.contains("beam cube"), "{t}");
    let (out, r) = build_real(&cache, data, field, &["--set", "pad=4"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    let (out, _) = build_real(&cache, data, field, &["--set", "pad=5"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("without a copy") && t.contains("beam"), "{t}");
    // The first parameters again: their cutouts, archived when `pad=4` replaced them, were
    // kept in the content store from the tarball; they come back from there (the beam cubes
    // are gone), and with them the first catalogue.
    let (out, r) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !stages_that_ran(&r).contains(&"cutout".to_string()),
        "{r:?}"
    );
    assert!(
        with_status(&r, "restored")
            .iter()
            .any(|id| id.starts_with("cutout/")),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(dir.join(format!("{field}.catalogue.csv"))).unwrap(),
        catalogue
    );
}
