//! Finding the cluster: a kubeconfig named on the command line, or what kubectl would
//! use (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account), then one
//! request to check the API answers, so a wrong or missing configuration stops the
//! agent at start with a message saying what was tried.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeTarget;

/// How long the start-up check waits for the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the Kubernetes configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeConfigSource {
    /// This kubeconfig file (`--kubeconfig`), its current context.
    File(PathBuf),
    /// As kubectl: `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service
    /// account (`KUBERNETES_SERVICE_HOST` and the mounted token).
    Infer,
}

/// Why the agent cannot use the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The named kubeconfig is missing or unusable.
    #[error("--kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// No configuration was found where kubectl looks.
    #[error("no Kubernetes configuration found (tried {tried}): {source}")]
    NotFound {
        /// What was tried, in order.
        tried: String,
        /// The last failure.
        source: kube::config::InferConfigError,
    },
    /// A client could not be built from the configuration (TLS, credentials).
    #[error("Kubernetes client for {url}: {source}")]
    Client {
        /// API server URL.
        url: String,
        /// Why.
        source: kube::Error,
    },
    /// The API server did not answer.
    #[error("Kubernetes API at {url} is unreachable: {reason}")]
    Unreachable {
        /// API server URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// What kubectl's inference looks at, for the message when it finds nothing.
fn tried() -> String {
    let kubeconfig = match std::env::var_os("KUBECONFIG") {
        Some(v) => format!("KUBECONFIG={}", PathBuf::from(v).display()),
        None => "KUBECONFIG (unset)".to_string(),
    };
    let home = std::env::var_os("HOME")
        .map(|h| {
            PathBuf::from(h)
                .join(".kube")
                .join("config")
                .display()
                .to_string()
        })
        .unwrap_or_else(|| "~/.kube/config (no HOME)".into());
    format!(
        "{kubeconfig}, {home}, in-cluster service account (KUBERNETES_SERVICE_HOST {})",
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            "set"
        } else {
            "unset"
        }
    )
}

impl KubeTarget {
    /// Loads the configuration, builds a client and checks that the API server answers.
    pub async fn connect(source: &KubeConfigSource) -> Result<KubeTarget, ConnectError> {
        let config = match source {
            KubeConfigSource::File(path) => {
                let file =
                    Kubeconfig::read_from(path).map_err(|source| ConnectError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|source| ConnectError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?
            }
            KubeConfigSource::Infer => {
                kube::Config::infer()
                    .await
                    .map_err(|source| ConnectError::NotFound {
                        tried: tried(),
                        source,
                    })?
            }
        };
        let url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|source| ConnectError::Client {
            url: url.clone(),
            source,
        })?;
        match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(KubeTarget::new(client, url)),
            Ok(Err(e)) => Err(ConnectError::Unreachable {
                url,
                reason: e.to_string(),
            }),
            Err(_) => Err(ConnectError::Unreachable {
                url,
                reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            }),
        }
    }
}
