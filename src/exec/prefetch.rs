//! The page cache around the large source files of a build: read ahead before their targets
//! run, let go of once every target that reads them is done.
//!
//! Owns: one thread that reads files into the page cache while the workers compute (a map of
//! each 16 MiB piece populated with `MADV_POPULATE_READ`, which leaves large folios; on kernels
//! before 5.14 `posix_fadvise(WILLNEED)`), so that a stage which reads cold beam
//! cubes (cutout) finds the next cube in memory instead of waiting for the disk with a core
//! idle; and to drop a source's pages once the build has no further reader for it
//! (`POSIX_FADV_DONTNEED`), so that a field larger than memory does not push out the cutouts
//! and mosaics that the next stages are about to read (a cube is read once, by its cutout).
//! Must never: block a worker or the scheduler (requests are queued to the thread); read a file
//! whose target may not run (the scheduler asks only for stages whose actions are running);
//! drop a file that a target of the build has yet to read, or one that no action read.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Files below this size keep their pages when let go of (they cost little memory, and small
/// sources such as catalogues are read by many targets).
const MIN_DROP_BYTES: u64 = 1 << 20;

/// What to tell the kernel about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Advice {
    /// Read it in.
    WillNeed,
    /// Its cached pages may go.
    DontNeed,
}

/// The read-ahead thread. Dropping it waits for the thread: the lets-go already queued are
/// issued, the read-ahead still queued is not (reading in is synchronous now, and a build that
/// ends or is interrupted must not wait for reads nothing will use).
pub struct Prefetcher {
    tx: Option<mpsc::Sender<(Advice, Vec<PathBuf>)>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Prefetcher {
    /// Start the thread. Without a thread (ulimit -u), requests are dropped: read-ahead only
    /// saves time.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(Advice, Vec<PathBuf>)>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("arrakis-prefetch".into())
            .spawn(move || {
                for (advice, files) in rx {
                    for f in files {
                        advise(&f, advice, &stopped);
                    }
                }
            })
            .ok();
        Prefetcher {
            tx: thread.as_ref().map(|_| tx),
            thread,
            stop,
        }
    }

    /// Ask for `files` to be read ahead (in order, after the requests before them).
    pub fn will_need(&self, files: Vec<PathBuf>) {
        self.send(Advice::WillNeed, files);
    }

    /// Let the cached pages of `files` go: the build will not read them again.
    pub fn done_with(&self, files: Vec<PathBuf>) {
        self.send(Advice::DontNeed, files);
    }

    fn send(&self, advice: Advice, files: Vec<PathBuf>) {
        if let (Some(tx), false) = (&self.tx, files.is_empty()) {
            let _ = tx.send((advice, files));
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Tell the kernel about `path`; any failure is ignored (the action that reads the file reports
/// it).
fn advise(path: &std::path::Path, advice: Advice, stop: &AtomicBool) {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return,
    };
    if advice == Advice::DontNeed {
        if len < MIN_DROP_BYTES {
            return;
        }
        // SAFETY: as below; clean pages are dropped, dirty ones (none: sources are not written)
        // would only be written back first.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        return;
    }
    // Read in through a map of each piece in turn (MADV_POPULATE_READ, Linux 5.14): the page
    // cache then holds the file in large folios, as after a read(), where WILLNEED's read-ahead
    // fills it with 4 KiB pages. On a 118 MB cube that is 4-6 ms of CPU to read it in instead of
    // 15-18, and the cutout's map, its unmap and the DONTNEED after it cost ~10x less (1.8, 0.4
    // and 0.9 ms instead of 7-10, 7-11 and 10-12); the disk delivers it ~2x sooner. The call
    // waits for its piece's reads, in this thread; one piece is mapped at a time.
    let mut at = 0u64;
    while at < len && !stop.load(Ordering::Relaxed) {
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

    /// A request for a file brings it into the page cache (checked with mincore on a map of it);
    /// a missing file is skipped without error; letting go of it drops its pages.
    #[test]
    fn requested_files_end_up_in_the_page_cache() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.fits");
        std::fs::write(&big, vec![7u8; 40 << 20]).unwrap();
        std::fs::write(dir.path().join("small"), b"x").unwrap();
        let f = std::fs::File::open(&big).unwrap();
        // SAFETY: sync and DONTNEED only affect caching.
        unsafe {
            libc::fsync(f.as_raw_fd());
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let pages = map.len().div_ceil(4096);
        let mut vec = vec![0u8; pages];
        let resident = |vec: &mut Vec<u8>| {
            // SAFETY: the map is live and `vec` holds one byte per page.
            let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), vec.as_mut_ptr()) };
            assert_eq!(rc, 0);
            vec.iter().filter(|&&b| b & 1 == 1).count()
        };
        let before = resident(&mut vec);
        assert!(
            before < pages / 2,
            "the file stayed in the page cache: {before} of {pages}"
        );
        // A build that stops asks for nothing more to be read in.
        advise(&big, Advice::WillNeed, &AtomicBool::new(true));
        let unread = resident(&mut vec);
        assert!(
            unread < pages / 2,
            "read in after the stop: {unread} of {pages}"
        );
        let p = Prefetcher::start();
        p.will_need(vec![
            dir.path().join("missing"),
            dir.path().join("small"),
            big.clone(),
        ]);
        // Read in piece by piece by the thread (mincore does not read); the file is larger than
        // any read-ahead window and than one piece. Dropped once done: a drop skips what is
        // still queued.
        let mut now = resident(&mut vec);
        for _ in 0..500 {
            if now == pages {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            now = resident(&mut vec);
        }
        assert_eq!(now, pages, "read ahead: {now} of {pages} pages resident");
        drop(p);
        let p = Prefetcher::start();
        p.done_with(vec![big.clone()]);
        drop(p);
        let after = resident(&mut vec);
        assert!(
            after < pages / 2,
            "let go of: {after} of {pages} pages still resident"
        );
        // The older kernels' way, WILLNEED in pieces, from a given offset on: asynchronous.
        will_need_from(&f, 8 << 20, map.len() as u64);
        let tail = |vec: &mut Vec<u8>| {
            resident(vec);
            vec[2048..].iter().filter(|&&b| b & 1 == 1).count()
        };
        let mut now = tail(&mut vec);
        for _ in 0..500 {
            if now == pages - 2048 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            now = tail(&mut vec);
        }
        assert_eq!(now, pages - 2048, "WILLNEED from 8 MiB on");
    }
}
