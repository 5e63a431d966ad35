//! The REST API (axum, JSON; works also accepted as YAML): routes, shared state, and
//! the small endpoints (`/healthz`, `/livez`, `/readyz`, `/metrics`, `/openapi.json`).
//!
//! | path | methods |
//! |---|---|
//! | `/api/v1/clusters` | GET list, POST create |
//! | `/api/v1/clusters/{name}` | GET, DELETE (409 while it has works; `cascade=true`: 202 until its works are deleted, with `force=true` 204 at once) |
//! | `/api/v1/works` | GET list (`cluster`, set-based `labelSelector`, `limit`, `continue`), POST create (unknown fields refused, named) |
//! | `/api/v1/clusters/{cluster}/works/{name}` | GET, PUT create-or-update, DELETE (202; `force=true`: removed at once, 200) |
//! | `/api/v1/watch/works` | GET server-sent events with ids (`cluster`, `allowWatchBookmarks`; `ticket` for browsers; `Last-Event-ID` resumes, 410 when expired) |
//! | `/api/v1/watch/tickets` | POST a one-use ticket for the watch |
//! | `/api/v1/outbox/parked` | GET the events parked as unpublishable (`after`, `limit`) |
//! | `/api/v1/namespaces/{ns}/placements/{name}` | GET, PUT, DELETE (see [`placements`]) |
//! | `/api/v1/placements`, `/api/v1/managedclustersetbindings` | GET lists |
//! | `/api/v1/namespaces/{ns}/placementdecisions` | GET (`placement`) |
//! | `/api/v1/namespaces/{ns}/managedclustersetbindings/{set}` | GET, PUT, DELETE |
//! | `/api/v1/watch/placements` | GET server-sent events of decision changes |
//! | `/api/v1/manifestworkreplicasets` | GET list (all namespaces) |
//! | `/api/v1/namespaces/{ns}/manifestworkreplicasets` | GET list, POST create |
//! | `/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}` | GET, PUT create-or-update, DELETE |
//! | `…/manifestworkreplicasets/{name}/approve`, `…/abort` | POST: approve the awaited gate, stop the rollout |
//! | `/api/v1/watch/replicasets` | GET server-sent rollout transitions (`namespace`, `name`) |
//! | `/api/v1/tokens` | GET list, POST create (admin) |
//! | `/api/v1/tokens/{name}` | DELETE revoke (admin) |
//! | `/api/v1/audit/log` | GET audit records (filters, paged by `after`; see [`audit`]) |
//! | `/api/v1/audit/replay` | GET what ran on a cluster at a time (`cluster`, `at`, `work`) |
//! | `/api/v1/audit/verify` | GET the chain and checkpoint check (`from`, `to`; unscoped) |
//! | `/api/v1/audit/export` | GET the sealed log as JSON lines (unscoped) |
//! | `/api/v1/audit/public-key` | GET the checkpoint key (unscoped) |
//!
//! Every request passes [`guard`] (host, origin, token, role); [`server`] serves the
//! router over TCP or TLS with bounded connections.

pub mod audit;
pub mod body;
pub mod clusters;
pub mod error;
pub mod guard;
pub mod outbox;
pub mod placements;
pub mod registration;
pub mod replicas;
pub mod replicasets;
pub mod server;
pub mod tls;
pub mod tokens;
pub mod watch;
pub mod works;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use tokio::sync::Notify;

use crate::auth::origin::HostPolicy;
use crate::auth::tickets::Tickets;
use crate::metrics::{Metrics, OutboxGauges};
use crate::outbox::WireFormat;
use crate::store::StoreHandle;
use crate::watch::Watchers;

/// The hand-written OpenAPI 3.0 document of this API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: StoreHandle,
    /// Our source id (work uids derive from it).
    pub source_id: String,
    /// Wakes the outbox publisher after a commit.
    pub outbox: Arc<Notify>,
    /// How events become MQTT messages: changes whose events could never be published
    /// are refused.
    pub wire: Arc<WireFormat>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Work change fan-out.
    pub watchers: Watchers,
    /// The hosts and origins requests may name.
    pub hosts: Arc<HostPolicy>,
    /// Outstanding watch tickets.
    pub tickets: Tickets,
    /// Cluster registration (accept, deny, echoes, the clock).
    pub registration: crate::source::registration::RegistrationContext,
    /// The placement controller's trigger and decision broadcast.
    pub placements: crate::placement::controller::PlacementHooks,
    /// Kicks the rollout controller after a replica set change.
    pub rollouts: crate::rollout::controller::RolloutHandle,
    /// Rollout transitions (`/api/v1/watch/replicasets`).
    pub rollout_events: crate::rollout::events::RolloutWatchers,
    /// Seals the audit log (`/api/v1/audit/export` seals before it exports).
    pub sealer: crate::audit::sealer::Sealer,
    /// The MQTT session's state (`/readyz`).
    pub transport: Arc<workbus_transport::TransportStats>,
    /// The outbox publisher's progress (`/readyz`).
    pub outbox_progress: Arc<crate::outbox::progress::OutboxProgress>,
    /// The partition leases when this hub is one of several (`/api/v1/replicas`).
    pub leases: Option<Arc<crate::replicas::lease::LeaseHandle>>,
}

