//! Business and health metrics as CloudWatch Embedded Metric Format lines: one JSON object
//! on stdout, which CloudWatch Logs turns into a metric of `METRICS_NAMESPACE` (set by
//! template.yaml) with no dimensions. Without that variable (locally) the same line goes
//! to the debug log instead, so nothing is printed twice or lost in tests.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The authorizer could not decide (database unreachable, keys unreadable): an outage,
/// never a refused token. `AuthorizerFailuresAlarm` watches it.
pub const AUTHORIZER_FAILURES: &str = "AuthorizerFailures";
/// Outbox messages the relay tried to send and could not.
pub const OUTBOX_SEND_FAILURES: &str = "OutboxSendFailures";

/// Every metric the code emits (template.yaml's alarms may name only these).
pub const ALL: &[&str] = &[AUTHORIZER_FAILURES, OUTBOX_SEND_FAILURES];

/// Adds `value` to the count `name`.
pub fn count(name: &'static str, value: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    match crate::env::get(crate::env::Var::MetricsNamespace) {
        Some(namespace) => {
            let line = emf_line(&namespace, name, value, now);
            // One write of the whole line, so it never interleaves with a log line.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        None => tracing::debug!(target: "metrics", metric = name, value, "metric"),
    }
}

/// The EMF document for one count.
pub fn emf_line(namespace: &str, name: &str, value: u64, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        name: value,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_the_metric_and_carries_its_value() {
        let line: serde_json::Value = serde_json::from_str(&emf_line(
            "Bookshelf/prod",
            AUTHORIZER_FAILURES,
            1,
            1_700_000_000_000,
        ))
        .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Bookshelf/prod");
        assert_eq!(directive["Metrics"][0]["Name"], "AuthorizerFailures");
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");
        assert_eq!(directive["Dimensions"], serde_json::json!([[]]));
        assert_eq!(line["AuthorizerFailures"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }
}
