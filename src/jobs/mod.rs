//! Jobs: ids, durable job records, claims, and the runner that renders them.
//!
//! Owns everything under `<data>/jobs/` and `<data>/files/`: one JSON record per job written
//! atomically (tmp + fsync + rename + fsync dir), an flock per job so that exactly one render of
//! a job runs at a time across all worker processes, the finished PDFs, and the janitor that
//! recovers jobs whose worker died and expires old ones. The record on disk is the truth; the
//! in-memory progress map only makes the status page cheap.
//!
//! Must not depend on: `web`, `fastcgi`, `reports`, or how a PDF is drawn. A job records a
//! `Request` (report id, definition hash, values) as plain data; the render and page-estimate
//! functions are handed in by `main` (`RenderFn`, `EstimateFn`) and answer through
//! `RenderOutcome` / `RenderFailure`. From `pdf` only the plain data types `Paper` and
//! `Orientation` are used.

mod admit;
mod id;
mod index;
mod janitor;
mod job;
mod runner;
mod store;
#[cfg(test)]
mod test_util;

pub use admit::{SubmitOptions, Submitted, digest, hex};
pub use id::{InvalidJobId, JobId};
pub use job::now_ms;
pub use job::{
    Delivery, DeliveryAttempt, Job, MAX_ATTEMPTS_KEPT, MAX_ERROR_CHARS, MAX_TITLE_CHARS, Request,
    State, Webhook,
};
pub use runner::{
    Cancel, CancelError, EstimateFn, JobCounts, Pending, Progress, RenderEnd, RenderFailure,
    RenderFn, RenderObserver, RenderOutcome, Runner, RunnerConfig, SubmitError, Usage,
};
pub use store::{Claim, KeyBinding, KeyEntry, KeyKind, Store, StoreError, free_bytes};
