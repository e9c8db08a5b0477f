//! The application behind the FastCGI layer: routes, forms, pages, errors, SSE.
//!
//! Owns the URL contract (issues #3, #7): `GET /` (the list of reports), `GET /reports/<id>`
//! (a form generated from the report's params), `POST /reports/<id>` (and `POST /generate`,
//! the demo report's old address), `GET /jobs/<id>`, `GET /jobs/<id>/events`,
//! `GET /jobs/<id>/status.json`, `GET /jobs/<id>/download`, `GET /healthz`, and `GET /metrics`
//! (issue #8, [`metrics`]; nginx serves it to loopback only). Every error becomes a status and a plain page in [`AppError::reply`].
//! Nothing here waits on a render: status pages read the job record (or the runner's live
//! progress) and answer.

pub mod api;
pub mod assets;
mod body;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;

use crate::fastcgi::{self, Abort, Request, Response};
use crate::jobs::{self, Job, JobId, Runner, State, SubmitError};
use crate::pdf::{Orientation, Paper};
use crate::reports::params::{self, Submitted};
use crate::reports::{Catalog, Definition, ParamDef, ParamType, source};
use http::HttpRequest;
use pages::{FieldView, FormPage, IndexPage, JobPage, MessagePage, ReportLink};
use watch::{Published, Watchers};

/// How a finished PDF reaches the browser (`--send-file`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFile {
    /// `X-Accel-Redirect: /_files/<id>.pdf`: nginx sends it from its internal location.
    XAccelRedirect,
    /// `X-Sendfile: <absolute path>`: lighttpd, Apache with mod_xsendfile.
    XSendfile,
    /// Through the worker, in bounded pieces, with HEAD, ETag and single ranges: for front
    /// ends that cannot send a file.
    Body,
}

/// The path prefix the app is mounted under (`--base-path`, e.g. `/exports`; empty: none).
/// Set once at start-up, before any request; every link and redirect the app writes starts
/// with it.
static BASE_PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Mounts the app under `base` (`/exports`, no trailing slash). Only the first call counts.
pub fn set_base_path(base: &str) {
    let _ = BASE_PATH.set(base.trim_end_matches('/').to_owned());
}

/// The prefix the app is mounted under; empty when it has the whole site.
pub fn base() -> &'static str {
    BASE_PATH.get().map_or("", String::as_str)
}

/// `path` (absolute within the app, e.g. `/jobs/<id>`) as the browser must ask for it.
pub fn url(path: &str) -> String {
    format!("{}{path}", base())
}

/// The part of a request path inside the app; `None` outside the prefix.
fn within_base(path: &str) -> Option<&str> {
    let base = base();
    if base.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(base)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// The demo report, whose form `POST /generate` still takes.
pub const DEMO_REPORT: &str = "ledger";
/// How long the options an `options_query` returned are reused.
const OPTIONS_TTL: Duration = Duration::from_secs(60);

/// How many of a signed-in user's jobs the list of reports shows.
const RECENT_JOBS: usize = 20;

/// The longest a request waits for a job record to be read before it answers 503.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// The longest a single Server-Sent Events response stays open; the browser reconnects.
const SSE_MAX: Duration = Duration::from_secs(300);

/// The app: one per process, shared by every request.
pub struct App {
    runner: Runner,
    catalog: Arc<Catalog>,
    /// Choice options from `options_query`, by (report, param); `None` = the query failed.
    options: std::sync::Mutex<HashMap<(String, String), CachedOptions>>,
    /// Records of finished jobs, which do not change: a status page of a done job is the page
    /// users reload most, and this spares it a file read and a JSON parse...
    finished: TtlCache<Arc<Job>>,
    /// ...and this, rendering its HTML again.
    finished_pages: TtlCache<Arc<[u8]>>,
    /// The event streams open and the jobs they watch.
    watchers: Watchers,
    /// `GET /metrics`: requests, renders, and levels read at scrape time.
    metrics: metrics::Metrics,
    /// What a job's `callback_url` is checked against.
    webhooks: Arc<crate::webhooks::WebhookConfig>,
    /// How a finished PDF is handed over, and the absolute folder of the PDFs.
    send_file: SendFile,
    files_dir: std::path::PathBuf,
    /// The CGI param that names the authenticated user.
    user_param: String,
}

/// An `options_query`'s answer (`None`: it failed) and when it came.
type CachedOptions = (Option<Vec<String>>, Instant);

/// A small map of values that stay valid for [`FINISHED_TTL`].
struct TtlCache<V> {
    map: std::sync::Mutex<HashMap<JobId, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    fn new() -> Self {
        TtlCache {
            map: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, id: JobId) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&id)
            .filter(|(_, at)| at.elapsed() < FINISHED_TTL)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, id: JobId, value: V) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= FINISHED_MAX {
            map.retain(|_, (_, at)| now.duration_since(*at) < FINISHED_TTL);
            if map.len() >= FINISHED_MAX {
                map.clear();
            }
        }
        map.insert(id, (value, now));
    }
}

/// How long a finished job's record is served from memory. Short, because the janitor of any
/// worker may remove an expired job; a page may show it this much longer.
const FINISHED_TTL: Duration = Duration::from_secs(30);
/// Finished records kept in memory at most (a few hundred bytes each).
const FINISHED_MAX: usize = 4096;

/// Event streams one process holds open at most, unless told otherwise.
pub const DEFAULT_MAX_STREAMS: usize = 4096;

impl App {
    /// The app over `runner` and `catalog`; `/metrics` reads `fastcgi_stats`, which the
    /// server that serves this app bumps.
    pub fn new(runner: Runner, catalog: Arc<Catalog>, fastcgi_stats: Arc<fastcgi::Stats>) -> App {
        let watchers = Watchers::new(
            runner.clone(),
            DEFAULT_MAX_STREAMS,
            watch::DEFAULT_HEARTBEAT,
        );
        App {
            metrics: metrics::Metrics::new(&runner, fastcgi_stats, watchers.gauges()),
            watchers,
            runner,
            catalog,
            options: std::sync::Mutex::new(HashMap::new()),
            finished: TtlCache::new(),
            finished_pages: TtlCache::new(),
            webhooks: Arc::new(crate::webhooks::WebhookConfig::default()),
            user_param: "REMOTE_USER".to_owned(),
            send_file: SendFile::XAccelRedirect,
            files_dir: std::path::PathBuf::new(),
        }
    }

    /// Hands finished PDFs over with `mode`; `files_dir` is the PDFs' folder, absolute (for
    /// `X-Sendfile`).
    #[must_use]
    pub fn with_send_file(mut self, mode: SendFile, files_dir: std::path::PathBuf) -> App {
        self.send_file = mode;
        self.files_dir = files_dir;
        self
    }

    /// The CGI param naming the user the web server authenticated (`REMOTE_USER` unless
    /// told otherwise).
    #[must_use]
    pub fn with_user_param(mut self, name: String) -> App {
        self.user_param = name;
        self
    }

