//! Planner and reconcile tests: the rollout/MWRS items of the conformance checklist
//! (`placement.md` §9, 21–31, named after them) and workbus's additions (soak,
//! deadline, maxFailures, approval, rollback, a cluster leaving mid-rollout), on a small
//! in-memory world that applies each reconcile's outcome the way the store does.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use workbus_schemas::replicaset::names::{
    PLACEMENT_LABEL, REPLICA_SET_LABEL, condition_type as ct, reason,
};
use workbus_schemas::replicaset::{GroupGate, ManifestWorkReplicaSetSpec, RolloutPhase};
use workbus_schemas::work::status::{condition_status as cs, condition_type as wt, find_condition};
use workbus_schemas::work::{Condition, ManifestWorkStatus, Time};

use super::cluster_status::ClusterStatus;
use super::decisions::DecisionGroup;
use super::reconcile::{Inputs, Outcome, reconcile, work_labels};
use crate::store::replicaset::{ClusterRollout, ReplicaSetKey, ReplicaSetRecord};
use crate::store::rules::replicaset::{abort, approve, plan_replica_set};
use crate::store::{StoredStatus, WorkKey, WorkRecord};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

struct World {
    rs: ReplicaSetRecord,
    decisions: BTreeMap<String, Option<Vec<DecisionGroup>>>,
    states: BTreeMap<String, ClusterRollout>,
    works: BTreeMap<String, WorkRecord>,
    labels: BTreeMap<String, BTreeMap<String, String>>,
    now: DateTime<Utc>,
}

fn spec(v: serde_json::Value) -> ManifestWorkReplicaSetSpec {
    let mut v = v;
    v["manifestWorkTemplate"] = json!({"workload": {"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": {"v": "1"}}
    ]}});
    serde_json::from_value(v).unwrap()
}

impl World {
    fn new(
        namespace: &str,
        name: &str,
        spec: ManifestWorkReplicaSetSpec,
        placement: Vec<DecisionGroup>,
    ) -> World {
        let key = ReplicaSetKey {
            namespace: namespace.into(),
            name: name.into(),
        };
        let p = spec.placement_refs[0].name.clone();
        let (_, rs) = plan_replica_set(None, &key, BTreeMap::new(), spec, t0())
            .unwrap()
            .into_parts();
        World {
            rs,
            decisions: [(p, Some(placement))].into(),
            states: BTreeMap::new(),
            works: BTreeMap::new(),
            labels: BTreeMap::new(),
            now: t0(),
        }
    }

    fn step(&mut self) -> Outcome {
        let states: Vec<ClusterRollout> = self.states.values().cloned().collect();
        let out = reconcile(Inputs {
            replica_set: &self.rs,
            decisions: &self.decisions,
            states: &states,
            works: &self.works,
            cluster_labels: &self.labels,
            now: self.now,
        });
        for c in &out.delete {
            if let Some(w) = self.works.get_mut(c) {
                w.deletion = Some(self.now);
            }
        }
        for c in &out.forget {
            self.states.remove(c);
        }
        for a in &out.apply {
            let labels = work_labels(&self.rs, &a.placement);
            let w = self
                .works
                .entry(a.cluster.clone())
                .or_insert_with(|| WorkRecord {
                    uid: a.cluster.clone(),
                    key: WorkKey {
                        cluster: a.cluster.clone(),
                        name: self.rs.key.name.clone(),
                    },
                    labels: labels.clone(),
                    annotations: BTreeMap::new(),
                    spec: a.spec.clone(),
                    generation: 0,
                    created: self.now,
                    updated: self.now,
                    deletion: None,
                    status: None,
                });
            w.generation += 1;
            w.spec = a.spec.clone();
            w.labels = labels;
        }
        for s in &out.record {
            self.states.insert(s.cluster.clone(), s.clone());
        }
        if let Some(h) = &out.halt {
            self.rs.halt = Some(h.clone());
        }
        self.rs.status = out.status.clone();
        out
    }

