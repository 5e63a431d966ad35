//! `get TYPE [NAME]` for every resource type, as kubectl: a list or one named object,
//! `-n`/`-A`, set-based `-l`, `-o json|yaml|wide|name|jsonpath=…|custom-columns=…`
//! ([`super::printer`]), `--no-headers`, `--ignore-not-found`, and `-w` (works: the
//! SSE watch, resumed with `Last-Event-ID` after a dropped connection, re-listed when
//! the hub answers 410 Gone; clusters: re-listed after a dropped connection).
//!
//! Label selectors are evaluated by the hub for works (`labelSelector` of
//! `GET /api/v1/works`) and by the CLI for the other types (their list routes take
//! none), with the same rules (`workbus_schemas::selector`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use workbus_schemas::placement::names::kubectl;
use workbus_schemas::selector::LabelSelector;

use super::client::{CliError, Client, encode_component};
use super::printer::{Output, Printer, View, name_of};
use super::{output, placements, rollout, work_path};

/// The resource types of `get`, `wait` and `delete -f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ManifestWorks (namespace: the cluster).
    Works,
    /// Clusters (cluster-scoped).
    Clusters,
    /// ManagedClusterSets (cluster-scoped).
    Clustersets,
    /// ManifestWorkReplicaSets.
    Manifestworkreplicasets,
    /// Placements.
    Placements,
    /// PlacementDecisions.
    Placementdecisions,
    /// ManagedClusterSetBindings.
    Clustersetbindings,
}

/// The flags every `get TYPE` takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GetArgs {
    /// One object by name (shown as a table row unless -o says otherwise).
    pub name: Option<String>,
    /// The namespace (a work's is its cluster). Without it: every namespace, except
    /// for placements and placementdecisions (`default`).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Every namespace (overrides -n).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector: comma-separated `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k` (exists), `!k` (does not exist); all must hold.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Output format: json, yaml, wide, name, jsonpath=TEMPLATE,
    /// custom-columns=HEADER:PATH,... (default: a table).
    #[arg(short = 'o', long = "output")]
    pub output: Option<Output>,
    /// Print tables without their header line.
    #[arg(long)]
    pub no_headers: bool,
    /// A named object that does not exist is no error (nothing is printed).
    #[arg(long)]
    pub ignore_not_found: bool,
    /// After listing, print every change as it happens (works and clusters; until
    /// interrupted).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// The error of a named object that does not exist (as the hub words it).
fn not_found(kind: Kind, name: &str) -> CliError {
    CliError::Server {
        code: 404,
        reason: "NotFound".into(),
        message: format!("{} {name:?} not found", kind.kubectl_name()),
    }
}

