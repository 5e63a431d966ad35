//! `workbus-hub certs init|issue|revoke`: the embedded broker's certificates in
//! `<data-dir>/pki/` (see [`crate::pki`]), wrapping [`workbus_broker::certs`].
//!
//! `serve` and `quickstart` make the CA on their first start; `certs init` does it ahead
//! of time (with the broker's extra server names). `certs issue --cluster NAME` gives an
//! agent its client certificate (the CA is made first if the data directory has none);
//! with `--out DIR` it also copies the CA bundle, the certificate and the key there and
//! writes an sdk-go MQTT config (`mqtt.yaml`: `brokerHost`, `caFile`,
//! `clientCertFile`, `clientKeyFile`, the cluster's topics) for
//! `workbus-agent --workload-source-config DIR/mqtt.yaml`. `certs revoke --cluster NAME`
//! puts the agent's current certificate on the CA's revocation list, which the embedded
//! broker re-reads with its other TLS files. Files 0600, directories 0700.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;
use workbus_broker::certs::{self, CertError, Issued};
use workbus_schemas::acl::Identity;
use workbus_schemas::topics::{TopicError, Topics};

use crate::defaults;
use crate::pki::{Pki, PkiError};

/// The sdk-go MQTT config `certs issue --out DIR` writes for the agent.
pub const AGENT_MQTT_CONFIG: &str = "mqtt.yaml";

/// `certs` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CertsCommand {
    /// Create the CA and the embedded broker's certificate in <data-dir>/pki (serve and
    /// quickstart do this on their first start).
    Init {
        /// The hub's data directory.
        #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = defaults::DATA_DIR)]
        data_dir: PathBuf,
        /// Extra DNS name or IP address agents use to reach the embedded broker
        /// (repeatable; localhost, 127.0.0.1 and ::1 are always included).
        #[arg(
            long,
            value_name = "NAME",
            env = "WORKBUS_HUB_BROKER_SERVER_NAME",
            value_delimiter = ','
        )]
        broker_server_name: Vec<String>,
    },
    /// Issue (or re-issue) a cluster agent's client certificate, and with --out write
    /// everything the agent needs into a directory.
    Issue {
        /// The hub's data directory.
        #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = defaults::DATA_DIR)]
        data_dir: PathBuf,
        /// The cluster whose agent gets the certificate.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// Directory for the agent's files (CA bundle, certificate, key, mqtt.yaml).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, value_name = "DAYS", default_value_t = 365)]
        days: u64,
        /// Source id (the topics in mqtt.yaml).
        #[arg(long, env = "WORKBUS_HUB_SOURCE_ID", default_value = defaults::SOURCE_ID)]
        source_id: String,
        /// The broker address the agent connects to (brokerHost in mqtt.yaml; a name or
        /// address in the broker's certificate).
        #[arg(
            long,
            value_name = "HOST:PORT",
            env = "WORKBUS_HUB_CERTS_BROKER",
            default_value_t = defaults::QUICKSTART_BROKER_LISTEN.to_string()
        )]
        broker: String,
    },
    /// Revoke a cluster agent's current certificate: the embedded broker refuses it from
    /// its next TLS reload (within 30 s); a re-issued certificate is accepted again.
    Revoke {
        /// The hub's data directory.
        #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = defaults::DATA_DIR)]
        data_dir: PathBuf,
        /// The cluster whose agent's certificate is revoked.
        #[arg(long, value_name = "NAME", env = "WORKBUS_HUB_CERTS_REVOKE_CLUSTER")]
        cluster: String,
    },
}