    /// The agent of `cluster` reports conditions for the current generation.
    fn report(&mut self, cluster: &str, conds: &[(&str, &str)]) {
        let w = self.works.get_mut(cluster).unwrap();
        let g = w.generation;
        w.status = Some(StoredStatus {
            status: ManifestWorkStatus {
                conditions: conds
                    .iter()
                    .map(|(t, s)| {
                        Condition::new(t, s, "r", "", Time::new(self.now))
                            .with_observed_generation(g)
                    })
                    .collect(),
                ..Default::default()
            },
            generation: g,
            sequence_id: "1".into(),
            status_hash: None,
            received: self.now,
        });
    }

    fn succeed(&mut self, cluster: &str) {
        self.report(
            cluster,
            &[(wt::APPLIED, cs::TRUE), (wt::AVAILABLE, cs::TRUE)],
        );
    }

    fn fail(&mut self, cluster: &str) {
        self.report(
            cluster,
            &[
                (wt::APPLIED, cs::TRUE),
                (wt::AVAILABLE, cs::TRUE),
                (wt::DEGRADED, cs::TRUE),
            ],
        );
    }

    fn live_works(&self) -> Vec<String> {
        self.works
            .iter()
            .filter(|(_, w)| w.deletion.is_none())
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn status_of(&self, cluster: &str) -> Option<ClusterStatus> {
        self.states.get(cluster).map(|s| s.status)
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let c = find_condition(&self.rs.status.conditions, type_).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    fn phase(&self) -> RolloutPhase {
        self.rs.status.rollout.as_ref().unwrap().phase
    }

    fn new_template(&mut self, v: &str) {
        let mut spec = self.rs.spec.clone();
        spec.manifest_work_template.workload.manifests[0]["data"]["v"] = json!(v);
        let (_, rs) = plan_replica_set(
            Some(self.rs.clone()),
            &self.rs.key.clone(),
            BTreeMap::new(),
            spec,
            self.now,
        )
        .unwrap()
        .into_parts();
        self.rs = rs;
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn progressive(extra: serde_json::Value) -> ManifestWorkReplicaSetSpec {
    let mut p = json!({"type": "Progressive", "progressive": {}});
    for (k, v) in extra.as_object().unwrap() {
        p["progressive"][k] = v.clone();
    }
    spec(json!({"placementRefs": [{"name": "p", "rolloutStrategy": p}]}))
}

#[test]
fn checklist_21_all_applies_every_cluster_in_the_first_reconcile() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a", "b", "c"]), ("", &["d"])]),
    );
    let out = w.step();
    assert_eq!(out.apply.len(), 4);
    assert_eq!(w.live_works(), names(&["a", "b", "c", "d"]));
    assert!(
        w.states
            .values()
            .all(|s| s.status == ClusterStatus::Progressing)
    );
}

#[test]
fn checklist_22_progressive_two_at_a_time_by_name_after_soak() {
    let mut w = World::new(
        "ns",
        "rs",
        progressive(json!({"maxConcurrency": 2, "minSuccessTime": "1m"})),
        DecisionGroup::indexed(&[("", &["c3", "c1", "c2"])]),
    );
    w.step();
    assert_eq!(w.live_works(), names(&["c1", "c2"]));
    w.succeed("c1");
    w.step();
    assert_eq!(w.status_of("c1"), Some(ClusterStatus::Succeeded));
    assert_eq!(w.live_works(), names(&["c1", "c2"]), "c1 still soaks");
    w.now += Duration::seconds(59);
    let out = w.step();
    assert_eq!(out.recheck, Some(t0() + Duration::seconds(60)));
    assert_eq!(w.live_works().len(), 2);
    w.now += Duration::seconds(1);
    w.step();
    assert_eq!(w.live_works(), names(&["c1", "c2", "c3"]));
}

#[test]
fn checklist_23_upstream_rule_stalls_without_a_progressing_condition_ours_does_not() {
    for (rule, expect_all) in [("Upstream", false), ("Available", true)] {
        let mut s = progressive(json!({"maxConcurrency": 1}));
        s.rollout = Some(serde_json::from_value(json!({"successRule": rule})).unwrap());
        let mut w = World::new("ns", "rs", s, DecisionGroup::indexed(&[("", &["a", "b"])]));
        w.step();
        w.succeed("a");
        w.step();
        w.step();
        assert_eq!(w.live_works().len() == 2, expect_all, "rule {rule}");
        if !expect_all {
            assert_eq!(
                w.condition(ct::PLACEMENT_ROLLED_OUT),
                ("False".into(), reason::PROGRESSING.into())
            );
        }
    }
}

#[test]
fn checklist_24_progress_deadline_times_out_and_counts_as_failure() {
    let mut w = World::new(
        "ns",
        "rs",
        progressive(json!({"maxConcurrency": 1, "progressDeadline": "10m"})),
        DecisionGroup::indexed(&[("", &["a", "b"])]),
    );
    w.step();
    w.now += Duration::minutes(10);
    let out = w.step();
    assert_eq!(w.status_of("a"), Some(ClusterStatus::TimeOut));
    assert!(out.halt.is_some(), "maxFailures 0: the rollout stops");
    assert_eq!(w.live_works(), names(&["a"]));
    assert_eq!(w.phase(), RolloutPhase::Aborted);
    w.step();
    assert_eq!(w.live_works(), names(&["a"]), "no new clusters start");
}

#[test]
fn checklist_25_per_group_starts_group_1_only_when_group_0_is_done() {
    let s = spec(
        json!({"placementRefs": [{"name": "p", "rolloutStrategy": {"type": "ProgressivePerGroup"}}]}),
    );
    let mut w = World::new(
        "ns",
        "rs",
        s,
        DecisionGroup::indexed(&[("", &["a", "b"]), ("", &["c"])]),
    );
    w.step();
    assert_eq!(w.live_works(), names(&["a", "b"]));
    w.succeed("a");
    w.step();
    assert_eq!(w.live_works(), names(&["a", "b"]));
    w.succeed("b");
    w.step();
    assert_eq!(w.live_works(), names(&["a", "b", "c"]));
}

#[test]
fn checklist_26_mandatory_groups_first_and_without_failures() {
    let s = progressive(
        json!({"mandatoryDecisionGroups": [{"groupName": "canary"}], "maxFailures": "100%"}),
    );
    let mut w = World::new(
        "ns",
        "rs",
        s,
        DecisionGroup::indexed(&[("", &["a"]), ("canary", &["z"])]),
    );
    w.step();
    assert_eq!(w.live_works(), names(&["z"]));
    w.fail("z");
    let out = w.step();
    assert!(out.halt.is_some(), "a mandatory group tolerates no failure");
    assert_eq!(w.live_works(), names(&["z"]));
}

#[test]
fn checklist_27_works_are_named_and_labelled_as_upstream() {
    let mut w = World::new(
        "ns",
        "web",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a"])]),
    );
    w.step();
    let work = &w.works["a"];
    assert_eq!(work.key.name, "web");
    assert_eq!(work.labels[REPLICA_SET_LABEL], "ns.web");
    assert_eq!(work.labels[PLACEMENT_LABEL], "p");
}

#[test]
fn checklist_28_clusters_and_placements_that_go_lose_their_works() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a", "b"])]),
    );
    w.step();
    w.decisions
        .insert("p".into(), Some(DecisionGroup::indexed(&[("", &["a"])])));
    let out = w.step();
    assert_eq!(out.delete, names(&["b"]));
    assert_eq!(w.live_works(), names(&["a"]));
    // Replacing the placementRef deletes the old placement's works.
    w.rs.spec.placement_refs[0].name = "q".into();
    w.decisions
        .insert("q".into(), Some(DecisionGroup::indexed(&[("", &["c"])])));
    let out = w.step();
    assert_eq!(out.delete, names(&["a"]));
    assert_eq!(w.live_works(), names(&["c"]));
}

