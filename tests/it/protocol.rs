//! The FastCGI layer, spoken to in raw bytes against the real binary (issue #2).

use std::io::Write;
use std::time::Duration;

use crate::util::*;

#[test]
fn keep_conn_serves_several_requests_on_one_connection() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    for i in 0..3 {
        let r = c.get(1, "/healthz");
        assert_eq!((r.status(), r.ends), (200, 1), "request {i}: {}", r.text());
        assert!(r.text().ends_with("ok\n"));
    }
    assert!(
        c.quiet_for(Duration::from_millis(200)),
        "connection must stay open with KEEP_CONN"
    );
}

#[test]
fn without_keep_conn_the_worker_closes_after_end_request() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    c.send_request(1, false, &cgi_params("GET", "/healthz", 0, ""), b"", 65535);
    let r = c.read_reply(1);
    assert_eq!(r.status(), 200);
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "expected EOF after END_REQUEST without KEEP_CONN"
    );
}

#[test]
fn get_values_answers_truthfully_and_the_connection_stays_usable() {
    let srv = TestServer::start(&["--max-conns", "7"]);
    let mut c = srv.connect();
    let mut q = Vec::new();
    for n in [
        "FCGI_MAX_CONNS",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
        "X_UNKNOWN",
    ] {
        q.extend(pair(n.as_bytes(), b""));
    }
    c.send(&record(GET_VALUES, 0, &q));
    let rec = c.read_record().expect("GET_VALUES_RESULT");
    assert_eq!((rec.kind, rec.id), (GET_VALUES_RESULT, 0));
    let text = String::from_utf8_lossy(&rec.content).into_owned();
    // 1-byte lengths: name len, value len, name, value.
    let mut got = Vec::new();
    let mut b = &rec.content[..];
    while b.len() >= 2 {
        let (nl, vl) = (b[0] as usize, b[1] as usize);
        let name = String::from_utf8_lossy(&b[2..2 + nl]).into_owned();
        let value = String::from_utf8_lossy(&b[2 + nl..2 + nl + vl]).into_owned();
        got.push((name, value));
        b = &b[2 + nl + vl..];
    }
    assert_eq!(
        got,
        vec![
            ("FCGI_MAX_CONNS".to_string(), "7".to_string()),
            ("FCGI_MAX_REQS".to_string(), "112".to_string()),
            ("FCGI_MPXS_CONNS".to_string(), "1".to_string()),
        ],
        "raw: {text:?}"
    );
    let r = c.get(1, "/healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn unknown_type_is_answered_and_the_connection_stays_usable() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    c.send(&record(42, 0, b"whatever"));
    let rec = c.read_record().expect("UNKNOWN_TYPE");
    assert_eq!((rec.kind, rec.id), (UNKNOWN_TYPE, 0));
    assert_eq!(rec.content, vec![42, 0, 0, 0, 0, 0, 0, 0]);
    let r = c.get(1, "/healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn unknown_roles_get_unknown_role_and_the_connection_stays_usable() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    for role in [2u16, 3, 99] {
        c.send(&begin(5, role, true));
        let rec = c.read_record().expect("END_REQUEST");
        assert_eq!((rec.kind, rec.id), (END_REQUEST, 5), "role {role}");
        assert_eq!(
            rec.content[4], 3,
            "role {role}: protocolStatus must be FCGI_UNKNOWN_ROLE"
        );
        // Streams the web server still sends for the refused id are ignored.
        c.send(&record(PARAMS, 5, b""));
    }
    let r = c.get(1, "/healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn interleaved_requests_each_get_their_own_answer() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    let p1 = cgi_params("GET", "/healthz", 0, "");
    let p2 = cgi_params("GET", "/no/such/page", 0, "");
    let mut out = Vec::new();
    out.extend(begin(1, 1, true));
    out.extend(begin(2, 1, true));
    let (a1, b1) = p1.split_at(p1.len() / 2);
    let (a2, b2) = p2.split_at(p2.len() / 3);
    out.extend(record(PARAMS, 2, a2));
    out.extend(record(PARAMS, 1, a1));
    out.extend(record(PARAMS, 2, b2));
    out.extend(record(PARAMS, 1, b1));
    out.extend(record(PARAMS, 1, b""));
    out.extend(record(PARAMS, 2, b""));
    out.extend(record(STDIN, 2, b""));
    out.extend(record(STDIN, 1, b""));
    c.send(&out);
    let replies = c.read_replies(&[1, 2]);
    assert_eq!(replies[0].status(), 200, "request 1: {}", replies[0].text());
    assert!(replies[0].text().ends_with("ok\n"));
    assert_eq!(replies[1].status(), 404, "request 2: {}", replies[1].text());
    assert_eq!((replies[0].ends, replies[1].ends), (1, 1));
}

#[test]
fn params_split_at_every_byte_and_padded_bodies_are_reassembled() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    let body = form("Split Ω", "5", "a4", "portrait");
    let params = cgi_params(
        "POST",
        "/generate",
        body.len(),
        "application/x-www-form-urlencoded",
    );
    let mut out = begin(3, 1, true);
    for (i, b) in params.iter().enumerate() {
        out.extend(record_padded(PARAMS, 3, &[*b], i % 256));
    }
    out.extend(record(PARAMS, 3, b""));
    for (i, b) in body.as_bytes().chunks(3).enumerate() {
        out.extend(record_padded(STDIN, 3, b, (i * 37) % 256));
    }
    out.extend(record(STDIN, 3, b""));
    c.send(&out);
    let r = c.read_reply(3);
    assert_eq!(r.status(), 303, "{}", r.text());
    assert!(
        r.header("Location")
            .is_some_and(|l| l.starts_with("/jobs/")),
        "{}",
        r.text()
    );
}

#[test]
fn abort_before_the_handler_starts_ends_the_request_once() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    let mut out = begin(4, 1, true);
    out.extend(record(PARAMS, 4, &cgi_params("GET", "/healthz", 0, "")));
    out.extend(record(PARAMS, 4, b""));
    out.extend(record(ABORT_REQUEST, 4, b""));
    c.send(&out);
    let rec = c.read_record().expect("END_REQUEST");
    assert_eq!((rec.kind, rec.id), (END_REQUEST, 4));
    // STDIN for the aborted id is ignored; nothing else arrives for it.
    c.send(&record(STDIN, 4, b""));
    let r = c.get(1, "/healthz");
    assert_eq!((r.status(), r.ends), (200, 1));
}

