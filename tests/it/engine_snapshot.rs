//! The up-to-date snapshot: a no-op build is answered by stat alone, says the same as full
//! evaluation, and every change it covers sends the build through full evaluation.

use crate::common::{build, make_field, text, with_status};
use std::path::Path;

const SHORTCUT: &str = "nothing changed since the last complete build";

/// Build until a build is answered by the snapshot (sources written moments before a build
/// are too fresh to be trusted by stat, so the first snapshot may not hold).
fn settled(cache: &Path, data: &Path, field: &str) {
    std::thread::sleep(std::time::Duration::from_millis(30));
    let (out, _) = build(cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let (out, r) = build(cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(SHORTCUT), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
}

#[test]
fn a_noop_is_answered_by_the_snapshot_with_the_same_report_as_full_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "S1", 2, 8, 3);
    settled(&cache, data, "S1");
    let (fast_out, fast) = build(&cache, data, "S1", &[]);
    assert!(text(&fast_out).contains(SHORTCUT), "{}", text(&fast_out));
    let (full_out, full) = build(&cache, data, "S1", &["--full-check"]);
    assert!(!text(&full_out).contains(SHORTCUT), "{}", text(&full_out));
    assert_eq!(fast, full, "the snapshot and full evaluation disagree");
    assert!(
        fast.values().all(|s| s == "skipped") && fast.len() > 20,
        "{fast:?}"
    );
    // Same closing line as a full no-op.
    let last = |o: &std::process::Output| {
        let t = text(o);
        let l = t
            .lines()
            .rfind(|l| l.starts_with("arrakis: ran"))
            .unwrap_or("")
            .to_string();
        l.split(" in ").next().unwrap_or("").to_string()
    };
    assert_eq!(last(&fast_out), last(&full_out));
    let (dry, _) = build(&cache, data, "S1", &["--dry-run"]);
    assert!(
        text(&dry).contains("0 target(s) would run"),
        "{}",
        text(&dry)
    );
    // `status` answers from the snapshot too, with the table full evaluation prints.
    let status = || {
        let out = crate::common::arrakis(&cache)
            .args(["status", "S1", "--datadir"])
            .arg(data)
            .arg("--rules")
            .arg(crate::common::engine_rules())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            text(&out).contains(SHORTCUT),
        )
    };
    let (fast, by_snapshot) = status();
    assert!(by_snapshot, "status did not use the snapshot");
    for e in std::fs::read_dir(cache.join("snapshots")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (full, by_snapshot) = status();
    assert!(!by_snapshot);
    assert_eq!(fast, full);
    assert!(
        full.contains("up-to-date") && full.lines().count() > 3,
        "{full}"
    );
}

