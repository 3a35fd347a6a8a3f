//! Property test of the engine's invariants over random DAGs and random edits: the set of targets
//! that run equals what an independent from-scratch model says is stale, and the outputs equal a
//! clean build's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrakis::cache::Cache;
use arrakis::exec::local::{self, BuildOptions, Mode, Status};
use arrakis::exec::Engine;
use arrakis::rules::expand::expand;
use arrakis::rules::RuleSet;
use arrakis::stages::{builtin_version, registry};
use arrakis::units::{Needs, Units};
use proptest::prelude::*;

const FIELD: &str = "PROP";
const SOURCES: usize = 3;

/// One random rule: field-level, reading some source files and some earlier rules' outputs.
#[derive(Clone, Debug)]
struct RuleDef {
    sources: Vec<usize>,
    ups: Vec<usize>,
    /// true: output is the byte count of the inputs (so same-length edits cut off early).
    len_only: bool,
}

#[derive(Clone, Debug)]
enum Edit {
    ChangeSource(usize, Vec<u8>),
    RewriteSourceSame(usize),
    SetParam(usize, i64),
    DeleteOutput(usize),
    ModifyOutput(usize, Vec<u8>),
    TouchOutput(usize),
    /// Same length, other bytes: only a content check can see it.
    FlipOutputByte(usize),
    FlipSourceByte(usize),
}

fn rules_strategy() -> impl Strategy<Value = Vec<RuleDef>> {
    (2usize..7).prop_flat_map(|n| {
        let per_rule: Vec<_> = (0..n)
            .map(|k| {
                (
                    proptest::sample::subsequence((0..SOURCES).collect::<Vec<_>>(), 0..=2),
                    proptest::sample::subsequence((0..k).collect::<Vec<_>>(), 0..=k.min(3)),
                    any::<bool>(),
                )
                    .prop_map(|(sources, ups, len_only)| RuleDef {
                        sources,
                        ups,
                        len_only,
                    })
            })
            .collect();
        per_rule
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 0..6)
}

fn edit_strategy(n: usize) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..SOURCES, bytes()).prop_map(|(i, b)| Edit::ChangeSource(i, b)),
        (0..SOURCES).prop_map(Edit::RewriteSourceSame),
        (0..n, 0i64..3).prop_map(|(k, v)| Edit::SetParam(k, v)),
        (0..n).prop_map(Edit::DeleteOutput),
        (0..n, bytes()).prop_map(|(k, b)| Edit::ModifyOutput(k, b)),
        (0..n).prop_map(Edit::TouchOutput),
        (0..n).prop_map(Edit::FlipOutputByte),
        (0..SOURCES).prop_map(Edit::FlipSourceByte),
    ]
}

fn rule_yaml(k: usize, r: &RuleDef) -> String {
    let mut inputs = String::new();
    let mut args = String::new();
    for s in &r.sources {
        inputs.push_str(&format!("  s{s}: {{file: \"src{s}.txt\"}}\n"));
        args.push_str(&format!(", \"{{in:s{s}}}\""));
    }
    for u in &r.ups {
        inputs.push_str(&format!("  u{u}: {{from: r{u}, output: o}}\n"));
        args.push_str(&format!(", \"{{in:u{u}}}\""));
    }
    let body = if r.len_only {
        "cat \"$@\" | wc -c"
    } else {
        "cat \"$@\""
    };
    let inputs_block = if inputs.is_empty() {
        String::new()
    } else {
        format!("inputs:\n{inputs}")
    };
    format!(
        "rule: r{k}\nunit: field\nparams:\n  p{k}: {{type: int, default: 0}}\n{inputs_block}action:\n  command: [sh, -c, 'o=$1; p=$2; shift 2; {{{{ echo \"p=$p\"; {body}; }}}} > \"$o\"', sh, \"{{out:o}}\", \"{{param:p{k}}}\"{args}]\noutputs:\n  o: \"out{k}.txt\"\n"
    )
}

/// The model: what each rule's output must be, computed without the engine.
fn model_output(r: &RuleDef, param: i64, inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("p={param}\n").into_bytes();
    let cat: Vec<u8> = inputs.concat();
    if r.len_only {
        out.extend(format!("{}\n", cat.len()).into_bytes());
    } else {
        out.extend(cat);
    }
    out
}

