//! Run counters and histograms for `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const STATUSES: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];
/// Upper bounds in milliseconds, shared by the duration and CPU histograms.
const BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    /// Sum in microseconds (integer atomics).
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, ms: f64) {
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                bound / 1000.0,
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct RunMetrics {
    by_status: [AtomicU64; 4],
    duration: Histogram,
    cpu: Histogram,
}

impl RunMetrics {
    pub fn observe(&self, status: &str, wall_ms: f64, cpu_ms: f64) {
        if let Some(i) = STATUSES.iter().position(|s| *s == status) {
            self.by_status[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe(wall_ms);
        self.cpu.observe(cpu_ms);
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP atoll_runs_total Runs finished on this node, by status.\n# TYPE atoll_runs_total counter");
        for (i, status) in STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "atoll_runs_total{{status=\"{status}\"}} {}",
                self.by_status[i].load(Ordering::Relaxed)
            );
        }
        self.duration.render(
            out,
            "atoll_run_duration_seconds",
            "Wall-clock duration of runs.",
        );
        self.cpu
            .render(out, "atoll_run_cpu_seconds", "CPU time of runs.");
    }
}
