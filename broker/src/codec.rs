//! Adapter between the wire and the broker: decodes MQTT 3.1.1 and MQTT 5 packets (with
//! the codec `rumqttc` ships in `rumqttc::mqttbytes::v4` and `rumqttc::v5::mqttbytes::v5`)
//! into one protocol-neutral [`Inbound`] enum, and encodes the broker's replies for
//! whichever protocol the connection speaks. The connection logic is thereby written once.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::v5::{
    ConnAckProperties, DisconnectReasonCode, PubAckReason, PubRecReason, PublishProperties,
};

use crate::auth::ProtocolVersion;
use crate::error::ConnError;
pub(crate) use crate::publish::PublishIn;

/// A will message carried by CONNECT.
#[derive(Debug)]
pub(crate) struct WillIn {
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// Raw MQTT 5 property block (see [`crate::publish`]); empty for 3.1.1.
    pub properties: Bytes,
}

/// The fields of CONNECT the broker uses.
#[derive(Debug)]
pub(crate) struct ConnectIn {
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub will: Option<WillIn>,
    /// MQTT 5 Receive Maximum: most QoS 1/2 messages the client accepts unacknowledged.
    pub receive_max: Option<u16>,
    /// MQTT 5 Maximum Packet Size the client accepts.
    pub max_packet_size: Option<u32>,
    /// MQTT 5 Authentication Method (enhanced auth), which the broker does not support.
    pub auth_method: Option<String>,
    /// MQTT 5 Session Expiry Interval the client asked for (sessions are not kept).
    pub session_expiry: Option<u32>,
}

/// One filter of a SUBSCRIBE.
#[derive(Debug)]
pub(crate) struct FilterIn {
    pub path: String,
    pub qos: u8,
    pub no_local: bool,
}

