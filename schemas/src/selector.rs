//! # Kubernetes label selectors
//!
//! [`LabelSelector`] is `metav1.LabelSelector` (`matchLabels` and `matchExpressions`
//! with `In`, `NotIn`, `Exists`, `DoesNotExist`), as OCM users write it in Placements,
//! decision groups and claim selectors. [`LabelSelector::matches`] has apimachinery's
//! semantics (an empty selector matches everything; `NotIn` and `DoesNotExist` match a
//! missing key), [`LabelSelector::validate`] gives apimachinery's field errors
//! (`ValidateLabelSelector`), and [`parse`] reads the string form (`a=b,c!=d,e in
//! (x,y),!f,g`) the CLI's `-l` takes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::work::names::{label_key_errors, label_value_errors};
use crate::work::serde_go::nullable;

/// Selector operators (`metav1.LabelSelectorOperator`).
pub mod operator {
    /// The key exists and its value is one of `values`.
    pub const IN: &str = "In";
    /// The key is missing, or its value is none of `values`.
    pub const NOT_IN: &str = "NotIn";
    /// The key exists.
    pub const EXISTS: &str = "Exists";
    /// The key is missing.
    pub const DOES_NOT_EXIST: &str = "DoesNotExist";
}

/// A `metav1.LabelSelector`. Unknown members are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// `matchLabels`: each key must carry exactly this value.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`: all must hold.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<Requirement>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `matchExpressions` entry (`metav1.LabelSelectorRequirement`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// `key`.
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    /// `operator`, one of [`operator`] (anything else fails [`LabelSelector::validate`]
    /// and matches nothing).
    #[serde(default, deserialize_with = "nullable")]
    pub operator: String,
    /// `values`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

impl Requirement {
    /// A requirement from its parts.
    pub fn new(key: &str, operator: &str, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            operator::IN => value.is_some_and(|v| self.values.contains(v)),
            operator::NOT_IN => value.is_none_or(|v| !self.values.contains(v)),
            operator::EXISTS => value.is_some(),
            operator::DOES_NOT_EXIST => value.is_none(),
            _ => false,
        }
    }
}

/// One apimachinery field error (`field.Error`); `Display` is its text, e.g.
/// `spec.labelSelector.matchExpressions[0].values: Required value: must be specified
/// when `operator` is 'In' or 'NotIn'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// `field.Required`.
    #[error("{path}: Required value: {detail}")]
    Required {
        /// The field path.
        path: String,
        /// Why.
        detail: String,
    },
    /// `field.Forbidden`.
    #[error("{path}: Forbidden: {detail}")]
    Forbidden {
        /// The field path.
        path: String,
        /// Why.
        detail: String,
    },
    /// `field.Invalid`.
    #[error("{path}: Invalid value: {value:?}: {detail}")]
    Invalid {
        /// The field path.
        path: String,
        /// The refused value.
        value: String,
        /// Why.
        detail: String,
    },
}

