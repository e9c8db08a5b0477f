//! Command-line flags and environment variables. Every setting has an embedded default, so
//! `pdfworker serve` runs with no configuration file; a flag beats its `PDFWORKER_*` variable.
//! Depends on std and the plain config structs of `fastcgi` and `jobs`.

use std::path::PathBuf;
use std::time::Duration;

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
    Help,
    Version,
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

pub const USAGE: &str = "\
pdfworker — a FastCGI responder that answers at once and renders PDFs in the background

USAGE:
    pdfworker serve [OPTIONS]
    pdfworker check-config [OPTIONS]      check the settings, the report definitions and their
                                          sources as `serve` would read them; exit 0 or 1
    pdfworker render --report ID [--param NAME=VALUE]... [--paper a4|letter]
                     [--orientation portrait|landscape] [--reports-dir DIR] [--max-pages N] --out FILE
                     (--title T --rows N are the demo report's params)
    pdfworker demo-data --out FILE [--rows N]   the demo database (reports/demo.sqlite)
    pdfworker --help | --version

SERVE OPTIONS (flag / environment variable / default):
    --listen ADDR              PDFWORKER_LISTEN             unix:var/run/pdfworker.sock
                               (unix:PATH or tcp:HOST:PORT; a socket passed by systemd wins)
    --socket-mode OCTAL        PDFWORKER_SOCKET_MODE        0660
    --data-dir DIR             PDFWORKER_DATA_DIR           var/data
    --render-slots N           PDFWORKER_RENDER_SLOTS       number of CPU cores
    --queue-limit N            PDFWORKER_QUEUE_LIMIT        64
    --reports-dir DIR          PDFWORKER_REPORTS_DIR        reports
    --max-pages N              PDFWORKER_MAX_PAGES          100000
    --memory-budget-mb N       PDFWORKER_MEMORY_BUDGET_MB   512
    --render-timeout-secs N    PDFWORKER_RENDER_TIMEOUT_SECS 1800
    --retention-hours N        PDFWORKER_RETENTION_HOURS    24
    --max-conns N              PDFWORKER_MAX_CONNS          1024
    --max-body-bytes N         PDFWORKER_MAX_BODY_BYTES     1048576
    --read-timeout-secs N      PDFWORKER_READ_TIMEOUT_SECS  10
    --request-timeout-secs N   PDFWORKER_REQUEST_TIMEOUT_SECS 60
    --idle-timeout-secs N      PDFWORKER_IDLE_TIMEOUT_SECS  75
    --shutdown-grace-secs N    PDFWORKER_SHUTDOWN_GRACE_SECS 20
    --threads N                PDFWORKER_THREADS            1 (request threads; renders have their own)

Logging: RUST_LOG (default: info).
";

/// Parses the process arguments (without the program name) and `PDFWORKER_*` variables.
///
/// # Errors
/// A message for the user naming the flag or value that is wrong.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    parse_with_env(args, |name| std::env::var(name).ok())
}

/// [`parse`] with the environment supplied by the caller (for tests).
///
/// # Errors
/// As [`parse`].
pub fn parse_with_env<I, E>(args: I, env: E) -> Result<Command, String>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut args = args.into_iter();
    let Some(cmd) = args.next() else {
        return Ok(Command::Help);
    };
    let rest: Vec<String> = args.collect();
    let flags = Flags::parse(&rest)?;
    match cmd.as_str() {
        "serve" => serve(&flags, &env).map(|c| Command::Serve(Box::new(c))),
        "check-config" => serve(&flags, &env).map(|c| Command::CheckConfig(Box::new(c))),
        "render" => render(&flags, &env).map(Command::Render),
        "demo-data" => demo_data(&flags),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" | "version" => Ok(Command::Version),
        other => Err(format!("unknown command {other:?}; try `pdfworker --help`")),
    }
}

struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    (name.to_string(), v.clone())
                }
            };
            out.push((name, value));
        }
        Ok(Flags(out))
    }

    /// Every value of a flag that may repeat, in order.
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            Some((n, _)) => Err(format!("unknown option --{n}; try `pdfworker --help`")),
            None => Ok(()),
        }
    }
}

/// A setting from its flag, else its environment variable, parsed; `None` when neither is set.
fn setting<T, E>(flags: &Flags, env: &E, name: &str) -> Result<Option<T>, String>
where
    T: std::str::FromStr,
    E: Fn(&str) -> Option<String>,
{
    let var = format!("PDFWORKER_{}", name.to_uppercase().replace('-', "_"));
    let raw = match flags.get(name) {
        Some(v) => Some((format!("--{name}"), v.to_string())),
        None => env(&var).map(|v| (var, v)),
    };
    match raw {
        None => Ok(None),
        Some((from, v)) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| format!("{from}: {v:?} is not a valid value")),
    }
}

