//! `GET /metrics` (issue #8): this process's numbers in the Prometheus text format (version
//! 0.0.4), through `prometheus-client`.
//!
//! Events are counted as they happen: each request by its route *pattern* (a fixed set, never
//! the raw path, so label values stay bounded whatever paths are tried) and status, and timed
//! per route; each render's duration and pages through the runner's [`RenderObserver`]. Levels
//! — jobs by state, the queue, render slots, the memory budget, FastCGI connections and
//! protocol errors — are read at scrape time from [`Runner`] and [`fastcgi::Stats`] by a
//! [`Collector`], so no copy of them has to be kept in step.
//!
//! Every number is this process's own (jobs by state excepted: those are the data directory's
//! records). nginx balances requests over the instances, so a scraper asks each instance
//! through its own location (`/metrics/<n>` in nginx/pdfworker.conf); nginx serves both
//! locations to loopback only. Imports `fastcgi` (its `Stats`) and `jobs`; no prometheus type
//! leaves this module.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::watch::StreamGauges;
use super::{AppError, Reply};
use crate::fastcgi::{self, ProtocolErrorKind};
use crate::jobs::{RenderEnd, Runner, State};

/// Request durations, seconds: pages answer in about a millisecond; the upper buckets catch a
/// definition reload or a slow `options_query`.
const REQUEST_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Render durations, seconds, up to the default `--render-timeout-secs` (30 minutes).
const RENDER_SECONDS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Pages of a finished PDF, up to the default `--max-pages`.
const RENDER_PAGES: [f64; 11] = [
    1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0, 100000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry of one process and the metrics the app records into.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabel>,
}

/// The render histograms, shared with the runner's observer.
#[derive(Clone)]
struct Renders {
    seconds: Histograms<StateLabel>,
    pages: Histogram,
}

impl Renders {
    fn observe(&self, end: &RenderEnd) {
        let state = StateLabel {
            state: end.state.as_str(),
        };
        self.seconds
            .get_or_create(&state)
            .observe(end.elapsed.as_secs_f64());
        if end.state == State::Done {
            self.pages.observe(f64::from(end.pages));
        }
    }
}

/// When a request began and the route it counts under; see [`Metrics::start`].
#[derive(Debug, Clone, Copy)]
pub struct RequestTimer {
    route: &'static str,
    started: Instant,
}

impl Metrics {
    /// Metrics of `runner` (which from now on tells them about every render's end) and of the
    /// FastCGI server that bumps `fastcgi`.
    pub fn new(runner: &Runner, fastcgi: Arc<fastcgi::Stats>, streams: StreamGauges) -> Metrics {
        let mut registry = Registry::with_prefix("pdfworker");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route pattern and HTTP status",
            requests.clone(),
        );
        let request_seconds: Histograms<RouteLabel> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_SECONDS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer being handed to the connection, by \
             route pattern (event streams: until the stream starts)",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let renders = Renders {
            seconds: Family::new_with_constructor(|| Histogram::new(RENDER_SECONDS)),
            pages: Histogram::new(RENDER_PAGES),
        };
        // Present from the start, so a rate over them is 0 rather than missing.
        for state in [State::Done, State::Failed, State::Cancelled] {
            let _ = renders.seconds.get_or_create(&StateLabel {
                state: state.as_str(),
            });
        }
        registry.register_with_unit(
            "render_duration",
            "Renders of this process by how their job ended: done, failed, cancelled, or queued (handed \
             back at shutdown)",
            Unit::Seconds,
            renders.seconds.clone(),
        );
        registry.register(
            "render_pages",
            "Pages of each PDF this process finished",
            renders.pages.clone(),
        );
        registry.register_collector(Box::new(Levels {
            runner: runner.clone(),
            fastcgi,
            streams,
        }));
        if !runner.observe_renders(Arc::new(move |end: &RenderEnd| renders.observe(end))) {
            log::warn!("metrics: the runner already has a render observer; renders not counted");
        }
        Metrics {
            registry,
            requests,
            request_seconds,
        }
    }

    /// Starts timing a request for `path`.
    pub fn start(&self, path: &str) -> RequestTimer {
        RequestTimer {
            route: route_of(path),
            started: Instant::now(),
        }
    }

    /// Counts the request `timer` started as answered with `status`, and its duration.
    pub fn finish(&self, timer: &RequestTimer, status: u16) {
        self.observe_request(timer.route, status, timer.started.elapsed());
    }

    fn observe_request(&self, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// Everything, in the Prometheus text format.
    ///
    /// # Errors
    /// Only when formatting fails, which writing to a `String` does not.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The answer to `GET /metrics`.
    pub(super) fn reply(&self) -> Reply {
        match self.encode() {
            Ok(text) => Reply {
                status: 200,
                headers: vec![
                    ("Content-Type", prometheus_text::CONTENT_TYPE.into()),
                    ("Cache-Control", "no-store".into()),
                ],
                body: text.into_bytes(),
            },
            Err(e) => AppError::Internal(format!("encoding metrics: {e}")).reply(),
        }
    }
}

