//! Issue #10 ("Any front end, any path"): the product flow through a real lighttpd, a real
//! Apache (mod_proxy_fcgi + mod_xsendfile) and a real Caddy, each started from its config in
//! `deploy/frontends/` with the placeholders filled in: the form, the 303, the wait page, a
//! live event stream that moves while the job runs, and a download that is the stored file.
//!
//! Each server runs in the foreground from a temp dir that holds its config, logs and state,
//! listens on a free loopback port and is stopped on drop. A missing server is a skip (said
//! on stderr), unless `PDFWORKER_REQUIRE_FRONTENDS` is set (CI sets it in deploy/test): then
//! it is a failure, so a run cannot skip silently.
//!
//! As root (CI), lighttpd and Apache's children run as `www-data`, as in Debian. They reach
//! the worker's socket (mode 0666 in tests) and read the PDFs, which the worker keeps at
//! 0640, through their group: the data dir's `files/` belongs to group www-data with the
//! set-group-id bit, so every PDF the worker writes there is in that group. In production the
//! server's processes run with the worker's group instead (README, "Behind other servers").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Set (to anything but `0`) to make a missing front end a failure instead of a skip.
const REQUIRE_ENV: &str = "PDFWORKER_REQUIRE_FRONTENDS";
/// Who lighttpd and Apache's children run as when the tests run as root.
const RUN_AS: &str = "www-data";
/// How long a front end may take to listen, and to stop.
const READY_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(10);
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lighttpd,
    Apache,
    Caddy,
}

impl Kind {
    /// The config in `deploy/frontends/`.
    fn template(self) -> &'static str {
        match self {
            Kind::Lighttpd => "lighttpd.conf",
            Kind::Apache => "apache.conf",
            Kind::Caddy => "Caddyfile",
        }
    }

    /// The worker's `--send-file` for this server (each config's header says why).
    fn send_file(self) -> &'static str {
        match self {
            Kind::Lighttpd | Kind::Apache => "x-sendfile",
            Kind::Caddy => "x-accel-redirect",
        }
    }

    /// Files the server needs, with the Debian package that ships each.
    fn needs(self) -> Vec<(String, &'static str)> {
        match self {
            Kind::Lighttpd => vec![("/usr/sbin/lighttpd".into(), "lighttpd")],
            Kind::Apache => vec![
                ("/usr/sbin/apache2".into(), "apache2"),
                (format!("{APACHE_MODULES}/mod_proxy_fcgi.so"), "apache2"),
                (
                    format!("{APACHE_MODULES}/mod_xsendfile.so"),
                    "libapache2-mod-xsendfile",
                ),
            ],
            Kind::Caddy => vec![("/usr/bin/caddy".into(), "caddy")],
        }
    }

    /// Whether the site compresses its pages (the event stream never): Caddy's `encode`, and
    /// Apache's mod_deflate, which the test's httpd.conf turns on as broadly as a site might.
    fn compresses_pages(self) -> bool {
        matches!(self, Kind::Apache | Kind::Caddy)
    }
}

/// Whether everything `kind` needs is installed; a skip (said on stderr) when not, or a panic
/// when [`REQUIRE_ENV`] is set.
fn installed(kind: Kind) -> bool {
    let Some((what, package)) = kind
        .needs()
        .into_iter()
        .find(|(p, _)| !Path::new(p).exists())
    else {
        return true;
    };
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("{REQUIRE_ENV} is set but {what} is missing (apt-get install {package})");
    }
    eprintln!("skipped {kind:?}: {what} is missing (apt-get install {package})");
    false
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name) && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .unwrap_or_else(|| panic!("no user {name} in /etc/passwd (Debian's base-passwd has it)"))
}

/// The user and group the server is told to run as: www-data as root, else whoever we are
/// (a server started unprivileged cannot switch, and lighttpd needs a name it can look up).
fn run_as() -> (String, String) {
    if running_as_root() {
        (RUN_AS.into(), RUN_AS.into())
    } else {
        (
            run("id", &["-un"]).trim().into(),
            run("id", &["-gn"]).trim().into(),
        )
    }
}

