//! Snowflake sequence ids: the `sequenceid` extension of agent status events, and
//! the rules a source uses to order them (reference §7.3, TV-13, §10 item 12).
//!
//! Layout, as produced by sdk-go agents (Twitter-style snowflake):
//! `id = ((unix_ms - 1288834974657) << 22) | (node << 12) | step`, with 41 time bits,
//! 10 node bits and 12 step bits, sent as a decimal string. Every Go agent uses
//! node 1; workbus does too, because a source refuses to compare ids from different
//! nodes, so an agent replaced by workbus (or the reverse) must keep node 1 for its
//! statuses to keep being accepted.
//!
//! The agent owns a [`SequenceIdGenerator`]; the hub only parses and compares with
//! [`is_newer`]. Nothing here reads a clock except [`SequenceIdGenerator::next`], a
//! convenience over the clock-injected [`SequenceIdGenerator::next_at`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// The snowflake epoch, in Unix milliseconds (2010-11-04T01:42:54.657Z).
pub const EPOCH_MS: i64 = 1_288_834_974_657;
/// Bits holding the node number.
pub const NODE_BITS: u32 = 10;
/// Bits holding the per-millisecond step counter.
pub const STEP_BITS: u32 = 12;
/// The largest node number (1023).
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
/// The largest step (4095): at most 4096 ids per millisecond.
pub const MAX_STEP: u16 = (1 << STEP_BITS) - 1;
/// The node every OCM agent uses (hard-coded in sdk-go, see §10 item 12).
pub const DEFAULT_NODE: u16 = 1;

const NODE_SHIFT: u32 = STEP_BITS;
const TIME_SHIFT: u32 = NODE_BITS + STEP_BITS;
/// The largest elapsed-milliseconds value that keeps an id within Go's `int64`
/// (41 bits), which is what the peer parses into. Reached in 2079.
const MAX_ELAPSED_MS: u64 = (1 << (63 - TIME_SHIFT)) - 1;

/// Why a sequence id could not be parsed, built or compared.
///
/// The texts of the comparison errors follow sdk-go's, so logs read the same on
/// both implementations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceIdError {
    /// The text is not a decimal integer in `0..=i64::MAX`.
    #[error("invalid sequence ID {0:?}: not a decimal integer in 0..=9223372036854775807")]
    Invalid(String),
    /// A number above `i64::MAX`, which a Go peer could not parse.
    #[error("sequence ID {0} does not fit in 63 bits")]
    TooLarge(u64),
    /// [`is_newer`]: the last (stored) id did not parse.
    #[error("unable to parse last sequence ID: {0}")]
    InvalidLast(String),
    /// [`is_newer`]: the new (received) id did not parse.
    #[error("unable to parse current sequence ID: {0}")]
    InvalidCurrent(String),
    /// The two ids come from different snowflake nodes, so they cannot be ordered.
    #[error("sequence IDs ({last},{current}) are not from the same node")]
    NodeMismatch {
        /// The last (stored) id.
        last: String,
        /// The new (received) id.
        current: String,
    },
    /// A node number above [`MAX_NODE`].
    #[error("snowflake node {0} is out of range 0..=1023")]
    NodeOutOfRange(u16),
    /// A step above [`MAX_STEP`].
    #[error("snowflake step {0} is out of range 0..=4095")]
    StepOutOfRange(u16),
    /// A time before the snowflake epoch or past the end of its 41-bit range (2079).
    #[error("time {0} ms is outside the snowflake range")]
    TimeOutOfRange(i64),
    /// The generator has issued the last id of the snowflake range.
    #[error("the sequence id generator has no ids left in the snowflake time range")]
    Exhausted,
}

/// One snowflake sequence id.
///
/// Always within `0..=i64::MAX`, the range a Go peer accepts. The derived ordering is
/// numeric, which for ids of the same node is the order of [`is_newer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceId(u64);