impl LabelSelector {
    /// A selector of `matchLabels` only.
    pub fn from_labels(labels: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..LabelSelector::default()
        }
    }

    /// Whether `labels` satisfy every `matchLabels` entry and every expression. The
    /// empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Every field error of the selector at `path`, in apimachinery's order
    /// (`ValidateLabelSelector`: expressions, then labels).
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, r) in self.match_expressions.iter().enumerate() {
            let at = format!("{path}.matchExpressions[{i}]");
            match r.operator.as_str() {
                operator::IN | operator::NOT_IN if r.values.is_empty() => {
                    errors.push(FieldError::Required {
                        path: format!("{at}.values"),
                        detail: "must be specified when `operator` is 'In' or 'NotIn'".into(),
                    });
                }
                operator::EXISTS | operator::DOES_NOT_EXIST if !r.values.is_empty() => {
                    errors.push(FieldError::Forbidden {
                        path: format!("{at}.values"),
                        detail: "may not be specified when `operator` is 'Exists' or \
                                 'DoesNotExist'"
                            .into(),
                    });
                }
                operator::IN | operator::NOT_IN | operator::EXISTS | operator::DOES_NOT_EXIST => {}
                other => errors.push(FieldError::Invalid {
                    path: format!("{at}.operator"),
                    value: other.to_owned(),
                    detail: "not a valid selector operator".into(),
                }),
            }
            for e in label_key_errors(&r.key) {
                errors.push(FieldError::Invalid {
                    path: format!("{at}.key"),
                    value: r.key.clone(),
                    detail: e.to_string(),
                });
            }
            // apimachinery checks values only when it builds the selector
            // (`LabelSelectorAsSelector`); checked here so a bad one is refused up front.
            for (j, v) in r.values.iter().enumerate() {
                for e in label_value_errors(v) {
                    errors.push(FieldError::Invalid {
                        path: format!("{at}.values[{j}]"),
                        value: v.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        for (k, v) in &self.match_labels {
            for e in label_key_errors(k) {
                errors.push(FieldError::Invalid {
                    path: format!("{path}.matchLabels"),
                    value: k.clone(),
                    detail: e.to_string(),
                });
            }
            for e in label_value_errors(v) {
                errors.push(FieldError::Invalid {
                    path: format!("{path}.matchLabels"),
                    value: v.clone(),
                    detail: e.to_string(),
                });
            }
        }
        errors
    }
}

impl fmt::Display for LabelSelector {
    /// The string form ([`parse`] reads it back): `matchLabels` as `k=v`, then the
    /// expressions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut terms: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            terms.push(match r.operator.as_str() {
                operator::EXISTS => r.key.clone(),
                operator::DOES_NOT_EXIST => format!("!{}", r.key),
                operator::IN => format!("{} in ({})", r.key, r.values.join(",")),
                operator::NOT_IN => format!("{} notin ({})", r.key, r.values.join(",")),
                other => format!("{} {other} ({})", r.key, r.values.join(",")),
            });
        }
        f.write_str(&terms.join(","))
    }
}

/// Why a selector string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A term has no key (`=b`, `!`, `,,`).
    #[error("found empty key in requirement {0:?}")]
    EmptyKey(String),
    /// `in`/`notin` without a parenthesised list.
    #[error("found {0:?}, expected: '(' after 'in' or 'notin'")]
    ExpectedList(String),
    /// An unclosed `(`.
    #[error("unclosed value list in {0:?}")]
    Unclosed(String),
    /// Text that is no requirement.
    #[error("invalid requirement {0:?}")]
    Invalid(String),
    /// A key or value that is no valid label key or value.
    #[error("{0}")]
    Field(FieldError),
}

