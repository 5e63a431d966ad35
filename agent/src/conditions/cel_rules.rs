//! CEL for `conditionRules` (manifestwork-semantics §2.3, §3.2, §4.4): the live object
//! becomes the CEL variable `object`, a rule's `celExpressions` are ANDed, and a
//! `messageExpression` sees `object` and `result`. Built on the pure-Rust `cel` crate,
//! with CEL's standard library and macros only. OCM's environment adds cel-go's string
//! extension and Kubernetes' libraries (lists, regex, quantity, URL, IP, CIDR, format,
//! semver); here a call to one of those fails with "Undeclared reference to '…'"
//! (status False, `ConditionRuleExpressionError`). They are left out on purpose: the
//! crate's versions need more dependencies (regex, timestamps with a time-zone
//! database), and some make memory unbounded (`lists.range(n)`, `replace` with an
//! empty pattern).
//!
//! The expressions come from whoever writes the ManifestWork, so they are hostile input
//! evaluated on the agent's own threads. What is bounded, and how:
//!
//! - text: each expression at most [`MAX_EXPRESSION_LEN`] bytes, at most
//!   [`MAX_EXPRESSIONS`] per rule, checked before parsing;
//! - nesting: the crate's parser stops at a recursion depth of 96, and trees deeper
//!   than [`MAX_EXPRESSION_DEPTH`] (chains like `a.b.c…`, which the parser builds
//!   without recursing) are refused, so the recursive evaluation cannot overflow the
//!   stack; the object is converted without a depth limit of its own, but it comes from
//!   JSON, whose parser stops at depth 128;
//! - time: the crate has no cost budget or interruption, so a static bound stands in
//!   for Kubernetes' runtime budget. Only comprehensions (`all`, `exists`,
//!   `exists_one`, `map`, `filter`) iterate; a range has at most as many elements as the
//!   object and the expression have values ([`estimated_cost`]), so with comprehensions
//!   nested `d` deep an evaluation takes at most about `n^d` steps, `n` being that
//!   count. Expressions whose bound exceeds [`COST_BUDGET`] are refused before running.
//!
//! Not bounded: the memory of intermediate values, e.g. a 10 KiB expression
//! concatenating one large string of the object with itself hundreds of times (memory
//! linear in expression length × object size); the cost of single built-in calls on
//! large values (`contains` on a long string); and a range built by list concatenation
//! inside the expression (at most a few times `n`, which the estimate's slack covers
//! only roughly). The budget is per expression, not shared across a manifest's rules
//! as in Kubernetes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::{Key, Map, Value as CelValue};
use cel::{Context, Env};
use serde_json::Value;
use thiserror::Error;

/// The longest expression accepted, in bytes (as Kubernetes' CRD validation caps rule
/// text; OCM's CRD leaves it open).
pub const MAX_EXPRESSION_LEN: usize = 10 * 1024;

/// The most `celExpressions` one rule may have.
pub const MAX_EXPRESSIONS: usize = 32;

/// The deepest expression tree accepted. Evaluation (and this module's walks) recurse
/// once per level; the parser's own limit (96) covers parentheses and calls but not
/// chains such as `a.b.c…` or `x + x + …`, which a 10 KiB expression can make
/// thousands deep, enough to overflow a thread's stack (seen at 4,000 in a debug
/// build), and the release agent aborts on that.
pub const MAX_EXPRESSION_DEPTH: usize = 100;

/// The most comprehension iterations the static bound may allow for one expression.
/// An iteration costs about 2–3 µs in a debug build (measured), a fraction of that
/// optimised, so this is at most a few seconds unoptimised. It admits two nested loops
/// over an object of 1,000 values (a Deployment with managedFields has a few hundred)
/// and three over 100.
pub const COST_BUDGET: u128 = 1_000_000;

