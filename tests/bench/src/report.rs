//! What a scenario returns: [`Report`] (parameters, figures, [`Target`]s, notes), written
//! as JSON and printed as a table.
//!
//! The JSON report (field names are relied on by `BENCHMARKS.md` and the smoke tests):
//! `scenario`, `finished_at`, `machine` (cores, memory, kernel, CPU), `git_commit`,
//! `parameters`, `figures`, `targets` (each `name`, `value`, `target` as `"<= 10 s"`,
//! `met`), `passed`, `notes`.
//!
//! Figures are a JSON tree per scenario. A figure's unit is the suffix of its key (or of
//! the nearest enclosing key that has one): `_s` seconds, `_ms` milliseconds, `_per_s`
//! per second, `_us_per_msg` microseconds per message, `_kb` KiB, `_mb` MB, `bytes` bytes,
//! `percent` %; keys without one are counts. [`unit_of`] reads it for the table.

use std::path::Path;

use serde_json::{Value, json};

use crate::BenchError;

/// One scenario's results.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name ([`crate::Scenario::name`]).
    pub scenario: &'static str,
    /// What it ran with (agents, broker, rates, ...).
    pub parameters: Value,
    /// What it measured (see the module doc for units).
    pub figures: Value,
    /// The targets of the issue, each met or missed.
    pub targets: Vec<Target>,
    /// Free-text remarks (how to read a figure, what was not measured and why).
    pub notes: Vec<String>,
}

impl Report {
    /// A report of `scenario` with no targets and no notes.
    pub fn new(scenario: &'static str, parameters: Value, figures: Value) -> Report {
        Report {
            scenario,
            parameters,
            figures,
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// With these targets.
    pub fn with_targets(mut self, targets: Vec<Target>) -> Report {
        self.targets = targets;
        self
    }

    /// With these notes.
    pub fn with_notes(mut self, notes: Vec<String>) -> Report {
        self.notes = notes;
        self
    }

    /// `Some(true)` when every target is met, `Some(false)` when one is missed, `None`
    /// when none is missed but one could not be measured (or there are no targets).
    pub fn passed(&self) -> Option<bool> {
        let met: Vec<Option<bool>> = self.targets.iter().map(Target::met).collect();
        if met.contains(&Some(false)) {
            Some(false)
        } else if met.is_empty() || met.contains(&None) {
            None
        } else {
            Some(true)
        }
    }

    /// The JSON report, with the machine, the git commit and the time of writing.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "finished_at": chrono::Utc::now().to_rfc3339(),
            "machine": machine(),
            "git_commit": git_commit(),
            "parameters": self.parameters,
            "figures": self.figures,
            "targets": self.targets.iter().map(Target::to_json).collect::<Vec<_>>(),
            "passed": self.passed(),
            "notes": self.notes,
        })
    }

    /// Writes [`Report::to_json`] to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| BenchError::Setup(format!("cannot encode the report: {e}")))?;
        std::fs::write(path, text)
            .map_err(BenchError::io(format!("cannot write {}", path.display())))
    }

    /// The figures as a table (one row per figure, nested keys joined with dots, with
    /// its unit), then the targets and the verdict.
    pub fn table(&self) -> String {
        let mut rows = Vec::new();
        flatten("", &self.figures, &mut rows);
        let width = rows
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(10)
            .max(10);
        let mut out = format!("\n== workbus-bench {} ==", self.scenario);
        for (key, value) in &rows {
            let unit = unit_of(key);
            let sep = if unit.is_empty() || value == "null" {
                ""
            } else {
                " "
            };
            let unit = if value == "null" { "" } else { unit };
            out.push_str(&format!("\n{key:width$}  {value}{sep}{unit}"));
        }
        if !self.targets.is_empty() {
            out.push_str("\n-- targets --");
            for t in &self.targets {
                let met = match t.met() {
                    Some(true) => "MET",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                let value = json!(t.value);
                out.push_str(&format!(
                    "\n{:width$}  {value} (target {}) {met}",
                    t.name,
                    t.bound_text()
                ));
            }
            let verdict = match self.passed() {
                Some(true) => "every target met",
                Some(false) => "a target missed",
                None => "not every target measured",
            };
            out.push_str(&format!("\n-- {verdict} --"));
        }
        out
    }
}

/// Which side of the limit a target's value must be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `value <= limit`.
    AtMost,
    /// `value >= limit`.
    AtLeast,
}

/// A target of the issue: a measured value against a limit.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is measured (with the scale it ran at when below the target's).
    pub name: String,
    /// The measured value (`None`: not measured).
    pub value: Option<f64>,
    /// Which side of the limit is good.
    pub bound: Bound,
    /// The limit.
    pub limit: f64,
    /// The unit of value and limit.
    pub unit: &'static str,
}

impl Target {
    /// A target on `value` (in `unit`), completed by [`Measured::at_most`] or
    /// [`Measured::at_least`]: `Target::on("p99", p99, "s").at_most(5.0)`.
    pub fn on(name: impl Into<String>, value: Option<f64>, unit: &'static str) -> Measured {
        Measured {
            name: name.into(),
            value,
            unit,
        }
    }