#[test]
fn checklist_29_owner_label_too_long_is_invalid_manifest_work_name() {
    let long = "n".repeat(61); // "ns." + 61 = 64 characters
    let mut w = World::new(
        "ns",
        &long,
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a"])]),
    );
    let out = w.step();
    assert!(out.apply.is_empty());
    assert_eq!(
        w.condition(ct::MANIFESTWORK_APPLIED),
        ("False".into(), reason::INVALID_MANIFEST_WORK_NAME.into())
    );
}

#[test]
fn checklist_30_foreground_deletion_waits_for_the_works() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}], "cascadeDeletionPolicy": "Foreground"})),
        DecisionGroup::indexed(&[("", &["a"])]),
    );
    w.step();
    w.rs.deletion = Some(w.now);
    let out = w.step();
    assert_eq!(out.delete, names(&["a"]));
    assert!(!out.deletion_complete, "the work is still there");
    w.works.clear(); // the agent confirmed
    assert!(w.step().deletion_complete);
}

#[test]
fn checklist_31_available_decision_groups_reads_as_upstream() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a", "b"]), ("", &["c"])]),
    );
    w.step();
    w.succeed("a");
    w.step();
    let summary = &w.rs.status.placement_summary[0];
    assert_eq!(
        summary.available_decision_groups,
        "2 (3 / 3 clusters applied)"
    );
    assert_eq!(summary.summary.available, 1);
    assert_eq!(w.rs.status.summary.total, 3);
    for c in ["b", "c"] {
        w.succeed(c);
    }
    w.step();
    assert_eq!(
        w.condition(ct::PLACEMENT_ROLLED_OUT),
        ("True".into(), reason::COMPLETE.into())
    );
    assert_eq!(
        w.condition(ct::MANIFESTWORK_APPLIED),
        ("True".into(), reason::AS_EXPECTED.into())
    );
    assert_eq!(
        w.condition(ct::PLACEMENT_VERIFIED),
        ("True".into(), reason::AS_EXPECTED.into())
    );
    assert_eq!(w.phase(), RolloutPhase::Complete);
}

