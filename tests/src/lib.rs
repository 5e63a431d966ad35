//! Cross-crate integration and fault tests (arrive with the vertical-slice issue).
