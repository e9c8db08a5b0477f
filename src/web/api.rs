//! The JSON API for programs (issue #9), under `/api/v1/`, thin over `jobs` and `reports` like
//! the HTML pages beside it:
//!
//! - `GET /api/v1/reports`: every report with its parameter schema; `GET /api/v1/reports/<id>`
//!   one of them.
//! - `POST /api/v1/reports/<id>/jobs`: a JSON object of parameter values by name → `202`,
//!   `Location: /api/v1/jobs/<id>`, the job. `Idempotency-Key` makes a retry return the same
//!   job; a report's `reuse_for` may answer with a recent identical job.
//! - `GET /api/v1/jobs/<id>[?wait=N]`: the job; with `wait` (seconds, at most 60) the answer
//!   waits until the job changes.
//! - `DELETE /api/v1/jobs/<id>`: cancels.
//! - `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of all this.
//!
//! Every error is `application/problem+json` (RFC 9457), validation errors with a list of
//! `{name, detail}` per parameter.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{App, AppError, Reply};
use crate::jobs::{Job, JobId, State};
use crate::reports::{Definition, ParamDef, ParamType};

/// The OpenAPI document, kept by hand beside the code it describes (tests validate it).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document as served: its `servers` entry is the path the app is mounted at.
/// Made once (the base path is set before the first request).
pub fn openapi_document() -> &'static [u8] {
    static DOC: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let base = super::base();
        match serde_json::from_str::<Json>(OPENAPI) {
            Ok(mut doc) if !base.is_empty() => {
                doc["servers"] = json!([{ "url": base }]);
                doc.to_string().into_bytes()
            }
            _ => OPENAPI.as_bytes().to_vec(),
        }
    })
}

/// The largest JSON body a job request may have: parameter values are short. Below the
/// nginx sites' `client_max_body_size` (64k), so the answer over it is this API's.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// The longest `?wait=`.
pub const MAX_WAIT_SECS: u64 = 60;
/// The body member that names a webhook; no report param may use the name.
pub const CALLBACK_URL: &str = "callback_url";

/// An RFC 9457 problem: what went wrong, for programs and people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// A URI reference naming the kind of problem (`about:blank`: only the status says).
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: Option<String>,
    /// Per parameter: its name and what is wrong with its value.
    pub errors: Vec<(String, String)>,
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(status: u16, kind: &'static str, title: &'static str) -> Problem {
        Problem {
            status,
            kind,
            title,
            detail: None,
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn header(mut self, name: &'static str, value: String) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// The answer: `application/problem+json`.
    pub fn reply(self) -> Reply {
        let mut body = json!({
            "type": self.kind,
            "title": self.title,
            "status": self.status,
        });
        if let Some(detail) = &self.detail {
            body["detail"] = json!(detail);
        }
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|(name, detail)| json!({ "name": name, "detail": detail }))
                .collect();
        }
        let mut headers = vec![
            ("Content-Type", "application/problem+json".to_owned()),
            ("Cache-Control", "no-store".to_owned()),
        ];
        headers.extend(self.headers);
        Reply {
            status: self.status,
            headers,
            body: body.to_string().into_bytes(),
        }
    }
}

/// Problem types this API names (relative URI references, described in the OpenAPI
/// document).
pub mod kinds {
    pub const VALIDATION: &str = "/api/v1/problems/validation";
    pub const BAD_JSON: &str = "/api/v1/problems/bad-json";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "/api/v1/problems/idempotency-key-reused";
    pub const IDEMPOTENCY_KEY_IN_FLIGHT: &str = "/api/v1/problems/idempotency-key-in-flight";
    pub const NOT_CANCELLABLE: &str = "/api/v1/problems/not-cancellable";
    pub const BUSY: &str = "/api/v1/problems/busy";
    pub const TOO_LARGE: &str = "/api/v1/problems/too-large";
    pub const NO_ROOM: &str = "/api/v1/problems/no-room";
}

/// A problem with only a status: `about:blank` and the status's own title.
pub fn plain(status: u16) -> Problem {
    Problem::new(status, "about:blank", crate::fastcgi::reason(status))
}

/// `2026-12-07T02:17:05.123Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let c = super::pages::Civil::of(ms / 1000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms % 1000
    )
}