/// Parses the string form of a selector: comma-separated requirements `k=v`, `k==v`,
/// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists) and `!k` (does not exist). Each
/// becomes one `matchExpressions` entry (`=` is `In` with one value, `!=` is `NotIn`),
/// so repeated keys keep their meaning. Keys and values are validated.
pub fn parse(text: &str) -> Result<LabelSelector, ParseError> {
    let mut selector = LabelSelector::default();
    for term in split_terms(text)? {
        let term = term.trim();
        if term.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(ParseError::EmptyKey(term.to_owned()));
        }
        selector.match_expressions.push(parse_term(term)?);
    }
    let errors = selector.validate("selector");
    match errors.into_iter().next() {
        Some(e) => Err(ParseError::Field(e)),
        None => Ok(selector),
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, ParseError> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(ParseError::Unclosed(text.to_owned()));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, ParseError> {
    let key_only = |key: &str, op: &str| {
        let key = key.trim();
        if key.is_empty() {
            return Err(ParseError::EmptyKey(term.to_owned()));
        }
        if key.contains(char::is_whitespace) {
            return Err(ParseError::Invalid(term.to_owned()));
        }
        Ok(Requirement::new(key, op, &[]))
    };
    if let Some(key) = term.strip_prefix('!') {
        return key_only(key, operator::DOES_NOT_EXIST);
    }
    for (sign, op) in [
        ("!=", operator::NOT_IN),
        ("==", operator::IN),
        ("=", operator::IN),
    ] {
        if let Some((key, value)) = term.split_once(sign) {
            let mut r = key_only(key, op)?;
            r.values.push(value.trim().to_owned());
            return Ok(r);
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let Some(rest) = words.next() else {
        return key_only(key, operator::EXISTS);
    };
    let rest = rest.trim_start();
    let (op, list) = if let Some(list) = rest.strip_prefix("notin") {
        (operator::NOT_IN, list)
    } else if let Some(list) = rest.strip_prefix("in") {
        (operator::IN, list)
    } else {
        return Err(ParseError::Invalid(term.to_owned()));
    };
    let list = list.trim();
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| ParseError::ExpectedList(term.to_owned()))?;
    let mut r = key_only(key, op)?;
    r.values = inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn operators_match_as_apimachinery() {
        let l = labels(&[("env", "prod"), ("tier", "web")]);
        assert!(LabelSelector::default().matches(&l));
        assert!(LabelSelector::from_labels(&[("env", "prod")]).matches(&l));
        assert!(!LabelSelector::from_labels(&[("env", "dev")]).matches(&l));
        let with = |r: Requirement| LabelSelector {
            match_expressions: vec![r],
            ..Default::default()
        };
        assert!(with(Requirement::new("env", "In", &["dev", "prod"])).matches(&l));
        assert!(!with(Requirement::new("zone", "In", &["a"])).matches(&l));
        assert!(with(Requirement::new("zone", "NotIn", &["a"])).matches(&l));
        assert!(!with(Requirement::new("env", "NotIn", &["prod"])).matches(&l));
        assert!(with(Requirement::new("tier", "Exists", &[])).matches(&l));
        assert!(with(Requirement::new("zone", "DoesNotExist", &[])).matches(&l));
        assert!(!with(Requirement::new("tier", "DoesNotExist", &[])).matches(&l));
        assert!(!with(Requirement::new("tier", "Bogus", &[])).matches(&l));
    }

    #[test]
    fn validation_uses_apimachinery_texts() {
        let s = LabelSelector {
            match_expressions: vec![
                Requirement::new("a", "In", &[]),
                Requirement::new("b", "Exists", &["x"]),
                Requirement::new("c", "Near", &[]),
                Requirement::new("bad key!", "Exists", &[]),
            ],
            ..Default::default()
        };
        let texts: Vec<String> = s.validate("spec").iter().map(|e| e.to_string()).collect();
        assert_eq!(
            texts[0],
            "spec.matchExpressions[0].values: Required value: must be specified when \
             `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            texts[1],
            "spec.matchExpressions[1].values: Forbidden: may not be specified when \
             `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            texts[2],
            "spec.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector \
             operator"
        );
        assert!(texts[3].starts_with("spec.matchExpressions[3].key: Invalid value: \"bad key!\""));
        assert_eq!(texts.len(), 4);
        assert!(
            LabelSelector::from_labels(&[("a", "b")])
                .validate("x")
                .is_empty()
        );
    }

    #[test]
    fn string_form_parses_and_prints() {
        let s = parse("a=b,c!=d,e in (x, y),!f,g,h==i,j notin (k)").unwrap();
        let ops: Vec<(&str, &str, usize)> = s
            .match_expressions
            .iter()
            .map(|r| (r.key.as_str(), r.operator.as_str(), r.values.len()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("a", "In", 1),
                ("c", "NotIn", 1),
                ("e", "In", 2),
                ("f", "DoesNotExist", 0),
                ("g", "Exists", 0),
                ("h", "In", 1),
                ("j", "NotIn", 1),
            ]
        );
        assert!(s.matches(&labels(&[("a", "b"), ("e", "y"), ("g", ""), ("h", "i")])));
        assert!(!s.matches(&labels(&[("a", "b"), ("e", "y"), ("g", ""), ("f", "1")])));
        assert_eq!(parse(&s.to_string()).unwrap(), s);
        assert_eq!(parse("").unwrap(), LabelSelector::default());
    }

    #[test]
    fn bad_strings_are_typed_errors() {
        assert!(matches!(parse("=b"), Err(ParseError::EmptyKey(_))));
        assert!(matches!(parse("a,,b"), Err(ParseError::EmptyKey(_))));
        assert!(matches!(parse("a in x"), Err(ParseError::ExpectedList(_))));
        assert!(matches!(parse("a in (x"), Err(ParseError::Unclosed(_))));
        assert!(matches!(parse("a b"), Err(ParseError::Invalid(_))));
        assert!(matches!(parse("a=b c"), Err(ParseError::Field(_))));
        assert!(matches!(parse("a in ()"), Err(ParseError::Field(_))));
    }

    #[test]
    fn yaml_round_trip_keeps_unknown_members() {
        let yaml = "matchLabels:\n  env: prod\nmatchExpressions:\n- key: zone\n  operator: In\n  values: [a, b]\nfuture: 1\n";
        let s: LabelSelector = serde_norway::from_str(yaml).unwrap();
        assert_eq!(s.match_expressions[0].values, vec!["a", "b"]);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["future"], 1);
        let back: LabelSelector = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
