//! The application behind the FastCGI layer: routes, forms, pages, errors, SSE.
//!
//! Owns the URL contract (issue #3): `GET /`, `POST /generate`, `GET /jobs/<id>`,
//! `GET /jobs/<id>/events`, `GET /jobs/<id>/status.json`, `GET /jobs/<id>/download`,
//! `GET /healthz`. Every error becomes a status and a plain page in [`AppError::reply`].
//! Nothing here waits on a render: status pages read the job record (or the runner's live
//! progress) and answer.

pub mod http;
pub mod pages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;

use crate::fastcgi::{self, Abort, Request, Response};
use crate::jobs::{Job, JobId, Params, Pending, Runner, State, SubmitError};
use crate::pdf::{Orientation, Paper};
use http::HttpRequest;
use pages::{FieldErrors, FormPage, JobPage, MessagePage};

/// The longest a single Server-Sent Events response stays open; the browser reconnects.
const SSE_MAX: Duration = Duration::from_secs(300);
const SSE_TICK: Duration = Duration::from_millis(500);

/// The app: one per process, shared by every request.
pub struct App {
    runner: Runner,
    max_rows: u32,
    /// Records of finished jobs, which do not change: a status page of a done job is the page
    /// users reload most, and this spares it a file read and a JSON parse...
    finished: TtlCache<Arc<Job>>,
    /// ...and this, rendering its HTML again.
    finished_pages: TtlCache<Arc<[u8]>>,
}

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

impl App {
    pub fn new(runner: Runner, max_rows: u32) -> App {
        App {
            runner,
            max_rows,
            finished: TtlCache::new(),
            finished_pages: TtlCache::new(),
        }
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
    UnsupportedMediaType,
    NotReady {
        id: JobId,
        state: State,
    },
    /// The download of a job whose render failed.
    Failed {
        id: JobId,
    },
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
                Some("/".into()),
                "Make a new report",
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
            AppError::UnsupportedMediaType => msg(
                415,
                "Unsupported form encoding",
                "Send the form as application/x-www-form-urlencoded.",
                Some("/".into()),
                "Back to the form",
            ),
            AppError::NotReady { id, state } => msg(
                409,
                "Not ready yet",
                &format!(
                    "This report is {}; the download starts working when it is done.",
                    state.as_str()
                ),
                Some(format!("/jobs/{id}")),
                "See its progress",
            ),
            AppError::Failed { id } => msg(
                410,
                "No file to download",
                "This report could not be made, so there is no file. Its page says why.",
                Some(format!("/jobs/{id}")),
                "See what happened",
            ),
            AppError::Unavailable { retry_after } => msg(
                503,
                "Busy",
                "Too many reports are waiting right now. Please try again in a moment.",
                Some("/".into()),
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

/// What a route decided; the handler writes it.
enum Outcome {
    Reply(Reply),
    /// Valid parameters: record the job, answer 303, finish the request, then start its
    /// render. The form comes along for the errors `enqueue` can still find.
    Enqueue(Params, Box<FormPage>),
    Events(JobId),
}

impl fastcgi::Handler for App {
    async fn handle(&self, request: Request, response: Response) {
        let http = HttpRequest::from_fastcgi(&request);
        let outcome = self
            .route(&http)
            .unwrap_or_else(|e| Outcome::Reply(e.reply()));
        match outcome {
            Outcome::Reply(reply) => {
                let _ = send(reply, response).await;
            }
            Outcome::Enqueue(params, form) => {
                let pending = match self.enqueue(params, form).await {
                    Ok(pending) => pending,
                    Err(e) => {
                        let _ = send(e.reply(), response).await;
                        return;
                    }
                };
                let id = pending.id();
                log::info!("job {id}: queued");
                match send(Reply::see_other(format!("/jobs/{id}")), response).await {
                    Ok(()) => log::info!("job {id}: answered 303, request finished"),
                    // The client or nginx went away: the job is recorded and renders anyway.
                    Err(e) => {
                        log::info!("job {id}: response not delivered ({e}); rendering anyway")
                    }
                }
                self.runner.start(pending);
            }
            Outcome::Events(id) => self.events(id, request.abort(), response).await,
        }
    }
}

async fn send(reply: Reply, mut response: Response) -> Result<(), fastcgi::Error> {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    response.write_head(reply.status, &headers)?;
    response.write(&reply.body).await?;
    response.finish().await
}

impl App {
    fn route(&self, req: &HttpRequest) -> Result<Outcome, AppError> {
        let get = req.is("GET") || req.is("HEAD");
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [""] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Reply(Reply::html(
                    200,
                    &FormPage::blank(self.max_rows),
                )))
            }
            ["generate"] => {
                require(req.is("POST"), "POST")?;
                self.generate(req)
            }
            ["healthz"] => {
                require(get, "GET, HEAD")?;
                Ok(Outcome::Reply(
                    Reply::text(200, "ok\n").with_header("Cache-Control", "no-store".into()),
                ))
            }
            ["jobs", id] => {
                require(get, "GET, HEAD")?;
                self.status_page(parse_id(id)?)
            }
            ["jobs", id, "status.json"] => {
                require(get, "GET, HEAD")?;
                self.status_json(parse_id(id)?)
            }
            ["jobs", id, "events"] => {
                require(get, "GET")?;
                let id = parse_id(id)?;
                self.load(id)?;
                Ok(Outcome::Events(id))
            }
            ["jobs", id, "download"] => {
                require(get, "GET, HEAD")?;
                self.download(parse_id(id)?)
            }
            _ => Err(AppError::NotFound),
        }
    }

