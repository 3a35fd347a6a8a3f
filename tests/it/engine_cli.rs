//! The engine driven through the real binary on the engine test rules (external commands).

use crate::common::*;

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

#[test]
fn early_cutoff_stops_at_a_target_that_rewrites_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F2", 2, 6, 0);
    let (out, _) = build(&cache, data, "F2", &[]);
    assert!(out.status.success(), "{}", text(&out));
    // Same length, other bytes: cutout and linmos change, rmsynth (a byte count) does not.
    std::fs::write(data.join("F2/cube.i.beam00.txt"), "CUBE i beam 0\n").unwrap();
    let (out, r) = build(&cache, data, "F2", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(ran.contains(&"cutout/beam00.i".to_string()), "{ran:?}");
    assert!(ran.iter().any(|id| id.starts_with("linmos/")), "{ran:?}");
    assert!(ran.iter().any(|id| id.starts_with("rmsynth/")), "{ran:?}");
    assert!(
        !ran.iter()
            .any(|id| id.starts_with("rmclean/") || id.starts_with("catalogue/")),
        "early cutoff failed: {ran:?}"
    );
    assert!(
        !ran.iter()
            .any(|id| id.starts_with("linmos/") && !id.ends_with(".i")),
        "{ran:?}"
    );
}

#[test]
fn touching_an_input_without_changing_it_reruns_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F3", 2, 4, 0);
    assert!(build(&cache, data, "F3", &[]).0.status.success());
    let p = data.join("F3/cube.q.beam01.txt");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, bytes).unwrap();
    let (out, r) = build(&cache, data, "F3", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
}

