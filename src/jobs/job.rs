//! The job record: what was asked for (`Params`), where it stands (`State`), and what happened
//! (`Job`). Plain data plus the checks a record must pass when it is read back from disk.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::JobId;
use crate::pdf::{Orientation, Paper};

/// Longest title, in characters, that a job may carry. The web form enforces the same limit;
/// a record read back with a longer one was not written by us.
pub const MAX_TITLE_CHARS: usize = 200;

/// Longest error message, in characters, that a record may carry.
pub const MAX_ERROR_CHARS: usize = 2_000;

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub title: String,
    pub rows: u32,
    pub paper: Paper,
    pub orientation: Orientation,
}

impl Params {
    /// Checks the limits every job must respect, whether it came from a form or from disk.
    ///
    /// # Errors
    /// A sentence a user can read, saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let chars = self.title.chars().count();
        if chars > MAX_TITLE_CHARS {
            return Err(format!(
                "the title is {chars} characters long; at most {MAX_TITLE_CHARS} are allowed"
            ));
        }
        Ok(())
    }
}

/// Where a job stands. `Done` and `Failed` are final: nothing changes a final job but expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
}

impl State {
    /// The lowercase name, as stored and as shown to users and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
        }
    }

    /// True for `Done` and `Failed`.
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed)
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
    pub params: Params,
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
}

impl Job {
    /// A new queued job, created now.
    pub fn new(params: Params, pages_total: u32) -> Job {
        Job {
            id: JobId::new(),
            params,
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
        }
    }

    /// Checks a record read back from disk the way we would check user input.
    ///
    /// # Errors
    /// Why the record cannot be one we wrote.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.params.validate()?;
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
        Ok(())
    }

    /// Marks the job failed now with `message`, cut to what a record may hold.
    pub(crate) fn fail(&mut self, message: &str) {
        self.state = State::Failed;
        self.finished_ms = Some(now_ms());
        self.error = Some(message.chars().take(MAX_ERROR_CHARS).collect());
    }
}

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970 (a broken clock must not
/// take the runner down).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn params(title: &str, rows: u32) -> Params {
        Params {
            title: title.to_owned(),
            rows,
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
            Params {
                title: "Ünïcode ✓".into(),
                rows: 7,
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
        let ok = Job::new(params("t", 1), 1);
        let cases: Vec<(&str, Job, bool)> = vec![
            ("fresh job", ok.clone(), true),
            (
                "title at limit",
                Job {
                    params: params(&"é".repeat(MAX_TITLE_CHARS), 1),
                    ..ok.clone()
                },
                true,
            ),
            (
                "title over limit",
                Job {
                    params: params(&"a".repeat(MAX_TITLE_CHARS + 1), 1),
                    ..ok.clone()
                },
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
    fn rows_beyond_u32_do_not_deserialize() {
        let mut value = serde_json::to_value(Job::new(params("t", 1), 1)).expect("to value");
        value["params"]["rows"] = serde_json::json!(u64::from(u32::MAX) + 1);
        assert!(serde_json::from_value::<Job>(value.clone()).is_err());
        value["params"]["rows"] = serde_json::json!(-1);
        assert!(serde_json::from_value::<Job>(value).is_err());
    }

    #[test]
    fn fail_truncates_long_messages() {
        let mut job = Job::new(params("t", 1), 1);
        job.fail(&"y".repeat(MAX_ERROR_CHARS * 2));
        assert_eq!(job.error.as_deref().map(str::len), Some(MAX_ERROR_CHARS));
        assert!(job.validate().is_ok());
    }
}
