//! A rolling restart loses nothing (issue #8). Each instance's socket is held by
//! `systemd-socket-activate`, as `pdfworker@N.socket` holds it, and a small supervisor
//! restarts the worker on that same socket whenever it exits (systemd's part). While clients
//! keep using the site through a real nginx, every instance in turn gets SIGTERM, exits and
//! starts again; no request fails and every job submitted ends done.
//!
//! The harness also plays systemd's part for `Type=notify`: it waits for the new process's
//! `READY=1` before restarting the next instance (what `systemctl restart` waits for), and
//! checks `STOPPING=1` on each SIGTERM and `WATCHDOG=1` pings while it serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::*;

/// Restarts the worker whenever it exits, on the socket systemd-socket-activate handed this
/// shell as fd 3 (kept open here across restarts). `LISTEN_PID` must name the worker itself
/// (sd_listen_fds(3)): the subshell exports its own pid, then becomes the worker by `exec`.
const SUPERVISOR: &str = r#"
pidfile=$1
shift
while :; do
    (
        echo "$BASHPID" >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
        export LISTEN_PID=$BASHPID
        exec "$@"
    )
    sleep 0.1
done
"#;

/// About a second of rendering per job: some renders are running at every SIGTERM.
const ROWS: &str = "200000";
/// Shorter than a queue of renders takes, so a restart also hands renders back unfinished.
const GRACE_SECS: &str = "2";
/// The watchdog interval the harness announces; the worker pings every half of it.
const WATCHDOG_USEC: &str = "2000000";

