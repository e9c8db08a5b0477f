//! Shared test parts: a worker process in a temp dir, a raw FastCGI client written from the
//! spec (independent of the crate's own codec), nginx from `nginx/local.conf.in`, and a tiny
//! HTTP/1.1 client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const DATA: u8 = 8;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

/// Rows of a report that renders for seconds (25,000 pages), so tests can act while it runs;
/// start the worker with [`BIG_FLAGS`] to allow it.
pub const BIG_ROWS: &str = "1000000";
pub const BIG_FLAGS: [&str; 2] = ["--max-pages", "30000"];

/// The shipped report definitions with the demo database beside them, made once per test run
/// by the real `pdfworker demo-data` with 1,000,000 ledger rows; the ledger's `rows` bound is
/// raised to match, so tests can ask for renders that take seconds.
pub fn demo_reports() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-reports");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create demo reports dir");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
        for entry in std::fs::read_dir(&shipped).expect("read reports/") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read report");
                let text = text.replace("max = 100000", "max = 1000000");
                let name = path.file_name().expect("file name");
                std::fs::write(dir.join(name), text).expect("write report");
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_pdfworker"))
            .args(["demo-data", "--rows", BIG_ROWS, "--out"])
            .arg(dir.join("demo.sqlite"))
            .output()
            .expect("run pdfworker demo-data");
        assert!(
            out.status.success(),
            "demo-data failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Held by the tests that load the whole machine (thousands of watchers) and by those that
/// time something to the second, so that the two never run at once: on 2 cores a load test
/// beside a timing test measures neither.
pub fn machine_to_myself() -> std::sync::MutexGuard<'static, ()> {
    static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MACHINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pdfworker-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `pdfworker serve` process on a unix socket in its own temp dir.
pub struct TestServer {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub data: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    listen: String,
    env: Vec<(String, String)>,
    /// Runs as this uid and gid (from root) with the default socket mode, not 0666.
    user: Option<(u32, u32)>,
}

impl TestServer {
    pub fn start(extra: &[&str]) -> TestServer {
        TestServer::start_with_env(extra, &[])
    }

    /// [`TestServer::start`] with these environment variables set for the process.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer::start_full(extra, env, None)
    }

    /// [`TestServer::start`] as `uid`:`gid` (the test runs as root), with the worker's own
    /// default socket mode; its folder and data dir are given to that user first.
    pub fn start_as(uid: u32, gid: u32, extra: &[&str]) -> TestServer {
        TestServer::start_full(extra, &[], Some((uid, gid)))
    }

    fn start_full(extra: &[&str], env: &[(&str, &str)], user: Option<(u32, u32)>) -> TestServer {
        let dir = TempDir::new("worker");
        let socket = dir.0.join("w.sock");
        let data = dir.0.join("data");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // A `--listen` among the extra flags replaces the default socket (the last one wins).
        let listen = args
            .windows(2)
            .rev()
            .find(|w| w[0] == "--listen")
            .map(|w| w[1].clone())
            .unwrap_or_else(|| format!("unix:{}", socket.display()));
        let socket = match listen.strip_prefix("unix:") {
            Some(p) => PathBuf::from(p),
            None => socket,
        };
        let mut s = TestServer {
            dir,
            socket,
            data,
            child: None,
            args,
            listen,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            user,
        };
        if let Some((uid, gid)) = user {
            // Its folder (where the socket goes) and the data dir are the user's. The binary
            // and the reports are linked into the folder: the checkout may be under a home
            // directory that user cannot enter.
            std::fs::create_dir(&s.data).expect("make the data dir");
            for dir in [&s.dir.0, &s.data] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
            }
            link_or_copy(
                Path::new(env!("CARGO_BIN_EXE_pdfworker")),
                &s.dir.0.join("pdfworker"),
            );
            let reports = s.dir.0.join("reports");
            std::fs::create_dir(&reports).expect("make the reports dir");
            for entry in std::fs::read_dir(demo_reports()).expect("read the demo reports") {
                let path = entry.expect("dir entry").path();
                link_or_copy(&path, &reports.join(path.file_name().expect("a name")));
            }
        }
        s.spawn();
        s
    }

    /// Starts the process (again, after [`TestServer::kill`]) on the same socket and data.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("worker.log"))
            .expect("open worker log");
        let (bin, reports) = match self.user {
            Some(_) => (self.dir.0.join("pdfworker"), self.dir.0.join("reports")),
            None => (
                PathBuf::from(env!("CARGO_BIN_EXE_pdfworker")),
                demo_reports().to_path_buf(),
            ),
        };
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        match self.user {
            Some((uid, gid)) => {
                std::os::unix::process::CommandExt::uid(&mut cmd, uid);
                std::os::unix::process::CommandExt::gid(&mut cmd, gid);
            }
            None => {
                cmd.arg("--socket-mode").arg("0666");
            }
        }
        let child = cmd
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--reports-dir")
            .arg(reports)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pdfworker");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let up = match self.listen.strip_prefix("tcp:") {
                Some(addr) => TcpStream::connect(addr).is_ok(),
                None => UnixStream::connect(&self.socket).is_ok(),
            };
            if up {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "pdfworker exited with {status} before listening; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("pdfworker did not listen within 20 s; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("worker.log")).unwrap_or_default()
    }

    pub fn connect(&self) -> FcgiConn {
        FcgiConn::connect(&self.socket)
    }

    /// SIGKILL: the process dies mid-whatever, as with an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        terminate_child(&mut c, Duration::from_secs(60))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Encodes one record, padded to 8 bytes (or with `pad` extra bytes when given).
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    record_padded(kind, id, content, (8 - content.len() % 8) % 8)
}

