//! Command-line flags and environment variables, declared once with clap: each flag's name,
//! `PDFWORKER_*` variable, default, bounds and help sit together on its field (issue #8).
//! Every setting has an embedded default, so `pdfworker serve` runs with no configuration
//! file; a flag beats its variable beats the default. Defaults that the runner and the FastCGI
//! layer also use are read from their `Default` impls, so each value is written in one place.
//! Depends on std, clap and the plain config structs of `fastcgi` and `jobs`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::fastcgi::{self, ListenAddr};
use crate::jobs::RunnerConfig;
use crate::pdf::{Orientation, Paper};

/// What the binary was asked to do.
#[derive(Debug)]
pub enum Command {
    Serve(Box<ServeConfig>),
    /// Read the serve settings and the report definitions, check them and the sources, exit.
    CheckConfig(Box<ServeConfig>),
    Render(RenderArgs),
    /// Write the demo database the shipped reports read.
    DemoData {
        out: PathBuf,
        rows: u32,
    },
}

/// `pdfworker serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Ignored when systemd passes a socket.
    pub listen: ListenAddr,
    pub socket_mode: u32,
    pub data_dir: PathBuf,
    pub fastcgi: fastcgi::Config,
    pub runner: RunnerConfig,
    /// One TOML file per report.
    pub reports_dir: PathBuf,
    /// How long shutdown waits for requests and renders before it stops them.
    pub shutdown_grace: Duration,
    /// Threads that handle requests (renders have threads of their own).
    pub threads: usize,
    /// The kernel scheduling policy every thread of the process runs under.
    pub sched_policy: SchedPolicy,
    /// Event streams open at once; always below `fastcgi.max_conns`.
    pub max_streams: usize,
    /// How often a quiet event stream sends a comment line.
    pub sse_heartbeat: Duration,
    /// The CGI param that names the user the web server authenticated.
    pub user_param: String,
    /// How a finished PDF is handed over.
    pub send_file: crate::web::SendFile,
    /// The path prefix the app is mounted under (`/exports`); empty: none.
    pub base_path: String,
    /// Webhooks: the secret's file (read at start-up; `None`: webhooks off), destinations,
    /// retry time, one attempt's timeout.
    pub webhook_secret_file: Option<PathBuf>,
    pub webhook_allow: crate::webhooks::AllowList,
    pub webhook_retry: Duration,
    pub webhook_timeout: Duration,
}

/// `pdfworker render`: the same document as the service, offline.
#[derive(Debug, Clone)]
pub struct RenderArgs {
    pub report: String,
    /// `--param name=value`, in order (`--title`/`--rows` are the demo report's params).
    pub params: Vec<(String, String)>,
    /// `None`: the report's default.
    pub paper: Option<Paper>,
    pub orientation: Option<Orientation>,
    pub out: PathBuf,
    pub reports_dir: PathBuf,
    pub max_pages: u32,
}

/// Parses the process arguments and `PDFWORKER_*` variables.
///
/// # Errors
/// clap's error: a message naming the flag or value that is wrong, or the help or version
/// text that was asked for; [`clap::Error::exit`] prints it and exits with the right code.
pub fn parse() -> Result<Command, clap::Error> {
    parse_from(std::env::args_os())
}

/// [`parse`] of the given arguments, the program name first (variables still come from the
/// process environment: clap reads them itself).
///
/// # Errors
/// As [`parse`].
pub fn parse_from<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Ok(match Cli::try_parse_from(args)?.command {
        Sub::Serve(flags) => Command::Serve(Box::new(serve_config(flags)?)),
        Sub::CheckConfig(flags) => Command::CheckConfig(Box::new(serve_config(flags)?)),
        Sub::Render(flags) => Command::Render(flags.into()),
        Sub::DemoData(flags) => Command::DemoData {
            out: flags.out,
            rows: flags.rows,
        },
    })
}

/// The serve settings, with the rules that tie two flags together.
fn serve_config(flags: ServeFlags) -> Result<ServeConfig, clap::Error> {
    let cfg = ServeConfig::from(flags);
    if cfg.max_streams >= cfg.fastcgi.max_conns {
        let message = format!(
            "--max-streams ({}) must be below --max-conns ({}): streams would take every \
             connection and pages would wait",
            cfg.max_streams, cfg.fastcgi.max_conns
        );
        return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message));
    }
    Ok(cfg)
}

