//! Content hashing, the canonical target-key encoding and the stat-cache fingerprint.
//!
//! Owns: how a file's bytes become a [`Digest`], how a target's key is derived from its rule name,
//! action descriptor, parameter values and input digests (DESIGN.md §1), and the [`StatSig`]
//! fingerprint that lets a no-op build stat files instead of reading them (§2.6).
//! Must never: include mtimes, absolute paths or host names in a key; touch sled (the cache module
//! stores what this module computes).
//! Invariant: the same rule, action, parameters and input contents give the same key bytes on any
//! machine and in any process.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Files at least this large are hashed from a populated memory map (no copy out of the page
/// cache: on this project's VMs that copy cost as much as the hash).
const MMAP_THRESHOLD_BYTES: u64 = 128 << 10;
/// Files at least this large are hashed on the hashing pool with rayon (multithreaded BLAKE3);
/// smaller ones on the calling thread (handing a cutout to the pool costs more than it saves).
const POOL_THRESHOLD_BYTES: u64 = 16 << 20;

/// A BLAKE3 digest of a file's contents or of a key encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
    /// The first 12 hex characters: enough for humans reading `explain` output.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
    /// Digest of an in-memory byte string.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// What `stat` says about a file: if all fields match a recorded signature, the file's recorded
/// digest is trusted without reading it (the ninja/git approach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatSig {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (saturated outside 1677–2262; the
    /// change time, which only the kernel sets, is always inside).
    #[serde(with = "wide_ns")]
    pub mtime_ns: i64,
    /// Inode number (changes when a file is replaced by rename).
    pub inode: u64,
    /// Change time in nanoseconds: catches `touch -m` back-dating.
    #[serde(with = "wide_ns")]
    pub ctime_ns: i64,
}

/// Times are stored in records as 128-bit integers (the format records have always had) and
/// held in memory as 64-bit ones: 32 bytes a signature instead of 48, across the millions of
/// outputs a big field's records list.
mod wide_ns {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i128(*v as i128)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = i128::deserialize(d)?;
        Ok(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
}

impl StatSig {
    /// Build a signature from metadata.
    pub fn from_metadata(md: &std::fs::Metadata) -> StatSig {
        StatSig {
            size: md.size(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec()),
            inode: md.ino(),
            ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        }
    }

    /// Stat `path`; `Ok(None)` when it does not exist.
    pub fn of_path(path: &Path) -> std::io::Result<Option<StatSig>> {
        match std::fs::metadata(path) {
            Ok(md) => Ok(Some(StatSig::from_metadata(&md))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// This signature, or one that never matches if it was taken so soon after the file's last
    /// write that a later write in the same timestamp tick could go unseen.
    pub fn untrusted_if_racy(self) -> StatSig {
        if self.is_racy() {
            StatSig {
                size: u64::MAX,
                ..self
            }
        } else {
            self
        }
    }

    /// A signature taken within this many nanoseconds of the file's last write may be followed by
    /// a second write in the same timestamp tick ("racy" in git's terms): do not trust it later.
    pub fn is_racy(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        now.saturating_sub(self.mtime_ns) < 20_000_000
    }
}

/// An open directory (`O_PATH`) that files are stat'ed relative to: the kernel walks only the
/// relative part of each path instead of every component from `/` (on a no-op build of a big
/// field, path walking is a third of the cost of checking outputs).
pub struct DirFd(std::os::fd::OwnedFd);

impl DirFd {
    /// Open `dir`.
    pub fn open(dir: &Path) -> std::io::Result<DirFd> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?;
        Ok(DirFd(f.into()))
    }

    /// [`StatSig::of_path`] of `rel`, relative to this directory (symbolic links followed, as
    /// `std::fs::metadata` does).
    /// Paths that fit (all of a field's, in practice) are made NUL-terminated on the stack: no
    /// allocation per call, which matters at a million outputs a build.
    pub fn stat(&self, rel: &str) -> std::io::Result<Option<StatSig>> {
        let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
        let mut buf = [0u8; 512];
        if rel.len() < buf.len() {
            buf[..rel.len()].copy_from_slice(rel.as_bytes());
            let c =
                std::ffi::CStr::from_bytes_with_nul(&buf[..=rel.len()]).map_err(|_| invalid())?;
            return self.stat_c(c);
        }
        let c = std::ffi::CString::new(rel).map_err(|_| invalid())?;
        self.stat_c(&c)
    }

    /// [`DirFd::stat`] of a path that is already NUL-terminated (no allocation per call).
    pub fn stat_c(&self, c: &std::ffi::CStr) -> std::io::Result<Option<StatSig>> {
        use std::os::fd::AsRawFd;
        // SAFETY: `c` is NUL-terminated and outlives the call; `st` is a properly sized
        // out-parameter that fstatat fills on success.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatat(self.0.as_raw_fd(), c.as_ptr(), &mut st, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(StatSig {
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            inode: st.st_ino,
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        }))
    }
}

