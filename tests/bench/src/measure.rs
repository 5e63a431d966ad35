//! Readings and helpers shared by the scenarios: file-descriptor limits, RSS and disk
//! writes from `/proc`, latency summaries, rounding, progress lines.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim = wanted;
            }
        }
    }
    lim.rlim_cur
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), if readable.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// This process's resident set in KiB.
pub fn self_rss_kb() -> u64 {
    proc_status_kb(std::process::id(), "VmRSS").unwrap_or(0)
}

/// This process's resident set in KiB after returning the allocator's free memory to
/// the system (glibc `malloc_trim`): what the process holds live, without what a
/// burst left cached in the allocator.
pub fn self_rss_trimmed_kb() -> u64 {
    // SAFETY: malloc_trim only releases free heap pages; it is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
    self_rss_kb()
}

/// Bytes this process has caused to be written to storage so far (`write_bytes` of
/// `/proc/self/io`; 0 when unavailable). The hub's SQLite writes are the bulk of it.
pub fn self_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// p50/p95/p99/max (and count, mean) of latencies in milliseconds.
pub fn summary(mut ms: Vec<f64>) -> Value {
    if ms.is_empty() {
        return json!({"count": 0});
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
        round(ms[i])
    };
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    json!({
        "count": ms.len(),
        "mean_ms": round(mean),
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": round(ms[ms.len() - 1]),
    })
}

/// Rounds to 0.1.
pub fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints a progress line at most once a second.
pub struct Progress {
    label: String,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// A progress printer for `label`.
    pub fn new(label: &str) -> Progress {
        let now = Instant::now();
        Progress {
            label: label.into(),
            start: now,
            last: now,
        }
    }

    /// Prints `msg` if a second passed since the last line (or `force`).
    pub fn tick(&mut self, msg: impl FnOnce() -> String, force: bool) {
        if force || self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            eprintln!(
                "[{} {:6.1}s] {}",
                self.label,
                self.start.elapsed().as_secs_f64(),
                msg()
            );
        }
    }
}
