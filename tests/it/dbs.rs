//! Real databases for tests: PostgreSQL and MariaDB servers started from Debian's binaries,
//! each with its data in its own temp dir and reachable only through a unix socket there
//! (no TCP at all), stopped on drop; and SQLite files made with the `sqlite3` CLI.
//!
//! `start()` returns `None` (the caller skips) when the binaries are absent, unless
//! `PDFWORKER_REQUIRE_DBS` is set (CI sets it in deploy/test): then it panics, so a run
//! cannot skip silently. PostgreSQL refuses to run as root, so as root it runs as `nobody`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::TempDir;

/// Set (to anything) to make missing database binaries a failure instead of a skip.
pub const REQUIRE_ENV: &str = "PDFWORKER_REQUIRE_DBS";
/// The superuser password of the test servers (PostgreSQL `postgres`, MariaDB `root`).
pub const PASSWORD: &str = "pdfworker-test-pw";
/// How long a server may take to come up or go down.
const READY_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// `None` (a skip, said on stderr), or a panic when [`REQUIRE_ENV`] is set.
fn missing<T>(what: &str, install: &str) -> Option<T> {
    if std::env::var_os(REQUIRE_ENV).is_some() {
        panic!("{REQUIRE_ENV} is set but {what} is not installed (apt-get install {install})");
    }
    eprintln!("skipped: {what} is not installed (apt-get install {install})");
    None
}

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// The unprivileged user PostgreSQL runs as when we are root, and its group.
fn unprivileged() -> (&'static str, String) {
    let group = Command::new("id")
        .args(["-gn", "nobody"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    (
        "nobody",
        if group.is_empty() {
            "nogroup".to_owned()
        } else {
            group
        },
    )
}

/// `program` as a command that runs unprivileged: as `nobody` through `setpriv` (which
/// execs, so the child is the program itself) when we are root.
fn unprivileged_command(program: &Path) -> Command {
    if !is_root() {
        return Command::new(program);
    }
    let (user, group) = unprivileged();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={group}"))
        .args(["--clear-groups", "--"])
        .arg(program);
    cmd
}

fn chown_unprivileged(path: &Path) {
    if is_root() {
        let (user, group) = unprivileged();
        run_ok(
            Command::new("chown")
                .arg(format!("{user}:{group}"))
                .arg(path),
            "chown",
        );
    }
}

/// Runs `cmd` and panics with its output unless it succeeds.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn find_program(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(also.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A server process: signalled to stop, then killed if it lingers.
struct Server {
    child: Option<Child>,
}

impl Server {
    /// Panics with `log` if the process has exited.
    fn assert_running(&mut self, log: &Path) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "the server exited ({status}) while starting:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// Sends each signal in turn, waiting `STOP_WITHIN` after the first, then kills.
    fn stop(&mut self, signals: &[&str]) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for (i, signal) in signals.iter().enumerate() {
            let _ = Command::new("kill")
                .args(["-s", signal, &child.id().to_string()])
                .status();
            let grace = if i == 0 {
                STOP_WITHIN
            } else {
                Duration::from_secs(5)
            };
            let until = Instant::now() + grace;
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls `ready` until it holds, panicking (with `log`) after [`READY_WITHIN`].
fn wait_ready(server: &mut Server, log: &Path, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + READY_WITHIN;
    loop {
        server.assert_running(log);
        if ready() {
            return;
        }
        assert!(
            Instant::now() < until,
            "the server did not come up within {READY_WITHIN:?}:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server on a unix socket in its own temp dir, with password authentication.
pub struct Postgres {
    server: Server,
    bin: PathBuf,
    dir: TempDir,
}

impl Postgres {
    /// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and `postgres`.
    fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                    .then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    /// Initializes and starts a server; `None` when PostgreSQL is not installed (and
    /// [`REQUIRE_ENV`] is unset).
    pub fn start() -> Option<Postgres> {
        let Some(bin) = Postgres::bin_dir() else {
            return missing(
                "the PostgreSQL server (/usr/lib/postgresql/*/bin)",
                "postgresql",
            );
        };
        let dir = TempDir::new("pg");
        chown_unprivileged(&dir.0);
        let pwfile = dir.0.join("pw");
        fs::write(&pwfile, PASSWORD).expect("write the password file");
        chown_unprivileged(&pwfile);
        let data = dir.0.join("data");
        run_ok(
            unprivileged_command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync", "--no-instructions"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let log = dir.0.join("server.log");
        let log_file = fs::File::create(&log).expect("create the server log");
        let child = unprivileged_command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.0.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn postgres");
        let mut pg = Postgres {
            server: Server { child: Some(child) },
            bin,
            dir,
        };
        let socket = pg.dir.0.join(".s.PGSQL.5432");
        let mut probe = pg.command("SELECT 1");
        wait_ready(&mut pg.server, &log, || {
            socket.exists() && probe.output().is_ok_and(|o| o.status.success())
        });
        Some(pg)
    }

    /// A connection URL for the `postgres` database as the superuser.
    pub fn url(&self) -> String {
        self.url_with_password(PASSWORD)
    }

    /// The same URL with another password (for authentication failures).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgresql://postgres:{password}@/postgres?host={}",
            self.dir.0.display()
        )
    }

    fn command(&self, sql: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.arg("-h")
            .arg(&self.dir.0)
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-At"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sql` with `psql -At` and returns its output without the final newline;
    /// panics if psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = run_ok(&mut self.command(sql), &format!("psql -c {sql:?}"));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// A fast shutdown (SIGINT: sessions are terminated), then immediate, then SIGKILL.
    pub fn stop(&mut self) {
        self.server.stop(&["INT", "QUIT"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A MariaDB server on a unix socket in its own temp dir (no networking), with a `test`
/// database and a root password.
pub struct Mariadb {
    server: Server,
    client: PathBuf,
    socket: PathBuf,
    _dir: TempDir,
}

impl Mariadb {
    /// Installs a data dir and starts a server; `None` when MariaDB is not installed (and
    /// [`REQUIRE_ENV`] is unset).
    pub fn start() -> Option<Mariadb> {
        let sbin = ["/usr/sbin", "/sbin"];
        let (Some(server), Some(install), Some(client)) = (
            find_program("mariadbd", &sbin),
            find_program("mariadb-install-db", &sbin),
            find_program("mariadb", &sbin),
        ) else {
            return missing(
                "the MariaDB server or client",
                "mariadb-server mariadb-client",
            );
        };
        let dir = TempDir::new("mariadb");
        let data = dir.0.join("data");
        // Its own temporary folder: with the default (/tmp) concurrent bootstraps of other
        // tests' servers were seen to fail on each other's temporary tables.
        let tmp = dir.0.join("tmp");
        std::fs::create_dir_all(&tmp).expect("mariadb tmp dir");
        let root = if is_root() {
            vec!["--user=root"]
        } else {
            vec![]
        };
        run_ok(
            Command::new(install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .arg(format!("--tmpdir={}", tmp.display()))
                .args(&root),
            "mariadb-install-db",
        );
        let socket = dir.0.join("m.sock");
        let log = dir.0.join("error.log");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.0.join("m.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
            ])
            .args(["--innodb-flush-log-at-trx-commit=0", "--max-connections=50"])
            .args(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        let mut db = Mariadb {
            server: Server { child: Some(child) },
            client,
            socket,
            _dir: dir,
        };
        let mut probe = db.command("SELECT 1", None);
        let socket = db.socket.clone();
        wait_ready(&mut db.server, &log, || {
            socket.exists() && probe.output().is_ok_and(|o| o.status.success())
        });
        let setup =
            format!("ALTER USER root@localhost IDENTIFIED BY '{PASSWORD}'; CREATE DATABASE test");
        run_ok(&mut db.command(&setup, None), "mariadb (set up)");
        Some(db)
    }

    /// A connection URL for the `test` database as root, through the socket.
    pub fn url(&self) -> String {
        self.url_with_password(PASSWORD)
    }

    /// The same URL with another password (for authentication failures).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "mysql://root:{password}@localhost/test?socket={}",
            self.socket.display()
        )
    }

    fn command(&self, sql: &str, password: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null());
        if let Some(password) = password {
            cmd.arg("-Dtest").env("MYSQL_PWD", password);
        }
        cmd
    }

    /// Runs `sql` in the `test` database with `mariadb --batch --skip-column-names` and
    /// returns its output without the final newline; panics if the client fails.
    pub fn sql(&self, sql: &str) -> String {
        let out = run_ok(
            &mut self.command(sql, Some(PASSWORD)),
            &format!("mariadb -e {sql:?}"),
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// A normal shutdown (SIGTERM: connections are closed), then SIGKILL.
    pub fn stop(&mut self) {
        self.server.stop(&["TERM"]);
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An SQLite database file in a temp dir, written with the `sqlite3` CLI.
pub struct Sqlite {
    path: PathBuf,
    cli: PathBuf,
    _dir: TempDir,
}

impl Sqlite {
    /// An empty database file; `None` when the `sqlite3` CLI is not installed (and
    /// [`REQUIRE_ENV`] is unset).
    pub fn create() -> Option<Sqlite> {
        let Some(cli) = find_program("sqlite3", &[]) else {
            return missing("the sqlite3 command", "sqlite3");
        };
        let dir = TempDir::new("sqlite");
        let db = Sqlite {
            path: dir.0.join("test.db"),
            cli,
            _dir: dir,
        };
        db.sql("PRAGMA user_version = 1");
        Some(db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `sql` with `sqlite3 -batch` and returns its output without the final newline.
    pub fn sql(&self, sql: &str) -> String {
        let out = run_ok(
            Command::new(&self.cli)
                .arg("-batch")
                .arg(&self.path)
                .arg(sql),
            &format!("sqlite3 {sql:?}"),
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }
}

/// The server shared by the tests running now (in any module); started again once all of
/// them have finished with it, so it stops with the last one (a static would never drop).
fn shared<T>(
    slot: &std::sync::Mutex<std::sync::Weak<T>>,
    start: fn() -> Option<T>,
) -> Option<std::sync::Arc<T>> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(db) = slot.upgrade() {
        return Some(db);
    }
    let db = std::sync::Arc::new(start()?);
    *slot = std::sync::Arc::downgrade(&db);
    Some(db)
}

/// The PostgreSQL server tests share.
pub fn shared_postgres() -> Option<std::sync::Arc<Postgres>> {
    static SLOT: std::sync::Mutex<std::sync::Weak<Postgres>> =
        std::sync::Mutex::new(std::sync::Weak::new());
    shared(&SLOT, Postgres::start)
}

/// The MariaDB server tests share.
pub fn shared_mariadb() -> Option<std::sync::Arc<Mariadb>> {
    static SLOT: std::sync::Mutex<std::sync::Weak<Mariadb>> =
        std::sync::Mutex::new(std::sync::Weak::new());
    shared(&SLOT, Mariadb::start)
}
