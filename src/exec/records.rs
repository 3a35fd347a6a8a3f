//! The records of a field read in bulk at the start of a build ([`States`]), the outputs checked
//! ahead of the build loop ([`Ahead`], [`Engine::check_outputs_ahead`]), and the records as they
//! stand after the build ([`FinalRecords`], for the snapshot).
//!
//! Must never: trust an ahead-checked output for any record but the one it was checked against.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{interrupted, Engine};
use crate::cache::{RunStatus, TargetState};
use crate::hash::StatSig;

/// [`States::slot`] of a target without a record.
pub(super) const NO_RECORD: u32 = u32::MAX;

/// Records read in bulk at the start of a build, found by target index.
pub struct States {
    /// For each target, the index of its record in `records`, or [`NO_RECORD`].
    slot: Vec<u32>,
    records: Vec<TargetState>,
}

impl States {
    /// The record of target `ti`, if it has one.
    pub fn get(&self, ti: usize) -> Option<&TargetState> {
        match self.slot.get(ti) {
            Some(&i) if i != NO_RECORD => self.records.get(i as usize),
            _ => None,
        }
    }
}

/// Every target's record after a build: written by it, or as read at its start.
pub struct FinalRecords<'e> {
    written: std::sync::MutexGuard<'e, rustc_hash::FxHashMap<u32, Option<Box<[StatSig]>>>>,
    states: &'e States,
}

/// The output signatures of one record.
pub enum Sigs<'a> {
    /// From a record this build wrote.
    Written(&'a [StatSig]),
    /// From a record read at the start of the build.
    Read(&'a TargetState),
}

impl Sigs<'_> {
    /// Number of outputs.
    pub fn len(&self) -> usize {
        match self {
            Sigs::Written(s) => s.len(),
            Sigs::Read(r) => r.outputs.len(),
        }
    }
    /// Whether the record has no outputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Signature of output `k`.
    pub fn get(&self, k: usize) -> Option<StatSig> {
        match self {
            Sigs::Written(s) => s.get(k).copied(),
            Sigs::Read(r) => r.outputs.get(k).map(|o| o.sig),
        }
    }
}

impl FinalRecords<'_> {
    /// The output signatures of target `ti`'s record; `None` when it has no record or the
    /// record is a failure.
    pub fn sigs(&self, ti: usize) -> Option<Sigs<'_>> {
        match self.written.get(&(ti as u32)) {
            Some(w) => w.as_deref().map(Sigs::Written),
            None => self
                .states
                .get(ti)
                .filter(|r| r.status == RunStatus::Ok)
                .map(Sigs::Read),
        }
    }
}

/// Which recorded outputs [`Engine::check_outputs_ahead`] found with their recorded signature:
/// one bit per output of the graph (output `k` of target `t` is bit `start[t] + k`).
pub(super) struct Ahead {
    start: Vec<u32>,
    bits: Vec<AtomicU64>,
}

impl Ahead {
    pub(super) fn unchanged(&self, ti: usize, k: usize) -> bool {
        let g = self.start[ti] as usize + k;
        self.bits
            .get(g / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (g % 64)) != 0)
    }
}

