//! `GET /metrics` (issue #8) through a real nginx, read with a real Prometheus parser (the
//! `prometheus_client` Python package's text parser), and the production site's loopback-only
//! rule checked against nginx/pdfworker.conf itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Debian's interpreter, which python3-prometheus-client installs for: a `python3` found first
/// on PATH (pyenv's, say) may lack the package.
const PYTHON: &str = "/usr/bin/python3";

/// Parses the text format with `prometheus_client.parser` and prints every family and sample
/// as JSON. The parser raises on anything it cannot read.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// One sample as the parser read it.
#[derive(Debug)]
struct Sample {
    family: String,
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed.
struct Scrape(Vec<Sample>);

impl Scrape {
    /// The value of the sample `name` whose labels are exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// [`Scrape::get`], which must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let names: Vec<String> = self
                .0
                .iter()
                .map(|s| format!("{} {:?}", s.name, s.labels))
                .collect();
            panic!(
                "no sample {name} {labels:?}; the scrape has:\n{}",
                names.join("\n")
            )
        })
    }

    /// The family's type, as the parser read it from `# TYPE`.
    fn kind(&self, family: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s.family == family)
            .map(|s| s.kind.as_str())
    }
}

fn parse(text: &str) -> Scrape {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {PYTHON}: {e} (./deploy/test installs python3)"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write the scrape");
    }
    let out = child.wait_with_output().expect("wait for python3");
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape (python3-prometheus-client is installed \
         by ./deploy/test): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    let samples = json
        .as_array()
        .expect("a list of samples")
        .iter()
        .map(|s| Sample {
            family: s["family"].as_str().unwrap_or_default().to_owned(),
            kind: s["type"].as_str().unwrap_or_default().to_owned(),
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            labels: s["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    Scrape(samples)
}

fn scrape(ng: &Nginx) -> Scrape {
    let r = ng.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ng.error_log());
    let content_type = r.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "Prometheus text format 0.0.4, not {content_type:?}"
    );
    parse(&r.text())
}

fn job_id(r: &HttpResponse) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("Location").unwrap_or_default();
    location.trim_start_matches("/jobs/").to_owned()
}

