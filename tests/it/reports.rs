//! Reports end to end (issue #7, "Tests that show it"): each test writes a reports dir of its
//! own, starts the real worker on it (raw FastCGI, no nginx), posts the report's form, and
//! reads the job through `status.json` and the PDF through `qpdf --check` and
//! `pdftotext -layout`. Rows come from real SQLite files and real PostgreSQL / MariaDB servers
//! (`dbs`); every expected figure is computed by the database's own client, never by the code
//! under test.
//!
//! One PostgreSQL and one MariaDB server are shared by the tests that run at the same time
//! (each uses tables of its own); a test that stops a server starts its own.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::dbs::{Mariadb, PASSWORD, Postgres};
use crate::util::*;

/// The variables the worker reads the test servers' URLs from (`url_env`).
const PG_ENV: &str = "PDFWORKER_IT_PG_URL";
const MARIA_ENV: &str = "PDFWORKER_IT_MARIADB_URL";
/// Rows of the big tables: a render of seconds, 24,000 pages.
const MILLION: u32 = 1_000_000;
const DROID: &str = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf";

// ---- shared servers --------------------------------------------------------------------------

fn pg() -> Option<Arc<Postgres>> {
    crate::dbs::shared_postgres()
}

fn maria() -> Option<Arc<Mariadb>> {
    crate::dbs::shared_mariadb()
}

/// A table name no other test uses.
fn table(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("r_{tag}_{}", N.fetch_add(1, Ordering::SeqCst))
}

// ---- helpers ---------------------------------------------------------------------------------

/// A reports dir of one test's own (removed on drop).
struct Reports(TempDir);

impl Reports {
    fn new() -> Reports {
        Reports(TempDir::new("reports"))
    }

    fn path(&self) -> &Path {
        &self.0.0
    }

    fn file(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}.toml"))
    }

    /// Writes `<id>.toml`.
    fn write(&self, id: &str, toml: &str) -> PathBuf {
        let path = self.file(id);
        std::fs::write(&path, toml).expect("write a report definition");
        path
    }

    fn str(&self) -> &str {
        self.path().to_str().expect("utf-8 temp path")
    }
}

/// `s` as a TOML basic string (JSON's escapes are TOML's).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Runs `sql` on the SQLite file `db` with the `sqlite3` CLI; its output, trimmed.
fn sqlite(db: &Path, sql: &str) -> String {
    let path = db.to_str().expect("utf-8 path");
    run("sqlite3", &["-batch", path, sql]).trim_end().to_owned()
}

/// A worker serving `reports` (its `--reports-dir` wins over the demo one).
fn worker(reports: &Reports, extra: &[&str], env: &[(&str, &str)]) -> TestServer {
    let mut args = vec!["--reports-dir", reports.str()];
    args.extend_from_slice(extra);
    TestServer::start_with_env(&args, env)
}

/// `POST /reports/<report>` with `fields` urlencoded; the reply.
fn post_reply(srv: &TestServer, report: &str, fields: &[(&str, &str)]) -> FcgiReply {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect();
    let body = body.join("&");
    let params = cgi_params(
        "POST",
        &format!("/reports/{report}"),
        body.len(),
        "application/x-www-form-urlencoded",
    );
    let mut c = srv.connect();
    c.send_request(1, true, &params, body.as_bytes(), 65535);
    c.read_reply(1)
}

/// `POST /reports/<report>` with `fields` urlencoded; expects the 303 and returns the job id.
fn post(srv: &TestServer, report: &str, fields: &[(&str, &str)]) -> String {
    let r = post_reply(srv, report, fields);
    assert_eq!(r.status(), 303, "POST /reports/{report}: {}", r.text());
    let location = r
        .header("Location")
        .unwrap_or_else(|| panic!("no Location: {}", r.text()));
    location.trim_start_matches("/jobs/").to_owned()
}

fn status(srv: &TestServer, id: &str) -> Json {
    let text = job_json(&mut srv.connect(), id);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status.json {text:?}: {e}"))
}

fn state(json: &Json) -> &str {
    json["state"].as_str().unwrap_or("")
}

/// Polls the job until it is done or failed.
fn wait_final(srv: &TestServer, id: &str, limit: Duration) -> Json {
    wait_for(limit, &format!("job {id} to end"), || {
        let json = status(srv, id);
        matches!(state(&json), "done" | "failed").then_some(json)
    })
}

/// The job ends done; its PDF.
fn expect_done(srv: &TestServer, id: &str, limit: Duration) -> PathBuf {
    let json = wait_final(srv, id, limit);
    assert_eq!(state(&json), "done", "{json}\nlog:\n{}", srv.log());
    let pdf = srv.data.join("files").join(format!("{id}.pdf"));
    assert!(pdf.is_file(), "done but no {}", pdf.display());
    pdf
}

/// The job ends failed; its error message.
fn expect_failed(srv: &TestServer, id: &str, limit: Duration) -> String {
    let json = wait_final(srv, id, limit);
    assert_eq!(state(&json), "failed", "{json}\nlog:\n{}", srv.log());
    let pdf = srv.data.join("files").join(format!("{id}.pdf"));
    assert!(!pdf.exists(), "a failed job published {}", pdf.display());
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a failed job without an error: {json}"))
        .to_owned()
}

/// `qpdf --check` passes; the whole text as `pdftotext -layout` reads it.
fn pdf_text(pdf: &Path) -> String {
    let p = pdf.to_str().expect("utf-8 path");
    run("qpdf", &["--check", p]);
    run("pdftotext", &["-layout", p, "-"])
}

