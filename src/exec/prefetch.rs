//! The page cache around the source files of a build: read ahead before their targets run,
//! let go of once every target that reads them is done.
//!
//! Owns: two threads that read files into the page cache while the workers compute (a map of
//! each 16 MiB piece populated with `MADV_POPULATE_READ`, which leaves large folios; on kernels
//! before 5.14, and for files under 1 MiB, `posix_fadvise(WILLNEED)`, which returns at once),
//! so that a stage which reads cold beam cubes (cutout) finds the next cube in memory instead
//! of waiting for the disk with a core idle; and to drop a source's pages once the build has no
//! further reader for it (`POSIX_FADV_DONTNEED`, before any read-ahead still queued), so that
//! a field larger than memory does not push out the cutouts and mosaics that the next stages
//! are about to read (a cube is read once, by its cutout). How far ahead it reads is the
//! scheduler's choice (`exec::local`'s `ReadAhead`).
//! Must never: block a worker or the scheduler (requests are queued to the threads); read a
//! file whose target may not run (the scheduler asks only for stages whose actions are
//! running); drop a file that a target of the build has yet to read, or one that no action
//! read; read the rest of a file let go of meanwhile.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Files below this size are read in by one WILLNEED, which starts the reads and returns (a
/// stage's small sources are asked for all at once, and the disk serves them together), and
/// keep their pages when let go of (they cost little memory, and small sources such as
/// catalogues are read by many targets).
pub const SMALL_BYTES: u64 = 1 << 20;

/// What to tell the kernel about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Advice {
    /// Read it in.
    WillNeed,
    /// Its cached pages may go.
    DontNeed,
}

/// The read-ahead threads. Dropping it waits for the threads: the lets-go already asked for
/// are issued, the read-ahead still queued is not (reading in is synchronous, and a build that
/// ends or is interrupted must not wait for reads nothing will use).
pub struct Prefetcher {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What the threads share: the queue, the signal that something was queued, the stop flag.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    queued: Condvar,
    stop: AtomicBool,
}

/// Requests not yet taken, and the files being read in.
#[derive(Default)]
struct Queue {
    /// Files to read in, in the order asked.
    will: VecDeque<PathBuf>,
    /// The files in `will` (what [`Prefetcher::pending`] looks up: `will` can hold a stage's
    /// every small source).
    queued: HashSet<PathBuf>,
    /// Files to let go of: taken before any read-ahead (a cube's pages go as soon as its
    /// cutout is done, however far ahead the reading runs).
    drop: Vec<PathBuf>,
    /// Files a thread is reading in, and those of them let go of meanwhile (the rest of the
    /// file is not read: a target already read it whole).
    reading: HashSet<PathBuf>,
    cancelled: HashSet<PathBuf>,
    /// No more requests: lets-go still queued are issued, read-ahead is not.
    closed: bool,
}

/// Threads reading ahead: two streams keep a virtual disk busier than one (and win it a larger
/// share against the write-back of the outputs), one thread's reads wait for the disk.
const READERS: usize = 2;

