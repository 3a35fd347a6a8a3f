//! The content store: outputs of earlier successful runs kept by content digest, so that a
//! target whose key matches an earlier run gets those outputs back instead of running again
//! (parameter exploration goes back and forth: `--set cutoff=-5`, the default, -5 again).
//!
//! Owns: the objects directory `CACHE/store/objects/<2 hex>/<digest>` (one file per distinct
//! content, never two copies of the same bytes), the `stored` records (target key → its outputs'
//! paths, digests and sizes, and when last used), keeping a target's outputs when it is about to
//! run again ([`keep`]), putting them back ([`restore`]), the size budget and least-recently-used
//! eviction ([`evict`]), and what `gc` reports ([`usage`]).
//! Must never: hand back bytes that do not have the recorded digest (every object is hashed as
//! it is restored; a damaged one is removed and the target runs); write a field's file other
//! than by a rename into place; keep the outputs of a failed run.
//! Invariant: objects are hard links where the file system allows (the outputs a target is
//! about to replace are linked, not copied: outputs are only ever replaced by rename, so the
//! kept inode is never written again by arrakis) and copies otherwise.

use std::path::{Path, PathBuf};

use crate::cache::{Cache, CacheError, OutputRecord, StoreEntry, TargetState};
use crate::hash::{hash_file, Digest, StatSig};

/// The store's default size budget.
pub const DEFAULT_BUDGET: &str = "10GiB";

/// The objects directory of the cache at `cache_dir`.
pub fn objects_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("store").join("objects")
}

fn object_path(objects: &Path, d: &Digest) -> PathBuf {
    let hex = d.to_hex();
    objects.join(&hex[..2]).join(&hex)
}

/// Nanoseconds since the Unix epoch (fine enough that two uses never tie).
/// The store's index key of a run of target `id` of `field` with key `key`: two targets can
/// share a key (a key covers the inputs, parameters and action; the unit a target is for picks
/// its outputs' paths), and their outputs are kept apart.
fn index_key(key: &Digest, field: &str, id: &str) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(&key.0);
    h.update(field.as_bytes());
    h.update(&[0]);
    h.update(id.as_bytes());
    Digest(*h.finalize().as_bytes())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Why the store could not do something (the build goes on without it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record store.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file of the store or the field.
    #[error("content store: {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

/// Put `src` into the store as the object of digest `d` unless it is there: a hard link, or a
/// copy (through a temporary name) where links are not possible. Returns whether it was added.
fn put_object(objects: &Path, src: &Path, d: &Digest) -> Result<bool, StoreError> {
    let dst = object_path(objects, d);
    if dst.exists() {
        return Ok(false);
    }
    let dir = dst.parent().unwrap_or(objects);
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    match std::fs::hard_link(src, &dst) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => {
            let tmp = crate::atomic::temp_path_for(&dst);
            std::fs::copy(src, &tmp).map_err(io("cannot copy into the store", src))?;
            std::fs::rename(&tmp, &dst).map_err(io("cannot rename", &tmp))?;
            Ok(true)
        }
    }
}