/// The runner's and the FastCGI layer's own defaults, the source of the flags' defaults.
static RUNNER: LazyLock<RunnerConfig> = LazyLock::new(RunnerConfig::default);
static FASTCGI: LazyLock<fastcgi::Config> = LazyLock::new(fastcgi::Config::default);

const MIB: u64 = 1024 * 1024;

/// pdfworker — a FastCGI responder that answers at once and renders PDFs in the background.
///
/// Logging: RUST_LOG (default: info).
#[derive(Parser, Debug)]
#[command(
    name = "pdfworker",
    version,
    arg_required_else_help = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Serve FastCGI: answer requests at once, render the PDFs they ask for in the background.
    Serve(ServeFlags),
    /// Check the settings, the report definitions and their sources as `serve` would read
    /// them; exit 0, or 1 with each problem as `file:line:column: what is wrong`.
    CheckConfig(ServeFlags),
    /// Render one report to a file, offline: the same document the service makes.
    Render(RenderFlags),
    /// Write the demo database the shipped reports read (reports/demo.sqlite).
    DemoData(DemoDataFlags),
}

/// The flags of `serve` and `check-config`, in the order `--help` lists them.
#[derive(Args, Debug)]
struct ServeFlags {
    /// unix:PATH or tcp:HOST:PORT; a socket passed by systemd (LISTEN_FDS) wins
    #[arg(
        long,
        env = "PDFWORKER_LISTEN",
        value_name = "ADDR",
        default_value = "unix:var/run/pdfworker.sock"
    )]
    listen: ListenAddr,

    /// Mode of the unix socket file, octal (a stale socket file is replaced, a live one is an
    /// error)
    #[arg(
        long,
        env = "PDFWORKER_SOCKET_MODE",
        value_name = "OCTAL",
        default_value = "0660",
        value_parser = parse_mode
    )]
    socket_mode: u32,

    /// `jobs/` and `files/` live here; every worker of a pool shares it
    #[arg(
        long,
        env = "PDFWORKER_DATA_DIR",
        value_name = "DIR",
        default_value = "var/data"
    )]
    data_dir: PathBuf,

    /// Renders at once in this process [default: the number of CPU cores]
    #[arg(
        long,
        env = "PDFWORKER_RENDER_SLOTS",
        value_name = "N",
        default_value_t = RUNNER.slots,
        hide_default_value = true,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024)
    )]
    render_slots: usize,

    /// Jobs queued or running in this process; beyond it 503 with Retry-After
    #[arg(
        long,
        env = "PDFWORKER_QUEUE_LIMIT",
        value_name = "N",
        default_value_t = RUNNER.queue_limit,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
    )]
    queue_limit: usize,

    #[command(flatten)]
    reports: ReportsFlags,

    /// Renders are admitted against this budget (32 MiB per render reserved)
    #[arg(
        long,
        env = "PDFWORKER_MEMORY_BUDGET_MB",
        value_name = "N",
        default_value_t = RUNNER.memory_budget / MIB,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    memory_budget_mb: u64,

    /// A render still running then fails with a readable message
    #[arg(
        long,
        env = "PDFWORKER_RENDER_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = RUNNER.render_deadline.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    render_timeout_secs: u64,

    /// Finished jobs and their files are removed after this
    #[arg(
        long,
        env = "PDFWORKER_RETENTION_HOURS",
        value_name = "N",
        default_value_t = RUNNER.retention.as_secs() / 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    retention_hours: u64,

    /// FastCGI connections served at once (taken before accept)
    #[arg(
        long,
        env = "PDFWORKER_MAX_CONNS",
        value_name = "N",
        default_value_t = FASTCGI.max_conns,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=65_536)
    )]
    max_conns: usize,

    /// Live-progress streams (/jobs/ID/events) open at once, below --max-conns so pages always
    /// find a connection; a watcher beyond it gets the progress once and retries later
    /// [default: 4096, at most half of --max-conns]
    #[arg(
        long,
        env = "PDFWORKER_MAX_STREAMS",
        value_name = "N",
        value_parser = RangedU64ValueParser::<usize>::new().range(0..=65_535)
    )]
    max_streams: Option<usize>,

    /// A live-progress stream with nothing new sends a comment line this often
    #[arg(
        long,
        env = "PDFWORKER_SSE_HEARTBEAT_SECS",
        value_name = "N",
        default_value_t = crate::web::watch::DEFAULT_HEARTBEAT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    sse_heartbeat_secs: u64,

    /// Request body limit (413, then the connection is closed)
    #[arg(
        long,
        env = "PDFWORKER_MAX_BODY_BYTES",
        value_name = "N",
        default_value_t = FASTCGI.max_body_bytes,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_body_bytes: usize,

    /// A peer stalled mid-record or mid-request is dropped
    #[arg(
        long,
        env = "PDFWORKER_READ_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = FASTCGI.read_timeout.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    read_timeout_secs: u64,

    /// A request must arrive whole (BEGIN_REQUEST to the end of its body) within this
    #[arg(
        long,
        env = "PDFWORKER_REQUEST_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = FASTCGI.request_timeout.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    request_timeout_secs: u64,

    /// An idle connection is closed (above nginx's 60 s upstream keepalive)
    #[arg(
        long,
        env = "PDFWORKER_IDLE_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = FASTCGI.idle_timeout.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    idle_timeout_secs: u64,

    /// Threads handling requests in this process; run more processes for more cores (renders
    /// have threads of their own, at nice 10)
    // One request thread per worker process by default: the pool of processes gives
    // parallelism, and one thread saves the cross-thread wake-ups of a work-stealing
    // scheduler (measured: about 10% more status pages per second on 2 cores).
    #[arg(
        long,
        env = "PDFWORKER_THREADS",
        value_name = "N",
        default_value_t = 1,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=256)
    )]
    threads: usize,

    /// How the kernel schedules the process's threads: normal, or batch (a thread woken by a
    /// request does not preempt the running one: more requests per wake-up when the CPUs are
    /// full, but a request may wait for a render's turn to end; README, Performance)
    #[arg(
        long,
        env = "PDFWORKER_SCHED_POLICY",
        value_name = "POLICY",
        default_value = "normal",
        value_parser = parse_sched_policy
    )]
    sched_policy: SchedPolicy,

    /// Jobs one client (the authenticated user, else the address) may have queued or running
    /// across the pool; beyond it 429 with Retry-After (0: no cap)
    #[arg(
        long,
        env = "PDFWORKER_MAX_JOBS_PER_CLIENT",
        value_name = "N",
        default_value_t = RUNNER.max_jobs_per_client,
        value_parser = RangedU64ValueParser::<usize>::new().range(0..=1_000_000)
    )]
    max_jobs_per_client: usize,

    /// Bytes all kept and coming PDFs may take together; a job whose estimated file does not
    /// fit is refused with 507 (0: no budget)
    #[arg(
        long,
        env = "PDFWORKER_MAX_DATA_BYTES",
        value_name = "N",
        default_value_t = RUNNER.max_data_bytes
    )]
    max_data_bytes: u64,

    /// Free space the data dir's file system keeps beyond a new job's estimated file; below
    /// it jobs are refused with 507 (0: no floor)
    #[arg(
        long,
        env = "PDFWORKER_MIN_FREE_MB",
        value_name = "N",
        default_value_t = RUNNER.min_free_bytes / MIB
    )]
    min_free_mb: u64,

    /// The FastCGI param naming the user the web server authenticated (auth_basic, or
    /// auth_request + fastcgi_param)
    #[arg(
        long,
        env = "PDFWORKER_USER_PARAM",
        value_name = "NAME",
        default_value = "REMOTE_USER"
    )]
    user_param: String,

    /// The path prefix the app is mounted under (e.g. /exports): routes, links, redirects,
    /// the API and the download's internal redirect all carry it; other paths are 404
    /// [default: none]
    #[arg(
        long,
        env = "PDFWORKER_BASE_PATH",
        value_name = "PATH",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_base_path
    )]
    base_path: String,

    /// How a finished PDF is handed to the web server: x-accel-redirect (nginx), x-sendfile
    /// (lighttpd, Apache mod_xsendfile: an absolute path), or body (streamed through the
    /// worker, with HEAD, ETag and Range)
    #[arg(
        long,
        env = "PDFWORKER_SEND_FILE",
        value_name = "MODE",
        default_value = "x-accel-redirect",
        value_parser = parse_send_file
    )]
    send_file: crate::web::SendFile,

    /// Webhooks are signed with the secret in this file (at least 16 bytes); without it a
    /// job's callback_url is refused [default: none, webhooks off]
    #[arg(long, env = "PDFWORKER_WEBHOOK_SECRET_FILE", value_name = "PATH")]
    webhook_secret_file: Option<PathBuf>,

    /// Webhook destinations: host names and address ranges, comma-separated; loopback,
    /// private and link-local addresses only when listed [default: any public address]
    #[arg(
        long,
        env = "PDFWORKER_WEBHOOK_ALLOW",
        value_name = "LIST",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_allow
    )]
    webhook_allow: crate::webhooks::AllowList,

    /// A webhook is retried this long after its job ended, then given up
    #[arg(
        long,
        env = "PDFWORKER_WEBHOOK_RETRY_SECS",
        value_name = "N",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    webhook_retry_secs: u64,

    /// One webhook attempt (connect, send, the receiver's status line) may take this long
    #[arg(
        long,
        env = "PDFWORKER_WEBHOOK_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    webhook_timeout_secs: u64,

    /// SIGTERM: stop accepting, let requests and renders finish this long, then hand
    /// unfinished renders back to the queue
    #[arg(
        long,
        env = "PDFWORKER_SHUTDOWN_GRACE_SECS",
        value_name = "N",
        default_value_t = 20
    )]
    shutdown_grace_secs: u64,
}

