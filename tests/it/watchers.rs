//! Issue #8: thousands of people watching their reports never stall a page. Watchers hold
//! live-progress streams through a real nginx on the default pool (two workers, default
//! limits) while `/healthz` and status pages are timed; past a worker's stream cap a watcher
//! is answered at once with the progress and a `retry:` delay instead of waiting.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

/// Watchers opened through nginx: the issue's target.
const WATCHERS: usize = 5000;
/// Connections being opened at once by the load client (a crowd arrives over a moment, not in
/// one instant; nginx's listen backlog is 511).
const OPENING_AT_ONCE: usize = 200;

/// A report whose render stays busy for minutes on little output: every row costs a scan of
/// a few thousand demo rows (a correlated subquery), so the job is still running, or still
/// queued, while the test watches it.
fn slow_report(dir: &Path) {
    let db = demo_reports().join("demo.sqlite");
    let toml = format!(
        r#"title = "Watched"
[source]
kind = "sqlite"
database = {db:?}
query = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
SELECT i, (SELECT count(*) FROM ledger WHERE idx <= 5000 + i % 7) AS scanned FROM n
"""
timeout_secs = 3600

[[param]]
name = "rows"
label = "Rows"
type = "integer"
min = 1
max = 10000000
default = 10

[[column]]
field = "i"
heading = "Row"
align = "right"

[[column]]
field = "scanned"
heading = "Scanned"
align = "right"
"#
    );
    std::fs::write(dir.join("watched.toml"), toml).expect("write the report");
}

/// Lets this process (and so nginx and the workers it starts) open as many descriptors as its
/// hard limit allows, with `prlimit` from util-linux.
fn raise_fd_limit(needed: u64) {
    let pid = std::process::id().to_string();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        hard >= needed,
        "the test needs {needed} open files, the hard limit here is {hard}"
    );
    run(
        "prlimit",
        &["--pid", &pid, &format!("--nofile={hard}:{hard}")],
    );
}

/// Resident memory (KiB) and open descriptors of a process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (rss, fds)
}

/// The pids of a process's children (nginx's master → its worker).
fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    field(11) + field(12)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One watcher: opens the job's event stream through nginx and reads until `stop`. Returns
/// whether its first answer was a `progress` event, and the bytes it read.
async fn watch(
    port: u16,
    job: String,
    opening: Arc<tokio::sync::Semaphore>,
    opened: Arc<AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<usize, String> {
    let permit = opening.acquire().await.map_err(|e| e.to_string())?;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET /jobs/{job}/events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let first = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "closed before an event: {}",
                    String::from_utf8_lossy(&seen)
                ));
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(15).any(|w| w == b"event: progress") {
                return Ok(());
            }
        }
    })
    .await;
    first.map_err(|_| "no event within 60 s".to_string())??;
    let head = String::from_utf8_lossy(&seen);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")));
    }
    drop(permit);
    opened.fetch_add(1, Ordering::Relaxed);
    let mut total = seen.len();
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) => return Err("stream ended while the job was not final".into()),
                Ok(n) => total += n,
                Err(e) => return Err(format!("read: {e}")),
            },
            _ = stop.wait_for(|s| *s) => return Ok(total),
        }
    }
}

#[test]
fn five_thousand_watchers_through_nginx_leave_pages_answering_fast() {
    let _alone = machine_to_myself();
    raise_fd_limit(WATCHERS as u64 * 3);
    let reports = TempDir::new("watch-reports");
    slow_report(&reports.0);
    let rdir = reports.0.to_str().expect("utf-8 path");
    let a = TestServer::start(&["--reports-dir", rdir]);
    let data = a.data.to_str().expect("utf-8 path").to_owned();
    let b = TestServer::start(&["--reports-dir", rdir, "--data-dir", &data]);
    let ng = Nginx::start(&[&a.socket, &b.socket], &a.data.join("files"), true);

    // Five long renders on two workers of two slots each: four run, one waits for a slot.
    let jobs: Vec<String> = (0..5)
        .map(|_| {
            let r = ng.request(
                "POST",
                "/reports/watched",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"rows=5000000",
            );
            assert_eq!(r.status, 303, "{}", r.text());
            let loc = r.header("Location").expect("Location").to_owned();
            loc.rsplit('/').next().expect("job id").to_owned()
        })
        .collect();
    let state = |id: &str| {
        let r = ng.request("GET", &format!("/jobs/{id}/status.json"), &[], b"");
        json_field(&r.text(), "state").unwrap_or_default()
    };
    let (running, queued) = wait_for(Duration::from_secs(30), "4 running, 1 queued", || {
        let states: Vec<String> = jobs.iter().map(|id| state(id)).collect();
        let running = jobs.iter().zip(&states).find(|(_, s)| *s == "running");
        let queued = jobs.iter().zip(&states).find(|(_, s)| *s == "queued");
        let n = states.iter().filter(|s| *s == "running").count();
        match (running, queued) {
            (Some((r, _)), Some((q, _))) if n == 4 => Some((r.clone(), q.clone())),
            _ => None,
        }
    });

    let nginx_worker = children(ng.pid()).first().copied().expect("nginx worker");
    let pids = [
        ("worker A", a.pid().expect("A runs")),
        ("worker B", b.pid().expect("B runs")),
        ("nginx", nginx_worker),
    ];
    let before: Vec<(u64, u64)> = pids.iter().map(|(_, p)| usage(*p)).collect();
    let cpu_before: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the load client");
    let opening = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    let opened = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let tasks: Vec<_> = (0..WATCHERS)
        .map(|i| {
            let job = if i % 2 == 0 { &running } else { &queued };
            rt.spawn(watch(
                ng.port,
                job.clone(),
                opening.clone(),
                opened.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    // Pages are timed from the start, while the crowd arrives, and after it is in.
    let mut pages: Vec<Duration> = Vec::new();
    let mut answered_while_opening = 0;
    let mut failed_pages = Vec::new();
    let probe = |pages: &mut Vec<Duration>, failed: &mut Vec<String>, i: usize| {
        let path = match i % 3 {
            0 => "/healthz".to_string(),
            1 => format!("/jobs/{running}"),
            _ => format!("/jobs/{queued}/status.json"),
        };
        let t = Instant::now();
        let r = ng.request("GET", &path, &[], b"");
        pages.push(t.elapsed());
        if r.status != 200 {
            failed.push(format!("{path}: {}", r.status));
        }
    };
    let mut i = 0;
    while opened.load(Ordering::Relaxed) < WATCHERS
        && !tasks.iter().all(|t| t.is_finished())
        && started.elapsed() < Duration::from_secs(120)
    {
        probe(&mut pages, &mut failed_pages, i);
        i += 1;
        answered_while_opening += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let open_after = started.elapsed();
    let all_open = opened.load(Ordering::Relaxed);
    // Five seconds of pages with every watcher connected.
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(5) {
        probe(&mut pages, &mut failed_pages, i);
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let after: Vec<(u64, u64)> = pids.iter().map(|(_, p)| usage(*p)).collect();
    let cpu_after: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let watch_secs = started.elapsed().as_secs_f64();
    let still = [state(&running), state(&queued)];

    stop_tx.send_replace(true);
    let results: Vec<Result<usize, String>> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        out
    });
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let bytes: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();

    pages.sort();
    eprintln!(
        "watchers: {all_open} of {WATCHERS} open after {open_after:.1?} \
         (through nginx, 2 workers); {} stream errors; {} bytes of events read",
        errors.len(),
        bytes
    );
    eprintln!(
        "watchers: pages timed {} ({answered_while_opening} while the crowd arrived): \
         p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        pages.len(),
        percentile(&pages, 0.50),
        percentile(&pages, 0.99),
        percentile(&pages, 1.0)
    );
    let ticks = 100.0; // USER_HZ on Linux
    for (k, (name, _)) in pids.iter().enumerate() {
        let (rss0, fd0) = before[k];
        let (rss1, fd1) = after[k];
        eprintln!(
            "watchers: {name}: RSS {rss0} → {rss1} KiB, fds {fd0} → {fd1}; CPU {:.2} s over \
             {watch_secs:.1} s",
            (cpu_after[k].saturating_sub(cpu_before[k])) as f64 / ticks
        );
    }
    let workers_rss: u64 = (0..2).map(|k| after[k].0.saturating_sub(before[k].0)).sum();
    let workers_fds: u64 = (0..2).map(|k| after[k].1.saturating_sub(before[k].1)).sum();
    let nginx_rss = after[2].0.saturating_sub(before[2].0);
    let nginx_fds = after[2].1.saturating_sub(before[2].1);
    let per = |v: u64| v as f64 / all_open.max(1) as f64;
    eprintln!(
        "watchers: per watcher: workers {:.1} KiB and {:.2} fds, nginx {:.1} KiB and {:.2} fds",
        per(workers_rss),
        per(workers_fds),
        per(nginx_rss),
        per(nginx_fds)
    );

    assert!(
        errors.is_empty(),
        "{} watchers failed, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(all_open, WATCHERS, "every watcher got its first event");
    assert_eq!(
        still,
        ["running".to_string(), "queued".to_string()],
        "the watched jobs were running and queued throughout"
    );
    assert!(failed_pages.is_empty(), "pages failed: {failed_pages:?}");
    // The figure the issue sets (p99 ≤ 50 ms) is printed above; the bound here only says that
    // no page waited for the watchers (before the fix, pages waited for the job to end).
    let p99 = percentile(&pages, 0.99);
    assert!(
        p99 < Duration::from_secs(1),
        "pages waited behind the watchers: p99 {p99:?}"
    );
    assert!(!a.log().contains("panicked") && !b.log().contains("panicked"));
}

#[test]
fn a_watcher_past_the_stream_cap_gets_the_progress_and_a_retry_delay_at_once() {
    let srv = TestServer::start(&[&BIG_FLAGS[..], &["--max-streams", "2"]].concat());
    // A render of some seconds: its streams stay open while the third one asks.
    let job = srv.connect().submit("Held", BIG_ROWS);
    let mut held: Vec<FcgiConn> = Vec::new();
    for _ in 0..2 {
        let mut c = srv.connect();
        c.open_events(1, &job);
        held.push(c);
    }
    let mut third = srv.connect();
    let started = Instant::now();
    let params = cgi_params("GET", &format!("/jobs/{job}/events"), 0, "");
    third.send_request(1, true, &params, b"", 65535);
    let reply = third.read_reply(1);
    let took = started.elapsed();
    let body = reply.text();
    eprintln!("watchers: the third stream answered in {took:?}: {body:?}");
    assert_eq!(reply.status(), 200, "{body}");
    assert!(body.contains("retry: 10000\n"), "{body}");
    assert!(body.contains("event: progress\ndata: {"), "{body}");
    assert!(body.contains(&job), "{body}");
    assert!(took < Duration::from_secs(5), "answered at once, not held");
    assert_ne!(
        json_field(&job_json(&mut srv.connect(), &job), "state").as_deref(),
        Some("done"),
        "the held streams were still open on an unfinished job"
    );
    // Pages are not held either.
    assert_eq!(srv.connect().get(1, "/healthz").status(), 200);
    drop(held);
}

/// Reads an event stream through nginx for at most `limit` (or until it ends); the body as
/// text, and whether the stream ended by itself.
fn read_stream(port: u16, path: &str, headers: &[(&str, &str)], limit: Duration) -> (String, bool) {
    let (text, end) = read_stream_until(port, path, headers, limit, |_| false);
    (text, end == StreamEnd::Closed)
}

/// How [`read_stream_until`] stopped reading.
#[derive(Debug, PartialEq)]
enum StreamEnd {
    /// The server closed the stream.
    Closed,
    /// What the caller waited for arrived.
    Seen,
    /// The time ran out.
    Limit,
    /// The read failed (a reset, say).
    Failed(std::io::ErrorKind),
}

/// Reads a stream until `seen(text)` holds, the server closes it, or `limit` passes. A read
/// interrupted by a signal (sockets with a timeout are not restarted) is read again.
fn read_stream_until(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
    seen: impl Fn(&str) -> bool,
) -> (String, StreamEnd) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break StreamEnd::Limit;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => break StreamEnd::Closed,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if seen(&String::from_utf8_lossy(&raw)) {
                    break StreamEnd::Seen;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break StreamEnd::Limit;
            }
            Err(e) => break StreamEnd::Failed(e.kind()),
        }
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    (text, end)
}

/// The events of a stream's text: (id, type, data) in order.
fn events_of(text: &str) -> Vec<(String, String, String)> {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, b)| b);
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::to_owned)
        };
        if let Some(kind) = field("event: ") {
            out.push((
                field("id: ").unwrap_or_default(),
                kind,
                field("data: ").unwrap_or_default(),
            ));
        }
    }
    out
}

#[test]
fn a_stream_sends_progress_events_then_exactly_one_done_event_and_ends() {
    let srv = TestServer::start(&BIG_FLAGS);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let job = srv.connect().submit("Streamed", "300000");
    let (text, ended) = read_stream(
        ng.port,
        &format!("/jobs/{job}/events"),
        &[],
        Duration::from_secs(120),
    );
    assert!(ended, "the stream ends after the terminal event: {text}");
    assert!(text.contains("retry: 3000\n"), "{text}");
    let events = events_of(&text);
    eprintln!(
        "events: {} events, types {:?}",
        events.len(),
        events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>()
    );
    let (last, before) = events.split_last().expect("events");
    assert_eq!(last.1, "done", "{text}");
    assert!(
        before.iter().all(|e| e.1 == "progress"),
        "only progress events before the one terminal event: {text}"
    );
    assert!(
        events.iter().all(|e| !e.0.is_empty()),
        "every event has an id: {text}"
    );
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "no event is sent twice: {text}");
    let done: serde_json::Value = serde_json::from_str(&last.2).expect("done data is JSON");
    assert_eq!(done["download_url"], format!("/jobs/{job}/download"));
    assert!(done["size_bytes"].as_u64().unwrap_or(0) > 1000, "{done}");
    assert!(done["pages_total"].as_u64().unwrap_or(0) > 1, "{done}");
    let pdf = ng.request("GET", done["download_url"].as_str().unwrap_or(""), &[], b"");
    assert_eq!(pdf.status, 200);
    assert_eq!(Some(pdf.body.len() as u64), done["size_bytes"].as_u64());
}

#[test]
fn a_queued_job_gets_heartbeats_and_a_reconnect_with_its_last_event_id_repeats_nothing() {
    let _alone = machine_to_myself();
    let srv = TestServer::start(
        &[
            &BIG_FLAGS[..],
            &["--render-slots", "1", "--sse-heartbeat-secs", "1"],
        ]
        .concat(),
    );
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    // Four long renders ahead of it on the one slot keep the watched job queued (about
    // 2.5 s each on an idle machine, far longer on a busy one).
    let busy: Vec<String> = ["Busy", "Also busy", "Busy too", "Busy as well"]
        .iter()
        .map(|title| srv.connect().submit(title, BIG_ROWS))
        .collect();
    let queued = srv.connect().submit("Waits", "10");
    let path = format!("/jobs/{queued}/events");
    let heartbeat = |text: &str| text.contains(": heartbeat\n");
    // Up to 15 s for the first heartbeat: it is due after 1 s, but a loaded 2-core machine
    // (the other tests) can delay a process by seconds; the figure is printed.
    let opened = Instant::now();
    let (first, end) = read_stream_until(ng.port, &path, &[], Duration::from_secs(15), heartbeat);
    eprintln!("first heartbeat after {:?} ({end:?})", opened.elapsed());
    assert_eq!(
        end,
        StreamEnd::Seen,
        "heartbeat comments on a quiet stream: {first}\n--- worker:\n{}",
        srv.log()
    );
    let events = events_of(&first);
    let (id, kind, data) = events.first().expect("the job's state first");
    assert_eq!(kind, "progress");
    assert!(data.contains("\"state\":\"queued\""), "{first}");
    assert_eq!(
        events.len(),
        1,
        "one event for a job that does not move: {first}"
    );
    // The browser reconnects, sending the id it saw last: that event is not sent again
    // (while the job waits, only heartbeats come).
    let (again, end) = read_stream_until(
        ng.port,
        &path,
        &[("Last-Event-ID", id)],
        Duration::from_secs(15),
        heartbeat,
    );
    assert_eq!(end, StreamEnd::Seen, "{again}\n--- worker:\n{}", srv.log());
    assert!(
        events_of(&again).iter().all(|e| &e.0 != id),
        "nothing repeated after Last-Event-ID {id}: {again}"
    );
    // Once the renders ahead are cancelled the queued job moves, and its events come.
    for job in &busy {
        // The wait page's button: a form POST, answered with a redirect to the page.
        let r = ng.request("POST", &format!("/jobs/{job}/cancel"), &[], b"");
        assert_eq!(r.status, 303, "cancel {job}: {}", r.text());
    }
    let (rest, ended) = read_stream(
        ng.port,
        &path,
        &[("Last-Event-ID", id)],
        Duration::from_secs(120),
    );
    assert!(ended, "{rest}");
    let rest = events_of(&rest);
    assert_eq!(rest.last().map(|e| e.1.as_str()), Some("done"), "{rest:?}");
    assert!(rest.iter().all(|e| &e.0 != id), "{rest:?}");
    // The last one ahead was still queued when it was cancelled.
    let last = busy.last().expect("busy jobs");
    let state = json_field(&job_json(&mut srv.connect(), last), "state");
    assert_eq!(state.as_deref(), Some("cancelled"));
}