/// Why an expression could not give its result. Its `Display` is the condition message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CelError {
    /// The expression is longer than [`MAX_EXPRESSION_LEN`].
    #[error("expression is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The rule has more than [`MAX_EXPRESSIONS`] expressions.
    #[error("rule has {count} expressions, more than the limit of {max}")]
    TooMany {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The expression does not parse.
    #[error("{0}")]
    Syntax(String),
    /// The expression's tree is deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error("expression nests more than {max} deep")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The static bound of its evaluation cost exceeds [`COST_BUDGET`].
    #[error(
        "CEL evaluation budget exceeded: comprehensions nested {depth} deep over up to {values} values"
    )]
    TooCostly {
        /// The deepest comprehension nesting.
        depth: u32,
        /// The values a range may hold (object and literals).
        values: usize,
    },
    /// Evaluation failed (missing key, no such overload, division by zero…).
    #[error("{0}")]
    Evaluation(String),
    /// A rule expression returned something other than a bool.
    #[error("expected bool result, got {0}")]
    NotBool(String),
    /// A message expression returned something other than a string.
    #[error("expected message expression to have a string result, got {0}")]
    NotString(String),
}

/// A live object converted once for all the expressions of a manifest's rules.
#[derive(Debug, Clone)]
pub struct CelObject {
    value: CelValue,
    /// How many values (scalars, lists, maps) it holds: the largest range a
    /// comprehension over it can have.
    values: usize,
}

impl CelObject {
    /// Converts a JSON object. JSON integers become CEL `int` (`uint` only above
    /// `i64::MAX`), as Kubernetes' unstructured objects give cel-go `int64`s, so
    /// `object.spec.replicas == 3` compares like types.
    pub fn new(live: &Value) -> CelObject {
        let mut values = 0;
        let value = to_cel(live, &mut values);
        CelObject { value, values }
    }
}

fn to_cel(v: &Value, count: &mut usize) -> CelValue {
    *count += 1;
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            // A float, or (with arbitrary precision) neither: as a double like cel-go.
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => {
            CelValue::List(Arc::new(items.iter().map(|i| to_cel(i, count)).collect()))
        }
        Value::Object(fields) => {
            let map: HashMap<Key, CelValue> = fields
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), to_cel(v, count)))
                .collect();
            CelValue::Map(Map::from(map))
        }
    }
}

/// Evaluates a rule's expressions, ANDed, in order: `Ok(false)` at the first false one
/// (later ones are not looked at, like OCM's agent), `Ok(true)` when all are true (or
/// there are none); the first error otherwise.
pub fn all_true(expressions: &[String], object: &CelObject) -> Result<bool, CelError> {
    if expressions.len() > MAX_EXPRESSIONS {
        return Err(CelError::TooMany {
            count: expressions.len(),
            max: MAX_EXPRESSIONS,
        });
    }
    for expression in expressions {
        match evaluate(expression, object, None)? {
            CelValue::Bool(true) => {}
            CelValue::Bool(false) => return Ok(false),
            other => return Err(CelError::NotBool(type_name(&other))),
        }
    }
    Ok(true)
}

/// Evaluates a `messageExpression` with `object` and `result`: `Ok(None)` when it
/// yields the empty string (the caller falls back to `message` or the default).
pub fn message(
    expression: &str,
    object: &CelObject,
    result: bool,
) -> Result<Option<String>, CelError> {
    match evaluate(expression, object, Some(result))? {
        CelValue::String(s) if s.is_empty() => Ok(None),
        CelValue::String(s) => Ok(Some(s.to_string())),
        other => Err(CelError::NotString(type_name(&other))),
    }
}

fn evaluate(
    expression: &str,
    object: &CelObject,
    result: Option<bool>,
) -> Result<CelValue, CelError> {
    let compiled = cached(expression)?;
    let values = object.values + compiled.nodes;
    if estimated_cost(values, compiled.depth) > COST_BUDGET {
        return Err(CelError::TooCostly {
            depth: compiled.depth,
            values,
        });
    }
    let mut context = Context::with_env(Arc::clone(stdlib()));
    context.add_variable_from_value("object", object.value.clone());
    if let Some(result) = result {
        context.add_variable_from_value("result", result);
    }
    compiled
        .program
        .execute(&context)
        .map_err(|e| CelError::Evaluation(e.to_string()))
}

/// A parsed expression with what the cost bound needs of it.
#[derive(Debug)]
struct Compiled {
    program: Program,
    depth: u32,
    nodes: usize,
}