/// The flags `serve` and `render` share.
#[derive(Args, Debug)]
struct ReportsFlags {
    /// The report definitions, one `<id>.toml` each
    #[arg(
        long,
        env = "PDFWORKER_REPORTS_DIR",
        value_name = "DIR",
        default_value = "reports"
    )]
    reports_dir: PathBuf,

    /// Page cap per report; a render that grows past it fails with a sentence
    #[arg(
        long,
        env = "PDFWORKER_MAX_PAGES",
        value_name = "N",
        default_value_t = RUNNER.max_pages,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_pages: u32,
}

#[derive(Args, Debug)]
struct RenderFlags {
    /// The report's id (its file stem in --reports-dir)
    #[arg(long, value_name = "ID", default_value = "ledger")]
    report: String,

    /// A value for one of the report's params; repeat for each
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,

    /// The demo report's title (the same as --param title=T)
    #[arg(long, value_name = "T")]
    title: Option<String>,

    /// The demo report's number of rows (the same as --param rows=N)
    #[arg(long, value_name = "N")]
    rows: Option<String>,

    /// a4 or letter [default: the report's]
    #[arg(long, value_name = "a4|letter", value_parser = parse_paper)]
    paper: Option<Paper>,

    /// portrait or landscape [default: the report's]
    #[arg(long, value_name = "portrait|landscape", value_parser = parse_orientation)]
    orientation: Option<Orientation>,

