//! CPU time of one OS thread, readable from any other thread.
//!
//! The watchdog reads a worker's clock while that worker is stuck in JS: a CPU-bound
//! loop never returns from its poll, so only another thread can see the budget go.

use std::time::Duration;

/// A handle on one thread's CPU clock.
#[derive(Debug, Clone, Copy)]
pub struct ThreadCpuClock {
    #[cfg(target_os = "linux")]
    clock: libc::clockid_t,
    #[cfg(not(target_os = "linux"))]
    origin: std::time::Instant,
}

impl ThreadCpuClock {
    /// The clock of the calling thread.
    pub fn current() -> Self {
        #[cfg(target_os = "linux")]
        {
            let mut clock: libc::clockid_t = 0;
            // SAFETY: pthread_self() is always a valid thread handle for the caller and
            // `clock` is a valid out-pointer.
            let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
            if rc != 0 {
                clock = libc::CLOCK_THREAD_CPUTIME_ID;
            }
            ThreadCpuClock { clock }
        }
        #[cfg(not(target_os = "linux"))]
        {
            // Without per-thread clocks readable from elsewhere, wall time is the
            // conservative stand-in: it over-counts, never under-counts.
            ThreadCpuClock {
                origin: std::time::Instant::now(),
            }
        }
    }

    /// CPU time consumed by the thread so far.
    pub fn now(&self) -> Duration {
        #[cfg(target_os = "linux")]
        {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid out-pointer; an invalid clock id (thread gone)
            // makes the call fail, which we read as zero.
            let rc = unsafe { libc::clock_gettime(self.clock, &mut ts) };
            if rc != 0 {
                return Duration::ZERO;
            }
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.origin.elapsed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_thread_sees_a_busy_thread_burn_cpu() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::spawn(move || {
            let _ = tx.send(ThreadCpuClock::current());
            let mut x = 0u64;
            while stop_rx.try_recv().is_err() {
                x = x.wrapping_mul(31).wrapping_add(7);
                std::hint::black_box(x);
            }
        });
        let clock = rx.recv().expect("clock");
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(60));
        let burnt = clock.now() - start;
        let _ = stop_tx.send(());
        let _ = busy.join();
        assert!(burnt >= Duration::from_millis(20), "burnt {burnt:?}");
    }
}
