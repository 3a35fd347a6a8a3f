//! Crash safety of the real science pipeline on a simulated field: the coordinator killed with
//! SIGKILL (and every fifth time SIGINT) at 50 moments chosen by a fixed-seed generator across a
//! cold build. Every rerun completes, every output equals a clean build's bytes, no target that
//! was recorded before the kill runs again, and the cache always opens cleanly.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrakis::simulate::{simulate, SimOptions};
use common::*;

/// Digest of every file under `dir` except the given inputs, by relative path.
fn outputs(dir: &Path, inputs: &[String]) -> BTreeMap<String, blake3::Hash> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .ok()?
                .to_string_lossy()
                .to_string();
            (!inputs.contains(&rel) && !rel.contains(".arrakis-tmp-"))
                .then(|| (rel, blake3::hash(&std::fs::read(e.path()).unwrap())))
        })
        .collect()
}

/// A copy of the pristine field made of hard links (builds never write their inputs).
fn link_copy(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn killed_pipeline_builds_resume_to_clean_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_KILL";
    let pristine = simulate(&tmp.path().join("pristine"), &SimOptions::small(field, 21)).unwrap();
    let inputs: Vec<String> = walkdir::WalkDir::new(&pristine)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&pristine)
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();

    // The reference: a clean build, and how long it takes.
    let clean = tmp.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    link_copy(&pristine, &clean);
    let t0 = Instant::now();
    let (out, _) = build_real(&tmp.path().join("cache-clean"), &clean, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let span = t0.elapsed().as_secs_f64();
    let reference = outputs(&clean.join(field), &inputs);

    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (trials, mut mid_build) = (50, 0);
    for trial in 0..trials {
        let data = tmp.path().join(format!("t{trial}"));
        std::fs::create_dir_all(&data).unwrap();
        link_copy(&pristine, &data);
        let cache = data.join("cache");
        let mut child = arrakis(&cache)
            .args(["build", field, "--quiet", "--datadir"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(next() * span * 1.1));
        let sigint = trial % 5 == 4;
        let status = interrupt(&mut child, sigint, trial);
        let dir = data.join(field);
        let before = recorded_ok(&cache, field, &dir);
        if !before.is_empty() && status.code() != Some(0) {
            mid_build += 1;
        }
        let (out, r) = build_real(&cache, &data, field, &[]);
        assert!(out.status.success(), "trial {trial}: {}", text(&out));
        let ran: Vec<&String> = r
            .iter()
            .filter(|(_, s)| *s == "ran")
            .map(|(id, _)| id)
            .collect();
        let redone: Vec<&&String> = ran.iter().filter(|id| before.contains(**id)).collect();
        assert!(
            redone.is_empty(),
            "trial {trial}: recorded targets ran again: {redone:?}"
        );
        let got = outputs(&dir, &inputs);
        for (k, v) in &reference {
            assert_eq!(
                got.get(k),
                Some(v),
                "trial {trial}: {k} differs from a clean build"
            );
        }
        assert_eq!(
            got.len(),
            reference.len(),
            "trial {trial}: other files than a clean build"
        );
        std::fs::remove_dir_all(&data).unwrap();
    }
    assert!(
        mid_build >= trials / 3,
        "only {mid_build} of {trials} kills landed mid-build"
    );
}