#[test]
fn abort_stops_a_streaming_handler_and_end_request_comes_once() {
    let srv = TestServer::start(&BIG_FLAGS);
    let mut c = srv.connect();
    // A job that renders for a while, so its event stream stays open.
    let id = c.submit("Long", BIG_ROWS);
    let first = c.open_events(2, &id);
    assert!(String::from_utf8_lossy(&first.content).contains("text/event-stream"));
    c.send(&record(ABORT_REQUEST, 2, b""));
    let mut ends = 0;
    loop {
        let rec = c.read_record().expect("records until END_REQUEST");
        assert_eq!(rec.id, 2);
        if rec.kind == END_REQUEST {
            ends += 1;
            break;
        }
    }
    assert_eq!(ends, 1);
    // Abort after the end: no second END_REQUEST; the next request is answered normally.
    c.send(&record(ABORT_REQUEST, 2, b""));
    let r = c.get(3, "/healthz");
    assert_eq!((r.status(), r.ends), (200, 1));
    // The render the aborted stream watched was not affected.
    let json = job_json(&mut c, &id);
    let state = json_field(&json, "state").unwrap_or_default();
    assert!(
        ["queued", "running", "done"].contains(&state.as_str()),
        "job state after abort: {json}"
    );
}

#[test]
fn abort_after_finish_does_not_cancel_the_render() {
    let srv = TestServer::start(&[]);
    let mut c = srv.connect();
    let id = c.submit("Keeps going", "20000");
    c.send(&record(ABORT_REQUEST, 1, b""));
    assert!(
        c.quiet_for(Duration::from_millis(300)),
        "an abort after END_REQUEST must not produce records"
    );
    let json = wait_for(Duration::from_secs(120), "the job to finish", || {
        let j = job_json(&mut c, &id);
        matches!(
            json_field(&j, "state").as_deref(),
            Some("done") | Some("failed")
        )
        .then_some(j)
    });
    assert_eq!(
        json_field(&json, "state").as_deref(),
        Some("done"),
        "{json}"
    );
}

