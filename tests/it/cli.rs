//! The command line through the real binary (issue #8): `--help` on every subcommand, every
//! `serve` flag's `PDFWORKER_*` variable, a flag beating its variable, bad values named by
//! their flag, and the README's Configuration table kept equal to `serve --help`. Variables
//! are tested here rather than in unit tests because clap reads the process environment.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{TempDir, TestServer, job_json, json_field, wait_for};

/// Every `serve` flag: a value it accepts and values its parser refuses (bounds included).
/// `--data-dir` and `--reports-dir` take any path; they have tests of their own below.
const SERVE_FLAGS: &[(&str, &str, &[&str])] = &[
    ("listen", "tcp:127.0.0.1:9", &["x", "unix:", "tcp:nohost"]),
    ("socket-mode", "0600", &["x", "999", "01000"]),
    ("data-dir", "", &[]),
    ("render-slots", "2", &["x", "0", "1025"]),
    ("queue-limit", "10", &["x", "0", "1000001"]),
    ("reports-dir", "", &[]),
    ("max-pages", "10", &["x", "0"]),
    ("memory-budget-mb", "64", &["x", "0"]),
    ("render-timeout-secs", "5", &["x", "0"]),
    ("retention-hours", "1", &["x", "0"]),
    ("max-conns", "10", &["x", "0", "65537"]),
    ("max-streams", "5", &["x", "-1", "65536", "8192"]),
    ("sse-heartbeat-secs", "1", &["x", "0", "3601"]),
    ("max-body-bytes", "100", &["x", "0"]),
    ("read-timeout-secs", "1", &["x", "0"]),
    ("request-timeout-secs", "1", &["x", "0"]),
    ("idle-timeout-secs", "1", &["x", "0"]),
    ("threads", "2", &["x", "0", "257"]),
    ("sched-policy", "batch", &["x", "Batch", "fifo"]),
    ("max-jobs-per-client", "3", &["x", "-1", "1000001"]),
    ("max-data-bytes", "1000000", &["x", "-1"]),
    ("min-free-mb", "10", &["x", "-1"]),
    ("user-param", "HTTP_X_USER", &[]),
    ("base-path", "/exports", &["exports", "/a/../b", "/a b"]),
    ("send-file", "x-sendfile", &["nginx", "X-Sendfile"]),
    ("webhook-secret-file", "", &[]),
    (
        "webhook-allow",
        "127.0.0.1,hooks.example.com",
        &["10.0.0.0/33", "bad host!"],
    ),
    ("webhook-retry-secs", "60", &["x", "0"]),
    ("webhook-timeout-secs", "5", &["x", "0", "301"]),
    ("shutdown-grace-secs", "0", &["x", "-1"]),
];

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary with `args` and `env`, and no `PDFWORKER_*` variable of ours leaking in.
fn pdfworker(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdfworker"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PDFWORKER_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run pdfworker");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn variable(flag: &str) -> String {
    format!("PDFWORKER_{}", flag.to_uppercase().replace('-', "_"))
}

/// A data dir and an empty reports dir, so `check-config` succeeds unless a setting is bad.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new("cli");
        std::fs::create_dir_all(dir.0.join("data")).expect("data dir");
        std::fs::create_dir_all(dir.0.join("reports")).expect("reports dir");
        Setup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }

    /// `check-config` with the two directories given by their variables, then `env`
    /// (which may replace them), and `args`.
    fn check_config(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let (data, reports) = (self.path("data"), self.path("reports"));
        let mut all = vec![
            ("PDFWORKER_DATA_DIR", data.as_str()),
            ("PDFWORKER_REPORTS_DIR", reports.as_str()),
        ];
        all.extend_from_slice(env);
        let mut argv = vec!["check-config"];
        argv.extend_from_slice(args);
        pdfworker(&argv, &all)
    }
}

/// The flags a `--help` text lists (`--help` itself left out).
fn listed_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=']).next())
        .filter(|f| *f != "help")
        .map(String::from)
        .collect()
}

