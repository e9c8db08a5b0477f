//! The `pdfworker` binary: parse flags, set up logging, then `serve` or `render`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use pdfworker::config::{self, Command, RenderArgs, SchedPolicy, ServeConfig};
use pdfworker::fastcgi::{self, Listener};
use pdfworker::jobs::{EstimateFn, RenderFailure, RenderFn, RenderOutcome, Runner, Store};
use pdfworker::reports::definition::ParseContext;
use pdfworker::reports::params::{self, Submitted, Values};
use pdfworker::reports::render as report_render;
use pdfworker::reports::{Catalog, Definition, source};
use pdfworker::{shutdown, web};

mod systemd;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Help and --version print and exit 0; a bad flag or value exits 2 naming it.
    let command = config::parse().unwrap_or_else(|e| e.exit());
    let result = match command {
        Command::Render(args) => render(&args),
        Command::CheckConfig(cfg) => check_config(&cfg),
        Command::DemoData { out, rows } => pdfworker::reports::demo::create(&out, rows).map(|()| {
            log::info!(
                "wrote the demo database {} ({rows} ledger rows)",
                out.display()
            );
        }),
        Command::Serve(cfg) => serve(*cfg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            log::error!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `pdfworker render`: the same document the service makes, written to a file.
fn render(args: &RenderArgs) -> Result<(), String> {
    let ctx = ParseContext::default();
    let catalog = Catalog::load(&args.reports_dir, &ctx).map_err(definition_errors)?;
    let def = catalog.get(&args.report).cloned().ok_or_else(|| {
        format!(
            "no report {:?} in {}",
            args.report,
            args.reports_dir.display()
        )
    })?;
    let options = |_: &pdfworker::reports::ParamDef| None;
    let values = params::validate(&def, &options, &Submitted::from_pairs(&args.params)).map_err(
        |errors| {
            let list: Vec<String> = errors
                .iter()
                .map(|(name, msg)| format!("--param {name}: {msg}"))
                .collect();
            list.join("\n")
        },
    )?;
    let job = report_render::Job {
        definition: &def,
        values: &values,
        paper: args.paper.unwrap_or(def.paper),
        orientation: args.orientation.unwrap_or(def.orientation),
        max_pages: args.max_pages,
        generated_at: SystemTime::now(),
    };
    let started = std::time::Instant::now();
    let mut file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let outcome = report_render::render(&job, &mut file, &mut |_, _| true)
        .map_err(|e| format!("render failed: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    if outcome.missing_count > 0 {
        log::warn!("{}", missing_glyphs_note(&outcome));
    }
    log::info!(
        "rendered report {}: {} rows, {} pages to {} in {:.3} s",
        def.id,
        outcome.rows,
        outcome.pages,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One log line for the characters a render could not show.
fn missing_glyphs_note(outcome: &report_render::Outcome) -> String {
    let sample: String = outcome.missing_glyphs.iter().collect();
    format!(
        "{} characters the fonts lack were printed as \u{FFFD} (for example {sample:?}); give the report [fonts] that have them",
        outcome.missing_count
    )
}

/// Every definition error, one per line.
fn definition_errors(errors: Vec<pdfworker::reports::DefinitionError>) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The render function the job runner calls on a blocking thread: the job's report as it is
/// on disk now, which must be the version the values were checked against.
fn render_fn(catalog: Arc<Catalog>, max_pages: u32) -> RenderFn {
    Arc::new(move |request, progress, file| {
        lower_thread_priority();
        let def = current_definition(&catalog, request)?;
        let values = Values::from_map(request.values.clone());
        let job = report_render::Job {
            definition: &def,
            values: &values,
            paper: request.paper,
            orientation: request.orientation,
            max_pages,
            generated_at: SystemTime::now(),
        };
        match report_render::render(&job, file, progress) {
            Ok(outcome) => {
                let mut warnings = Vec::new();
                if outcome.missing_count > 0 {
                    warnings.push(missing_glyphs_note(&outcome));
                }
                Ok(RenderOutcome {
                    pages: outcome.pages,
                    rows: outcome.rows,
                    warnings,
                })
            }
            Err(e) if e.is_stop() => Err(RenderFailure::Stopped),
            Err(e) => Err(RenderFailure::Failed {
                user: e.to_string(),
                detail: format!("report {}: {e}", def.id),
            }),
        }
    })
}

/// The job's definition, read again: a job must not render a report that changed or
/// vanished after its values were checked (issue #7).
fn current_definition(
    catalog: &Catalog,
    request: &pdfworker::jobs::Request,
) -> Result<Definition, RenderFailure> {
    let failed = |user: String| RenderFailure::Failed {
        detail: user.clone(),
        user,
    };
    match catalog.reload_one(&request.report, &ParseContext::default()) {
        Ok(Some(def)) if def.hash == request.definition_hash => Ok(def),
        Ok(Some(_)) => Err(failed(format!(
            "the report \"{}\" was changed after this job was made; make it again from the form",
            request.report
        ))),
        Ok(None) => Err(failed(format!(
            "the report \"{}\" no longer exists on this server",
            request.report
        ))),
        Err(e) => Err(RenderFailure::Failed {
            user: format!(
                "the report \"{}\" has an error in its definition; ask the site's administrator",
                request.report
            ),
            detail: e.to_string(),
        }),
    }
}

/// Renders run at nice 10 so that, on a busy machine, request handling (status pages, the
/// 303 after a POST) gets the CPU first; a render only loses time when something else needs it.
/// Linux keeps a nice value per thread and the runner gives each render a thread of its own.
/// Best effort: failure is logged and the render goes on at normal priority.
fn lower_thread_priority() {
    // SAFETY: setpriority(2) takes plain integers and touches no memory of ours; `who = 0`
    // names the calling thread. This, sched_setscheduler in `set_sched_policy`, statvfs in
    // check-config and the systemd fd are the crate's only unsafe code.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        log::debug!(
            "could not lower the render thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Pages are only known while rendering (rows come from a query), so the estimate at
/// submission is 0, "unknown"; the page cap is enforced by the render itself.
fn estimate_fn() -> EstimateFn {
    Arc::new(|_| 0)
}

/// `pdfworker check-config`: what `serve` would refuse, said before it has to.
/// The webhook settings `serve` was given, with the secret read from its file.
fn webhook_config(cfg: &ServeConfig) -> Result<pdfworker::webhooks::WebhookConfig, String> {
    let secret = match &cfg.webhook_secret_file {
        Some(path) => Some(
            pdfworker::webhooks::read_secret(path)
                .map_err(|e| format!("--webhook-secret-file {e}"))?,
        ),
        None => None,
    };
    Ok(pdfworker::webhooks::WebhookConfig {
        secret,
        allow: cfg.webhook_allow.clone(),
        retry_for: cfg.webhook_retry,
        timeout: cfg.webhook_timeout,
        ..pdfworker::webhooks::WebhookConfig::default()
    })
}

fn check_config(cfg: &ServeConfig) -> Result<(), String> {
    let mut problems = Vec::new();
    check_data_dir(&cfg.data_dir, &mut problems);
    match webhook_config(cfg) {
        Ok(c) if c.secret.is_some() => println!("webhooks: on, secret read"),
        Ok(_) => println!("webhooks: off (no --webhook-secret-file); a callback_url is refused"),
        Err(e) => problems.push(e),
    }
    match Catalog::load(&cfg.reports_dir, &ParseContext::default()) {
        Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        Ok(catalog) => {
            for def in catalog.iter() {
                match source::check(&def.source) {
                    Ok(()) => println!(
                        "report {}: ok ({} source reachable)",
                        def.id,
                        def.source.kind.as_str()
                    ),
                    Err(e) => problems.push(format!(
                        "{}:{}:{}: [source]: {e}",
                        def.path.display(),
                        def.database_at.0,
                        def.database_at.1
                    )),
                }
            }
        }
    }
    if problems.is_empty() {
        println!("configuration ok");
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Below this much free space check-config fails: a full disk fails every job, and one PDF
/// of `--max-pages` pages can take tens of MiB.
const MIN_FREE_BYTES: u64 = 100 * 1024 * 1024;

/// The data dir as `serve` would use it (issue #8): a directory, or one that can be created;
/// writable by this user, and its `jobs/` and `files/` too; not open to every local user; on a
/// file system with room. Prints what it found, pushes what `serve` would trip over.
fn check_data_dir(dir: &Path, problems: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt;

    let shown = dir.display();
    let me = current_user();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        // ENOTDIR: a file stands where a folder of the path should be.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return check_missing_data_dir(dir, &me, problems);
        }
        Err(e) => {
            problems.push(format!("data dir {shown}: {e}"));
            return;
        }
    };
    if !meta.is_dir() {
        problems.push(format!(
            "data dir {shown} is not a directory (it is a {}); give --data-dir a directory",
            file_kind(&meta)
        ));
        return;
    }
    let mut writable = check_writable(dir, &me, problems);
    for (name, holds) in [("jobs", "job records"), ("files", "PDFs")] {
        let sub = dir.join(name);
        match std::fs::metadata(&sub) {
            Ok(m) if !m.is_dir() => {
                writable = false;
                problems.push(format!(
                    "data dir {shown}: {name} is a {}, not a directory; serve keeps its {holds} \
                     there",
                    file_kind(&m)
                ));
            }
            Ok(_) => writable &= check_writable(&sub, &me, problems),
            Err(_) => {}
        }
    }
    warn_about_access(dir, &meta, &me);
    let free = check_free_space(dir, problems);
    if writable {
        let (owner, mode) = (owner_of(&meta), meta.mode() & 0o7777);
        println!("data dir {shown}: ok (owner {owner}, mode {mode:04o}, writable by {me}{free})");
    }
}

/// Warnings, not failures: a data dir every local user may read or write, and a check run
/// as root, who may write anywhere, of a directory root does not own.
fn warn_about_access(dir: &Path, meta: &std::fs::Metadata, me: &User) {
    use std::os::unix::fs::MetadataExt;

    let (shown, mode) = (dir.display(), meta.mode() & 0o7777);
    if mode & 0o002 != 0 {
        println!(
            "warning: data dir {shown} is world-writable (mode {mode:04o}): any local user can \
             replace job records and PDFs; use 0750 (the unit's StateDirectoryMode)"
        );
    } else if mode & 0o004 != 0 {
        println!(
            "warning: data dir {shown} is world-readable (mode {mode:04o}): every local user \
             can read every PDF; use 0750 (the unit's StateDirectoryMode)"
        );
    }
    if me.uid == Some(0) && meta.uid() != 0 {
        println!(
            "warning: data dir {shown} is owned by {} but check-config runs as root, who may \
             write anywhere; check as the user serve runs as (runuser -u USER -- pdfworker \
             check-config ...)",
            owner_of(meta)
        );
    }
}

/// Pushes a problem naming owner and mode when this user cannot create files in `dir`.
fn check_writable(dir: &Path, me: &User, problems: &mut Vec<String>) -> bool {
    use std::os::unix::fs::MetadataExt;

    let Err(e) = try_write(dir) else {
        return true;
    };
    let (owner, mode) = std::fs::metadata(dir).map_or_else(
        |_| ("?".to_owned(), 0),
        |m| (owner_of(&m), m.mode() & 0o7777),
    );
    problems.push(format!(
        "data dir {}: not writable by {me}, who runs check-config ({e}); it is owned by \
         {owner} with mode {mode:04o}: run serve as a user who may write it, or chown it to \
         the user serve runs as",
        dir.display()
    ));
    false
}

/// "user:group" of a file, by name where `/etc/passwd` and `/etc/group` have one.
fn owner_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;

    format!(
        "{}:{}",
        id_name("/etc/passwd", meta.uid()),
        id_name("/etc/group", meta.gid())
    )
}

/// A data dir that does not exist yet: `serve` creates it (and systemd's StateDirectory= does
/// before that) when its nearest existing ancestor is a directory this user may write.
fn check_missing_data_dir(dir: &Path, me: &User, problems: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt;

    let shown = dir.display();
    let Some((ancestor, meta)) = dir
        .ancestors()
        .skip(1)
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find_map(|a| std::fs::metadata(a).ok().map(|m| (a, m)))
    else {
        problems.push(format!("data dir {shown}: no part of the path exists"));
        return;
    };
    if !meta.is_dir() {
        problems.push(format!(
            "data dir {shown} does not exist and cannot be created: {} is a {}, not a directory",
            ancestor.display(),
            file_kind(&meta)
        ));
        return;
    }
    if let Err(e) = try_write(ancestor) {
        problems.push(format!(
            "data dir {shown} does not exist and {me}, who runs check-config, cannot create it: \
             {} is not writable ({e}; owned by {}, mode {:04o})",
            ancestor.display(),
            owner_of(&meta),
            meta.mode() & 0o7777
        ));
        return;
    }
    let free = check_free_space(ancestor, problems);
    println!(
        "data dir {shown}: will be created at start (in {}, writable by {me}{free})",
        ancestor.display()
    );
}

/// Pushes a problem when the file system holding `path` has less than [`MIN_FREE_BYTES`]
/// free for us; returns "; N free" for the ok line.
fn check_free_space(path: &Path, problems: &mut Vec<String>) -> String {
    match free_bytes(path) {
        Ok(free) if free < MIN_FREE_BYTES => {
            problems.push(format!(
                "data dir {}: only {} free on its file system; serve needs at least {} for job \
                 records and PDFs",
                path.display(),
                size(free),
                size(MIN_FREE_BYTES)
            ));
            String::new()
        }
        Ok(free) => format!("; {} free", size(free)),
        Err(e) => {
            problems.push(format!(
                "data dir {}: free space unknown: {e}",
                path.display()
            ));
            String::new()
        }
    }
}

/// Creates and removes a file in `dir`: the only honest test of "writable" (modes, ACLs,
/// read-only mounts and root's privileges all have their say).
fn try_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".check-config-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

use pdfworker::jobs::free_bytes;

fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_socket() {
        "socket"
    } else if t.is_fifo() {
        "named pipe"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// Who this process runs as, for messages: "pdfworker (uid 998)".
struct User {
    uid: Option<u32>,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.uid {
            Some(uid) => write!(f, "{} (uid {uid})", id_name("/etc/passwd", uid)),
            None => f.write_str("this user"),
        }
    }
}

/// The effective uid, from `/proc/self/status` (its `Uid:` line: real, effective, ...), which
/// spares an unsafe libc call.
fn current_user() -> User {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        });
    User { uid }
}

/// The name `/etc/passwd` or `/etc/group` gives `id`, or the number (users from NSS
/// services such as LDAP are shown by number).
fn id_name(db: &str, id: u32) -> String {
    let text = std::fs::read_to_string(db).unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let found: u32 = fields.nth(1)?.parse().ok()?;
            (found == id).then(|| name.to_owned())
        })
        .unwrap_or_else(|| id.to_string())
}

/// `--sched-policy`, set on the main thread before any other thread starts: Linux keeps the
/// policy per thread and a new thread copies its creator's, so the runtime's threads, the
/// blocking pool and every render thread run under it (renders still lower their nice value,
/// which SCHED_BATCH honours). Best effort: a refusal is logged and the process goes on under
/// the policy it was started with.
fn set_sched_policy(policy: SchedPolicy) {
    let (kind, name) = match policy {
        SchedPolicy::Batch => (libc::SCHED_BATCH, "batch"),
        SchedPolicy::Normal => (libc::SCHED_OTHER, "normal"),
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) only reads `param`, which outlives the call; pid 0 names
    // the calling thread.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, kind, &param) };
    if rc == 0 {
        log::info!("scheduling policy: {name}");
    } else {
        log::warn!(
            "could not set the scheduling policy {name}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn serve(cfg: ServeConfig) -> Result<(), String> {
    set_sched_policy(cfg.sched_policy);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = match Listener::from_systemd().map_err(|e| format!("systemd socket: {e}"))? {
            Some(l) => l,
            None => {
                if let fastcgi::ListenAddr::Unix(path) = &cfg.listen
                    && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                Listener::bind(&cfg.listen, cfg.socket_mode)
                    .await
                    .map_err(|e| format!("listening on {}: {e}", cfg.listen))?
            }
        };
        let catalog = Catalog::load(&cfg.reports_dir, &ParseContext::default())
            .map_err(|errors| format!("report definitions:\n{}", definition_errors(errors)))?;
        let catalog = Arc::new(catalog);
        log::info!(
            "{} reports from {}",
            catalog.len(),
            cfg.reports_dir.display()
        );
        web::set_base_path(&cfg.base_path);
        let store = Store::open(&cfg.data_dir).map_err(|e| format!("data dir: {e}"))?;
        // X-Sendfile names the file by its absolute path.
        let files_dir = std::fs::canonicalize(
            store
                .pdf_path(pdfworker::jobs::JobId::new())
                .with_file_name(""),
        )
        .map_err(|e| format!("data dir: {e}"))?;
        let webhooks = Arc::new(webhook_config(&cfg)?);
        let render = render_fn(Arc::clone(&catalog), cfg.runner.max_pages);
        let runner = Runner::new(store, render, estimate_fn(), cfg.runner.clone());
        let (trigger, stop) = shutdown::channel();
        shutdown::on_signals(trigger).map_err(|e| format!("installing signal handlers: {e}"))?;

        let janitor = {
            let runner = runner.clone();
            let stop = stop.clone();
            tokio::spawn(async move { runner.run_janitor(stop.wait()).await })
        };
        let deliverer = {
            let store = runner.store().clone();
            let stop = stop.clone();
            let config = Arc::clone(&webhooks);
            tokio::spawn(async move { pdfworker::webhooks::run(store, config, stop.wait()).await })
        };
        // Bumped by the server, read by the app's /metrics.
        let fastcgi_stats = Arc::new(fastcgi::Stats::default());
        let app = Arc::new(
            web::App::new(runner.clone(), catalog, Arc::clone(&fastcgi_stats))
                .with_streams(cfg.max_streams, cfg.sse_heartbeat)
                .with_webhooks(webhooks)
                .with_user_param(cfg.user_param.clone())
                .with_send_file(cfg.send_file, files_dir),
        );
        log::info!(
            "pdfworker {} serving, data in {}, {} render slots",
            env!("CARGO_PKG_VERSION"),
            cfg.data_dir.display(),
            cfg.runner.slots
        );
        log::info!(
            "job ids in this log are capabilities: whoever reads one can fetch its job's PDF, \
             unless the job is bound to a signed-in user (README, Security)"
        );
        // One grace period from SIGTERM for connections and renders both, so systemd's
        // TimeoutStopSec only has to cover the grace plus writing one file. Renders go on
        // while the server drains its connections, and the runner starts closing only once
        // they are gone: nginx may still send a POST on a kept-alive connection in that
        // time, and a closing runner would refuse it with 503 (a rolling restart must fail
        // no request, tests/it/restart.rs).
        let (conns_closed, on_conns_closed) = tokio::sync::oneshot::channel::<()>();
        let drain = {
            let runner = runner.clone();
            let stop = stop.clone();
            let grace = cfg.shutdown_grace;
            tokio::spawn(async move {
                stop.wait().await;
                let deadline = tokio::time::Instant::now() + grace;
                systemd::stopping(&format!(
                    "draining: up to {grace:?} for open requests and renders"
                ));
                let _ = tokio::time::timeout_at(deadline, on_conns_closed).await;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                runner.drain(left).await;
            })
        };
        // The listener is listening (connections wait in its backlog until the accept loop
        // below takes them) and the janitor is started: this instance serves.
        systemd::ready(&format!(
            "serving on {}, {} render slots",
            listener.describe(),
            cfg.runner.slots
        ));
        systemd::heartbeat(runner.clone(), stop.clone());
        let served = fastcgi::serve(
            listener,
            app,
            cfg.fastcgi.clone(),
            fastcgi_stats,
            cfg.shutdown_grace,
            stop.wait(),
        )
        .await;
        let _ = conns_closed.send(());
        let _ = drain.await;
        served.map_err(|e| format!("server: {e}"))?;
        let _ = janitor.await;
        let _ = deliverer.await;
        log::info!("stopped");
        Ok(())
    })
}