#[test]
fn a_body_over_the_limit_gets_413_then_close() {
    let srv = TestServer::start(&["--max-body-bytes", "1000"]);
    // Declared too large: refused before the body is read.
    let mut c = srv.connect();
    let body = vec![b'a'; 5000];
    c.send_request(
        1,
        true,
        &cgi_params(
            "POST",
            "/generate",
            body.len(),
            "application/x-www-form-urlencoded",
        ),
        &body,
        1000,
    );
    let r = c.read_reply(1);
    assert_eq!(r.status(), 413, "{}", r.text());
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "connection must close after 413"
    );
    // Undeclared (no CONTENT_LENGTH), found while reading.
    let mut c = srv.connect();
    let mut params = Vec::new();
    params.extend(pair(b"REQUEST_METHOD", b"POST"));
    params.extend(pair(b"REQUEST_URI", b"/generate"));
    c.send_request(1, true, &params, &body, 700);
    let r = c.read_reply(1);
    assert_eq!(r.status(), 413, "{}", r.text());
    assert!(c.closed_within(Duration::from_secs(5)));
    // The worker still serves others.
    let r = srv.connect().get(1, "/healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let srv = TestServer::start(&[]);
    let mut good = srv.connect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "version 2",
            vec![2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        ),
        (
            "http on a fastcgi socket",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "short BEGIN_REQUEST body",
            record(BEGIN_REQUEST, 1, &[0, 1, 1]),
        ),
        ("params with a length past the end", {
            let mut v = begin(1, 1, true);
            v.extend(record(PARAMS, 1, &[0x80, 0, 0x10, 0, 1, b'x']));
            v.extend(record(PARAMS, 1, b""));
            v
        }),
        ("stdin before params ended", {
            let mut v = begin(1, 1, true);
            v.extend(record(STDIN, 1, b"x"));
            v
        }),
    ];
    for (name, bytes) in cases {
        let mut c = srv.connect();
        c.send(&bytes);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "{name}: expected the worker to close"
        );
        let r = good.get(1, "/healthz");
        assert_eq!(
            r.status(),
            200,
            "{name}: another connection must be unaffected"
        );
    }
}

#[test]
fn fifty_half_open_connections_do_not_delay_a_normal_one() {
    let srv = TestServer::start(&["--read-timeout-secs", "30"]);
    let mut stalled = Vec::new();
    for i in 0..50 {
        let mut c = srv.connect();
        match i % 3 {
            0 => {}
            1 => c.send(&[1, 1, 0]),
            _ => {
                let mut v = begin(1, 1, true);
                v.extend(record(PARAMS, 1, b"\x0eREQUEST_METHOD"));
                c.send(&v);
            }
        }
        stalled.push(c);
    }
    let r = srv.connect().get(1, "/healthz");
    assert_eq!(r.status(), 200);
    // Answered while every stalled connection is still open (their read timeout is 30 s).
    for (i, c) in stalled.iter_mut().enumerate() {
        assert!(
            c.quiet_for(Duration::from_millis(1)),
            "stalled connection {i} was closed early"
        );
    }
}

#[test]
fn a_connection_stalled_mid_record_is_closed_after_the_read_timeout() {
    let srv = TestServer::start(&["--read-timeout-secs", "1"]);
    let mut c = srv.connect();
    c.send(&[1, 1, 0, 1]);
    assert!(
        c.closed_within(Duration::from_secs(10)),
        "stalled connection must be closed"
    );
    assert!(
        srv.log().contains("read timeout"),
        "one log line names the reason:\n{}",
        srv.log()
    );
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let mut srv = TestServer::start(&[]);
    let mut c = srv.connect();
    // Half a request: BEGIN and PARAMS, no STDIN yet.
    let mut v = begin(1, 1, true);
    v.extend(record(PARAMS, 1, &cgi_params("GET", "/healthz", 0, "")));
    v.extend(record(PARAMS, 1, b""));
    c.send(&v);
    std::thread::sleep(Duration::from_millis(200));
    let pid = srv.pid().expect("pid");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    std::thread::sleep(Duration::from_millis(200));
    c.send(&record(STDIN, 1, b""));
    let r = c.read_reply(1);
    assert_eq!(
        r.status(),
        200,
        "the in-flight request is answered during shutdown"
    );
    let status = srv.terminate().expect("exit status");
    assert!(
        status.success(),
        "clean exit after SIGTERM, got {status}; log:\n{}",
        srv.log()
    );
    assert!(!srv.socket.exists(), "the socket file is removed on exit");
}

