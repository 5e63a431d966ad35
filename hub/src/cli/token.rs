//! `workbus-hub token create|list|revoke`: API tokens and, with `create --bootstrap`,
//! bootstrap tokens for joining clusters (expiring, revocable, optionally auto-accepting),
//! through the API (an admin token) or, with `--offline`, directly on a hub's data directory — the way to make
//! the first token, or a new admin token when none is at hand. Offline commands need
//! access to the data directory, which is the same trust as the hub's own.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{CliError, Client, encode_component};
use crate::api::registration::{NewBootstrapToken, issue_bootstrap};
use crate::auth::tokens::{OFFLINE_ACTOR, TokenRequest, issue};
use crate::config::StoreSettings;
use crate::store::writes::RevokeToken;
use crate::store::{ApiToken, Role, Store};

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once, alone on standard output.
    Create {
        /// `admin` (everything, tokens included), `writer` (works and clusters) or
        /// `reader` (GET and watch).
        #[arg(long, value_parser = parse_role, required_unless_present = "bootstrap")]
        role: Option<Role>,
        /// Its name (default `<role>-<random>`): the actor recorded for its changes.
        #[arg(long)]
        name: Option<String>,
        /// Only these clusters (comma-separated; default every cluster).
        #[arg(long, value_delimiter = ',')]
        clusters: Option<Vec<String>>,
        /// A bootstrap token: clusters join with it (user `bootstrap.<cluster>`, the
        /// token as password), like `clusteradm get token`.
        #[arg(long, conflicts_with_all = ["role", "clusters"])]
        bootstrap: bool,
        /// A bootstrap token's lifetime: `90s`, `30m`, `24h` (default), `7d`.
        #[arg(long, requires = "bootstrap", value_parser = parse_ttl)]
        ttl: Option<i64>,
        /// Clusters joining with the bootstrap token are accepted at once.
        #[arg(long, requires = "bootstrap")]
        auto_accept: bool,
        /// Where.
        #[command(flatten)]
        offline: Offline,
    },
    /// List tokens (never their secrets).
    List {
        /// Where.
        #[command(flatten)]
        offline: Offline,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
        /// Where.
        #[command(flatten)]
        offline: Offline,
    },
}

/// `--offline [--data-dir DIR]`.
#[derive(Debug, Clone, Args)]
pub struct Offline {
    /// Work on the data directory instead of through the API (bootstrap, recovery).
    #[arg(long)]
    pub offline: bool,
    /// The hub's data directory (with --offline).
    #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = crate::defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// The hub's store, as `serve --store` (with --offline) [default: SQLite in
    /// --data-dir].
    #[arg(long, value_name = "URL", env = "WORKBUS_STORE")]
    pub store: Option<String>,
    /// The store's key file, as `serve --store-key-file` (with --offline).
    #[arg(long, value_name = "FILE", env = "WORKBUS_STORE_KEY_FILE")]
    pub store_key_file: Option<PathBuf>,
}

/// `90s`, `30m`, `24h`, `7d` → seconds.
fn parse_ttl(s: &str) -> Result<i64, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 24h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} is not a duration like 24h")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: admin, writer or reader"))
}

fn open(offline: &Offline) -> Result<std::sync::Arc<dyn Store>, CliError> {
    let mut settings = StoreSettings::parse(offline.store.as_deref(), &offline.data_dir)
        .map_err(|e| CliError::Input(e.to_string()))?;
    if let (StoreSettings::Postgres { key_file, .. }, Some(path)) =
        (&mut settings, &offline.store_key_file)
    {
        *key_file = Some(path.clone());
    }
    crate::store::open(&settings).map_err(|e| {
        CliError::Input(format!(
            "data directory {}: {e}",
            offline.data_dir.display()
        ))
    })
}

fn offline_error(e: impl std::fmt::Display) -> CliError {
    CliError::Input(e.to_string())
}

fn view(token: &ApiToken) -> Value {
    serde_json::to_value(token).unwrap_or(Value::Null)
}

