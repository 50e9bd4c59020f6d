//! What the run measures: when each version was acknowledged, latency
//! histograms, and the summary figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// When each version of a poll was acknowledged to its voter, as
/// nanoseconds since the run started (0 = not acknowledged yet).
pub struct AckTable {
    start: Instant,
    base_version: u64,
    acks: Vec<AtomicU64>,
}

impl AckTable {
    pub fn new(start: Instant, base_version: u64, capacity: usize) -> Self {
        Self {
            start,
            base_version,
            acks: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, version: u64) -> Option<&AtomicU64> {
        let index = version.checked_sub(self.base_version + 1)?;
        self.acks.get(usize::try_from(index).ok()?)
    }

    /// Notes that the 200 reply carrying `version` arrived now.
    pub fn acked(&self, version: u64) {
        if let Some(slot) = self.slot(version) {
            let nanos = self.start.elapsed().as_nanos().max(1) as u64;
            slot.store(nanos, Ordering::Relaxed);
        }
    }

    /// A follower saw `seen` now, after `previous`: every version between
    /// was delivered now. Records, for each, the time since its ack (zero
    /// when the follower saw it before the voter got its reply).
    pub fn delivered(&self, previous: u64, seen: u64, out: &mut LocalLatencies) {
        let now = self.start.elapsed().as_nanos() as u64;
        for version in previous.max(self.base_version) + 1..=seen {
            let Some(slot) = self.slot(version) else {
                break;
            };
            let acked = slot.load(Ordering::Relaxed);
            let micros = if acked == 0 {
                0
            } else {
                now.saturating_sub(acked) / 1_000
            };
            out.record(micros);
        }
    }
}

/// A shared latency histogram in microseconds.
pub struct Latencies(Mutex<Histogram<u64>>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Mutex::new(
            Histogram::new_with_bounds(1, 120_000_000, 2).expect("valid bounds"),
        ))
    }
}

impl Latencies {
    pub fn merge(&self, samples: &[u64]) {
        let mut h = self.0.lock().expect("histogram lock");
        for &s in samples {
            h.saturating_record(s.max(1));
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let h = self.0.lock().expect("histogram lock");
        let ms = |v: u64| v as f64 / 1000.0;
        LatencySummary {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// A task's own buffer of samples, merged into the shared histogram in
/// batches so thousands of followers do not fight over one lock.
pub struct LocalLatencies {
    shared: Arc<Latencies>,
    buf: Vec<u64>,
}

impl LocalLatencies {
    pub fn new(shared: &Arc<Latencies>) -> Self {
        Self {
            shared: Arc::clone(shared),
            buf: Vec::with_capacity(256),
        }
    }

    pub fn record(&mut self, micros: u64) {
        self.buf.push(micros);
        if self.buf.len() == self.buf.capacity() {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.shared.merge(&self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for LocalLatencies {
    fn drop(&mut self) {
        self.flush();
    }
}

#[derive(Debug, Serialize, Clone, Default)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// CPU time and resident memory of a server process, from /proc.
#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    /// The part of `cpu_seconds` spent in the kernel (system time): on
    /// loopback that includes the receiving side's TCP, so it shows how much
    /// of a delivery no user-space change can remove.
    pub kernel_cpu_seconds: f64,
    pub rss_kib: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may contain spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user_ticks: f64 = fields.get(11)?.parse().ok()?;
        let kernel_ticks: f64 = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(Self {
            cpu_seconds: (user_ticks + kernel_ticks) / 100.0,
            kernel_cpu_seconds: kernel_ticks / 100.0,
            rss_kib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ProcSample;

    /// The kernel's part is read from its own field: after this process has
    /// spent time in system calls it is above zero and never above the total.
    #[test]
    fn proc_sample_splits_kernel_time() {
        let before = ProcSample::read(std::process::id()).expect("own /proc entry");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut after = before;
        // System calls until the kernel clock has ticked (10 ms at USER_HZ 100).
        while after.kernel_cpu_seconds <= before.kernel_cpu_seconds
            && std::time::Instant::now() < deadline
        {
            for _ in 0..1000 {
                std::hint::black_box(std::fs::metadata("/proc/self/stat").ok());
            }
            after = ProcSample::read(std::process::id()).expect("own /proc entry");
        }
        assert!(after.kernel_cpu_seconds > before.kernel_cpu_seconds);
        assert!(after.kernel_cpu_seconds <= after.cpu_seconds);
        assert!(after.rss_kib > 0);
    }
}