/// Why a `certs` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The certificate directory could not be used.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The cluster or source name is unusable.
    #[error("--cluster/--source-id: {0}")]
    Name(#[from] TopicError),
    /// `--days 0`.
    #[error("--days must be at least 1")]
    Days,
    /// An output file could not be written.
    #[error("--out: {0}")]
    Write(#[from] CertError),
    /// The output directory could not be made or resolved.
    #[error("--out {path}: {source}")]
    Out {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The MQTT config could not be rendered.
    #[error("{AGENT_MQTT_CONFIG}: {0}")]
    Yaml(String),
    /// The data directory holds no CA: nothing was issued that could be revoked.
    #[error("{} holds no CA", .0.display())]
    NoCa(PathBuf),
}

/// Runs a `certs` command, printing what it made.
pub fn run(command: &CertsCommand) -> Result<(), CertsError> {
    match command {
        CertsCommand::Init {
            data_dir,
            broker_server_name,
        } => {
            let pki = Pki::ensure(data_dir, broker_server_name)?;
            if pki.created() {
                println!(
                    "made a CA and the broker's certificate in {}",
                    pki.dir().display()
                );
            } else {
                println!(
                    "{} already holds a CA; kept it and re-issued the broker's certificate (rotate the CA with `workbus-broker certs rotate-ca --dir {}`)",
                    pki.dir().display(),
                    pki.dir().display()
                );
            }
            show_pki(&pki);
        }
        CertsCommand::Issue {
            data_dir,
            cluster,
            out,
            days,
            source_id,
            broker,
        } => {
            if *days == 0 {
                return Err(CertsError::Days);
            }
            let topics = Topics::for_agent(source_id, cluster)?;
            // An existing directory is only read: its server certificate (and the names
            // a running broker serves) stays as it is.
            let pki = match Pki::open(data_dir) {
                Some(pki) => pki,
                None => Pki::ensure(data_dir, &[])?,
            };
            if pki.created() {
                println!(
                    "made a CA and the broker's certificate in {}",
                    pki.dir().display()
                );
                show_pki(&pki);
            }
            let validity = Duration::from_secs(days.saturating_mul(24 * 3600));
            let issued = pki.issue(&Identity::Agent(cluster.clone()), validity)?;
            println!(
                "certificate of cluster {cluster}: {} (key {}), valid {days} days",
                issued.cert.display(),
                issued.key.display()
            );
            match out {
                Some(out) => {
                    let config = write_agent_files(&pki, &issued, cluster, &topics, broker, out)?;
                    println!("agent files in {}; run the agent with:", out.display());
                    println!(
                        "  workbus-agent --spoke-cluster-name={cluster} --workload-source-config={}",
                        config.display()
                    );
                }
                None => println!(
                    "the agent's CA file (caFile): {}",
                    pki.ca_bundle().display()
                ),
            }
        }
        CertsCommand::Revoke { data_dir, cluster } => {
            let pki = Pki::open(data_dir).ok_or_else(|| CertsError::NoCa(Pki::dir_of(data_dir)))?;
            let listed = pki.revoke(&Identity::Agent(cluster.clone()))?;
            println!(
                "revoked the certificate of cluster {cluster} ({listed} on the list in {}); the embedded broker refuses it from its next TLS reload, `certs issue` gives the agent a new one",
                pki.dir().join(certs::CRL).display()
            );
        }
    }
    Ok(())
}

fn show_pki(pki: &Pki) {
    let dir = pki.dir();
    println!(
        "  CA                               {}",
        dir.join(certs::CA_CERT).display()
    );
    println!(
        "  trusted CAs (clients' caFile)    {}",
        pki.ca_bundle().display()
    );
    println!(
        "  broker certificate               {}",
        dir.join(certs::SERVER_CERT).display()
    );
}

/// The sdk-go MQTT config of an agent (the keys `MqttConfig` reads).
#[derive(Serialize)]
struct AgentMqttFile<'a> {
    #[serde(rename = "brokerHost")]
    broker_host: &'a str,
    #[serde(rename = "caFile")]
    ca_file: String,
    #[serde(rename = "clientCertFile")]
    client_cert_file: String,
    #[serde(rename = "clientKeyFile")]
    client_key_file: String,
    topics: &'a Topics,
}

/// Copies the CA bundle, `issued` and its key into `out` and writes the agent's MQTT
/// config there (absolute paths); returns the config's path.
fn write_agent_files(
    pki: &Pki,
    issued: &Issued,
    cluster: &str,
    topics: &Topics,
    broker: &str,
    out: &Path,
) -> Result<PathBuf, CertsError> {
    let io = |source| CertsError::Out {
        path: out.to_owned(),
        source,
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(out)
            .map_err(io)?;
    }
    let out = out.canonicalize().map_err(io)?;
    let copy = |from: &Path, name: &str| -> Result<PathBuf, CertsError> {
        let bytes = std::fs::read(from).map_err(|source| CertsError::Out {
            path: from.to_owned(),
            source,
        })?;
        let to = out.join(name);
        certs::write(&to, &bytes)?;
        Ok(to)
    };
    let ca = copy(&pki.ca_bundle(), certs::CA_BUNDLE)?;
    let cert = copy(&issued.cert, &format!("{cluster}.pem"))?;
    let key = copy(&issued.key, &format!("{cluster}-key.pem"))?;
    let file = AgentMqttFile {
        broker_host: broker,
        ca_file: ca.display().to_string(),
        client_cert_file: cert.display().to_string(),
        client_key_file: key.display().to_string(),
        topics,
    };
    let yaml = serde_norway::to_string(&file).map_err(|e| CertsError::Yaml(e.to_string()))?;
    let config = out.join(AGENT_MQTT_CONFIG);
    certs::write(&config, yaml.as_bytes())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use workbus_schemas::config::{MqttConfig, TlsMode};

    use super::*;

    #[test]
    fn issue_writes_what_an_agent_needs() {
        let data = tempfile::tempdir().unwrap();
        let out = data.path().join("agent-edge-9");
        run(&CertsCommand::Issue {
            data_dir: data.path().join("hub"),
            cluster: "edge-9".into(),
            out: Some(out.clone()),
            days: 30,
            source_id: "workbus".into(),
            broker: "hub.example:8883".into(),
        })
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&out.join("edge-9-key.pem")), 0o600);
        let config =
            MqttConfig::from_bytes(&std::fs::read(out.join(AGENT_MQTT_CONFIG)).unwrap()).unwrap();
        assert_eq!(config.broker_host, "hub.example:8883");
        config.topics.validate_for_agent("edge-9").unwrap();
        assert!(
            matches!(config.tls, TlsMode::Mutual { .. }),
            "{:?}",
            config.tls
        );
        let pki = Pki::open(&data.path().join("hub")).expect("init on demand");
        let server = std::fs::read(pki.dir().join(certs::SERVER_CERT)).unwrap();
        run(&CertsCommand::Issue {
            data_dir: data.path().join("hub"),
            cluster: "edge-10".into(),
            out: None,
            days: 1,
            source_id: "workbus".into(),
            broker: "hub.example:8883".into(),
        })
        .unwrap();
        assert_eq!(
            std::fs::read(pki.dir().join(certs::SERVER_CERT)).unwrap(),
            server,
            "issuing leaves the broker's certificate alone"
        );
    }

    #[test]
    fn revoke_lists_the_clusters_certificate_for_the_broker() {
        let data = tempfile::tempdir().unwrap();
        let revoke = |cluster: &str| {
            run(&CertsCommand::Revoke {
                data_dir: data.path().to_owned(),
                cluster: cluster.into(),
            })
        };
        assert!(matches!(revoke("edge-1"), Err(CertsError::NoCa(_))));
        let pki = Pki::ensure(data.path(), &[]).unwrap();
        pki.issue(&Identity::Agent("edge-1".into()), Duration::from_secs(3600))
            .unwrap();
        revoke("edge-1").unwrap();
        assert_eq!(
            pki.broker_tls().crl_file,
            Some(pki.dir().join(certs::CRL)),
            "the broker checks the list"
        );
        assert!(revoke("edge-2").is_err(), "no certificate to revoke");
    }

    #[test]
    fn bad_input_is_an_error() {
        let data = tempfile::tempdir().unwrap();
        let issue = |cluster: &str, days| {
            run(&CertsCommand::Issue {
                data_dir: data.path().to_owned(),
                cluster: cluster.into(),
                out: None,
                days,
                source_id: "workbus".into(),
                broker: "127.0.0.1:8883".into(),
            })
        };
        assert!(matches!(issue("edge-1", 0), Err(CertsError::Days)));
        assert!(issue("Not A Cluster", 1).is_err());
        assert!(issue("source.workbus", 1).is_err());
        issue("edge-1", 1).unwrap();
    }
}
