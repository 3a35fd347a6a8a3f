//! Crash safety and cache exclusivity of the real binary: SIGKILL and SIGINT at many moments,
//! two builds on one cache.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use arrakis::cache::Cache;

fn spawn_build(cache: &Path, data: &Path, field: &str, delay: &str) -> std::process::Child {
    arrakis(cache)
        .args(["build", field, "--quiet", "-j", "2", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(engine_rules())
        .env("ARRAKIS_TEST_DELAY", delay)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn killed_builds_resume_without_redoing_recorded_work() {
    let clean = tempfile::tempdir().unwrap();
    make_field(clean.path(), "K", 2, 8, 3);
    let (out, _) = build(&clean.path().join("cache"), clean.path(), "K", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let reference = snapshot(&clean.path().join("K"));

    let trials = 24;
    let mut partial = 0;
    for trial in 0..trials {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let cache = data.join("cache");
        let field_dir = make_field(data, "K", 2, 8, 3);
        // A fixed spread of kill moments, from before the first target to near the end.
        let delay = Duration::from_millis(5 + (trial as u64 * 37) % 700);
        let mut child = spawn_build(&cache, data, "K", "0.01");
        std::thread::sleep(delay);
        let sigint = trial % 6 == 5;
        interrupt(&mut child, sigint, trial);
        let before = recorded_ok(&cache, "K", &field_dir);
        if before.len() < 59 {
            partial += 1;
        }
        let (out, r) = build(&cache, data, "K", &[]);
        assert!(out.status.success(), "trial {trial}: {}", text(&out));
        let ran: BTreeSet<String> = with_status(&r, "ran").into_iter().collect();
        let redone: Vec<&String> = ran.intersection(&before).collect();
        assert!(
            redone.is_empty(),
            "trial {trial}: recorded targets ran again: {redone:?}"
        );
        assert_eq!(
            ran.len() + before.len(),
            r.len(),
            "trial {trial}: every target either recorded before or run now"
        );
        let got = snapshot(&field_dir);
        let outputs: Vec<&String> = reference.keys().collect();
        for k in outputs {
            assert_eq!(
                got.get(k),
                reference.get(k),
                "trial {trial}: {k} differs from a clean build"
            );
        }
    }
    assert!(
        partial >= trials / 2,
        "most kills should land mid-build ({partial}/{trials})"
    );
}

#[test]
fn a_second_build_on_the_same_cache_fails_fast_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "L", 2, 4, 0);

    // Held by this process: the binary must refuse at once and name us.
    {
        let _held = Cache::open(&cache, false).unwrap();
        let start = Instant::now();
        let (out, _) = build(&cache, data, "L", &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains("in use by another arrakis process"), "{t}");
        assert!(t.contains(&format!("pid {}", std::process::id())), "{t}");
        assert!(t.contains("--wait"), "{t}");
        // "At once": far below the time the holder keeps it (the test would hang otherwise).
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    // Two real builds: the second fails while the first runs; the first is unaffected.
    let mut first = spawn_build(&cache, data, "L", "0.05");
    let lock = cache.join("arrakis.lock");
    let pid = format!("pid {}", first.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&lock)
        .map(|s| s.contains(&pid))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "first build never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (out, _) = build(&cache, data, "L", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains(&pid), "second build should name the first: {t}");
    let status = first.wait().unwrap();
    assert!(status.success());
    // With --wait a build queues behind the holder, says so, and goes on once it is released.
    let held = Cache::open(&cache, false).unwrap();
    let report = data.join("wait-report.json");
    let mut waiter = arrakis(&cache)
        .args(["build", "L", "--wait", "--quiet", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(engine_rules())
        .arg("--report")
        .arg(&report)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(
        line.contains("waiting for the cache")
            && line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    drop(held);
    assert!(waiter.wait().unwrap().success());
    let r = read_report(&report);
    assert!(with_status(&r, "ran").is_empty(), "{r:?}");
    assert_eq!(r.len(), 12 + 12 + 4 + 4 + 1);
}
