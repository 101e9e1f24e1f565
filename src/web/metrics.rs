//! `GET /metrics`: Prometheus text format, written by hand (a few counters do not need a crate).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Web;
use crate::proxy::CHECK_BUCKETS;

/// Renders every metric.
pub async fn render(AxState(web): AxState<Web>) -> Response {
    let m = &web.state.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    counter(
        "liyu_messages_checked_total",
        "Agent messages checked.",
        "counter",
        m.messages_checked.load(Ordering::Relaxed),
    );
    counter(
        "liyu_customer_messages_total",
        "Customer messages seen.",
        "counter",
        m.customer_messages.load(Ordering::Relaxed),
    );
    counter(
        "liyu_blocked_total",
        "Messages held back.",
        "counter",
        m.blocked.load(Ordering::Relaxed),
    );
    counter(
        "liyu_open_connections",
        "Open proxied WebSocket connections.",
        "gauge",
        m.open_connections.load(Ordering::Relaxed) as u64,
    );
    counter(
        "liyu_upstream_errors_total",
        "Failed upstream connections and requests.",
        "counter",
        m.upstream_errors.load(Ordering::Relaxed),
    );
    counter(
        "liyu_frames_total",
        "WebSocket frames relayed.",
        "counter",
        m.frames.load(Ordering::Relaxed),
    );
    if let Some(store) = web.state.store() {
        let s = &store.metrics;
        counter(
            "liyu_store_queue_depth",
            "Events waiting for the store writer.",
            "gauge",
            s.queued.load(Ordering::Relaxed),
        );
        counter(
            "liyu_store_dropped_total",
            "Events dropped because the store queue was full.",
            "counter",
            s.dropped.load(Ordering::Relaxed),
        );
        counter(
            "liyu_store_written_total",
            "Events written to the store.",
            "counter",
            s.written.load(Ordering::Relaxed),
        );
        counter(
            "liyu_store_errors_total",
            "Failed store writes (retried).",
            "counter",
            s.errors.load(Ordering::Relaxed),
        );
        counter(
            "liyu_store_rejected_total",
            "Events the store refused for what they hold (a constraint, a value it cannot take), dropped and logged.",
            "counter",
            s.rejected.load(Ordering::Relaxed),
        );
    }
    let _ = writeln!(
        out,
        "# HELP liyu_findings_total Findings by category and severity.\n# TYPE liyu_findings_total counter"
    );
    let mut by: Vec<((String, String), u64)> = m
        .findings_by
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    by.sort();
    for ((category, severity), n) in by {
        let _ = writeln!(
            out,
            "liyu_findings_total{{category=\"{category}\",severity=\"{severity}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP liyu_check_seconds Time to check one message.\n# TYPE liyu_check_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, le) in CHECK_BUCKETS.iter().enumerate() {
        cumulative += m.check_buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "liyu_check_seconds_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += m.check_buckets[CHECK_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(out, "liyu_check_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "liyu_check_seconds_sum {}\nliyu_check_seconds_count {cumulative}",
        m.check_nanos.load(Ordering::Relaxed) as f64 / 1e9
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
