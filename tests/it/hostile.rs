//! Hostile inputs and tight resources: each is refused with a message naming the file (and line)
//! or the limit, overwrites nothing good and never hangs. Missing unit files, FIFOs and devices,
//! FITS data that its header does not describe, bad weights files, names too long for a file,
//! a damaged record store, `ulimit`s, leftovers of kills in any field, command lines too long.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use arrakis::rules::expand::{check_command_lines, expand};
use arrakis::rules::RuleSet;
use arrakis::simulate::{simulate, SimOptions};
use arrakis::stages::{builtin_version, registry};
use arrakis::units::{Needs, Units};

const FIELD: &str = "HOST";

/// A small simulated field in `data` with `sources` islands: its directory.
fn simulated(data: &Path, sources: usize) -> PathBuf {
    let opts = SimOptions {
        beams: 2,
        sources,
        nchan: 16,
        npix: 80,
        ..SimOptions::small(FIELD, 5)
    };
    simulate(data, &opts).unwrap()
}

/// [`simulated`] with 5 islands, built once into `data/cache`: its directory.
fn built_field(data: &Path) -> PathBuf {
    let field = simulated(data, 5);
    let (out, _) = build_real(&data.join("cache"), data, FIELD, &[]);
    assert!(out.status.success(), "{}", text(&out));
    field
}

/// `arrakis build FIELD` on `data` with a deadline: a build that hangs fails the test (and is
/// killed) instead of hanging it.
fn build_within(data: &Path, extra: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut cmd = arrakis(&data.join("cache"));
    cmd.args(["build", FIELD, "--quiet", "--keep-going", "--datadir"])
        .arg(data)
        .args(extra);
    run_within(cmd, limit)
}

fn run_within(mut cmd: std::process::Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("hung for {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out))
}

fn catalogue(field: &Path) -> Vec<u8> {
    std::fs::read(field.join(format!("{FIELD}.catalogue.csv"))).unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn a_missing_unit_file_is_an_input_error_and_the_catalogue_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let good = catalogue(&field);
    for (file, kind) in [
        ("catalogue/islands.csv", "island"),
        ("catalogue/components.csv", "component"),
    ] {
        let p = field.join(file);
        let aside = data.join("aside.csv");
        std::fs::rename(&p, &aside).unwrap();
        let (code, t) = build_within(data, &[], Duration::from_secs(60));
        assert_eq!(code, Some(2), "{t}");
        assert!(
            t.contains(&*p.to_string_lossy())
                && t.contains("does not exist")
                && t.contains(&format!("per {kind}"))
                && t.contains("nothing was built"),
            "{t}"
        );
        // A FIFO in its place: refused at once, not read (which would block).
        mkfifo(&p);
        let (code, t) = build_within(data, &[], Duration::from_secs(60));
        assert_eq!(code, Some(2), "{t}");
        assert!(t.contains("FIFO") && t.contains(file), "{t}");
        std::fs::remove_file(&p).unwrap();
        std::fs::rename(&aside, &p).unwrap();
        assert_eq!(
            catalogue(&field),
            good,
            "{file}: the catalogue was rewritten"
        );
    }
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(catalogue(&field), good);
}

#[test]
fn fifo_and_device_inputs_are_refused_without_hanging_or_reading_without_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let cube = field.join(format!(
        "image.restored.q.{FIELD}.contcube.beam01.conv.fits"
    ));
    let weights = field.join(format!(
        "weights.restored.u.{FIELD}.contcube.beam00.conv.txt"
    ));
    for (path, what) in [
        (&cube, "fifo"),
        (&cube, "/dev/zero"),
        (&weights, "/dev/zero"),
        (&weights, "fifo"),
    ] {
        let aside = data.join("aside");
        std::fs::rename(path, &aside).unwrap();
        if what == "fifo" {
            mkfifo(path);
        } else {
            std::os::unix::fs::symlink(what, path).unwrap();
        }
        let (code, t) = build_within(data, &[], Duration::from_secs(60));
        assert_ne!(code, Some(0), "{what}: {t}");
        let kind = if what == "fifo" {
            "is a FIFO (named pipe), not a regular file"
        } else {
            "is a character device, not a regular file"
        };
        assert!(
            t.contains(&*path.to_string_lossy()) && t.contains(kind),
            "{what}: {t}"
        );
        std::fs::remove_file(path).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
}

/// Rewrite one header card (80 characters) of a FITS file in place.
fn set_card(path: &Path, key: &str, card: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (0..bytes.len() / 80)
        .map(|i| i * 80)
        .find(|&o| bytes[o..o + 8] == *format!("{key:<8}").as_bytes())
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()));
    bytes[at..at + 80].copy_from_slice(format!("{card:<80}").as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn fits_data_must_be_what_its_header_describes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let good = catalogue(&field);
    let cube = field.join(format!(
        "image.restored.i.{FIELD}.contcube.beam00.conv.fits"
    ));
    let original = std::fs::read(&cube).unwrap();
    // A header that describes fewer pixels than the file holds.
    set_card(&cube, "NAXIS1", &format!("NAXIS1  = {:>20}", 70));
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains(&*cube.to_string_lossy())
            && t.contains("NAXIS1 = 70")
            && t.contains("the header does not describe the data"),
        "{t}"
    );
    // Trailing bytes that are not an extension: the same refusal.
    let mut long = original.clone();
    long.extend(std::iter::repeat_n(0u8, 2880));
    std::fs::write(&cube, &long).unwrap();
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("no extension follows"), "{t}");
    // An extension after the data is FITS: accepted, the same catalogue.
    let mut ext = original.clone();
    let mut hdr = String::new();
    for card in [
        "XTENSION= 'IMAGE   '",
        "BITPIX  =                    8",
        "NAXIS   =                    0",
        "PCOUNT  =                    0",
        "GCOUNT  =                    1",
        "END",
    ] {
        hdr.push_str(&format!("{card:<80}"));
    }
    ext.extend(format!("{hdr:<2880}").as_bytes());
    std::fs::write(&cube, &ext).unwrap();
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(catalogue(&field), good);
}