/// Every packet a client may send, protocol-neutral.
#[derive(Debug)]
pub(crate) enum Inbound {
    Connect(Box<ConnectIn>),
    Publish(PublishIn),
    PubAck(u16),
    /// Acknowledges a QoS 2 message the broker never sends.
    PubRec,
    PubRel(u16),
    /// Acknowledges a QoS 2 message the broker never sends.
    PubComp,
    Subscribe {
        pkid: u16,
        filters: Vec<FilterIn>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect {
        with_will: bool,
    },
    /// A packet only a server may send, or MQTT 5 AUTH (unsupported).
    Unexpected(&'static str),
}

fn malformed(e: impl std::fmt::Display) -> ConnError {
    ConnError::Malformed(e.to_string())
}

/// Decodes exactly one complete packet (as framed by [`crate::frame::peek`]).
/// Rules the codec does not check are checked first, on the raw bytes
/// ([`crate::strict`]): a violation is a [`ConnError::Malformed`] or
/// [`ConnError::Protocol`], as MQTT 5 names it.
pub(crate) fn decode(proto: ProtocolVersion, mut frame: BytesMut) -> Result<Inbound, ConnError> {
    let Ok(Some(info)) = crate::frame::peek(&frame, u32::MAX) else {
        return Err(ConnError::Malformed("fixed header".into()));
    };
    crate::strict::check(proto, &frame, info.header_len)?;
    if proto == ProtocolVersion::V5 && frame.first().is_some_and(|b| b >> 4 == 0xE) {
        return decode_v5_disconnect(&frame);
    }
    if frame.first().is_some_and(|b| b >> 4 == 3) {
        let Ok(Some(info)) = crate::frame::peek(&frame, u32::MAX) else {
            return Err(ConnError::Malformed("PUBLISH header".into()));
        };
        return crate::publish::decode(proto, frame, info.header_len).map(Inbound::Publish);
    }
    // The frame was already checked against our limit; the codec needs no second limit.
    match proto {
        ProtocolVersion::V311 => {
            decode_v4(v4::Packet::read(&mut frame, usize::MAX).map_err(malformed)?)
        }
        ProtocolVersion::V5 => decode_v5(v5::Packet::read(&mut frame, None).map_err(malformed)?),
    }
}

/// MQTT 5 DISCONNECT, parsed here because `rumqttc` 0.25's reader rejects the two
/// shortest valid forms: remaining length 0 (normal disconnection) is refused as
/// "payload required", and remaining length 1 (reason code without properties) fails
/// reading the absent property length. Properties are not needed and are skipped.
fn decode_v5_disconnect(frame: &[u8]) -> Result<Inbound, ConnError> {
    let Ok(Some(info)) = crate::frame::peek(frame, u32::MAX) else {
        return Err(ConnError::Malformed("DISCONNECT header".into()));
    };
    if info.byte1 != 0xE0 {
        return Err(ConnError::Malformed("DISCONNECT flags".into()));
    }
    let reason = frame.get(info.header_len).copied().unwrap_or(0);
    Ok(Inbound::Disconnect {
        with_will: reason == DisconnectReasonCode::DisconnectWithWillMessage as u8,
    })
}

fn decode_v4(packet: v4::Packet) -> Result<Inbound, ConnError> {
    Ok(match packet {
        v4::Packet::Connect(c) => {
            let (username, password) = match c.login {
                Some(l) => (
                    Some(l.username).filter(|u| !u.is_empty()),
                    Some(Bytes::from(l.password.into_bytes())).filter(|p| !p.is_empty()),
                ),
                None => (None, None),
            };
            Inbound::Connect(Box::new(ConnectIn {
                client_id: c.client_id,
                clean_start: c.clean_session,
                keep_alive: c.keep_alive,
                username,
                password,
                will: c.last_will.map(|w| WillIn {
                    topic: Bytes::from(w.topic.into_bytes()),
                    payload: w.message,
                    qos: w.qos as u8,
                    retain: w.retain,
                    properties: Bytes::new(),
                }),
                receive_max: None,
                max_packet_size: None,
                auth_method: None,
                session_expiry: None,
            }))
        }
        // Read by `crate::publish` before the codec is reached.
        v4::Packet::Publish(_) => Inbound::Unexpected("PUBLISH"),
        v4::Packet::PubAck(a) => Inbound::PubAck(a.pkid),
        v4::Packet::PubRec(_) => Inbound::PubRec,
        v4::Packet::PubRel(a) => Inbound::PubRel(a.pkid),
        v4::Packet::PubComp(_) => Inbound::PubComp,
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    path: f.path,
                    qos: f.qos as u8,
                    no_local: false,
                })
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Disconnect => Inbound::Disconnect { with_will: false },
        v4::Packet::ConnAck(_) => Inbound::Unexpected("CONNACK"),
        v4::Packet::SubAck(_) => Inbound::Unexpected("SUBACK"),
        v4::Packet::UnsubAck(_) => Inbound::Unexpected("UNSUBACK"),
        v4::Packet::PingResp => Inbound::Unexpected("PINGRESP"),
    })
}

