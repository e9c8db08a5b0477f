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
