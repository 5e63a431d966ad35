//! PUBLISH packets, read and written by the broker itself rather than through `rumqttc`'s
//! codec, because they are the hot path: a spec event reaches one agent, but statuses and
//! fleet-wide updates cross the broker by the thousand.
//!
//! The MQTT 5 property block is kept as the raw bytes the publisher sent (a slice of the
//! packet, no copy) and written unchanged into every delivery. Decoding it into
//! `PublishProperties` would allocate two `String`s per user property (an OCM event carries
//! about ten `ce-*` ones); each delivery would then clone them twice more (for the size
//! check and for encoding). Profiling the `workbus-bench broker` scenario showed memory
//! allocation among the largest user-space costs, which this removes. Forwarding the
//! raw bytes also keeps the properties exactly as sent, order included.
//!
//! The properties are still checked as strictly as the codec did: only the identifiers a
//! PUBLISH may carry, well-formed lengths, and UTF-8 strings. Unlike `rumqttc` 0.25, the
//! block must also end exactly where its length says. A topic alias is reported to the
//! caller, which refuses it. A property given twice (User Property excepted), a
//! Subscription Identifier (it belongs to the receiving side) and a wildcard in the
//! Response Topic are protocol errors.

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use crate::auth::ProtocolVersion;
use crate::error::ConnError;

/// A PUBLISH from a client.
#[derive(Debug)]
pub(crate) struct PublishIn {
    pub qos: u8,
    pub retain: bool,
    pub topic: Bytes,
    pub pkid: u16,
    pub payload: Bytes,
    /// The MQTT 5 property block without its length prefix; empty for 3.1.1, and without
    /// any user property named [`crate::stamp::PUBLISHER_PROPERTY`] (only the broker
    /// may say who published, see [`crate::stamp`]).
    pub properties: Bytes,
    /// The publisher used a topic alias (MQTT 5), which the broker does not offer.
    pub topic_alias: bool,
}

const PAYLOAD_FORMAT: u8 = 0x01;
const MESSAGE_EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_ID: u8 = 0x0B;
const TOPIC_ALIAS: u8 = 0x23;
const USER_PROPERTY: u8 = 0x26;

fn malformed(what: &str) -> ConnError {
    ConnError::Malformed(format!("PUBLISH: {what}"))
}

/// Reads an MQTT variable byte integer at `at`; returns (value, bytes used).
fn read_varint(buf: &[u8], at: usize) -> Result<(usize, usize), ConnError> {
    let mut value = 0usize;
    for i in 0..4 {
        let b = *buf
            .get(at + i)
            .ok_or_else(|| malformed("truncated length"))?;
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(malformed("length longer than 4 bytes"))
}

fn read_u16(buf: &[u8], at: usize) -> Result<u16, ConnError> {
    match buf.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(malformed("truncated")),
    }
}

/// Length of the MQTT varint encoding of `n`.
fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint(buf: &mut BytesMut, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if n == 0 {
            break;
        }
    }
}

/// What [`check_properties`] found besides well-formedness.
#[derive(Debug, Default)]
struct PropertyScan {
    /// A Topic Alias is present.
    alias: bool,
    /// Byte ranges of user properties named [`crate::stamp::PUBLISHER_PROPERTY`], which a
    /// client may not send (empty, so not allocated, in the normal case).
    forged: Vec<std::ops::Range<usize>>,
}

