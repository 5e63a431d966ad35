//! The hub: the CloudEvents source (arrives with the vertical-slice issue).
