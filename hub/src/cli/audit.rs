//! `workbus-hub audit …`: read, replay, verify and export the audit log (issue 15),
//! through the REST API or, with `--data-dir`, offline against a hub's data directory
//! (no hub needed); `verify --file --public-key` checks an exported file alone.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::Value;
use workbus_schemas::signature::VerifyingKey;

use super::client::{CliError, Client, encode_component};
use super::output::table;
use super::{Output, print_value};
use crate::audit::checkpoint::{self, AUDIT_PUB_FILE};
use crate::audit::export::{export_line, parse_line};
use crate::audit::sealer::{SealCheckpoint, read_checked_anchor};
use crate::audit::verify::{Start, Verifier, VerifyReport, verify_store};
use crate::store::{AuditQuery, Store};

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records: what the hub sent and received, API changes with their actor,
    /// checkpoints (oldest first; paged with --after).
    Log(LogArgs),
    /// What ran on a cluster at a time: the desired works and the last status the agent
    /// reported for each (--work: one work's history).
    Replay {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        /// The time (RFC 3339, e.g. 2026-12-07T21:00:00Z; default: now).
        #[arg(long)]
        at: Option<String>,
        /// One work's full history as a timeline.
        #[arg(long)]
        work: Option<String>,
        /// Output format (default: table).
        #[arg(short = 'o', long = "output")]
        output: Option<Output>,
    },
    /// Recompute the hash chain and the checkpoint signatures; names the first bad
    /// record and exits non-zero when there is one.
    Verify {
        /// The first record to check.
        #[arg(long)]
        from: Option<u64>,
        /// The last record to check.
        #[arg(long)]
        to: Option<u64>,
        /// Check the hub's data directory directly (no hub needed).
        #[arg(long, conflicts_with = "file")]
        data_dir: Option<PathBuf>,
        /// With --data-dir: the hub's store when it is not SQLite in that directory, as
        /// `serve --store` (`postgres://user@host:port/database`).
        #[arg(long, value_name = "URL", requires = "data_dir")]
        store: Option<String>,
        /// Check an exported file (JSON lines) instead; needs --public-key.
        #[arg(long, requires = "public_key")]
        file: Option<PathBuf>,
        /// The hub's audit public key (`audit public-key`), a file or the key itself;
        /// with --data-dir the default is the directory's `audit.pub`.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// The log as JSON lines in CloudEvents structured format, the chain fields as
    /// extensions; sealed with a checkpoint first, so the file verifies offline.
    Export {
        /// Export from the hub's data directory directly (no hub needed).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// With --data-dir: the hub's store when it is not SQLite in that directory, as
        /// `serve --store` (`postgres://user@host:port/database`).
        #[arg(long, value_name = "URL", requires = "data_dir")]
        store: Option<String>,
        /// Write here instead of standard output.
        #[arg(long = "out")]
        out: Option<PathBuf>,
    },
    /// The public key audit checkpoints are signed with (what auditors verify with).
    PublicKey {
        /// Read it from the hub's data directory (no hub needed).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// `audit log` filters.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this work (needs --cluster).
    #[arg(long, requires = "cluster")]
    pub work: Option<String>,
    /// Only this resource id.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Only this event type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only this actor (API token name).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this direction: sent, received, api, internal.
    #[arg(long)]
    pub direction: Option<String>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only records after this sequence number (the previous page's last).
    #[arg(long)]
    pub after: Option<u64>,
    /// Page size (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Keep printing new records as they are appended.
    #[arg(long)]
    pub watch: bool,
    /// Output format (default: table).
    #[arg(short = 'o', long = "output")]
    pub output: Option<Output>,
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_component(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The table of `audit log`.
pub fn log_table(items: &[Value]) -> String {
    let s = |v: &Value, k: &str| match &v[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                s(r, "seq"),
                s(r, "at"),
                s(r, "direction"),
                s(r, "cluster"),
                s(r, "eventType"),
                s(r, "resourceVersion"),
                s(r, "actor"),
                s(r, "resourceId"),
            ]
        })
        .collect();
    table(
        &[
            "SEQ",
            "TIME",
            "DIRECTION",
            "CLUSTER",
            "TYPE",
            "VERSION",
            "ACTOR",
            "RESOURCE",
        ],
        &rows,
    )
}

fn log(client: &Client, args: LogArgs) -> Result<(), CliError> {
    let mut after = args.after;
    let mut first = true;
    loop {
        let path = format!(
            "/api/v1/audit/log{}",
            query_string(&[
                ("cluster", args.cluster.clone()),
                ("work", args.work.clone()),
                ("resourceId", args.resource_id.clone()),
                ("type", args.event_type.clone()),
                ("actor", args.actor.clone()),
                ("direction", args.direction.clone()),
                ("since", args.since.clone()),
                ("until", args.until.clone()),
                ("after", after.map(|a| a.to_string())),
                ("limit", Some(args.limit.to_string())),
            ])
        );
        let answer = client.get(&path)?.body;
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        if let Some(last) = items.last().and_then(|r| r["seq"].as_u64()) {
            after = Some(last);
        }
        match args.output {
            Some(Output::Json) => {
                for item in &items {
                    println!("{item}");
                }
            }
            Some(Output::Yaml) => print_value(&Value::Array(items.clone()), &args.output)?,
            _ if items.is_empty() && first && !args.watch => eprintln!("No records found"),
            _ if items.is_empty() => {}
            _ => {
                let text = log_table(&items);
                // Later pages of a watch: rows only.
                let text = if first {
                    text.as_str()
                } else {
                    text.split_once('\n').map_or("", |(_, rows)| rows)
                };
                print!("{text}");
            }
        }
        let _ = std::io::stdout().flush();
        first = false;
        if !args.watch {
            if let Some(next) = answer.pointer("/metadata/continue").and_then(Value::as_str) {
                eprintln!("(more: --after {next})");
            }
            return Ok(());
        }
        if items.len() < args.limit {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

fn replay(
    client: &Client,
    cluster: String,
    at: Option<String>,
    work: Option<String>,
    output: Option<Output>,
) -> Result<(), CliError> {
    let path = format!(
        "/api/v1/audit/replay{}",
        query_string(&[
            ("cluster", Some(cluster)),
            ("at", at),
            ("work", work.clone())
        ])
    );
    let answer = client.get(&path)?.body;
    if matches!(output, Some(Output::Json) | Some(Output::Yaml)) {
        return print_value(&answer, &output);
    }
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    if work.is_some() {
        print!("{}", log_table(&items));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            let condition = |t: &str| {
                w.pointer("/status/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == t))
                    .and_then(|c| c["status"].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            vec![
                w["name"].as_str().unwrap_or("").to_string(),
                w["generation"].to_string(),
                if w["deleting"] == true { "yes" } else { "" }.to_string(),
                w["sentAt"].as_str().unwrap_or("").to_string(),
                w["actor"].as_str().unwrap_or("").to_string(),
                w.pointer("/status/generation")
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
                condition("Applied"),
                condition("Available"),
                w.pointer("/status/receivedAt")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("No works on that cluster at that time");
        return Ok(());
    }
    print!(
        "{}",
        table(
            &[
                "NAME",
                "GENERATION",
                "DELETING",
                "SENT",
                "ACTOR",
                "STATUS-GENERATION",
                "APPLIED",
                "AVAILABLE",
                "STATUS-RECEIVED",
            ],
            &rows
        )
    );
    Ok(())
}

/// `--public-key`: a file holding the key, or the key's text.
fn read_public_key(given: &str) -> Result<VerifyingKey, CliError> {
    let text = match std::fs::read_to_string(given) {
        Ok(text) => text,
        Err(_) => given.to_string(),
    };
    VerifyingKey::parse(&text).map_err(|e| CliError::Input(format!("--public-key: {e}")))
}

fn dir_public_key(dir: &Path) -> Result<VerifyingKey, CliError> {
    let path = dir.join(AUDIT_PUB_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    VerifyingKey::parse(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// The store of a hub's data directory: SQLite in it, or the store `store` names (the
/// directory still holds the keys and the audit anchor).
fn open_dir(dir: &Path, store: Option<&str>) -> Result<Arc<dyn Store>, CliError> {
    let settings = crate::StoreSettings::parse(store, dir)
        .map_err(|e| CliError::Input(format!("--store: {e}")))?;
    if let crate::StoreSettings::Sqlite { data_dir } = &settings
        && !data_dir.join(crate::store::SQLITE_FILE).exists()
    {
        return Err(CliError::Input(format!(
            "{}: no hub data directory (no {})",
            data_dir.display(),
            crate::store::SQLITE_FILE
        )));
    }
    crate::store::open(&settings).map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))
}

/// Prints a report; an error when it found a bad record.
fn finish_report(report: &VerifyReport) -> Result<(), CliError> {
    match &report.bad {
        None => {
            println!(
                "OK: {} records{} verified, {} signed checkpoints, {} records after the last checkpoint",
                report.records,
                report
                    .first_seq
                    .map(|f| format!(" ({f}..{})", report.head.as_ref().map_or(f, |h| h.seq)))
                    .unwrap_or_default(),
                report.checkpoints,
                report.unsigned_tail
            );
            Ok(())
        }
        Some(bad) => Err(CliError::Input(format!("FAILED: {bad}"))),
    }
}

/// Verifies an exported file against `key`: it must start at record 1 and end with a
/// checkpoint.
pub fn verify_file(path: &Path, key: VerifyingKey) -> Result<VerifyReport, CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    let mut verifier = Verifier::new(Some(key), Start::Genesis, None);
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = parse_line(&line).map_err(|e| {
            CliError::Input(format!("FAILED: {} line {}: {e}", path.display(), n + 1))
        })?;
        verifier.push(&record);
        if verifier.settled() {
            break;
        }
    }
    Ok(verifier.finish(true))
}

fn verify(
    client: &Client,
    from: Option<u64>,
    to: Option<u64>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    file: Option<PathBuf>,
    public_key: Option<String>,
) -> Result<(), CliError> {
    if let Some(file) = file {
        let key = read_public_key(public_key.as_deref().unwrap_or_default())?;
        return finish_report(&verify_file(&file, key)?);
    }
    if let Some(dir) = data_dir {
        let key = match &public_key {
            Some(given) => read_public_key(given)?,
            None => dir_public_key(&dir)?,
        };
        let anchor =
            read_checked_anchor(&dir, &key).map_err(|e| CliError::Input(format!("FAILED: {e}")))?;
        let store = open_dir(&dir, store.as_deref())?;
        let report = verify_store(store.as_ref(), Some(key), from, to, anchor)
            .map_err(|e| CliError::Input(e.to_string()))?;
        return finish_report(&report);
    }
    let path = format!(
        "/api/v1/audit/verify{}",
        query_string(&[
            ("from", from.map(|f| f.to_string())),
            ("to", to.map(|t| t.to_string()))
        ])
    );
    let answer = client.get(&path)?.body;
    let report: VerifyReport = serde_json::from_value(answer.clone())
        .map_err(|e| CliError::Input(format!("unexpected answer {answer}: {e}")))?;
    finish_report(&report)
}

/// Seals the log of a data directory (unless its last record is a checkpoint) and
/// writes every record to `out`.
fn export_dir(dir: &Path, store: Option<&str>, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open_dir(dir, store)?;
    let fail = |e: crate::store::StoreError| CliError::Input(e.to_string());
    let head = store.audit_head().map_err(fail)?;
    if let Some(head) = &head {
        let last = store
            .audit_records(&AuditQuery {
                after_seq: Some(head.seq - 1),
                limit: 1,
                ..Default::default()
            })
            .map_err(fail)?;
        if !last
            .first()
            .is_some_and(|r| checkpoint::is_checkpoint(&r.event_type))
        {
            let (key, _) =
                checkpoint::load_or_create_key(dir).map_err(|e| CliError::Input(e.to_string()))?;
            let made = store
                .write(SealCheckpoint {
                    key: Arc::new(key),
                    source: crate::defaults::SOURCE_ID.to_string(),
                    at: chrono::Utc::now(),
                    unless_head: None,
                })
                .map_err(fail)?;
            if let Some(cp) = made {
                checkpoint::write_anchor(dir, &cp.event)
                    .map_err(|e| CliError::Input(e.to_string()))?;
            }
        }
    }
    let mut query = AuditQuery {
        after_seq: Some(0),
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.audit_records(&query).map_err(fail)?;
        for r in &page {
            let line = export_line(r).map_err(|e| CliError::Input(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| CliError::Input(e.to_string()))?;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => query.after_seq = Some(last.seq),
            _ => return Ok(()),
        }
    }
}

fn export(
    client: &Client,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    out: Option<PathBuf>,
) -> Result<(), CliError> {
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match data_dir {
        Some(dir) => export_dir(&dir, store.as_deref(), &mut writer)?,
        None => client.get_to("/api/v1/audit/export", &mut writer)?,
    }
    writer
        .flush()
        .map_err(|e| CliError::Input(format!("cannot write the export: {e}")))
}

/// Runs an `audit` command.
pub fn run(client: &Client, what: AuditCommand) -> Result<(), CliError> {
    match what {
        AuditCommand::Log(args) => log(client, args),
        AuditCommand::Replay {
            cluster,
            at,
            work,
            output,
        } => replay(client, cluster, at, work, output),
        AuditCommand::Verify {
            from,
            to,
            data_dir,
            store,
            file,
            public_key,
        } => verify(client, from, to, data_dir, store, file, public_key),
        AuditCommand::Export {
            data_dir,
            store,
            out,
        } => export(client, data_dir, store, out),
        AuditCommand::PublicKey { data_dir } => {
            let key = match data_dir {
                Some(dir) => dir_public_key(&dir)?,
                None => {
                    let answer = client.get("/api/v1/audit/public-key")?.body;
                    read_public_key(answer["publicKey"].as_str().unwrap_or_default())?
                }
            };
            println!("{}", key.to_text());
            Ok(())
        }
    }
}
