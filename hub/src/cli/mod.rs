//! The kubectl-like command line of `workbus-hub`: `serve` runs a hub; every other
//! command talks to a running hub's REST API (`--server`, env `WORKBUS_SERVER`).
//! Errors from the server are printed as kubectl does
//! (`Error from server (Reason): message`) and give exit code 1.
//!
//! Every flag that configures the process (`--server`, `--token`, `--token-file`,
//! `--ca-file`, `--log`, and all of `serve` and `quickstart`) can also come from the
//! environment (`WORKBUS_SERVER`, `WORKBUS_TOKEN`, `WORKBUS_TOKEN_FILE`,
//! `WORKBUS_CA_FILE`, `WORKBUS_HUB_*`); the defaults are [`crate::defaults`]. The client commands'
//! per-call arguments (`-f`, `-n`, `-l`, `-o` and the names) deliberately have none, as
//! with kubectl: an exported `WORKBUS_HUB_NAMESPACE` would silently retarget a `delete`.

pub mod apply;
pub mod audit;
pub mod certs;
pub mod client;
pub mod get;
pub mod jsonpath;
pub mod output;
pub mod placements;
pub mod printer;
pub mod replicas;
pub mod rollout;
pub mod serve;
pub mod sse;
pub mod tls_args;
pub mod token;
pub mod wait;

