//! The job record: what was asked for (`Request`), where it stands (`State`), and what
//! happened (`Job`). Plain data plus the checks a record must pass when it is read back from
//! disk.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::JobId;
use crate::pdf::{Orientation, Paper};

/// Longest title, in characters, that a job may carry (the filled-in report title).
pub const MAX_TITLE_CHARS: usize = 1_000;

/// Longest error message, in characters, that a record may carry.
pub const MAX_ERROR_CHARS: usize = 2_000;

/// Most parameter values a request may carry, and the longest each may be.
const MAX_VALUES: usize = 200;
const MAX_VALUE_CHARS: usize = 10_000;

/// What the user asked for: a report, the version of its definition the values were checked
/// against, and the values. The render checks the definition again before it starts, so a job
/// whose report changed or vanished fails with a sentence instead of rendering something else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The report id (`[a-z0-9-]+`).
    pub report: String,
    /// Digest of the definition file the values were checked against.
    pub definition_hash: String,
    /// The report's title with the values filled in: page heading and download name.
    pub title: String,
    /// Parameter name → canonical value (`""` = empty).
    pub values: BTreeMap<String, String>,
    pub paper: Paper,
    pub orientation: Orientation,
}

impl Request {
    /// Checks the limits every job must respect, whether it came from a form or from disk.
    ///
    /// # Errors
    /// A sentence a user can read, saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.report.is_empty()
            && self.report.len() <= 100
            && self
                .report
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!("{:?} is not a report id", self.report));
        }
        let chars = self.title.chars().count();
        if chars > MAX_TITLE_CHARS {
            return Err(format!(
                "the title is {chars} characters long; at most {MAX_TITLE_CHARS} are allowed"
            ));
        }
        if self.values.len() > MAX_VALUES {
            return Err(format!(
                "{} parameter values; at most {MAX_VALUES}",
                self.values.len()
            ));
        }
        if let Some((name, _)) = self
            .values
            .iter()
            .find(|(n, v)| n.len() > 100 || v.chars().count() > MAX_VALUE_CHARS)
        {
            return Err(format!("the value of {name:?} is too long"));
        }
        Ok(())
    }
}

/// Where a job stands. `Done`, `Failed` and `Cancelled` are final: nothing changes a final job
/// but expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    /// Someone cancelled it before it was done; no PDF.
    Cancelled,
}

impl State {
    /// The lowercase name, as stored and as shown to users and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// True for `Done`, `Failed` and `Cancelled`.
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job's durable record, stored as `<data>/jobs/<id>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub request: Request,
    pub state: State,
    /// Unix epoch milliseconds.
    pub created_ms: u64,
    /// When the latest render started.
    pub started_ms: Option<u64>,
    /// When the job became final.
    pub finished_ms: Option<u64>,
    pub pages_done: u32,
    pub pages_total: u32,
    /// Size of the finished PDF.
    pub size_bytes: Option<u64>,
    /// How long the successful render took, publishing included.
    pub render_ms: Option<u64>,
    /// A message a user can read when `Failed`.
    pub error: Option<String>,
    /// How many times a render of this job was started (and did not end in a clean shutdown).
    pub attempts: u32,
    /// Renders of this job that died with their worker while it was the only render in that
    /// process: deaths that point at this job. `RunnerConfig::max_attempts` of them fail it.
    #[serde(default)]
    pub crashes: u32,
    /// Renders of this job that died with their worker while other renders ran beside it:
    /// any of them may have been the cause. Not held against the job, but bounded
    /// (`MAX_BYSTANDER_CRASHES`), and after one the job only runs alone.
    #[serde(default)]
    pub bystander_crashes: u32,
    /// The latest render runs (or ran) with no other render in its process, so a death during
    /// it is this job's doing.
    #[serde(default)]
    pub alone: bool,
    /// Digest of the `Idempotency-Key` the job was created under (see `Store::bind_key`), so
    /// that the key goes when the job expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Digest of what was asked for, when the report reuses identical jobs (`reuse_for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Where to tell the end of the job, and how that went (issue #9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// Who asked for it (`user:<name>` when the web server authenticated them, else
    /// `addr:<address>`), for the per-client cap (issue #11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The user the web server authenticated when the job was made: only they may see it.
    /// `None`: whoever has its URL may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Kept this long after it ends when its report says less than the server's retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    /// What its PDF is expected to take on disk, when that was known at admission (from
    /// the report's row count); the disk budget counts it until the file exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bytes: Option<u64>,
}

