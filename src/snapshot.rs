//! The up-to-date snapshot: what a complete, successful build saw, so that the next build can
//! say "nothing to do" by `stat` alone, without expanding the rules or reading a record.
//!
//! A snapshot holds: a fingerprint of everything that decides the graph and the keys apart from
//! files (the arrakis executable's stat signature, the rule set, every resolved parameter, the
//! field directory, `--limit`); the cache epoch it was taken at ([`Cache::epoch`]); the stat
//! signature (or absence) of every file that decided the graph or a key (the field description
//! and catalogues, every source input as it was before it was read, every glob's matches); and
//! the recorded signature of every output. If all of these are unchanged, every target's key and
//! record are unchanged and every output has its recorded bytes, so full evaluation would find
//! every target up to date. Anything else — one changed signature, another epoch, a receipt left
//! by a Slurm job — sends the build through full evaluation, which writes a new snapshot when it
//! completes.
//!
//! Owns: the snapshot file (`cache/snapshots/<field dir hash>.snap`, written atomically, BLAKE3
//! checksummed), its encoding (outputs sorted by path, front-coded, in chunks checked in
//! parallel), the fingerprint, and the check.
//! Must never: report "up to date" when a file it covers changed, when the records changed, or
//! when a directory input was read (its files are not listed, so no snapshot is written); be
//! trusted when unreadable (it is only ever a shortcut: deleting it is always safe).

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cache::CacheLock;
use crate::config::Params;
use crate::exec::Engine;
use crate::hash::{Digest, DirFd, StatSig};
use crate::rules::RuleSet;

const MAGIC: &[u8; 8] = b"ARRKSNAP";
const FORMAT: u32 = 2;
/// Magic, format, checksum of the body.
const HEADER: usize = 8 + 4 + 32;
/// Outputs per independently decodable chunk.
const CHUNK: usize = 4096;

