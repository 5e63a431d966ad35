//! # Server configuration

use std::net::SocketAddr;

use serde_json::Value;

/// How the status simulator moves workloads (see `simulator.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readiness {
    /// Workloads become ready as soon as they are created or changed (a healthy
    /// cluster with instant image pulls).
    #[default]
    Immediate,
    /// Workloads report progress but become ready (or fail) only when the test says so
    /// through [`crate::RunningServer::simulator`].
    Manual,
}

/// What `KubeApiServer::start` takes.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How workloads become ready.
    pub readiness: Readiness,
    /// Nodes of the simulated cluster (DaemonSets schedule one pod per node).
    pub nodes: u32,
    /// Events kept for watches resuming at a resourceVersion; older versions are `410`.
    pub history_limit: usize,
    /// `gitVersion` reported by `/version` (major and minor are derived).
    pub git_version: String,
    /// CustomResourceDefinitions installed (and established) before the server answers.
    pub crds: Vec<Value>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            readiness: Readiness::Immediate,
            nodes: 1,
            history_limit: 10_000,
            git_version: "v1.30.0".to_string(),
            crds: Vec::new(),
        }
    }
}
