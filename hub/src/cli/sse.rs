//! Reading a server-sent-event stream (the hub's `/api/v1/watch/*`) line by line:
//! `event:`, `id:` and `data:` fields, dispatched at each blank line; comments
//! (keep-alives) are skipped.

use std::io::BufRead;

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty: the default `message`).
    pub event: String,
    /// `id:` (empty when the event has none).
    pub id: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// Events from a byte stream.
pub struct SseReader<R> {
    lines: std::io::Lines<R>,
}

impl<R: BufRead> SseReader<R> {
    /// Reads events from `input`.
    pub fn new(input: R) -> Self {
        SseReader {
            lines: input.lines(),
        }
    }

    /// The next event; `None` when the stream ended.
    pub fn next_event(&mut self) -> std::io::Result<Option<SseEvent>> {
        let mut event = SseEvent::default();
        let mut has_field = false;
        for line in self.lines.by_ref() {
            let line = line?;
            if line.is_empty() {
                if has_field {
                    return Ok(Some(event));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            has_field = true;
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = value.to_owned(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_events_and_skips_comments() {
        let text = ": keep-alive\n\nevent: spec\nid: e.1\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\nevent: tail";
        let mut r = SseReader::new(text.as_bytes());
        assert_eq!(
            r.next_event().unwrap(),
            Some(SseEvent {
                event: "spec".into(),
                id: "e.1".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(r.next_event().unwrap().unwrap().data, "x\ny");
        // An event cut off by the end of the stream is not dispatched.
        assert_eq!(r.next_event().unwrap(), None);
    }
}