const SERVE_FLAGS: &[&str] = &[
    "listen",
    "socket-mode",
    "data-dir",
    "render-slots",
    "queue-limit",
    "reports-dir",
    "max-pages",
    "memory-budget-mb",
    "render-timeout-secs",
    "retention-hours",
    "max-conns",
    "max-body-bytes",
    "read-timeout-secs",
    "request-timeout-secs",
    "idle-timeout-secs",
    "shutdown-grace-secs",
    "threads",
];

fn serve<E: Fn(&str) -> Option<String>>(flags: &Flags, env: &E) -> Result<ServeConfig, String> {
    flags.check_known(SERVE_FLAGS)?;
    let listen = setting::<String, _>(flags, env, "listen")?
        .unwrap_or_else(|| "unix:var/run/pdfworker.sock".into())
        .parse::<ListenAddr>()?;
    let socket_mode = match setting::<String, _>(flags, env, "socket-mode")? {
        Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("--socket-mode: {m:?} is not an octal mode like 0660"))?,
        None => 0o660,
    };
    let data_dir =
        setting::<PathBuf, _>(flags, env, "data-dir")?.unwrap_or_else(|| "var/data".into());

    let mut runner = RunnerConfig::default();
    if let Some(n) = at_most(setting(flags, env, "render-slots")?, "render-slots", 1024)? {
        runner.slots = n;
    }
    if let Some(n) = at_most(
        setting(flags, env, "queue-limit")?,
        "queue-limit",
        1_000_000,
    )? {
        runner.queue_limit = n;
    }
    if let Some(n) = positive_setting::<u32, _>(flags, env, "max-pages")? {
        runner.max_pages = n;
    }
    if let Some(mb) = positive_setting::<u64, _>(flags, env, "memory-budget-mb")? {
        runner.memory_budget = mb.saturating_mul(1024 * 1024);
    }
    if let Some(d) = secs(flags, env, "render-timeout-secs")? {
        runner.render_deadline = d;
    }
    if let Some(h) = positive_setting::<u64, _>(flags, env, "retention-hours")? {
        runner.retention = Duration::from_secs(h.saturating_mul(3600));
    }
    let reports_dir =
        setting::<PathBuf, _>(flags, env, "reports-dir")?.unwrap_or_else(|| "reports".into());

    let mut fcgi = fastcgi::Config::default();
    if let Some(n) = at_most(setting(flags, env, "max-conns")?, "max-conns", 65_536)? {
        fcgi.max_conns = n;
    }
    if let Some(n) = positive_setting::<usize, _>(flags, env, "max-body-bytes")? {
        fcgi.max_body_bytes = n;
    }
    if let Some(d) = secs(flags, env, "read-timeout-secs")? {
        fcgi.read_timeout = d;
    }
    if let Some(d) = secs(flags, env, "request-timeout-secs")? {
        fcgi.request_timeout = d;
    }
    if let Some(d) = secs(flags, env, "idle-timeout-secs")? {
        fcgi.idle_timeout = d;
    }
    let grace = setting::<u64, _>(flags, env, "shutdown-grace-secs")?.unwrap_or(20);
    // One request thread per worker process by default: the pool of processes gives
    // parallelism, and one thread saves the cross-thread wake-ups of a work-stealing
    // scheduler (measured: about 10% more status pages per second on 2 cores).
    let threads = at_most(setting(flags, env, "threads")?, "threads", 256)?.unwrap_or(1);
    Ok(ServeConfig {
        listen,
        socket_mode,
        data_dir,
        fastcgi: fcgi,
        runner,
        reports_dir,
        shutdown_grace: Duration::from_secs(grace),
        threads,
    })
}

/// A setting that must be at least 1 when given.
fn positive_setting<T, E>(flags: &Flags, env: &E, name: &str) -> Result<Option<T>, String>
where
    T: std::str::FromStr + PartialEq + Default,
    E: Fn(&str) -> Option<String>,
{
    positive(setting(flags, env, name)?, name)
}

/// A positive number of seconds.
fn secs<E: Fn(&str) -> Option<String>>(
    flags: &Flags,
    env: &E,
    name: &str,
) -> Result<Option<Duration>, String> {
    Ok(positive_setting::<u64, _>(flags, env, name)?.map(Duration::from_secs))
}

/// [`positive`], and at most `max` (semaphores and permit counts have upper bounds).
fn at_most(v: Option<usize>, name: &str, max: usize) -> Result<Option<usize>, String> {
    match positive(v, name)? {
        Some(n) if n > max => Err(format!("--{name} must be at most {max}")),
        other => Ok(other),
    }
}

