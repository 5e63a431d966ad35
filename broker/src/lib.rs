//! The embedded MQTT broker (arrives with the vertical-slice issue).
