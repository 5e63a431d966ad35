//! The harness's secured mode: the fleet as the product runs it by default — mutual TLS
//! with certificates from the hub's CA (`workbus_hub::pki`), the broker's fleet ACL,
//! and agents that apply only spec events signed by their hub.
//!
//! One [`Secure`] belongs to one test broker and serves one source id (the fleet ACL
//! is made for one source), so a secured test takes its source id from the broker
//! instead of making one up. Certificates are issued as files, which the transport
//! reads on every connection attempt: a rotation test re-issues them in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use workbus_agent::config::AgentConfig;
use workbus_broker::{FleetAcl, TlsConfig, certs, external};
use workbus_hub::pki::Pki;
use workbus_schemas::acl::{Identity, TopicAcl};
use workbus_schemas::client_id;
use workbus_schemas::signature::VerifyingKey;
use workbus_schemas::topics::Topics;
use workbus_testkit::MosquittoProcess;
use workbus_transport::{TlsSettings, TransportConfig};

/// The CA, certificates and source id of one secured test broker.
pub struct Secure {
    /// Removed with the [`Secure`] when it is a temporary one.
    _temp: Option<tempfile::TempDir>,
    pki: Pki,
    source_id: String,
}

impl Secure {
    /// A new CA (with the broker's server certificate) for the fleet of `source_id`, in
    /// a temporary directory.
    pub fn new(source_id: &str) -> Secure {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut secure = Secure::in_dir(temp.path(), source_id);
        secure._temp = Some(temp);
        secure
    }

    /// [`Secure::new`] with the certificates in `<dir>/pki` (kept; an existing CA
    /// there is reused).
    pub fn in_dir(dir: &Path, source_id: &str) -> Secure {
        let pki = Pki::ensure(dir, &[]).expect("CA and server certificate");
        Secure {
            _temp: None,
            pki,
            source_id: source_id.to_owned(),
        }
    }

    /// The certificate directory (`ca-bundle.pem`, `server.pem`, `<identity>.pem`, ...).
    pub fn pki_dir(&self) -> &Path {
        self.pki.dir()
    }

    /// The hub's certificate directory handle.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The one source id this fleet's ACL lets act as the source.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }

    /// The broker's TLS listener: server certificate, client certificates required.
    pub fn broker_tls(&self) -> TlsConfig {
        self.pki.broker_tls()
    }

    /// The broker's authorizer: identities from certificates, topic ACLs on.
    pub fn acl(&self) -> FleetAcl {
        FleetAcl::for_source(&self.source_id).expect("valid source id")
    }

    /// Issues the certificate of `identity` (files in [`Secure::pki_dir`]) and returns
    /// the transport settings reading them.
    pub fn transport_tls(&self, identity: &Identity) -> TlsSettings {
        self.pki
            .transport_tls(identity)
            .expect("certificate issued")
    }

    /// The certificate and key files of `identity` (as [`Secure::transport_tls`]
    /// writes them).
    pub fn cert_files(&self, identity: &Identity) -> (PathBuf, PathBuf) {
        let name = identity.name();
        (
            self.pki.dir().join(format!("{name}.pem")),
            self.pki.dir().join(format!("{name}-key.pem")),
        )
    }

    /// The hub's transport to the broker at `host:port`: its own certificate, client id
    /// of its source identity, quick reconnects.
    pub fn hub_transport(&self, host: &str, port: u16) -> TransportConfig {
        let mut t = TransportConfig::new(
            host,
            port,
            client_id::source_client_id(&self.source_id, "test"),
        );
        t.tls = Some(self.transport_tls(&Identity::Source(self.source_id.clone())));
        t.reconnect.min_delay = Duration::from_millis(50);
        t.reconnect.max_delay = Duration::from_secs(1);
        t
    }

    /// `config` (an agent of `cluster`) with its certificate and the spec signing key of
    /// the hub whose data directory is `hub_data_dir` (made now if the hub has not
    /// started yet; the hub loads the same key).
    pub fn secure_agent(&self, mut config: AgentConfig, hub_data_dir: &Path) -> AgentConfig {
        let cluster = config.cluster_name.clone();
        config.transport.tls = Some(self.transport_tls(&Identity::Agent(cluster)));
        config.spec_signing_key = Some(hub_signing_key(hub_data_dir));
        config
    }
}

impl Secure {
    /// Writes an sdk-go MQTT config file (JSON, which the YAML reader takes) for
    /// `identity` at `path`: the broker at `broker`, the identity's topics, the CA
    /// bundle and the identity's certificate (issued now). For processes started with
    /// `--mqtt-config` / `--workload-source-config`.
    pub fn write_mqtt_config(&self, identity: &Identity, broker: SocketAddr, path: &Path) {
        let topics = match identity {
            Identity::Agent(cluster) | Identity::Bootstrap(cluster) => {
                Topics::for_agent(&self.source_id, cluster)
            }
            Identity::Source(source) => Topics::for_source(source),
        }
        .expect("valid names");
        self.pki
            .issue(identity, certs::LEAF_VALIDITY)
            .expect("certificate issued");
        let (cert, key) = self.cert_files(identity);
        let config = serde_json::json!({
            "brokerHost": broker.to_string(),
            "keepAlive": 60,
            "pubQoS": 1,
            "subQoS": 1,
            "topics": topics,
            "caFile": self.pki.ca_bundle(),
            "clientCertFile": cert,
            "clientKeyFile": key,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&config).unwrap()).expect("config written");
    }
}

impl Secure {
    /// The Mosquitto `acl_file` for this fleet, as `workbus-broker acl mosquitto`
    /// generates it.
    pub fn mosquitto_acl(&self) -> String {
        let topics = Topics::for_source(&self.source_id).expect("valid source id");
        let acl = TopicAcl::new(&topics).expect("valid topics");
        external::mosquitto_acl(&acl, &[Identity::Source(self.source_id.clone())])
    }

    /// A private Mosquitto configured as `deploy/mosquitto/` documents, with this
    /// fleet's certificates and ACL file, on a free loopback port.
    pub fn launch_mosquitto(&self) -> Result<MosquittoProcess, String> {
        let (pki, rules) = (self.pki.dir().to_path_buf(), self.mosquitto_acl());
        MosquittoProcess::launch_with_config(move |dir, port| {
            let acl_file = dir.join("workbus.acl");
            std::fs::write(&acl_file, &rules).expect("ACL file written");
            mosquitto_documented_config(&pki, &acl_file, port)
        })
    }
}

/// `deploy/mosquitto/mosquitto.conf` with the certificate directory `pki`, the ACL file
/// and a loopback listener on `port` (and, as every test Mosquitto, no user switch and
/// no log).
pub fn mosquitto_documented_config(pki: &Path, acl_file: &Path, port: u16) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto");
    let text = std::fs::read_to_string(root.join("mosquitto.conf")).expect("documented config");
    let pki_dir = format!("{}/", pki.display());
    let text = text
        .replace("/etc/workbus/pki/", &pki_dir)
        .replace(
            "/etc/mosquitto/workbus.acl",
            &acl_file.display().to_string(),
        )
        .replace("listener 8883", &format!("listener {port} 127.0.0.1"));
    // Stay root (PR_SET_PDEATHSIG), log nowhere.
    format!("{text}\nuser root\nlog_dest none\n")
}

/// The public spec signing key of the hub whose data directory is `data_dir`, made
/// there now if it has none yet.
pub fn hub_signing_key(data_dir: &Path) -> VerifyingKey {
    let (key, _) = workbus_hub::signing::load_or_create(data_dir).expect("hub signing key");
    key.verifying_key()
}
