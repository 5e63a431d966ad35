//! The JSONPath templates of `-o jsonpath=…` and `-o custom-columns=…`: the subset of
//! kubectl's JSONPath that operators use, parsed once and evaluated on JSON values.
//!
//! Supported (as kubectl spells them): text outside braces is printed as written;
//! `{.a.b}` fields (`$` or `@` may lead; `\.` escapes a dot in a key, `['k.e.y']` names
//! any key); `[N]` indexes (negative from the end); `[*]` and `.*` every element or
//! value; `[?(@.path=="v")]` and `!=` filters; `{range EXPR}…{end}` loops over a path's
//! results; `{"\n"}` and `{"\t"}` quoted literals. As with kubectl's `-o jsonpath`, a
//! missing key prints nothing (it is no error); several results print space-separated;
//! strings print raw and other values as JSON.

use serde_json::Value;

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// `{` without `}`.
    #[error("unclosed action in {0:?}")]
    Unclosed(String),
    /// `{range}` without `{end}` or `{end}` without `{range}`.
    #[error("unbalanced {{range}}/{{end}} in {0:?}")]
    Unbalanced(String),
    /// A path that is not in the supported subset.
    #[error("unsupported JSONPath {0:?} (fields, [N], [*], [?(@.k==\"v\")], range/end)")]
    Unsupported(String),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A member of an object.
    Field(String),
    /// An element of an array (negative: from the end).
    Index(i64),
    /// Every element or member value.
    All,
    /// The array elements whose `path` gives (`equal`) or does not give `value`.
    Filter {
        path: Vec<Step>,
        equal: bool,
        value: String,
    },
}

/// A parsed path (`.items[*].metadata.name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path(Vec<Step>);

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

/// A parsed template (`-o jsonpath=…`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Node>);

impl Template {
    /// Parses `text` (`{.metadata.name}`, `{range .items[*]}{.x}{"\n"}{end}`, …).
    pub fn parse(text: &str) -> Result<Template, JsonPathError> {
        let mut stack: Vec<(Path, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_owned()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_owned()));
            }
            let close = closing_brace(&rest[open..])
                .ok_or_else(|| JsonPathError::Unclosed(text.to_owned()))?;
            let action = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if let Some(path) = action.strip_prefix("range ") {
                stack.push((Path::parse(path.trim())?, std::mem::take(&mut nodes)));
            } else if action == "end" {
                let (path, outer) = stack
                    .pop()
                    .ok_or_else(|| JsonPathError::Unbalanced(text.to_owned()))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(quoted) = action.strip_prefix('"').and_then(|a| a.strip_suffix('"'))
            {
                nodes.push(Node::Text(unescape(quoted)));
            } else {
                nodes.push(Node::Path(Path::parse(action)?));
            }
        }
        if !stack.is_empty() {
            return Err(JsonPathError::Unbalanced(text.to_owned()));
        }
        Ok(Template(nodes))
    }

    /// Renders the template on `root`.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.0, root, &mut out);
        out
    }
}

fn render_nodes(nodes: &[Node], current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => out.push_str(
                &p.eval(current)
                    .iter()
                    .map(|v| show(v))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Node::Range(p, body) => {
                for v in p.eval(current) {
                    render_nodes(body, v, out);
                }
            }
        }
    }
}

/// A value as JSONPath prints it: strings raw, everything else as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The offset of the `}` closing the `{` at the start of `s` (braces in quotes ignored).
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl Path {
    /// Parses a path such as `.status.conditions[?(@.type=="Applied")].status`
    /// (braces around it are allowed: custom columns take both forms).
    pub fn parse(text: &str) -> Result<Path, JsonPathError> {
        let unsupported = || JsonPathError::Unsupported(text.to_owned());
        let mut s = text.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            s = inner.trim();
        }
        s = s
            .strip_prefix('$')
            .or_else(|| s.strip_prefix('@'))
            .unwrap_or(s);
        let chars: Vec<char> = s.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let mut key = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        key.push(chars[i]);
                        i += 1;
                    }
                    match key.as_str() {
                        "" if i >= chars.len() && steps.is_empty() => {}
                        "" => return Err(unsupported()),
                        "*" => steps.push(Step::All),
                        _ => steps.push(Step::Field(key)),
                    }
                }
                '[' => {
                    let end = matching_bracket(&chars, i).ok_or_else(unsupported)?;
                    let inner: String = chars[i + 1..end].iter().collect();
                    steps.push(bracket_step(inner.trim()).ok_or_else(unsupported)?);
                    i = end + 1;
                }
                _ => return Err(unsupported()),
            }
        }
        Ok(Path(steps))
    }

    /// The values the path reaches from `root` (none when a key is missing).
    pub fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval_steps(&self.0, root)
    }
}

