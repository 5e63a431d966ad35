//! How answers of the Kubernetes API become [`TargetError`]s: by the `Status` reason
//! (and code), keeping the API server's message, because that text is what ends up in
//! the work's condition messages (as OCM's agent shows it).

use kube::core::Status;

use crate::target::TargetError;

/// The longest API server message kept (a hostile or broken server must not fill the
/// work's status with megabytes of text).
const MAX_MESSAGE: usize = 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The target error for an API `Status` (a non-2xx answer).
pub fn from_status(status: &Status) -> TargetError {
    let message = bounded(if status.message.is_empty() {
        format!("{} ({})", status.reason, status.code)
    } else {
        status.message.clone()
    });
    if status.is_not_found() {
        TargetError::NotFound(message)
    } else if status.is_invalid() || status.reason == "BadRequest" || status.code == 400 {
        TargetError::Invalid(message)
    } else if status.is_conflict() || status.is_already_exists() {
        TargetError::Conflict(message)
    } else if status.is_forbidden() {
        TargetError::Forbidden(message)
    } else {
        TargetError::Unavailable(message)
    }
}

/// The target error for any client error: API answers by their `Status`; transport,
/// TLS, authentication and decoding failures mean the API is not usable now.
pub fn from_kube(error: kube::Error) -> TargetError {
    match error {
        kube::Error::Api(status) => from_status(&status),
        other => TargetError::Unavailable(bounded(format!("kubernetes API: {other}"))),
    }
}

/// Whether the error is a `409 Conflict` (a stale resourceVersion or a failed
/// precondition), the one answer worth retrying with a fresh read.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.is_conflict())
}

/// Whether the error is a `404 Not Found`.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.is_not_found())
}

/// Whether the error is `409 AlreadyExists` (a create raced another writer).
pub fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.is_already_exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str, code: u16, message: &str) -> Status {
        let mut s = Status::failure(message, reason);
        s.code = code;
        s
    }

    #[test]
    fn reasons_map_to_target_errors_with_the_server_message() {
        let e = from_status(&status("NotFound", 404, "namespaces \"x\" not found"));
        assert_eq!(
            e,
            TargetError::NotFound("namespaces \"x\" not found".into())
        );
        assert!(matches!(
            from_status(&status("Invalid", 422, "m")),
            TargetError::Invalid(_)
        ));
        assert!(matches!(
            from_status(&status("BadRequest", 400, "m")),
            TargetError::Invalid(_)
        ));
        assert!(matches!(
            from_status(&status("Conflict", 409, "m")),
            TargetError::Conflict(_)
        ));
        assert!(matches!(
            from_status(&status("AlreadyExists", 409, "m")),
            TargetError::Conflict(_)
        ));
        assert!(matches!(
            from_status(&status("Forbidden", 403, "m")),
            TargetError::Forbidden(_)
        ));
        assert!(matches!(
            from_status(&status("InternalError", 500, "m")),
            TargetError::Unavailable(_)
        ));
    }

    #[test]
    fn long_messages_are_bounded() {
        let e = from_status(&status("Invalid", 422, &"é".repeat(4000)));
        assert!(e.to_string().len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
