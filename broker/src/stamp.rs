//! The publisher stamp: the broker tells MQTT 5 subscribers who published a message.
//!
//! MQTT gives a subscriber the topic and the publisher's properties, never the
//! publisher's identity, so a hub behind a plain broker can only trust that the topic
//! ACL kept impostors off a topic. The embedded broker knows each connection's
//! authenticated identity ([`crate::Authorizer::identity`]), so on every PUBLISH it
//! routes (will messages included) it removes any user property named
//! [`PUBLISHER_PROPERTY`] the client sent and appends one whose value is that identity.
//! A connection without an identity (e.g. [`crate::AllowAll`]) gets no stamp, but a
//! forged one is still removed: the name is the broker's alone.
//!
//! The stamp is made once per message, not per delivery: the identity's encoded
//! property is built once per connection ([`Stamp::for_identity`]) and appended to the
//! message's shared property block. MQTT 3.1.1 subscribers receive no properties at all,
//! so they never see it; a 3.1.1 publisher's message gets a property block holding just
//! the stamp.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Name of the user property carrying the publisher's identity (defined with the
/// identities in `workbus_schemas::acl`; receivers read the same constant).
pub const PUBLISHER_PROPERTY: &str = workbus_schemas::acl::PUBLISHER_PROPERTY;

/// MQTT 5 User Property identifier.
const USER_PROPERTY: u8 = 0x26;

/// One connection's encoded stamp: a complete User Property (`0x26`, name, value).
#[derive(Debug, Clone)]
pub(crate) struct Stamp(Bytes);

impl Stamp {
    /// The stamp naming `identity`; `None` when the identity cannot be an MQTT string
    /// (longer than 65,535 bytes), which no identity the broker issues is.
    pub(crate) fn for_identity(identity: &str) -> Option<Stamp> {
        let value = u16::try_from(identity.len()).ok()?;
        let name = PUBLISHER_PROPERTY.as_bytes();
        let mut buf = BytesMut::with_capacity(1 + 2 + name.len() + 2 + identity.len());
        buf.put_u8(USER_PROPERTY);
        buf.put_u16(name.len() as u16);
        buf.extend_from_slice(name);
        buf.put_u16(value);
        buf.extend_from_slice(identity.as_bytes());
        Some(Stamp(buf.freeze()))
    }

    /// `properties` (a raw property block without its length prefix, already free of
    /// forged stamps) with this stamp appended: one allocation per message.
    pub(crate) fn apply(&self, properties: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(properties.len() + self.0.len());
        buf.extend_from_slice(properties);
        buf.extend_from_slice(&self.0);
        buf.freeze()
    }
}

/// `properties` without the byte ranges `forged` (whole user properties, in order, as
/// found by the publish decoder). Only runs when a client tried to forge a stamp.
pub(crate) fn without(properties: &[u8], forged: &[Range<usize>]) -> Bytes {
    let mut buf = BytesMut::with_capacity(properties.len());
    let mut at = 0;
    for range in forged {
        buf.extend_from_slice(&properties[at..range.start]);
        at = range.end;
    }
    buf.extend_from_slice(&properties[at..]);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    fn raw(user_properties: Vec<(String, String)>) -> Bytes {
        crate::publish::raw_properties(&PublishProperties {
            content_type: Some("application/json".into()),
            user_properties,
            ..Default::default()
        })
        .expect("encodes")
    }

    fn decode(block: &[u8]) -> PublishProperties {
        let mut framed = BytesMut::new();
        framed.put_u8(block.len() as u8);
        framed.extend_from_slice(block);
        PublishProperties::read(&mut framed.freeze())
            .expect("decodes")
            .expect("present")
    }

    #[test]
    fn stamp_is_appended_after_the_publishers_properties() {
        let block = raw(vec![("ce-id".into(), "1".into())]);
        let stamped = Stamp::for_identity("cluster1").expect("fits").apply(&block);
        let back = decode(&stamped);
        assert_eq!(back.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            back.user_properties,
            vec![
                ("ce-id".to_string(), "1".to_string()),
                (PUBLISHER_PROPERTY.to_string(), "cluster1".to_string()),
            ]
        );
    }

    #[test]
    fn oversized_identity_gets_no_stamp() {
        assert!(Stamp::for_identity(&"x".repeat(70_000)).is_none());
    }
}