/// A job's webhook: the event for its end, delivered at least once, and every attempt. It
/// lives in the record, so a worker that dies before or during a delivery leaves it to the
/// next one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Where the event is POSTed (checked against `--webhook-allow` when the job was made).
    pub url: String,
    /// The event's `id`, the same in every attempt, for the receiver's dedup.
    pub event_id: String,
    pub state: Delivery,
    /// Attempts made so far (the list keeps the latest [`MAX_ATTEMPTS_KEPT`]).
    pub attempts_made: u32,
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due (epoch ms); 0 = as soon as the job has ended.
    pub next_at_ms: u64,
    /// Why it was given up, when `Failed`.
    #[serde(default)]
    pub error: Option<String>,
}

/// Where a webhook stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Waiting for the job to end, or for its next attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: refused destination, an answer that says do not retry, or out of time.
    Failed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
        }
    }
}

/// One attempt to deliver a webhook. Recorded before the request is sent, so an attempt that
/// dies with its worker is still visible (`result` stays `None` until it ends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// Sent as `Pdfworker-Delivery`: no two attempts share it.
    pub id: String,
    pub at_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// What happened, for people: "HTTP 500", "connection refused", "timed out after 10 s".
    pub result: Option<String>,
}

/// Attempts a record keeps; older ones are only counted (`Webhook::attempts_made`).
pub const MAX_ATTEMPTS_KEPT: usize = 20;

impl Webhook {
    /// A webhook to `url`, pending, with a fresh event id.
    pub fn new(url: String) -> Webhook {
        Webhook {
            url,
            event_id: JobId::new().to_string(),
            state: Delivery::Pending,
            attempts_made: 0,
            attempts: Vec::new(),
            next_at_ms: 0,
            error: None,
        }
    }
}

/// Deaths of its worker a job may witness beside other renders before it is given up anyway:
/// whatever the cause, a job must not be retried forever.
pub const MAX_BYSTANDER_CRASHES: u32 = 10;

/// What the janitor concluded from a render that died with its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Death {
    /// It ran alone: counted against the job.
    Blamed,
    /// Other renders ran beside it: given back, and the job runs alone next time.
    Bystander,
}

impl Job {
    /// A new queued job, created now.
    pub fn new(request: Request, pages_total: u32) -> Job {
        Job {
            id: JobId::new(),
            request,
            state: State::Queued,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            pages_done: 0,
            pages_total,
            size_bytes: None,
            render_ms: None,
            error: None,
            attempts: 0,
            crashes: 0,
            bystander_crashes: 0,
            alone: false,
            idempotency_key: None,
            dedup_key: None,
            webhook: None,
            client: None,
            owner: None,
            retention_ms: None,
            expected_bytes: None,
        }
    }

    /// True once a render of this job died with its worker: its renders then run alone, so
    /// the next death (if any) says whether it is the cause.
    pub fn is_suspect(&self) -> bool {
        self.crashes > 0 || self.bystander_crashes > 0
    }

