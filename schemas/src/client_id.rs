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
    }
}
