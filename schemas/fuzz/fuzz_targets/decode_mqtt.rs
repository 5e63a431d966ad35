//! Fuzzes every decoder an untrusted MQTT message reaches: the MQTT mapping (both
//! modes and the dispatch between them), the typed extension accessors, the spec and
//! status codecs, the resync payloads and the protobuf round trip.
//! Input layout: byte 0 picks the content type; the rest is split at the first 0xFF
//! into a user-property block (`key=value` lines) and the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::{self, MqttMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 5 {
        0 => None,
        1 => Some("application/json".to_string()),
        2 => Some("application/cloudevents+json".to_string()),
        3 => Some("text/plain".to_string()),
        _ => Some(String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned()),
    };
    let (props, payload) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let user_properties = String::from_utf8_lossy(props)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let message = MqttMessage {
        topic: "fuzz".into(),
        content_type,
        user_properties,
        payload: payload.to_vec(),
        publisher: None,
    };
    if let Ok(event) = mqtt::decode(&message) {
        let _ = event.resource_id();
        let _ = event.resource_version();
        let _ = event.deletion_timestamp();
        let _ = event.metadata_json();
        let _ = event.log_tracing();
        let _ = event.status_hash();
        let _ = workbus_schemas::envelope::decode_event_type(&event);
        // The typed codecs the agent and the hub run next.
        let _ = workbus_schemas::metadata::decode_spec_event(&event);
        if let Ok(status) = workbus_schemas::metadata::decode_status_event(&event) {
            let _ = workbus_schemas::status_hash::status_hash(&status.status);
        }
        if let Some(data) = workbus_schemas::envelope::json_data(&event) {
            let _ = serde_json::from_value::<workbus_schemas::resync::SpecResyncRequest>(data.clone());
            let _ = serde_json::from_value::<workbus_schemas::resync::StatusResyncRequest>(data);
        }
        if let Ok(bytes) = workbus_schemas::proto::encode_to_vec(&event) {
            let back = workbus_schemas::proto::decode(&bytes).expect("own protobuf decodes");
            let _ = back;
        }
        // Whatever decodes must encode again.
        mqtt::encode(&event, "fuzz", mqtt::Encoding::Binary).expect("re-encode binary");
        mqtt::encode(&event, "fuzz", mqtt::Encoding::Structured).expect("re-encode structured");
    }
});