impl SequenceId {
    /// Builds an id from its parts: Unix milliseconds, node and step.
    pub fn new(unix_ms: i64, node: u16, step: u16) -> Result<Self, SequenceIdError> {
        let elapsed = elapsed_ms(unix_ms).ok_or(SequenceIdError::TimeOutOfRange(unix_ms))?;
        if node > MAX_NODE {
            return Err(SequenceIdError::NodeOutOfRange(node));
        }
        if step > MAX_STEP {
            return Err(SequenceIdError::StepOutOfRange(step));
        }
        Ok(Self::from_checked_parts(elapsed, node, step))
    }

    /// Wraps a raw value, which must fit in 63 bits (Go's `int64`).
    pub fn from_u64(value: u64) -> Result<Self, SequenceIdError> {
        if value > i64::MAX as u64 {
            return Err(SequenceIdError::TooLarge(value));
        }
        Ok(Self(value))
    }

    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Milliseconds since the snowflake epoch.
    pub fn elapsed_millis(self) -> u64 {
        self.0 >> TIME_SHIFT
    }

    /// The id's time as Unix milliseconds.
    pub fn unix_millis(self) -> i64 {
        // elapsed < 2^41, so the sum cannot overflow and the cast is exact.
        EPOCH_MS + self.elapsed_millis() as i64
    }

    /// The id's time.
    pub fn time(self) -> DateTime<Utc> {
        // Every 41-bit time after the epoch (up to 2079) is a valid chrono time, so
        // the fallback is unreachable; it only avoids a panic path.
        DateTime::from_timestamp_millis(self.unix_millis()).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The node number.
    pub fn node(self) -> u16 {
        ((self.0 >> NODE_SHIFT) & u64::from(MAX_NODE)) as u16
    }

    /// The step within its millisecond.
    pub fn step(self) -> u16 {
        (self.0 & u64::from(MAX_STEP)) as u16
    }

    /// Whether `self` is newer than `last` by the §7.3 rule: a later time, or the
    /// same time and a higher step. Equal ids are not newer; ids of different nodes
    /// cannot be compared and give [`SequenceIdError::NodeMismatch`].
    pub fn is_newer_than(self, last: SequenceId) -> Result<bool, SequenceIdError> {
        if self.node() != last.node() {
            return Err(SequenceIdError::NodeMismatch {
                last: last.to_string(),
                current: self.to_string(),
            });
        }
        Ok((self.elapsed_millis(), self.step()) > (last.elapsed_millis(), last.step()))
    }

    fn from_checked_parts(elapsed: u64, node: u16, step: u16) -> Self {
        Self((elapsed << TIME_SHIFT) | (u64::from(node) << NODE_SHIFT) | u64::from(step))
    }
}

/// Milliseconds since the epoch, when `unix_ms` lies in the snowflake range.
fn elapsed_ms(unix_ms: i64) -> Option<u64> {
    let elapsed = u64::try_from(unix_ms.checked_sub(EPOCH_MS)?).ok()?;
    (elapsed <= MAX_ELAPSED_MS).then_some(elapsed)
}

impl fmt::Display for SequenceId {
    /// The decimal form used on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SequenceId {
    type Err = SequenceIdError;

    /// Parses the decimal wire form. Like Go's `strconv.ParseInt` it accepts a
    /// leading `+`; unlike it, negative values are refused (no snowflake generator
    /// produces them, and their decoded parts would be meaningless).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: u64 = s
            .parse()
            .map_err(|_| SequenceIdError::Invalid(s.to_string()))?;
        Self::from_u64(value).map_err(|_| SequenceIdError::Invalid(s.to_string()))
    }
}