#[test]
fn help_of_every_subcommand_lists_its_flags_and_exits_0() {
    let serve: Vec<&str> = SERVE_FLAGS.iter().map(|(f, _, _)| *f).collect();
    let cases: [(&[&str], Vec<&str>); 6] = [
        (&["serve", "--help"], serve.clone()),
        (&["check-config", "--help"], serve.clone()),
        (&["help", "check-config"], serve),
        (
            &["render", "--help"],
            vec![
                "report",
                "param",
                "title",
                "rows",
                "paper",
                "orientation",
                "reports-dir",
                "max-pages",
                "out",
            ],
        ),
        (&["demo-data", "--help"], vec!["out", "rows"]),
        (&["demo-data", "-h"], vec!["out", "rows"]),
    ];
    for (args, want) in cases {
        let ran = pdfworker(args, &[]);
        assert_eq!(ran.code, Some(0), "{args:?}: {ran}");
        assert_eq!(listed_flags(&ran.stdout), want, "{args:?}: {ran}");
    }
    let ran = pdfworker(&["serve", "--help"], &[]);
    for (flag, _, _) in SERVE_FLAGS {
        assert!(
            ran.stdout.contains(&format!("[env: {}=]", variable(flag))),
            "--{flag}'s variable in serve --help: {ran}"
        );
    }
    let ran = pdfworker(&["--help"], &[]);
    assert_eq!(ran.code, Some(0), "{ran}");
    for sub in ["serve", "check-config", "render", "demo-data"] {
        assert!(ran.stdout.contains(sub), "{sub} in --help: {ran}");
    }
}

