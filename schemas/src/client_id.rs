//! How OCM names a work agent on the bus (sdk-go and the klusterlet work agent): its
//! CloudEvents source id (`--cloudevents-client-id`, by default `<cluster>-work-agent`)
//! and its MQTT client identifier (the source id plus `-client`). An agent that replaces
//! the OCM one in place keeps both, so broker ACLs written for OCM still match.

/// The agent's CloudEvents source id when none is configured.
pub fn default_agent_id(cluster_name: &str) -> String {
    format!("{cluster_name}-work-agent")
}

/// The MQTT client identifier of an agent with source id `agent_id`.
pub fn mqtt_client_id(agent_id: &str) -> String {
    format!("{agent_id}-client")
}

/// The MQTT client identifier of a cluster joining with a bootstrap token
/// (`<cluster>-registration-bootstrap`); the only one `bootstrap.<cluster>` may use.
pub fn bootstrap_client_id(cluster_name: &str) -> String {
    format!("{cluster_name}-registration-bootstrap")
}

/// The text between a hub's source id and its per-process suffix in its MQTT client id
/// (`<source id>-hub-<suffix>`).
pub const SOURCE_CLIENT_ID_INFIX: &str = "-hub";

/// The MQTT client id of a hub (source `source_id`) with a per-process `suffix` (the
/// hub uses 8 random hex digits, so two replicas never take over each other's session).
pub fn source_client_id(source_id: &str, suffix: &str) -> String {
    format!("{source_id}{SOURCE_CLIENT_ID_INFIX}-{suffix}")
}

/// Whether `client_id` is one the agent of `cluster` may use: `<cluster>-work-agent`,
/// optionally followed by `-<anything>`, then `-client` (the default and any
/// `--cloudevents-client-id` that keeps the default as its prefix).
pub fn agent_client_id_matches(cluster: &str, client_id: &str) -> bool {
    let base = default_agent_id(cluster);
    let Some(rest) = client_id.strip_prefix(base.as_str()) else {
        return false;
    };
    rest == "-client" || (rest.starts_with('-') && rest.ends_with("-client") && rest.len() > 8)
}

/// Whether `client_id` is one a hub with source id `source_id` may use:
/// `<source id>-hub` or [`source_client_id`]'s `<source id>-hub-<suffix>`.
pub fn source_client_id_matches(source_id: &str, client_id: &str) -> bool {
    client_id
        .strip_prefix(source_id)
        .and_then(|rest| rest.strip_prefix(SOURCE_CLIENT_ID_INFIX))
        .is_some_and(|rest| rest.is_empty() || (rest.starts_with('-') && rest.len() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_ocm_work_agent() {
        assert_eq!(default_agent_id("edge-1"), "edge-1-work-agent");
        assert_eq!(
            mqtt_client_id("edge-1-work-agent"),
            "edge-1-work-agent-client"
        );
        assert!(agent_client_id_matches(
            "edge-1",
            "edge-1-work-agent-client"
        ));
        assert!(agent_client_id_matches(
            "edge-1",
            "edge-1-work-agent-x-client"
        ));
        assert!(!agent_client_id_matches(
            "edge-1",
            "edge-1-work-agent--client"
        ));
        assert!(!agent_client_id_matches(
            "edge-1",
            "edge-1-work-agentclient"
        ));
        assert!(!agent_client_id_matches("edge", "edge-1-work-agent-client"));
        assert_eq!(
            bootstrap_client_id("edge-1"),
            "edge-1-registration-bootstrap"
        );
        assert_eq!(source_client_id("maestro", "1a2b"), "maestro-hub-1a2b");
        assert!(source_client_id_matches("maestro", "maestro-hub-1a2b"));
        assert!(source_client_id_matches("maestro", "maestro-hub"));
        assert!(!source_client_id_matches("maestro", "maestro-hub-"));
        assert!(!source_client_id_matches("maestro", "maestro-hubx"));
        assert!(!source_client_id_matches("maestro", "maestro"));
    }
}
