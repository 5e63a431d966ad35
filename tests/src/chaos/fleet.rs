//! The system under test of one chaos leg: a broker, the hub (on an external broker, so
//! the broker can fail on its own) and one agent per simulated cluster, each a
//! [`Proc`] started from `workbus-chaos-node` (or Mosquitto), with fixed ports and data
//! directories so every restart finds its state again. A secured leg keeps its CA and
//! certificates in `<run dir>/pki` and gives each process an sdk-go MQTT config file
//! naming its certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use workbus_hub::pki::PKI_DIR;
use workbus_schemas::acl::Identity;
use workbus_testkit::{MosquittoLog, free_port, mosquitto_config, mosquitto_program};

use crate::secure::{Secure, hub_signing_key};

use super::processes::{Proc, wait_listening};
use super::rest::Rest;
use super::{BrokerKind, SIM_SNAPSHOT};

/// How long a (re)started part may take to be ready.
pub const READY: Duration = Duration::from_secs(30);

/// Every process of one leg.
pub struct Fleet {
    /// The broker (standalone embedded broker or private Mosquitto).
    pub broker: Proc,
    /// The hub.
    pub hub: Proc,
    /// One agent per cluster, index = cluster index.
    pub agents: Vec<Proc>,
    /// Cluster names, index = agent index.
    pub clusters: Vec<String>,
    /// Where the broker listens.
    pub broker_addr: SocketAddr,
    /// The hub's REST client.
    pub rest: Rest,
    agent_dirs: Vec<PathBuf>,
    /// Unexpected exits seen (a process that died without being killed).
    pub crashes: Vec<String>,
}

impl Fleet {
    /// Describes and starts the leg's processes in `dir`; returns once the broker
    /// listens and the hub answers.
    pub async fn start(
        node_exe: &Path,
        kind: BrokerKind,
        dir: &Path,
        source_id: &str,
        agents: usize,
        keep_alive_secs: u64,
    ) -> Result<Fleet, String> {
        let broker_port = free_port();
        let hub_port = free_port();
        let broker_addr: SocketAddr = ([127, 0, 0, 1], broker_port).into();
        let exe = node_exe.to_path_buf();
        let clusters: Vec<String> = (0..agents).map(|i| format!("edge-{i}")).collect();
        // Secured: every process gets its certificate (and config file naming it), the
        // agents the hub's spec signing key, made before the hub's first start.
        let secure = (kind == BrokerKind::EmbeddedSecured).then(|| Secure::in_dir(dir, source_id));
        let broker = match kind {
            BrokerKind::Embedded => Proc::new(
                "broker",
                &exe,
                vec!["broker".into(), "--listen".into(), broker_addr.to_string()],
                dir.join("broker.log"),
            ),
            BrokerKind::EmbeddedSecured => Proc::new(
                "broker",
                &exe,
                vec![
                    "broker".into(),
                    "--listen".into(),
                    broker_addr.to_string(),
                    format!("--tls-dir={}", dir.join(PKI_DIR).display()),
                    format!("--source-id={source_id}"),
                ],
                dir.join("broker.log"),
            ),
            BrokerKind::Mosquitto => {
                let conf = mosquitto_config(dir, broker_port, MosquittoLog::Stderr)?;
                Proc::new(
                    "broker",
                    &mosquitto_program()?,
                    vec!["-c".into(), conf.display().to_string()],
                    dir.join("broker.log"),
                )
            }
        };
        let hub_broker = match &secure {
            Some(secure) => {
                let config = dir.join("hub-mqtt.json");
                secure.write_mqtt_config(&Identity::Source(source_id.into()), broker_addr, &config);
                format!("--mqtt-config={}", config.display())
            }
            None => format!("--broker={broker_addr}"),
        };
        let hub = Proc::new(
            "hub",
            &exe,
            vec![
                "hub".into(),
                format!("--listen=127.0.0.1:{hub_port}"),
                format!("--data-dir={}", dir.join("hub").display()),
                format!("--source-id={source_id}"),
                hub_broker,
                "--allow-plaintext".into(),
            ],
            dir.join("hub.log"),
        );
        // The hub's first admin token, stored offline before its first start (as an
        // operator bootstraps with `workbus-hub token create --offline`).
        let token = bootstrap_token(&dir.join("hub"))?;
        let agent_dirs: Vec<PathBuf> = clusters.iter().map(|c| dir.join(c)).collect();
        let signing_pub = secure.as_ref().map(|_| {
            hub_signing_key(&dir.join("hub"));
            dir.join("hub").join(workbus_hub::signing::SIGNING_PUB_FILE)
        });
        let agent_procs = clusters
            .iter()
            .zip(&agent_dirs)
            .enumerate()
            .map(|(i, (cluster, data))| {
                let mut args = vec![
                    "agent".into(),
                    format!("--spoke-cluster-name={cluster}"),
                    format!("--data-dir={}", data.display()),
                    "--target=sim".into(),
                    format!("--keep-alive-secs={keep_alive_secs}"),
                ];
                match (&secure, &signing_pub) {
                    (Some(secure), Some(signing_pub)) => {
                        let config = dir.join(format!("{cluster}-mqtt.json"));
                        let identity = Identity::Agent(cluster.clone());
                        secure.write_mqtt_config(&identity, broker_addr, &config);
                        args.push(format!("--workload-source-config={}", config.display()));
                        args.push(format!("--spec-signing-key={}", signing_pub.display()));
                    }
                    _ => {
                        args.push(format!("--broker={broker_addr}"));
                        args.push(format!("--source-id={source_id}"));
                    }
                }
                Proc::new(
                    &format!("agent-{i}"),
                    &exe,
                    args,
                    dir.join(format!("{cluster}.log")),
                )
                .with_log("info,workbus_agent=debug")
            })
            .collect();
        let mut fleet = Fleet {
            broker,
            hub,
            agents: agent_procs,
            clusters,
            broker_addr,
            rest: Rest::new(&format!("http://127.0.0.1:{hub_port}"), &token),
            agent_dirs,
            crashes: Vec::new(),
        };
        fleet.start_broker().await?;
        fleet.start_hub().await?;
        for i in 0..agents {
            fleet.agents[i].start()?;
        }
        Ok(fleet)
    }

