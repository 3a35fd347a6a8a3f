//! Bad rule files, configs and fields: each gets a clear error naming the file, the line or key,
//! and what to do.

use std::path::PathBuf;

use crate::common::*;
use arrakis::config;
use arrakis::rules::RuleSet;
use arrakis::stages::registry;

const GOOD_A: &str = "rule: a\nunit: source\nparams:\n  cutoff: {}\n  level: {type: float, default: -8, range: \"[-10, 10]\"}\ninputs:\n  cat: {file: catalogue/islands.csv}\naction:\n  builtin: stamp\noutputs:\n  o: \"{source}/a.txt\"\n";
const GOOD_B: &str = "rule: b\nunit: field\ninputs:\n  all: {from: a, output: o}\naction:\n  builtin: stamp\noutputs:\n  t: \"b.txt\"\n";

/// A rule naming a real builtin (rmclean), as its contract wants it.
const RMCLEAN: &str = "rule: c\nunit: component\nparams: [cutoff, max_iter, gain, window]\ninputs:\n  synth: {file: \"{component}.json\"}\n  fdf: {file: \"{component}.fdf\"}\n  rmsf: {file: \"{component}.rmsf\"}\naction: {builtin: rmclean}\noutputs:\n  json: \"{source}/{component}.json\"\n  fdf: \"{source}/{component}.clean\"\n";

fn load(files: &[(&str, &str)]) -> Result<RuleSet, String> {
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, t)| (PathBuf::from(n), t.to_string()))
        .collect();
    RuleSet::from_sources(&sources, &registry()).map_err(|e| e.to_string())
}