use std::io::Read;
use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use client::{CliError, Client, ClientSettings, encode_component};
pub use printer::Output;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "workbus-hub",
    version,
    about = "The workbus hub (OCM ManifestWork source) and its kubectl-like client"
)]
pub struct Cli {
    /// How the client commands reach the hub.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Log filter of `serve` and `quickstart`, e.g. info or workbus_hub=debug (without
    /// it: RUST_LOG, else info for `serve` and warn for `quickstart`).
    #[arg(long, global = true, value_name = "FILTER", env = "WORKBUS_HUB_LOG")]
    pub log: Option<String>,
    /// Log line format of `serve` and `quickstart`: text, or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "WORKBUS_HUB_LOG_FORMAT"
    )]
    pub log_format: workbus_process::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The client commands' connection flags (global).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Hub REST API address (`https://` for a hub serving TLS).
    #[arg(
        long,
        global = true,
        env = "WORKBUS_SERVER",
        default_value_t = crate::defaults::server_url()
    )]
    pub server: String,
    /// API token (prefer --token-file or the environment: a flag shows in `ps`).
    #[arg(long, global = true, env = "WORKBUS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token (e.g. the hub's `<data-dir>/admin.token`).
    #[arg(
        long,
        global = true,
        env = "WORKBUS_TOKEN_FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the hub's certificate (default: system roots).
    #[arg(long, global = true, env = "WORKBUS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The client these flags describe (reads the token file).
    pub fn settings(&self) -> Result<ClientSettings, CliError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(path)) => {
                Some(crate::auth::tokens::read_secret_file(path).map_err(|e| {
                    CliError::Input(format!("--token-file {}: {e}", path.display()))
                })?)
            }
            (None, None) => None,
        };
        Ok(ClientSettings {
            server: self.server.clone(),
            token,
            ca_file: self.ca_file.clone(),
        })
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: REST API, store, MQTT source (with the embedded broker unless
    /// --broker or --mqtt-config names an external one).
    Serve(serve::ServeArgs),
    /// The main job on embedded defaults: embedded broker, hub, simulated clusters and a
    /// sample work whose status is shown as it arrives.
    #[cfg(feature = "quickstart")]
    Quickstart(crate::quickstart::QuickstartArgs),
    /// Create or update ManifestWorks, Placements and ManagedClusterSetBindings from a
    /// file (`-f -` reads standard input; YAML or JSON, several YAML documents allowed).
    Apply {
        /// The file.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Wrap the file's plain Kubernetes objects into one ManifestWorkReplicaSet for
        /// this Placement (rollout `All`) instead of applying them as workbus objects.
        #[arg(long, value_name = "PLACEMENT")]
        placement: Option<String>,
        /// With --placement: the replica set's name (default: the first object's).
        #[arg(long, requires = "placement")]
        name: Option<String>,
        /// With --placement: the namespace of the Placement and the replica set.
        #[arg(short = 'n', long, default_value = "default", requires = "placement")]
        namespace: String,
    },
    /// List or show resources.
    Get {
        /// What.
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Show a human summary of a work.
    Describe {
        /// What.
        #[command(subcommand)]
        what: DescribeWhat,
    },
    /// Delete resources by type and name, or those of a file (`-f`). A work
    /// disappears once its agent confirms.
    #[command(args_conflicts_with_subcommands = true)]
    Delete {
        /// Delete the objects of this file (what `apply -f` takes, a `List` too;
        /// `-` reads standard input).
        #[arg(short = 'f', long = "filename")]
        file: Option<PathBuf>,
        /// An object that does not exist is no error.
        #[arg(long, global = true)]
        ignore_not_found: bool,
        /// What.
        #[command(subcommand)]
        what: Option<DeleteWhat>,
    },
    /// Wait until an object has a condition (`--for=condition=Available`) or is gone
    /// (`--for=delete`); exits 1 after `--timeout`.
    Wait(wait::WaitArgs),
    /// Print the shell completion script: `source <(workbus-hub completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Register resources.
    Create {
        /// What.
        #[command(subcommand)]
        what: CreateWhat,
    },
    /// Accept a joining cluster: sign its certificate requests, start its lease.
    Accept {
        /// What.
        #[command(subcommand)]
        what: ClusterName,
    },
    /// Deny a cluster: its identities are refused and its connections closed.
    Deny {
        /// What.
        #[command(subcommand)]
        what: ClusterName,
    },
    /// Set (`k=v`) or remove (`k-`) labels of a cluster.
    Label {
        /// What.
        #[command(subcommand)]
        what: LabelWhat,
    },
    /// Cluster set membership.
    Clusterset {
        /// What.
        #[command(subcommand)]
        what: ClustersetCommand,
    },
    /// ManifestWorkReplicaSet rollouts: status (progress per decision group), approve,
    /// abort.
    Rollout {
        /// What.
        #[command(subcommand)]
        what: rollout::RolloutCommand,
    },
    /// The audit log: records, replay of a cluster at a time, verification, export,
    /// the checkpoint key (via the hub, or --data-dir / --file offline).
    Audit {
        /// What.
        #[command(subcommand)]
        what: audit::AuditCommand,
    },
    /// Manage API tokens (admin; or --offline on the data directory).
    Token {
        /// What.
        #[command(subcommand)]
        what: token::TokenCommand,
    },
    /// The embedded broker's certificates in <data-dir>/pki: the CA, agents' client
    /// certificates (local; needs no running hub).
    Certs {
        /// What.
        #[command(subcommand)]
        what: certs::CertsCommand,
    },
    /// Health check (the container's HEALTHCHECK): exits 0 when ADDR (the REST API's
    /// listener) accepts a TCP connection within 3 s, 1 otherwise. Local, no request.
    Probe {
        /// The listener to check, `host:port`.
        #[arg(default_value_t = crate::defaults::LISTEN.to_string())]
        addr: String,
    },
}

/// `get` targets: every one takes [`get::GetArgs`] (an optional name, `-n`, `-A`, `-l`,
/// `-o`, `--no-headers`, `--ignore-not-found`, `-w`).
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// ManifestWorks (`-n CLUSTER`; every cluster without it).
    #[command(visible_aliases = ["work", "manifestworks", "manifestwork", "mw"])]
    Works(get::GetArgs),
    /// Clusters.
    #[command(visible_aliases = ["cluster", "managedclusters", "managedcluster"])]
    Clusters(get::GetArgs),
    /// ManifestWorkReplicaSets (every namespace without -n).
    #[command(visible_aliases = ["manifestworkreplicaset", "mwrs"])]
    Manifestworkreplicasets(get::GetArgs),
    /// Cluster sets.
    #[command(visible_aliases = ["clusterset", "managedclustersets", "managedclusterset"])]
    Clustersets(get::GetArgs),
    /// Placements (of namespace `default` unless -n or -A).
    #[command(visible_alias = "placement")]
    Placements(get::GetArgs),
    /// PlacementDecisions (of namespace `default` unless -n).
    #[command(visible_alias = "placementdecision")]
    Placementdecisions {
        /// The common flags.
        #[command(flatten)]
        args: get::GetArgs,
        /// Only this Placement's.
        #[arg(long = "placement")]
        placement: Option<String>,
    },
    /// The hub replicas on this hub's store and the partitions each publishes.
    #[command(visible_alias = "replica")]
    Replicas {
        /// Output format: json or yaml (default: table).
        #[arg(short = 'o', long = "output")]
        output: Option<Output>,
    },
    /// ManagedClusterSetBindings (every namespace without -n).
    #[command(visible_aliases = [
        "clustersetbinding",
        "managedclustersetbindings",
        "managedclustersetbinding"
    ])]
    Clustersetbindings(get::GetArgs),
}

