//! End to end in a real headless Chromium, in front of real nginx and the real worker: what a
//! user sees when they fill in the form, wait on the progress page, and download (issue #3).
//!
//! Chromium is driven by chromedriver over the W3C WebDriver protocol
//! (<https://www.w3.org/TR/webdriver2/>). The client is deliberately tiny: one JSON request
//! per HTTP/1.1 connection over std's `TcpStream`, bodies through `serde_json`, no new
//! crates. It uses nothing of the crate but the PDF numbers the assertions need.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium` and
//! `chromium-driver`, installed by `./deploy/test`); without them the test fails, it does not
//! skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver §12.2: the key under which a web element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often the DOM is polled while waiting for something the page does by itself.
const POLL: Duration = Duration::from_millis(250);

/// A chromedriver process with one Chromium session; both end on drop, also on panic.
struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    /// Holds `profile/` (the fresh `--user-data-dir`), `downloads/` and `chromedriver.log`;
    /// removed after the processes are gone (fields drop after `Drop::drop`).
    dir: TempDir,
}

/// One reply from chromedriver: the `value` member, or the WebDriver error as text.
type WdResult = Result<Value, String>;

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session whose
    /// downloads land in [`Browser::downloads`] without asking.
    ///
    /// # Panics
    /// When Chromium or chromedriver is not installed, or does not start.
    fn start() -> Browser {
        for (bin, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run ./deploy/test, which installs the Debian packages \
                 chromium and chromium-driver (the package that has it is {package})"
            );
        }
        let dir = TempDir::new("browser");
        let profile = dir.0.join("profile");
        let downloads = dir.0.join("downloads");
        for d in [&profile, &downloads] {
            std::fs::create_dir_all(d).expect("create browser dirs");
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("addr").port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.0.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e} (./deploy/test installs it)"));
        let mut b = Browser {
            driver,
            port,
            session: None,
            dir,
        };
        b.wait_driver_ready();

        let args = [
            "--headless=new".to_string(),
            // Needed as root (CI containers); harmless otherwise.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            // /dev/shm is tiny in containers; Chromium crashes tabs when it runs out.
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1000,800".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
                    // The console, to check that no Content-Security-Policy refusal happened.
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": args,
                        "prefs": {
                            "download.default_directory": downloads.display().to_string(),
                            "download.prompt_for_download": false,
                            "download.directory_upgrade": true,
                        },
                    },
                }
            }
        });
        let created = b
            .call("POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("creating a Chromium session failed: {e}{}", b.log_tail()));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {created}"))
            .to_string();
        b.session = Some(id);
        b
    }

    fn downloads(&self) -> PathBuf {
        self.dir.0.join("downloads")
    }

    fn wait_driver_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.call("GET", "/status", None) {
                Ok(v) if v["ready"] == json!(true) => return,
                Ok(v) => last = v.to_string(),
                Err(e) => last = e,
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited with {status}{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "chromedriver not ready within 20 s; last: {last}{}",
            self.log_tail()
        );
    }

    /// The end of chromedriver's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\nchromedriver log (last 30 lines):\n{tail}")
    }

    /// One WebDriver command at `path` (from the server root).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> WdResult {
        let (status, reply) = wd_http(self.port, method, path, body)?;
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        // WebDriver §6.6: errors are {"value": {"error", "message", "stacktrace"}}.
        Err(format!(
            "{method} {path}: HTTP {status}: {}: {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or(&reply.to_string())
        ))
    }

    /// A command in this session; `path` starts after `/session/{id}`.
    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> WdResult {
        let id = self.session.as_deref().expect("a session is open");
        self.call(method, &format!("/session/{id}{path}"), body)
    }

    /// [`Browser::cmd`], panicking with the WebDriver error.
    fn must(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver command failed: {e}"))
    }

    fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(&json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.must("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching `css`, if any (`Err` only when the command itself fails).
    fn try_find(&self, css: &str) -> Result<Option<String>, String> {
        let found = self.cmd(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        Ok(found
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT_KEY].as_str())
            .map(String::from))
    }

    fn find(&self, css: &str) -> String {
        match self.try_find(css) {
            Ok(Some(e)) => e,
            Ok(None) => panic!(
                "no element {css:?} on {}; the page says:\n{}",
                self.url(),
                self.page_text()
            ),
            Err(e) => panic!("finding {css:?}: {e}"),
        }
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.must("POST", &format!("/element/{el}/click"), Some(&json!({})));
    }

    /// Clears the field and types `text` into it, key by key as a user would.
    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.must("POST", &format!("/element/{el}/clear"), Some(&json!({})));
        self.must(
            "POST",
            &format!("/element/{el}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn displayed(&self, css: &str) -> bool {
        let el = self.find(css);
        self.must("GET", &format!("/element/{el}/displayed"), None) == json!(true)
    }

    /// Runs `body` as a function in the page and returns what it returns.
    fn script(&self, body: &str) -> WdResult {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": body, "args": [] })),
        )
    }

    fn page_text(&self) -> String {
        self.script("return document.body ? document.body.innerText : '';")
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// A PNG of the viewport.
    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.must("GET", "/screenshot", None);
        base64_decode(b64.as_str().unwrap_or_default()).expect("screenshot is base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session makes chromedriver quit Chromium (WebDriver §8.2).
        if let Some(id) = self.session.take()
            && let Err(e) = self.call("DELETE", &format!("/session/{id}"), None)
        {
            eprintln!("browser: deleting the session failed: {e}");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Whatever Chromium left behind (a crash mid-test) names our fresh profile dir.
        kill_processes_mentioning(&self.dir.0.join("profile"));
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// SIGKILLs every process whose command line mentions `path`, by pid; `path` is unique to
/// one test run, so nothing else matches.
fn kill_processes_mentioning(path: &Path) {
    let needle = path.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.filter_map(|e| e.ok()) {
        let name = p.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            eprintln!("browser: killing leftover process {name}");
            let _ = Command::new("kill").arg("-KILL").arg(&name).status();
        }
    }
}

/// One HTTP/1.1 request to chromedriver. Its server keeps the connection open whatever the
/// request says, so the reply ends where its `Content-Length` says, not at EOF.
fn wd_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let err = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(90)))
        .map_err(err)?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(err)?;
    s.write_all(body.as_bytes()).map_err(err)?;

    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut head_end = None;
    let mut want = None;
    loop {
        if let (Some(h), Some(n)) = (head_end, want)
            && raw.len() >= h + n
        {
            break;
        }
        // A signal meant for another test's child process can interrupt the read.
        let got = match s.read(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        if got == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..got]);
        if head_end.is_none()
            && let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head_end = Some(i + 4);
            let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
            if head.contains("transfer-encoding: chunked") {
                return Err(format!("{method} {path}: chunked reply not supported"));
            }
            want = Some(
                head.lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0),
            );
        }
    }
    let h = head_end.ok_or_else(|| format!("{method} {path}: no HTTP head in the reply"))?;
    let status = String::from_utf8_lossy(&raw[..h])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line"))?;
    let payload = &raw[h..raw.len().min(h + want.unwrap_or(0))];
    if payload.is_empty() {
        return Ok((status, Value::Null));
    }
    let value = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "{method} {path}: reply is not JSON ({e}): {}",
            String::from_utf8_lossy(payload)
        )
    })?;
    Ok((status, value))
}

