//! Shared pieces of the benchmark scenarios: errors, the machine description, RSS and
//! file-descriptor limits, latency summaries, progress lines, tables and the JSON report.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Why a scenario could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An I/O operation failed (files, child processes).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A part of the system under test failed to start or answer.
    #[error("{0}")]
    Setup(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl BenchError {
    /// An [`BenchError::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

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

/// Cores, memory, kernel and CPU model of this machine.
pub fn machine() -> Value {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({"cores": cores, "memory_mb": mem_kb / 1024, "kernel": kernel, "cpu": cpu})
}

/// The git commit of the source tree (`unknown` outside a checkout).
pub fn git_commit() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
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

/// A target check for the report: `value <op> limit`.
pub fn target(name: &str, value: Option<f64>, op: &str, limit: f64, unit: &str) -> Value {
    let met = value.map(|v| match op {
        "<=" => v <= limit,
        _ => v >= limit,
    });
    json!({"name": name, "value": value, "target": format!("{op} {limit} {unit}"), "met": met})
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

/// Prints the figures as a two-column table (nested objects flattened with dots).
pub fn print_table(scenario: &str, figures: &Value, targets: &[Value]) {
    fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut rows = Vec::new();
    flatten("", figures, &mut rows);
    let width = rows
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(10)
        .max(10);
    println!("\n== workbus-bench {scenario} ==");
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
    if !targets.is_empty() {
        println!("-- targets --");
        for t in targets {
            let met = match t["met"].as_bool() {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "n/a",
            };
            println!(
                "{:width$}  {} (target {}) {}",
                t["name"].as_str().unwrap_or(""),
                t["value"],
                t["target"].as_str().unwrap_or(""),
                met
            );
        }
    }
}

/// Writes the report JSON to `path`.
pub fn write_report(
    path: &Path,
    scenario: &str,
    parameters: Value,
    figures: Value,
    targets: Vec<Value>,
    notes: Vec<String>,
) -> Result<(), BenchError> {
    let report = json!({
        "scenario": scenario,
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "machine": machine(),
        "git_commit": git_commit(),
        "parameters": parameters,
        "figures": figures,
        "targets": targets,
        "notes": notes,
    });
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| BenchError::Setup(format!("cannot encode the report: {e}")))?;
    std::fs::write(path, text).map_err(BenchError::io(format!("cannot write {}", path.display())))
}
