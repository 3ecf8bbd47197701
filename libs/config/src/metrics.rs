//! Business and health metrics as CloudWatch Embedded Metric Format lines: one JSON object
//! on stdout, which CloudWatch Logs turns into a metric of `METRICS_NAMESPACE` (set by
//! template.yaml). Without that variable (locally) the same fact goes to the debug log
//! instead (target `metrics`), so nothing is printed twice. Every `Metrics` also keeps
//! running totals, which is how tests see what a request reported.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// An order was recorded and queued (POST /orders answered 202; replays are not counted).
pub const ORDERS_ACCEPTED: &str = "OrdersAccepted";
/// The worker reserved an order's stock.
pub const ORDERS_CONFIRMED: &str = "OrdersConfirmed";
/// The worker found a line short of stock.
pub const ORDERS_REJECTED: &str = "OrdersRejected";
pub const ORDERS_CANCELLED: &str = "OrdersCancelled";
/// Wrong email or password.
pub const LOGIN_FAILURES: &str = "LoginFailures";
/// Sign-ins refused with 429 because an account or address is over its limit.
pub const LOGIN_THROTTLES: &str = "LoginThrottles";
/// Tokens the authorizer refused, by `Reason` (`REFUSAL_REASONS`).
pub const AUTHORIZER_REFUSALS: &str = "AuthorizerRefusals";
/// The authorizer could not decide (database unreachable, keys unreadable): an outage,
/// never a refused token. `AuthorizerFailuresAlarm` watches it.
pub const AUTHORIZER_FAILURES: &str = "AuthorizerFailures";
/// Outbox messages the relay tried to send and could not.
pub const OUTBOX_SEND_FAILURES: &str = "OutboxSendFailures";
/// Unsent outbox messages after a relay run (a gauge: dashboards take its maximum).
pub const OUTBOX_BACKLOG: &str = "OutboxBacklog";

/// Every metric the code emits (template.yaml's dashboard and alarms may name only these,
/// and the dashboard shows each).
pub const ALL: &[&str] = &[
    ORDERS_ACCEPTED,
    ORDERS_CONFIRMED,
    ORDERS_REJECTED,
    ORDERS_CANCELLED,
    LOGIN_FAILURES,
    LOGIN_THROTTLES,
    AUTHORIZER_REFUSALS,
    AUTHORIZER_FAILURES,
    OUTBOX_SEND_FAILURES,
    OUTBOX_BACKLOG,
];

/// The dimension of `AUTHORIZER_REFUSALS`.
pub const REASON: &str = "Reason";
/// Its values: no bearer token, a token that did not verify, a session that is over.
pub const REFUSAL_REASONS: &[&str] = &["NoToken", "BadToken", "InactiveSession"];

/// The metrics of one execution environment (or one local server).
#[derive(Debug, Default)]
pub struct Metrics {
    namespace: Option<String>,
    totals: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Deployed: EMF lines into `METRICS_NAMESPACE`. Unset: debug log lines only.
    pub fn from_env() -> Metrics {
        Metrics {
            namespace: crate::settings()
                .ok()
                .and_then(|s| s.deployed.metrics_namespace.clone()),
            totals: Mutex::default(),
        }
    }

    /// Adds `value` to the count `name`.
    pub fn count(&self, name: &'static str, value: u64) {
        self.report(name, None, value, false);
    }

    /// Adds `value` to the count `name` for one value of its dimension.
    pub fn count_by(&self, name: &'static str, dimension: (&'static str, &str), value: u64) {
        self.report(name, Some(dimension), value, false);
    }

    /// Reports the current level of `name`.
    pub fn gauge(&self, name: &'static str, value: u64) {
        self.report(name, None, value, true);
    }

    /// The running total of a count, or the last level of a gauge: `"Name"`, or
    /// `"Name/Dimension=value"` for one value of a dimension. Zero if never reported.
    pub fn total(&self, key: &str) -> u64 {
        self.totals.lock().map_or(0, |t| t.get(key).copied().unwrap_or(0))
    }

    fn report(&self, name: &'static str, dimension: Option<(&'static str, &str)>, value: u64, gauge: bool) {
        let key = match dimension {
            Some((d, v)) => format!("{name}/{d}={v}"),
            None => name.to_string(),
        };
        if let Ok(mut totals) = self.totals.lock() {
            let total = totals.entry(key).or_default();
            *total = if gauge { value } else { *total + value };
        }
        match &self.namespace {
            Some(namespace) => {
                let line = emf_line(namespace, name, dimension, value, now_ms());
                // One write of the whole line, so it never interleaves with a log line.
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            None => match dimension {
                Some((d, v)) => {
                    tracing::debug!(target: "metrics", metric = name, dimension = d, of = v, value, "metric")
                }
                None => tracing::debug!(target: "metrics", metric = name, value, "metric"),
            },
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The EMF document for one value, with at most one dimension.
pub fn emf_line(
    namespace: &str,
    name: &str,
    dimension: Option<(&str, &str)>,
    value: u64,
    timestamp_ms: u64,
) -> String {
    let dimensions: Vec<&str> = dimension.iter().map(|(d, _)| *d).collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        name: value,
    });
    if let Some((d, v)) = dimension {
        line[d] = v.into();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_the_metric_and_carries_its_value() {
        let line: serde_json::Value = serde_json::from_str(&emf_line(
            "Bookshelf/prod",
            AUTHORIZER_FAILURES,
            None,
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

    #[test]
    fn a_dimension_is_declared_and_carried() {
        let line: serde_json::Value = serde_json::from_str(&emf_line(
            "Bookshelf/prod",
            AUTHORIZER_REFUSALS,
            Some((REASON, "BadToken")),
            1,
            0,
        ))
        .unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Reason"]])
        );
        assert_eq!(line["Reason"], "BadToken");
        assert_eq!(line["AuthorizerRefusals"], 1);
    }

    #[test]
    fn totals_add_counts_and_keep_the_last_gauge() {
        let m = Metrics::default();
        m.count(ORDERS_ACCEPTED, 1);
        m.count(ORDERS_ACCEPTED, 2);
        m.count_by(AUTHORIZER_REFUSALS, (REASON, "NoToken"), 1);
        m.gauge(OUTBOX_BACKLOG, 7);
        m.gauge(OUTBOX_BACKLOG, 3);
        assert_eq!(m.total(ORDERS_ACCEPTED), 3);
        assert_eq!(m.total("AuthorizerRefusals/Reason=NoToken"), 1);
        assert_eq!(m.total(OUTBOX_BACKLOG), 3);
        assert_eq!(m.total(ORDERS_REJECTED), 0);
    }
}