/// Standard base64 (RFC 4648 §4) as WebDriver's screenshot uses; `None` on a bad symbol.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Polls `f` every [`POLL`] until it returns `Some`, or panics after `limit` with `what` and
/// what the page shows then.
fn poll<T>(b: &Browser, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}; the browser is at {} showing:\n{}",
                b.url(),
                b.page_text()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The one finished `.pdf` in `dir` once no `.crdownload` (Chromium's partial file) is left.
fn finished_download(dir: &Path) -> Option<PathBuf> {
    let names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if names
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "crdownload"))
    {
        return None;
    }
    names
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "pdf"))
}

fn job_records(data: &Path) -> usize {
    std::fs::read_dir(data.join("jobs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn issue_3_product_flow_in_headless_chromium() {
    let started = Instant::now();
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let b = Browser::start();
    let base = format!("http://127.0.0.1:{}", ng.port);
    eprintln!("browser: session up after {:?}", started.elapsed());

    // 1. Fill in the form as a user would and submit it.
    let title = "Browser – Ελληνικά – Кириллица";
    let rows = 3000u32;
    b.goto(&format!("{base}/"));
    b.click("#report-ledger");
    poll(&b, Duration::from_secs(30), "the ledger's form", || {
        b.url().ends_with("/reports/ledger").then_some(())
    });
    b.type_into("#title", title);
    b.type_into("#rows", &rows.to_string());
    b.click("#paper option[value=letter]");
    b.click("#orientation option[value=landscape]");
    let chosen = b
        .script(
            "return [document.getElementById('paper').value, \
             document.getElementById('orientation').value];",
        )
        .expect("read the selects");
    assert_eq!(
        chosen,
        json!(["letter", "landscape"]),
        "the selects took the clicks"
    );
    b.click("button[type=submit]");

    // 2. The 303 lands on the job's page, which says to wait and shows progress. Marking the
    // window and reading the page in one script makes both refer to the same document.
    let url = poll(&b, Duration::from_secs(30), "the job page", || {
        let u = b.url();
        u.contains("/jobs/").then_some(u)
    });
    let id = url.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(id.len(), 36, "{url} should end in a job id");
    assert_eq!(url, format!("{base}/jobs/{id}"), "landed on the job page");
    let first = b
        .script(
            "window.__pdfworkerTestMark = true;
             const s = document.getElementById('state');
             const p = document.getElementById('progress');
             return {
               state: s ? s.dataset.state : null,
               heading: document.querySelector('h1').textContent,
               text: document.body.innerText,
               refresh: Array.from(document.querySelectorAll('noscript')).some(n => n.textContent.includes('refresh')),
               progress: p ? { value: p.value, max: p.max, shown: p.offsetWidth > 0 } : null,
             };",
        )
        .expect("read the job page");
    assert_eq!(first["heading"], json!(title), "the page shows the title");
    let was_pending = first["state"] != json!("done");
    if was_pending {
        let text = first["text"].as_str().unwrap_or_default();
        assert!(text.contains("Please wait"), "pending page says:\n{text}");
        assert_eq!(
            first["refresh"],
            json!(true),
            "a pending page refreshes itself when JavaScript is off (<noscript> meta refresh)"
        );
        let p = &first["progress"];
        assert_eq!(p["shown"], json!(true), "a visible progress bar: {first}");
        let (value, max) = (p["value"].as_f64(), p["max"].as_f64());
        assert!(
            matches!((value, max), (Some(v), Some(m)) if v >= 0.0 && v <= m && m >= 1.0),
            "progress value/max: {p}"
        );
        eprintln!(
            "browser: job page first read as {} with progress {p}",
            first["state"]
        );
    } else {
        eprintln!("browser: NOTE the job was already done when its page was first read");
    }

    // 3. Wait, without navigating, for the page (meta refresh or EventSource) to bring the
    // download link. Page reloads in between can fail a command; those count as "not yet".
    let mut seen = Vec::new();
    poll(&b, Duration::from_secs(120), "the download link", || {
        let v = b
            .script(
                "const p = document.getElementById('progress');
                 return { done: !!document.getElementById('download'),
                          progress: p ? p.value : null };",
            )
            .ok()?;
        if let Some(p) = v["progress"].as_f64()
            && seen.last() != Some(&p)
        {
            seen.push(p);
        }
        (v["done"] == json!(true)).then_some(())
    });
    eprintln!(
        "browser: download link after {:?}; progress values seen: {seen:?}",
        started.elapsed()
    );
    let done = b
        .script(
            "return { mark: window.__pdfworkerTestMark === true,
                      state: document.getElementById('state').textContent,
                      pages: document.getElementById('pages').textContent,
                      refresh: Array.from(document.querySelectorAll('noscript')).some(n => n.textContent.includes('refresh')),
                      href: document.getElementById('download').getAttribute('href') };",
        )
        .expect("read the done page");
    if was_pending {
        assert_eq!(
            done["mark"],
            json!(false),
            "the page must have reloaded by itself (the mark set on the pending page is gone)"
        );
    }
    assert_eq!(b.url(), url, "still on the job page");
    assert_eq!(done["href"], json!(format!("/jobs/{id}/download")));
    assert_eq!(done["state"], json!("Your PDF is ready."));
    assert_eq!(
        done["refresh"],
        json!(false),
        "a finished page stops refreshing"
    );
    let pages = crate::nginx::pdf_pages(&srv.data.join("files").join(format!("{id}.pdf")));
    assert_eq!(
        done["pages"],
        json!(pages.to_string()),
        "pages shown: {done}"
    );
    assert!(b.displayed("#download"), "the download button is visible");

    // The page's script ran under the pages' Content-Security-Policy (no 'unsafe-inline'):
    // the page reloaded itself above, and the console has no refusal in it.
    let console = b.must("POST", "/se/log", Some(&json!({ "type": "browser" })));
    let refusals: Vec<&Value> = console
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Content Security Policy"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(refusals.is_empty(), "CSP refused something: {refusals:?}");
    eprintln!(
        "browser: console had {} entries, no CSP refusal",
        console.as_array().map_or(0, Vec::len)
    );

    // 6 (done page as it stands). For humans, not asserted.
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser-done.png");
    std::fs::write(&target, &png).expect("write the screenshot");
    eprintln!(
        "browser: screenshot of the done page at {}",
        target.display()
    );

    // 4. Download: Chromium saves the attachment by itself into the downloads dir.
    b.click("#download");
    let pdf = poll(&b, Duration::from_secs(60), "the PDF download", || {
        finished_download(&b.downloads())
    });
    eprintln!(
        "browser: downloaded {} after {:?}",
        pdf.display(),
        started.elapsed()
    );
    assert_eq!(b.url(), url, "an attachment does not navigate away");
    let got = std::fs::read(&pdf).expect("read the download");
    let on_disk =
        std::fs::read(srv.data.join("files").join(format!("{id}.pdf"))).expect("the worker's file");
    assert!(
        got == on_disk,
        "the download is the worker's file byte for byte"
    );
    crate::nginx::check_pdf_layout(
        &pdf,
        title,
        rows,
        pdfworker::pdf::Paper::Letter,
        pdfworker::pdf::Orientation::Landscape,
    );
    let p = pdf.to_str().expect("utf-8 path");
    let info = run("pdfinfo", &[p]);
    let size = info
        .lines()
        .find_map(|l| l.strip_prefix("Page size:"))
        .map(str::trim)
        .unwrap_or_default();
    assert!(
        size.starts_with("792 x 612 pts"),
        "letter landscape is 792 × 612 pt, pdfinfo says {size:?}"
    );

    // 5. Bad input: the browser itself would refuse rows=0 (min=1), so switch its check off
    // the way an old browser or a hand-made request would; the worker must answer in the form.
    let jobs_before = job_records(&srv.data);
    let kept = "Kept – Ελληνικά";
    b.goto(&format!("{base}/reports/ledger"));
    b.type_into("#title", kept);
    b.type_into("#rows", "0");
    b.click("#paper option[value=letter]");
    let blocked = b
        .script(
            "const r = document.getElementById('rows');
             const underflow = r.validity.rangeUnderflow;
             document.querySelector('form').noValidate = true;
             window.pdfworkerBeforeSubmit = true;
             return underflow;",
        )
        .expect("switch off the browser's validation");
    assert_eq!(blocked, json!(true), "the browser sees rows=0 as below min");
    b.click("button[type=submit]");
    // The form page posts to its own URL, so the URL alone cannot tell the answer from the
    // page we typed into: wait until the marker set on that page is gone.
    let bad = poll(&b, Duration::from_secs(30), "the form page again", || {
        let fresh = b
            .script("return window.pdfworkerBeforeSubmit !== true;")
            .ok()?
            == json!(true);
        (fresh && b.url().ends_with("/reports/ledger")).then(|| {
            b.script(
                "const r = document.getElementById('rows');
                 const e = document.getElementById('rows-error');
                 return { error: e ? e.textContent : null,
                          next_to_rows: !!e && r.nextElementSibling === e,
                          described_by: r.getAttribute('aria-describedby'),
                          invalid: r.classList.contains('invalid'),
                          title: document.getElementById('title').value,
                          paper: document.getElementById('paper').value };",
            )
            .ok()
        })?
    });
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(error.contains("from 1 to"), "rows error shown: {bad}");
    assert_eq!(
        bad["next_to_rows"],
        json!(true),
        "error right after the rows field: {bad}"
    );
    assert_eq!(bad["described_by"], json!("rows-error"), "{bad}");
    assert_eq!(bad["invalid"], json!(true), "rows field marked: {bad}");
    assert!(b.displayed("#rows-error"), "the error is visible");
    assert_eq!(bad["title"], json!(kept), "the typed title is kept");
    assert_eq!(bad["paper"], json!("letter"), "the chosen paper is kept");
    assert_eq!(
        job_records(&srv.data),
        jobs_before,
        "no job recorded for bad input"
    );
    assert!(!srv.log().contains("panicked"), "worker log shows a panic");
    eprintln!("browser: all done after {:?}", started.elapsed());
}

/// Issue #7: the list → the grouped report → its generated form (a date and a choice) → the
/// wait page → the download, whose text holds exactly the chosen rows and their subtotal.
#[test]
fn issue_7_a_grouped_report_from_the_generated_form_in_headless_chromium() {
    let srv = TestServer::start(&[]);
    let ng = Nginx::start(&[&srv.socket], &srv.data.join("files"), true);
    let b = Browser::start();
    let base = format!("http://127.0.0.1:{}", ng.port);
    b.goto(&format!("{base}/"));
    b.click("#report-sales-by-region");
    poll(
        &b,
        Duration::from_secs(30),
        "the grouped report's form",
        || b.url().ends_with("/reports/sales-by-region").then_some(()),
    );
    let kinds = b
        .script(
            "return [document.getElementById('from').type, document.getElementById('to').type,
                     document.getElementById('region').tagName];",
        )
        .expect("read the form");
    assert_eq!(kinds, json!(["date", "date", "SELECT"]), "generated inputs");
    // A date input takes its value in ISO form whatever the browser's locale shows.
    b.script(
        "for (const [id, v] of [['from', '2024-02-01'], ['to', '2024-02-10']]) {
           const e = document.getElementById(id); e.value = v;
           e.dispatchEvent(new Event('input', { bubbles: true }));
         }",
    )
    .expect("fill the dates");
    b.click("#region option[value=North]");
    b.click("button[type=submit]");
    let url = poll(&b, Duration::from_secs(30), "the job page", || {
        let u = b.url();
        u.contains("/jobs/").then_some(u)
    });
    let id = url.rsplit('/').next().unwrap_or_default().to_string();
    poll(&b, Duration::from_secs(60), "the download link", || {
        b.try_find("#download").ok().flatten()
    });
    b.click("#download");
    let pdf = poll(&b, Duration::from_secs(60), "the PDF download", || {
        finished_download(&b.downloads())
    });
    let got = std::fs::read(&pdf).expect("read the download");
    let on_disk =
        std::fs::read(srv.data.join("files").join(format!("{id}.pdf"))).expect("the worker's file");
    assert!(got == on_disk, "the download is the worker's file");
    let p = pdf.to_str().expect("utf-8 path");
    run("qpdf", &["--check", p]);
    let text = run("pdftotext", &["-layout", p, "-"]);
    let db = crate::util::demo_reports().join("demo.sqlite");
    let want_rows = run(
        "sqlite3",
        &[
            db.to_str().expect("utf-8 path"),
            "SELECT count(*) FROM sales WHERE region = 'North' AND day BETWEEN '2024-02-01' AND '2024-02-10'",
        ],
    );
    let want_rows = want_rows.trim();
    assert!(
        text.contains("Sales 2024-02-01 to 2024-02-10"),
        "title:\n{text}"
    );
    assert!(text.contains("Region: North"), "group heading:\n{text}");
    assert!(
        text.contains(&format!("Total North ({want_rows} rows)")),
        "subtotal of {want_rows} rows:\n{text}"
    );
    for other in ["East", "South", "West"] {
        assert!(
            !text.contains(&format!("Region: {other}")),
            "{other} must not appear:\n{text}"
        );
    }
    let days: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("North "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        days.len().to_string(),
        want_rows,
        "one line per chosen row:\n{text}"
    );
    assert!(
        days.iter()
            .all(|d| ("2024-02-01"..="2024-02-10").contains(d)),
        "every row in the range: {days:?}"
    );
}
