//! Property tests for `workbus_schemas::sequence_id`: whatever the clock does, a
//! generator's ids strictly increase and each one is accepted as newer than the
//! previous by the source-side rule (`is_newer`), and the decimal/parts encodings
//! round-trip.

use proptest::prelude::*;
use workbus_schemas::sequence_id::{
    EPOCH_MS, MAX_NODE, MAX_STEP, SequenceId, SequenceIdGenerator, is_newer,
};

/// Clock readings around "now", with jumps backwards and forwards, repeats
/// (bursts within one millisecond) and the occasional time before the epoch.
fn clock_readings() -> impl Strategy<Value = Vec<i64>> {
    let now = 1_765_864_817_921_i64;
    let step = prop_oneof![
        4 => Just(0i64),
        3 => 0i64..3,
        2 => -5_000i64..5_000,
        1 => -86_400_000i64..86_400_000,
    ];
    (
        now - 1_000_000..now + 1_000_000,
        prop::collection::vec((step, 1usize..50), 1..60),
        any::<bool>(),
    )
        .prop_map(|(start, jumps, pre_epoch)| {
            let mut t = start;
            let mut out = Vec::new();
            if pre_epoch {
                out.push(0);
            }
            for (delta, repeat) in jumps {
                t += delta;
                out.extend(std::iter::repeat_n(t, repeat));
            }
            out
        })
}

proptest! {
    #[test]
    fn generated_ids_strictly_increase_and_are_newer(readings in clock_readings(), node in 0u16..=MAX_NODE) {
        let mut generator = SequenceIdGenerator::new(node).expect("node in range");
        let mut previous: Option<SequenceId> = None;
        for now in readings {
            let id = generator.next_at(now).expect("within the snowflake range");
            prop_assert_eq!(id.node(), node);
            // Never earlier than the clock (clamped to the epoch).
            prop_assert!(id.unix_millis() >= now.max(EPOCH_MS));
            if let Some(prev) = previous {
                prop_assert!(id > prev, "{} then {}", prev, id);
                prop_assert_eq!(is_newer(Some(&prev.to_string()), &id.to_string()), Ok(true));
                prop_assert_eq!(is_newer(Some(&id.to_string()), &prev.to_string()), Ok(false));
            } else {
                prop_assert_eq!(is_newer(None, &id.to_string()), Ok(true));
            }
            previous = Some(id);
        }
    }

    #[test]
    fn a_resumed_generator_stays_above_the_persisted_id(
        raw in 0u64..=i64::MAX as u64,
        readings in clock_readings(),
    ) {
        let persisted = SequenceId::from_u64(raw).expect("63 bits");
        let mut generator = SequenceIdGenerator::default();
        generator.resume_after(persisted);
        let mut previous = persisted;
        for now in readings {
            match generator.next_at(now) {
                Ok(id) => {
                    prop_assert!(id > previous);
                    previous = id;
                }
                // Only possible when resuming right at the end of the range.
                Err(_) => prop_assert!(persisted.elapsed_millis() >= (1u64 << 41) - 2),
            }
        }
    }

    #[test]
    fn decimal_form_round_trips(raw in 0u64..=i64::MAX as u64) {
        let id = SequenceId::from_u64(raw).expect("63 bits");
        let text = id.to_string();
        prop_assert_eq!(&text, &raw.to_string());
        prop_assert_eq!(text.parse::<SequenceId>(), Ok(id));
    }

    #[test]
    fn parts_round_trip(
        elapsed in 0i64..(1i64 << 41),
        node in 0u16..=MAX_NODE,
        step in 0u16..=MAX_STEP,
    ) {
        let id = SequenceId::new(EPOCH_MS + elapsed, node, step).expect("in range");
        prop_assert_eq!(id.unix_millis(), EPOCH_MS + elapsed);
        prop_assert_eq!(id.time().timestamp_millis(), EPOCH_MS + elapsed);
        prop_assert_eq!(id.node(), node);
        prop_assert_eq!(id.step(), step);
        prop_assert_eq!(
            id.as_u64(),
            ((elapsed as u64) << 22) | (u64::from(node) << 12) | u64::from(step)
        );
    }

    #[test]
    fn is_newer_never_panics(last in ".{0,25}", current in ".{0,25}") {
        let _ = is_newer(Some(&last), &current);
    }
}
