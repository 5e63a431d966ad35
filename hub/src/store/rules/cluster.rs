//! When a cluster may be removed: only once it has no works left (deleting ones
//! included: their agent has not confirmed yet, and the cluster's topic is still needed
//! to re-drive them).

use crate::store::StoreError;

/// Refuses to remove `cluster` while it holds `works` works.
pub fn check_removal(cluster: &str, works: u64) -> Result<(), StoreError> {
    if works > 0 {
        return Err(StoreError::Conflict(format!(
            "cluster {cluster:?} still has {works} work(s); delete them first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_with_works_stays() {
        assert!(check_removal("c", 0).is_ok());
        assert!(matches!(
            check_removal("c", 2),
            Err(StoreError::Conflict(m)) if m == "cluster \"c\" still has 2 work(s); delete them first"
        ));
    }
}
