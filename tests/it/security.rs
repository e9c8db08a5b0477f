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

/// A job's JSON through nginx, as a value.
fn job_json(ng: &Nginx, id: &str) -> serde_json::Value {
    let r = ng.request("GET", &format!("/api/v1/jobs/{id}"), &[], b"");
    serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
}

fn post_api(ng: &Nginx, body: &str) -> String {
    let r = ng.request(
        "POST",
        "/api/v1/reports/ledger/jobs",
        &[JSON],
        body.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let made: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    made["id"].as_str().expect("id").to_owned()
}

/// Links planted at every name the worker creates for a job (its temporary PDF, its
/// record's temporary file, its lock file) point outside the data dir: their targets stay
/// untouched, the job renders, and nginx will not serve a PDF that is a link.
#[test]
fn links_planted_where_the_worker_writes_are_never_followed() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--render-slots", "1"]].concat());
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let outside = TempDir::new("outside");
    let targets: Vec<std::path::PathBuf> = (1..=3)
        .map(|n| {
            let t = outside.0.join(format!("precious-{n}"));
            std::fs::write(&t, format!("precious {n}")).expect("write target");
            t
        })
        .collect();
    // One long render holds the only slot, so the next job waits, its names known.
    let big = post_api(&ng, &format!(r#"{{"title": "Big", "rows": {BIG_ROWS}}}"#));
    let small = post_api(&ng, r#"{"title": "Small", "rows": 500}"#);
    let (files, jobs) = (srv.data.join("files"), srv.data.join("jobs"));
    symlink(&targets[0], files.join(format!("{small}.pdf.tmp"))).expect("plant .pdf.tmp");
    symlink(&targets[1], jobs.join(format!("{small}.json.tmp"))).expect("plant .json.tmp");
    let lock = jobs.join(format!("{small}.lock"));
    let _ = std::fs::remove_file(&lock);
    symlink(&targets[2], &lock).expect("plant .lock");
    let r = ng.request("DELETE", &format!("/api/v1/jobs/{big}"), &[], b"");
    assert!(r.status == 200 || r.status == 202, "{}", r.text());
    let done = crate::util::wait_for(std::time::Duration::from_secs(60), "the small job", || {
        let j = job_json(&ng, &small);
        (j["state"] == "done" || j["state"] == "failed").then_some(j)
    });
    assert_eq!(done["state"], "done", "{done}");
    for (n, t) in targets.iter().enumerate() {
        let n = n + 1;
        assert_eq!(
            std::fs::read_to_string(t).expect("target"),
            format!("precious {n}")
        );
    }
    let pdf = files.join(format!("{small}.pdf"));
    let meta = std::fs::symlink_metadata(&pdf).expect("pdf");
    assert!(meta.file_type().is_file(), "a file of its own, not a link");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o640,
        "readable by the group only"
    );
    let record = std::fs::symlink_metadata(jobs.join(format!("{small}.json"))).expect("record");
    assert_eq!(record.permissions().mode() & 0o777, 0o640);
    let served = ng.request("GET", &format!("/jobs/{small}/download"), &[], b"");
    assert_eq!(served.status, 200);
    assert!(served.body.starts_with(b"%PDF-"));
    // nginx never follows a link among the PDFs.
    std::fs::remove_file(&pdf).expect("remove pdf");
    symlink(&targets[0], &pdf).expect("plant a linked pdf");
    let r = ng.request("GET", &format!("/jobs/{small}/download"), &[], b"");
    assert_ne!(r.status, 200, "a linked PDF is refused");
    assert!(!r.text().contains("precious"), "{}", r.text());
}

/// Records that are a FIFO, a 2 GB sparse file, or cut short: each is moved to
/// quarantine/ with one WARN and its id answers 404, while every other page answers at once.
#[test]
fn damaged_records_are_quarantined_and_never_stall_the_worker() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let good = post_api(&ng, r#"{"title": "Good", "rows": 20}"#);
    let good_record = std::fs::read(srv.data.join(format!("jobs/{good}.json"))).expect("good");
    let ids = [
        "2c4b1f0e-8d7a-4e3b-9c2d-1a0f9e8d7c61",
        "3d5c2a1f-9e8b-4f4c-8d3e-2b1a0f9e8d72",
        "4e6d3b2a-af9c-4a5d-9e4f-3c2b1a0f9e83",
    ];
    let jobs = srv.data.join("jobs");
    let fifo = jobs.join(format!("{}.json", ids[0]));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let sparse = std::fs::File::create(jobs.join(format!("{}.json", ids[1]))).expect("create");
    sparse.set_len(2 << 30).expect("2 GB sparse");
    let cut = String::from_utf8_lossy(&good_record).replace(&good, ids[2]);
    std::fs::write(jobs.join(format!("{}.json", ids[2])), &cut[..cut.len() / 2]).expect("cut");
    for id in ids {
        let started = std::time::Instant::now();
        let r = ng.request("GET", &format!("/jobs/{id}"), &[], b"");
        assert_eq!(r.status, 404, "{id}: {}", r.text());
        assert!(
            started.elapsed().as_secs_f64() < 2.0,
            "{id} answered at once"
        );
        let again = ng.request("GET", &format!("/api/v1/jobs/{id}"), &[], b"");
        assert_eq!(again.status, 404, "still no such job");
        assert!(
            srv.data.join(format!("quarantine/{id}.json")).exists(),
            "{id} quarantined"
        );
        let warnings = srv
            .log()
            .lines()
            .filter(|l| l.contains(id) && l.contains("WARN"))
            .count();
        assert_eq!(warnings, 1, "{id}: one WARN\n{}", srv.log());
    }
    let started = std::time::Instant::now();
    assert_eq!(ng.request("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(
        ng.request("GET", &format!("/jobs/{good}"), &[], b"").status,
        200
    );
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "other pages answer at once"
    );
}

/// `POST /reports/ledger` straight over FastCGI as the web server would pass it for a client
/// at `addr`, authenticated as `user` when given.
fn post_as_reply(srv: &TestServer, addr: &str, user: Option<&str>) -> FcgiReply {
    let body = form("Flood", BIG_ROWS, "a4", "portrait");
    let mut params = cgi_params(
        "POST",
        "/reports/ledger",
        body.len(),
        "application/x-www-form-urlencoded",
    );
    params.extend(pair(b"REMOTE_ADDR", addr.as_bytes()));
    if let Some(user) = user {
        params.extend(pair(b"REMOTE_USER", user.as_bytes()));
    }
    let mut conn = srv.connect();
    conn.send_request(1, false, &params, body.as_bytes(), 65535);
    conn.read_reply(1)
}

/// [`post_as_reply`]'s status and Retry-After.
fn post_as(srv: &TestServer, addr: &str, user: Option<&str>) -> (u16, Option<String>) {
    let reply = post_as_reply(srv, addr, user);
    (reply.status(), reply.header("Retry-After"))
}

/// One client flooding POSTs gets 429 (with Retry-After and a page saying why) once it has
/// its cap of jobs queued or running; another client, or the same address signed in as a
/// user, is served in the same second.
#[test]
fn one_client_flooding_posts_gets_429_after_its_cap_and_others_are_still_served() {
    let srv = TestServer::start(
        &[
            &BIG_FLAGS[..],
            &["--render-slots", "1", "--max-jobs-per-client", "8"],
        ]
        .concat(),
    );
    let started = std::time::Instant::now();
    let answers: Vec<(u16, Option<String>)> =
        (0..90).map(|_| post_as(&srv, "10.9.8.7", None)).collect();
    let accepted = answers.iter().filter(|(s, _)| *s == 303).count();
    let refused: Vec<&(u16, Option<String>)> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(accepted, 8, "the cap: {answers:?}");
    assert_eq!(refused.len(), 82, "{answers:?}");
    assert!(
        refused.iter().all(|(_, retry)| retry.is_some()),
        "Retry-After on every 429"
    );
    let (other, _) = post_as(&srv, "10.9.8.6", None);
    assert_eq!(other, 303, "another client is served");
    let (signed_in, _) = post_as(&srv, "10.9.8.7", Some("alice"));
    assert_eq!(signed_in, 303, "a signed-in user is a client of their own");
    println!(
        "per-client cap: 92 POSTs answered in {:.2} s, 8 accepted, 82 refused with 429",
        started.elapsed().as_secs_f64()
    );
    let page = post_as_reply(&srv, "10.9.8.7", None).text();
    assert!(page.contains("Status: 429 Too Many Requests"), "{page}");
    assert!(page.contains("as many as one person may"), "{page}");
}

/// `Basic` credentials for `user:password`.
fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// nginx with `auth_basic` in front binds each job to its user: another user gets 404 on
/// every address of it, its owner sees it in the list of reports.
#[test]
fn with_auth_basic_a_users_job_is_theirs_alone() {
    let srv = TestServer::start(&[]);
    let users = TempDir::new("htpasswd");
    let htpasswd = users.0.join("htpasswd");
    std::fs::write(&htpasswd, "alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n").expect("htpasswd");
    let auth = format!(
        "server_name localhost;\n        auth_basic \"reports\";\n        auth_basic_user_file {};",
        htpasswd.display()
    );
    let ng = Nginx::start_edited(&[&srv.socket], &srv.data.join("files"), false, &|conf| {
        conf.replacen("server_name localhost;", &auth, 1)
    });
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    let as_alice = [("Authorization", alice.as_str())];
    let as_bob = [("Authorization", bob.as_str())];
    assert_eq!(
        ng.request("GET", "/", &[], b"").status,
        401,
        "nginx asks who you are"
    );
    let body = form("Alice's ledger", "30", "a4", "portrait");
    let r = ng.request(
        "POST",
        "/reports/ledger",
        &[FORM, as_alice[0]],
        body.as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let job = r.header("Location").expect("Location").to_owned();
    let id = job.rsplit('/').next().expect("id").to_owned();
    crate::util::wait_for(std::time::Duration::from_secs(60), "alice's job", || {
        let s = ng.request("GET", &format!("{job}/status.json"), &as_alice, b"");
        s.text().contains("\"done\"").then_some(())
    });
    for (method, path) in [
        ("GET", job.clone()),
        ("GET", format!("{job}/status.json")),
        ("GET", format!("{job}/events")),
        ("GET", format!("{job}/download")),
        ("GET", format!("/api/v1/jobs/{id}")),
        ("DELETE", format!("/api/v1/jobs/{id}")),
        ("POST", format!("{job}/cancel")),
    ] {
        let r = ng.request(method, &path, &as_bob, b"");
        assert_eq!(r.status, 404, "bob {method} {path}: {}", r.text());
    }
    assert_eq!(ng.request("GET", &job, &as_alice, b"").status, 200);
    let pdf = ng.request("GET", &format!("{job}/download"), &as_alice, b"");
    assert_eq!(pdf.status, 200);
    assert!(pdf.body.starts_with(b"%PDF-"));
    let hers = ng.request("GET", "/", &as_alice, b"").text();
    assert!(
        hers.contains(&format!("href=\"/jobs/{id}\"")) && hers.contains("Your recent reports"),
        "{hers}"
    );
    let his = ng.request("GET", "/", &as_bob, b"").text();
    assert!(!his.contains(&id), "{his}");
    assert!(his.contains("None yet"), "{his}");
}

/// With a data budget of 3 MB, a report whose estimated file does not fit is refused when it
/// is asked for (507, with a page saying why), while one that fits is made.
#[test]
fn a_job_over_the_disk_budget_is_refused_at_the_form_and_one_that_fits_is_made() {
    let srv = TestServer::start(&["--max-data-bytes", "3000000"]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), false);
    let big = form("Too big", "100000", "a4", "portrait");
    let r = ng.request("POST", "/reports/ledger", &[FORM], big.as_bytes());
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(r.text().contains("does not fit"), "{}", r.text());
    let r = ng.request(
        "POST",
        "/api/v1/reports/ledger/jobs",
        &[JSON],
        br#"{"title": "Too big", "rows": 100000}"#,
    );
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    let small = form("Fits", "2000", "a4", "portrait");
    let r = ng.request("POST", "/reports/ledger", &[FORM], small.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    let job = r.header("Location").expect("Location").to_owned();
    let done = crate::util::wait_for(std::time::Duration::from_secs(60), "the job", || {
        let s = ng
            .request("GET", &format!("{job}/status.json"), &[], b"")
            .text();
        (s.contains("\"done\"") || s.contains("\"failed\"")).then_some(s)
    });
    assert!(done.contains("\"done\""), "{done}");
    let id = job.rsplit('/').next().expect("id");
    let size = std::fs::metadata(srv.data.join(format!("files/{id}.pdf")))
        .expect("pdf")
        .len();
    println!("disk budget: a 2,000-row report took {size} bytes of the 3,000,000");
    assert!(size < 3_000_000);
}

/// `cmd args…` as `uid`:`gid` with no other groups; its exit status and stderr.
fn run_as(uid: u32, gid: u32, cmd: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(cmd)
        .args(args)
        .output()
        .expect("run setpriv (util-linux)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The production set-up `install.sh` makes — the worker as a user of its own, nginx's
/// worker processes in the worker's group, nobody else in it — played with Debian's base
/// accounts: the worker as daemon:daemon, nginx as `user nobody daemon;`, and another
/// application of nginx's user (a PHP-FPM pool running as www-data, say) as nobody:nogroup.
#[test]
fn only_nginx_in_the_workers_group_reaches_the_socket_and_pdfs_not_other_apps_of_its_user() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run the worker and nginx as other users");
        return;
    }
    const DAEMON: u32 = 1;
    const NOBODY: u32 = 65534;
    const NOGROUP: u32 = 65534;
    let srv = TestServer::start_as(DAEMON, DAEMON, &[]);
    let ng = Nginx::start_edited(&[&srv.socket], &srv.data.join("files"), false, &|conf| {
        conf.replace("user root;", "user nobody daemon;")
    });
    let r = ng.request("GET", "/", &[], b"");
    assert_eq!(r.status, 200, "nginx reaches the socket: {}", r.text());
    let r = ng.request(
        "POST",
        "/generate",
        &[FORM],
        form("Private", "300", "a4", "portrait").as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let id = r
        .header("Location")
        .and_then(|l| l.rsplit("/jobs/").next())
        .expect("a job in Location")
        .to_owned();
    wait_for(
        std::time::Duration::from_secs(60),
        "the render to finish",
        || {
            let r = ng.request("GET", &format!("/jobs/{id}/status.json"), &[], b"");
            json_field(&r.text(), "state").filter(|s| s == "done")
        },
    );
    let pdf = srv.data.join(format!("files/{id}.pdf"));
    let stored = std::fs::read(&pdf).expect("the stored PDF");
    let r = ng.request("GET", &format!("/jobs/{id}/download"), &[], b"");
    assert_eq!(r.status, 200, "nginx reads the PDF: {}", ng.error_log());
    assert_eq!(r.body, stored, "the download is the stored file");

    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(&pdf).expect("stat the PDF");
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (1, 1, 0o640));
    let meta = std::fs::metadata(&srv.socket).expect("stat the socket");
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.gid(), meta.mode() & 0o777), (1, 0o660));

    let pdf_path = pdf.to_str().expect("a UTF-8 path");
    let socket = srv.socket.to_str().expect("a UTF-8 path");
    let connect = "import socket, sys\n\
                   s = socket.socket(socket.AF_UNIX)\n\
                   s.connect(sys.argv[1])";
    let python = "/usr/bin/python3";
    // What nginx's workers are: the same user, in the group. The control: it can.
    let (ok, err) = run_as(NOBODY, DAEMON, "cat", &[pdf_path]);
    assert!(ok, "in the group the PDF is readable: {err}");
    let (ok, err) = run_as(NOBODY, DAEMON, python, &["-c", connect, socket]);
    assert!(ok, "in the group the socket connects: {err}");
    // Another application of the same user, outside the group: refused both.
    let (ok, err) = run_as(NOBODY, NOGROUP, "cat", &[pdf_path]);
    assert!(!ok && err.contains("Permission denied"), "the PDF: {err}");
    let (ok, err) = run_as(NOBODY, NOGROUP, python, &["-c", connect, socket]);
    assert!(!ok && err.contains("PermissionError"), "the socket: {err}");
}

/// `install.sh`'s edit of nginx.conf gives nginx's workers the worker's group and
/// `uninstall.sh` takes it back; a conf that names another group stops the install.
#[test]
fn install_puts_nginxs_workers_in_the_group_and_uninstall_takes_them_out() {
    let dir = TempDir::new("nginx-group");
    let edit = |conf: &str, args: &str| -> (i32, String) {
        let file = dir.0.join("nginx.conf");
        std::fs::write(&file, conf).expect("write a conf");
        let script = format!(
            ". {}/deploy/install.sh; set +e; nginx_group {} {args}; echo \"status $?\"",
            env!("CARGO_MANIFEST_DIR"),
            file.display()
        );
        let out = run("bash", &["-c", &script]);
        let (text, status) = out.trim_end().rsplit_once("status ").expect("a status");
        (status.trim().parse().expect("a number"), text.to_owned())
    };
    // Debian's nginx.conf: the user line, with a comment after it, gets the group.
    let debian = "user www-data; # as shipped\nworker_processes auto;\n\
                  events {\n\tworker_connections 768;\n}\nhttp {\n\tinclude x;\n}\n";
    let (status, added) = edit(debian, "pdfworker");
    assert_eq!(status, 0);
    assert_eq!(
        added,
        debian.replacen("user www-data; # as shipped", "user www-data pdfworker;", 1)
    );
    // Run again: nothing changes; undone: as it was, but for the comment.
    assert_eq!(edit(&added, "pdfworker"), (0, added.clone()));
    let (status, undone) = edit(&added, "pdfworker --undo");
    assert_eq!(status, 0);
    assert_eq!(undone, debian.replacen(" # as shipped", "", 1));
    // No user line: nginx's built-in user, in the group.
    let (status, out) = edit("events {}\n", "pdfworker");
    assert_eq!(
        (status, out.as_str()),
        (0, "user nobody pdfworker;\nevents {}\n")
    );
    // A `user` inside a block is not the main one; another group is the operator's call.
    let (_, out) = edit("user a;\nhttp { user b; }\n", "pdfworker");
    assert_eq!(out, "user a pdfworker;\nhttp { user b; }\n");
    let (status, _) = edit("user www-data www-data;\nevents {}\n", "pdfworker");
    assert_eq!(status, 3, "a group of its own stops the install");
}