fn eval_steps<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Field(k), Value::Object(m)) => next.extend(m.get(k)),
                (Step::Index(n), Value::Array(a)) => {
                    let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                    if idx >= 0 {
                        next.extend(a.get(idx as usize));
                    }
                }
                (Step::All, Value::Array(a)) => next.extend(a.iter()),
                (Step::All, Value::Object(m)) => next.extend(m.values()),
                (Step::Filter { path, equal, value }, Value::Array(a)) => {
                    next.extend(a.iter().filter(|e| {
                        let found = eval_steps(path, e).first().map(|x| show(x));
                        (found.as_deref() == Some(value.as_str())) == *equal
                    }))
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// The index of the `]` closing the `[` at `open` (brackets in quotes ignored).
fn matching_bracket(chars: &[char], open: usize) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `*`, `N`, `'key'` or `?(@.path==value)`.
fn bracket_step(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key.to_owned()));
    }
    let cond = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (path, equal, value) = if let Some((p, v)) = cond.split_once("!=") {
        (p, false, v)
    } else {
        let (p, v) = cond.split_once("==")?;
        (p, true, v)
    };
    let path = path.trim();
    if !path.starts_with('@') {
        return None;
    }
    let value = value.trim();
    Some(Step::Filter {
        path: Path::parse(path).ok()?.0,
        equal,
        value: unquote(value).unwrap_or(value).to_owned(),
    })
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
             "status": {"conditions": [
                {"type": "Applied", "status": "True"},
                {"type": "Available", "status": "False"}]}},
            {"metadata": {"name": "b"}, "spec": {"n": 3}}
        ]})
    }

    #[test]
    fn fields_wildcards_and_indexes() {
        let l = list();
        let r = |t: &str| Template::parse(t).unwrap().render(&l);
        assert_eq!(r("{.items[*].metadata.name}"), "a b");
        assert_eq!(r("{.items[0].metadata.name}"), "a");
        assert_eq!(r("{.items[-1].metadata.name}"), "b");
        assert_eq!(r("{$.items[1].spec}"), "{\"n\":3}");
        assert_eq!(r("{.items[1].spec.n}"), "3");
        assert_eq!(r("{.kind}"), "List");
        assert_eq!(
            r("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}"),
            "web"
        );
        assert_eq!(
            r("{.items[0].metadata.labels['app.kubernetes.io/name']}"),
            "web"
        );
        // kubectl's -o jsonpath allows missing keys.
        assert_eq!(r("{.items[*].nope}"), "");
        assert_eq!(r("x={.items[5].metadata.name}!"), "x=!");
    }

    #[test]
    fn filters_and_ranges() {
        let l = list();
        let r = |t: &str| Template::parse(t).unwrap().render(&l);
        assert_eq!(
            r(r#"{.items[0].status.conditions[?(@.type=="Available")].status}"#),
            "False"
        );
        assert_eq!(
            r("{.items[0].status.conditions[?(@.status!='False')].type}"),
            "Applied"
        );
        assert_eq!(
            r(r#"{range .items[*]}{.metadata.name}{"\t"}{.spec.n}{"\n"}{end}"#),
            "a\t\nb\t3\n"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(matches!(
            Template::parse("{.a"),
            Err(JsonPathError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{range .items[*]}{.a}"),
            Err(JsonPathError::Unbalanced(_))
        ));
        assert!(matches!(
            Template::parse("{end}"),
            Err(JsonPathError::Unbalanced(_))
        ));
        assert!(matches!(
            Template::parse("{.a[?(x)]}"),
            Err(JsonPathError::Unsupported(_))
        ));
        assert!(matches!(
            Template::parse("{a.b}"),
            Err(JsonPathError::Unsupported(_))
        ));
    }

    #[test]
    fn paths_with_or_without_braces() {
        let v = json!({"metadata": {"name": "x"}});
        assert_eq!(
            Path::parse(".metadata.name").unwrap().eval(&v),
            [&json!("x")]
        );
        assert_eq!(
            Path::parse("{.metadata.name}").unwrap().eval(&v),
            [&json!("x")]
        );
        assert_eq!(Path::parse(".").unwrap().eval(&v), [&v]);
    }
}
