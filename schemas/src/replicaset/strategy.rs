//! The rollout strategy of a placementRef (`cluster.open-cluster-management.io/v1alpha1`
//! `RolloutStrategy`, reference `placement.md` §4.1) exactly as OCM users write it, and
//! the parsing of its values: int-or-percent sizes, Go durations, `progressDeadline`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `rolloutStrategy.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutType {
    /// Every selected cluster at once (the default).
    #[default]
    All,
    /// Mandatory groups first, then clusters in name order, `maxConcurrency` at a time.
    Progressive,
    /// Mandatory groups first, then one decision group at a time by index.
    ProgressivePerGroup,
}

/// `placementRefs[].rolloutStrategy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// `type` (default `All`).
    #[serde(rename = "type", default)]
    pub type_: RolloutType,
    /// `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<RolloutAll>,
    /// `progressive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressive: Option<RolloutProgressive>,
    /// `progressivePerGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressive_per_group: Option<RolloutProgressivePerGroup>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The knobs every strategy shares (`RolloutConfig`, inline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    /// `minSuccessTime`: a Go duration (`"0"` default) a succeeded cluster soaks before
    /// it stops occupying a slot (Progressive and ProgressivePerGroup only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_success_time: Option<String>,
    /// `progressDeadline`: `<n>h|m|s` or `None` (default): how long a cluster may be
    /// progressing (or failed) before it counts as timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
    /// `maxFailures`: how many failed or timed-out clusters are tolerated (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<IntOrPercent>,
}

/// A decision group named by `groupName` (used when set) or else `groupIndex`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionGroupRef {
    /// `groupName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_name: String,
    /// `groupIndex` (omitted when 0, as Go's `omitempty`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub group_index: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl DecisionGroupRef {
    /// Whether this reference names the group `(index, name)`: by name when it has one,
    /// else by index (upstream's rule).
    pub fn names(&self, index: i32, name: &str) -> bool {
        if self.group_name.is_empty() {
            self.group_index == index
        } else {
            self.group_name == name
        }
    }
}

/// `rolloutStrategy.all`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAll {
    /// The shared knobs.
    #[serde(flatten)]
    pub config: RolloutConfig,
}

/// `rolloutStrategy.progressive`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgressive {
    /// The shared knobs.
    #[serde(flatten)]
    pub config: RolloutConfig,
    /// `mandatoryDecisionGroups`: rolled out first, tolerating no failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mandatory_decision_groups: Vec<DecisionGroupRef>,
    /// `maxConcurrency`: clusters in flight at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<IntOrPercent>,
}

/// `rolloutStrategy.progressivePerGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgressivePerGroup {
    /// The shared knobs.
    #[serde(flatten)]
    pub config: RolloutConfig,
    /// `mandatoryDecisionGroups`: rolled out first, tolerating no failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mandatory_decision_groups: Vec<DecisionGroupRef>,
}

impl RolloutStrategy {
    /// The knobs of the selected type (defaults when its member is absent).
    pub fn config(&self) -> RolloutConfig {
        match self.type_ {
            RolloutType::All => self.all.clone().map(|a| a.config),
            RolloutType::Progressive => self.progressive.clone().map(|p| p.config),
            RolloutType::ProgressivePerGroup => {
                self.progressive_per_group.clone().map(|p| p.config)
            }
        }
        .unwrap_or_default()
    }

    /// The mandatory decision groups of the selected type (none for `All`).
    pub fn mandatory_groups(&self) -> &[DecisionGroupRef] {
        match self.type_ {
            RolloutType::All => &[],
            RolloutType::Progressive => self
                .progressive
                .as_ref()
                .map_or(&[], |p| &p.mandatory_decision_groups),
            RolloutType::ProgressivePerGroup => self
                .progressive_per_group
                .as_ref()
                .map_or(&[], |p| &p.mandatory_decision_groups),
        }
    }
}

