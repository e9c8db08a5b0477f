//! The app mounted under a path prefix (issue #10, `--base-path /exports`) in a real nginx
//! whose locations are `/exports/…`: every page, link, redirect, the API and the download
//! work under it, and nothing answers outside it.

use std::time::Duration;

use crate::util::*;

/// The local site with its locations moved under `/exports/`, as an existing site adds them.
fn under_exports(conf: String) -> String {
    conf.replace("location / {", "location /exports/ {")
        .replace(
            "location ~ ^/jobs/[^/]+/events$ {",
            "location ~ ^/exports/jobs/[^/]+/events$ {",
        )
        .replace("location /_files/ {", "location /exports/_files/ {")
}

#[test]
fn mounted_under_exports_every_page_link_and_download_works_and_nothing_outside() {
    let srv = TestServer::start(&["--base-path", "/exports"]);
    let ng = Nginx::start_edited(
        &[&srv.socket],
        &srv.data.join("files"),
        false,
        &under_exports,
    );
    let home = ng.request("GET", "/exports/", &[], b"");
    assert_eq!(home.status, 200, "{}", home.text());
    let html = home.text();
    assert!(html.contains(r#"href="/exports/reports/ledger""#), "{html}");
    let css = html
        .split("href=\"")
        .find_map(|s| {
            s.split('"')
                .next()
                .filter(|h| h.starts_with("/exports/static/app."))
        })
        .expect("the stylesheet under the prefix")
        .to_owned();
    assert_eq!(ng.request("GET", &css, &[], b"").status, 200);
    let form_page = ng
        .request("GET", "/exports/reports/ledger", &[], b"")
        .text();
    assert!(
        form_page.contains(r#"action="/exports/reports/ledger""#),
        "{form_page}"
    );

    let body = form("Under a prefix", "300", "a4", "portrait");
    let posted = ng.request(
        "POST",
        "/exports/reports/ledger",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(posted.status, 303, "{}", posted.text());
    let job = posted.header("Location").expect("Location").to_owned();
    assert!(job.starts_with("/exports/jobs/"), "{job}");
    let id = job.rsplit('/').next().expect("id").to_owned();
    let done = wait_for(Duration::from_secs(60), "the job", || {
        let s = ng
            .request("GET", &format!("{job}/status.json"), &[], b"")
            .text();
        s.contains("\"done\"").then_some(s)
    });
    assert!(
        done.contains(&format!("\"download_url\":\"/exports/jobs/{id}/download\"")),
        "{done}"
    );
    let page = ng.request("GET", &job, &[], b"").text();
    assert!(
        page.contains(&format!(r#"href="/exports/jobs/{id}/download""#)),
        "{page}"
    );
    let pdf = ng.request("GET", &format!("{job}/download"), &[], b"");
    assert_eq!(pdf.status, 200, "{}", pdf.text());
    let stored = std::fs::read(srv.data.join(format!("files/{id}.pdf"))).expect("stored");
    assert_eq!(pdf.body, stored, "nginx sent the stored file");
    let events = ng.request("GET", &format!("{job}/events"), &[], b"").text();
    assert!(
        events.contains("event: done") && events.contains("/exports/jobs/"),
        "{events}"
    );

    // The API under the prefix.
    let made = ng.request(
        "POST",
        "/exports/api/v1/reports/ledger/jobs",
        &[("Content-Type", "application/json")],
        br#"{"title": "API", "rows": 10}"#,
    );
    assert_eq!(made.status, 202, "{}", made.text());
    assert!(
        made.header("Location")
            .is_some_and(|l| l.starts_with("/exports/api/v1/jobs/")),
        "{made:?}"
    );
    let doc = ng
        .request("GET", "/exports/api/v1/openapi.json", &[], b"")
        .text();
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("json");
    assert_eq!(doc["servers"][0]["url"], "/exports");

    // Outside the prefix: nothing, through nginx or straight at the worker.
    assert_eq!(
        ng.request("GET", &format!("/jobs/{id}"), &[], b"").status,
        404
    );
    let direct = srv.connect().get(1, &format!("/jobs/{id}"));
    assert_eq!(direct.status(), 404, "{}", direct.text());
    let sibling = srv.connect().get(1, &format!("/exportsx/jobs/{id}"));
    assert_eq!(sibling.status(), 404);
}
