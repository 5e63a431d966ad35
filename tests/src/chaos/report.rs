//! The summary of a chaos leg: counts by operation outcome, fault kind and problem
//! class, the convergence time, every problem found; printed, written as JSON
//! (`chaos-<leg>.json`, the same top-level shape as the benchmark reports: scenario,
//! parameters, figures), and turned into the failure message (seed and the command that
//! repeats the leg first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::check::{Class, Convergence};
use super::faults::{Fault, count_by_kind};
use super::model::{ClusterModel, OpCounts};
use super::monitor::Seen;
use super::{BrokerKind, Params};

/// Most problems listed per class in the failure message (all are in the JSON).
const LISTED_PER_CLASS: usize = 8;

/// A leg's findings, filled in as the leg runs.
pub struct LegReport {
    params: Params,
    leg: BrokerKind,
    run_dir: PathBuf,
    /// Problem class → messages.
    problems: BTreeMap<String, Vec<String>>,
    faults_planned: Vec<Fault>,
    faults_done: Vec<Value>,
    ops: OpCounts,
    converged: Option<Duration>,
    polls: u64,
    monitor: Value,
    duration: Duration,
    json_path: Option<PathBuf>,
}

impl LegReport {
    /// An empty report.
    pub fn new(params: &Params, leg: BrokerKind, run_dir: &Path) -> LegReport {
        LegReport {
            params: params.clone(),
            leg,
            run_dir: run_dir.to_path_buf(),
            problems: BTreeMap::new(),
            faults_planned: Vec::new(),
            faults_done: Vec::new(),
            ops: OpCounts::default(),
            converged: None,
            polls: 0,
            monitor: Value::Null,
            duration: Duration::ZERO,
            json_path: None,
        }
    }

    /// Records a problem of class `class`.
    pub fn fail(&mut self, class: &str, what: impl Into<String>) {
        self.problems
            .entry(class.to_string())
            .or_default()
            .push(what.into());
    }

    /// The fault schedule.
    pub fn schedule(&mut self, faults: &[Fault]) {
        self.faults_planned = faults.to_vec();
    }

    /// One injected fault's record.
    pub fn fault_done(&mut self, record: Value) {
        self.faults_done.push(record);
    }

    /// The convergence result: its time, or what did not converge.
    pub fn convergence(&mut self, c: &Convergence) {
        self.converged = c.took;
        self.polls = c.polls;
        for p in &c.problems {
            self.fail(p.class.name(), p.to_string());
        }
    }

    /// Processes that exited on their own.
    pub fn crashes(&mut self, crashes: &[String]) {
        for c in crashes {
            self.fail("crashes", c.clone());
        }
    }

    /// What the change-stream monitor saw.
    pub fn monitor(&mut self, seen: &Seen) {
        self.monitor = seen.to_json();
        for s in &seen.stale_accepted {
            self.fail("stale_accepted", s.clone());
        }
        for s in &seen.spurious_deletions {
            self.fail("spurious_deletions", s.clone());
        }
    }

    /// Operation counts and the answers that contradicted earlier ones.
    pub fn models(&mut self, models: &[ClusterModel]) {
        for m in models {
            self.ops.add(&m.counts);
            for a in &m.anomalies {
                self.fail("contradictions", a.clone());
            }
            for u in &m.unexpected {
                self.fail("unexpected_answers", u.clone());
            }
        }
    }