/// Checks an MQTT 5 PUBLISH property block (`props`, without its length prefix).
/// Reports a topic alias and forged publisher stamps. Besides well-formedness, refuses
/// (Protocol Error, MQTT 5 §3.3.2.3) a property other than User Property given twice, a
/// Subscription Identifier (only a server may send one, §3.3.4) and a Response Topic
/// with wildcards (§3.3.2.3.5).
fn check_properties(props: &[u8]) -> Result<PropertyScan, ConnError> {
    let mut scan = PropertyScan::default();
    let mut seen: u64 = 0;
    let mut at = 0;
    // A length-prefixed field (string or binary) at `at`; returns its end.
    let field = |at: usize, utf8: bool| -> Result<usize, ConnError> {
        let len = usize::from(read_u16(props, at)?);
        let bytes = props
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| malformed("property overruns its block"))?;
        if utf8 && std::str::from_utf8(bytes).is_err() {
            return Err(malformed("property string is not UTF-8"));
        }
        Ok(at + 2 + len)
    };
    while at < props.len() {
        let start = at;
        let id = props[at];
        at += 1;
        if id != USER_PROPERTY && id < 64 {
            if seen & (1 << id) != 0 {
                return Err(ConnError::Protocol("PUBLISH property given more than once"));
            }
            seen |= 1 << id;
        }
        at = match id {
            PAYLOAD_FORMAT => at + 1,
            MESSAGE_EXPIRY => at + 4,
            TOPIC_ALIAS => {
                scan.alias = true;
                at + 2
            }
            RESPONSE_TOPIC => {
                let end = field(at, true)?;
                if props[at + 2..end].iter().any(|b| matches!(b, b'+' | b'#')) {
                    return Err(ConnError::Protocol("wildcard in a Response Topic"));
                }
                end
            }
            CONTENT_TYPE => field(at, true)?,
            CORRELATION_DATA => field(at, false)?,
            USER_PROPERTY => {
                let name_end = field(at, true)?;
                let end = field(name_end, true)?;
                if &props[at + 2..name_end] == crate::stamp::PUBLISHER_PROPERTY.as_bytes() {
                    scan.forged.push(start..end);
                }
                end
            }
            SUBSCRIPTION_ID => {
                return Err(ConnError::Protocol(
                    "Subscription Identifier in a client's PUBLISH",
                ));
            }
            _ => return Err(malformed("property not allowed in PUBLISH")),
        };
        if at > props.len() {
            return Err(malformed("property overruns its block"));
        }
    }
    Ok(scan)
}

/// Decodes one complete PUBLISH frame (`header_len` = its fixed header's length).
pub(crate) fn decode(
    proto: ProtocolVersion,
    frame: BytesMut,
    header_len: usize,
) -> Result<PublishIn, ConnError> {
    let frame = frame.freeze();
    let byte1 = frame[0];
    let qos = (byte1 >> 1) & 0b11;
    if qos == 3 {
        return Err(malformed("QoS 3"));
    }
    let retain = byte1 & 1 != 0;
    let mut at = header_len;
    let topic_len = usize::from(read_u16(&frame, at)?);
    at += 2;
    if frame.len() < at + topic_len {
        return Err(malformed("topic overruns the packet"));
    }
    let topic = frame.slice(at..at + topic_len);
    at += topic_len;
    let pkid = if qos > 0 {
        let id = read_u16(&frame, at)?;
        at += 2;
        if id == 0 {
            return Err(malformed("packet identifier 0"));
        }
        id
    } else {
        0
    };
    let (mut properties, mut topic_alias) = (Bytes::new(), false);
    if proto == ProtocolVersion::V5 {
        let (len, used) = read_varint(&frame, at)?;
        at += used;
        let props = frame
            .get(at..at + len)
            .ok_or_else(|| malformed("properties overrun the packet"))?;
        let scan = check_properties(props)?;
        topic_alias = scan.alias;
        properties = if scan.forged.is_empty() {
            frame.slice(at..at + len)
        } else {
            crate::stamp::without(props, &scan.forged)
        };
        at += len;
    }
    Ok(PublishIn {
        qos,
        retain,
        topic,
        pkid,
        payload: frame.slice(at..),
        properties,
        topic_alias,
    })
}

/// The raw property block of `props` (for wills, which arrive decoded with CONNECT).
pub(crate) fn raw_properties(props: &PublishProperties) -> Result<Bytes, ConnError> {
    let mut buf = BytesMut::new();
    props
        .write(&mut buf)
        .map_err(|e| ConnError::Malformed(e.to_string()))?;
    let (_, used) = read_varint(&buf, 0)?;
    Ok(buf.freeze().slice(used..))
}

/// Remaining length of an outgoing PUBLISH (3.1.1 carries no properties).
fn remaining_len(
    proto: ProtocolVersion,
    topic: &[u8],
    payload: &[u8],
    qos: u8,
    props: &[u8],
) -> usize {
    let props_len = match proto {
        ProtocolVersion::V5 => varint_len(props.len()) + props.len(),
        ProtocolVersion::V311 => 0,
    };
    2 + topic.len() + if qos > 0 { 2 } else { 0 } + props_len + payload.len()
}

/// Size of the whole outgoing PUBLISH packet, to honour a client's Maximum Packet Size.
pub(crate) fn size(
    proto: ProtocolVersion,
    topic: &[u8],
    payload: &[u8],
    qos: u8,
    props: &[u8],
) -> usize {
    let rem = remaining_len(proto, topic, payload, qos, props);
    1 + varint_len(rem) + rem
}