/// A job as the API shows it. `live`: this process's progress, newer than the record.
pub fn job_json(job: &Job, live: Option<(State, u32, u32)>) -> Json {
    let (state, done, total) = live.unwrap_or((job.state, job.pages_done, job.pages_total));
    let id = job.id;
    json!({
        "id": id.to_string(),
        "report": job.request.report,
        "title": job.request.title,
        "state": state.as_str(),
        "pages_done": done,
        "pages_total": total,
        "created_at": rfc3339_ms(job.created_ms),
        "started_at": job.started_ms.map(rfc3339_ms),
        "finished_at": job.finished_ms.map(rfc3339_ms),
        "size_bytes": job.size_bytes,
        "download_url": (state == State::Done).then(|| super::url(&format!("/jobs/{id}/download"))),
        "error": job.error,
        "status_url": super::url(&format!("/jobs/{id}")),
        "events_url": super::url(&format!("/jobs/{id}/events")),
        "values": job.request.values,
        "paper": job.request.paper.as_str(),
        "orientation": job.request.orientation.as_str(),
        "webhook": job.webhook.as_ref().map(webhook_json),
    })
}

/// A job's webhook as the API shows it: where, how it stands, every attempt kept.
fn webhook_json(hook: &crate::jobs::Webhook) -> Json {
    let pending = hook.state == crate::jobs::Delivery::Pending;
    json!({
        "url": hook.url,
        "event_id": hook.event_id,
        "state": hook.state.as_str(),
        "attempts_made": hook.attempts_made,
        "attempts": hook.attempts.iter().map(|a| json!({
            "id": a.id,
            "at": rfc3339_ms(a.at_ms),
            "status": a.status,
            "result": a.result,
        })).collect::<Vec<_>>(),
        "next_attempt_at": (pending && hook.next_at_ms > 0).then(|| rfc3339_ms(hook.next_at_ms)),
        "error": hook.error,
    })
}

/// A JSON reply with `status`.
pub fn json_reply(status: u16, body: &Json) -> Reply {
    Reply {
        status,
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            ("Cache-Control", "no-store".to_owned()),
        ],
        body: body.to_string().into_bytes(),
    }
}

fn type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Text => "text",
        ParamType::Integer => "integer",
        ParamType::Decimal => "decimal",
        ParamType::Date => "date",
        ParamType::Choice => "choice",
    }
}

fn param_json(p: &ParamDef, listed: Option<&Vec<String>>) -> Json {
    let mut out = json!({
        "name": p.name,
        "label": p.label,
        "type": type_name(p.kind),
        "required": p.required,
        "default": p.default,
    });
    if let Some(min) = &p.min {
        out["min"] = json!(min);
    }
    if let Some(max) = &p.max {
        out["max"] = json!(max);
    }
    if p.kind == ParamType::Text {
        out["max_length"] = json!(
            p.max_length
                .unwrap_or(crate::reports::params::DEFAULT_MAX_LENGTH)
        );
    }
    if p.kind == ParamType::Choice {
        let options = if p.options.is_empty() {
            listed.cloned()
        } else {
            Some(p.options.clone())
        };
        // `null`: the list comes from the database and could not be read just now.
        out["options"] = json!(options);
    }
    out
}

/// A report and its parameter schema: enough for a client to build its own form.
pub fn report_json(def: &Definition, options: &HashMap<String, Vec<String>>) -> Json {
    let mut params: Vec<Json> = def
        .params
        .iter()
        .map(|p| param_json(p, options.get(&p.name)))
        .collect();
    let mut choice = |name: &str, label: &str, default: &str, options: [&str; 2]| {
        params.push(json!({
            "name": name,
            "label": label,
            "type": "choice",
            "required": false,
            "default": default,
            "options": options,
        }));
    };
    if def.paper_choice {
        choice("paper", "Paper", def.paper.as_str(), ["a4", "letter"]);
    }
    if def.orientation_choice {
        choice(
            "orientation",
            "Orientation",
            def.orientation.as_str(),
            ["portrait", "landscape"],
        );
    }
    json!({
        "id": def.id,
        "name": super::report_name(def),
        "title": def.title,
        "description": def.description,
        "params": params,
        "reuse_for_secs": def.reuse_for.map(|d| d.as_secs()),
        "form_url": super::url(&format!("/reports/{}", def.id)),
        "jobs_url": super::url(&format!("/api/v1/reports/{}/jobs", def.id)),
    })
}

