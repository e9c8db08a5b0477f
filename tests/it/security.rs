//! Hostile clients (issue #11), through a real nginx: requests another site makes a browser
//! send are refused, the site's own and programs' are not.

use crate::util::*;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn a_cross_site_post_is_refused_with_403_and_the_sites_own_is_accepted() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    // The test client sends `Host: localhost`; nginx passes it and its own port.
    let own = format!("http://localhost:{}", ng.port);
    let other_port = "http://localhost:1".to_owned();
    let other_scheme = format!("https://localhost:{}", ng.port);
    let body = form("CSRF", "10", "a4", "portrait");
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![FORM];
        all.extend_from_slice(headers);
        ng.request("POST", "/reports/ledger", &all, body.as_bytes())
    };
    for (what, headers) in [
        ("another origin", vec![("Origin", "https://evil.example")]),
        (
            "the same host on another port",
            vec![("Origin", other_port.as_str())],
        ),
        ("another scheme", vec![("Origin", other_scheme.as_str())]),
        (
            "another host",
            vec![("Origin", &*format!("http://127.0.0.2:{}", ng.port))],
        ),
        ("an opaque origin", vec![("Origin", "null")]),
        (
            "Sec-Fetch-Site: cross-site",
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
        (
            "Sec-Fetch-Site: same-site",
            vec![("Sec-Fetch-Site", "same-site")],
        ),
        (
            "a same-origin Origin but cross-site fetch metadata",
            vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let r = post(&headers);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert!(
            r.text().contains("another web site"),
            "{what}: {}",
            r.text()
        );
    }
    // The site's own form, a browser that sends no Origin, and programs are accepted.
    for (what, headers) in [
        (
            "same origin",
            vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        ),
        ("no Origin", vec![]),
        (
            // What a browser sends for a form on a page with `Referrer-Policy: no-referrer`.
            "a null Origin from a same-origin page",
            vec![("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        ),
    ] {
        let r = post(&headers);
        assert_eq!(r.status, 303, "{what}: {}", r.text());
    }
    // The API and cancel alike: problem+json for the API.
    let evil = ("Origin", "https://evil.example");
    let r = ng.request(
        "POST",
        "/api/v1/reports/ledger/jobs",
        &[JSON, evil],
        br#"{"title": "x", "rows": 5}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    let r = ng.request(
        "POST",
        "/api/v1/reports/ledger/jobs",
        &[JSON],
        br#"{"title": "x", "rows": 5}"#,
    );
    assert_eq!(r.status, 202, "an API client sends no Origin: {}", r.text());
    let made: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let id = made["id"].as_str().expect("id");
    let r = ng.request("DELETE", &format!("/api/v1/jobs/{id}"), &[evil], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = ng.request("POST", &format!("/jobs/{id}/cancel"), &[evil], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    // Reading is never refused: a link from another site still opens the page.
    let r = ng.request("GET", &format!("/jobs/{id}"), &[evil], b"");
    assert_eq!(r.status, 200);
}

/// Every answer carries the browser hardening, whatever the front end; the pages have no
/// inline script or style for the policy to allow; a job's page and its PDF are private.
#[test]
fn every_answer_carries_the_security_headers_and_pages_need_no_inline_code() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let r = ng.request(
        "POST",
        "/reports/ledger",
        &[FORM],
        form("Headers", "10", "a4", "portrait").as_bytes(),
    );
    assert_eq!(r.status, 303);
    let job = r.header("Location").expect("Location").to_owned();
    let id = job.rsplit('/').next().expect("id").to_owned();
    crate::util::wait_for(
        std::time::Duration::from_secs(60),
        "the job to finish",
        || {
            let s = ng.request("GET", &format!("{job}/status.json"), &[], b"");
            s.text().contains("\"done\"").then_some(())
        },
    );
    let paths = [
        "/".to_owned(),
        "/reports/ledger".to_owned(),
        job.clone(),
        format!("{job}/status.json"),
        format!("/api/v1/jobs/{id}"),
        "/api/v1/reports".to_owned(),
        "/no/such/page".to_owned(),
    ];
    for path in &paths {
        let r = ng.request("GET", path, &[], b"");
        let csp = r.header("Content-Security-Policy").unwrap_or("");
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp:?}"
        );
        assert_eq!(
            r.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"), "{path}");
        let text = r.text();
        if r.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html"))
        {
            assert!(
                !text.contains("<script>") && !text.contains("<style"),
                "{path}: inline code"
            );
        }
    }
    let page = ng.request("GET", &job, &[], b"");
    assert_eq!(page.header("Cache-Control"), Some("private, no-store"));
    let pdf = ng.request("GET", &format!("{job}/download"), &[], b"");
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.header("Cache-Control"), Some("private, no-store"));
    // The stylesheet the pages link to is served, cacheable under its content's name.
    let home = ng.request("GET", "/", &[], b"").text();
    let href = home
        .split("href=\"")
        .find_map(|s| {
            s.split('"')
                .next()
                .filter(|h| h.starts_with("/static/app."))
        })
        .expect("a stylesheet link")
        .to_owned();
    let css = ng.request("GET", &href, &[], b"");
    assert_eq!(css.status, 200);
    assert!(
        css.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/css"))
    );
    assert!(
        css.header("Cache-Control")
            .is_some_and(|c| c.contains("immutable"))
    );
    assert!(css.text().contains("font"), "{}", css.text());
}