#[test]
fn weights_files_are_checked_row_by_row_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let good = catalogue(&field);
    let w = field.join(format!(
        "weights.restored.u.{FIELD}.contcube.beam01.conv.txt"
    ));
    let text0 = std::fs::read_to_string(&w).unwrap();
    let lines: Vec<&str> = text0.lines().collect();
    // Line numbers are 1-based: line 1 is the header, line k+2 holds channel k.
    let flagged = lines
        .iter()
        .skip(1)
        .position(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
                == Some(0.0)
        })
        .expect("a flagged channel in the simulated weights");
    let set = |ch: usize, v: &str| -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == ch + 1 {
                    format!("{ch} {v}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let without = |i: usize| -> String {
        let mut v: Vec<&str> = lines.clone();
        v.remove(i);
        v.join("\n") + "\n"
    };
    let twice_at = format!(":{}:", lines.len() + 1);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("empty", String::new(), vec!["holds no weights"]),
        (
            "short",
            lines[..6].join("\n") + "\n",
            vec![":6:", "no weight for channels 5, 6", "cut short"],
        ),
        (
            "a line missing",
            without(4),
            vec![":4:", "no weight for channel 3:"],
        ),
        (
            "a channel twice",
            text0.clone() + "2 1.0e5\n",
            vec![&twice_at, "channel 2 is given twice (first on line 4)"],
        ),
        (
            "NaN with data",
            set(3, "nan"),
            vec![":5:", "weight nan for channel 3, but that channel of"],
        ),
        (
            "negative",
            set(3, "-2"),
            vec![":5:", "weight -2 for channel 3"],
        ),
        (
            "infinite",
            set(3, "inf"),
            vec![":5:", "weight inf for channel 3"],
        ),
        (
            "three columns",
            set(3, "1e5 7"),
            vec![":5:", "expected two columns"],
        ),
    ];
    for (what, text, want) in cases {
        std::fs::write(&w, text).unwrap();
        let (code, t) = build_within(data, &[], Duration::from_secs(60));
        assert_eq!(code, Some(1), "{what}: {t}");
        assert!(t.contains(&*w.to_string_lossy()), "{what}: {t}");
        for s in want {
            assert!(t.contains(s), "{what}: lacks '{s}': {t}");
        }
        assert_eq!(catalogue(&field), good, "{what}: the catalogue changed");
    }
    // Arrakis writes `nan` for a channel with no data: accepted where the channel is blank.
    std::fs::write(&w, set(flagged, "nan")).unwrap();
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(catalogue(&field), good);
}