/// A job request's body as form-like pairs, for the validation the form uses, with the
/// members that cannot be values (named, for the 422 beside the values' own errors); or the
/// problem with the whole body. Members: the report's params (and `paper` / `orientation`
/// where the user may choose them; absent, the report's defaults), strings or numbers; `null`
/// counts as absent.
pub fn body_fields(def: &Definition, body: &[u8]) -> Result<BodyFields, Problem> {
    let value: Json = serde_json::from_slice(body).map_err(|e| {
        Problem::new(400, kinds::BAD_JSON, "The body is not valid JSON").detail(format!("{e}"))
    })?;
    let Json::Object(members) = &value else {
        return Err(
            Problem::new(400, kinds::BAD_JSON, "The body is not a JSON object")
                .detail("send an object whose members are the report's parameter values by name"),
        );
    };
    let known = |name: &str| {
        def.params.iter().any(|p| p.name == name)
            || (name == "paper" && def.paper_choice)
            || (name == "orientation" && def.orientation_choice)
    };
    let mut fields = Vec::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    for (name, member) in members {
        if name == CALLBACK_URL {
            // Checked by the caller, against the server's webhook settings.
            continue;
        }
        if !known(name) {
            errors.push((name.clone(), unknown_member(def)));
            continue;
        }
        match member {
            Json::Null => {}
            Json::String(s) => fields.push((name.clone(), s.clone())),
            Json::Number(n) => fields.push((name.clone(), n.to_string())),
            _ => errors.push((name.clone(), "must be a string or a number".to_owned())),
        }
    }
    let mut default = |name: &str, value: &str| {
        if !fields.iter().any(|(n, _)| n == name) {
            fields.push((name.to_owned(), value.to_owned()));
        }
    };
    if def.paper_choice {
        default("paper", def.paper.as_str());
    }
    if def.orientation_choice {
        default("orientation", def.orientation.as_str());
    }
    Ok(BodyFields {
        fields,
        body: value,
        errors,
    })
}

/// What [`body_fields`] made of a body.
#[derive(Debug)]
pub struct BodyFields {
    /// Values by name, as a form would send them.
    pub fields: Vec<(String, String)>,
    /// The body as parsed, for the idempotency digest.
    pub body: Json,
    /// Members that are no value of this report, with why.
    pub errors: Vec<(String, String)>,
}

fn unknown_member(def: &Definition) -> String {
    let mut names: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
    if def.paper_choice {
        names.push("paper");
    }
    if def.orientation_choice {
        names.push("orientation");
    }
    if names.is_empty() {
        "not a parameter of this report, which takes none".to_owned()
    } else {
        format!(
            "not a parameter of this report, which takes: {}",
            names.join(", ")
        )
    }
}

/// 422 with an error per parameter.
pub fn validation(errors: Vec<(String, String)>) -> Problem {
    let mut problem = Problem::new(
        422,
        kinds::VALIDATION,
        "The parameter values are not valid for this report",
    );
    problem.errors = errors;
    problem
}

/// The `wait` query parameter: seconds, 0 to [`MAX_WAIT_SECS`].
pub fn wait_param(raw: Option<String>) -> Result<Option<Duration>, Problem> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if n <= MAX_WAIT_SECS => Ok((n > 0).then(|| Duration::from_secs(n))),
        _ => Err(plain(400).detail(format!(
            "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
        ))),
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn idempotency_key(raw: Option<&str>) -> Result<Option<String>, Problem> {
    match raw {
        None => Ok(None),
        Some(key)
            if !key.is_empty()
                && key.len() <= 255
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Ok(Some(key.to_owned()))
        }
        Some(_) => Err(plain(400).detail(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good key)",
        )),
    }
}

