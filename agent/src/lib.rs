//! # workbus-agent: the work agent
//!
//! Receives ManifestWork spec events for its cluster, applies them through a target, and
//! reports status events back (the vertical-slice issue fills this in).
//!
//! - [`transport`]: the reconnecting MQTT session shared with the hub.

pub mod transport;
