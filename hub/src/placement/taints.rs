//! Taints and tolerations (OCM plugin `TaintToleration`, reference `placement.md` §1.3):
//! whether a candidate cluster's taints exclude it from a Placement, and until when a
//! toleration with `tolerationSeconds` holds (the Placement's requeue instant).
//!
//! - `PreferNoSelect` is always tolerated (not implemented upstream either);
//! - `NoSelectIfNew` is tolerated for clusters already in the Placement's decisions;
//! - anything else needs a toleration with matching effect (empty = any), key (empty =
//!   any, with `Exists`) and value (`Equal`: equal, `Exists`: any).

use chrono::{DateTime, Duration, Utc};
use workbus_schemas::placement::Toleration;
use workbus_schemas::placement::names::{misconfig, toleration_operator};
use workbus_schemas::registration::Taint;
use workbus_schemas::registration::names::taint_effect;

use super::Misconfig;

/// OCM's name of the plugin (the prefix of its misconfiguration message).
pub const PLUGIN: &str = "TaintToleration";

/// What a cluster's taints mean for one Placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintVerdict {
    /// Some taint is not tolerated: the cluster is filtered out.
    Excluded,
    /// Every taint is tolerated; `until` is the earliest expiry of a toleration with
    /// `tolerationSeconds` (then the cluster drops out and the Placement is requeued).
    Tolerated {
        /// The earliest toleration expiry, if any toleration expires.
        until: Option<DateTime<Utc>>,
    },
}

/// The misconfigurations of `tolerations`, with OCM's texts.
pub fn check(tolerations: &[Toleration]) -> Result<(), Misconfig> {
    for t in tolerations {
        if t.key.is_empty() && t.operator != toleration_operator::EXISTS {
            return Err(Misconfig::new(PLUGIN, misconfig::EMPTY_KEY_NEEDS_EXISTS));
        }
        if t.operator == toleration_operator::EXISTS && !t.value.is_empty() {
            return Err(Misconfig::new(PLUGIN, misconfig::EXISTS_WITHOUT_VALUE));
        }
    }
    Ok(())
}

/// Whether `toleration` matches `taint` (ignoring time).
fn matches(toleration: &Toleration, taint: &Taint) -> bool {
    if !toleration.effect.is_empty() && toleration.effect != taint.effect {
        return false;
    }
    if !toleration.key.is_empty() && toleration.key != taint.key {
        return false;
    }
    match toleration.operator.as_str() {
        toleration_operator::EXISTS => true,
        _ => toleration.value == taint.value,
    }
}

/// The verdict of `taints` under `tolerations` at `now`; `in_decisions` says whether the
/// cluster is among the Placement's current decisions (for `NoSelectIfNew`).
pub fn evaluate(
    taints: &[Taint],
    tolerations: &[Toleration],
    in_decisions: bool,
    now: DateTime<Utc>,
) -> TaintVerdict {
    let mut until: Option<DateTime<Utc>> = None;
    for taint in taints {
        if taint.effect == taint_effect::PREFER_NO_SELECT
            || (taint.effect == taint_effect::NO_SELECT_IF_NEW && in_decisions)
        {
            continue;
        }
        let mut tolerated = false;
        for t in tolerations.iter().filter(|t| matches(t, taint)) {
            let Some(seconds) = t.toleration_seconds else {
                tolerated = true;
                break;
            };
            // A taint without timeAdded counts as added at the epoch of Go's zero time:
            // its tolerationSeconds have long expired (as upstream).
            let expiry = taint
                .time_added
                .map(|at| at.as_datetime() + Duration::seconds(seconds.max(0)));
            if let Some(expiry) = expiry
                && now < expiry
            {
                tolerated = true;
                until = Some(until.map_or(expiry, |u| u.min(expiry)));
                break;
            }
        }
        if !tolerated {
            return TaintVerdict::Excluded;
        }
    }
    TaintVerdict::Tolerated { until }
}

#[cfg(test)]
mod tests {
    use workbus_schemas::registration::names::TAINT_UNREACHABLE;
    use workbus_schemas::work::Time;

    use super::*;

    fn taint(key: &str, effect: &str, at: DateTime<Utc>) -> Taint {
        Taint {
            key: key.into(),
            value: String::new(),
            effect: effect.into(),
            time_added: Some(Time::new(at)),
        }
    }

    #[test]
    fn matching_rules() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let t = taint("k", taint_effect::NO_SELECT, now);
        let tol = |key: &str, op: &str, value: &str, effect: &str| Toleration {
            key: key.into(),
            operator: op.into(),
            value: value.into(),
            effect: effect.into(),
            toleration_seconds: None,
        };
        let ok = TaintVerdict::Tolerated { until: None };
        assert_eq!(
            evaluate(std::slice::from_ref(&t), &[], false, now),
            TaintVerdict::Excluded
        );
        assert_eq!(
            evaluate(
                std::slice::from_ref(&t),
                &[tol("k", "Exists", "", "")],
                false,
                now
            ),
            ok
        );
        assert_eq!(
            evaluate(
                std::slice::from_ref(&t),
                &[tol("", "Exists", "", "")],
                false,
                now
            ),
            ok
        );
        assert_eq!(
            evaluate(
                std::slice::from_ref(&t),
                &[tol("k", "", "", "NoSelect")],
                false,
                now
            ),
            ok
        );
        assert_eq!(
            evaluate(
                std::slice::from_ref(&t),
                &[tol("k", "Equal", "v", "")],
                false,
                now
            ),
            TaintVerdict::Excluded
        );
        assert_eq!(
            evaluate(&[t], &[tol("k", "Exists", "", "NoSelectIfNew")], false, now),
            TaintVerdict::Excluded
        );
        assert!(check(&[tol("", "Exists", "", "")]).is_ok());
        assert_eq!(
            check(&[tol("k", "Exists", "v", "")])
                .unwrap_err()
                .to_string(),
            "TaintToleration:If the operator is Exists, the value should be empty."
        );
        let unreachable = taint(TAINT_UNREACHABLE, taint_effect::NO_SELECT, now);
        assert_eq!(
            evaluate(&[unreachable], &[], true, now),
            TaintVerdict::Excluded
        );
    }
}