pub fn record_padded(kind: u8, id: u16, content: &[u8], pad: usize) -> Vec<u8> {
    assert!(content.len() <= 65535 && pad <= 255);
    let mut out = vec![
        1,
        kind,
        (id >> 8) as u8,
        id as u8,
        (content.len() >> 8) as u8,
        content.len() as u8,
        pad as u8,
        0,
    ];
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xAAu8, pad));
    out
}

pub fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    record(
        BEGIN_REQUEST,
        id,
        &[
            (role >> 8) as u8,
            role as u8,
            keep_conn as u8,
            0,
            0,
            0,
            0,
            0,
        ],
    )
}

pub fn pair(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for len in [name.len(), value.len()] {
        if len < 128 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out
}

/// CGI params like nginx sends for `method uri`.
pub fn cgi_params(method: &str, uri: &str, body_len: usize, content_type: &str) -> Vec<u8> {
    let mut p = Vec::new();
    let path = uri.split('?').next().unwrap_or(uri);
    for (n, v) in [
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri),
        ("DOCUMENT_URI", path),
        ("SCRIPT_FILENAME", "/nonexistent/index.php"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_TYPE", content_type),
    ] {
        p.extend(pair(n.as_bytes(), v.as_bytes()));
    }
    p.extend(pair(b"CONTENT_LENGTH", body_len.to_string().as_bytes()));
    p
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// What a request got back.
#[derive(Debug, Default)]
pub struct FcgiReply {
    pub stdout: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    pub ends: usize,
}

impl FcgiReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The CGI `Status:` code.
    pub fn status(&self) -> u16 {
        let t = self.text();
        t.lines()
            .find_map(|l| l.strip_prefix("Status: "))
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let t = self.text();
        let head = t.split("\r\n\r\n").next().unwrap_or("");
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A raw FastCGI connection with blocking reads bounded by a timeout.
pub struct FcgiConn {
    pub stream: UnixStream,
}

impl FcgiConn {
    pub fn connect(path: &Path) -> FcgiConn {
        let stream = UnixStream::connect(path).expect("connect to the worker socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set timeout");
        FcgiConn { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to worker");
    }

    /// Writes a whole request: BEGIN, params (in records of `chunk` bytes), STDIN.
    pub fn send_request(
        &mut self,
        id: u16,
        keep_conn: bool,
        params: &[u8],
        body: &[u8],
        chunk: usize,
    ) {
        let mut out = begin(id, 1, keep_conn);
        for c in params.chunks(chunk.max(1)) {
            out.extend(record(PARAMS, id, c));
        }
        out.extend(record(PARAMS, id, b""));
        for c in body.chunks(chunk.max(1)) {
            out.extend(record(STDIN, id, c));
        }
        out.extend(record(STDIN, id, b""));
        self.send(&out);
    }

    /// Sends `POST /generate` (A4 portrait) on request `id`, without reading the answer.
    pub fn send_generate(&mut self, id: u16, title: &str, rows: &str) {
        let body = form(title, rows, "a4", "portrait");
        let params = cgi_params(
            "POST",
            "/generate",
            body.len(),
            "application/x-www-form-urlencoded",
        );
        self.send_request(id, true, &params, body.as_bytes(), 65535);
    }

    /// `POST /generate`, expecting the 303; returns the new job's id.
    pub fn submit(&mut self, title: &str, rows: &str) -> String {
        self.send_generate(1, title, rows);
        let r = self.read_reply(1);
        assert_eq!(r.status(), 303, "{}", r.text());
        let location = r
            .header("Location")
            .unwrap_or_else(|| panic!("no Location: {}", r.text()));
        location.trim_start_matches("/jobs/").to_string()
    }

    pub fn get(&mut self, id: u16, uri: &str) -> FcgiReply {
        self.send_request(id, true, &cgi_params("GET", uri, 0, ""), b"", 65535);
        self.read_reply(id)
    }

    /// The next record, or `None` at EOF. Panics on a timeout or a malformed record.
    pub fn read_record(&mut self) -> Option<Rec> {
        let mut head = [0u8; 8];
        match self.stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading a record: {e}"),
        }
        assert_eq!(head[0], 1, "record version");
        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let mut body = vec![0u8; len + head[6] as usize];
        self.stream.read_exact(&mut body).expect("record body");
        body.truncate(len);
        Some(Rec {
            kind: head[1],
            id: u16::from_be_bytes([head[2], head[3]]),
            content: body,
        })
    }

    /// Reads until END_REQUEST for `id`; records of other ids are an error.
    pub fn read_reply(&mut self, id: u16) -> FcgiReply {
        let mut reply = FcgiReply::default();
        let mut stdout_ended = false;
        loop {
            let rec = self.read_record().unwrap_or_else(|| {
                panic!(
                    "EOF before END_REQUEST for {id}; got so far: {:?}",
                    reply.text()
                )
            });
            assert_eq!(rec.id, id, "record for another request: {rec:?}");
            match rec.kind {
                STDOUT if rec.content.is_empty() => stdout_ended = true,
                STDOUT => {
                    assert!(!stdout_ended, "STDOUT after the empty STDOUT record");
                    reply.stdout.extend_from_slice(&rec.content);
                }
                END_REQUEST => {
                    assert_eq!(rec.content.len(), 8, "END_REQUEST body");
                    reply.app_status = u32::from_be_bytes([
                        rec.content[0],
                        rec.content[1],
                        rec.content[2],
                        rec.content[3],
                    ]);
                    reply.protocol_status = rec.content[4];
                    reply.ends += 1;
                    return reply;
                }
                other => panic!("unexpected record type {other} for request {id}"),
            }
        }
    }

    /// Reads records of several interleaved requests until each has ended.
    pub fn read_replies(&mut self, ids: &[u16]) -> Vec<FcgiReply> {
        let mut replies: Vec<FcgiReply> = ids.iter().map(|_| FcgiReply::default()).collect();
        let mut open = ids.len();
        while open > 0 {
            let rec = self.read_record().expect("EOF before every reply ended");
            let i = ids
                .iter()
                .position(|i| *i == rec.id)
                .unwrap_or_else(|| panic!("unknown id in {rec:?}"));
            match rec.kind {
                STDOUT => replies[i].stdout.extend_from_slice(&rec.content),
                END_REQUEST => {
                    replies[i].protocol_status = rec.content[4];
                    replies[i].ends += 1;
                    open -= 1;
                }
                other => panic!("unexpected record type {other}"),
            }
        }
        replies
    }

    /// Reads one byte with a read timeout of `wait`.
    fn probe(&mut self, wait: Duration) -> std::io::Result<usize> {
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set timeout");
        let mut b = [0u8; 1];
        // A signal cuts a read with a timeout short instead of restarting it.
        let r = loop {
            match self.stream.read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set timeout");
        r
    }

    /// True when the worker closed the connection within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        match self.probe(wait) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// True when nothing arrives within `wait` and the connection is still open.
    pub fn quiet_for(&mut self, wait: Duration) -> bool {
        matches!(self.probe(wait), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }

    /// Opens the job's Server-Sent Events stream as request `id`; returns its first record
    /// (the head), checked to be STDOUT of that request.
    pub fn open_events(&mut self, id: u16, job: &str) -> Rec {
        let params = cgi_params("GET", &format!("/jobs/{job}/events"), 0, "");
        self.send_request(id, true, &params, b"", 65535);
        let first = self.read_record().expect("first SSE bytes");
        assert_eq!((first.kind, first.id), (STDOUT, id), "{first:?}");
        first
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The job's JSON status straight from the worker (no nginx).
pub fn job_json(conn: &mut FcgiConn, id: &str) -> String {
    let r = conn.get(1, &format!("/jobs/{id}/status.json"));
    let text = r.text();
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// A field of a flat JSON object, as text (strings unquoted).
pub fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":");
    let start = json.find(&key)? + key.len();
    let rest = json[start..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next().map(String::from);
    }
    rest.split([',', '}']).next().map(|s| s.trim().to_string())
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form(title: &str, rows: &str, paper: &str, orientation: &str) -> String {
    format!(
        "title={}&rows={}&paper={}&orientation={}",
        urlencode(title),
        urlencode(rows),
        urlencode(paper),
        urlencode(orientation)
    )
}

/// nginx started from `nginx/local.conf.in` on a free loopback port.
pub struct Nginx {
    pub dir: TempDir,
    pub port: u16,
    child: Child,
}

pub fn nginx_bin() -> PathBuf {
    for p in [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("nginx")
}

impl Nginx {
    pub fn start(sockets: &[&Path], files_dir: &Path, gzip: bool) -> Nginx {
        Nginx::start_edited(sockets, files_dir, gzip, &|conf| conf)
    }

    /// [`Nginx::start`] with the rendered config changed by `edit` first.
    pub fn start_edited(
        sockets: &[&Path],
        files_dir: &Path,
        gzip: bool,
        edit: &dyn Fn(String) -> String,
    ) -> Nginx {
        let dir = TempDir::new("nginx");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("addr").port()
        };
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nginx/local.conf.in"))
                .expect("read nginx/local.conf.in");
        let servers: String = sockets
            .iter()
            .map(|s| format!("server unix:{};\n", s.display()))
            .collect();
        let root = running_as_root();
        let conf = template
            .replace("@PREFIX@", &dir.0.display().to_string())
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@UPSTREAM_SERVERS@", &servers)
            .replace("@FILES_DIR@", &format!("{}/", files_dir.display()))
            .replace("@USER_LINE@", if root { "user root;" } else { "" })
            .replace("@GZIP@", if gzip { "on" } else { "off" });
        let conf = edit(conf);
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (is it installed? ./deploy/test installs it)");
        let n = Nginx { dir, port, child };
        wait_for(Duration::from_secs(10), "nginx to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        n
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }

    /// The master process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("access.log")).unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http(self.port, method, path, headers, body)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's master stops its workers; a SIGKILL would orphan them, still
        // holding the listening socket.
        terminate_child(&mut self.child, Duration::from_secs(10));
    }
}

/// A hard link to `from` at `to`, or a copy where a link cannot be made (another file system).
fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    }
}

/// SIGTERM to `child`, then its exit status within `within`; SIGKILL after that.
pub fn terminate_child(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

pub fn running_as_root() -> bool {
    // `id -u` keeps the tests free of libc; running as root changes only nginx's user line.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`; decodes chunked bodies.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    s.write_all(body).expect("send body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_http(&raw)
}

pub fn parse_http(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}

/// The indented code block README.md keeps between `<!-- name -->` and `<!-- /name -->`,
/// without its four-space indent (blank lines kept), as the tests run it.
pub fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let open = format!("<!-- {name} -->");
    let start = readme
        .find(&open)
        .unwrap_or_else(|| panic!("README has no {open}"));
    let end = readme[start..]
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("README's {open} has no end"))
        + start;
    readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    ").or(l.is_empty().then_some("")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e} (installed by ./deploy/test)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
