//! The model of what the hub acknowledged, and the random operation stream.
//!
//! Every work is a set of ConfigMaps (`<work>-m<k>` in `default`, one data key `v`), so
//! "exactly its manifests' data" is checkable object by object. Work names come from a
//! small pool per cluster, so deleted names are re-used.
//!
//! Each acknowledged answer carries the hub's truth at that moment (201/200 with the
//! work and its generation, 202 deleting, 404 gone, 409 being deleted), so after an
//! answer the model knows the work's state exactly; an answer that contradicts what
//! the previous answers established (e.g. 201 "created" for a work acknowledged live
//! and never deleted) is an anomaly, reported with the operation that saw it.
//! Requests whose outcome is unknown (connection cut, timeout) add *candidates*: the
//! final state may be the last acknowledged one or the effect of any of them.

use std::collections::BTreeMap;
use std::fmt;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use serde_json::Value;

use super::rest::Reply;
use crate::hubs::configmaps_work;

/// Most manifests in one work.
pub const MAX_MANIFESTS: usize = 4;

/// A work's manifests: ConfigMap name → the value of its data key `v`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec(pub BTreeMap<String, String>);

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

impl Spec {
    /// The kubectl-shaped ManifestWork `cluster/name` with these manifests.
    pub fn work_body(&self, cluster: &str, name: &str) -> Value {
        configmaps_work(
            cluster,
            name,
            self.0.iter().map(|(cm, v)| (cm.as_str(), v.as_str())),
        )
    }

    /// The manifests of a ManifestWork as the hub returns it; `None` when they are not
    /// the shape this suite writes.
    pub fn of_work(work: &Value) -> Option<Spec> {
        let mut out = BTreeMap::new();
        for m in work["spec"]["workload"]["manifests"].as_array()? {
            let name = m["metadata"]["name"].as_str()?;
            let data = m["data"].as_object()?;
            if data.len() != 1 || m["kind"] != "ConfigMap" {
                return None;
            }
            out.insert(name.to_string(), data.get("v")?.as_str()?.to_string());
        }
        Some(Spec(out))
    }
}

/// One REST operation on one work.
#[derive(Debug, Clone)]
pub enum Op {
    /// `PUT` (create or update) with these manifests.
    Put(Spec),
    /// `DELETE`.
    Delete,
}

impl Op {
    /// `put` or `delete`.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Put(_) => "put",
            Op::Delete => "delete",
        }
    }
}

/// What the answers so far establish about a work on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// No such work (never created, or a DELETE answered 404).
    Absent,
    /// Live at this generation with these manifests.
    Live {
        /// Generation of the answer.
        generation: i64,
        /// Manifests sent with the acknowledged PUT.
        spec: Spec,
    },
    /// Marked deleting (DELETE answered 202, or a PUT answered 409); it disappears once
    /// the agent confirms.
    Deleting,
}

impl fmt::Display for Known {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Known::Absent => write!(f, "absent"),
            Known::Live { generation, spec } => write!(f, "live gen {generation} {spec}"),
            Known::Deleting => write!(f, "deleting"),
        }
    }
}

/// An acceptable final state of a work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Live with these manifests, at this generation when known.
    Live {
        /// `None` when an unknown-outcome request may have changed it.
        generation: Option<i64>,
        /// Manifests.
        spec: Spec,
    },
    /// Gone from the hub and the cluster.
    Gone,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Live {
                generation: Some(g),
                spec,
            } => write!(f, "live gen {g} {spec}"),
            Expect::Live {
                generation: None,
                spec,
            } => write!(f, "live {spec}"),
            Expect::Gone => write!(f, "gone"),
        }
    }
}

/// One work's history as far as the final check needs it.
#[derive(Debug, Clone)]
pub struct WorkModel {
    /// State after the last acknowledged answer.
    pub known: Known,
    /// Effects of later requests whose outcome is unknown.
    pub maybe: Vec<Expect>,
    /// Operation index (ticket) of the last answer, for reports.
    pub last_ticket: Option<usize>,
    /// The highest generation any answer showed for this name: the hub continues
    /// generations across incarnations, so a re-created work starts above it.
    pub highest_generation: i64,
}