/// Writing a snapshot failed (the build itself is unaffected).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the snapshot {path}: {source}")]
pub struct SnapshotError {
    /// The snapshot file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Everything that decides the graph and the target keys apart from file contents.
pub fn fingerprint(
    rules: &RuleSet,
    params: &Params,
    field_dir: &Path,
    limit: Option<usize>,
) -> Option<Digest> {
    // A rebuilt arrakis may have other builtin VERSIONs or expand differently: its own stat
    // signature stands for all of that.
    let exe = std::env::current_exe().ok()?;
    let exe_sig = StatSig::of_path(&exe).ok()??;
    let mut e = Enc::default();
    e.bytes(b"arrakis-snapshot-fingerprint-v1");
    e.bytes(exe.as_os_str().as_encoded_bytes());
    e.sig(Some(exe_sig));
    e.bytes(format!("{rules:?}").as_bytes());
    // Each builtin's VERSION and code digest, as its keys have them (the executable's
    // signature covers them too, except ARRAKIS_TEST_CODE_CHANGED).
    for b in crate::stages::builtins() {
        e.bytes(
            crate::stages::builtin_version(b.name())
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    for (k, v) in params.iter() {
        e.bytes(k.as_bytes());
        e.bytes(&v.canonical());
    }
    e.u64(limit.map(|l| l as u64 + 1).unwrap_or(0));
    e.bytes(field_dir.as_os_str().as_encoded_bytes());
    Some(Digest::of_bytes(&e.0))
}

/// The unit files of a field and their stat signatures (`None` where missing).
pub type UnitFiles = Vec<(PathBuf, Option<StatSig>)>;

/// The files [`crate::units::Units::load`] reads, stat'ed before it reads them (a signature
/// taken in the same tick as a write is made untrustworthy).
pub fn unit_files(field_dir: &Path) -> Option<UnitFiles> {
    [
        "field.yaml",
        "catalogue/islands.csv",
        "catalogue/components.csv",
    ]
    .iter()
    .map(|rel| {
        let p = field_dir.join(rel);
        let sig = StatSig::of_path(&p).ok()?.map(StatSig::untrusted_if_racy);
        Some((p, sig))
    })
    .collect()
}

/// Where the snapshot of the field in `field_dir` lives.
pub fn path_for(cache_dir: &Path, field_dir: &Path) -> PathBuf {
    let h = Digest::of_bytes(field_dir.as_os_str().as_encoded_bytes()).to_hex();
    cache_dir
        .join("snapshots")
        .join(format!("{}.snap", &h[..32]))
}

/// Write the snapshot of a build in which every target of `engine`'s graph ended up to date
/// (ran or skipped). Returns `Ok(false)` when the build cannot be summarised (a directory input,
/// a target without an ok record, a cache without an epoch).
///
/// Layout after the header: fingerprint, epoch, stages with counts, orphans, files, globs,
/// target ids (length-prefixed), then the outputs in chunks, then the chunk table (count and
/// length of each), then the trailer: number of chunks (u32) and where the chunks start (u64).
pub fn write(
    engine: &Engine,
    fingerprint: &Digest,
    unit_files: &[(PathBuf, Option<StatSig>)],
) -> Result<bool, SnapshotError> {
    let path = path_for(engine.cache.dir(), &engine.graph.field_dir);
    let (Some(sources), Ok(epoch), Some(records)) = (
        engine.sources_seen(),
        engine.cache.epoch_or_new(),
        engine.final_records(),
    ) else {
        return Ok(false);
    };
    let g = engine.graph;
    let stages = g.stages();
    let mut counts = vec![0u64; stages.len()];
    let mut target_stage = Vec::with_capacity(g.targets.len());
    // (path, target, output): the signatures stay in the records.
    let mut outputs: Vec<(&str, u32, u32)> = Vec::new();
    let mut sigs = Vec::with_capacity(g.targets.len());
    for (ti, t) in g.targets.iter().enumerate() {
        match records.sigs(ti) {
            Some(s) if s.len() == t.outputs.len() => sigs.push(s),
            _ => return Ok(false),
        }
        for (k, o) in t.outputs.iter().enumerate() {
            outputs.push((o.rel.as_str(), ti as u32, k as u32));
        }
        let s = stages.iter().position(|x| x == g.stage_of(ti)).unwrap_or(0);
        counts[s] += 1;
        target_stage.push(s as u16);
    }
    outputs.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
    let archived = engine.cache.has_archived();
    let sig_of = |&(rel, ti, k): &(&str, u32, u32)| -> Option<StatSig> {
        let sig = sigs[ti as usize].get(k as usize)?;
        // An output `arrakis archive` removed is up to date while it stays absent.
        if archived {
            let t = &g.targets[ti as usize];
            let rec = engine.cache.get_state(&g.field, &t.id).ok().flatten()?;
            let a = engine.cache.archived(&g.field, rel).ok().flatten();
            if a.is_some_and(|a| rec.outputs.get(k as usize).map(|o| o.digest) == Some(a.digest)) {
                return None;
            }
        }
        Some(sig)
    };

    let mut e = Enc::default();
    e.0.extend_from_slice(&fingerprint.0);
    e.u64(epoch);
    e.u32(stages.len() as u32);
    for (name, n) in stages.iter().zip(&counts) {
        e.bytes(name.as_bytes());
        e.u64(*n);
    }
    e.u32(g.orphans.len() as u32);
    for o in &g.orphans {
        e.bytes(o.as_bytes());
    }
    // Two workers may stat one source at once; the same fact is kept once.
    let mut files: Vec<&(PathBuf, Option<StatSig>)> = unit_files.iter().chain(&sources).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup();
    e.u32(files.len() as u32);
    for (p, sig) in files {
        e.bytes(p.as_os_str().as_encoded_bytes());
        e.sig(*sig);
    }
    e.u32(g.globs.len() as u32);
    for (pattern, found) in &g.globs {
        e.bytes(pattern.as_bytes());
        e.u32(found.len() as u32);
        for f in found {
            e.bytes(f.as_bytes());
        }
    }
    let ids_at = e.0.len();
    e.u64(0);
    e.u32(g.targets.len() as u32);
    for (t, s) in g.targets.iter().zip(&target_stage) {
        e.u16(*s);
        e.bytes(t.id.as_bytes());
    }
    let ids_len = (e.0.len() - ids_at - 8) as u64;
    e.0[ids_at..ids_at + 8].copy_from_slice(&ids_len.to_le_bytes());
    e.u64(outputs.len() as u64);

    // Streamed: chunks are encoded in parallel a batch at a time, never all held at once.
    let io = |source| SnapshotError {
        path: path.clone(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // A snapshot being written when its process was killed is left as a temporary file; the
    // lock is ours, so any there now is such a leftover.
    for e in std::fs::read_dir(dir).map_err(io)?.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(crate::atomic::TMP_PREFIX)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    crate::atomic::write_atomic_with(&path, |file| {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
        let mut h = blake3::Hasher::new();
        let mut put = |f: &mut std::io::BufWriter<&mut std::fs::File>, b: &[u8]| {
            h.update(b);
            f.write_all(b)
        };
        f.write_all(MAGIC)?;
        f.write_all(&FORMAT.to_le_bytes())?;
        f.write_all(&[0u8; 32])?;
        put(&mut f, &e.0)?;
        let data_start = e.0.len() as u64;
        drop(e);
        let mut table = Enc::default();
        for batch in outputs.chunks(CHUNK * 64) {
            let encoded: Vec<Vec<u8>> = batch
                .par_chunks(CHUNK)
                .map(|c| encode_chunk(c.iter().map(|o| (o.0, sig_of(o)))))
                .collect();
            for (c, items) in encoded.iter().zip(batch.chunks(CHUNK)) {
                put(&mut f, c)?;
                table.u32(items.len() as u32);
                table.u64(c.len() as u64);
            }
        }
        let n_chunks = outputs.len().div_ceil(CHUNK) as u32;
        table.u32(n_chunks);
        table.u64(data_start);
        put(&mut f, &table.0)?;
        let sum = h.finalize();
        f.flush()?;
        drop(f);
        file.seek(SeekFrom::Start(12))?;
        file.write_all(sum.as_bytes())
    })
    .map_err(io)?;
    Ok(true)
}

/// Outputs sorted by path, each path front-coded against the previous one in the chunk.
fn encode_chunk<'a>(items: impl Iterator<Item = (&'a str, Option<StatSig>)>) -> Vec<u8> {
    let mut e = Enc::default();
    let mut prev: &[u8] = &[];
    for (path, sig) in items {
        let p = path.as_bytes();
        let shared = p.iter().zip(prev).take_while(|(a, b)| a == b).count();
        e.varint(shared);
        e.varint(p.len() - shared);
        e.0.extend_from_slice(&p[shared..]);
        e.sig(sig);
        prev = p;
    }
    e.0
}

fn checksum(body: &[u8]) -> Digest {
    let mut h = blake3::Hasher::new();
    if body.len() > 1 << 20 {
        h.update_rayon(body);
    } else {
        h.update(body);
    }
    Digest(*h.finalize().as_bytes())
}

/// A snapshot that held: every covered file is as it was, so every target is up to date.
pub struct Verified {
    bytes: memmap2::Mmap,
    /// Stage names and their target counts, in pipeline order.
    pub stages: Vec<(String, u64)>,
    /// Islands that no beam holds.
    pub orphans: Vec<String>,
    /// Files whose signature was checked.
    pub files_checked: usize,
    ids: std::ops::Range<usize>,
}

impl Verified {
    /// Every target in graph order: (id, index into `stages`).
    pub fn targets(&self) -> Vec<(&str, usize)> {
        let mut d = Dec::new(&self.bytes[self.ids.clone()]);
        let n = d.u32().unwrap_or(0) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let (Some(s), Some(id)) = (d.u16(), d.str()) else {
                break;
            };
            out.push((id, s as usize));
        }
        out
    }
}

/// The result of checking a snapshot.
pub enum Check {
    /// Nothing changed since the snapshot: no target needs to run.
    UpToDate(Verified),
    /// Full evaluation is needed, and why (for `ARRAKIS_TIMINGS`).
    Changed(Changed),
}

/// Why the snapshot does not answer for a build.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Changed {
    /// There is none (or it cannot be opened).
    #[error("no snapshot ({0})")]
    Missing(String),
    /// Its bytes do not decode.
    #[error("unreadable snapshot")]
    Unreadable,
    /// Another arrakis version wrote it.
    #[error("snapshot written in another format (by another arrakis version)")]
    Format,
    /// Its checksum does not match.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// Rules, parameters or binary differ.
    #[error("the rules, parameters or arrakis binary changed")]
    Fingerprint,
    /// A record was written since.
    #[error("records changed since the snapshot")]
    Records,
    /// Slurm work finished since.
    #[error("Slurm receipts are waiting")]
    Receipts,
    /// A file it covers changed (or cannot be stat'ed).
    #[error("{0} changed")]
    File(String),
    /// A glob matches other files.
    #[error("the matches of {0} changed")]
    Glob(String),
    /// An output changed.
    #[error("output {0} changed")]
    Output(String),
}

/// Check the snapshot of the field in `field_dir` against the file system and the cache (whose
/// lock is held: the database itself need not be opened).
pub fn check(cache: &CacheLock, field_dir: &Path, fingerprint: &Digest) -> Check {
    match check_inner(cache, field_dir, fingerprint) {
        Ok(v) => Check::UpToDate(v),
        Err(why) => Check::Changed(why),
    }
}

fn check_inner(
    cache: &CacheLock,
    field_dir: &Path,
    fingerprint: &Digest,
) -> Result<Verified, Changed> {
    let path = path_for(cache.dir(), field_dir);
    let file = std::fs::File::open(&path).map_err(|e| Changed::Missing(e.to_string()))?;
    // SAFETY: snapshots are replaced by rename, never written in place, and only by the
    // process holding the cache lock, which is this one (`cache`): the mapped bytes cannot
    // change.
    let bytes = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Changed::Missing(format!("cannot map: {e}")))?;
    let bad = || Changed::Unreadable;
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad());
    }
    if bytes[8..12] != FORMAT.to_le_bytes() {
        return Err(Changed::Format);
    }
    if checksum(&bytes[HEADER..]).0[..] != bytes[12..HEADER] {
        return Err(Changed::Checksum);
    }
    let mut d = Dec::new(&bytes[HEADER..]);
    if d.take(32).ok_or_else(bad)? != fingerprint.0 {
        return Err(Changed::Fingerprint);
    }
    let epoch = d.u64().ok_or_else(bad)?;
    if cache.epoch() != Some(epoch) {
        return Err(Changed::Records);
    }
    let receipts = crate::exec::worker::receipts_dir(cache.dir(), &field_name(field_dir));
    if !crate::exec::worker::receipt_files(&receipts).is_empty() {
        return Err(Changed::Receipts);
    }
    let mut stages = Vec::new();
    for _ in 0..d.u32().ok_or_else(bad)? {
        let name = d.str().ok_or_else(bad)?.to_string();
        stages.push((name, d.u64().ok_or_else(bad)?));
    }
    let mut orphans = Vec::new();
    for _ in 0..d.u32().ok_or_else(bad)? {
        orphans.push(d.str().ok_or_else(bad)?.to_string());
    }
    let n_files = d.u32().ok_or_else(bad)? as usize;
    for _ in 0..n_files {
        let p = Path::new(d.str().ok_or_else(bad)?);
        let was = d.sig().ok_or_else(bad)?;
        let now =
            StatSig::of_path(p).map_err(|e| Changed::File(format!("{}: {e}", p.display())))?;
        if now != was {
            return Err(Changed::File(p.display().to_string()));
        }
    }
    let mut listings = crate::rules::expand::Listings::default();
    for _ in 0..d.u32().ok_or_else(bad)? {
        let pattern = d.str().ok_or_else(bad)?;
        let n = d.u32().ok_or_else(bad)? as usize;
        let mut was = Vec::with_capacity(n);
        for _ in 0..n {
            was.push(d.str().ok_or_else(bad)?);
        }
        let now = crate::rules::expand::glob_matches_in(field_dir, pattern, &mut listings)
            .map_err(|e| Changed::Glob(format!("{pattern} ({e})")))?;
        if now != was {
            return Err(Changed::Glob(pattern.to_string()));
        }
    }
    let ids_len = d.u64().ok_or_else(bad)? as usize;
    let ids_start = HEADER + d.pos;
    d.take(ids_len).ok_or_else(bad)?;
    let n_outputs = d.u64().ok_or_else(bad)? as usize;
    let body = &bytes[HEADER..];
    let trailer = body.len().checked_sub(12).ok_or_else(bad)?;
    let mut t = Dec::new(&body[trailer..]);
    let n_chunks = t.u32().ok_or_else(bad)? as usize;
    let data_start = t.u64().ok_or_else(bad)? as usize;
    let table_at = trailer
        .checked_sub(n_chunks.checked_mul(12).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    if data_start != d.pos || data_start > table_at {
        return Err(bad());
    }
    let mut t = Dec::new(&body[table_at..trailer]);
    let mut chunks = Vec::with_capacity(n_chunks);
    let mut at = data_start;
    for _ in 0..n_chunks {
        let n = t.u32().ok_or_else(bad)? as usize;
        let len = t.u64().ok_or_else(bad)? as usize;
        chunks.push((n, at, len));
        at = at.checked_add(len).ok_or_else(bad)?;
    }
    if at != table_at || chunks.iter().map(|c| c.0).sum::<usize>() != n_outputs {
        return Err(bad());
    }
    let data = body;
    // Each worker thread opens the field directory for itself: every `fstatat` on a shared
    // descriptor takes a reference on one `struct file`, and the two CPUs fighting over that
    // counter cost 8 % of the check.
    let mismatch = chunks.par_iter().find_map_any(|&(n, at, len)| {
        let dir = match DirFd::open(field_dir) {
            Ok(d) => d,
            Err(e) => return Some(Changed::File(format!("{}: {e}", field_dir.display()))),
        };
        check_chunk(&dir, &data[at..at + len], n).err()
    });
    if let Some(why) = mismatch {
        return Err(why);
    }
    Ok(Verified {
        stages,
        orphans,
        files_checked: n_files + n_outputs,
        ids: ids_start..ids_start + ids_len,
        bytes,
    })
}

