//! Conformance cases of Placements (issue 14): applying (generation, kept status),
//! decisions replaced with the status in one write (names kept, creation times kept),
//! deletion taking the decisions along, cluster set bindings, all across a reopen.

use chrono::{DateTime, Duration, Utc};
use workbus_hub::store::StoreError;
use workbus_hub::store::placement_writes::{
    ApplyPlacement, BindClusterSet, DeletePlacement, UnbindClusterSet, WriteDecisions,
};
use workbus_schemas::placement::{Placement, PlacementDecision, PlacementStatus};

use super::Backend;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap() + Duration::seconds(secs)
}

fn decision(n: usize, group: usize, clusters: &[&str]) -> PlacementDecision {
    PlacementDecision::new(
        "ns",
        &format!("p-decision-{n}"),
        "p",
        group,
        "",
        clusters.iter().map(|c| (*c).to_owned()).collect(),
    )
}

fn status(selected: i32) -> PlacementStatus {
    PlacementStatus {
        number_of_selected_clusters: selected,
        ..Default::default()
    }
}

pub fn placements_decisions_and_bindings(b: &dyn Backend) {
    let s = b.open();
    let mut p = Placement::named("ns", "p");
    p.spec.number_of_clusters = Some(2);
    let (r, created) = s
        .write(ApplyPlacement {
            placement: p.clone(),
            now: t(0),
        })
        .unwrap();
    assert!(created);
    assert_eq!((r.generation, r.created), (1, t(0)));
    assert_eq!(r.placement.metadata.generation, 1);
    s.write(ApplyPlacement {
        placement: Placement::named("other", "q"),
        now: t(1),
    })
    .unwrap();

    // Decisions and status in one write.
    assert!(
        s.write(WriteDecisions {
            namespace: "ns".into(),
            name: "p".into(),
            decisions: vec![decision(1, 0, &["a", "b"]), decision(2, 1, &["c"])],
            status: status(3),
            now: t(2),
        })
        .unwrap()
    );
    let got = s.placement_decisions("ns", "p").unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].metadata.name, "p-decision-1");
    assert_eq!(got[0].cluster_names().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(got[1].metadata.labels, decision(2, 1, &[]).metadata.labels);
    assert_eq!(
        s.get_placement("ns", "p")
            .unwrap()
            .unwrap()
            .placement
            .status,
        status(3)
    );

    // Re-applying the same spec keeps generation and status; a new spec bumps it.
    let (r, created) = s
        .write(ApplyPlacement {
            placement: p.clone(),
            now: t(3),
        })
        .unwrap();
    assert!(!created);
    assert_eq!((r.generation, r.placement.status.clone()), (1, status(3)));
    p.spec.number_of_clusters = Some(1);
    let (r, _) = s
        .write(ApplyPlacement {
            placement: p.clone(),
            now: t(4),
        })
        .unwrap();
    assert_eq!((r.generation, r.created), (2, t(0)));

    // Fewer decisions: the extra object goes, the kept one keeps its creation time.
    s.write(WriteDecisions {
        namespace: "ns".into(),
        name: "p".into(),
        decisions: vec![decision(1, 0, &["a"])],
        status: status(1),
        now: t(5),
    })
    .unwrap();
    let got = s.placement_decisions("ns", "p").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].metadata.creation_timestamp.map(|x| x.as_datetime()),
        Some(t(2))
    );
    assert_eq!(s.list_decisions(Some("ns")).unwrap().len(), 1);
    assert_eq!(s.list_decisions(None).unwrap().len(), 1);

    // Bindings.
    let (bound, created) = s
        .write(BindClusterSet {
            namespace: "ns".into(),
            cluster_set: "prod".into(),
            now: t(6),
        })
        .unwrap();
    assert!(created);
    let (again, created) = s
        .write(BindClusterSet {
            namespace: "ns".into(),
            cluster_set: "prod".into(),
            now: t(7),
        })
        .unwrap();
    assert!(!created);
    assert_eq!(again, bound);
    s.write(BindClusterSet {
        namespace: "other".into(),
        cluster_set: "global".into(),
        now: t(8),
    })
    .unwrap();
    assert_eq!(s.list_bindings(Some("ns")).unwrap(), vec![bound.clone()]);
    assert_eq!(s.list_bindings(None).unwrap().len(), 2);

    // Everything survives a reopen.
    drop(s);
    let s = b.open();
    let all = s.list_placements(None).unwrap();
    let names: Vec<(&str, &str)> = all.iter().map(|r| (r.namespace(), r.name())).collect();
    assert_eq!(names, vec![("ns", "p"), ("other", "q")]);
    assert_eq!(s.list_placements(Some("other")).unwrap().len(), 1);
    assert_eq!(all[0].placement.spec.number_of_clusters, Some(1));
    assert_eq!(s.placement_decisions("ns", "p").unwrap().len(), 1);
    assert_eq!(s.list_bindings(None).unwrap().len(), 2);

    // Deleting a placement takes its decisions; writing decisions of a deleted one is
    // a no-op; unknown ones are NotFound.
    s.write(DeletePlacement {
        namespace: "ns".into(),
        name: "p".into(),
    })
    .unwrap();
    assert!(s.get_placement("ns", "p").unwrap().is_none());
    assert!(s.placement_decisions("ns", "p").unwrap().is_empty());
    assert!(
        !s.write(WriteDecisions {
            namespace: "ns".into(),
            name: "p".into(),
            decisions: vec![decision(1, 0, &["a"])],
            status: status(1),
            now: t(9),
        })
        .unwrap()
    );
    assert!(s.placement_decisions("ns", "p").unwrap().is_empty());
    assert!(matches!(
        s.write(DeletePlacement {
            namespace: "ns".into(),
            name: "p".into(),
        }),
        Err(StoreError::NotFound { .. })
    ));
    s.write(UnbindClusterSet {
        namespace: "ns".into(),
        cluster_set: "prod".into(),
    })
    .unwrap();
    assert!(matches!(
        s.write(UnbindClusterSet {
            namespace: "ns".into(),
            cluster_set: "prod".into(),
        }),
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.list_bindings(Some("ns")).unwrap().is_empty());
}
