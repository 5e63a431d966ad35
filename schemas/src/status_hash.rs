//! # Go-compatible canonical JSON and the status hash (reference §6.4)
//!
//! The `statushash` extension of a status event, and every entry of a status-resync
//! request, is `lowercase_hex(sha256(bytes))` where `bytes` is what sdk-go's
//! `statushash.StatusHash` produces for a ManifestWork: the work converted to a generic map
//! by apimachinery's `DefaultUnstructuredConverter.ToUnstructured`, the value under
//! `status` taken, and that map marshalled by Go `encoding/json`. To match it we:
//!
//! 1. build the generic map from the **typed** fields only ([`status_value`]): Go's structs
//!    have no room for unknown members, so our `extra` maps never enter the hash. The
//!    converter honours the Go JSON tags exactly as `encoding/json` would (verified in
//!    apimachinery `runtime/converter.go` as vendored by sdk-go `3ea63fb`: omitempty drops
//!    empty lists and zero scalars, structs are never dropped, a nil list without
//!    omitempty becomes `null`, `metav1.Time` becomes second-precision RFC 3339 UTC or
//!    `null` when zero);
//! 2. serialize it with [`canonical_json`], a re-implementation of `encoding/json` applied
//!    to a generic map.
//!
//! [`canonical_json`] rules (Go 1.22+ `encoding/json` with its default HTML escaping):
//!
//! - object keys sorted by their UTF-8 bytes at every level (Go sorts map keys with
//!   `strings.Compare`); no whitespace anywhere;
//! - strings: `"` and `\` backslash-escaped; `\b`, `\f`, `\n`, `\r`, `\t` as short escapes
//!   (Go >= 1.22; older Go wrote `\u0008`/`\u000c`); other control characters as
//!   `\u00XX` with lower-case hex; `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`; U+2028
//!   and U+2029 as `\u2028`, `\u2029`; everything else, DEL and non-ASCII included, raw;
//! - integers (JSON numbers held as `i64`/`u64`) in plain decimal, as Go prints the
//!   `int64` values the converter produces;
//! - other numbers as Go prints a `float64`: the shortest text that round-trips, in plain
//!   decimal when `1e-6 <= |x| < 1e21` (or x is 0), otherwise in exponent form with a
//!   signed exponent of at least one digit (`1e+21`, `1.5e-7`). ManifestWork statuses
//!   contain no floats, so this only matters for other callers.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::work::status::{
    Condition, FeedbackValue, ManifestBundleStatus, ManifestCondition, ManifestWorkStatus,
};

/// Hash of an empty ManifestWork status, i.e. of `{"resourceStatus":{}}`.
pub const EMPTY_STATUS_HASH: &str =
    "3a4ba43801251ccdf889a3154674d23a35ab996aacfc00de92e61dbb2f5cf189";

/// `sha256("")`: what Maestro sends in a status-resync request for a work it has no stored
/// status for. It never equals a real status hash, so it always triggers a resend.
pub const NO_STATUS_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Serializes a JSON value exactly as Go `encoding/json` serializes the equivalent
/// generic map (see the module documentation for the rules).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The status hash of an API-shaped ManifestWork status.
pub fn status_hash(status: &ManifestWorkStatus) -> String {
    sha256_hex(status_canonical_json(status).as_bytes())
}

/// The status hash of a wire status, computed over its API shape (the `manifestBundle`
/// echo is spec, not status, and is not hashed).
pub fn status_hash_of_bundle_status(status: &ManifestBundleStatus) -> String {
    sha256_hex(bundle_status_canonical_json(status).as_bytes())
}

/// The exact bytes [`status_hash`] hashes.
pub fn status_canonical_json(status: &ManifestWorkStatus) -> String {
    canonical_json(&status_value(status))
}

/// The generic map Go hashes for a status: its typed fields laid out as the unstructured
/// converter lays them out, unknown members left out.
pub fn status_value(status: &ManifestWorkStatus) -> Value {
    shape(&status.conditions, &status.resource_status.manifests)
}

fn bundle_status_canonical_json(status: &ManifestBundleStatus) -> String {
    canonical_json(&shape(&status.conditions, &status.resource_status))
}

fn shape(conditions: &[Condition], manifests: &[ManifestCondition]) -> Value {
    let mut obj = Map::new();
    if !conditions.is_empty() {
        obj.insert(
            "conditions".into(),
            Value::Array(conditions.iter().map(condition_value).collect()),
        );
    }
    let mut resource_status = Map::new();
    if !manifests.is_empty() {
        resource_status.insert(
            "manifests".into(),
            Value::Array(manifests.iter().map(manifest_condition_value).collect()),
        );
    }
    obj.insert("resourceStatus".into(), Value::Object(resource_status));
    Value::Object(obj)
}

