//! Secrets at rest in the hub's SQLite store, beyond the conformance case: rows written
//! before encryption still read, key rotation (a new key first keeps old rows
//! readable; a removed key makes its rows corrupt, not lost silently), and the data
//! directory's modes (0700, files 0600; created so, tightened when looser).

mod work_fixture;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use work_fixture::desired_secret;
use workbus_hub::StoreSettings;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::keyring::{self, KEY_FILE};
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::writes::{ApplyWork, CreateCluster};
use workbus_hub::store::{DesiredWork, SQLITE_FILE, Store, StoreError};

const VALUE: &str = "c2VjcmV0LXZhbHVlLTEyMzQ1Ng==";

fn open(dir: &Path) -> Arc<dyn Store> {
    workbus_hub::store::open(&StoreSettings::sqlite(dir)).unwrap()
}

fn create(s: &dyn Store, cluster: &str, d: &DesiredWork) {
    if s.get_cluster(cluster).unwrap().is_none() {
        s.write(CreateCluster {
            name: cluster.into(),
            labels: BTreeMap::new(),
            now: Utc::now(),
        })
        .unwrap();
    }
    let now = Utc::now();
    s.write(ApplyWork {
        desired: d.clone(),
        create_only: false,
        now,
        build: Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into)),
        actor: None,
    })
    .unwrap();
}

fn spec_json(s: &dyn Store, d: &DesiredWork) -> Result<serde_json::Value, StoreError> {
    Ok(serde_json::to_value(s.get_work(&d.key)?.unwrap().spec).unwrap())
}

fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in [SQLITE_FILE.to_string(), format!("{SQLITE_FILE}-wal")] {
        bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    bytes
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn rows_written_before_encryption_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let old = desired_secret("c1", "old", VALUE, "t");
    {
        let plain: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join(SQLITE_FILE)).unwrap());
        create(plain.as_ref(), "c1", &old);
    }
    assert!(
        contains(&db_bytes(dir.path()), VALUE),
        "the old row is plain"
    );
    let s = open(dir.path());
    assert_eq!(
        spec_json(s.as_ref(), &old).unwrap(),
        serde_json::to_value(&old.spec).unwrap()
    );
    // the outbox row written in clear reads too
    assert_eq!(s.outbox_batch(0, 10, "").unwrap().len(), 1);
    assert!(
        s.outbox_batch(0, 10, "").unwrap()[0]
            .event()
            .unwrap()
            .is_ok()
    );
    // new rows are sealed
    let new = desired_secret("c1", "new", "bmV3LXZhbHVlLTk4NzY1", "t2");
    create(s.as_ref(), "c1", &new);
    drop(s);
    assert!(!contains(&db_bytes(dir.path()), "bmV3LXZhbHVlLTk4NzY1"));
}

#[test]
fn a_new_first_key_encrypts_and_old_rows_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join(KEY_FILE);
    let before = desired_secret("c1", "before", VALUE, "t");
    {
        let s = open(dir.path());
        create(s.as_ref(), "c1", &before);
    }
    let original = std::fs::read_to_string(&key_path).unwrap();
    std::fs::write(
        &key_path,
        keyring::add_primary_key(&original, "k2").unwrap(),
    )
    .unwrap();

    let after = desired_secret("c1", "after", "YWZ0ZXItcm90YXRpb24=", "t3");
    {
        let s = open(dir.path());
        assert_eq!(
            spec_json(s.as_ref(), &before).unwrap(),
            serde_json::to_value(&before.spec).unwrap()
        );
        create(s.as_ref(), "c1", &after);
        assert_eq!(
            spec_json(s.as_ref(), &after).unwrap(),
            serde_json::to_value(&after.spec).unwrap()
        );
    }
    let bytes = db_bytes(dir.path());
    assert!(
        contains(&bytes, "wbenc1:k2:"),
        "new rows use the new first key"
    );
    assert!(!contains(&bytes, "YWZ0ZXItcm90YXRpb24="));

    // Dropping the old key too early: its rows are reported corrupt, not dropped.
    let only_new: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let trimmed = serde_json::json!({
        "keys": [only_new["keys"][0].clone()],
        "digestKey": only_new["digestKey"].clone(),
    });
    std::fs::write(&key_path, trimmed.to_string()).unwrap();
    let s = open(dir.path());
    assert!(matches!(
        spec_json(s.as_ref(), &before),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(spec_json(s.as_ref(), &after).is_ok());
}

#[test]
fn a_damaged_key_file_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    std::fs::write(dir.path().join(KEY_FILE), "{\"keys\": []}").unwrap();
    assert!(workbus_hub::store::open(&StoreSettings::sqlite(dir.path())).is_err());
}

#[test]
fn the_data_directory_and_its_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let files = || {
        let mut files = workbus_hub::store::sqlite_files(&dir.join(SQLITE_FILE)).to_vec();
        files.push(dir.join(KEY_FILE));
        files
    };
    {
        let s = open(&dir);
        create(s.as_ref(), "c1", &desired_secret("c1", "w", VALUE, "t"));
        assert_eq!(mode(&dir), 0o700);
        for f in files() {
            assert!(f.exists(), "{}", f.display());
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    // Loosened while the hub was down: tightened on the next start.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in files() {
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let _s = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    for f in files() {
        if f.exists() {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
}