impl Default for WorkModel {
    fn default() -> Self {
        WorkModel {
            known: Known::Absent,
            maybe: Vec::new(),
            last_ticket: None,
            highest_generation: 0,
        }
    }
}

impl WorkModel {
    /// Every acceptable final state: the acknowledged one, or any unknown request's.
    pub fn acceptable(&self) -> Vec<Expect> {
        let mut out = vec![match &self.known {
            Known::Live { generation, spec } => Expect::Live {
                generation: Some(*generation),
                spec: spec.clone(),
            },
            Known::Absent | Known::Deleting => Expect::Gone,
        }];
        for m in &self.maybe {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }
}

/// Operation counts by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCounts {
    /// Requests issued.
    pub issued: u64,
    /// Answered (any status).
    pub answered: u64,
    /// Unknown outcome.
    pub unknown: u64,
    /// Refused (hub down).
    pub not_sent: u64,
    /// PUT answered 201.
    pub created: u64,
    /// PUT answered 200.
    pub updated: u64,
    /// PUT answered 409 (being deleted).
    pub conflicts: u64,
    /// DELETE answered 202.
    pub deletes: u64,
    /// DELETE answered 404.
    pub deletes_absent: u64,
}

impl OpCounts {
    /// Sums two counts.
    pub fn add(&mut self, o: &OpCounts) {
        self.issued += o.issued;
        self.answered += o.answered;
        self.unknown += o.unknown;
        self.not_sent += o.not_sent;
        self.created += o.created;
        self.updated += o.updated;
        self.conflicts += o.conflicts;
        self.deletes += o.deletes;
        self.deletes_absent += o.deletes_absent;
    }
}

/// The model of one cluster's works (each cluster is driven by one worker, so no
/// locking and a well-defined order per work).
#[derive(Debug, Clone)]
pub struct ClusterModel {
    /// Cluster name.
    pub cluster: String,
    /// Work name → model.
    pub works: BTreeMap<String, WorkModel>,
    /// Answers contradicting earlier answers (acknowledged state lost or invented).
    pub anomalies: Vec<String>,
    /// Answers no valid request should get (4xx other than 404/409, 5xx).
    pub unexpected: Vec<String>,
    /// Counts.
    pub counts: OpCounts,
}

impl ClusterModel {
    /// An empty model for `cluster`.
    pub fn new(cluster: &str) -> ClusterModel {
        ClusterModel {
            cluster: cluster.to_string(),
            works: BTreeMap::new(),
            anomalies: Vec::new(),
            unexpected: Vec::new(),
            counts: OpCounts::default(),
        }
    }

    /// The state the answers so far establish for `name`.
    pub fn known(&self, name: &str) -> Known {
        self.works
            .get(name)
            .map_or(Known::Absent, |w| w.known.clone())
    }

