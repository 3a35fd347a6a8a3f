//! The sled store: typed, versioned, checksummed records; nothing else in arrakis touches sled.
//!
//! Owns: the cache directory (`cache/` by default), its exclusive lock file naming the holder, and
//! three trees: `targets` (field + target id → [`TargetRecord`]), `files` (absolute path →
//! [`FileRecord`], the stat cache) and `meta` (schema version).
//! Must never: know about rules, stages or astronomy; accept a record it cannot decode (a corrupt
//! record is an error naming the key and the way out, never a panic or a silent skip).
//! Invariants: only one process has the cache open (the lock is held for the life of [`Cache`]);
//! every record carries a schema byte and a BLAKE3 checksum of its payload.
//! Submodules: `records.rs` (record types and their checksummed encoding), `lock.rs` (the lock
//! file).

mod lock;
mod records;

pub use lock::{hostname, process_lives, CacheLock};
pub use records::*;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hash::Digest;
use records::{decode, encode, TargetDetails};

/// Version of the record encoding; bumped when [`TargetRecord`] or [`FileRecord`] change shape.
pub const SCHEMA_VERSION: u8 = 1;

/// Errors from opening or reading the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Another process holds the lock.
    #[error("the cache {dir} is in use by another arrakis process ({holder}); wait for it to finish, pass --wait to queue behind it, or use a different --cache directory")]
    Busy {
        /// The cache directory.
        dir: PathBuf,
        /// What the holder wrote into the lock file.
        holder: String,
    },
    /// The cache was written by an incompatible version of arrakis.
    #[error("the cache {dir} has schema version {found}, this arrakis uses {expected}; move it aside or delete it (`rm -r {dir}`) and rebuild")]
    Schema {
        /// The cache directory.
        dir: PathBuf,
        /// Version found on disk.
        found: u8,
        /// Version this build understands.
        expected: u8,
    },
    /// A record failed its checksum or could not be decoded.
    #[error("corrupt cache record {key:?} in tree '{tree}' of {dir}: {why}; run `arrakis gc --repair` to drop unreadable records (the affected targets then rebuild)")]
    Corrupt {
        /// The cache directory.
        dir: PathBuf,
        /// The tree holding the record.
        tree: &'static str,
        /// The record key, lossily decoded.
        key: String,
        /// What was wrong.
        why: String,
    },
    /// An I/O error on the lock file or directory.
    #[error("cache {dir}: {source}")]
    Io {
        /// The cache directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The record store cannot be read: sled found its files damaged.
    #[error("the record store {}/db of the cache {} is damaged (sled: corrupted data): `arrakis gc --repair --cache {}` moves it aside and salvages every record it can still read into a new store (targets whose records are lost rebuild; nothing else is touched)", dir.display(), dir.display(), dir.display())]
    Damaged {
        /// The cache directory.
        dir: PathBuf,
    },
    /// sled itself failed. (The error is in the message, not chained: printed with its causes
    /// it would appear twice.)
    #[error("cache {}: {error}{}", dir.display(), sled_hint(error))]
    Sled {
        /// The cache directory.
        dir: PathBuf,
        /// sled's error.
        error: sled::Error,
    },
}

/// The default tree's key of the content store's byte count ([`Cache::store_bytes`]).
const STORE_BYTES: &[u8] = b"store_bytes";

/// The open cache. Holds the exclusive lock until dropped.
pub struct Cache {
    dir: PathBuf,
    db: sled::Db,
    targets: sled::Tree,
    details: sled::Tree,
    files: sled::Tree,
    archived: sled::Tree,
    /// Field name → the field directory a build of it used (so `gc` finds every field).
    fields: sled::Tree,
    /// Target key → the outputs the content store keeps for it (`crate::store`).
    stored: sled::Tree,
    /// Whether this process has moved the epoch on (done once, before its first record write);
    /// the mutex makes every other writer wait until the new epoch is on disk.
    epoch_moved: std::sync::atomic::AtomicBool,
    epoch_lock: std::sync::Mutex<()>,
    /// After every sled handle above (fields drop in order): marks the close once sled is shut.
    closer: Closer,
    _lock: File,
}

/// Marks a clean close of the record store: the store's signature written beside it and the
/// open marker removed, only after sled has shut down (its handles are dropped before this), so
/// a kill at any moment before leaves the marker that lets the next open salvage the store.
struct Closer {
    dir: PathBuf,
    /// Set by `Cache::drop` when the final flush succeeded.
    clean: bool,
}

impl Drop for Closer {
    fn drop(&mut self) {
        if self.clean {
            if let Some(sig) = store_signature(&self.dir) {
                let _ = crate::atomic::write_atomic(&self.dir.join(CLOSED_FILE), &sig);
            }
            let _ = std::fs::remove_file(self.dir.join(DIRTY_FILE));
        }
    }
}