impl GetWhat {
    /// The type and the flags; `Err` with its output format for `get replicas`,
    /// which is not a Kubernetes-style list (no names, labels or namespaces).
    fn into_parts(self) -> Result<(get::Kind, get::GetArgs, Option<String>), Option<Output>> {
        Ok(match self {
            GetWhat::Works(a) => (get::Kind::Works, a, None),
            GetWhat::Clusters(a) => (get::Kind::Clusters, a, None),
            GetWhat::Manifestworkreplicasets(a) => (get::Kind::Manifestworkreplicasets, a, None),
            GetWhat::Clustersets(a) => (get::Kind::Clustersets, a, None),
            GetWhat::Placements(a) => (get::Kind::Placements, a, None),
            GetWhat::Placementdecisions { args, placement } => {
                (get::Kind::Placementdecisions, args, placement)
            }
            GetWhat::Clustersetbindings(a) => (get::Kind::Clustersetbindings, a, None),
            GetWhat::Replicas { output } => return Err(output),
        })
    }
}

/// `accept cluster X` / `deny cluster X`.
#[derive(Debug, Subcommand)]
pub enum ClusterName {
    /// A cluster.
    #[command(visible_alias = "managedcluster")]
    Cluster {
        /// Cluster name.
        name: String,
    },
}