/// What one instance sent to its `NOTIFY_SOCKET`, one datagram per entry.
struct Notifications {
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Notifications {
    fn listen(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (messages, stop) = (Arc::clone(&messages), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        messages.lock().expect("messages").push(text);
                    }
                }
            })
        };
        Notifications {
            messages,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams with `line` among their lines (`READY=1`, `STOPPING=1`, ...).
    fn count(&self, line: &str) -> usize {
        let messages = self.messages.lock().expect("messages");
        messages
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().expect("messages").clone()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One instance: its socket held by systemd-socket-activate (then by the supervisor it
/// became), the worker restarted on it, and what the worker told its notify socket.
struct Instance {
    n: usize,
    socket: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    supervisor: Child,
    notify: Notifications,
}

impl Instance {
    fn start(dir: &Path, n: usize, data: &Path) -> Instance {
        let socket = dir.join(format!("{n}.sock"));
        let pidfile = dir.join(format!("{n}.pid"));
        let log = dir.join(format!("worker-{n}.log"));
        let notify_path = dir.join(format!("notify-{n}.sock"));
        let notify = Notifications::listen(&notify_path);
        let log_file = std::fs::File::create(&log).expect("worker log");
        // systemd-socket-activate passes on PATH and what -E names, nothing else.
        let supervisor = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&socket)
            .arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
            .arg("-E")
            .arg(format!("WATCHDOG_USEC={WATCHDOG_USEC}"))
            .arg("-E")
            .arg("RUST_LOG=info")
            .args(["bash", "-c", SUPERVISOR, "supervise"])
            .arg(&pidfile)
            .arg(env!("CARGO_BIN_EXE_pdfworker"))
            .arg("serve")
            .arg("--listen")
            .arg(format!(
                "unix:{}",
                dir.join(format!("unused-{n}.sock")).display()
            ))
            .arg("--data-dir")
            .arg(data)
            .arg("--reports-dir")
            .arg(demo_reports())
            .args(BIG_FLAGS)
            .args(["--render-slots", "2", "--shutdown-grace-secs", GRACE_SECS])
            // The load comes from one address: no per-client cap.
            .args(["--max-jobs-per-client", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("systemd-socket-activate (package systemd; ./deploy/test installs it)");
        let instance = Instance {
            n,
            socket,
            pidfile,
            log,
            supervisor,
            notify,
        };
        // systemd-socket-activate starts its command at the first connection.
        wait_for(Duration::from_secs(10), "the held socket", || {
            UnixStream::connect(&instance.socket).ok()
        });
        instance.wait_ready(1);
        instance
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// Waits for the `count`th READY=1, as `systemctl start`/`restart` does with Type=notify.
    fn wait_ready(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.notify.count("READY=1") < count {
            assert!(
                Instant::now() < deadline,
                "instance {}: no READY=1 #{count} within 30 s; notifications {:?}\n{}",
                self.n,
                self.notify.all(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait for the exit, wait for the new process to say READY=1: what
    /// `systemctl restart pdfworker@N` does. Returns (SIGTERM → exit, exit → ready).
    fn restart(&self) -> (Duration, Duration) {
        let old = self.pid().expect("worker pid");
        let (ready_before, stopping_before) = (
            self.notify.count("READY=1"),
            self.notify.count("STOPPING=1"),
        );
        let started = Instant::now();
        run("kill", &["-TERM", &old.to_string()]);
        wait_for(Duration::from_secs(30), "the old worker to exit", || {
            exited(old).then_some(())
        });
        let exited_at = Instant::now();
        assert_eq!(
            self.notify.count("STOPPING=1"),
            stopping_before + 1,
            "instance {}: STOPPING=1 on SIGTERM; notifications {:?}",
            self.n,
            self.notify.all()
        );
        self.wait_ready(ready_before + 1);
        assert_ne!(self.pid(), Some(old), "a new process serves");
        (exited_at - started, exited_at.elapsed())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The supervisor first, so nothing starts the worker again.
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Gone, or a zombie its supervisor has not reaped yet.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// One HTTP/1.1 request through nginx; an error is a failed request, not a panic.
fn request(port: u16, method: &str, path: &str, body: &str) -> Result<HttpResponse, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if method == "POST" {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    if !raw.starts_with(b"HTTP/1.1 ") || !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        ));
    }
    Ok(parse_http(&raw))
}

/// What the clients did: request counts, failures (the first few described), job ids.
#[derive(Default)]
struct Load {
    gets: AtomicUsize,
    posts: AtomicUsize,
    failed: AtomicUsize,
    failures: Mutex<Vec<String>>,
    jobs: Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().expect("failures");
        if failures.len() < 20 {
            failures.push(what);
        }
    }

    /// One page read: the list, a form, health, or a job's status (any instance answers).
    fn get(&self, port: u16, i: usize) {
        let job = {
            let jobs = self.jobs.lock().expect("jobs");
            (!jobs.is_empty()).then(|| jobs[i % jobs.len()].clone())
        };
        let path = match (i % 4, job) {
            (0, _) | (_, None) => "/healthz".to_owned(),
            (1, _) => "/".to_owned(),
            (2, _) => "/reports/ledger".to_owned(),
            (_, Some(id)) => format!("/jobs/{id}/status.json"),
        };
        self.gets.fetch_add(1, Ordering::Relaxed);
        match request(port, "GET", &path, "") {
            Ok(r) if r.status == 200 => {}
            Ok(r) => self.fail(format!("GET {path}: {} {}", r.status, r.text())),
            Err(e) => self.fail(format!("GET {path}: {e}")),
        }
    }

    /// One job submitted; its id kept for the status reads and the final check.
    fn post(&self, port: u16, i: usize) {
        let body = form(&format!("Restart {i}"), ROWS, "a4", "portrait");
        self.posts.fetch_add(1, Ordering::Relaxed);
        match request(port, "POST", "/generate", &body) {
            Ok(r) if r.status == 303 => match r.header("Location") {
                Some(l) => {
                    let id = l.rsplit('/').next().unwrap_or(l).to_owned();
                    self.jobs.lock().expect("jobs").push(id);
                }
                None => self.fail("POST /generate: 303 without Location".into()),
            },
            Ok(r) => self.fail(format!("POST /generate: {} {}", r.status, r.text())),
            Err(e) => self.fail(format!("POST /generate: {e}")),
        }
    }
}

/// Runs readers and one submitter against nginx until `stop` is set.
fn start_load(port: u16, load: &Arc<Load>, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for reader in 0..3 {
        let (load, stop) = (Arc::clone(load), Arc::clone(stop));
        threads.push(std::thread::spawn(move || {
            let mut i = reader;
            while !stop.load(Ordering::Relaxed) {
                load.get(port, i);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    let (load, stop) = (Arc::clone(load), Arc::clone(stop));
    threads.push(std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            load.post(port, i);
            i += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
    }));
    threads
}

/// Each job's state in its record on disk, the truth every instance answers from.
fn job_state(data: &Path, id: &str) -> String {
    std::fs::read_to_string(data.join("jobs").join(format!("{id}.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["state"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn a_rolling_restart_under_load_fails_no_request_and_loses_no_job() {
    let _alone = machine_to_myself();
    let dir = TempDir::new("restart");
    let data = dir.0.join("data");
    let instances: Vec<Instance> = (1..=2).map(|n| Instance::start(&dir.0, n, &data)).collect();
    let sockets: Vec<&Path> = instances.iter().map(|i| i.socket.as_path()).collect();
    let nginx = Nginx::start(&sockets, &data.join("files"), true);

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads = start_load(nginx.port, &load, &stop);
    std::thread::sleep(Duration::from_millis(1500));
    let mut timings = Vec::new();
    for instance in &instances {
        timings.push(instance.restart());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let load_secs = started.elapsed().as_secs_f64();

    let jobs = load.jobs.lock().expect("jobs").clone();
    let states = wait_for(Duration::from_secs(120), "every job to end", || {
        let states: Vec<(String, String)> = jobs
            .iter()
            .map(|id| (id.clone(), job_state(&data, id)))
            .collect();
        states
            .iter()
            .all(|(_, s)| s == "done" || s == "failed")
            .then_some(states)
    });
    let done = states.iter().filter(|(_, s)| s == "done").count();
    let (gets, posts) = (
        load.gets.load(Ordering::Relaxed),
        load.posts.load(Ordering::Relaxed),
    );
    let failed = load.failed.load(Ordering::Relaxed);
    let pings: Vec<usize> = instances
        .iter()
        .map(|i| i.notify.count("WATCHDOG=1"))
        .collect();
    eprintln!(
        "rolling restart: {} requests through nginx in {load_secs:.1} s ({gets} GETs, {posts} \
         POSTs), {failed} failed; {} jobs, {done} done; restarts (SIGTERM to exit, exit to \
         READY=1): {}; watchdog pings per instance: {pings:?}",
        gets + posts,
        jobs.len(),
        timings
            .iter()
            .map(|(stop, ready)| format!(
                "{:.2} s + {:.2} s",
                stop.as_secs_f64(),
                ready.as_secs_f64()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let logs = || {
        let mut all: String = instances
            .iter()
            .map(|i| format!("--- worker {}:\n{}\n", i.n, i.log()))
            .collect();
        all.push_str(&format!("--- nginx error.log:\n{}", nginx.error_log()));
        all
    };
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}\n{}",
        load.failures.lock().expect("failures"),
        logs()
    );
    assert!(
        posts >= 5,
        "the load submitted only {posts} jobs\n{}",
        logs()
    );
    let not_done: Vec<&(String, String)> = states.iter().filter(|(_, s)| s != "done").collect();
    assert!(
        not_done.is_empty(),
        "jobs not done: {not_done:?}\n{}",
        logs()
    );
    for instance in &instances {
        let ready = instance.notify.all();
        assert!(
            ready
                .iter()
                .any(|m| m.contains("READY=1") && m.contains("STATUS=serving on ")),
            "READY=1 comes with a STATUS= line: {ready:?}"
        );
    }
    assert!(
        pings.iter().all(|&p| p >= 2),
        "WATCHDOG=1 every second while serving: {pings:?}"
    );
}