    /// What a job's PDF will take on disk, for the disk budget: only when one is set, and
    /// only for a report with a `count_query`, which runs here (within a few seconds, on a
    /// blocking thread): about 128 bytes a row — the shipped reports measure 75 — plus
    /// 256 KiB for fonts and the document's own objects.
    async fn expected_file_bytes(
        &self,
        def: &Arc<Definition>,
        request: &jobs::Request,
    ) -> Option<u64> {
        if self.runner.max_data_bytes() == 0 || def.source.count_query.is_none() {
            return None;
        }
        let def = Arc::clone(def);
        let values = params::Values::from_map(request.values.clone());
        let limit = def.source.timeout.min(Duration::from_secs(5));
        let counted = tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || crate::reports::render::count_rows(&def, &values)),
        )
        .await;
        match counted {
            Ok(Ok(Ok(Some(rows)))) => Some(rows.saturating_mul(128).saturating_add(256 * 1024)),
            Ok(Ok(Err(e))) => {
                log::warn!("counting rows for the disk budget: {e}");
                None
            }
            _ => None,
        }
    }

    /// The user the web server authenticated for this request, if any.
    fn user_of<'r>(&self, req: &HttpRequest<'r>) -> Option<&'r str> {
        req.param(&self.user_param).filter(|u| !u.is_empty())
    }

    /// Who is asking, for the per-client cap: the user the web server authenticated, else
    /// the client's address as the web server passes it (`REMOTE_ADDR`; behind a proxy,
    /// set nginx's real_ip so that it is the client's, not the proxy's).
    fn client_of(&self, req: &HttpRequest) -> Option<String> {
        if let Some(user) = self.user_of(req) {
            return Some(format!("user:{user}"));
        }
        req.param("REMOTE_ADDR")
            .filter(|a| !a.is_empty())
            .map(|a| format!("addr:{a}"))
    }

    /// Jobs may name a `callback_url` checked against `config` (without a secret in it,
    /// every callback is refused).
    #[must_use]
    pub fn with_webhooks(mut self, config: Arc<crate::webhooks::WebhookConfig>) -> App {
        self.webhooks = config;
        self
    }

    /// At most `max` event streams open at once (more watchers are answered once with a
    /// `retry:` delay), each sending a comment line every `heartbeat` while nothing changes.
    #[must_use]
    pub fn with_streams(mut self, max: usize, heartbeat: Duration) -> App {
        self.watchers.configure(max, heartbeat);
        self
    }

    /// The event streams open and the jobs they watch.
    pub fn watchers(&self) -> &Watchers {
        &self.watchers
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn html(status: u16, page: &impl Template) -> Reply {
        match page.render() {
            Ok(body) => Reply::html_body(status, body.into_bytes()),
            Err(e) => AppError::Internal(format!("template: {e}")).reply(),
        }
    }

    fn html_body(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body,
        }
    }

    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn see_other(location: String) -> Reply {
        Reply {
            status: 303,
            headers: vec![("Location", location)],
            body: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// Everything a request can fail with, mapped to a status in one place.
#[derive(Debug)]
pub enum AppError {
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A form with its values and errors, shown again.
    BadRequest(Box<FormPage>),
    /// A request whose address cannot be read (why).
    BadAddress(&'static str),
    UnsupportedMediaType,
    /// A state-changing request another site made a browser send (CSRF).
    CrossSite,
    /// The job's file would not fit (why, for people).
    NoRoom(String),
    /// This client has as many jobs queued or running as one may.
    ClientBusy {
        jobs: usize,
        retry_after: Duration,
    },
    NotReady {
        id: JobId,
        state: State,
    },
    /// The download of a job whose render failed.
    Failed {
        id: JobId,
    },
    /// The download of a job that was cancelled.
    Cancelled {
        id: JobId,
    },
    /// An API answer already decided (`/api/` addresses).
    Problem(Box<api::Problem>),
    Unavailable {
        retry_after: Duration,
    },
    Internal(String),
}

impl AppError {
    /// The page a user sees. Internal errors are logged here, once, and shown without details.
    pub fn reply(self) -> Reply {
        let msg = |status, heading: &str, message: &str, link: Option<String>, link_text: &str| {
            let page = MessagePage {
                heading: heading.into(),
                message: message.into(),
                link,
                link_text: link_text.into(),
            };
            Reply::html(status, &page)
        };
        match self {
            AppError::NotFound => msg(
                404,
                "Not found",
                "There is no page or report at this address. Reports are kept for a limited time.",
                Some(url("/")),
                "See the reports",
            ),
            AppError::MethodNotAllowed { allow } => msg(
                405,
                "Method not allowed",
                "This address does not take that kind of request.",
                None,
                "",
            )
            .with_header("Allow", allow.into()),
            AppError::BadRequest(form) => Reply::html(400, form.as_ref()),
            AppError::BadAddress(reason) => msg(
                400,
                "Bad address",
                &format!("This address cannot be read: {reason}."),
                Some(url("/")),
                "See the reports",
            ),
            AppError::UnsupportedMediaType => msg(
                415,
                "Unsupported form encoding",
                "Send the form as application/x-www-form-urlencoded.",
                Some(url("/")),
                "See the reports",
            ),
            AppError::CrossSite => msg(
                403,
                "Not from this site",
                "This form was sent from another web site, so it was not carried out. Open the \
                 page here and send it again.",
                Some(url("/")),
                "See the reports",
            ),
            AppError::NoRoom(why) => msg(
                507,
                "No room for this report",
                &format!(
                    "This report cannot be made now: {why}. Choose values that select fewer \
                     rows, or try again once older reports have been removed."
                ),
                Some(url("/")),
                "See the reports",
            ),
            AppError::ClientBusy { jobs, retry_after } => msg(
                429,
                "Too many reports at once",
                &format!(
                    "You have {jobs} reports waiting or being made, as many as one person may \
                     have at a time. Try again when one of them is done."
                ),
                Some(url("/")),
                "See the reports",
            )
            .with_header("Retry-After", retry_after.as_secs().max(1).to_string()),
            AppError::NotReady { id, state } => msg(
                409,
                "Not ready yet",
                &format!(
                    "This report is {}; the download starts working when it is done.",
                    state.as_str()
                ),
                Some(url(&format!("/jobs/{id}"))),
                "See its progress",
            ),
            AppError::Failed { id } => msg(
                410,
                "No file to download",
                "This report could not be made, so there is no file. Its page says why.",
                Some(url(&format!("/jobs/{id}"))),
                "See what happened",
            ),
            AppError::Cancelled { id } => msg(
                410,
                "No file to download",
                "This report was cancelled before it was done, so there is no file.",
                Some(url(&format!("/jobs/{id}"))),
                "See the report",
            ),
            AppError::Problem(problem) => problem.reply(),
            AppError::Unavailable { retry_after } => msg(
                503,
                "Busy",
                "Too many reports are waiting right now. Please try again in a moment.",
                Some(url("/")),
                "Back to the form",
            )
            .with_header("Retry-After", retry_after.as_secs().max(1).to_string()),
            AppError::Internal(detail) => {
                log::error!("internal error: {detail}");
                // No template: this path must not fail again.
                Reply::text(500, "Internal error. Please try again later.\n")
            }
        }
    }
}

/// A JSON job request, read but not validated yet.
struct ApiSubmission {
    def: Arc<Definition>,
    fields: Vec<(String, String)>,
    /// The idempotency key and a digest of the body.
    key: Option<(String, String)>,
    /// Members that are no value of the report.
    errors: Vec<(String, String)>,
    /// `callback_url`, checked.
    callback: Option<String>,
}

/// Which answer about a job.
#[derive(Clone, Copy, Debug)]
enum JobView {
    Page,
    Json,
    Download,
}

/// What a route decided; the handler writes it.
enum Outcome {
    Reply(Reply),
    /// A report's form, once its choice options are known.
    Form(Arc<Definition>),
    /// A submitted form, to validate once its choice options are known; if valid, record the
    /// job, answer 303, finish the request, then start its render.
    Submit(Arc<Definition>, Vec<(String, String)>),
    Events(JobId),
    /// The list of reports, and the signed-in user's recent jobs.
    Index,
    /// A job's page, JSON or download: its record is read off the request thread.
    Job(JobId, JobView),
    /// `GET /api/v1/reports` and `/api/v1/reports/<id>` (options may need the database).
    ApiReports,
    ApiReport(Arc<Definition>),
    /// A JSON job request: validate, record (keys, reuse), answer 202, start.
    ApiSubmit(Box<ApiSubmission>),
    /// A job, maybe after waiting for it to change.
    ApiJob(JobId, Option<Duration>),
    /// Cancel: from the API (`true`, JSON) or the wait page's button (a 303 back to it).
    Cancel(JobId, bool),
}

impl fastcgi::Handler for App {
    async fn handle(&self, request: Request, response: Response) {
        let http = HttpRequest::from_fastcgi(&request);
        let timer = self.metrics.start(within_base(&http.path).unwrap_or(""));
        // Under /api/ every error is problem+json, HTML everywhere else.
        let api = within_base(&http.path).is_some_and(|p| p.starts_with("/api/"));
        let error = |e: AppError| if api { e.problem().reply() } else { e.reply() };
        let outcome = self
            .route(&http)
            .unwrap_or_else(|e| Outcome::Reply(error(e)));
        // The arms with large states (the form, a submission, the index, a download through
        // the worker, the event stream) run boxed: a request's task holds (and spawning it
        // copies) this future, whose size is that of its largest arm, so pages and redirects
        // would otherwise carry their state (5,144 bytes with none boxed, 1,472 with these;
        // boxing the other arms as well saves 32 more).
        match outcome {
            Outcome::Reply(reply) => {
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::Form(def) => {
                Box::pin(async {
                    let def = match self.current(def).await {
                        Ok(def) => def,
                        Err(e) => {
                            let _ = self.answer(&timer, e.reply(), response).await;
                            return;
                        }
                    };
                    let options = self.choice_options(&def).await;
                    let page = form_page(&def, &[], &options);
                    let _ = self.answer(&timer, Reply::html(200, &page), response).await;
                })
                .await
            }
            Outcome::Submit(def, fields) => {
                Box::pin(async {
                    let key = match api::idempotency_key(http.header("Idempotency-Key")) {
                        Ok(key) => key.map(|k| {
                            let body = jobs::digest(&[def.id.as_bytes(), http.body]);
                            (k, body)
                        }),
                        Err(p) => {
                            let _ = self.answer(&timer, p.reply(), response).await;
                            return;
                        }
                    };
                    let client = self.client_of(&http);
                    let submitted = self
                        .submit(def, &fields, key, Vec::new(), None, client)
                        .await;
                    let (submitted, reply) = match submitted {
                        Ok(submitted) => {
                            let see = Reply::see_other(url(&format!("/jobs/{}", submitted.id())));
                            (submitted, see)
                        }
                        Err(e) => {
                            let _ = self.answer(&timer, e.reply(), response).await;
                            return;
                        }
                    };
                    self.answer_and_start(&timer, reply, response, submitted)
                        .await;
                })
                .await
            }
            Outcome::ApiSubmit(sub) => {
                Box::pin(async {
                    let ApiSubmission {
                        def,
                        fields,
                        key,
                        errors,
                        callback,
                    } = *sub;
                    let client = self.client_of(&http);
                    let submitted = match self
                        .submit(def, &fields, key, errors, callback, client)
                        .await
                    {
                        Ok(submitted) => submitted,
                        Err(e) => {
                            let _ = self.answer(&timer, e.problem().reply(), response).await;
                            return;
                        }
                    };
                    let id = submitted.id();
                    let (job, replay) = match &submitted {
                        jobs::Submitted::New(pending) => (pending.job().clone(), None),
                        jobs::Submitted::Replayed(job) => {
                            (job.clone(), Some("Idempotent-Replayed"))
                        }
                        jobs::Submitted::Reused(job) => (job.clone(), Some("Pdfworker-Reused")),
                    };
                    let mut reply = api::json_reply(202, &api::job_json(&job, self.live_for(&job)))
                        .with_header("Location", url(&format!("/api/v1/jobs/{id}")));
                    if let Some(header) = replay {
                        reply = reply.with_header(header, "true".into());
                    }
                    self.answer_and_start(&timer, reply, response, submitted)
                        .await;
                })
                .await
            }
            Outcome::ApiReports => {
                let reply = self.api_reports().await;
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::ApiReport(def) => {
                let reply = self.api_report(def).await;
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::ApiJob(id, wait) => {
                let reply = self
                    .api_job(id, wait, self.user_of(&http))
                    .await
                    .unwrap_or_else(error);
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::Cancel(id, true) => {
                let reply = match self.cancel(id, self.user_of(&http)).await {
                    Ok((job, now)) => {
                        let status = if now { 200 } else { 202 };
                        // A render that is stopping: where it is now, not where its
                        // record last said.
                        let live = if now { None } else { self.live_for(&job) };
                        let mut body = api::job_json(&job, live);
                        body["cancel_requested"] = serde_json::Value::Bool(true);
                        api::json_reply(status, &body)
                    }
                    Err(e) => e.problem().reply(),
                };
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::Cancel(id, false) => {
                let reply = match self.cancel(id, self.user_of(&http)).await {
                    Ok(_) => Reply::see_other(url(&format!("/jobs/{id}"))),
                    Err(AppError::Problem(p)) if p.status == 409 => {
                        // Ended meanwhile: its page says how.
                        Reply::see_other(url(&format!("/jobs/{id}")))
                    }
                    Err(e) => e.reply(),
                };
                let _ = self.answer(&timer, reply, response).await;
            }
            Outcome::Index => {
                Box::pin(async {
                    let page = self.index(self.user_of(&http)).await;
                    let reply = Reply::html(200, &page)
                        .with_header("Cache-Control", "private, no-store".into());
                    let _ = self.answer(&timer, reply, response).await;
                })
                .await
            }
            Outcome::Job(id, JobView::Download) if self.send_file == SendFile::Body => {
                Box::pin(async {
                    let user = self.user_of(&http);
                    let status = match self.download(id, user).await {
                        Ok(reply) => self.send_body(id, reply, &http, response).await,
                        Err(e) => {
                            let reply = e.reply();
                            let status = reply.status;
                            let _ = send(reply, response).await;
                            status
                        }
                    };
                    self.metrics.finish(&timer, status);
                })
                .await
            }
            Outcome::Job(id, view) => {
                let user = self.user_of(&http);
                let reply = match view {
                    JobView::Page => self.status_page(id, user).await,
                    JobView::Json => self.status_json(id, user).await,
                    JobView::Download => self.download(id, user).await,
                };
                let _ = self
                    .answer(&timer, reply.unwrap_or_else(error), response)
                    .await;
            }
            Outcome::Events(id) => {
                Box::pin(async {
                    if let Err(e) = self.load(id, self.user_of(&http)).await {
                        let _ = self.answer(&timer, e.reply(), response).await;
                        return;
                    }
                    // A stream stays open for minutes: it counts as answered when it starts.
                    self.metrics.finish(&timer, 200);
                    let last = request.param("HTTP_LAST_EVENT_ID").map(str::to_owned);
                    self.events(id, last, request.abort(), response).await;
                })
                .await
            }
        }
    }
}

impl App {
    /// Sends the answer to a submission and, for a new job, starts its render only after
    /// the request is finished (its FCGI_END_REQUEST sent).
    async fn answer_and_start(
        &self,
        timer: &metrics::RequestTimer,
        reply: Reply,
        response: Response,
        submitted: jobs::Submitted,
    ) {
        let id = submitted.id();
        let status = reply.status;
        match self.answer(timer, reply, response).await {
            Ok(()) => log::info!("job {id}: answered {status}, request finished"),
            // The client or nginx went away: the job is recorded and renders anyway.
            Err(e) => log::info!("job {id}: response not delivered ({e}); rendering anyway"),
        }
        if let jobs::Submitted::New(pending) = submitted {
            self.runner.start(pending);
        }
    }
}

async fn send(reply: Reply, mut response: Response) -> Result<(), fastcgi::Error> {
    // The reply's own headers, the security headers and perhaps Content-Length: sized once.
    let mut headers: Vec<(&str, &str)> =
        Vec::with_capacity(reply.headers.len() + assets::SECURITY_HEADERS.len() + 1);
    headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
    headers.extend(assets::SECURITY_HEADERS);
    // The whole body is known: its length spares the web server from chunking it (nginx
    // otherwise answers HTTP/1.1 clients with `Transfer-Encoding: chunked`).
    let length;
    if !matches!(reply.status, 204 | 304)
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        length = reply.body.len().to_string();
        headers.push(("Content-Length", &length));
    }
    response.write_head(reply.status, &headers)?;
    response.finish_with(&reply.body).await
}

impl App {
    /// [`send`], counting the request under its route with the reply's status and the time
    /// since it arrived.
    async fn answer(
        &self,
        timer: &metrics::RequestTimer,
        reply: Reply,
        response: Response,
    ) -> Result<(), fastcgi::Error> {
        let status = reply.status;
        let sent = send(reply, response).await;
        self.metrics.finish(timer, status);
        sent
    }
}

impl App {
    fn route(&self, req: &HttpRequest) -> Result<Outcome, AppError> {
        let get = req.is("GET") || req.is("HEAD");
        if let Some(reason) = req.bad_uri {
            return Err(AppError::BadAddress(reason));
        }
        // Every request that changes something (forms, API, cancel) is refused when a
        // browser says another site sent it.
        if !get && req.is_cross_site() {
            return Err(AppError::CrossSite);
        }
        // Outside the prefix the app is mounted under, nothing is ours.
        let path = within_base(&req.path).ok_or(AppError::NotFound)?;
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [""] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Index)
            }
            ["reports", id] => {
                let def = self.catalog.get(id).cloned().ok_or(AppError::NotFound)?;
                if req.is("POST") {
                    self.submission(def, req)
                } else {
                    require(get, "GET, HEAD, POST")?;
                    Ok(Outcome::Form(def))
                }
            }
            ["generate"] => {
                require(req.is("POST"), "POST")?;
                let def = self
                    .catalog
                    .get(DEMO_REPORT)
                    .cloned()
                    .ok_or(AppError::NotFound)?;
                self.submission(def, req)
            }
            ["static", name] => {
                require(get, "GET, HEAD")?;
                let asset = assets::get(name).ok_or(AppError::NotFound)?;
                Ok(Outcome::Reply(Reply {
                    status: 200,
                    headers: vec![
                        ("Content-Type", asset.content_type.into()),
                        // Its name changes with its content.
                        (
                            "Cache-Control",
                            "public, max-age=31536000, immutable".into(),
                        ),
                    ],
                    body: asset.body.to_vec(),
                }))
            }
            ["metrics"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Reply(self.metrics.reply()))
            }
            ["healthz"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Reply(
                    Reply::text(200, "ok\n").with_header("Cache-Control", "no-store".into()),
                ))
            }
            ["jobs", id] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Job(parse_id(id)?, JobView::Page))
            }
            ["jobs", id, "status.json"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Job(parse_id(id)?, JobView::Json))
            }
            ["jobs", id, "events"] => {
                require(get, "GET")?;
                Ok(Outcome::Events(parse_id(id)?))
            }
            ["jobs", id, "download"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Job(parse_id(id)?, JobView::Download))
            }
            ["jobs", id, "cancel"] => {
                require(req.is("POST"), "POST")?;
                Ok(Outcome::Cancel(parse_id(id)?, false))
            }
            ["api", "v1", "reports"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::ApiReports)
            }
            ["api", "v1", "reports", id] => {
                require(get, "GET, HEAD")?;
                let def = self.catalog.get(id).cloned().ok_or(AppError::NotFound)?;
                Ok(Outcome::ApiReport(def))
            }
            ["api", "v1", "reports", id, "jobs"] => {
                require(req.is("POST"), "POST")?;
                let def = self.catalog.get(id).cloned().ok_or(AppError::NotFound)?;
                if !req.is_json() {
                    return Err(AppError::UnsupportedMediaType);
                }
                if req.body.len() > api::MAX_BODY_BYTES {
                    return Err(AppError::Problem(Box::new(api::plain(413).detail(
                        format!("a job request may be at most {} bytes", api::MAX_BODY_BYTES),
                    ))));
                }
                let key = api::idempotency_key(req.header("Idempotency-Key"))
                    .map_err(|p| AppError::Problem(Box::new(p)))?;
                let mut read =
                    api::body_fields(&def, req.body).map_err(|p| AppError::Problem(Box::new(p)))?;
                let callback = match read.body.get(api::CALLBACK_URL) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(url)) => {
                        match crate::webhooks::check_url(url, &self.webhooks) {
                            Ok(_) => Some(url.clone()),
                            Err(why) => {
                                read.errors.push((api::CALLBACK_URL.to_owned(), why));
                                None
                            }
                        }
                    }
                    Some(_) => {
                        read.errors.push((
                            api::CALLBACK_URL.to_owned(),
                            "must be a string (an http or https URL)".to_owned(),
                        ));
                        None
                    }
                };
                // "The same body": the same members and values, whatever their order.
                let key = key.map(|k| {
                    let canonical = read.body.to_string();
                    (k, jobs::digest(&[def.id.as_bytes(), canonical.as_bytes()]))
                });
                Ok(Outcome::ApiSubmit(Box::new(ApiSubmission {
                    def,
                    fields: read.fields,
                    key,
                    errors: read.errors,
                    callback,
                })))
            }
            ["api", "v1", "jobs", id] => {
                let id = parse_id(id)?;
                if req.is("DELETE") {
                    return Ok(Outcome::Cancel(id, true));
                }
                require(get, "GET, HEAD, DELETE")?;
                let wait = api::wait_param(req.query_param("wait"))
                    .map_err(|p| AppError::Problem(Box::new(p)))?;
                Ok(Outcome::ApiJob(id, wait))
            }
            ["api", "v1", "openapi.json"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Reply(Reply {
                    status: 200,
                    headers: vec![("Content-Type", "application/json".into())],
                    body: api::openapi_document().to_vec(),
                }))
            }
            _ => Err(AppError::NotFound),
        }
    }

    /// The reports, and for a signed-in user their latest jobs (read on a blocking thread).
    async fn index(&self, user: Option<&str>) -> IndexPage {
        let mut recent = Vec::new();
        if let Some(user) = user {
            let store = self.runner.store().clone();
            let who = user.to_owned();
            let read = tokio::time::timeout(
                READ_LIMIT,
                tokio::task::spawn_blocking(move || {
                    let ids = store.jobs_of(&who, RECENT_JOBS).unwrap_or_default();
                    ids.into_iter()
                        .filter_map(|id| store.load(id).ok().flatten())
                        .filter(|job| job.owner.as_deref() == Some(who.as_str()))
                        .collect::<Vec<Job>>()
                }),
            )
            .await;
            if let Ok(Ok(jobs)) = read {
                recent = jobs
                    .into_iter()
                    .map(|job| pages::RecentJob {
                        id: job.id.to_string(),
                        title: if job.request.title.trim().is_empty() {
                            "Report".to_owned()
                        } else {
                            job.request.title.clone()
                        },
                        state: job.state.as_str(),
                        created: pages::utc_datetime(
                            std::time::UNIX_EPOCH + Duration::from_millis(job.created_ms),
                        ),
                    })
                    .collect();
            }
        }
        IndexPage {
            user: user.map(str::to_owned),
            recent,
            reports: self
                .catalog
                .iter()
                .map(|d| ReportLink {
                    id: d.id.clone(),
                    name: report_name(d),
                    description: d.description.clone(),
                })
                .collect(),
        }
    }

    /// The report as its file says now: an edit applies to the next form and job at once
    /// (the job records this version's digest, which the render checks again). Read on a
    /// blocking thread; the version loaded at start-up stands in if the file cannot be read
    /// in time.
    async fn current(&self, loaded: Arc<Definition>) -> Result<Arc<Definition>, AppError> {
        let catalog = Arc::clone(&self.catalog);
        let id = loaded.id.clone();
        let ctx = crate::reports::definition::ParseContext::default();
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::task::spawn_blocking(move || catalog.reload_one(&id, &ctx)),
        )
        .await;
        match read {
            Ok(Ok(Ok(Some(def)))) if def.hash == loaded.hash => Ok(loaded),
            Ok(Ok(Ok(Some(def)))) => Ok(Arc::new(def)),
            Ok(Ok(Ok(None))) => Err(AppError::NotFound),
            Ok(Ok(Err(e))) => Err(AppError::Internal(format!("report definition: {e}"))),
            _ => Ok(loaded),
        }
    }

    fn submission(&self, def: Arc<Definition>, req: &HttpRequest) -> Result<Outcome, AppError> {
        if !req.is_urlencoded() {
            return Err(AppError::UnsupportedMediaType);
        }
        match http::parse_urlencoded(req.body) {
            Ok(fields) => Ok(Outcome::Submit(def, fields)),
            Err(_) => {
                let mut form = form_page(&def, &[], &HashMap::new());
                form.general_error =
                    Some("The form data could not be read (broken encoding).".into());
                Err(AppError::BadRequest(Box::new(form)))
            }
        }
    }

    /// The options of each choice param whose list comes from an `options_query`, run on a
    /// blocking thread (a database round trip) and reused for [`OPTIONS_TTL`]. A query that
    /// fails is logged and leaves the field a free-text one (the value is bound, never
    /// spliced, so that stays safe).
    async fn choice_options(&self, def: &Arc<Definition>) -> HashMap<String, Vec<String>> {
        let mut out = HashMap::new();
        for param in def.params.iter().filter(|p| p.kind == ParamType::Choice) {
            let Some(query) = param
                .options_query
                .clone()
                .filter(|_| param.options.is_empty())
            else {
                continue;
            };
            let key = (def.id.clone(), param.name.clone());
            let cached = {
                let map = self.options.lock().unwrap_or_else(|e| e.into_inner());
                map.get(&key)
                    .filter(|(_, at)| at.elapsed() < OPTIONS_TTL)
                    .map(|(v, _)| v.clone())
            };
            let found = match cached {
                Some(found) => found,
                None => {
                    let source = def.source.clone();
                    let limit = def.source.timeout.min(Duration::from_secs(10));
                    let ran = tokio::time::timeout(
                        limit,
                        tokio::task::spawn_blocking(move || source::options(&source, &query)),
                    )
                    .await;
                    let found = match ran {
                        Ok(Ok(Ok(options))) => Some(options),
                        Ok(Ok(Err(e))) => {
                            log::warn!("report {}: options of {}: {e}", def.id, param.name);
                            None
                        }
                        _ => {
                            log::warn!("report {}: options of {} timed out", def.id, param.name);
                            None
                        }
                    };
                    let mut map = self.options.lock().unwrap_or_else(|e| e.into_inner());
                    map.insert(key, (found.clone(), Instant::now()));
                    found
                }
            };
            if let Some(options) = found {
                out.insert(param.name.clone(), options);
            }
        }
        out
    }

    /// Validates a submission against the report as its file says now and records the job
    /// (or finds the one an idempotency key or `reuse_for` names). Recording writes and
    /// fsyncs, so it runs on a blocking thread: a slow disk must not hold up the requests
    /// sharing this runtime thread. `key`: the idempotency key and a digest of the body;
    /// `errors`: API members that are no value of the report.
    async fn submit(
        &self,
        def: Arc<Definition>,
        fields: &[(String, String)],
        key: Option<(String, String)>,
        errors: Vec<(String, String)>,
        callback: Option<String>,
        client: Option<String>,
    ) -> Result<jobs::Submitted, AppError> {
        // Bound to the user the web server authenticated, if it did (issue #11).
        let owner = client
            .as_deref()
            .and_then(|c| c.strip_prefix("user:"))
            .map(str::to_owned);
        let def = self.current(def).await?;
        let options = self.choice_options(&def).await;
        // API members that are no value are answered together with the values' own errors.
        let (request, mut form) = match (validate(&def, fields, &options), errors.is_empty()) {
            (Ok(checked), true) => checked,
            (Err(form), true) => return Err(AppError::BadRequest(form)),
            (Ok(_), false) => {
                return Err(AppError::Problem(Box::new(api::validation(errors))));
            }
            (Err(form), false) => {
                let mut problem = AppError::BadRequest(form).problem();
                problem.errors.extend(errors);
                problem.errors.sort();
                return Err(AppError::Problem(Box::new(problem)));
            }
        };
        let expected_bytes = self.expected_file_bytes(&def, &request).await;
        let runner = self.runner.clone();
        let opts = jobs::SubmitOptions {
            idempotency: key,
            reuse_for: def.reuse_for,
            callback_url: callback.or_else(|| def.callback_url.clone()),
            client,
            owner,
            retention: def.retention,
            expected_bytes,
        };
        let result = tokio::task::spawn_blocking(move || runner.submit(request, &opts))
            .await
            .map_err(|e| AppError::Internal(format!("recording a job: {e}")))?;
        let problem = |p: api::Problem| Err(AppError::Problem(Box::new(p)));
        match result {
            Ok(submitted) => Ok(submitted),
            Err(SubmitError::TooManyPages { pages, max }) => {
                form.general_error = Some(format!(
                    "That makes about {pages} pages; at most {max} pages fit in one report. Choose values that select fewer rows."
                ));
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::TooLarge { .. }) => {
                form.general_error =
                    Some("That report is too large for this server's memory budget.".into());
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::Invalid { reason }) => {
                form.general_error = Some(format!("This report cannot be made: {reason}."));
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::Busy { retry_after }) => Err(AppError::Unavailable { retry_after }),
            Err(e @ SubmitError::NoRoom { .. }) => {
                log::warn!("job refused: {e}");
                Err(AppError::NoRoom(e.to_string()))
            }
            Err(SubmitError::ClientBusy { jobs, retry_after }) => {
                log::info!("client over its cap of queued and running jobs ({jobs}): 429");
                Err(AppError::ClientBusy { jobs, retry_after })
            }
            Err(e @ SubmitError::KeyReused) => problem(
                api::Problem::new(
                    422,
                    api::kinds::IDEMPOTENCY_KEY_REUSED,
                    "The Idempotency-Key was used with another request",
                )
                .detail(e.to_string()),
            ),
            Err(e @ SubmitError::KeyInFlight) => problem(
                api::Problem::new(
                    409,
                    api::kinds::IDEMPOTENCY_KEY_IN_FLIGHT,
                    "A request with this Idempotency-Key is in progress",
                )
                .detail(e.to_string())
                .header("Retry-After", "1".into()),
            ),
            Err(SubmitError::Store(e)) => Err(AppError::Internal(format!("recording a job: {e}"))),
        }
    }

    /// A job's record: from the cache of finished ones, or read on a blocking thread (never
    /// on the request thread: a slow disk, or a FIFO someone put there, must not stall the
    /// other requests) within [`READ_LIMIT`]. A damaged record (moved to quarantine by the
    /// store) is no job: 404.
    async fn load(&self, id: JobId, user: Option<&str>) -> Result<Arc<Job>, AppError> {
        // Someone else's job is no job of theirs: the same 404 as a job that never was.
        let mine = |job: Arc<Job>| match &job.owner {
            Some(owner) if user != Some(owner.as_str()) => Err(AppError::NotFound),
            _ => Ok(job),
        };
        if let Some(job) = self.finished.get(id) {
            return mine(job);
        }
        let store = self.runner.store().clone();
        let read = tokio::time::timeout(
            READ_LIMIT,
            tokio::task::spawn_blocking(move || store.load(id)),
        )
        .await;
        let job = match read {
            Ok(Ok(Ok(Some(job)))) => Arc::new(job),
            Ok(Ok(Ok(None) | Err(jobs::StoreError::Corrupt { .. }))) => {
                return Err(AppError::NotFound);
            }
            Ok(Ok(Err(e))) => return Err(AppError::Internal(format!("job {id}: {e}"))),
            Ok(Err(e)) => return Err(AppError::Internal(format!("job {id}: reading: {e}"))),
            Err(_) => {
                log::warn!("job {id}: its record took over {READ_LIMIT:?} to read");
                return Err(AppError::Unavailable {
                    retry_after: Duration::from_secs(2),
                });
            }
        };
        if job.state.is_final() {
            self.finished.put(id, Arc::clone(&job));
        }
        mine(job)
    }

    fn live(&self, id: JobId) -> Option<(State, u32, u32)> {
        self.runner
            .progress(id)
            .map(|p| (p.state, p.pages_done, p.pages_total))
    }

    /// This process's live progress for a job that is not final yet.
    fn live_for(&self, job: &Job) -> Option<(State, u32, u32)> {
        if job.state.is_final() {
            None
        } else {
            self.live(job.id)
        }
    }

    async fn status_page(&self, id: JobId, user: Option<&str>) -> Result<Reply, AppError> {
        // A job's page is for whoever holds its URL: no shared cache keeps it.
        let html = |body: Vec<u8>| {
            Reply::html_body(200, body).with_header("Cache-Control", "private, no-store".into())
        };
        // Whose it is, first (from the cache of finished jobs when it is one).
        let job = self.load(id, user).await?;
        if let Some(body) = self.finished_pages.get(id) {
            return Ok(html(body.to_vec()));
        }
        let body = JobPage::new(&job, self.live_for(&job))
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?
            .into_bytes();
        if job.state.is_final() {
            self.finished_pages.put(id, Arc::from(body.as_slice()));
        }
        Ok(html(body))
    }

    async fn status_json(&self, id: JobId, user: Option<&str>) -> Result<Reply, AppError> {
        let job = self.load(id, user).await?;
        let body = progress_json(&job, self.live_for(&job));
        Ok(Reply {
            status: 200,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "private, no-store".into()),
            ],
            body: body.into_bytes(),
        })
    }

    async fn download(&self, id: JobId, user: Option<&str>) -> Result<Reply, AppError> {
        let job = self.load(id, user).await?;
        if job.state == State::Failed {
            return Err(AppError::Failed { id });
        }
        if job.state == State::Cancelled {
            return Err(AppError::Cancelled { id });
        }
        if job.state != State::Done {
            return Err(AppError::NotReady {
                id,
                state: job.state,
            });
        }
        let reply = Reply {
            status: 200,
            headers: vec![
                ("Content-Type", "application/pdf".into()),
                (
                    "Content-Disposition",
                    content_disposition(&job.request.title),
                ),
                // The web server sends the file itself (sendfile); in body mode the headers
                // here are sent with the bytes (`send_body`).
                match self.send_file {
                    SendFile::XSendfile => (
                        "X-Sendfile",
                        self.files_dir
                            .join(format!("{id}.pdf"))
                            .display()
                            .to_string(),
                    ),
                    _ => ("X-Accel-Redirect", url(&format!("/_files/{id}.pdf"))),
                },
                // A private document: no shared cache may keep it.
                ("Cache-Control", "private, no-store".into()),
            ],
            body: Vec::new(),
        };
        Ok(reply)
    }

    /// Server-Sent Events (issue #9's contract): `retry:`, then an event with an `id:` each
    /// time the job changes — `progress` while it waits or renders, then exactly one `done`
    /// or `failed` — and the stream ends; a comment line every heartbeat while nothing
    /// changes. A reconnect's `Last-Event-ID` that names the job's current state is not sent
    /// again. The stream also ends after [`SSE_MAX`] (the browser reconnects) or when the
    /// request is aborted. Progress comes from the job's one poller ([`watch`]), however many
    /// streams watch it; beyond the stream cap the answer is the progress once and a longer
    /// `retry:`.
    async fn events(
        &self,
        id: JobId,
        last_event_id: Option<String>,
        mut abort: Abort,
        mut response: Response,
    ) {
        let [csp, nosniff, referrer] = assets::SECURITY_HEADERS;
        let head = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "private, no-store"),
            // nginx must pass each event through at once, not buffer the response.
            ("X-Accel-Buffering", "no"),
            csp,
            nosniff,
            referrer,
        ];
        let Some(permit) = self.watchers.admit() else {
            let mut body = format!("retry: {}\n\n", watch::BUSY_RETRY_MS).into_bytes();
            if let Published::Job(s) = self.watchers.snapshot(id).await
                && last_event_id.as_deref() != Some(&*s.id)
            {
                body.extend_from_slice(&s.event);
            }
            log::debug!("job {id}: event stream over the cap; answered once with retry");
            if response.write_head(200, &head).is_ok() && response.write(&body).await.is_ok() {
                let _ = response.finish().await;
            }
            return;
        };
        if response.write_head(200, &head).is_err() {
            return;
        }
        let retry = format!("retry: {}\n\n", watch::RETRY_MS);
        if response.write(retry.as_bytes()).await.is_err() || response.flush().await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(SSE_MAX);
        tokio::pin!(deadline);
        let beat = self.watchers.heartbeat();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rx = self.watchers.subscribe(id);
        let mut last: Option<Arc<str>> = last_event_id.map(Arc::from);
        loop {
            let now = rx.borrow_and_update().clone();
            let is_final = match now {
                Published::Pending => false,
                Published::Gone => break,
                Published::Job(snapshot) => {
                    if last.as_deref() != Some(&*snapshot.id) {
                        if response.write(&snapshot.event).await.is_err()
                            || response.flush().await.is_err()
                        {
                            return;
                        }
                        heartbeat.reset();
                        last = Some(snapshot.id);
                    }
                    snapshot.is_final
                }
            };
            if is_final {
                break;
            }
            tokio::select! {
                changed = rx.changed() => {
                    // The poller is gone without a final value (it cannot read the record).
                    if changed.is_err() {
                        break;
                    }
                    // This stream's turn within the tick (see `watch::PHASES`); the first
                    // event above went out at once.
                    if !permit.phase.is_zero() {
                        tokio::time::sleep(permit.phase).await;
                    }
                }
                _ = heartbeat.tick() => {
                    if response.write(b": heartbeat\n\n").await.is_err()
                        || response.flush().await.is_err()
                    {
                        return;
                    }
                }
                () = &mut deadline => break,
                () = abort.aborted() => {
                    log::debug!("job {id}: event stream aborted by the client");
                    return;
                }
            }
        }
        let _ = response.finish().await;
    }
}

