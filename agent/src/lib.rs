//! The work agent (arrives with the vertical-slice issue).
