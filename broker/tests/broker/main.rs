//! Integration tests: a real broker on 127.0.0.1:0, real `rumqttc` clients (MQTT 5 and
//! 3.1.1) and raw sockets. One test binary keeps link time down.

mod auth;
mod cli;
mod common;
mod lifecycle;
mod limits;
mod metrics_endpoint;
mod publisher_stamp;
mod pubsub;
mod robustness;
mod security;
mod violations;