fn condition_value(c: &Condition) -> Value {
    let mut obj = Map::new();
    obj.insert("type".into(), Value::String(c.type_.clone()));
    obj.insert("status".into(), Value::String(c.status.clone()));
    if c.observed_generation != 0 {
        obj.insert("observedGeneration".into(), c.observed_generation.into());
    }
    let time = match c.last_transition_time {
        Some(t) if !t.is_go_zero() => Value::String(t.to_rfc3339()),
        _ => Value::Null,
    };
    obj.insert("lastTransitionTime".into(), time);
    obj.insert("reason".into(), Value::String(c.reason.clone()));
    obj.insert("message".into(), Value::String(c.message.clone()));
    Value::Object(obj)
}

fn manifest_condition_value(mc: &ManifestCondition) -> Value {
    let m = &mc.resource_meta;
    let mut meta = Map::new();
    meta.insert("ordinal".into(), m.ordinal.into());
    for (k, v) in [
        ("group", &m.group),
        ("version", &m.version),
        ("kind", &m.kind),
        ("resource", &m.resource),
        ("name", &m.name),
        ("namespace", &m.namespace),
    ] {
        meta.insert(k.into(), Value::String(v.clone()));
    }
    let mut feedback = Map::new();
    if !mc.status_feedback.values.is_empty() {
        feedback.insert(
            "values".into(),
            Value::Array(
                mc.status_feedback
                    .values
                    .iter()
                    .map(feedback_value)
                    .collect(),
            ),
        );
    }
    let conditions = if mc.conditions.is_empty() {
        // No omitempty on ManifestCondition.conditions: a nil list is `null`.
        Value::Null
    } else {
        Value::Array(mc.conditions.iter().map(condition_value).collect())
    };
    let mut obj = Map::new();
    obj.insert("resourceMeta".into(), Value::Object(meta));
    obj.insert("statusFeedback".into(), Value::Object(feedback));
    obj.insert("conditions".into(), conditions);
    Value::Object(obj)
}

fn feedback_value(v: &FeedbackValue) -> Value {
    let raw = v.field_value.to_raw();
    let mut fv = Map::new();
    fv.insert("type".into(), Value::String(raw.type_));
    if let Some(i) = raw.integer {
        fv.insert("integer".into(), i.into());
    }
    if let Some(s) = raw.string {
        fv.insert("string".into(), Value::String(s));
    }
    if let Some(b) = raw.boolean {
        fv.insert("boolean".into(), Value::Bool(b));
    }
    if let Some(s) = raw.json_raw {
        fv.insert("jsonRaw".into(), Value::String(s));
    }
    let mut obj = Map::new();
    obj.insert("name".into(), Value::String(v.name.clone()));
    obj.insert("fieldValue".into(), Value::Object(fv));
    Value::Object(obj)
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&go_float(f));
            } else {
                // Only reachable with serde_json's arbitrary_precision: keep its text.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's Map keeps insertion order when its
            // `preserve_order` feature is on anywhere in the build.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, val);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Formats a float like Go's `encoding/json` (`strconv.AppendFloat(f, 'f' or 'e', -1, 64)`
/// plus its exponent clean-up). Rust's `{}` and `{:e}` also print the shortest
/// round-tripping digits, so only the layout needs adjusting.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            // Go writes at least two exponent digits and then strips the leading zero of
            // a negative one-digit exponent; positive exponents here are always >= 21.
            return match exp.strip_prefix('-') {
                Some(neg) => format!("{mantissa}e-{neg}"),
                None => format!("{mantissa}e+{exp}"),
            };
        }
        return s;
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_float_layout() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(-0.5), "-0.5");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-7");
        assert_eq!(go_float(1e-6), "0.000001");
        assert_eq!(go_float(1.2345e-10), "1.2345e-10");
        assert_eq!(go_float(-2.5e300), "-2.5e+300");
        assert_eq!(go_float(0.0), "0");
    }

    #[test]
    fn escapes_like_go() {
        let v = json!({"b": "<a href=\"x\">&</a>", "a": "\u{8}\u{c}\n\r\t\u{1}\u{7f}é\u{2028}\u{2029}\\"});
        assert_eq!(
            canonical_json(&v),
            "{\"a\":\"\\b\\f\\n\\r\\t\\u0001\u{7f}é\\u2028\\u2029\\\\\",\
             \"b\":\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\"}"
        );
    }

    #[test]
    fn numbers() {
        let v: Value = serde_json::from_str("[0,-1,18446744073709551615,1.0,2.5e-8,1e21]").unwrap();
        assert_eq!(
            canonical_json(&v),
            "[0,-1,18446744073709551615,1,2.5e-8,1e+21]"
        );
    }

    #[test]
    fn empty_status_constants() {
        assert_eq!(
            status_canonical_json(&ManifestWorkStatus::default()),
            "{\"resourceStatus\":{}}"
        );
        assert_eq!(
            status_hash(&ManifestWorkStatus::default()),
            EMPTY_STATUS_HASH
        );
        assert_eq!(sha256_hex(b""), NO_STATUS_HASH);
    }
}
