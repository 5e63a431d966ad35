//! Checks on the raw bytes of client packets that the codec (`rumqttc`'s) does not make,
//! run before it decodes them: MQTT 5 (and 3.1.1) rules whose violation the codec would
//! silently accept. PUBLISH is checked by [`crate::publish`], which reads it itself.
//!
//! Each violation ends the connection: MQTT 5 clients are told Malformed Packet (0x81)
//! or Protocol Error (0x82) as the specification names it, 3.1.1 clients see the socket
//! close. Checks only read within the frame: hostile input can fail them, never panic.

use crate::auth::ProtocolVersion;
use crate::error::ConnError;

/// One rule broken by a client packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// MQTT 5 reason 0x81.
    Malformed(&'static str),
    /// MQTT 5 reason 0x82.
    Protocol(&'static str),
}

impl From<Violation> for ConnError {
    fn from(v: Violation) -> Self {
        match v {
            Violation::Malformed(what) => ConnError::Malformed(what.to_owned()),
            Violation::Protocol(what) => ConnError::Protocol(what),
        }
    }
}

const TRUNCATED: Violation = Violation::Malformed("packet truncated");

const SUBSCRIPTION_ID: u8 = 0x0B;
const RESPONSE_TOPIC: u8 = 0x08;
const RECEIVE_MAXIMUM: u8 = 0x21;
const USER_PROPERTY: u8 = 0x26;

/// Checks one complete client packet (`frame`, fixed header of `header_len` bytes).
pub(crate) fn check(
    proto: ProtocolVersion,
    frame: &[u8],
    header_len: usize,
) -> Result<(), Violation> {
    let Some(&byte1) = frame.first() else {
        return Err(TRUNCATED);
    };
    let body = frame.get(header_len..).ok_or(TRUNCATED)?;
    match byte1 >> 4 {
        1 => check_connect(proto, body),
        8 => check_subscribe(proto, body),
        12 if !body.is_empty() => Err(Violation::Malformed("PINGREQ with a payload")),
        _ => Ok(()),
    }
}

/// A cursor over a packet body.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Violation> {
        let end = self.at.checked_add(n).ok_or(TRUNCATED)?;
        let bytes = self.buf.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Violation> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Violation> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A 2-byte length followed by that many bytes.
    fn prefixed(&mut self) -> Result<&'a [u8], Violation> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    fn varint(&mut self) -> Result<usize, Violation> {
        let mut value = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            value |= usize::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Violation::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    }

    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }
}

/// One property of a property block: its identifier and value bytes (for strings and
/// binary data without the length prefix; for a Subscription Identifier its value).
enum Value<'a> {
    Bytes(&'a [u8]),
    Int(usize),
}

/// Walks an MQTT 5 property block (the varint length at the cursor, then the block),
/// refusing any property but User Property given twice (a Protocol Error for every
/// single-valued property a client sends, MQTT 5 §2.2.2.2), and calls `each` for every
/// property.
fn properties<'a>(
    c: &mut Cursor<'a>,
    mut each: impl FnMut(u8, Value<'a>) -> Result<(), Violation>,
) -> Result<(), Violation> {
    let len = c.varint()?;
    let mut p = Cursor {
        buf: c.take(len)?,
        at: 0,
    };
    let mut seen: u64 = 0;
    while !p.done() {
        let id = p.u8()?;
        if id != USER_PROPERTY {
            let bit = 1u64.checked_shl(u32::from(id)).unwrap_or(0);
            if seen & bit != 0 {
                return Err(Violation::Protocol("property given more than once"));
            }
            seen |= bit;
        }
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Value::Bytes(p.take(1)?),
            0x13 | 0x21 | 0x22 | 0x23 => Value::Bytes(p.take(2)?),
            0x02 | 0x11 | 0x18 | 0x27 => Value::Bytes(p.take(4)?),
            0x0B => Value::Int(p.varint()?),
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                Value::Bytes(p.prefixed()?)
            }
            USER_PROPERTY => {
                p.prefixed()?;
                Value::Bytes(p.prefixed()?)
            }
            _ => return Err(Violation::Malformed("unknown property identifier")),
        };
        each(id, value)?;
    }
    Ok(())
}