fn require(ok: bool, allow: &'static str) -> Result<(), AppError> {
    if ok {
        Ok(())
    } else {
        Err(AppError::MethodNotAllowed { allow })
    }
}

fn parse_id(raw: &str) -> Result<JobId, AppError> {
    raw.parse::<JobId>().map_err(|_| AppError::NotFound)
}

fn progress_json(job: &crate::jobs::Job, live: Option<(State, u32, u32)>) -> String {
    let (state, done, total) = live.unwrap_or((job.state, job.pages_done, job.pages_total));
    watch::progress_json(job.id, state, done, total, Some(job))
}

/// A report's name for people: its id with dashes as spaces, capitalised.
fn report_name(def: &Definition) -> String {
    let words = def.id.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// The form of `def`, showing `fields` (what the user sent; defaults where absent) and no
/// errors. `options` holds choice lists that came from an `options_query`.
pub fn form_page(
    def: &Definition,
    fields: &[(String, String)],
    options: &HashMap<String, Vec<String>>,
) -> FormPage {
    let sent = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut views: Vec<FieldView> = def
        .params
        .iter()
        .map(|p| field_view(p, sent(&p.name), options.get(&p.name)))
        .collect();
    let pick = |name: &str, label: &str, current: &str, choices: &[(&str, &str)]| FieldView {
        name: name.into(),
        label: label.into(),
        input: "select",
        value: sent(name).unwrap_or_else(|| current.to_owned()),
        required: true,
        options: choices
            .iter()
            .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
            .collect(),
        ..FieldView::default()
    };
    if def.paper_choice {
        let choices = [("a4", "A4"), ("letter", "Letter")];
        views.push(pick("paper", "Paper", def.paper.as_str(), &choices));
    }
    if def.orientation_choice {
        let choices = [("portrait", "Portrait"), ("landscape", "Landscape")];
        views.push(pick(
            "orientation",
            "Orientation",
            def.orientation.as_str(),
            &choices,
        ));
    }
    FormPage {
        name: report_name(def),
        description: def.description.clone(),
        action: url(&format!("/reports/{}", def.id)),
        fields: views,
        general_error: None,
    }
}

fn field_view(p: &ParamDef, sent: Option<String>, listed: Option<&Vec<String>>) -> FieldView {
    let (input, step) = match p.kind {
        ParamType::Text => ("text", None),
        ParamType::Integer => ("number", None),
        ParamType::Decimal => ("number", Some("any")),
        ParamType::Date => ("date", None),
        ParamType::Choice if p.options.is_empty() && listed.is_none() => ("text", None),
        ParamType::Choice => ("select", None),
    };
    let options = if p.options.is_empty() {
        listed.cloned().unwrap_or_default()
    } else {
        p.options.clone()
    };
    FieldView {
        name: p.name.clone(),
        label: p.label.clone(),
        input,
        value: sent.or_else(|| p.default.clone()).unwrap_or_default(),
        min: p.min.clone(),
        max: p.max.clone(),
        step,
        maxlength: match p.kind {
            ParamType::Text => Some(p.max_length.unwrap_or(params::DEFAULT_MAX_LENGTH)),
            _ => None,
        },
        required: p.required,
        options: options.into_iter().map(|o| (o.clone(), o)).collect(),
        error: None,
    }
}

/// Validates a submitted form against `def`. Returns the job request and the form (for the
/// errors `enqueue` can still find), or the form with the values kept and an error beside
/// each bad field.
#[allow(clippy::result_large_err)]
pub fn validate(
    def: &Definition,
    fields: &[(String, String)],
    options: &HashMap<String, Vec<String>>,
) -> Result<(jobs::Request, Box<FormPage>), Box<FormPage>> {
    let mut form = Box::new(form_page(def, fields, options));
    let lookup = |p: &ParamDef| options.get(&p.name).cloned();
    let checked = params::validate(def, &lookup, &Submitted::from_pairs(fields));
    let sent = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    };
    let mut paper = def.paper;
    if def.paper_choice {
        match sent("paper").map(str::parse::<Paper>) {
            Some(Ok(p)) => paper = p,
            _ => set_error(&mut form, "paper", "Choose A4 or Letter."),
        }
    }
    let mut orientation = def.orientation;
    if def.orientation_choice {
        match sent("orientation").map(str::parse::<Orientation>) {
            Some(Ok(o)) => orientation = o,
            _ => set_error(&mut form, "orientation", "Choose portrait or landscape."),
        }
    }
    let values = match checked {
        Ok(values) => values,
        Err(errors) => {
            for (name, message) in errors.iter() {
                set_error(&mut form, name, message);
            }
            return Err(form);
        }
    };
    if form.has_errors() {
        return Err(form);
    }
    let request = jobs::Request {
        report: def.id.clone(),
        definition_hash: def.hash.clone(),
        title: params::fill_title(def, &values),
        values: values.as_map().clone(),
        paper,
        orientation,
    };
    Ok((request, form))
}