fn record_key(field: &str, target: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(field.len() + target.len() + 1);
    k.extend_from_slice(field.as_bytes());
    k.push(0);
    k.extend_from_slice(target.as_bytes());
    k
}

const EPOCH_FILE: &str = "epoch";

fn read_epoch(dir: &Path) -> Option<u64> {
    if !dir.join("db").is_dir() {
        return None;
    }
    let b = std::fs::read(dir.join(EPOCH_FILE)).ok()?;
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// Forget the epoch, durably.
fn remove_epoch(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(EPOCH_FILE)) {
        Ok(()) => File::open(dir)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Set the epoch, durably (written beside, synced, renamed, directory synced).
fn write_epoch(dir: &Path, epoch: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{EPOCH_FILE}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    f.write_all(&epoch.to_le_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(EPOCH_FILE))?;
    File::open(dir)?.sync_all()
}

/// The hint for a sled I/O error a resource limit caused (` (…)`, or nothing).
fn sled_hint(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => crate::limits::hint_for(io)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A sled error of the cache in `dir`: damaged files get the message that leads to the repair.
fn sled_error(dir: &Path, source: sled::Error) -> CacheError {
    match source {
        sled::Error::Corruption { .. } => CacheError::Damaged {
            dir: dir.to_path_buf(),
        },
        error => CacheError::Sled {
            dir: dir.to_path_buf(),
            error,
        },
    }
}

/// What [`Cache::salvage`] did.
#[derive(Debug, Default)]
pub struct Salvaged {
    /// Where the damaged store was moved.
    pub kept: PathBuf,
    /// Target records copied into the new store.
    pub targets: usize,
    /// Stat-cache entries copied.
    pub files: usize,
    /// Archive records copied.
    pub archived: usize,
    /// Records read but not decodable (dropped).
    pub dropped: usize,
    /// Bytes of the log cut off before sled could open it (the records last written there are
    /// lost).
    pub cut_bytes: u64,
    /// Whether a tree could not be read to its end.
    pub incomplete: bool,
}

impl Salvaged {
    /// Copy every decodable record of `old` into `fresh`: a target only with both of its parts.
    fn copy_from(&mut self, old: &sled::Db, fresh: &Cache) -> Result<(), CacheError> {
        let read_all = |name: &str, incomplete: &mut bool| -> Vec<(sled::IVec, sled::IVec)> {
            let Ok(tree) = old.open_tree(name) else {
                *incomplete = true;
                return Vec::new();
            };
            // In key order up to the first page that cannot be read, then from the end
            // backwards to it: what lies on both sides of the damage.
            let mut items = std::collections::BTreeMap::new();
            for item in tree.iter() {
                match item {
                    Ok((k, v)) => {
                        items.insert(k, v);
                    }
                    Err(_) => {
                        *incomplete = true;
                        for item in tree.iter().rev() {
                            match item {
                                Ok((k, v)) => {
                                    if items.insert(k, v).is_some() {
                                        break;
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                        break;
                    }
                }
            }
            items.into_iter().collect()
        };
        let targets = read_all("targets", &mut self.incomplete);
        let details: std::collections::HashMap<sled::IVec, sled::IVec> =
            read_all("details", &mut self.incomplete)
                .into_iter()
                .collect();
        fresh.before_write()?;
        for (k, v) in targets {
            match details.get(&k) {
                Some(d)
                    if decode::<TargetState>(&v).is_ok() && decode::<TargetDetails>(d).is_ok() =>
                {
                    fresh.targets.insert(&k, v).map_err(|e| fresh.sled_err(e))?;
                    fresh
                        .details
                        .insert(&k, d.clone())
                        .map_err(|e| fresh.sled_err(e))?;
                    self.targets += 1;
                }
                _ => self.dropped += 1,
            }
        }
        for (k, v) in read_all("files", &mut self.incomplete) {
            if decode::<FileRecord>(&v).is_ok() {
                fresh.files.insert(k, v).map_err(|e| fresh.sled_err(e))?;
                self.files += 1;
            } else {
                self.dropped += 1;
            }
        }
        for (k, v) in read_all("fields", &mut self.incomplete) {
            fresh.fields.insert(k, v).map_err(|e| fresh.sled_err(e))?;
        }
        for (k, v) in read_all("archived", &mut self.incomplete) {
            fresh.archived.insert(k, v).map_err(|e| fresh.sled_err(e))?;
            self.archived += 1;
        }
        Ok(())
    }
}

/// Open the sled store in `work` as far as it can be opened: whole, else with its log `log`
/// cut back `segment` bytes at a time (`cut` says how much was cut). `None` when nothing opens.
fn sled_open_quietly(work: &Path, log: &Path, segment: u64, cut: &mut u64) -> Option<sled::Db> {
    let full = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut len = full;
    // sled may panic on some damage: a panic is one more failed attempt, and not printed.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let restore = |hook| std::panic::set_hook(hook);
    let open = || {
        std::panic::catch_unwind(|| sled::Config::new().path(work).open())
            .ok()
            .and_then(Result::ok)
    };
    // As found, then without sled's page-table snapshot (rebuilt from the log when missing),
    // then with the log cut back.
    let drop_snapshots = || {
        for e in std::fs::read_dir(work).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("snap.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    };
    if let Some(db) = open() {
        restore(hook);
        return Some(db);
    }
    drop_snapshots();
    loop {
        if let Some(db) = open() {
            *cut = full - len;
            restore(hook);
            return Some(db);
        }
        len = len.saturating_sub(1) / segment * segment;
        let cut_back = std::fs::OpenOptions::new()
            .write(true)
            .open(log)
            .and_then(|f| f.set_len(len));
        if len == 0 || cut_back.is_err() {
            restore(hook);
            return None;
        }
        drop_snapshots();
    }
}

/// The file holding the record store's signature at its last clean close.
const CLOSED_FILE: &str = "db.closed";
/// Present while a process has the store open (written at open, removed at a clean close): at
/// the next open it says the last one was not closed.
const DIRTY_FILE: &str = "db.open";

/// The stat signatures of the record store's files (sorted by name): changed by any write to
/// the store, so a signature equal to the one taken at the last clean close means the store has
/// not been written (nor damaged by a write) since.
pub fn store_signature(dir: &Path) -> Option<Vec<u8>> {
    let mut entries = Vec::new();
    for e in walkdir::WalkDir::new(dir.join("db")).sort_by_file_name() {
        let e = e.ok()?;
        if e.file_type().is_file() {
            let s = crate::hash::StatSig::from_metadata(&e.metadata().ok()?);
            // Written field by field: the file outlives this binary's Debug output.
            entries.push(format!(
                "{}\t{} {} {} {}\n",
                e.path().strip_prefix(dir).ok()?.display(),
                s.size,
                s.mtime_ns,
                s.inode,
                s.ctime_ns
            ));
        }
    }
    Some(entries.concat().into_bytes())
}

/// Whether the record store is as it was at its last clean close (a snapshot may only answer
/// for a store that has not changed since: one written or damaged behind its back has to be
/// opened, which finds the damage).
pub fn store_unchanged_since_close(dir: &Path) -> bool {
    match (std::fs::read(dir.join(CLOSED_FILE)), store_signature(dir)) {
        (Ok(closed), Some(now)) => closed == now,
        _ => false,
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // A clean close: everything on disk; then, once the sled handles have dropped, the
        // store's signature beside it (`Closer`).
        self.closer.clean = self.db.flush().is_ok();
    }
}

impl Cache {
    /// Open (creating if needed) the cache at `dir`. With `wait`, block until another holder
    /// releases it; otherwise fail at once naming the holder.
    pub fn open(dir: &Path, wait: bool) -> Result<Cache, CacheError> {
        Cache::open_locked(CacheLock::acquire(dir, wait)?)
    }

    /// Open the database of a cache whose lock is held.
    pub fn open_locked(held: CacheLock) -> Result<Cache, CacheError> {
        let CacheLock { dir, file: lock } = held;
        let dir = dir.as_path();
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let sled_err = |source| sled_error(dir, source);
        let db_path = dir.join("db");
        if !db_path.exists() {
            // A new database has no epoch: whatever snapshot is left describes other records.
            remove_epoch(dir).map_err(io)?;
            // A new cache is made beside its final name and renamed into place, so a build
            // killed while sled lays out its files never leaves a half-made database behind.
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with("db.new-") {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            let fresh = dir.join(format!("db.new-{}", std::process::id()));
            {
                let db = sled::Config::new().path(&fresh).open().map_err(sled_err)?;
                db.open_tree("meta")
                    .and_then(|m| m.insert("schema", &[SCHEMA_VERSION]))
                    .map_err(sled_err)?;
                db.flush().map_err(sled_err)?;
            }
            std::fs::rename(&fresh, &db_path).map_err(io)?;
        }
        // We hold the cache's lock, so whoever holds sled's file lock is on its way out: the
        // flusher thread of the database just made (for a moment after it is dropped), or a
        // process forked by another thread of this one between fork and exec, with a copy of
        // the descriptor of a database this process closed. A lock failure is retried for 2 s.
        // Marked open before sled touches the store (a kill while sled opens it, or while it
        // shuts down, leaves the mark); whether it was there already says the last process
        // that opened the store did not close it.
        let left_open = dir.join(DIRTY_FILE).exists();
        let _ = std::fs::write(dir.join(DIRTY_FILE), std::process::id().to_string());
        let mut tries = 0;
        let db = loop {
            // Records reach disk within 100 ms (sled's default is 500 ms): a build killed with
            // SIGKILL redoes at most the last tenth of a second of finished targets.
            match sled::Config::new()
                .path(&db_path)
                .cache_capacity(16 << 20)
                .flush_every_ms(Some(100))
                .open()
            {
                Err(e) if tries < 200 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(db) => break db,
                // The last process that opened the store did not close it (killed, or the
                // machine went down) and sled cannot read what it left: salvage it now, as
                // `gc --repair` would, so that the next build resumes (a store damaged after a
                // clean close is still an error that names the repair).
                Err(e @ sled::Error::Corruption { .. }) if left_open => {
                    let held = CacheLock {
                        dir: dir.to_path_buf(),
                        file: lock,
                    };
                    let (s, cache) = Cache::salvage_locked(held)?;
                    eprintln!(
                        "arrakis: the record store of {} was left unreadable ({e}) by a build that did not close it (killed?); salvaged {} target record(s) into a new store, the rest rebuild (the damaged store is kept as {})",
                        dir.display(),
                        s.targets,
                        s.kept.display()
                    );
                    return Ok(cache);
                }
                Err(e) => {
                    if !left_open {
                        let _ = std::fs::remove_file(dir.join(DIRTY_FILE));
                    }
                    return Err(sled_err(e));
                }
            }
        };
        let meta = db.open_tree("meta").map_err(sled_err)?;
        match meta.get("schema").map_err(sled_err)? {
            Some(v) if v.as_ref() != [SCHEMA_VERSION] => {
                return Err(CacheError::Schema {
                    dir: dir.to_path_buf(),
                    found: v.first().copied().unwrap_or(0),
                    expected: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
            None => {
                meta.insert("schema", &[SCHEMA_VERSION]).map_err(sled_err)?;
            }
        }
        let targets = db.open_tree("targets").map_err(sled_err)?;
        let details = db.open_tree("details").map_err(sled_err)?;
        let files = db.open_tree("files").map_err(sled_err)?;
        let archived = db.open_tree("archived").map_err(sled_err)?;
        let fields = db.open_tree("fields").map_err(sled_err)?;
        let stored = db.open_tree("stored").map_err(sled_err)?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            db,
            targets,
            details,
            files,
            archived,
            fields,
            stored,
            epoch_moved: std::sync::atomic::AtomicBool::new(false),
            epoch_lock: std::sync::Mutex::new(()),
            closer: Closer {
                dir: dir.to_path_buf(),
                clean: false,
            },
            _lock: lock,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sled_err(&self, source: sled::Error) -> CacheError {
        sled_error(&self.dir, source)
    }

    fn corrupt(&self, tree: &'static str, key: &[u8], why: DecodeError) -> CacheError {
        CacheError::Corrupt {
            dir: self.dir.clone(),
            tree,
            key: String::from_utf8_lossy(key).replace('\0', " "),
            why: why.to_string(),
        }
    }

    /// The hot part of the record of `target` in `field`, if any.
    pub fn get_state(&self, field: &str, target: &str) -> Result<Option<TargetState>, CacheError> {
        let k = record_key(field, target);
        match self.targets.get(&k).map_err(|e| self.sled_err(e))? {
            None => Ok(None),
            Some(v) => decode(&v)
                .map(Some)
                .map_err(|why| self.corrupt("targets", &k, why)),
        }
    }

    /// The hot part of every record of `field`, in one sequential scan (much cheaper than a
    /// lookup per target on a big field).
    pub fn scan_states(&self, field: &str) -> Result<ScannedStates, CacheError> {
        let prefix = record_key(field, "");
        let mut out = ScannedStates::default();
        for item in self.targets.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let state = decode(&v).map_err(|why| self.corrupt("targets", &k, why))?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]);
            // `position` relies on sled's key order, which is this byte order.
            debug_assert!(out.is_empty() || out.id(out.len() - 1) < id.as_ref());
            out.ids.push_str(&id);
            out.ends.push(out.ids.len());
            out.states.push(state);
        }
        Ok(out)
    }

    /// Replace the hot part of a record (after re-checking outputs).
    pub fn put_state(
        &self,
        field: &str,
        target: &str,
        state: &TargetState,
    ) -> Result<(), CacheError> {
        self.before_write()?;
        self.targets
            .insert(record_key(field, target), encode(state))
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// The whole record of `target` in `field`, if any.
    pub fn get_target(
        &self,
        field: &str,
        target: &str,
    ) -> Result<Option<TargetRecord>, CacheError> {
        let Some(state) = self.get_state(field, target)? else {
            return Ok(None);
        };
        let k = record_key(field, target);
        let details: TargetDetails = match self.details.get(&k).map_err(|e| self.sled_err(e))? {
            None => {
                return Err(self.corrupt(
                    "details",
                    &k,
                    DecodeError::Mismatch("the record has no details part"),
                ))
            }
            Some(v) => decode(&v).map_err(|why| self.corrupt("details", &k, why))?,
        };
        if details.outputs.len() != state.outputs.len() {
            return Err(self.corrupt(
                "details",
                &k,
                DecodeError::Mismatch("details and state disagree on the outputs"),
            ));
        }
        Ok(Some(TargetRecord {
            key: state.key,
            status: state.status,
            action: details.action,
            params: details.params,
            inputs: details.inputs,
            outputs: details
                .outputs
                .into_iter()
                .zip(state.outputs)
                .map(|((name, path), o)| OutputRecord {
                    name,
                    path,
                    digest: o.digest,
                    sig: o.sig,
                })
                .collect(),
            seconds: details.seconds,
            host: details.host,
            error: details.error,
        }))
    }

    /// Record `target` (replacing any earlier record). The details go in first, so a crash in
    /// between leaves the old state, whose key no longer matches: the target reruns.
    pub fn put_target(
        &self,
        field: &str,
        target: &str,
        record: &TargetRecord,
    ) -> Result<(), CacheError> {
        self.before_write()?;
        let k = record_key(field, target);
        let details = TargetDetails {
            action: record.action.clone(),
            params: record.params.clone(),
            inputs: record.inputs.clone(),
            outputs: record
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.path.clone()))
                .collect(),
            seconds: record.seconds,
            host: record.host.clone(),
            error: record.error.clone(),
        };
        self.details
            .insert(&k, encode(&details))
            .map_err(|e| self.sled_err(e))?;
        self.targets
            .insert(k, encode(&record.state()))
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Remember that `rel` (relative to the field directory) was removed on purpose.
    pub fn put_archived(&self, field: &str, rel: &str, a: &ArchivedFile) -> Result<(), CacheError> {
        self.before_write()?;
        self.archived
            .insert(record_key(field, rel), encode(a))
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Whether `arrakis archive` removed anything that has not come back (lets builds skip
    /// every archive lookup in the usual case).
    pub fn has_archived(&self) -> bool {
        !self.archived.is_empty()
    }

    /// What `arrakis archive` did with `rel`, if it removed it.
    pub fn archived(&self, field: &str, rel: &str) -> Result<Option<ArchivedFile>, CacheError> {
        if !self.has_archived() {
            return Ok(None);
        }
        let k = record_key(field, rel);
        match self.archived.get(&k).map_err(|e| self.sled_err(e))? {
            Some(v) => decode(&v)
                .map(Some)
                .map_err(|why| self.corrupt("archived", &k, why)),
            None => Ok(None),
        }
    }

    /// Forget that `rel` was archived (it exists again).
    pub fn forget_archived(&self, field: &str, rel: &str) -> Result<(), CacheError> {
        if self.has_archived() {
            self.before_write()?;
            self.archived
                .remove(record_key(field, rel))
                .map_err(|e| self.sled_err(e))?;
        }
        Ok(())
    }

    /// Whether the content store holds nothing.
    pub fn stored_is_empty(&self) -> bool {
        self.stored.is_empty()
    }

    /// The content store's entry for `key`; an unreadable one is as none.
    pub fn get_stored(&self, key: &Digest) -> Result<Option<StoreEntry>, CacheError> {
        let v = self.stored.get(key.0).map_err(|e| self.sled_err(e))?;
        Ok(v.and_then(|v| decode(&v).ok()))
    }

    /// Keep (or replace) the content store's entry for `key`.
    pub fn put_stored(&self, key: &Digest, entry: &StoreEntry) -> Result<(), CacheError> {
        self.stored
            .insert(key.0, encode(entry))
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Forget the content store's entry for `key`.
    pub fn remove_stored(&self, key: &Digest) -> Result<(), CacheError> {
        self.stored.remove(key.0).map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// The bytes of the content store's objects as the last full count found them plus what
    /// was added since (`crate::store`); `None` when never counted (or unreadable).
    pub fn store_bytes(&self) -> Result<Option<u64>, CacheError> {
        let v = self.db.get(STORE_BYTES).map_err(|e| self.sled_err(e))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok().map(u64::from_le_bytes)))
    }

    /// Set the content store's byte count (after counting every object).
    pub fn set_store_bytes(&self, n: u64) -> Result<(), CacheError> {
        self.db
            .insert(STORE_BYTES, &n.to_le_bytes())
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Count the content store from zero unless it is counted already: for a store that has
    /// no objects yet (the first object is kept after this).
    pub fn start_store_bytes(&self) -> Result<(), CacheError> {
        let _ = self
            .db
            .compare_and_swap(
                STORE_BYTES,
                None as Option<&[u8]>,
                Some(&0u64.to_le_bytes()),
            )
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Add `n` bytes of new objects to the content store's count (left uncounted if it was).
    pub fn add_store_bytes(&self, n: u64) -> Result<(), CacheError> {
        if n == 0 {
            return Ok(());
        }
        self.db
            .fetch_and_update(STORE_BYTES, |old| {
                let old = <[u8; 8]>::try_from(old?).ok()?;
                Some(
                    u64::from_le_bytes(old)
                        .saturating_add(n)
                        .to_le_bytes()
                        .to_vec(),
                )
            })
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Every entry of the content store (unreadable ones are dropped).
    pub fn stored_entries(&self) -> Result<Vec<(Digest, StoreEntry)>, CacheError> {
        let mut out = Vec::new();
        for item in self.stored.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let (Ok(k), Ok(e)) = (<[u8; 32]>::try_from(k.as_ref()), decode(&v)) else {
                continue;
            };
            out.push((Digest(k), e));
        }
        Ok(out)
    }

    /// Forget `target`.
    pub fn remove_target(&self, field: &str, target: &str) -> Result<(), CacheError> {
        self.before_write()?;
        let k = record_key(field, target);
        self.targets.remove(&k).map_err(|e| self.sled_err(e))?;
        self.details.remove(k).map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Every (field, target id) with a record; unreadable keys are reported, not skipped.
    pub fn target_ids(&self) -> Result<Vec<(String, String)>, CacheError> {
        let mut out = Vec::new();
        for item in self.targets.iter() {
            let (k, _) = item.map_err(|e| self.sled_err(e))?;
            let text = String::from_utf8_lossy(&k);
            let (field, target) = text.split_once('\0').unwrap_or(("", &text));
            out.push((field.to_string(), target.to_string()));
        }
        Ok(out)
    }

    /// Drop every record (targets and files) that fails to decode; returns how many were dropped.
    pub fn repair(&self) -> Result<usize, CacheError> {
        let mut dropped = 0;
        for (tree, kind) in [(&self.targets, 0), (&self.details, 1), (&self.files, 2)] {
            let mut bad = Vec::new();
            for item in tree.iter() {
                let (k, v) = item.map_err(|e| self.sled_err(e))?;
                let ok = match kind {
                    0 => decode::<TargetState>(&v).is_ok(),
                    1 => decode::<TargetDetails>(&v).is_ok(),
                    _ => decode::<FileRecord>(&v).is_ok(),
                };
                if !ok {
                    bad.push(k);
                }
            }
            for k in bad {
                self.before_write()?;
                // A target loses both parts, so it is simply rebuilt.
                if kind < 2 {
                    self.targets.remove(&k).map_err(|e| self.sled_err(e))?;
                    self.details.remove(&k).map_err(|e| self.sled_err(e))?;
                } else {
                    tree.remove(k).map_err(|e| self.sled_err(e))?;
                }
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// `gc --repair` of a store sled cannot open: the damaged store is moved aside (kept as
    /// `db.damaged-<time>`), a copy of it is opened as far as it can be (without sled's page
    /// table snapshot, and if need be with the log cut back segment by segment to the last
    /// state sled reads), every record that still decodes is copied into a new store, and the
    /// epoch is forgotten so no snapshot answers for the old records. Targets whose records are
    /// lost are simply not up to date: they rebuild. A salvaged record is only ever trusted as
    /// any record is (its key and its outputs' signatures must still match).
    pub fn salvage(dir: &Path, wait: bool) -> Result<Salvaged, CacheError> {
        Ok(Cache::salvage_locked(CacheLock::acquire(dir, wait)?)?.0)
    }

    /// [`Cache::salvage`] with the lock held; the new store, open.
    fn salvage_locked(lock: CacheLock) -> Result<(Salvaged, Cache), CacheError> {
        let dir = lock.dir.clone();
        let dir = dir.as_path();
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Two salvages within a second keep both damaged stores.
        let kept = (0..)
            .map(|n| match n {
                0 => dir.join(format!("db.damaged-{stamp}")),
                n => dir.join(format!("db.damaged-{stamp}-{n}")),
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| dir.join("db.damaged"));
        remove_epoch(dir).map_err(io)?;
        let _ = std::fs::remove_file(dir.join(CLOSED_FILE));
        std::fs::rename(dir.join("db"), &kept).map_err(io)?;
        // Work on a copy: the damaged store stays as it was found.
        let work = dir.join(format!("db.salvage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(io)?;
        for e in std::fs::read_dir(&kept).map_err(io)?.flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), work.join(e.file_name())).map_err(io)?;
            }
        }
        let mut out = Salvaged {
            kept: kept.clone(),
            ..Salvaged::default()
        };
        let segment = 512 * 1024;
        let log = work.join("db");
        let old = sled_open_quietly(&work, &log, segment, &mut out.cut_bytes);
        let fresh = Cache::open_locked(lock)?;
        if let Some(old) = old {
            let schema_ok = old
                .open_tree("meta")
                .ok()
                .and_then(|m| m.get("schema").ok().flatten())
                .is_some_and(|v| v.as_ref() == [SCHEMA_VERSION]);
            if schema_ok {
                out.copy_from(&old, &fresh)?;
            }
        }
        fresh.flush()?;
        let _ = std::fs::remove_dir_all(&work);
        Ok((out, fresh))
    }

    /// The stat-cache entry of an absolute path.
    pub fn get_file(&self, abs_path: &Path) -> Result<Option<FileRecord>, CacheError> {
        let k = abs_path.as_os_str().as_encoded_bytes();
        match self.files.get(k).map_err(|e| self.sled_err(e))? {
            None => Ok(None),
            Some(v) => match decode(&v) {
                Ok(r) => Ok(Some(r)),
                // A stat-cache entry is only a hint: an unreadable one is dropped and the file
                // re-hashed, which is always correct.
                Err(_) => Ok(None),
            },
        }
    }

    /// Store a stat-cache entry.
    pub fn put_file(&self, abs_path: &Path, record: &FileRecord) -> Result<(), CacheError> {
        self.files
            .insert(abs_path.as_os_str().as_encoded_bytes(), encode(record))
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Remember that field `field` lives in `dir` (written when it changes).
    pub fn note_field_dir(&self, field: &str, dir: &Path) -> Result<(), CacheError> {
        let v = dir.as_os_str().as_encoded_bytes();
        if self
            .fields
            .get(field)
            .map_err(|e| self.sled_err(e))?
            .as_deref()
            != Some(v)
        {
            self.fields.insert(field, v).map_err(|e| self.sled_err(e))?;
        }
        Ok(())
    }

    /// Every field this cache has built, with its directory.
    pub fn field_dirs(&self) -> Result<Vec<(String, PathBuf)>, CacheError> {
        let mut out = Vec::new();
        for item in self.fields.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let dir =
                PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&v));
            out.push((String::from_utf8_lossy(&k).to_string(), dir));
        }
        Ok(out)
    }

    /// Drop stat-cache entries of files that no longer exist; returns how many were dropped.
    pub fn prune_files(&self) -> Result<usize, CacheError> {
        let mut dropped = 0;
        for item in self.files.iter() {
            let (k, _) = item.map_err(|e| self.sled_err(e))?;
            let path = PathBuf::from(String::from_utf8_lossy(&k).to_string());
            if !path.exists() {
                self.files.remove(&k).map_err(|e| self.sled_err(e))?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Number of target records and stat-cache entries.
    pub fn counts(&self) -> (usize, usize) {
        (self.targets.len(), self.files.len())
    }

    /// The cache's epoch: a value that changes (durably, before the first write) whenever a
    /// process changes target or archive records; kept in the file `epoch` beside the database
    /// so that it can be read without opening the database. `None` until the first such write,
    /// and again whenever the database is made anew. A snapshot of a complete build
    /// (`crate::snapshot`) is only trusted at the epoch it was taken at, so records changed by
    /// any later process (a failed run, `gc`, `archive`, a build of some stages only) always
    /// send the next build through full evaluation.
    pub fn epoch(&self) -> Option<u64> {
        read_epoch(&self.dir)
    }

    /// The epoch, set first if there is none yet (a cache made before epochs existed).
    pub fn epoch_or_new(&self) -> Result<u64, CacheError> {
        if let Some(e) = self.epoch() {
            return Ok(e);
        }
        self.move_epoch(true)?;
        self.epoch().ok_or_else(|| CacheError::Io {
            dir: self.dir.clone(),
            source: std::io::Error::other("the epoch file cannot be read back"),
        })
    }

    /// Move the epoch on, once per process, durably before the caller writes a record: a crash
    /// can never leave a changed record under the old epoch.
    fn before_write(&self) -> Result<(), CacheError> {
        if self.epoch_moved.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        self.move_epoch(false)
    }

    /// Write a new epoch (unless this process already did and `again` is false). Writers that
    /// arrive meanwhile wait on the lock until it is on disk.
    fn move_epoch(&self, again: bool) -> Result<(), CacheError> {
        use std::sync::atomic::Ordering;
        let _held = self
            .epoch_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !again && self.epoch_moved.load(Ordering::Acquire) {
            return Ok(());
        }
        let seed = format!(
            "{}:{:?}:{:?}",
            std::process::id(),
            std::time::SystemTime::now(),
            self.epoch()
        );
        let mut e = [0u8; 8];
        e.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..8]);
        write_epoch(&self.dir, u64::from_le_bytes(e)).map_err(|source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        self.epoch_moved.store(true, Ordering::Release);
        Ok(())
    }

    /// Make everything written so far durable.
    pub fn flush(&self) -> Result<(), CacheError> {
        self.db.flush().map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Overwrite the raw bytes of a target record (for corruption tests and repair drills only).
    #[doc(hidden)]
    pub fn put_raw_target(
        &self,
        field: &str,
        target: &str,
        bytes: &[u8],
    ) -> Result<(), CacheError> {
        self.before_write()?;
        self.targets
            .insert(record_key(field, target), bytes)
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// The raw bytes of a target record (for corruption tests only).
    #[doc(hidden)]
    pub fn get_raw_target(&self, field: &str, target: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self
            .targets
            .get(record_key(field, target))
            .map_err(|e| self.sled_err(e))?
            .map(|v| v.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Digest;

    fn rec() -> TargetRecord {
        TargetRecord {
            key: Digest::of_bytes(b"k"),
            status: RunStatus::Ok,
            action: "builtin:x:1".into(),
            params: vec![("a".into(), "1".into())],
            inputs: vec![],
            outputs: vec![],
            seconds: 0.5,
            host: "h".into(),
            error: None,
        }
    }

    #[test]
    fn scanned_records_are_found_by_id_within_their_field_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), false).unwrap();
        // Ids that are prefixes of one another, and a field whose name extends another's.
        let ids = ["r/a", "r/a_c1", "r/a/b", "r/ab", "s/a", "r/", "rr/a"];
        for (n, id) in ids.iter().enumerate() {
            let mut r = rec();
            r.key = Digest::of_bytes(id.as_bytes());
            r.seconds = n as f64;
            c.put_target("F", id, &r).unwrap();
        }
        c.put_target("F2", "r/zz", &rec()).unwrap();
        let scanned = c.scan_states("F").unwrap();
        assert_eq!(scanned.len(), ids.len());
        for id in ids {
            let i = scanned
                .position(id)
                .unwrap_or_else(|| panic!("{id} not found"));
            assert_eq!(scanned.id(i), id);
            assert_eq!(
                scanned.states[i].key,
                Digest::of_bytes(id.as_bytes()),
                "{id}"
            );
        }
        for missing in ["r/zz", "r", "", "r/a_c", "s/b", "z"] {
            assert_eq!(scanned.position(missing), None, "{missing}");
        }
        assert!(c.scan_states("G").unwrap().is_empty());
    }

    #[test]
    fn records_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), false).unwrap();
        c.put_target("F", "r/u", &rec()).unwrap();
        assert_eq!(c.get_target("F", "r/u").unwrap(), Some(rec()));
        let mut raw = c.get_raw_target("F", "r/u").unwrap().unwrap();
        let n = raw.len();
        raw[n - 3] ^= 0x40;
        c.put_raw_target("F", "r/u", &raw).unwrap();
        let err = c.get_target("F", "r/u").unwrap_err();
        assert!(err.to_string().contains("gc --repair"), "{err}");
        assert_eq!(c.repair().unwrap(), 1);
        assert_eq!(c.get_target("F", "r/u").unwrap(), None);
    }

    #[test]
    fn the_epoch_moves_once_per_writing_process_and_a_new_database_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), false).unwrap();
        assert_eq!(c.epoch(), None);
        c.put_target("F", "r/u", &rec()).unwrap();
        let e1 = c.epoch().expect("set before the first write");
        c.put_target("F", "r/v", &rec()).unwrap();
        assert_eq!(c.epoch(), Some(e1), "once per process");
        drop(c);
        // Reading does not move it; the lock alone reads it. (Reopened with `wait`: a process
        // another test thread forks holds a copy of the lock until it execs.)
        let lock = CacheLock::acquire(dir.path(), true).unwrap();
        assert_eq!(lock.epoch(), Some(e1));
        let c = Cache::open_locked(lock).unwrap();
        c.get_state("F", "r/u").unwrap().unwrap();
        assert_eq!(c.epoch(), Some(e1));
        c.remove_target("F", "r/v").unwrap();
        let e2 = c.epoch().unwrap();
        assert_ne!(e1, e2, "another writing process");
        drop(c);
        std::fs::remove_dir_all(dir.path().join("db")).unwrap();
        let c = Cache::open(dir.path(), true).unwrap();
        assert_eq!(c.epoch(), None, "a new database starts without an epoch");
        assert!(c.epoch_or_new().is_ok() && c.epoch().is_some());
    }

    #[test]
    fn second_open_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _c = Cache::open(dir.path(), false).unwrap();
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts exactly as a second process would.
        let err = Cache::open(dir.path(), false).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("in use"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
    }
}
