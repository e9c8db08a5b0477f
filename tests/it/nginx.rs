//! End to end through a real nginx (nginx/local.conf.in): keep-alive FastCGI, the product
//! flow, bad input, escaping, client aborts (issues #2 and #3).

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use pdfworker::pdf::{Orientation, Paper};

use crate::util::*;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn post_form(ng: &Nginx, body: &str) -> HttpResponse {
    ng.request("POST", "/generate", &[FORM], body.as_bytes())
}

fn job_id(resp: &HttpResponse) -> String {
    let loc = resp
        .header("Location")
        .unwrap_or_else(|| panic!("no Location in {resp:?}"));
    let id = loc.rsplit("/jobs/").next().unwrap_or("").to_string();
    assert_eq!(id.len(), 36, "Location {loc:?} should end in a job id");
    id
}

fn state(ng: &Nginx, id: &str) -> String {
    let r = ng.request("GET", &format!("/jobs/{id}/status.json"), &[], b"");
    assert_eq!(r.status, 200, "status.json: {}", r.text());
    json_field(&r.text(), "state").unwrap_or_default()
}

fn wait_done(ng: &Nginx, id: &str) {
    let final_state = wait_for(Duration::from_secs(180), "the render to finish", || {
        let s = state(ng, id);
        (s == "done" || s == "failed").then_some(s)
    });
    assert_eq!(final_state, "done", "job {id} failed");
}

/// php-src #10335: the request after an early finish must not wait for the work. With
/// `--max-conns 1` the worker accepts one FastCGI connection at a time, so an answer while
/// the render runs can only have come over nginx's kept-alive connection.
#[test]
fn issue_2_next_request_on_the_kept_alive_connection_is_served_while_the_render_runs() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--max-conns", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let r = post_form(&ng, &form("Keep-alive proof", BIG_ROWS, "a4", "portrait"));
    assert_eq!(
        r.status,
        303,
        "{}\nnginx error log:\n{}",
        r.text(),
        ng.error_log()
    );
    let id = job_id(&r);
    // The very next requests, while the render is still going.
    let s = state(&ng, &id);
    assert!(
        s == "queued" || s == "running",
        "render should still run, state {s}"
    );
    let page = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Please wait"), "{}", page.text());
    let s = state(&ng, &id);
    assert!(
        s == "queued" || s == "running",
        "render should still run, state {s}"
    );
    let log = ng.access_log();
    assert!(log.lines().count() >= 3, "access log: {log}");
    wait_done(&ng, &id);
}

fn product_flow(gzip: bool) {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), gzip);
    let accept = [("Accept-Encoding", "gzip")];

    // Issue #7: the index lists the reports; the demo report's form is generated from its
    // definition and posts to its own address (POST /generate still works, below).
    let home = ng.request("GET", "/", &[], b"");
    assert_eq!(home.status, 200);
    for want in [
        r#"href="/reports/ledger""#,
        r#"href="/reports/sales-by-region""#,
    ] {
        assert!(
            home.text().contains(want),
            "{want} missing:\n{}",
            home.text()
        );
    }
    let ledger = ng.request("GET", "/reports/ledger", &[], b"");
    assert_eq!(ledger.status, 200);
    assert!(
        ledger
            .text()
            .contains("<form method=\"post\" action=\"/reports/ledger\""),
        "{}",
        ledger.text()
    );

    let title = "Q3 – Ελληνικά – Кириллица €";
    let rows = 2000u32;
    let r = ng.request(
        "POST",
        "/generate",
        &[FORM, accept[0]],
        form(title, &rows.to_string(), "a4", "portrait").as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_id(&r);

    let pending = ng.request("GET", &format!("/jobs/{id}"), &accept, b"");
    assert_eq!(pending.status, 200);
    if gzip {
        assert_eq!(
            pending.header("Content-Encoding"),
            Some("gzip"),
            "HTML is gzipped: {:?}",
            pending.headers
        );
    }
    wait_done(&ng, &id);

    let done = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
    assert!(
        done.text()
            .contains(&format!("href=\"/jobs/{id}/download\"")),
        "{}",
        done.text()
    );
    assert!(done.text().contains("Pages"), "{}", done.text());
    // A whole page carries its length, so nginx passes it on instead of chunking the body.
    assert_eq!(
        done.header("Content-Length"),
        Some(done.body.len().to_string().as_str()),
        "{:?}",
        done.headers
    );
    assert!(
        done.header("Transfer-Encoding").is_none(),
        "{:?}",
        done.headers
    );
    assert!(
        !done.text().contains("http-equiv=\"refresh\""),
        "a finished page stops refreshing"
    );

    let dl = ng.request("GET", &format!("/jobs/{id}/download"), &accept, b"");
    assert_eq!(dl.status, 200, "{}", dl.text());
    assert_eq!(dl.header("Content-Type"), Some("application/pdf"));
    assert!(
        dl.header("Content-Encoding").is_none(),
        "PDF bytes are sent as they are"
    );
    let cd = dl
        .header("Content-Disposition")
        .unwrap_or_default()
        .to_string();
    assert!(
        cd.starts_with("attachment;") && cd.contains("filename*=UTF-8''Q3%20%E2%80%93%20"),
        "{cd}"
    );
    let on_disk =
        std::fs::read(srv.data.join("files").join(format!("{id}.pdf"))).expect("published PDF");
    assert_eq!(dl.body.len(), on_disk.len());
    assert!(
        dl.body == on_disk,
        "download must be the file's exact bytes"
    );

    let pdf = srv.dir.0.join("dl.pdf");
    std::fs::write(&pdf, &dl.body).expect("write pdf");
    check_pdf(&pdf, title, rows);
}

