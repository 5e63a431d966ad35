//! (placeholder until the conditions module lands)
use workbus_schemas::work::{Condition, Time};
/// The Deleting condition.
pub fn deleting_condition(generation: i64, at: Time) -> Condition {
    Condition::new(
        "Deleting",
        "True",
        "WorkDeleting",
        "ManifestWork is being deleted",
        at,
    )
    .with_observed_generation(generation)
}