/// The route pattern `path` falls under; "other" for anything no route takes. Follows the
/// table in `App::route`.
pub fn route_of(path: &str) -> &'static str {
    let mut segments = path.trim_start_matches('/').split('/');
    let parts = [
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ];
    match parts {
        [Some(""), None, ..] => "/",
        [Some("reports"), Some(_), None, _] => "/reports/:id",
        [Some("generate"), None, ..] => "/generate",
        [Some("healthz"), None, ..] => "/healthz",
        [Some("metrics"), None, ..] => "/metrics",
        [Some("jobs"), Some(_), None, _] => "/jobs/:id",
        [Some("jobs"), Some(_), Some("status.json"), None] => "/jobs/:id/status.json",
        [Some("jobs"), Some(_), Some("events"), None] => "/jobs/:id/events",
        [Some("jobs"), Some(_), Some("download"), None] => "/jobs/:id/download",
        _ => "other",
    }
}

/// What is read at scrape time.
struct Levels {
    runner: Runner,
    fastcgi: Arc<fastcgi::Stats>,
    streams: StreamGauges,
}

impl fmt::Debug for Levels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Levels").finish_non_exhaustive()
    }
}

impl Collector for Levels {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_jobs(&mut encoder)?;
        let usage = self.runner.usage();
        let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let gauges = [
            (
                "queue_depth",
                "Jobs of this process waiting for a render slot or for memory",
                None,
                to_u64(usage.queued),
            ),
            (
                "render_slots_in_use",
                "Render slots taken in this process",
                None,
                to_u64(usage.slots_in_use),
            ),
            (
                "render_slots",
                "Render slots of this process (--render-slots)",
                None,
                to_u64(usage.slots),
            ),
            (
                "memory_budget_in_use",
                "Memory reserved by this process's admitted renders",
                Some(Unit::Bytes),
                usage.memory_in_use,
            ),
            (
                "memory_budget",
                "This process's render memory budget (--memory-budget-mb)",
                Some(Unit::Bytes),
                usage.memory_budget,
            ),
            (
                "fastcgi_connections_open",
                "FastCGI connections being served",
                None,
                self.fastcgi.connections_open(),
            ),
            (
                "sse_streams_open",
                "Live-progress streams (/jobs/ID/events) open in this process",
                None,
                to_u64(self.streams.open()),
            ),
            (
                "sse_jobs_watched",
                "Jobs with at least one open live-progress stream here (one poller each)",
                None,
                to_u64(self.streams.watched_jobs()),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        let accepted = ConstCounter::new(self.fastcgi.connections_accepted());
        accepted.encode(encoder.encode_descriptor(
            "fastcgi_connections_accepted",
            "FastCGI connections accepted since the start",
            None,
            accepted.metric_type(),
        )?)?;
        self.encode_protocol_errors(&mut encoder)
    }
}

impl Levels {
    fn encode_jobs(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let counts = self.runner.job_counts();
        let help = "Job records in the data directory by state, as of the last janitor sweep \
                    (at most one janitor interval old), this process's own jobs as they are now";
        let kind = ConstGauge::new(0u64).metric_type();
        let mut family = encoder.encode_descriptor("jobs", help, None, kind)?;
        for (state, n) in [
            (State::Queued, counts.queued),
            (State::Running, counts.running),
            (State::Done, counts.done),
            (State::Failed, counts.failed),
            (State::Cancelled, counts.cancelled),
        ] {
            let labels = [("state", state.as_str())];
            ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_protocol_errors(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let help = "FastCGI protocol errors by kind: malformed records or pairs, unknown record \
                    types or roles, a reused request id, requests over the limits, stalled peers";
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = encoder.encode_descriptor("fastcgi_protocol_errors", help, None, kind)?;
        for error in ProtocolErrorKind::ALL {
            let labels = [("kind", error.as_str())];
            ConstCounter::new(self.fastcgi.protocol_errors(error))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{self, EstimateFn, JobId, RenderFailure, RenderFn, RenderOutcome};
    use crate::jobs::{RunnerConfig, Store};
    use crate::pdf::{Orientation, Paper};

    fn streams(runner: &Runner) -> StreamGauges {
        super::super::Watchers::new(runner.clone(), 1, super::super::watch::DEFAULT_HEARTBEAT)
            .gauges()
    }

    #[test]
    fn a_route_label_is_the_pattern_never_the_path() {
        let id = "3f2b7c1e-9a4d-4b8e-8c1f-0a2b3c4d5e6f";
        let cases = [
            ("/".to_owned(), "/"),
            (String::new(), "/"),
            ("/reports/ledger".to_owned(), "/reports/:id"),
            ("/reports/no-such-report".to_owned(), "/reports/:id"),
            ("/generate".to_owned(), "/generate"),
            ("/healthz".to_owned(), "/healthz"),
            ("/metrics".to_owned(), "/metrics"),
            ("//metrics".to_owned(), "/metrics"),
            (format!("/jobs/{id}"), "/jobs/:id"),
            ("/jobs/not-a-uuid".to_owned(), "/jobs/:id"),
            (format!("/jobs/{id}/status.json"), "/jobs/:id/status.json"),
            (format!("/jobs/{id}/events"), "/jobs/:id/events"),
            (format!("/jobs/{id}/download"), "/jobs/:id/download"),
            (format!("/jobs/{id}/other"), "other"),
            ("/metrics/1".to_owned(), "other"),
            ("/reports/ledger/x".to_owned(), "other"),
            ("/etc/passwd".to_owned(), "other"),
            ("/a/b/c/d/e".to_owned(), "other"),
        ];
        for (path, want) in cases {
            assert_eq!(route_of(&path), want, "path {path:?}");
        }
    }

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A runner with 3 slots and a 64 MiB budget whose render makes 7 pages, or fails for
    /// the title "broken".
    fn runner(tag: &str) -> (Runner, TempDir) {
        let dir =
            std::env::temp_dir().join(format!("pdfworker-metrics-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("store: {e}"));
        let render: RenderFn = Arc::new(|request, progress, _| {
            if request.title == "broken" {
                return Err(RenderFailure::Failed {
                    user: "broken on purpose".into(),
                    detail: "test".into(),
                });
            }
            progress(7, 7);
            Ok(RenderOutcome {
                pages: 7,
                ..RenderOutcome::default()
            })
        });
        let estimate: EstimateFn = Arc::new(|_| 7);
        let config = RunnerConfig {
            slots: 3,
            memory_budget: 64 * 1024 * 1024,
            ..RunnerConfig::default()
        };
        (Runner::new(store, render, estimate, config), TempDir(dir))
    }

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    fn assert_samples(text: &str, want: &[(&str, &str)]) {
        for (series, value) in want {
            assert_eq!(sample(text, series), Some(*value), "{series} in:\n{text}");
        }
    }

    #[test]
    fn a_scrape_shows_requests_by_route_and_every_level_even_at_zero() {
        let (runner, _dir) = runner("levels");
        let metrics = Metrics::new(
            &runner,
            Arc::new(fastcgi::Stats::default()),
            streams(&runner),
        );
        for _ in 0..2 {
            let timer = metrics.start("/healthz");
            metrics.finish(&timer, 200);
        }
        metrics.finish(&metrics.start("/jobs/nope"), 404);

        let text = metrics.encode().unwrap_or_else(|e| panic!("{e}"));
        assert_samples(
            &text,
            &[
                (
                    r#"pdfworker_http_requests_total{route="/healthz",status="200"}"#,
                    "2",
                ),
                (
                    r#"pdfworker_http_requests_total{route="/jobs/:id",status="404"}"#,
                    "1",
                ),
                (
                    r#"pdfworker_http_request_duration_seconds_count{route="/healthz"}"#,
                    "2",
                ),
                (
                    r#"pdfworker_render_duration_seconds_count{state="done"}"#,
                    "0",
                ),
                ("pdfworker_render_pages_count", "0"),
                (r#"pdfworker_jobs{state="queued"}"#, "0"),
                (r#"pdfworker_jobs{state="done"}"#, "0"),
                ("pdfworker_queue_depth", "0"),
                ("pdfworker_render_slots_in_use", "0"),
                ("pdfworker_render_slots", "3"),
                ("pdfworker_memory_budget_in_use_bytes", "0"),
                ("pdfworker_memory_budget_bytes", "67108864"),
                ("pdfworker_fastcgi_connections_open", "0"),
                ("pdfworker_fastcgi_connections_accepted_total", "0"),
            ],
        );
        for kind in ProtocolErrorKind::ALL {
            let series = format!(r#"pdfworker_fastcgi_protocol_errors_total{{kind="{kind}"}}"#);
            assert_eq!(sample(&text, &series), Some("0"), "{series} in:\n{text}");
        }
        for family in ["pdfworker_http_requests_total", "pdfworker_jobs"] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family} described in:\n{text}"
            );
        }
        assert!(!text.contains("nope"), "no raw path in a label:\n{text}");
    }

    fn request(title: &str) -> jobs::Request {
        jobs::Request {
            report: "test".into(),
            definition_hash: "0".into(),
            title: title.into(),
            values: Default::default(),
            paper: Paper::A4,
            orientation: Orientation::Portrait,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_ended_render_shows_in_the_render_histograms() {
        let (runner, _dir) = runner("renders");
        let metrics = Metrics::new(
            &runner,
            Arc::new(fastcgi::Stats::default()),
            streams(&runner),
        );
        let mut ids: Vec<JobId> = Vec::new();
        for title in ["fine", "broken"] {
            let pending = runner
                .enqueue(request(title))
                .unwrap_or_else(|e| panic!("{e}"));
            ids.push(pending.id());
            runner.start(pending);
        }
        // Until two renders have ended, whatever way (a job waiting for its slot is briefly
        // not live here, so its absence from `progress` does not mean it has ended).
        let ended = |text: &str| -> u64 {
            ["done", "failed", "cancelled", "queued"]
                .iter()
                .filter_map(|state| {
                    let series =
                        format!("pdfworker_render_duration_seconds_count{{state=\"{state}\"}}");
                    sample(text, &series).and_then(|v| v.parse::<u64>().ok())
                })
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = metrics.encode().unwrap_or_else(|e| panic!("{e}"));
            if ended(&text) >= 2 && ids.iter().all(|id| runner.progress(*id).is_none()) {
                break text;
            }
            assert!(Instant::now() < deadline, "renders did not end:\n{text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_samples(
            &text,
            &[
                (
                    r#"pdfworker_render_duration_seconds_count{state="done"}"#,
                    "1",
                ),
                (
                    r#"pdfworker_render_duration_seconds_count{state="failed"}"#,
                    "1",
                ),
                (
                    r#"pdfworker_render_duration_seconds_bucket{state="done",le="+Inf"}"#,
                    "1",
                ),
                ("pdfworker_render_pages_count", "1"),
                ("pdfworker_render_pages_sum", "7.0"),
                (r#"pdfworker_render_pages_bucket{le="5"}"#, "0"),
                (r#"pdfworker_render_pages_bucket{le="10"}"#, "1"),
                ("pdfworker_render_slots_in_use", "0"),
                ("pdfworker_memory_budget_in_use_bytes", "0"),
            ],
        );
    }

    #[test]
    fn metrics_answer_in_the_prometheus_text_content_type() {
        let (runner, _dir) = runner("reply");
        let reply = Metrics::new(
            &runner,
            Arc::new(fastcgi::Stats::default()),
            streams(&runner),
        )
        .reply();
        assert_eq!(reply.status, 200);
        let content_type = reply
            .headers
            .iter()
            .find(|(n, _)| *n == "Content-Type")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            content_type,
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let body = String::from_utf8_lossy(&reply.body);
        assert!(body.contains("# TYPE pdfworker_jobs gauge"), "{body}");
    }
}