#[test]
fn missing_and_empty_placements_have_their_reasons() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[]),
    );
    w.step();
    assert_eq!(
        w.condition(ct::PLACEMENT_VERIFIED),
        ("False".into(), reason::PLACEMENT_DECISION_EMPTY.into())
    );
    assert_eq!(
        w.condition(ct::MANIFESTWORK_APPLIED),
        ("False".into(), reason::PLACEMENT_DECISION_EMPTY.into())
    );
    w.decisions.insert("p".into(), None);
    w.step();
    assert_eq!(
        w.condition(ct::PLACEMENT_VERIFIED),
        ("False".into(), reason::PLACEMENT_DECISION_NOT_FOUND.into())
    );
}

#[test]
fn max_failures_percent_tolerates_then_breaches() {
    let mut w = World::new(
        "ns",
        "rs",
        progressive(json!({"maxConcurrency": 2, "maxFailures": "25%"})),
        DecisionGroup::indexed(&[("", &["a", "b", "c", "d"])]),
    );
    w.step();
    w.fail("a"); // 1 of 4 = 25 %: tolerated
    w.succeed("b");
    w.step();
    assert!(w.rs.halt.is_none());
    assert_eq!(
        w.live_works(),
        names(&["a", "b", "c"]),
        "a failed one still occupies a slot"
    );
    w.fail("c");
    let out = w.step();
    assert!(out.halt.is_some());
    assert_eq!(w.live_works(), names(&["a", "b", "c"]));
}

#[test]
fn approval_gate_pauses_after_the_group_until_approved() {
    let mut s = spec(
        json!({"placementRefs": [{"name": "p", "rolloutStrategy": {"type": "ProgressivePerGroup"}}]}),
    );
    s.rollout = Some(
        serde_json::from_value(json!({"approval": {"afterGroups": [{"groupName": "canary"}]}}))
            .unwrap(),
    );
    let mut w = World::new(
        "ns",
        "rs",
        s,
        DecisionGroup::indexed(&[("canary", &["a"]), ("wave", &["b", "c"])]),
    );
    w.step();
    assert_eq!(w.live_works(), names(&["a"]));
    assert_eq!(w.phase(), RolloutPhase::Progressing);
    w.succeed("a");
    w.step();
    assert_eq!(w.phase(), RolloutPhase::AwaitingApproval);
    let awaiting =
        w.rs.status
            .rollout
            .as_ref()
            .unwrap()
            .awaiting
            .clone()
            .unwrap();
    assert_eq!(
        awaiting,
        GroupGate {
            placement: "p".into(),
            group_index: 0,
            group_name: "canary".into()
        }
    );
    w.step();
    assert_eq!(w.live_works(), names(&["a"]), "still paused");
    approve(&mut w.rs, None).unwrap();
    w.step();
    assert_eq!(w.live_works(), names(&["a", "b", "c"]));
    assert_eq!(w.phase(), RolloutPhase::Progressing);
    // A new template asks again.
    for c in ["b", "c"] {
        w.succeed(c);
    }
    w.step();
    assert_eq!(w.phase(), RolloutPhase::Complete);
    w.new_template("2");
    w.step();
    w.succeed("a");
    w.step();
    assert_eq!(w.phase(), RolloutPhase::AwaitingApproval);
}