fn set_error(form: &mut FormPage, name: &str, message: &str) {
    match form.field_mut(name) {
        Some(field) => field.error = Some(message.to_owned()),
        None => form.general_error = Some(message.to_owned()),
    }
}

/// Unicode format characters (category Cf) that change how text around them is shown or
/// hide in it: bidi embeddings, overrides, isolates and marks, zero-width characters, the
/// BOM, interlinear annotation marks, tag characters, and the soft hyphen.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// `attachment` with an ASCII `filename` fallback and the exact title in `filename*`
/// (RFC 6266 §4.3: user agents prefer `filename*`).
pub fn content_disposition(title: &str) -> String {
    let mut ascii: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.,()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let trimmed = ascii
        .trim_matches(|c: char| c == ' ' || c == '.' || c == '_')
        .to_string();
    ascii = if trimmed.is_empty() {
        "report".into()
    } else {
        trimmed
    };
    // Control and invisible formatting characters (bidi overrides among them, which can
    // make "gpj.pdf" look like "pdf.jpg") never reach the file name.
    let exact: String = title
        .chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .collect();
    let exact = if exact.trim().is_empty() {
        "report".to_owned()
    } else {
        exact
    };
    format!(
        "attachment; filename=\"{ascii}.pdf\"; filename*=UTF-8''{}",
        http::encode_rfc5987(&format!("{exact}.pdf"))
    )
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven cases spell out their types
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn ledger() -> Definition {
        let ctx = crate::reports::definition::ParseContext::default();
        crate::reports::definition::load(std::path::Path::new("reports/ledger.toml"), &ctx)
            .unwrap_or_else(|e| panic!("reports/ledger.toml: {e}"))
    }

    /// The demo report keeps today's fields and limits (issue #7): each bad value is answered
    /// beside its own field, the others keep what was typed.
    #[test]
    fn the_demo_form_checks_each_field() {
        let def = ledger();
        let ok = [
            ("title", "T"),
            ("rows", "10"),
            ("paper", "a4"),
            ("orientation", "portrait"),
        ];
        let long = "x".repeat(201);
        let cases: Vec<(&str, Vec<(&str, &str)>, Option<&str>)> = vec![
            ("valid", ok.to_vec(), None),
            (
                "rows 0",
                vec![ok[0], ("rows", "0"), ok[2], ok[3]],
                Some("rows"),
            ),
            (
                "rows 10^9",
                vec![ok[0], ("rows", "1000000000"), ok[2], ok[3]],
                Some("rows"),
            ),
            (
                "rows text",
                vec![ok[0], ("rows", "ten"), ok[2], ok[3]],
                Some("rows"),
            ),
            (
                "paper a3",
                vec![ok[0], ok[1], ("paper", "a3"), ok[3]],
                Some("paper"),
            ),
            (
                "orientation",
                vec![ok[0], ok[1], ok[2], ("orientation", "up")],
                Some("orientation"),
            ),
            (
                "empty title",
                vec![("title", "  "), ok[1], ok[2], ok[3]],
                Some("title"),
            ),
            (
                "201 chars",
                vec![("title", long.as_str()), ok[1], ok[2], ok[3]],
                Some("title"),
            ),
        ];
        for (name, input, bad) in cases {
            let fields = fields(&input);
            match (validate(&def, &fields, &HashMap::new()), bad) {
                (Ok((request, _)), None) => {
                    assert_eq!(request.report, "ledger");
                    assert_eq!(request.title, "T");
                    assert_eq!(request.values.get("rows").map(String::as_str), Some("10"));
                }
                (Err(form), Some(field)) => {
                    let flagged: Vec<&str> = form
                        .fields
                        .iter()
                        .filter(|f| f.error.is_some())
                        .map(|f| f.name.as_str())
                        .collect();
                    assert_eq!(flagged, vec![field], "{name}");
                    let rows = form.fields.iter().find(|f| f.name == "rows");
                    let sent = input.iter().find(|(n, _)| *n == "rows").map(|(_, v)| *v);
                    assert_eq!(rows.map(|f| f.value.as_str()), sent, "{name}: value kept");
                }
                (Ok(_), Some(field)) => panic!("{name}: expected an error on {field}"),
                (Err(form), None) => panic!("{name}: unexpected errors {:?}", form.fields),
            }
        }
    }

    #[test]
    fn two_hundred_unicode_chars_are_a_fine_title() {
        let title = "Ω".repeat(200);
        let input = fields(&[
            ("title", &title),
            ("rows", "5"),
            ("paper", "letter"),
            ("orientation", "landscape"),
        ]);
        let result = validate(&ledger(), &input, &HashMap::new());
        let (request, _) = result.unwrap_or_else(|f| panic!("{:?}", f.fields));
        assert_eq!(
            (request.paper, request.orientation),
            (Paper::Letter, Orientation::Landscape)
        );
    }

    #[test]
    fn generated_form_has_html_bounds() {
        let page = form_page(&ledger(), &[], &HashMap::new());
        let html = page.render().unwrap_or_default();
        assert!(
            html.contains(r#"name="rows" value="1000" min="1" max="100000""#),
            "{html}"
        );
        assert!(html.contains(r#"maxlength="200""#), "{html}");
        assert!(html.contains(r#"action="/reports/ledger""#), "{html}");
    }

    #[test]
    fn content_disposition_table() {
        assert_eq!(
            content_disposition("Q3 report"),
            "attachment; filename=\"Q3 report.pdf\"; filename*=UTF-8''Q3%20report.pdf"
        );
        let cd = content_disposition("Ελληνικά \"x\"");
        assert!(cd.starts_with("attachment; filename=\""), "{cd}");
        assert!(cd.contains("filename*=UTF-8''%CE%95"), "{cd}");
        assert!(
            !cd[..cd.find("filename*").unwrap_or(0)].contains("\"x\""),
            "quotes must not leak: {cd}"
        );
        assert!(content_disposition("////").contains("filename=\"report.pdf\""));
    }

    /// A right-to-left override would show "invoice\u{202E}fdp.exe" as "invoiceexe.pdf";
    /// format characters are dropped, and a title of nothing but them is "report".
    #[test]
    fn download_names_lose_bidi_and_invisible_characters() {
        let cd = content_disposition("invoice\u{202E}gpj.exe\u{200B}\u{2066}");
        assert!(cd.ends_with("filename*=UTF-8''invoicegpj.exe.pdf"), "{cd}");
        for empty in ["", "   ", "\u{202E}\u{200F}", "\u{FEFF}"] {
            let cd = content_disposition(empty);
            assert!(
                cd.ends_with("filename*=UTF-8''report.pdf")
                    && cd.contains("filename=\"report.pdf\""),
                "{empty:?}: {cd}"
            );
        }
    }
}
