//! Source hashing within one build: a file that many targets read at the same moment is read
//! once, and the next build answers from the stat cache without reading it.

use crate::common::*;
use arrakis::cache::Cache;
use arrakis::exec::{Engine, Hashed};
use arrakis::rules::expand::expand;
use arrakis::rules::RuleSet;
use arrakis::stages::{builtin_version, registry};
use arrakis::units::{Needs, Units};

#[test]
fn a_source_asked_for_by_many_threads_at_once_is_hashed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let dir = make_field(data, "H1", 1, 2, 0);
    // Big enough that every thread asks before the first one has finished hashing; written in
    // the past, so its signature is not too recent to be kept in the stat cache.
    let size = 64u64 << 20;
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![7u8; size as usize]).unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_modified(past)
        .unwrap();

    let rules = RuleSet::load_dir(&engine_rules(), &registry()).unwrap();
    let params = arrakis::config::resolve(&rules.param_decls(), &[], &[]).unwrap();
    let units = Units::load(&dir, 1.0, None, &Needs::of_rules(&rules)).unwrap();
    let graph = expand(&rules, &params, &units, &dir, &builtin_version).unwrap();
    let cache = Cache::open(&data.join("cache"), false).unwrap();
    let want = arrakis::hash::hash_file(&big).unwrap();

    let ask_at_once = |engine: &Engine| {
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let asks: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        engine.source_digest("big.bin").unwrap()
                    })
                })
                .collect();
            for a in asks {
                assert_eq!(a.join().unwrap(), Some(want));
            }
        });
    };
    let engine = Engine::new(&graph, &rules, &cache);
    ask_at_once(&engine);
    assert_eq!(
        engine.hashed(),
        Hashed {
            files: 1,
            bytes: size
        }
    );
    // The next build: the stat cache answers.
    let engine = Engine::new(&graph, &rules, &cache);
    ask_at_once(&engine);
    assert_eq!(engine.hashed(), Hashed::default());
}

/// A first build reads each beam cube once: the cutout's evaluation leaves the cube unhashed
/// (the target runs whatever its key), the cutout's own read of the cube leaves its digest,
/// and the key made after the run is the one a separate hash gives.
#[test]
fn a_first_builds_cubes_are_hashed_by_the_cutouts_own_read() {
    use arrakis::exec::UpInput;
    use arrakis::hash::{hash_file, witness, Digest};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let opts = arrakis::simulate::SimOptions {
        beams: 1,
        sources: 3,
        npix: 64,
        nchan: 72,
        ..arrakis::simulate::SimOptions::small("W1", 3)
    };
    let dir = arrakis::simulate::simulate(data, &opts).unwrap();
    let spec = arrakis::session::FieldSpec {
        field: "W1".into(),
        datadir: data.to_path_buf(),
        rules: None,
        configs: Vec::new(),
        sets: Vec::new(),
        limit: None,
    };
    let setup = arrakis::session::load_setup(&spec).unwrap();
    let (graph, rules) = (&setup.graph, &setup.rules);
    let cache = Cache::open(&data.join("cache"), false).unwrap();
    let ti = (0..graph.targets.len())
        .find(|&i| graph.stage_of(i) == "cutout")
        .unwrap();
    let up = |_: u32, _: u32| UpInput::Known(Digest([1; 32]));

    let engine = Engine::new(graph, rules, &cache);
    let ev = engine.evaluate_with(ti, &up, true).unwrap();
    assert_eq!(ev.key, None, "no key before the run");
    assert_eq!(ev.pending.len(), 1, "the cube waits: {:?}", ev.pending);
    let cube = ev.pending[0].path().to_path_buf();
    assert!(cube.to_string_lossy().ends_with(".fits") && witness::wanted(&cube));
    let size = std::fs::metadata(&cube).unwrap().len();
    assert!(size >= 1 << 20);
    assert!(
        engine.hashed().bytes < 64 << 10,
        "only the small sources (catalogues) are hashed first: {:?}",
        engine.hashed()
    );
    // The cutout's read (the action's reader) leaves the digest.
    drop(arrakis::fits::PlaneReader::open(&cube).unwrap());
    assert!(!witness::wanted(&cube), "left by the read");
    let after = engine.evaluate(ti, &up).unwrap();
    let key = after.key.expect("every input known after the run");
    let recorded = after
        .inputs
        .iter()
        .find(|i| dir.join(&i.path) == cube)
        .unwrap();
    assert_eq!(recorded.digest, hash_file(&cube).unwrap());
    // A build that hashes first (no deferring) makes the same key.
    let fresh = Cache::open(&data.join("cache2"), false).unwrap();
    let other = Engine::new(graph, rules, &fresh);
    assert_eq!(other.evaluate_with(ti, &up, false).unwrap().key, Some(key));
}