/// CONNECT: the reserved flag (MQTT 5 §3.1.2.3, 3.1.1 §3.1.2.3: Malformed); MQTT 5:
/// duplicated properties, Receive Maximum 0 (§3.1.2.11.3: Protocol Error), and in the
/// will properties duplicates and a Response Topic with wildcards.
fn check_connect(proto: ProtocolVersion, body: &[u8]) -> Result<(), Violation> {
    let mut c = Cursor { buf: body, at: 0 };
    c.prefixed()?; // protocol name
    c.u8()?; // level (read by the framing)
    let flags = c.u8()?;
    if flags & 0x01 != 0 {
        return Err(Violation::Malformed("CONNECT reserved flag set"));
    }
    if proto != ProtocolVersion::V5 {
        return Ok(());
    }
    c.u16()?; // keep alive
    properties(&mut c, |id, value| match (id, value) {
        (RECEIVE_MAXIMUM, Value::Bytes([0, 0])) => Err(Violation::Protocol("Receive Maximum 0")),
        _ => Ok(()),
    })?;
    c.prefixed()?; // client id
    if flags & 0x04 != 0 {
        properties(&mut c, |id, value| match (id, value) {
            (RESPONSE_TOPIC, Value::Bytes(topic))
                if topic.iter().any(|b| matches!(b, b'+' | b'#')) =>
            {
                Err(Violation::Protocol("wildcard in the will's Response Topic"))
            }
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// SUBSCRIBE: MQTT 5 duplicated properties, Subscription Identifier 0 (§3.8.2.1.2:
/// Protocol Error), reserved option bits 6–7 (§3.8.3.1: Malformed), Retain Handling 3
/// (Protocol Error); MQTT 3.1.1 any option bit above the QoS (§3.8.3.1: malformed, the
/// connection is closed) — which is also how MQTT 5 option bits sent by a 3.1.1 client
/// are refused.
fn check_subscribe(proto: ProtocolVersion, body: &[u8]) -> Result<(), Violation> {
    let mut c = Cursor { buf: body, at: 0 };
    c.u16()?; // packet id
    if proto == ProtocolVersion::V5 {
        properties(&mut c, |id, value| match (id, value) {
            (SUBSCRIPTION_ID, Value::Int(0)) => {
                Err(Violation::Protocol("Subscription Identifier 0"))
            }
            _ => Ok(()),
        })?;
    }
    while !c.done() {
        c.prefixed()?; // filter (checked later)
        let options = c.u8()?;
        match proto {
            ProtocolVersion::V5 if options & 0xC0 != 0 => {
                return Err(Violation::Malformed(
                    "reserved subscription option bits set",
                ));
            }
            ProtocolVersion::V5 if (options >> 4) & 0x03 == 3 => {
                return Err(Violation::Protocol("Retain Handling 3"));
            }
            ProtocolVersion::V311 if options & 0xFC != 0 => {
                return Err(Violation::Malformed(
                    "subscription option bits other than QoS in MQTT 3.1.1",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProtocolVersion::{V5, V311};

    fn connect_v5(flags: u8, props: &[u8], will_props: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, flags, 0, 30];
        body.push(props.len() as u8);
        body.extend_from_slice(props);
        body.extend_from_slice(&[0, 1, b'c']);
        if let Some(w) = will_props {
            body.push(w.len() as u8);
            body.extend_from_slice(w);
            body.extend_from_slice(&[0, 1, b't', 0, 0]);
        }
        let mut frame = vec![0x10, body.len() as u8];
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn connect_rules() {
        assert_eq!(check(V5, &connect_v5(0x02, &[], None), 2), Ok(()));
        assert!(matches!(
            check(V5, &connect_v5(0x03, &[], None), 2),
            Err(Violation::Malformed(_))
        ));
        let mut v4 = connect_v5(0x03, &[], None);
        v4[8] = 4;
        assert!(check(V311, &v4, 2).is_err());
        assert!(matches!(
            check(V5, &connect_v5(0x02, &[0x21, 0, 0], None), 2),
            Err(Violation::Protocol(_))
        ));
        assert_eq!(check(V5, &connect_v5(0x02, &[0x21, 0, 5], None), 2), Ok(()));
        assert!(matches!(
            check(V5, &connect_v5(0x02, &[0x21, 0, 5, 0x21, 0, 5], None), 2),
            Err(Violation::Protocol(_))
        ));
        let wild = [0x08, 0, 3, b'a', b'/', b'+'];
        assert!(matches!(
            check(V5, &connect_v5(0x06, &[], Some(&wild)), 2),
            Err(Violation::Protocol(_))
        ));
        let fine = [0x08, 0, 3, b'a', b'/', b'b'];
        assert_eq!(check(V5, &connect_v5(0x06, &[], Some(&fine)), 2), Ok(()));
        // Truncated: fails, never panics.
        let full = connect_v5(0x06, &[0x21, 0, 5], Some(&fine));
        for n in 0..full.len() {
            let _ = check(V5, &full[..n], 2.min(n));
        }
    }

    fn subscribe(props: Option<&[u8]>, options: u8) -> Vec<u8> {
        let mut body = vec![0, 1];
        if let Some(p) = props {
            body.push(p.len() as u8);
            body.extend_from_slice(p);
        }
        body.extend_from_slice(&[0, 1, b'a', options]);
        let mut frame = vec![0x82, body.len() as u8];
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn subscribe_rules() {
        assert_eq!(check(V5, &subscribe(Some(&[]), 0x01), 2), Ok(()));
        assert_eq!(check(V5, &subscribe(Some(&[0x0B, 7]), 0x2D), 2), Ok(()));
        assert_eq!(
            check(V5, &subscribe(Some(&[0x0B, 0]), 0x01), 2),
            Err(Violation::Protocol("Subscription Identifier 0"))
        );
        assert!(matches!(
            check(V5, &subscribe(Some(&[]), 0x41), 2),
            Err(Violation::Malformed(_))
        ));
        assert!(matches!(
            check(V5, &subscribe(Some(&[]), 0x31), 2),
            Err(Violation::Protocol(_))
        ));
        assert_eq!(check(V311, &subscribe(None, 0x01), 2), Ok(()));
        assert!(matches!(
            check(V311, &subscribe(None, 0x05), 2),
            Err(Violation::Malformed(_))
        ));
    }

    #[test]
    fn pingreq_payload() {
        assert_eq!(check(V5, &[0xC0, 0x00], 2), Ok(()));
        assert!(check(V5, &[0xC0, 0x01, 0x00], 2).is_err());
        assert!(check(V311, &[0xC0, 0x01, 0x00], 2).is_err());
    }
}