/// Whether `e` says the object does not exist.
pub fn is_not_found(e: &CliError) -> bool {
    matches!(e, CliError::Server { code: 404, .. })
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

impl Kind {
    /// The type a kubectl-style name means (`work`, `mw`, `managedclusters`, …).
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "work" | "works" | "manifestwork" | "manifestworks" | "mw" => Kind::Works,
            "cluster" | "clusters" | "managedcluster" | "managedclusters" => Kind::Clusters,
            "clusterset" | "clustersets" | "managedclusterset" | "managedclustersets" => {
                Kind::Clustersets
            }
            "manifestworkreplicaset" | "manifestworkreplicasets" | "mwrs" => {
                Kind::Manifestworkreplicasets
            }
            "placement" | "placements" => Kind::Placements,
            "placementdecision" | "placementdecisions" => Kind::Placementdecisions,
            "clustersetbinding"
            | "clustersetbindings"
            | "managedclustersetbinding"
            | "managedclustersetbindings" => Kind::Clustersetbindings,
            other => {
                let bare = other.split_once('.').map_or(other, |(b, _)| b);
                if bare == other {
                    return None;
                }
                return Kind::from_name(bare);
            }
        })
    }

    /// The type of an object of this `kind` that `apply -f` and `delete -f` take.
    pub fn from_object_kind(kind: &str) -> Option<Kind> {
        use workbus_schemas::placement::names::kind;
        match kind {
            "ManifestWork" => Some(Kind::Works),
            k if k == kind::PLACEMENT => Some(Kind::Placements),
            k if k == kind::MANAGED_CLUSTER_SET_BINDING => Some(Kind::Clustersetbindings),
            k if k == workbus_schemas::replicaset::names::KIND => {
                Some(Kind::Manifestworkreplicasets)
            }
            _ => None,
        }
    }

    /// kubectl's `resource.group`.
    pub fn kubectl_name(self) -> &'static str {
        match self {
            Kind::Works => workbus_schemas::work::ManifestWork::KUBECTL_NAME,
            Kind::Clusters => kubectl::MANAGED_CLUSTER,
            Kind::Clustersets => kubectl::MANAGED_CLUSTER_SET,
            Kind::Manifestworkreplicasets => workbus_schemas::replicaset::names::KUBECTL_NAME,
            Kind::Placements => kubectl::PLACEMENT,
            Kind::Placementdecisions => kubectl::PLACEMENT_DECISION,
            Kind::Clustersetbindings => kubectl::MANAGED_CLUSTER_SET_BINDING,
        }
    }

    /// Whether objects live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Clusters | Kind::Clustersets)
    }

    /// The namespace without `-n`, of a listing or of a named object (`None`: every
    /// namespace for a listing; for a named work, `-n` is needed).
    fn default_namespace(self, named: bool) -> Option<&'static str> {
        match self {
            Kind::Works | Kind::Clusters | Kind::Clustersets => None,
            Kind::Placements | Kind::Placementdecisions => Some("default"),
            Kind::Manifestworkreplicasets | Kind::Clustersetbindings => named.then_some("default"),
        }
    }

    /// The labels of an object (clusters carry theirs at the top).
    fn labels(self, v: &Value) -> BTreeMap<String, String> {
        let labels = match self {
            Kind::Clusters => v.get("labels"),
            _ => v.pointer("/metadata/labels"),
        };
        labels
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The table of some objects.
    fn table(
        self,
        items: &[Value],
        wide: bool,
        all_namespaces: bool,
        now: DateTime<Utc>,
    ) -> String {
        match self {
            Kind::Works => output::works_table(items, wide, now),
            Kind::Clusters => output::clusters_table(items, now),
            Kind::Clustersets => output::clustersets_table(items),
            Kind::Manifestworkreplicasets => rollout::table_of(items, now),
            Kind::Placements => placements::placements_table(items, all_namespaces, now),
            Kind::Placementdecisions => placements::decisions_table(items, wide, now),
            Kind::Clustersetbindings => placements::bindings_table(items, now),
        }
    }

    /// The REST path of one object.
    pub fn object_path(self, namespace: &str, name: &str) -> Option<String> {
        let (ns, n) = (encode_component(namespace), encode_component(name));
        Some(match self {
            Kind::Works => work_path(namespace, name),
            Kind::Clusters => format!("/api/v1/clusters/{n}"),
            Kind::Manifestworkreplicasets => rollout::path(namespace, name),
            Kind::Placements => format!("/api/v1/namespaces/{ns}/placements/{n}"),
            Kind::Clustersetbindings => {
                format!("/api/v1/namespaces/{ns}/managedclustersetbindings/{n}")
            }
            Kind::Clustersets => format!("/api/v1/clustersets/{n}"),
            Kind::Placementdecisions => return None,
        })
    }

    /// Every object of `namespace` (none: every namespace), `selector` sent to the hub
    /// where its route takes one.
    fn list(
        self,
        client: &Client,
        namespace: Option<&str>,
        selector: Option<&str>,
        placement: Option<&str>,
    ) -> Result<Vec<Value>, CliError> {
        let ns_query = |key: &str| {
            namespace
                .map(|ns| format!("?{key}={}", encode_component(ns)))
                .unwrap_or_default()
        };
        let path = match self {
            Kind::Works => return list_works(client, namespace, selector),
            Kind::Clusters => "/api/v1/clusters".to_owned(),
            Kind::Clustersets => "/api/v1/clustersets".to_owned(),
            Kind::Manifestworkreplicasets => match namespace {
                Some(ns) => format!(
                    "/api/v1/namespaces/{}/manifestworkreplicasets",
                    encode_component(ns)
                ),
                None => "/api/v1/manifestworkreplicasets".to_owned(),
            },
            Kind::Placements => format!("/api/v1/placements{}", ns_query("namespace")),
            Kind::Placementdecisions => {
                let ns = namespace.ok_or_else(|| {
                    CliError::Input("placementdecisions are listed per namespace: -n NS".into())
                })?;
                let mut p = format!(
                    "/api/v1/namespaces/{}/placementdecisions",
                    encode_component(ns)
                );
                if let Some(pl) = placement {
                    p.push_str(&format!("?placement={}", encode_component(pl)));
                }
                p
            }
            Kind::Clustersetbindings => {
                format!("/api/v1/managedclustersetbindings{}", ns_query("namespace"))
            }
        };
        Ok(items(client.get(&path)?.body))
    }

    /// One object by name.
    fn get(self, client: &Client, namespace: &str, name: &str) -> Result<Value, CliError> {
        match self {
            // No route for one: found in the list.
            Kind::Clustersets | Kind::Placementdecisions => self
                .list(client, Some(namespace), None, None)?
                .into_iter()
                .find(|v| name_of(v) == name)
                .ok_or_else(|| not_found(self, name)),
            _ => {
                let path = self
                    .object_path(namespace, name)
                    .ok_or_else(|| not_found(self, name))?;
                Ok(client.get(&path)?.body)
            }
        }
    }
}

