//! Builds the agent's outgoing events exactly as sdk-go's agent codec does (reference §4,
//! §5.3, TV-10): status events with `sequenceid`, `statushash`, `metadata`, `logtracing`,
//! `originalsource`, `clustername` and `resourceversion`, the flat wire status as data,
//! and the spec resync request. All names, topics and encodings come from
//! `workbus_schemas`.

use chrono::Utc;
use workbus_schemas::envelope::{self, StatusEventFields};
use workbus_schemas::event_type::{Action, EventType, SubResource};
use workbus_schemas::metadata::{log_tracing_of, metadata_json};
use workbus_schemas::mqtt::{self, MqttMessage};
use workbus_schemas::resync::{ResourceVersion, SpecResyncRequest};
use workbus_schemas::resync_digest;
use workbus_schemas::sequence_id::SequenceIdGenerator;
use workbus_schemas::status_hash::status_hash;
use workbus_schemas::topics;
use workbus_schemas::work::{ManifestBundleStatus, ManifestWorkStatus};

use crate::config::AgentConfig;
use crate::store::WorkRecord;

/// Why an event could not be built; the work is skipped and the error logged.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// sdk-go's wording (TV-10): a work without the originalsource label cannot be routed.
    #[error("failed to find originalsource from the work {0}")]
    NoOriginalSource(String),
    /// A topic could not be derived.
    #[error(transparent)]
    Topic(#[from] topics::TopicError),
    /// An extension value is out of range.
    #[error(transparent)]
    Extension(#[from] workbus_schemas::extensions::ExtensionError),
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] mqtt::EncodeError),
    /// The sequence id generator failed (clock before the snowflake epoch).
    #[error("sequence id: {0}")]
    SequenceId(String),
}

/// A built status event, ready to publish.
#[derive(Debug, Clone)]
pub struct StatusMessage {
    /// The MQTT message.
    pub message: MqttMessage,
    /// The status hash it carries.
    pub hash: String,
    /// The sequence id it carries.
    pub sequence_id: String,
}

/// Builds the status event of `record` with the given `status` (normally
/// `record.state.status`, or that plus the final `Deleted` condition).
pub fn status_message(
    config: &AgentConfig,
    record: &WorkRecord,
    status: &ManifestWorkStatus,
    action: Action,
    sequence: &mut SequenceIdGenerator,
) -> Result<StatusMessage, ReportError> {
    let meta = &record.work.metadata;
    let original_source = meta
        .original_source()
        .ok_or_else(|| ReportError::NoOriginalSource(meta.uid.clone()))?
        .to_string();
    let hash = status_hash(status);
    let sequence_id = sequence
        .next()
        .map_err(|e| ReportError::SequenceId(e.to_string()))?
        .to_string();
    let fields = StatusEventFields {
        agent_id: config.agent_id.clone(),
        action: action.clone(),
        cluster_name: config.cluster_name.clone(),
        original_source: original_source.clone(),
        resource_id: meta.uid.clone(),
        generation: meta.generation,
        sequence_id: sequence_id.clone(),
        status_hash: hash.clone(),
        metadata: metadata_json(meta),
        status: serde_json::to_value(ManifestBundleStatus::from(status.clone()))
            .unwrap_or(serde_json::Value::Null),
        log_tracing: log_tracing_of(meta),
    };
    let event = fields.build(Utc::now())?;
    let ty = EventType::manifest_bundles(SubResource::Status, action);
    let topic = topics::agent_publish_topic(
        &config.topics,
        &config.cluster_name,
        &ty,
        Some(&original_source),
    )?;
    let message = mqtt::encode(&event, &topic, config.encoding)?;
    Ok(StatusMessage {
        message,
        hash,
        sequence_id,
    })
}

/// Which form of the spec resync request to send (see `workbus_schemas::resync_digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncForm {
    /// Upstream (§6.2), exactly as sdk-go: every held work listed, no extension.
    Upstream,
    /// Upstream, plus our spec digest to advertise that we understand digests.
    Advertising,
    /// Digest only: an empty list, the digest and `resyncmode = digest`. Only towards a
    /// source that advertised digests.
    DigestOnly,
}

/// The spec resync request (§6.2 step 1), to all sources, in `form`.
pub fn spec_resync_message<'a>(
    config: &AgentConfig,
    records: impl IntoIterator<Item = &'a WorkRecord>,
    form: ResyncForm,
) -> Result<MqttMessage, ReportError> {
    let versions: Vec<ResourceVersion> = records
        .into_iter()
        .map(|r| ResourceVersion::new(r.uid(), r.work.metadata.generation))
        .collect();
    // The digest covers exactly what the upstream list would carry.
    let digest = (form != ResyncForm::Upstream).then(|| {
        resync_digest::spec_digest(
            versions
                .iter()
                .map(|v| (v.resource_id.as_str(), v.resource_version)),
        )
    });
    let listed = if form == ResyncForm::DigestOnly {
        Vec::new()
    } else {
        versions
    };
    let payload =
        serde_json::to_value(SpecResyncRequest::new(listed)).unwrap_or(serde_json::Value::Null);
    let mut event =
        envelope::spec_resync_request(&config.agent_id, &config.cluster_name, payload, Utc::now());
    match (form, &digest) {
        (ResyncForm::DigestOnly, Some(d)) => resync_digest::set_digest_request(&mut event, d),
        (ResyncForm::Advertising, Some(d)) => resync_digest::set_digest(&mut event, d),
        _ => {}
    }
    let ty = EventType::manifest_bundles(SubResource::Spec, Action::ResyncRequest);
    let topic = topics::agent_publish_topic(&config.topics, &config.cluster_name, &ty, Some(""))?;
    Ok(mqtt::encode(&event, &topic, config.encoding)?)
}
