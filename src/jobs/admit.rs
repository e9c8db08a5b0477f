//! Admission with keys (issue #9): an `Idempotency-Key` makes a retried request return the
//! job it made the first time, and a report's `reuse_for` makes an identical request join a
//! recent job instead of rendering again.
//!
//! Both are files under the data directory (`Store::bind_key`), so they hold across worker
//! processes and restarts: of two racing requests with one key, whichever links the key file
//! first makes the job, and the other reads that job's id from it.

use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::job::now_ms;
use super::runner::{Pending, Runner, SubmitError};
use super::{Job, JobId, KeyBinding, KeyEntry, KeyKind, Request, State};

/// What the caller knows beyond the request.
#[derive(Clone, Debug, Default)]
pub struct SubmitOptions {
    /// The client's `Idempotency-Key` and a digest of what it sent with it (see
    /// [`digest`]): the same key with other content is refused.
    pub idempotency: Option<(String, String)>,
    /// The report's `reuse_for`.
    pub reuse_for: Option<Duration>,
    /// Where to POST the job's end (already checked against the allow list). A request with
    /// one always gets a job of its own (never a reused one, which has its own receiver).
    pub callback_url: Option<String>,
    /// Who asks (`Job::client`), for the per-client cap.
    pub client: Option<String>,
    /// The authenticated user the job is bound to (`Job::owner`).
    pub owner: Option<String>,
    /// The report's own, shorter retention.
    pub retention: Option<Duration>,
    /// The PDF's expected size, if known (`Job::expected_bytes`).
    pub expected_bytes: Option<u64>,
}

/// How a submission was answered.
#[derive(Debug)]
pub enum Submitted {
    /// A new job, recorded and claimed: hand it to `Runner::start`.
    New(Pending),
    /// The job an earlier request with the same idempotency key made.
    Replayed(Job),
    /// A recent job of the identical request (`reuse_for`), done or on its way.
    Reused(Job),
}

impl Submitted {
    /// The job's id, whichever way it came.
    pub fn id(&self) -> JobId {
        match self {
            Submitted::New(pending) => pending.id(),
            Submitted::Replayed(job) | Submitted::Reused(job) => job.id,
        }
    }
}

/// How long a key may name a job whose record does not exist before it is taken over: the
/// request that bound it died between the key and the record (a record follows its key
/// within milliseconds).
const ORPHAN_KEY_AGE_MS: u64 = 10_000;
/// How long a request waits for the record of a job another request is creating under the
/// same key before it answers "in progress".
const KEY_WAIT: Duration = Duration::from_secs(2);

