//! `wait --for=condition=TYPE[=STATUS] | --for=delete [--timeout=30s] TYPE/NAME`, as
//! kubectl: polls the object until the condition holds (status `True` unless given;
//! condition types compare case-insensitively) or the object is gone, and exits 1
//! with `timed out waiting for the condition on …` after the timeout (`0s`: check
//! once). Clusters' conditions can be named short: `Available`, `Joined`,
//! `HubAccepted` mean `ManagedClusterConditionAvailable`, `ManagedClusterJoined`,
//! `HubAcceptedManagedCluster`.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;
use workbus_schemas::registration::names::condition as cluster_condition;

use super::client::{CliError, Client};
use super::get::{Kind, is_not_found};

/// How often the object is read again.
const POLL: Duration = Duration::from_millis(500);

/// The arguments of `wait`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// `TYPE/NAME` (e.g. `work/web`, `cluster/edge-1`) or `TYPE NAME`.
    #[arg(required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// The namespace (a work's is its cluster; `default` for placements).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// `condition=TYPE` (status True), `condition=TYPE=STATUS`, or `delete`.
    #[arg(long = "for")]
    pub for_: String,
    /// How long to wait (Go duration: `30s`, `5m`, `1h`; `0s` checks once).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
}

/// What to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// A condition of this type with this status.
    Condition {
        /// The condition type.
        type_: String,
        /// Its wanted status.
        status: String,
    },
    /// The object is gone.
    Delete,
}

impl Until {
    /// Parses `--for`.
    pub fn parse(text: &str) -> Result<Until, CliError> {
        if text == "delete" {
            return Ok(Until::Delete);
        }
        let bad = || {
            CliError::Input(format!(
                "--for={text:?}: expected condition=TYPE, condition=TYPE=STATUS or delete"
            ))
        };
        let spec = text.strip_prefix("condition=").ok_or_else(bad)?;
        let (type_, status) = spec.split_once('=').unwrap_or((spec, "True"));
        if type_.is_empty() || status.is_empty() {
            return Err(bad());
        }
        Ok(Until::Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
        })
    }
}

/// The full condition type a short name means for `kind` (clusters only).
fn condition_type(kind: Kind, name: &str) -> String {
    if kind == Kind::Clusters {
        let full = match name.to_ascii_lowercase().as_str() {
            "available" => Some(cluster_condition::AVAILABLE),
            "joined" => Some(cluster_condition::JOINED),
            "hubaccepted" => Some(cluster_condition::HUB_ACCEPTED),
            _ => None,
        };
        if let Some(full) = full {
            return full.to_owned();
        }
    }
    name.to_owned()
}

/// Whether `object` has the condition (its conditions are under `status`, or for a
/// cluster under its registration's ManagedCluster).
pub fn condition_met(kind: Kind, object: &Value, type_: &str, status: &str) -> bool {
    let wanted = condition_type(kind, type_);
    [
        "/status/conditions",
        "/registration/managedCluster/status/conditions",
    ]
    .iter()
    .filter_map(|p| object.pointer(p).and_then(Value::as_array))
    .flatten()
    .any(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(&wanted))
            && c.get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(status))
    })
}

/// `TYPE/NAME` or `TYPE NAME`.
fn target(args: &[String]) -> Result<(Kind, String), CliError> {
    let (type_, name) = match args {
        [one] => one.split_once('/').ok_or_else(|| {
            CliError::Input(format!("{one:?}: expected TYPE/NAME, e.g. work/web"))
        })?,
        [t, n] => (t.as_str(), n.as_str()),
        _ => return Err(CliError::Input("expected TYPE/NAME".into())),
    };
    let kind = Kind::from_name(type_).ok_or_else(|| {
        CliError::Input(format!(
            "the server doesn't have a resource type {type_:?} (works, clusters, \
             clustersets, manifestworkreplicasets, placements, clustersetbindings)"
        ))
    })?;
    Ok((kind, name.to_owned()))
}

/// `wait`.
pub fn run(client: &Client, args: WaitArgs) -> Result<(), CliError> {
    let (kind, name) = target(&args.target)?;
    let until = Until::parse(&args.for_)?;
    let timeout = workbus_schemas::config::parse_go_duration(&args.timeout)
        .map_err(|e| CliError::Input(format!("--timeout {:?}: {e}", args.timeout)))?;
    let namespace = match (&args.namespace, kind) {
        (Some(ns), _) => ns.clone(),
        (None, Kind::Works) => {
            return Err(CliError::Input(
                "a work is named with its cluster: -n CLUSTER".into(),
            ));
        }
        (None, _) => "default".to_owned(),
    };
    let path = kind
        .object_path(&namespace, &name)
        .ok_or_else(|| CliError::Input(format!("wait does not support {}", kind.kubectl_name())))?;
    let shown = format!("{}/{name}", kind.kubectl_name());
    let deadline = Instant::now() + timeout;
    loop {
        let done = match (client.get(&path), &until) {
            (Ok(_), Until::Delete) => false,
            (Err(e), Until::Delete) if is_not_found(&e) => {
                println!("{shown} condition met");
                return Ok(());
            }
            (Ok(answer), Until::Condition { type_, status }) => {
                condition_met(kind, &answer.body, type_, status)
            }
            (Err(e), _) => return Err(e),
        };
        if done {
            println!("{shown} condition met");
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(CliError::Input(format!(
                "error: timed out waiting for the condition on {shown}"
            )));
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn for_flags() {
        assert_eq!(Until::parse("delete").unwrap(), Until::Delete);
        assert_eq!(
            Until::parse("condition=Available").unwrap(),
            Until::Condition {
                type_: "Available".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            Until::parse("condition=Applied=False").unwrap(),
            Until::Condition {
                type_: "Applied".into(),
                status: "False".into()
            }
        );
        for bad in ["", "Available", "condition=", "condition=A="] {
            assert!(Until::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_of_works_and_clusters() {
        let work = json!({"status": {"conditions": [
            {"type": "Applied", "status": "True"},
            {"type": "Available", "status": "False"}]}});
        assert!(condition_met(Kind::Works, &work, "applied", "True"));
        assert!(!condition_met(Kind::Works, &work, "Available", "True"));
        assert!(condition_met(Kind::Works, &work, "Available", "false"));
        let cluster = json!({"registration": {"managedCluster": {"status": {"conditions": [
            {"type": "ManagedClusterConditionAvailable", "status": "True"}]}}}});
        assert!(condition_met(Kind::Clusters, &cluster, "Available", "True"));
        assert!(!condition_met(Kind::Works, &cluster, "Available", "True"));
        assert!(!condition_met(Kind::Clusters, &cluster, "Joined", "True"));
    }

    #[test]
    fn targets() {
        assert_eq!(
            target(&["mw/web".into()]).unwrap(),
            (Kind::Works, "web".into())
        );
        assert_eq!(
            target(&["managedcluster".into(), "e1".into()]).unwrap(),
            (Kind::Clusters, "e1".into())
        );
        assert_eq!(
            target(&["manifestworks.work.open-cluster-management.io/web".into()]).unwrap(),
            (Kind::Works, "web".into())
        );
        assert!(target(&["web".into()]).is_err());
        assert!(target(&["pods/web".into()]).is_err());
    }
}