    /// Checks a record read back from disk the way we would check user input.
    ///
    /// # Errors
    /// Why the record cannot be one we wrote.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.request.validate()?;
        if let Some(error) = &self.error {
            let chars = error.chars().count();
            if chars > MAX_ERROR_CHARS {
                return Err(format!("error message of {chars} characters"));
            }
        }
        if self.state.is_final() && self.finished_ms.is_none() {
            return Err(format!("state {} without finished_ms", self.state));
        }
        if self.state == State::Done && self.size_bytes.is_none() {
            return Err("state done without size_bytes".to_owned());
        }
        if self.client.as_ref().is_some_and(|c| c.len() > 400)
            || self.owner.as_ref().is_some_and(|o| o.len() > 400)
        {
            return Err("client name over its limit".to_owned());
        }
        if let Some(hook) = &self.webhook
            && (hook.url.len() > 2048 || hook.attempts.len() > MAX_ATTEMPTS_KEPT)
        {
            return Err("webhook over its limits".to_owned());
        }
        // They name files (`Store::remove`), so only digests pass.
        for key in [&self.idempotency_key, &self.dedup_key]
            .into_iter()
            .flatten()
        {
            if !is_digest(key) {
                return Err(format!("{key:?} is not a key digest"));
            }
        }
        Ok(())
    }

    /// Starts a render attempt now: running, counted, and cleared of whatever an earlier
    /// attempt left behind. `pages_total` is the estimate (0 = unknown).
    ///
    /// The attempt is counted before the render runs so that a worker that dies on this job is
    /// noticed (`RunnerConfig::max_attempts`). `alone`: no other render can run in this
    /// process while this one does.
    pub(crate) fn begin_attempt(&mut self, pages_total: u32, alone: bool) {
        self.state = State::Running;
        self.attempts = self.attempts.saturating_add(1);
        self.alone = alone;
        self.started_ms = Some(now_ms());
        self.finished_ms = None;
        self.pages_done = 0;
        self.pages_total = pages_total;
        self.size_bytes = None;
        self.render_ms = None;
        self.error = None;
    }

    /// Marks the job done now: its PDF of `pages` pages and `size` bytes is published, and the
    /// render took `render_ms`.
    pub(crate) fn complete(&mut self, pages: u32, size: u64, render_ms: u64) {
        self.state = State::Done;
        self.finished_ms = Some(now_ms());
        self.pages_done = pages;
        self.pages_total = pages;
        self.size_bytes = Some(size);
        self.render_ms = Some(render_ms);
        self.error = None;
    }

    /// Puts a job whose render was stopped by a shutdown back in the queue and gives the
    /// attempt back: a clean stop is not a crash, or a few deploys during one long render
    /// would fail it as "failed repeatedly".
    pub(crate) fn requeue_after_shutdown(&mut self) {
        self.state = State::Queued;
        self.attempts = self.attempts.saturating_sub(1);
        self.started_ms = None;
        self.pages_done = 0;
    }

    /// Settles a render that died with its worker (the record says running, nobody holds the
    /// claim): blamed if it ran alone, a bystander otherwise. The job goes back to the queue;
    /// the caller fails it if a limit is reached.
    pub(crate) fn settle_death(&mut self) -> Death {
        let death = if self.alone {
            self.crashes = self.crashes.saturating_add(1);
            Death::Blamed
        } else {
            self.bystander_crashes = self.bystander_crashes.saturating_add(1);
            Death::Bystander
        };
        self.state = State::Queued;
        self.started_ms = None;
        self.pages_done = 0;
        death
    }

    /// Marks the job cancelled now: whatever it had drawn is thrown away.
    pub(crate) fn cancel(&mut self) {
        self.state = State::Cancelled;
        self.finished_ms = Some(now_ms());
        self.error = None;
        self.size_bytes = None;
    }

    /// Marks the job failed now with `message`, cut to what a record may hold.
    pub(crate) fn fail(&mut self, message: &str) {
        self.state = State::Failed;
        self.finished_ms = Some(now_ms());
        self.error = Some(message.chars().take(MAX_ERROR_CHARS).collect());
    }
}