/// Keep the outputs target `id` of `field` has now, made with the record `rec`, before it runs
/// again: each output whose stat signature is still the recorded one (so its digest is known
/// without reading it), or whose bytes still have the recorded digest, goes into the store, and the key points at them; an output `arrakis
/// archive` removed is taken from its tarball. Outputs changed or removed otherwise since are
/// not kept, and then neither is the entry.
pub fn keep(
    cache: &Cache,
    field: &str,
    id: &str,
    field_dir: &Path,
    rels: &[&str],
    rec: &TargetState,
) -> Result<bool, StoreError> {
    if rec.status != crate::cache::RunStatus::Ok || rec.outputs.len() != rels.len() {
        return Ok(false);
    }
    let index = index_key(&rec.key, field, id);
    if cache.get_stored(&index)?.is_some() {
        return Ok(false);
    }
    let objects = objects_dir(cache.dir());
    if !objects.exists() {
        // The store's first objects: counted from zero (a build need not walk it to know).
        cache.start_store_bytes()?;
    }
    let mut outputs = Vec::with_capacity(rels.len());
    // The bytes of the objects this adds, for the store's count (added whatever happens next:
    // an object without an entry is still on disk until the next full count removes it).
    let mut added = 0u64;
    let mut kept_outputs = || -> Result<bool, StoreError> {
        for (rel, o) in rels.iter().zip(&rec.outputs) {
            let path = field_dir.join(rel);
            match StatSig::of_path(&path) {
                Ok(Some(sig)) if sig == o.sig => {
                    if put_object(&objects, &path, &o.digest)? {
                        added += o.sig.size;
                    }
                }
                // A signature recorded too close to the write to be trusted (or changed since):
                // the bytes decide.
                Ok(Some(_)) => {
                    if hash_file(&path).ok() != Some(o.digest) {
                        return Ok(false);
                    }
                    if put_object(&objects, &path, &o.digest)? {
                        added += o.sig.size;
                    }
                }
                // Removed by `arrakis archive`: taken from its tarball (checked against its digest).
                Ok(None) if !object_path(&objects, &o.digest).exists() => {
                    let a = match cache.archived(field, rel)? {
                        Some(a) if a.digest == o.digest && a.tar.is_some() => a,
                        _ => return Ok(false),
                    };
                    let tar = field_dir.join(a.tar.as_deref().unwrap_or_default());
                    let obj = object_path(&objects, &o.digest);
                    if crate::archive::restore(&tar, rel, &a, &obj).is_err() {
                        return Ok(false);
                    }
                    added += o.sig.size;
                }
                Ok(None) => {}
                _ => return Ok(false),
            }
            outputs.push((rel.to_string(), o.digest, o.sig.size));
        }
        Ok(true)
    };
    let kept = kept_outputs();
    cache.add_store_bytes(added)?;
    if !kept? {
        return Ok(false);
    }
    let entry = StoreEntry {
        field: field.to_string(),
        target: id.to_string(),
        outputs,
        used: now(),
    };
    cache.put_stored(&index, &entry)?;
    Ok(true)
}

/// Whether the store holds outputs of a run of target `id` of `field` with `key`.
pub fn holds(cache: &Cache, field: &str, id: &str, key: &Digest) -> bool {
    matches!(cache.get_stored(&index_key(key, field, id)), Ok(Some(_)))
}

/// What [`restore`] did.
pub enum Restored {
    /// The store has nothing for the key.
    Miss,
    /// Put back: the output records (signatures taken here).
    Outputs(Vec<OutputRecord>),
    /// The store had the key but an object is missing or does not have its digest: the entry
    /// and the damaged object were removed (the target runs).
    Damaged(String),
}

/// Put back the outputs the store keeps for a run of target `id` of `field` with `key` (output
/// `names` and `rels` in the graph's order): every object is hashed first, then linked (or
/// copied) to a temporary name beside its output and renamed into place.
pub fn restore(
    cache: &Cache,
    (field, id, key): (&str, &str, &Digest),
    field_dir: &Path,
    names: &[&str],
    rels: &[&str],
) -> Result<Restored, StoreError> {
    let key = &index_key(key, field, id);
    let Some(mut entry) = cache.get_stored(key)? else {
        return Ok(Restored::Miss);
    };
    let same_paths =
        entry.outputs.len() == rels.len() && entry.outputs.iter().zip(rels).all(|(o, r)| o.0 == *r);
    if !same_paths {
        cache.remove_stored(key)?;
        return Ok(Restored::Miss);
    }
    let objects = objects_dir(cache.dir());
    for (_, d, _) in &entry.outputs {
        let obj = object_path(&objects, d);
        let why = match hash_file(&obj) {
            Ok(h) if h == *d => continue,
            Ok(_) => format!("{} does not have its digest", obj.display()),
            Err(e) => format!("{}: {e}", obj.display()),
        };
        let _ = std::fs::remove_file(&obj);
        cache.remove_stored(key)?;
        return Ok(Restored::Damaged(why));
    }
    let mut records = Vec::with_capacity(rels.len());
    for ((rel, d, _), name) in entry.outputs.iter().zip(names) {
        let obj = object_path(&objects, d);
        let fin = field_dir.join(rel);
        if let Some(dir) = fin.parent() {
            std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        }
        // Already the object (linked there by an earlier restore, or kept from there into the
        // store): renaming a link onto another link of the same file does nothing and would
        // leave the temporary name behind.
        if !same_file(&obj, &fin) {
            let tmp = crate::atomic::temp_path_for(&fin);
            if std::fs::hard_link(&obj, &tmp).is_err() {
                std::fs::copy(&obj, &tmp).map_err(io("cannot copy out of the store", &obj))?;
            }
            let moved = std::fs::rename(&tmp, &fin);
            if moved.is_err() || tmp.symlink_metadata().is_ok() {
                let _ = std::fs::remove_file(&tmp);
            }
            moved.map_err(|e| StoreError::Io {
                what: "cannot move into place",
                path: fin.clone(),
                source: e,
            })?;
        }
        let sig = StatSig::of_path(&fin)
            .map_err(io("cannot stat", &fin))?
            .ok_or_else(|| StoreError::Io {
                what: "vanished",
                path: fin.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        records.push(OutputRecord {
            name: name.to_string(),
            path: rel.clone(),
            digest: *d,
            sig,
        });
    }
    entry.used = now();
    cache.put_stored(key, &entry)?;
    Ok(Restored::Outputs(records))
}

/// Whether `a` and `b` are links to one file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// What the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys with kept outputs.
    pub entries: usize,
    /// Distinct objects.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Every object file in the store: digest hex → size.
fn object_files(objects: &Path) -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    let Ok(dirs) = std::fs::read_dir(objects) else {
        return m;
    };
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.len() == 64 {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                m.insert(name, size);
            }
        }
    }
    m
}

