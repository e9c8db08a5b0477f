//! Webhooks (issue #9) against a real HTTP receiver on loopback, started by the test:
//! signatures checked with Python's `hmac`, retries after 500s, delivery after a worker is
//! killed mid-attempt, and destinations refused without sending anything. No test sends
//! traffic outside 127.0.0.0/8.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const SECRET: &str = "test-secret-0123456789abcdef";

/// What the receiver does with its n-th request.
#[derive(Clone, Copy, Debug)]
enum Act {
    Answer(u16),
    /// Read the request and never answer (until the worker goes away).
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    wall: std::time::SystemTime,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("event body is JSON")
    }
}

/// A real HTTP/1.1 server on 127.0.0.1 that acts out `script` (the last act repeats) and
/// records each request.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: Vec<Act>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let act = *script.get(n).or(script.last()).expect("a script");
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve_one(stream, act, &seen));
            }
        });
        Receiver { port, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        wait_for(limit, "webhook requests", || {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
    }
}

fn serve_one(mut stream: TcpStream, act: Act, seen: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    seen.lock().expect("lock").push(Received {
        at: Instant::now(),
        wall: std::time::SystemTime::now(),
        headers,
        body: raw[head_end..].to_vec(),
    });
    match act {
        Act::Answer(status) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Act::Hang => std::thread::sleep(Duration::from_secs(60)),
    }
}

fn worker(extra: &[&str]) -> (TestServer, TempDir) {
    let dir = TempDir::new("webhook-secret");
    let secret = dir.0.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("write secret");
    let secret = secret.display().to_string();
    let mut args = vec!["--webhook-secret-file", secret.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start(&args), dir)
}

/// The body of a raw FastCGI answer, as JSON.
fn body_json(reply: &FcgiReply) -> Value {
    let text = reply.text();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn post_with_callback(srv: &TestServer, url: &str) -> (u16, Value) {
    post_json(
        srv,
        &format!(r#"{{"title": "Hooked", "rows": 300, "callback_url": "{url}"}}"#),
    )
}

/// `POST /api/v1/reports/ledger/jobs` with `body`, straight over FastCGI.
fn post_json(srv: &TestServer, body: &str) -> (u16, Value) {
    let mut conn = srv.connect();
    let params = cgi_params(
        "POST",
        "/api/v1/reports/ledger/jobs",
        body.len(),
        "application/json",
    );
    conn.send_request(1, true, &params, body.as_bytes(), 65535);
    let reply = conn.read_reply(1);
    (reply.status(), body_json(&reply))
}

fn job(srv: &TestServer, id: &str) -> Value {
    let mut conn = srv.connect();
    body_json(&conn.get(1, &format!("/api/v1/jobs/{id}")))
}

/// README's `verify` function (the one it tells receivers to use), run by Python on a
/// delivery: true if the signature header matches the body under [`SECRET`].
fn python_verifies(header: &str, body: &[u8]) -> bool {
    let function = readme_block("webhook-verify");
    let dir = TempDir::new("hmac");
    let path = dir.0.join("body");
    std::fs::write(&path, body).expect("write body");
    let script = format!(
        "{function}\nimport sys\nok = verify(sys.argv[1].encode(), sys.argv[2], \
         open(sys.argv[3], 'rb').read())\nprint('valid' if ok else 'invalid')\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script, SECRET, header])
        .arg(&path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "valid"
}

fn check_signature(r: &Received) {
    let sig = r.header("Pdfworker-Signature");
    assert!(
        python_verifies(sig, &r.body),
        "the signature verifies: {sig}"
    );
    // And a body changed by one byte does not.
    let mut tampered = r.body.clone();
    tampered[0] ^= 1;
    assert!(!python_verifies(sig, &tampered), "a changed body fails");
}

/// Epoch milliseconds of an RFC 3339 UTC time the API writes (`2026-12-07T02:17:05.123Z`).
fn event_ms(v: &Value) -> i64 {
    let s = v.as_str().expect("a time");
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
    secs * 1000 + num(20..23)
}

#[test]
fn a_webhook_is_signed_retried_after_two_500s_and_delivered_at_the_third_attempt() {
    let receiver = Receiver::start(vec![Act::Answer(500), Act::Answer(500), Act::Answer(200)]);
    let (srv, _secret) = worker(&["--webhook-allow", "127.0.0.1"]);
    let url = format!("http://127.0.0.1:{}/hooks/pdf?site=1", receiver.port);
    let (status, made) = post_with_callback(&srv, &url);
    assert_eq!(status, 202, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    let got = receiver.wait_for(3, Duration::from_secs(60));
    let events: Vec<Value> = got.iter().map(Received::json).collect();
    for (r, event) in got.iter().zip(&events) {
        check_signature(r);
        assert_eq!(event["type"], "job.done", "{event}");
        assert_eq!(event["job"]["id"], id.as_str());
        assert_eq!(event["job"]["state"], "done");
        assert_eq!(
            event["id"], events[0]["id"],
            "one event id for every attempt"
        );
        assert_eq!(
            r.header("Pdfworker-Event"),
            events[0]["id"].as_str().unwrap_or("")
        );
        assert_eq!(r.header("Content-Type"), "application/json");
    }
    let deliveries: std::collections::HashSet<&str> =
        got.iter().map(|r| r.header("Pdfworker-Delivery")).collect();
    assert_eq!(deliveries.len(), 3, "each attempt has its own id");
    let gaps: Vec<f64> = got
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    println!("webhook attempts: 500, 500, 200; gaps between attempts {gaps:.2?} s");
    // Retry 1 waits 1 s × 0.5–1.5, retry 2 waits 2 s × 0.5–1.5.
    assert!(gaps[0] >= 0.45 && gaps[1] >= 0.95, "backoff: {gaps:?}");
    let shown = wait_for(Duration::from_secs(10), "the delivery recorded", || {
        let j = job(&srv, &id);
        (j["webhook"]["state"] == "delivered").then_some(j)
    });
    let hook = &shown["webhook"];
    // From the job's end (its record) to the first request the receiver saw.
    let finished = event_ms(&shown["finished_at"]);
    let first = got[0]
        .wall
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    println!(
        "webhook: first attempt {} ms after the job ended",
        first - finished
    );
    assert!(first - finished < 2_000, "the first attempt comes at once");
    assert_eq!(hook["attempts_made"], 3);
    let statuses: Vec<u64> = hook["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["status"].as_u64())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.got().len(), 3, "nothing after the 2xx");
    assert!(
        !srv.log().contains(SECRET),
        "the secret never reaches the log"
    );
}

#[test]
fn a_worker_killed_during_a_delivery_delivers_after_restart_with_a_new_attempt_id() {
    let receiver = Receiver::start(vec![Act::Hang, Act::Answer(204)]);
    let (mut srv, _secret) = worker(&["--webhook-allow", "127.0.0.1/32"]);
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let (status, made) = post_with_callback(&srv, &url);
    assert_eq!(status, 202, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    receiver.wait_for(1, Duration::from_secs(60));
    // The first attempt is in the receiver's hands: kill the worker now.
    srv.kill();
    srv.spawn();
    let got = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(got[0].json()["id"], got[1].json()["id"], "the same event");
    assert_ne!(
        got[0].header("Pdfworker-Delivery"),
        got[1].header("Pdfworker-Delivery"),
        "a new attempt id"
    );
    check_signature(&got[1]);
    let shown = wait_for(Duration::from_secs(10), "the delivery recorded", || {
        let j = job(&srv, &id);
        (j["webhook"]["state"] == "delivered").then_some(j)
    });
    let attempts = shown["webhook"]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{shown}");
    assert!(
        attempts[0]["result"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted")),
        "{shown}"
    );
    assert_eq!(attempts[1]["status"], 204);
}

#[test]
fn callbacks_to_addresses_not_allowed_are_refused_and_nothing_is_sent() {
    let receiver = Receiver::start(vec![Act::Answer(200)]);
    // No --webhook-allow: any public address, nothing private or loopback.
    let (srv, _secret) = worker(&[]);
    let port = receiver.port;
    // A literal address that is not allowed: 422 when the job is made.
    let (status, problem) = post_with_callback(&srv, &format!("http://127.0.0.9:{port}/"));
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["name"], "callback_url", "{problem}");
    let (status, problem) = post_with_callback(&srv, "ftp://example.com/x");
    assert_eq!(status, 422, "{problem}");
    // A name is only known after DNS: refused at delivery, and recorded in the job.
    let (status, made) = post_with_callback(&srv, &format!("http://localhost:{port}/"));
    assert_eq!(status, 202, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    let shown = wait_for(Duration::from_secs(60), "the refusal recorded", || {
        let j = job(&srv, &id);
        (j["webhook"]["state"] == "failed").then_some(j)
    });
    let error = shown["webhook"]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("refused") && error.contains("localhost"),
        "{shown}"
    );
    assert_eq!(shown["state"], "done", "the job itself is done");
    std::thread::sleep(Duration::from_secs(1));
    assert!(receiver.got().is_empty(), "nothing was sent");
}

#[test]
fn without_a_webhook_secret_a_callback_url_is_refused() {
    let srv = TestServer::start(&[]);
    let (status, problem) = post_with_callback(&srv, "http://127.0.0.1:9/");
    assert_eq!(status, 422, "{problem}");
    let detail = problem["errors"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("--webhook-secret-file"), "{problem}");
}

#[test]
fn a_cancelled_job_sends_a_cancelled_event() {
    let receiver = Receiver::start(vec![Act::Answer(200)]);
    let (srv, _secret) = worker(&[&BIG_FLAGS[..], &["--webhook-allow", "127.0.0.1"]].concat());
    let url = format!("http://127.0.0.1:{}/", receiver.port);
    let body = format!(r#"{{"title": "Big", "rows": {BIG_ROWS}, "callback_url": "{url}"}}"#);
    let (_, made) = post_json(&srv, &body);
    let id = made["id"].as_str().expect("id").to_owned();
    let mut conn = srv.connect();
    let params = cgi_params("DELETE", &format!("/api/v1/jobs/{id}"), 0, "");
    conn.send_request(1, true, &params, b"", 65535);
    let reply = conn.read_reply(1);
    assert!(
        reply.status() == 200 || reply.status() == 202,
        "{}",
        reply.text()
    );
    let got = receiver.wait_for(1, Duration::from_secs(30));
    assert_eq!(got[0].json()["type"], "job.cancelled");
    check_signature(&got[0]);
}