/// `label` targets.
#[derive(Debug, Subcommand)]
pub enum LabelWhat {
    /// A cluster.
    Cluster {
        /// Cluster name.
        name: String,
        /// `k=v` to set, `k-` to remove.
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

/// `clusterset` commands.
#[derive(Debug, Subcommand)]
pub enum ClustersetCommand {
    /// Put a cluster in a set (its exclusive `cluster.open-cluster-management.io/clusterset` label).
    Set {
        /// Cluster name.
        cluster: String,
        /// Set name.
        set: String,
    },
}

/// `describe` targets.
#[derive(Debug, Subcommand)]
pub enum DescribeWhat {
    /// A work.
    #[command(visible_alias = "manifestwork")]
    Work {
        /// Work name.
        name: String,
        /// Cluster (namespace).
        #[arg(short = 'n', long = "namespace")]
        namespace: String,
    },
    /// A cluster: acceptance, conditions, taints, claims, lease.
    #[command(visible_alias = "managedcluster")]
    Cluster {
        /// Cluster name.
        name: String,
    },
}

/// `delete` targets.
#[derive(Debug, Subcommand)]
pub enum DeleteWhat {
    /// A work.
    #[command(visible_alias = "manifestwork")]
    Work {
        /// Work name.
        name: String,
        /// Cluster (namespace).
        #[arg(short = 'n', long = "namespace")]
        namespace: String,
        /// Remove it from the hub now, without the agent's confirmation (its agent is
        /// gone for good; a returning agent is cleaned up by its resync).
        #[arg(long)]
        force: bool,
    },
    /// A cluster (refused while it has works, unless --cascade).
    Cluster {
        /// Cluster name.
        name: String,
        /// Delete its works too, then the cluster once its agent confirmed them.
        #[arg(long)]
        cascade: bool,
        /// With --cascade: remove the works without the agent's confirmation.
        #[arg(long, requires = "cascade")]
        force: bool,
        /// With --cascade (without --force): how long to wait for the agent, in seconds.
        #[arg(long, default_value_t = 60, requires = "cascade")]
        timeout: u64,
    },
    /// A cluster set (`default` and `global` always exist).
    Clusterset {
        /// Set name.
        name: String,
    },
    /// A Placement (its PlacementDecisions go with it).
    Placement {
        /// Placement name.
        name: String,
        /// Its namespace.
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
    },
}

/// `create` targets.
#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// A cluster.
    Cluster {
        /// Cluster name (`[a-z0-9-]+`).
        name: String,
        /// Labels `k=v` (repeatable).
        #[arg(short = 'l', long = "label")]
        labels: Vec<String>,
    },
    /// A cluster set: by default it selects clusters labelled
    /// `cluster.open-cluster-management.io/clusterset=<name>`; with `--selector k=v,...`
    /// every cluster carrying those labels.
    Clusterset {
        /// Set name.
        name: String,
        /// Label selector `k=v,k2=v2`.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
    },
    /// Bind a cluster set to a namespace: its Placements may select the set's clusters.
    #[command(visible_alias = "managedclustersetbinding")]
    Clustersetbinding {
        /// Set name (also the binding's name).
        set: String,
        /// The namespace.
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
    },
}

/// Splits `k=v` (set) and `k-` (remove) arguments.
fn parse_label_changes(
    args: &[String],
) -> Result<(serde_json::Map<String, Value>, Vec<String>), CliError> {
    let mut set = serde_json::Map::new();
    let mut remove = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            set.insert(k.to_string(), Value::String(v.to_string()));
        } else if let Some(k) = a.strip_suffix('-') {
            remove.push(k.to_string());
        } else {
            return Err(CliError::Input(format!(
                "label {a:?} is neither k=v nor k-"
            )));
        }
    }
    Ok((set, remove))
}

const WORK_KIND: &str = workbus_schemas::work::ManifestWork::KUBECTL_NAME;

