//! Topic name and topic filter validation, and `$share/<group>/` parsing (MQTT 5 §4.7, §4.8).

/// A validated subscription filter, split from its shared-subscription prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ParsedFilter {
    /// `Some(group)` for `$share/<group>/<filter>`.
    pub share_group: Option<Box<str>>,
    /// The filter proper, e.g. `sources/+/clusters/c1/sourceevents`.
    pub filter: Box<str>,
}

/// Why a filter was refused (reported as SUBACK 0x8F / 0x80).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterError {
    Empty,
    BadWildcard,
    BadShareGroup,
    NulChar,
}

/// True if `topic` may be published to: non-empty, no wildcards, no NUL (MQTT 5 §4.7.3).
pub(crate) fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| b == b'+' || b == b'#' || b == 0)
}

/// Validates a filter and splits off a `$share/<group>/` prefix.
pub(crate) fn parse_filter(raw: &str) -> Result<ParsedFilter, FilterError> {
    if raw.as_bytes().contains(&0) {
        return Err(FilterError::NulChar);
    }
    let (share_group, filter) = match raw.strip_prefix("$share/") {
        Some(rest) => {
            // The group is one level: no '/', no wildcards, non-empty; a filter must follow.
            let (group, filter) = rest.split_once('/').ok_or(FilterError::BadShareGroup)?;
            if group.is_empty() || group.contains(['+', '#']) {
                return Err(FilterError::BadShareGroup);
            }
            (Some(group), filter)
        }
        None => (None, raw),
    };
    validate_filter(filter)?;
    Ok(ParsedFilter {
        share_group: share_group.map(Into::into),
        filter: filter.into(),
    })
}

fn validate_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if is_last => {}
            "+" => {}
            _ if level.contains(['+', '#']) => return Err(FilterError::BadWildcard),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(valid_topic_name(
            "sources/maestro/consumers/c1/sourceevents"
        ));
        assert!(valid_topic_name("/"));
        assert!(valid_topic_name("é/ü"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name("a/+/b"));
        assert!(!valid_topic_name("a/#"));
        assert!(!valid_topic_name("a\0b"));
    }

    #[test]
    fn filters() {
        for ok in ["a", "a/+/b", "#", "+", "a/#", "+/+", "/", "é/+"] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "a/b#", "#/a", "a/++"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_filters() {
        let p = parse_filter("$share/statussubscribers/sources/maestro/consumers/+/agentevents")
            .expect("valid");
        assert_eq!(p.share_group.as_deref(), Some("statussubscribers"));
        assert_eq!(&*p.filter, "sources/maestro/consumers/+/agentevents");
        for bad in [
            "$share/",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "$share/g/",
            "$share/#/a",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        // `$shared` is not the shared-subscription prefix: an ordinary `$` filter.
        assert_eq!(parse_filter("$sharedx/a").expect("valid").share_group, None);
    }
}