    /// True when nothing was found.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn count(&self, class: &str) -> usize {
        self.problems.get(class).map_or(0, Vec::len)
    }

    /// The summary figures.
    fn figures(&self) -> Value {
        let o = &self.ops;
        let mut counts = serde_json::Map::new();
        for class in [
            Class::Lost,
            Class::Misapplied,
            Class::Orphan,
            Class::Stuck,
            Class::Resurrected,
        ] {
            counts.insert(class.name().into(), self.count(class.name()).into());
        }
        for class in [
            "stale_accepted",
            "spurious_deletions",
            "contradictions",
            "unexpected_answers",
            "crashes",
            "sigterm",
            "fault",
        ] {
            counts.insert(class.into(), self.count(class).into());
        }
        // Classes of harness-level failures (setup, restart, deadline, worker) when any.
        for (class, list) in &self.problems {
            counts.insert(class.clone(), list.len().into());
        }
        json!({
            "duration_s": round(self.duration.as_secs_f64()),
            "operations": {
                "issued": o.issued, "answered": o.answered, "unknown_outcome": o.unknown,
                "refused": o.not_sent, "created": o.created, "updated": o.updated,
                "put_conflict_deleting": o.conflicts, "deleted": o.deletes,
                "delete_not_found": o.deletes_absent,
            },
            "faults": count_by_kind(&self.faults_planned),
            "faults_injected": self.faults_done.len(),
            "convergence_s": self.converged.map(|d| round(d.as_secs_f64())),
            "convergence_polls": self.polls,
            "problems": counts,
            "monitor": self.monitor,
        })
    }

    /// Closes the report: prints the summary, writes the JSON into `report_dir`, and
    /// removes the run directory when the leg passed (unless `WORKBUS_CHAOS_KEEP` is set).
    pub fn finish(mut self, started: Instant, report_dir: &Path) -> LegReport {
        self.duration = started.elapsed();
        let figures = self.figures();
        let name = self.leg.name();
        eprintln!(
            "[chaos {name}] summary (seed {}): {}",
            self.params.seed,
            serde_json::to_string(&figures).unwrap_or_default()
        );
        let report = json!({
            "scenario": "chaos",
            "leg": name,
            "seed": self.params.seed,
            "passed": self.passed(),
            "finished_at": chrono::Utc::now().to_rfc3339(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "reproduce": self.params.reproduce(self.leg),
            "run_dir": self.run_dir.display().to_string(),
            "parameters": {
                "ops": self.params.ops, "faults": self.params.faults,
                "agents": self.params.agents, "names_per_cluster": self.params.names,
                "keep_alive_s": self.params.keep_alive_secs,
                "converge_limit_s": self.params.converge.as_secs(),
                "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            },
            "figures": figures,
            "problems": self.problems,
            "faults": self.faults_done,
        });
        let path = report_dir.join(format!("chaos-{name}.json"));
        let written = std::fs::create_dir_all(report_dir)
            .and_then(|()| std::fs::write(&path, format!("{report:#}")));
        match written {
            Ok(()) => {
                eprintln!("[chaos {name}] report written to {}", path.display());
                self.json_path = Some(path);
            }
            Err(e) => eprintln!("[chaos {name}] cannot write {}: {e}", path.display()),
        }
        if self.passed() && std::env::var_os("WORKBUS_CHAOS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
        self
    }

    /// The failure message: seed and reproduction first, then counts and the first
    /// problems of each class.
    pub fn failure_message(&self) -> String {
        let mut s = format!(
            "chaos leg {} FAILED — seed {}\n  reproduce: {}\n  logs and data: {}\n  report: {}\n",
            self.leg.name(),
            self.params.seed,
            self.params.reproduce(self.leg),
            self.run_dir.display(),
            self.json_path
                .as_ref()
                .map_or("(not written)".into(), |p| p.display().to_string()),
        );
        s.push_str(&format!(
            "  converged: {}\n",
            self.converged.map_or_else(
                || format!("NO (limit {:?})", self.params.converge),
                |d| format!("{:.1}s", d.as_secs_f64())
            )
        ));
        for (class, list) in &self.problems {
            s.push_str(&format!(
                "  {class}: {} (seed {})\n",
                list.len(),
                self.params.seed
            ));
            for p in list.iter().take(LISTED_PER_CLASS) {
                s.push_str(&format!("    - {p}\n"));
            }
            if list.len() > LISTED_PER_CLASS {
                s.push_str(&format!(
                    "    … {} more in the report\n",
                    list.len() - LISTED_PER_CLASS
                ));
            }
        }
        s
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
