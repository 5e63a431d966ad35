//! An audit export read back by an independent CloudEvents library: the Python SDK
//! from PyPI (`cloudevents`), which `.ci/run` installs into `<target>/cloudevents-py`.
//! Without it the test prints a `SKIPPED:` line, and fails instead under
//! `WORKBUS_REQUIRE_PYTHON_CLOUDEVENTS=1` (CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use workbus_hub::StoreSettings;
use workbus_hub::audit::checkpoint;
use workbus_hub::audit::export::export_line;
use workbus_hub::audit::sealer::SealCheckpoint;
use workbus_hub::cli::audit::verify_file;
use workbus_hub::store::writes::AppendAudit;
use workbus_hub::store::{self, AuditDirection, AuditEntry, AuditQuery};
use workbus_schemas::Event;

fn python() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let candidates = [
        std::env::var_os("WORKBUS_CLOUDEVENTS_PYTHON").map(PathBuf::from),
        Some(target.join("cloudevents-py/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import cloudevents.core.formats.json"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn an_export_is_read_by_the_python_cloudevents_sdk() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("WORKBUS_REQUIRE_PYTHON_CLOUDEVENTS").is_none_or(|v| v != "1"),
            "the Python cloudevents SDK is required (WORKBUS_REQUIRE_PYTHON_CLOUDEVENTS=1) but missing"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: python3 with the `cloudevents` package (pip install cloudevents==2.2.0, \
             or run .ci/run once to make <target>/cloudevents-py)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = store::open(&StoreSettings::sqlite(dir.path())).unwrap();
    let key = Arc::new(checkpoint::load_or_create_key(dir.path()).unwrap().0);
    for n in 0..3 {
        let mut event = Event::default();
        workbus_schemas::envelope::set_json_data(
            &mut event,
            json!({"manifests": [{"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s"}, "data": {"password": "aHVudGVyMg=="}}], "n": n}),
        );
        s.write(AppendAudit(AuditEntry {
            at: Utc::now(),
            direction: AuditDirection::Sent,
            cluster: Some("edge-1".into()),
            resource_id: Some(format!("uid-{n}")),
            event_type: "t".into(),
            event,
            actor: Some("admin".into()),
        }))
        .unwrap();
    }
    s.write(SealCheckpoint {
        key: key.clone(),
        source: "hub".into(),
        at: Utc::now(),
        unless_head: None,
    })
    .unwrap();
    let records = s
        .audit_records(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let file = dir.path().join("export.jsonl");
    let text: String = records
        .iter()
        .map(|r| export_line(r).unwrap() + "\n")
        .collect();
    std::fs::write(&file, &text).unwrap();
    assert!(!text.contains("aHVudGVyMg=="), "Secret values are digested");
    assert!(verify_file(&file, key.verifying_key()).unwrap().ok());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit_export/read_export.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read.len(), records.len());
    for (r, py) in records.iter().zip(&read) {
        assert_eq!(py["seq"], r.seq.to_string());
        assert_eq!(py["type"], r.event_value().unwrap()["type"]);
        assert_eq!(py["audittype"], r.event_type);
        assert_eq!(py["direction"], r.direction.as_str());
        assert_eq!(py["hash"], r.hash);
        assert_eq!(py["prevhash"], r.prev_hash);
        assert_eq!(py["hasdata"], true);
    }
    assert_eq!(
        read.last().unwrap()["signed"],
        true,
        "the checkpoint carries its signature"
    );
}