/// The source's staleness check on a received status (§7.3, sdk-go's
/// `CompareSnowflakeSequenceIDs`): is `current` newer than the stored `last`?
///
/// * `last` absent or empty and `current` non-empty: newer.
/// * Otherwise both must parse, else [`SequenceIdError::InvalidLast`] /
///   [`SequenceIdError::InvalidCurrent`] (so two empty ids are an error, as in Go).
/// * Different nodes: [`SequenceIdError::NodeMismatch`]; the caller ignores the event.
/// * Newer means a later time, or the same time and a higher step; an identical id
///   (a duplicate) is not newer.
pub fn is_newer(last: Option<&str>, current: &str) -> Result<bool, SequenceIdError> {
    let last = last.unwrap_or("");
    if last.is_empty() && !current.is_empty() {
        return Ok(true);
    }
    let last_id: SequenceId = last
        .parse()
        .map_err(|_| SequenceIdError::InvalidLast(last.to_string()))?;
    let current_id: SequenceId = current
        .parse()
        .map_err(|_| SequenceIdError::InvalidCurrent(current.to_string()))?;
    current_id.is_newer_than(last_id)
}

/// Issues strictly increasing sequence ids for one agent.
///
/// Unlike a plain snowflake generator it never waits and never repeats: when the
/// wall clock steps backwards, or more than 4096 ids are asked for in one
/// millisecond, it keeps counting from its last id, borrowing milliseconds from the
/// future, and catches up with the clock once the clock passes it. Ids therefore
/// stay newer than their predecessors by [`is_newer`], which is what makes a
/// source accept them.
///
/// A restarted agent should call [`resume_after`](Self::resume_after) with the last
/// id it persisted, so its first new id is above it even if the clock went back
/// while it was down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceIdGenerator {
    node: u16,
    /// `(elapsed ms, step)` of the last id issued (or resumed after).
    last: Option<(u64, u16)>,
}

impl Default for SequenceIdGenerator {
    /// A generator for node [`DEFAULT_NODE`], as every OCM agent uses.
    fn default() -> Self {
        Self {
            node: DEFAULT_NODE,
            last: None,
        }
    }
}

impl SequenceIdGenerator {
    /// A generator for `node` (at most [`MAX_NODE`]). Use [`Default`] for node 1
    /// unless every source this agent talks to is known to accept another node.
    pub fn new(node: u16) -> Result<Self, SequenceIdError> {
        if node > MAX_NODE {
            return Err(SequenceIdError::NodeOutOfRange(node));
        }
        Ok(Self { node, last: None })
    }

    /// The node this generator stamps into its ids.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// The last id issued (or resumed after), if any.
    pub fn last(&self) -> Option<SequenceId> {
        self.last
            .map(|(elapsed, step)| SequenceId::from_checked_parts(elapsed, self.node, step))
    }

    /// Makes sure every later id is numerically greater than `last` (normally the last
    /// id persisted before a restart). Never moves the generator backwards.
    ///
    /// For an id of the same node that also means newer by [`is_newer`]. An id of a
    /// different node cannot be compared by a source anyway; the generator still
    /// stays numerically above it, moving to the next millisecond if needed.
    pub fn resume_after(&mut self, last: SequenceId) {
        let elapsed = last.elapsed_millis();
        let resumed = if last.node() > self.node {
            // Our ids in the same millisecond would be smaller whatever the step:
            // pretend that millisecond is used up so the next id moves past it.
            (elapsed, MAX_STEP)
        } else {
            (elapsed, last.step())
        };
        if self.last.is_none_or(|current| resumed > current) {
            self.last = Some(resumed);
        }
    }

    /// The next id, with the current time given by the caller as Unix milliseconds
    /// (a time before the snowflake epoch counts as the epoch).
    ///
    /// Fails only at the end of the 41-bit time range (year 2079): with
    /// [`SequenceIdError::TimeOutOfRange`] when `now_ms` itself is past it, or
    /// [`SequenceIdError::Exhausted`] when continuing from the last id would run
    /// past it. The generator is unchanged on error.
    pub fn next_at(&mut self, now_ms: i64) -> Result<SequenceId, SequenceIdError> {
        // Clamp the clock to the epoch: the generator only needs it to move forward.
        let now = u64::try_from(now_ms.saturating_sub(EPOCH_MS)).unwrap_or(0);
        let (elapsed, step) = match self.last {
            Some((last_ms, last_step)) if now <= last_ms => {
                if last_step < MAX_STEP {
                    (last_ms, last_step + 1)
                } else {
                    // Step overflow: borrow the next millisecond instead of waiting.
                    let next_ms = last_ms.checked_add(1).ok_or(SequenceIdError::Exhausted)?;
                    (next_ms, 0)
                }
            }
            _ => {
                if now > MAX_ELAPSED_MS {
                    return Err(SequenceIdError::TimeOutOfRange(now_ms));
                }
                (now, 0)
            }
        };
        if elapsed > MAX_ELAPSED_MS {
            return Err(SequenceIdError::Exhausted);
        }
        self.last = Some((elapsed, step));
        Ok(SequenceId::from_checked_parts(elapsed, self.node, step))
    }

