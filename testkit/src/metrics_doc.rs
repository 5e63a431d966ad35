//! The metric table of `docs/metrics.md` and the metrics a process exposes, read one
//! way, so each executable's test can check that the table lists exactly what it serves.
//!
//! The table's rows are `| `name` | type | labels | exposed by | meaning |`; "exposed
//! by" lists `hub`, `agent`, `broker` (comma-separated). A name is written as a scrape
//! shows it in `# TYPE` lines (counters with `_total`, histograms without their
//! `_bucket`/`_sum`/`_count` series).

use std::collections::BTreeMap;
use std::path::Path;

/// `docs/metrics.md` of this workspace.
pub fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md")
}

/// The documented metrics exposed by any of `components`: name → type.
pub fn documented(components: &[&str]) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(doc_path()).expect("docs/metrics.md is readable");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", name, type, labels, exposed by, meaning, ""]
        if cells.len() < 7 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`');
        let exposed_by = cells[4];
        if exposed_by
            .split(',')
            .map(str::trim)
            .any(|c| components.contains(&c))
        {
            out.insert(name.to_string(), cells[2].to_string());
        }
    }
    out
}

/// The metrics a Prometheus text scrape declares (`# TYPE name type`): name → type.
pub fn exposed(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, ty)| (name.to_string(), ty.to_string()))
        .collect()
}

/// Panics with the differences unless the table's rows for `components` are exactly
/// the metrics `scrape` declares, with the same types.
pub fn assert_documented(scrape: &str, components: &[&str]) {
    let documented = documented(components);
    let exposed = exposed(scrape);
    let missing: Vec<_> = exposed
        .iter()
        .filter(|(n, _)| !documented.contains_key(*n))
        .map(|(n, t)| format!("{n} ({t})"))
        .collect();
    let stale: Vec<_> = documented
        .iter()
        .filter(|(n, _)| !exposed.contains_key(*n))
        .map(|(n, t)| format!("{n} ({t})"))
        .collect();
    let wrong_type: Vec<_> = exposed
        .iter()
        .filter_map(|(n, t)| {
            let d = documented.get(n)?;
            (d != t).then(|| format!("{n}: documented {d}, exposed {t}"))
        })
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && wrong_type.is_empty(),
        "docs/metrics.md is out of date for {components:?}:\n  exposed but not in the table: {missing:?}\n  in the table but not exposed: {stale:?}\n  types: {wrong_type:?}"
    );
}

/// The value of the first sample line starting with `series` (a name, or a name with
/// its labels written as the scrape writes them).
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