/// Runs a `token` command against the API (`client`) or the data directory.
pub fn run(client: &Client, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create {
            bootstrap: true,
            name,
            ttl,
            auto_accept,
            offline,
            ..
        } => {
            let body = NewBootstrapToken {
                name,
                ttl_seconds: ttl,
                auto_accept,
            };
            let (shown, secret) = if offline.offline {
                let (write, secret) = issue_bootstrap(body, OFFLINE_ACTOR, Utc::now())
                    .map_err(|e| CliError::Input(e.message))?;
                let token = open(&offline)?.write(write).map_err(offline_error)?;
                (serde_json::to_value(&token).unwrap_or(Value::Null), secret)
            } else {
                let mut answer = client
                    .post(
                        "/api/v1/bootstraptokens",
                        &json!({"name": body.name, "ttlSeconds": body.ttl_seconds,
                                "autoAccept": body.auto_accept}),
                    )?
                    .body;
                let secret = answer
                    .as_object_mut()
                    .and_then(|m| m.remove("token"))
                    .and_then(|v| v.as_str().map(str::to_string))
                    .ok_or_else(|| CliError::Input("the hub answered without a secret".into()))?;
                (answer, secret)
            };
            println!("{secret}");
            eprintln!(
                "bootstrap token/{} created (expires {}{}); its secret (above) is shown only \
                 this once: start a joining agent with it (user bootstrap.<cluster>)",
                shown["name"].as_str().unwrap_or("?"),
                shown["expires"].as_str().unwrap_or("?"),
                if shown["autoAccept"].as_bool() == Some(true) {
                    ", auto-accept"
                } else {
                    ""
                }
            );
        }
        TokenCommand::Create {
            role,
            name,
            clusters,
            offline,
            ..
        } => {
            let role = role.ok_or_else(|| CliError::Input("--role is required".into()))?;
            let (shown, secret) = if offline.offline {
                let request = TokenRequest {
                    name,
                    role,
                    clusters,
                };
                let (write, secret) =
                    issue(request, OFFLINE_ACTOR, Utc::now()).map_err(offline_error)?;
                let token = open(&offline)?.write(write).map_err(offline_error)?;
                (view(&token), secret)
            } else {
                let mut answer = client
                    .post(
                        "/api/v1/tokens",
                        &json!({"name": name, "role": role, "clusters": clusters}),
                    )?
                    .body;
                let secret = answer
                    .as_object_mut()
                    .and_then(|m| m.remove("token"))
                    .and_then(|v| v.as_str().map(str::to_string))
                    .ok_or_else(|| CliError::Input("the hub answered without a secret".into()))?;
                (answer, secret)
            };
            println!("{secret}");
            eprintln!(
                "token/{} created (role {}); its secret (above) is shown only this once: \
                 keep it in a file readable only by you and pass it with --token-file \
                 or WORKBUS_TOKEN",
                shown["name"].as_str().unwrap_or("?"),
                shown["role"].as_str().unwrap_or("?")
            );
        }
        TokenCommand::List { offline } => {
            let (items, bootstrap): (Vec<Value>, Vec<Value>) = if offline.offline {
                let store = open(&offline)?;
                let tokens = store.list_tokens().map_err(offline_error)?;
                let joins = store.list_join_tokens().map_err(offline_error)?;
                (
                    tokens.iter().map(view).collect(),
                    joins
                        .iter()
                        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
                        .collect(),
                )
            } else {
                let v = client.get("/api/v1/tokens")?.body;
                let b = client.get("/api/v1/bootstraptokens")?.body;
                (
                    v["items"].as_array().cloned().unwrap_or_default(),
                    b["items"].as_array().cloned().unwrap_or_default(),
                )
            };
            let mut rows = items;
            rows.extend(bootstrap.into_iter().map(|mut t| {
                // Shown in the ROLE column as the token's kind.
                let kind = if t["revoked"].is_string() {
                    "bootstrap (revoked)"
                } else if t["autoAccept"].as_bool() == Some(true) {
                    "bootstrap (auto-accept)"
                } else {
                    "bootstrap"
                };
                t["role"] = Value::String(kind.into());
                t
            }));
            print!("{}", table(&rows));
        }
        TokenCommand::Revoke { name, offline } => {
            if offline.offline {
                open(&offline)?
                    .write(RevokeToken { name: name.clone() })
                    .map_err(offline_error)?;
            } else {
                // The name is an API token's or a bootstrap token's.
                let path = format!("/api/v1/tokens/{}", encode_component(&name));
                match client.delete(&path) {
                    Err(CliError::Server { code: 404, .. }) => {
                        client.delete(&format!(
                            "/api/v1/bootstraptokens/{}",
                            encode_component(&name)
                        ))?;
                    }
                    other => {
                        other?;
                    }
                }
            }
            println!("token/{name} revoked");
        }
    }
    Ok(())
}

/// `NAME ROLE CLUSTERS CREATED BY`, columns as wide as their values.
fn table(items: &[Value]) -> String {
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|t| {
            let clusters = match t["scope"].as_array() {
                None => "*".to_string(),
                Some(entries) => entries
                    .iter()
                    .map(|e| e["cluster"].as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            [
                t["name"].as_str().unwrap_or("").to_string(),
                t["role"].as_str().unwrap_or("").to_string(),
                clusters,
                t["created"].as_str().unwrap_or("").to_string(),
                t["createdBy"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "ROLE", "CLUSTERS", "CREATED", "BY"].map(str::to_string);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}