    /// Records what became of operation `ticket` (`op` on `name`).
    pub fn record(&mut self, ticket: usize, name: &str, op: &Op, reply: &Reply) {
        self.counts.issued += 1;
        let at = format!("op {ticket} {} {}/{name}", op.verb(), self.cluster);
        let work = self.works.entry(name.to_string()).or_default();
        let (code, body) = match reply {
            Reply::NotSent(_) => {
                self.counts.not_sent += 1;
                return;
            }
            Reply::Unknown(_) => {
                self.counts.unknown += 1;
                work.maybe.push(effect(op));
                return;
            }
            Reply::Answer { code, body } => (*code, body),
        };
        self.counts.answered += 1;
        let Some(verdict) = judge(&work.known, work.highest_generation, op, code, body) else {
            // Not a valid answer to a valid request: reported, and (since nothing says
            // it had no effect) counted as an unknown outcome.
            self.unexpected
                .push(format!("{at}: answered {code}: {body}"));
            work.maybe.push(effect(op));
            return;
        };
        match verdict.answer {
            "created" => self.counts.created += 1,
            "updated" => self.counts.updated += 1,
            "conflict" => self.counts.conflicts += 1,
            "deleting" => self.counts.deletes += 1,
            _ => self.counts.deletes_absent += 1,
        }
        // After an unknown outcome the previous state is not established, so nothing
        // can contradict it.
        if work.maybe.is_empty() {
            for c in verdict.contradictions {
                self.anomalies.push(format!(
                    "{at}: answered {code} ({}) {c} (established before: {})",
                    verdict.answer, work.known
                ));
            }
        }
        if let Known::Live { generation, .. } = &verdict.after {
            work.highest_generation = work.highest_generation.max(*generation);
        }
        work.known = verdict.after;
        work.maybe.clear();
        work.last_ticket = Some(ticket);
    }
}

/// What an answer establishes, and what in it contradicts the state before.
struct Verdict {
    answer: &'static str,
    after: Known,
    contradictions: Vec<String>,
}

/// Judges answer `code`/`body` to `op` given the state `before` and the highest
/// generation seen for the name so far; `None` for answers a valid request should
/// never get.
fn judge(before: &Known, highest: i64, op: &Op, code: u16, body: &Value) -> Option<Verdict> {
    let mut contradictions = Vec::new();
    let (answer, after) = match (op, code) {
        (Op::Put(spec), 200 | 201) => {
            let generation = body["metadata"]["generation"].as_i64().unwrap_or(-1);
            if Spec::of_work(body).as_ref() != Some(spec) {
                contradictions.push(format!("with manifests other than sent: {body}"));
            }
            if code == 201 {
                match before {
                    Known::Live { .. } => {
                        contradictions.push("the acknowledged live work was lost".into())
                    }
                    // A new incarnation starts above every earlier one (a generation names
                    // one incarnation of the name's fixed UID).
                    _ if generation <= highest || generation < 1 => contradictions.push(format!(
                        "at generation {generation}, not above the earlier {highest}"
                    )),
                    _ => {}
                }
            } else {
                match before {
                    Known::Live {
                        generation: g,
                        spec: s,
                    } => {
                        let want = if s == spec { *g } else { g + 1 };
                        if generation != want {
                            contradictions
                                .push(format!("at generation {generation}, expected {want}"));
                        }
                    }
                    Known::Absent => contradictions.push("a work known absent existed".into()),
                    Known::Deleting => contradictions.push("a deleting work was live again".into()),
                }
            }
            let answer = if code == 201 { "created" } else { "updated" };
            let after = Known::Live {
                generation,
                spec: spec.clone(),
            };
            (answer, after)
        }
        (Op::Put(_), 409) => {
            match before {
                Known::Live { .. } => contradictions.push("though never deleted".into()),
                Known::Absent => contradictions.push("a work known absent existed".into()),
                Known::Deleting => {}
            }
            ("conflict", Known::Deleting)
        }
        (Op::Delete, 202) => {
            if *before == Known::Absent {
                contradictions.push("a work known absent existed".into());
            }
            if body["metadata"]["deletionTimestamp"].is_null() {
                contradictions.push(format!("without a deletionTimestamp: {body}"));
            }
            ("deleting", Known::Deleting)
        }
        (Op::Delete, 404) => {
            if matches!(before, Known::Live { .. }) {
                contradictions.push("the acknowledged live work was lost".into());
            }
            ("not found", Known::Absent)
        }
        _ => return None,
    };
    Some(Verdict {
        answer,
        after,
        contradictions,
    })
}

/// What `op` leaves behind if it took effect.
fn effect(op: &Op) -> Expect {
    match op {
        Op::Put(spec) => Expect::Live {
            generation: None,
            spec: spec.clone(),
        },
        Op::Delete => Expect::Gone,
    }
}