impl<'a> Engine<'a> {
    /// The records as they stand after this build, for the snapshot (call once the build is
    /// over: it holds the lock on what the build wrote).
    pub fn final_records(&self) -> Option<FinalRecords<'_>> {
        Some(FinalRecords {
            written: self.written.lock().ok()?,
            states: self.states.as_ref()?,
        })
    }

    /// The source files this build stat'ed, each with its signature from before it was read;
    /// `None` when a directory input was read (its files are not listed).
    pub fn sources_seen(&self) -> Option<Vec<(PathBuf, Option<StatSig>)>> {
        if self.read_directory.load(Ordering::Relaxed) {
            return None;
        }
        self.sources_seen.lock().ok().map(|v| v.clone())
    }

    /// Use records read in bulk ([`Cache::scan_states`]) instead of one lookup per target. Each
    /// target's record is read before it runs and written only after, so the snapshot is exact.
    /// Each target finds its record by binary search on the ids (in parallel); the ids are then
    /// dropped and the records kept as read, with one index per target (no map by id, no second
    /// copy of the records).
    pub fn with_states(mut self, scanned: crate::cache::ScannedStates) -> Engine<'a> {
        use rayon::prelude::*;
        let slot: Vec<u32> = self
            .graph
            .targets
            .par_iter()
            .map(|t| scanned.position(&t.id).map_or(NO_RECORD, |i| i as u32))
            .collect();
        self.states = Some(States {
            slot,
            records: scanned.into_states(),
        });
        self
    }

    /// Stat the recorded outputs of every target `wanted` says will be evaluated, before the
    /// build loop, on `jobs` threads, and remember which still have their recorded signature;
    /// [`Engine::evaluate`] then takes those as checked. (Needs the records read in bulk.)
    ///
    /// Why ahead: evaluation visits outputs in target order, stage by stage, so consecutive
    /// stats land in different directories and each pays for a cold lookup of its directory as
    /// well as of its name (on a 50 000-island field 4.6 µs a file instead of 2.3). Here they
    /// are grouped by directory first. A target's outputs are written by no one else in a build,
    /// so a signature taken now is the one its evaluation would see; an output that did not
    /// match is stat'ed again (and hashed if need be) when its target is evaluated, as before.
    pub fn check_outputs_ahead(&mut self, wanted: impl Fn(usize) -> bool + Sync, jobs: usize) {
        use rayon::prelude::*;
        use std::hash::{Hash, Hasher};
        let (Some(states), Some(dir)) = (&self.states, &self.field_fd) else {
            return;
        };
        let targets = &self.graph.targets;
        // Output `k` of target `t` is number `start[t] + k`.
        let mut start = Vec::with_capacity(targets.len());
        let mut total = 0u64;
        for t in targets {
            start.push(total as u32);
            total += t.outputs.len() as u64;
        }
        if total >= u32::MAX as u64 {
            return;
        }
        let Ok(pool) = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
        else {
            return;
        };
        let bits: Vec<AtomicU64> = (0..total.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let first = &start;
        pool.install(|| {
            // A hash of the output's directory in the high half, its number in the low half:
            // sorted, each directory's outputs come together.
            let mut order: Vec<u64> = targets
                .par_iter()
                .enumerate()
                .filter(|&(ti, t)| {
                    wanted(ti)
                        && states.get(ti).is_some_and(|r| {
                            r.status == RunStatus::Ok && r.outputs.len() == t.outputs.len()
                        })
                })
                .flat_map_iter(|(ti, t)| {
                    t.outputs.iter().enumerate().map(move |(k, o)| {
                        let parent = o.rel.rfind('/').map_or("", |i| &o.rel[..i]);
                        let mut h = rustc_hash::FxHasher::default();
                        parent.hash(&mut h);
                        (h.finish() & !0xffff_ffff) | (first[ti] as u64 + k as u64)
                    })
                })
                .collect();
            order.par_sort_unstable();
            order.par_chunks(1024).for_each(|chunk| {
                if interrupted() {
                    return;
                }
                for &key in chunk {
                    let g = key as u32;
                    let ti = first.partition_point(|&s| s <= g) - 1;
                    let k = (g - first[ti]) as usize;
                    let (Some(rec), Some(o)) = (states.get(ti), targets[ti].outputs.get(k)) else {
                        continue;
                    };
                    if let Ok(Some(sig)) = dir.stat(&o.rel) {
                        if rec.outputs.get(k).is_some_and(|r| r.sig == sig) {
                            bits[g as usize / 64].fetch_or(1 << (g % 64), Ordering::Relaxed);
                        }
                    }
                }
            });
        });
        self.ahead = Some(Ahead { start, bits });
    }
}