#[test]
fn every_change_the_snapshot_covers_leads_to_full_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    let dir = make_field(data, "S2", 2, 6, 2);
    settled(&cache, data, "S2");
    let out_file = |rel: &str| dir.join(rel);
    type Edit = (&'static str, Box<dyn Fn()>, &'static [&'static str]);
    let mosaic = out_file("cutouts/J0001/J0001.i.linmos.txt");
    let synth = out_file("cutouts/J0002/J0002_c1_RMsynth.txt");
    let cube = dir.join("cube.q.beam00.txt");
    let comps = dir.join("catalogue/components.csv");
    let cases: Vec<Edit> = vec![
        (
            "an output rewritten in place with other bytes of the same length",
            Box::new({
                let p = mosaic.clone();
                move || {
                    let b = std::fs::read(&p).unwrap();
                    let flipped: Vec<u8> = b
                        .iter()
                        .map(|c| if *c == b'b' { b'B' } else { *c })
                        .collect();
                    assert_ne!(b, flipped);
                    std::fs::write(&p, flipped).unwrap();
                }
            }),
            &["linmos/J0001.i"],
        ),
        (
            "an output deleted",
            Box::new({
                let p = synth.clone();
                move || std::fs::remove_file(&p).unwrap()
            }),
            &["rmsynth/J0002_c1"],
        ),
        (
            "a source input changed",
            Box::new({
                let p = cube.clone();
                move || std::fs::write(&p, "cube q beam 0, edited\n").unwrap()
            }),
            &["cutout/beam00.q"],
        ),
        (
            "a component added to the catalogue",
            Box::new({
                let p = comps.clone();
                move || {
                    let mut t = std::fs::read_to_string(&p).unwrap();
                    let row = t.lines().nth(1).unwrap().replacen("_c1,", "_c9,", 1);
                    t.push_str(&row);
                    t.push('\n');
                    std::fs::write(&p, t).unwrap();
                }
            }),
            &["rmclean/J0000_c9", "rmsynth/J0000_c9"],
        ),
    ];
    for (what, edit, must_run) in cases {
        edit();
        let (out, r) = build(&cache, data, "S2", &[]);
        assert!(out.status.success(), "{what}: {}", text(&out));
        assert!(!text(&out).contains(SHORTCUT), "{what}: {}", text(&out));
        let ran = with_status(&r, "ran");
        for id in must_run {
            assert!(
                ran.contains(&id.to_string()),
                "{what}: {id} did not run: {ran:?}"
            );
        }
        // And the build after it is a no-op answered by the snapshot again.
        settled(&cache, data, "S2");
    }
    // A parameter change is a different fingerprint.
    let (out, r) = build(&cache, data, "S2", &["--set", "cutoff=-3"]);
    assert!(!text(&out).contains(SHORTCUT), "{}", text(&out));
    assert!(with_status(&r, "ran")
        .iter()
        .all(|id| id.starts_with("rmclean/") || id.starts_with("catalogue/")));
    assert!(!with_status(&r, "ran").is_empty());
}

#[test]
fn records_changed_without_any_file_changing_are_seen_through_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "S3", 2, 4, 0);
    settled(&cache, data, "S3");
    // A parameter change whose targets then fail (no `sh` on PATH): failure records are
    // written, no output changes, and no snapshot is written by the failed build.
    let empty = data.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let report = data.join("failed.json");
    let out = crate::common::arrakis(&cache)
        .args(["build", "S3", "--quiet", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(crate::common::engine_rules())
        .args(["--set", "cutoff=-3", "--report"])
        .arg(&report)
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = with_status(&crate::common::read_report(&report), "failed");
    assert!(
        failed.iter().any(|id| id.starts_with("rmclean/")),
        "{failed:?}"
    );
    // Back to the old parameters: the old snapshot's fingerprint and files all match, but the
    // records do not; the failed targets must be made again (restored from the content
    // store: their outputs of the old parameters were kept when the failed run started).
    let (out, r) = build(&cache, data, "S3", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(SHORTCUT), "{}", text(&out));
    let ran = with_status(&r, "restored");
    for id in failed.iter().filter(|id| id.starts_with("rmclean/")) {
        assert!(ran.contains(id), "{id} did not rerun: {ran:?}");
    }
}

#[test]
fn a_corrupt_snapshot_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "S4", 1, 3, 0);
    settled(&cache, data, "S4");
    let snaps: Vec<_> = std::fs::read_dir(cache.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(snaps.len(), 1);
    // What a snapshot write killed mid-way leaves: removed by the next write.
    let leftover = cache.join("snapshots/.arrakis-tmp-1-1-x.snap");
    std::fs::write(&leftover, b"partial").unwrap();
    let mut b = std::fs::read(&snaps[0]).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    std::fs::write(&snaps[0], &b).unwrap();
    let (out, r) = build(&cache, data, "S4", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(SHORTCUT), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    assert!(
        !leftover.exists(),
        "a leftover temporary snapshot was not removed"
    );
    // Truncated to its header: ignored too.
    std::fs::write(&snaps[0], &b[..20]).unwrap();
    let (out, _) = build(&cache, data, "S4", &[]);
    assert!(!text(&out).contains(SHORTCUT), "{}", text(&out));
}
