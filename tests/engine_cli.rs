//! The engine driven through the real binary on the engine test rules (external commands).

mod common;

use common::*;

#[test]
fn clean_build_then_noop_then_parameter_change_reruns_only_dependents() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F1", 2, 6, 2);
    let (out, r) = build(&cache, data, "F1", &[]);
    assert!(out.status.success(), "{}", text(&out));
    // 4 beams x 3 Stokes cutouts, 6 islands x 3 linmos, 8 components x 2, one catalogue.
    assert_eq!(with_status(&r, "ran").len(), 12 + 18 + 16 + 1, "{r:?}");
    let first = snapshot(&data.join("F1"));

    let (out, r) = build(&cache, data, "F1", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        with_status(&r, "ran").is_empty(),
        "no-op build ran {:?}",
        with_status(&r, "ran")
    );
    assert_eq!(with_status(&r, "skipped").len(), 47);

    let (out, r) = build(&cache, data, "F1", &["--set", "cutoff=-5"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert_eq!(ran.len(), 8 + 1, "{ran:?}");
    assert!(
        ran.iter()
            .all(|id| id.starts_with("rmclean/") || id.starts_with("catalogue/")),
        "{ran:?}"
    );
    let after = snapshot(&data.join("F1"));
    assert_ne!(
        first["cutouts/J0000/J0000_c1_RMclean.txt"],
        after["cutouts/J0000/J0000_c1_RMclean.txt"]
    );
    assert_eq!(
        first["cutouts/J0000/J0000_c1_RMsynth.txt"],
        after["cutouts/J0000/J0000_c1_RMsynth.txt"]
    );
}