/// The text of the last `pages` pages (for PDFs of 24,000 pages, which `qpdf --check` takes
/// many seconds over: `--show-npages` still reads the cross-reference table and page tree).
fn pdf_tail_text(pdf: &Path, pages: u32) -> (u32, String) {
    let p = pdf.to_str().expect("utf-8 path");
    let n: u32 = run("qpdf", &["--show-npages", p])
        .trim()
        .parse()
        .expect("a page count");
    let first = n.saturating_sub(pages - 1).max(1).to_string();
    let text = run(
        "pdftotext",
        &["-layout", "-f", &first, "-l", &n.to_string(), p, "-"],
    );
    (n, text)
}

/// `-1234567.89` → `-1,234,567.89`: the integer part's digits in threes.
fn thousands(s: &str) -> String {
    let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
    let (int, frac) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// The one line of `text` containing `needle`.
fn line_with<'t>(text: &'t str, needle: &str) -> &'t str {
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "lines with {needle:?}: {lines:?}\n{text}");
    lines[0]
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The last `n` words of the line holding `needle`.
fn last_words<'t>(text: &'t str, needle: &str, n: usize) -> Vec<&'t str> {
    let w = words(line_with(text, needle));
    assert!(w.len() >= n, "{needle:?}: {w:?}");
    w[w.len() - n..].to_vec()
}

fn assert_healthy(srv: &TestServer) {
    let r = srv.connect().get(1, "/healthz");
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.text().ends_with("ok\n"), "{}", r.text());
}

