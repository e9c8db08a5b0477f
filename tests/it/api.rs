//! The JSON API for programs (issue #9) through a real nginx: reports and their schemas, jobs
//! from 202 to the download, problem+json errors, idempotency across two workers, cancel,
//! reuse of identical jobs, the OpenAPI document checked by a real validator, and README's
//! curl examples run as written.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn json(resp: &HttpResponse) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", resp.status, resp.text()))
}

fn post_job(ng: &Nginx, report: &str, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![JSON];
    all.extend_from_slice(headers);
    ng.request(
        "POST",
        &format!("/api/v1/reports/{report}/jobs"),
        &all,
        body.as_bytes(),
    )
}

fn get_job(ng: &Nginx, id: &str) -> Value {
    let r = ng.request("GET", &format!("/api/v1/jobs/{id}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

fn wait_state(ng: &Nginx, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(limit, "the job to reach the expected state", || {
        let job = get_job(ng, id);
        pred(&job).then_some(job)
    })
}

fn is_problem(resp: &HttpResponse, status: u16) -> Value {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/problem+json"),
        "{resp:?}"
    );
    let body = json(resp);
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

#[test]
fn api_lists_every_report_with_a_parameter_schema_a_client_can_build_a_form_from() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let r = ng.request("GET", "/api/v1/reports", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let body = json(&r);
    let reports = body["reports"].as_array().expect("reports array");
    let ledger = reports
        .iter()
        .find(|r| r["id"] == "ledger")
        .expect("the ledger is listed");
    let params = ledger["params"].as_array().expect("params");
    let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["title", "rows", "paper", "orientation"]);
    let rows = &params[1];
    assert_eq!(rows["type"], "integer");
    assert_eq!(rows["min"], "1");
    assert_eq!(rows["default"], "1000");
    assert_eq!(params[2]["options"], serde_json::json!(["a4", "letter"]));
    assert_eq!(ledger["jobs_url"], "/api/v1/reports/ledger/jobs");
    let sales = reports
        .iter()
        .find(|r| r["id"] == "sales-by-region")
        .expect("the grouped example is listed");
    let types: Vec<&str> = sales["params"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert!(
        types.contains(&"date") && types.contains(&"choice"),
        "{types:?}"
    );
    let one = ng.request("GET", "/api/v1/reports/sales-by-region", &[], b"");
    assert_eq!(json(&one)["id"], "sales-by-region");
}

#[test]
fn api_job_is_accepted_at_once_then_done_and_its_file_downloads_through_nginx() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let r = post_job(
        &ng,
        "ledger",
        r#"{"title": "Q3", "rows": 5000, "paper": "a4", "orientation": "portrait"}"#,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let job = json(&r);
    let id = job["id"].as_str().expect("id").to_owned();
    assert_eq!(
        r.header("Location"),
        Some(format!("/api/v1/jobs/{id}").as_str())
    );
    assert_eq!(job["report"], "ledger");
    assert_eq!(job["title"], "Q3");
    assert!(
        job["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{job}"
    );
    // Long-poll until done: each answer comes when the job changes (or after 10 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let r = ng.request("GET", &format!("/api/v1/jobs/{id}?wait=10"), &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let job = json(&r);
        if job["state"] == "done" {
            break job;
        }
        assert!(
            job["state"] == "queued" || job["state"] == "running",
            "{job}"
        );
        assert!(Instant::now() < deadline, "not done in time: {job}");
    };
    for key in ["started_at", "finished_at"] {
        assert!(
            done[key].as_str().is_some_and(|t| t.ends_with('Z')),
            "{done}"
        );
    }
    assert!(
        done["pages_total"].as_u64().is_some_and(|n| n > 1),
        "{done}"
    );
    let url = done["download_url"].as_str().expect("download_url");
    let pdf = ng.request("GET", url, &[], b"");
    assert_eq!(pdf.status, 200);
    let stored = std::fs::read(srv.data.join(format!("files/{id}.pdf"))).expect("stored file");
    assert_eq!(pdf.body, stored, "the download is the stored file");
    assert_eq!(done["size_bytes"].as_u64(), Some(stored.len() as u64));
}

#[test]
fn api_errors_are_problem_json_with_the_status_and_a_list_per_field() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    // Wrong content type.
    let r = ng.request(
        "POST",
        "/api/v1/reports/ledger/jobs",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"title=x&rows=1",
    );
    is_problem(&r, 415);
    // Not JSON, not an object.
    is_problem(&post_job(&ng, "ledger", "{\"title\": ", &[]), 400);
    is_problem(&post_job(&ng, "ledger", "[1, 2]", &[]), 400);
    // Bad values: each named, none of the good ones.
    let r = post_job(
        &ng,
        "ledger",
        r#"{"title": "ok", "rows": 0, "paper": "a3", "colour": "red"}"#,
        &[],
    );
    let body = is_problem(&r, 422);
    let mut named: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["colour", "paper", "rows"], "{body}");
    // The reserved webhook member is refused until webhooks exist.
    let r = post_job(
        &ng,
        "ledger",
        r#"{"title": "x", "callback_url": "http://127.0.0.1:9/"}"#,
        &[],
    );
    is_problem(&r, 422);
    // Too large for a job request.
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(40 * 1024));
    is_problem(&post_job(&ng, "ledger", &big, &[]), 413);
    // Unknown report, unknown job, a job id that is not one, a wrong method, a bad wait.
    is_problem(&post_job(&ng, "no-such-report", "{}", &[]), 404);
    let missing = "0b8e2f4c-2f7e-4d38-9a55-2b7a0d0e5a11";
    is_problem(
        &ng.request("GET", &format!("/api/v1/jobs/{missing}"), &[], b""),
        404,
    );
    is_problem(&ng.request("GET", "/api/v1/jobs/not-a-job", &[], b""), 404);
    is_problem(
        &ng.request("DELETE", &format!("/api/v1/jobs/{missing}"), &[], b""),
        404,
    );
    let r = ng.request("PUT", "/api/v1/reports/ledger/jobs", &[JSON], b"{}");
    is_problem(&r, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    let ok = post_job(&ng, "ledger", r#"{"title": "w", "rows": 10}"#, &[]);
    let id = json(&ok)["id"].as_str().expect("id").to_owned();
    is_problem(
        &ng.request("GET", &format!("/api/v1/jobs/{id}?wait=61"), &[], b""),
        400,
    );
    is_problem(&ng.request("GET", "/api/v1/nothing-here", &[], b""), 404);
    // And no error was a panic or a 500.
    assert!(!srv.log().contains("panicked"), "{}", srv.log());
}

/// Two workers on one data dir behind one nginx; 20 POSTs at once with one key make one job.
#[test]
fn twenty_racing_posts_with_one_idempotency_key_on_two_workers_make_one_job() {
    let a = TestServer::start(&[]);
    let data = a.data.display().to_string();
    let b = TestServer::start(&["--data-dir", &data]);
    let ng = Nginx::start(&[&a.socket, &b.socket], &a.data.join("files"), false);
    let key = ("Idempotency-Key", "order-4711-export");
    let body = r#"{"title": "Once", "rows": 2000}"#;
    let ids: Vec<(u16, String, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let r = post_job(&ng, "ledger", body, &[key]);
                    let replayed = r.header("Idempotent-Replayed").map(str::to_owned);
                    (
                        r.status,
                        json(&r)["id"].as_str().unwrap_or("").to_owned(),
                        replayed,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let first = &ids[0].1;
    for (status, id, _) in &ids {
        assert_eq!(*status, 202, "{ids:?}");
        assert_eq!(id, first, "every answer names the same job: {ids:?}");
    }
    let replays = ids.iter().filter(|(_, _, r)| r.is_some()).count();
    assert_eq!(replays, 19, "all but the first are replays: {ids:?}");
    let records = std::fs::read_dir(a.data.join("jobs"))
        .expect("jobs dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(records, 1, "one job record on disk");
    // The same key with another body is refused; after the job is done the key still
    // returns it.
    let other = post_job(&ng, "ledger", r#"{"title": "Twice", "rows": 2000}"#, &[key]);
    is_problem(&other, 422);
    wait_state(&ng, first, Duration::from_secs(60), |j| {
        j["state"] == "done"
    });
    let again = post_job(&ng, "ledger", body, &[key]);
    assert_eq!(again.status, 202);
    assert_eq!(json(&again)["id"].as_str(), Some(first.as_str()));
    assert_eq!(json(&again)["state"], "done");
    // Member order does not make another body.
    let reordered = post_job(&ng, "ledger", r#"{"rows": 2000, "title": "Once"}"#, &[key]);
    assert_eq!(json(&reordered)["id"].as_str(), Some(first.as_str()));
}

#[test]
fn cancel_stops_a_large_render_within_pages_removes_its_file_and_ends_the_event_stream() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let big = format!(r#"{{"title": "Big", "rows": {BIG_ROWS}}}"#);
    let running = json(&post_job(&ng, "ledger", &big, &[]))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let queued = json(&post_job(&ng, "ledger", &big, &[]))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_state(&ng, &running, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["pages_done"].as_u64().is_some_and(|n| n >= 20)
    });
    // The queued one (one slot) is cancelled at once.
    let r = ng.request("DELETE", &format!("/api/v1/jobs/{queued}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["state"], "cancelled");
    // The running one stops at its next page.
    let r = ng.request("DELETE", &format!("/api/v1/jobs/{running}"), &[], b"");
    assert!(r.status == 202 || r.status == 200, "{}", r.text());
    let at_cancel = json(&r)["pages_done"].as_u64().unwrap_or(0);
    let ended = wait_state(&ng, &running, Duration::from_secs(10), |j| {
        j["state"] == "cancelled"
    });
    let pages_total = ended["pages_total"].as_u64().unwrap_or(0);
    assert!(pages_total > 20_000, "a large render: {ended}");
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("job {running}: cancelled at page")))
        .unwrap_or_else(|| panic!("no cancel line in the log:\n{log}"));
    let stopped_at: u64 = line
        .split("cancelled at page ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page in {line:?}"));
    println!("cancel: asked at page {at_cancel}, stopped at page {stopped_at} of {pages_total}");
    assert!(
        stopped_at.abs_diff(at_cancel) <= 2 && stopped_at < pages_total / 2,
        "stopped within a page or two of the cancel: at {at_cancel}, stopped at {stopped_at} \
         of {pages_total}"
    );
    for id in [&running, &queued] {
        for name in [format!("{id}.pdf"), format!("{id}.pdf.tmp")] {
            assert!(
                !srv.data.join("files").join(&name).exists(),
                "{name} must not exist"
            );
        }
        // Ended: cancelling again is a conflict, the download is gone, the page says so.
        is_problem(
            &ng.request("DELETE", &format!("/api/v1/jobs/{id}"), &[], b""),
            409,
        );
        assert_eq!(
            ng.request("GET", &format!("/jobs/{id}/download"), &[], b"")
                .status,
            410
        );
        let page = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
        assert!(page.text().contains("was cancelled"), "{}", page.text());
        // The event stream sends its one terminal event and ends.
        let events = ng.request("GET", &format!("/jobs/{id}/events"), &[], b"");
        let text = events.text();
        assert_eq!(text.matches("event: cancelled").count(), 1, "{text}");
    }
    // The worker served on.
    assert_eq!(ng.request("GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn the_wait_page_cancel_button_posts_same_origin_and_refuses_other_sites() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let big = format!(r#"{{"title": "Big", "rows": {BIG_ROWS}}}"#);
    let id = json(&post_job(&ng, "ledger", &big, &[]))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let page = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
    assert!(
        page.text().contains(&format!(
            r#"<form id="cancel" method="post" action="/jobs/{id}/cancel">"#
        )),
        "{}",
        page.text()
    );
    let cross = ng.request(
        "POST",
        &format!("/jobs/{id}/cancel"),
        &[("Sec-Fetch-Site", "cross-site")],
        b"",
    );
    assert_eq!(cross.status, 403, "{}", cross.text());
    assert_ne!(get_job(&ng, &id)["state"], "cancelled");
    let own = ng.request(
        "POST",
        &format!("/jobs/{id}/cancel"),
        &[("Sec-Fetch-Site", "same-origin")],
        b"",
    );
    assert_eq!(own.status, 303, "{}", own.text());
    assert_eq!(own.header("Location"), Some(format!("/jobs/{id}").as_str()));
    wait_state(&ng, &id, Duration::from_secs(10), |j| {
        j["state"] == "cancelled"
    });
}

/// A report copied from the ledger with `reuse_for`, reading the test run's demo database.
fn reuse_reports(dir: &Path) {
    let text = std::fs::read_to_string(demo_reports().join("ledger.toml")).expect("ledger");
    let db = demo_reports().join("demo.sqlite");
    let text = text
        .replace(
            "database = \"demo.sqlite\"",
            &format!("database = {:?}", db.display().to_string()),
        )
        .replace(
            "choose_paper = true",
            "choose_paper = true\nreuse_for = \"10m\"",
        );
    std::fs::write(dir.join("ledger-cached.toml"), text).expect("write report");
}

fn renders_done(ng: &Nginx) -> f64 {
    let text = ng.request("GET", "/metrics", &[], b"").text();
    text.lines()
        .find(|l| l.starts_with(r#"pdfworker_render_duration_seconds_count{state="done"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no render count in /metrics:\n{text}"))
}

#[test]
fn reuse_for_answers_an_identical_request_with_the_same_file_without_rendering_again() {
    let reports = TempDir::new("reuse-reports");
    reuse_reports(&reports.0);
    let dir = reports.0.display().to_string();
    let srv = TestServer::start(&["--reports-dir", &dir]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let body = r#"{"title": "Same", "rows": 3000}"#;
    let first = post_job(&ng, "ledger-cached", body, &[]);
    assert_eq!(first.status, 202, "{}", first.text());
    let id = json(&first)["id"].as_str().expect("id").to_owned();
    // Joins the job while it is on its way...
    let joined = post_job(&ng, "ledger-cached", body, &[]);
    assert_eq!(json(&joined)["id"].as_str(), Some(id.as_str()));
    assert_eq!(joined.header("Pdfworker-Reused"), Some("true"));
    wait_state(&ng, &id, Duration::from_secs(60), |j| j["state"] == "done");
    let bytes = ng
        .request("GET", &format!("/jobs/{id}/download"), &[], b"")
        .body;
    // The render is counted just after its record says done.
    let renders = wait_for(Duration::from_secs(10), "the render counted", || {
        let n = renders_done(&ng);
        (n >= 1.0).then_some(n)
    });
    assert_eq!(renders, 1.0);
    // ...and is answered with the finished one afterwards, by the form too.
    let again = post_job(
        &ng,
        "ledger-cached",
        r#"{"rows": 3000, "title": "Same"}"#,
        &[],
    );
    assert_eq!(json(&again)["id"].as_str(), Some(id.as_str()));
    assert_eq!(json(&again)["state"], "done");
    let form = ng.request(
        "POST",
        "/reports/ledger-cached",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"title=Same&rows=3000&paper=a4&orientation=portrait",
    );
    assert_eq!(form.status, 303);
    assert_eq!(
        form.header("Location"),
        Some(format!("/jobs/{id}").as_str())
    );
    let same = ng
        .request("GET", &format!("/jobs/{id}/download"), &[], b"")
        .body;
    assert_eq!(same, bytes, "the same bytes");
    assert_eq!(renders_done(&ng), renders, "no second render");
    // Other values make another job.
    let other = post_job(
        &ng,
        "ledger-cached",
        r#"{"title": "Same", "rows": 3001}"#,
        &[],
    );
    assert_ne!(json(&other)["id"].as_str(), Some(id.as_str()));
    assert!(other.header("Pdfworker-Reused").is_none());
}

/// The Python interpreter with `openapi_spec_validator`: `./deploy/test` makes a venv with it
/// and names it in `PDFWORKER_PYTHON`.
fn python() -> String {
    std::env::var("PDFWORKER_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn the_served_openapi_document_passes_openapi_spec_validator() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let r = ng.request("GET", "/api/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 200);
    let dir = TempDir::new("openapi");
    let path = dir.0.join("openapi.json");
    std::fs::write(&path, &r.body).expect("write");
    let out = Command::new(python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("run python (./deploy/test installs openapi-spec-validator)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("openapi-spec-validator: {}", said.trim());
    assert!(out.status.success(), "{said}");
    assert!(said.contains("OK"), "{said}");
}

/// README's API section is a script: run it as written against this nginx.
#[test]
fn readme_api_examples_run_as_written() {
    let script = readme_block("api-examples");
    assert!(script.matches("curl ").count() >= 6, "{script}");
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let dir = TempDir::new("readme-api");
    let script = script.replace(
        "http://127.0.0.1:8080",
        &format!("http://127.0.0.1:{}", ng.port),
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir.0)
        .output()
        .expect("run bash");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "README's API examples failed:\n{script}\n{said}"
    );
    let pdfs: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pdf"))
        .collect();
    assert_eq!(pdfs.len(), 1, "the examples download one PDF:\n{said}");
}
