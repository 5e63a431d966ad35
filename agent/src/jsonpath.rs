//! The Kubernetes JSONPath subset the agent evaluates (without braces, e.g.
//! `.status.readyReplicas`), parsed once into [`Step`]s so the same steps can both
//! **select** values (status feedback, manifestwork-semantics §4) and **remove** the
//! field they end at from every matching parent (server-side apply `ignoreFields`,
//! §5). Other path syntaxes (jq paths, see [`crate::jq_path`]) parse into the same
//! steps, so there is one evaluator.
//!
//! Supported: `.field`, `['field']`, `[n]` (negative counts from the end), `[*]` / `.*`,
//! and filters `[?(@.a.b=="x")]` / `!=` against strings, numbers and booleans. Anything
//! else is an error, never a panic.

use serde_json::Value;

/// Longest path accepted: paths come from the hub, so work on them is bounded.
pub const MAX_PATH_LEN: usize = 1024;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A member of an object.
    Field(String),
    /// An element of a list (negative: from the end).
    Index(i64),
    /// Every element of a list or value of an object.
    All,
    /// The elements of a list that match.
    Filter(Filter),
}

/// A `?(@.field == value)` filter on list elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Path from the element to the compared value (empty: the element itself).
    field: Vec<Step>,
    equal: bool,
    value: String,
    quoted: bool,
}

impl Filter {
    /// A filter comparing the value at `field` (relative to the element) with `value`
    /// (`quoted`: a string literal; otherwise a number or boolean literal).
    pub fn new(field: Vec<Step>, equal: bool, value: &str, quoted: bool) -> Self {
        Filter {
            field,
            equal,
            value: value.to_string(),
            quoted,
        }
    }

    fn parse(filter: &str) -> Result<Self, String> {
        let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("!=") {
            (l, r, false)
        } else if let Some((l, r)) = filter.split_once("==") {
            (l, r, true)
        } else {
            return Err(format!("unsupported filter {filter}"));
        };
        let field = lhs
            .trim()
            .strip_prefix('@')
            .ok_or_else(|| format!("unsupported filter {filter}"))?;
        let field = if field.is_empty() {
            Vec::new()
        } else {
            parse_steps(field)?
        };
        let rhs = rhs.trim();
        let (value, quoted) = match unquote(rhs) {
            Some(v) => (v, true),
            None => (rhs, false),
        };
        Ok(Filter::new(field, equal, value, quoted))
    }

    fn matches(&self, item: &Value) -> bool {
        let found = select(item, &self.field);
        let hit = found.iter().any(|v| match v {
            Value::String(s) => self.quoted && *s == self.value,
            Value::Bool(b) => !self.quoted && self.value == if *b { "true" } else { "false" },
            Value::Number(n) => !self.quoted && n.to_string() == self.value,
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        });
        hit == self.equal
    }
}

/// Parses a Kubernetes JSONPath (braces and a leading `$` optional).
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path longer than {MAX_PATH_LEN} characters"));
    }
    let mut rest = path.trim();
    if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        rest = inner.trim();
    }
    if let Some(r) = rest.strip_prefix('$') {
        rest = r;
    }
    if rest.is_empty() {
        return Err("empty path".into());
    }
    parse_steps(rest)
}

fn parse_steps(mut rest: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            steps.push(match key {
                "" => return Err("empty field name".into()),
                "*" => Step::All,
                key => Step::Field(key.to_string()),
            });
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = closing_bracket(r).ok_or("unterminated [")?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            steps.push(if inner == "*" {
                Step::All
            } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
            {
                Step::Filter(Filter::parse(filter)?)
            } else if let Some(key) = unquote(inner) {
                Step::Field(key.to_string())
            } else {
                Step::Index(
                    inner
                        .parse()
                        .map_err(|_| format!("unsupported index {inner}"))?,
                )
            });
        } else {
            return Err(format!("unexpected {rest:?}"));
        }
    }
    Ok(steps)
}

/// Every value the steps lead to, in document order; empty when they lead nowhere.
pub fn select<'v>(root: &'v Value, steps: &[Step]) -> Vec<&'v Value> {
    let mut cur: Vec<&'v Value> = vec![root];
    for step in steps {
        cur = match step {
            Step::Field(key) => cur.into_iter().filter_map(|v| v.get(key)).collect(),
            Step::All => cur.into_iter().flat_map(children).collect(),
            Step::Index(i) => cur
                .into_iter()
                .filter_map(|v| {
                    let items = v.as_array()?;
                    items.get(position(*i, items.len())?)
                })
                .collect(),
            Step::Filter(f) => cur
                .into_iter()
                .flat_map(|v| v.as_array().map(Vec::as_slice).unwrap_or_default())
                .filter(|item| f.matches(item))
                .collect(),
        };
    }
    cur
}