    #[command(flatten)]
    reports: ReportsFlags,

    /// The PDF to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct DemoDataFlags {
    /// The SQLite database to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Rows of the demo ledger
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rows: u32,
}

impl From<ServeFlags> for ServeConfig {
    fn from(f: ServeFlags) -> ServeConfig {
        let runner = RunnerConfig {
            slots: f.render_slots,
            queue_limit: f.queue_limit,
            max_pages: f.reports.max_pages,
            memory_budget: f.memory_budget_mb.saturating_mul(MIB),
            render_deadline: Duration::from_secs(f.render_timeout_secs),
            retention: Duration::from_secs(f.retention_hours.saturating_mul(3600)),
            max_jobs_per_client: f.max_jobs_per_client,
            max_data_bytes: f.max_data_bytes,
            min_free_bytes: f.min_free_mb.saturating_mul(MIB),
            ..RUNNER.clone()
        };
        let fastcgi = fastcgi::Config {
            max_conns: f.max_conns,
            max_body_bytes: f.max_body_bytes,
            read_timeout: Duration::from_secs(f.read_timeout_secs),
            request_timeout: Duration::from_secs(f.request_timeout_secs),
            idle_timeout: Duration::from_secs(f.idle_timeout_secs),
            ..FASTCGI.clone()
        };
        ServeConfig {
            listen: f.listen,
            socket_mode: f.socket_mode,
            data_dir: f.data_dir,
            fastcgi,
            runner,
            reports_dir: f.reports.reports_dir,
            shutdown_grace: Duration::from_secs(f.shutdown_grace_secs),
            threads: f.threads,
            sched_policy: f.sched_policy,
            max_streams: f
                .max_streams
                .unwrap_or(crate::web::DEFAULT_MAX_STREAMS.min(f.max_conns / 2)),
            sse_heartbeat: Duration::from_secs(f.sse_heartbeat_secs),
            user_param: f.user_param,
            send_file: f.send_file,
            base_path: f.base_path,
            webhook_secret_file: f.webhook_secret_file,
            webhook_allow: f.webhook_allow,
            webhook_retry: Duration::from_secs(f.webhook_retry_secs),
            webhook_timeout: Duration::from_secs(f.webhook_timeout_secs),
        }
    }
}

