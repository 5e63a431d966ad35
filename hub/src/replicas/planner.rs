//! The partition planner: given the live replicas and the stored leases, which
//! partitions one replica keeps, claims and releases, so that the fleet converges to a
//! balanced assignment with the fewest moves. Pure: the lease task
//! ([`super::lease`]) reads the rows, asks [`plan`], and writes the answer in the same
//! transaction.
//!
//! Quotas: the live replicas sorted by id; replica *i* of *n* owns ⌊P/n⌋ partitions,
//! one more when *i* < P mod *n*. Every replica plans from the same rows, so the quotas
//! add up to P. A replica keeps its own leases up to its quota (lowest partitions
//! first), releases the rest, and claims free partitions (never owned, released, or
//! whose lease expired) up to its quota. A lease that has not expired is never claimed,
//! whoever holds it and whether or not its holder still looks live: the expiry is the
//! fence (see ARCHITECTURE.md, "Several hubs").

use std::collections::BTreeSet;

/// One partition's stored lease, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The partition.
    pub partition: u32,
    /// Its holder; `None` when never owned or released.
    pub owner: Option<String>,
    /// Whether the lease ran out (the holder stopped renewing it).
    pub expired: bool,
}

/// What one replica does with the leases this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Own leases to renew.
    pub keep: Vec<u32>,
    /// Partitions to take (free, or expired), with whether the previous holder's lease
    /// *expired* rather than being released (then its late messages may still be on
    /// their way: the new owner waits a quiet period before publishing).
    pub claim: Vec<(u32, bool)>,
    /// Own leases to give up (over quota).
    pub release: Vec<u32>,
}

/// This replica's quota: ⌊P/n⌋, plus one for the first P mod n replicas by id.
/// `live` must contain `me`; 0 when it does not (a replica that is not live owns
/// nothing).
pub fn quota(me: &str, live: &BTreeSet<String>, partitions: u32) -> u32 {
    let n = live.len() as u32;
    let Some(index) = live.iter().position(|r| r == me) else {
        return 0;
    };
    partitions / n + u32::from((index as u32) < partitions % n)
}