/// `qpdf --check` passes; `pdftotext` finds the title (Unicode) and the totals.
pub fn check_pdf(pdf: &Path, title: &str, rows: u32) {
    check_pdf_layout(pdf, title, rows, Paper::A4, Orientation::Portrait);
}

/// [`check_pdf`] for a report of any paper and orientation.
pub fn check_pdf_layout(
    pdf: &Path,
    title: &str,
    rows: u32,
    paper: Paper,
    orientation: Orientation,
) {
    let p = pdf.to_str().expect("utf-8 path");
    run("qpdf", &["--check", p]);
    let text = run("pdftotext", &["-layout", p, "-"]);
    assert!(
        text.contains(title),
        "pdftotext lost the title {title:?}:\n{}",
        text.chars().take(500).collect::<String>()
    );
    let total = pdfworker::pdf::format_amount(pdfworker::pdf::sample_total_cents(rows));
    assert!(
        text.contains("Total") && text.contains(&total),
        "totals row {total} missing"
    );
    let _ = (paper, orientation);
    let pages = pdf_pages(pdf);
    assert!(
        text.contains(&format!("Page {pages} of {pages}")),
        "last footer should say {pages} pages"
    );
}

/// The page count `pdfinfo` reads from the file.
pub fn pdf_pages(pdf: &Path) -> u32 {
    let info = run("pdfinfo", &[pdf.to_str().expect("utf-8 path")]);
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count in pdfinfo output:\n{info}"))
}

#[test]
fn issue_3_product_flow_through_nginx() {
    product_flow(false);
}

#[test]
fn issue_3_product_flow_through_nginx_with_gzip_on() {
    product_flow(true);
}

#[test]
fn issue_3_bad_input_gets_a_4xx_page_and_nothing_breaks() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let long = "t".repeat(201);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "rows 0",
            form("T", "0", "a4", "portrait"),
            400,
            "from 1 to 1000000",
        ),
        (
            "rows 10^9",
            form("T", "1000000000", "a4", "portrait"),
            400,
            "from 1 to 1000000",
        ),
        (
            "unknown paper",
            form("T", "10", "a3", "portrait"),
            400,
            "Choose A4 or Letter",
        ),
        (
            "201-character title",
            form(&long, "10", "a4", "portrait"),
            400,
            "At most 200 characters",
        ),
        (
            "broken encoding",
            "title=%zz&rows=1".to_string(),
            400,
            "could not be read",
        ),
    ];
    for (name, body, status, msg) in cases {
        let r = post_form(&ng, &body);
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert!(
            r.text().contains(msg),
            "{name}: expected {msg:?} in the page:\n{}",
            r.text()
        );
        assert!(
            r.text().contains("<form"),
            "{name}: the form is shown again"
        );
    }
    // The user's values are kept.
    let r = post_form(&ng, &form("Keep me", "0", "letter", "landscape"));
    let t = r.text();
    assert!(
        t.contains("value=\"Keep me\"")
            && t.contains("value=\"letter\" selected")
            && t.contains("value=\"landscape\" selected"),
        "{t}"
    );

    let big = vec![b'x'; 200 * 1024];
    let r = ng.request("POST", "/generate", &[FORM], &big);
    assert_eq!(r.status, 413, "over the body limit");

    let r = ng.request(
        "POST",
        "/generate",
        &[("Content-Type", "text/plain")],
        b"title=x",
    );
    assert_eq!(r.status, 415);
    let r = ng.request("GET", "/generate", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));

    for path in [
        "/jobs/../../etc/passwd",
        "/jobs/..%2F..%2Fetc%2Fpasswd",
        "/jobs/..%2F..%2Fetc%2Fpasswd/download",
        "/jobs/not-a-uuid",
        "/jobs/00000000-0000-4000-8000-000000000000",
        "/jobs/00000000-0000-4000-8000-000000000000/download",
        "/jobs/00000000-0000-4000-8000-00000000000G",
        "/_files/passwd",
        "/no/such/page",
    ] {
        let r = ng.request("GET", path, &[], b"");
        // nginx itself answers 400 for a path that climbs above the root, even %-encoded;
        // the worker must answer 404 for the same path when it does get it.
        let want: &[u16] = if path.contains("..") {
            &[400, 404]
        } else {
            &[404]
        };
        assert!(
            want.contains(&r.status),
            "{path}: expected {want:?}, got {}: {}",
            r.status,
            r.text()
        );
        let direct = srv.connect().get(1, path);
        assert_eq!(
            direct.status(),
            404,
            "{path} straight to the worker: {}",
            direct.text()
        );
        assert!(!r.text().contains("root:"), "{path}: leaked a file");
    }
    assert_eq!(
        ng.request("GET", "/healthz", &[], b"").status,
        200,
        "worker still up"
    );
    // Nothing was written but the data dir's own folders.
    let mut entries: Vec<String> = std::fs::read_dir(&srv.data)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec!["deliveries", "files", "jobs", "keys", "reuse", "users"]
    );
    let jobs = std::fs::read_dir(srv.data.join("jobs"))
        .expect("jobs")
        .count();
    assert_eq!(jobs, 0, "no job was recorded for bad input");
    assert!(!srv.log().contains("panicked"), "worker log shows a panic");
}