/// Appends an outgoing PUBLISH (never DUP or RETAIN: no retained messages, no resends on
/// a new connection). `props` is dropped towards 3.1.1 clients, which cannot carry it.
pub(crate) fn encode(
    proto: ProtocolVersion,
    buf: &mut BytesMut,
    qos: u8,
    pkid: u16,
    topic: &[u8],
    payload: &[u8],
    props: &[u8],
) {
    let rem = remaining_len(proto, topic, payload, qos, props);
    buf.reserve(1 + varint_len(rem) + rem);
    buf.put_u8(0x30 | (qos << 1));
    put_varint(buf, rem);
    buf.put_u16(topic.len() as u16);
    buf.extend_from_slice(topic);
    if qos > 0 {
        buf.put_u16(pkid);
    }
    if proto == ProtocolVersion::V5 {
        put_varint(buf, props.len());
        buf.extend_from_slice(props);
    }
    buf.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{self as v5, Publish};

    fn props() -> PublishProperties {
        PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: None,
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![
                ("ce-id".into(), "1".into()),
                ("ce-id".into(), "2".into()),
                ("ümlaut".into(), "✓".into()),
            ],
            subscription_identifiers: Vec::new(),
            content_type: Some("application/json".into()),
        }
    }

    fn frame(p: &Publish) -> (BytesMut, usize) {
        let mut buf = BytesMut::new();
        p.write(&mut buf).expect("rumqttc encodes");
        let info = crate::frame::peek(&buf, u32::MAX)
            .expect("ok")
            .expect("whole");
        (buf, info.header_len)
    }

    /// What rumqttc's client encodes, we decode to the same fields; what we encode,
    /// rumqttc decodes to the same packet (properties unchanged, order kept).
    #[test]
    fn round_trip_with_rumqttc() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for properties in [None, Some(props())] {
                let mut p = Publish::new("a/b", qos, Bytes::from_static(b"payload"), properties);
                p.pkid = u16::from(qos != QoS::AtMostOnce) * 42;
                let (buf, header_len) = frame(&p);
                let d = decode(ProtocolVersion::V5, buf, header_len).expect("decodes");
                assert_eq!((d.qos, d.pkid, d.retain), (qos as u8, p.pkid, false));
                assert_eq!(&d.topic[..], b"a/b");
                assert_eq!(&d.payload[..], b"payload");
                assert!(!d.topic_alias);
                let mut out = BytesMut::new();
                encode(
                    ProtocolVersion::V5,
                    &mut out,
                    d.qos,
                    d.pkid,
                    &d.topic,
                    &d.payload,
                    &d.properties,
                );
                assert_eq!(
                    out.len(),
                    size(
                        ProtocolVersion::V5,
                        &d.topic,
                        &d.payload,
                        d.qos,
                        &d.properties
                    )
                );
                match v5::Packet::read(&mut out, None).expect("rumqttc decodes") {
                    v5::Packet::Publish(back) => {
                        assert_eq!(back.properties, p.properties);
                        assert_eq!(back.payload, p.payload);
                        assert_eq!(back.topic, p.topic);
                        assert_eq!(back.pkid, p.pkid);
                    }
                    other => panic!("not a publish: {other:?}"),
                }
                assert!(out.is_empty());
            }
        }
    }

    /// A client's own `workbus.io/publisher` properties never leave the decoder; the
    /// rest of the block is kept in order.
    #[test]
    fn forged_publisher_stamps_are_removed() {
        let stamp = crate::stamp::PUBLISHER_PROPERTY.to_string();
        let mut pr = props();
        pr.user_properties = vec![
            (stamp.clone(), "source.hub".into()),
            ("ce-id".into(), "1".into()),
            (stamp, "other".into()),
            ("ce-type".into(), "t".into()),
        ];
        let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::from_static(b"x"), Some(pr));
        p.pkid = 1;
        let (buf, header_len) = frame(&p);
        let d = decode(ProtocolVersion::V5, buf, header_len).expect("decodes");
        let mut out = BytesMut::new();
        encode(
            ProtocolVersion::V5,
            &mut out,
            1,
            1,
            &d.topic,
            &d.payload,
            &d.properties,
        );
        let v5::Packet::Publish(back) = v5::Packet::read(&mut out, None).expect("decodes") else {
            panic!("not a publish");
        };
        let back = back.properties.expect("properties kept");
        assert_eq!(
            back.user_properties,
            vec![("ce-id".into(), "1".into()), ("ce-type".into(), "t".into())]
        );
        assert_eq!(back.content_type, props().content_type);
        assert_eq!(back.response_topic, props().response_topic);
    }

    #[test]
    fn subscription_ids_refused_alias_reported() {
        let mut pr = props();
        pr.subscription_identifiers = vec![5];
        let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::from_static(b"x"), Some(pr));
        p.pkid = 1;
        let (buf, header_len) = frame(&p);
        assert!(matches!(
            decode(ProtocolVersion::V5, buf, header_len),
            Err(ConnError::Protocol(_))
        ));
        let mut pr = props();
        pr.topic_alias = Some(3);
        let mut p = Publish::new("t", QoS::AtLeastOnce, Bytes::from_static(b"x"), Some(pr));
        p.pkid = 1;
        let (buf, header_len) = frame(&p);
        let d = decode(ProtocolVersion::V5, buf, header_len).expect("decodes");
        assert!(d.topic_alias);
        let mut out = BytesMut::new();
        encode(
            ProtocolVersion::V5,
            &mut out,
            1,
            9,
            &d.topic,
            &d.payload,
            &d.properties,
        );
        let v5::Packet::Publish(back) = v5::Packet::read(&mut out, None).expect("decodes") else {
            panic!("not a publish");
        };
        let back = back.properties.expect("properties kept");
        assert!(back.subscription_identifiers.is_empty());
        assert_eq!(back.user_properties, props().user_properties);
        assert_eq!(back.topic_alias, Some(3));
    }

    #[test]
    fn v311_publish_carries_no_properties() {
        let mut out = BytesMut::new();
        encode(
            ProtocolVersion::V311,
            &mut out,
            1,
            7,
            b"a/b",
            b"hi",
            b"\x01\x01",
        );
        assert_eq!(
            out.len(),
            size(ProtocolVersion::V311, b"a/b", b"hi", 1, b"\x01\x01")
        );
        let p = rumqttc::mqttbytes::v4::Packet::read(&mut out, usize::MAX).expect("decodes");
        let rumqttc::mqttbytes::v4::Packet::Publish(p) = p else {
            panic!("not a publish")
        };
        assert_eq!(
            (p.topic.as_str(), p.pkid, &p.payload[..]),
            ("a/b", 7, &b"hi"[..])
        );
        let (buf, header_len) = {
            let mut b = BytesMut::new();
            rumqttc::mqttbytes::v4::Packet::Publish(p)
                .write(&mut b, usize::MAX)
                .expect("enc");
            (b, 2)
        };
        let d = decode(ProtocolVersion::V311, buf, header_len).expect("decodes");
        assert!(d.properties.is_empty());
        assert_eq!(&d.payload[..], b"hi");
    }

    #[test]
    fn malformed_properties_are_refused() {
        let publish = |props: &[u8]| {
            let mut b = BytesMut::new();
            let rem = 2 + 1 + 2 + varint_len(props.len()) + props.len();
            b.put_u8(0x32);
            put_varint(&mut b, rem);
            b.extend_from_slice(&[0, 1, b't', 0, 1]);
            put_varint(&mut b, props.len());
            b.extend_from_slice(props);
            let hl = 1 + varint_len(rem);
            decode(ProtocolVersion::V5, b, hl)
        };
        assert!(publish(&[]).is_ok());
        assert!(publish(&[0x26, 0, 1, b'k', 0, 1, b'v']).is_ok());
        // Not UTF-8, an identifier PUBLISH may not carry, a field running past the block
        // (rumqttc 0.25 reads on into the payload there), a truncated fixed-size value.
        assert!(publish(&[0x26, 0, 1, 0xFF, 0, 0]).is_err());
        assert!(publish(&[0x11, 0, 0, 0, 0]).is_err());
        assert!(publish(&[0x03, 0, 9, b'a']).is_err());
        assert!(publish(&[0x02, 0, 0]).is_err());
        // Protocol errors: a duplicated Content Type, a wildcard Response Topic.
        let dup = publish(&[0x03, 0, 1, b'a', 0x03, 0, 1, b'b']);
        assert!(matches!(dup, Err(ConnError::Protocol(_))), "{dup:?}");
        let wild = publish(&[0x08, 0, 3, b'a', b'/', b'#']);
        assert!(matches!(wild, Err(ConnError::Protocol(_))), "{wild:?}");
        assert!(publish(&[0x08, 0, 3, b'a', b'/', b'b']).is_ok());
        // QoS 1 with packet id 0, QoS 3.
        let mut b = BytesMut::from(&[0x32, 0x05, 0, 1, b't', 0, 0][..]);
        assert!(decode(ProtocolVersion::V5, b.split(), 2).is_err());
        let b = BytesMut::from(&[0x36, 0x06, 0, 1, b't', 0, 1, 0][..]);
        assert!(decode(ProtocolVersion::V5, b, 2).is_err());
    }
}
