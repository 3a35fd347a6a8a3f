//! Arrakis's configs and Snakemake's habits keep their meaning: Arrakis's default config changes
//! nothing, `ion` is ignored as Arrakis ignores it, `skip_*` take a stage's outputs as they are,
//! `tt0`/`own_fit` are refused with the reason, `key = value` files and the field's own
//! `arrakis.yaml` load; `-n`, `-k`, `--force STAGE|TARGET` and `--forceall` do what they say.

use std::path::Path;

use crate::common::{arrakis, build_real, text, with_status};

/// Arrakis's `arrakis/.default_config.yaml` (its keys and values; comments left out).
const ARRAKIS_DEFAULT: &str = "hosted-wsclean: docker://alecthomson/wsclean:latest
local_wsclean: null
dask_config: null
imager_dask_config: null
imager_only: false
skip_imager: false
skip_cutout: false
skip_linmos: false
skip_frion: false
skip_rmsynth: false
skip_rmclean: false
skip_cat: false
skip_cleanup: false
sbid: null
stokes:
  - I
  - Q
  - U
epoch: 0
host: null
username: null
password:
limit: null
database: false
temp_dir_wsclean: null
temp_dir_images: null
psf_cutoff: null
robust: -0.5
nchan: 36
pols: IQU
size: 6144
scale: 2.5
mgain: 0.7
niter: 500_000
nmiter: 15
auto_mask: 4
auto_threshold: 1
local_rms: true
local_rms_window: 60
force_mask_rounds: 8
gridder: wgridder
taper: null
minuv: 200
parallel: null
mpi: false
purge: false
multiscale: false
multiscale_scale_bias: null
multiscale_scales: 0,2,4,8,16,32,64,12
absmem: null
make_residual_cubes: false
ms_glob_pattern: scienceData*_averaged_cal.leakage.ms
data_column: CORRECTED_DATA
no_mf_weighting: false
skip_fix_ms: false
pad: 3
dryrun: false
holofile: null
yanda: 1.3.0
yanda_image: null
ionex_server: ftp://ftp.aiub.unibe.ch/CODE/
ionex_prefix: codg
ionex_formatter: null
ionex_proxy_server: null
ionex_predownload: false
dimension: 1d
save_plots: false
rm_verbose: false
ion: false
tt0: null
tt1: null
validate: false
own_fit: false
weight_type:
fit_function:
fit_rmsf: false
phi_max: null
dphi: null
n_samples:
poly_ord:
no_stokes_i: false
show_plots: false
not_rmsf: false
debug: false
cutoff: -8
max_iter: 10000
gain: 0.1
window: null
leakage_degree: 4
leakage_bins: 16
leakage_snr: 30
write: null
overwrite: false
";