impl From<RenderFlags> for RenderArgs {
    fn from(f: RenderFlags) -> RenderArgs {
        let mut params = f.params;
        let shortcuts = [("title", f.title), ("rows", f.rows)];
        params.extend(
            shortcuts
                .into_iter()
                .filter_map(|(name, v)| Some((name.to_string(), v?))),
        );
        RenderArgs {
            report: f.report,
            params,
            paper: f.paper,
            orientation: f.orientation,
            out: f.out,
            reports_dir: f.reports.reports_dir,
            max_pages: f.reports.max_pages,
        }
    }
}

/// `--base-path`: empty, or `/` followed by segments of letters, digits, `-`, `_`, `.`;
/// no empty, `.` or `..` segment; a trailing `/` is dropped.
fn parse_base_path(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err("a path such as /exports (letters, digits, - _ . between slashes)".into())
    }
}

/// `--send-file`: x-accel-redirect, x-sendfile or body.
fn parse_send_file(s: &str) -> Result<crate::web::SendFile, String> {
    match s {
        "x-accel-redirect" => Ok(crate::web::SendFile::XAccelRedirect),
        "x-sendfile" => Ok(crate::web::SendFile::XSendfile),
        "body" => Ok(crate::web::SendFile::Body),
        _ => Err("one of x-accel-redirect, x-sendfile, body".into()),
    }
}

/// The Linux scheduling policy of `serve`'s threads (`--sched-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedPolicy {
    /// SCHED_BATCH: no wake-up preemption (see README, Performance).
    Batch,
    /// SCHED_OTHER, what a process gets unless it asks; the default.
    Normal,
}

/// `--sched-policy`: batch or normal.
fn parse_sched_policy(s: &str) -> Result<SchedPolicy, String> {
    match s {
        "batch" => Ok(SchedPolicy::Batch),
        "normal" => Ok(SchedPolicy::Normal),
        _ => Err("one of batch, normal".into()),
    }
}

/// `--webhook-allow`: host names and address ranges.
fn parse_allow(s: &str) -> Result<crate::webhooks::AllowList, String> {
    crate::webhooks::AllowList::parse(s)
}

/// A file mode like `0660` (or `0o660`, or `660`): octal, at most `0777`.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| "not an octal mode like 0660".to_string())
}

/// `NAME=VALUE`; the value may contain `=`.
fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_string(), value.to_string()))
}

fn parse_paper(s: &str) -> Result<Paper, String> {
    s.parse().map_err(|_| "not a4 or letter".to_string())
}