/// Lowercase hex SHA-256 of `parts`, each length-prefixed so that no two lists collide.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Runner {
    /// [`Runner::enqueue`] with an idempotency key and reuse of identical jobs. Blocking
    /// (record I/O and, for a racing key, a short wait): call it from a blocking thread.
    ///
    /// # Errors
    /// Those of `enqueue`; `KeyReused` for a key that came with other content before;
    /// `KeyInFlight` while another request with the key is still creating its job.
    pub fn submit(&self, request: Request, opts: &SubmitOptions) -> Result<Submitted, SubmitError> {
        let store = self.store();
        let mut job = Job::new(request, 0);
        job.webhook = opts.callback_url.clone().map(super::Webhook::new);
        job.client = opts.client.clone();
        job.owner = opts.owner.clone();
        job.expected_bytes = opts.expected_bytes;
        job.retention_ms = opts
            .retention
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Some((key, body)) = &opts.idempotency {
            // A key is the user's own: another user's same key is another key.
            let owner = opts.owner.as_deref().unwrap_or("");
            let key_digest = digest(&[b"idempotency-key", owner.as_bytes(), key.as_bytes()]);
            let entry = KeyEntry {
                job: job.id,
                request: body.clone(),
                created_ms: now_ms(),
            };
            match store.bind_key(KeyKind::Idempotency, &key_digest, &entry)? {
                KeyBinding::Bound => {}
                KeyBinding::Taken(found) if found.request != *body => {
                    return Err(SubmitError::KeyReused);
                }
                KeyBinding::Taken(found) => match self.wait_for_record(found.job)? {
                    Some(existing) => return Ok(Submitted::Replayed(existing)),
                    None if now_ms().saturating_sub(found.created_ms) >= ORPHAN_KEY_AGE_MS => {
                        log::warn!(
                            "job {}: its idempotency key is taken over by job {}, the first \
                             request left no record",
                            found.job,
                            job.id
                        );
                        store.bind_key_replacing(KeyKind::Idempotency, &key_digest, &entry)?;
                    }
                    None => return Err(SubmitError::KeyInFlight),
                },
            }
            job.idempotency_key = Some(key_digest);
        }
        let result = self.submit_new_or_reused(job.clone(), opts);
        // A key bound for a job that was never recorded must not keep naming it: the retry
        // would otherwise wait for a record that never comes.
        if let Some(key_digest) = &job.idempotency_key {
            match &result {
                Err(_) => {
                    if let Err(e) = store.remove_key(KeyKind::Idempotency, key_digest, job.id) {
                        log::warn!("job {}: {e}", job.id);
                    }
                }
                Ok(Submitted::Reused(reused)) => {
                    // The key now stands for the job it was answered with.
                    let entry = KeyEntry {
                        job: reused.id,
                        request: opts
                            .idempotency
                            .as_ref()
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default(),
                        created_ms: now_ms(),
                    };
                    store.bind_key_replacing(KeyKind::Idempotency, key_digest, &entry)?;
                }
                Ok(_) => {}
            }
        }
        result
    }

    fn submit_new_or_reused(
        &self,
        mut job: Job,
        opts: &SubmitOptions,
    ) -> Result<Submitted, SubmitError> {
        let store = self.store();
        let Some(window) = opts.reuse_for.filter(|_| job.webhook.is_none()) else {
            return self.enqueue_job(job).map(Submitted::New);
        };
        // The request as recorded (report, definition digest, values, paper, orientation):
        // serialized from sorted maps, so equal requests give equal bytes.
        let canonical = serde_json::to_vec(&job.request).expect("a Request always serializes");
        let reuse_digest = digest(&[b"reuse", &canonical]);
        if let Some(found) = store.load_key(KeyKind::Reuse, &reuse_digest)? {
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            if let Some(earlier) = store.load(found.job)?
                && earlier.owner == job.owner
                && matches!(earlier.state, State::Queued | State::Running | State::Done)
                && earlier.request == job.request
                && now_ms().saturating_sub(earlier.created_ms) < window_ms
            {
                log::info!(
                    "job {}: reused for an identical request ({})",
                    earlier.id,
                    earlier.state
                );
                return Ok(Submitted::Reused(earlier));
            }
        }
        job.dedup_key = Some(reuse_digest.clone());
        let pending = self.enqueue_job(job)?;
        let entry = KeyEntry {
            job: pending.id(),
            request: String::new(),
            created_ms: now_ms(),
        };
        // Best effort: without it the next identical request renders again, nothing worse.
        if let Err(e) = store.bind_key_replacing(KeyKind::Reuse, &reuse_digest, &entry) {
            log::warn!("job {}: not offered for reuse: {e}", pending.id());
        }
        Ok(Submitted::New(pending))
    }

    /// The record of `id`, waiting up to [`KEY_WAIT`] for it to appear.
    fn wait_for_record(&self, id: JobId) -> Result<Option<Job>, SubmitError> {
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        loop {
            if let Some(job) = self.store().load(id)? {
                return Ok(Some(job));
            }
            if waited >= KEY_WAIT {
                return Ok(None);
            }
            thread::sleep(step);
            waited += step;
        }
    }
}