impl AppError {
    /// The same error as a problem, for `/api/` addresses.
    pub fn problem(self) -> Problem {
        match self {
            AppError::NotFound => plain(404).detail("there is no such report, job or address"),
            AppError::MethodNotAllowed { allow } => plain(405)
                .detail(format!("this address takes {allow}"))
                .header("Allow", allow.into()),
            AppError::BadRequest(form) => {
                let mut errors: Vec<(String, String)> = form
                    .fields
                    .iter()
                    .filter_map(|f| f.error.clone().map(|e| (f.name.clone(), e)))
                    .collect();
                if errors.is_empty()
                    && let Some(general) = &form.general_error
                {
                    return Problem::new(422, kinds::TOO_LARGE, "The report cannot be made")
                        .detail(general.clone());
                }
                errors.sort();
                let mut problem = validation(errors);
                problem.detail = form.general_error.clone();
                problem
            }
            AppError::BadAddress(reason) => plain(400).detail(reason),
            AppError::UnsupportedMediaType => {
                plain(415).detail("send the job request as application/json")
            }
            AppError::CrossSite => plain(403).detail(
                "a browser sent this request from another site (Origin or Sec-Fetch-Site); \
                 programs send no Origin",
            ),
            AppError::NoRoom(why) => {
                Problem::new(507, kinds::NO_ROOM, "No room for the report's file").detail(why)
            }
            AppError::ClientBusy { jobs, retry_after } => plain(429)
                .detail(format!(
                    "this client has {jobs} jobs queued or running, as many as one may; try \
                     again when one is done"
                ))
                .header("Retry-After", retry_after.as_secs().max(1).to_string()),
            AppError::NotReady { state, .. } => plain(409).detail(format!("the job is {state}")),
            AppError::Failed { .. } => plain(410).detail("the job failed; it has no file"),
            AppError::Cancelled { .. } => {
                plain(410).detail("the job was cancelled; it has no file")
            }
            AppError::Unavailable { retry_after } => Problem::new(
                503,
                kinds::BUSY,
                "Too many reports are waiting; try again later",
            )
            .header("Retry-After", retry_after.as_secs().max(1).to_string()),
            AppError::Problem(problem) => *problem,
            AppError::Internal(detail) => {
                log::error!("internal error: {detail}");
                plain(500).detail("please try again later")
            }
        }
    }
}

impl App {
    /// `GET /api/v1/reports`.
    pub(super) async fn api_reports(&self) -> Reply {
        let mut reports = Vec::new();
        for def in self.catalog.iter() {
            let options = self.choice_options(def).await;
            reports.push(report_json(def, &options));
        }
        json_reply(200, &json!({ "reports": reports }))
    }

    /// `GET /api/v1/reports/<id>`.
    pub(super) async fn api_report(&self, def: std::sync::Arc<Definition>) -> Reply {
        let options = self.choice_options(&def).await;
        json_reply(200, &report_json(&def, &options))
    }

    /// `GET /api/v1/jobs/<id>`, holding the answer up to `wait` until the job changes.
    pub(super) async fn api_job(
        &self,
        id: JobId,
        wait: Option<Duration>,
        user: Option<&str>,
    ) -> Result<Reply, AppError> {
        let job = self.load(id, user).await?;
        if let Some(wait) = wait
            && !job.state.is_final()
            && let Some(_permit) = self.watchers.admit()
        {
            let mut rx = self.watchers.subscribe(id);
            // What the job was when the request came: the first snapshot published.
            let first = |p: &super::watch::Published| match p {
                super::watch::Published::Job(s) => Some(s.id.clone()),
                super::watch::Published::Pending => None,
                super::watch::Published::Gone => Some("gone".into()),
            };
            let mut seen = first(&rx.borrow_and_update());
            let waited = tokio::time::timeout(wait, async {
                loop {
                    if rx.changed().await.is_err() {
                        return;
                    }
                    let now = first(&rx.borrow_and_update());
                    match (&seen, now) {
                        (None, now) => seen = now,
                        (Some(a), Some(b)) if *a != b => return,
                        _ => {}
                    }
                }
            })
            .await;
            // Timing out is the normal end of a wait on a quiet job.
            let _ = waited;
        }
        let job = self.load(id, user).await?;
        Ok(json_reply(200, &job_json(&job, self.live_for(&job))))
    }

