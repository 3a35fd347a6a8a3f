//! Resource limits a shared node sets (`ulimit -v`, `-f`, `-n`, `-u`): met with a clear message
//! naming the limit and what to do, never a panic, an abort or a silent kill.
//!
//! Owns: the process's start-up preparation ([`prepare`]: SIGXFSZ ignored so that a write over
//! `ulimit -f` fails with an error instead of killing the process; the open-files soft limit
//! raised to its hard limit; the global thread pool started with fewer threads when threads are
//! scarce), the allocator guard ([`Guarded`]: an allocation that fails ends the process with a
//! message naming the memory limit, as an `abort` would but said), and the hint an I/O error
//! gets when a limit caused it ([`hint_for`]).
//! Must never: raise a hard limit; allocate while reporting a failed allocation.

use std::alloc::{GlobalAlloc, Layout};

/// A limit as `ulimit` shows it: `None` for unlimited.
fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    // SAFETY: getrlimit fills the struct.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

/// Prepare the process for the limits it runs under. Called once, first thing in `main`.
pub fn prepare() -> Result<(), String> {
    // SAFETY: setting a signal's disposition (process-wide) at the start.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Open files: the soft limit up to the hard one (as make and ninja users expect).
    // SAFETY: get/setrlimit on a filled struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
    // The global pool (snapshot checks, hashing). A failed attempt leaves rayon's global pool
    // unset for good, so there is one attempt, and its error is the one said.
    let want = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(want)
        .build_global()
        .map_err(|e| format!("cannot start {want} threads ({e}): {}", thread_hint()))
}

/// What to do when threads cannot start.
pub fn thread_hint() -> String {
    let mut why = Vec::new();
    if let Some(v) = soft_limit(libc::RLIMIT_AS) {
        why.push(format!(
            "the address-space limit (ulimit -v) is {} MiB",
            v >> 20
        ));
    }
    if let Some(u) = soft_limit(libc::RLIMIT_NPROC).filter(|&u| u < 4096) {
        why.push(format!("the process/thread limit (ulimit -u) is {u}"));
    }
    format!(
        "{}; raise it, or run fewer jobs at once (-j 1)",
        if why.is_empty() {
            "the system has no room for another thread".to_string()
        } else {
            why.join(" and ")
        }
    )
}

/// The hint for an I/O error a limit caused, if one did.
pub fn hint_for(e: &std::io::Error) -> Option<String> {
    match e.raw_os_error()? {
        libc::EFBIG => Some(match soft_limit(libc::RLIMIT_FSIZE) {
            Some(f) => format!(
                "the file-size limit (ulimit -f) is {} bytes; raise it (ulimit -f unlimited) and build again",
                f
            ),
            None => "the file is larger than the file system allows".to_string(),
        }),
        libc::EMFILE => Some(format!(
            "too many open files: the limit (ulimit -n) is {}; raise it, or run fewer jobs at once (-j)",
            soft_limit(libc::RLIMIT_NOFILE).map_or("unlimited".into(), |n| n.to_string())
        )),
        libc::ENFILE => Some("the system's table of open files is full; run fewer jobs at once (-j)".into()),
        libc::ENOMEM => Some(match soft_limit(libc::RLIMIT_AS) {
            Some(v) => format!(
                "out of memory: the address-space limit (ulimit -v) is {} MiB; raise it, or run fewer jobs at once (-j 1)",
                v >> 20
            ),
            None => "out of memory; run fewer jobs at once (-j 1)".into(),
        }),
        _ => None,
    }
}

/// An allocator that ends the process with a message naming the memory limit when an
/// allocation fails (Rust's default prints "memory allocation failed" and aborts).
pub struct Guarded<A>(pub A);

/// Write the out-of-memory message without allocating, then exit with status 1. Outputs are
/// written atomically and records only after them: what was done stays done.
#[cold]
fn out_of_memory(size: usize) -> ! {
    struct Buf {
        bytes: [u8; 400],
        len: usize,
    }
    impl std::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let n = s.len().min(self.bytes.len() - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut b = Buf {
        bytes: [0; 400],
        len: 0,
    };
    let _ = std::fmt::Write::write_fmt(
        &mut b,
        format_args!(
            "arrakis: error: out of memory (allocating {} {})",
            if size >= 1 << 20 { size >> 20 } else { size },
            if size >= 1 << 20 { "MiB" } else { "bytes" }
        ),
    );
    let _ = match soft_limit(libc::RLIMIT_AS) {
        Some(v) => std::fmt::Write::write_fmt(
            &mut b,
            format_args!(
                ": the address-space limit (ulimit -v) is {} MiB; raise it, or run fewer jobs at once (-j 1); finished targets are kept\n",
                v >> 20
            ),
        ),
        None => std::fmt::Write::write_str(
            &mut b,
            ": run fewer jobs at once (-j 1); finished targets are kept\n",
        ),
    };
    // SAFETY: writing an initialised buffer to stderr, then ending the process.
    unsafe {
        libc::write(2, b.bytes.as_ptr().cast(), b.len);
        libc::_exit(1)
    }
}

// SAFETY: every call is forwarded to the inner allocator unchanged; only a null result is
// turned into the end of the process.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Guarded<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}