    /// Starts the broker and waits until it listens.
    pub async fn start_broker(&mut self) -> Result<(), String> {
        self.broker.start()?;
        wait_listening(self.broker_addr, READY).await
    }

    /// Starts the hub and waits until it answers.
    pub async fn start_hub(&mut self) -> Result<(), String> {
        self.hub.start()?;
        self.rest.wait_healthy(READY).await
    }

    /// The simulated cluster's snapshot file of agent `i`.
    pub fn snapshot(&self, i: usize) -> PathBuf {
        self.agent_dirs[i].join(SIM_SNAPSHOT)
    }

    /// The directory of agent `i`'s durable work records.
    pub fn agent_works(&self, i: usize) -> PathBuf {
        self.agent_dirs[i].join("works")
    }

    /// Every process, broker first.
    fn all(&mut self) -> impl Iterator<Item = &mut Proc> {
        std::iter::once(&mut self.broker)
            .chain(std::iter::once(&mut self.hub))
            .chain(self.agents.iter_mut())
    }

    /// Finds processes that exited on their own (a crash: nothing here stops one
    /// without restarting it), records them, and starts them again.
    pub async fn restart_crashed(&mut self) -> Result<(), String> {
        let mut crashed = Vec::new();
        for (i, p) in self.all().enumerate() {
            if let Some(status) = p.exited() {
                crashed.push((i, format!("{} exited on its own ({status})", p.name)));
            }
        }
        for (i, what) in crashed {
            self.crashes.push(what);
            match i {
                0 => self.start_broker().await?,
                1 => self.start_hub().await?,
                n => self.agents[n - 2].start()?,
            }
        }
        Ok(())
    }

    /// Stops everything with SIGTERM (agents, then the hub, then the broker); returns
    /// the processes that did not exit within `grace` (they were killed).
    pub async fn shutdown(&mut self, grace: Duration) -> Vec<String> {
        let mut hangs = Vec::new();
        self.agents.iter_mut().for_each(Proc::term);
        let deadline = std::time::Instant::now() + grace;
        for a in &mut self.agents {
            if let Err(e) = a.wait_exit(deadline).await {
                hangs.push(e);
            }
        }
        for p in [&mut self.hub, &mut self.broker] {
            if let Err(e) = p.terminate(grace).await {
                hangs.push(e);
            }
        }
        hangs
    }
}

/// Makes the admin API token of a hub with its data in `data_dir` (before its first
/// start) and returns its secret.
fn bootstrap_token(data_dir: &Path) -> Result<String, String> {
    use workbus_hub::auth::tokens::{OFFLINE_ACTOR, TokenRequest, issue};
    let store = workbus_hub::store::open(&workbus_hub::StoreSettings::sqlite(data_dir))
        .map_err(|e| format!("hub store {}: {e}", data_dir.display()))?;
    let request = TokenRequest {
        name: Some("chaos".into()),
        role: workbus_hub::store::Role::Admin,
        clusters: None,
    };
    let (write, secret) =
        issue(request, OFFLINE_ACTOR, chrono::Utc::now()).map_err(|e| e.to_string())?;
    store.write(write).map_err(|e| e.to_string())?;
    Ok(secret)
}
