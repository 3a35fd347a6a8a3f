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