fn parse_orientation(s: &str) -> Result<Orientation, String> {
    s.parse()
        .map_err(|_| "not portrait or landscape".to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("pdfworker")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    /// The long names of a subcommand's flags, as clap knows them.
    fn flags_of(sub: &str) -> Vec<String> {
        let cli = Cli::command();
        let sub = cli.find_subcommand(sub).expect("subcommand");
        sub.get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "help")
            .map(|l| format!("--{l}"))
            .collect()
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_of_every_subcommand_lists_its_flags() {
        let cases = [
            ("serve", 30),
            ("check-config", 30),
            ("render", 9),
            ("demo-data", 2),
        ];
        for (sub, count) in cases {
            let flags = flags_of(sub);
            assert_eq!(flags.len(), count, "{sub}: {flags:?}");
            for input in [format!("{sub} --help"), format!("help {sub}")] {
                let err = parse_from(args(&input)).expect_err("help is an early exit");
                assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{input}");
                let text = err.to_string();
                for flag in &flags {
                    assert!(text.contains(flag), "{input}: no {flag} in\n{text}");
                }
            }
        }
        let err = parse_from(args("--help")).expect_err("help");
        assert_eq!(err.kind(), ErrorKind::DisplayHelp);
        for sub in ["serve", "check-config", "render", "demo-data"] {
            assert!(err.to_string().contains(sub), "{sub} in\n{err}");
        }
    }

    #[test]
    fn streams_stay_below_the_connection_ceiling() {
        let serve = |line: &str| match parse_from(args(line)) {
            Ok(Command::Serve(c)) => Ok((c.max_streams, c.fastcgi.max_conns)),
            Ok(other) => panic!("{line}: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(serve("serve").ok(), Some((4096, 8192)));
        assert_eq!(serve("serve --max-conns 100").ok(), Some((50, 100)));
        assert_eq!(serve("serve --max-conns 1").ok(), Some((0, 1)));
        assert_eq!(
            serve("serve --max-streams 99 --max-conns 100").ok(),
            Some((99, 100))
        );
        let err = serve("serve --max-streams 100 --max-conns 100").expect_err("equal");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        assert!(
            err.to_string()
                .contains("--max-streams (100) must be below --max-conns (100)")
        );
    }

    #[test]
    fn every_serve_flag_has_its_pdfworker_variable() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        for arg in serve.get_arguments().filter(|a| a.get_id() != "help") {
            let long = arg.get_long().expect("a long name");
            let want = format!("PDFWORKER_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|v| v.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
        }
    }

    #[test]
    fn no_arguments_prints_help_and_version_prints_the_version() {
        let err = parse_from(args("")).expect_err("no command");
        assert_eq!(
            err.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        let err = parse_from(args("--version")).expect_err("version");
        assert_eq!(err.kind(), ErrorKind::DisplayVersion);
        assert!(err.to_string().contains(env!("CARGO_PKG_VERSION")), "{err}");
    }

    // Variables are tested through the real binary (tests/it/cli.rs): clap reads the process
    // environment, which a test may not change safely.
    #[test]
    fn defaults_are_the_runner_and_fastcgi_defaults() {
        let Ok(Command::Serve(c)) = parse_from(args("serve --data-dir /flag/data")) else {
            panic!("serve should parse");
        };
        assert_eq!(c.data_dir, PathBuf::from("/flag/data"));
        assert_eq!(c.reports_dir, PathBuf::from("reports"));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.listen, ListenAddr::Unix("var/run/pdfworker.sock".into()));
        assert_eq!((c.threads, c.shutdown_grace), (1, Duration::from_secs(20)));
        assert_eq!(c.sched_policy, SchedPolicy::Normal);
        let (r, d) = (&c.runner, RunnerConfig::default());
        assert_eq!(
            (r.slots, r.queue_limit, r.max_pages, r.memory_budget),
            (d.slots, d.queue_limit, d.max_pages, d.memory_budget)
        );
        assert_eq!(
            (r.render_deadline, r.retention),
            (d.render_deadline, d.retention)
        );
        let (f, d) = (&c.fastcgi, fastcgi::Config::default());
        assert_eq!(
            (f.max_conns, f.max_body_bytes, f.read_timeout),
            (d.max_conns, d.max_body_bytes, d.read_timeout)
        );
        assert_eq!(
            (f.request_timeout, f.idle_timeout),
            (d.request_timeout, d.idle_timeout)
        );
    }

    #[test]
    fn flags_set_every_field_and_the_last_one_wins() {
        let Ok(Command::CheckConfig(c)) = parse_from(args(
            "check-config --listen tcp:127.0.0.1:9000 --socket-mode 0600 --render-slots 3 \
             --queue-limit 5 --max-pages 7 --memory-budget-mb 2 --render-timeout-secs 9 \
             --retention-hours 2 --max-conns 4 --max-body-bytes 100 --read-timeout-secs 1 \
             --request-timeout-secs 2 --idle-timeout-secs 3 --threads 2 \
             --shutdown-grace-secs 0 --reports-dir /r --threads=4",
        )) else {
            panic!("check-config should parse");
        };
        assert_eq!(c.listen, ListenAddr::Tcp("127.0.0.1:9000".into()));
        assert_eq!((c.socket_mode, c.threads), (0o600, 4));
        assert_eq!(c.reports_dir, PathBuf::from("/r"));
        let r = &c.runner;
        assert_eq!((r.slots, r.queue_limit, r.max_pages), (3, 5, 7));
        assert_eq!(r.memory_budget, 2 * MIB);
        assert_eq!(r.render_deadline, Duration::from_secs(9));
        assert_eq!(r.retention, Duration::from_secs(7200));
        let f = &c.fastcgi;
        assert_eq!((f.max_conns, f.max_body_bytes), (4, 100));
        let secs = (f.read_timeout, f.request_timeout, f.idle_timeout);
        let want = (1, 2, 3);
        assert_eq!(
            secs,
            (
                Duration::from_secs(want.0),
                Duration::from_secs(want.1),
                Duration::from_secs(want.2)
            )
        );
        assert_eq!(c.shutdown_grace, Duration::ZERO);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("serve --max-pages lots", "--max-pages"),
            ("serve --max-pages 0", "--max-pages"),
            ("serve --max-conns 100000000", "--max-conns"),
            ("serve --max-conns 65537", "65536"),
            ("serve --render-slots 1025", "--render-slots"),
            ("serve --queue-limit 1000001", "--queue-limit"),
            ("serve --threads 257", "--threads"),
            ("serve --sched-policy fifo", "--sched-policy"),
            ("serve --read-timeout-secs 0", "--read-timeout-secs"),
            ("serve --socket-mode 999", "--socket-mode"),
            ("serve --socket-mode 01000", "octal"),
            ("serve --listen /x.sock", "unix:PATH"),
            ("serve --listen tcp:nohost", "--listen"),
            ("serve --bogus 1", "--bogus"),
            ("serve --listen", "--listen"),
            ("render --rows 5", "--out"),
            ("render --param nonsense --out x.pdf", "NAME=VALUE"),
            (
                "render --title T --rows 5 --paper a3 --out x.pdf",
                "--paper",
            ),
            ("render --orientation up --out x.pdf", "--orientation"),
            ("demo-data --rows 10", "--out"),
            ("demo-data --out x --rows 0", "--rows"),
            ("frobnicate", "frobnicate"),
        ];
        for (input, want) in cases {
            match parse_from(args(input)) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(want),
                        "{input:?}: expected {want:?} in {msg:?}"
                    );
                    assert_eq!(e.exit_code(), 2, "{input:?}");
                }
                Ok(c) => panic!("{input:?}: expected an error mentioning {want:?}, got {c:?}"),
            }
        }
    }

    #[test]
    fn render_args() {
        let Ok(Command::Render(r)) = parse_from(args(
            "render --title Ελληνικά --rows 10 --paper letter --orientation landscape --out /tmp/x.pdf",
        )) else {
            panic!("render should parse");
        };
        assert_eq!(r.report, "ledger");
        assert_eq!(
            (r.paper, r.orientation),
            (Some(Paper::Letter), Some(Orientation::Landscape))
        );
        assert_eq!(
            r.params,
            vec![
                ("title".to_string(), "Ελληνικά".to_string()),
                ("rows".to_string(), "10".to_string())
            ]
        );
        assert_eq!(r.max_pages, RunnerConfig::default().max_pages);
        let Ok(Command::Render(r)) = parse_from(args(
            "render --report sales --param from=2024-01-01 --param region=a=b --out x.pdf \
             --max-pages 3 --reports-dir /defs",
        )) else {
            panic!("render should parse");
        };
        assert_eq!(r.report, "sales");
        assert_eq!(r.params[0], ("from".to_string(), "2024-01-01".to_string()));
        assert_eq!(r.params[1], ("region".to_string(), "a=b".to_string()));
        assert_eq!((r.paper, r.orientation), (None, None));
        assert_eq!((r.max_pages, r.reports_dir), (3, PathBuf::from("/defs")));
        let Ok(Command::DemoData { out, rows }) = parse_from(args("demo-data --out d.sqlite"))
        else {
            panic!("demo-data should parse");
        };
        assert_eq!((out, rows), (PathBuf::from("d.sqlite"), 100_000));
    }
}
