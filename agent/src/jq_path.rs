//! jq **path expressions**, the subset `ignoreFields.jqPathExpressions` are written in
//! (manifestwork-semantics §5), parsed into the same [`Step`]s as JSONPaths so one
//! evaluator ([`crate::jsonpath`]) serves both.
//!
//! OCM's agent runs full jq (`del(<expr>)` with a 1 s timeout). This agent accepts the
//! path forms in practical use instead of embedding a jq interpreter:
//!
//! - `.a.b`, `."a/b"`, `.["a.b"]`, `.a[0]`, `.a[-1]`, `.a[]`;
//! - pipes into `select(<path> == <literal>)` / `!=` after `[]`, and into further paths:
//!   `.spec.containers[] | select(.name == "web") | .image`.
//!
//! Anything else (functions, arithmetic, alternatives, slices, recursion) is reported as
//! unsupported, so the manifest fails visibly (`AppliedManifestSSAIgnoreFieldError`)
//! instead of silently ignoring nothing. Expressions are length-bounded and parsing is
//! linear, so no timeout is needed.

use crate::jsonpath::{Filter, MAX_PATH_LEN, Step};

/// Parses a jq path expression into steps.
pub fn parse(expr: &str) -> Result<Vec<Step>, String> {
    if expr.len() > MAX_PATH_LEN {
        return Err(format!("expression longer than {MAX_PATH_LEN} characters"));
    }
    let mut steps = Vec::new();
    for (i, segment) in split_pipes(expr)?.into_iter().enumerate() {
        let segment = segment.trim();
        if let Some(inner) = segment
            .strip_prefix("select(")
            .and_then(|s| s.strip_suffix(')'))
        {
            // select filters the elements `[]` produced: it turns that `[]` into a filter.
            if steps.last() != Some(&Step::All) {
                return Err("select is only supported right after []".into());
            }
            steps.pop();
            steps.push(Step::Filter(parse_select(inner)?));
        } else if segment.starts_with('.') {
            steps.extend(parse_path(segment)?);
        } else if segment.is_empty() && i == 0 {
            return Err("empty expression".into());
        } else {
            return Err(format!("unsupported jq expression {segment:?}"));
        }
    }
    if steps.is_empty() {
        // `.` alone: deleting the whole object is never meant.
        return Err("the expression selects the whole object".into());
    }
    Ok(steps)
}

/// Splits at `|` outside strings, brackets and parentheses.
fn split_pipes(expr: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in expr.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            '|' if depth == 0 => {
                parts.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced brackets".into());
        }
    }
    if in_string || depth != 0 {
        return Err("unterminated string or bracket".into());
    }
    parts.push(&expr[start..]);
    Ok(parts)
}

/// `.a."b"[0].["c"][]` → steps.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if r.is_empty() {
                break; // identity
            }
            if r.starts_with('[') {
                rest = r; // `.[...]`
                continue;
            }
            if r.starts_with('"') {
                let (key, after) = string_literal(r)?;
                steps.push(Step::Field(key));
                rest = after;
                continue;
            }
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("unsupported jq expression {path:?}"));
            }
            steps.push(Step::Field(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.trim_start();
            if let Some(after) = r.strip_prefix(']') {
                steps.push(Step::All);
                rest = after;
            } else if r.starts_with('"') {
                let (key, after) = string_literal(r)?;
                steps.push(Step::Field(key));
                rest = after
                    .trim_start()
                    .strip_prefix(']')
                    .ok_or("unterminated [")?;
            } else {
                let end = r.find(']').ok_or("unterminated [")?;
                let index = r[..end].trim();
                steps.push(Step::Index(
                    index
                        .parse()
                        .map_err(|_| format!("unsupported index {index:?}"))?,
                ));
                rest = &r[end + 1..];
            }
        } else {
            return Err(format!("unsupported jq expression {path:?}"));
        }
    }
    Ok(steps)
}

/// A JSON string literal at the start of `s`, and what follows it.
fn string_literal(s: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                let key: String = serde_json::from_str(&s[..=i])
                    .map_err(|e| format!("invalid string {}: {e}", &s[..=i]))?;
                return Ok((key, &s[i + 1..]));
            }
            _ => {}
        }
    }
    Err("unterminated string".into())
}

/// `.name == "web"`, `.ready != true`, `. == 3` → a filter.
fn parse_select(inner: &str) -> Result<Filter, String> {
    let (lhs, rhs, equal) = if let Some((l, r)) = inner.split_once("!=") {
        (l, r, false)
    } else if let Some((l, r)) = inner.split_once("==") {
        (l, r, true)
    } else {
        return Err(format!("unsupported select({inner})"));
    };
    let lhs = lhs.trim();
    if !lhs.starts_with('.') {
        return Err(format!("unsupported select({inner})"));
    }
    let field = parse_path(lhs)?;
    let rhs = rhs.trim();
    if rhs.starts_with('"') {
        let (value, after) = string_literal(rhs)?;
        if !after.trim().is_empty() {
            return Err(format!("unsupported select({inner})"));
        }
        Ok(Filter::new(field, equal, &value, true))
    } else if rhs == "true" || rhs == "false" || rhs.parse::<f64>().is_ok() {
        Ok(Filter::new(field, equal, rhs, false))
    } else {
        Err(format!("unsupported select({inner})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonpath::{remove, select};
    use serde_json::json;

    #[test]
    fn path_forms() {
        let f = |k: &str| Step::Field(k.into());
        assert_eq!(parse(".spec.replicas").unwrap(), [f("spec"), f("replicas")]);
        assert_eq!(
            parse(".metadata.annotations.\"a/b\"").unwrap(),
            [f("metadata"), f("annotations"), f("a/b")]
        );
        assert_eq!(parse(".[\"a.b\"][0]").unwrap(), [f("a.b"), Step::Index(0)]);
        assert_eq!(parse(".a[ ] .b").ok(), None, "no blanks inside a path");
        assert_eq!(parse(".a[-1]").unwrap(), [f("a"), Step::Index(-1)]);
        assert_eq!(parse(".a[]").unwrap(), [f("a"), Step::All]);
    }

    #[test]
    fn select_pipes_filter_elements() {
        let steps = parse(".spec.containers[] | select(.name == \"web\") | .image").unwrap();
        let mut v = json!({"spec": {"containers": [
            {"name": "web", "image": "a"}, {"name": "side", "image": "b"}]}});
        assert_eq!(select(&v, &steps), [&json!("a")]);
        assert_eq!(remove(&mut v, &steps), 1);
        assert_eq!(v["spec"]["containers"][1]["image"], "b");
        let n = parse(".a[] | select(.n != 2)").unwrap();
        let mut l = json!({"a": [{"n": 1}, {"n": 2}]});
        assert_eq!(remove(&mut l, &n), 1);
        assert_eq!(l, json!({"a": [{"n": 2}]}));
    }

    #[test]
    fn unsupported_and_invalid_expressions_are_errors() {
        for e in [
            "",
            ".",
            "spec",
            ".spec | length",
            ".a[1:2]",
            ".a[",
            ".\"x",
            ".a | select(.b == 1)",
            ".a[] | select(.b > 1)",
            ".a + .b",
            "del(.a)",
            ".a..b",
            ".1a",
        ] {
            assert!(parse(e).is_err(), "{e:?}");
        }
        assert!(parse(&".a".repeat(MAX_PATH_LEN)).is_err());
    }
}