/// A command's end, with its output, bounded in time (killed past `limit`).
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with stdout and stderr in files, calling `tick(pid)` every 5 ms while it runs.
fn run_within(cmd: &mut Command, limit: Duration, mut tick: impl FnMut(u32)) -> Ran {
    let dir = TempDir::new("cmd");
    let (out, err) = (dir.0.join("stdout"), dir.0.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create stdout file"))
        .stderr(std::fs::File::create(&err).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        tick(child.id());
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// `pdfworker render --reports-dir D --report ID --param ... --out F`; its peak RSS in KiB,
/// from `/usr/bin/time -f %M`, or else the highest VmHWM seen in /proc while it runs.
fn render_peak_rss_kib(
    reports: &Reports,
    report: &str,
    params: &[&str],
    out: &Path,
    env: &[(&str, &str)],
) -> u64 {
    let bin = env!("CARGO_BIN_EXE_pdfworker");
    let mut args: Vec<&str> = vec!["render", "--reports-dir", reports.str()];
    args.extend(["--report", report, "--max-pages", "30000"]);
    for p in params {
        args.extend(["--param", p]);
    }
    args.extend(["--out", out.to_str().expect("utf-8 path")]);
    let time = Path::new("/usr/bin/time");
    let rss_file = out.with_extension("rss");
    let mut cmd = if time.is_file() {
        let mut c = Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(&args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn");
    let mut hwm = 0u64;
    let ran = run_within(&mut cmd, Duration::from_secs(300), |pid| {
        if !time.is_file() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            hwm = hwm.max(kib.unwrap_or(0));
        }
    });
    assert!(
        ran.status.success(),
        "pdfworker {args:?}: {}\n{}",
        ran.status,
        ran.stderr
    );
    if time.is_file() {
        let text = std::fs::read_to_string(&rss_file).expect("read /usr/bin/time's output");
        text.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in {text:?}"))
    } else {
        assert!(hwm > 0, "no VmHWM read for pdfworker render");
        hwm
    }
}

// ---- 1. SQLite: groups, subtotals, grand total ---------------------------------------------

#[test]
fn sqlite_grouped_report_prints_each_subtotal_and_the_grand_total_the_database_computes() {
    let reports = Reports::new();
    let db = reports.path().join("sales.db");
    sqlite(
        &db,
        "CREATE TABLE lines (id INTEGER PRIMARY KEY, region TEXT, item TEXT, qty INTEGER,
                             amount REAL, price REAL);
         INSERT INTO lines (region, item, qty, amount, price) VALUES
           ('East', 'Anvil', 3, 1234.56, 10.00),
           ('East', 'Bolt', 1200, 98765.43, 1.25),
           ('East', 'Crate', NULL, -50.10, 1.25),
           ('East', NULL, 7, 0.99, 1.00),
           ('North', 'Drill', 2, 2500000.00, NULL),
           ('North', 'Edge', 5, NULL, 2.50),
           ('North', 'File', 1000000, 0.01, 3.00),
           ('South', 'Gear', -4, -999.99, 0.10),
           ('South', 'Hinge', 10, 1999.99, 0.20),
           ('South', 'Jack', NULL, NULL, NULL);",
    );
    // The database relative to the definition file.
    reports.write(
        "sales",
        r#"title = "Sales by region"
group_by = "region"

[source]
kind = "sqlite"
database = "sales.db"
query = "SELECT region, item, qty, amount, price FROM lines ORDER BY region, id"
count_query = "SELECT count(*) FROM lines"

[[column]]
field = "region"
heading = "Region"
width = 2

[[column]]
field = "item"
heading = "Item"
total = "count"

[[column]]
field = "qty"
heading = "Qty"
format = "integer"
total = "sum"

[[column]]
field = "amount"
heading = "Amount"
format = "decimal"
total = "sum"

[[column]]
field = "price"
heading = "Price"
format = "decimal"
total = "avg"
"#,
    );
    let srv = worker(&reports, &[], &[]);
    let id = post(&srv, "sales", &[]);
    let text = pdf_text(&expect_done(&srv, &id, Duration::from_secs(60)));
    assert!(text.contains("Sales by region"), "title:\n{text}");

    // sqlite3's own figures: rows, count, sums and average per group, then for all rows.
    let figures = |rows: &str| -> Vec<String> {
        let f: Vec<&str> = rows.split('|').collect();
        vec![
            f[1].to_owned(),
            f[2].to_owned(),
            thousands(f[3]),
            thousands(f[4]),
            thousands(f[5]),
        ]
    };
    let per_group = sqlite(
        &db,
        "SELECT region, count(*), count(item), sum(qty), printf('%.2f', sum(amount)),
                printf('%.2f', avg(price))
         FROM lines GROUP BY region ORDER BY region",
    );
    let groups: Vec<&str> = per_group.lines().collect();
    assert_eq!(groups.len(), 3, "{per_group}");
    for g in &groups {
        let region = g.split('|').next().unwrap_or_default();
        let want = figures(g);
        line_with(&text, &format!("Region: {region}"));
        let label = format!("Total {region} ({} rows)", want[0]);
        let got = last_words(&text, &label, 4);
        assert_eq!(got, want[1..], "subtotal of {region}:\n{text}");
    }
    let all = sqlite(
        &db,
        "SELECT 'all', count(*), count(item), sum(qty), printf('%.2f', sum(amount)),
                printf('%.2f', avg(price)) FROM lines",
    );
    let want = figures(&all);
    let got = last_words(&text, &format!("Total ({} rows)", want[0]), 4);
    assert_eq!(got, want[1..], "grand total:\n{text}");
    // The figures themselves, so a change of data shows: half away from zero (3.375 → 3.38).
    assert_eq!(want, ["10", "9", "1,001,223", "2,600,950.89", "2.41"]);
    let east = figures(groups[0]);
    assert_eq!(east[4], "3.38", "{per_group}");

    // NULL prints blank: the rows keep only their other cells.
    for (needle, want) in [
        ("Crate", vec!["East", "Crate", "-50.10", "1.25"]),
        ("0.99", vec!["East", "7", "0.99", "1.00"]),
        ("Drill", vec!["North", "Drill", "2", "2,500,000.00"]),
        ("Edge", vec!["North", "Edge", "5", "2.50"]),
        ("Jack", vec!["South", "Jack"]),
    ] {
        assert_eq!(
            words(line_with(&text, needle)),
            want,
            "row {needle}:\n{text}"
        );
    }
}

#[test]
fn figures_wider_than_their_column_print_whole_and_apart() {
    let reports = Reports::new();
    let db = reports.path().join("wide.db");
    sqlite(
        &db,
        "CREATE TABLE t (id INTEGER, amount NUMERIC);
         INSERT INTO t VALUES (1, 4999115000.00), (2, 4999115000.00)",
    );
    reports.write(
        "wide",
        r#"title = "Wide"
[source]
kind = "sqlite"
database = "wide.db"
query = "SELECT 'item ' || id AS label, 'grp' AS grp, id, amount FROM t ORDER BY id"
[[column]]
field = "label"
width = 3
[[column]]
field = "grp"
[[column]]
field = "id"
format = "integer"
total = "count"
[[column]]
field = "amount"
format = "decimal"
total = "sum"
"#,
    );
    let srv = worker(&reports, &[], &[]);
    let id = post(&srv, "wide", &[]);
    let text = pdf_text(&expect_done(&srv, &id, Duration::from_secs(30)));
    assert_eq!(
        words(line_with(&text, "item 1")),
        ["item", "1", "grp", "1", "4,999,115,000.00"],
        "{text}"
    );
    let sum = sqlite(&db, "SELECT printf('%.2f', sum(amount)) FROM t");
    assert_eq!(
        last_words(&text, "Total (2 rows)", 2),
        ["2", thousands(&sum).as_str()],
        "{text}"
    );
}

// ---- 2. a million rows from PostgreSQL and MariaDB -----------------------------------------

/// The big report: every row of `t` up to `:rows`, with a count and a sum.
fn big_report(kind: &str, env_var: &str, t: &str) -> String {
    format!(
        r#"title = "Big {kind}"

[source]
kind = "{kind}"
url_env = "{env_var}"
query = "SELECT label, grp, id, amount FROM {t} WHERE id <= :rows ORDER BY id"
count_query = "SELECT count(*) FROM {t} WHERE id <= :rows"
timeout_secs = 600

[[param]]
name = "rows"
type = "integer"
min = 1
max = {MILLION}
default = {MILLION}

[[column]]
field = "label"
heading = "Label"
width = 3

[[column]]
field = "grp"
heading = "Group"

[[column]]
field = "id"
heading = "Id"
format = "integer"
total = "count"
width = 1.4

[[column]]
field = "amount"
heading = "Amount"
format = "decimal"
total = "sum"
width = 2
"#
    )
}

/// The job over 1,000,000 rows ends done with the server's own SUM; `pdfworker render` of
/// 100,000 and 1,000,000 rows peaks at about the same RSS.
fn a_million_rows_total_the_servers_sum_in_flat_memory(
    kind: &str,
    env_var: &str,
    url: &str,
    t: &str,
    server_sum: &dyn Fn(u32) -> String,
) {
    let reports = Reports::new();
    reports.write("big", &big_report(kind, env_var, t));
    let env = [(env_var, url)];
    let srv = worker(&reports, &BIG_FLAGS, &env);
    let started = Instant::now();
    let id = post(&srv, "big", &[("rows", &MILLION.to_string())]);
    let pdf = expect_done(&srv, &id, Duration::from_secs(300));
    eprintln!(
        "{kind}: the 1,000,000-row job took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (pages, text) = pdf_tail_text(&pdf, 2);
    assert!(pages > 20_000, "{pages} pages");
    let sum = thousands(&server_sum(MILLION));
    let got = last_words(&text, "Total (1,000,000 rows)", 2);
    assert_eq!(got, ["1,000,000", sum.as_str()], "grand total:\n{text}");
    drop(srv);

    let small_out = reports.path().join("100k.pdf");
    let big_out = reports.path().join("1m.pdf");
    let small = render_peak_rss_kib(&reports, "big", &["rows=100000"], &small_out, &env);
    let big = render_peak_rss_kib(&reports, "big", &["rows=1000000"], &big_out, &env);
    eprintln!(
        "{kind}: peak RSS of pdfworker render: 100,000 rows {small} KiB, 1,000,000 rows {big} KiB"
    );
    let text = pdf_text(&small_out);
    let sum = thousands(&server_sum(100_000));
    let got = last_words(&text, "Total (100,000 rows)", 2);
    assert_eq!(got, ["100,000", sum.as_str()], "CLI grand total");
    assert!(
        big * 2 <= small * 3,
        "{kind}: 1,000,000 rows peaked at {big} KiB, more than 1.5 × {small} KiB"
    );
    assert!(
        big < 64 * 1024,
        "{kind}: 1,000,000 rows peaked at {big} KiB"
    );
}

#[test]
fn postgres_a_million_rows_end_done_with_the_servers_sum_in_flat_memory() {
    let Some(db) = pg() else { return };
    let t = table("big");
    db.psql(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, grp text NOT NULL, label text NOT NULL,
                           amount numeric(12,2) NOT NULL);
         INSERT INTO {t} SELECT i, 'grp-' || (i % 13), 'item ' || left(md5(i::text), 16),
                ((i::bigint * 7919) % 2000000 - 500000) / 100.0
         FROM generate_series(1, {MILLION}) i;
         ANALYZE {t}"
    ));
    let sum = |rows: u32| db.psql(&format!("SELECT sum(amount) FROM {t} WHERE id <= {rows}"));
    a_million_rows_total_the_servers_sum_in_flat_memory("postgres", PG_ENV, &db.url(), &t, &sum);
}

#[test]
fn mariadb_a_million_rows_end_done_with_the_servers_sum_in_flat_memory() {
    let Some(db) = maria() else { return };
    let t = table("big");
    db.sql(&format!(
        "CREATE TABLE {t} (id INT PRIMARY KEY, grp VARCHAR(10) NOT NULL,
                           label VARCHAR(40) NOT NULL, amount DECIMAL(12,2) NOT NULL)
         ENGINE=MyISAM;
         INSERT INTO {t} SELECT seq, CONCAT('grp-', seq % 13), CONCAT('item ', LEFT(MD5(seq), 16)),
                ((CAST(seq AS SIGNED) * 7919) % 2000000 - 500000) / 100
         FROM seq_1_to_{MILLION}"
    ));
    let sum = |rows: u32| db.sql(&format!("SELECT SUM(amount) FROM {t} WHERE id <= {rows}"));
    a_million_rows_total_the_servers_sum_in_flat_memory("mysql", MARIA_ENV, &db.url(), &t, &sum);
}

// ---- 3. a source stopped mid-render --------------------------------------------------------

/// A small SQLite report beside the big one, to show the worker still renders.
fn local_report(reports: &Reports) {
    let db = reports.path().join("local.db");
    sqlite(
        &db,
        "CREATE TABLE t (name TEXT); INSERT INTO t VALUES ('still here')",
    );
    reports.write(
        "local",
        r#"title = "Local"
[source]
kind = "sqlite"
database = "local.db"
query = "SELECT name FROM t"
[[column]]
field = "name"
"#,
    );
}

/// Starts the big job, stops the server (`stop`) once pages are written, and expects a
/// failed job with a readable message and no secret, and a worker that still serves.
fn a_source_stopped_mid_render_fails_the_job_and_the_worker_serves_on(
    kind: &str,
    env_var: &str,
    url: &str,
    t: &str,
    stop: &mut dyn FnMut(),
) {
    let reports = Reports::new();
    reports.write("big", &big_report(kind, env_var, t));
    local_report(&reports);
    let srv = worker(&reports, &BIG_FLAGS, &[(env_var, url)]);
    let id = post(&srv, "big", &[("rows", &MILLION.to_string())]);
    wait_for(
        Duration::from_secs(60),
        "the big job to write pages",
        || {
            let json = status(&srv, &id);
            assert_ne!(state(&json), "done", "ended before the server stopped");
            assert_ne!(state(&json), "failed", "{json}");
            (json["pages_done"].as_u64().unwrap_or(0) > 0).then_some(())
        },
    );
    let stopped = Instant::now();
    stop();
    let error = expect_failed(&srv, &id, Duration::from_secs(60));
    eprintln!(
        "{kind}: failed {:.1} s after the stop: {error}",
        stopped.elapsed().as_secs_f64()
    );
    let readable = [
        "the connection to the database was lost while reading rows: ",
        "the query failed: ",
    ];
    assert!(
        readable.iter().any(|p| error.starts_with(p)) && error.len() > 30,
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(!error.contains("://"), "the URL in {error}");
    assert!(!srv.log().contains(PASSWORD), "the password in the log");

    assert_healthy(&srv);
    let other = post(&srv, "local", &[]);
    let text = pdf_text(&expect_done(&srv, &other, Duration::from_secs(30)));
    assert!(text.contains("still here"), "{text}");
    assert_eq!(state(&status(&srv, &id)), "failed");
}

#[test]
fn postgres_stopped_mid_render_fails_the_job_and_the_worker_serves_on() {
    let Some(mut db) = Postgres::start() else {
        return;
    };
    db.psql(&format!(
        "CREATE TABLE big AS SELECT i AS id, 'grp-' || (i % 13) AS grp,
                'item ' || left(md5(i::text), 16) AS label, (i % 1000)::numeric(12,2) AS amount
         FROM generate_series(1, {MILLION}) i"
    ));
    let url = db.url();
    a_source_stopped_mid_render_fails_the_job_and_the_worker_serves_on(
        "postgres",
        PG_ENV,
        &url,
        "big",
        &mut || db.stop(),
    );
}

#[test]
fn mariadb_stopped_mid_render_fails_the_job_and_the_worker_serves_on() {
    let Some(mut db) = Mariadb::start() else {
        return;
    };
    db.sql(&format!(
        "CREATE TABLE big ENGINE=MyISAM AS SELECT seq AS id, CONCAT('grp-', seq % 13) AS grp,
                CONCAT('item ', LEFT(MD5(seq), 16)) AS label, CAST(seq % 1000 AS DECIMAL(12,2)) AS amount
         FROM seq_1_to_{MILLION}"
    ));
    let url = db.url();
    a_source_stopped_mid_render_fails_the_job_and_the_worker_serves_on(
        "mysql",
        MARIA_ENV,
        &url,
        "big",
        &mut || db.stop(),
    );
}

// ---- 4. statement timeout ------------------------------------------------------------------

fn a_statement_past_timeout_secs_fails_the_job(kind: &str, env_var: &str, url: &str, query: &str) {
    let reports = Reports::new();
    reports.write(
        "sleepy",
        &format!(
            r#"title = "Sleepy"
[source]
kind = "{kind}"
url_env = "{env_var}"
query = "{query}"
timeout_secs = 1
[[column]]
field = "x"
"#
        ),
    );
    local_report(&reports);
    let srv = worker(&reports, &[], &[(env_var, url)]);
    let started = Instant::now();
    let id = post(&srv, "sleepy", &[]);
    let error = expect_failed(&srv, &id, Duration::from_secs(30));
    eprintln!(
        "{kind}: the 1-second limit failed the job after {:.1} s: {error}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(error, "the query ran longer than 1 second and was stopped");
    assert_healthy(&srv);
    let other = post(&srv, "local", &[]);
    expect_done(&srv, &other, Duration::from_secs(30));
}

#[test]
fn postgres_a_statement_past_timeout_secs_fails_the_job() {
    let Some(db) = pg() else { return };
    let query = "SELECT 1 AS x FROM pg_sleep(5)";
    a_statement_past_timeout_secs_fails_the_job("postgres", PG_ENV, &db.url(), query);
}

#[test]
fn mariadb_a_statement_past_timeout_secs_fails_the_job() {
    let Some(db) = maria() else { return };
    let query = "SELECT SLEEP(5) AS x";
    a_statement_past_timeout_secs_fails_the_job("mysql", MARIA_ENV, &db.url(), query);
}

// ---- 5. injection through the form; writes ---------------------------------------------------

#[test]
fn text_params_with_quotes_semicolons_dashes_and_wildcards_select_exactly_the_rows_they_name() {
    let reports = Reports::new();
    let db = reports.path().join("names.db");
    // Each value a form may send, with decoys it would also match were it spliced into the
    // SQL, used as a LIKE pattern or read with backslash escapes.
    let rows: &[(&str, &str)] = &[
        ("O'Brien", "ROW-A"),
        ("O''Brien", "ROW-B"),
        ("it's; DROP TABLE t; --", "ROW-C"),
        ("50%", "ROW-D"),
        ("500", "ROW-E"),
        ("a_c", "ROW-F"),
        ("abc", "ROW-G"),
        (r"C:\temp\new", "ROW-H"),
        (r"C:\\temp\\new", "ROW-I"),
        (r#""quoted" -- not a comment"#, "ROW-J"),
        ("x' OR '1'='1", "ROW-K"),
    ];
    let inserts: Vec<String> = rows
        .iter()
        .map(|(name, tag)| format!("('{}', '{tag}')", name.replace('\'', "''")))
        .collect();
    sqlite(
        &db,
        &format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, tag TEXT);
             INSERT INTO t (name, tag) VALUES {};",
            inserts.join(", ")
        ),
    );
    reports.write(
        "named",
        r#"title = "Rows named {name}"
[source]
kind = "sqlite"
database = "names.db"
query = "SELECT name, tag FROM t WHERE name = :name ORDER BY id"
[[param]]
name = "name"
type = "text"
[[column]]
field = "name"
heading = "Name"
width = 3
[[column]]
field = "tag"
heading = "Tag"
total = "count"
"#,
    );
    let before = sqlite(&db, "SELECT count(*), group_concat(tag) FROM t");
    let srv = worker(&reports, &[], &[]);
    let jobs: Vec<(String, &str, Option<&str>)> = rows
        .iter()
        .map(|(name, tag)| (post(&srv, "named", &[("name", name)]), *name, Some(*tag)))
        .chain(
            ["' OR '1'='1", "%", "_", "'; DELETE FROM t; --", r"\"]
                .iter()
                .map(|v| (post(&srv, "named", &[("name", v)]), *v, None)),
        )
        .collect();
    for (id, name, want) in &jobs {
        let text = pdf_text(&expect_done(&srv, id, Duration::from_secs(60)));
        // The title shows the value as sent.
        assert!(text.contains(&format!("Rows named {name}")), "{text}");
        let shown: Vec<&str> = rows
            .iter()
            .map(|(_, tag)| *tag)
            .filter(|tag| text.contains(tag))
            .collect();
        match want {
            Some(tag) => {
                assert_eq!(shown, [*tag], "job {id}:\n{text}");
                assert!(text.contains("Total (1 row)"), "{text}");
            }
            None => {
                assert!(shown.is_empty(), "job {id} shows {shown:?}:\n{text}");
                assert!(text.contains("Total (0 rows)"), "{text}");
            }
        }
    }
    assert_eq!(
        sqlite(&db, "SELECT count(*), group_concat(tag) FROM t"),
        before
    );
}

#[test]
fn sqlite_report_queries_that_write_fail_the_job_and_leave_the_table_unchanged() {
    let reports = Reports::new();
    let db = reports.path().join("w.db");
    sqlite(
        &db,
        "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'one'), (2, 'two')",
    );
    let queries = [
        ("delete", "DELETE FROM t"),
        (
            "insert",
            "INSERT INTO t (id, name) VALUES (99, 'x') RETURNING id, name",
        ),
        ("update", "UPDATE t SET name = 'x' RETURNING id, name"),
    ];
    for (id, query) in queries {
        reports.write(
            id,
            &format!(
                r#"title = "Writes"
[source]
kind = "sqlite"
database = "w.db"
query = "{query}"
[[column]]
field = "id"
[[column]]
field = "name"
"#
            ),
        );
    }
    let before = sqlite(&db, "SELECT count(*), group_concat(id || name) FROM t");
    let srv = worker(&reports, &[], &[]);
    for (report, query) in queries {
        let id = post(&srv, report, &[]);
        let error = expect_failed(&srv, &id, Duration::from_secs(30));
        eprintln!("sqlite {query:?}: {error}");
        assert!(error.starts_with("the query failed: "), "{query}: {error}");
    }
    assert_eq!(
        sqlite(&db, "SELECT count(*), group_concat(id || name) FROM t"),
        before
    );
    assert_healthy(&srv);
}

#[test]
fn postgres_report_queries_that_write_fail_the_job_and_leave_the_table_unchanged() {
    let Some(db) = pg() else { return };
    let t = table("w");
    db.psql(&format!(
        "CREATE TABLE {t} (id int, name text); INSERT INTO {t} VALUES (1, 'one'), (2, 'two')"
    ));
    let reports = Reports::new();
    let queries = [
        ("update", format!("UPDATE {t} SET name = 'x'")),
        (
            "update-returning",
            format!("UPDATE {t} SET name = 'x' RETURNING id, name"),
        ),
    ];
    for (id, query) in &queries {
        reports.write(
            id,
            &format!(
                r#"title = "Writes"
[source]
kind = "postgres"
url_env = "{PG_ENV}"
query = "{query}"
[[column]]
field = "id"
[[column]]
field = "name"
"#
            ),
        );
    }
    let check = format!("SELECT count(*), string_agg(id || name, ',' ORDER BY id) FROM {t}");
    let before = db.psql(&check);
    let url = db.url();
    let srv = worker(&reports, &[], &[(PG_ENV, &url)]);
    for (report, query) in &queries {
        let id = post(&srv, report, &[]);
        let error = expect_failed(&srv, &id, Duration::from_secs(30));
        eprintln!("postgres {query:?}: {error}");
        assert!(error.starts_with("the query failed: "), "{query}: {error}");
        assert!(!error.contains(PASSWORD), "{error}");
    }
    assert_eq!(db.psql(&check), before);
    assert_eq!(before, "2|1one,2two");
    assert_healthy(&srv);
}

// ---- 6. a definition changed or deleted before its job ran ----------------------------------

#[test]
fn a_queued_job_whose_definition_changed_or_vanished_fails_saying_so() {
    let reports = Reports::new();
    let db = reports.path().join("empty.db");
    sqlite(&db, "PRAGMA user_version = 1");
    reports.write(
        "slow",
        r#"title = "Slow"
[source]
kind = "sqlite"
database = "empty.db"
query = """
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n)
SELECT i, 'row ' || i AS label FROM c
"""
[[param]]
name = "n"
type = "integer"
max = 2000000
[[column]]
field = "i"
format = "integer"
[[column]]
field = "label"
"#,
    );
    let simple = |title: &str| {
        format!(
            "title = \"{title}\"\n[source]\nkind = \"sqlite\"\ndatabase = \"empty.db\"\n\
             query = \"SELECT 1 AS x\"\n[[column]]\nfield = \"x\"\n"
        )
    };
    reports.write("victim", &simple("Victim"));
    let doomed = reports.write("doomed", &simple("Doomed"));
    let srv = worker(
        &reports,
        &["--render-slots", "1", "--max-pages", "30000"],
        &[],
    );

    let slow = post(&srv, "slow", &[("n", "600000")]);
    wait_for(Duration::from_secs(30), "the slow job to run", || {
        (state(&status(&srv, &slow)) == "running").then_some(())
    });
    let changed = post(&srv, "victim", &[]);
    let vanished = post(&srv, "doomed", &[]);
    for id in [&changed, &vanished] {
        assert_eq!(state(&status(&srv, id)), "queued", "job {id}");
    }
    reports.write("victim", &simple("Victim, renamed"));
    std::fs::remove_file(&doomed).expect("delete doomed.toml");
    // Only then may the queued jobs start: the slow one still holds the one slot.
    assert_eq!(
        state(&status(&srv, &slow)),
        "running",
        "the slow job ended too soon"
    );

    expect_done(&srv, &slow, Duration::from_secs(120));
    assert_eq!(
        expect_failed(&srv, &changed, Duration::from_secs(30)),
        "the report \"victim\" was changed after this job was made; make it again from the form"
    );
    assert_eq!(
        expect_failed(&srv, &vanished, Duration::from_secs(30)),
        "the report \"doomed\" no longer exists on this server"
    );
    // The next form uses the file as it is now.
    let again = post(&srv, "victim", &[]);
    let text = pdf_text(&expect_done(&srv, &again, Duration::from_secs(30)));
    assert!(text.contains("Victim, renamed"), "{text}");
    let gone = post_reply(&srv, "doomed", &[]);
    assert_eq!(gone.status(), 404, "{}", gone.text());
    assert_healthy(&srv);
}

// ---- 7. a report's own fonts ----------------------------------------------------------------

#[test]
fn a_report_with_its_own_fonts_prints_cjk_and_without_them_prints_replacements_logged_once() {
    assert!(
        Path::new(DROID).is_file(),
        "{DROID} is missing (apt-get install fonts-droid-fallback; ./deploy/test does)"
    );
    let reports = Reports::new();
    let db = reports.path().join("cjk.db");
    sqlite(
        &db,
        "CREATE TABLE t (word TEXT, meaning TEXT);
         INSERT INTO t VALUES ('漢字', 'kanji'), ('日本語', 'nihongo')",
    );
    let report = |fonts: &str| {
        format!(
            r#"title = "漢字 list"
[source]
kind = "sqlite"
database = "cjk.db"
query = "SELECT word, meaning FROM t"
[[column]]
field = "word"
heading = "Word"
[[column]]
field = "meaning"
heading = "Meaning"
{fonts}"#
        )
    };
    let droid = toml_str(DROID);
    reports.write(
        "own-fonts",
        &report(&format!("[fonts]\nregular = {droid}\nbold = {droid}\n")),
    );
    reports.write("default-fonts", &report(""));
    let srv = worker(&reports, &[], &[]);

    let own = post(&srv, "own-fonts", &[]);
    let text = pdf_text(&expect_done(&srv, &own, Duration::from_secs(60)));
    // Droid Sans Fallback has CJK but no Latin letters (and no U+FFFD), so only the CJK of
    // the title and the cells is left in the text.
    let cjk: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        cjk,
        ["漢字", "漢字", "日本語"],
        "title, then the cells:\n{text}"
    );

    let plain: Vec<String> = (0..2).map(|_| post(&srv, "default-fonts", &[])).collect();
    for id in &plain {
        let text = pdf_text(&expect_done(&srv, id, Duration::from_secs(60)));
        assert!(!text.contains("漢字") && !text.contains("日本語"), "{text}");
        assert!(text.contains("\u{FFFD}\u{FFFD} list"), "title:\n{text}");
        let row = |meaning: &str| words(line_with(&text, meaning));
        assert_eq!(row("kanji"), ["\u{FFFD}\u{FFFD}", "kanji"], "{text}");
        assert_eq!(
            row("nihongo"),
            ["\u{FFFD}\u{FFFD}\u{FFFD}", "nihongo"],
            "{text}"
        );
    }
    let lack_lines = |id: &str| -> Vec<String> {
        srv.log()
            .lines()
            .filter(|l| l.contains(id) && l.contains("characters the fonts lack"))
            .map(str::to_owned)
            .collect()
    };
    for id in plain.iter().chain([&own]) {
        wait_for(Duration::from_secs(10), "the missing-glyph line", || {
            (!lack_lines(id).is_empty()).then_some(())
        });
        let lines = lack_lines(id);
        assert_eq!(lines.len(), 1, "job {id}:\n{}", srv.log());
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
    // DejaVu lacks the 7 CJK characters; Droid only the Latin ones.
    for id in &plain {
        let line = &lack_lines(id)[0];
        assert!(line.contains(": 7 characters the fonts lack"), "{line}");
        assert!(line.contains('漢') && line.contains('語'), "{line}");
    }
    let line = &lack_lines(&own)[0];
    assert!(!line.contains('漢') && !line.contains('語'), "{line}");
    let all = srv
        .log()
        .lines()
        .filter(|l| l.contains("characters the fonts lack"))
        .count();
    assert_eq!(all, 3, "one line per job:\n{}", srv.log());
}

// ---- 8. check-config -------------------------------------------------------------------------

fn check_config(reports: &Reports, env: &[(&str, &str)]) -> Ran {
    let data = reports.path().join("no-data-yet");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdfworker"));
    cmd.args(["check-config", "--reports-dir", reports.str(), "--data-dir"])
        .arg(&data)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info");
    run_within(&mut cmd, Duration::from_secs(60), |_| {})
}

fn good_sqlite_report(reports: &Reports) {
    let db = reports.path().join("ok.db");
    sqlite(&db, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)");
    reports.write(
        "good",
        "title = \"Good\"\n[source]\nkind = \"sqlite\"\ndatabase = \"ok.db\"\n\
         query = \"SELECT a FROM t\"\n[[column]]\nfield = \"a\"\n",
    );
}

/// The line of `output` that names `file`, with what follows `file:line:column: `.
fn located<'o>(output: &'o str, file: &Path) -> (usize, usize, &'o str) {
    let name = file.to_str().expect("utf-8 path");
    let line = output
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("nothing about {name}:\n{output}"));
    let rest = &line[line.find(name).unwrap_or(0) + name.len()..];
    let mut parts = rest.splitn(4, ':');
    let (empty, l, c, what) = (parts.next(), parts.next(), parts.next(), parts.next());
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok());
    match (empty, num(l), num(c), what) {
        (Some(""), Some(l), Some(c), Some(what)) => (l, c, what.trim()),
        _ => panic!("not file:line:column: …: {line}"),
    }
}