/// What the store holds now.
pub fn usage(cache: &Cache) -> Result<Usage, StoreError> {
    let entries = cache.stored_entries()?.len();
    let files = object_files(&objects_dir(cache.dir()));
    Ok(Usage {
        entries,
        objects: files.len(),
        bytes: files.values().sum(),
    })
}

/// [`evict`] when the store may be over `budget`: its byte count (set by the last full count,
/// added to as objects are kept) is over it, or there is none. A build calls this: the count
/// spares it a walk of every object each time it keeps something (~40 ms for 14 000 objects
/// on a 3 000-island field, growing with the store). Returns what [`evict`] did, if it ran.
pub fn evict_if_over(cache: &Cache, budget: u64) -> Result<Option<(Usage, Usage)>, StoreError> {
    match cache.store_bytes()? {
        Some(bytes) if bytes <= budget => Ok(None),
        _ => evict(cache, budget).map(Some),
    }
}

/// Bring the store within `budget` bytes: entries least recently used first are forgotten
/// until the objects the rest need fit; objects no entry needs are removed (also any left by a
/// build killed between keeping an object and recording its entry). Returns what was removed
/// and what is left, and sets the store's byte count to what is left.
pub fn evict(cache: &Cache, budget: u64) -> Result<(Usage, Usage), StoreError> {
    let objects = objects_dir(cache.dir());
    let files = object_files(&objects);
    let mut entries = cache.stored_entries()?;
    // Most recently used first: they are kept while they fit.
    entries.sort_by_key(|e| std::cmp::Reverse(e.1.used));
    let mut needed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut bytes = 0u64;
    let mut removed = Usage::default();
    let mut kept = 0usize;
    for (key, e) in &entries {
        let new: Vec<String> = e
            .outputs
            .iter()
            .map(|(_, d, _)| d.to_hex().to_string())
            .filter(|h| !needed.contains(h))
            .collect();
        let add: u64 = new.iter().map(|h| files.get(h).copied().unwrap_or(0)).sum();
        let present = e
            .outputs
            .iter()
            .all(|(_, d, _)| files.contains_key(d.to_hex().as_str()));
        if present && bytes + add <= budget {
            bytes += add;
            needed.extend(new);
            kept += 1;
        } else {
            cache.remove_stored(key)?;
            removed.entries += 1;
        }
    }
    for (hex, size) in &files {
        if !needed.contains(hex) {
            let p = objects.join(&hex[..2]).join(hex);
            if std::fs::remove_file(&p).is_ok() {
                removed.objects += 1;
                removed.bytes += size;
            }
        }
    }
    let left = Usage {
        entries: kept,
        objects: needed.len(),
        bytes,
    };
    // Objects that could not be removed are still counted.
    let stuck: u64 = files
        .iter()
        .filter(|(hex, _)| !needed.contains(*hex))
        .map(|(_, size)| size)
        .sum::<u64>()
        - removed.bytes;
    cache.set_store_bytes(bytes + stuck)?;
    Ok((removed, left))
}