/// At most this many parsed expressions are kept…
const CACHE_ENTRIES: usize = 256;
/// …and at most this much expression text (a parsed expression takes some tens of
/// times its text in memory, so this keeps the cache to a few MB).
const CACHE_TEXT_BYTES: usize = 256 * 1024;

/// The expressions parsed so far, by text, with the total of their lengths.
type Cache = (HashMap<String, Result<Arc<Compiled>, CelError>>, usize);

static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

/// Parses an expression, or takes it from a bounded cache: the same rules are evaluated
/// at every status refresh, and parsing costs some 30 times evaluating (measured on a
/// typical rule). Errors are cached too. When a bound would be exceeded the cache is
/// emptied rather than evicted by age: simple, and hostile churn only costs re-parsing.
fn cached(expression: &str) -> Result<Arc<Compiled>, CelError> {
    let cache = CACHE.get_or_init(Mutex::default);
    // A poisoned lock only means a panic elsewhere; the map is still consistent.
    let hit = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0
        .get(expression)
        .cloned();
    if let Some(hit) = hit {
        return hit;
    }
    // Parsed outside the lock, so one long parse does not hold up other threads.
    let compiled = compile(expression).map(|program| {
        Arc::new(Compiled {
            depth: comprehension_depth(program.expression()),
            nodes: node_count(program.expression()),
            program,
        })
    });
    if expression.len() <= MAX_EXPRESSION_LEN {
        let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if c.0.len() >= CACHE_ENTRIES || c.1 + expression.len() > CACHE_TEXT_BYTES {
            *c = Cache::default();
        }
        if c.0
            .insert(expression.to_string(), compiled.clone())
            .is_none()
        {
            c.1 += expression.len();
        }
    }
    compiled
}

/// CEL's standard environment, built once: it registers every standard function, which
/// costs more than evaluating a typical rule.
fn stdlib() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Parses one expression, refusing over-long text first and over-deep trees after. Parse errors are reported one
/// line each, without the source snippets the crate appends (as OCM trims cel-go's).
pub fn compile(expression: &str) -> Result<Program, CelError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(CelError::TooLong {
            len: expression.len(),
            max: MAX_EXPRESSION_LEN,
        });
    }
    let program = Program::compile(expression).map_err(|errors| {
        let lines: Vec<String> = errors
            .errors
            .iter()
            .map(|e| format!("ERROR: <input>:{}:{}: {}", e.pos.0, e.pos.1, e.msg))
            .collect();
        CelError::Syntax(lines.join("; "))
    })?;
    if too_deep(program.expression(), MAX_EXPRESSION_DEPTH) {
        return Err(CelError::TooDeep {
            max: MAX_EXPRESSION_DEPTH,
        });
    }
    Ok(program)
}

/// Whether the tree is deeper than `max` levels, found without recursion (the tree
/// may be thousands deep).
fn too_deep(root: &IdedExpr, max: usize) -> bool {
    let mut stack = vec![(root, 1)];
    while let Some((e, depth)) = stack.pop() {
        if depth > max {
            return true;
        }
        stack.extend(children(e).into_iter().map(|c| (c, depth + 1)));
    }
    false
}

/// The upper bound on comprehension iterations: `values^depth`, saturating. Depth 0
/// (no comprehension) costs nothing beyond the expression's own size.
pub fn estimated_cost(values: usize, depth: u32) -> u128 {
    if depth == 0 {
        return 0;
    }
    (values as u128).saturating_pow(depth)
}

/// How deeply comprehensions are nested in the loop (condition, step or result) of
/// another; a comprehension in another's range runs before it, so it adds, not
/// multiplies, and does not deepen.
pub fn comprehension_depth(e: &IdedExpr) -> u32 {
    match &e.expr {
        Expr::Comprehension(c) => {
            let inner = [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .map(comprehension_depth)
                .max()
                .unwrap_or(0);
            comprehension_depth(&c.iter_range).max(1 + inner)
        }
        _ => children(e)
            .into_iter()
            .map(comprehension_depth)
            .max()
            .unwrap_or(0),
    }
}

/// The number of nodes of an expression: a bound on the values its literals hold.
fn node_count(e: &IdedExpr) -> usize {
    1 + children(e).into_iter().map(node_count).sum::<usize>()
}

fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entries(&map.entries),
        Expr::Struct(s) => entries(&s.entries),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })
        .collect()
}

