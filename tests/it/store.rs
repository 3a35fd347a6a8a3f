//! The content store: going back to an earlier parameter set restores outputs instead of
//! recomputing them, byte-identical; a damaged store object is found and the target recomputed;
//! `gc` reports the store and keeps it within its budget.

use crate::common::*;

/// `arrakis gc` of the engine rules' fields under `data`, with `sets`: its output.
fn gc(cache: &std::path::Path, data: &std::path::Path, sets: &[&str]) -> String {
    let out = arrakis(cache)
        .arg("gc")
        .args(sets)
        .arg("--rules")
        .arg(engine_rules())
        .arg("--datadir")
        .arg(data)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

#[test]
fn back_and_forth_between_parameter_sets_restores_instead_of_recomputing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F", 2, 6, 2);
    let (out, _) = build(&cache, data, "F", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let default = snapshot(&data.join("F"));
    let (out, r) = build(&cache, data, "F", &["--set", "cutoff=-5"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(with_status(&r, "ran").len(), 9, "{r:?}");
    let five = snapshot(&data.join("F"));
    assert_ne!(default, five);
    // Back: nothing recomputed, the same bytes.
    for (sets, want) in [(&[][..], &default), (&["--set", "cutoff=-5"][..], &five)] {
        let (out, r) = build(&cache, data, "F", sets);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(with_status(&r, "ran").is_empty(), "{r:?}");
        assert_eq!(with_status(&r, "restored").len(), 9, "{r:?}");
        assert!(t.contains("restored 9"), "{t}");
        assert_eq!(&snapshot(&data.join("F")), want);
        // And up to date afterwards.
        let (_, r) = build(&cache, data, "F", sets);
        assert_eq!(with_status(&r, "skipped").len(), r.len(), "{r:?}");
    }
    // gc says what the store holds: both sets of the 9 targets.
    let t = gc(&cache, data, &[]);
    assert!(t.contains("gc: content store: 18 earlier run(s)"), "{t}");
    assert!(t.contains("evicted 0 run(s)"), "{t}");
    // A damaged object (edited in place): that target runs, the rest are restored, and the
    // bytes are right.
    let objects = cache.join("store/objects");
    let mut damaged = false;
    for d in std::fs::read_dir(&objects).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            if !damaged && text.starts_with("cutoff=-8") {
                std::fs::write(f.path(), text.replace("cutoff=-8", "cutoff=-9")).unwrap();
                damaged = true;
            }
        }
    }
    assert!(damaged);
    let (out, r) = build(&cache, data, "F", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert_eq!(ran.len(), 1, "{r:?}");
    assert!(ran[0].starts_with("rmclean/"), "{ran:?}");
    assert_eq!(with_status(&r, "restored").len(), 8, "{r:?}");
    assert_eq!(snapshot(&data.join("F")), default);
    // A parameter of the first stage: every later stage runs; back, every one is restored,
    // including the rmsynth targets of one island's components, which share a key (the same
    // mosaics, parameters and action) and are kept apart.
    let (out, r) = build(&cache, data, "F", &["--set", "pad=2"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(ran.iter().any(|id| id.starts_with("rmsynth/")), "{ran:?}");
    let (out, r) = build(&cache, data, "F", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    assert_eq!(with_status(&r, "restored"), ran);
    assert_eq!(snapshot(&data.join("F")), default);
    // A budget of nothing: gc empties the store, and going back recomputes.
    let t = gc(&cache, data, &["--set", "store_budget=0"]);
    assert!(
        t.contains("gc: content store: 0 earlier run(s) of targets kept in 0 object(s)"),
        "{t}"
    );
    let (out, r) = build(&cache, data, "F", &["--set", "cutoff=-5"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(with_status(&r, "ran").len(), 9, "{r:?}");
    // A budget that is not a size is refused naming the key.
    let (out, _) = build(&cache, data, "F", &["--set", "store_budget=lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("store_budget 'lots' is not a size"),
        "{}",
        text(&out)
    );
}