fn simulate(data: &Path, field: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .args([
            "simulate",
            field,
            "--sources",
            "6",
            "--beams",
            "2",
            "--nchan",
            "24",
            "--npix",
            "96",
            "--datadir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `arrakis params` lines (name = value), without where each came from.
fn params(cache: &Path, extra: &[&str]) -> Vec<String> {
    let out = arrakis(cache).arg("params").args(extra).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// Write a config file `name` in `dir`; its path as text.
fn config_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn dry_run(cache: &Path, data: &Path, field: &str, extra: &[&str]) -> String {
    let out = arrakis(cache)
        .args(["build", field, "-n", "--datadir"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

#[test]
fn arrakis_configs_keep_their_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    simulate(&data, "F");
    let (out, _) = build_real(&cache, &data, "F", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg = dir.path().join("arrakis_default.yaml");
    std::fs::write(&cfg, ARRAKIS_DEFAULT).unwrap();
    let cfg_s = cfg.to_str().unwrap();

    // Arrakis's default config: the same targets (nothing to rebuild) and the same parameters,
    // FRion included (its `ion: false` is ignored, as Arrakis ignores it). The one difference
    // is Arrakis's typo in multiscale_scales, which is what Arrakis itself passes to WSClean and
    // has no effect unless multiscale is on.
    let dry = dry_run(&cache, &data, "F", &["--config", cfg_s]);
    assert!(dry.contains("0 target(s) would run"), "{dry}");
    assert!(
        dry.contains("ion is not used (Arrakis ignores it too"),
        "{dry}"
    );
    let none = params(&cache, &[]);
    let with = params(&cache, &["--config", cfg_s]);
    let differ: Vec<(&String, &String)> = none.iter().zip(&with).filter(|(a, b)| a != b).collect();
    assert_eq!(none.len(), with.len());
    assert_eq!(
        differ,
        vec![(
            &"multiscale_scales = 0,2,4,8,16,32,64,128".to_string(),
            &"multiscale_scales = 0,2,4,8,16,32,64,12".to_string()
        )],
        "parameters that Arrakis's default config changes"
    );

    // `--set ion=false` says what to use instead; skip_frion is Arrakis's switch.
    let out = arrakis(&cache)
        .args(["build", "F", "-n", "--set", "ion=false", "--datadir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("skip_frion"), "{}", text(&out));
    let dry = dry_run(&cache, &data, "F", &["--set", "skip_frion=true"]);
    assert!(
        dry.contains("rmsynth/") && !dry.contains("0 target(s) would run"),
        "{dry}"
    );

    // tt0/tt1 and own_fit are refused with the reason, naming file and line.
    for (key, value) in [("tt0", "/data/tt0.fits"), ("own_fit", "true")] {
        let bad = dir.path().join(format!("{key}.yaml"));
        std::fs::write(&bad, format!("cutoff: -8\n{key}: {value}\n")).unwrap();
        let out = arrakis(&cache)
            .args(["build", "F", "-n", "--config"])
            .arg(&bad)
            .arg("--datadir")
            .arg(&data)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(
            t.contains(&format!("{key}.yaml:2")) && t.contains("not implemented"),
            "{t}"
        );
    }

    // configargparse's `key = value` files load (sections and comments skipped).
    let kv = config_file(
        dir.path(),
        "run.cfg",
        "# a saved run\n[rm]\ncutoff = -5\nion = false\nmax_iter = 10000\n",
    );
    let dry = dry_run(&cache, &data, "F", &["--config", &kv]);
    assert!(
        dry.contains("parameter cutoff changed from -8.0 to -5.0"),
        "{dry}"
    );

    // The YAML Arrakis saves for each run (`yaml.dump(vars(args))`: every argument, sorted,
    // pathlib paths as Python objects) loads, and gives the same build.
    let saved = config_file(
        dir.path(),
        "F-config-2024-01-01T00:00:00.000.yaml",
        "config: null\ncutoff: -8.0\ndask_config: null\ndatadir: !!python/object/apply:pathlib.PosixPath\n- /\n- data\n- racs\ndimension: 1d\nfield: F\nholofile: null\nimager_only: false\nion: false\nmap_size: 8\nmsdir: !!python/object/apply:pathlib.PosixPath\n- /\n- ms\nnpix: 512\noutfile: null\nskip_cleanup: false\nskip_frion: false\nstokes:\n- I\n- Q\n- U\nverbose: true\n",
    );
    let dry = dry_run(&cache, &data, "F", &["--config", &saved]);
    assert!(dry.contains("0 target(s) would run"), "{dry}");
    let holo = config_file(
        dir.path(),
        "holo.yaml",
        "holofile: !!python/object/apply:pathlib.PosixPath\n- /\n- askap\n- holo.fits\n",
    );
    let p = params(&cache, &["--config", &holo]);
    assert!(
        p.contains(&"holofile = /askap/holo.fits".to_string()),
        "{p:?}"
    );

    // The field's own config is read without being named; --set overrides it.
    std::fs::write(data.join("F/arrakis.yaml"), "cutoff: -5\n").unwrap();
    let dry = dry_run(&cache, &data, "F", &[]);
    assert!(
        dry.contains("parameter cutoff changed from -8.0 to -5.0"),
        "{dry}"
    );
    let dry = dry_run(&cache, &data, "F", &["--set", "cutoff=-8"]);
    assert!(dry.contains("0 target(s) would run"), "{dry}");
    std::fs::remove_file(data.join("F/arrakis.yaml")).unwrap();
}

#[test]
fn skip_keys_and_force_select_stages() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    simulate(&data, "F");
    let (out, _) = build_real(&cache, &data, "F", &[]);
    assert!(out.status.success(), "{}", text(&out));

    // skip_linmos: cutout reruns for the new pad; linmos does not run, its mosaics are taken
    // as they are, and what reads them is up to date with them.
    // The mosaics, byte for byte: a skipped stage's outputs are left as they are.
    let mosaics = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(data.join("F/cutouts"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".linmos.fits"))
            .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    let mosaic_before = mosaics();
    assert!(!mosaic_before.is_empty());
    let (out, r) = build_real(
        &cache,
        &data,
        "F",
        &["--set", "pad=4", "--set", "skip_linmos=true"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(
        ran.iter().all(|id| id.starts_with("cutout/")) && !ran.is_empty(),
        "{ran:?}"
    );
    assert!(with_status(&r, "skipped")
        .iter()
        .any(|id| id.starts_with("linmos/")));
    assert!(mosaics() == mosaic_before, "skip_linmos rewrote a mosaic");
    // Without the skip, linmos is stale (its cutouts changed) and runs.
    let dry = dry_run(&cache, &data, "F", &["--set", "pad=4"]);
    assert!(dry.contains("linmos/"), "{dry}");

    // A skipped stage whose outputs are missing: the target fails naming the file.
    let (out, _) = build_real(&cache, &data, "F", &["--set", "pad=4"]);
    assert!(out.status.success(), "{}", text(&out));
    let victim = walkdir::WalkDir::new(data.join("F/cutouts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".linmos.fits"))
        .unwrap()
        .into_path();
    std::fs::remove_file(&victim).unwrap();
    let (out, r) = build_real(
        &cache,
        &data,
        "F",
        &["--set", "pad=4", "--set", "skip_linmos=true", "-k"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = with_status(&r, "failed");
    assert!(
        failed.iter().any(|id| id.starts_with("linmos/")),
        "{failed:?}"
    );
    let (out, _) = build_real(&cache, &data, "F", &["--set", "pad=4"]);
    assert!(out.status.success(), "{}", text(&out));

    // --force STAGE reruns that stage on purpose; identical outputs leave the rest alone.
    let (out, r) = build_real(&cache, &data, "F", &["--set", "pad=4", "--force", "linmos"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = with_status(&r, "ran");
    assert!(
        !ran.is_empty() && ran.iter().all(|id| id.starts_with("linmos/")),
        "{ran:?}"
    );
    // --force TARGET: that one target.
    let target = ran[0].clone();
    let (out, r) = build_real(&cache, &data, "F", &["--set", "pad=4", "--force", &target]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(with_status(&r, "ran"), vec![target]);
    // --only STAGE when an input of the stage is stale: said (which input, why), not a success.
    let out = arrakis(&cache)
        .args([
            "build",
            "F",
            "--set",
            "pad=5",
            "--only",
            "linmos",
            "--datadir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cutout/")
            && said.contains("is not up to date (parameter pad changed")
            && said.contains("--only")
            && !said.contains("--keep-going"),
        "{said}"
    );
    // --forceall: everything would run; a name that is neither a stage nor a target: exit 2.
    let dry = dry_run(&cache, &data, "F", &["--set", "pad=4", "--forceall"]);
    assert!(!dry.contains(" 0 target(s) would run"), "{dry}");
    let out = arrakis(&cache)
        .args(["build", "F", "--force", "linmoss", "--datadir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("did you mean 'linmos'"),
        "{}",
        text(&out)
    );
}

#[test]
fn version_names_the_commit_and_completions_cover_the_commands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout).to_string();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert!(
        v.starts_with("arrakis ") && v.contains(&format!("commit {head}")),
        "{v} (HEAD {head})"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
            .args(["completions", shell])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && s.contains("rmsynth1d") && s.contains("forceall"),
            "{shell}"
        );
    }
}

#[test]
fn status_says_why_and_builds_say_what_changed_and_where_results_are() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    simulate(&data, "F");
    let run = |extra: &[&str]| {
        let out = arrakis(&cache)
            .args(["build", "F", "--datadir"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    // A build that made them names the catalogue and the plots.
    let t = run(&["--set", "cutoff=-5"]);
    let cat = data.join("F/F.catalogue.csv");
    let cat = std::path::absolute(&cat).unwrap();
    assert!(t.contains(&format!("catalogue: {}", cat.display())), "{t}");
    assert!(
        t.contains("plots: ") && t.contains("validation/index.html"),
        "{t}"
    );
    // Leaving out the --set: said before anything runs, with where each value came from.
    let t = run(&["-n"]);
    assert!(
        t.contains(
            "parameters differ from the last build of F: cutoff -5.0 (--set) -> -8.0 (default)"
        ),
        "{t}"
    );
    // -q: errors only (and the islands no beam covers: data left out is always said).
    let t = run(&["-q", "--set", "cutoff=-5"]);
    assert!(
        t.lines().all(|l| l.contains("outside every beam")),
        "-q printed: {t}"
    );
    // status: counts by reason.
    let out = arrakis(&cache)
        .args(["status", "F", "--set", "pad=5", "--datadir"])
        .arg(&data)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = |needle: &str| -> usize {
        t.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line with {needle:?}: {t}"))
    };
    let cutouts = t
        .lines()
        .find(|l| l.starts_with("cutout "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap();
    assert_eq!(
        line("parameter pad changed from 3.0 to 5.0"),
        cutouts,
        "{t}"
    );
    assert!(line("an input is rebuilt first") > 0, "{t}");
}

#[test]
fn arrakis_command_line_habits_get_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("RACS_X")).unwrap();
    for (args, want) in [
        (
            vec!["build", "RACS_X", "--skip_linmos"],
            "--set skip_linmos=true".to_string(),
        ),
        (
            vec!["build", ".", "RACS_X"],
            "arrakis build RACS_X --datadir .".to_string(),
        ),
        (vec!["build", "RACS_X", "-v"], "no -v".to_string()),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arrakis"))
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains("hint: ") && t.contains(&want), "{args:?}: {t}");
    }
}