/// All routes.
pub fn router(state: ApiState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route(
            "/api/v1/clusters",
            get(clusters::list).post(clusters::create),
        )
        .route(
            "/api/v1/clusters/{name}",
            get(clusters::get).delete(clusters::delete),
        )
        .route("/api/v1/works", get(works::list).post(works::create))
        .route(
            "/api/v1/clusters/{cluster}/works/{name}",
            get(works::get).put(works::put).delete(works::delete),
        )
        .route("/api/v1/watch/works", get(watch::watch))
        .route("/api/v1/watch/tickets", post(watch::ticket))
        .route("/api/v1/outbox/parked", get(outbox::parked))
        .route("/api/v1/replicas", get(replicas::list))
        .route("/api/v1/audit/log", get(audit::log))
        .route("/api/v1/audit/replay", get(audit::replay))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/audit/export", get(audit::export))
        .route("/api/v1/audit/public-key", get(audit::public_key))
        .route("/api/v1/clusters/{name}/accept", post(registration::accept))
        .route("/api/v1/clusters/{name}/deny", post(registration::deny))
        .route("/api/v1/clusters/{name}/labels", post(registration::label))
        .route("/api/v1/watch/clusters", get(registration::watch_clusters))
        .route(
            "/api/v1/clustersets",
            get(registration::list_sets).post(registration::create_set),
        )
        .route(
            "/api/v1/clustersets/{name}",
            delete(registration::delete_set),
        )
        .route(
            "/api/v1/bootstraptokens",
            get(registration::list_bootstrap_tokens).post(registration::create_bootstrap_token),
        )
        .route(
            "/api/v1/bootstraptokens/{name}",
            delete(registration::revoke_bootstrap_token),
        )
        .route(
            "/api/v1/namespaces/{ns}/placements/{name}",
            get(placements::get_placement)
                .put(placements::put_placement)
                .delete(placements::delete_placement),
        )
        .route("/api/v1/placements", get(placements::list_placements))
        .route(
            "/api/v1/namespaces/{ns}/placementdecisions",
            get(placements::list_decisions),
        )
        .route(
            "/api/v1/namespaces/{ns}/managedclustersetbindings/{set}",
            get(placements::get_binding)
                .put(placements::put_binding)
                .delete(placements::delete_binding),
        )
        .route(
            "/api/v1/managedclustersetbindings",
            get(placements::list_bindings),
        )
        .route("/api/v1/watch/placements", get(placements::watch))
        .route(
            "/api/v1/manifestworkreplicasets",
            get(replicasets::list_all),
        )
        .route(
            "/api/v1/namespaces/{ns}/manifestworkreplicasets",
            get(replicasets::list).post(replicasets::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}",
            get(replicasets::get)
                .put(replicasets::put)
                .delete(replicasets::delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}/approve",
            post(replicasets::approve),
        )
        .route(
            "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}/abort",
            post(replicasets::abort),
        )
        .route("/api/v1/watch/replicasets", get(replicasets::watch))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{name}", delete(tokens::revoke))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let metrics = metrics.clone();
                // The route template, never the path itself: ids in labels would make a
                // series per object.
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_string());
                let method = req.method().clone();
                let started = std::time::Instant::now();
                async move {
                    let resp = next.run(req).await;
                    if resp.status().is_client_error() {
                        metrics.api_rejected.inc();
                    }
                    metrics.rest_request(
                        route.as_deref(),
                        method.as_str(),
                        resp.status().as_u16(),
                        started.elapsed(),
                    );
                    resp
                }
            },
        ))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// How long `/readyz` waits for the store.
const READY_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    use std::sync::atomic::Ordering;
    let pending = tokio::time::timeout(READY_STORE_TIMEOUT, state.store.run(|s| s.outbox_depth()))
        .await
        .ok()
        .and_then(Result::ok);
    let observed = crate::readiness::Observed {
        outbox_pending: pending,
        connected: state.transport.connected.load(Ordering::Relaxed),
        subscribed: state.transport.subscribed.load(Ordering::Relaxed),
        outbox_idle: state.outbox_progress.since(),
    };
    match crate::readiness::decide(&observed) {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
    }
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such endpoint; see /openapi.json")
}

async fn metrics_text(State(state): State<ApiState>) -> impl IntoResponse {
    let gauges = state
        .store
        .run(|s| {
            Ok(OutboxGauges {
                pending: s.outbox_depth()?,
                parked: s.outbox_parked_count()?,
            })
        })
        .await
        .ok();
    if let Ok(clusters) = state.store.run(|s| s.list_clusters()).await {
        state
            .metrics
            .set_cluster_counts(&crate::metrics::cluster_condition_counts(&clusters));
    }
    let text = state.metrics.render(gauges);
    (
        [(header::CONTENT_TYPE, workbus_process::metrics::CONTENT_TYPE)],
        text,
    )
}
