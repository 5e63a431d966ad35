//! The labels of `cloudevents_sent_total` and `cloudevents_received_total`, as sdk-go
//! (and so OCM's agents and Maestro) writes them: `source`, `consumer`, `type` (the data
//! type), `subresource`, `action`. Shared by hub and agent; each fills them from its
//! side of the conversation.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

/// One series of the CloudEvents counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloudEventLabels {
    /// The hub's source id — on the hub for every event, on the agent for what it
    /// receives; the agent's own id (its events' CloudEvents source) for what the
    /// agent sends.
    pub source: String,
    /// The cluster.
    pub consumer: String,
    /// The data type, `<group>.<version>.<resource>`.
    pub data_type: String,
    /// `spec` or `status`.
    pub subresource: &'static str,
    /// The action word.
    pub action: String,
}

impl EncodeLabelSet for CloudEventLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [
            ("source", self.source.as_str()),
            ("consumer", self.consumer.as_str()),
            ("type", self.data_type.as_str()),
            ("subresource", self.subresource),
            ("action", self.action.as_str()),
        ]
        .encode(encoder)
    }
}