/// A data dir whose `files/` the server's user can read (see the module comment).
fn data_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;

    let data = dir.join("data");
    let files = data.join("files");
    std::fs::create_dir_all(&files).expect("create the data dir");
    if running_as_root() {
        let (_, gid) = user_ids(RUN_AS);
        for (path, mode) in [(&data, 0o750), (&files, 0o2750)] {
            std::os::unix::fs::chown(path, None, Some(gid)).expect("chgrp the data dir");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("chmod the data dir");
        }
    }
    data
}

/// The config from `deploy/frontends/` with each `@NAME@` replaced; every value must have a
/// placeholder, and no placeholder may be left.
fn render(kind: Kind, values: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/frontends")
        .join(kind.template());
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (name, value) in values {
        let placeholder = format!("@{name}@");
        assert!(
            text.contains(&placeholder),
            "{} has no {placeholder}",
            path.display()
        );
        text = text.replace(&placeholder, value);
    }
    if let Some(left) = leftover_placeholder(&text) {
        panic!("{} still has {left} after rendering", path.display());
    }
    text
}

/// The first `@NAME@` (capitals and underscores) in `text`.
fn leftover_placeholder(text: &str) -> Option<&str> {
    text.match_indices('@').find_map(|(start, _)| {
        let rest = &text[start + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(rest.len());
        (len > 0 && rest[len..].starts_with('@')).then(|| &text[start..start + len + 2])
    })
}

/// One front end, started in the foreground from its rendered config; stopped on drop.
struct Frontend {
    kind: Kind,
    dir: TempDir,
    port: u16,
    child: Child,
}

impl Frontend {
    /// Starts `kind` in front of the worker on `socket` whose PDFs are in `files`.
    fn start(kind: Kind, socket: &Path, files: &Path) -> Frontend {
        let dir = TempDir::new(&format!("{kind:?}").to_lowercase());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("addr").port()
        };
        let files = format!("{}/", files.display());
        let socket = socket.display().to_string();
        let mut cmd = match kind {
            Kind::Lighttpd => lighttpd(&dir.0, port, &socket, &files),
            Kind::Apache => apache(&dir.0, port, &socket, &files),
            Kind::Caddy => caddy(&dir.0, port, &socket, &files),
        };
        if running_as_root() {
            // lighttpd opens its logs after it has become www-data; Apache's children take
            // their mutex here.
            let (uid, gid) = user_ids(RUN_AS);
            std::os::unix::fs::chown(&dir.0, Some(uid), Some(gid)).expect("chown the temp dir");
        }
        let log = std::fs::File::create(dir.0.join("server.log")).expect("create server.log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {kind:?}: {e}"));
        let mut front = Frontend {
            kind,
            dir,
            port,
            child,
        };
        front.wait_ready();
        front
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} exited with {status} before listening:\n{}",
                    self.kind,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{:?} did not listen within {READY_WITHIN:?}:\n{}",
            self.kind,
            self.logs()
        );
    }

    /// Everything the server wrote: its stderr and its error log.
    fn logs(&self) -> String {
        ["server.log", "error.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.0.join(name)).unwrap_or_default();
                format!("--- {name}:\n{text}")
            })
            .collect()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http(self.port, "GET", path, headers, b"")
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        // SIGTERM: Apache's and lighttpd's parents stop their children (a SIGKILL would leave
        // Apache's children holding the port); Caddy stops too.
        terminate_child(&mut self.child, STOP_WITHIN);
    }
}