fn print_value(v: &Value, output: &Option<Output>) -> Result<(), CliError> {
    match output {
        Some(Output::Json) => {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
        _ => {
            let yaml = serde_norway::to_string(v).map_err(|e| CliError::Input(e.to_string()))?;
            print!("{yaml}");
        }
    }
    Ok(())
}

/// `delete cluster`: plain (refused while it has works), `--cascade --force` (removed
/// at once with its works), or `--cascade`: the hub marks its works deleting and is
/// asked again every second, with progress, until the agent confirmed them all or
/// `timeout_secs` passed.
fn delete_cluster(
    client: &Client,
    name: &str,
    cascade: bool,
    force: bool,
    timeout_secs: u64,
) -> Result<(), CliError> {
    let path = format!("/api/v1/clusters/{}", encode_component(name));
    if !cascade {
        client.delete(&path)?;
        println!("cluster \"{name}\" deleted");
        return Ok(());
    }
    if force {
        client.delete(&format!("{path}?cascade=true&force=true"))?;
        println!("cluster \"{name}\" deleted with its works, without the agent's confirmation");
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
    let mut last = None;
    loop {
        let answer = client.delete(&format!("{path}?cascade=true"))?;
        if answer.status != 202 {
            println!("cluster \"{name}\" deleted with its works");
            return Ok(());
        }
        let remaining = answer.body["remainingWorks"].as_u64().unwrap_or(0);
        if last != Some(remaining) {
            eprintln!("waiting for the agent of {name:?} to delete {remaining} work(s)…");
            last = Some(remaining);
        }
        if std::time::Instant::now() >= deadline {
            return Err(CliError::Input(format!(
                "cluster {name:?} still has {remaining} work(s) waiting for its agent after \
                 {timeout_secs}s; if the agent is gone for good, run: workbus-hub delete \
                 cluster {name} --cascade --force"
            )));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn work_path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/clusters/{}/works/{}",
        encode_component(namespace),
        encode_component(name)
    )
}

/// Reads the documents of an apply file (YAML stream or JSON; a `List`'s items).
pub fn read_documents(file: &PathBuf) -> Result<Vec<Value>, CliError> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Input(format!("cannot read standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    }
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).map_err(|e| {
            CliError::Input(format!("{}: not valid YAML/JSON: {e}", file.display()))
        })?;
        // The `List` that `get -o yaml` prints: its items.
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                docs.extend(
                    m.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            v => docs.push(v),
        }
    }
    if docs.is_empty() {
        return Err(CliError::Input(format!("{}: no objects", file.display())));
    }
    Ok(docs)
}

fn local_command() -> CliError {
    CliError::Input("a local command reached the client".into())
}

/// `delete TYPE NAME`.
fn delete_named(client: &Client, what: DeleteWhat) -> Result<(), CliError> {
    match what {
        DeleteWhat::Work {
            name,
            namespace,
            force: false,
        } => {
            client.delete(&work_path(&namespace, &name))?;
            println!("{WORK_KIND} \"{name}\" deleted (waiting for the agent to confirm)");
        }
        DeleteWhat::Work {
            name,
            namespace,
            force: true,
        } => {
            client.delete(&format!("{}?force=true", work_path(&namespace, &name)))?;
            println!(
                "{WORK_KIND} \"{name}\" removed without the agent's confirmation \
                     (a returning agent deletes it on resync)"
            );
        }
        DeleteWhat::Cluster {
            name,
            cascade,
            force,
            timeout,
        } => delete_cluster(client, &name, cascade, force, timeout)?,
        DeleteWhat::Clusterset { name } => {
            client.delete(&format!("/api/v1/clustersets/{}", encode_component(&name)))?;
            println!("clusterset \"{name}\" deleted");
        }
        DeleteWhat::Placement { name, namespace } => {
            placements::delete_placement(client, &namespace, &name)?
        }
    }
    Ok(())
}

/// `delete -f FILE`: every object of the file, as kubectl (each line
/// `<kind.group> "<name>" deleted`; the first error is returned after trying all).
fn delete_file(client: &Client, file: &PathBuf, ignore_not_found: bool) -> Result<(), CliError> {
    let mut first_error = None;
    for doc in read_documents(file)? {
        let text = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or("");
        let (kind_name, ns, name) = (
            text("/kind"),
            text("/metadata/namespace"),
            text("/metadata/name"),
        );
        let Some((kind, path)) = get::Kind::from_object_kind(kind_name)
            .and_then(|k| k.object_path(ns, name).map(|p| (k, p)))
        else {
            first_error.get_or_insert(CliError::Input(format!(
                "{name}: kind {kind_name:?} cannot be deleted from a file"
            )));
            continue;
        };
        match client.delete(&path) {
            Ok(_) => println!("{} \"{name}\" deleted", kind.kubectl_name()),
            Err(e) if ignore_not_found && get::is_not_found(&e) => {}
            Err(e) => {
                eprintln!("{e}");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn not_a_client_command() -> CliError {
    CliError::Input("`serve` and `quickstart` run a hub; they are not client commands".into())
}

/// Runs a client command (everything but `serve`).
pub fn run_client(args: &ClientArgs, command: Command) -> Result<(), CliError> {
    // Local: no hub to talk to.
    if let Command::Certs { what } = &command {
        return certs::run(what).map_err(|e| CliError::Input(e.to_string()));
    }
    if let Command::Probe { addr } = &command {
        return probe(addr);
    }
    if let Command::Completion { shell } = &command {
        // Rendered first: clap_complete panics on a write error (`| head`).
        let mut script = Vec::new();
        clap_complete::generate(
            *shell,
            &mut <Cli as clap::CommandFactory>::command(),
            "workbus-hub",
            &mut script,
        );
        return std::io::Write::write_all(&mut std::io::stdout(), &script)
            .map_err(|e| CliError::Input(format!("cannot write the script: {e}")));
    }
    let client = Client::with_settings(&args.settings()?)?;
    let now = Utc::now();
    match command {
        Command::Serve(_) => return Err(not_a_client_command()),
        #[cfg(feature = "quickstart")]
        Command::Quickstart(_) => return Err(not_a_client_command()),
        Command::Apply {
            file,
            placement: None,
            ..
        } => apply::run(&client, &file)?,
        Command::Apply {
            file,
            placement: Some(placement),
            name,
            namespace,
        } => apply::wrap(&client, &file, &placement, name.as_deref(), &namespace)?,
        Command::Get { what } => match what.into_parts() {
            Ok((kind, args, placement)) => {
                get::run(&client, kind, args, placement.as_deref(), now)?
            }
            Err(output) => {
                let v = client.get("/api/v1/replicas")?.body;
                match output {
                    Some(Output::Json) | Some(Output::Yaml) => print_value(&v, &output)?,
                    _ => print!("{}", replicas::table(&v)),
                }
            }
        },
        Command::Rollout { what } => rollout::run(&client, what)?,
        Command::Describe { what } => match what {
            DescribeWhat::Work { name, namespace } => {
                let v = client.get(&work_path(&namespace, &name))?.body;
                print!("{}", output::describe_work(&v, now));
            }
            DescribeWhat::Cluster { name } => {
                let v = client
                    .get(&format!("/api/v1/clusters/{}", encode_component(&name)))?
                    .body;
                print!("{}", output::describe_cluster(&v, now));
            }
        },
        Command::Accept {
            what: ClusterName::Cluster { name },
        } => {
            client.post(
                &format!("/api/v1/clusters/{}/accept", encode_component(&name)),
                &json!({}),
            )?;
            println!("cluster/{name} accepted");
        }
        Command::Deny {
            what: ClusterName::Cluster { name },
        } => {
            client.post(
                &format!("/api/v1/clusters/{}/deny", encode_component(&name)),
                &json!({}),
            )?;
            println!("cluster/{name} denied");
        }
        Command::Label {
            what: LabelWhat::Cluster { name, labels },
        } => {
            let (set, remove) = parse_label_changes(&labels)?;
            client.post(
                &format!("/api/v1/clusters/{}/labels", encode_component(&name)),
                &json!({"set": set, "remove": remove}),
            )?;
            println!("cluster/{name} labeled");
        }
        Command::Clusterset {
            what: ClustersetCommand::Set { cluster, set },
        } => {
            let label = workbus_schemas::registration::names::CLUSTERSET_LABEL;
            client.post(
                &format!("/api/v1/clusters/{}/labels", encode_component(&cluster)),
                &json!({"set": {label: set}}),
            )?;
            println!("cluster/{cluster} is in clusterset/{set}");
        }
        Command::Delete {
            file: Some(file),
            ignore_not_found,
            ..
        } => delete_file(&client, &file, ignore_not_found)?,
        Command::Delete {
            what: None,
            file: None,
            ..
        } => {
            return Err(CliError::Input(
                "delete what? TYPE NAME (e.g. delete work web -n c1) or -f FILE".into(),
            ));
        }
        Command::Delete {
            what: Some(what),
            ignore_not_found,
            ..
        } => {
            let deleted = delete_named(&client, what);
            match deleted {
                Err(e) if ignore_not_found && get::is_not_found(&e) => {}
                other => other?,
            }
        }
        Command::Wait(args) => wait::run(&client, args)?,
        Command::Completion { .. } => return Err(local_command()),
        Command::Create {
            what: CreateWhat::Clusterset { name, selector },
        } => {
            let match_labels = match selector {
                None => Value::Null,
                Some(sel) => {
                    let mut map = serde_json::Map::new();
                    for pair in sel.split(',').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').ok_or_else(|| {
                            CliError::Input(format!("selector {pair:?} is not key=value"))
                        })?;
                        map.insert(k.to_string(), Value::String(v.to_string()));
                    }
                    Value::Object(map)
                }
            };
            client.post(
                "/api/v1/clustersets",
                &json!({"name": name, "matchLabels": match_labels}),
            )?;
            println!("clusterset/{name} created");
        }
        Command::Create {
            what: CreateWhat::Clustersetbinding { set, namespace },
        } => placements::create_binding(&client, &namespace, &set)?,
        Command::Create {
            what: CreateWhat::Cluster { name, labels },
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| CliError::Input(format!("label {l:?} is not key=value")))?;
                map.insert(k.to_string(), Value::String(v.to_string()));
            }
            client.post("/api/v1/clusters", &json!({"name": name, "labels": map}))?;
            println!("cluster/{name} created");
        }
        Command::Audit { what } => audit::run(&client, what)?,
        Command::Token { what } => token::run(&client, what)?,
        Command::Certs { what } => certs::run(&what).map_err(|e| CliError::Input(e.to_string()))?,
        Command::Probe { addr } => probe(&addr)?,
    }
    Ok(())
}

/// `probe ADDR` (`workbus_process::probe`).
fn probe(addr: &str) -> Result<(), CliError> {
    workbus_process::probe::probe_tcp(addr, workbus_process::probe::PROBE_TIMEOUT)
        .map(|_| ())
        .map_err(|e| CliError::Input(e.to_string()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag has an environment variable except the client commands' per-call
    /// arguments (see the module documentation), listed here so that a new one is a
    /// decision.
    #[test]
    fn every_process_flag_has_an_env_var() {
        let per_call = [
            "workbus-hub apply --filename",
            "workbus-hub apply --placement",
            "workbus-hub apply --name",
            "workbus-hub apply --namespace",
            "workbus-hub get works --namespace",
            "workbus-hub get works --all-namespaces",
            "workbus-hub get works --selector",
            "workbus-hub get works --output",
            "workbus-hub get works --no-headers",
            "workbus-hub get works --ignore-not-found",
            "workbus-hub get works --watch",
            "workbus-hub get clusters --namespace",
            "workbus-hub get clusters --all-namespaces",
            "workbus-hub get clusters --selector",
            "workbus-hub get clusters --output",
            "workbus-hub get clusters --no-headers",
            "workbus-hub get clusters --ignore-not-found",
            "workbus-hub get clusters --watch",
            "workbus-hub get manifestworkreplicasets --namespace",
            "workbus-hub get manifestworkreplicasets --all-namespaces",
            "workbus-hub get manifestworkreplicasets --selector",
            "workbus-hub get manifestworkreplicasets --output",
            "workbus-hub get manifestworkreplicasets --no-headers",
            "workbus-hub get manifestworkreplicasets --ignore-not-found",
            "workbus-hub get manifestworkreplicasets --watch",
            "workbus-hub get clustersets --namespace",
            "workbus-hub get clustersets --all-namespaces",
            "workbus-hub get clustersets --selector",
            "workbus-hub get clustersets --output",
            "workbus-hub get clustersets --no-headers",
            "workbus-hub get clustersets --ignore-not-found",
            "workbus-hub get clustersets --watch",
            "workbus-hub get placements --namespace",
            "workbus-hub get placements --all-namespaces",
            "workbus-hub get placements --selector",
            "workbus-hub get placements --output",
            "workbus-hub get placements --no-headers",
            "workbus-hub get placements --ignore-not-found",
            "workbus-hub get placements --watch",
            "workbus-hub get placementdecisions --namespace",
            "workbus-hub get placementdecisions --all-namespaces",
            "workbus-hub get placementdecisions --selector",
            "workbus-hub get placementdecisions --output",
            "workbus-hub get placementdecisions --no-headers",
            "workbus-hub get placementdecisions --ignore-not-found",
            "workbus-hub get placementdecisions --watch",
            "workbus-hub get placementdecisions --placement",
            "workbus-hub get replicas --output",
            "workbus-hub get clustersetbindings --namespace",
            "workbus-hub get clustersetbindings --all-namespaces",
            "workbus-hub get clustersetbindings --selector",
            "workbus-hub get clustersetbindings --output",
            "workbus-hub get clustersetbindings --no-headers",
            "workbus-hub get clustersetbindings --ignore-not-found",
            "workbus-hub get clustersetbindings --watch",
            "workbus-hub describe work --namespace",
            "workbus-hub delete --filename",
            "workbus-hub delete --ignore-not-found",
            "workbus-hub delete work --namespace",
            "workbus-hub delete work --force",
            "workbus-hub delete work --ignore-not-found",
            "workbus-hub delete cluster --cascade",
            "workbus-hub delete cluster --force",
            "workbus-hub delete cluster --timeout",
            "workbus-hub delete cluster --ignore-not-found",
            "workbus-hub delete clusterset --ignore-not-found",
            "workbus-hub delete placement --namespace",
            "workbus-hub delete placement --ignore-not-found",
            "workbus-hub wait --namespace",
            "workbus-hub wait --for",
            "workbus-hub wait --timeout",
            "workbus-hub create cluster --label",
            "workbus-hub create clusterset --selector",
            "workbus-hub create clustersetbinding --namespace",
            "workbus-hub rollout status --namespace",
            "workbus-hub rollout status --watch",
            "workbus-hub rollout approve --namespace",
            "workbus-hub rollout abort --namespace",
            "workbus-hub audit log --cluster",
            "workbus-hub audit log --work",
            "workbus-hub audit log --resource-id",
            "workbus-hub audit log --type",
            "workbus-hub audit log --actor",
            "workbus-hub audit log --direction",
            "workbus-hub audit log --since",
            "workbus-hub audit log --until",
            "workbus-hub audit log --after",
            "workbus-hub audit log --limit",
            "workbus-hub audit log --watch",
            "workbus-hub audit log --output",
            "workbus-hub audit replay --cluster",
            "workbus-hub audit replay --at",
            "workbus-hub audit replay --work",
            "workbus-hub audit replay --output",
            "workbus-hub audit verify --from",
            "workbus-hub audit verify --to",
            "workbus-hub audit verify --data-dir",
            "workbus-hub audit verify --store",
            "workbus-hub audit verify --file",
            "workbus-hub audit verify --public-key",
            "workbus-hub audit export --data-dir",
            "workbus-hub audit export --store",
            "workbus-hub audit export --out",
            "workbus-hub audit public-key --data-dir",
            "workbus-hub token create --role",
            "workbus-hub token create --name",
            "workbus-hub token create --clusters",
            "workbus-hub token create --bootstrap",
            "workbus-hub token create --ttl",
            "workbus-hub token create --auto-accept",
            "workbus-hub token create --offline",
            "workbus-hub token list --offline",
            "workbus-hub token revoke --offline",
            "workbus-hub certs issue --cluster",
            "workbus-hub certs issue --out",
            "workbus-hub certs issue --days",
        ];
        assert_eq!(workbus_process::flags_without_env(Cli::command()), per_call);
    }

    #[test]
    fn default_server_is_the_default_listen_address() {
        let cli = Cli::try_parse_from(["workbus-hub", "get", "clusters"]).unwrap();
        if std::env::var_os("WORKBUS_SERVER").is_none() {
            assert_eq!(cli.client.server, "http://127.0.0.1:8080");
        }
    }
}