fn positive<T: PartialEq + Default>(v: Option<T>, name: &str) -> Result<Option<T>, String> {
    match v {
        Some(n) if n == T::default() => Err(format!("--{name} must be at least 1")),
        other => Ok(other),
    }
}

fn render<E: Fn(&str) -> Option<String>>(flags: &Flags, env: &E) -> Result<RenderArgs, String> {
    flags.check_known(&[
        "report",
        "param",
        "title",
        "rows",
        "paper",
        "orientation",
        "out",
        "reports-dir",
        "max-pages",
    ])?;
    let report = flags.get("report").unwrap_or("ledger").to_string();
    let mut params = Vec::new();
    for raw in flags.get_all("param") {
        let (name, value) = raw
            .split_once('=')
            .ok_or_else(|| format!("--param {raw:?}: expected NAME=VALUE"))?;
        params.push((name.to_string(), value.to_string()));
    }
    for name in ["title", "rows"] {
        if let Some(v) = flags.get(name) {
            params.push((name.to_string(), v.to_string()));
        }
    }
    let paper = match flags.get("paper") {
        Some(p) => Some(
            p.parse::<Paper>()
                .map_err(|_| format!("--paper: {p:?} is not a4 or letter"))?,
        ),
        None => None,
    };
    let orientation = match flags.get("orientation") {
        Some(o) => Some(
            o.parse::<Orientation>()
                .map_err(|_| format!("--orientation: {o:?} is not portrait or landscape"))?,
        ),
        None => None,
    };
    let out = PathBuf::from(flags.get("out").ok_or("render needs --out FILE")?);
    let reports_dir =
        setting::<PathBuf, _>(flags, env, "reports-dir")?.unwrap_or_else(|| "reports".into());
    let max_pages = positive_setting::<u32, _>(flags, env, "max-pages")?
        .unwrap_or(RunnerConfig::default().max_pages);
    Ok(RenderArgs {
        report,
        params,
        paper,
        orientation,
        out,
        reports_dir,
        max_pages,
    })
}

fn demo_data(flags: &Flags) -> Result<Command, String> {
    flags.check_known(&["out", "rows"])?;
    let out = PathBuf::from(flags.get("out").ok_or("demo-data needs --out FILE")?);
    let no_env = |_: &str| None;
    let rows = positive_setting::<u32, _>(flags, &no_env, "rows")?.unwrap_or(100_000);
    Ok(Command::DemoData { out, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = |name: &str| match name {
            "PDFWORKER_DATA_DIR" => Some("/env/data".to_string()),
            "PDFWORKER_REPORTS_DIR" => Some("/env/reports".to_string()),
            _ => None,
        };
        let Ok(Command::Serve(c)) = parse_with_env(args("serve --data-dir /flag/data"), env) else {
            panic!("serve should parse");
        };
        assert_eq!(c.data_dir, PathBuf::from("/flag/data"));
        assert_eq!(c.reports_dir, PathBuf::from("/env/reports"));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.listen, ListenAddr::Unix("var/run/pdfworker.sock".into()));
    }

    #[test]
    fn bad_values_are_named() {
        let none = |_: &str| None;
        let cases = [
            ("serve --max-pages lots", "--max-pages"),
            ("serve --max-pages 0", "max-pages"),
            ("serve --max-conns 100000000", "at most"),
            ("serve --socket-mode 999", "--socket-mode"),
            ("serve --listen /x.sock", "unix:PATH"),
            ("serve --bogus 1", "--bogus"),
            ("serve --listen", "needs a value"),
            ("render --rows 5", "--out"),
            ("render --param nonsense --out x.pdf", "NAME=VALUE"),
            (
                "render --title T --rows 5 --paper a3 --out x.pdf",
                "--paper",
            ),
            ("frobnicate", "unknown command"),
        ];
        for (input, want) in cases {
            match parse_with_env(args(input), none) {
                Err(msg) => assert!(
                    msg.contains(want),
                    "{input:?}: expected {want:?} in {msg:?}"
                ),
                Ok(c) => panic!("{input:?}: expected an error mentioning {want:?}, got {c:?}"),
            }
        }
    }

    #[test]
    fn render_args() {
        let Ok(Command::Render(r)) = parse(args(
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
        let Ok(Command::Render(r)) = parse(args(
            "render --report sales --param from=2024-01-01 --param region=a=b --out x.pdf",
        )) else {
            panic!("render should parse");
        };
        assert_eq!(r.report, "sales");
        assert_eq!(r.params[1], ("region".to_string(), "a=b".to_string()));
    }
}
