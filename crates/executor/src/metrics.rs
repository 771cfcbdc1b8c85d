//! Prometheus metrics, in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A counter: name, help, value.
pub(crate) struct Counter<'a>(pub &'a str, pub &'a str, pub u64);

/// A gauge: name, help, and a value per label set (`{state="new"}`).
pub(crate) struct Gauge<'a>(pub &'a str, pub &'a str, pub Vec<(String, i64)>);

#[derive(Default)]
pub(crate) struct Metrics {
    /// (route, status) → requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    pub(crate) fn count(&self, route: &str, status: u16) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), status)).or_default() += 1;
        }
    }

    /// The exposition text, with the request counters first.
    pub(crate) fn render(&self, counters: &[Counter], gauges: &[Gauge]) -> String {
        let mut out = String::from(
            "# HELP kiln_http_requests_total HTTP requests by route and status code.\n# TYPE kiln_http_requests_total counter\n",
        );
        if let Ok(r) = self.requests.lock() {
            for ((route, code), n) in r.iter() {
                let _ = writeln!(out, "kiln_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}");
            }
        }
        for Counter(name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        for Gauge(name, help, values) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in values {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }
}