/// Why a rollout value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutValueError {
    /// Not an integer or `N%` with 0 ≤ N ≤ 100.
    #[error(
        "{field}: {value:?} is not an integer or a percentage (pattern ^((100|[0-9]{{1,2}})%|[0-9]+)$)"
    )]
    IntOrPercent {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// Not a Go duration.
    #[error("{field}: {value:?} is not a duration (e.g. \"90s\", \"5m\", \"1h30m\")")]
    Duration {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
}

/// Kubernetes `intstr.IntOrString` as rollouts use it: a count or `"N%"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A count.
    Int(i64),
    /// `"N%"` (or a count written as a string).
    Str(String),
}

impl IntOrPercent {
    /// The value scaled against `total`: a count as is (negative = 0), a percentage of
    /// `total` rounded up (apimachinery's `GetScaledValueFromIntOrPercent(…, true)`).
    pub fn scaled(&self, total: usize, field: &'static str) -> Result<usize, RolloutValueError> {
        let bad = || RolloutValueError::IntOrPercent {
            field,
            value: match self {
                IntOrPercent::Int(i) => i.to_string(),
                IntOrPercent::Str(s) => s.clone(),
            },
        };
        match self {
            IntOrPercent::Int(i) => Ok(usize::try_from(*i).unwrap_or(0)),
            IntOrPercent::Str(s) => match s.strip_suffix('%') {
                Some(p) => {
                    let p: usize = p.parse().map_err(|_| bad())?;
                    if p > 100 {
                        return Err(bad());
                    }
                    Ok((total * p).div_ceil(100))
                }
                None => s.parse().map_err(|_| bad()),
            },
        }
    }
}

/// Parses a Go `time.Duration` string (`"0"`, `"90s"`, `"1h30m"`, `"1.5h"`, `"250ms"`).
pub fn parse_go_duration(s: &str, field: &'static str) -> Result<Duration, RolloutValueError> {
    let bad = || RolloutValueError::Duration {
        field,
        value: s.to_string(),
    };
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Parses `progressDeadline`: `None` (or absent, or empty) = wait forever, else
/// `<n>h|m|s` (upstream's pattern; compound Go durations are accepted too).
pub fn parse_progress_deadline(s: Option<&str>) -> Result<Option<Duration>, RolloutValueError> {
    match s.map(str::trim) {
        None | Some("") | Some("None") => Ok(None),
        Some(d) => parse_go_duration(d, "progressDeadline").map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_and_counts_stay() {
        let p = |s: &str| IntOrPercent::Str(s.into());
        assert_eq!(p("25%").scaled(10, "x"), Ok(3));
        assert_eq!(p("100%").scaled(7, "x"), Ok(7));
        assert_eq!(p("0%").scaled(7, "x"), Ok(0));
        assert_eq!(IntOrPercent::Int(2).scaled(10, "x"), Ok(2));
        assert_eq!(p("3").scaled(10, "x"), Ok(3));
        assert!(p("101%").scaled(10, "x").is_err());
        assert!(p("x%").scaled(10, "x").is_err());
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("0", "f"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("90s", "f"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_go_duration("1h30m", "f"),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_go_duration("250ms", "f"),
            Ok(Duration::from_millis(250))
        );
        assert!(parse_go_duration("5 minutes", "f").is_err());
        assert!(parse_go_duration("m", "f").is_err());
        assert_eq!(parse_progress_deadline(Some("None")), Ok(None));
        assert_eq!(parse_progress_deadline(None), Ok(None));
        assert_eq!(
            parse_progress_deadline(Some("10m")),
            Ok(Some(Duration::from_secs(600)))
        );
    }

    #[test]
    fn group_refs_use_the_name_when_set() {
        let by_name = DecisionGroupRef {
            group_name: "canary".into(),
            group_index: 5,
        };
        assert!(by_name.names(0, "canary"));
        assert!(!by_name.names(5, "other"));
        let by_index = DecisionGroupRef {
            group_name: String::new(),
            group_index: 1,
        };
        assert!(by_index.names(1, "whatever"));
    }
}