#[test]
fn check_config_exits_0_on_good_definitions_and_reachable_sources() {
    let reports = Reports::new();
    good_sqlite_report(&reports);
    let pg = pg();
    let url = pg.as_ref().map(|db| db.url());
    if url.is_some() {
        reports.write(
            "from-pg",
            &format!(
                "title = \"PG\"\n[source]\nkind = \"postgres\"\nurl_env = \"{PG_ENV}\"\n\
                 query = \"SELECT 1 AS a\"\n[[column]]\nfield = \"a\"\n"
            ),
        );
    }
    let env: Vec<(&str, &str)> = url.iter().map(|u| (PG_ENV, u.as_str())).collect();
    let ran = check_config(&reports, &env);
    assert_eq!(ran.status.code(), Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("report good: ok"), "{}", ran.stdout);
    if url.is_some() {
        assert!(ran.stdout.contains("report from-pg: ok"), "{}", ran.stdout);
    }
    assert!(ran.stdout.contains("configuration ok"), "{}", ran.stdout);
}

#[test]
fn check_config_exits_1_naming_file_line_and_column_of_an_unknown_key() {
    let reports = Reports::new();
    good_sqlite_report(&reports);
    let broken = reports.write(
        "broken",
        "title = \"Broken\"\n[source]\nkind = \"sqlite\"\ndatabase = \"ok.db\"\n\
         query = \"SELECT a FROM t\"\n  colour = \"red\"\n[[column]]\nfield = \"a\"\n",
    );
    let ran = check_config(&reports, &[]);
    assert_eq!(ran.status.code(), Some(1), "{}\n{}", ran.stdout, ran.stderr);
    let (line, column, what) = located(&ran.stderr, &broken);
    assert_eq!((line, column), (6, 3), "{}", ran.stderr);
    assert!(
        what.starts_with("[source]: unknown key \"colour\""),
        "{}",
        ran.stderr
    );
    assert!(!ran.stdout.contains("configuration ok"), "{}", ran.stdout);
}