impl Prefetcher {
    /// Start the threads. Without threads (ulimit -u), requests are dropped: read-ahead only
    /// saves time.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let threads = (0..READERS)
            .filter_map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("arrakis-prefetch-{i}"))
                    .spawn(move || serve(&shared))
                    .ok()
            })
            .collect();
        Prefetcher { shared, threads }
    }

    /// Ask for `files` to be read ahead (in order, after the requests before them).
    pub fn will_need(&self, files: Vec<PathBuf>) {
        if !files.is_empty() && !self.threads.is_empty() {
            let mut q = lock(&self.shared.queue);
            for f in files {
                if q.queued.insert(f.clone()) {
                    q.will.push_back(f);
                }
            }
            drop(q);
            self.shared.queued.notify_all();
        }
    }

    /// Whether `file` is still to be read in, or being read in: a target that reads it now
    /// would wait for the disk.
    pub fn pending(&self, file: &std::path::Path) -> bool {
        let q = lock(&self.shared.queue);
        q.reading.contains(file) || q.queued.contains(file)
    }

    /// Let the cached pages of `files` go: the build will not read them again.
    pub fn done_with(&self, files: Vec<PathBuf>) {
        if !files.is_empty() && !self.threads.is_empty() {
            let mut q = lock(&self.shared.queue);
            q.will.retain(|f| !files.contains(f));
            for f in &files {
                q.queued.remove(f);
            }
            for f in &files {
                if q.reading.contains(f) {
                    q.cancelled.insert(f.clone());
                }
            }
            q.drop.extend(files);
            drop(q);
            self.shared.queued.notify_all();
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        lock(&self.shared.queue).closed = true;
        self.shared.queued.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// One reading thread: lets-go first, then the read-ahead in order, until closed.
fn serve(shared: &Shared) {
    loop {
        let (advice, f) = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(f) = q.drop.pop() {
                    break (Advice::DontNeed, f);
                }
                if q.closed {
                    return;
                }
                if let Some(f) = q.will.pop_front() {
                    q.queued.remove(&f);
                    q.reading.insert(f.clone());
                    break (Advice::WillNeed, f);
                }
                q = shared.queued.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let go_on =
            || !shared.stop.load(Ordering::Relaxed) && !lock(&shared.queue).cancelled.contains(&f);
        advise(&f, advice, &go_on);
        if advice == Advice::WillNeed {
            let mut q = lock(&shared.queue);
            q.reading.remove(&f);
            if q.cancelled.remove(&f) {
                // Let go of while its last piece was being read in: that piece goes too.
                drop(q);
                advise(&f, Advice::DontNeed, &go_on);
            }
        }
    }
}

/// Tell the kernel about `path`; any failure is ignored (the action that reads the file reports
/// it).
fn advise(path: &std::path::Path, advice: Advice, go_on: &dyn Fn() -> bool) {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return,
    };
    if advice == Advice::DontNeed {
        if len < SMALL_BYTES {
            return;
        }
        // SAFETY: as below; clean pages are dropped, dirty ones (none: sources are not written)
        // would only be written back first.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        return;
    }
    if len < SMALL_BYTES {
        will_need_from(&f, 0, len);
        return;
    }
    // Read in through a map of each piece in turn (MADV_POPULATE_READ, Linux 5.14): the page
    // cache then holds the file in large folios, as after a read(), where WILLNEED's read-ahead
    // fills it with 4 KiB pages. On a 118 MB cube that is 4-6 ms of CPU to read it in instead of
    // 15-18, and the cutout's map, its unmap and the DONTNEED after it cost ~10x less (1.8, 0.4
    // and 0.9 ms instead of 7-10, 7-11 and 10-12); the disk delivers it ~2x sooner. The call
    // waits for its piece's reads, in this thread; one piece is mapped at a time.
    let mut at = 0u64;
    while at < len && go_on() {
        let n = MAP_PIECE.min(len - at);
        if populate(&f, at, n).is_err() {
            // An older kernel (or a file that cannot be mapped): ask for the rest with WILLNEED.
            will_need_from(&f, at, len);
            return;
        }
        at += n;
    }
}

/// Map `len` bytes of `f` from `at` and read them into the page cache.
fn populate(f: &std::fs::File, at: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: the map is never read from here (only populated, then unmapped), so a file
    // truncated meanwhile cannot fault this thread.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(at)
            .len(len as usize)
            .map(f)?
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    map.advise(memmap2::Advice::PopulateRead)
}

/// WILLNEED for `f` from `at` to `len`. One advice reads at most the larger of the device's
/// read-ahead window and its largest request (Linux's force_page_cache_ra), so the file is asked
/// for in pieces no larger than either usually is.
fn will_need_from(f: &std::fs::File, mut at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    while at < len {
        let n = PIECE.min(len - at);
        // SAFETY: the descriptor is open for the duration of the call; the advice only starts
        // reads into the page cache.
        unsafe {
            libc::posix_fadvise(
                f.as_raw_fd(),
                at as i64,
                n as i64,
                libc::POSIX_FADV_WILLNEED,
            );
        }
        at += n;
    }
}

/// Bytes mapped and read in at a time (a multiple of any page size).
const MAP_PIECE: u64 = 16 << 20;

/// Bytes per WILLNEED advice (see [`will_need_from`]).
const PIECE: u64 = 512 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// Which pages of `path` are in the page cache (mincore on a fresh map; it reads nothing).
    fn in_cache(path: &std::path::Path) -> Vec<bool> {
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: the map is only passed to mincore, never read.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let mut v = vec![0u8; map.len().div_ceil(4096)];
        // SAFETY: the map is live and `v` holds one byte per page.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), v.as_mut_ptr()) };
        assert_eq!(rc, 0);
        v.iter().map(|b| b & 1 == 1).collect()
    }

    /// Pages of `path` in the page cache, and its pages.
    fn resident(path: &std::path::Path) -> (usize, usize) {
        let v = in_cache(path);
        (v.iter().filter(|&&b| b).count(), v.len())
    }

    /// Fewer than half the pages of `path` are in the page cache (`what` says when).
    fn assert_mostly_out(path: &std::path::Path, what: &str) {
        let (n, of) = resident(path);
        assert!(n < of / 2, "{what}: {n} of {of} pages resident");
    }

    /// Write `len` bytes to `path` and put them out of the page cache.
    fn cold_file(path: &std::path::Path, len: usize) -> std::fs::File {
        use std::os::fd::AsRawFd;
        std::fs::write(path, vec![7u8; len]).unwrap();
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: sync and DONTNEED only affect caching.
        unsafe {
            libc::fsync(f.as_raw_fd());
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        f
    }

    /// A request for a file brings it into the page cache; a missing file is skipped without
    /// error; letting go of it drops its pages; a file let go of while queued or being read in
    /// is read no further.
    #[test]
    fn requested_files_end_up_in_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.fits");
        let f = cold_file(&big, 40 << 20);
        std::fs::write(dir.path().join("small"), b"x").unwrap();
        let pages = resident(&big).1;
        assert_mostly_out(&big, "the file stayed in the page cache");
        // A build that stops asks for nothing more to be read in.
        advise(&big, Advice::WillNeed, &|| false);
        assert_mostly_out(&big, "read in after the stop");
        let p = Prefetcher::start();
        assert!(!p.pending(&big), "nothing asked yet");
        p.will_need(vec![
            dir.path().join("missing"),
            dir.path().join("small"),
            big.clone(),
        ]);
        // Read in piece by piece by a thread; the file is larger than any read-ahead window
        // and than one piece. Dropped once done: a drop skips what is still queued.
        let mut now = resident(&big).0;
        for _ in 0..500 {
            if now == pages {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            now = resident(&big).0;
        }
        assert_eq!(now, pages, "read ahead: {now} of {pages} pages resident");
        // Read in: no longer pending (the thread leaves it just after its last piece).
        for _ in 0..500 {
            if !p.pending(&big) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!p.pending(&big), "still pending once read in");
        drop(p);
        let p = Prefetcher::start();
        p.done_with(vec![big.clone()]);
        drop(p);
        assert_mostly_out(&big, "let go of");
        // A file let go of while queued is not read in; one let go of once its reading has
        // begun is read no further than its piece being read (and the kernel's read-ahead
        // after it), and what was read goes. Without that, all 128 MiB are read in.
        let long = dir.path().join("long.fits");
        cold_file(&long, 128 << 20);
        let p = Prefetcher::start();
        p.will_need(vec![long.clone()]);
        p.done_with(vec![long.clone()]);
        drop(p);
        assert_mostly_out(&long, "let go of while queued");
        let p = Prefetcher::start();
        p.will_need(vec![long.clone()]);
        assert!(p.pending(&long), "queued or being read in");
        for _ in 0..5000 {
            if resident(&long).0 > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        p.done_with(vec![long.clone()]);
        // The threads are not stopped meanwhile (a stop ends the reading by itself).
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(p);
        assert_mostly_out(&long, "let go of while read ahead");
        // The older kernels' way, WILLNEED in pieces, from a given offset on: asynchronous.
        will_need_from(&f, 8 << 20, (pages * 4096) as u64);
        let tail = || in_cache(&big)[2048..].iter().filter(|&&b| b).count();
        let mut now = tail();
        for _ in 0..500 {
            if now == pages - 2048 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            now = tail();
        }
        assert_eq!(now, pages - 2048, "WILLNEED from 8 MiB on");
    }
}