/// Rename island `old` (and its components) to `new` in the field's catalogues.
fn rename_island(field: &Path, old: &str, new: &str) {
    for f in ["catalogue/islands.csv", "catalogue/components.csv"] {
        let p = field.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(old), "{old} not in {f}");
        std::fs::write(&p, text.replace(old, new)).unwrap();
    }
}

#[test]
fn a_name_too_long_for_a_file_refuses_its_row_and_the_rest_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let truth = read_csv(&field.join(format!("{FIELD}.catalogue.csv")));
    let isl = std::fs::read_to_string(field.join("catalogue/islands.csv")).unwrap();
    let victim = isl
        .lines()
        .nth(2)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let long = format!("J{}", "x".repeat(230));
    rename_island(&field, &victim, &long);
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("islands.csv:3: Source_ID 'Jxxxx")
            && t.contains("(231 bytes) cannot name the island's files")
            && t.contains("names up to")
            && t.contains("1 catalogue row(s) refused"),
        "{t}"
    );
    assert!(!t.contains("error 105") && !t.contains("FAILED"), "{t}");
    // `status` says it too.
    let out = arrakis(&data.join("cache"))
        .args(["status", FIELD, "--datadir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("islands.csv:3: Source_ID 'Jxxxx"),
        "{}",
        text(&out)
    );
    let rows = read_csv(&field.join(format!("{FIELD}.catalogue.csv")));
    let others = truth.iter().filter(|r| r["source_id"] != victim).count();
    assert_eq!(rows.len(), others, "{t}");
    assert!(rows.iter().all(|r| r["source_id"] != long));
    // A component's name alone too long: that component only.
    rename_island(&field, &long, &victim);
    let comps = std::fs::read_to_string(field.join("catalogue/components.csv")).unwrap();
    let comp = comps
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let long_c = format!("{comp}{}", "y".repeat(220));
    std::fs::write(
        field.join("catalogue/components.csv"),
        comps.replacen(&format!("{comp},"), &format!("{long_c},"), 1),
    )
    .unwrap();
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("components.csv:2: Gaussian_ID")
            && t.contains("cannot name the component's files"),
        "{t}"
    );
    assert_eq!(
        read_csv(&field.join(format!("{FIELD}.catalogue.csv"))).len(),
        truth.len() - 1
    );
}