#[test]
fn failure_with_rollback_restores_the_previous_template() {
    let mut s = progressive(json!({"maxConcurrency": 1}));
    s.rollout = Some(serde_json::from_value(json!({"rollbackOnFailure": true})).unwrap());
    let mut w = World::new(
        "ns",
        "rs",
        s,
        DecisionGroup::indexed(&[("", &["a", "b", "c"])]),
    );
    for c in ["a", "b", "c"] {
        w.step();
        w.succeed(c);
    }
    w.step();
    assert_eq!(w.phase(), RolloutPhase::Complete);
    let v1 = w.works["a"].spec.clone();
    w.new_template("2");
    w.step();
    w.succeed("a");
    w.step();
    assert_ne!(w.works["b"].spec, v1, "b got the new template");
    w.fail("b");
    let out = w.step();
    assert!(out.halt.as_ref().unwrap().rolled_back);
    assert_eq!(w.phase(), RolloutPhase::RolledBack);
    for c in ["a", "b", "c"] {
        assert_eq!(w.works[c].spec, v1, "{c} runs the previous template");
    }
    w.step();
    assert_eq!(w.works["c"].generation, 1, "c never got the bad template");
}

#[test]
fn abort_stops_new_clusters_only() {
    let mut w = World::new(
        "ns",
        "rs",
        progressive(json!({"maxConcurrency": 1})),
        DecisionGroup::indexed(&[("", &["a", "b"])]),
    );
    w.step();
    abort(&mut w.rs, "admin", w.now);
    w.succeed("a");
    w.step();
    assert_eq!(w.live_works(), names(&["a"]));
    assert_eq!(w.status_of("a"), Some(ClusterStatus::Succeeded));
    assert_eq!(w.phase(), RolloutPhase::Aborted);
}

#[test]
fn a_cluster_going_away_mid_rollout_frees_its_slot() {
    let mut w = World::new(
        "ns",
        "rs",
        progressive(json!({"maxConcurrency": 1, "progressDeadline": "5m", "maxFailures": 1})),
        DecisionGroup::indexed(&[("", &["a", "b", "c"])]),
    );
    w.step();
    // a's agent stops answering (Unknown): it times out, tolerated (maxFailures 1).
    w.now += Duration::minutes(5);
    w.step();
    assert_eq!(w.status_of("a"), Some(ClusterStatus::TimeOut));
    assert_eq!(w.live_works(), names(&["a", "b"]));
    // Its taint drops it from the decisions: its work goes, the rollout goes on.
    w.decisions.insert(
        "p".into(),
        Some(DecisionGroup::indexed(&[("", &["b", "c"])])),
    );
    w.succeed("b");
    let out = w.step();
    assert_eq!(out.delete, names(&["a"]));
    assert_eq!(w.live_works(), names(&["b", "c"]));
    assert!(w.rs.halt.is_none());
}

#[test]
fn overrides_render_per_cluster() {
    let mut s = spec(json!({"placementRefs": [{"name": "p"}]}));
    s.overrides = serde_json::from_value(json!([
        {"clusterSelector": {"matchLabels": {"env": "prod"}},
         "patch": [{"op": "replace", "path": "/workload/manifests/0/data/v", "value": "prod"}]}
    ]))
    .unwrap();
    let mut w = World::new(
        "ns",
        "rs",
        s,
        DecisionGroup::indexed(&[("", &["dev1", "prod1"])]),
    );
    w.labels.insert(
        "prod1".into(),
        [("env".to_string(), "prod".to_string())].into(),
    );
    w.step();
    assert_eq!(
        w.works["prod1"].spec.workload.manifests[0]["data"]["v"],
        json!("prod")
    );
    assert_eq!(
        w.works["dev1"].spec.workload.manifests[0]["data"]["v"],
        json!("1")
    );
}