#[test]
fn no_arguments_prints_help_and_version_prints_the_version() {
    let ran = pdfworker(&[], &[]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(ran.stderr.contains("Usage: pdfworker"), "{ran}");
    let ran = pdfworker(&["--version"], &[]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert_eq!(
        ran.stdout.trim(),
        format!("pdfworker {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_accepts_every_serve_variable_set_to_a_good_value() {
    let setup = Setup::new();
    let ran = setup.check_config(&[], &[]);
    assert_eq!(ran.code, Some(0), "no settings: {ran}");
    for (flag, good, _) in SERVE_FLAGS.iter().filter(|(_, good, _)| !good.is_empty()) {
        let var = variable(flag);
        let ran = setup.check_config(&[], &[(var.as_str(), good)]);
        assert_eq!(ran.code, Some(0), "{var}={good}: {ran}");
    }
}

#[test]
fn a_bad_variable_exits_2_naming_its_flag() {
    let setup = Setup::new();
    for (flag, _, bad) in SERVE_FLAGS {
        let var = variable(flag);
        for value in *bad {
            let ran = setup.check_config(&[], &[(var.as_str(), value)]);
            assert_eq!(ran.code, Some(2), "{var}={value}: {ran}");
            assert!(
                ran.stderr.contains(&format!("--{flag}")),
                "{var}={value}: expected --{flag} in stderr: {ran}"
            );
        }
    }
}

#[test]
fn a_bad_flag_value_exits_2_naming_the_flag() {
    let setup = Setup::new();
    for (flag, _, bad) in SERVE_FLAGS {
        for value in *bad {
            let arg = format!("--{flag}={value}");
            let ran = setup.check_config(&[&arg], &[]);
            assert_eq!(ran.code, Some(2), "{arg}: {ran}");
            assert!(
                ran.stderr.contains(&format!("--{flag}")),
                "{arg}: expected --{flag} in stderr: {ran}"
            );
        }
    }
    let ran = setup.check_config(&["--bogus", "1"], &[]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(ran.stderr.contains("--bogus"), "{ran}");
    let ran = pdfworker(&["render", "--paper", "a3", "--out", "x.pdf"], &[]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(ran.stderr.contains("--paper"), "{ran}");
}

#[test]
fn a_flag_beats_its_variable() {
    let setup = Setup::new();
    for (flag, good, bad) in SERVE_FLAGS {
        let (var, arg) = (variable(flag), format!("--{flag}={good}"));
        for value in *bad {
            let ran = setup.check_config(&[&arg], &[(var.as_str(), value)]);
            assert_eq!(ran.code, Some(0), "{arg} with {var}={value}: {ran}");
        }
    }
    let flag_dir = setup.path("from-flag");
    let ran = setup.check_config(&["--data-dir", &flag_dir], &[]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(
        ran.stdout.contains(&format!("data dir {flag_dir}:")),
        "the flag's data dir: {ran}"
    );
}

#[test]
fn the_directories_come_from_their_variables() {
    let setup = Setup::new();
    let data = setup.path("data");
    let ran = setup.check_config(&[], &[]);
    assert!(
        ran.stdout.contains(&format!("data dir {data}: ok")),
        "PDFWORKER_DATA_DIR: {ran}"
    );
    // A broken definition in the reports dir the variable names, then an empty one.
    let broken = setup.path("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(Path::new(&broken).join("bad.toml"), "nonsense = 1\n").expect("write");
    let ran = setup.check_config(&[], &[("PDFWORKER_REPORTS_DIR", &broken)]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(ran.stderr.contains("bad.toml"), "{ran}");
    let ran = setup.check_config(
        &["--reports-dir", &setup.path("reports")],
        &[("PDFWORKER_REPORTS_DIR", &broken)],
    );
    assert_eq!(ran.code, Some(0), "the flag beats the variable: {ran}");
}

/// The README's Configuration table lists exactly the flags `serve --help` lists, in its
/// order and with its defaults.
#[test]
fn the_readme_configuration_table_matches_serve_help() {
    let help = pdfworker(&["serve", "--help"], &[]).stdout;
    let from_help: Vec<(String, String)> = help
        .lines()
        .filter_map(|l| {
            let flag = l.trim_start().strip_prefix("--")?.split(' ').next()?;
            let default = l.rsplit_once("[default: ")?.1.split_once(']')?.0;
            Some((flag.to_string(), default.to_string()))
        })
        .collect();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section");
    let from_readme: Vec<(String, String)> = section
        .lines()
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| `--")?.split(" | ");
            let flag = cells.next()?.strip_suffix('`')?;
            let default = cells.next()?.trim_matches('`');
            Some((flag.to_string(), default.to_string()))
        })
        .collect();
    assert_eq!(
        from_readme, from_help,
        "README table vs serve --help:\n{help}"
    );
}

/// The scheduling policy of every thread of process `pid`: field 41 of
/// /proc/PID/task/TID/stat (0 SCHED_OTHER, 3 SCHED_BATCH).
fn thread_policies(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the worker's threads");
    let mut policies = Vec::new();
    for task in tasks.flatten() {
        // A thread that ended since the listing has no stat left.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let after_name = stat.rsplit_once(") ").expect("a stat line").1;
        let policy = after_name.split(' ').nth(38).and_then(|f| f.parse().ok());
        policies.push(policy.expect("a policy field"));
    }
    policies
}

/// `serve` runs every thread (requests, the blocking pool, renders) under the ordinary policy
/// unless told otherwise, and under SCHED_BATCH — `ps -L -o cls` shows `B` — with
/// `--sched-policy batch` or its variable.
#[test]
fn serve_runs_its_threads_under_sched_batch_when_told() {
    for (policy, want) in [(None, 0), (Some("batch"), 3)] {
        let env: Vec<(&str, &str)> = policy
            .map(|p| ("PDFWORKER_SCHED_POLICY", p))
            .into_iter()
            .collect();
        let srv = TestServer::start_with_env(&["--render-slots", "1"], &env);
        // A finished job: a render's thread and the blocking pool's have started by then.
        let id = srv.connect().submit("Policy", "2000");
        wait_for(Duration::from_secs(60), "the job to finish", || {
            let state = json_field(&job_json(&mut srv.connect(), &id), "state");
            (state.as_deref() == Some("done")).then_some(())
        });
        let policies = thread_policies(srv.pid().expect("the worker runs"));
        assert!(policies.len() >= 2, "threads: {policies:?}");
        assert!(
            policies.iter().all(|p| *p == want),
            "policy {want} on every thread ({policy:?}): {policies:?}\n{}",
            srv.log()
        );
        let name = policy.unwrap_or("normal");
        assert!(
            srv.log().contains(&format!("scheduling policy: {name}")),
            "{}",
            srv.log()
        );
    }
}

/// `check-config`'s line about the data dir (stdout), or all of stdout when there is none.
fn data_dir_line(ran: &Ran, dir: &str) -> String {
    let prefix = format!("data dir {dir}: ");
    ran.stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .map_or_else(|| ran.stdout.clone(), String::from)
}

/// check-config judges the data dir as `serve` will use it (issue #8): what it is, who owns it,
/// its mode, who checked it, and the free space; a world-writable one is warned about.
#[test]
fn check_config_shows_the_data_dirs_owner_mode_and_free_space() {
    use std::os::unix::fs::PermissionsExt;

    let setup = Setup::new();
    let data = setup.path("data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let ran = setup.check_config(&[], &[]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let line = data_dir_line(&ran, &data);
    for part in [
        ": ok (owner ",
        ", mode 0750, writable by ",
        "(uid ",
        " free)",
    ] {
        assert!(line.contains(part), "{part:?} in {line:?}\n{ran}");
    }
    assert!(!ran.stdout.contains("warning"), "{ran}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let ran = setup.check_config(&[], &[]);
    assert_eq!(ran.code, Some(0), "a warning is not a failure: {ran}");
    assert!(
        ran.stdout.contains(&format!(
            "warning: data dir {data} is world-writable (mode 0777)"
        )),
        "{ran}"
    );

    let missing = setup.path("not-yet");
    let ran = setup.check_config(&[], &[("PDFWORKER_DATA_DIR", &missing)]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let line = data_dir_line(&ran, &missing);
    assert!(
        line.contains(&format!(
            "will be created at start (in {}, writable by ",
            setup.dir.0.display()
        )),
        "{line}\n{ran}"
    );
}

#[test]
fn check_config_says_clearly_why_a_data_dir_will_not_do() {
    let setup = Setup::new();
    let file = setup.path("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let under_file = format!("{file}/data");
    let jobs_file = setup.path("jobs-is-a-file");
    std::fs::create_dir_all(&jobs_file).expect("mkdir");
    std::fs::write(Path::new(&jobs_file).join("jobs"), "").expect("write");
    let cases = [
        (
            file.clone(),
            format!("data dir {file} is not a directory (it is a regular file)"),
        ),
        (
            under_file.clone(),
            format!(
                "data dir {under_file} does not exist and cannot be created: {file} is a \
                 regular file, not a directory"
            ),
        ),
        (
            jobs_file.clone(),
            format!("data dir {jobs_file}: jobs is a regular file, not a directory"),
        ),
    ];
    for (dir, want) in cases {
        let ran = setup.check_config(&[], &[("PDFWORKER_DATA_DIR", &dir)]);
        assert_eq!(ran.code, Some(1), "{dir}: {ran}");
        assert!(
            ran.stderr.contains(&want),
            "{dir}: expected {want:?}\n{ran}"
        );
    }
}

#[test]
fn check_config_refuses_a_data_dir_it_cannot_write_naming_owner_and_mode() {
    use std::os::unix::fs::PermissionsExt;

    let setup = Setup::new();
    let read_only = setup.path("read-only");
    std::fs::create_dir_all(&read_only).expect("mkdir");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // root writes whatever the mode says (CI runs as root); sysfs refuses new files to all.
    let probe = Path::new(&read_only).join("probe");
    let dir = if std::fs::write(&probe, "").is_ok() {
        let _ = std::fs::remove_file(&probe);
        "/sys".to_owned()
    } else {
        read_only.clone()
    };
    let ran = setup.check_config(&[], &[("PDFWORKER_DATA_DIR", &dir)]);
    assert_eq!(ran.code, Some(1), "{dir}: {ran}");
    for part in [
        format!("data dir {dir}: not writable by "),
        "who runs check-config".to_owned(),
        "it is owned by ".to_owned(),
        "with mode 0555".to_owned(),
    ] {
        assert!(ran.stderr.contains(&part), "{part:?}\n{ran}");
    }
    // A missing data dir under it cannot be created either.
    let below = format!("{dir}/pdfworker-data");
    let ran = setup.check_config(&[], &[("PDFWORKER_DATA_DIR", &below)]);
    assert_eq!(ran.code, Some(1), "{below}: {ran}");
    let want = format!("data dir {below} does not exist and ");
    assert!(
        ran.stderr.contains(&want) && ran.stderr.contains("cannot create it"),
        "{want:?}\n{ran}"
    );
}

/// A broken definition stops `serve` before it listens, with the file, line and column, and
/// never half-loads the others (issue #7).
#[test]
fn serve_refuses_to_start_with_a_broken_report_naming_its_file_line_and_column() {
    let dir = TempDir::new("serve-broken");
    let reports = dir.0.join("reports");
    std::fs::create_dir_all(&reports).expect("mkdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/ledger.toml"),
        reports.join("ledger.toml"),
    )
    .expect("copy ledger");
    std::fs::write(
        reports.join("broken.toml"),
        "title = \"x\"\ncolour = \"red\"\n",
    )
    .expect("write");
    let socket = dir.0.join("w.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdfworker"))
        .args(["serve", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .arg("--reports-dir")
        .arg(&reports)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pdfworker");
    let status = wait_for(Duration::from_secs(20), "serve to give up", || {
        child.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(
        !status.success(),
        "serve started with a broken report: {stderr}"
    );
    assert!(
        stderr.contains("broken.toml:2:1") && stderr.contains("unknown key \"colour\""),
        "{stderr}"
    );
    assert!(!socket.exists(), "it never listened");
}
