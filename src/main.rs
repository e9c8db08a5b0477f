//! The `pdfworker` binary: parse flags, set up logging, then `serve` or `render`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use pdfworker::config::{self, Command, RenderArgs, ServeConfig};
use pdfworker::fastcgi::{self, Listener};
use pdfworker::jobs::{EstimateFn, RenderFn, RenderOutcome, Runner, Store};
use pdfworker::{pdf, shutdown, web};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let command = match config::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("pdfworker: {msg}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", config::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("pdfworker {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Render(args) => render(&args),
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

fn render(args: &RenderArgs) -> Result<(), String> {
    let report = pdf::Report {
        title: &args.title,
        rows: args.rows,
        paper: args.paper,
        orientation: args.orientation,
        generated_at: SystemTime::now(),
    };
    let started = std::time::Instant::now();
    let file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let rendered = pdf::render(&report, &mut |_, _| true, &mut out)
        .map_err(|e| format!("render failed: {e}"))?;
    std::io::Write::flush(&mut out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    log::info!(
        "rendered {} rows, {} pages to {} in {:.3} s",
        args.rows,
        rendered.pages,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The render function the job runner calls on a blocking thread.
fn render_fn() -> RenderFn {
    Arc::new(|params, progress, file| {
        lower_thread_priority();
        let report = pdf::Report {
            title: &params.title,
            rows: params.rows,
            paper: params.paper,
            orientation: params.orientation,
            generated_at: SystemTime::now(),
        };
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        let rendered = pdf::render(&report, progress, &mut out).map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut out).map_err(|e| format!("writing the PDF: {e}"))?;
        Ok(RenderOutcome {
            pages: rendered.pages,
        })
    })
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

fn estimate_fn() -> EstimateFn {
    Arc::new(|params| pdf::page_count(params.rows, params.paper, params.orientation))
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
        let store = Store::open(&cfg.data_dir).map_err(|e| format!("data dir: {e}"))?;
        let runner = Runner::new(store, render_fn(), estimate_fn(), cfg.runner.clone());
        let (trigger, stop) = shutdown::channel();
        shutdown::on_signals(trigger).map_err(|e| format!("installing signal handlers: {e}"))?;

        let janitor = {
            let runner = runner.clone();
            let stop = stop.clone();
            tokio::spawn(async move { runner.run_janitor(stop.wait()).await })
        };
        let app = Arc::new(web::App::new(runner.clone(), cfg.max_rows));
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
