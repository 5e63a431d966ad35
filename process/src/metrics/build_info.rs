//! `workbus_build_info`: which build of which executable is running, as the usual
//! constant-1 gauge whose labels carry the facts (join it onto other series in PromQL).

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The labels of `workbus_build_info`.
pub fn labels(component: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("component", component),
        ("version", env!("CARGO_PKG_VERSION")),
        ("os", std::env::consts::OS),
        ("arch", std::env::consts::ARCH),
        (
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        ),
    ]
}

/// Registers `workbus_build_info{component,version,os,arch,profile} 1`.
pub fn register(registry: &mut Registry, component: &'static str) {
    // An `Info` metric named `workbus_build` is written `workbus_build_info`.
    registry.register(
        "workbus_build",
        "Build of this executable: component, version, target and profile (always 1)",
        Info::new(labels(component)),
    );
}