fn decode_v5(packet: v5::Packet) -> Result<Inbound, ConnError> {
    Ok(match packet {
        v5::Packet::Connect(c, will, login) => {
            let props = c.properties;
            let (username, password) = match login {
                Some(l) => (
                    Some(l.username).filter(|u| !u.is_empty()),
                    Some(Bytes::from(l.password.into_bytes())).filter(|p| !p.is_empty()),
                ),
                None => (None, None),
            };
            Inbound::Connect(Box::new(ConnectIn {
                client_id: c.client_id,
                clean_start: c.clean_start,
                keep_alive: c.keep_alive,
                username,
                password,
                will: will
                    .map(|w| -> Result<WillIn, ConnError> {
                        let properties = match w.properties {
                            Some(p) => crate::publish::raw_properties(&PublishProperties {
                                payload_format_indicator: p.payload_format_indicator,
                                message_expiry_interval: p.message_expiry_interval,
                                topic_alias: None,
                                response_topic: p.response_topic,
                                correlation_data: p.correlation_data,
                                // Only the broker may stamp a publisher (`crate::stamp`).
                                user_properties: p
                                    .user_properties
                                    .into_iter()
                                    .filter(|(k, _)| k != crate::stamp::PUBLISHER_PROPERTY)
                                    .collect(),
                                subscription_identifiers: Vec::new(),
                                content_type: p.content_type,
                            })?,
                            None => Bytes::new(),
                        };
                        Ok(WillIn {
                            topic: w.topic,
                            payload: w.message,
                            qos: w.qos as u8,
                            retain: w.retain,
                            properties,
                        })
                    })
                    .transpose()?,
                receive_max: props.as_ref().and_then(|p| p.receive_maximum),
                max_packet_size: props.as_ref().and_then(|p| p.max_packet_size),
                session_expiry: props.as_ref().and_then(|p| p.session_expiry_interval),
                auth_method: props.and_then(|p| p.authentication_method),
            }))
        }
        // Read by `crate::publish` before the codec is reached.
        v5::Packet::Publish(_) => Inbound::Unexpected("PUBLISH"),
        v5::Packet::PubAck(a) => Inbound::PubAck(a.pkid),
        v5::Packet::PubRec(_) => Inbound::PubRec,
        v5::Packet::PubRel(a) => Inbound::PubRel(a.pkid),
        v5::Packet::PubComp(_) => Inbound::PubComp,
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    path: f.path,
                    qos: f.qos as u8,
                    no_local: f.nolocal,
                })
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Disconnect(d) => Inbound::Disconnect {
            with_will: d.reason_code == DisconnectReasonCode::DisconnectWithWillMessage,
        },
        v5::Packet::Auth(_) => Inbound::Unexpected("AUTH"),
        v5::Packet::ConnAck(_) => Inbound::Unexpected("CONNACK"),
        v5::Packet::SubAck(_) => Inbound::Unexpected("SUBACK"),
        v5::Packet::UnsubAck(_) => Inbound::Unexpected("UNSUBACK"),
        v5::Packet::PingResp(_) => Inbound::Unexpected("PINGRESP"),
    })
}

/// CONNACK outcome, protocol-neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnAckCode {
    Accepted,
    UnsupportedProtocol,
    ClientIdRejected,
    ServerUnavailable,
    BadCredentials,
    NotAuthorized,
    BadAuthMethod,
    RetainNotSupported,
    /// MQTT 5 only (3.1.1 closes without CONNACK).
    Malformed,
    /// MQTT 5 only (3.1.1 closes without CONNACK).
    ProtocolError,
}

/// Result code of one SUBSCRIBE filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubCode {
    Granted(u8),
    NotAuthorized,
    FilterInvalid,
    /// The client's subscription limit is reached.
    QuotaExceeded,
}

/// Why the broker closes a connection (MQTT 5 DISCONNECT reason; 3.1.1 just closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    Malformed,
    Protocol,
    ShuttingDown,
    KeepAlive,
    TakenOver,
    TopicNameInvalid,
    TopicAliasInvalid,
    PacketTooLarge,
    QuotaExceeded,
    RetainNotSupported,
    /// Too many refused operations (the connection's abuse limit).
    NotAuthorized,
    /// The operator withdrew the client's right to stay (its certificate was revoked).
    AdministrativeAction,
}

/// A packet the broker sends (PUBLISH is written by [`crate::publish::encode`]).
#[derive(Debug)]
pub(crate) enum Outbound {
    ConnAck {
        code: ConnAckCode,
        properties: Option<ConnAckProperties>,
    },
    PubAck {
        pkid: u16,
        denied: bool,
    },
    PubRec {
        pkid: u16,
        denied: bool,
    },
    PubComp {
        pkid: u16,
        found: bool,
    },
    SubAck {
        pkid: u16,
        codes: Vec<SubCode>,
    },
    UnsubAck {
        pkid: u16,
        found: Vec<bool>,
    },
    PingResp,
    Disconnect(CloseReason),
}