/// Seconds and nanoseconds since the epoch as nanoseconds.
fn ns(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// The pool large files are hashed on: one of its own, never the build's. A build worker that
/// hashes a file holds that path's digest memo meanwhile (so others asking for the path wait
/// for one read); were the hash split on the build's pool, the worker would take other build
/// jobs while waiting for its pieces, and one of them asking for the same path would wait for
/// the memo held further down its own stack, for ever.
fn hash_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("arrakis-hash-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// What a path is when it is neither a regular file nor a directory (`None` for those two): such
/// a path cannot be an input, since a FIFO blocks whoever reads it and a device such as
/// `/dev/zero` never ends.
pub fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() || ft.is_dir() {
        None
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// The error for an input that is `kind` (from [`special_kind`]).
pub fn special_file_error(kind: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "is {kind}, not a regular file: inputs must be regular files or directories \
             (a pipe would block the build, a device never ends); copy the data into a file"
        ),
    )
}

/// Stat `path` (following symlinks) and refuse what [`special_kind`] names, for readers that
/// open the file by name themselves (cfitsio); others use [`open_regular`].
pub fn check_regular(path: &Path) -> std::io::Result<std::fs::Metadata> {
    let md = std::fs::metadata(path)?;
    match special_kind(&md.file_type()) {
        Some(kind) => Err(special_file_error(kind)),
        None => Ok(md),
    }
}

/// Open an input for reading, refusing what [`special_kind`] names: opened without blocking (a
/// FIFO would block `open` itself), then judged by `fstat` of what was opened, so there is one
/// check and no window between it and the open. Returns the file and its metadata.
pub fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let md = file.metadata()?;
    match special_kind(&md.file_type()) {
        Some(kind) => Err(special_file_error(kind)),
        None => Ok((file, md)),
    }
}

/// Read a whole input file: a FIFO or device is refused (see [`special_kind`]) and at most the
/// length the file had when opened is read, so a read is bounded by what the file declares.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, md) = open_regular(path)?;
    let mut buf = Vec::with_capacity(md.len() as usize);
    file.take(md.len()).read_to_end(&mut buf)?;
    Ok(buf)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "is not UTF-8 text (byte {} is not valid)",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Hash a file's contents. Large files are memory-mapped and hashed on several threads (of the
