//! CPU time and hashing spent on a target's behalf, for the per-stage table and the report.
//!
//! Owns: [`measure`], which charges to a closure the CPU time of the thread running it (from
//! `CLOCK_THREAD_CPUTIME_ID`), the CPU of work it handed to the hashing pool and waited for
//! ([`add_offloaded`]), and the bytes it hashed ([`add_hashed`]); a target run inside another's
//! wait (rayon steals work while a thread waits) is charged to itself, not to both.
//! Work a target's own parallel loops hand to other pool threads (rm3d, the catalogue) is not
//! in its figure; [`process_cpu`] gives the whole process's, for the closing line.
//! Must never: change what runs or how.

use std::cell::Cell;

thread_local! {
    static OFFLOADED: Cell<f64> = const { Cell::new(0.0) };
    static HASHED: Cell<u64> = const { Cell::new(0) };
    static NESTED_CPU: Cell<f64> = const { Cell::new(0.0) };
    static NESTED_HASHED: Cell<u64> = const { Cell::new(0) };
}

fn clock(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; the clock ids are the kernel's.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU seconds this thread has used.
pub fn thread_cpu() -> f64 {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU seconds this process has used (every thread).
pub fn process_cpu() -> f64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Charge `cpu` seconds spent on another thread for this one's work (which it waited for).
pub fn add_offloaded(cpu: f64) {
    OFFLOADED.with(|c| c.set(c.get() + cpu));
}

/// Count `bytes` hashed for this thread's work.
pub fn add_hashed(bytes: u64) {
    HASHED.with(|c| c.set(c.get() + bytes));
}

/// What a closure used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds (its thread's, and the hashing it waited for).
    pub cpu: f64,
    /// Bytes hashed (inputs, outputs).
    pub hashed_bytes: u64,
}

/// Run `f`, returning what it used, less what targets nested in it (run on this thread while it
/// waited) used: those are measured on their own.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    let (c0, o0) = (thread_cpu(), OFFLOADED.with(Cell::get));
    let (h0, nc0, nh0) = (
        HASHED.with(Cell::get),
        NESTED_CPU.with(Cell::get),
        NESTED_HASHED.with(Cell::get),
    );
    let r = f();
    let cpu = (thread_cpu() - c0) + (OFFLOADED.with(Cell::get) - o0);
    let hashed = HASHED.with(Cell::get) - h0;
    let (nc, nh) = (
        NESTED_CPU.with(Cell::get) - nc0,
        NESTED_HASHED.with(Cell::get) - nh0,
    );
    // An enclosing measure sees all of this as nested.
    NESTED_CPU.with(|c| c.set(nc0 + cpu));
    NESTED_HASHED.with(|c| c.set(nh0 + hashed));
    (
        r,
        Usage {
            cpu: (cpu - nc).max(0.0),
            hashed_bytes: hashed.saturating_sub(nh),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(seconds: f64) {
        let t0 = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - t0 < seconds {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            std::hint::black_box(x);
        }
    }

    #[test]
    fn nested_work_is_charged_once() {
        let ((_, inner), outer) = measure(|| {
            spin(0.02);
            add_hashed(100);
            measure(|| {
                spin(0.03);
                add_hashed(7);
                add_offloaded(0.5);
            })
        });
        assert!(inner.cpu >= 0.53 && inner.cpu < 0.6, "{inner:?}");
        assert_eq!(inner.hashed_bytes, 7);
        assert!(outer.cpu >= 0.02 && outer.cpu < 0.03 + 0.01, "{outer:?}");
        assert_eq!(outer.hashed_bytes, 100);
        // Sleeping is not CPU.
        let (_, s) = measure(|| std::thread::sleep(std::time::Duration::from_millis(30)));
        assert!(s.cpu < 0.01, "{s:?}");
    }
}
