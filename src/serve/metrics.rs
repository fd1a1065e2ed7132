//! `/metrics`: request counts by route, method and status, and a latency histogram by
//! route, in the Prometheus text format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::catalog::VerifyState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative), then the overflow.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The service's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
}

impl Metrics {
    fn record(&self, route: &str, method: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = lat.entry(route.to_string()).or_default();
        let b = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        h.counts[b] += 1;
        h.sum += secs;
        h.count += 1;
    }
}

/// The middleware that counts and times every request, by its route template (so that
/// `/api/containers/a/rows/1` and `…/rows/2` are one series); unmatched paths are
/// `unmatched`.
pub(crate) async fn track(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let t = Instant::now();
    app.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let resp = next.run(req).await;
    app.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    app.metrics.record(
        &route,
        &method,
        resp.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    resp
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn render(State(app): State<Shared>) -> Response {
    let m = &app.metrics;
    let mut s = String::new();
    s.push_str("# HELP vectro_http_requests_total HTTP requests answered, by route template, method and status.\n");
    s.push_str("# TYPE vectro_http_requests_total counter\n");
    for ((route, method, status), n) in m.requests.lock().unwrap_or_else(|p| p.into_inner()).iter()
    {
        let _ = writeln!(
            s,
            "vectro_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    s.push_str("# HELP vectro_http_request_duration_seconds Time to answer a request, by route template.\n");
    s.push_str("# TYPE vectro_http_request_duration_seconds histogram\n");
    for (route, h) in m.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let r = label(route);
        let mut cum = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cum += h.counts[i];
            let _ = writeln!(
                s,
                "vectro_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(
            s,
            "vectro_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            s,
            "vectro_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            s,
            "vectro_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
            h.count
        );
    }
    s.push_str("# HELP vectro_http_requests_in_flight Requests being answered.\n");
    s.push_str("# TYPE vectro_http_requests_in_flight gauge\n");
    let _ = writeln!(
        s,
        "vectro_http_requests_in_flight {}",
        m.in_flight.load(Ordering::Relaxed)
    );
    let (mut ok, mut pending, mut failed) = (0, 0, 0);
    for e in app.catalog.all() {
        match e.verify_state() {
            VerifyState::Ok { .. } => ok += 1,
            VerifyState::Pending => pending += 1,
            VerifyState::Failed { .. } => failed += 1,
        }
    }
    s.push_str(
        "# HELP vectro_containers Containers in the served directory, by verification state.\n",
    );
    s.push_str("# TYPE vectro_containers gauge\n");
    for (state, n) in [("ok", ok), ("pending", pending), ("failed", failed)] {
        let _ = writeln!(s, "vectro_containers{{state=\"{state}\"}} {n}");
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s,
    )
        .into_response()
}