/// CEL's name of a value's type, for "expected bool result, got …".
fn type_name(v: &CelValue) -> String {
    v.type_of().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> CelObject {
        CelObject::new(&json!({
            "spec": {"replicas": 3},
            "status": {"readyReplicas": 3, "ratio": 0.5,
                       "conditions": [{"type": "Available", "status": "True"}]}
        }))
    }

    fn exprs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expressions_are_anded_and_integers_compare_as_int() {
        let o = object();
        let ok = "object.status.readyReplicas == object.spec.replicas";
        assert_eq!(
            all_true(&exprs(&[ok, "object.spec.replicas == 3"]), &o),
            Ok(true)
        );
        assert_eq!(all_true(&exprs(&[ok, "false"]), &o), Ok(false));
        // Stops at the first false one, like OCM: the later error is not reached.
        assert_eq!(all_true(&exprs(&["false", "object.nope"]), &o), Ok(false));
        assert_eq!(all_true(&[], &o), Ok(true));
        let exists =
            "object.status.conditions.exists(c, c.type == 'Available' && c.status == 'True')";
        assert_eq!(all_true(&exprs(&[exists]), &o), Ok(true));
        assert_eq!(
            all_true(&exprs(&["object.status.ratio < 1.0"]), &o),
            Ok(true)
        );
    }

    #[test]
    fn errors_name_what_went_wrong() {
        let o = object();
        let e = all_true(&exprs(&["object.status.("]), &o).unwrap_err();
        assert!(
            matches!(e, CelError::Syntax(ref m) if m.starts_with("ERROR: <input>:1:")),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
        assert_eq!(
            all_true(&exprs(&["object.missing"]), &o),
            Err(CelError::Evaluation("No such key: missing".into()))
        );
        assert_eq!(
            all_true(&exprs(&["object.spec.replicas"]), &o),
            Err(CelError::NotBool("int".into()))
        );
        assert_eq!(
            all_true(&exprs(&["'x'"]), &o).unwrap_err().to_string(),
            "expected bool result, got string"
        );
    }

    #[test]
    fn message_expressions_see_object_and_result() {
        let o = object();
        let m = "result ? 'ready: ' + string(object.status.readyReplicas) : ''";
        assert_eq!(message(m, &o, true), Ok(Some("ready: 3".into())));
        assert_eq!(message(m, &o, false), Ok(None));
        assert_eq!(
            message("1", &o, true),
            Err(CelError::NotString("int".into()))
        );
    }

    #[test]
    fn hostile_input_is_refused_not_run() {
        let o = object();
        let long = format!("true || {}", "true || ".repeat(MAX_EXPRESSION_LEN / 8));
        assert!(matches!(compile(&long), Err(CelError::TooLong { .. })));
        let many = vec!["true".to_string(); MAX_EXPRESSIONS + 1];
        assert!(matches!(all_true(&many, &o), Err(CelError::TooMany { .. })));
        // Deep nesting is a parse error, not a stack overflow.
        let deep = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(compile(&deep), Err(CelError::Syntax(_))));
        let deep_list = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
        assert!(matches!(compile(&deep_list), Err(CelError::Syntax(_))));
        // Nested comprehensions over a large object are refused before running.
        let big = CelObject::new(&json!({"items": (0..1000).collect::<Vec<i64>>()}));
        let cubic = "object.items.all(a, object.items.all(b, object.items.all(c, a + b + c >= 0)))";
        assert!(matches!(
            all_true(&exprs(&[cubic]), &big),
            Err(CelError::TooCostly { depth: 3, .. })
        ));
        // A single pass over it is fine.
        assert_eq!(
            all_true(&exprs(&["object.items.all(a, a >= 0)"]), &big),
            Ok(true)
        );
    }

    #[test]
    fn depth_counts_only_loop_nesting() {
        let depth = |s: &str| comprehension_depth(compile(s).unwrap().expression());
        assert_eq!(depth("1 + 1"), 0);
        assert_eq!(depth("[1].all(x, x > 0)"), 1);
        assert_eq!(depth("[1].map(x, x).all(y, y > 0)"), 1);
        assert_eq!(depth("[1].all(x, [2].exists(y, y > x))"), 2);
    }

    /// The release agent aborts on panic, so a hostile expression must give an error,
    /// never a panic: overflow, division by zero, bad indexes and conversions.
    #[test]
    fn arithmetic_and_indexing_edge_cases_are_errors() {
        let o = CelObject::new(&json!({"l": [1, 2], "s": "x", "big": u64::MAX}));
        for e in [
            "-9223372036854775808 / -1",
            "-9223372036854775808 % -1",
            "-(-9223372036854775808)",
            "9223372036854775807 + 1",
            "1u - 2u",
            "object.big + 1u",
            "1 / 0",
            "1 % 0",
            "object.l[-1]",
            "object.l[9223372036854775807]",
            "object.l[0.5]",
            "object.s[0]",
            "int('9223372036854775808')",
            "int(1e300)",
            "uint(-1)",
            "{'a': 1, 'a': 2}.size() == 1",
            "object.s.lowerAscii() == 'x'",
        ] {
            assert!(
                matches!(all_true(&exprs(&[e]), &o), Err(CelError::Evaluation(_))),
                "{e}"
            );
        }
        assert_eq!(
            all_true(&exprs(&["object.big == 18446744073709551615u"]), &o),
            Ok(true)
        );
    }

    #[test]
    fn the_parse_cache_stays_bounded() {
        let o = object();
        for i in 0..(CACHE_ENTRIES + 10) {
            let e = format!("{i} == {i} || object.spec.replicas > {i}");
            assert_eq!(all_true(std::slice::from_ref(&e), &o), Ok(true));
            // Cached: the same answer again.
            assert_eq!(all_true(&[e], &o), Ok(true));
        }
        let filler = "x".repeat(MAX_EXPRESSION_LEN - 40);
        for i in 0..(CACHE_TEXT_BYTES / MAX_EXPRESSION_LEN + 5) {
            let big = format!("{i} == {i} || '{filler}' == ''");
            assert_eq!(all_true(&[big], &o), Ok(true));
        }
        let cache = CACHE.get().unwrap().lock().unwrap();
        assert!(cache.0.len() <= CACHE_ENTRIES);
        assert!(cache.1 <= CACHE_TEXT_BYTES);
    }

    /// Chains the parser builds without recursing would overflow the stack of the
    /// recursive evaluation (the release agent aborts on that): refused by depth.
    #[test]
    fn long_chains_are_refused_not_overflowing_the_stack() {
        let o = object();
        for e in [
            format!("object{} == 1", ".a".repeat(4000)),
            format!("{} == 1", vec!["1"; 2000].join(" + ")),
            format!("[1]{}", "[0]".repeat(3000)),
            format!("object{}", ".f()".repeat(2000)),
        ] {
            assert!(e.len() <= MAX_EXPRESSION_LEN);
            assert_eq!(
                all_true(&[e], &o),
                Err(CelError::TooDeep {
                    max: MAX_EXPRESSION_DEPTH
                })
            );
        }
        // The parser balances `&&`/`||` chains and folds repeated unary operators.
        assert_eq!(all_true(&[vec!["true"; 1200].join(" && ")], &o), Ok(true));
        assert_eq!(
            all_true(&[format!("{}true", "!".repeat(5000))], &o),
            Ok(true)
        );
        // Just under the limit evaluates on a test thread's 2 MiB stack (as tokio's
        // workers have), even unoptimised.
        let deepest = format!("{} > 0", vec!["1"; MAX_EXPRESSION_DEPTH - 3].join(" + "));
        assert_eq!(all_true(&[deepest], &o), Ok(true));
        // A long but shallow expression is fine.
        let wide = format!("[{}].size() > 0", vec!["1"; 2000].join(", "));
        assert_eq!(all_true(&[wide], &o), Ok(true));
    }
}