    /// `DELETE /api/v1/jobs/<id>` and the wait page's cancel button: the job's record after
    /// the cancel, and whether it is final already (else its render is stopping).
    pub(super) async fn cancel(
        &self,
        id: JobId,
        user: Option<&str>,
    ) -> Result<(Job, bool), AppError> {
        // Only who may see it may cancel it.
        self.load(id, user).await?;
        let runner = self.runner.clone();
        let cancelled = tokio::task::spawn_blocking(move || runner.cancel(id))
            .await
            .map_err(|e| AppError::Internal(format!("job {id}: cancel: {e}")))?;
        match cancelled {
            Ok(crate::jobs::Cancel::Now(job)) => Ok((job, true)),
            Ok(crate::jobs::Cancel::Stopping(job)) => Ok((job, false)),
            Err(crate::jobs::CancelError::NotFound) => Err(AppError::NotFound),
            Err(crate::jobs::CancelError::Final(state)) => Err(AppError::Problem(Box::new(
                Problem::new(409, kinds::NOT_CANCELLABLE, "The job has ended already").detail(
                    format!("the job is {state}; only queued or running jobs can be cancelled"),
                ),
            ))),
            Err(e @ crate::jobs::CancelError::Store(_)) => {
                Err(AppError::Internal(format!("job {id}: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_609_825_123), "2026-12-07T02:17:05.123Z");
    }

    #[test]
    fn wait_takes_zero_to_sixty_seconds() {
        assert_eq!(wait_param(None), Ok(None));
        assert_eq!(wait_param(Some("0".into())), Ok(None));
        assert_eq!(
            wait_param(Some("60".into())),
            Ok(Some(Duration::from_secs(60)))
        );
        for bad in ["61", "-1", "x", "", "1.5"] {
            let problem = wait_param(Some(bad.into())).expect_err(bad);
            assert_eq!(problem.status, 400, "{bad}");
        }
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some("a-1")), Ok(Some("a-1".into())));
        for bad in ["", "é", "a\tb", &"k".repeat(256)] {
            assert_eq!(idempotency_key(Some(bad)).expect_err(bad).status, 400);
        }
    }

    #[test]
    fn openapi_document_is_json_naming_every_path() {
        let doc: Json = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/api/v1/reports",
            "/api/v1/reports/{report}",
            "/api/v1/reports/{report}/jobs",
            "/api/v1/jobs/{job}",
            "/api/v1/openapi.json",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }

    #[test]
    fn problems_are_problem_json_with_field_errors() {
        let reply = validation(vec![("rows".into(), "too many".into())]).reply();
        assert_eq!(reply.status, 422);
        assert!(
            reply
                .headers
                .iter()
                .any(|(n, v)| *n == "Content-Type" && v == "application/problem+json")
        );
        let body: Json = serde_json::from_slice(&reply.body).expect("json");
        assert_eq!(body["status"], 422);
        assert_eq!(body["type"], kinds::VALIDATION);
        assert_eq!(body["errors"][0]["name"], "rows");
        assert_eq!(body["errors"][0]["detail"], "too many");
    }

    #[test]
    fn members_become_fields_and_bad_ones_are_named() {
        let ctx = crate::reports::definition::ParseContext::default();
        let def =
            crate::reports::definition::load(std::path::Path::new("reports/ledger.toml"), &ctx)
                .expect("ledger");
        let got = body_fields(
            &def,
            br#"{"title": "Q3", "rows": 5000, "paper": "letter", "orientation": null}"#,
        )
        .expect("fields");
        assert_eq!(
            got.fields,
            vec![
                ("paper".to_owned(), "letter".to_owned()),
                ("rows".to_owned(), "5000".to_owned()),
                ("title".to_owned(), "Q3".to_owned()),
                ("orientation".to_owned(), "portrait".to_owned()),
            ],
            "absent or null paper and orientation take the report's defaults"
        );
        assert!(got.errors.is_empty());
        let got = body_fields(&def, br#"{"rows": true, "nope": 1}"#).expect("an object");
        let names: Vec<&str> = got.errors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["nope", "rows"]);
        for (body, status) in [(&b"[1]"[..], 400), (b"{", 400), (b"\"x\"", 400)] {
            assert_eq!(body_fields(&def, body).expect_err("bad").status, status);
        }
    }
}