/// 64 lowercase hex digits: a SHA-256 digest as the store names key files.
pub(crate) fn is_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970 (a broken clock must not
/// take the runner down).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request for the "ledger" report with `rows` rows, A4 portrait.
    pub(crate) fn request(title: &str, rows: u32) -> Request {
        Request {
            report: "ledger".to_owned(),
            definition_hash: "test".to_owned(),
            title: title.to_owned(),
            values: BTreeMap::from([
                ("title".to_owned(), title.to_owned()),
                ("rows".to_owned(), rows.to_string()),
            ]),
            paper: Paper::A4,
            orientation: Orientation::Portrait,
        }
    }

    #[test]
    fn state_names_and_finality() {
        let cases = [
            (State::Queued, "queued", false),
            (State::Running, "running", false),
            (State::Done, "done", true),
            (State::Failed, "failed", true),
            (State::Cancelled, "cancelled", true),
        ];
        for (state, name, is_final) in cases {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.is_final(), is_final, "{name}");
            assert_eq!(
                serde_json::to_string(&state).expect("serialize"),
                format!("\"{name}\"")
            );
            let back: State = serde_json::from_str(&format!("\"{name}\"")).expect("deserialize");
            assert_eq!(back, state);
        }
    }

    #[test]
    fn job_round_trips_through_json() {
        let mut job = Job::new(
            Request {
                report: "sales-2024".into(),
                definition_hash: "ab12".into(),
                title: "Ünïcode ✓".into(),
                values: BTreeMap::from([
                    ("region".to_owned(), "Süd".to_owned()),
                    ("empty".to_owned(), String::new()),
                ]),
                paper: Paper::Letter,
                orientation: Orientation::Landscape,
            },
            3,
        );
        job.fail("boom");
        let json = serde_json::to_string(&job).expect("serialize");
        let back: Job = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, job);
        assert!(
            json.contains("\"letter\"") && json.contains("\"landscape\""),
            "{json}"
        );
    }

    #[test]
    fn validate_table() {
        let ok = Job::new(request("t", 1), 1);
        let with_request = |change: &dyn Fn(&mut Request)| {
            let mut job = ok.clone();
            change(&mut job.request);
            job
        };
        let cases: Vec<(&str, Job, bool)> = vec![
            ("fresh job", ok.clone(), true),
            ("unknown page count", Job::new(request("t", 1), 0), true),
            (
                "title at limit",
                Job {
                    request: request(&"é".repeat(MAX_TITLE_CHARS), 1),
                    ..ok.clone()
                },
                true,
            ),
            (
                "title over limit",
                Job {
                    request: request(&"a".repeat(MAX_TITLE_CHARS + 1), 1),
                    ..ok.clone()
                },
                false,
            ),
            (
                "report id that is a path",
                with_request(&|r| r.report = "../x".into()),
                false,
            ),
            (
                "empty report id",
                with_request(&|r| r.report = String::new()),
                false,
            ),
            (
                "upper-case report id",
                with_request(&|r| r.report = "Ledger".into()),
                false,
            ),
            (
                "value at limit",
                with_request(&|r| {
                    r.values.insert("note".into(), "ü".repeat(MAX_VALUE_CHARS));
                }),
                true,
            ),
            (
                "value over limit",
                with_request(&|r| {
                    r.values
                        .insert("note".into(), "u".repeat(MAX_VALUE_CHARS + 1));
                }),
                false,
            ),
            (
                "too many values",
                with_request(&|r| {
                    r.values = (0..=MAX_VALUES)
                        .map(|i| (format!("p{i}"), String::new()))
                        .collect();
                }),
                false,
            ),
            (
                "huge error",
                Job {
                    error: Some("x".repeat(MAX_ERROR_CHARS + 1)),
                    ..ok.clone()
                },
                false,
            ),
            (
                "done without finish",
                Job {
                    state: State::Done,
                    size_bytes: Some(1),
                    ..ok.clone()
                },
                false,
            ),
            (
                "done without size",
                Job {
                    state: State::Done,
                    finished_ms: Some(1),
                    ..ok.clone()
                },
                false,
            ),
            (
                "done",
                Job {
                    state: State::Done,
                    finished_ms: Some(1),
                    size_bytes: Some(1),
                    ..ok.clone()
                },
                true,
            ),
            (
                "failed without finish",
                Job {
                    state: State::Failed,
                    ..ok.clone()
                },
                false,
            ),
        ];
        for (name, job, valid) in cases {
            assert_eq!(
                job.validate().is_ok(),
                valid,
                "{name}: {:?}",
                job.validate()
            );
        }
    }

    #[test]
    fn records_with_a_missing_or_malformed_request_do_not_deserialize() {
        let good = serde_json::to_value(Job::new(request("t", 1), 1)).expect("to value");
        serde_json::from_value::<Job>(good.clone()).expect("the good record parses");
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "no request",
                Box::new(|v| {
                    v.as_object_mut().expect("object").remove("request");
                }),
            ),
            (
                "the old params instead",
                Box::new(|v| {
                    let object = v.as_object_mut().expect("object");
                    object.remove("request");
                    object.insert(
                        "params".into(),
                        serde_json::json!({"title": "t", "rows": 1, "paper": "a4",
                                           "orientation": "portrait"}),
                    );
                }),
            ),
            (
                "no report",
                Box::new(|v| {
                    v["request"]
                        .as_object_mut()
                        .expect("object")
                        .remove("report");
                }),
            ),
            (
                "a value that is not a string",
                Box::new(|v| v["request"]["values"]["rows"] = serde_json::json!(7)),
            ),
            (
                "values that are a list",
                Box::new(|v| v["request"]["values"] = serde_json::json!(["rows", "7"])),
            ),
            (
                "unknown paper",
                Box::new(|v| v["request"]["paper"] = serde_json::json!("a0")),
            ),
        ];
        for (name, change) in cases {
            let mut value = good.clone();
            change(&mut value);
            assert!(
                serde_json::from_value::<Job>(value.clone()).is_err(),
                "{name}: parsed {value}"
            );
        }
    }

    #[test]
    fn begin_attempt_counts_it_and_clears_the_last_one() {
        let mut job = Job::new(request("t", 1), 5);
        job.begin_attempt(5, false);
        assert_eq!((job.state, job.attempts), (State::Running, 1));
        assert!(job.started_ms.is_some());
        // What a crashed attempt leaves behind must not leak into the next one.
        job.pages_done = 3;
        job.begin_attempt(0, false);
        assert_eq!(
            (job.state, job.attempts, job.pages_done, job.pages_total),
            (State::Running, 2, 0, 0)
        );
        assert_eq!(
            (
                job.finished_ms,
                job.size_bytes,
                job.render_ms,
                job.error.as_deref()
            ),
            (None, None, None, None)
        );
        assert!(job.validate().is_ok(), "{:?}", job.validate());
    }

    #[test]
    fn complete_records_the_published_pdf() {
        let mut job = Job::new(request("t", 1), 0);
        job.begin_attempt(0, false);
        job.complete(7, 1234, 56);
        assert_eq!(job.state, State::Done);
        assert_eq!((job.pages_done, job.pages_total), (7, 7), "the real count");
        assert_eq!((job.size_bytes, job.render_ms), (Some(1234), Some(56)));
        assert!(job.finished_ms.is_some() && job.error.is_none());
        assert_eq!(job.attempts, 1);
        assert!(job.validate().is_ok(), "{:?}", job.validate());
    }

    #[test]
    fn requeue_after_shutdown_gives_the_attempt_back() {
        let mut job = Job::new(request("t", 1), 4);
        job.begin_attempt(4, false);
        job.begin_attempt(4, false);
        job.pages_done = 2;
        job.requeue_after_shutdown();
        assert_eq!(
            (job.state, job.attempts, job.started_ms, job.pages_done),
            (State::Queued, 1, None, 0)
        );
        assert!(job.validate().is_ok(), "{:?}", job.validate());

        let mut fresh = Job::new(request("t", 1), 4);
        fresh.requeue_after_shutdown();
        assert_eq!(fresh.attempts, 0, "never below zero");
    }

    #[test]
    fn a_death_is_blamed_only_on_a_job_that_ran_alone() {
        let mut job = Job::new(request("t", 1), 4);
        assert!(!job.is_suspect());
        job.begin_attempt(4, false);
        job.pages_done = 2;
        assert_eq!(job.settle_death(), Death::Bystander);
        assert_eq!(
            (
                job.state,
                job.crashes,
                job.bystander_crashes,
                job.pages_done
            ),
            (State::Queued, 0, 1, 0)
        );
        assert!(job.is_suspect(), "runs alone from now on");
        job.begin_attempt(4, true);
        assert_eq!(job.settle_death(), Death::Blamed);
        assert_eq!(
            (job.crashes, job.bystander_crashes, job.attempts),
            (1, 1, 2)
        );
        assert!(job.validate().is_ok(), "{:?}", job.validate());
    }

    #[test]
    fn records_written_before_the_blame_fields_still_load() {
        let mut value = serde_json::to_value(Job::new(request("t", 1), 1)).expect("value");
        let object = value.as_object_mut().expect("object");
        for key in ["crashes", "bystander_crashes", "alone"] {
            object.remove(key);
        }
        let job: Job = serde_json::from_value(value).expect("old record parses");
        assert_eq!(
            (job.crashes, job.bystander_crashes, job.alone),
            (0, 0, false)
        );
    }

    #[test]
    fn fail_truncates_long_messages() {
        let mut job = Job::new(request("t", 1), 1);
        job.begin_attempt(1, false);
        job.fail(&"y".repeat(MAX_ERROR_CHARS * 2));
        assert_eq!(job.state, State::Failed);
        assert_eq!(job.error.as_deref().map(str::len), Some(MAX_ERROR_CHARS));
        assert!(job.finished_ms.is_some());
        assert!(job.validate().is_ok());
    }
}