    fn generate(&self, req: &HttpRequest) -> Result<Outcome, AppError> {
        if !req.is_urlencoded() {
            return Err(AppError::UnsupportedMediaType);
        }
        let fields = http::parse_urlencoded(req.body).map_err(|_| {
            let mut form = FormPage::blank(self.max_rows);
            form.general_error = Some("The form data could not be read (broken encoding).".into());
            AppError::BadRequest(Box::new(form))
        })?;
        let (params, form) = validate(&fields, self.max_rows);
        let Some(params) = params else {
            return Err(AppError::BadRequest(Box::new(form)));
        };
        Ok(Outcome::Enqueue(params, Box::new(form)))
    }

    /// Records the job. `enqueue` writes and fsyncs the record, so it runs on a blocking
    /// thread: a slow disk must not hold up the requests sharing this runtime thread.
    async fn enqueue(&self, params: Params, mut form: Box<FormPage>) -> Result<Pending, AppError> {
        let runner = self.runner.clone();
        let result = tokio::task::spawn_blocking(move || runner.enqueue(params))
            .await
            .map_err(|e| AppError::Internal(format!("recording a job: {e}")))?;
        match result {
            Ok(pending) => Ok(pending),
            Err(SubmitError::TooManyPages { pages, max }) => {
                form.errors.rows = Some(format!(
                    "That makes {pages} pages; at most {max} pages fit in one report. Use fewer rows."
                ));
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::TooLarge { .. }) => {
                form.errors.rows = Some(
                    "That report is too large for this server's memory budget. Use fewer rows."
                        .into(),
                );
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::Invalid { reason }) => {
                form.general_error = Some(format!("This report cannot be made: {reason}."));
                Err(AppError::BadRequest(form))
            }
            Err(SubmitError::Busy { retry_after }) => Err(AppError::Unavailable { retry_after }),
            Err(SubmitError::Store(e)) => Err(AppError::Internal(format!("recording a job: {e}"))),
        }
    }

