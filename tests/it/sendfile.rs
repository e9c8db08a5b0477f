//! How a finished PDF is handed over (issue #10, `--send-file`): `X-Sendfile` with the
//! file's absolute path, or the bytes through the worker with HEAD, ETag and ranges — the
//! raw FastCGI answers a front end without a file-sending feature would relay.

use std::time::Duration;

use crate::util::*;

/// A done job's id on `srv` (a small ledger).
fn done_job(srv: &TestServer) -> String {
    let mut conn = srv.connect();
    let id = conn.submit("Sent", "400");
    wait_for(Duration::from_secs(60), "the job to finish", || {
        let json = job_json(&mut srv.connect(), &id);
        json.contains("\"done\"").then_some(())
    });
    id
}

/// `GET`/`HEAD` of the download with extra CGI params; the reply's head and body apart.
fn fetch(srv: &TestServer, method: &str, id: &str, extra: &[(&str, &str)]) -> (FcgiReply, Vec<u8>) {
    let mut params = cgi_params(method, &format!("/jobs/{id}/download"), 0, "");
    for (n, v) in extra {
        params.extend(pair(n.as_bytes(), v.as_bytes()));
    }
    let mut conn = srv.connect();
    conn.send_request(1, true, &params, b"", 65535);
    let reply = conn.read_reply(1);
    let split = reply
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    let body = reply.stdout[split + 4..].to_vec();
    (reply, body)
}

#[test]
fn send_file_body_streams_the_pdf_with_head_etag_and_ranges() {
    let srv = TestServer::start(&["--send-file", "body"]);
    let id = done_job(&srv);
    let stored = std::fs::read(srv.data.join(format!("files/{id}.pdf"))).expect("stored pdf");
    let size = stored.len();
    assert!(size > 64 * 1024, "more than one piece: {size} bytes");

    let (whole, body) = fetch(&srv, "GET", &id, &[]);
    assert_eq!(whole.status(), 200, "{}", whole.text());
    assert_eq!(body, stored, "byte for byte");
    assert_eq!(whole.header("Content-Length"), Some(size.to_string()));
    assert_eq!(whole.header("Accept-Ranges").as_deref(), Some("bytes"));
    assert!(
        whole
            .header("Content-Disposition")
            .is_some_and(|d| d.contains("Sent.pdf"))
    );
    assert!(whole.header("X-Accel-Redirect").is_none());
    let etag = whole.header("ETag").expect("an ETag");

    let (head, body) = fetch(&srv, "HEAD", &id, &[]);
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("Content-Length"), Some(size.to_string()));
    assert!(body.is_empty(), "HEAD has no body");

    let (cached, body) = fetch(&srv, "GET", &id, &[("HTTP_IF_NONE_MATCH", &etag)]);
    assert_eq!(cached.status(), 304);
    assert!(body.is_empty());

    let (first, body) = fetch(&srv, "GET", &id, &[("HTTP_RANGE", "bytes=0-99")]);
    assert_eq!(first.status(), 206);
    assert_eq!(body, stored[..100]);
    assert_eq!(
        first.header("Content-Range"),
        Some(format!("bytes 0-99/{size}"))
    );
    let (last, body) = fetch(&srv, "GET", &id, &[("HTTP_RANGE", "bytes=-50")]);
    assert_eq!(last.status(), 206);
    assert_eq!(body, stored[size - 50..]);
    let (middle, body) = fetch(
        &srv,
        "GET",
        &id,
        &[("HTTP_RANGE", "bytes=70000-"), ("HTTP_IF_RANGE", &etag)],
    );
    assert_eq!(middle.status(), 206);
    assert_eq!(body, stored[70000..]);
    let (stale, body) = fetch(
        &srv,
        "GET",
        &id,
        &[("HTTP_RANGE", "bytes=0-9"), ("HTTP_IF_RANGE", "\"old\"")],
    );
    assert_eq!(stale.status(), 200, "a changed file is sent whole");
    assert_eq!(body, stored);
    let (beyond, body) = fetch(
        &srv,
        "GET",
        &id,
        &[("HTTP_RANGE", &format!("bytes={size}-"))],
    );
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.header("Content-Range"),
        Some(format!("bytes */{size}"))
    );
    assert!(body.is_empty());
}

#[test]
fn send_file_x_sendfile_names_the_absolute_path_of_the_pdf() {
    let srv = TestServer::start(&["--send-file", "x-sendfile"]);
    let id = done_job(&srv);
    let (reply, body) = fetch(&srv, "GET", &id, &[]);
    assert_eq!(reply.status(), 200);
    let path = std::fs::canonicalize(srv.data.join(format!("files/{id}.pdf"))).expect("pdf");
    assert_eq!(reply.header("X-Sendfile"), Some(path.display().to_string()));
    assert!(reply.header("X-Accel-Redirect").is_none());
    assert!(reply.header("Content-Disposition").is_some());
    assert!(body.is_empty(), "the web server sends the file");
}