/// Overwrite `len` bytes at `at` of `path` with bytes from a fixed generator.
fn scribble(path: &Path, at: usize, len: usize) {
    let mut b = std::fs::read(path).unwrap();
    let mut x: u32 = 0x9e37_79b9;
    for v in b.iter_mut().skip(at).take(len) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = x as u8;
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_damaged_record_store_is_never_hidden_and_gc_repair_salvages_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = built_field(data);
    let good = catalogue(&field);
    let cache = data.join("cache");
    let db = cache.join("db/db");
    let gc_repair = || {
        let out = arrakis(&cache)
            .args(["gc", "--repair"])
            .current_dir(data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    // Damage in the middle of the log: the no-op is not answered by the snapshot (the store
    // changed since it was closed); whatever sled finds, gc --repair leaves a store that builds
    // to the same bytes.
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    for k in 1..8 {
        scribble(&db, size * k / 8, 64);
    }
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert!(
        !t.contains("nothing changed since the last complete build"),
        "{t}"
    );
    if code != Some(0) {
        assert!(t.contains("is damaged") && t.contains("gc --repair"), "{t}");
    }
    let said = gc_repair();
    assert!(said.contains("gc:"), "{said}");
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(catalogue(&field), good);
    // A store sled cannot open at all: the message names the cache and the repair; the repair
    // keeps the damaged store aside, and the next build redoes every target to the same bytes.
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    scribble(&db, 0, size);
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(2), "{t}");
    assert!(
        t.contains(&format!("the record store {}", cache.join("db").display()))
            && t.contains("is damaged")
            && t.contains("arrakis gc --repair"),
        "{t}"
    );
    let said = gc_repair();
    assert!(
        said.contains("the record store was damaged; salvaged") && said.contains("db.damaged-"),
        "{said}"
    );
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(catalogue(&field), good);
    // The same damage left by a process that never closed the store (killed: its `db.open`
    // is still there): the next build salvages the store itself, says so, and resumes.
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    scribble(&db, 0, size);
    std::fs::write(cache.join("db.open"), "999999").unwrap();
    let (code, t) = build_within(data, &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("left unreadable")
            && t.contains("did not close it")
            && t.contains("db.damaged-"),
        "{t}"
    );
    assert_eq!(catalogue(&field), good);
    assert!(!cache.join("db.open").exists());
}

#[test]
fn gc_finds_leftovers_of_kills_in_every_field_the_cache_built() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cache = root.join("cache");
    let mut planted = Vec::new();
    for (dir, name) in [("a", "F1"), ("b/deeper", "F2")] {
        let data = root.join(dir);
        make_field(&data, name, 1, 3, 0);
        let out = arrakis(&cache)
            .args(["build", name, "--quiet", "--datadir"])
            .arg(&data)
            .arg("--rules")
            .arg(engine_rules())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let tmpfile = data
            .join(name)
            .join("cutouts/.arrakis-tmp-999999-7-partial.tar");
        std::fs::create_dir_all(tmpfile.parent().unwrap()).unwrap();
        std::fs::write(&tmpfile, vec![1u8; 3 << 20]).unwrap();
        planted.push(tmpfile);
    }
    // From a directory holding neither field, with no --datadir.
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let said = gc_in(&cache, &elsewhere);
    assert!(
        said.contains("removed 2 temporary file(s) (6.0 MiB)"),
        "{said}"
    );
    for p in planted {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn the_build_after_a_kill_removes_what_the_killed_build_was_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, data) = (tmp.path().join("cache"), tmp.path().join("data"));
    make_field(&data, "F1", 1, 3, 0);
    let field = data.join("F1");
    let build_f1 = || {
        let (out, _) = build(&cache, &data, "F1", &[]);
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    build_f1();
    // A build killed mid-way: the lock still names it (a process of this host that is gone),
    // a partial output and an imager's scratch copy of it are left, and another process's
    // temporary file (a Slurm job of that build, say) is being written.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        field.join(".arrakis.lock"),
        format!(
            "pid {dead} on host {} with cache {}",
            host.trim(),
            cache.display()
        ),
    )
    .unwrap();
    let partial = field.join(format!("cutouts/.arrakis-tmp-{dead}-3-x.fits"));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![1u8; 2 << 20]).unwrap();
    let scratch = field.join(format!(".arrakis-imager-beam00-{dead}"));
    std::fs::create_dir_all(scratch.join("ms")).unwrap();
    std::fs::write(scratch.join("ms/table.f0"), vec![1u8; 1 << 20]).unwrap();
    let other = field.join(format!(".arrakis-tmp-{}-0-y.fits", std::process::id()));
    std::fs::write(&other, b"still being written").unwrap();

    let said = build_f1();
    assert!(
        said.contains(&format!(
            "removed what a build killed mid-way (pid {dead}) left in {}: 1 temporary file(s) and 1 scratch director(ies) (3.0 MiB)",
            field.display()
        )),
        "{said}"
    );
    assert!(!partial.exists() && !scratch.exists());
    assert!(other.exists(), "another process's file was removed");
    // The build let the lock go cleanly: the next one finds no one killed.
    assert_eq!(
        std::fs::read_to_string(field.join(".arrakis.lock")).unwrap(),
        ""
    );
    assert!(!build_f1().contains("killed"));
    // gc removes every leftover, scratch directories too.
    std::fs::create_dir_all(&scratch).unwrap();
    let said = gc_in(&cache, tmp.path());
    assert!(
        said.contains("removed 1 temporary file(s) and 1 scratch director(ies)"),
        "{said}"
    );
    assert!(!other.exists() && !scratch.exists());
}

