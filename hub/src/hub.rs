//! Starting and stopping a hub in-process: [`Hub::start`] opens the store, connects the
//! MQTT transport, and runs its tasks — the source loop (received events), the outbox
//! publisher (sent events), the rollout controller (ManifestWorkReplicaSets) and the
//! REST server — until [`HubHandle::shutdown`].
//!
//! The `serve` command, the tests and the quickstart all start hubs this way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::Encoding;
use workbus_schemas::signature::VerifyingKey;
use workbus_schemas::topics::{self, TopicError, Topics};
use workbus_transport::{Protocol, TlsError, Transport, TransportConfig, TransportConfigError};

use crate::api::tls::TlsSetupError;
use crate::api::{self, ApiState};
use crate::auth::origin::HostPolicy;
use crate::auth::tokens::{self, TokenError};
use crate::config::{BrokerSettings, HubConfig};
use crate::data_dir_lock::DataDirLock;
use crate::metrics::Metrics;
use crate::outbox::{OutboxPublisher, WireFormat};
use crate::source::SourceLoop;
use crate::store::{StoreError, StoreHandle};
use crate::watch::Watchers;

/// The SQLite database file name inside the data directory.
pub const DB_FILE: &str = crate::store::SQLITE_FILE;

/// Why a hub did not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The data directory or listen socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The source id or topics are unusable.
    #[error("topics: {0}")]
    Topics(#[from] TopicError),
    /// The MQTT config file cannot become a transport.
    #[error("mqtt config: {0}")]
    TransportConfig(#[from] TransportConfigError),
    /// TLS material is unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The REST API's TLS identity is unusable.
    #[error("REST API TLS: {0}")]
    ApiTls(#[from] TlsSetupError),
    /// Plaintext REST on an address other hosts can reach, not allowed.
    #[error(
        "refusing plaintext HTTP on {0}: give a TLS certificate and key, or listen on a \
         loopback address"
    )]
    Plaintext(SocketAddr),
    /// The first admin token could not be made or written.
    #[error("admin token: {0}")]
    Token(#[from] TokenError),
    /// Another hub runs on the data directory (or its lock file is unusable).
    #[error("{0}")]
    DataDir(#[from] crate::data_dir_lock::DataDirLockError),
    /// The spec signing key could not be loaded or made.
    #[error("spec signing key: {0}")]
    SigningKey(#[from] crate::signing::SigningKeyError),
    /// The replica settings cannot run (several hubs, issue 16).
    #[error(transparent)]
    Replica(#[from] crate::replicas::ReplicaError),
    /// Binary-mode events over MQTT 3.1.1, which has no user properties to carry them.
    #[error("MQTT 3.1.1 carries structured-mode events only; use the structured encoding")]
    BinaryOverMqtt311,
}

/// Namespace for [`Hub::start`].
pub struct Hub;

/// A running hub.
pub struct HubHandle {
    rest_addr: SocketAddr,
    tls: bool,
    admin_token: Option<String>,
    spec_signing_key: VerifyingKey,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    transport: Transport,
    stop_http: Option<oneshot::Sender<()>>,
    subscriptions: Arc<tokio::sync::watch::Sender<u64>>,
    watchers: Watchers,
    registration: crate::source::registration::RegistrationContext,
    placements: crate::placement::controller::PlacementHooks,
    rollouts: crate::rollout::controller::RolloutHandle,
    rollout_events: crate::rollout::events::RolloutWatchers,
    sealer: crate::audit::sealer::Sealer,
    tasks: Vec<JoinHandle<()>>,
    /// The partition leases, when this hub is one of several (PostgreSQL).
    leases: Option<Arc<crate::replicas::lease::LeaseHandle>>,
    /// Held while the hub runs (SQLite): no second hub on its data directory.
    _data_dir_lock: Option<DataDirLock>,
}

/// This hub's replica id when it is one of several hubs on a PostgreSQL store, `None`
/// on SQLite (the only hub); `--replica-id` with SQLite is refused.
fn replica_id(config: &HubConfig) -> Result<Option<String>, HubError> {
    use crate::config::StoreSettings;
    use crate::replicas::{ReplicaError, check_id, default_id};
    match (&config.store, &config.replica_id) {
        (StoreSettings::Sqlite { .. }, None) => Ok(None),
        (StoreSettings::Sqlite { .. }, Some(_)) => Err(ReplicaError::SqliteIsSingleHub.into()),
        (StoreSettings::Postgres { .. }, given) => {
            let id = given.clone().unwrap_or_else(default_id);
            check_id(&id)?;
            Ok(Some(id))
        }
    }
}

fn transport_config(
    config: &HubConfig,
    replicated: bool,
) -> Result<(Topics, TransportConfig), HubError> {
    let client_id = config.client_id.clone().unwrap_or_else(|| {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{}-hub-{}", config.source_id, &suffix[..8])
    });
    let (topics, mut tc) = match &config.broker {
        BrokerSettings::Address { host, port } => (
            Topics::for_source(&config.source_id)?,
            TransportConfig::new(host.clone(), *port, client_id),
        ),
        BrokerSettings::Endpoints(endpoints) => {
            let mut tc = TransportConfig::new("", 0, client_id);
            tc.endpoints = endpoints.clone();
            (Topics::for_source(&config.source_id)?, tc)
        }
        BrokerSettings::MqttConfig(mqtt) => {
            let topics = mqtt.topics.clone();
            topics.validate_for_source(&config.source_id)?;
            (
                topics,
                TransportConfig::from_mqtt_config(mqtt, client_id, Vec::new())?,
            )
        }
        BrokerSettings::Transport(tc) => (Topics::for_source(&config.source_id)?, (**tc).clone()),
    };
    if !matches!(config.broker, BrokerSettings::Transport(_)) {
        tc.protocol = config.protocol;
    }
    if tc.protocol == Protocol::V311 && config.encoding == Encoding::Binary {
        return Err(HubError::BinaryOverMqtt311);
    }
    tc.subscriptions = if replicated {
        // Several hubs: the broker hands each agent event to one of them.
        let shared = topics
            .clone()
            .with_shared_group(&topics::replica_share_group(&config.source_id)?)?;
        topics::source_subscriptions(&shared, &config.source_id)?
    } else {
        topics::source_subscriptions(&topics, &config.source_id)?
    };
    if matches!(
        config.broker,
        BrokerSettings::Address { .. } | BrokerSettings::Endpoints(_)
    ) {
        // A broker given by address (a local one, or nodes of a cluster): reconnect
        // quickly rather than after up to 30 s.
        tc.reconnect.max_delay = Duration::from_secs(5);
    }
    Ok((topics, tc))
}

impl Hub {
    /// Starts a hub. Returns once the store is open and the REST socket is bound; the
    /// broker connection is made (and retried) in the background.
    pub async fn start(config: HubConfig) -> Result<HubHandle, HubError> {
        let tls = config
            .api
            .tls
            .as_ref()
            .map(api::tls::server_config)
            .transpose()?
            .map(tokio_rustls::TlsAcceptor::from);
        if tls.is_none()
            && !config.listen.ip().is_loopback()
            && !config.api.plaintext_beyond_loopback
        {
            return Err(HubError::Plaintext(config.listen));
        }
        let replica = replica_id(&config)?;
        let mut settings = config.store.clone();
        if let (Some(id), crate::config::StoreSettings::Postgres { url, .. }) =
            (&replica, &mut settings)
        {
            // Names this replica's connections: work change notices carry it, so the
            // watch relay skips this replica's own changes.
            url.0 = crate::store::postgres_leases::with_application_name(
                &url.0,
                &crate::replicas::watch_relay::origin(id),
            );
        }
        let store_settings = settings.clone();
        let given = config.api.admin_token.clone();
        let token_file = config.api.admin_token_file.clone();
        let (data_dir_lock, opened, generated, (signing_key, new_key), audit_key) =
            tokio::task::spawn_blocking(move || {
                // SQLite: this hub owns the directory's database; a second one is refused.
                let lock = match &settings {
                    crate::config::StoreSettings::Sqlite { data_dir } => {
                        Some(DataDirLock::acquire(data_dir)?)
                    }
                    crate::config::StoreSettings::Postgres { .. } => None,
                };
                let store = crate::store::open(&settings)?;
                let generated =
                    tokens::bootstrap(store.as_ref(), given.as_deref(), token_file.as_deref())?;
                let key = crate::signing::load_or_create(settings.data_dir())?;
                let (audit_key, _) =
                    crate::audit::checkpoint::load_or_create_key(settings.data_dir())?;
                Ok::<_, HubError>((lock, store, generated, key, audit_key))
            })
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        let spec_signing_key = signing_key.verifying_key();
        if new_key {
            // Printed once, when made: agents verify spec events with it.
            eprintln!(
                "workbus-hub: made a spec signing key; agents verify with --spec-signing-key \
                 (public key {}, also in {})",
                spec_signing_key.to_text(),
                crate::signing::SIGNING_PUB_FILE
            );
        }
        tracing::info!(key_id = spec_signing_key.key_id(), "signing spec events");
        if generated.is_some() {
            tracing::info!("no API token existed: made the first admin token");
        }
        let admin_token = config.api.admin_token.clone().or(generated);
        let metrics = Arc::new(Metrics::new(&config.source_id));
        let store = StoreHandle::new(opened, metrics.clone())?;
        let (topics, tc) = transport_config(&config, replica.is_some())?;
        // What the outbox can publish, shared with the API so it refuses what cannot be.
        let wire = Arc::new(
            WireFormat::new(
                topics,
                config.source_id.clone(),
                config.encoding,
                tc.publish_limits(),
            )
            .with_signer(Arc::new(signing_key)),
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| HubError::Io {
                what: format!("cannot listen on {}", config.listen),
                source,
            })?;
        let rest_addr = listener.local_addr().map_err(|source| HubError::Io {
            what: "cannot read the listen address".into(),
            source,
        })?;
        let client_id = tc.client_id.clone();
        let mut transport = Transport::start(tc)?;
        metrics.register_collector(workbus_transport::metrics::TransportCollector::new(
            transport.publisher.stats().clone(),
            client_id,
        ));
        let outbox_progress = Arc::new(crate::outbox::progress::OutboxProgress::default());
        let notify = Arc::new(Notify::new());
        let watchers = Watchers::default();
        let cluster_watchers = crate::watch::ClusterWatchers::default();

        let subscriptions = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let source = SourceLoop {
            subscriptions: subscriptions.clone(),
            resync_slots: Arc::new(tokio::sync::Semaphore::new(crate::source::RESYNC_SLOTS)),
            store: store.clone(),
            source_id: config.source_id.clone(),
            outbox: notify.clone(),
            metrics: metrics.clone(),
            watchers: watchers.clone(),
            digest_clusters: Default::default(),
            wire: wire.clone(),
            limits: Default::default(),
            trust_publisher_stamps: config.registration.trust_publisher_stamps,
            registration: crate::source::registration::RegistrationContext {
                echo: crate::source::registration::RegistrationContext::echo(
                    config.source_id.clone(),
                    wire.clone(),
                ),
                signer: crate::source::registration::RegistrationContext::signer(
                    config.registration.pki.clone(),
                    config.registration.cluster_cert_validity,
                ),
                clock: config.registration.clock.clone(),
                clusters: cluster_watchers.clone(),
                store: store.clone(),
                outbox: notify.clone(),
                disconnect: config.registration.disconnect.clone(),
                grants: Default::default(),
            },
        };
        let registration = source.registration.clone();
        let events = std::mem::replace(&mut transport.events, tokio::sync::mpsc::channel(1).1);
        let mut tasks = vec![tokio::spawn(
            source
                .clone()
                .run_health(config.registration.health_interval),
        )];
        let peer_lost = Arc::new(Notify::new());
        {
            // A replica died: statuses it had taken may be lost; ask every cluster again.
            let source = source.clone();
            let peer_lost = peer_lost.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    peer_lost.notified().await;
                    source.request_status_resync().await;
                }
            }));
        }
        tasks.push(tokio::spawn(source.run(events)));
        let (ownership, leases) = match (&replica, &store_settings) {
            (Some(id), crate::config::StoreSettings::Postgres { url, .. }) => {
                let ownership = Arc::new(crate::replicas::Ownership::leased());
                let (works, notices) =
                    tokio::sync::mpsc::channel(crate::replicas::watch_relay::QUEUE);
                tasks.push(tokio::spawn(crate::replicas::watch_relay::relay(
                    notices,
                    crate::replicas::watch_relay::origin(id),
                    store.clone(),
                    watchers.clone(),
                    cluster_watchers.clone(),
                )));
                let leases = crate::replicas::lease::LeaseHandle::start(
                    crate::replicas::lease::ReplicaIdentity {
                        url: url.0.clone(),
                        replica_id: id.clone(),
                        rest_addr: rest_addr.to_string(),
                    },
                    crate::replicas::lease::LeaseOutputs {
                        ownership: ownership.clone(),
                        outbox: notify.clone(),
                        peer_lost: peer_lost.clone(),
                        metrics: metrics.clone(),
                        works,
                    },
                )
                .await?;
                tracing::info!(replica = %id, "one of several hubs: publishing the partitions it leases");
                (ownership, Some(Arc::new(leases)))
            }
            _ => {
                metrics
                    .partitions_owned
                    .set(i64::from(crate::replicas::partition::PARTITIONS));
                (Arc::new(crate::replicas::Ownership::everything()), None)
            }
        };
        let publisher = OutboxPublisher {
            store: store.clone(),
            publisher: transport.publisher.clone(),
            wire: wire.clone(),
            notify: notify.clone(),
            metrics: metrics.clone(),
            progress: outbox_progress.clone(),
            ownership,
        };
        tasks.push(tokio::spawn(publisher.run()));
        let placements = crate::placement::controller::PlacementHooks::default();
        tasks.push(tokio::spawn(
            crate::placement::controller::PlacementController {
                store: store.clone(),
                clusters: cluster_watchers.clone(),
                watchers: placements.watchers.clone(),
                trigger: placements.trigger.clone(),
                clock: config.registration.clock.clone(),
            }
            .run(),
        ));

        let sealer = crate::audit::sealer::Sealer::new(
            store.clone(),
            Arc::new(audit_key),
            config.source_id.clone(),
            Some(config.store.data_dir().to_path_buf()),
        );
        tasks.push(tokio::spawn(
            sealer
                .clone()
                .run(config.audit.checkpoints, config.audit.retention),
        ));

        let rollout_events = crate::rollout::events::RolloutWatchers::default();
        let rollout = crate::rollout::controller::RolloutController::new(
            store.clone(),
            config
                .rollout
                .decisions(store.blocking().clone(), &placements.watchers),
            config.rollout.clock.clone(),
            config.source_id.clone(),
            {
                let wire = wire.clone();
                Arc::new(move |now| crate::source::spec_events::change_builder(wire.clone(), now))
            },
            notify.clone(),
            watchers.clone(),
            rollout_events.clone(),
        );
        let rollouts = rollout.handle();
        tasks.push(tokio::spawn(rollout.run(watchers.subscribe())));

        let state = ApiState {
            store: store.clone(),
            source_id: config.source_id.clone(),
            outbox: notify,
            wire,
            metrics: metrics.clone(),
            watchers: watchers.clone(),
            hosts: Arc::new(HostPolicy::new(config.api.allowed_hosts.iter().cloned())),
            tickets: Default::default(),
            registration: registration.clone(),
            placements: placements.clone(),
            rollouts: rollouts.clone(),
            rollout_events: rollout_events.clone(),
            sealer: sealer.clone(),
            transport: transport.publisher.stats().clone(),
            outbox_progress,
            leases: leases.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = api::router(state);
        let with_tls = tls.is_some();
        tasks.push(tokio::spawn(api::server::serve(
            listener,
            app,
            tls,
            config.api.limits,
            stop_rx,
        )));
        tracing::info!(%rest_addr, tls = with_tls, source_id = %config.source_id, "hub started");
        Ok(HubHandle {
            rest_addr,
            tls: with_tls,
            admin_token,
            spec_signing_key,
            store,
            metrics,
            transport,
            stop_http: Some(stop_tx),
            subscriptions,
            watchers,
            registration,
            placements,
            rollouts,
            rollout_events,
            sealer,
            tasks,
            leases,
            _data_dir_lock: data_dir_lock,
        })
    }
}

impl HubHandle {
    /// Cluster registration: accept and deny clusters, watch cluster changes.
    pub fn registration(&self) -> &crate::source::registration::RegistrationContext {
        &self.registration
    }

    /// Notifications of every Placement decision change (after the decisions are
    /// durable), for workload controllers.
    pub fn watch_placements(
        &self,
    ) -> tokio::sync::broadcast::Receiver<crate::watch::PlacementChange> {
        self.placements.watchers.subscribe()
    }

    /// Notifications of every work change (spec, accepted status, completed deletion),
    /// as the REST watch endpoint sees them.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<crate::watch::WorkChange> {
        self.watchers.subscribe()
    }

    /// The rollout controller: kick it after moving an injected clock.
    pub fn rollouts(&self) -> &crate::rollout::controller::RolloutHandle {
        &self.rollouts
    }

    /// Rollout transitions of every replica set, as `/api/v1/watch/replicasets` sees them.
    pub fn watch_rollouts(
        &self,
    ) -> tokio::sync::broadcast::Receiver<crate::rollout::events::RolloutEvent> {
        self.rollout_events.subscribe()
    }

    /// The bound REST address.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// `http://<rest_addr>`, or `https://` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.rest_addr)
    }

    /// The first admin token's secret, when this hub knows it: the configured one
    /// ([`crate::ApiSettings::admin_token`]) or the one this start generated. `None` once
    /// tokens existed before the start (the secret is stored only as a digest).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// A plaintext-HTTP REST client for this hub with its admin token (tests, the
    /// quickstart; a TLS hub needs [`crate::cli::client::Client::with_settings`]).
    pub fn client(&self) -> crate::cli::client::Client {
        crate::cli::client::Client::new(&self.base_url()).with_token(self.admin_token.clone())
    }

    /// The public key this hub signs spec events with (also in `<data-dir>/signing.pub`).
    pub fn spec_signing_key(&self) -> &VerifyingKey {
        &self.spec_signing_key
    }

    /// The store (for inspection; the hub keeps using it).
    /// Seals the audit chain with a checkpoint now (see `audit::sealer`).
    pub fn audit_sealer(&self) -> &crate::audit::sealer::Sealer {
        &self.sealer
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Waits until the hub has subscribed to the broker at least once (and queued its
    /// status resync requests); false on timeout.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.subscriptions.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The partition leases of this replica (`None` on SQLite: the only hub).
    pub fn leases(&self) -> Option<&Arc<crate::replicas::lease::LeaseHandle>> {
        self.leases.as_ref()
    }

    /// The hub's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops serving, stops the tasks and disconnects from the broker. Events still in
    /// the outbox stay there and are published by the next start.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        let http = self.tasks.pop();
        for task in &self.tasks {
            task.abort();
        }
        if let Some(mut http) = http {
            // Open watch streams would keep a graceful shutdown waiting forever.
            if tokio::time::timeout(Duration::from_secs(2), &mut http)
                .await
                .is_err()
            {
                tracing::warn!("REST server did not stop in time; aborting it");
                http.abort();
            }
        }
        // Bounded: with the broker unreachable the DISCONNECT cannot go out.
        self.transport.shutdown(Duration::from_secs(1)).await;
        // The outbox stopped and nothing it sent is still on its way: give the
        // partitions to the other replicas now rather than after the leases' expiry.
        if let Some(leases) = self.leases.take() {
            leases.shutdown().await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        // The last record of every run is a checkpoint: the group committer has taken
        // every write queued before this one.
        if let Err(e) = self.sealer.seal().await {
            tracing::warn!(error = %e, "cannot seal the audit log at shutdown");
        }
    }
}