/// Read a size in dask's grammar (`10GiB`, `500MB`, `0`) for `store_budget`.
pub fn parse_budget(s: &str) -> Result<u64, String> {
    match crate::config::dask::parse_bytes(s) {
        Ok(b) if b >= 0 => Ok(b.min(u64::MAX as i128) as u64),
        Ok(_) => Err(format!(
            "store_budget '{s}' is negative: write e.g. 10GiB, 500MB or 0 (keep nothing)"
        )),
        Err(e) => Err(format!(
            "store_budget '{s}' is not a size ({e}): write e.g. 10GiB, 500MB or 0 (keep nothing)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, outputs: &[(&str, &Digest, u64)], used: u64) -> StoreEntry {
        StoreEntry {
            field: "F".into(),
            target: name.into(),
            outputs: outputs
                .iter()
                .map(|(r, d, n)| (r.to_string(), **d, *n))
                .collect(),
            used,
        }
    }

    /// A successful record (key 1) of a target whose one output, `rel` in `field`, holds `bytes`.
    fn one_output(field: &Path, rel: &str, bytes: &[u8]) -> TargetState {
        let path = field.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        TargetState {
            key: Digest([1; 32]),
            status: crate::cache::RunStatus::Ok,
            outputs_id: Digest([0; 32]),
            outputs: vec![crate::cache::OutputState {
                digest: hash_file(&path).unwrap(),
                sig: StatSig::of_path(&path).unwrap().unwrap(),
            }],
        }
    }

    #[test]
    fn eviction_keeps_the_most_recently_used_that_fit_and_shared_objects_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(&tmp.path().join("cache"), false).unwrap();
        let objects = objects_dir(cache.dir());
        let mut digests = Vec::new();
        for (i, n) in [100usize, 200, 300].iter().enumerate() {
            // A file of its own each: the object is a hard link to it.
            let src = tmp.path().join(format!("src{i}"));
            std::fs::write(&src, vec![i as u8; *n]).unwrap();
            let d = hash_file(&src).unwrap();
            assert!(put_object(&objects, &src, &d).unwrap());
            // The same bytes again: no second copy.
            assert!(!put_object(&objects, &src, &d).unwrap());
            digests.push(d);
        }
        let (a, b, c) = (&digests[0], &digests[1], &digests[2]);
        let key = |k: u8| Digest([k; 32]);
        // Oldest first: k1 (a, b), k2 (b), k3 (c); k2 shares b with k1.
        cache
            .put_stored(&key(1), &entry("t1", &[("x", a, 100), ("y", b, 200)], 1))
            .unwrap();
        cache
            .put_stored(&key(2), &entry("t2", &[("y", b, 200)], 2))
            .unwrap();
        cache
            .put_stored(&key(3), &entry("t3", &[("z", c, 300)], 3))
            .unwrap();
        assert_eq!(
            usage(&cache).unwrap(),
            Usage {
                entries: 3,
                objects: 3,
                bytes: 600
            }
        );
        // 500 bytes: k3 (300) and k2 (b, 200) fit; k1 would add a (100): over.
        let (removed, left) = evict(&cache, 500).unwrap();
        assert_eq!(
            left,
            Usage {
                entries: 2,
                objects: 2,
                bytes: 500
            }
        );
        assert_eq!(
            removed,
            Usage {
                entries: 1,
                objects: 1,
                bytes: 100
            }
        );
        assert!(cache.get_stored(&key(1)).unwrap().is_none());
        assert!(!object_path(&objects, a).exists() && object_path(&objects, b).exists());
        // Nothing fits in 0 bytes.
        let (_, left) = evict(&cache, 0).unwrap();
        assert_eq!(left, Usage::default());
        assert_eq!(usage(&cache).unwrap(), Usage::default());
    }

    #[test]
    fn a_damaged_object_is_found_and_removed_and_outputs_come_back_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(&tmp.path().join("cache"), false).unwrap();
        let field = tmp.path().join("field");
        let rec = one_output(&field, "d/out.txt", b"made with key 1");
        let digest = rec.outputs[0].digest;
        assert!(keep(&cache, "F", "t", &field, &["d/out.txt"], &rec).unwrap());
        // Replaced by rename, as a run replaces it; then removed altogether.
        let tmpf = field.join("d/new");
        std::fs::write(&tmpf, b"made with key 2").unwrap();
        std::fs::rename(&tmpf, field.join("d/out.txt")).unwrap();
        std::fs::remove_file(field.join("d/out.txt")).unwrap();
        let restore_key = |k: u8| {
            restore(
                &cache,
                ("F", "t", &Digest([k; 32])),
                &field,
                &["out"],
                &["d/out.txt"],
            )
            .unwrap()
        };
        let Restored::Outputs(o) = restore_key(1) else {
            panic!("not restored")
        };
        assert_eq!(
            std::fs::read(field.join("d/out.txt")).unwrap(),
            b"made with key 1"
        );
        assert_eq!(o[0].digest, digest);
        // Restored again onto itself (the file is the object already, as when a build goes
        // back to a key a second time): nothing moves and no temporary name is left.
        let again = restore_key(1);
        assert!(matches!(again, Restored::Outputs(_)));
        let names: Vec<_> = std::fs::read_dir(field.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.txt"], "only the output is left");
        assert!(matches!(restore_key(2), Restored::Miss));
        // Damaged in place (the restored file is the object's inode: an edit reaches both).
        std::fs::write(field.join("d/out.txt"), b"edited in place").unwrap();
        let r = restore_key(1);
        assert!(matches!(r, Restored::Damaged(_)));
        assert!(cache.stored_entries().unwrap().is_empty());
        assert_eq!(usage(&cache).unwrap().objects, 0);
    }

    #[test]
    fn a_build_walks_the_objects_only_when_the_count_says_the_store_may_be_over_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let field = tmp.path().join("field");
        let rec = one_output(&field, "out", &[7u8; 100]);
        // A new store is counted from its first object.
        let fresh = Cache::open(&tmp.path().join("fresh"), false).unwrap();
        assert_eq!(fresh.store_bytes().unwrap(), None);
        assert!(keep(&fresh, "F", "t", &field, &["out"], &rec).unwrap());
        assert_eq!(fresh.store_bytes().unwrap(), Some(100));
        // A store with objects and no count (kept by a binary from before the count; here an
        // object no entry needs, as a killed build leaves one): the next build counts it.
        let cache = Cache::open(&tmp.path().join("cache"), false).unwrap();
        let orphan = objects_dir(cache.dir()).join("ab").join("ab".repeat(32));
        std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        std::fs::write(&orphan, vec![0u8; 50]).unwrap();
        assert!(keep(&cache, "F", "t", &field, &["out"], &rec).unwrap());
        assert_eq!(cache.store_bytes().unwrap(), None);
        let (removed, left) = evict_if_over(&cache, 1000).unwrap().unwrap();
        assert_eq!((removed.bytes, left.bytes), (50, 100));
        assert_eq!(cache.store_bytes().unwrap(), Some(100));
        // The same bytes kept for another target: no new object, nothing added.
        assert!(keep(&cache, "F", "t2", &field, &["out"], &rec).unwrap());
        assert_eq!(cache.store_bytes().unwrap(), Some(100));
        // Under the budget nothing walks the objects: an orphan stays until a count.
        std::fs::write(&orphan, vec![0u8; 50]).unwrap();
        assert!(evict_if_over(&cache, 1000).unwrap().is_none());
        assert!(orphan.exists());
        // Over it: counted, the orphan and what does not fit removed.
        let (removed, left) = evict_if_over(&cache, 99).unwrap().unwrap();
        assert_eq!((removed.objects, removed.bytes), (2, 150));
        assert_eq!(left, Usage::default());
        assert!(!orphan.exists());
        assert_eq!(cache.store_bytes().unwrap(), Some(0));
        // gc counts whatever the count says.
        std::fs::write(&orphan, vec![0u8; 50]).unwrap();
        let (removed, _) = evict(&cache, 1000).unwrap();
        assert_eq!(removed.bytes, 50);
    }
}