fn status(ng: &Nginx, id: &str) -> Value {
    let r = ng.request("GET", &format!("/jobs/{id}/status.json"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("status.json")
}

fn state(ng: &Nginx, id: &str) -> String {
    status(ng, id)["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A histogram's `+Inf` bucket must equal its count: the parser read a whole histogram.
fn assert_whole_histogram(s: &Scrape, name: &str, labels: &[(&str, &str)]) {
    let mut inf = labels.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        s.value(&format!("{name}_bucket"), &inf),
        s.value(&format!("{name}_count"), labels),
        "{name} {labels:?}"
    );
}

#[test]
fn metrics_through_nginx_count_requests_protocol_errors_and_a_finished_job() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let healthz = [("route", "/healthz"), ("status", "200")];

    let before = scrape(&ng);
    let families = [
        ("pdfworker_http_requests", "counter"),
        ("pdfworker_http_request_duration_seconds", "histogram"),
        ("pdfworker_jobs", "gauge"),
        ("pdfworker_queue_depth", "gauge"),
        ("pdfworker_render_slots_in_use", "gauge"),
        ("pdfworker_render_slots", "gauge"),
        ("pdfworker_memory_budget_in_use_bytes", "gauge"),
        ("pdfworker_memory_budget_bytes", "gauge"),
        ("pdfworker_render_duration_seconds", "histogram"),
        ("pdfworker_render_pages", "histogram"),
        ("pdfworker_fastcgi_connections_open", "gauge"),
        ("pdfworker_fastcgi_connections_accepted", "counter"),
        ("pdfworker_fastcgi_protocol_errors", "counter"),
        ("pdfworker_sse_streams_open", "gauge"),
        ("pdfworker_sse_jobs_watched", "gauge"),
    ];
    assert_eq!(before.value("pdfworker_render_slots", &[]), 1.0);
    assert_eq!(
        before.value("pdfworker_render_pages_count", &[]),
        0.0,
        "no render yet"
    );
    let healthz_before = before
        .get("pdfworker_http_requests_total", &healthz)
        .unwrap_or(0.0);

    for _ in 0..5 {
        assert_eq!(ng.request("GET", "/healthz", &[], b"").status, 200);
    }
    let after = scrape(&ng);
    // Every family, typed (request families appear with their first request).
    for (family, kind) in families {
        assert_eq!(after.kind(family), Some(kind), "{family}");
    }
    assert_eq!(
        after.value("pdfworker_http_requests_total", &healthz) - healthz_before,
        5.0,
        "five requests to /healthz"
    );
    let healthz_route = [("route", "/healthz")];
    assert_eq!(
        after.value(
            "pdfworker_http_request_duration_seconds_count",
            &healthz_route
        ),
        after.value("pdfworker_http_requests_total", &healthz),
        "each request timed once"
    );
    assert_whole_histogram(
        &after,
        "pdfworker_http_request_duration_seconds",
        &healthz_route,
    );
    // The first scrape is counted once it is answered, so the second one sees it.
    assert_eq!(
        after.value(
            "pdfworker_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ),
        1.0
    );
    // nginx's kept-alive connection carries this very scrape.
    assert!(after.value("pdfworker_fastcgi_connections_open", &[]) >= 1.0);
    assert!(after.value("pdfworker_fastcgi_connections_accepted_total", &[]) >= 1.0);

    // A record of FastCGI version 2 (spec §3.3 knows only 1): the worker closes the
    // connection and counts the error.
    let bad_version = [("kind", "bad_version")];
    assert_eq!(
        after.value("pdfworker_fastcgi_protocol_errors_total", &bad_version),
        0.0
    );
    let mut raw = srv.connect();
    let mut bad = record(GET_VALUES, 0, b"");
    bad[0] = 2;
    raw.send(&bad);
    assert!(
        raw.closed_within(Duration::from_secs(5)),
        "closed on version 2"
    );
    let errors = scrape(&ng);
    assert_eq!(
        errors.value("pdfworker_fastcgi_protocol_errors_total", &bad_version),
        1.0
    );

    // A job, through to its PDF.
    let body = form("Metrics", "2000", "a4", "portrait");
    let id = job_id(&ng.request("POST", "/generate", &[FORM], body.as_bytes()));
    let done = wait_for(Duration::from_secs(120), "the job to end", || {
        let s = status(&ng, &id);
        matches!(s["state"].as_str(), Some("done" | "failed")).then_some(s)
    });
    assert_eq!(done["state"], "done", "{done}");
    let pages = done["pages_total"].as_f64().expect("pages_total");
    // Jobs by state come from the janitor's sweep, which a finished job asks for.
    let finished = wait_for(
        Duration::from_secs(15),
        "the job among jobs by state",
        || {
            let s = scrape(&ng);
            (s.value("pdfworker_jobs", &[("state", "done")]) == 1.0).then_some(s)
        },
    );
    let done_state = [("state", "done")];
    assert_eq!(
        finished.value("pdfworker_render_duration_seconds_count", &done_state),
        1.0
    );
    assert!(finished.value("pdfworker_render_duration_seconds_sum", &done_state) > 0.0);
    assert_whole_histogram(&finished, "pdfworker_render_duration_seconds", &done_state);
    assert_eq!(finished.value("pdfworker_render_pages_count", &[]), 1.0);
    assert_eq!(finished.value("pdfworker_render_pages_sum", &[]), pages);
    assert_whole_histogram(&finished, "pdfworker_render_pages", &[]);
    assert_eq!(
        finished.value(
            "pdfworker_http_requests_total",
            &[("route", "/generate"), ("status", "303")]
        ),
        1.0
    );
    assert_eq!(finished.value("pdfworker_render_slots_in_use", &[]), 0.0);
    assert_eq!(
        finished.value("pdfworker_memory_budget_in_use_bytes", &[]),
        0.0
    );

    // A long render holds the one slot and its memory; a second job waits in the queue.
    let big = job_id(&ng.request(
        "POST",
        "/generate",
        &[FORM],
        form("Big", BIG_ROWS, "a4", "portrait").as_bytes(),
    ));
    let waiting = job_id(&ng.request(
        "POST",
        "/generate",
        &[FORM],
        form("Waiting", "10", "a4", "portrait").as_bytes(),
    ));
    wait_for(Duration::from_secs(30), "the big render to start", || {
        (state(&ng, &big) == "running").then_some(())
    });
    // Three people watch the two jobs, straight on the worker's socket.
    let mut watching = Vec::new();
    for job in [&big, &big, &waiting] {
        let mut c = srv.connect();
        c.open_events(1, job);
        watching.push(c);
    }
    let busy = scrape(&ng);
    assert_eq!(busy.value("pdfworker_sse_streams_open", &[]), 3.0);
    assert_eq!(busy.value("pdfworker_sse_jobs_watched", &[]), 2.0);
    // Both still where they were after the scrape, so they were there during it.
    assert_eq!(
        state(&ng, &big),
        "running",
        "the big render ended too soon: {}\n{}",
        ng.request("GET", &format!("/jobs/{big}/status.json"), &[], b"")
            .text(),
        srv.log()
    );
    assert_eq!(state(&ng, &waiting), "queued");
    assert_eq!(busy.value("pdfworker_render_slots_in_use", &[]), 1.0);
    assert_eq!(busy.value("pdfworker_queue_depth", &[]), 1.0);
    let memory = busy.value("pdfworker_memory_budget_in_use_bytes", &[]);
    let budget = busy.value("pdfworker_memory_budget_bytes", &[]);
    assert!(
        memory >= 32.0 * 1024.0 * 1024.0 && memory <= budget,
        "one render reserves at least 32 MiB of the {budget} budget, not {memory}"
    );
    assert_eq!(busy.value("pdfworker_jobs", &[("state", "running")]), 1.0);
    assert_eq!(busy.value("pdfworker_jobs", &[("state", "queued")]), 1.0);
}

/// nginx/pdfworker.conf as deploy/test checks it (listen lines moved to loopback), with the
/// instances' sockets in `dir` instead of /run/pdfworker/: started, it serves `/metrics` to
/// loopback and refuses everyone else.
struct ProductionSite {
    port: u16,
    child: std::process::Child,
    dir: TempDir,
}

impl ProductionSite {
    fn start(sockets: &Path, files: &Path) -> ProductionSite {
        let dir = TempDir::new("site");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let site =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nginx/pdfworker.conf"))
                .expect("read nginx/pdfworker.conf");
        let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
        let mut changed = site.clone();
        for (from, to) in [
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            (
                "listen [::]:80;",
                if ipv6 {
                    format!("listen [::1]:{port};")
                } else {
                    String::new()
                },
            ),
            ("/run/pdfworker/", format!("{}/", sockets.display())),
            ("/var/lib/pdfworker/files/", format!("{}/", files.display())),
        ] {
            assert!(
                changed.contains(from),
                "nginx/pdfworker.conf has no {from:?}"
            );
            changed = changed.replace(from, &to);
        }
        std::fs::write(dir.0.join("pdfworker.conf"), changed).expect("write the site");
        // The site includes `fastcgi_params` relative to the config's folder, as in /etc/nginx.
        std::fs::copy("/etc/nginx/fastcgi_params", dir.0.join("fastcgi_params"))
            .expect("copy /etc/nginx/fastcgi_params");
        let root = run("id", &["-u"]).trim() == "0";
        let prefix = dir.0.display();
        let conf = format!(
            "{user}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    proxy_temp_path {prefix}/proxy_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    include {prefix}/pdfworker.conf;
}}
",
            user = if root { "user root;" } else { "" }
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let site = ProductionSite { port, child, dir };
        wait_for(Duration::from_secs(10), "nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        site
    }

    /// `GET path` with curl from the local address `from`; the status and the body.
    fn get_from(&self, from: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let out = run(
            "curl",
            &[
                "--silent",
                "--interface",
                from,
                "--max-time",
                "30",
                "--write-out",
                "\n%{http_code}",
                &url,
            ],
        );
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        let code = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl printed no status for {path} from {from}: {out:?}\n{}",
                self.error_log()
            )
        });
        (code, body.to_owned())
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }
}