/// hashing pool; the caller blocks until it is done, taking no other work meanwhile). Reads at
/// most the length the file had when opened; FIFOs and devices are refused.
pub fn hash_file(path: &Path) -> std::io::Result<Digest> {
    let (file, md) = open_regular(path)?;
    let len = md.len();
    crate::cputime::add_hashed(len);
    let mut hasher = blake3::Hasher::new();
    if len >= MMAP_THRESHOLD_BYTES {
        // Mapped and populated in one call (every page already in the page cache mapped at
        // once, the rest read ahead), not a fault per 4 KiB page: on a beam cube that halves
        // the CPU of reading it. Only the length the file had when opened is hashed.
        // SAFETY: the map is only read; inputs are not rewritten during a build (outputs are
        // renamed into place), and a file truncated under the map would fault as blake3's own
        // map would.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(len as usize)
                .populate()
                .map(&file)?
        };
        let Some(pool) = hash_pool().filter(|_| len >= POOL_THRESHOLD_BYTES) else {
            hasher.update(&map);
            return Ok(Digest(*hasher.finalize().as_bytes()));
        };
        // Spawned and waited for on a channel, not `install`: a build worker waiting in
        // `install` would take other targets' work meanwhile (rayon's cross-pool wait).
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        pool.spawn(move || {
            let t0 = crate::cputime::thread_cpu();
            let r = Ok(Digest(*hasher.update_rayon(&map).finalize().as_bytes()));
            let _ = tx.send((r, crate::cputime::thread_cpu() - t0));
        });
        let (r, cpu) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the hashing thread stopped"))?;
        crate::cputime::add_offloaded(cpu);
        return r;
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    hasher.update(&buf);
    Ok(Digest(*hasher.finalize().as_bytes()))
}

/// Digests taken by the pass that already reads or writes a whole file, so that no second
/// pass reads it to hash it: the engine asks for a file ([`witness::want`], answered for as
/// long as the returned [`witness::Asked`] lives); a reader that goes through the whole of
/// that file hashes it as it goes and leaves the digest with the file's signature
/// ([`witness::Streaming`]), a writer that hashed the bytes it wrote leaves theirs
/// ([`witness::leave_written`]); the engine takes it ([`witness::take`]) only while the file
/// still has that signature (the stat cache's rule). Only files asked for are held.
pub mod witness {
    use super::{Digest, StatSig};
    use std::collections::HashMap;
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::{LazyLock, Mutex, MutexGuard};

    type Slots = HashMap<PathBuf, Option<(StatSig, Digest)>>;
    static SLOTS: LazyLock<Mutex<Slots>> = LazyLock::new(|| Mutex::new(HashMap::new()));

    fn slots() -> MutexGuard<'static, Slots> {
        SLOTS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request for a file's digest; dropping it withdraws the request (and any digest left).
    #[must_use = "the request is withdrawn when this is dropped"]
    #[derive(Debug)]
    pub struct Asked(PathBuf);

    impl Asked {
        /// The file asked for.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Asked {
        fn drop(&mut self) {
            slots().remove(&self.0);
        }
    }

    /// Ask for the digest of `path` from whoever reads or writes it whole next.
    pub fn want(path: &Path) -> Asked {
        slots().entry(path.to_path_buf()).or_insert(None);
        Asked(path.to_path_buf())
    }

    /// Whether the digest of `path` is asked for and not yet left.
    pub fn wanted(path: &Path) -> bool {
        matches!(slots().get(path), Some(None))
    }

    /// `digest` is that of the `len` bytes just written to `file` at `path` (by the writer that
    /// created it): leave it if asked for and the file is that long.
    pub fn leave_written(path: &Path, file: &File, len: u64, digest: Digest) {
        let Some(now) = file.metadata().ok().map(|m| StatSig::from_metadata(&m)) else {
            return;
        };
        if now.size == len {
            if let Some(slot @ None) = slots().get_mut(path) {
                *slot = Some((now, digest));
            }
        }
    }

    /// A digest left piece by piece, for a reader that hashes a file's bytes as it goes through
    /// them (each piece while it is in the cache): the pieces in order must be the whole file,
    /// which must keep one signature throughout (checked at [`Streaming::finish`]).
    pub struct Streaming {
        path: PathBuf,
        before: StatSig,
        hasher: blake3::Hasher,
        len: u64,
    }

    impl Streaming {
        /// Start hashing `file` at `path` if its digest is asked for.
        pub fn begin(path: &Path, file: &File) -> Option<Streaming> {
            if !wanted(path) {
                return None;
            }
            let before = StatSig::from_metadata(&file.metadata().ok()?);
            Some(Streaming {
                path: path.to_path_buf(),
                before,
                hasher: blake3::Hasher::new(),
                len: 0,
            })
        }

