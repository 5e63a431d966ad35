//! The Kubernetes API test server as the agent's tests use it: started with the
//! AppliedManifestWork CRD the agent's deployment installs, the agent's Kubernetes
//! target connected through a kubeconfig, and a plain kube-rs client for acting behind
//! the agent's back. Shared by the conformance harness and `kube_target.rs`.

use workbus_agent::target::kube::{KubeConfigSource, KubeTarget};
use workbus_kube_apiserver::{KubeApiServer, Readiness, RunningServer, ServerConfig};
use workbus_testkit::kube_clients::applied_manifest_work_crd;

/// The Kubernetes API test server with the AppliedManifestWork CRD, the agent's
/// Kubernetes target on it, and a raw client for acting behind the agent's back.
pub struct TestServer {
    /// The server.
    pub server: RunningServer,
    /// The agent's target, connected through the kubeconfig.
    pub target: KubeTarget,
    /// A plain kube-rs client of the same server.
    pub client: kube::Client,
    /// Holds the kubeconfig.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server whose workloads become ready as `readiness` says.
    pub async fn start(readiness: Readiness) -> TestServer {
        let server = KubeApiServer::start(ServerConfig {
            crds: vec![applied_manifest_work_crd()],
            readiness,
            ..ServerConfig::default()
        })
        .await
        .expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "default")
            .expect("kubeconfig");
        let target = KubeTarget::connect(&KubeConfigSource::File(kubeconfig.clone()))
            .await
            .expect("connect");
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("read"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("config");
        TestServer {
            server,
            target,
            client: kube::Client::try_from(config).expect("client"),
            dir,
        }
    }
}