/// The random operation stream of one cluster.
pub struct OpStream {
    rng: Xoshiro256PlusPlus,
    names: usize,
}

impl OpStream {
    /// A stream over `names` work names drawing from `rng`.
    pub fn new(rng: Xoshiro256PlusPlus, names: usize) -> OpStream {
        OpStream {
            rng,
            names: names.max(1),
        }
    }

    /// Work name `i` of the pool.
    pub fn name(i: usize) -> String {
        format!("w{i}")
    }

    /// The next operation: a work name and what to do to it, given what the model
    /// knows. `tag` makes every written value unique (the operation's ticket).
    pub fn next(&mut self, model: &ClusterModel, tag: usize) -> (String, Op) {
        let name = Self::name(self.rng.random_range(0..self.names));
        let roll: u32 = self.rng.random_range(0..100);
        let op = match model.known(&name) {
            Known::Live { spec, .. } => match roll {
                0..25 => Op::Delete,
                25..30 => Op::Put(spec),
                30..50 => Op::Put(self.add_manifest(&name, spec, tag)),
                50..65 => Op::Put(self.remove_manifest(&name, spec, tag)),
                _ => Op::Put(self.change_data(spec, tag)),
            },
            Known::Absent | Known::Deleting => match roll {
                0..15 => Op::Delete,
                _ => Op::Put(self.fresh(&name, tag)),
            },
        };
        (name, op)
    }

    fn cm(name: &str, k: usize) -> String {
        format!("{name}-m{k}")
    }

    fn value(tag: usize, k: usize) -> String {
        format!("t{tag}-{k}")
    }

    /// 1..=3 random manifests.
    fn fresh(&mut self, name: &str, tag: usize) -> Spec {
        let want = self.rng.random_range(1..=3);
        let mut spec = Spec::default();
        while spec.0.len() < want {
            let k = self.rng.random_range(0..MAX_MANIFESTS);
            spec.0.insert(Self::cm(name, k), Self::value(tag, k));
        }
        spec
    }

    /// New values for a random non-empty subset of the manifests.
    fn change_data(&mut self, mut spec: Spec, tag: usize) -> Spec {
        let keys: Vec<String> = spec.0.keys().cloned().collect();
        let forced = self.rng.random_range(0..keys.len());
        for (i, k) in keys.iter().enumerate() {
            if i == forced || self.rng.random_bool(0.5) {
                spec.0.insert(k.clone(), Self::value(tag, i));
            }
        }
        spec
    }

    fn add_manifest(&mut self, name: &str, mut spec: Spec, tag: usize) -> Spec {
        let free: Vec<usize> = (0..MAX_MANIFESTS)
            .filter(|k| !spec.0.contains_key(&Self::cm(name, *k)))
            .collect();
        if free.is_empty() {
            return self.change_data(spec, tag);
        }
        let k = free[self.rng.random_range(0..free.len())];
        spec.0.insert(Self::cm(name, k), Self::value(tag, k));
        spec
    }

