//! The status conditions a work agent reports, with the exact types, reasons and
//! messages of OCM's work agent (manifestwork-semantics §3), kept apart from applying
//! and from feedback so each rule is in one place:
//!
//! - per manifest: `Applied`, `Available`, `StatusFeedbackSynced`;
//! - per work: `Applied` and `Available`, aggregated over the manifests (§3.1);
//! - `Deleting` while the agent cleans a work up.
//!
//! Work-level conditions carry `observedGeneration` = the work's generation; the
//! per-manifest ones carry none, as the Go agent's status events show.

use workbus_schemas::work::status::{condition_status as st, condition_type as ty};
use workbus_schemas::work::{Condition, ManifestCondition, Time};

fn cond(type_: &str, status: &str, reason: &str, message: &str, at: Time) -> Condition {
    Condition::new(type_, status, reason, message, at)
}

/// Per-manifest `Applied=True`.
pub fn manifest_applied(at: Time) -> Condition {
    cond(
        ty::APPLIED,
        st::TRUE,
        "AppliedManifestComplete",
        "Apply manifest complete",
        at,
    )
}

/// Per-manifest `Applied=False` with the apply error.
pub fn manifest_apply_failed(error: &str, at: Time) -> Condition {
    cond(
        ty::APPLIED,
        st::FALSE,
        "AppliedManifestFailed",
        &format!("Failed to apply manifest: {error}"),
        at,
    )
}

/// Per-manifest `Available`: the object exists (True), is missing (False), could not be
/// read (Unknown), or its meta is incomplete because the kind is unknown (Unknown).
pub fn manifest_available(observation: Availability, at: Time) -> Condition {
    match observation {
        Availability::Exists => cond(
            ty::AVAILABLE,
            st::TRUE,
            "ResourceAvailable",
            "Resource is available",
            at,
        ),
        Availability::Missing => cond(
            ty::AVAILABLE,
            st::FALSE,
            "ResourceNotAvailable",
            "Resource is not available",
            at,
        ),
        Availability::FetchFailed(ref e) => cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "FetchingResourceFailed",
            &format!("Failed to fetch resource: {e}"),
            at,
        ),
        Availability::IncompleteMeta => cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "IncompleteResourceMeta",
            "Resource meta is incomplete",
            at,
        ),
    }
}

/// What the agent could observe of a manifest's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// The object exists and was read.
    Exists,
    /// The object does not exist.
    Missing,
    /// Reading it failed.
    FetchFailed(String),
    /// The kind is unknown, so the object cannot be addressed.
    IncompleteMeta,
}

/// Per-manifest `StatusFeedbackSynced`: `None` when no feedback rule applies, otherwise
/// the errors of the evaluated rules (empty means synced).
pub fn feedback_synced(errors: Option<&[String]>, at: Time) -> Condition {
    match errors {
        None => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::TRUE,
            "NoStatusFeedbackSynced",
            "",
            at,
        ),
        Some([]) => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::TRUE,
            "StatusFeedbackSynced",
            "",
            at,
        ),
        Some(errors) => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::FALSE,
            "StatusFeedbackSyncFailed",
            &format!(
                "Sync status feedback failed with error {}",
                errors.join("; ")
            ),
            at,
        ),
    }
}

/// Work-level `Applied`, aggregated: True when every manifest's `Applied` is True.
pub fn work_applied(manifests: &[ManifestCondition], generation: i64, at: Time) -> Condition {
    let all = manifests
        .iter()
        .all(|m| status_of(m, ty::APPLIED) == Some(st::TRUE));
    let c = if all {
        cond(
            ty::APPLIED,
            st::TRUE,
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
            at,
        )
    } else {
        cond(
            ty::APPLIED,
            st::FALSE,
            "AppliedManifestWorkFailed",
            "Failed to apply manifest work",
            at,
        )
    };
    c.with_observed_generation(generation)
}

/// Work-level `Available`, aggregated (§3.1): any False wins, then any Unknown, then "none
/// True", else True.
pub fn work_available(manifests: &[ManifestCondition], generation: i64, at: Time) -> Condition {
    let total = manifests.len();
    let count = |s: &str| {
        manifests
            .iter()
            .filter(|m| status_of(m, ty::AVAILABLE) == Some(s))
            .count()
    };
    let (false_n, unknown_n, true_n) = (count(st::FALSE), count(st::UNKNOWN), count(st::TRUE));
    let unknown_n = unknown_n + (total - false_n - unknown_n - true_n); // missing condition
    let c = if false_n > 0 {
        cond(
            ty::AVAILABLE,
            st::FALSE,
            "ResourcesNotAvailable",
            &format!("{false_n} of {total} resources are not available"),
            at,
        )
    } else if unknown_n > 0 {
        cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "ResourcesStatusUnknown",
            &format!("{unknown_n} of {total} resources have unknown status"),
            at,
        )
    } else if true_n == 0 {
        cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "ResourcesStatusUnknown",
            "cannot get any available resource ",
            at,
        )
    } else {
        cond(
            ty::AVAILABLE,
            st::TRUE,
            "ResourcesAvailable",
            "All resources are available",
            at,
        )
    };
    c.with_observed_generation(generation)
}

/// `Deleting=True` while the agent removes a work's resources.
pub fn deleting_condition(generation: i64, at: Time) -> Condition {
    cond(
        ty::DELETING,
        st::TRUE,
        "WorkDeleting",
        "ManifestWork is being deleted",
        at,
    )
    .with_observed_generation(generation)
}

fn status_of<'a>(m: &'a ManifestCondition, type_: &str) -> Option<&'a str> {
    m.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(applied: &str, available: Option<&str>) -> ManifestCondition {
        let now = Time::now();
        let mut m = ManifestCondition::default();
        m.conditions.push(cond(ty::APPLIED, applied, "r", "m", now));
        if let Some(a) = available {
            m.conditions.push(cond(ty::AVAILABLE, a, "r", "m", now));
        }
        m
    }

    #[test]
    fn aggregation_messages() {
        let now = Time::now();
        let ok = [
            manifest(st::TRUE, Some(st::TRUE)),
            manifest(st::TRUE, Some(st::TRUE)),
        ];
        assert_eq!(
            work_applied(&ok, 3, now).reason,
            "AppliedManifestWorkComplete"
        );
        assert_eq!(work_applied(&ok, 3, now).observed_generation, 3);
        assert_eq!(
            work_available(&ok, 3, now).message,
            "All resources are available"
        );
        let one_down = [
            manifest(st::TRUE, Some(st::TRUE)),
            manifest(st::FALSE, Some(st::FALSE)),
        ];
        assert_eq!(work_applied(&one_down, 1, now).status, st::FALSE);
        assert_eq!(
            work_available(&one_down, 1, now).message,
            "1 of 2 resources are not available"
        );
        let unknown = [
            manifest(st::TRUE, Some(st::UNKNOWN)),
            manifest(st::TRUE, None),
        ];
        assert_eq!(
            work_available(&unknown, 1, now).message,
            "2 of 2 resources have unknown status"
        );
        assert_eq!(
            work_available(&[], 1, now).message,
            "cannot get any available resource "
        );
    }
}