/// The plan of replica `me`, given the live replicas (`me` included) and every
/// partition's lease.
pub fn plan(me: &str, live: &BTreeSet<String>, leases: &[LeaseView], partitions: u32) -> Plan {
    let quota = quota(me, live, partitions) as usize;
    let mut sorted: Vec<&LeaseView> = leases.iter().filter(|l| l.partition < partitions).collect();
    sorted.sort_by_key(|l| l.partition);
    let mut out = Plan::default();
    for lease in &sorted {
        if lease.owner.as_deref() == Some(me) {
            if out.keep.len() < quota {
                out.keep.push(lease.partition);
            } else {
                out.release.push(lease.partition);
            }
        }
    }
    for lease in &sorted {
        if out.keep.len() + out.claim.len() >= quota {
            break;
        }
        match &lease.owner {
            None => out.claim.push((lease.partition, false)),
            Some(owner) if owner != me && lease.expired => out.claim.push((lease.partition, true)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn leases(owners: &[Option<&str>], expired: &[u32]) -> Vec<LeaseView> {
        owners
            .iter()
            .enumerate()
            .map(|(p, o)| LeaseView {
                partition: p as u32,
                owner: o.map(str::to_string),
                expired: expired.contains(&(p as u32)),
            })
            .collect()
    }

    /// Runs rounds of every live replica's plan over shared rows until nothing
    /// changes; returns the owners.
    fn converge(ids: &[&str], mut rows: Vec<LeaseView>, partitions: u32) -> Vec<LeaseView> {
        let live = live(ids);
        for _ in 0..10 {
            let before = rows.clone();
            for me in ids {
                let p = plan(me, &live, &rows, partitions);
                for r in &mut rows {
                    if p.release.contains(&r.partition) {
                        r.owner = None;
                    }
                    if p.claim.iter().any(|(c, _)| *c == r.partition) {
                        r.owner = Some(me.to_string());
                        r.expired = false;
                    }
                }
            }
            if rows == before {
                return rows;
            }
        }
        panic!("did not converge: {rows:?}");
    }

    fn count(rows: &[LeaseView], who: &str) -> usize {
        rows.iter()
            .filter(|r| r.owner.as_deref() == Some(who))
            .count()
    }

    #[test]
    fn quotas_add_up_and_differ_by_at_most_one() {
        for n in 1..=7 {
            let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
            let live: BTreeSet<String> = ids.iter().cloned().collect();
            let quotas: Vec<u32> = ids.iter().map(|id| quota(id, &live, 64)).collect();
            assert_eq!(quotas.iter().sum::<u32>(), 64, "n = {n}");
            let (min, max) = (quotas.iter().min().unwrap(), quotas.iter().max().unwrap());
            assert!(max - min <= 1, "n = {n}: {quotas:?}");
        }
        assert_eq!(quota("x", &live(&["a"]), 64), 0, "not live: nothing");
    }

    #[test]
    fn a_lone_replica_claims_every_free_partition() {
        let rows = leases(&[None; 8], &[]);
        let p = plan("a", &live(&["a"]), &rows, 8);
        assert_eq!(p.claim, (0..8).map(|i| (i, false)).collect::<Vec<_>>());
        assert!(p.keep.is_empty() && p.release.is_empty());
    }

    #[test]
    fn a_second_replica_gets_half_with_the_fewest_moves() {
        let rows = converge(&["a"], leases(&[None; 8], &[]), 8);
        assert_eq!(count(&rows, "a"), 8);
        // b joins: a sheds its highest four, b claims exactly those.
        let p = plan("a", &live(&["a", "b"]), &rows, 8);
        assert_eq!(p.keep, vec![0, 1, 2, 3]);
        assert_eq!(p.release, vec![4, 5, 6, 7]);
        let rows = converge(&["a", "b"], rows, 8);
        assert_eq!((count(&rows, "a"), count(&rows, "b")), (4, 4));
        assert!(rows[..4].iter().all(|r| r.owner.as_deref() == Some("a")));
    }

    #[test]
    fn live_leases_are_never_claimed_expired_ones_are() {
        // b died: its leases are not expired yet, so a (alone now) waits.
        let owners = [Some("a"), Some("a"), Some("b"), Some("b")];
        let p = plan("a", &live(&["a"]), &leases(&owners, &[]), 4);
        assert_eq!((p.keep, p.claim), (vec![0, 1], vec![]));
        // Once they expired, a takes them over, marked as taken from an expired lease.
        let p = plan("a", &live(&["a"]), &leases(&owners, &[2, 3]), 4);
        assert_eq!(p.claim, vec![(2, true), (3, true)]);
        // A live replica's expired lease (it was paused) is claimable too, within
        // quota only.
        let p = plan("a", &live(&["a", "b"]), &leases(&owners, &[2, 3]), 4);
        assert!(p.claim.is_empty(), "a is at its quota of 2: {p:?}");
    }

    #[test]
    fn its_own_expired_lease_is_kept_not_claimed() {
        let p = plan("a", &live(&["a"]), &leases(&[Some("a")], &[0]), 1);
        assert_eq!((p.keep, p.claim), (vec![0], vec![]));
    }

    #[test]
    fn three_replicas_balance_from_any_start() {
        let start = leases(
            &[
                Some("c"),
                None,
                Some("zombie"),
                Some("a"),
                None,
                Some("a"),
                Some("a"),
            ],
            &[2],
        );
        let rows = converge(&["a", "b", "c"], start, 7);
        let counts = [count(&rows, "a"), count(&rows, "b"), count(&rows, "c")];
        assert_eq!(counts, [3, 2, 2]);
    }
}
