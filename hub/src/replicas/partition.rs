//! Which partition a cluster belongs to: the unit of publishing ownership between
//! several hub replicas (see ARCHITECTURE.md, "Several hubs").
//!
//! A hub fact, not a protocol one: agents never see partitions. Every replica must
//! compute the same partition for a cluster, so the count and the hash are fixed
//! (changing either would move clusters between owners mid-flight: a migration, not a
//! setting).

/// How many partitions the clusters are divided into. At most 64, so a set of
/// partitions fits a `u64` ([`PartitionSet`]).
pub const PARTITIONS: u32 = 64;

const _: () = assert!(PARTITIONS <= 64);

/// A set of partitions as a bit mask (bit *p* = partition *p*).
pub type PartitionSet = u64;

/// The partition of `cluster`: FNV-1a (64 bit) over its name's bytes, modulo
/// [`PARTITIONS`]. Stable across processes, versions and platforms (no seeded hasher).
pub fn partition_of(cluster: &str) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = cluster
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(PARTITIONS)) as u32
}

/// The bit of partition `p` in a [`PartitionSet`].
pub fn bit(p: u32) -> PartitionSet {
    1u64 << p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector).
        assert_eq!(partition_of("a"), (0xaf63_dc4c_8601_ec8c_u64 % 64) as u32);
        assert_eq!(partition_of(""), (0xcbf2_9ce4_8422_2325_u64 % 64) as u32);
        assert_eq!(partition_of("edge-1"), partition_of("edge-1"));
    }

    #[test]
    fn clusters_spread_over_every_partition() {
        let mut seen: PartitionSet = 0;
        for i in 0..2_000 {
            let p = partition_of(&format!("edge-{i}"));
            assert!(p < PARTITIONS);
            seen |= bit(p);
        }
        assert_eq!(seen, u64::MAX, "2,000 names reach all 64 partitions");
    }
}