#[test]
fn issue_3_a_script_title_is_escaped_on_every_page() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let evil = "<script>alert(1)</script>";
    let bad = post_form(&ng, &form(evil, "0", "a4", "portrait"));
    assert_eq!(bad.status, 400);
    assert!(
        !bad.text().contains(evil),
        "form page must escape the title:\n{}",
        bad.text()
    );
    let r = post_form(&ng, &form(evil, "3", "a4", "portrait"));
    let id = job_id(&r);
    let pending = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
    assert!(
        !pending.text().contains(evil),
        "status page must escape the title"
    );
    assert!(
        pending.text().contains("&#60;script&#62;") || pending.text().contains("&lt;script&gt;")
    );
    wait_done(&ng, &id);
    let done = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
    assert!(
        !done.text().contains(evil),
        "done page must escape the title"
    );
    let dl = ng.request("GET", &format!("/jobs/{id}/download"), &[], b"");
    let cd = dl.header("Content-Disposition").unwrap_or_default();
    assert!(!cd.contains('<') && !cd.contains("\"<"), "{cd}");
}

#[test]
fn issue_3_download_before_done_is_409() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let first = job_id(&post_form(&ng, &form("Big", BIG_ROWS, "a4", "portrait")));
    let second = job_id(&post_form(&ng, &form("Queued", "10", "a4", "portrait")));
    let r = ng.request("GET", &format!("/jobs/{second}/download"), &[], b"");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains(&format!("/jobs/{second}")),
        "links to the status page"
    );
    let page = ng.request("GET", &format!("/jobs/{second}"), &[], b"");
    assert!(page.text().contains("queued"), "{}", page.text());
    assert!(page.text().contains("<progress"), "{}", page.text());
    assert!(page.text().contains("http-equiv=\"refresh\""));
    wait_done(&ng, &first);
    wait_done(&ng, &second);
}

/// Finds the one job recorded in `data` and waits for its record to say done.
fn wait_for_recorded_job(data: &Path) -> String {
    let jobs = data.join("jobs");
    let record = wait_for(Duration::from_secs(30), "a job record", || {
        std::fs::read_dir(&jobs)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
    });
    wait_for(Duration::from_secs(120), "the job to be done", || {
        let text = std::fs::read_to_string(&record).ok()?;
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        compact.contains("\"state\":\"done\"").then_some(text)
    });
    record
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn issue_3_a_client_that_disconnects_right_after_post_still_gets_its_pdf_rendered() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let body = form("Gone away", "4000", "a4", "portrait");
    let mut s = TcpStream::connect(("127.0.0.1", ng.port)).expect("connect");
    let req = format!(
        "POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    drop(s);
    let id = wait_for_recorded_job(&srv.data);
    let pdf = srv.data.join("files").join(format!("{id}.pdf"));
    check_pdf(&pdf, "Gone away", 4000);
}

#[test]
fn issue_3_a_fastcgi_peer_that_closes_right_after_the_request_still_gets_its_pdf_rendered() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    c.send_generate(1, "Closed early", "3000");
    drop(c);
    let id = wait_for_recorded_job(&srv.data);
    check_pdf(
        &srv.data.join("files").join(format!("{id}.pdf")),
        "Closed early",
        3000,
    );
}