#[test]
fn get_values_with_a_name_repeated_thousands_of_times_answers_each_name_once() {
    let srv = TestServer::start(&["--max-conns", "1024"]);
    let mut c = srv.connect();
    let mut q = Vec::new();
    while q.len() < 60_000 {
        q.extend(pair(b"FCGI_MAX_REQS", b""));
    }
    c.send(&record(GET_VALUES, 0, &q));
    let rec = c.read_record().expect("GET_VALUES_RESULT");
    assert_eq!(rec.kind, GET_VALUES_RESULT);
    assert_eq!(
        rec.content,
        [&[13u8, 5][..], b"FCGI_MAX_REQS", b"16384"].concat()
    );
    assert_eq!(
        c.get(1, "/healthz").status(),
        200,
        "the connection is still usable"
    );
    assert!(!srv.log().contains("panicked"), "{}", srv.log());
}

#[test]
fn a_peer_trickling_a_request_is_dropped_after_the_request_timeout() {
    let srv = TestServer::start(&["--read-timeout-secs", "5", "--request-timeout-secs", "2"]);
    let mut c = srv.connect();
    c.send(&begin(1, 1, true));
    let params = cgi_params("GET", "/healthz", 0, "");
    let started = std::time::Instant::now();
    let mut closed = false;
    // One byte per record, a record every 300 ms: each read is well inside the read timeout.
    for b in params.iter().take(40) {
        if c.stream.write_all(&record(PARAMS, 1, &[*b])).is_err() {
            closed = true;
            break;
        }
        if c.closed_within(Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a trickled request must be dropped, still open after {:?}",
        started.elapsed()
    );
    assert!(
        srv.log().contains("request not received in time"),
        "{}",
        srv.log()
    );
}

#[test]
fn a_refused_body_then_a_new_request_on_the_same_id_closes_instead_of_swallowing_it() {
    let srv = TestServer::start(&["--max-body-bytes", "100"]);
    let mut c = srv.connect();
    let mut out = begin(1, 1, true);
    out.extend(record(
        PARAMS,
        1,
        &cgi_params(
            "POST",
            "/generate",
            5000,
            "application/x-www-form-urlencoded",
        ),
    ));
    out.extend(record(PARAMS, 1, b""));
    c.send(&out);
    let r = c.read_reply(1);
    assert_eq!(r.status(), 413);
    // The web server takes END_REQUEST as freeing id 1 and reuses it at once.
    c.send_request(1, true, &cgi_params("GET", "/healthz", 0, ""), b"", 65535);
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "expected a close, not a silently eaten request"
    );
}

#[test]
fn shutdown_ends_an_open_event_stream_with_end_request() {
    let mut srv = TestServer::start(&[&BIG_FLAGS[..], &["--shutdown-grace-secs", "10"]].concat());
    let mut c = srv.connect();
    let id = c.submit("Watched", BIG_ROWS);
    c.open_events(2, &id);
    let pid = srv.pid().expect("pid");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let mut ended = 0;
    while let Some(rec) = c.read_record() {
        if rec.kind == END_REQUEST && rec.id == 2 {
            ended += 1;
        }
    }
    assert_eq!(
        ended, 1,
        "the event stream ends with one END_REQUEST on shutdown"
    );
    let status = srv.terminate().expect("exit");
    assert!(status.success(), "{status}\n{}", srv.log());
}

