//! The Prometheus metrics every workbus executable shares, and how all of them are
//! written out.
//!
//! Each executable keeps its own `prometheus_client` [`Registry`]; this module adds what
//! they all expose — the process's CPU, memory, file descriptors and start time
//! ([`process_collector`], read from `/proc`) and `workbus_build_info`
//! ([`build_info`]) — and encodes a registry in the Prometheus text format 0.0.4
//! ([`encode`]). That format, not OpenMetrics, because it is what OCM's and Maestro's Go
//! servers serve (client_golang's default), so the series names users already chart
//! come out the same: a counter registered as `cloudevents_sent` is written
//! `cloudevents_sent_total`.
//!
//! The table of every metric and its meaning is `docs/metrics.md`.

pub mod build_info;
pub mod cloudevents;
pub mod proc_self;
pub mod process_collector;

pub use prometheus_client;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets (seconds) shared by the request and publish histograms: 1 ms to
/// 10 s, dense around the sub-second figures the benchmarks measure, with `0.5` and `1`
/// present because OCM's SLOs are written against those bounds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A metric that is listed (`# HELP`, `# TYPE`) even while it has no series.
///
/// `prometheus_client` leaves a labelled family out of the output until its first
/// series; wrapped in `Listed` it is always there, so dashboards, the metric table's
/// test (`docs/metrics.md`) and a reader of `/metrics` see every name the process has.
#[derive(Debug, Clone)]
pub struct Listed<M>(pub M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
    fn is_empty(&self) -> bool {
        false
    }
}

/// Registers the metrics every executable exposes: the process collector and
/// `workbus_build_info` naming `component` (`hub`, `agent`, `broker`).
pub fn register_process_metrics(registry: &mut Registry, component: &'static str) {
    registry.register_collector(Box::new(process_collector::ProcessCollector));
    build_info::register(registry, component);
}

/// The registry in the Prometheus text format 0.0.4.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a metric's
    // own encoding, and a scrape with what was written so far beats none.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_executable_exposes_process_and_build_metrics() {
        let mut registry = Registry::default();
        register_process_metrics(&mut registry, "agent");
        let text = encode(&registry);
        assert!(text.contains("# TYPE workbus_build_info gauge\n"), "{text}");
        assert!(text.contains("component=\"agent\""), "{text}");
        if cfg!(target_os = "linux") {
            for line in [
                "# TYPE process_cpu_seconds_total counter",
                "# TYPE process_resident_memory_bytes gauge",
                "# TYPE process_open_fds gauge",
                "# TYPE process_start_time_seconds gauge",
            ] {
                assert!(text.contains(line), "{line} missing in {text}");
            }
        }
    }
}