fn lighttpd(dir: &Path, port: u16, socket: &str, files: &str) -> Command {
    let (user, group) = run_as();
    let doc_root = dir.join("htdocs");
    std::fs::create_dir_all(&doc_root).expect("create the document root");
    let conf = render(
        Kind::Lighttpd,
        &[
            ("LISTEN_HOST", "127.0.0.1".into()),
            ("LISTEN_PORT", port.to_string()),
            ("USER", user),
            ("GROUP", group),
            ("LOG_DIR", dir.display().to_string()),
            ("DOC_ROOT", doc_root.display().to_string()),
            ("SOCKET", socket.into()),
            ("FILES_DIR", files.into()),
        ],
    );
    let path = dir.join("lighttpd.conf");
    std::fs::write(&path, conf).expect("write lighttpd.conf");
    let mut cmd = Command::new("/usr/sbin/lighttpd");
    cmd.arg("-D").arg("-f").arg(path);
    cmd
}

/// Apache from a self-contained httpd.conf (no Debian envvars, nothing in /etc/apache2)
/// that includes the site from `deploy/frontends/apache.conf`.
fn apache(dir: &Path, port: u16, socket: &str, files: &str) -> Command {
    let site = render(
        Kind::Apache,
        &[
            ("LISTEN_PORT", port.to_string()),
            ("SOCKET", socket.into()),
            ("FILES_DIR", files.into()),
        ],
    );
    let site_path = dir.join("pdfworker.conf");
    std::fs::write(&site_path, site).expect("write the site");
    let d = dir.display();
    let modules: String = [
        ("mpm_event", "mod_mpm_event"),
        ("authz_core", "mod_authz_core"),
        ("authz_host", "mod_authz_host"),
        ("setenvif", "mod_setenvif"),
        ("filter", "mod_filter"),
        ("deflate", "mod_deflate"),
        ("proxy", "mod_proxy"),
        ("proxy_fcgi", "mod_proxy_fcgi"),
        ("xsendfile", "mod_xsendfile"),
    ]
    .iter()
    .map(|(name, file)| format!("LoadModule {name}_module {APACHE_MODULES}/{file}.so\n"))
    .collect();
    let (user, group) = run_as();
    let user_lines = if running_as_root() {
        format!("User {user}\nGroup {group}\n")
    } else {
        String::new()
    };
    let conf = format!(
        r#"ServerRoot "{d}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile "{d}/httpd.pid"
DefaultRuntimeDir "{d}"
Mutex file:{d} default
ErrorLog "{d}/error.log"
LogLevel warn
LogFormat "%h \"%r\" %>s %O %Dus" brief
CustomLog "{d}/access.log" brief
{user_lines}{modules}
# Compression as broadly as a site might have it, the event stream's type included: the
# site's own no-gzip must keep the stream out.
AddOutputFilterByType DEFLATE text/html text/plain text/css application/json text/event-stream
Include "{site}"
"#,
        site = site_path.display()
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).expect("write httpd.conf");
    let mut cmd = Command::new("/usr/sbin/apache2");
    cmd.arg("-f").arg(path).arg("-DFOREGROUND");
    cmd
}

