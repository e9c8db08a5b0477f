//! The `pdfworker` binary: parse flags, set up logging, then `serve` or `render`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use pdfworker::config::{self, Command, RenderArgs, ServeConfig};
use pdfworker::fastcgi::{self, Listener};
use pdfworker::jobs::{EstimateFn, RenderFailure, RenderFn, RenderOutcome, Runner, Store};
use pdfworker::reports::definition::ParseContext;
use pdfworker::reports::params::{self, Submitted, Values};
use pdfworker::reports::render as report_render;
use pdfworker::reports::{Catalog, Definition, source};
use pdfworker::{shutdown, web};

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
    // names the calling thread. This and the systemd fd are the crate's only unsafe code.
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
fn check_config(cfg: &ServeConfig) -> Result<(), String> {
    let mut problems = Vec::new();
    match std::fs::metadata(&cfg.data_dir) {
        Ok(m) if m.is_dir() => println!("data dir {}: ok", cfg.data_dir.display()),
        Ok(_) => problems.push(format!("{} is not a directory", cfg.data_dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!(
            "data dir {}: will be created at start",
            cfg.data_dir.display()
        ),
        Err(e) => problems.push(format!("{}: {e}", cfg.data_dir.display())),
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

fn serve(cfg: ServeConfig) -> Result<(), String> {
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
        let store = Store::open(&cfg.data_dir).map_err(|e| format!("data dir: {e}"))?;
        let render = render_fn(Arc::clone(&catalog), cfg.runner.max_pages);
        let runner = Runner::new(store, render, estimate_fn(), cfg.runner.clone());
        let (trigger, stop) = shutdown::channel();
        shutdown::on_signals(trigger).map_err(|e| format!("installing signal handlers: {e}"))?;

        let janitor = {
            let runner = runner.clone();
            let stop = stop.clone();
            tokio::spawn(async move { runner.run_janitor(stop.wait()).await })
        };
        let app = Arc::new(web::App::new(runner.clone(), catalog));
        log::info!(
            "pdfworker {} serving, data in {}, {} render slots",
            env!("CARGO_PKG_VERSION"),
            cfg.data_dir.display(),
            cfg.runner.slots
        );
        // Renders drain while the server drains its connections: one grace period for both,
        // so systemd's TimeoutStopSec only has to cover the grace plus writing one file.
        let drain = {
            let runner = runner.clone();
            let stop = stop.clone();
            let grace = cfg.shutdown_grace;
            tokio::spawn(async move {
                stop.wait().await;
                runner.drain(grace).await;
            })
        };
        let served = fastcgi::serve(
            listener,
            app,
            cfg.fastcgi.clone(),
            cfg.shutdown_grace,
            stop.wait(),
        )
        .await;
        let _ = drain.await;
        served.map_err(|e| format!("server: {e}"))?;
        let _ = janitor.await;
        log::info!("stopped");
        Ok(())
    })
}