    /// Met, missed, or not measured (`None`).
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| match self.bound {
            Bound::AtMost => v <= self.limit,
            Bound::AtLeast => v >= self.limit,
        })
    }

    /// The target as written in the report: `<= 10 s`.
    pub fn bound_text(&self) -> String {
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        format!("{op} {} {}", self.limit, self.unit)
    }

    /// `{"name", "value", "target", "met"}`.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "value": self.value, "target": self.bound_text(), "met": self.met()})
    }
}

/// A measured value waiting for its limit ([`Target::on`]).
#[derive(Debug, Clone)]
pub struct Measured {
    name: String,
    value: Option<f64>,
    unit: &'static str,
}

impl Measured {
    /// Met when `value <= limit`.
    pub fn at_most(self, limit: f64) -> Target {
        self.bounded(Bound::AtMost, limit)
    }

    /// Met when `value >= limit`.
    pub fn at_least(self, limit: f64) -> Target {
        self.bounded(Bound::AtLeast, limit)
    }

    fn bounded(self, bound: Bound, limit: f64) -> Target {
        let Measured { name, value, unit } = self;
        Target {
            name,
            value,
            bound,
            limit,
            unit,
        }
    }
}

/// Key suffixes and the units they name, most specific first.
const UNITS: &[(&str, &str)] = &[
    ("us_per_msg", "µs/msg"),
    ("per_s", "/s"),
    ("ms", "ms"),
    ("s", "s"),
    ("kb", "KiB"),
    ("mb", "MB"),
    ("bytes", "B"),
    ("percent", "%"),
];

/// The unit of the figure at dotted `path` (`update.latency.p99_ms` → `ms`,
/// `round_ms.p50` → `ms`): the suffix of its last key that has one; `""` for counts.
pub fn unit_of(path: &str) -> &'static str {
    path.rsplit('.')
        .find_map(|key| {
            UNITS.iter().find_map(|(suffix, unit)| {
                let named = key == *suffix
                    || key
                        .strip_suffix(suffix)
                        .is_some_and(|rest| rest.ends_with('_'));
                named.then_some(*unit)
            })
        })
        .unwrap_or("")
}

/// Leaves of `v` as (dotted path, value); arrays of objects by index.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_from_the_keys() {
        assert_eq!(unit_of("update.latency.p99_ms"), "ms");
        assert_eq!(unit_of("round_ms.p50"), "ms");
        assert_eq!(unit_of("connect_all_s"), "s");
        assert_eq!(unit_of("steps.0.round_trips_per_s"), "/s");
        assert_eq!(unit_of("embedded.broker_cpu_us_per_msg"), "µs/msg");
        assert_eq!(unit_of("hub_idle.hub_rss_per_idle_cluster_kb"), "KiB");
        assert_eq!(unit_of("digest.per_agent.bytes"), "B");
        assert_eq!(unit_of("bytes_saved_percent"), "%");
        assert_eq!(unit_of("update.latency.count"), "");
        assert_eq!(unit_of("messages"), "");
        assert_eq!(unit_of("cut"), "");
    }

    #[test]
    fn targets_keep_their_json_form() {
        let t = Target::on("all statuses back", Some(3.5), "s").at_most(10.0);
        assert_eq!(
            t.to_json(),
            json!({"name": "all statuses back", "value": 3.5, "target": "<= 10 s", "met": true})
        );
        let t = Target::on("ratio", Some(1.2), "x").at_least(1.5);
        assert_eq!(t.to_json()["target"], ">= 1.5 x");
        assert_eq!(t.met(), Some(false));
        assert_eq!(
            Target::on("n", None, "x").at_least(1.0).to_json()["met"],
            Value::Null
        );
    }

    #[test]
    fn passed_needs_every_target_met() {
        let report = |targets| Report::new("x", json!({}), json!({})).with_targets(targets);
        let met = Target::on("a", Some(1.0), "s").at_most(2.0);
        let missed = Target::on("b", Some(3.0), "s").at_most(2.0);
        let unknown = Target::on("c", None, "s").at_most(2.0);
        assert_eq!(report(vec![met.clone()]).passed(), Some(true));
        assert_eq!(
            report(vec![met.clone(), missed, unknown.clone()]).passed(),
            Some(false)
        );
        assert_eq!(report(vec![met, unknown]).passed(), None);
        assert_eq!(report(vec![]).passed(), None);
    }

    #[test]
    fn table_flattens_figures_with_units() {
        let r = Report::new(
            "fanout",
            json!({}),
            json!({"update": {"all_back_s": 3.9, "back": 10, "latency": {"p99_ms": 170.0}},
                   "steps": [{"changes": 20}]}),
        )
        .with_targets(vec![Target::on("p99", Some(0.17), "s").at_most(5.0)]);
        let table = r.table();
        let row = |key: &str| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(key))
                .unwrap_or_else(|| panic!("no row {key}: {table}"))
                .to_string()
        };
        assert!(table.contains("== workbus-bench fanout =="), "{table}");
        assert!(row("update.all_back_s").ends_with(" 3.9 s"), "{table}");
        assert!(row("update.back").ends_with(" 10"), "{table}");
        assert!(
            row("update.latency.p99_ms").ends_with(" 170.0 ms"),
            "{table}"
        );
        assert!(row("steps.0.changes").ends_with(" 20"), "{table}");
        assert!(table.contains("(target <= 5 s) MET"), "{table}");
        assert!(table.contains("every target met"), "{table}");
    }
}
