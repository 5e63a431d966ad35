//! A stand-in for an OCM source (Maestro or sdk-go's source client) built only from
//! `workbus_schemas` and the MQTT transport: it publishes spec events the way the Go
//! source does (binary mode) and records every event agents send back. Used to test the
//! agent against the wire protocol without our hub in the loop.

use std::time::Duration;

use chrono::Utc;
use tokio::time::timeout;
use workbus_schemas::Event;
use workbus_schemas::envelope::{self, SpecEventFields};
use workbus_schemas::event_type::{Action, EventType, SubResource};
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::topics::{self, Topics};
use workbus_transport::{Transport, TransportConfig, TransportEvent};

/// A source connected to a broker under its own source id.
pub struct FakeSource {
    /// The source id (CloudEvent `source`, topic segment).
    pub source_id: String,
    /// Its topics (`sources/<id>/consumers/+/...`).
    pub topics: Topics,
    transport: Transport,
}

impl FakeSource {
    /// Connects and waits until subscribed to the agents' events.
    pub async fn connect(host: &str, port: u16, source_id: &str) -> FakeSource {
        let topics = Topics::for_source(source_id).expect("valid source id");
        let subs = topics::source_subscriptions(&topics, source_id).expect("subscriptions");
        let mut cfg = TransportConfig::new(host, port, format!("{source_id}-client"));
        cfg.subscriptions = subs;
        cfg.reconnect.min_delay = Duration::from_millis(50);
        cfg.reconnect.max_delay = Duration::from_millis(500);
        let mut transport = Transport::start(cfg).expect("transport");
        loop {
            match timeout(crate::WAIT, transport.events.recv()).await {
                Ok(Some(TransportEvent::Subscribed)) => break,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => panic!("fake source could not subscribe"),
            }
        }
        FakeSource {
            source_id: source_id.to_string(),
            topics,
            transport,
        }
    }

    /// Publishes `event` to `cluster` in binary mode, like sdk-go.
    pub async fn publish(&self, cluster: &str, event: &Event) {
        let ty: EventType = envelope::decode_event_type(event).expect("typed event");
        let topic = topics::source_publish_topic(&self.topics, &self.source_id, &ty, Some(cluster))
            .expect("publish topic");
        let message = mqtt::encode(event, &topic, Encoding::Binary).expect("encode");
        self.transport
            .publisher
            .publish(&message)
            .await
            .expect("broker acknowledged");
    }

    /// Publishes a spec event built from `fields`.
    pub async fn publish_spec(&self, fields: &SpecEventFields) {
        let event = fields.build(Utc::now()).expect("spec event");
        self.publish(&fields.cluster_name, &event).await;
    }

    /// Publishes a status resync request to `cluster` with the given hashes payload and,
    /// like the workbus hub, optionally the digest of the cluster's set.
    pub async fn request_status_resync(
        &self,
        cluster: &str,
        payload: serde_json::Value,
        digest: Option<&str>,
    ) {
        let mut event =
            envelope::status_resync_request(&self.source_id, cluster, payload, Utc::now());
        if let Some(d) = digest {
            workbus_schemas::resync_digest::set_digest(&mut event, d);
        }
        self.publish(cluster, &event).await;
    }

    /// The next received event for which `pred` holds; others are skipped. Panics after
    /// [`crate::WAIT`].
    pub async fn next_event(
        &mut self,
        what: &str,
        pred: impl Fn(&Event, &EventType) -> bool,
    ) -> Event {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = match timeout(left, self.transport.events.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!("fake source transport ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            };
            if let TransportEvent::Message(m) = ev
                && let Ok(event) = mqtt::decode(&m)
                && let Ok(ty) = envelope::decode_event_type(&event)
                && pred(&event, &ty)
            {
                return event;
            }
        }
    }

    /// Waits for a status event of `resource_id` satisfying `pred` on its decoded form.
    pub async fn next_status(
        &mut self,
        what: &str,
        resource_id: &str,
        pred: impl Fn(&workbus_schemas::metadata::DecodedStatus) -> bool,
    ) -> (Event, workbus_schemas::metadata::DecodedStatus) {
        let id = resource_id.to_string();
        let event = self
            .next_event(what, |e, ty| {
                ty.sub_resource == SubResource::Status
                    && ty.action != Action::ResyncRequest
                    && workbus_schemas::metadata::decode_status_event(e)
                        .is_ok_and(|d| d.resource_id == id && pred(&d))
            })
            .await;
        let decoded = workbus_schemas::metadata::decode_status_event(&event).expect("decodes");
        (event, decoded)
    }

    /// Disconnects.
    pub async fn close(self) {
        self.transport.publisher.disconnect().await;
        self.transport.join().await;
    }
}