    fn remove_manifest(&mut self, name: &str, mut spec: Spec, tag: usize) -> Spec {
        if spec.0.len() < 2 {
            return self.add_manifest(name, spec, tag);
        }
        let keys: Vec<String> = spec.0.keys().cloned().collect();
        spec.0.remove(&keys[self.rng.random_range(0..keys.len())]);
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pairs: &[(&str, &str)]) -> Spec {
        Spec(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn answer(code: u16, cluster: &str, name: &str, s: &Spec, generation: i64) -> Reply {
        let mut body = s.work_body(cluster, name);
        body["metadata"]["generation"] = generation.into();
        if code == 202 {
            body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        Reply::Answer { code, body }
    }

    #[test]
    fn answers_establish_the_state_and_contradictions_are_anomalies() {
        let mut m = ClusterModel::new("c");
        let a = spec(&[("w0-m0", "1")]);
        let b = spec(&[("w0-m0", "2"), ("w0-m1", "2")]);
        m.record(0, "w0", &Op::Put(a.clone()), &answer(201, "c", "w0", &a, 1));
        m.record(1, "w0", &Op::Put(b.clone()), &answer(200, "c", "w0", &b, 2));
        m.record(2, "w0", &Op::Put(b.clone()), &answer(200, "c", "w0", &b, 2));
        assert!(m.anomalies.is_empty(), "{:?}", m.anomalies);
        assert_eq!(
            m.known("w0"),
            Known::Live {
                generation: 2,
                spec: b.clone()
            }
        );
        // A live work re-created from nothing: the acknowledged state was lost.
        m.record(3, "w0", &Op::Put(a.clone()), &answer(201, "c", "w0", &a, 1));
        assert_eq!(m.anomalies.len(), 1, "{:?}", m.anomalies);
        assert!(m.anomalies[0].contains("lost"));
    }

    /// The hub continues generations across incarnations of a name (its UID is fixed):
    /// a re-created work at or below an earlier generation would be an old incarnation.
    #[test]
    fn a_re_created_work_starts_above_every_earlier_generation() {
        let mut m = ClusterModel::new("c");
        let a = spec(&[("w2-m0", "1")]);
        let b = spec(&[("w2-m0", "2")]);
        m.record(0, "w2", &Op::Put(a.clone()), &answer(201, "c", "w2", &a, 1));
        m.record(1, "w2", &Op::Put(b.clone()), &answer(200, "c", "w2", &b, 2));
        m.record(2, "w2", &Op::Delete, &answer(202, "c", "w2", &b, 2));
        m.record(3, "w2", &Op::Delete, &answer(404, "c", "w2", &b, 2));
        m.record(4, "w2", &Op::Put(a.clone()), &answer(201, "c", "w2", &a, 3));
        assert!(m.anomalies.is_empty(), "{:?}", m.anomalies);
        m.record(5, "w2", &Op::Delete, &answer(202, "c", "w2", &a, 3));
        m.record(6, "w2", &Op::Delete, &answer(404, "c", "w2", &a, 3));
        m.record(7, "w2", &Op::Put(a.clone()), &answer(201, "c", "w2", &a, 1));
        assert_eq!(m.anomalies.len(), 1, "{:?}", m.anomalies);
        assert!(m.anomalies[0].contains("not above the earlier 3"));
    }

    #[test]
    fn unknown_outcomes_widen_the_acceptable_states_until_the_next_answer() {
        let mut m = ClusterModel::new("c");
        let a = spec(&[("w1-m0", "1")]);
        m.record(0, "w1", &Op::Put(a.clone()), &answer(201, "c", "w1", &a, 1));
        m.record(1, "w1", &Op::Delete, &Reply::Unknown("cut".into()));
        let w = &m.works["w1"];
        assert_eq!(w.acceptable().len(), 2);
        assert!(w.acceptable().contains(&Expect::Gone));
        // The next answer says which happened; no anomaly either way.
        m.record(2, "w1", &Op::Put(a.clone()), &answer(409, "c", "w1", &a, 1));
        assert!(m.anomalies.is_empty(), "{:?}", m.anomalies);
        assert_eq!(m.works["w1"].acceptable(), vec![Expect::Gone]);
        m.record(3, "w1", &Op::Delete, &Reply::NotSent("refused".into()));
        assert_eq!(m.works["w1"].acceptable(), vec![Expect::Gone]);
        assert_eq!(m.counts.not_sent, 1);
    }

    #[test]
    fn the_stream_is_a_function_of_the_seed() {
        use rand::SeedableRng;
        let run = |seed| {
            let mut s = OpStream::new(Xoshiro256PlusPlus::seed_from_u64(seed), 4);
            let m = ClusterModel::new("c");
            (0..50)
                .map(|t| format!("{:?}", s.next(&m, t)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
