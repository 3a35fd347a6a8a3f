//! Disk full: a build whose field directory is on a small tmpfs (mounted by the test; root, as
//! `.ci/run` runs) fails with a message naming the directory and saying the disk is full; nothing
//! half-written is left or recorded; once there is space the build completes with the bytes of a
//! clean build.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_clearly_keeps_nothing_half_written_and_resumes() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root (.ci/run runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let field = "RACS_FULL";
    // A clean build elsewhere, for the bytes to expect.
    let clean = tmp.path().join("clean");
    let src = simulate(&clean, &SimOptions::small(field, 8)).unwrap();
    let (out, _) = build_real(&tmp.path().join("cache-clean"), &clean, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = std::fs::read(src.join(format!("{field}.catalogue.csv"))).unwrap();

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let data = mnt.clone();
    let fresh = simulate(&tmp.path().join("inputs"), &SimOptions::small(field, 8)).unwrap();
    let size_kib = arrakis::cmd::bench::dir_size(&fresh) / 1024 + 2048;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount -t tmpfs failed");
    let _guard = Mount(mnt.clone());
    let status = Command::new("cp")
        .arg("-r")
        .arg(&fresh)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());

    let cache = tmp.path().join("cache");
    let (out, r) = build_real(&cache, &data, field, &["--keep-going"]);
    let t = text(&out);
    assert!(!out.status.success(), "the build should not fit: {t}");
    assert!(
        t.contains("no space left on device") && t.contains(&*mnt.to_string_lossy()),
        "{t}"
    );
    assert!(!with_status(&r, "failed").is_empty());
    let leftovers: Vec<PathBuf> = walkdir::WalkDir::new(&mnt)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".arrakis-tmp"))
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left: {leftovers:?}"
    );

    // Space again: the build completes, with the bytes of the clean build, and a second build
    // has nothing to do.
    let ok = Command::new("mount")
        .args(["-o", "remount,size=400m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let (out, _) = build_real(&cache, &data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let got = std::fs::read(mnt.join(field).join(format!("{field}.catalogue.csv"))).unwrap();
    assert_eq!(
        got, expected,
        "the resumed build's catalogue differs from a clean build's"
    );
    let (out, r) = build_real(&cache, &data, field, &[]);
    assert!(
        out.status.success() && with_status(&r, "ran").is_empty(),
        "{r:?}"
    );
}