/// `arrakis gc` (the engine's rules) run in `dir`, which must succeed; what it said.
fn gc_in(cache: &Path, dir: &Path) -> String {
    let out = arrakis(cache)
        .args(["gc", "--rules"])
        .arg(engine_rules())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// A build of `data`'s field under one resource limit (set in the child before exec).
fn build_limited(
    data: &Path,
    resource: libc::__rlimit_resource_t,
    value: u64,
) -> (Option<i32>, String) {
    let mut cmd = arrakis(&data.join("cache"));
    cmd.args(["build", FIELD, "--quiet", "--datadir"]).arg(data);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_within(cmd, Duration::from_secs(120))
}

#[test]
fn resource_limits_get_a_message_naming_the_limit_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    simulated(data, 4);
    for (what, resource, value, says) in [
        ("ulimit -v", libc::RLIMIT_AS, 60u64 << 20, "ulimit -v"),
        ("ulimit -f", libc::RLIMIT_FSIZE, 40 << 10, "ulimit -f"),
        ("ulimit -n", libc::RLIMIT_NOFILE, 7, "ulimit -n"),
    ] {
        let _ = std::fs::remove_dir_all(data.join("cache"));
        let (code, t) = build_limited(data, resource, value);
        assert!(code.is_some(), "{what}: killed by a signal: {t}");
        assert_ne!(code, Some(0), "{what}: {t}");
        assert_ne!(code, Some(101), "{what}: panicked: {t}");
        assert!(
            !t.contains("panicked") && !t.contains("memory allocation of"),
            "{what}: {t}"
        );
        assert!(
            t.contains(says),
            "{what}: the message does not name the limit: {t}"
        );
    }
    // And without limits the same field builds.
    let _ = std::fs::remove_dir_all(data.join("cache"));
    let (code, t) = build_within(data, &[], Duration::from_secs(120));
    assert_eq!(code, Some(0), "{t}");
}

#[test]
fn a_command_line_that_cannot_fit_fails_at_expansion_and_response_files_carry_relative_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let dir = make_field(data, "CMD", 2, 300, 0);
    let rules = RuleSet::load_dir(&engine_rules(), &registry()).unwrap();
    let params = arrakis::config::resolve(&rules.param_decls(), &[], &[]).unwrap();
    let units = Units::load(&dir, 1.0, None, &Needs::of_rules(&rules)).unwrap();
    let graph = expand(&rules, &params, &units, &dir, &builtin_version).unwrap();
    // The cutout rule passes every island's output on its command line: with room for fewer,
    // expansion says which rule, which slot and the fix.
    let err = check_command_lines(&graph, &rules, 4000)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rule 'cutout'")
            && err.contains("cutout.yaml")
            && err.contains("with the 300 files of '{out:cut}'")
            && err.contains("write '{list:out:cut}' in its place"),
        "{err}"
    );
    assert!(check_command_lines(&graph, &rules, 1 << 20).is_ok());

    // The fix works: a response file, its paths relative to the field (where commands run).
    let rules_dir = data.join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    for e in std::fs::read_dir(engine_rules()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), rules_dir.join(e.file_name())).unwrap();
    }
    std::fs::write(
        rules_dir.join("catalogue.yaml"),
        "rule: catalogue\nunit: field\ninputs:\n  clean: {from: rmclean, output: clean}\naction:\n  command: [sh, -c, 'cp \"$2\" \"$1\"', sh, \"{out:table}\", \"{list:in:clean}\"]\noutputs:\n  table: \"{field}.catalogue.csv\"\n",
    )
    .unwrap();
    let out = arrakis(&data.join("cache"))
        .args(["build", "CMD", "--quiet", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&rules_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed = std::fs::read_to_string(dir.join("CMD.catalogue.csv")).unwrap();
    let paths: Vec<&str> = listed.lines().collect();
    assert_eq!(paths.len(), 300);
    for p in &paths {
        assert!(!p.starts_with('/') && dir.join(p).is_file(), "{p}");
    }
    // No response file is left behind.
    let left: BTreeMap<String, Vec<u8>> = snapshot(&dir)
        .into_iter()
        .filter(|(k, _)| k.contains(".list") || k.contains(".arrakis-tmp-"))
        .collect();
    assert!(left.is_empty(), "{:?}", left.keys());
}