/// Issue #10: a web server that sends no `REQUEST_URI` (RFC 3875 defines only `SCRIPT_NAME`
/// and `PATH_INFO`; flup sends those) is routed by them, traversal is still no route, and an
/// address that is not UTF-8 is a 400, never routed by another param instead.
#[test]
#[allow(clippy::type_complexity)] // the table spells out its cases
fn routing_uses_one_source_per_request_and_script_name_plus_path_info_without_request_uri() {
    let srv = TestServer::start(&[]);
    let id = srv.connect().submit("Routed", "10");
    wait_for(Duration::from_secs(30), "the job to end", || {
        let j = job_json(&mut srv.connect(), &id);
        (json_field(&j, "state").as_deref() == Some("done")).then_some(())
    });
    let ask = |pairs: &[(&str, &[u8])]| {
        let mut params = Vec::new();
        for (n, v) in pairs {
            params.extend(pair(n.as_bytes(), v));
        }
        let mut c = srv.connect();
        c.send_request(1, true, &params, b"", 65535);
        c.read_reply(1)
    };
    let get = b"GET".as_slice();
    let status = format!("/jobs/{id}/status.json");
    let rest = format!("/{id}/status.json");
    let climb = format!("/../jobs/{id}/status.json");
    let download = format!("/jobs/{id}/download");
    let climbing = format!("/x/..{download}");
    let mut not_utf8 = format!("{climbing}?").into_bytes();
    not_utf8.push(0xff);
    let cases: Vec<(Vec<(&str, &[u8])>, u16, &str)> = vec![
        (
            vec![
                ("REQUEST_METHOD", get),
                ("SCRIPT_NAME", b""),
                ("PATH_INFO", status.as_bytes()),
            ],
            200,
            "PATH_INFO alone",
        ),
        (
            vec![("REQUEST_METHOD", get), ("SCRIPT_NAME", status.as_bytes())],
            200,
            "SCRIPT_NAME alone",
        ),
        (
            vec![
                ("REQUEST_METHOD", get),
                ("SCRIPT_NAME", b"/jobs"),
                ("PATH_INFO", rest.as_bytes()),
            ],
            200,
            "SCRIPT_NAME + PATH_INFO",
        ),
        (
            vec![
                ("REQUEST_METHOD", get),
                ("SCRIPT_NAME", b"/x"),
                ("PATH_INFO", climb.as_bytes()),
            ],
            404,
            "traversal is no route",
        ),
        (
            vec![("REQUEST_METHOD", get), ("PATH_INFO", b"/healthz\xff")],
            400,
            "PATH_INFO not UTF-8",
        ),
        (
            vec![
                ("REQUEST_METHOD", get),
                ("REQUEST_URI", &not_utf8),
                ("DOCUMENT_URI", download.as_bytes()),
            ],
            400,
            "REQUEST_URI not UTF-8: 400, not DOCUMENT_URI instead",
        ),
        (
            vec![
                ("REQUEST_METHOD", get),
                ("REQUEST_URI", climbing.as_bytes()),
                ("DOCUMENT_URI", download.as_bytes()),
            ],
            404,
            "REQUEST_URI as sent, not the web server's normalised DOCUMENT_URI",
        ),
        (
            vec![
                ("REQUEST_METHOD", get),
                ("REQUEST_URI", b"/healthz?x=1"),
                ("SCRIPT_NAME", b"/elsewhere"),
            ],
            200,
            "REQUEST_URI wins over SCRIPT_NAME",
        ),
    ];
    for (pairs, want, what) in cases {
        let r = ask(&pairs);
        assert_eq!(r.status(), want, "{what}: {}", r.text());
    }
}

/// A client like Python's flup writes an empty DATA record after STDIN, on a connection
/// without KEEP_CONN, while renders run: the worker closes cleanly — its write side first,
/// then it reads what is left — so every answer arrives whole and no reset destroys one
/// (issue #10). 1,000 connections.
#[test]
fn trailing_records_after_the_request_never_cost_the_answer() {
    let srv = TestServer::start(&BIG_FLAGS);
    let mut busy = srv.connect();
    let _ = busy.submit("Busy", BIG_ROWS);
    let mut request = begin(1, 1, false);
    request.extend(record(PARAMS, 1, &cgi_params("GET", "/healthz", 0, "")));
    request.extend(record(PARAMS, 1, b""));
    request.extend(record(STDIN, 1, b""));
    let trailing = record(DATA, 1, b"");
    let mut failures = Vec::new();
    for n in 0..1000 {
        let mut s = std::os::unix::net::UnixStream::connect(&srv.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        if let Err(e) = std::io::Write::write_all(&mut s, &request) {
            failures.push(format!("{n}: write: {e}"));
            continue;
        }
        // The answer is in our receive buffer, unread, when the trailing record goes out —
        // as when flup writes it after the worker has answered and closed.
        std::thread::sleep(Duration::from_millis(10));
        if let Err(e) = std::io::Write::write_all(&mut s, &trailing) {
            failures.push(format!("{n}: write DATA: {e}"));
            continue;
        }
        let mut got = Vec::new();
        match std::io::Read::read_to_end(&mut s, &mut got) {
            Ok(_) => {
                let text = String::from_utf8_lossy(&got);
                // The answer, then END_REQUEST (type 3) for request 1, then the close.
                let ended = got.windows(4).any(|w| w == [1, 3, 0, 1]);
                if !text.contains("Status: 200") || !ended {
                    failures.push(format!("{n}: incomplete answer ({} bytes)", got.len()));
                }
            }
            Err(e) => failures.push(format!("{n}: read: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 1000 failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