/// A report whose source is a PostgreSQL socket path that does not exist, with the password
/// in the file.
fn unreachable_report(reports: &Reports) -> PathBuf {
    good_sqlite_report(reports);
    let url = format!("postgresql://postgres:{PASSWORD}@/postgres?host=/nonexistent/pdfworker-it");
    reports.write(
        "unreachable",
        &format!(
            "title = \"Nowhere\"\n[source]\nkind = \"postgres\"\ndatabase = {}\n\
             query = \"SELECT 1 AS a\"\n[[column]]\nfield = \"a\"\n",
            toml_str(&url)
        ),
    )
}

#[test]
fn check_config_exits_1_for_an_unreachable_postgres_source_without_printing_its_password() {
    let reports = Reports::new();
    let file = unreachable_report(&reports);
    let ran = check_config(&reports, &[]);
    let all = format!("{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.status.code(), Some(1), "{all}");
    assert!(!all.contains(PASSWORD), "the password is printed:\n{all}");
    assert!(!all.contains("postgresql://"), "the URL is printed:\n{all}");
    let name = file.to_str().expect("utf-8 path");
    let line = ran
        .stderr
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("nothing about {name}:\n{all}"));
    assert!(
        line.contains(": the database could not be reached: "),
        "{line}"
    );
    assert!(ran.stdout.contains("report good: ok"), "{all}");
    assert!(!ran.stdout.contains("configuration ok"), "{all}");
}

#[test]
fn check_config_names_the_line_and_column_of_an_unreachable_source() {
    let reports = Reports::new();
    let file = unreachable_report(&reports);
    let ran = check_config(&reports, &[]);
    assert_eq!(ran.status.code(), Some(1), "{}", ran.stderr);
    let (line, column, what) = located(&ran.stderr, &file);
    assert_eq!(
        (line, column),
        (4, 12),
        "the database value:\n{}",
        ran.stderr
    );
    assert!(what.contains("the database could not be reached"), "{what}");
}