        /// The next bytes of the file.
        pub fn update(&mut self, bytes: &[u8]) {
            crate::cputime::add_hashed(bytes.len() as u64);
            self.hasher.update(bytes);
            self.len += bytes.len() as u64;
        }

        /// Leave the digest, if the file still has the signature it had at the start and the
        /// pieces were all of it.
        pub fn finish(self, file: &File) {
            let now = file.metadata().ok().map(|m| StatSig::from_metadata(&m));
            if now == Some(self.before) && self.before.size == self.len {
                let digest = Digest(*self.hasher.finalize().as_bytes());
                if let Some(slot) = slots().get_mut(&self.path) {
                    *slot = Some((self.before, digest));
                }
            }
        }
    }

    /// The digest left for `path` if the file has signature `now` (taking it: asked for once).
    pub fn take(path: &Path, now: StatSig) -> Option<Digest> {
        let mut slots = slots();
        match slots.get_mut(path)?.take()? {
            (sig, d) if sig == now => Some(d),
            _ => None,
        }
    }
}

/// Incremental builder of the canonical key encoding (DESIGN.md §1).
///
/// Every field is written length-prefixed with a one-byte tag, so no two different sequences of
/// fields encode to the same bytes.
pub struct KeyHasher {
    hasher: blake3::Hasher,
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    /// Start a key; the domain string versions the encoding itself.
    pub fn new() -> KeyHasher {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"arrakis-target-key-v1\0");
        KeyHasher { hasher }
    }

    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.hasher.update(&[tag]);
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// The rule name.
    pub fn rule(&mut self, name: &str) {
        self.field(b'R', name.as_bytes());
    }
    /// The action descriptor: builtin name and VERSION, or the command template.
    pub fn action(&mut self, descriptor: &str) {
        self.field(b'A', descriptor.as_bytes());
    }
    /// One parameter: its name and its canonical typed encoding. Call in sorted name order.
    pub fn param(&mut self, name: &str, canonical: &[u8]) {
        self.field(b'P', name.as_bytes());
        self.field(b'V', canonical);
    }
    /// Start an input slot (declared order), with the number of files it holds.
    pub fn input_slot(&mut self, name: &str, count: usize) {
        self.field(b'I', name.as_bytes());
        self.hasher.update(&(count as u64).to_le_bytes());
    }
    /// One input file of the current slot: its path relative to the field directory (so a gather
    /// knows which unit each content belongs to) and its content digest.
    pub fn input_file(&mut self, rel_path: &str, digest: &Digest) {
        self.field(b'F', rel_path.as_bytes());
        self.hasher.update(&digest.0);
    }
    /// An input slot that is absent (optional file not present).
    pub fn input_absent(&mut self) {
        self.field(b'N', b"");
    }
    /// The finished key.
    pub fn finish(self) -> Digest {
        Digest(*self.hasher.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build worker hashing a large file while it holds a lock (the digest memo does) must not
    /// run other build jobs meanwhile: one that takes the same lock would wait for ever. Seen
    /// as a hung build with a holography model read by many linmos targets. The pattern: jobs
    /// come from outside the pool (as the build loop's do); one worker is busy for a moment
    /// while the other holds the lock and hashes, then goes idle and steals a piece of that
    /// hash, so the hashing worker waits for the piece and, had it been hashing on its own
    /// pool, would take a queued job meanwhile, which waits for the lock it holds.
    #[test]
    fn hashing_a_large_file_under_a_lock_takes_no_other_work() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..48usize << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let want = Digest(*blake3::hash(&bytes).as_bytes());
        drop(bytes);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let memo = std::sync::Arc::new(std::sync::Mutex::new(None::<Digest>));
            for _ in 0..10 {
                *memo.lock().unwrap() = None;
                let (tx, rx) = std::sync::mpsc::channel();
                let busy = tx.clone();
                pool.spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    let _ = busy.send(());
                });
                for _ in 0..9 {
                    let (memo, path, tx) = (memo.clone(), p.clone(), tx.clone());
                    pool.spawn(move || {
                        let mut slot = memo.lock().unwrap();
                        if slot.is_none() {
                            *slot = Some(hash_file(&path).unwrap());
                        }
                        let _ = tx.send(());
                    });
                }
                for _ in 0..10 {
                    rx.recv().unwrap();
                }
            }
            let _ = done_tx.send(hash_file(&p).unwrap());
        });
        let got = done_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("hashing under a lock deadlocked");
        assert_eq!(got, want);
    }

    #[test]
    fn signatures_keep_the_128_bit_record_encoding() {
        #[derive(Serialize, Deserialize)]
        struct Wide {
            size: u64,
            mtime_ns: i128,
            inode: u64,
            ctime_ns: i128,
        }
        let sig = StatSig {
            size: 7,
            mtime_ns: 1_700_000_000_123_456_789,
            inode: 42,
            ctime_ns: -5,
        };
        let wide = Wide {
            size: 7,
            mtime_ns: 1_700_000_000_123_456_789,
            inode: 42,
            ctime_ns: -5,
        };
        let bytes = bincode::serialize(&sig).unwrap();
        assert_eq!(bytes, bincode::serialize(&wide).unwrap());
        assert_eq!(bincode::deserialize::<StatSig>(&bytes).unwrap(), sig);
        // A time outside what 64 bits of nanoseconds hold saturates instead of wrapping.
        let far = Wide {
            mtime_ns: i128::from(i64::MAX) * 4,
            ctime_ns: i128::from(i64::MIN) * 4,
            ..wide
        };
        let back: StatSig = bincode::deserialize(&bincode::serialize(&far).unwrap()).unwrap();
        assert_eq!((back.mtime_ns, back.ctime_ns), (i64::MAX, i64::MIN));
        assert!(!StatSig {
            mtime_ns: i64::MIN,
            ..sig
        }
        .is_racy());
    }

    #[test]
    fn stat_relative_to_an_open_directory_equals_stat_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let long = "d".repeat(200);
        let sub = dir.path().join("a").join(&long).join(&long).join(&long);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("f.fits"), b"bytes").unwrap();
        std::fs::write(dir.path().join("top"), b"x").unwrap();
        let fd = DirFd::open(dir.path()).unwrap();
        // A short path and a long one (several components over 200 bytes each).
        let rel_long = format!("a/{long}/{long}/{long}/f.fits");
        assert!(rel_long.len() > 512);
        for rel in ["top", rel_long.as_str()] {
            let want = StatSig::of_path(&dir.path().join(rel)).unwrap();
            assert!(want.is_some());
            assert_eq!(fd.stat(rel).unwrap(), want, "{rel}");
        }
        assert_eq!(fd.stat("a/missing").unwrap(), None);
        // The longest path built on the stack, and a path with a NUL in it.
        let edge = format!("a/{long}/{long}/{}", "m".repeat(107));
        assert_eq!(edge.len(), 511);
        assert_eq!(fd.stat(&edge).unwrap(), None);
        assert_eq!(
            fd.stat("to\0p").unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        assert!(
            fd.stat("top/below").is_err(),
            "a file used as a directory is an error"
        );
        assert!(DirFd::open(&dir.path().join("top")).is_err());
    }

    #[test]
    fn file_hash_matches_in_memory_hash_for_small_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0usize,
            10,
            (MMAP_THRESHOLD_BYTES as usize) + 17,
            (POOL_THRESHOLD_BYTES as usize) + 5,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(hash_file(&p).unwrap(), Digest::of_bytes(&data));
        }
    }

    #[test]
    fn key_fields_are_unambiguous() {
        let mut a = KeyHasher::new();
        a.rule("ab");
        a.action("c");
        let mut b = KeyHasher::new();
        b.rule("a");
        b.action("bc");
        assert_ne!(a.finish(), b.finish());
    }
}