#[test]
fn an_idle_reconcile_changes_nothing() {
    let mut w = World::new(
        "ns",
        "rs",
        spec(json!({"placementRefs": [{"name": "p"}]})),
        DecisionGroup::indexed(&[("", &["a"])]),
    );
    w.step();
    w.succeed("a");
    w.step();
    let out = w.step();
    assert!(out.apply.is_empty() && out.record.is_empty() && out.events.is_empty());
    assert_eq!(out.status, w.rs.status);
}

/// The controller's incremental inputs ([`super::working_set`]) against a full read,
/// after arbitrary sequences of statuses, time, template and decision changes: the
/// working set brought up to date from the announced changes holds exactly the states
/// and works a full read gives, and so the reconcile decides exactly the same.
mod incremental {
    use super::*;
    use crate::rollout::working_set::{Pending, WorkingSet};
    use crate::watch::{ChangeKind, WorkChange};
    use crate::work_view::manifest_work;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Instant;

    const CLUSTERS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    #[derive(Debug, Clone)]
    enum Op {
        /// A status for a cluster's work: 0 succeeded, 1 failed, 2 progressing,
        /// 3 not applied.
        Report(usize, u8),
        /// The agent confirmed a deletion: the work is gone.
        Gone(usize),
        /// Time passes (seconds).
        Advance(i64),
        /// A new template (a new generation).
        Template,
        /// A cluster leaves or joins the decisions.
        Toggle(usize),
        /// A reconcile.
        Step,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..CLUSTERS.len(), 0u8..4).prop_map(|(c, k)| Op::Report(c, k)),
            1 => (0..CLUSTERS.len()).prop_map(Op::Gone),
            2 => (1i64..400).prop_map(Op::Advance),
            1 => Just(Op::Template),
            1 => (0..CLUSTERS.len()).prop_map(Op::Toggle),
            4 => Just(Op::Step),
        ]
    }

    fn strategy_spec(kind: u8) -> ManifestWorkReplicaSetSpec {
        match kind {
            0 => spec(json!({"placementRefs": [{"name": "p",
                "rolloutStrategy": {"type": "All", "all": {"progressDeadline": "5m"}}}]})),
            1 => progressive(json!({"maxConcurrency": 2, "minSuccessTime": "1m",
                "progressDeadline": "5m", "maxFailures": 2})),
            _ => {
                let mut s = spec(json!({"placementRefs": [{"name": "p",
                    "rolloutStrategy": {"type": "ProgressivePerGroup",
                        "progressivePerGroup": {"maxFailures": 1}}}]}));
                s.rollout =
                    Some(serde_json::from_value(json!({"rollbackOnFailure": true})).unwrap());
                s
            }
        }
    }

    fn groups(members: &BTreeSet<usize>) -> Vec<DecisionGroup> {
        let (first, rest): (Vec<&str>, Vec<&str>) =
            members.iter().map(|i| CLUSTERS[*i]).partition(|c| *c < "d");
        DecisionGroup::indexed(&[("canary", &first), ("", &rest)])
    }

    fn announce(pending: &mut Pending, kind: ChangeKind, w: &WorkRecord) {
        pending.note(&WorkChange {
            kind,
            object: manifest_work(w),
        });
    }

    fn run(kind: u8, ops: Vec<Op>) {
        let mut members: BTreeSet<usize> = (0..CLUSTERS.len()).collect();
        let mut w = World::new("ns", "rs", strategy_spec(kind), groups(&members));
        let key = w.rs.key.clone();
        let full = |w: &World| {
            WorkingSet::load(
                &w.rs,
                w.states.values().cloned().collect(),
                w.works.values().cloned(),
                Instant::now(),
            )
        };
        let mut set = full(&w);
        let mut pending = Pending::default();
        // Time, template or decisions moved since the last step: the controller
        // reconciles whatever the works say (a recheck, a kick, a decision change).
        let mut moved = true;
        for op in ops.into_iter().chain([Op::Step]) {
            match op {
                Op::Report(i, k) => {
                    let c = CLUSTERS[i];
                    if !w.works.contains_key(c) {
                        continue;
                    }
                    match k {
                        0 => w.succeed(c),
                        1 => w.fail(c),
                        2 => w.report(c, &[(wt::APPLIED, cs::TRUE)]),
                        _ => w.report(c, &[(wt::APPLIED, cs::FALSE)]),
                    }
                    announce(&mut pending, ChangeKind::Status, &w.works[c]);
                }
                Op::Gone(i) => {
                    let c = CLUSTERS[i];
                    if let Some(gone) = w.works.remove(c) {
                        announce(&mut pending, ChangeKind::Deleted, &gone);
                    }
                }
                Op::Advance(s) => {
                    w.now += Duration::seconds(s);
                    moved = true;
                }
                Op::Template => {
                    w.new_template(&format!("{}", w.rs.generation + 1));
                    moved = true;
                }
                Op::Toggle(i) => {
                    moved = true;
                    if !members.remove(&i) {
                        members.insert(i);
                    }
                    w.decisions.insert("p".into(), Some(groups(&members)));
                }
                Op::Step => {
                    // What the controller does before a reconcile: skip it when only
                    // works changed and none needs reading after an idle reconcile —
                    // the full reconcile must then be idle too.
                    let skip = !moved && set.unchanged_by(&pending);
                    moved = false;
                    if !set.is_current(&w.rs, Instant::now(), std::time::Duration::MAX) {
                        set = full(&w);
                    }
                    for c in set.needs_read(&std::mem::take(&mut pending)) {
                        set.put_work(&key, &c, w.works.get(&c).cloned());
                    }
                    let reference = full(&w);
                    prop_assert_eq_sets(&set, &reference);
                    let states = set.states();
                    let incremental = reconcile(Inputs {
                        replica_set: &w.rs,
                        decisions: &w.decisions,
                        states: &states,
                        works: set.works(),
                        cluster_labels: &w.labels,
                        now: w.now,
                    });
                    let before = w.rs.status.clone();
                    let out = w.step();
                    assert_eq!(incremental, out, "incremental and full reconciles differ");
                    let idle = out.is_idle(&before);
                    assert!(
                        !skip || idle,
                        "a skipped reconcile would have changed something"
                    );
                    if idle {
                        set.settle();
                    }
                    // The write, mirrored; its works announced as the controller does.
                    let written: Vec<WorkRecord> = out
                        .delete
                        .iter()
                        .chain(out.apply.iter().map(|a| &a.cluster))
                        .filter_map(|c| w.works.get(c).cloned())
                        .collect();
                    set.recorded(&key, &out.forget, &out.record, &BTreeSet::new(), &written);
                    for work in &written {
                        announce(&mut pending, ChangeKind::Spec, work);
                    }
                }
            }
        }
    }

    fn prop_assert_eq_sets(set: &WorkingSet, reference: &WorkingSet) {
        assert_eq!(set.states(), reference.states(), "states differ");
        assert_eq!(set.works(), reference.works(), "works differ");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn incremental_inputs_match_a_full_read(
            kind in 0u8..3,
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            run(kind, ops);
        }
    }

    #[test]
    fn own_writes_announced_back_need_no_read() {
        let mut w = World::new("ns", "rs", strategy_spec(0), groups(&(0..4).collect()));
        let key = w.rs.key.clone();
        let mut set = WorkingSet::load(&w.rs, vec![], vec![], Instant::now());
        let out = w.step();
        let written: Vec<WorkRecord> = w.works.values().cloned().collect();
        set.recorded(&key, &out.forget, &out.record, &BTreeSet::new(), &written);
        let mut pending = Pending::default();
        for work in &written {
            announce(&mut pending, ChangeKind::Spec, work);
        }
        assert_eq!(pending.len(), 4);
        assert!(set.needs_read(&pending).is_empty());
        w.succeed("a");
        announce(&mut pending, ChangeKind::Status, &w.works["a"]);
        assert_eq!(set.needs_read(&pending), ["a"]);
    }
}