/// Caddy with its home, config and data folders in the temp dir (it writes an autosave and
/// may create storage there), logging to stderr.
fn caddy(dir: &Path, port: u16, socket: &str, files: &str) -> Command {
    let conf = render(
        Kind::Caddy,
        &[
            ("LISTEN_HOST", "127.0.0.1".into()),
            ("LISTEN_PORT", port.to_string()),
            ("SOCKET", socket.into()),
            ("FILES_DIR", files.into()),
        ],
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).expect("write the Caddyfile");
    let mut cmd = Command::new("/usr/bin/caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(path)
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"));
    cmd
}

/// One Server-Sent Event and when it arrived.
#[derive(Debug)]
struct Event {
    at: Instant,
    kind: String,
    data: String,
}

/// A live `text/event-stream` answer read as it arrives, chunked or not.
struct EventStream {
    stream: TcpStream,
    head: HttpResponse,
    chunked: bool,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// The body so far, up to the next unfinished event.
    body: Vec<u8>,
    ended: bool,
}

impl EventStream {
    fn open(port: u16, path: &str) -> EventStream {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
             Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).expect("send the request");
        let mut s = EventStream {
            stream,
            head: parse_http(b"HTTP/1.1 000 -\r\n\r\n"),
            chunked: false,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let end = loop {
            if let Some(i) = s.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(s.read_more(deadline), "no head: {:?}", s.text());
            assert!(!s.ended, "closed before the head: {:?}", s.text());
        };
        s.head = parse_http(&s.raw[..end]);
        s.raw.drain(..end);
        s.chunked = s
            .head
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        s
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Reads what is there (waiting until `deadline`); false on a timeout.
    fn read_more(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("set timeout");
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => self.ended = true,
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            // A signal cut the wait short (reads with a timeout are not restarted).
            Err(e) if matches!(e.kind(), std::io::ErrorKind::Interrupted) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => return false,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => return false,
            Err(e) => panic!("reading the event stream: {e}"),
        }
        true
    }

    /// Moves whole chunks (or everything, unchunked) from `raw` to `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let start = eol + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event with an `event:` field (`retry:` and comments are skipped), or `None`
    /// when the stream ends first.
    fn next_event(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            self.dechunk();
            while let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.body[..i]).into_owned();
                self.body.drain(..i + 2);
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                if let Some(kind) = field("event:") {
                    let data = field("data:").unwrap_or_default();
                    return Some(Event {
                        at: Instant::now(),
                        kind,
                        data,
                    });
                }
            }
            if self.ended {
                return None;
            }
            assert!(
                self.read_more(deadline),
                "no event before the deadline; unread: {:?}",
                String::from_utf8_lossy(&self.body)
            );
        }
    }
}

/// The job's state as the worker itself tells it, past any front end.
fn worker_state(srv: &TestServer, id: &str) -> String {
    json_field(&job_json(&mut srv.connect(), id), "state").unwrap_or_default()
}

/// An attribute's value in a page (the first one).
fn attribute(html: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = html.find(&key)? + key.len();
    html[start..].split('"').next().map(str::to_owned)
}

/// `GET path` with curl from the local address `from`: the status.
fn status_from(front: &Frontend, from: &str, path: &str) -> u16 {
    let url = format!("http://127.0.0.1:{}{path}", front.port);
    let out = run(
        "curl",
        &[
            "--silent",
            "--output",
            "/dev/null",
            "--interface",
            from,
            "--max-time",
            "30",
            "--write-out",
            "%{http_code}",
            &url,
        ],
    );
    out.trim().parse().unwrap_or(0)
}

/// No CGI or hand-over header may reach the client.
fn assert_nothing_leaks(kind: Kind, what: &str, r: &HttpResponse) {
    for name in ["X-Sendfile", "X-Accel-Redirect", "Status"] {
        assert!(
            r.header(name).is_none(),
            "{kind:?} passed {name} on to the client ({what}): {:?}",
            r.headers
        );
    }
}

/// The form, the 303, the wait page, the event stream while the job runs, the download, the
/// internal paths and the metrics gate, all through `kind` from its deploy/frontends/ config.
fn product_flow(kind: Kind) {
    if !installed(kind) {
        return;
    }
    let work = TempDir::new("frontend-data");
    let data = data_dir(&work.0);
    let files = data.join("files");
    let data_arg = data.display().to_string();
    let args = [
        &["--data-dir", &data_arg, "--send-file", kind.send_file()][..],
        &BIG_FLAGS[..],
    ]
    .concat();
    let srv = TestServer::start(&args);
    let front = Frontend::start(kind, &srv.socket, &files);

    let posted_at = Instant::now();
    let job = submit(&front, &srv);
    let id = job.strip_prefix("/jobs/").unwrap_or_default().to_owned();
    let events_url = wait_page(&front, &job);
    let (first_live, done_at, live) = watch(kind, &srv, &front, &events_url, &id);
    let stored = std::fs::read(files.join(format!("{id}.pdf"))).expect("the stored PDF");
    download(&front, &job, &stored);
    gates(&front, &id, &files);
    eprintln!(
        "{kind:?}: POST → first live progress event {:?}, → done event {:?}; {live} progress \
         events while the worker said the job was not done; download {} bytes",
        first_live.duration_since(posted_at),
        done_at.duration_since(posted_at),
        stored.len()
    );
}