/// Every page of `GET /api/v1/works`.
fn list_works(
    client: &Client,
    cluster: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>, CliError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec!["limit=500".to_string()];
        if let Some(ns) = cluster {
            query.push(format!("cluster={}", encode_component(ns)));
        }
        if let Some(sel) = selector {
            query.push(format!("labelSelector={}", encode_component(sel)));
        }
        if let Some(t) = &token {
            query.push(format!("continue={}", encode_component(t)));
        }
        let page = client
            .get(&format!("/api/v1/works?{}", query.join("&")))?
            .body;
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .map(str::to_string);
        all.extend(items(page));
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// What one `get` shows: type, scope, filter, format.
struct Query<'a> {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    selector: Option<LabelSelector>,
    selector_text: Option<String>,
    placement: Option<&'a str>,
    all_namespaces: bool,
    now: DateTime<Utc>,
}

impl Query<'_> {
    fn matches(&self, v: &Value) -> bool {
        self.name.as_deref().is_none_or(|n| name_of(v) == n)
            && self.namespace.as_deref().is_none_or(|ns| {
                !self.kind.namespaced()
                    || v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            })
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&self.kind.labels(v)))
    }

    /// The objects, filtered; `Ok(None)` when a named object is missing and that is fine.
    fn fetch(
        &self,
        client: &Client,
        ignore_not_found: bool,
    ) -> Result<Option<Vec<Value>>, CliError> {
        match &self.name {
            Some(name) => {
                let ns = match (&self.namespace, self.kind.default_namespace(true)) {
                    (Some(ns), _) => ns.clone(),
                    (None, Some(d)) => d.to_owned(),
                    (None, None) if self.kind.namespaced() => {
                        return Err(CliError::Input(format!(
                            "a {} is named with its namespace (its cluster): -n NAMESPACE",
                            self.kind.kubectl_name()
                        )));
                    }
                    (None, None) => String::new(),
                };
                match self.kind.get(client, &ns, name) {
                    Ok(v) => Ok(Some(vec![v])),
                    Err(e) if ignore_not_found && is_not_found(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            None => {
                let list = self.kind.list(
                    client,
                    self.namespace.as_deref(),
                    self.selector_text.as_deref(),
                    self.placement,
                )?;
                Ok(Some(list.into_iter().filter(|v| self.matches(v)).collect()))
            }
        }
    }
}

/// `get TYPE [NAME] …` (`placement`: only this Placement's decisions).
pub fn run(
    client: &Client,
    kind: Kind,
    args: GetArgs,
    placement: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), CliError> {
    if args.name.is_some() && args.selector.is_some() {
        return Err(CliError::Input(
            "a name and a label selector (-l) cannot be combined".into(),
        ));
    }
    if args.name.is_some() && args.all_namespaces {
        return Err(CliError::Input(
            "a name cannot be combined with -A (--all-namespaces)".into(),
        ));
    }
    if args.watch && !matches!(kind, Kind::Works | Kind::Clusters) {
        return Err(CliError::Input(format!(
            "--watch is available for works and clusters (the hub has no watch of {})",
            kind.kubectl_name()
        )));
    }
    let selector = args
        .selector
        .as_deref()
        .map(workbus_schemas::selector::parse)
        .transpose()
        .map_err(|e| CliError::Input(format!("-l {:?}: {e}", args.selector.unwrap_or_default())))?;
    let namespace = match (args.all_namespaces, args.namespace) {
        (true, _) => None,
        (false, Some(ns)) => Some(ns),
        (false, None) if args.name.is_none() => kind.default_namespace(false).map(str::to_owned),
        (false, None) => None,
    };
    let namespace = namespace.filter(|_| kind.namespaced());
    let query = Query {
        kind,
        all_namespaces: args.all_namespaces,
        namespace,
        name: args.name,
        selector_text: selector.as_ref().map(|s| s.to_string()),
        selector,
        placement,
        now,
    };
    let printer = Printer {
        output: args.output,
        no_headers: args.no_headers,
    };
    let all_ns = query.all_namespaces;
    let table = move |items: &[Value], wide: bool| kind.table(items, wide, all_ns, query.now);
    let view = View {
        kubectl_name: kind.kubectl_name(),
        table: &table,
    };
    if args.watch {
        return watch(client, &query, &printer, &view, args.ignore_not_found);
    }
    let Some(found) = query.fetch(client, args.ignore_not_found)? else {
        return Ok(());
    };
    if query.name.is_some() {
        print!("{}", printer.render(&view, &found, true)?);
        Ok(())
    } else {
        printer.print_list(&view, &found)
    }
}

/// How long `-w` keeps trying to reconnect before it gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// `get works|clusters -w`: the watch opens first (so no change between the listing and
/// the watch is lost), then the listing prints, then each change of a matching object.
/// The work watch resumes after a dropped connection with `Last-Event-ID` (a `410
/// Gone` means: list again); the cluster watch has no ids and lists again.
fn watch(
    client: &Client,
    query: &Query,
    printer: &Printer,
    view: &View,
    ignore_not_found: bool,
) -> Result<(), CliError> {
    let resumable = query.kind == Kind::Works;
    let path = match query.kind {
        Kind::Works => {
            let mut path = "/api/v1/watch/works?allowWatchBookmarks=true".to_owned();
            if let Some(ns) = &query.namespace {
                path.push_str(&format!("&cluster={}", encode_component(ns)));
            }
            path
        }
        _ => "/api/v1/watch/clusters".to_owned(),
    };
    let mut header_printed = false;
    // Opens a fresh watch and prints the listing: at the start, after a 410 Gone, and
    // after a dropped cluster watch.
    let relist = |header_printed: &mut bool| -> Result<_, CliError> {
        let mut stream = client.stream(&path, None)?;
        let mut last_id = String::new();
        if resumable && let Ok(Some(bookmark)) = stream.next_event() {
            last_id = bookmark.id;
        }
        let found = query.fetch(client, ignore_not_found)?.unwrap_or_default();
        for object in &found {
            emit(printer, view, object, header_printed)?;
        }
        Ok((stream, last_id))
    };
    let (mut stream, mut last_id) = relist(&mut header_printed)?;
    loop {
        // An error or the end of the stream: the connection dropped.
        if let Ok(Some(ev)) = stream.next_event() {
            if !ev.id.is_empty() {
                last_id = ev.id.clone();
            }
            if ev.event != "lagged" {
                if let Some(object) = changed_object(client, query.kind, &ev)
                    && query.matches(&object)
                {
                    emit(printer, view, &object, &mut header_printed)?;
                }
                continue;
            }
            // Fell behind: resume from the last change seen.
        }
        let deadline = Instant::now() + RECONNECT_FOR;
        loop {
            let resume_from = Some(last_id.as_str()).filter(|id| resumable && !id.is_empty());
            let reopened = match resume_from {
                Some(id) => client.stream(&path, Some(id)).map(|s| (s, last_id.clone())),
                None => relist(&mut header_printed),
            };
            match reopened {
                Ok(s) => {
                    (stream, last_id) = s;
                    break;
                }
                Err(CliError::Server { code: 410, .. }) => {
                    eprintln!("(watch expired: listing again)");
                    last_id.clear();
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

/// The object a watch event is about, as the listing shows it (`None`: not a change).
/// A work event carries the work; a cluster event carries the ManagedCluster, so the
/// cluster is read again (a deleted one keeps its name and labels).
fn changed_object(client: &Client, kind: Kind, ev: &super::sse::SseEvent) -> Option<Value> {
    let change: Value = serde_json::from_str(&ev.data).ok()?;
    let object = change.get("object")?;
    match (kind, ev.event.as_str()) {
        (Kind::Works, "spec" | "status" | "deleted") => Some(object.clone()),
        (Kind::Clusters, "changed" | "deleted") => {
            let name = object.pointer("/metadata/name")?.as_str()?;
            match (ev.event.as_str(), kind.get(client, "", name)) {
                ("changed", Ok(cluster)) => Some(cluster),
                _ => Some(serde_json::json!({
                    "name": name,
                    "labels": object.pointer("/metadata/labels").cloned().unwrap_or_default(),
                })),
            }
        }
        _ => None,
    }
}

/// Prints one object of a watch: a table row (the header once), or the object.
fn emit(
    printer: &Printer,
    view: &View,
    object: &Value,
    header_printed: &mut bool,
) -> Result<(), CliError> {
    let text = printer.render(view, std::slice::from_ref(object), true)?;
    let text = if printer.is_table() && *header_printed && !printer.no_headers {
        text.split_once('\n')
            .map_or(String::new(), |(_, rows)| rows.to_owned())
    } else {
        text
    };
    *header_printed = true;
    print!("{text}");
    let _ = std::io::stdout().flush();
    Ok(())
}