/// (parameter, input contents, bytes written) of a rule's last run.
type LastRun = (i64, Vec<Vec<u8>>, Vec<u8>);

struct World {
    defs: Vec<RuleDef>,
    rules: RuleSet,
    datadir: PathBuf,
    cache: PathBuf,
    params: Vec<i64>,
    /// Per rule: (param, input contents) of its last successful run, and the bytes it wrote.
    last: Vec<Option<LastRun>>,
    /// Builds so far: every other one reads the records in bulk and checks outputs ahead, as
    /// `arrakis build` does; the others read each record on its own and stat as they go.
    builds: usize,
}

impl World {
    fn field_dir(&self) -> PathBuf {
        self.datadir.join(FIELD)
    }

    fn inputs_now(&self, k: usize) -> Vec<Vec<u8>> {
        let d = &self.defs[k];
        let mut v = Vec::new();
        for s in &d.sources {
            v.push(std::fs::read(self.field_dir().join(format!("src{s}.txt"))).unwrap());
        }
        for u in &d.ups {
            v.push(std::fs::read(self.field_dir().join(format!("out{u}.txt"))).unwrap());
        }
        v
    }

    /// The oracle's prediction, applied to a copy of the world's files it keeps in memory.
    fn predict(&self) -> (BTreeSet<String>, Vec<Vec<u8>>) {
        let mut files: Vec<Option<Vec<u8>>> = (0..self.defs.len())
            .map(|k| std::fs::read(self.field_dir().join(format!("out{k}.txt"))).ok())
            .collect();
        let mut ran = BTreeSet::new();
        for (k, d) in self.defs.iter().enumerate() {
            let mut inputs = Vec::new();
            for s in &d.sources {
                inputs.push(std::fs::read(self.field_dir().join(format!("src{s}.txt"))).unwrap());
            }
            for u in &d.ups {
                inputs.push(files[*u].clone().unwrap());
            }
            let stale = match &self.last[k] {
                None => true,
                Some((p, ins, wrote)) => {
                    *p != self.params[k] || *ins != inputs || files[k].as_ref() != Some(wrote)
                }
            };
            if stale {
                ran.insert(format!("r{k}/{FIELD}"));
                files[k] = Some(model_output(d, self.params[k], &inputs));
            }
        }
        (ran, files.into_iter().map(|f| f.unwrap()).collect())
    }

    fn build(&mut self) -> BTreeSet<String> {
        let sets: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(k, p)| format!("p{k}={p}"))
            .collect();
        let params = arrakis::config::resolve(&self.rules.param_decls(), &[], &sets).unwrap();
        let units =
            Units::load(&self.field_dir(), 1.0, None, &Needs::of_rules(&self.rules)).unwrap();
        let graph = expand(
            &self.rules,
            &params,
            &units,
            &self.field_dir(),
            &builtin_version,
        )
        .unwrap();
        // Wait for the lock: a process another test forks at this moment holds a copy of the
        // previous build's lock descriptor until it execs.
        let cache = Cache::open(&self.cache, true).unwrap();
        let mut engine = Engine::new(&graph, &self.rules, &cache);
        if self.builds % 2 == 1 {
            engine = engine.with_states(cache.scan_states(FIELD).unwrap());
            engine.check_outputs_ahead(|_| true, 2);
        }
        self.builds += 1;
        let modes = vec![Mode::Run; graph.targets.len()];
        let opts = BuildOptions {
            jobs: 2,
            keep_going: true,
            dry_run: false,
            quiet: true,
            live: None,
        };
        let res = local::build(&engine, &modes, &opts);
        let mut ran = BTreeSet::new();
        for (i, o) in res.outcomes.iter().enumerate() {
            let o = o.as_ref().unwrap();
            assert_ne!(
                o.status,
                Status::Failed,
                "{}: {:?}",
                graph.targets[i].id,
                o.error
            );
            if o.status == Status::Ran {
                ran.insert(graph.targets[i].id.clone());
            }
        }
        // Remember what each rule was built from, as the model defines it.
        for k in 0..self.defs.len() {
            let ins = self.inputs_now(k);
            let wrote = std::fs::read(self.field_dir().join(format!("out{k}.txt"))).unwrap();
            if ran.contains(&format!("r{k}/{FIELD}")) {
                self.last[k] = Some((self.params[k], ins, wrote));
            }
        }
        ran
    }

    fn apply(&mut self, e: &Edit) {
        let fd = self.field_dir();
        match e {
            Edit::ChangeSource(i, b) => std::fs::write(fd.join(format!("src{i}.txt")), b).unwrap(),
            Edit::RewriteSourceSame(i) => {
                let p = fd.join(format!("src{i}.txt"));
                let b = std::fs::read(&p).unwrap();
                std::fs::remove_file(&p).unwrap();
                std::fs::write(&p, b).unwrap();
            }
            Edit::SetParam(k, v) => self.params[*k] = *v,
            Edit::DeleteOutput(k) => {
                let _ = std::fs::remove_file(fd.join(format!("out{k}.txt")));
            }
            Edit::ModifyOutput(k, b) => std::fs::write(fd.join(format!("out{k}.txt")), b).unwrap(),
            Edit::FlipOutputByte(k) => flip(&fd.join(format!("out{k}.txt"))),
            Edit::FlipSourceByte(i) => flip(&fd.join(format!("src{i}.txt"))),
            Edit::TouchOutput(k) => {
                // A deletion earlier in the same round leaves nothing to touch.
                let p = fd.join(format!("out{k}.txt"));
                if let Ok(b) = std::fs::read(&p) {
                    std::fs::write(&p, b).unwrap();
                }
            }
        }
    }
}