fn field_name(field_dir: &Path) -> String {
    field_dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Stat every output of one chunk against its recorded signature.
fn check_chunk(dir: &DirFd, bytes: &[u8], n: usize) -> Result<(), Changed> {
    let bad = || Changed::Unreadable;
    let mut d = Dec::new(bytes);
    // The current path, NUL-terminated for fstatat.
    let mut path: Vec<u8> = Vec::with_capacity(256);
    for _ in 0..n {
        let shared = d.varint().ok_or_else(bad)?;
        let rest = d.varint().ok_or_else(bad)?;
        if shared > path.len() {
            return Err(bad());
        }
        path.truncate(shared);
        path.extend_from_slice(d.take(rest).ok_or_else(bad)?);
        path.push(0);
        let was = d.sig().ok_or_else(bad)?;
        let c = CStr::from_bytes_with_nul(&path).map_err(|_| bad())?;
        let now = dir
            .stat_c(c)
            .map_err(|e| Changed::Output(format!("{} ({e})", c.to_string_lossy())))?;
        if now != was {
            return Err(Changed::Output(c.to_string_lossy().to_string()));
        }
        path.pop();
    }
    Ok(())
}

/// Little-endian encoder.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn varint(&mut self, mut v: usize) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn sig(&mut self, s: Option<StatSig>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.u64(s.size);
                self.0.extend_from_slice(&s.mtime_ns.to_le_bytes());
                self.u64(s.inode);
                self.0.extend_from_slice(&s.ctime_ns.to_le_bytes());
            }
        }
    }
}