    fn load(&self, id: JobId) -> Result<Arc<Job>, AppError> {
        if let Some(job) = self.finished.get(id) {
            return Ok(job);
        }
        let job = match self.runner.store().load(id) {
            Ok(Some(job)) => Arc::new(job),
            Ok(None) => return Err(AppError::NotFound),
            Err(e) => return Err(AppError::Internal(format!("job {id}: {e}"))),
        };
        if job.state.is_final() {
            self.finished.put(id, Arc::clone(&job));
        }
        Ok(job)
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

    fn status_page(&self, id: JobId) -> Result<Outcome, AppError> {
        let html = |body: Vec<u8>| {
            Reply::html_body(200, body).with_header("Cache-Control", "no-store".into())
        };
        if let Some(body) = self.finished_pages.get(id) {
            return Ok(Outcome::Reply(html(body.to_vec())));
        }
        let job = self.load(id)?;
        let body = JobPage::new(&job, self.live_for(&job))
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?
            .into_bytes();
        if job.state.is_final() {
            self.finished_pages.put(id, Arc::from(body.as_slice()));
        }
        Ok(Outcome::Reply(html(body)))
    }

    fn status_json(&self, id: JobId) -> Result<Outcome, AppError> {
        let job = self.load(id)?;
        let body = progress_json(&job, self.live_for(&job));
        Ok(Outcome::Reply(Reply {
            status: 200,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "no-store".into()),
            ],
            body: body.into_bytes(),
        }))
    }

    fn download(&self, id: JobId) -> Result<Outcome, AppError> {
        let job = self.load(id)?;
        if job.state == State::Failed {
            return Err(AppError::Failed { id });
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
                    content_disposition(&job.params.title),
                ),
                // nginx serves the file itself from the internal location (sendfile).
                ("X-Accel-Redirect", format!("/_files/{id}.pdf")),
            ],
            body: Vec::new(),
        };
        Ok(Outcome::Reply(reply))
    }

    /// Server-Sent Events: a `progress` event when the job changes, until it is final, the
    /// request is aborted, or [`SSE_MAX`] passes.
    async fn events(&self, id: JobId, mut abort: Abort, mut response: Response) {
        let head = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-store"),
            // nginx must pass each event through at once, not buffer the response.
            ("X-Accel-Buffering", "no"),
        ];
        if response.write_head(200, &head).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + SSE_MAX;
        let mut last = String::new();
        // The record is read at the start, then again only when this process has no live
        // progress for the job (another worker renders it) or the job has just ended.
        let mut record: Option<Arc<Job>> = None;
        loop {
            let live = self.live(id);
            if record.is_none() || live.is_none_or(|(state, _, _)| state.is_final()) {
                match self.load(id) {
                    Ok(job) => record = Some(job),
                    Err(_) => break,
                }
            }
            let Some(job) = record.as_deref() else { break };
            let json = progress_json(job, live.filter(|_| !job.state.is_final()));
            if json != last {
                let event = format!("event: progress\ndata: {json}\n\n");
                if response.write(event.as_bytes()).await.is_err()
                    || response.flush().await.is_err()
                {
                    return;
                }
                last = json;
            }
            if job.state.is_final() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(SSE_TICK) => {}
                _ = abort.aborted() => {
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
    serde_json::json!({
        "id": job.id.to_string(),
        "state": state.as_str(),
        "pages_done": done,
        "pages_total": total,
        "size_bytes": job.size_bytes,
        "render_ms": job.render_ms,
        "error": job.error,
    })
    .to_string()
}

/// Validates the form. Returns the params when every field is valid, and the form to show
/// again (with the user's values kept and an error beside each bad field) either way.
pub fn validate(fields: &[(String, String)], max_rows: u32) -> (Option<Params>, FormPage) {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut form = FormPage {
        title: field("title").to_string(),
        rows: field("rows").to_string(),
        paper: field("paper").to_string(),
        orientation: field("orientation").to_string(),
        max_rows,
        errors: FieldErrors::default(),
        general_error: None,
    };
    let title = form.title.trim().to_string();
    let chars = title.chars().count();
    if chars == 0 {
        form.errors.title = Some("Enter a title.".into());
    } else if chars > 200 {
        form.errors.title = Some(format!(
            "The title has {chars} characters; at most 200 are allowed."
        ));
    } else if title.chars().any(char::is_control) {
        form.errors.title = Some("The title cannot contain control characters.".into());
    }
    let rows = match form.rows.trim().parse::<u64>() {
        Ok(n) if n >= 1 && n <= u64::from(max_rows) => Some(n as u32),
        Ok(_) => {
            form.errors.rows = Some(format!("Enter a number of rows from 1 to {max_rows}."));
            None
        }
        Err(_) => {
            form.errors.rows = Some(format!(
                "Enter a whole number of rows from 1 to {max_rows}."
            ));
            None
        }
    };
    let paper = form.paper.parse::<Paper>().ok();
    if paper.is_none() {
        form.errors.paper = Some("Choose A4 or Letter.".into());
    }
    let orientation = form.orientation.parse::<Orientation>().ok();
    if orientation.is_none() {
        form.errors.orientation = Some("Choose portrait or landscape.".into());
    }
    match (rows, paper, orientation) {
        (Some(rows), Some(paper), Some(orientation)) if form.errors.is_empty() => (
            Some(Params {
                title,
                rows,
                paper,
                orientation,
            }),
            form,
        ),
        _ => (None, form),
    }
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
    let exact: String = title.chars().filter(|c| !c.is_control()).collect();
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

    #[test]
    fn validate_table() {
        let long = "x".repeat(201);
        let ok = [
            ("title", "T"),
            ("rows", "10"),
            ("paper", "a4"),
            ("orientation", "portrait"),
        ];
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
            ("missing all", vec![], Some("title")),
        ];
        for (name, input, bad) in cases {
            let (params, form) = validate(&fields(&input), 100_000);
            let errs = &form.errors;
            let flagged = [
                ("title", errs.title.is_some()),
                ("rows", errs.rows.is_some()),
                ("paper", errs.paper.is_some()),
                ("orientation", errs.orientation.is_some()),
            ];
            match bad {
                None => assert!(
                    params.is_some() && errs.is_empty(),
                    "{name}: expected valid, got {errs:?}"
                ),
                Some(field) => {
                    assert!(params.is_none(), "{name}: expected rejection");
                    assert!(
                        flagged.iter().any(|(f, on)| *f == field && *on),
                        "{name}: expected an error on {field}, got {errs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn two_hundred_unicode_chars_are_fine() {
        let title = "Ω".repeat(200);
        let input = fields(&[
            ("title", &title),
            ("rows", "5"),
            ("paper", "letter"),
            ("orientation", "landscape"),
        ]);
        let (params, form) = validate(&input, 100);
        assert!(params.is_some(), "{:?}", form.errors);
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
}