#[test]
fn the_good_rules_load() {
    load(&[("c.yaml", RMCLEAN)]).unwrap();
    let rs = load(&[("b.yaml", GOOD_B), ("a.yaml", GOOD_A)]).unwrap();
    // Dependency order, whatever the file order.
    assert_eq!(
        rs.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

/// (what is wrong, file names and texts, fragments the message must contain)
type Case = (&'static str, Vec<(&'static str, String)>, Vec<&'static str>);

#[test]
fn bad_rule_files_get_clear_errors() {
    // (what is wrong, file text(s), fragments the message must contain)
    let cases: Vec<Case> = vec![
        (
            "YAML syntax",
            vec![("a.yaml", "rule: a\nunit: [source\n".into())],
            vec!["a.yaml:", "invalid rule file"],
        ),
        (
            "unknown key, typo",
            vec![("a.yaml", GOOD_A.replace("outputs:", "ouputs:"))],
            vec![
                "a.yaml:",
                "unknown field `ouputs`",
                "did you mean 'outputs'",
            ],
        ),
        (
            "missing required key",
            vec![("a.yaml", GOOD_A.replace("unit: source\n", ""))],
            vec!["a.yaml", "missing field `unit`"],
        ),
        (
            "wrong unit",
            vec![("a.yaml", GOOD_A.replace("unit: source", "unit: island"))],
            vec!["a.yaml:2", "unknown variant `island`"],
        ),
        (
            "wrong type of default",
            vec![("a.yaml", GOOD_A.replace("default: -8", "default: lots"))],
            vec!["a.yaml:5", "parameter 'level'", "expected float"],
        ),
        (
            "unknown builtin",
            vec![("a.yaml", GOOD_A.replace("builtin: stamp", "builtin: stmap"))],
            vec![
                "a.yaml:9",
                "unknown builtin 'stmap'",
                "did you mean 'stamp'",
            ],
        ),
        (
            "dangling rule reference",
            vec![
                ("a.yaml", GOOD_A.into()),
                ("b.yaml", GOOD_B.replace("from: a", "from: aa")),
            ],
            vec![
                "b.yaml:4",
                "rule 'aa', which does not exist",
                "did you mean 'a'",
            ],
        ),
        (
            "dangling output reference",
            vec![
                ("a.yaml", GOOD_A.into()),
                ("b.yaml", GOOD_B.replace("output: o", "output: out")),
            ],
            vec!["b.yaml:4", "has no such output", "(it has: o)"],
        ),
        (
            "pinning a variable the upstream rule does not have",
            vec![
                ("a.yaml", GOOD_A.into()),
                (
                    "b.yaml",
                    GOOD_B.replace("output: o}", "output: o, with: {stokes: i}}"),
                ),
            ],
            vec![
                "b.yaml:4",
                "'with' pins 'stokes', which is not a foreach variable of rule 'a' (it has none)",
            ],
        ),
        (
            "pinning a value the upstream rule does not run for",
            vec![
                (
                    "a.yaml",
                    GOOD_A
                        .replace(
                            "unit: source\n",
                            "unit: source\nforeach: {stokes: [i, q]}\n",
                        )
                        .replace("{source}/a.txt", "{source}/a.{stokes}.txt"),
                ),
                (
                    "b.yaml",
                    GOOD_B.replace("output: o}", "output: o, with: {stokes: v}}"),
                ),
            ],
            vec![
                "b.yaml:4",
                "with.stokes is 'v', but rule 'a' runs for stokes in [i, q]",
            ],
        ),
        (
            "cycle",
            vec![
                (
                    "a.yaml",
                    GOOD_A.replace(
                        "  cat: {file: catalogue/islands.csv}",
                        "  x: {from: b, output: t}",
                    ),
                ),
                ("b.yaml", GOOD_B.into()),
            ],
            vec!["cycle", "a, b"],
        ),
        (
            "unknown placeholder",
            vec![("a.yaml", GOOD_A.replace("{source}/a.txt", "{sorce}/a.txt"))],
            vec![
                "a.yaml:11",
                "unknown placeholder '{sorce}'",
                "did you mean 'source'",
            ],
        ),
        (
            "output shared by all units",
            vec![("a.yaml", GOOD_A.replace("{source}/a.txt", "a.txt"))],
            vec!["a.yaml:11", "does not contain {source}"],
        ),
        (
            "output escaping the field",
            vec![(
                "a.yaml",
                GOOD_A.replace("{source}/a.txt", "../{source}.txt"),
            )],
            vec!["a.yaml:11", "must stay inside the field directory"],
        ),
        (
            "duplicate rule name",
            vec![("a.yaml", GOOD_A.into()), ("c.yaml", GOOD_A.into())],
            vec!["c.yaml:1", "already defined in a.yaml"],
        ),
        (
            "conflicting parameter declarations",
            vec![
                ("a.yaml", GOOD_A.into()),
                (
                    "b.yaml",
                    GOOD_B.replace(
                        "inputs:",
                        "params:\n  level: {type: int, default: 3}\ninputs:",
                    ),
                ),
            ],
            vec!["b.yaml:4", "parameter 'level' is declared differently"],
        ),
        (
            "no action",
            vec![("a.yaml", GOOD_A.replace("  builtin: stamp\n", "  {}\n"))],
            vec!["a.yaml", "exactly one of 'builtin: NAME' or 'command"],
        ),
        (
            "when on an undeclared parameter",
            vec![(
                "a.yaml",
                GOOD_A.replace("inputs:", "when:\n  dimensoin: 1d\ninputs:"),
            )],
            vec!["a.yaml:7", "does not declare", "dimensoin"],
        ),
        (
            "a known parameter declared again",
            vec![(
                "a.yaml",
                GOOD_A.replace("cutoff: {}", "cutoff: {type: float, default: -3}"),
            )],
            vec![
                "a.yaml:4",
                "parameter 'cutoff' is defined by arrakis",
                "list it by name only",
            ],
        ),
        (
            "a misspelt known parameter",
            vec![("a.yaml", GOOD_A.replace("cutoff: {}", "cutof: {}"))],
            vec![
                "a.yaml:4",
                "unknown parameter 'cutof'",
                "did you mean 'cutoff'",
            ],
        ),
        (
            "a range that is not an interval",
            vec![("a.yaml", GOOD_A.replace("[-10, 10]", "-10..10"))],
            vec!["a.yaml:5", "range '-10..10' is not an interval"],
        ),
        (
            "a default outside its range",
            vec![("a.yaml", GOOD_A.replace("default: -8", "default: -80"))],
            vec!["a.yaml:5", "outside the allowed range [-10, 10]"],
        ),
        (
            "builtin contract: a parameter missing",
            vec![("c.yaml", RMCLEAN.replace("cutoff, ", ""))],
            vec![
                "c.yaml:3",
                "builtin 'rmclean' reads parameter 'cutoff'",
                "add it to params",
            ],
        ),
        (
            "builtin contract: a parameter it does not read",
            vec![("c.yaml", RMCLEAN.replace("window]", "window, pad]"))],
            vec![
                "c.yaml:3",
                "builtin 'rmclean' does not read parameter 'pad'",
                "reads: cutoff, max_iter, gain, window",
            ],
        ),
        (
            "builtin contract: a misspelt input slot",
            vec![("c.yaml", RMCLEAN.replace("  fdf: {file", "  fdff: {file"))],
            vec![
                "c.yaml:6",
                "builtin 'rmclean' has no input 'fdff'",
                "did you mean 'fdf'",
            ],
        ),
        (
            "builtin contract: an input slot missing",
            vec![(
                "c.yaml",
                RMCLEAN.replace("  rmsf: {file: \"{component}.rmsf\"}\n", ""),
            )],
            vec!["c.yaml:4", "builtin 'rmclean' needs input 'rmsf'"],
        ),
        (
            "builtin contract: a misspelt output",
            vec![("c.yaml", RMCLEAN.replace("  json:", "  jsn:"))],
            vec![
                "c.yaml:10",
                "builtin 'rmclean' writes no output 'jsn'",
                "did you mean 'json'",
            ],
        ),
        (
            "builtin contract: an output missing",
            vec![(
                "c.yaml",
                RMCLEAN.replace("  fdf: \"{source}/{component}.clean\"\n", ""),
            )],
            vec!["c.yaml:9", "builtin 'rmclean' writes output 'fdf'"],
        ),
    ];
    for (what, files, want) in cases {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let err = match load(&files) {
            Ok(_) => panic!("{what}: loaded without error"),
            Err(e) => e,
        };
        for w in want {
            assert!(err.contains(w), "{what}: error lacks '{w}':\n{err}");
        }
    }
}

#[test]
fn bad_configs_get_clear_errors_and_arrakis_configs_work() {
    let rules = load(&[("a.yaml", GOOD_A), ("b.yaml", GOOD_B)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // An Arrakis pipeline config as users have them: MongoDB keys, hyphenated keys, nulls.
    let arrakis_cfg = write(
        "arrakis.yaml",
        "hosted-wsclean: docker://alecthomson/wsclean:latest\nhost: 10.0.0.1\nusername: admin\npassword:\ndatabase: false\nskip_imager: true\ncutoff: -5\nweight_type:\nniter: 500_000\n",
    );
    let p = config::resolve(&rules.param_decls(), &[arrakis_cfg], &[]).unwrap();
    assert_eq!(p.get("cutoff").unwrap().as_f64(), Some(-5.0));
    // Arrakis's stage switches are parameters the engine reads (the stage is skipped).
    assert_eq!(p.get("skip_imager").and_then(|v| v.as_bool()), Some(true));
    let unused: Vec<&str> = p.unused.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "hosted_wsclean",
        "host",
        "username",
        "password",
        "database",
        "weight_type",
        "niter",
    ] {
        assert!(
            unused.contains(&k),
            "{k} should be listed as unused: {unused:?}"
        );
    }
    assert!(p
        .unused
        .iter()
        .any(|(k, why)| k == "host" && why.contains("MongoDB")));

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            "cutof: -3\n".into(),
            vec![
                "bad.yaml:1",
                "unknown parameter 'cutof'",
                "did you mean 'cutoff'",
            ],
        ),
        (
            "wrong type",
            "pad: 1\ncutoff: deep\n".into(),
            vec!["bad.yaml:2", "cutoff", "expected float"],
        ),
        (
            "a cluster config",
            "# petrichor\ncluster_class: \"dask_jobqueue.SLURMCluster\"\ncluster_kwargs:\n  cores: 16\n".into(),
            vec!["bad.yaml:2", "cluster_class", "--dask-config"],
        ),
        (
            "not a mapping",
            "- cutoff\n".into(),
            vec!["bad.yaml:1", "must be a mapping"],
        ),
        (
            "YAML syntax",
            "cutoff: [1,\n".into(),
            vec!["bad.yaml", "not valid YAML"],
        ),
    ];
    for (what, text, want) in cases {
        let f = write("bad.yaml", &text);
        let err = config::resolve(&rules.param_decls(), &[f], &[])
            .unwrap_err()
            .to_string();
        for w in want {
            assert!(err.contains(w), "{what}: error lacks '{w}':\n{err}");
        }
    }
    let err = config::resolve(&rules.param_decls(), &[], &["cutof=1".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set cutof") && err.contains("did you mean 'cutoff'"),
        "{err}"
    );
    // A stage's name before the parameter's (RM-CLEAN's cutoff is `cutoff`); nothing for a name
    // close to none, but the way to list them.
    for (typed, hint) in [
        ("rmclean_cutoff", Some("cutoff")),
        ("rm_clean_cutof", Some("cutoff")),
        ("zzz_qq", None),
    ] {
        let err = config::resolve(&rules.param_decls(), &[], &[format!("{typed}=1")])
            .unwrap_err()
            .to_string();
        match hint {
            Some(h) => assert!(err.contains(&format!("did you mean '{h}'")), "{err}"),
            None => assert!(!err.contains("did you mean"), "{err}"),
        }
        assert!(err.contains("arrakis params"), "{err}");
    }
    // The same in a config file, naming the file and line.
    let f = write("typo.yaml", "rmclean_cutoff: -5\n");
    let err = config::resolve(&rules.param_decls(), &[f], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("typo.yaml:1") && err.contains("did you mean 'cutoff'?"),
        "{err}"
    );
    let err = config::resolve(&rules.param_decls(), &[], &["cutoff".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let err = config::resolve(&rules.param_decls(), &[], &["cutoff=abc".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected float"), "{err}");
    // Values outside what a parameter declares, and an empty --set.
    for (set, want) in [
        ("level=11", "outside the allowed range [-10, 10]"),
        ("cutoff=nan", "not a finite number"),
        ("cutoff=.inf", "not a finite number"),
        ("cutoff=", "no value given"),
        ("level= ", "no value given"),
    ] {
        let err = config::resolve(&rules.param_decls(), &[], &[set.into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("--set {}", set.split('=').next().unwrap()))
                && err.contains(want),
            "{set}: {err}"
        );
    }
    let f = write("range.yaml", "level: 20\n");
    let err = config::resolve(&rules.param_decls(), &[f], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("range.yaml:1") && err.contains("[-10, 10]"),
        "{err}"
    );
}

#[test]
fn bad_fields_and_expansion_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let cache = data.join("cache");
    make_field(data, "B", 1, 3, 0);
    let run = |rules: &std::path::Path| {
        let out = arrakis(&cache)
            .args(["build", "B", "--datadir"])
            .arg(data)
            .arg("--rules")
            .arg(rules)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    // Two rules writing the same file.
    let rules = data.join("dup");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("a.yaml"),
        "rule: a\nunit: source\naction: {builtin: stamp}\noutputs:\n  o: \"{source}.txt\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("b.yaml"),
        "rule: b\nunit: source\naction: {builtin: stamp}\noutputs:\n  o: \"{source}.txt\"\n",
    )
    .unwrap();
    let (code, t) = run(&rules);
    assert_eq!(code, Some(2), "{t}");
    assert!(
        t.contains("b.yaml") && t.contains("which target a/J0000 also writes"),
        "{t}"
    );

    // A catalogue with a missing column, a bad number, a duplicate and an unsafe name.
    let good = engine_rules();
    let isl = data.join("B/catalogue/islands.csv");
    for (text, want) in [
        (
            "Source_ID,RA\nJ1,1\n",
            vec!["islands.csv:1", "missing column 'Dec'"],
        ),
        (
            "Source_ID,RA,Dec\nJ1,1,x\n",
            vec!["islands.csv:2", "'x', which is not a finite number"],
        ),
        (
            "Source_ID,RA,Dec\nJ1,1,2\nJ1,1,2\n",
            vec![
                "islands.csv:3",
                "duplicate Source_ID 'J1' (first on line 2)",
            ],
        ),
    ] {
        std::fs::write(&isl, text).unwrap();
        let (code, t) = run(&good);
        assert_eq!(code, Some(2), "{t}");
        for w in want {
            assert!(t.contains(w), "error lacks '{w}': {t}");
        }
    }
    // An unusable name refuses its row only: the other island is built, the build fails.
    std::fs::write(&isl, "Source_ID,RA,Dec\n../etc,180,-30\nJ0000,180,-30\n").unwrap();
    std::fs::write(
        data.join("B/catalogue/components.csv"),
        "Gaussian_ID,Source_ID,RA,Dec\nJ0000_c1,J0000,180,-30\nbad_c1,../etc,180,-30\n",
    )
    .unwrap();
    let (code, t) = run(&good);
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("islands.csv:2")
            && t.contains("path separator")
            && t.contains("1 catalogue row(s) refused"),
        "{t}"
    );
    assert!(!t.contains("failed 1"), "{t}");
    // No field at all.
    let out = arrakis(&cache)
        .args(["build", "NOPE", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("field directory") && text(&out).contains("NOPE"),
        "{}",
        text(&out)
    );
    // An unknown stage for --until.
    make_field(data, "C", 1, 2, 0);
    let out = arrakis(&cache)
        .args(["build", "C", "--until", "rmclaen", "--datadir"])
        .arg(data)
        .arg("--rules")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("unknown stage 'rmclaen'; did you mean 'rmclean'"),
        "{}",
        text(&out)
    );
}

/// The pipeline's own rule files, one edited: the binary refuses the set before reading anything,
/// with exit code 2, the file and line, and the nearest name.
#[test]
fn a_rule_that_disagrees_with_its_builtin_stops_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, rules.join(p.file_name().unwrap())).unwrap();
        }
    }
    let edit = |file: &str, from: &str, to: &str| {
        let p = rules.join(file);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{file} has no '{from}'");
        std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
        move || std::fs::write(&p, t).unwrap()
    };
    for (file, from, to, want) in [
        ("rmclean.yaml", "cutoff,", "cutof,", "did you mean 'cutoff'"),
        (
            "rmclean.yaml",
            "  fdf: {from",
            "  fdff: {from",
            "has no input 'fdff'",
        ),
        (
            "linmos.yaml",
            "  weight: \"",
            "  weights: \"",
            "writes no output 'weights'",
        ),
        // An input's when: {PARAM: VALUE} is checked against the parameter's choices and
        // declaration.
        (
            "frion.yaml",
            "when: {ion_source: ionex}}",
            "when: {ion_source: ionx}}",
            "is not one of file, ionex, frion_predict",
        ),
        (
            "frion.yaml",
            "when: {ion_source: ionex}}",
            "when: {ion_sourc: ionex}}",
            "did you mean 'ion_source'",
        ),
    ] {
        let restore = edit(file, from, to);
        let out = arrakis(&tmp.path().join("cache"))
            .args(["build", "NOFIELD", "--rules"])
            .arg(&rules)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(&format!("{file}:")) && t.contains(want), "{t}");
        restore();
    }
}