/// Removes what the last step names from every value the other steps lead to: a
/// member of an object (`Field`), a list element (`Index`, `Filter`), or every element
/// or member (`All`). Missing parents and members are skipped. Returns how many values
/// were removed. No steps: nothing to remove.
pub fn remove(root: &mut Value, steps: &[Step]) -> usize {
    let Some((last, parents)) = steps.split_last() else {
        return 0;
    };
    let mut removed = 0;
    for_each_mut(root, parents, &mut |parent| {
        removed += remove_from(parent, last);
    });
    removed
}

/// Removes only object members: the last step must be a field, and only objects lose
/// it. This is how OCM's agent treats `ignoreFields.jsonPaths` (the last path segment
/// is deleted from every matching map).
pub fn remove_member(root: &mut Value, steps: &[Step]) -> usize {
    match steps.last() {
        Some(Step::Field(_)) => remove(root, steps),
        _ => 0,
    }
}

fn remove_from(parent: &mut Value, last: &Step) -> usize {
    match (parent, last) {
        (Value::Object(m), Step::Field(key)) => usize::from(m.remove(key).is_some()),
        (Value::Object(m), Step::All) => {
            let n = m.len();
            m.clear();
            n
        }
        (Value::Array(a), Step::All) => {
            let n = a.len();
            a.clear();
            n
        }
        (Value::Array(a), Step::Index(i)) => match position(*i, a.len()) {
            Some(p) => {
                a.remove(p);
                1
            }
            None => 0,
        },
        (Value::Array(a), Step::Filter(f)) => {
            let before = a.len();
            a.retain(|item| !f.matches(item));
            before - a.len()
        }
        _ => 0,
    }
}

/// Calls `f` on every value the steps lead to (mutably).
fn for_each_mut(v: &mut Value, steps: &[Step], f: &mut dyn FnMut(&mut Value)) {
    let Some((step, rest)) = steps.split_first() else {
        return f(v);
    };
    match (step, v) {
        (Step::Field(key), Value::Object(m)) => {
            if let Some(child) = m.get_mut(key) {
                for_each_mut(child, rest, f);
            }
        }
        (Step::All, Value::Object(m)) => m.values_mut().for_each(|c| for_each_mut(c, rest, f)),
        (Step::All, Value::Array(a)) => a.iter_mut().for_each(|c| for_each_mut(c, rest, f)),
        (Step::Index(i), Value::Array(a)) => {
            if let Some(p) = position(*i, a.len()) {
                for_each_mut(&mut a[p], rest, f);
            }
        }
        (Step::Filter(filter), Value::Array(a)) => a
            .iter_mut()
            .filter(|item| filter.matches(item))
            .for_each(|c| for_each_mut(c, rest, f)),
        _ => {}
    }
}

/// An index (negative: from the end) as a position in a list of `len`.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { len + index } else { index };
    if (0..len).contains(&i) {
        usize::try_from(i).ok()
    } else {
        None
    }
}

/// The elements of a list or the values of an object.
fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => Vec::new(),
    }
}

/// Position of the `]` closing a bracket, skipping quoted text (filters may compare
/// against strings containing `]`).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `'x'` or `"x"` → `x`.
fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel<'v>(v: &'v Value, p: &str) -> Vec<&'v Value> {
        select(v, &parse(p).unwrap())
    }

    #[test]
    fn bad_paths_are_errors_not_panics() {
        for p in ["a", ".a[", ".a[x]", ".a[?(bad)]", "..", "", "{}", ".a[1:2]"] {
            assert!(parse(p).is_err(), "{p}");
        }
        assert!(parse(&".a".repeat(MAX_PATH_LEN)).is_err(), "too long");
        assert!(sel(&json!({"a": [1]}), ".b[0].c").is_empty());
    }

    #[test]
    fn removes_members_from_every_matching_parent() {
        let mut v = json!({"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "replicas": 3}});
        assert_eq!(
            remove(&mut v, &parse(".spec.containers[*].image").unwrap()),
            2
        );
        assert_eq!(
            v["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b"}])
        );
        assert_eq!(remove(&mut v, &parse(".spec.nothing.here").unwrap()), 0);
        assert_eq!(
            remove(
                &mut v,
                &parse(".spec.containers[?(@.name==\"a\")]").unwrap()
            ),
            1
        );
        assert_eq!(v["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(remove(&mut v, &parse(".spec.containers[-1]").unwrap()), 1);
        assert_eq!(v["spec"]["containers"], json!([]));
        assert_eq!(remove_member(&mut v, &parse(".spec.replicas").unwrap()), 1);
        assert_eq!(v, json!({"spec": {"containers": []}}));
        let mut l = json!({"a": [1, 2]});
        assert_eq!(
            remove_member(&mut l, &parse(".a[0]").unwrap()),
            0,
            "maps only"
        );
    }
}