impl Drop for ProductionSite {
    fn drop(&mut self) {
        terminate_child(&mut self.child, Duration::from_secs(10));
    }
}

#[test]
fn the_production_site_serves_metrics_to_loopback_only_and_each_instance_at_its_own_path() {
    // Two instances on the sockets the site's upstream names, 1.sock and 2.sock.
    let sockets = TempDir::new("sockets");
    let listen = |n: u32| format!("unix:{}/{n}.sock", sockets.0.display());
    let one = TestServer::start(&["--listen", &listen(1)]);
    let two = TestServer::start(&["--listen", &listen(2)]);
    let site = ProductionSite::start(&sockets.0, &one.data.join("files"));

    // 127.0.0.2 is loopback to the kernel but not in the allow list: nginx must refuse it.
    for path in ["/metrics", "/metrics/1", "/metrics/2"] {
        let (code, _) = site.get_from("127.0.0.2", path);
        assert_eq!(code, 403, "{path} from 127.0.0.2\n{}", site.error_log());
    }
    // Not /healthz: that would reach one of the instances and spoil their counts below.
    let (code, body) = site.get_from("127.0.0.2", "/");
    assert_eq!(code, 200, "the rest of the site serves 127.0.0.2: {body}");

    let (code, body) = site.get_from("127.0.0.1", "/metrics");
    assert_eq!(code, 200, "{body}\n{}", site.error_log());
    assert!(body.contains("# TYPE pdfworker_jobs gauge"), "{body}");

    // Three requests straight to instance 1: its own metrics show them, instance 2's do not.
    let mut direct = one.connect();
    for id in 1..=3 {
        assert_eq!(direct.get(id, "/healthz").status(), 200);
    }
    let healthz = [("route", "/healthz"), ("status", "200")];
    let (code, body) = site.get_from("127.0.0.1", "/metrics/1");
    assert_eq!(code, 200, "{body}\n{}", site.error_log());
    let first = parse(&body);
    assert_eq!(
        first.value("pdfworker_http_requests_total", &healthz),
        3.0,
        "instance 1 counted the requests it was sent"
    );
    let (code, body) = site.get_from("127.0.0.1", "/metrics/2");
    assert_eq!(code, 200, "{body}\n{}", site.error_log());
    let second = parse(&body);
    assert_eq!(
        second.get("pdfworker_http_requests_total", &healthz),
        None,
        "instance 2 was sent none"
    );
    drop(two);
}