/// Decoder; `None` on malformed input.
struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u16(&mut self) -> Option<u16> {
        self.arr().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_le_bytes)
    }
    fn varint(&mut self) -> Option<usize> {
        let mut v = 0usize;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first()?;
            v |= ((b & 0x7f) as usize) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn sig(&mut self) -> Option<Option<StatSig>> {
        match *self.take(1)?.first()? {
            0 => Some(None),
            1 => Some(Some(StatSig {
                size: self.u64()?,
                mtime_ns: i64::from_le_bytes(self.arr()?),
                inode: self.u64()?,
                ctime_ns: i64::from_le_bytes(self.arr()?),
            })),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u64) -> StatSig {
        StatSig {
            size: n,
            mtime_ns: 1_700_000_000_000_000_000 + n as i64,
            inode: 1000 + n,
            ctime_ns: -(n as i64),
        }
    }

    #[test]
    fn chunks_round_trip_through_front_coding() {
        let paths = ["a/b/c.fits", "a/b/c.fits.x", "a/b/d", "a/e", "b", "bb/ü/x"];
        let items: Vec<(&str, Option<StatSig>)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, if i == 3 { None } else { Some(sig(i as u64)) }))
            .collect();
        let bytes = encode_chunk(items.iter().copied());
        let mut d = Dec::new(&bytes);
        let mut path = Vec::new();
        for (p, s) in &items {
            let shared = d.varint().unwrap();
            let rest = d.varint().unwrap();
            path.truncate(shared);
            path.extend_from_slice(d.take(rest).unwrap());
            assert_eq!(std::str::from_utf8(&path).unwrap(), *p);
            assert_eq!(d.sig().unwrap(), *s);
        }
        assert_eq!(d.pos, bytes.len());
    }

    #[test]
    fn varints_round_trip() {
        let mut e = Enc::default();
        let vals = [0usize, 1, 127, 128, 300, 1 << 20, usize::MAX >> 1];
        for v in vals {
            e.varint(v);
        }
        let mut d = Dec::new(&e.0);
        for v in vals {
            assert_eq!(d.varint(), Some(v));
        }
        assert_eq!(d.varint(), None);
    }

    #[test]
    fn check_chunk_sees_a_changed_or_missing_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        for f in ["s/a", "s/b"] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        let fd = DirFd::open(dir.path()).unwrap();
        let now = |p: &str| fd.stat(p).unwrap();
        let items = vec![("s/a", now("s/a")), ("s/b", now("s/b")), ("s/c", None)];
        let bytes = encode_chunk(items.into_iter());
        assert_eq!(check_chunk(&fd, &bytes, 3), Ok(()));
        std::fs::write(dir.path().join("s/c"), "new").unwrap();
        assert_eq!(
            check_chunk(&fd, &bytes, 3),
            Err(Changed::Output("s/c".into()))
        );
        std::fs::remove_file(dir.path().join("s/c")).unwrap();
        std::fs::write(dir.path().join("s/b"), "other bytes").unwrap();
        assert_eq!(
            check_chunk(&fd, &bytes, 3),
            Err(Changed::Output("s/b".into()))
        );
        // Truncated data is unreadable, never "up to date".
        assert!(check_chunk(&fd, &bytes[..bytes.len() - 3], 3).is_err());
    }
}
