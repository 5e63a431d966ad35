//! Framing ahead of the codec: find where the next packet ends, enforce the size limit
//! before buffering it, and tell MQTT 3.1.1 from MQTT 5 by the CONNECT's protocol level.
//!
//! Doing this ourselves, rather than letting the codec look at the whole read buffer, means
//! the codec only ever sees exactly one complete packet, and the size limit is applied to
//! the whole packet (as MQTT 5's Maximum Packet Size defines it) as soon as its fixed
//! header has arrived.

use crate::auth::ProtocolVersion;

/// Location of the next packet in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// First byte: packet type in the high nibble, flags in the low nibble.
    pub byte1: u8,
    /// Length of the fixed header (1 + 1..=4 bytes of remaining length).
    pub header_len: usize,
    /// Length of the whole packet.
    pub total_len: usize,
}

/// Framing failures; each ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The remaining length uses more than 4 bytes.
    BadLength,
    /// The packet is bigger than the configured limit.
    TooLarge(usize),
}

/// Looks at the start of `buf`: `Ok(None)` if the fixed header is not complete yet,
/// otherwise the packet's extent (the packet itself may still be incomplete).
pub(crate) fn peek(buf: &[u8], max_packet_size: u32) -> Result<Option<FrameInfo>, FrameError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            let header_len = 2 + i;
            let total_len = header_len + remaining;
            if total_len > max_packet_size as usize {
                return Err(FrameError::TooLarge(total_len));
            }
            return Ok(Some(FrameInfo {
                byte1,
                header_len,
                total_len,
            }));
        }
    }
    Err(FrameError::BadLength)
}

/// What the first packet of a connection says about its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectKind {
    /// A CONNECT for a protocol level we speak.
    Supported(ProtocolVersion),
    /// A CONNECT for another level (e.g. 3 = MQTT 3.1 "MQIsdp"); answer and close.
    UnsupportedLevel(u8),
    /// Not a CONNECT at all, or not MQTT.
    NotConnect,
}

/// Classifies a complete first packet (`packet` holds exactly one frame).
pub(crate) fn classify_connect(packet: &[u8], info: FrameInfo) -> ConnectKind {
    if info.byte1 != 0x10 {
        return ConnectKind::NotConnect;
    }
    let body = &packet[info.header_len.min(packet.len())..];
    // Variable header: protocol name as a 2-byte length + bytes, then the level byte.
    let [len_hi, len_lo, rest @ ..] = body else {
        return ConnectKind::NotConnect;
    };
    let name_len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
    let (Some(name), Some(&level)) = (rest.get(..name_len), rest.get(name_len)) else {
        return ConnectKind::NotConnect;
    };
    match (name, level) {
        (b"MQTT", 4) => ConnectKind::Supported(ProtocolVersion::V311),
        (b"MQTT", 5) => ConnectKind::Supported(ProtocolVersion::V5),
        (b"MQTT" | b"MQIsdp", level) => ConnectKind::UnsupportedLevel(level),
        _ => ConnectKind::NotConnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_lengths() {
        assert_eq!(peek(&[], 100), Ok(None));
        assert_eq!(peek(&[0x30], 100), Ok(None));
        assert_eq!(
            peek(&[0xC0, 0x00], 100),
            Ok(Some(FrameInfo {
                byte1: 0xC0,
                header_len: 2,
                total_len: 2
            }))
        );
        // 321 = 0xC1 0x02
        assert_eq!(
            peek(&[0x30, 0xC1, 0x02], 1000).map(|f| f.map(|f| f.total_len)),
            Ok(Some(324))
        );
        assert_eq!(
            peek(&[0x30, 0xC1, 0x02], 100),
            Err(FrameError::TooLarge(324))
        );
        assert_eq!(peek(&[0x30, 0xFF, 0xFF, 0xFF], u32::MAX), Ok(None));
        assert_eq!(
            peek(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], u32::MAX),
            Err(FrameError::BadLength)
        );
    }

    #[test]
    fn classify() {
        let v5 = [0x10, 0x0A, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60];
        let info = peek(&v5, 100).expect("ok").expect("complete");
        assert_eq!(
            classify_connect(&v5, info),
            ConnectKind::Supported(ProtocolVersion::V5)
        );
        let mut v4 = v5;
        v4[8] = 4;
        assert_eq!(
            classify_connect(&v4, info),
            ConnectKind::Supported(ProtocolVersion::V311)
        );
        let v3 = [
            0x10, 0x0C, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
        ];
        let info3 = peek(&v3, 100).expect("ok").expect("complete");
        assert_eq!(
            classify_connect(&v3, info3),
            ConnectKind::UnsupportedLevel(3)
        );
        assert_eq!(
            classify_connect(&[0x10, 0x01, 0], info),
            ConnectKind::NotConnect
        );
        let publish = [0x30, 0x03, 0, 1, b'a'];
        let pinfo = peek(&publish, 100).expect("ok").expect("complete");
        assert_eq!(classify_connect(&publish, pinfo), ConnectKind::NotConnect);
    }
}