fn qos_of(n: u8) -> rumqttc::v5::mqttbytes::QoS {
    match n {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn qos_of_v4(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// Appends one encoded packet to `buf`. Returns `Ok(false)` when the packet has no
/// MQTT 3.1.1 form (a DISCONNECT from the server): the caller then just closes.
pub(crate) fn encode(
    proto: ProtocolVersion,
    packet: Outbound,
    buf: &mut BytesMut,
) -> Result<bool, ConnError> {
    match proto {
        ProtocolVersion::V311 => encode_v4(packet, buf),
        ProtocolVersion::V5 => encode_v5(packet, buf),
    }
}

fn encode_v4(packet: Outbound, buf: &mut BytesMut) -> Result<bool, ConnError> {
    use v4::ConnectReturnCode as C;
    let p = match packet {
        Outbound::ConnAck { code, .. } => v4::Packet::ConnAck(v4::ConnAck::new(
            match code {
                ConnAckCode::Accepted => C::Success,
                ConnAckCode::UnsupportedProtocol => C::RefusedProtocolVersion,
                ConnAckCode::ClientIdRejected => C::BadClientId,
                ConnAckCode::ServerUnavailable
                | ConnAckCode::BadAuthMethod
                | ConnAckCode::RetainNotSupported => C::ServiceUnavailable,
                // 3.1.1 has no code for these: the connection is just closed.
                ConnAckCode::Malformed | ConnAckCode::ProtocolError => return Ok(false),
                ConnAckCode::BadCredentials => C::BadUserNamePassword,
                ConnAckCode::NotAuthorized => C::NotAuthorized,
            },
            false,
        )),
        // 3.1.1 acknowledgements carry no reason; a denied publish closes the connection
        // before we get here.
        Outbound::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(pkid)),
        Outbound::PubRec { pkid, .. } => v4::Packet::PubRec(v4::PubRec::new(pkid)),
        Outbound::PubComp { pkid, .. } => v4::Packet::PubComp(v4::PubComp::new(pkid)),
        Outbound::SubAck { pkid, codes } => v4::Packet::SubAck(v4::SubAck::new(
            pkid,
            codes
                .into_iter()
                .map(|c| match c {
                    SubCode::Granted(q) => v4::SubscribeReasonCode::Success(qos_of_v4(q)),
                    SubCode::NotAuthorized | SubCode::FilterInvalid | SubCode::QuotaExceeded => {
                        v4::SubscribeReasonCode::Failure
                    }
                })
                .collect(),
        )),
        Outbound::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
        Outbound::PingResp => v4::Packet::PingResp,
        Outbound::Disconnect(_) => return Ok(false),
    };
    p.write(buf, usize::MAX).map_err(malformed)?;
    Ok(true)
}

fn encode_v5(packet: Outbound, buf: &mut BytesMut) -> Result<bool, ConnError> {
    use v5::ConnectReturnCode as C;
    let p = match packet {
        Outbound::ConnAck { code, properties } => v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: match code {
                ConnAckCode::Accepted => C::Success,
                ConnAckCode::UnsupportedProtocol => C::UnsupportedProtocolVersion,
                ConnAckCode::ClientIdRejected => C::ClientIdentifierNotValid,
                ConnAckCode::ServerUnavailable => C::ServerUnavailable,
                ConnAckCode::BadCredentials => C::BadUserNamePassword,
                ConnAckCode::NotAuthorized => C::NotAuthorized,
                ConnAckCode::BadAuthMethod => C::BadAuthenticationMethod,
                ConnAckCode::RetainNotSupported => C::RetainNotSupported,
                ConnAckCode::Malformed => C::MalformedPacket,
                ConnAckCode::ProtocolError => C::ProtocolError,
            },
            properties,
        }),
        Outbound::PubAck { pkid, denied } => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: if denied {
                PubAckReason::NotAuthorized
            } else {
                PubAckReason::Success
            },
            properties: None,
        }),
        Outbound::PubRec { pkid, denied } => v5::Packet::PubRec(v5::PubRec {
            pkid,
            reason: if denied {
                PubRecReason::NotAuthorized
            } else {
                PubRecReason::Success
            },
            properties: None,
        }),
        Outbound::PubComp { pkid, found } => v5::Packet::PubComp(v5::PubComp {
            pkid,
            reason: if found {
                v5::PubCompReason::Success
            } else {
                v5::PubCompReason::PacketIdentifierNotFound
            },
            properties: None,
        }),
        Outbound::SubAck { pkid, codes } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: codes
                .into_iter()
                .map(|c| match c {
                    SubCode::Granted(q) => v5::SubscribeReasonCode::Success(qos_of(q)),
                    SubCode::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                    SubCode::FilterInvalid => v5::SubscribeReasonCode::TopicFilterInvalid,
                    SubCode::QuotaExceeded => v5::SubscribeReasonCode::QuotaExceeded,
                })
                .collect(),
            properties: None,
        }),
        Outbound::UnsubAck { pkid, found } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: found
                .into_iter()
                .map(|f| {
                    if f {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect(),
            properties: None,
        }),
        Outbound::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outbound::Disconnect(reason) => {
            // Encoded by hand: `rumqttc` 0.25 writes a reason code without properties as
            // remaining length 1 followed by two bytes (a malformed packet), and its
            // reader needs the property length; reason + empty properties suits both.
            let code = match reason {
                CloseReason::Malformed => DisconnectReasonCode::MalformedPacket,
                CloseReason::Protocol => DisconnectReasonCode::ProtocolError,
                CloseReason::ShuttingDown => DisconnectReasonCode::ServerShuttingDown,
                CloseReason::KeepAlive => DisconnectReasonCode::KeepAliveTimeout,
                CloseReason::TakenOver => DisconnectReasonCode::SessionTakenOver,
                CloseReason::TopicNameInvalid => DisconnectReasonCode::TopicNameInvalid,
                CloseReason::TopicAliasInvalid => DisconnectReasonCode::TopicAliasInvalid,
                CloseReason::PacketTooLarge => DisconnectReasonCode::PacketTooLarge,
                CloseReason::QuotaExceeded => DisconnectReasonCode::QuotaExceeded,
                CloseReason::RetainNotSupported => DisconnectReasonCode::RetainNotSupported,
                CloseReason::NotAuthorized => DisconnectReasonCode::NotAuthorized,
                CloseReason::AdministrativeAction => DisconnectReasonCode::AdministrativeAction,
            };
            buf.extend_from_slice(&[0xE0, 0x02, code as u8, 0x00]);
            return Ok(true);
        }
    };
    p.write(buf, None).map_err(malformed)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the broker encodes must decode with the reader MQTT 5 clients use here.
    #[test]
    fn v5_replies_decode_with_rumqttc() {
        let replies = vec![
            Outbound::PubAck {
                pkid: 7,
                denied: true,
            },
            Outbound::PubAck {
                pkid: 7,
                denied: false,
            },
            Outbound::PubRec {
                pkid: 8,
                denied: true,
            },
            Outbound::PubComp {
                pkid: 9,
                found: false,
            },
            Outbound::SubAck {
                pkid: 1,
                codes: vec![
                    SubCode::Granted(1),
                    SubCode::NotAuthorized,
                    SubCode::FilterInvalid,
                    SubCode::QuotaExceeded,
                ],
            },
            Outbound::UnsubAck {
                pkid: 2,
                found: vec![true, false],
            },
            Outbound::PingResp,
            Outbound::Disconnect(CloseReason::ShuttingDown),
            Outbound::Disconnect(CloseReason::PacketTooLarge),
            Outbound::ConnAck {
                code: ConnAckCode::NotAuthorized,
                properties: None,
            },
        ];
        for reply in replies {
            let text = format!("{reply:?}");
            let mut buf = BytesMut::new();
            assert!(encode(ProtocolVersion::V5, reply, &mut buf).expect("encodes"));
            let len = buf.len();
            let decoded = v5::Packet::read(&mut buf, None);
            assert!(
                decoded.is_ok(),
                "{text} ({len} bytes) does not decode: {decoded:?}"
            );
            assert!(buf.is_empty(), "{text}: trailing bytes");
        }
    }

    #[test]
    fn v5_disconnect_forms() {
        let parse = |b: &[u8]| decode(ProtocolVersion::V5, BytesMut::from(b));
        assert!(matches!(
            parse(&[0xE0, 0x00]),
            Ok(Inbound::Disconnect { with_will: false })
        ));
        assert!(matches!(
            parse(&[0xE0, 0x01, 0x04]),
            Ok(Inbound::Disconnect { with_will: true })
        ));
        assert!(matches!(
            parse(&[0xE0, 0x02, 0x00, 0x00]),
            Ok(Inbound::Disconnect { with_will: false })
        ));
        assert!(parse(&[0xE1, 0x00]).is_err());
    }
}