fn flip(p: &Path) {
    if let Ok(mut b) = std::fs::read(p) {
        if let Some(x) = b.first_mut() {
            *x ^= 0x01;
        }
        std::fs::write(p, b).unwrap();
    }
}

fn setup(defs: &[RuleDef], dir: &Path) -> World {
    let datadir = dir.join("data");
    let fd = datadir.join(FIELD);
    std::fs::create_dir_all(&fd).unwrap();
    std::fs::write(fd.join("field.yaml"), format!("field: {FIELD}\n")).unwrap();
    for s in 0..SOURCES {
        std::fs::write(fd.join(format!("src{s}.txt")), format!("source {s}\n")).unwrap();
    }
    let sources: Vec<(PathBuf, String)> = defs
        .iter()
        .enumerate()
        .map(|(k, r)| (PathBuf::from(format!("r{k}.yaml")), rule_yaml(k, r)))
        .collect();
    let rules =
        RuleSet::from_sources(&sources, &registry()).unwrap_or_else(|e| panic!("{e}\n{sources:?}"));
    World {
        defs: defs.to_vec(),
        rules,
        datadir,
        cache: dir.join("cache"),
        params: vec![0; defs.len()],
        last: vec![None; defs.len()],
        builds: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn runs_exactly_what_the_model_says_is_stale(
        (defs, edits) in rules_strategy().prop_flat_map(|d| {
            let n = d.len();
            (Just(d), proptest::collection::vec(proptest::collection::vec(edit_strategy(n), 1..3), 1..5))
        })
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = setup(&defs, tmp.path());
        let (expect, _) = w.predict();
        let ran = w.build();
        prop_assert_eq!(&ran, &expect, "first build");
        for round in &edits {
            for e in round {
                w.apply(e);
            }
            let (expect, files) = w.predict();
            let ran = w.build();
            prop_assert_eq!(&ran, &expect, "after edits {:?}", round);
            for (k, want) in files.iter().enumerate() {
                let got = std::fs::read(w.field_dir().join(format!("out{k}.txt"))).unwrap();
                prop_assert_eq!(&got, want, "output of r{}", k);
            }
        }
        // The final outputs equal a clean build's from the same sources and parameters.
        let clean = tempfile::tempdir().unwrap();
        let mut c = setup(&defs, clean.path());
        for s in 0..SOURCES {
            std::fs::copy(w.field_dir().join(format!("src{s}.txt")), c.field_dir().join(format!("src{s}.txt"))).unwrap();
        }
        c.params = w.params.clone();
        c.build();
        for k in 0..defs.len() {
            let a = std::fs::read(w.field_dir().join(format!("out{k}.txt"))).unwrap();
            let b = std::fs::read(c.field_dir().join(format!("out{k}.txt"))).unwrap();
            prop_assert_eq!(a, b, "r{} differs from a clean build", k);
        }
    }
}