/// The index, the ledger's form and its POST: returns the job's address from the 303.
fn submit(front: &Frontend, srv: &TestServer) -> String {
    let kind = front.kind;
    let home = front.get("/", &[]);
    assert_eq!(
        home.status,
        200,
        "{}\n{}\n--- worker:\n{}",
        home.text(),
        front.logs(),
        srv.log()
    );
    assert!(
        home.text().contains(r#"href="/reports/ledger""#),
        "{}",
        home.text()
    );
    let form_page = front.get("/reports/ledger", &[]);
    assert_eq!(form_page.status, 200, "{}", form_page.text());
    let action = attribute(&form_page.text(), "action");
    assert_eq!(
        action.as_deref(),
        Some("/reports/ledger"),
        "{}",
        form_page.text()
    );

    let title = format!("Behind {kind:?} – Ελληνικά");
    let body = form(&title, BIG_ROWS, "a4", "portrait");
    let posted = http(
        front.port,
        "POST",
        "/reports/ledger",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(
        posted.status,
        303,
        "{}\n{}\n--- worker:\n{}",
        posted.text(),
        front.logs(),
        srv.log()
    );
    assert_nothing_leaks(kind, "the 303", &posted);
    let job = posted.header("Location").unwrap_or_default().to_owned();
    let id = job.strip_prefix("/jobs/").unwrap_or_default();
    assert_eq!(id.len(), 36, "Location {job:?} should be /jobs/<id>");
    job
}

/// The wait page, its script, and (where the site compresses) its gzip: returns the event
/// stream's address the page names.
fn wait_page(front: &Frontend, job: &str) -> String {
    let kind = front.kind;
    let wait = front.get(job, &[]);
    assert_eq!(wait.status, 200, "{}", wait.text());
    assert!(wait.text().contains("Please wait"), "{}", wait.text());
    let events_url = attribute(&wait.text(), "data-events").expect("the stream's address");
    assert_eq!(events_url, format!("{job}/events"));
    let script = attribute(&wait.text(), "src").expect("the wait page's script");
    let js = front.get(&script, &[]);
    assert_eq!(js.status, 200, "{script}: {}", js.text());
    if kind.compresses_pages() {
        let zipped = front.get(job, &[("Accept-Encoding", "gzip")]);
        assert_eq!(
            zipped.header("Content-Encoding"),
            Some("gzip"),
            "{kind:?} compresses pages (so the stream's exemption is tested): {:?}",
            zipped.headers
        );
    }
    events_url
}

/// The download is the stored file, byte for byte, with the worker's headers and none of the
/// hand-over's; a range of it resumes.
fn download(front: &Frontend, job: &str, stored: &[u8]) {
    let kind = front.kind;
    let dl = front.get(&format!("{job}/download"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(dl.status, 200, "{}\n{}", dl.text(), front.logs());
    assert_nothing_leaks(kind, "the download", &dl);
    assert_eq!(dl.header("Content-Type"), Some("application/pdf"));
    assert!(dl.header("Content-Encoding").is_none(), "{:?}", dl.headers);
    let disposition = dl.header("Content-Disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment;")
            && disposition.contains(&format!("filename*=UTF-8''Behind%20{kind:?}%20%E2%80%93")),
        "{kind:?} lost the worker's Content-Disposition: {disposition:?}"
    );
    assert_eq!(dl.body.len(), stored.len(), "download size");
    assert!(
        dl.body == stored,
        "the download must be the stored file, byte for byte"
    );
    // A broken download resumes: the server answers a range from the file itself.
    let part = front.get(&format!("{job}/download"), &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206, "{kind:?} range: {:?}", part.headers);
    assert!(
        part.body == stored[100..200],
        "{kind:?} sent the wrong range"
    );
}

/// The PDFs are reachable only through the worker's hand-over, and metrics only from
/// loopback.
fn gates(front: &Frontend, id: &str, files: &Path) {
    let kind = front.kind;
    // The nginx-style internal path and the absolute path both go to the worker, which knows
    // neither.
    for path in [
        format!("/_files/{id}.pdf"),
        format!("{}/{id}.pdf", files.display()),
    ] {
        let r = front.get(&path, &[]);
        assert_eq!(r.status, 404, "{kind:?} {path}: {:?}", r.headers);
        assert!(!r.body.starts_with(b"%PDF"), "{kind:?} served {path}");
    }
    // 127.0.0.2 is loopback to the kernel but not in the config's allow list.
    for (from, status) in [("127.0.0.2", 403), ("127.0.0.1", 200)] {
        assert_eq!(
            status_from(front, from, "/metrics"),
            status,
            "{kind:?} /metrics from {from}\n{}",
            front.logs()
        );
    }
}

/// Opens the event stream through the front end: 200, `text/event-stream`, not compressed.
fn open_stream(kind: Kind, front: &Frontend, url: &str) -> EventStream {
    let stream = EventStream::open(front.port, url);
    assert_eq!(
        stream.head.status,
        200,
        "{:?}\n{}",
        stream.head,
        front.logs()
    );
    assert!(
        stream
            .head
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        stream.head.headers
    );
    assert!(
        stream.head.header("Content-Encoding").is_none(),
        "{kind:?} compressed the event stream: {:?}",
        stream.head.headers
    );
    assert_nothing_leaks(kind, "the event stream", &stream.head);
    stream
}

/// Reads the job's event stream through the front end until `done`. Each progress event is
/// checked against the worker's own record at the moment it arrives: at least two must come
/// while the job is still unfinished, which a front end that buffers the stream (and lets the
/// events out when the job ends) cannot do. Returns when the first such event and the `done`
/// event arrived, and how many progress events came while the job ran.
fn watch(
    kind: Kind,
    srv: &TestServer,
    front: &Frontend,
    url: &str,
    id: &str,
) -> (Instant, Instant, usize) {
    let mut stream = open_stream(kind, front, url);
    let opened = Instant::now();
    let deadline = opened + Duration::from_secs(180);
    // One line per event: when it came, what it said, what the worker said at that moment.
    let mut seen = String::new();
    let mut live = Vec::new();
    let done = loop {
        let event = stream
            .next_event(deadline)
            .unwrap_or_else(|| panic!("{kind:?}: the stream ended before `done`; events:\n{seen}"));
        let pages = |name| json_field(&event.data, name).unwrap_or_default();
        let mut line = format!(
            "{:>6} ms  {} {}/{}",
            event.at.duration_since(opened).as_millis(),
            event.kind,
            pages("pages_done"),
            pages("pages_total")
        );
        match event.kind.as_str() {
            "progress" => {
                let state = worker_state(srv, id);
                if matches!(state.as_str(), "queued" | "running") {
                    live.push(event.at);
                }
                line.push_str(&format!("  (worker: {state})\n"));
                seen.push_str(&line);
            }
            "done" => {
                seen.push_str(&line);
                break event;
            }
            other => panic!("{kind:?}: unexpected `{other}` event: {event:?}; before:\n{seen}"),
        }
    };
    assert!(
        done.data.contains(&format!("/jobs/{id}/download")),
        "{done:?}"
    );
    assert!(
        live.len() >= 2,
        "{kind:?} must pass events on while the job runs; the events as they arrived:\n{seen}"
    );
    (live[0], done.at, live.len())
}

#[test]
fn behind_lighttpd_the_form_redirects_the_stream_moves_and_the_download_is_the_stored_file() {
    product_flow(Kind::Lighttpd);
}

#[test]
fn behind_apache_the_form_redirects_the_stream_moves_and_the_download_is_the_stored_file() {
    product_flow(Kind::Apache);
}

#[test]
fn behind_caddy_the_form_redirects_the_stream_moves_and_the_download_is_the_stored_file() {
    product_flow(Kind::Caddy);
}