    /// The next id, reading the system clock.
    // Not an `Iterator`: each call is fallible and reads the clock, and the name is
    // the one the agent code is written against.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<SequenceId, SequenceIdError> {
        self.next_at(Utc::now().timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test time")
            .timestamp_millis()
    }

    #[test]
    fn tv13_decodes_both_rows() {
        let rows = [
            ("2000808179721572352", "2025-12-16T06:00:17.921Z"),
            ("1834773391719010304", "2024-09-14T01:57:19.684Z"),
        ];
        for (text, time) in rows {
            let id: SequenceId = text.parse().expect("valid id");
            assert_eq!(id.node(), 1, "{text}");
            assert_eq!(id.step(), 0, "{text}");
            assert_eq!(id.unix_millis(), ms(time), "{text}");
            assert_eq!(id.time(), DateTime::parse_from_rfc3339(time).expect("time"));
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn tv13_encodes_both_rows() {
        let id = SequenceId::new(ms("2025-12-16T06:00:17.921Z"), 1, 0).expect("in range");
        assert_eq!(id.to_string(), "2000808179721572352");
        let id = SequenceId::new(ms("2024-09-14T01:57:19.684Z"), 1, 0).expect("in range");
        assert_eq!(id.to_string(), "1834773391719010304");
    }

    #[test]
    fn tv13_comparison_rules() {
        assert_eq!(is_newer(None, "2000808179721572352"), Ok(true));
        assert_eq!(is_newer(Some(""), "2000808179721572352"), Ok(true));
        assert_eq!(
            is_newer(Some("1834773391719010304"), "2000808179721572352"),
            Ok(true)
        );
        assert_eq!(
            is_newer(Some("2000808179721572352"), "1834773391719010304"),
            Ok(false)
        );
        // A duplicate is not newer.
        assert_eq!(
            is_newer(Some("2000808179721572352"), "2000808179721572352"),
            Ok(false)
        );
        // Node 2 against node 1.
        let node2 = SequenceId::new(ms("2025-12-16T06:00:17.921Z"), 2, 0).expect("in range");
        assert_eq!(
            is_newer(Some("2000808179721572352"), &node2.to_string()),
            Err(SequenceIdError::NodeMismatch {
                last: "2000808179721572352".into(),
                current: node2.to_string(),
            })
        );
    }

    #[test]
    fn same_time_higher_step_is_newer() {
        let t = ms("2025-12-16T06:00:17.921Z");
        let a = SequenceId::new(t, 1, 5).expect("a");
        let b = SequenceId::new(t, 1, 6).expect("b");
        assert_eq!(b.is_newer_than(a), Ok(true));
        assert_eq!(a.is_newer_than(b), Ok(false));
    }

    #[test]
    fn comparison_parse_errors() {
        assert_eq!(
            is_newer(Some("abc"), "2000808179721572352"),
            Err(SequenceIdError::InvalidLast("abc".into()))
        );
        assert_eq!(
            is_newer(Some("2000808179721572352"), "x"),
            Err(SequenceIdError::InvalidCurrent("x".into()))
        );
        // Both empty: Go parses both and fails on the first.
        assert_eq!(
            is_newer(None, ""),
            Err(SequenceIdError::InvalidLast(String::new()))
        );
        assert_eq!(
            is_newer(Some("2000808179721572352"), ""),
            Err(SequenceIdError::InvalidCurrent(String::new()))
        );
    }

    #[test]
    fn parse_accepts_int64_range_only() {
        assert_eq!("0".parse::<SequenceId>().map(SequenceId::as_u64), Ok(0));
        assert_eq!("+7".parse::<SequenceId>().map(SequenceId::as_u64), Ok(7));
        assert_eq!(
            "9223372036854775807"
                .parse::<SequenceId>()
                .map(SequenceId::as_u64),
            Ok(i64::MAX as u64)
        );
        for bad in [
            "",
            "-1",
            "9223372036854775808",
            "18446744073709551616",
            " 1",
            "1.0",
            "0x10",
        ] {
            assert_eq!(
                bad.parse::<SequenceId>(),
                Err(SequenceIdError::Invalid(bad.to_string())),
                "{bad:?}"
            );
        }
        assert_eq!(
            SequenceId::from_u64(u64::MAX),
            Err(SequenceIdError::TooLarge(u64::MAX))
        );
    }

    #[test]
    fn new_checks_ranges() {
        assert_eq!(
            SequenceId::new(EPOCH_MS - 1, 1, 0),
            Err(SequenceIdError::TimeOutOfRange(EPOCH_MS - 1))
        );
        assert_eq!(
            SequenceId::new(EPOCH_MS, 1024, 0),
            Err(SequenceIdError::NodeOutOfRange(1024))
        );
        assert_eq!(
            SequenceId::new(EPOCH_MS, 1, 4096),
            Err(SequenceIdError::StepOutOfRange(4096))
        );
        let last = EPOCH_MS + MAX_ELAPSED_MS as i64;
        let id = SequenceId::new(last, MAX_NODE, MAX_STEP).expect("last id");
        assert_eq!(id.as_u64(), i64::MAX as u64);
        assert_eq!(id.unix_millis(), last);
        assert_eq!(
            SequenceId::new(last + 1, 1, 0),
            Err(SequenceIdError::TimeOutOfRange(last + 1))
        );
        assert_eq!(
            SequenceId::new(i64::MIN, 1, 0),
            Err(SequenceIdError::TimeOutOfRange(i64::MIN))
        );
    }

    #[test]
    fn generator_uses_the_clock_and_node_1_by_default() {
        let mut g = SequenceIdGenerator::default();
        let t = ms("2025-12-16T06:00:17.921Z");
        let id = g.next_at(t).expect("id");
        assert_eq!(id.to_string(), "2000808179721572352");
        let second = g.next_at(t).expect("id");
        assert_eq!(
            (second.unix_millis(), second.node(), second.step()),
            (t, 1, 1)
        );
        let later = g.next_at(t + 10).expect("id");
        assert_eq!((later.unix_millis(), later.step()), (t + 10, 0));
        assert_eq!(g.last(), Some(later));
    }

    #[test]
    fn generator_survives_a_clock_step_backwards() {
        let mut g = SequenceIdGenerator::default();
        let t = ms("2025-12-16T06:00:17.921Z");
        let a = g.next_at(t).expect("a");
        let b = g.next_at(t - 60_000).expect("b");
        assert_eq!(b.is_newer_than(a), Ok(true));
        assert_eq!((b.unix_millis(), b.step()), (t, 1));
    }

    #[test]
    fn generator_borrows_the_next_millisecond_after_4096_ids() {
        let mut g = SequenceIdGenerator::default();
        let t = ms("2025-12-16T06:00:17.921Z");
        let mut prev = g.next_at(t).expect("first");
        for _ in 0..5000 {
            let id = g.next_at(t).expect("id");
            assert_eq!(id.is_newer_than(prev), Ok(true));
            prev = id;
        }
        // 5001 ids at one clock reading: 4096 in t, the rest in t + 1.
        assert_eq!((prev.unix_millis(), prev.step()), (t + 1, 5000 - 4096));
        // The clock catching up (but not passing) keeps counting on.
        let id = g.next_at(t + 1).expect("id");
        assert_eq!((id.unix_millis(), id.step()), (t + 1, 5001 - 4096));
        // The clock passing it starts over at step 0.
        let id = g.next_at(t + 2).expect("id");
        assert_eq!((id.unix_millis(), id.step()), (t + 2, 0));
    }

    #[test]
    fn generator_clamps_times_before_the_epoch() {
        let mut g = SequenceIdGenerator::default();
        let a = g.next_at(i64::MIN).expect("a");
        assert_eq!((a.unix_millis(), a.step()), (EPOCH_MS, 0));
        let b = g.next_at(0).expect("b");
        assert_eq!((b.unix_millis(), b.step()), (EPOCH_MS, 1));
    }

    #[test]
    fn generator_resumes_after_a_persisted_id() {
        let t = ms("2025-12-16T06:00:17.921Z");
        let persisted = SequenceId::new(t, 1, 7).expect("persisted");
        let mut g = SequenceIdGenerator::default();
        g.resume_after(persisted);
        assert_eq!(g.last(), Some(persisted));
        // The clock went back while the agent was down.
        let id = g.next_at(t - 3_600_000).expect("id");
        assert_eq!(id.is_newer_than(persisted), Ok(true));
        assert_eq!((id.unix_millis(), id.step()), (t, 8));
        // Resuming after an older id does not move backwards.
        g.resume_after(SequenceId::new(t - 5, 1, 0).expect("old"));
        let next = g.next_at(t).expect("next");
        assert_eq!(next.is_newer_than(id), Ok(true));
    }

    #[test]
    fn resume_after_an_id_of_a_higher_node_stays_numerically_above_it() {
        let t = ms("2025-12-16T06:00:17.921Z");
        let foreign = SequenceId::new(t, 9, 0).expect("foreign");
        let mut g = SequenceIdGenerator::default();
        g.resume_after(foreign);
        let id = g.next_at(t).expect("id");
        assert!(id > foreign);
        assert_eq!((id.unix_millis(), id.node(), id.step()), (t + 1, 1, 0));

        let lower = SequenceId::new(t + 1, 0, 3).expect("lower node");
        g.resume_after(lower);
        let id = g.next_at(t).expect("id");
        assert!(id > lower);
    }

    #[test]
    fn generator_node_range() {
        assert_eq!(
            SequenceIdGenerator::new(1024),
            Err(SequenceIdError::NodeOutOfRange(1024))
        );
        let mut g = SequenceIdGenerator::new(1023).expect("node 1023");
        assert_eq!(g.node(), 1023);
        assert_eq!(g.next_at(EPOCH_MS).expect("id").node(), 1023);
    }

    #[test]
    fn generator_fails_at_the_end_of_the_range_without_changing_state() {
        let end = EPOCH_MS + MAX_ELAPSED_MS as i64;
        let mut g = SequenceIdGenerator::default();
        assert_eq!(
            g.next_at(end + 1),
            Err(SequenceIdError::TimeOutOfRange(end + 1))
        );
        assert_eq!(g.last(), None);
        assert_eq!(
            g.next_at(i64::MAX),
            Err(SequenceIdError::TimeOutOfRange(i64::MAX))
        );

        g.resume_after(SequenceId::new(end, 1, MAX_STEP).expect("last"));
        let before = g.clone();
        assert_eq!(g.next_at(end), Err(SequenceIdError::Exhausted));
        assert_eq!(
            g.next_at(i64::MAX),
            Err(SequenceIdError::TimeOutOfRange(i64::MAX))
        );
        assert_eq!(g, before);
    }

    #[test]
    fn system_clock_ids_are_recent_and_increasing() {
        let mut g = SequenceIdGenerator::default();
        let before = Utc::now().timestamp_millis();
        let a = g.next().expect("a");
        let b = g.next().expect("b");
        assert!(a.unix_millis() >= before);
        assert_eq!(b.is_newer_than(a), Ok(true));
    }
}
