//! The conformance checklist of reference `placement.md` §9, items 1–20, one test each
//! (named after the item), over the pure scheduler; and the incremental index checked
//! against full recomputes over random clusters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use workbus_schemas::placement::names::{
    DECISION_GROUP_INDEX_LABEL, DECISION_GROUP_NAME_LABEL, PLACEMENT_LABEL, condition,
};
use workbus_schemas::placement::{
    AddOnScore, ClusterPredicate, ClusterSelector, DecisionGroup, IntOrPercent, Placement,
    PrioritizerConfig, ScoreCoordinate, Toleration,
};
use workbus_schemas::registration::Taint;
use workbus_schemas::registration::names::{
    CLUSTERSET_LABEL, TAINT_UNREACHABLE, claim, taint_effect,
};
use workbus_schemas::selector::{LabelSelector, Requirement};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::Condition;

use super::index::{PlacementIndex, PlacementKey};
use super::schedule::{Outcome, World, schedule};
use super::view::ClusterView;
use crate::store::registration::{ClusterSelector as SetSelector, ClusterSet};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn set(name: &str) -> ClusterSet {
    ClusterSet {
        name: name.into(),
        selector: SetSelector::ExclusiveClusterSetLabel,
        created: t0(),
    }
}

fn global() -> ClusterSet {
    ClusterSet {
        name: "global".into(),
        selector: SetSelector::LabelSelector {
            match_labels: BTreeMap::new(),
        },
        created: t0(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn cluster(name: &str, pairs: &[(&str, &str)]) -> ClusterView {
    ClusterView::new(name, labels(pairs))
}

/// Clusters, sets and the namespace's bindings.
struct Fx {
    sets: BTreeMap<String, ClusterSet>,
    bound: BTreeSet<String>,
    clusters: BTreeMap<String, ClusterView>,
    counts: BTreeMap<String, usize>,
}

impl Fx {
    /// Set `global` bound, and `clusters`.
    fn global(clusters: Vec<ClusterView>) -> Fx {
        Fx {
            sets: [global(), set("prod"), set("dev")]
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            bound: ["global".to_owned()].into(),
            clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
            counts: BTreeMap::new(),
        }
    }

    fn run(&self, p: &Placement, current: &[&str], now: DateTime<Utc>) -> Outcome {
        let current: BTreeSet<String> = current.iter().map(|c| (*c).to_owned()).collect();
        schedule(
            p,
            &current,
            World {
                bound: &self.bound,
                sets: &self.sets,
                clusters: &self.clusters,
                counts: &self.counts,
                now,
            },
        )
    }
}

fn placement() -> Placement {
    Placement::named("ns", "p")
}

fn cond<'a>(o: &'a Outcome, type_: &str) -> &'a Condition {
    o.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

fn reason_of(o: &Outcome) -> (&str, &str, &str) {
    let c = cond(o, condition::SATISFIED);
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn sorted(o: &Outcome) -> Vec<&str> {
    let mut v: Vec<&str> = o.selected.iter().map(String::as_str).collect();
    v.sort();
    v
}

fn predicate(label: LabelSelector, claims: Vec<Requirement>) -> ClusterPredicate {
    ClusterPredicate {
        required_cluster_selector: ClusterSelector {
            label_selector: label,
            claim_selector: workbus_schemas::placement::ClaimSelector {
                match_expressions: claims,
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn exact(configs: &[(&str, i32)]) -> workbus_schemas::placement::PrioritizerPolicy {
    workbus_schemas::placement::PrioritizerPolicy {
        mode: "Exact".into(),
        configurations: configs
            .iter()
            .map(|(name, weight)| PrioritizerConfig {
                score_coordinate: Some(ScoreCoordinate {
                    type_: "BuiltIn".into(),
                    built_in: (*name).into(),
                    add_on: None,
                }),
                weight: *weight,
            })
            .collect(),
    }
}

#[test]
fn item_01_no_binding_gives_no_bindings_and_one_empty_decision() {
    let mut fx = Fx::global(vec![cluster("c1", &[])]);
    fx.bound.clear();
    let o = fx.run(&placement(), &[], t0());
    assert_eq!(
        reason_of(&o),
        (
            "False",
            "NoManagedClusterSetBindings",
            "No valid ManagedClusterSetBindings found in placement namespace"
        )
    );
    assert_eq!(o.decisions.len(), 1);
    assert_eq!(o.decisions[0].metadata.name, "p-decision-1");
    assert!(o.decisions[0].status.decisions.is_empty());
    // A binding of a set that does not exist is not valid either.
    fx.bound.insert("missing".into());
    assert_eq!(
        reason_of(&fx.run(&placement(), &[], t0())).1,
        "NoManagedClusterSetBindings"
    );
}

#[test]
fn item_02_unbound_cluster_sets_give_no_intersection() {
    let mut fx = Fx::global(vec![cluster("c1", &[(CLUSTERSET_LABEL, "b")])]);
    fx.sets.insert("a".into(), set("a"));
    fx.sets.insert("b".into(), set("b"));
    fx.bound = ["b".to_owned()].into();
    let mut p = placement();
    p.spec.cluster_sets = vec!["a".into()];
    let o = fx.run(&p, &[], t0());
    assert_eq!(
        reason_of(&o),
        (
            "False",
            "NoIntersection",
            "None of ManagedClusterSets [a] is bound to placement namespace"
        )
    );
    assert!(o.selected.is_empty());
    // Bound but empty: AllManagedClusterSetsEmpty.
    p.spec.cluster_sets = vec!["b".into()];
    fx.clusters.clear();
    assert_eq!(
        reason_of(&fx.run(&p, &[], t0())),
        (
            "False",
            "AllManagedClusterSetsEmpty",
            "All ManagedClusterSets [b] have no member ManagedCluster"
        )
    );
}

#[test]
fn item_03_predicates_or_and_selectors_and() {
    let mut a = cluster("a", &[("app", "a")]);
    let b = cluster("b", &[("app", "b")]);
    let mut c = cluster("c", &[("app", "a")]);
    a.claims = labels(&[("region", "eu")]);
    c.claims = labels(&[("region", "us")]);
    let fx = Fx::global(vec![a, b, c]);
    let mut p = placement();
    p.spec.predicates = vec![
        predicate(
            LabelSelector::from_labels(&[("app", "a")]),
            vec![Requirement::new("region", "In", &["eu"])],
        ),
        predicate(LabelSelector::from_labels(&[("app", "b")]), vec![]),
    ];
    assert_eq!(sorted(&fx.run(&p, &[], t0())), vec!["a", "b"]);
    p.spec.predicates.truncate(1);
    assert_eq!(sorted(&fx.run(&p, &[], t0())), vec!["a"]);
}

#[test]
fn item_04_claim_selector_matches_cluster_claims() {
    let mut aws = cluster("aws1", &[]);
    aws.claims = labels(&[(claim::PLATFORM, "AWS")]);
    let mut gcp = cluster("gcp1", &[]);
    gcp.claims = labels(&[(claim::PLATFORM, "GCP")]);
    let fx = Fx::global(vec![aws, gcp, cluster("bare", &[])]);
    let mut p = placement();
    p.spec.predicates = vec![predicate(
        LabelSelector::default(),
        vec![Requirement::new(claim::PLATFORM, "In", &["AWS"])],
    )];
    assert_eq!(sorted(&fx.run(&p, &[], t0())), vec!["aws1"]);
}

#[test]
fn item_05_cel_is_misconfigured_not_ignored() {
    // CEL is not evaluated by this hub: any CEL selector (a syntax error included)
    // marks the placement misconfigured and empties its decisions, never matches all.
    let fx = Fx::global(vec![cluster("prod1", &[("env", "prod")])]);
    let mut p = placement();
    let mut pred = predicate(LabelSelector::default(), vec![]);
    pred.required_cluster_selector.cel_selector.cel_expressions =
        vec!["managedCluster.metadata.labels[\"env\"] ==".into()];
    p.spec.predicates = vec![pred];
    let o = fx.run(&p, &["prod1"], t0());
    let m = cond(&o, condition::MISCONFIGURED);
    assert_eq!(
        (m.status.as_str(), m.reason.as_str()),
        ("True", "Misconfigured")
    );
    assert!(m.message.starts_with("Predicate:"), "{}", m.message);
    assert!(o.selected.is_empty());
    assert!(o.decisions[0].status.decisions.is_empty());
    assert_eq!(reason_of(&o).1, "NoManagedClusterMatched");
}

#[test]
fn item_06_terminating_clusters_are_never_selected() {
    let mut gone = cluster("gone", &[]);
    gone.deleting = true;
    let fx = Fx::global(vec![gone, cluster("ok", &[])]);
    assert_eq!(sorted(&fx.run(&placement(), &["gone"], t0())), vec!["ok"]);
}

fn tainted(name: &str, key: &str, effect: &str, added: DateTime<Utc>) -> ClusterView {
    let mut c = cluster(name, &[]);
    c.taints.push(Taint {
        key: key.into(),
        value: String::new(),
        effect: effect.into(),
        time_added: Some(Time::new(added)),
    });
    c
}

#[test]
fn item_07_unreachable_excluded_unless_tolerated_and_toleration_seconds_expire() {
    let added = t0();
    let fx = Fx::global(vec![
        tainted("down", TAINT_UNREACHABLE, taint_effect::NO_SELECT, added),
        cluster("up", &[]),
    ]);
    let p = placement();
    assert_eq!(sorted(&fx.run(&p, &["down", "up"], t0())), vec!["up"]);
    let mut tolerant = placement();
    tolerant.spec.tolerations = vec![Toleration {
        key: TAINT_UNREACHABLE.into(),
        operator: "Exists".into(),
        toleration_seconds: Some(300),
        ..Default::default()
    }];
    let before = fx.run(&tolerant, &["down", "up"], added + Duration::seconds(299));
    assert_eq!(sorted(&before), vec!["down", "up"]);
    assert_eq!(before.requeue_at, Some(added + Duration::seconds(300)));
    let after = fx.run(&tolerant, &["down", "up"], added + Duration::seconds(300));
    assert_eq!(sorted(&after), vec!["up"]);
    assert_eq!(after.requeue_at, None);
    // Without tolerationSeconds: tolerated forever.
    tolerant.spec.tolerations[0].toleration_seconds = None;
    let forever = fx.run(&tolerant, &[], added + Duration::days(365));
    assert_eq!(sorted(&forever), vec!["down", "up"]);
}

#[test]
fn item_08_no_select_if_new_keeps_decided_clusters_prefer_no_select_has_no_effect() {
    let fx = Fx::global(vec![
        tainted("old", "k", taint_effect::NO_SELECT_IF_NEW, t0()),
        tainted("new", "k", taint_effect::NO_SELECT_IF_NEW, t0()),
        tainted("pref", "k", taint_effect::PREFER_NO_SELECT, t0()),
    ]);
    let o = fx.run(&placement(), &["old"], t0());
    assert_eq!(sorted(&o), vec!["old", "pref"]);
}

#[test]
fn item_09_empty_key_with_equal_is_misconfigured() {
    let fx = Fx::global(vec![cluster("c1", &[])]);
    let mut p = placement();
    p.spec.tolerations = vec![Toleration {
        operator: "Equal".into(),
        ..Default::default()
    }];
    let o = fx.run(&p, &["c1"], t0());
    let m = cond(&o, condition::MISCONFIGURED);
    assert_eq!(
        (m.status.as_str(), m.reason.as_str(), m.message.as_str()),
        (
            "True",
            "Misconfigured",
            "TaintToleration:If the key is empty, operator must be Exists."
        )
    );
    assert!(o.selected.is_empty());
    let ok = fx.run(&placement(), &[], t0());
    let m = cond(&ok, condition::MISCONFIGURED);
    assert_eq!(
        (m.status.as_str(), m.reason.as_str(), m.message.as_str()),
        (
            "False",
            "Succeedconfigured",
            "Placement configurations check pass"
        )
    );
}

#[test]
fn item_10_additive_defaults_are_balance_1_steady_1() {
    use super::score::{Prioritizer, weights};
    let w = weights(&Default::default()).unwrap();
    assert_eq!(w, vec![(Prioritizer::Balance, 1), (Prioritizer::Steady, 1)]);
    // Steady keeps the current choice against a name-ordered newcomer.
    let fx = Fx::global(vec![cluster("a", &[]), cluster("b", &[])]);
    let mut p = placement();
    p.spec.number_of_clusters = Some(1);
    assert_eq!(fx.run(&p, &["b"], t0()).selected, vec!["b"]);
    // Overriding one default keeps the other.
    let mut policy = exact(&[("Steady", 0)]);
    policy.mode = "Additive".into();
    assert_eq!(weights(&policy).unwrap(), vec![(Prioritizer::Balance, 1)]);
}

#[test]
fn item_11_exact_allocatable_cpu_scores_and_picks_the_largest() {
    let mut clusters = Vec::new();
    for (name, cpu) in [("c4", 4.0), ("c8", 8.0), ("c12", 12.0)] {
        let mut c = cluster(name, &[]);
        c.cpu = Some(cpu);
        clusters.push(c);
    }
    let fx = Fx::global(clusters);
    let policy = exact(&[("ResourceAllocatableCPU", 1)]);
    let feasible: Vec<&ClusterView> = fx.clusters.values().collect();
    let scores = super::score::score(
        &super::score::Prioritizer::AllocatableCpu,
        &feasible,
        super::score::ScoreInputs {
            current: &BTreeSet::new(),
            counts: &BTreeMap::new(),
        },
    );
    assert_eq!(
        scores,
        [
            ("c12".to_owned(), 100),
            ("c4".to_owned(), -100),
            ("c8".to_owned(), 0)
        ]
        .into()
    );
    let mut p = placement();
    p.spec.prioritizer_policy = policy;
    p.spec.number_of_clusters = Some(1);
    assert_eq!(fx.run(&p, &[], t0()).selected, vec!["c12"]);
}

#[test]
fn item_12_equal_scores_pick_the_smallest_name() {
    let fx = Fx::global(vec![
        cluster("zeta", &[]),
        cluster("alpha", &[]),
        cluster("mid", &[]),
    ]);
    let mut p = placement();
    p.spec.number_of_clusters = Some(2);
    assert_eq!(fx.run(&p, &[], t0()).selected, vec!["alpha", "mid"]);
}

#[test]
fn item_13_balance_scores() {
    use super::score::{Prioritizer, ScoreInputs, score};
    let clusters = [
        cluster("free", &[]),
        cluster("two", &[]),
        cluster("four", &[]),
    ];
    let feasible: Vec<&ClusterView> = clusters.iter().collect();
    let counts: BTreeMap<String, usize> = [("two".to_owned(), 2), ("four".to_owned(), 4)].into();
    let s = score(
        &Prioritizer::Balance,
        &feasible,
        ScoreInputs {
            current: &BTreeSet::new(),
            counts: &counts,
        },
    );
    assert_eq!(s["free"], 100);
    assert_eq!(s["two"], 0);
    assert_eq!(s["four"], -100);
    // This placement's own decisions do not count against it.
    let mine: BTreeSet<String> = ["four".to_owned()].into();
    let s = score(
        &Prioritizer::Balance,
        &feasible,
        ScoreInputs {
            current: &mine,
            counts: &counts,
        },
    );
    assert_eq!(
        (s["two"], s["four"]),
        (2 * (100.0 * (0.5 - 2.0 / 3.0)) as i64, -100)
    );
}

#[test]
fn item_14_builtin_spread_is_misconfigured() {
    let fx = Fx::global(vec![cluster("c1", &[])]);
    let mut p = placement();
    p.spec.prioritizer_policy = exact(&[("Spread", 1)]);
    let o = fx.run(&p, &[], t0());
    let m = cond(&o, condition::MISCONFIGURED);
    assert_eq!(m.message, ":incorrect builtin prioritizer: Spread");
    assert!(o.selected.is_empty());
    // Weight 0 disables the prioritizer before it is checked (as upstream).
    p.spec.prioritizer_policy = exact(&[("Spread", 0)]);
    assert_eq!(
        cond(&fx.run(&p, &[], t0()), condition::MISCONFIGURED).status,
        "False"
    );
}

#[test]
fn item_15_addon_scores_contribute_zero() {
    // This hub stores no AddOnPlacementScores: a missing score is 0 (as upstream), so
    // an AddOn prioritizer never changes the order (expiry warnings: not implemented).
    let fx = Fx::global(vec![cluster("b", &[]), cluster("a", &[])]);
    let mut p = placement();
    p.spec.number_of_clusters = Some(1);
    p.spec.prioritizer_policy.mode = "Exact".into();
    p.spec.prioritizer_policy.configurations = vec![PrioritizerConfig {
        score_coordinate: Some(ScoreCoordinate {
            type_: "AddOn".into(),
            built_in: String::new(),
            add_on: Some(AddOnScore {
                resource_name: "default".into(),
                score_name: "cpu".into(),
            }),
        }),
        weight: 5,
    }];
    assert_eq!(fx.run(&p, &[], t0()).selected, vec!["a"]);
    p.spec.prioritizer_policy.configurations[0]
        .score_coordinate
        .as_mut()
        .unwrap()
        .add_on = None;
    assert_eq!(
        cond(&fx.run(&p, &[], t0()), condition::MISCONFIGURED).message,
        ":addOn should not be empty"
    );
}

#[test]
fn item_16_fewer_feasible_than_requested() {
    let fx = Fx::global(vec![
        cluster("a", &[]),
        cluster("b", &[]),
        cluster("c", &[]),
    ]);
    let mut p = placement();
    p.spec.number_of_clusters = Some(5);
    let o = fx.run(&p, &[], t0());
    assert_eq!(o.selected.len(), 3);
    assert_eq!(
        reason_of(&o),
        (
            "False",
            "NotAllDecisionsScheduled",
            "2 cluster decisions unscheduled"
        )
    );
    assert_eq!(o.status.number_of_selected_clusters, 3);
    p.spec.number_of_clusters = Some(3);
    assert_eq!(
        reason_of(&fx.run(&p, &[], t0())),
        (
            "True",
            "AllDecisionsScheduled",
            "All cluster decisions scheduled"
        )
    );
}

fn many(n: usize) -> Vec<ClusterView> {
    (0..n).map(|i| cluster(&format!("c{i:03}"), &[])).collect()
}

#[test]
fn item_17_250_clusters_make_three_decisions_of_100_100_50() {
    let fx = Fx::global(many(250));
    let o = fx.run(&placement(), &[], t0());
    let names: Vec<&str> = o
        .decisions
        .iter()
        .map(|d| d.metadata.name.as_str())
        .collect();
    assert_eq!(names, vec!["p-decision-1", "p-decision-2", "p-decision-3"]);
    let sizes: Vec<usize> = o
        .decisions
        .iter()
        .map(|d| d.status.decisions.len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    for d in &o.decisions {
        assert_eq!(d.metadata.labels[DECISION_GROUP_INDEX_LABEL], "0");
        assert_eq!(d.metadata.labels[PLACEMENT_LABEL], "p");
    }
    assert_eq!(o.status.decision_groups.len(), 1);
    assert_eq!(o.status.decision_groups[0].cluster_count, 250);
    assert_eq!(o.status.decision_groups[0].decisions.len(), 3);
}

#[test]
fn item_18_25_percent_of_10_gives_groups_of_3_3_3_1() {
    let fx = Fx::global(many(10));
    let mut p = placement();
    p.spec
        .decision_strategy
        .group_strategy
        .clusters_per_decision_group = Some(IntOrPercent::Text("25%".into()));
    let o = fx.run(&p, &[], t0());
    let groups: Vec<(i32, i32)> = o
        .status
        .decision_groups
        .iter()
        .map(|g| (g.decision_group_index, g.cluster_count))
        .collect();
    assert_eq!(groups, vec![(0, 3), (1, 3), (2, 3), (3, 1)]);
    let indexes: Vec<&str> = o
        .decisions
        .iter()
        .map(|d| d.metadata.labels[DECISION_GROUP_INDEX_LABEL].as_str())
        .collect();
    assert_eq!(indexes, vec!["0", "1", "2", "3"]);
}

#[test]
fn item_19_named_group_labels_and_sorted_decisions() {
    let fx = Fx::global(vec![
        cluster("z-canary", &[("canary", "true")]),
        cluster("a-canary", &[("canary", "true")]),
        cluster("m", &[]),
        cluster("b", &[]),
    ]);
    let mut p = placement();
    p.spec.decision_strategy.group_strategy.decision_groups = vec![DecisionGroup {
        group_name: "canary".into(),
        group_cluster_selector: ClusterSelector {
            label_selector: LabelSelector::from_labels(&[("canary", "true")]),
            ..Default::default()
        },
    }];
    let o = fx.run(&p, &[], t0());
    assert_eq!(o.decisions.len(), 2);
    let first = &o.decisions[0];
    assert_eq!(first.metadata.labels[DECISION_GROUP_NAME_LABEL], "canary");
    assert_eq!(
        first.cluster_names().collect::<Vec<_>>(),
        vec!["a-canary", "z-canary"]
    );
    let rest = &o.decisions[1];
    assert_eq!(rest.metadata.labels[DECISION_GROUP_NAME_LABEL], "");
    assert_eq!(rest.metadata.labels[DECISION_GROUP_INDEX_LABEL], "1");
    assert_eq!(rest.cluster_names().collect::<Vec<_>>(), vec!["b", "m"]);
}

#[test]
fn item_20_labelling_a_new_cluster_into_a_bound_set_reschedules() {
    let mut index = PlacementIndex::new(
        [cluster("p1", &[(CLUSTERSET_LABEL, "prod")])],
        [set("prod"), set("dev")],
        [("ns".to_owned(), ["prod".to_owned()].into())].into(),
    );
    let changed = index.upsert_placement(placement(), BTreeSet::new(), t0());
    assert_eq!(changed[0].1.selected, vec!["p1"]);
    let key = PlacementKey::of(&placement());
    // A new cluster in another set changes nothing.
    assert!(
        index
            .on_cluster_changed(cluster("d1", &[(CLUSTERSET_LABEL, "dev")]), t0())
            .is_empty()
    );
    // Labelled into the bound set: the placement is rescheduled, its spec untouched.
    let changed = index.on_cluster_changed(cluster("d1", &[(CLUSTERSET_LABEL, "prod")]), t0());
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, key);
    assert_eq!(sorted(&changed[0].1), vec!["d1", "p1"]);
    assert_eq!(index.outcome(&key), Some(&changed[0].1));
}

/// The scale case, bounded: one label change among 2,000 clusters and 100
/// placements costs one membership check per placement and re-scores only the
/// placements it affects.
#[test]
fn one_label_change_rescores_only_affected_placements() {
    let clusters: Vec<ClusterView> = (0..2000)
        .map(|i| {
            cluster(
                &format!("c{i:04}"),
                &[("team", &format!("t{}", i % 100)), ("zone", "a")],
            )
        })
        .collect();
    let mut index = PlacementIndex::new(
        clusters,
        [global()],
        [("ns".to_owned(), ["global".to_owned()].into())].into(),
    );
    for t in 0..100 {
        let mut p = Placement::named("ns", &format!("team-{t}"));
        p.spec.predicates = vec![predicate(
            LabelSelector::from_labels(&[("team", &format!("t{t}"))]),
            vec![],
        )];
        p.spec.number_of_clusters = Some(5);
        index.upsert_placement(p, BTreeSet::new(), t0());
    }
    let before = index.scoring_passes();
    // A label no placement reads, on a cluster every placement could see: nothing is
    // re-scored except the one placement where the cluster is feasible (its view
    // changed while feasible), and nothing changes.
    let changed =
        index.on_cluster_changed(cluster("c0007", &[("team", "t7"), ("zone", "b")]), t0());
    assert!(changed.is_empty());
    assert_eq!(index.scoring_passes() - before, 1);
    // Moving it to another team re-scores exactly the two teams involved.
    let before = index.scoring_passes();
    let changed =
        index.on_cluster_changed(cluster("c0007", &[("team", "t8"), ("zone", "b")]), t0());
    assert_eq!(index.scoring_passes() - before, 2);
    // team-7 loses a decided cluster; team-8 keeps its five (Steady), so only team-7's
    // outcome changed.
    let keys: Vec<String> = changed.iter().map(|(k, _)| k.name.clone()).collect();
    assert_eq!(keys, vec!["team-7".to_owned()]);
    // An unchanged view (a lease renewal) costs nothing.
    let before = index.scoring_passes();
    index.on_cluster_changed(cluster("c0007", &[("team", "t8"), ("zone", "b")]), t0());
    assert_eq!(index.scoring_passes(), before);
}

mod incremental {
    use proptest::prelude::*;

    use super::*;

    /// A random cluster: set membership, an `env` label, a claim, maybe a taint, CPU.
    fn arb_cluster() -> impl Strategy<Value = ClusterView> {
        (
            0usize..12,
            prop::option::of(prop_oneof![Just("prod"), Just("dev")]),
            prop_oneof![Just("a"), Just("b"), Just("c")],
            prop::option::of(0usize..3),
            prop::option::of(1u32..16),
            any::<bool>(),
        )
            .prop_map(|(i, set, env, taint, cpu, canary)| {
                let mut c = cluster(&format!("c{i:02}"), &[("env", env)]);
                if let Some(s) = set {
                    c.labels.insert(CLUSTERSET_LABEL.into(), s.into());
                }
                if canary {
                    c.labels.insert("canary".into(), "true".into());
                }
                c.claims.insert("region".into(), env.into());
                c.cpu = cpu.map(f64::from);
                let effects = [
                    (TAINT_UNREACHABLE, taint_effect::NO_SELECT),
                    ("k", taint_effect::NO_SELECT_IF_NEW),
                    ("p", taint_effect::PREFER_NO_SELECT),
                ];
                if let Some(t) = taint {
                    c.taints.push(Taint {
                        key: effects[t].0.into(),
                        value: String::new(),
                        effect: effects[t].1.into(),
                        time_added: Some(Time::new(t0())),
                    });
                }
                c
            })
    }

    /// Placements whose scores do not read other placements (no Balance).
    fn placements() -> Vec<Placement> {
        let mut out = Vec::new();
        let mut all = Placement::named("ns", "all");
        all.spec.prioritizer_policy = exact(&[("Steady", 1)]);
        out.push(all);
        let mut top = Placement::named("ns", "top-cpu");
        top.spec.number_of_clusters = Some(3);
        top.spec.prioritizer_policy = exact(&[("ResourceAllocatableCPU", 2), ("Steady", 1)]);
        top.spec.tolerations = vec![Toleration {
            key: TAINT_UNREACHABLE.into(),
            operator: "Exists".into(),
            toleration_seconds: Some(300),
            ..Default::default()
        }];
        out.push(top);
        let mut env = Placement::named("ns", "env-a");
        env.spec.cluster_sets = vec!["prod".into()];
        env.spec.predicates = vec![predicate(
            LabelSelector::from_labels(&[("env", "a")]),
            vec![Requirement::new("region", "NotIn", &["c"])],
        )];
        env.spec.number_of_clusters = Some(2);
        env.spec.prioritizer_policy = exact(&[("Steady", 1)]);
        env.spec.decision_strategy.group_strategy.decision_groups = vec![DecisionGroup {
            group_name: "canary".into(),
            group_cluster_selector: ClusterSelector {
                label_selector: LabelSelector::from_labels(&[("canary", "true")]),
                ..Default::default()
            },
        }];
        out.push(env);
        let mut other = Placement::named("other", "none-bound");
        other.spec.number_of_clusters = Some(1);
        out.push(other);
        out
    }

    #[derive(Debug, Clone)]
    enum Step {
        Change(ClusterView),
        Remove(usize),
        Tick(i64),
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => arb_cluster().prop_map(Step::Change),
            1 => (0usize..12).prop_map(Step::Remove),
            1 => (0i64..400).prop_map(Step::Tick),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// After every step, each placement's outcome equals a full recompute.
        #[test]
        fn incremental_equals_full_recompute(
            initial in prop::collection::vec(arb_cluster(), 0..12),
            steps in prop::collection::vec(arb_step(), 1..40),
        ) {
            let mut index = PlacementIndex::new(
                initial,
                [set("prod"), set("dev"), global()],
                [("ns".to_owned(), ["prod".to_owned(), "global".to_owned()].into())].into(),
            );
            let mut now = t0();
            for p in placements() {
                index.upsert_placement(p, BTreeSet::new(), now);
            }
            for step in steps {
                match step {
                    Step::Change(c) => {
                        index.on_cluster_changed(c, now);
                    }
                    Step::Remove(i) => {
                        index.on_cluster_removed(&format!("c{i:02}"), now);
                    }
                    Step::Tick(secs) => {
                        now += Duration::seconds(secs);
                        index.on_tick(now);
                    }
                }
                let keys: Vec<PlacementKey> = index.keys().cloned().collect();
                for key in keys {
                    let full = index.full_recompute(&key, now);
                    prop_assert_eq!(index.outcome(&key), full.as_ref(), "placement {}", key);
                }
            }
        }
    }
}

/// The figure (10,000 clusters, 100 placements, one label change): prints what
/// one change costs. Timing only, so not run by default (`-- --ignored`; use
/// `--release` for a figure to quote).
#[test]
#[ignore = "timing only"]
fn one_label_change_among_10000_clusters_and_100_placements_timing() {
    let clusters: Vec<ClusterView> = (0..10_000)
        .map(|i| {
            let mut c = cluster(&format!("c{i:05}"), &[("team", &format!("t{}", i % 100))]);
            c.cpu = Some(f64::from(i % 64));
            c
        })
        .collect();
    let mut index = PlacementIndex::new(
        clusters,
        [global()],
        [("ns".to_owned(), ["global".to_owned()].into())].into(),
    );
    for t in 0..100 {
        let mut p = Placement::named("ns", &format!("team-{t}"));
        p.spec.predicates = vec![predicate(
            LabelSelector::from_labels(&[("team", &format!("t{}", t % 50))]),
            vec![],
        )];
        if t % 2 == 0 {
            p.spec.number_of_clusters = Some(10);
        }
        index.upsert_placement(p, BTreeSet::new(), t0());
    }
    let mut worst = std::time::Duration::ZERO;
    for round in 0..20 {
        let team = format!("t{}", (round * 7) % 100);
        let name = format!("c{:05}", round * 37);
        let mut c = cluster(&name, &[("team", &team)]);
        c.cpu = Some(f64::from(round));
        let started = std::time::Instant::now();
        index.on_cluster_changed(c, t0());
        worst = worst.max(started.elapsed());
    }
    eprintln!("worst single label change: {worst:?}");
}