#[test]
fn dry_run_status_and_explain_agree_on_a_parameter_change() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F4", 2, 5, 1);
    assert!(build(&cache, data, "F4", &[]).0.status.success());
    let rules = engine_rules();
    let base = |cmd: &str| {
        let mut c = arrakis(&cache);
        c.args([cmd, "F4", "--datadir"])
            .arg(data)
            .arg("--rules")
            .arg(&rules)
            .args(["--set", "cutoff=-5"]);
        c
    };
    let out = base("build").arg("--dry-run").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut ids: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 6 + 1, "{stdout}");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("rmclean/") || id.starts_with("catalogue/")),
        "{stdout}"
    );
    assert!(
        stdout.contains("parameter cutoff changed from -8.0 to -5.0"),
        "{stdout}"
    );

    let out = base("explain").arg("rmclean/J0000_c1").output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("parameter cutoff changed from -8.0 to -5.0"),
        "{t}"
    );

    let out = base("explain").arg("catalogue/F4").output().unwrap();
    let t = text(&out);
    assert!(
        t.contains("will run first") && t.contains("upstream rmclean/"),
        "{t}"
    );

    let out = base("status").output().unwrap();
    let t = text(&out);
    let row = t
        .lines()
        .find(|l| l.starts_with("rmclean"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(row[1..], ["0", "6", "0", "0", "0"], "{t}");
    let row = t
        .lines()
        .find(|l| l.starts_with("rmsynth"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(row[1..], ["6", "0", "0", "0", "0"], "{t}");

    // A deleted and a modified output are each explained and rebuilt.
    std::fs::remove_file(data.join("F4/cutouts/J0001/J0001_c1_RMsynth.txt")).unwrap();
    std::fs::write(
        data.join("F4/cutouts/J0002/J0002.i.linmos.txt"),
        "tampered\n",
    )
    .unwrap();
    let mut c = arrakis(&cache);
    let out = c
        .args(["explain", "F4", "rmsynth/J0001_c1", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("output cutouts/J0001/J0001_c1_RMsynth.txt is missing"),
        "{}",
        text(&out)
    );
    let mut c = arrakis(&cache);
    let out = c
        .args(["explain", "F4", "linmos/J0002.i", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(text(&out).contains("was modified"), "{}", text(&out));
    let (out, r) = build(&cache, data, "F4", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let mut ran = with_status(&r, "ran");
    ran.sort();
    assert_eq!(ran, ["linmos/J0002.i", "rmsynth/J0001_c1"], "{r:?}");
}

#[test]
fn a_failing_target_is_recorded_and_independent_targets_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F5", 2, 6, 0);
    // Break one beam's cube: its cutouts cannot run, so its islands' mosaics fail as blocked.
    std::fs::remove_file(data.join("F5/cube.u.beam03.txt")).unwrap();
    let (out, r) = build(&cache, data, "F5", &["--keep-going"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = with_status(&r, "failed");
    assert!(
        failed.contains(&"cutout/beam03.u".to_string()),
        "{failed:?}"
    );
    assert!(
        text(&out).contains("cube.u.beam03.txt (input 'cube') does not exist"),
        "{}",
        text(&out)
    );
    // Every island outside beam 03 is built through to RM-CLEAN.
    let blocked: Vec<&String> = failed
        .iter()
        .filter(|id| id.starts_with("rmclean/"))
        .collect();
    assert_eq!(
        with_status(&r, "ran")
            .iter()
            .filter(|id| id.starts_with("rmclean/"))
            .count()
            + blocked.len(),
        6
    );
    assert!(!blocked.is_empty() && blocked.len() < 6, "{failed:?}");
    assert!(
        text(&out).contains("because an input failed or is missing"),
        "{}",
        text(&out)
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join(format!("report-{}.json", std::process::id()))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        report["summary"]["failed"].as_u64().unwrap() as usize,
        failed.len()
    );
    assert!(report["targets"][0]["seconds"].is_number());
    // Restore it: only what failed (and what depends on it) runs.
    std::fs::write(data.join("F5/cube.u.beam03.txt"), "cube u beam 3\n").unwrap();
    let (out, r) = build(&cache, data, "F5", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(ran.contains(&"cutout/beam03.u".to_string()), "{ran:?}");
    assert!(
        !ran.iter()
            .any(|id| id.starts_with("cutout/") && id != "cutout/beam03.u"),
        "{ran:?}"
    );
}

#[test]
fn a_failing_command_is_reported_with_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "F6", 1, 2, 0);
    let rules = data.join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("a.yaml"),
        "rule: a\nunit: source\naction:\n  command: [sh, -c, 'echo boom-on-stderr >&2; exit 3']\noutputs:\n  o: \"{source}.txt\"\n",
    )
    .unwrap();
    let out = arrakis(&cache)
        .args(["build", "F6", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("exit code 3") && t.contains("boom-on-stderr"),
        "{t}"
    );
    // No temporary file is left behind.
    assert!(snapshot(&data.join("F6"))
        .keys()
        .all(|k| !k.contains(".arrakis-tmp-")));
}

/// A reader that closes the pipe early (`| head -1`) ends the command quietly: no panic, no
/// "Broken pipe" error; the command ends by SIGPIPE, as git and ls do.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "FP", 2, 40, 1);
    for args in [
        vec!["params".to_string()],
        vec!["columns".to_string()],
        vec![
            "build".into(),
            "FP".into(),
            "--dry-run".into(),
            "--datadir".into(),
            data.display().to_string(),
            "--rules".into(),
            engine_rules().display().to_string(),
        ],
    ] {
        // The reader is gone before the first line is written, as `| head -1` can be.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = arrakis(&cache)
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        // Ended by SIGPIPE (as git and ls are) or finished: never an error exit of its own.
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// `status` (and `explain`) answer at once while a build holds the cache, with the build's live
/// counts; afterwards `status` shows the recorded state as before.
#[test]
fn status_during_a_build_shows_live_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "FL", 2, 6, 1);
    let mut child = arrakis(&cache)
        .args(["build", "FL", "--quiet", "-j", "2", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(engine_rules())
        .env("ARRAKIS_TEST_DELAY", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let inspect = |cmd: &[&str]| {
        arrakis(&cache)
            .args(cmd)
            .arg("--datadir")
            .arg(data)
            .arg("--rules")
            .arg(engine_rules())
            .output()
            .unwrap()
    };
    let t0 = std::time::Instant::now();
    let mut seen = None;
    let mut last = String::new();
    while seen.is_none()
        && t0.elapsed() < std::time::Duration::from_secs(120)
        && child.try_wait().unwrap().is_none()
    {
        let out = inspect(&["status", "FL"]);
        let t = text(&out);
        if t.contains("a build of FL is running") {
            assert!(out.status.success(), "{t}");
            seen = Some(t);
        } else {
            last = t;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let Some(t) = seen else {
        let build = child.wait_with_output().unwrap();
        panic!(
            "status never showed the running build; last status: {last}\nbuild: {}",
            text(&build)
        );
    };
    assert!(
        t.contains("to-run") && t.contains("running") && t.contains("cutout"),
        "{t}"
    );
    let before = child.try_wait().unwrap().is_none();
    let out = inspect(&["explain", "FL", "catalogue/FL"]);
    let e = text(&out);
    if before && child.try_wait().unwrap().is_none() {
        assert!(
            out.status.success() && e.contains("a build of FL is running"),
            "{e}"
        );
    }
    let build = child.wait_with_output().unwrap();
    assert!(build.status.success(), "{}", text(&build));
    // Afterwards: the recorded state, everything up to date.
    let out = inspect(&["status", "FL"]);
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("up-to-date") && !t.contains("running"),
        "{t}"
    );
}

/// The field knows its cache: a build from another directory without --cache uses the cache that
/// built the field and reruns nothing; an explicit cache with no record of a built field is
/// refused before anything runs, naming the cache that built it; two builds cannot write one
/// field at once through two caches.
#[test]
fn the_field_knows_its_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&data, &a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    make_field(&data, "FC", 2, 4, 1);
    let run = |cwd: &std::path::Path, extra: &[&str], delay: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"));
        c.current_dir(cwd)
            .env_remove("ARRAKIS_CACHE")
            .env_remove("ARRAKIS_RULES")
            .env("ARRAKIS_TEST_DELAY", delay)
            .args(["build", "FC", "--datadir"])
            .arg(&data)
            .arg("--rules")
            .arg(engine_rules())
            .args(extra);
        c
    };
    let out = run(&a, &[], "0").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(a.join("cache").is_dir());
    let marker = std::fs::read_to_string(data.join("FC/.arrakis-cache")).unwrap();
    assert_eq!(
        marker.trim(),
        std::fs::canonicalize(a.join("cache"))
            .unwrap()
            .display()
            .to_string()
    );

    // From another directory, no --cache: the same cache, nothing runs.
    let report = tmp.path().join("r.json");
    let out = run(
        &b,
        &["--full-check", "--report", report.to_str().unwrap()],
        "0",
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r = read_report(&report);
    assert!(!r.is_empty() && with_status(&r, "ran").is_empty(), "{r:?}");
    assert!(!b.join("cache").exists());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .current_dir(&b)
        .env_remove("ARRAKIS_CACHE")
        .args(["status", "FC", "--datadir"])
        .arg(&data)
        .arg("--rules")
        .arg(engine_rules())
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    // From inside the field's own directory, `build FC` with no --datadir: that field, its
    // cache, nothing runs.
    let report = tmp.path().join("r-inside.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .current_dir(data.join("FC"))
        .env_remove("ARRAKIS_CACHE")
        .args(["build", "FC", "--full-check", "--report"])
        .arg(&report)
        .arg("--rules")
        .arg(engine_rules())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r = read_report(&report);
    assert!(!r.is_empty() && with_status(&r, "ran").is_empty(), "{r:?}");
    assert!(!data.join("FC/cache").exists());
    // gc of the field, from elsewhere with no --cache: the cache that built it (no cache made
    // here); gc of no field there: refused, no cache made either.
    let gc = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
            .current_dir(&b)
            .env_remove("ARRAKIS_CACHE")
            .arg("gc")
            .args(args)
            .arg("--rules")
            .arg(engine_rules())
            .output()
            .unwrap()
    };
    let out = gc(&["FC", "--datadir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no cache at"), "{}", text(&out));
    assert!(!b.join("cache").exists());

    // An explicit cache with no record of the built field: refused before running, naming the
    // cache that built it; --new-cache builds into it on purpose.
    let other = tmp.path().join("other-cache");
    let out = run(&b, &["--cache", other.to_str().unwrap()], "0")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("holds no record of field FC") && t.contains(&marker.trim().to_string()),
        "{t}"
    );
    let out = run(
        &b,
        &["--cache", other.to_str().unwrap(), "--new-cache"],
        "0",
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Two builds of one field through two caches at once: the second is refused.
    let mut first = run(&a, &["--set", "cutoff=-3", "--quiet"], "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = data.join("FC/.arrakis.lock");
    let t0 = std::time::Instant::now();
    // The first build holds the lock once its holder line is written.
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains(&first.id().to_string()))
        && t0.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let third = tmp.path().join("third-cache");
    let out = run(
        &b,
        &["--cache", third.to_str().unwrap(), "--new-cache"],
        "0",
    )
    .output()
    .unwrap();
    let t = text(&out);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first build ended too soon"
    );
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("another arrakis process is building this field"),
        "{t}"
    );
    assert!(first.wait().unwrap().success());
}

/// Where a list is cut, `explain` says so; `simulate` says what to run next.
#[test]
fn explain_says_where_it_cuts_and_simulate_what_next() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "FX", 2, 30, 1);
    assert!(build(&cache, data, "FX", &[]).0.status.success());
    let out = arrakis(&cache)
        .args([
            "explain",
            "FX",
            "catalogue/FX",
            "--set",
            "cutoff=-5",
            "--datadir",
        ])
        .arg(data)
        .arg("--rules")
        .arg(engine_rules())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("upstream rmclean/").count(), 10, "{t}");
    assert!(
        t.contains("... and at least") && t.contains("more upstream target"),
        "{t}"
    );
    let out = arrakis(&cache)
        .args([
            "simulate",
            "SIMX",
            "--sources",
            "3",
            "--npix",
            "64",
            "--datadir",
        ])
        .arg(data)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "next: arrakis build SIMX --datadir {}",
            data.display()
        )),
        "{t}"
    );
}

/// `arrakis build A B C` on the engine rules; the report's targets as field/id → status.
fn build_many(
    cache: &std::path::Path,
    data: &std::path::Path,
    args: &[&str],
) -> (
    std::process::Output,
    std::collections::BTreeMap<String, String>,
) {
    let report = data.join("many.json");
    let _ = std::fs::remove_file(&report);
    let out = arrakis(cache)
        .arg("build")
        .args(args)
        .arg("--datadir")
        .arg(data)
        .arg("--rules")
        .arg(engine_rules())
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let r = std::fs::read_to_string(&report)
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            v["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let f = t["field"].as_str().unwrap();
                    let id = t["id"].as_str().unwrap();
                    (
                        format!("{f}/{id}"),
                        t["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (out, r)
}

#[test]
fn several_fields_build_in_one_run_as_each_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    for (f, n) in [("FA", 6), ("FB", 4), ("FC", 5)] {
        make_field(data, f, 2, n, 1);
        make_field(&data.join("alone"), f, 2, n, 1);
    }
    // Bad input stops before anything is built: a field named twice, a field not there.
    let (out, _) = build_many(&cache, data, &["FA", "FB", "FA"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("field 'FA' is named twice"),
        "{}",
        text(&out)
    );
    let (out, _) = build_many(&cache, data, &["FA", "NOPE"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("NOPE"), "{}", text(&out));
    assert!(!data.join("FA/FA.catalogue.csv").exists());

    // A broken cube in FB: with --keep-going the other fields are built through.
    std::fs::remove_file(data.join("FB/cube.u.beam03.txt")).unwrap();
    let (out, r) = build_many(&cache, data, &["FA", "FB", "FC", "--keep-going"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FB: cutout/beam03.u"), "{}", text(&out));
    assert_eq!(r["FA/catalogue/FA"], "ran");
    assert_eq!(r["FC/catalogue/FC"], "ran");
    assert_eq!(r["FB/cutout/beam03.u"], "failed");
    std::fs::write(data.join("FB/cube.u.beam03.txt"), "cube u beam 3\n").unwrap();
    // Dry run: FB's targets named with their field.
    let out = arrakis(&cache)
        .args(["build", "FA", "FB", "FC", "-n", "--rules"])
        .arg(engine_rules())
        .arg("--datadir")
        .arg(data)
        .output()
        .unwrap();
    let would = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        would.lines().any(|l| l.starts_with("FB:cutout/beam03.u\t")),
        "{would}"
    );
    assert!(would.lines().all(|l| l.starts_with("FB:")), "{would}");
    let (out, r) = build_many(&cache, data, &["FA", "FB", "FC"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(ran.iter().all(|k| k.starts_with("FB/")), "{ran:?}");
    // Each field has the bytes of a build of its own.
    for f in ["FA", "FB", "FC"] {
        let (o, _) = build(&data.join("cache-alone"), &data.join("alone"), f, &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            snapshot(&data.join(f)),
            snapshot(&data.join("alone").join(f)),
            "{f}"
        );
    }
    // Nothing changed: every target of the three skipped; one field changed: only its targets.
    let (out, r) = build_many(&cache, data, &["FA", "FB", "FC"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(with_status(&r, "ran").is_empty() && r.len() > 100, "{r:?}");
    std::fs::write(data.join("FC/cube.i.beam00.txt"), "cube i beam 0, new\n").unwrap();
    let (out, r) = build_many(&cache, data, &["FA", "FB", "FC"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(ran.contains(&"FC/cutout/beam00.i".to_string()), "{ran:?}");
    assert!(ran.iter().all(|k| k.starts_with("FC/")), "{ran:?}");
    assert!(text(&out).contains("FA: nothing changed"), "{}", text(&out));
}

#[test]
fn bench_field_puts_each_stage_beside_its_floor_in_the_cold_build_and_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let out = arrakis(&tmp.path().join("unused-cache"))
        .args([
            "bench", "field", "--beams", "2", "--npix", "64", "--nchan", "8",
        ])
        .args(["--sources", "6", "-j", "2", "--dir"])
        .arg(tmp.path().join("bf"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let header = t.lines().find(|l| l.starts_with("stage ")).expect(&t);
    assert!(
        header.contains("stage s") && header.contains("alone s"),
        "{t}"
    );
    // Every stage of the pipeline has a row with a number in every column: the cold build's
    // share and, built again by itself, its own.
    for stage in [
        "cutout",
        "linmos",
        "frion",
        "rmsynth",
        "rmclean",
        "catalogue",
    ] {
        let row = t
            .lines()
            .find(|l| l.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("no {stage} row: {t}"));
        let cells: Vec<f64> = row
            .split_whitespace()
            .skip(1)
            .map(|c| c.parse().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(cells.len(), 10, "{row}");
        assert!(cells.iter().all(|c| c.is_finite()), "{row}");
        assert!(cells[0] >= 1.0, "{stage} has targets: {row}");
    }
}
